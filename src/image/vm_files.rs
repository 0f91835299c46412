//! The vm backend's files in labrun's cache: unpacked kernels, initramfs images (one per labrun
//! binary and kernel) and snapshots of booted machines (one per machine shape, about 100 MB
//! each). Each run marks the files it uses (their access time), `labrun image ls` lists them
//! and `labrun image prune` removes those unused for a while, as it does layers.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One file of the vm's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFile {
    pub path: PathBuf,
    /// What it is, for `labrun image ls`.
    pub what: &'static str,
    pub size: u64,
    /// When a run last used it (its access time).
    pub last_used: Option<SystemTime>,
}

/// The vm's directory in the cache at `cache_root`.
pub fn dir(cache_root: &Path) -> PathBuf {
    cache_root.join("vm")
}

fn what_of(name: &str) -> &'static str {
    if name.starts_with("snapshot-") {
        "vm snapshot (a booted machine, for warm starts)"
    } else if name.starts_with("initramfs-") {
        "vm initramfs (labrun as the guest's init)"
    } else if name.starts_with("vmlinux-") {
        "vm kernel, unpacked"
    } else {
        "vm file left by an interrupted run"
    }
}

/// The vm's files, oldest use first.
pub fn list(cache_root: &Path) -> Vec<VmFile> {
    let Ok(entries) = fs::read_dir(dir(cache_root)) else {
        return Vec::new();
    };
    let mut files: Vec<VmFile> = entries
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok().filter(fs::Metadata::is_file)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            Some(VmFile {
                path: entry.path(),
                what: what_of(&name),
                size: meta.len(),
                last_used: meta.accessed().ok(),
            })
        })
        .collect();
    files.sort_by_key(|f| f.last_used);
    files
}

/// Notes that a run uses `path` now. The access time only: snapshots are keyed by the
/// modification times of the files a machine boots from.
pub fn mark_used(path: &Path) {
    if let Ok(file) = fs::File::open(path) {
        let _ = file.set_times(fs::FileTimes::new().set_accessed(SystemTime::now()));
    }
}

/// Removes the files unused for `unused_for` (every file when `None`). The caller holds the
/// cache exclusively, so no run is starting a machine from them. Returns what was removed.
pub fn prune(cache_root: &Path, unused_for: Option<Duration>) -> Vec<VmFile> {
    let now = SystemTime::now();
    list(cache_root)
        .into_iter()
        .filter(|f| match (unused_for, f.last_used) {
            (None, _) | (Some(_), None) => true,
            (Some(age), Some(used)) => now.duration_since(used).unwrap_or_default() >= age,
        })
        .filter(|f| fs::remove_file(&f.path).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_unused_for_a_while_are_pruned_and_marked_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let vm = dir(t.path());
        fs::create_dir_all(&vm).unwrap();
        for name in [
            "snapshot-aa.bin",
            "initramfs-bb.cpio",
            "vmlinux-cc",
            "snapshot-dd.tmp",
        ] {
            fs::write(vm.join(name), name).unwrap();
        }
        let long_ago = SystemTime::now() - Duration::from_secs(40 * 86400);
        for name in ["snapshot-aa.bin", "initramfs-bb.cpio", "snapshot-dd.tmp"] {
            let file = fs::File::open(vm.join(name)).unwrap();
            file.set_times(fs::FileTimes::new().set_accessed(long_ago))
                .unwrap();
        }
        let before = fs::metadata(vm.join("initramfs-bb.cpio"))
            .unwrap()
            .modified()
            .unwrap();
        mark_used(&vm.join("initramfs-bb.cpio"));
        assert_eq!(
            fs::metadata(vm.join("initramfs-bb.cpio"))
                .unwrap()
                .modified()
                .unwrap(),
            before,
            "marking keeps the modification time snapshots are keyed by"
        );
        let listed = list(t.path());
        assert_eq!(listed.len(), 4);
        assert_eq!(
            listed[0].what,
            "vm snapshot (a booted machine, for warm starts)"
        );

        let removed = prune(t.path(), Some(Duration::from_secs(30 * 86400)));
        let mut names: Vec<String> = removed
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["snapshot-aa.bin", "snapshot-dd.tmp"]);
        assert_eq!(list(t.path()).len(), 2);
        assert_eq!(prune(t.path(), None).len(), 2);
        assert!(list(t.path()).is_empty());
    }
}
