//! The vm backend's files in labrun's cache: unpacked kernels, initramfs images (one per labrun
//! binary and kernel) and snapshots of booted machines (one per machine shape, about 100 MB
//! each). Each run marks the files it uses (their access time), `labrun image ls` lists them
//! and `labrun image prune` removes those unused for a while, as it does layers. A vm run
//! keeps them within a budget at its end (`trim`): every new labrun build brings its own
//! initramfs and snapshots, and nothing else would take the old ones away.

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

impl VmFile {
    /// How long no run has used it at `now` (forever when its use is unknown).
    fn unused_for(&self, now: SystemTime) -> Duration {
        self.last_used.map_or(Duration::MAX, |used| {
            now.duration_since(used).unwrap_or_default()
        })
    }
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

/// What the vm's files may take before a run trims them, unless `LABRUN_VM_CACHE_MAX` says.
pub const DEFAULT_BUDGET: u64 = 2 << 30;

/// Files used this recently stay, even over the budget: a budget too small for the machines in
/// use would otherwise throw away, at the end of each run, what the next run boots from.
pub const KEPT_WHILE_RECENT: Duration = Duration::from_secs(3600);

/// The budget `LABRUN_VM_CACHE_MAX` sets (a size such as `2GiB`; `none`: no trimming), or the
/// default. An error names the variable.
pub fn budget() -> Result<Option<u64>, String> {
    budget_from(std::env::var("LABRUN_VM_CACHE_MAX").ok().as_deref())
}

fn budget_from(setting: Option<&str>) -> Result<Option<u64>, String> {
    match setting {
        None => Ok(Some(DEFAULT_BUDGET)),
        Some(text) if text.trim().eq_ignore_ascii_case("none") => Ok(None),
        Some(text) => crate::units::parse_size(text)
            .map(Some)
            .map_err(|e| format!("LABRUN_VM_CACHE_MAX: {e}; or none, for no trimming")),
    }
}

/// Removes the least recently used files until the rest take at most `budget` bytes, but none
/// used within `recent`. The caller holds the cache exclusively, so no run is starting a
/// machine from them. Returns what was removed, oldest use first.
pub fn trim(cache_root: &Path, budget: u64, recent: Duration) -> Vec<VmFile> {
    let now = SystemTime::now();
    let files = list(cache_root);
    let mut total: u64 = files.iter().map(|f| f.size).sum();
    let mut removed = Vec::new();
    for file in files {
        if total <= budget {
            break;
        }
        if file.unused_for(now) < recent {
            // `list` is oldest use first: every file after this one is as recent.
            break;
        }
        if fs::remove_file(&file.path).is_ok() {
            total -= file.size;
            removed.push(file);
        }
    }
    removed
}

/// Removes the files unused for `unused_for` (every file when `None`). The caller holds the
/// cache exclusively, so no run is starting a machine from them. Returns what was removed.
pub fn prune(cache_root: &Path, unused_for: Option<Duration>) -> Vec<VmFile> {
    let now = SystemTime::now();
    list(cache_root)
        .into_iter()
        .filter(|f| unused_for.is_none_or(|age| f.unused_for(now) >= age))
        .filter(|f| fs::remove_file(&f.path).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `size` bytes (sparse) in the vm dir of `root`, last used `age` ago.
    fn used_file(root: &Path, name: &str, size: u64, age: Duration) {
        let path = dir(root).join(name);
        fs::create_dir_all(dir(root)).unwrap();
        let file = fs::File::create(&path).unwrap();
        file.set_len(size).unwrap();
        file.set_times(fs::FileTimes::new().set_accessed(SystemTime::now() - age))
            .unwrap();
    }

    fn names(files: &[VmFile]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn trimming_removes_the_least_recently_used_files_until_the_rest_fit() {
        let t = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86400);
        used_file(t.path(), "snapshot-old.bin", 300 << 20, 9 * day);
        used_file(t.path(), "initramfs-old.cpio", 10 << 20, 8 * day);
        used_file(t.path(), "snapshot-mid.bin", 300 << 20, 2 * day);
        used_file(
            t.path(),
            "snapshot-new.bin",
            300 << 20,
            Duration::from_secs(60),
        );
        used_file(t.path(), "vmlinux-k", 60 << 20, Duration::from_secs(60));

        assert!(
            trim(t.path(), 1 << 30, KEPT_WHILE_RECENT).is_empty(),
            "within budget"
        );
        let removed = trim(t.path(), 665 << 20, KEPT_WHILE_RECENT);
        assert_eq!(names(&removed), ["snapshot-old.bin", "initramfs-old.cpio"]);
        let left: u64 = list(t.path()).iter().map(|f| f.size).sum();
        assert_eq!(left, 660 << 20);
    }

    #[test]
    fn the_budget_is_a_size_or_none() {
        assert_eq!(budget_from(None), Ok(Some(DEFAULT_BUDGET)));
        assert_eq!(budget_from(Some("500MiB")), Ok(Some(500 << 20)));
        assert_eq!(budget_from(Some(" None ")), Ok(None));
        let err = budget_from(Some("lots")).unwrap_err();
        assert!(
            err.starts_with("LABRUN_VM_CACHE_MAX: invalid size 'lots'"),
            "{err}"
        );
    }

    #[test]
    fn files_used_within_the_hour_stay_even_over_the_budget() {
        let t = tempfile::tempdir().unwrap();
        used_file(
            t.path(),
            "snapshot-a.bin",
            300 << 20,
            Duration::from_secs(7200),
        );
        used_file(
            t.path(),
            "snapshot-b.bin",
            300 << 20,
            Duration::from_secs(600),
        );
        used_file(
            t.path(),
            "snapshot-c.bin",
            300 << 20,
            Duration::from_secs(60),
        );
        let removed = trim(t.path(), 0, KEPT_WHILE_RECENT);
        assert_eq!(names(&removed), ["snapshot-a.bin"]);
        assert_eq!(names(&list(t.path())), ["snapshot-b.bin", "snapshot-c.bin"]);
    }

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
