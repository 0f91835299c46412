//! The container backend through the real binary: images (busybox, a directory, a tarball),
//! privileged cells, `--keep`, and clear errors for images that cannot be used.

mod common;

use std::fs;
use std::process::Command;

use common::{Lab, Ran, is_root, pids_with_arg, wait_until};

#[test]
fn busybox_image_runs_cells_in_ash() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "---\nlabrun: {image: busybox}\n---\n# B\n\n```console\n$ readlink /bin/sh; test -e /usr/bin/python3 || echo no python\nbusybox\nno python\n$ cd /tmp; touch /etc/made && echo writable\nwritable\n$ pwd\n/tmp\n```\n",
    );
    lab.run(&["nb.md"]).status(0).stdout_has("1 passed");
}

#[test]
fn a_directory_and_a_tarball_are_images() {
    let lab = Lab::new();
    // A root of its own: busybox and one file that tells them apart.
    let tree = lab.path("tree");
    common::busybox_tree(&tree, &["sh"]);
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/which"), "from a tree\n").unwrap();
    let st = Command::new("tar")
        .args(["-czf", "root.tar.gz", "-C", "tree", "."])
        .current_dir(lab.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let nb = |image: &str| {
        format!(
            "---\nlabrun: {{image: {image}}}\n---\n# I\n\n```console\n$ /bin/busybox cat /etc/which\nfrom a tree\n$ /bin/busybox ls /lab/.notebook/tree/etc\nwhich\n```\n"
        )
    };
    lab.write("dir.md", &nb("./tree"));
    lab.write("tar.md", &nb("./root.tar.gz"));
    lab.run(&["dir.md"]).status(0);
    lab.run(&["tar.md"]).status(0);
    // The author's tree is a read-only layer: the run wrote nothing into it.
    lab.write(
        "write.md",
        "---\nlabrun: {image: ./tree}\n---\n# W\n\n```console\n$ /bin/busybox touch /etc/new && echo ok\nok\n```\n",
    );
    lab.run(&["write.md"]).status(0);
    assert!(!tree.join("etc/new").exists());
}

#[test]
fn unusable_images_are_clear_errors() {
    let lab = Lab::new();
    lab.write(
        "missing.md",
        "---\nlabrun: {image: ./nothere.tar}\n---\n```console\n$ true\n```\n",
    );
    lab.run(&["missing.md"]).status(3).stderr_has("nothere.tar");
    lab.write("bad.tar", "this is not a tar archive");
    lab.write(
        "bad.md",
        "---\nlabrun: {image: ./bad.tar}\n---\n```console\n$ true\n```\n",
    );
    lab.run(&["bad.md"]).status(3).stderr_has("bad.tar");
    lab.write(
        "noshell.md",
        "---\nlabrun: {image: ./empty}\n---\n```console\n$ true\n```\n",
    );
    fs::create_dir_all(lab.path("empty")).unwrap();
    lab.run(&["noshell.md"]).status(3).stderr_has("shell");
}

#[test]
fn privileged_cells_mount_inside_but_never_reach_the_host() {
    let lab = Lab::new();
    let before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    lab.write(
        "nb.md",
        r#"# P

```bash | {type: 'command'}
export CARRIED=yes; f() { echo from-f; }
mkdir -p /lab/o/lower /lab/o/upper /lab/o/work /lab/o/merged; echo low > /lab/o/lower/file
cd /lab/o
```

```console | {privileged: true}
$ echo $CARRIED; f; pwd
yes
from-f
/lab/o
$ mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work merged && echo mounted
mounted
$ (echo x > /proc/sys/kernel/core_pattern) 2>/dev/null || echo refused
refused
$ (mount -o remount,rw /sys) 2>/dev/null || echo refused
refused
$ export SET_THERE=1
```

```console
$ cat merged/file; echo $SET_THERE
low
1
$ (mount -t tmpfs t /mnt) 2>/dev/null || echo refused
refused
$ awk '/^CapEff/ {print $2}' /proc/self/status
00000000a80425fb
```
"#,
    );
    lab.run(&["nb.md"]).status(0).stdout_has("3 passed");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

#[test]
fn keep_leaves_the_environment_up_until_it_is_killed() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "# K\n\n```console\n$ echo kept > /lab/marker; echo done\ndone\n```\n",
    );
    let ran = lab.run(&["--keep", "nb.md"]);
    ran.status(0).stdout_has("the environment is kept");
    let pid = kept_init(&ran);
    // Entering it finds the lab as the run left it.
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--all", "cat", "/lab/marker"])
        .output()
        .unwrap();
    let entered = String::from_utf8_lossy(&out.stdout).into_owned();
    // Removing it is one kill; the next run sweeps what is left.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    if is_root() {
        assert_eq!(entered, "kept\n", "{out:?}");
    }
    let proc_dir = format!("/proc/{pid}");
    assert!(wait_until(2.0, || !std::path::Path::new(&proc_dir).exists()));
}

/// The pid of the init of an environment `--keep` left, from the message that says so.
fn kept_init(ran: &Ran) -> i32 {
    ran.stdout
        .split("--target ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", ran.stdout))
}

