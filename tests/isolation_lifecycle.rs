//! The threat model's "Lifecycle" cases: Ctrl-C and `kill -9` mid-cell, two runs of one
//! notebook at once (and one of them killed), and a reader that closes the pipe. After each,
//! the host is searched for what the run could leave: processes (by a unique `sleep`
//! argument), mounts, cgroups (`labrun-<uid>-<token>`) and run directories
//! (`.../labrun-<uid>/run-<token>`), the run being identified by the lock it holds.
//!
//! Other tests start and end runs in parallel, so nothing here counts all runs: each test
//! follows its own.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Instant;

use common::{
    Lab, Ran, Report, cgroups_of_run, host_mountinfo, is_root, labrun_mount_changes, pids_with_arg,
    probe_notebook, run_dir_of, unique, unique_sleep, wait_until,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// A run in progress: labrun, its run directory and cgroups, the unique arguments of the
/// sleepers it started (one in the foreground, one `setsid nohup` daemon).
struct Live {
    child: Child,
    run: PathBuf,
    cgroups: Vec<PathBuf>,
    sleepers: Vec<String>,
}

/// A notebook whose one cell starts a daemon and sleeps in the foreground.
fn sleeper_lab() -> (Lab, Vec<String>) {
    let lab = Lab::new();
    let daemon = unique_sleep(1_000_000);
    let nap = unique_sleep(1000);
    lab.write(
        "nb.md",
        &probe_notebook(
            // Limits, so that the run has cgroups of each kind to leave behind (as root).
            "limits: { memory: 256MiB, pids: 100 }",
            &[(
                "p",
                &format!("setsid nohup sleep {daemon} >/dev/null 2>&1 &\nsleep {nap}"),
            )],
        ),
    );
    (lab, vec![daemon, nap])
}

/// Waits until every sleeper runs, and finds the run's directory and cgroups.
fn follow(child: Child, sleepers: Vec<String>) -> Live {
    let pid = child.id();
    let started = wait_until(20.0, || {
        sleepers.iter().all(|s| !pids_with_arg(s).is_empty())
    });
    assert!(started, "the cell never started its sleepers");
    let run = run_dir_of(pid).expect("labrun holds a run directory");
    let cgroups = cgroups_of_run(&run);
    if is_root() {
        // The sweep of leftovers below means something only if there was something.
        assert!(!cgroups.is_empty(), "no cgroup found for {}", run.display());
    }
    Live {
        child,
        run,
        cgroups,
        sleepers,
    }
}

/// Waits for labrun to end, at most `secs`.
fn wait_exit(child: &mut Child, secs: f64) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(secs, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

/// Like [`assert_nothing_left`], after giving a concurrent sweep up to two seconds to end:
/// another labrun starting at the same moment may hold the dead run's lock while it removes
/// the run's directory (so this one sees the run alive and leaves it to that sweeper), and
/// that sweeper removes its cgroups right after.
fn assert_swept(live: &Live, what: &str) {
    wait_until(2.0, || {
        !live.run.exists() && live.cgroups.iter().all(|c| !c.exists())
    });
    assert_nothing_left(live, what);
}

fn assert_nothing_left(live: &Live, what: &str) {
    for s in &live.sleepers {
        assert_eq!(
            pids_with_arg(s),
            Vec::<u32>::new(),
            "{what}: `sleep {s}` survived"
        );
    }
    assert!(
        !live.run.exists(),
        "{what}: run directory {} left",
        live.run.display()
    );
    for cg in &live.cgroups {
        assert!(
            !cg.exists(),
            "{what}: cgroup {} left, holding [{}]",
            cg.display(),
            std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default()
        );
    }
    assert_eq!(cgroups_of_run(&live.run), Vec::<PathBuf>::new(), "{what}");
}

fn interrupt_mid_cell(whole_group: bool) {
    let (lab, sleepers) = sleeper_lab();
    let before = host_mountinfo();
    // Its own process group, as a terminal's foreground job is.
    let child = lab
        .command(&["nb.md"], &[])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut live = follow(child, sleepers);
    let pid = Pid::from_raw(live.child.id() as i32);
    if whole_group {
        // What Ctrl-C on a terminal does.
        killpg(pid, Signal::SIGINT).unwrap();
    } else {
        kill(pid, Signal::SIGINT).unwrap();
    }
    let status = wait_exit(&mut live.child, 20.0).expect("labrun ended after SIGINT");
    let mut out = String::new();
    live.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    live.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "exit status\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert_nothing_left(&live, "after Ctrl-C");
    let changed = labrun_mount_changes(&before, &host_mountinfo(), &[lab.dir.path()]);
    assert!(changed.is_empty(), "mounts left: {changed:#?}");
}

#[test]
fn sigint_mid_cell_exits_130_and_leaves_nothing() {
    interrupt_mid_cell(false);
}

#[test]
fn ctrl_c_to_the_whole_group_mid_cell_exits_130_and_leaves_nothing() {
    // What a terminal does: SIGINT to every process of the foreground group, labrun's init
    // among them. The race is lost once in four to ten runs here: try a few times.
    for _ in 0..10 {
        interrupt_mid_cell(true);
    }
}

#[test]
fn kill_9_takes_the_container_along_and_the_next_start_sweeps() {
    let (lab, sleepers) = sleeper_lab();
    let before = host_mountinfo();
    let mut live = follow(lab.spawn(&["nb.md"], &[]), sleepers);
    live.child.kill().unwrap();
    let killed = Instant::now();
    live.child.wait().unwrap();
    // The parent-death signal takes init, and the PID namespace takes everything with it.
    let gone = wait_until(2.0, || {
        live.sleepers.iter().all(|s| pids_with_arg(s).is_empty())
    });
    assert!(gone, "the container outlived labrun by 2 s");
    eprintln!("container gone {:?} after kill -9", killed.elapsed());

    // The next labrun (any: here, a run of another notebook) sweeps the dead run's state.
    let next = Lab::new();
    next.write("nb.md", &probe_notebook("", &[("p", "echo next=1")]));
    let (_, report) = next.report("nb.md", &[]);
    report.assert_status("p", "passed");
    assert_swept(&live, "after kill -9 and the next start");
    let changed = labrun_mount_changes(&before, &host_mountinfo(), &[lab.dir.path()]);
    assert!(changed.is_empty(), "mounts left: {changed:#?}");
}

/// The cgroup directory of this process on the hierarchy that holds the memory controller (a
/// v1 one, else cgroup v2).
fn own_memory_cgroup() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        if controllers.is_some_and(|c| c.split(',').any(|c| c == "memory")) {
            let path = path.unwrap_or_default().trim_start_matches('/');
            return PathBuf::from("/sys/fs/cgroup/memory").join(path);
        }
    }
    let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

#[test]
fn a_killed_runs_cgroups_are_swept_by_a_labrun_in_another_cgroup() {
    // Another login or batch job: the killed labrun ran in a cgroup the next one is not in,
    // so its run's cgroups are not below the next one's. Rootless runs here have no cgroups.
    if !is_root() {
        return;
    }
    let elsewhere = own_memory_cgroup().join(unique("labrun-test-elsewhere"));
    std::fs::create_dir(&elsewhere).unwrap();
    let join = std::ffi::CString::new(
        elsewhere
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let (lab, sleepers) = sleeper_lab();
    let mut cmd = lab.command(&["nb.md"], &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only open, write and close between fork and exec, on memory prepared before.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(join.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut live = follow(cmd.spawn().unwrap(), sleepers);
    // Named here rather than searched for: `elsewhere` may lie deeper than the search goes.
    let token = live.run.file_name().unwrap().to_str().unwrap();
    let memory = elsewhere.join(format!(
        "labrun-{}-{}",
        nix::unistd::getuid(),
        token.trim_start_matches("run-")
    ));
    assert!(
        memory.is_dir(),
        "the run's memory cgroup {}",
        memory.display()
    );
    if !live.cgroups.contains(&memory) {
        live.cgroups.push(memory);
    }
    live.child.kill().unwrap();
    live.child.wait().unwrap();
    assert!(
        wait_until(2.0, || live
            .sleepers
            .iter()
            .all(|s| pids_with_arg(s).is_empty())),
        "the container outlived labrun by 2 s"
    );

    // The next labrun runs in this test's cgroup, not in `elsewhere`.
    let next = Lab::new();
    next.write("nb.md", &probe_notebook("", &[("p", "echo next=1")]));
    let (_, report) = next.report("nb.md", &[]);
    report.assert_status("p", "passed");
    assert_swept(
        &live,
        "a run killed in another cgroup, after the next start",
    );
    std::fs::remove_dir(&elsewhere).unwrap();
}

#[test]
fn runs_of_one_notebook_at_once_are_separate_and_outlive_a_killed_neighbour() {
    let lab = Lab::new();
    // Rootless, the host image's / is not writable (only /lab, /root, /home, /tmp, /var/tmp).
    let dir = if is_root() { "" } else { "/tmp" };
    lab.write(
        "nb.md",
        &probe_notebook(
            "timeout: 60s",
            &[(
                "p",
                &format!(
                    "echo \"$RUN_ID\" > {dir}/marker-$RUN_ID\nsleep \"$NAP\"\nls -A {dir}/ | grep '^marker-'"
                ),
            )],
        ),
    );
    let start = |id: &str, nap: &str| {
        let run_id = format!("RUN_ID={id}");
        let nap = format!("NAP={nap}");
        lab.spawn(
            &["--format", "json", "--env", &run_id, "--env", &nap, "nb.md"],
            &[],
        )
    };
    let (a_id, b_id, c_id) = (unique("a"), unique("b"), unique("c"));
    let (a_nap, b_nap, c_nap) = (unique_sleep(5), unique_sleep(600), unique_sleep(0));
    let a = start(&a_id, &a_nap);
    let b = start(&b_id, &b_nap);
    let mut a = follow(a, vec![a_nap.clone()]);
    let mut b = follow(b, vec![b_nap.clone()]);
    assert_ne!(a.run, b.run);

    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert!(
        wait_until(2.0, || pids_with_arg(&b_nap).is_empty()),
        "the killed run's container lives on"
    );

    // A third run, while the first still sleeps: it sweeps the killed one's state, not the
    // live one's (a per-run lock, not a guess).
    let c = Ran::from(start(&c_id, &c_nap).wait_with_output().unwrap());
    let c = Report::of(&c);
    c.assert_status("p", "passed");
    assert_eq!(c.output("p"), format!("marker-{c_id}\n"), "{}", c.text);
    assert!(
        !pids_with_arg(&a_nap).is_empty(),
        "the first run died while the third started"
    );
    assert_swept(&b, "the killed run, once the third has started");

    let status = wait_exit(&mut a.child, 30.0).expect("the first run ends");
    let mut out = String::new();
    a.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let a_report = Report::of(&Ran {
        status: status.code().unwrap_or(-1),
        stdout: out,
        stderr: String::new(),
    });
    a_report.assert_status("p", "passed");
    // Each run saw its own marker only.
    assert_eq!(
        a_report.output("p"),
        format!("marker-{a_id}\n"),
        "{}",
        a_report.text
    );
    assert_nothing_left(&a, "the first run, once ended");
}

#[test]
fn a_reader_that_closes_the_pipe_does_not_panic_labrun() {
    for format in [
        &["nb.md"][..],
        &["-v", "nb.md"],
        &["--format", "json", "nb.md"],
    ] {
        let lab = Lab::new();
        let cells: Vec<(String, String)> = (0..4)
            .map(|i| (format!("c{i}"), format!("sleep 0.2; echo line-{i}")))
            .collect();
        let cells: Vec<(&str, &str)> = cells
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        lab.write("nb.md", &probe_notebook("", &cells));
        let mut child = lab.spawn(format, &[]);
        let run = wait_until(10.0, || run_dir_of(child.id()).is_some())
            .then(|| run_dir_of(child.id()).unwrap());
        // `| head -1`: one line, then the reader is gone.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let status = wait_exit(&mut child, 20.0).expect("labrun ends");
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!first.is_empty(), "{format:?}: no first line");
        assert!(
            !err.contains("panicked") && status.code() != Some(101),
            "{format:?}: {status:?}\n{err}"
        );
        if let Some(run) = run {
            assert!(!run.exists(), "{format:?}: {} left", run.display());
        }
    }
}

#[test]
fn a_run_under_another_run_dir_base_is_not_swept() {
    // Two labruns of one user whose run directories live in different places (another
    // LABRUN_RUN_DIR, or XDG_RUNTIME_DIR set in one session and not the other). The cgroup
    // sweep asks only its own base whether a token is alive, so the second start kills the
    // first run. While the bug lives this test also kills other tests' runs: run it alone.
    let base = tempfile::tempdir().unwrap();
    let base_dir = base.path().to_str().unwrap().to_string();
    let lab = Lab::new();
    let nap = unique_sleep(3);
    lab.write(
        "nb.md",
        &probe_notebook("limits: { pids: 100 }", &[("p", &format!("sleep {nap}"))]),
    );
    let first = lab.spawn(
        &["--format", "json", "nb.md"],
        &[("LABRUN_RUN_DIR", &base_dir)],
    );
    assert!(wait_until(20.0, || !pids_with_arg(&nap).is_empty()));
    let other = Lab::new();
    other.write("nb.md", &probe_notebook("", &[("p", "echo other=1")]));
    other.report("nb.md", &[]).1.assert_status("p", "passed");
    let first = Ran::from(first.wait_with_output().unwrap());
    assert_eq!(
        first.status, 0,
        "the first run was killed by the second's sweep:\n{}\n{}",
        first.stdout, first.stderr
    );
    Report::of(&first).assert_status("p", "passed");
}
