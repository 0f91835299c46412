//! `setup:` steps as cached layers and the `labrun image` commands, through the real binary
//! on a real cache: what is rebuilt when, failing and slow steps, a hundred steps, several
//! labrun processes building at once, and a build killed with SIGKILL.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{Lab, Ran, is_root, wait_until};

/// A lab whose runs use a cache of their own.
fn lab() -> (Lab, String) {
    let lab = Lab::new();
    let cache = lab.path("cache").to_string_lossy().into_owned();
    (lab, cache)
}

fn run(lab: &Lab, cache: &str, args: &[&str]) -> Ran {
    lab.exec(args, &[("LABRUN_CACHE", cache)])
}

/// A notebook with these setup steps (on `image`) and one cell that checks `check`.
fn notebook(image: &str, steps: &[String], check: &str, expect: &str) -> String {
    let mut md = format!("---\nlabrun:\n  image: {image}\n  setup:\n");
    for s in steps {
        md.push_str(&format!("    - {s:?}\n"));
    }
    md.push_str(&format!("---\n\n```console\n$ {check}\n{expect}\n```\n"));
    md
}

/// The numbers of the setup steps this run built.
fn built(ran: &Ran) -> Vec<usize> {
    ran.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("labrun: building setup step "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

fn layer_count(cache: &str) -> usize {
    fs::read_dir(Path::new(cache).join("layers"))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}

fn steps(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|s| s.to_string()).collect()
}

#[test]
fn steps_are_cached_like_docker_build() {
    if !is_root() {
        return; // setup steps on the host image need root
    }
    let (lab, cache) = lab();
    let mut s = steps(&[
        "echo 1 > /etc/s1",
        "cat /etc/s1 > /etc/s2; echo 2 >> /etc/s2",
        "cat /etc/s2 > /etc/s3; echo 3 >> /etc/s3",
        "cat /etc/s3 > /etc/s4; echo 4 >> /etc/s4",
    ]);
    lab.write("nb.md", &notebook("host", &s, "cat /etc/s4", "1\n2\n3\n4"));
    let first = run(&lab, &cache, &["nb.md"]);
    first.status(0);
    assert_eq!(built(&first), [1, 2, 3, 4]);
    let second = run(&lab, &cache, &["nb.md"]);
    second.status(0);
    assert_eq!(built(&second), Vec::<usize>::new(), "{}", second.stderr);
    s[2] = "cat /etc/s2 > /etc/s3; echo three >> /etc/s3".into();
    lab.write(
        "nb.md",
        &notebook("host", &s, "cat /etc/s4", "1\n2\nthree\n4"),
    );
    let changed = run(&lab, &cache, &["nb.md"]);
    changed.status(0);
    assert_eq!(built(&changed), [3, 4]);
    let rebuilt = run(&lab, &cache, &["--rebuild", "nb.md"]);
    rebuilt.status(0);
    assert_eq!(built(&rebuilt), [1, 2, 3, 4]);
    assert_eq!(layer_count(&cache), 6);
}

#[test]
fn steps_have_the_network_and_no_stdin() {
    if !is_root() {
        return;
    }
    let (lab, cache) = lab();
    let s = steps(&[
        "cat > /etc/stdin-bytes; wc -c < /etc/stdin-bytes > /etc/stdin-count",
        "grep -c : /proc/net/dev > /etc/interfaces",
    ]);
    // The cells' own network namespace has loopback only; the step saw the host's.
    let check = "cat /etc/stdin-count; test $(cat /etc/interfaces) -gt $(grep -c : /proc/net/dev) && echo more";
    lab.write("nb.md", &notebook("host", &s, check, "0\nmore"));
    run(&lab, &cache, &["nb.md"]).status(0);
}

#[test]
fn a_failing_step_shows_its_output_fails_with_3_and_is_not_cached() {
    let (lab, cache) = lab();
    let s = steps(&["echo kept > /kept", "echo 'about to fail'; exit 7"]);
    lab.write("nb.md", &notebook("busybox", &s, "true", ""));
    let failed = run(&lab, &cache, &["nb.md"]);
    failed
        .status(3)
        .stderr_has("setup step 2 of 2 (echo 'about to fail'; exit 7) failed with exit status 7")
        .stderr_has("about to fail");
    let again = run(&lab, &cache, &["nb.md"]);
    again.status(3);
    assert_eq!(built(&again), [2], "step 1 was cached, step 2 never");
}

#[test]
fn a_step_past_its_timeout_is_killed_and_not_cached() {
    let (lab, cache) = lab();
    let s = steps(&["echo slow; sleep 30"]);
    lab.write("nb.md", &notebook("busybox", &s, "true", ""));
    let started = std::time::Instant::now();
    let ran = lab.exec(
        &["nb.md"],
        &[("LABRUN_CACHE", &cache), ("LABRUN_SETUP_TIMEOUT", "1s")],
    );
    ran.status(3)
        .stderr_has("timed out after 1")
        .stderr_has("slow");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(layer_count(&cache), 1, "only busybox's own layer");
}

#[test]
fn what_a_step_removes_stays_removed_in_later_layers() {
    let (lab, cache) = lab();
    let s = steps(&[
        "mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b && echo f > /f",
        "rm /f && rm -rf /d && mkdir /d && echo c > /d/c",
    ]);
    let check = "ls -R /d; test -e /f || echo no-f";
    lab.write("nb.md", &notebook("busybox", &s, check, "/d:\nc\nno-f"));
    run(&lab, &cache, &["nb.md"]).status(0);
    run(&lab, &cache, &["nb.md"]).status(0);
}

#[test]
fn a_hundred_and_ten_steps_stack() {
    let (lab, cache) = lab();
    let s: Vec<String> = (1..=110).map(|i| format!("echo {i} > /s{i}")).collect();
    lab.write(
        "nb.md",
        &notebook(
            "busybox",
            &s,
            "ls / | grep -c '^s[0-9]'; cat /s1 /s110",
            "110\n1\n110",
        ),
    );
    let first = run(&lab, &cache, &["nb.md"]);
    first.status(0);
    assert_eq!(built(&first).len(), 110);
    run(&lab, &cache, &["nb.md"]).status(0);
}

#[test]
fn concurrent_builds_build_each_layer_once() {
    let (lab, cache) = lab();
    let s = steps(&["sleep 1; echo once > /built"]);
    lab.write("nb.md", &notebook("busybox", &s, "cat /built", "once"));
    let children: Vec<_> = (0..4)
        .map(|_| lab.spawn(&["image", "build", "nb.md"], &[("LABRUN_CACHE", &cache)]))
        .collect();
    let ran: Vec<Ran> = children
        .into_iter()
        .map(|c| Ran::from(c.wait_with_output().unwrap()))
        .collect();
    for r in &ran {
        r.status(0).stdout_has("image ready");
    }
    let builds: usize = ran.iter().map(|r| built(r).len()).sum();
    assert_eq!(builds, 1, "the step ran once among four processes");
    assert_eq!(layer_count(&cache), 2);
    run(&lab, &cache, &["nb.md"]).status(0);
}

#[test]
fn a_build_killed_mid_step_leaves_no_layer() {
    let (lab, cache) = lab();
    let sleep = common::unique_sleep(60);
    lab.write("delay", &sleep);
    let s = steps(&["touch /started; sleep $(cat /lab/.notebook/delay); touch /finished"]);
    lab.write(
        "nb.md",
        &notebook(
            "busybox",
            &s,
            "ls /started /finished",
            "/finished\n/started",
        ),
    );
    let mut child = lab.spawn(&["nb.md"], &[("LABRUN_CACHE", &cache)]);
    let tmp = Path::new(&cache).join("tmp");
    let started = || {
        fs::read_dir(&tmp)
            .map(|d| d.flatten().any(|e| e.path().join("started").exists()))
            .unwrap_or(false)
    };
    assert!(wait_until(30.0, started), "the step never started");
    assert!(
        wait_until(10.0, || !common::pids_with_arg(&sleep).is_empty()),
        "the step's sleep never ran"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(10.0, || common::pids_with_arg(&sleep).is_empty()),
        "the step outlived labrun"
    );
    assert_eq!(layer_count(&cache), 1, "only busybox's own layer");
    lab.write("delay", "0");
    let again = run(&lab, &cache, &["nb.md"]);
    again.status(0);
    assert_eq!(built(&again), [1]);
    let left: Vec<String> = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "the killed build's leftovers: {left:?}");
}

