//! `labrun grade --slurm` on a real single-node Slurm cluster (tests/slurm_cluster): the same
//! grade book as a local run, a cancelled array task reported by name, and a clear exit 3
//! without a controller.

mod common;
mod slurm_cluster;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Lab;
use labrun::grade::shard::Shard;
use serde_json::Value;

/// Copies the checked-in grading example (notebooks/grading) into the lab.
fn grading_example(lab: &Lab) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/grading");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from.join("grading.md"))
        .arg(from.join("submissions"))
        .arg(lab.dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a of {}", from.display());
}

/// A grade book without its timing fields, which no two runs share.
fn untimed(lab: &Lab, out: &str) -> Value {
    let mut book: Value = serde_json::from_str(&lab.read(&format!("{out}/grades.json"))).unwrap();
    for entry in book["submissions"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("duration_ms");
    }
    book
}

fn conf_env(cluster: &slurm_cluster::Cluster) -> String {
    cluster.conf().display().to_string()
}

#[test]
fn slurm_and_local_runs_write_the_same_grade_book() {
    let shared = slurm_cluster::cluster();
    let lab = Lab::new();
    grading_example(&lab);
    // One more student, with nothing in the directory: failing cells are results too.
    fs::create_dir_all(lab.path("submissions/eve")).unwrap();
    let base = [
        "grade",
        "grading.md",
        "--submissions",
        "submissions",
        "-j",
        "2",
    ];
    let local = lab.run(&[&base[..], &["--output", "local"]].concat());
    local.status(0);
    let conf = conf_env(&shared.cluster);
    let slurm = lab.run_env(
        &[
            &base[..],
            &["--output", "slurm", "--slurm", "--slurm-tasks", "4"],
        ]
        .concat(),
        &[("SLURM_CONF", &conf)],
    );
    slurm.status(0).stderr_has("(4 tasks)");
    assert_eq!(untimed(&lab, "local"), untimed(&lab, "slurm"));
    assert_eq!(lab.read("local/grades.csv"), lab.read("slurm/grades.csv"));
    for name in ["ada", "bob", "cyd", "eve"] {
        for report in ["results.json", "report.html", "junit.xml", "report.tap"] {
            let p = format!("slurm/submissions/{name}/{report}");
            assert!(lab.path(&p).is_file(), "no {p}\n{}", slurm.stderr);
        }
    }
}

const SLOW_GRADER: &str = "---\nlabrun:\n  timeout: 5m\n---\n\n# Slow for some\n\n\
```console\n$ if test -e slow; then sleep SLEEP; fi; echo done\ndone\n```\n";

/// The first of `names` in shard `k` of `n`.
fn in_shard(k: u64, n: u64) -> String {
    let shard = Shard { index: k, count: n };
    (0..)
        .map(|i| format!("student-{i}"))
        .find(|name| shard.holds(name))
        .unwrap()
}

/// A batch of two shards in the background: shard 1's submission is graded at once, shard
/// 2's sleeps (with the returned unique argument) until it is stopped.
struct SlowBatch {
    lab: Lab,
    child: std::process::Child,
    sleep: String,
    fast: String,
    slow: String,
}

fn slow_batch(cluster: &slurm_cluster::Cluster) -> SlowBatch {
    let lab = Lab::new();
    let sleep = common::unique_sleep(300);
    lab.write("grading.md", &SLOW_GRADER.replace("SLEEP", &sleep));
    let (fast, slow) = (in_shard(1, 2), in_shard(2, 2));
    lab.write(&format!("subs/{fast}/count.sh"), "");
    lab.write(&format!("subs/{slow}/slow"), "");
    let child = Command::new(common::labrun_bin())
        .args(
            "grade grading.md --submissions subs --output out --slurm --slurm-tasks 2 -q"
                .split(' '),
        )
        .current_dir(lab.dir.path())
        .env("SLURM_CONF", conf_env(cluster))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Task 2 is running once its sleep is.
    assert!(
        common::wait_until(60.0, || !common::pids_with_arg(&sleep).is_empty()),
        "the slow task never started"
    );
    SlowBatch {
        lab,
        child,
        sleep,
        fast,
        slow,
    }
}

