//! cgroup v2 control files: handing controllers down to a run's cgroup, its limits, its
//! OOM kill count, and `cgroup.kill`.
//!
//! A v2 cgroup can give a controller to its children only through `cgroup.subtree_control`,
//! and a cgroup other than the root cannot do so while processes live in it (the "no
//! internal processes" rule, kernel `cgroup-v2.rst`). When labrun is alone in its cgroup (as
//! under `systemd-run --scope -p Delegate=yes labrun …`), it moves itself into a leaf
//! `labrun-supervisor-<pid>` below it, the way systemd-nspawn does, and retries; runs then
//! nest beside that leaf.

use std::fs;
use std::io;
use std::path::Path;

use super::dir;
use super::hierarchy::SUPERVISOR_PREFIX;

/// Makes `controller` available to the children of `base` (our cgroup). On failure, says
/// why, for the report.
pub(super) fn enable(base: &Path, controller: &str) -> Result<(), String> {
    let control = base.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control)
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == controller);
    if enabled {
        return Ok(());
    }
    let request = format!("+{controller}");
    match dir::write(&control, &request) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) if dir::is_denied(&e) => {
            return Err(format!(
                "no {controller} cgroup is writable by this user (rootless without delegation: {}: {})",
                control.display(),
                dir::describe(&e)
            ));
        }
        Err(e) => return Err(format!("{}: {}", control.display(), dir::describe(&e))),
    }
    move_self_aside(base)?;
    dir::write(&control, &request)
        .map_err(|e| format!("{}: {}", control.display(), dir::describe(&e)))
}

/// Moves this process out of `base` into a leaf of its own, if it is alone there.
fn move_self_aside(base: &Path) -> Result<(), String> {
    let me = std::process::id();
    let others = fs::read_to_string(base.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .any(|pid| pid != me);
    if others {
        return Err(format!(
            "the cgroup labrun runs in ({}) holds other processes too, so it cannot hand \
             controllers to a run's cgroup (cgroup v2 allows no processes beside child \
             cgroups); start labrun in a cgroup of its own, e.g. with systemd-run --scope -p \
             Delegate=yes",
            base.display()
        ));
    }
    let leaf = base.join(format!("{SUPERVISOR_PREFIX}{me}"));
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {}", leaf.display(), dir::describe(&e))),
    }
    dir::write(&leaf.join("cgroup.procs"), &me.to_string()).map_err(|e| {
        format!(
            "moving labrun into {}: {}",
            leaf.display(),
            dir::describe(&e)
        )
    })
}

/// Limits the cgroup's memory to `bytes` and its swap to none. Returns whether swap is
/// excluded (`memory.swap.max` is missing when the kernel does no swap accounting).
pub(super) fn set_memory(cg: &Path, bytes: u64) -> io::Result<bool> {
    dir::write(&cg.join("memory.max"), &bytes.to_string())?;
    Ok(dir::write(&cg.join("memory.swap.max"), "0").is_ok())
}

pub(super) fn set_pids(cg: &Path, max: u64) -> io::Result<()> {
    dir::write(&cg.join("pids.max"), &max.to_string())
}

/// CPU bandwidth: `quota` µs of CPU time each `period` µs.
pub(super) fn set_cpus(cg: &Path, quota: u64, period: u64) -> io::Result<()> {
    dir::write(&cg.join("cpu.max"), &format!("{quota} {period}"))
}

/// Processes the OOM killer killed in this cgroup (`memory.events`).
pub(super) fn oom_kills(cg: &Path) -> u64 {
    dir::read_counter(&cg.join("memory.events"), "oom_kill")
}

