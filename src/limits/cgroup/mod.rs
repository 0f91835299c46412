//! A run's cgroups: made when the run starts, holding its `memory`, `pids` and `cpus` limits,
//! counting OOM kills and refused forks, killed and removed when the run ends.
//!
//! Each controller goes where the host offers it (see `hierarchy`): cgroup v2 when the cgroup
//! this process is in lists it in `cgroup.controllers` (a v2-only host, or a controller bound
//! to the unified hierarchy of a hybrid one), else the v1 hierarchy that has it. The run's
//! cgroups nest below the cgroup this process is in, in each hierarchy, so they live inside
//! whatever limits and delegation labrun itself was given:
//!
//! ```text
//! <v2 mount>/<our v2 path>/labrun-<uid>-<token>/            one directory for v2 (if writable)
//! <v1 memory mount>/<our memory path>/labrun-<uid>-<token>/  one per v1 hierarchy used
//! <v1 pids mount>/<our pids path>/labrun-<uid>-<token>/
//! ```
//!
//! The v2 directory is made even when no limit needs it, where this user may: it gives the
//! runtime `CLONE_INTO_CGROUP` and `cgroup.kill`. The name carries the uid and the run's
//! token, so that [`sweep_stale`] can find the cgroups of runs that died.
//!
//! Without a writable cgroup (rootless, nothing delegated) `create` returns no `RunCgroup`
//! and one [`Unenforced`] entry per limit; `RlimitPlan::fallback` then does what it can.

mod dir;
mod hierarchy;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use self::hierarchy::{Hierarchies, Place, SUPERVISOR_PREFIX};
use super::{Events, Limits, Unenforced};

/// The CPU bandwidth period: `cpus` 1.5 means 150 ms of CPU time each 100 ms.
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel takes (1 ms a period).
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// The limits a cgroup holds, each with the controller it needs.
const CONTROLLED: [(&str, &str); 3] = [("memory", "memory"), ("pids", "pids"), ("cpus", "cpu")];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// One directory of the run's cgroups, and the limits written into it.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    version: Version,
    limits: Vec<&'static str>,
}

/// A run's cgroups: one directory on cgroup v2, one per v1 hierarchy used, all named
/// `labrun-<uid>-<token>`. Dropping it kills what is in it and removes the directories.
///
/// The memory limit written is `memory + disk`: the container's writable disk is a tmpfs of
/// size `disk`, and tmpfs pages are charged to the memory cgroup of whoever writes them.
/// Filling the disk must end in ENOSPC from the tmpfs, never in an OOM kill, and `memory` must
/// stay available to processes however full the disk is. Swap is kept out of the limit
/// (`memory.swap.max` 0, `memory.memsw.limit_in_bytes`) so that it means what it says.
#[derive(Debug)]
pub struct RunCgroup {
    name: String,
    dirs: Vec<Dir>,
}

