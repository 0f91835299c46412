//! Resource limits of a container run: what a notebook asks for, and how it is enforced.
//!
//! A notebook's front matter `labrun.limits` map (`memory`, `pids`, `cpus`, `disk`, `output`)
//! becomes a [`Limits`]; [`Limits::with_defaults`] fills in what it leaves out. The runtime
//! then enforces it in two layers:
//!
//! 1. [`RunCgroup::create`] makes the run's cgroups and writes `memory`, `pids` and `cpus`
//!    into them. It returns what it could not enforce as [`Unenforced`] entries.
//! 2. [`RlimitPlan::fallback`] takes those entries and replaces what it can with rlimits
//!    (`RLIMIT_DATA` for memory, `RLIMIT_NPROC` for pids when the container has a uid of its
//!    own), adds the always-on `RLIMIT_CORE 0`, and returns the final list for the report.
//!    [`RlimitPlan::apply`] runs in the container's first process before it execs anything.
//!
//! ```text
//! let limits = Limits::from_map(&settings.limits)?.with_defaults();
//! let (cgroup, unenforced) = RunCgroup::create(run_token, &limits);   // after the run dir is locked
//! let (rlimits, unenforced) = RlimitPlan::fallback(&limits, unenforced, uid_is_private);
//! // clone the container's init; it writes itself into each of cgroup.procs_files() first;
//! // in the shells: rlimits.apply()  (async-signal-safe)
//! // after a cell: cgroup.events()  → "out of memory (limit 64 MiB)", "pids limit reached"
//! // at the end: drop(cgroup)  (kills what is left and removes the directories)
//! ```
//!
//! `disk` and `output` are not enforced here: `disk` is the size of the container's tmpfs
//! upper layer (which is why the memory cgroup gets `memory + disk`, see [`RunCgroup`]), and
//! `output` is labrun's cap on what it keeps of a command's output.

mod cgroup;
mod rlimit;

use std::collections::BTreeMap;
use std::fmt;

pub use cgroup::{RunCgroup, sweep_recorded, sweep_stale};
pub use rlimit::RlimitPlan;

/// A run's memory when the notebook sets none: 1 GiB.
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// A run's process count when the notebook sets none: 1024, plenty for a lab, few enough to
/// stop a fork bomb.
pub const DEFAULT_PIDS: u64 = 1024;
/// A run's writable disk (tmpfs upper layer) when the notebook sets none: 1 GiB.
pub const DEFAULT_DISK: u64 = 1 << 30;
/// What labrun keeps of one command's output when the notebook sets no `output` limit.
pub const DEFAULT_OUTPUT: u64 = crate::plan::DEFAULT_OUTPUT_CAP;

/// What a notebook asked for: the front matter's `limits:` map, parsed. `None` means the
/// notebook left that limit out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory the run's processes may use (not counting its disk).
    pub memory: Option<u64>,
    /// How many processes (threads included) the run may have at once.
    pub pids: Option<u64>,
    /// CPU time as a number of CPUs (`1.5` = 150 ms of CPU time each 100 ms).
    pub cpus: Option<f64>,
    /// Bytes of the container's writable disk.
    pub disk: Option<u64>,
    /// Bytes labrun keeps of one command's output.
    pub output: Option<u64>,
}

