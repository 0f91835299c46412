//! cgroup v1 control files: a run's limits written into its directory in each v1 hierarchy,
//! and the memory controller's OOM kill count.
//!
//! v1 file names and rules (kernel `cgroup-v1/memory.rst`, `pids.rst`, `sched-bwc.rst`):
//! `memory.memsw.limit_in_bytes` (memory plus swap) must not be below
//! `memory.limit_in_bytes`, so the plain limit is written first; it exists only with swap
//! accounting on. Without it, `memory.swappiness` 0 keeps the cgroup's pages out of swap.

use std::io;
use std::path::Path;

use super::dir;

/// Limits the cgroup's memory to `bytes` and keeps swap out of it where the kernel allows.
/// Returns whether swap is excluded.
pub(super) fn set_memory(cg: &Path, bytes: u64) -> io::Result<bool> {
    let value = bytes.to_string();
    dir::write(&cg.join("memory.limit_in_bytes"), &value)?;
    if dir::write(&cg.join("memory.memsw.limit_in_bytes"), &value).is_ok() {
        return Ok(true);
    }
    Ok(dir::write(&cg.join("memory.swappiness"), "0").is_ok())
}

pub(super) fn set_pids(cg: &Path, max: u64) -> io::Result<()> {
    dir::write(&cg.join("pids.max"), &max.to_string())
}

/// CFS bandwidth: `quota` µs of CPU time each `period` µs.
pub(super) fn set_cpus(cg: &Path, quota: u64, period: u64) -> io::Result<()> {
    dir::write(&cg.join("cpu.cfs_period_us"), &period.to_string())?;
    dir::write(&cg.join("cpu.cfs_quota_us"), &quota.to_string())
}

/// Processes the OOM killer killed in this memory cgroup (`oom_kill`, kernel 4.13 and later).
pub(super) fn oom_kills(cg: &Path) -> u64 {
    dir::read_counter(&cg.join("memory.oom_control"), "oom_kill")
}
