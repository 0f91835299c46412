//! Resource limits on this machine's kernel: real cgroups with real processes in them (as
//! root), and the rlimit fallback (as anyone). Run as an unprivileged user, the cgroup tests
//! check the fallback instead; run as root, one of them also runs itself as `nobody`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use labrun::limits::{Limits, RlimitPlan, RunCgroup, Unenforced, sweep_stale};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

const MIB: u64 = 1 << 20;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A token no other test (or test run) uses.
fn token(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test-{tag}-{}-{nanos}", std::process::id())
}

/// Without a writable cgroup, `create` makes nothing and names every limit it was asked.
fn assert_fallback(limits: &Limits, names: &[&str]) -> Vec<Unenforced> {
    let (cg, unenforced) = RunCgroup::create(&token("fallback"), limits);
    assert!(cg.is_none(), "a cgroup was made without privileges: {cg:?}");
    for name in names {
        let u = unenforced
            .iter()
            .find(|u| u.limit == *name)
            .unwrap_or_else(|| panic!("{name} not reported as unenforced: {unenforced:?}"));
        assert!(
            u.why.contains("rootless") || u.why.contains("no "),
            "unclear reason: {u}"
        );
    }
    unenforced
}

fn create(tag: &str, limits: &Limits) -> RunCgroup {
    let (cg, unenforced) = RunCgroup::create(&token(tag), limits);
    let cg = cg.unwrap_or_else(|| panic!("no cgroup as root: {unenforced:?}"));
    assert!(
        unenforced.is_empty(),
        "not enforced as root: {unenforced:?}"
    );
    cg
}

/// A forked child that waits for `release` (so that it can be put in a cgroup first), then
/// runs `body` (raw system calls only: the parent is multi-threaded) and exits with its
/// result. Killed and reaped on drop if the test did not wait for it.
struct Child {
    pid: Pid,
    gate: libc::c_int,
    reaped: bool,
}

