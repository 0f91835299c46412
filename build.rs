//! Link flags for labrun's binaries: packed relative relocations (DT_RELR), so the dynamic
//! loader applies labrun's ~27,000 relative relocations from a compact table at start.
fn main() {
    // Without this, cargo reruns the script (and rebuilds labrun) when any file of the
    // package changes, the book and the benchmark scripts included.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
