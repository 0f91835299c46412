//! The threat model's "Resources" cases: a fork bomb, a memory bomb, a full disk, a flood of
//! output, a cell that ignores SIGTERM, a daemon that tries to outlive the run, and programs
//! waiting for input. Each must end inside the run, say so in the report, and leave the next
//! cell (and the host) working.
//!
//! As root the run gets cgroups; rootless, on a machine that delegates none (as CI's), the
//! memory and pids limits fall back to rlimits or nothing, and the report must say which
//! limit it could not enforce: those tests assert the warnings instead, and the fork bomb is
//! not run at all (nothing would stop it but this user's own process limit).

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{
    Lab, Ran, Report, cgroups_of_run, is_root, labrun_bin, pids_with_arg, probe_notebook,
    run_dir_of, unique_sleep, wait_until,
};

fn transcript(id: &str, steps: &str) -> String {
    format!("```console | {{id: '{id}'}}\n{steps}```\n\n")
}

#[test]
fn a_fork_bomb_ends_at_the_pids_limit_and_the_host_still_forks() {
    let lab = Lab::new();
    if !is_root() {
        // Only the warning: a bomb would meet no limit of this run's own.
        lab.write(
            "nb.md",
            &probe_notebook("limits: { pids: 50 }", &[("p", "echo ok=1")]),
        );
        let (_, report) = lab.report("nb.md", &[]);
        report.assert_warning("limit not enforced as asked: pids");
        report.assert_status("p", "passed");
        return;
    }
    // The bomb's first call returns at once and its progeny live on in the background: the
    // cell waits two seconds so that the limit is hit while it is the current cell.
    let mut nb = probe_notebook(
        "limits: { pids: 50 }\ntimeout: 30s",
        &[("bomb", ":(){ :|:& };:\nsleep 2")],
    );
    // Builtins only: the bomb still holds every pid it can get until the run ends.
    nb += &transcript("after", "$ echo after-bomb\nafter-bomb\n");
    lab.write("nb.md", &nb);
    let mut child = lab.spawn(&["--format", "json", "nb.md"], &[]);
    let pid = child.id();
    let run = wait_until(10.0, || run_dir_of(pid).is_some()).then(|| run_dir_of(pid).unwrap());
    std::thread::sleep(Duration::from_millis(800));
    // The host forks while the bomb is at its limit.
    for _ in 0..20 {
        let ok = std::process::Command::new("true").status().unwrap();
        assert!(ok.success(), "the host could not fork during the bomb");
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let ran = Ran {
        status: status.code().unwrap_or(-1),
        stdout: out,
        stderr: err,
    };
    let report = Report::of(&ran);
    report.assert_note("bomb", "pids limit reached (50 processes)");
    report.assert_status("after", "passed");
    let run = run.expect("the run's directory was found");
    assert!(!run.exists(), "{} left behind", run.display());
    assert_eq!(cgroups_of_run(&run), Vec::<std::path::PathBuf>::new());
}

/// A cell that allocates and touches 300 MiB under `limits`, then a cell that must still run:
/// the allocation never succeeds, and the report says why.
fn memory_bomb(limits: &str) -> Report {
    let lab = Lab::new();
    let mut nb = probe_notebook(
        limits,
        &[(
            "bomb",
            "python3 -c \"b = b'x' * (300 << 20); print('allocated', len(b))\"",
        )],
    );
    nb += &transcript("after", "$ echo after-bomb\nafter-bomb\n");
    lab.write("nb.md", &nb);
    let (_, report) = lab.report("nb.md", &[]);
    assert!(
        !report.output("bomb").contains("allocated 314572800"),
        "300 MiB were allocated under a 64 MiB limit:\n{}",
        report.text
    );
    report.assert_status("after", "passed");
    report
}

#[test]
fn a_memory_bomb_is_killed_inside_and_the_next_cell_runs() {
    let report = memory_bomb("limits: { memory: 64MiB, disk: 32MiB }");
    if is_root() {
        report.assert_note("bomb", "out of memory (limit 64 MiB)");
    } else {
        // Per process with RLIMIT_DATA: the allocation fails (MemoryError), nobody is killed.
        report.assert_warning("limit not enforced as asked: memory");
    }
}

#[test]
fn a_memory_limit_alone_bounds_memory() {
    // The memory cgroup is given memory + disk (the tmpfs layer is charged to it); with no
    // disk limit written, the disk follows the memory (half of it), so `memory: 64MiB` alone
    // still bounds the run near 64 MiB, not 64 MiB plus a gigabyte.
    let report = memory_bomb("limits: { memory: 64MiB }");
    if is_root() {
        report.assert_note("bomb", "out of memory (limit 64 MiB)");
    }
}

/// The disk-filling notebook: `dd` into the writable layer (rootless, `/` of the `host`
/// image is not writable: `/tmp` is the same layer), then a cell that must still run.
fn disk_notebook(big: &str) -> String {
    let mut nb = probe_notebook(
        "limits: { disk: 32MiB }",
        &[(
            "fill",
            &format!("dd if=/dev/zero of={big} bs=1M count=100; echo dd_rc=$?"),
        )],
    );
    nb += &transcript(
        "after",
        &format!("$ rm {big} && echo after-fill\nafter-fill\n"),
    );
    nb
}

#[test]
fn a_full_disk_is_enospc_not_an_oom_kill() {
    let lab = Lab::new();
    let big = if is_root() { "/big" } else { "/tmp/big" };
    lab.write("nb.md", &disk_notebook(big));
    let (_, report) = lab.report("nb.md", &[]);
    let out = report.output("fill");
    assert!(out.contains("No space left on device"), "{}", report.text);
    assert_ne!(report.values("fill").get("dd_rc"), "0", "{}", report.text);
    report.assert_status("after", "passed");
    assert!(
        !report
            .notes("fill")
            .iter()
            .any(|n| n.contains("out of memory")),
        "a full disk became an OOM kill:\n{}",
        report.text
    );
    if is_root() {
        report.assert_note("fill", "disk full (limit 32 MiB)");
    }
}

/// Runs `nb.md` of `lab` as the unprivileged user `labtest` when we are root (None when there
/// is no such user), or directly when we are not.
fn run_rootless(lab: &Lab) -> Option<Report> {
    if !is_root() {
        return Some(lab.report("nb.md", &[]).1);
    }
    nix::unistd::User::from_name("labtest").ok().flatten()?;
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "cd '{}' && exec '{}' --format json nb.md",
        lab.dir.path().display(),
        labrun_bin().display()
    );
    let out = std::process::Command::new("su")
        .args(["-s", "/bin/sh", "labtest", "-c", &script])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Some(Report::of(&Ran::from(out)))
}