impl Child {
    fn fork(body: fn() -> i32) -> Child {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        match unsafe { libc::fork() } {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => unsafe {
                libc::close(fds[1]);
                let mut byte = 0u8;
                if libc::read(fds[0], (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(254);
                }
                libc::_exit(body());
            },
            pid => {
                unsafe { libc::close(fds[0]) };
                Child {
                    pid: Pid::from_raw(pid),
                    gate: fds[1],
                    reaped: false,
                }
            }
        }
    }

    fn release(&self) {
        assert_eq!(
            unsafe { libc::write(self.gate, b"go".as_ptr().cast(), 1) },
            1
        );
    }

    fn wait(&mut self) -> WaitStatus {
        let status = waitpid(self.pid, None).unwrap();
        self.reaped = true;
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.gate >= 0 {
            unsafe { libc::close(self.gate) };
        }
        if !self.reaped {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Forks 50 times, each child sleeping for ever; exits with the number of forks that worked
/// (255 when one failed with anything but EAGAIN).
fn fork_fifty() -> i32 {
    let mut forked = 0;
    for _ in 0..50 {
        match unsafe { libc::fork() } {
            0 => loop {
                unsafe { libc::pause() };
            },
            -1 => {
                if nix::errno::Errno::last() != nix::errno::Errno::EAGAIN {
                    return 255;
                }
            }
            _ => forked += 1,
        }
    }
    forked
}

/// Maps 200 MiB and writes to every page; exits 0 if it lived through it, 2 if the mapping
/// was refused.
fn touch_200_mib() -> i32 {
    let len = (200 * MIB) as usize;
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return 2;
    }
    let mut at = 0;
    while at < len {
        unsafe { p.cast::<u8>().add(at).write_volatile(1) };
        at += 4096;
    }
    0
}

fn sleep_for_ever() -> i32 {
    loop {
        unsafe { libc::pause() };
    }
}

/// Spins on the CPU for half a second of wall-clock time.
fn spin_half_a_second() -> i32 {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    0
}

#[test]
fn the_pids_limit_refuses_forks_and_is_counted() {
    let limits = Limits {
        pids: Some(20),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["pids"]);
        return;
    }
    let cg = create("pids", &limits);
    let mut child = Child::fork(fork_fifty);
    cg.add(child.pid.as_raw()).unwrap();
    child.release();
    let forked = match child.wait() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("the forking child ended with {other:?}"),
    };
    assert_ne!(forked, 255, "a fork failed with something else than EAGAIN");
    // The child itself is one of the 20.
    assert!(
        (1..=19).contains(&forked),
        "{forked} forks worked under pids 20"
    );
    let hits = cg.events().pids_max_hits;
    assert!(hits > 0, "no pids.events max counted");
    assert_eq!(
        hits,
        50 - forked as u64,
        "each refused fork is counted once"
    );
    assert_eq!(cg.events().oom_kills, 0);
}

#[test]
fn the_memory_limit_oom_kills_and_is_counted() {
    let limits = Limits {
        memory: Some(32 * MIB),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["memory"]);
        return;
    }
    let cg = create("oom", &limits);
    let mut child = Child::fork(touch_200_mib);
    cg.add(child.pid.as_raw()).unwrap();
    child.release();
    assert_eq!(
        child.wait(),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    assert!(cg.events().oom_kills >= 1, "{:?}", cg.events());
    assert_eq!(cg.events().pids_max_hits, 0);
}

/// The first file of `names` found in one of the run's directories.
fn read_control(cg: &RunCgroup, names: &[&str]) -> Option<(String, String)> {
    cg.paths().iter().find_map(|dir| {
        names.iter().find_map(|n| {
            std::fs::read_to_string(dir.join(n))
                .ok()
                .map(|v| (n.to_string(), v.trim().to_string()))
        })
    })
}

#[test]
fn the_memory_cgroup_gets_memory_plus_disk_and_no_swap() {
    let limits = Limits {
        memory: Some(32 * MIB),
        disk: Some(16 * MIB),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["memory"]);
        return;
    }
    let cg = create("memdisk", &limits);
    let want = (48 * MIB).to_string();
    let (file, value) =
        read_control(&cg, &["memory.limit_in_bytes", "memory.max"]).expect("a memory limit file");
    assert_eq!(value, want, "{file}");
    match read_control(&cg, &["memory.memsw.limit_in_bytes", "memory.swap.max"]) {
        Some((file, value)) if file == "memory.swap.max" => assert_eq!(value, "0"),
        Some((file, value)) => assert_eq!(value, want, "{file}"),
        None => assert_eq!(
            read_control(&cg, &["memory.swappiness"]).map(|(_, v)| v),
            Some("0".into())
        ),
    }
}

#[test]
fn the_cpus_limit_throttles_a_busy_process() {
    let limits = Limits {
        cpus: Some(0.25),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["cpus"]);
        return;
    }
    let cg = create("cpus", &limits);
    let (file, value) =
        read_control(&cg, &["cpu.cfs_quota_us", "cpu.max"]).expect("a cpu limit file");
    match file.as_str() {
        "cpu.max" => assert_eq!(value, "25000 100000"),
        _ => assert_eq!(value, "25000"),
    }
    let mut child = Child::fork(spin_half_a_second);
    cg.add(child.pid.as_raw()).unwrap();
    child.release();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::wait4(child.pid.as_raw(), &mut status, 0, &mut usage) },
        child.pid.as_raw()
    );
    child.reaped = true;
    let cpu = Duration::from_micros(
        (usage.ru_utime.tv_sec * 1_000_000
            + usage.ru_utime.tv_usec
            + usage.ru_stime.tv_sec * 1_000_000
            + usage.ru_stime.tv_usec) as u64,
    );
    // A quarter of a CPU for half a second is 125 ms; unthrottled it would be 500 ms.
    assert!(
        cpu < Duration::from_millis(300),
        "the child used {cpu:?} of CPU in 500 ms under cpus 0.25"
    );
}