impl RunCgroup {
    /// Makes the run's cgroups and writes the limits into them. Returns the cgroups (none
    /// when not a single directory could be made) and the limits it could not enforce.
    /// `token` is the run directory's token (letters, digits, `-`, `_`; panics otherwise);
    /// call this after the run directory is locked, so that the sweeper sees the run alive,
    /// and record [`RunCgroup::paths`] there (`RunDir::record_cgroups`), so that a sweeper
    /// below other cgroups than this labrun's still finds them.
    pub fn create(token: &str, limits: &Limits) -> (Option<RunCgroup>, Vec<Unenforced>) {
        assert!(
            valid_token(token),
            "a run token is letters, digits, - and _ ('{token}')"
        );
        let found = Hierarchies::discover();
        let mut cg = RunCgroup {
            name: cgroup_name(nix::unistd::getuid().as_raw(), token),
            dirs: Vec::new(),
        };
        let mut unenforced = Vec::new();

        let mut on_v2 = Vec::new();
        let mut on_v1: Vec<(usize, &'static str)> = Vec::new();
        for (limit, controller) in CONTROLLED {
            if !asked(limits, limit) {
                continue;
            }
            match found.place(controller) {
                Some(Place::V2) => on_v2.push((limit, controller)),
                Some(Place::V1(i)) => on_v1.push((i, limit)),
                None => unenforced.push(Unenforced {
                    limit,
                    why: format!(
                        "not enforced: this host has no {controller} controller (neither on \
                         cgroup v2 nor on a v1 hierarchy)"
                    ),
                }),
            }
        }

        if let Some(base) = &found.v2 {
            let mut enabled = Vec::new();
            for (limit, controller) in on_v2 {
                match v2::enable(&base.dir, controller) {
                    Ok(()) => enabled.push(limit),
                    Err(why) => unenforced.push(Unenforced { limit, why }),
                }
            }
            // On a hybrid host whose v2 hierarchy holds none of the controllers, a v2 directory
            // would cost a migration (a grace period, at times) and buy nothing.
            if !enabled.is_empty() {
                cg.make(&base.dir, Version::V2, enabled, limits, &mut unenforced);
            }
        }
        for (i, base) in found.v1.iter().enumerate() {
            let here: Vec<&'static str> = on_v1
                .iter()
                .filter(|(at, _)| *at == i)
                .map(|(_, limit)| *limit)
                .collect();
            if !here.is_empty() {
                cg.make(&base.dir, Version::V1, here, limits, &mut unenforced);
            }
        }
        // In the order the report lists limits, whatever order the hierarchies came in.
        unenforced.sort_by_key(|u| {
            ["memory", "swap", "pids", "cpus"]
                .iter()
                .position(|l| *l == u.limit)
        });
        let cg = if cg.dirs.is_empty() { None } else { Some(cg) };
        (cg, unenforced)
    }

    /// Makes the run's directory below `base` and writes `wanted` limits into it.
    fn make(
        &mut self,
        base: &Path,
        version: Version,
        wanted: Vec<&'static str>,
        limits: &Limits,
        unenforced: &mut Vec<Unenforced>,
    ) {
        let path = base.join(&self.name);
        if let Err(e) = fs::create_dir(&path) {
            // A v2 directory no limit needed is a convenience: not having it is no news.
            for limit in wanted {
                let controller = controller_of(limit);
                let why = if dir::is_denied(&e) {
                    format!(
                        "no {controller} cgroup is writable by this user (rootless without \
                         delegation: {}: {})",
                        path.display(),
                        dir::describe(&e)
                    )
                } else {
                    format!(
                        "not enforced: making {}: {}",
                        path.display(),
                        dir::describe(&e)
                    )
                };
                unenforced.push(Unenforced { limit, why });
            }
            return;
        }
        let mut written = Vec::new();
        for limit in wanted {
            match write_limit(&path, version, limit, limits) {
                Ok(swap_excluded) => {
                    written.push(limit);
                    if limit == "memory" && !swap_excluded && host_has_swap() {
                        unenforced.push(Unenforced {
                            limit: "swap",
                            why: "not excluded: this kernel does no swap accounting for \
                                  cgroups, so the run may use swap beyond its memory limit"
                                .into(),
                        });
                    }
                }
                Err(e) => unenforced.push(Unenforced {
                    limit,
                    why: format!(
                        "not enforced: writing it in {}: {}",
                        path.display(),
                        dir::describe(&e)
                    ),
                }),
            }
        }
        self.dirs.push(Dir {
            path,
            version,
            limits: written,
        });
    }

    /// The cgroups' name, `labrun-<uid>-<token>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directories made, the v2 one first.
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// Moves a process (host pid) and its threads into every directory of the run. Works on
    /// a process just cloned that has not exec'd yet; a process already in (e.g. cloned with
    /// `CLONE_INTO_CGROUP`) is left where it is.
    pub fn add(&self, pid: i32) -> io::Result<()> {
        for d in &self.dirs {
            let procs = d.path.join("cgroup.procs");
            dir::write(&procs, &pid.to_string()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("adding {pid} to {}: {e}", procs.display()),
                )
            })?;
        }
        Ok(())
    }

    /// Every `cgroup.procs` to write a pid into (the v2 one first).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.path.join("cgroup.procs"))
            .collect()
    }

    /// The files a single-threaded process writes `0` into to join the v1 cgroups itself:
    /// `tasks`, which moves one thread and so skips the kernel's cgroup-wide threadgroup lock
    /// (taking it waits for an RCU grace period, milliseconds on a busy machine), where
    /// `cgroup.procs` takes it.
    pub fn v1_join_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|d| d.version == Version::V1)
            .map(|d| d.path.join("tasks"))
            .collect()
    }

    /// The v2 cgroup, to be born in (`clone3` with `CLONE_INTO_CGROUP`): no migration at all.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.version == Version::V2)
            .map(|d| d.path.as_path())
    }

    /// What the kernel counted since the cgroups were made.
    pub fn events(&self) -> Events {
        let mut ev = Events::default();
        for d in &self.dirs {
            if d.limits.contains(&"memory") {
                ev.oom_kills += match d.version {
                    Version::V1 => v1::oom_kills(&d.path),
                    Version::V2 => v2::oom_kills(&d.path),
                };
            }
            if d.limits.contains(&"pids") {
                // `max N` on v2 and, since kernel 4.3, on v1 too.
                ev.pids_max_hits += dir::read_counter(&d.path.join("pids.events"), "max");
            }
        }
        ev
    }

    /// Kills every process in the cgroups (v2 `cgroup.kill`, then SIGKILL to whatever the
    /// `cgroup.procs` files still list until they are empty) and removes the directories.
    /// Never fails: a cgroup already gone is fine, and one that will not go is left for
    /// [`sweep_stale`]. Drop calls it.
    pub fn destroy(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        let deadline = Instant::now() + dir::TEARDOWN;
        teardown(
            self.dirs.iter().map(|d| (d.path.as_path(), d.version)),
            deadline,
        );
        self.dirs.clear();
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.destroy();
        crate::trace::mark("cgroups removed");
    }
}