#[test]
fn a_full_disk_is_noted_rootless_too() {
    let lab = Lab::new();
    lab.write("nb.md", &disk_notebook("/tmp/big"));
    let Some(report) = run_rootless(&lab) else {
        eprintln!("skipped: root, and no user labtest to run as");
        return;
    };
    assert!(
        report.output("fill").contains("No space left on device"),
        "{}",
        report.text
    );
    report.assert_note("fill", "disk full (limit 32 MiB)");
}

/// Runs labrun to the end and returns its result with its peak resident memory in KiB.
/// (Reaped with `wait4` for its rusage, not with `Child::wait`.)
#[expect(clippy::zombie_processes, reason = "reaped by wait4 below")]
fn run_measured(lab: &Lab, args: &[&str]) -> (Ran, i64) {
    let mut child = lab.spawn(args, &[]);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to locals.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, child.id() as i32, "wait4");
    let ran = Ran {
        status: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (ran, usage.ru_maxrss)
}

#[test]
fn a_flood_of_output_is_cut_at_the_cap_with_memory_bounded() {
    let lab = Lab::new();
    let mut nb = probe_notebook(
        "limits: { output: 4KiB }",
        &[("flood", "yes | head -c 100000000")],
    );
    nb += &transcript("after", "$ echo after-flood\nafter-flood\n");
    lab.write("nb.md", &nb);
    let (ran, max_rss_kib) = run_measured(&lab, &["--format", "json", "nb.md"]);
    let report = Report::of(&ran);
    report.assert_note("flood", "[truncated");
    let kept = report.output("flood").len() as u64;
    assert!(kept <= 4096, "{kept} bytes kept:\n{}", report.text);
    assert_eq!(
        report.truncated_bytes("flood") + kept,
        100_000_000,
        "{}",
        report.text
    );
    report.assert_status("after", "passed");
    // 100 MB went through labrun; it kept 4 KiB of them and stayed small.
    assert!(
        max_rss_kib < 48 * 1024,
        "labrun's peak memory was {max_rss_kib} KiB for 100 MB of output"
    );
}

