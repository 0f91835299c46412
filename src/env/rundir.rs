//! A run's private directory on this machine, locked while the run lives.
//!
//! Every run gets `<tmp>/labrun-<uid>/run-<token>/`, holding an flock on its `lock` file for
//! as long as the run lasts. A labrun that was killed leaves its directory behind unlocked;
//! the next labrun removes such directories and never touches a locked one (a per-run lock,
//! not a guess from process ids). A run's directory also records where its cgroups are, for
//! the sweeper.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The file of a run's directory that lists its cgroups (`RunDir::record_cgroups`).
const CGROUPS_RECORD: &str = "cgroups";

pub struct RunDir {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Where run directories live: `LABRUN_RUN_DIR` if set, else a memory-backed directory
/// (`$XDG_RUNTIME_DIR`, `/dev/shm`) where there is one, because a run creates and removes many
/// small files; else `$TMPDIR` or `/tmp`.
fn parent_dir() -> PathBuf {
    let writable_dir = |p: &PathBuf| {
        p.is_dir()
            && nix::unistd::access(
                p,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
    };
    let base = std::env::var_os("LABRUN_RUN_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            [
                std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
                Some(PathBuf::from("/dev/shm")),
            ]
            .into_iter()
            .flatten()
            .find(writable_dir)
        })
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join(format!("labrun-{}", nix::unistd::getuid()))
}

fn token() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RunDir {
    /// Creates and locks a fresh run directory, after sweeping stale ones.
    pub fn create() -> io::Result<RunDir> {
        let parent = parent_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|e| with_path(e, &parent))?;
        let meta = fs::symlink_metadata(&parent).map_err(|e| with_path(e, &parent))?;
        if !meta.is_dir() || meta_uid(&meta) != nix::unistd::getuid().as_raw() {
            return Err(io::Error::other(format!(
                "{} is not a directory owned by this user; refusing to use it",
                parent.display()
            )));
        }
        sweep_stale(&parent);
        // Built under a name the sweeper ignores, locked, then renamed into place, so no
        // sweeper can ever see a run directory that is not yet locked.
        let name = token();
        let building = parent.join(format!("new-{name}"));
        let path = parent.join(format!("run-{name}"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&building)
            .map_err(|e| with_path(e, &building))?;
        let file = File::create(building.join("lock")).map_err(|e| with_path(e, &building))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| with_path(io::Error::from(e), &building))?;
        fs::rename(&building, &path).map_err(|e| with_path(e, &path))?;
        Ok(RunDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor holding the run's lock (to hand it to a process that outlives labrun).
    pub fn lock_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self._lock.as_fd()
    }

    /// The run's random token (its directory is `run-<token>`).
    pub fn token(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .unwrap_or("")
    }

    /// Notes where the run's cgroups are, so that a labrun that sweeps this run after a
    /// `kill -9` finds them wherever they are: below the cgroup this labrun runs in, which
    /// the next labrun may not share (another login, another job).
    pub fn record_cgroups(&self, paths: &[&Path]) -> io::Result<()> {
        let mut text = Vec::new();
        for path in paths {
            text.extend_from_slice(path.as_os_str().as_bytes());
            text.push(0);
        }
        let file = self.path.join(CGROUPS_RECORD);
        fs::write(&file, text).map_err(|e| with_path(e, &file))
    }

    /// Makes a subdirectory with the given mode.
    pub fn subdir(&self, name: &str, mode: u32) -> io::Result<PathBuf> {
        let p = self.path.join(name);
        fs::DirBuilder::new()
            .mode(mode)
            .create(&p)
            .map_err(|e| with_path(e, &p))?;
        Ok(p)
    }
}

impl super::EnvGuard for RunDir {
    fn keep(self: Box<Self>) -> Result<String, super::EnvError> {
        let path = self.path.clone();
        // The lock goes with labrun; the directory stays until a later labrun sweeps it.
        std::mem::forget(self);
        Ok(format!(
            "kept the run's directory {}; a later labrun removes it",
            path.display()
        ))
    }
}

impl RunDir {
    /// Removes everything in the directory but its lock, which stays held until it is
    /// dropped, and the record of its cgroups, which a sweeper needs until they are gone.
    pub fn clear(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name() != "lock" && entry.file_name() != CGROUPS_RECORD {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&path);
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

fn meta_uid(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.uid()
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Removes run directories whose lock no live run holds.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = || {
            fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m.elapsed().is_ok_and(|e| e.as_secs() > 60))
        };
        if name.starts_with("new-") {
            // A labrun killed while creating its directory.
            if old() {
                remove_tree(&path);
            }
            continue;
        }
        if !name.starts_with("run-") {
            continue;
        }
        let Ok(file) = File::open(path.join("lock")) else {
            // Half removed by another sweeper.
            if old() {
                remove_tree(&path);
            }
            continue;
        };
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // A dead run: its cgroups first (those it recorded, then any of its name below
            // this labrun's cgroups), then its files.
            let token = name.trim_start_matches("run-");
            let uid = nix::unistd::getuid().as_raw();
            if let Ok(record) = fs::read(path.join(CGROUPS_RECORD)) {
                let recorded = record
                    .split(|&b| b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| PathBuf::from(OsStr::from_bytes(p)));
                crate::limits::sweep_recorded(uid, token, recorded);
            }
            crate::limits::sweep_stale(uid, |t| t != token);
            remove_tree(&path);
            drop(lock);
        }
    }
}

/// Removes a tree a cell may have made hard to remove (read-only directories).
pub fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    make_writable(path);
    let _ = fs::remove_dir_all(path);
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_run_dir_is_removed_and_a_stale_one_swept() {
        let run = RunDir::create().unwrap();
        let p = run.path().to_path_buf();
        let sub = run.subdir("lab", 0o755).unwrap();
        fs::create_dir(sub.join("ro")).unwrap();
        fs::set_permissions(sub.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
        assert!(p.exists());
        drop(run);
        assert!(!p.exists());

        // A stale directory: a lock file nobody holds.
        let stale = parent_dir().join("run-stale-test");
        fs::create_dir_all(&stale).unwrap();
        File::create(stale.join("lock")).unwrap();
        let live = RunDir::create().unwrap();
        assert!(!stale.exists(), "stale run directory swept");
        assert!(live.path().exists(), "the live one stays");
    }

    #[test]
    fn clearing_leaves_only_the_lock_still_held_and_the_cgroups_record() {
        let run = RunDir::create().unwrap();
        let root = run.subdir("root", 0o700).unwrap();
        fs::create_dir(root.join("ro")).unwrap();
        fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
        fs::write(run.path().join("hosts"), "x").unwrap();
        let cgroups = [
            Path::new("/sys/fs/cgroup/a b"),
            Path::new("/sys/fs/cgroup/c\nd"),
        ];
        run.record_cgroups(&cgroups).unwrap();
        run.clear();
        let mut left: Vec<_> = fs::read_dir(run.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, [CGROUPS_RECORD, "lock"]);
        assert_eq!(
            fs::read(run.path().join(CGROUPS_RECORD)).unwrap(),
            b"/sys/fs/cgroup/a b\0/sys/fs/cgroup/c\nd\0",
            "each path as it is, ended by a NUL"
        );
        let again = File::open(run.path().join("lock")).unwrap();
        assert!(
            Flock::lock(again, FlockArg::LockExclusiveNonblock).is_err(),
            "the run still holds its lock"
        );
        let path = run.path().to_path_buf();
        drop(run);
        assert!(!path.exists());
    }
}