impl Limits {
    /// Reads the front matter's `limits:` map (values as written, e.g. `512MiB`, `64`, `1.5`).
    /// Errors name the limit: `labrun.limits.memory: invalid size 'x' (…)`.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for (key, text) in map {
            let fail = |why: String| format!("labrun.limits.{key}: {why}");
            let size = || match crate::units::parse_size(text) {
                Ok(0) => Err(fail("must be larger than zero".into())),
                Ok(n) => Ok(n),
                Err(e) => Err(fail(e)),
            };
            match key.as_str() {
                "memory" => limits.memory = Some(size()?),
                "disk" => limits.disk = Some(size()?),
                "output" => limits.output = Some(size()?),
                "pids" => match text.trim().parse::<u64>() {
                    Ok(n) if n > 0 => limits.pids = Some(n),
                    _ => return Err(fail(format!("'{text}' must be a whole number above zero"))),
                },
                "cpus" => match text.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() && n > 0.0 => limits.cpus = Some(n),
                    _ => return Err(fail(format!("'{text}' must be a number above zero"))),
                },
                _ => {
                    return Err(fail(
                        "unknown limit (known: memory, pids, disk, output, cpus)".into(),
                    ));
                }
            }
        }
        Ok(limits)
    }

    /// Fills in labrun's defaults for a container run where the notebook set nothing:
    /// memory [`DEFAULT_MEMORY`] (1 GiB), pids [`DEFAULT_PIDS`] (1024), disk
    /// half the memory, at most [`DEFAULT_DISK`] (1 GiB), output [`DEFAULT_OUTPUT`] (1 MiB). `cpus` stays unlimited:
    /// a lab is slower, not broken, when it shares the CPUs.
    ///
    /// The disk's default follows the memory limit: half of it, at most [`DEFAULT_DISK`]. Its
    /// pages are charged to the memory cgroup too (see [`Limits::memory_with_disk`]), so a
    /// notebook that asks for `memory: 64MiB` alone gets a run that holds about that much,
    /// not 64 MiB plus a gigabyte of disk.
    pub fn with_defaults(self) -> Limits {
        let memory = self.memory.unwrap_or(DEFAULT_MEMORY);
        Limits {
            memory: Some(memory),
            pids: self.pids.or(Some(DEFAULT_PIDS)),
            cpus: self.cpus,
            disk: self.disk.or(Some(DEFAULT_DISK.min(memory / 2))),
            output: self.output.or(Some(DEFAULT_OUTPUT)),
        }
    }

    /// What the memory cgroup is given: `memory + disk`, because the tmpfs that holds the
    /// run's disk is charged to the memory cgroup (see [`RunCgroup`]).
    pub fn memory_with_disk(&self) -> Option<u64> {
        self.memory
            .map(|m| m.saturating_add(self.disk.unwrap_or(0)))
    }
}

/// One limit that could not be enforced as asked, and why; the report shows it as
/// `limit: why`. `limit` is `memory`, `pids`, `cpus`, or `swap` (the memory limit holds, but
/// swap could not be excluded from it).
#[derive(Debug, Clone, PartialEq)]
pub struct Unenforced {
    pub limit: &'static str,
    pub why: String,
}

impl fmt::Display for Unenforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.limit, self.why)
    }
}

/// What the kernel counted in a run's cgroups since they were made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    /// Processes the OOM killer killed because the run reached its memory limit.
    pub oom_kills: u64,
    /// Forks (or clones) refused because the run reached its pids limit.
    pub pids_max_hits: u64,
}

use crate::units::show_size;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_limit() {
        let l = Limits::from_map(&map(&[
            ("memory", "512MiB"),
            ("pids", "64"),
            ("cpus", "1.5"),
            ("disk", "1GiB"),
            ("output", "4KiB"),
        ]))
        .unwrap();
        assert_eq!(
            l,
            Limits {
                memory: Some(512 << 20),
                pids: Some(64),
                cpus: Some(1.5),
                disk: Some(1 << 30),
                output: Some(4096),
            }
        );
        assert_eq!(l.memory_with_disk(), Some((512 << 20) + (1 << 30)));
    }

    #[test]
    fn errors_name_the_limit() {
        let e = |k: &str, v: &str| Limits::from_map(&map(&[(k, v)])).unwrap_err();
        assert!(
            e("memory", "x").starts_with("labrun.limits.memory: invalid size 'x'"),
            "{}",
            e("memory", "x")
        );
        assert_eq!(
            e("disk", "0"),
            "labrun.limits.disk: must be larger than zero"
        );
        assert_eq!(
            e("pids", "-3"),
            "labrun.limits.pids: '-3' must be a whole number above zero"
        );
        assert_eq!(
            e("pids", "0"),
            "labrun.limits.pids: '0' must be a whole number above zero"
        );
        assert_eq!(
            e("cpus", "NaN"),
            "labrun.limits.cpus: 'NaN' must be a number above zero"
        );
        assert!(e("swap", "1GiB").starts_with("labrun.limits.swap: unknown limit"));
    }

    #[test]
    fn defaults_fill_only_the_gaps() {
        let l = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        }
        .with_defaults();
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.pids, Some(1024));
        assert_eq!(l.disk, Some(32 << 20), "half the memory");
        assert_eq!(l.output, Some(1 << 20));
        assert_eq!(l.cpus, None);
    }
}