#[test]
fn destroy_kills_what_is_inside_and_removes_the_directories() {
    let limits = Limits {
        memory: Some(64 * MIB),
        pids: Some(10),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["memory", "pids"]);
        return;
    }
    let mut cg = create("destroy", &limits);
    let paths: Vec<PathBuf> = cg.paths().iter().map(|p| p.to_path_buf()).collect();
    assert!(paths.len() >= 2, "memory and pids cgroups: {paths:?}");
    for p in &paths {
        assert!(p.is_dir());
        assert!(
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("labrun-{}-test-destroy-", nix::unistd::getuid())),
            "{}",
            p.display()
        );
    }
    let procs = cg.procs_files();
    assert_eq!(procs.len(), paths.len());
    let mut child = Child::fork(sleep_for_ever);
    cg.add(child.pid.as_raw()).unwrap();
    // Adding twice is harmless (what a runtime using CLONE_INTO_CGROUP does).
    cg.add(child.pid.as_raw()).unwrap();
    for file in &procs {
        let listed = std::fs::read_to_string(file).unwrap();
        assert!(
            listed.lines().any(|l| l == child.pid.to_string()),
            "{} lists {listed:?}",
            file.display()
        );
    }
    cg.destroy();
    assert_eq!(
        child.wait(),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    for p in &paths {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    assert!(cg.paths().is_empty());
    cg.destroy(); // and again: nothing to do, no failure
    drop(cg);
}

#[test]
fn a_run_with_no_limits_makes_no_cgroup() {
    // Nothing to enforce: no directory to make, no migration to pay for, nothing to remove.
    let (cg, unenforced) = RunCgroup::create(&token("none"), &Limits::default());
    assert!(unenforced.is_empty(), "nothing asked, nothing unenforced");
    assert!(cg.is_none());
}

#[test]
fn sweep_removes_the_cgroups_of_dead_runs_only() {
    let limits = Limits {
        pids: Some(10),
        ..Limits::default()
    };
    if !is_root() {
        assert_fallback(&limits, &["pids"]);
        // Sweeping what this user cannot touch does nothing and does not fail.
        sweep_stale(nix::unistd::getuid().as_raw(), |_| false);
        return;
    }
    let uid = nix::unistd::getuid().as_raw();
    let dead_token = token("sweep-dead");
    let (dead, _) = RunCgroup::create(&dead_token, &limits);
    let alive = create("sweep-alive", &limits);
    let dead = dead.expect("cgroup");
    let dead_paths: Vec<PathBuf> = dead.paths().iter().map(|p| p.to_path_buf()).collect();
    let mut child = Child::fork(sleep_for_ever);
    dead.add(child.pid.as_raw()).unwrap();

    // Other tests' cgroups are alive too: only the dead token is stale.
    sweep_stale(uid, |t| t != dead_token);

    assert_eq!(
        child.wait(),
        WaitStatus::Signaled(child.pid, Signal::SIGKILL, false)
    );
    for p in &dead_paths {
        assert!(!p.exists(), "{} survived the sweep", p.display());
    }
    for p in alive.paths() {
        assert!(p.is_dir(), "{} was swept while alive", p.display());
    }
    drop(dead); // already gone: no failure
}

/// As root: runs `test` from a copy of this test binary as `nobody`, which must take the
/// fallback path; returns whether it passed.
fn run_as_nobody(test: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("limits-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["--exact", test, "--test-threads=1"])
        .current_dir("/")
        .env_clear();
    unsafe {
        cmd.pre_exec(|| {
            let nobody = 65534;
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(nobody) != 0
                || libc::setuid(nobody) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Children other tests fork (without exec) may hold the copy's write descriptor open for
    // a moment: exec fails with ETXTBSY until they are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "as nobody: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unprivileged_user_falls_back_to_rlimits() {
    if is_root() {
        run_as_nobody("an_unprivileged_user_falls_back_to_rlimits");
        return;
    }
    let limits = Limits {
        cpus: Some(1.0),
        ..Limits::default()
    }
    .with_defaults();
    let unenforced = assert_fallback(&limits, &["memory", "pids", "cpus"]);
    let (plan, report) = RlimitPlan::fallback(&limits, unenforced, false);
    assert!(plan.entries().contains(&("RLIMIT_DATA", 1 << 30)));
    assert!(plan.entries().contains(&("RLIMIT_CORE", 0)));
    let memory = report.iter().find(|u| u.limit == "memory").unwrap();
    assert!(
        memory.why.contains("RLIMIT_DATA"),
        "{memory}: says what stands in"
    );
    let cpus = report.iter().find(|u| u.limit == "cpus").unwrap();
    assert!(cpus.why.contains("no rlimit"), "{cpus}");
}

#[test]
fn the_rlimit_fallback_holds_in_a_forked_child() {
    let limits = Limits {
        memory: Some(64 * MIB),
        ..Limits::default()
    };
    let no_cgroup = vec![Unenforced {
        limit: "memory",
        why: "no memory cgroup (test)".into(),
    }];
    let (plan, _) = RlimitPlan::fallback(&limits, no_cgroup, false);
    // `apply` runs between fork and the child's work, as it will between clone and exec.
    static PLAN: std::sync::OnceLock<RlimitPlan> = std::sync::OnceLock::new();
    let _ = PLAN.set(plan);
    fn child() -> i32 {
        let Some(plan) = PLAN.get() else { return 10 };
        if plan.apply().is_err() {
            return 11;
        }
        let mut core = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) };
        if core.rlim_cur != 0 || core.rlim_max != 0 {
            return 12;
        }
        touch_200_mib()
    }
    let mut c = Child::fork(child);
    c.release();
    // 2: the 200 MiB mapping was refused under RLIMIT_DATA 64 MiB.
    assert_eq!(c.wait(), WaitStatus::Exited(c.pid, 2));
}

const HARD_DATA_ENV: &str = "LABRUN_TEST_LOWERED_HARD_DATA";

#[test]
fn rlimits_are_clamped_down_to_the_hard_limit_never_raised() {
    let Ok(hard) = std::env::var(HARD_DATA_ENV) else {
        // Run again with a hard RLIMIT_DATA of 512 MiB (lowering needs no privilege).
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "rlimits_are_clamped_down_to_the_hard_limit_never_raised",
            "--test-threads=1",
        ])
        .env(HARD_DATA_ENV, (512 * MIB).to_string());
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 512 * MIB,
                    rlim_max: 512 * MIB,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    let hard: u64 = hard.parse().unwrap();
    let limits = Limits {
        memory: Some(2 * hard),
        ..Limits::default()
    };
    let no_cgroup = vec![Unenforced {
        limit: "memory",
        why: "no memory cgroup (test)".into(),
    }];
    let (plan, report) = RlimitPlan::fallback(&limits, no_cgroup, false);
    assert!(plan.entries().contains(&("RLIMIT_DATA", hard)));
    assert!(
        report[0].why.contains("hard limit") && report[0].why.contains("512 MiB"),
        "{}",
        report[0]
    );
    // Applying it works without CAP_SYS_RESOURCE (it raises nothing).
    plan.apply().unwrap();
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut now) };
    assert_eq!((now.rlim_cur, now.rlim_max), (hard, hard));
}

#[test]
fn limits_from_the_front_matter_map() {
    let map: BTreeMap<String, String> = [("memory", "64MiB"), ("pids", "20")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let l = Limits::from_map(&map).unwrap().with_defaults();
    assert_eq!(l.memory, Some(64 * MIB));
    assert_eq!(l.pids, Some(20));
    // The disk follows the memory: half of it when the notebook sets none.
    assert_eq!(l.disk, Some(32 * MIB));
    assert_eq!(Limits::default().with_defaults().disk, Some(512 * MIB));
    let bad: BTreeMap<String, String> = [("memory".to_string(), "lots".to_string())].into();
    assert!(
        Limits::from_map(&bad)
            .unwrap_err()
            .starts_with("labrun.limits.memory: invalid size 'lots'")
    );
}