/// Kills what is in the directories and removes them.
fn teardown<'a>(dirs: impl Iterator<Item = (&'a Path, Version)>, deadline: Instant) {
    // Usually a removal comes when the run's processes are gone (the container's init is
    // waited for, and its exit waits for every process of its namespace) and nothing was made
    // below: the kernel refuses to remove a cgroup with a process in it or a cgroup below it,
    // so one attempt each settles those, and only the others are emptied first.
    let busy: Vec<(&Path, Version)> = dirs
        .filter(|(path, _)| match fs::remove_dir(path) {
            Ok(()) => false,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        })
        .collect();
    for (path, version) in &busy {
        if *version == Version::V2 {
            v2::kill_all(path);
        }
    }
    let paths: Vec<&Path> = busy.iter().map(|(p, _)| *p).collect();
    dir::kill_until_empty(&paths, deadline);
    for path in paths {
        let _ = dir::remove(path, deadline);
    }
}

/// Removes the cgroups named `labrun-<uid>-<token>` (below the cgroups this process is in)
/// whose token `is_alive` does not know, killing their processes first. The run-directory
/// sweeper calls it with the tokens of the runs still locked. Also removes empty
/// `labrun-supervisor-<pid>` cgroups left by a labrun that is gone.
pub fn sweep_stale(uid: u32, is_alive: impl Fn(&str) -> bool) {
    let found = Hierarchies::discover();
    let prefix = cgroup_name(uid, "");
    let deadline = Instant::now() + dir::TEARDOWN;
    let bases = found
        .v2
        .iter()
        .map(|b| (b, Version::V2))
        .chain(found.v1.iter().map(|b| (b, Version::V1)));
    for (base, version) in bases {
        let Ok(entries) = fs::read_dir(&base.dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(token) = name.strip_prefix(&prefix) {
                if valid_token(token) && !is_alive(token) {
                    teardown(std::iter::once((path.as_path(), version)), deadline);
                }
            } else if version == Version::V2 && name.starts_with(SUPERVISOR_PREFIX) {
                // Busy (and kept) while its labrun lives in it.
                let _ = fs::remove_dir(&path);
            }
        }
    }
}

/// Removes the cgroups a dead run recorded (`RunDir::record_cgroups`), wherever they are,
/// killing their processes first. Only a directory named for that run (`labrun-<uid>-<token>`)
/// on a cgroup filesystem is touched, whatever the record says.
pub fn sweep_recorded(uid: u32, token: &str, recorded: impl Iterator<Item = PathBuf>) {
    if !valid_token(token) {
        return;
    }
    let name = cgroup_name(uid, token);
    let deadline = Instant::now() + dir::TEARDOWN;
    for path in recorded {
        let named = path.is_absolute()
            && path.file_name().is_some_and(|n| n == name.as_str())
            && path
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        if !named {
            continue;
        }
        let version = match nix::sys::statfs::statfs(&path).map(|s| s.filesystem_type()) {
            Ok(nix::sys::statfs::CGROUP2_SUPER_MAGIC) => Version::V2,
            Ok(nix::sys::statfs::CGROUP_SUPER_MAGIC) => Version::V1,
            _ => continue,
        };
        teardown(std::iter::once((path.as_path(), version)), deadline);
    }
}