#[test]
fn image_commands_list_remove_and_prune() {
    let (lab, cache) = lab();
    let s = steps(&["echo a > /a", "echo b > /b"]);
    lab.write("nb.md", &notebook("busybox", &s, "cat /a /b", "a\nb"));
    run(&lab, &cache, &["image", "build", "nb.md"])
        .status(0)
        .stdout_has("nb.md: image ready");
    let ls = run(&lab, &cache, &["image", "ls"]);
    ls.status(0)
        .stdout_has("busybox")
        .stdout_has("setup step 1 of 2 (echo a > /a)")
        .stdout_has("setup step 2 of 2 (echo b > /b)");
    run(&lab, &cache, &["image", "rm", "nope-nope"])
        .status(2)
        .stderr_has("'nope-nope' is not a cached layer");
    // Removing busybox removes the steps built on it.
    run(&lab, &cache, &["image", "rm", "busybox"])
        .status(0)
        .stdout_has("freed");
    assert_eq!(layer_count(&cache), 0);
    run(&lab, &cache, &["image", "build", "nb.md"]).status(0);
    // A running lab holds the cache: pruning it is refused until the run ends.
    lab.write(
        "slow.md",
        "---\nlabrun: {image: busybox}\n---\n\n```console\n$ sleep 3; echo done\ndone\n```\n",
    );
    let mut slow = lab.spawn(&["slow.md"], &[("LABRUN_CACHE", &cache)]);
    std::thread::sleep(Duration::from_millis(1500));
    run(&lab, &cache, &["image", "prune", "--all"])
        .status(3)
        .stderr_has("a running labrun is using the cache");
    assert!(slow.wait().unwrap().success());
    run(&lab, &cache, &["image", "prune", "--unused-for", "1d"])
        .status(0)
        .stdout_has("removed 0 layers");
    run(&lab, &cache, &["image", "prune", "--all"])
        .status(0)
        .stdout_has("removed 3 layers");
    assert_eq!(layer_count(&cache), 0);
}