#[test]
fn a_cancelled_array_task_is_reported_by_name() {
    let shared = slurm_cluster::cluster();
    let cluster = &shared.cluster;
    let SlowBatch {
        lab,
        child,
        sleep,
        fast,
        slow,
    } = slow_batch(cluster);
    let (_, queue) = cluster.command("squeue", &["-h", "-r", "-o", "%F %K %T"]);
    let job = queue
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("2"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("task 2 not in the queue:\n{queue}"))
        .to_string();
    let (cancelled, _) = cluster.command("scancel", &[&format!("{job}_2")]);
    assert!(cancelled);
    let ran = common::Ran::from(child.wait_with_output().unwrap());
    ran.status(1)
        .stderr_has(&format!("slurm task {job}_2 (shard 2/2) was cancelled"));
    let book: Value = serde_json::from_str(&lab.read("out/grades.json")).unwrap();
    let entries = book["submissions"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{book:#}");
    let of = |name: &str| entries.iter().find(|e| e["submission"] == name).unwrap();
    assert_eq!(of(&fast)["status"], "graded");
    assert_eq!(of(&slow)["status"], "error");
    let why = of(&slow)["error"].as_str().unwrap();
    assert!(
        why.contains(&format!("slurm task {job}_2 (shard 2/2) was cancelled")),
        "{why}"
    );
    assert!(
        common::wait_until(20.0, || common::pids_with_arg(&sleep).is_empty()),
        "the cancelled task's sleep outlived it"
    );
}

#[test]
fn without_a_controller_slurm_grading_is_an_environment_error() {
    let lab = Lab::new();
    grading_example(&lab);
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    lab.write(
        "slurm.conf",
        &format!(
            "ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort={port}\nMessageTimeout=2\n\
             AuthType=auth/munge\nNodeName=localhost\nPartitionName=p Nodes=ALL Default=YES\n"
        ),
    );
    let conf = lab.path("slurm.conf").display().to_string();
    let args = [
        "grade",
        "grading.md",
        "--submissions",
        "submissions",
        "--slurm",
    ];
    lab.run_env(&args, &[("SLURM_CONF", &conf)])
        .status(3)
        .stderr_has("--slurm: no Slurm controller answers (scontrol ping");
    assert!(!lab.path("grades/grades.json").exists());
    // No Slurm commands at all.
    lab.run_env(&args, &[("PATH", "/nonexistent")])
        .status(3)
        .stderr_has("sbatch not found on PATH");
}

#[test]
fn tasks_that_fail_are_named_and_their_status_is_the_batchs() {
    let shared = slurm_cluster::cluster();
    let lab = Lab::new();
    grading_example(&lab);
    // A grading notebook that does not parse: every task's labrun stops with status 2.
    lab.write(
        "grading.md",
        "---\nlabrun: [not, a, mapping\n---\n# Broken\n",
    );
    let conf = conf_env(&shared.cluster);
    let ran = lab.run_env(
        &[
            "grade",
            "grading.md",
            "--submissions",
            "submissions",
            "--slurm",
            "--slurm-tasks",
            "2",
        ],
        &[("SLURM_CONF", &conf)],
    );
    ran.status(2).stderr_has("no task of slurm job");
    for task in 1..=2 {
        let needle = format!("_{task} (shard {task}/2) exited with status 2 without a grade book");
        ran.stderr_has(&needle);
    }
    ran.stderr_has("grading.md");
}

#[test]
fn ctrl_c_cancels_the_job() {
    let shared = slurm_cluster::cluster();
    let batch = slow_batch(&shared.cluster);
    let pid = nix::unistd::Pid::from_raw(batch.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let ran = common::Ran::from(batch.child.wait_with_output().unwrap());
    ran.status(130).stderr_has("interrupted; slurm job");
    assert!(
        common::wait_until(20.0, || common::pids_with_arg(&batch.sleep).is_empty()),
        "the job's tasks outlived the interrupt"
    );
    let job = ran
        .stderr
        .split("interrupted; slurm job ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    let active = || {
        shared
            .cluster
            .command("squeue", &["-h", "-r", "-j", &job])
            .1
    };
    assert!(
        common::wait_until(20.0, || active().trim().is_empty()),
        "job {job} still in the queue:\n{}",
        active()
    );
    assert!(!batch.lab.path("out/grades.json").exists());
}
