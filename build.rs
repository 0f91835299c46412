//! Link flags for labrun's binaries: packed relative relocations (DT_RELR), so the dynamic
//! loader applies labrun's ~27,000 relative relocations from a compact table at start.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
