//! One cgroup directory, whatever its version: making it, writing and reading its files,
//! killing what is in it, removing it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long `destroy` waits for the killed processes to leave and the directories to go.
pub(super) const TEARDOWN: Duration = Duration::from_secs(5);

/// Writes a control file in one `write` (cgroup files take a value per write).
pub(super) fn write(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// The number after `key` on a `key value` line of a control file (`memory.events`,
/// `pids.events`, `memory.oom_control`); 0 when the file or the key is missing.
pub(super) fn read_counter(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                if k == key {
                    v.trim().parse().ok()
                } else {
                    None
                }
            })
        })
        .unwrap_or(0)
}

/// The processes in a cgroup and in the cgroups below it.
pub(super) fn procs(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in children(dir) {
        pids.extend(procs(&child));
    }
    pids
}

/// The cgroups directly below `dir`.
pub(super) fn children(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends SIGKILL to everything in the cgroups until they are empty or `deadline` passes.
/// A process with a SIGKILL pending cannot fork, so each round leaves only what was forked
/// since the last read: this ends even with a fork bomb inside.
pub(super) fn kill_until_empty(dirs: &[&Path], deadline: Instant) {
    loop {
        let pids: Vec<i32> = dirs.iter().flat_map(|d| procs(d)).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes a cgroup and the cgroups below it (deepest first). Gone already is fine; a cgroup
/// still busy (its last processes exiting) is retried until `deadline`.
pub(super) fn remove(dir: &Path, deadline: Instant) -> io::Result<()> {
    for child in children(dir) {
        remove(&child, deadline)?;
    }
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error means "this user may not do that here" (rootless, nothing delegated).
pub(super) fn is_denied(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}

/// An error as a report reads it: `Permission denied`, without `(os error 13)`.
pub(super) fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}