#[test]
fn a_cell_that_ignores_sigterm_is_killed_at_its_timeout() {
    let lab = Lab::new();
    let mut nb = String::from("---\nlabrun:\n  timeout: 1s\n---\n# Stubborn\n\n");
    nb += "```bash | {type: 'command', id: 'stubborn'}\ntrap '' TERM; sleep infinity\n```\n\n";
    nb += &transcript("after", "$ echo after-timeout\nafter-timeout\n");
    lab.write("nb.md", &nb);
    let start = Instant::now();
    let ran = lab.exec(&["nb.md"], &[]);
    let took = start.elapsed();
    ran.status(1)
        .stdout_has("FAIL  stubborn")
        .stdout_has("timeout after 1")
        .stdout_has("ok    after");
    assert!(took < Duration::from_secs(5), "the run took {took:?}");
}

#[test]
fn a_daemon_does_not_survive_the_run() {
    let lab = Lab::new();
    let daemon = unique_sleep(1_000_000);
    let stubborn = unique_sleep(1_000_000);
    lab.write(
        "nb.md",
        &probe_notebook(
            "",
            &[
                (
                    "daemon",
                    &format!(
                        "setsid nohup sleep {daemon} >/dev/null 2>&1 &
( trap '' TERM HUP INT; exec setsid nohup sleep {stubborn} ) >/dev/null 2>&1 &
disown -a"
                    ),
                ),
                ("wait", "sleep 1"),
            ],
        ),
    );
    let child = lab.spawn(&["--format", "json", "nb.md"], &[]);
    let started = wait_until(20.0, || {
        !pids_with_arg(&daemon).is_empty() && !pids_with_arg(&stubborn).is_empty()
    });
    let ran = Ran::from(child.wait_with_output().unwrap());
    assert!(started, "the daemons never ran:\n{}", ran.stdout);
    Report::of(&ran).assert_status("wait", "passed");
    // Gone when labrun is: the run ends with its PID namespace.
    assert_eq!(
        pids_with_arg(&daemon),
        Vec::<u32>::new(),
        "setsid nohup sleep"
    );
    assert_eq!(
        pids_with_arg(&stubborn),
        Vec::<u32>::new(),
        "SIGTERM ignored"
    );
}

#[test]
fn programs_waiting_for_input_end_at_eof() {
    let lab = Lab::new();
    let mut nb = String::from("---\nlabrun:\n  timeout: 5s\n---\n# Input\n\n");
    nb += &transcript(
        "stdin",
        "$ read x; echo \"read=$?\"
read=1
$ cat; echo \"cat=$?\"
cat=0
$ python3 -c 'import sys; print(repr(sys.stdin.read()))'
''
$ python3; echo \"python=$?\"
python=0
$ head -c 1; echo \"head=$?\"
head=0
",
    );
    nb += "```bash | {type: 'command', id: 'script'}\nread line || echo eof\n```\n\n```output\neof\n```\n";
    lab.write("nb.md", &nb);
    let start = Instant::now();
    let (ran, report) = lab.report("nb.md", &[]);
    report.assert_status("stdin", "passed");
    report.assert_status("script", "passed");
    assert_eq!(ran.status, 0, "{}", report.text);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn rootless_each_limit_not_enforced_is_named_and_rlimits_stand_in() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &probe_notebook(
            "limits: { memory: 64MiB, pids: 50, cpus: 1, disk: 32MiB, output: 4KiB }",
            &[("p", "echo data_kib=$(ulimit -d)")],
        ),
    );
    let Some(report) = run_rootless(&lab) else {
        eprintln!("skipped: root, and no user labtest to run as");
        return;
    };
    let unenforced: Vec<String> = report
        .warnings()
        .into_iter()
        .filter(|w| w.starts_with("limit not enforced as asked: "))
        .collect();
    let named = |limit: &str| {
        unenforced
            .iter()
            .any(|w| w.starts_with(&format!("limit not enforced as asked: {limit}:")))
    };
    // This machine delegates no cgroup to an unprivileged user; where one is delegated, the
    // limits hold and there is nothing to name.
    if !unenforced.is_empty() {
        assert!(named("memory"), "{}", report.text);
        assert!(named("pids"), "{}", report.text);
        assert!(named("cpus"), "{}", report.text);
        report.assert_warning("RLIMIT_DATA (64 MiB)");
        assert_eq!(
            report.values("p").get("data_kib"),
            "65536",
            "{}",
            report.text
        );
    }
    // The disk (a tmpfs of that size) and the output cap (labrun's own) hold anyway.
    assert!(!named("disk") && !named("output"), "{}", report.text);
    report.assert_status("p", "passed");
}