/// Kills everything in the cgroup and below at once (`cgroup.kill`, kernel 5.14 and later).
/// False when the kernel has no `cgroup.kill`.
pub(super) fn kill_all(cg: &Path) -> bool {
    dir::write(&cg.join("cgroup.kill"), "1").is_ok()
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::super::hierarchy::Hierarchies;
    use super::*;

    const TEST: &str =
        "limits::cgroup::v2::tests::enabling_a_controller_moves_labrun_aside_when_alone";
    /// Set in the re-run test process: the cgroup it was started in, and what it must see.
    const AT_ENV: &str = "LABRUN_TEST_V2_AT";
    const EXPECT_ENV: &str = "LABRUN_TEST_V2_EXPECT";

    /// A test cgroup, emptied and removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let deadline = Instant::now() + Duration::from_secs(5);
            dir::kill_until_empty(&[&self.0], deadline);
            let _ = dir::remove(&self.0, deadline);
        }
    }

    /// Runs this test again, started inside `cg`, expecting `expect` there.
    fn rerun_inside(cg: &Path, expect: &str) {
        let procs = CString::new(
            cg.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", TEST, "--test-threads=1"])
            .env(AT_ENV, cg)
            .env(EXPECT_ENV, expect);
        unsafe {
            cmd.pre_exec(move || {
                // Moves this (still single-threaded) child into the cgroup: "0" means "me".
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "inside {}: {stdout}\n{}",
            cg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The re-run side: we are the only process of `at` (or not, for "busy").
    fn inside(at: &Path, expect: &str) {
        let found = Hierarchies::discover();
        let base = found.v2.expect("a v2 hierarchy");
        assert_eq!(base.dir, at, "nested where this process is");
        let controller = base.controllers.first().expect("a controller offered");
        let result = enable(at, controller);
        let me = std::process::id();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let leaf = format!("{SUPERVISOR_PREFIX}{me}\n");
        match expect {
            "alone" => {
                result.unwrap();
                assert!(own.ends_with(&leaf), "moved aside: {own}");
                let subtree = fs::read_to_string(at.join("cgroup.subtree_control")).unwrap();
                assert!(subtree.split_whitespace().any(|c| c == controller));
                // Runs still nest in `at`, not in the supervisor leaf.
                assert_eq!(Hierarchies::discover().v2.unwrap().dir, at);
            }
            _ => {
                let why = result.unwrap_err();
                assert!(why.contains("holds other processes too"), "{why}");
                assert!(!own.ends_with(&leaf), "not moved: {own}");
            }
        }
    }

    /// cgroup v2's no-internal-processes rule: a cgroup with processes in it cannot hand
    /// controllers to children. Alone in its cgroup, labrun moves itself into a leaf and
    /// succeeds; with another process there, it says why it cannot. Tried with whatever
    /// controller the host offers on v2 (hugetlb on a hybrid host).
    #[test]
    fn enabling_a_controller_moves_labrun_aside_when_alone() {
        if let (Ok(at), Ok(expect)) = (std::env::var(AT_ENV), std::env::var(EXPECT_ENV)) {
            inside(Path::new(&at), &expect);
            return;
        }
        let found = Hierarchies::discover();
        let Some(base) = found.v2 else {
            eprintln!("no cgroup v2 hierarchy on this host: nothing to try");
            return;
        };
        let Some(controller) = base.controllers.first().cloned() else {
            eprintln!("{}: no controller offered on cgroup v2", base.dir.display());
            return;
        };
        let control = base.dir.join("cgroup.subtree_control");
        let was_enabled = fs::read_to_string(&control)
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == controller);
        if !nix::unistd::geteuid().is_root() {
            if !was_enabled {
                let why = enable(&base.dir, &controller).unwrap_err();
                assert!(why.contains("rootless without delegation"), "{why}");
            }
            return;
        }
        if let Err(why) = enable(&base.dir, &controller) {
            eprintln!("{controller} cannot be handed down here: {why}");
            return;
        }
        let pid = std::process::id();
        let alone = Scratch(base.dir.join(format!("labrun-test-v2-alone-{pid}")));
        fs::create_dir(&alone.0).unwrap();
        rerun_inside(&alone.0, "alone");

        let busy = Scratch(base.dir.join(format!("labrun-test-v2-busy-{pid}")));
        fs::create_dir(&busy.0).unwrap();
        let mut other = Command::new("sleep").arg("60").spawn().unwrap();
        dir::write(&busy.0.join("cgroup.procs"), &other.id().to_string()).unwrap();
        rerun_inside(&busy.0, "busy");
        let _ = other.kill();
        let _ = other.wait();

        drop((alone, busy));
        if !was_enabled {
            let _ = dir::write(&control, &format!("-{controller}"));
        }
    }
}