/// Every path the contract says the `host` image hides, read from inside: a marker put there
/// on this machine is not to be seen, a secret file reads empty.
#[test]
fn the_host_image_hides_each_secret_path() {
    if !is_root() {
        // Rootless, those directories are fresh tmpfs or unreadable anyway; the markers below
        // need root to be written on this machine.
        return;
    }
    let tag = format!("labrun-hidden-{}", std::process::id());
    let cache = format!("/opt/{tag}-cache");
    let dirs = [
        "/root", "/home", "/tmp", "/var/tmp", "/run", "/mnt", "/media", &cache,
    ];
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
        fs::write(format!("{d}/{tag}"), "secret").unwrap();
    }
    // A host key of this machine, as sshd would have one.
    fs::create_dir_all("/etc/ssh").unwrap();
    let key = format!("/etc/ssh/{tag}_key");
    fs::write(&key, "PRIVATE KEY").unwrap();
    let lab = Lab::new();
    lab.write("fixture.txt", "notebook material\n");
    lab.write("expected-output/other/cell-1.out", "golden\n");
    let nb_dir = fs::canonicalize(lab.dir.path()).unwrap();
    let mut cell = String::new();
    for d in &dirs {
        cell.push_str(&format!("ls -A {d} 2>/dev/null | grep -c {tag}\n"));
    }
    for f in ["/etc/shadow", "/etc/gshadow"] {
        cell.push_str(&format!("wc -c < {f}\n"));
    }
    cell.push_str("cat /etc/ssh/*_key 2>/dev/null | wc -c\n");
    cell.push_str(&format!("ls -A {} 2>/dev/null | wc -l\n", nb_dir.display()));
    cell.push_str("ls -A /lab/.notebook/expected-output | wc -l\n");
    cell.push_str("cat /lab/.notebook/fixture.txt\n");
    let expected = "0\n".repeat(dirs.len() + 2 + 1 + 2) + "notebook material\n";
    lab.write(
        "nb.md",
        &format!("# H\n\n```bash | {{type: 'command'}}\n{cell}```\n```output\n{expected}```\n"),
    );
    let ran = lab.run_env(&["nb.md"], &[("LABRUN_CACHE", &cache)]);
    for d in &dirs {
        let _ = fs::remove_file(format!("{d}/{tag}"));
    }
    let _ = fs::remove_file(&key);
    let _ = fs::remove_dir_all(&cache);
    ran.status(0);
}

/// init reaps orphans and forwards a termination signal to what runs in the container.
#[test]
fn init_reaps_orphans_and_forwards_signals() {
    let lab = Lab::new();
    // A process that ends on SIGTERM and not before, named (its $0) to be found from outside.
    let mark = format!("labrun-term-{}", std::process::id());
    lab.write(
        "nb.md",
        &format!(
            "# I\n\n```console\n$ (sleep 0.1 & exec true); sleep 0.5; ps -eo stat= | awk '/Z/ {{n++}} END {{print n+0}}'\n0\n$ setsid sh -c 'trap \"exit 0\" TERM; : > /lab/ready; while :; do sleep 0.05; done' {mark} >/dev/null 2>&1 &\n$ while [ ! -e /lab/ready ]; do sleep 0.01; done\n```\n"
        ),
    );
    let ran = lab.run(&["--keep", "nb.md"]);
    ran.status(0);
    let init = nix::unistd::Pid::from_raw(kept_init(&ran));
    assert_eq!(
        pids_with_arg(&mark).len(),
        1,
        "the trapping process runs in the kept container"
    );
    nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGTERM).unwrap();
    let forwarded = wait_until(2.0, || pids_with_arg(&mark).is_empty());
    nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(forwarded, "init passed SIGTERM on to it");
}

/// After pivot_root, nothing of this machine's mount tree is in reach: not in the mount
/// table, not through `..` from anywhere, in the first cell as in later ones.
#[test]
fn the_old_root_is_out_of_reach() {
    let lab = Lab::new();
    let probe = "grep -c -e ' /sys/fs/cgroup' -e ' /dev/shm/labrun' /proc/self/mountinfo; \
                 [ \"$(stat -c %d:%i /)\" = \"$(cd /usr/.. && stat -c %d:%i .)\" ] && echo same-root";
    lab.write(
        "nb.md",
        &format!("# R\n\n```console\n$ {probe}\n0\nsame-root\n$ exec bash\n$ {probe}\n0\nsame-root\n```\n"),
    );
    lab.run(&["nb.md"]).status(0);
}

/// Live output (`-v`) names no file of labrun's in error messages, in bash as in ash.
#[test]
fn live_output_shows_messages_as_recorded() {
    let lab = Lab::new();
    let cell = "```bash | {type: 'command'}\necho a; no-such-command-here; true\n```\n";
    lab.write("bash.md", &format!("# L\n\n{cell}"));
    lab.write(
        "ash.md",
        &format!("---\nlabrun: {{image: busybox}}\n---\n# L\n\n{cell}"),
    );
    lab.run(&["-v", "bash.md"])
        .status(0)
        .stdout_has("| bash: line 1: no-such-command-here: command not found")
        .stdout_lacks("/run/labrun");
    lab.run(&["-v", "ash.md"])
        .status(0)
        .stdout_has("| sh: line 1: no-such-command-here: not found")
        .stdout_lacks("/run/labrun");
}
