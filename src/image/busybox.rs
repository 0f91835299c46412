//! The `busybox` image: a minimal root built once into the cache around the host's static
//! busybox (Debian's busybox-static), keyed by the SHA-256 of the binary and a format version.
//!
//! The root: `bin/busybox`; a relative symbolic link to it for every applet the binary lists
//! (`busybox --list-full`: `bin/sh`, `usr/bin/awk`, ...), so the links work both inside the
//! container and when looked at from the host; `etc/passwd` and `etc/group` with root and
//! nobody; and the usual directories with the usual modes (`tmp` and `var/tmp` 1777, `root`
//! 0700, `proc` and `sys` 0555, `lab` for the working directory).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::cache::Built;
use super::digest::{recipe_key, sha256_file};
use super::elf::{Linking, linking};
use super::{Cache, ImageError};

/// Where Debian's busybox-static puts the binary (`/usr/bin` on a usr-merged system).
pub const CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Bump when the root built from the same binary would differ.
const FORMAT: &str = "1";

const DIRS: [(&str, u32); 15] = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("root", 0o700),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("lab", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The busybox image's layer, built from the first static busybox of [`CANDIDATES`].
pub fn build(cache: &Cache) -> Result<Built, ImageError> {
    let candidates: Vec<PathBuf> = CANDIDATES.iter().map(PathBuf::from).collect();
    build_from(&find_static(&candidates)?, cache)
}

/// The first statically linked busybox among `candidates`; the error says what was found.
pub fn find_static(candidates: &[PathBuf]) -> Result<PathBuf, ImageError> {
    let mut found = Vec::new();
    for c in candidates {
        if !c.exists() {
            continue;
        }
        match linking(c) {
            Ok(Linking::Static) => return Ok(c.clone()),
            Ok(Linking::Dynamic) => found.push(format!("{} is dynamically linked", c.display())),
            Err(e) => found.push(format!("{}: {e}", c.display())),
        }
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    let detail = if found.is_empty() {
        format!("; there is no busybox at {}", looked.join(" or "))
    } else {
        format!("; {}", found.join("; "))
    };
    Err(ImageError::NoStaticBusybox { detail })
}

/// The busybox image's layer, built around the binary `busybox` (which must be static).
pub fn build_from(busybox: &Path, cache: &Cache) -> Result<Built, ImageError> {
    let digest = cache
        .file_digest(busybox)
        .map_err(|e| ImageError::io_at(busybox, "reading busybox", e))?;
    let key = format!(
        "busybox-{}",
        recipe_key(&["labrun busybox root", FORMAT, &digest])
    );
    cache.get_or_build(&key, |dest| populate(dest, busybox, &digest))
}

fn populate(dest: &Path, busybox: &Path, digest: &str) -> Result<Vec<String>, ImageError> {
    let io = |what: &str, path: &Path, e| ImageError::io_at(path, what, e);
    chmod(dest, 0o755)?;
    for (dir, mode) in DIRS {
        let p = dest.join(dir);
        fs::create_dir(&p).map_err(|e| io("creating", &p, e))?;
        chmod(&p, mode)?;
    }
    let bin = dest.join("bin/busybox");
    fs::copy(busybox, &bin).map_err(|e| io("copying busybox to", &bin, e))?;
    chmod(&bin, 0o755)?;
    if sha256_file(&bin).map_err(|e| io("reading", &bin, e))? != digest {
        return Err(io(
            "copying",
            busybox,
            std::io::Error::other("it changed while labrun was copying it; run again"),
        ));
    }
    // Ask the host's binary (the copy is identical, and a file just written can be briefly
    // unexecutable while another thread forks).
    let out = Command::new(busybox)
        .arg("--list-full")
        .env_clear()
        .output()
        .map_err(|e| io("running", busybox, e))?;
    if !out.status.success() {
        return Err(io(
            "running --list-full with",
            busybox,
            std::io::Error::other(format!("it exited with {}", out.status)),
        ));
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let applets = list.lines().map(str::trim).filter(|l| !l.is_empty());
    for applet in applets.chain(["bin/sh"]) {
        let rel = Path::new(applet);
        let clean = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean || rel == Path::new("bin/busybox") {
            continue;
        }
        let link = dest.join(rel);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = rel.parent() {
            make_dirs(dest, parent)?;
        }
        symlink(link_target(rel), &link).map_err(|e| io("creating", &link, e))?;
    }
    for (name, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let p = dest.join(name);
        fs::write(&p, text).map_err(|e| io("writing", &p, e))?;
        chmod(&p, 0o644)?;
    }
    Ok(Vec::new())
}

/// The relative target from the link at `rel` to `bin/busybox`.
fn link_target(rel: &Path) -> PathBuf {
    let parent = rel.parent().unwrap_or(Path::new(""));
    if parent == Path::new("bin") {
        return PathBuf::from("busybox");
    }
    let mut t = PathBuf::new();
    for _ in parent.components() {
        t.push("..");
    }
    t.join("bin/busybox")
}

/// Creates `rel`'s missing directories under `dest`, 0755 whatever the umask.
fn make_dirs(dest: &Path, rel: &Path) -> Result<(), ImageError> {
    let mut at = dest.to_path_buf();
    for c in rel.components() {
        at.push(c);
        if !at.is_dir() {
            fs::create_dir(&at).map_err(|e| ImageError::io_at(&at, "creating", e))?;
            chmod(&at, 0o755)?;
        }
    }
    Ok(())
}

fn chmod(path: &Path, mode: u32) -> Result<(), ImageError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| ImageError::io_at(path, "setting the mode of", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_point_at_the_binary() {
        assert_eq!(link_target(Path::new("bin/sh")), Path::new("busybox"));
        assert_eq!(
            link_target(Path::new("usr/bin/awk")),
            Path::new("../../bin/busybox")
        );
        assert_eq!(
            link_target(Path::new("sbin/init")),
            Path::new("../bin/busybox")
        );
        assert_eq!(link_target(Path::new("linuxrc")), Path::new("bin/busybox"));
    }

    #[test]
    fn a_dynamic_or_missing_busybox_is_named() {
        let t = tempfile::tempdir().unwrap();
        // Debian's /bin/sh (dash) is dynamically linked.
        let dynamic = PathBuf::from("/bin/sh");
        let missing = t.path().join("busybox");
        let err = find_static(&[missing.clone(), dynamic])
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install busybox-static"), "{err}");
        assert!(err.contains("is dynamically linked"), "{err}");
        let err = find_static(&[missing]).unwrap_err().to_string();
        assert!(err.contains("there is no busybox at"), "{err}");
    }
}
