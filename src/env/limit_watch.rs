//! Watching a run's limits: after each cell, what the kernel counted (out-of-memory kills,
//! forks refused at the pids limit) and whether the writable disk filled up, as plain notes
//! for the report ("out of memory (limit 64 MiB)", "pids limit reached", "disk full").

use std::sync::Arc;

use crate::limits::{Limits, RunCgroup};
use crate::units;

/// What was counted at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub oom_kills: u64,
    pub pids_max_hits: u64,
    /// Bytes still free on the writable layer, where it can be measured.
    pub disk_free: Option<u64>,
}

/// Below this much free space the disk counts as full.
const FULL: u64 = 64 * 1024;

pub struct LimitWatch {
    pub cgroup: Option<Arc<RunCgroup>>,
    pub limits: Limits,
    /// Bytes free on the writable disk, where the backend can tell.
    pub disk_free: Option<Box<dyn Fn() -> Option<u64> + Send + Sync>>,
}

impl LimitWatch {
    pub fn usage(&self) -> Usage {
        let events = self.cgroup.as_ref().map(|c| c.events()).unwrap_or_default();
        let disk_free = self.disk_free.as_ref().and_then(|f| f());
        Usage {
            oom_kills: events.oom_kills,
            pids_max_hits: events.pids_max_hits,
            disk_free,
        }
    }

    /// Notes for what happened between two readings.
    pub fn notes(&self, before: &Usage, after: &Usage) -> Vec<String> {
        let mut notes = Vec::new();
        if after.oom_kills > before.oom_kills {
            notes.push(match self.limits.memory {
                Some(m) => format!(
                    "out of memory (limit {}): a process was killed",
                    units::show_size(m)
                ),
                None => "out of memory: a process was killed".into(),
            });
        }
        if after.pids_max_hits > before.pids_max_hits {
            notes.push(match self.limits.pids {
                Some(p) => format!("pids limit reached ({p} processes): forks were refused"),
                None => "pids limit reached: forks were refused".into(),
            });
        }
        if let Some(free) = after.disk_free
            && free < FULL
            && before.disk_free.is_none_or(|b| b >= FULL)
        {
            notes.push(match self.limits.disk {
                Some(d) => format!("disk full (limit {})", units::show_size(d)),
                None => "disk full".into(),
            });
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_each_limit_hit() {
        let watch = LimitWatch {
            cgroup: None,
            limits: Limits {
                memory: Some(64 << 20),
                pids: Some(50),
                disk: Some(1 << 30),
                ..Limits::default()
            },
            disk_free: None,
        };
        let before = Usage {
            oom_kills: 0,
            pids_max_hits: 2,
            disk_free: Some(1 << 20),
        };
        let after = Usage {
            oom_kills: 1,
            pids_max_hits: 3,
            disk_free: Some(0),
        };
        let notes = watch.notes(&before, &after);
        assert_eq!(
            notes,
            [
                "out of memory (limit 64 MiB): a process was killed",
                "pids limit reached (50 processes): forks were refused",
                "disk full (limit 1 GiB)"
            ]
        );
        assert!(watch.notes(&after, &after).is_empty());
    }
}