#[test]
fn the_vm_backends_files_are_listed_and_pruned_with_the_layers() {
    // Snapshots (about 100 MB each, one per machine shape and labrun build), initramfs images
    // and unpacked kernels: `image ls` shows them, `prune` removes those unused for a while.
    let (lab, cache) = lab();
    let vm = Path::new(&cache).join("vm");
    fs::create_dir_all(&vm).unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86400);
    for (name, old) in [
        ("snapshot-0123456789abcdef.bin", true),
        ("initramfs-0123456789abcdef.cpio", true),
        ("vmlinux-0123456789abcdef", false),
    ] {
        fs::write(vm.join(name), vec![0u8; 4096]).unwrap();
        if old {
            fs::File::open(vm.join(name))
                .unwrap()
                .set_times(fs::FileTimes::new().set_accessed(long_ago))
                .unwrap();
        }
    }
    run(&lab, &cache, &["image", "ls"])
        .status(0)
        .stdout_has("snapshot-01234567")
        .stdout_has("vm snapshot (a booted machine, for warm starts)")
        .stdout_has("40 d ago")
        .stdout_has("vm kernel, unpacked")
        .stdout_has("vm files: 12 KiB of a 2 GiB budget (LABRUN_VM_CACHE_MAX)");
    run(&lab, &cache, &["image", "prune", "--unused-for", "30d"])
        .status(0)
        .stdout_has("removed 2 vm files")
        .stdout_has("freed 8 KiB");
    assert!(vm.join("vmlinux-0123456789abcdef").exists());
    assert!(!vm.join("snapshot-0123456789abcdef.bin").exists());
    run(&lab, &cache, &["image", "prune", "--all"])
        .status(0)
        .stdout_has("removed 1 vm files");
    assert_eq!(fs::read_dir(&vm).unwrap().count(), 0);
}

#[test]
fn a_docable_docker_target_runs_its_image() {
    let (lab, cache) = lab();
    lab.write(
        "nb.md",
        "<!--\ntargets:\n  - type: docker\n    name: box\n    image: busybox\n-->\n\n# Box\n\n\
         ```bash | {type: 'command'}\nreadlink /bin/sh\n```\n",
    );
    let ran = run(&lab, &cache, &["--format", "json", "nb.md"]);
    ran.status(0);
    assert!(ran.stdout.contains("busybox"), "{}", ran.stdout);
}
