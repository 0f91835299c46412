//! The guest's kernel: where it comes from, its modules, and the uncompressed image labrun
//! boots (a bzImage decompresses itself in the guest, which under TCG costs seconds).
//!
//! Search order: `kernel:` / `--kernel`, then `LABRUN_KERNEL`, then this machine's
//! `/boot/vmlinuz-*`, then the kernel labrun's setup installs under
//! `/usr/local/lib/labrun/vm` (a Debian linux-image package, unpacked). A kernel at
//! `DIR/boot/vmlinuz-VERSION` has its modules at `DIR/lib/modules/VERSION`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::super::EnvError;

/// Where labrun's own setup puts a kernel (see `scripts/install-vm.sh`).
pub const INSTALLED: &str = "/usr/local/lib/labrun/vm";

/// A kernel found, with its modules directory when it has one.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The file as found (a bzImage or an ELF vmlinux).
    pub path: PathBuf,
    /// `lib/modules/<version>` beside it, if there.
    pub modules: Option<PathBuf>,
}

const HOW_TO_GET_ONE: &str = "give one with `kernel:` in the front matter or --kernel, or \
     install Debian's kernel for labrun with scripts/install-vm.sh (it unpacks linux-image-amd64 \
     under /usr/local/lib/labrun/vm)";

/// Finds the kernel to boot.
pub fn find(asked: Option<&Path>) -> Result<Kernel, EnvError> {
    let asked = asked
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("LABRUN_KERNEL").map(PathBuf::from));
    let path = match asked {
        Some(p) => {
            if !p.is_file() {
                return Err(EnvError::Other(format!(
                    "the kernel {} does not exist; {HOW_TO_GET_ONE}",
                    p.display()
                )));
            }
            p
        }
        None => [Path::new("/boot"), &Path::new(INSTALLED).join("boot")]
            .iter()
            .find_map(|dir| newest_vmlinuz(dir))
            .ok_or_else(|| {
                EnvError::Other(format!(
                    "no kernel found for the vm backend (looked in /boot and {INSTALLED}/boot); \
                     {HOW_TO_GET_ONE}"
                ))
            })?,
    };
    if let Err(e) = fs::File::open(&path) {
        return Err(EnvError::Other(format!(
            "the kernel {} cannot be read: {e} (distributions often make /boot/vmlinuz-* \
             readable by root only); {HOW_TO_GET_ONE}",
            path.display()
        )));
    }
    Ok(Kernel {
        modules: modules_of(&path),
        path,
    })
}

fn newest_vmlinuz(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
                && fs::File::open(p).is_ok()
        })
        .collect();
    found.sort_by_key(|p| version_key(p));
    found.pop()
}

/// Sorts `vmlinuz-6.1.0-9` before `vmlinuz-6.1.0-10`.
fn version_key(p: &Path) -> Vec<u64> {
    p.to_string_lossy()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `DIR/lib/modules/VERSION` for `DIR/boot/vmlinuz-VERSION`.
fn modules_of(kernel: &Path) -> Option<PathBuf> {
    let version = kernel.file_name()?.to_str()?.strip_prefix("vmlinuz-")?;
    let boot = kernel.parent()?;
    let root = boot.parent()?;
    let dir = root.join("lib/modules").join(version);
    dir.is_dir().then_some(dir)
}

/// The image to boot: an ELF kernel as it is; a bzImage's own compressed kernel, unpacked
/// once into `cache_dir` (by the system's xz, zstd or gzip) and kept. Where that cannot be
/// done, the bzImage itself (it boots, more slowly).
pub fn bootable(kernel: &Path, cache_dir: &Path) -> PathBuf {
    let Ok(bytes) = fs::read(kernel) else {
        return kernel.to_path_buf();
    };
    if bytes.starts_with(b"\x7fELF") {
        return kernel.to_path_buf();
    }
    // The file's identity, cheaper than its digest on every run.
    let meta = fs::metadata(kernel).ok();
    let stamp = meta.map_or(String::new(), |m| {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}:{}", m.len(), m.mtime(), m.ino())
    });
    let key = crate::image::digest::recipe_key(&[&kernel.to_string_lossy(), &stamp]);
    let out = cache_dir.join(format!("vmlinux-{}", &key[..16]));
    if out.is_file() {
        return out;
    }
    match unpack(&bytes, &out) {
        Some(()) => out,
        None => kernel.to_path_buf(),
    }
}

/// The compressed kernel inside a bzImage, by the magic numbers of its formats.
fn unpack(bzimage: &[u8], out: &Path) -> Option<()> {
    const FORMATS: [(&[u8], &str); 3] = [
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x1f\x8b\x08", "gzip"),
    ];
    let (start, tool) = FORMATS
        .iter()
        .filter_map(|(magic, tool)| Some((position(bzimage, magic)?, *tool)))
        .min()?;
    fs::create_dir_all(out.parent()?).ok()?;
    let partial = out.with_extension(format!("part-{}", std::process::id()));
    let file = fs::File::create(&partial).ok()?;
    let mut child = Command::new(tool)
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let payload = bzimage[start..].to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The decompressor stops at the end of its stream; what trails it is not its input.
        let _ = stdin.write_all(&payload);
    });
    let _ = child.wait();
    let _ = writer.join();
    let unpacked = fs::read(&partial).ok()?;
    if !unpacked.starts_with(b"\x7fELF") {
        let _ = fs::remove_file(&partial);
        return None;
    }
    fs::rename(&partial, out).ok()
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_number() {
        let mut v = [
            PathBuf::from("/boot/vmlinuz-6.1.0-10-amd64"),
            PathBuf::from("/boot/vmlinuz-6.1.0-9-amd64"),
        ];
        v.sort_by_key(|p| version_key(p));
        assert_eq!(v[1], PathBuf::from("/boot/vmlinuz-6.1.0-10-amd64"));
    }

    #[test]
    fn a_missing_kernel_says_how_to_get_one() {
        let e = find(Some(Path::new("/no/such/vmlinuz")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/no/such/vmlinuz") && e.contains("install-vm.sh"),
            "{e}"
        );
    }
}