fn cgroup_name(uid: u32, token: &str) -> String {
    format!("labrun-{uid}-{token}")
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn asked(limits: &Limits, limit: &str) -> bool {
    match limit {
        "memory" => limits.memory.is_some(),
        "pids" => limits.pids.is_some(),
        "cpus" => limits.cpus.is_some(),
        _ => false,
    }
}

fn controller_of(limit: &str) -> &'static str {
    CONTROLLED
        .iter()
        .find(|(l, _)| *l == limit)
        .map_or("?", |(_, c)| c)
}

/// Writes one limit; for memory, says whether swap is excluded.
fn write_limit(path: &Path, version: Version, limit: &str, limits: &Limits) -> io::Result<bool> {
    match (limit, version) {
        ("memory", v) => {
            let bytes = limits.memory_with_disk().unwrap_or(u64::MAX);
            match v {
                Version::V1 => v1::set_memory(path, bytes),
                Version::V2 => v2::set_memory(path, bytes),
            }
        }
        ("pids", Version::V1) => v1::set_pids(path, limits.pids.unwrap_or(u64::MAX)).map(|()| true),
        ("pids", Version::V2) => v2::set_pids(path, limits.pids.unwrap_or(u64::MAX)).map(|()| true),
        ("cpus", v) => {
            let quota = cpu_quota(limits.cpus.unwrap_or(f64::MAX));
            match v {
                Version::V1 => v1::set_cpus(path, quota, CPU_PERIOD_US),
                Version::V2 => v2::set_cpus(path, quota, CPU_PERIOD_US),
            }
            .map(|()| true)
        }
        _ => Ok(true),
    }
}

/// The quota for `cpus` CPUs each period, at least the kernel's minimum.
fn cpu_quota(cpus: f64) -> u64 {
    let quota = (cpus * CPU_PERIOD_US as f64).round();
    if quota >= u64::MAX as f64 {
        u64::MAX
    } else {
        (quota as u64).max(CPU_MIN_QUOTA_US)
    }
}

/// Whether the host has swap at all (`/proc/swaps` lists a device or file).
fn host_has_swap() -> bool {
    fs::read_to_string("/proc/swaps").is_ok_and(|t| t.lines().count() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tokens() {
        assert_eq!(cgroup_name(1000, "ab12"), "labrun-1000-ab12");
        assert!(valid_token("0123abcd-x_y"));
        assert!(!valid_token(""));
        assert!(!valid_token("../x"));
        assert!(!valid_token("a b"));
    }

    /// A record names only what the sweep may remove: a directory named for the dead run, on
    /// a cgroup filesystem. Anything else it lists stays, however it got there.
    #[test]
    fn a_record_cannot_make_the_sweep_remove_other_directories() {
        let base = std::env::temp_dir().join(format!("labrun-record-{}", std::process::id()));
        let named = base.join(cgroup_name(7, "dead"));
        let other = base.join("labrun-7-alive");
        fs::create_dir_all(&named).unwrap();
        fs::create_dir_all(&other).unwrap();
        let recorded = [
            named.clone(),
            other.clone(),
            PathBuf::from("relative/labrun-7-dead"),
            base.join("x/../labrun-7-dead"),
        ];
        sweep_recorded(7, "dead", recorded.into_iter());
        assert!(named.exists(), "not on a cgroup filesystem: left alone");
        assert!(other.exists(), "another run's name: left alone");
        sweep_recorded(7, "../dead", std::iter::once(named.clone()));
        assert!(named.exists(), "not a token: nothing is done");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn cpu_quota_rounds_and_has_a_floor() {
        assert_eq!(cpu_quota(1.5), 150_000);
        assert_eq!(cpu_quota(0.001), CPU_MIN_QUOTA_US);
        assert_eq!(cpu_quota(2.0), 200_000);
    }
}
