//! Rlimits for the container's first process: the stand-ins for limits no cgroup enforces,
//! and the always-on `RLIMIT_CORE 0` (a crashing lab program leaves no core file behind).
//!
//! Rlimits are per process (or per uid), never per container, so they are a fallback only:
//!
//! - memory: `RLIMIT_DATA` = `memory`. It counts a process's private writable memory (heap,
//!   anonymous mappings, since Linux 4.7), so a process asking for more than the run's memory
//!   gets ENOMEM. `RLIMIT_AS` is not used: it counts address space merely reserved, which
//!   breaks runtimes that reserve much more than they use (Go, the JVM, sanitizers).
//! - pids: `RLIMIT_NPROC` = `pids`, only when the container's processes run as a uid no
//!   other process uses (a user namespace mapped onto a subordinate uid range), because the
//!   kernel counts every process of the real uid against it; otherwise it stays unenforced.
//! - cpus: no rlimit can stand in (`RLIMIT_CPU` caps CPU seconds, not a share).
//! - disk is the tmpfs size and needs no `RLIMIT_FSIZE`.
//!
//! Each rlimit is set to the same soft and hard value, so the lab cannot raise it again.
//! Nothing is ever raised above the current hard limit (labrun may lack CAP_SYS_RESOURCE):
//! a limit asked above it is clamped down to it and reported.

use nix::errno::Errno;

use super::{Limits, Unenforced, show_size};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    resource: Resource,
    name: &'static str,
    value: libc::rlim_t,
}

/// The rlimits to set in the container's first process before it execs anything. Built in
/// the parent; [`RlimitPlan::apply`] only makes system calls.
#[derive(Debug, Clone, PartialEq)]
pub struct RlimitPlan {
    entries: Vec<Entry>,
}

impl RlimitPlan {
    /// The plan for a run: `RLIMIT_CORE 0`, plus stand-ins for the limits `unenforced` (what
    /// [`super::RunCgroup::create`] returned) says no cgroup holds. `uid_is_private` says the
    /// container's processes run as a uid of their own (see the module docs). Returns the
    /// plan and the final list of what is not enforced as asked, for the report.
    pub fn fallback(
        limits: &Limits,
        unenforced: Vec<Unenforced>,
        uid_is_private: bool,
    ) -> (RlimitPlan, Vec<Unenforced>) {
        let mut entries = vec![Entry {
            resource: libc::RLIMIT_CORE,
            name: "RLIMIT_CORE",
            value: 0,
        }];
        let mut report = Vec::with_capacity(unenforced.len());
        for mut u in unenforced {
            match (u.limit, limits.memory, limits.pids) {
                ("memory", Some(bytes), _) => {
                    let (value, hard) = clamp(libc::RLIMIT_DATA, bytes);
                    entries.push(Entry {
                        resource: libc::RLIMIT_DATA,
                        name: "RLIMIT_DATA",
                        value,
                    });
                    u.why = match hard {
                        None => format!(
                            "{}; enforced per process with RLIMIT_DATA ({}) instead",
                            u.why,
                            show_size(value)
                        ),
                        Some(hard) => format!(
                            "{}; enforced per process with RLIMIT_DATA instead, at {} (this \
                             host's hard limit, below the {} asked)",
                            u.why,
                            show_size(hard),
                            show_size(bytes)
                        ),
                    };
                }
                ("pids", _, Some(n)) if uid_is_private => {
                    let (value, hard) = clamp(libc::RLIMIT_NPROC, n);
                    entries.push(Entry {
                        resource: libc::RLIMIT_NPROC,
                        name: "RLIMIT_NPROC",
                        value,
                    });
                    u.why = match hard {
                        None => format!(
                            "{}; enforced with RLIMIT_NPROC ({value}, counting the processes \
                             of the container's uid) instead",
                            u.why
                        ),
                        Some(hard) => format!(
                            "{}; enforced with RLIMIT_NPROC instead, at {hard} (this host's \
                             hard limit, below the {n} asked)",
                            u.why
                        ),
                    };
                }
                ("pids", _, Some(_)) => {
                    u.why = format!(
                        "{}; RLIMIT_NPROC cannot stand in: it counts every process of this \
                         user, not only the run's",
                        u.why
                    );
                }
                ("cpus", _, _) => {
                    u.why = format!(
                        "{}; no rlimit can stand in (RLIMIT_CPU caps CPU seconds, not a share)",
                        u.why
                    );
                }
                _ => {}
            }
            report.push(u);
        }
        (RlimitPlan { entries }, report)
    }

    /// Sets the rlimits in the calling process. Async-signal-safe: no allocation, no panic,
    /// only `setrlimit` calls, so it may run in a child cloned from a multi-threaded parent.
    /// Stops at the first failure and returns its errno.
    pub fn apply(&self) -> Result<(), Errno> {
        for e in &self.entries {
            let limit = libc::rlimit {
                rlim_cur: e.value,
                rlim_max: e.value,
            };
            // SAFETY: `limit` is a valid rlimit on the stack; setrlimit only reads it.
            if unsafe { libc::setrlimit(e.resource, &limit) } != 0 {
                return Err(Errno::last());
            }
        }
        Ok(())
    }

    /// The rlimits planned, by name (`RLIMIT_DATA`) with their value, for logs and tests.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        self.entries.iter().map(|e| (e.name, e.value)).collect()
    }
}

/// `asked`, or the current hard limit when that is lower (returned second).
fn clamp(resource: Resource, asked: u64) -> (libc::rlim_t, Option<u64>) {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid rlimit for getrlimit to fill.
    let hard = if unsafe { libc::getrlimit(resource, &mut current) } == 0 {
        current.rlim_max
    } else {
        libc::RLIM_INFINITY
    };
    if hard != libc::RLIM_INFINITY && asked > hard {
        (hard, Some(hard))
    } else {
        (asked, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unenforced(limit: &'static str) -> Unenforced {
        Unenforced {
            limit,
            why: "no cgroup".into(),
        }
    }

    #[test]
    fn stands_in_only_for_what_no_cgroup_holds() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(100),
            ..Limits::default()
        }
        .with_defaults();
        let (plan, report) = RlimitPlan::fallback(&limits, Vec::new(), false);
        assert_eq!(plan.entries(), vec![("RLIMIT_CORE", 0)]);
        assert!(report.is_empty());

        let (plan, report) = RlimitPlan::fallback(
            &limits,
            vec![unenforced("memory"), unenforced("pids"), unenforced("swap")],
            false,
        );
        assert_eq!(
            plan.entries(),
            vec![("RLIMIT_CORE", 0), ("RLIMIT_DATA", 64 << 20)]
        );
        assert_eq!(
            report[0].to_string(),
            "memory: no cgroup; enforced per process with RLIMIT_DATA (64 MiB) instead"
        );
        assert!(report[1].why.contains("RLIMIT_NPROC cannot stand in"));
        assert_eq!(report[2], unenforced("swap"));

        let (plan, _) = RlimitPlan::fallback(&limits, vec![unenforced("pids")], true);
        assert_eq!(
            plan.entries(),
            vec![("RLIMIT_CORE", 0), ("RLIMIT_NPROC", 100)]
        );
    }
}
