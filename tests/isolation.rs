//! The threat model's isolation cases (book: design/security, "Adversarial cases"), each run
//! in a real container through the real binary: what a cell can see and touch of /proc,
//! /dev, the kernel's syscalls, the terminal, the network, the host's files, environment,
//! hostname and mount table. Files and paths, resources and lifecycle live in the sibling
//! `isolation_*.rs` files.
//!
//! Every test holds both as root and rootless (CI runs these files as an unprivileged user
//! too); where the two differ the test says so.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::{
    Lab, Report, host_mountinfo, labrun_mount_changes, pids_with_arg, probe_notebook, unique,
    unique_sleep, wait_until,
};

/// Runs one probe cell (id `p`) in a fresh container and returns the report.
fn probe(settings: &str, script: &str) -> Report {
    let lab = Lab::new();
    lab.write("nb.md", &probe_notebook(settings, &[("p", script)]));
    let (ran, report) = lab.report("nb.md", &[]);
    assert!(ran.status == 0 || ran.status == 1, "{}", report.text);
    report
}

#[test]
fn a_cell_holds_only_the_standard_descriptors() {
    let lab = Lab::new_visible();
    let host_dir = lab.dir.path().to_str().unwrap().to_string();
    lab.write(
        "nb.md",
        &probe_notebook(
            "",
            &[
                ("fds", "ls -l /proc/self/fd"),
                // Every descriptor and working directory of every process the cell can see.
                (
                    "all",
                    "for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do \
                     echo \"$f -> $(readlink $f 2>/dev/null)\"; done",
                ),
            ],
        ),
    );
    let (_, report) = lab.report("nb.md", &[]);
    report.assert_status("fds", "passed");
    let listing = report.output("fds");
    let fds: Vec<(u32, String)> = listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.to_string()))
        })
        .collect();
    let numbers: BTreeSet<u32> = fds.iter().map(|(n, _)| *n).collect();
    // 0 is /dev/null, 1 and 2 the cell's output. 3 is ls's own: the descriptor of the
    // directory /proc/self/fd it is listing (opendir), which points back at itself, so no
    // descriptor is inherited from labrun, the shell or init.
    assert_eq!(
        numbers,
        BTreeSet::from([0, 1, 2, 3]),
        "descriptors of a cell's process:\n{}",
        report.text
    );
    let three = &fds.iter().find(|(n, _)| *n == 3).unwrap().1;
    assert!(
        three.starts_with("/proc/") && three.ends_with("/fd"),
        "fd 3 is not ls's own directory but {three}:\n{}",
        report.text
    );
    assert!(fds[0].1 == "/dev/null", "stdin:\n{}", report.text);

    // No process in the container holds anything of the host's (runc CVE-2024-21626): no
    // path outside its root, nothing of the notebook's host directory or labrun's run dir.
    let all = report.output("all");
    for line in all.lines() {
        assert!(
            !line.contains("unreachable")
                && !line.contains(&host_dir)
                && !line.contains("/labrun-")
                && !line.contains("/dev/shm"),
            "a descriptor or directory reaches the host: {line}\n{}",
            report.text
        );
    }
}

#[test]
fn proc_masks_refuse_kcore_keys_sysrq_and_core_pattern() {
    let core_before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let evil = unique("evil-core");
    let report = probe(
        "",
        &"
echo kcore_bytes=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)
echo keys_bytes=$(cat /proc/keys 2>/dev/null | wc -c)
echo timer_list_bytes=$(head -c 16 /proc/timer_list 2>/dev/null | wc -c)
( echo h > /proc/sysrq-trigger ) 2>/dev/null; echo sysrq_rc=$?
( echo '|/tmp/EVIL %p' > /proc/sys/kernel/core_pattern ) 2>/dev/null; echo core_rc=$?
( echo 1 > /proc/sys/kernel/sysrq ) 2>/dev/null; echo sysctl_rc=$?
echo core_inside=$(cat /proc/sys/kernel/core_pattern)
"
        .replace("EVIL", &evil),
    );
    let v = report.values("p");
    // This kernel may have no /proc/kcore or /proc/sysrq-trigger at all: "refused or
    // absent", never a byte read or a write that succeeds.
    for key in ["kcore_bytes", "keys_bytes", "timer_list_bytes"] {
        assert_eq!(v.get(key), "0", "{key}:\n{}", report.text);
    }
    for key in ["sysrq_rc", "core_rc", "sysctl_rc"] {
        assert_ne!(
            v.get(key),
            "0",
            "{key}: the write succeeded\n{}",
            report.text
        );
    }
    assert!(!v.get("core_inside").contains(&evil), "{}", report.text);
    let core_after = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_eq!(core_after, core_before, "the host's core_pattern changed");
}

#[test]
fn mounting_proc_is_refused_and_the_host_table_stays() {
    let before = host_mountinfo();
    let report = probe(
        "",
        "
mount -t proc proc /mnt 2>/dev/null; echo proc_rc=$?
echo mnt_entries=$(ls -A /mnt | wc -l)
mount -t tmpfs none /mnt 2>/dev/null; echo tmpfs_rc=$?
mount --bind /lab /mnt 2>/dev/null; echo bind_rc=$?
mount -o remount,rw / 2>/dev/null; echo remount_rc=$?
",
    );
    let v = report.values("p");
    for key in ["proc_rc", "tmpfs_rc", "bind_rc"] {
        assert_ne!(
            v.get(key),
            "0",
            "{key}: the mount succeeded\n{}",
            report.text
        );
    }
    assert_eq!(v.get("mnt_entries"), "0", "{}", report.text);
    let changed = labrun_mount_changes(&before, &host_mountinfo(), &[]);
    assert!(
        changed.is_empty(),
        "the host's mount table changed: {changed:#?}"
    );
}

#[test]
fn a_device_node_is_refused_or_cannot_be_opened() {
    let report = probe(
        "",
        "
mknod /tmp/sda b 8 0 2>/dev/null; echo mknod_rc=$?
head -c 1 /tmp/sda >/dev/null 2>&1; echo open_rc=$?
mknod /lab/mem c 1 1 2>/dev/null; echo mknod_mem_rc=$?
head -c 1 /lab/mem >/dev/null 2>&1; echo open_mem_rc=$?
",
    );
    let v = report.values("p");
    // Refused by the missing CAP_MKNOD, or made on a nodev layer: either way never opened.
    assert_ne!(v.get("open_rc"), "0", "/tmp/sda opened:\n{}", report.text);
    assert_ne!(
        v.get("open_mem_rc"),
        "0",
        "/lab/mem opened:\n{}",
        report.text
    );
}

#[test]
fn dev_holds_only_the_allowed_nodes() {
    let report = probe("", "ls /dev");
    let out = report.output("p");
    let names: BTreeSet<&str> = out.lines().collect();
    let allowed = BTreeSet::from([
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ]);
    assert_eq!(names, allowed, "{}", report.text);
}

#[test]
fn seccomp_denies_keyring_bpf_modules_kexec_clock_and_handles() {
    // x86_64 numbers. keyctl asks for the session keyring (KEYCTL_GET_KEYRING_ID, create),
    // which the kernel grants to anyone: EPERM there can only come from the filter.
    let report = probe(
        "",
        r#"
python3 - <<'PY'
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
calls = [("keyctl", 250, (0, -3, 1)), ("add_key", 248, (0, 0, 0, 0, 0)),
         ("request_key", 249, (0, 0, 0, 0)), ("bpf", 321, (0, 0, 0)),
         ("init_module", 175, (0, 0, 0)), ("finit_module", 313, (-1, 0, 0)),
         ("delete_module", 176, (0, 0)), ("kexec_load", 246, (0, 0, 0, 0)),
         ("clock_settime", 227, (0, 0)), ("settimeofday", 164, (0, 0)),
         ("open_by_handle_at", 304, (-100, 0, 0))]
print("machine=" + platform.machine())
for name, nr, args in calls:
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(f"{name}={ctypes.get_errno() if r < 0 else 'ok'}")
PY
"#,
    );
    let v = report.values("p");
    if v.opt("machine") != Some("x86_64") {
        eprintln!("skipped: the syscall numbers are x86_64's");
        return;
    }
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "clock_settime",
        "settimeofday",
        "open_by_handle_at",
    ] {
        assert_eq!(v.get(name), "1", "{name} is not EPERM:\n{}", report.text);
    }
}

#[test]
fn terminal_injection_is_refused() {
    // A pseudo-terminal of the cell's own, made its controlling terminal: TIOCSTI on it works
    // on a plain Linux (with dev.tty.legacy_tiocsti=1), so a refusal is the filter's.
    let report = probe(
        "",
        r#"
python3 - <<'PY'
import os, fcntl, termios
m, s = os.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = os.open(os.ttyname(s), os.O_RDWR)
    try:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print("tiocsti=ok", flush=True)
    except OSError as e:
        print(f"tiocsti={e.errno}", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
for fd in (0, 1):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print(f"stdio{fd}=ok")
    except OSError as e:
        print(f"stdio{fd}={e.errno}")
PY
"#,
    );
    let v = report.values("p");
    assert_eq!(
        v.get("tiocsti"),
        "1",
        "TIOCSTI on the cell's own terminal:\n{}",
        report.text
    );
    // The cell has no terminal of labrun's to inject into: stdin and stdout are no tty.
    assert_ne!(v.get("stdio0"), "ok", "{}", report.text);
    assert_ne!(v.get("stdio1"), "ok", "{}", report.text);
}

#[test]
fn hostname_cannot_be_changed_and_the_host_keeps_its_own() {
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let evil = unique("evil");
    let report = probe(
        "",
        &"
hostname EVIL 2>/dev/null; echo hostname_rc=$?
( echo EVIL > /proc/sys/kernel/hostname ) 2>/dev/null; echo sysctl_rc=$?
echo inside=$(hostname)
"
        .replace("EVIL", &evil),
    );
    let v = report.values("p");
    assert_ne!(v.get("hostname_rc"), "0", "{}", report.text);
    assert_ne!(v.get("sysctl_rc"), "0", "{}", report.text);
    // The container's own name is the notebook's file stem.
    assert_eq!(v.get("inside"), "nb", "{}", report.text);
    let host_after = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(host_after, host_before, "the host's hostname changed");
}

#[test]
fn the_network_is_loopback_only() {
    let report = probe(
        "",
        r#"
echo "netdev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
if command -v ip >/dev/null; then echo "iplink=$(ip -o link show | cut -d: -f2 | tr -d ' ' | tr '\n' ' ')"; fi
python3 -m http.server 18080 --bind 127.0.0.1 >/dev/null 2>&1 &
python3 - <<'PY'
import socket, time, urllib.request
def connect(addr, family=socket.AF_INET):
    s = socket.socket(family)
    s.settimeout(1)
    try:
        s.connect(addr)
        return "connected"
    except OSError as e:
        return f"errno{e.errno}"
    finally:
        s.close()
print("outside4=" + connect(("1.1.1.1", 53)))
print("outside4b=" + connect(("8.8.8.8", 443)))
print("outside6=" + connect(("2606:4700:4700::1111", 53), socket.AF_INET6))
for _ in range(200):
    loop = connect(("127.0.0.1", 18080))
    if loop == "connected":
        break
    time.sleep(0.05)
print("loopback=" + loop)
print("http=%d" % urllib.request.urlopen("http://127.0.0.1:18080/", timeout=5).status)
PY
"#,
    );
    let v = report.values("p");
    assert_eq!(v.get("netdev").trim(), "lo", "{}", report.text);
    if let Some(ip) = v.opt("iplink") {
        assert_eq!(ip.trim(), "lo", "{}", report.text);
    }
    // Refused at once (ENETUNREACH: there is no route but loopback), not timed out.
    assert_eq!(v.get("outside4"), "errno101", "{}", report.text);
    assert_eq!(v.get("outside4b"), "errno101", "{}", report.text);
    let six = v.get("outside6");
    assert!(
        six.starts_with("errno") && six != "errnoNone",
        "IPv6 outside: {six}\n{}",
        report.text
    );
    assert_eq!(v.get("loopback"), "connected", "{}", report.text);
    assert_eq!(v.get("http"), "200", "{}", report.text);
}

#[test]
fn the_host_image_hides_secrets_and_the_notebooks_directory() {
    let lab = Lab::new_visible();
    let host_dir = lab.dir.path().to_str().unwrap().to_string();
    lab.write("fixture.txt", "visible under /lab/.notebook\n");
    lab.write(
        "nb.md",
        &probe_notebook(
            "",
            &[(
                "p",
                &"
echo shadow_bytes=$(cat /etc/shadow 2>/dev/null | wc -c)
echo gshadow_bytes=$(cat /etc/gshadow 2>/dev/null | wc -c)
for d in root home tmp var/tmp mnt media; do echo \"entries_${d%/*}_${d#*/}=$(ls -A /$d 2>/dev/null | wc -l)\"; done
echo host_dir_entries=$(ls -A HOST 2>/dev/null | wc -l)
cat HOST/nb.md >/dev/null 2>&1; echo host_nb_rc=$?
echo fixture=$(cat /lab/.notebook/fixture.txt)
"
                .replace("HOST", &host_dir),
            )],
        ),
    );
    let (_, report) = lab.report("nb.md", &[]);
    let v = report.values("p");
    assert_eq!(v.get("shadow_bytes"), "0", "{}", report.text);
    assert_eq!(v.get("gshadow_bytes"), "0", "{}", report.text);
    for d in ["root", "home", "tmp", "var/tmp", "mnt", "media"] {
        let (first, last) = d.split_once('/').unwrap_or((d, d));
        let key = format!("entries_{first}_{last}");
        assert_eq!(v.get(&key), "0", "/{d} is not empty:\n{}", report.text);
    }
    assert_eq!(v.get("host_dir_entries"), "0", "{}", report.text);
    assert_ne!(v.get("host_nb_rc"), "0", "{}", report.text);
    // The notebook's own files are meant to be at hand, read-only, under /lab/.notebook.
    assert_eq!(
        v.get("fixture"),
        "visible under /lab/.notebook",
        "{}",
        report.text
    );
}

/// A notebook whose `graded` cell has a golden file holding `secret`, and a `peek` cell that
/// runs first and tries every way it knows to read it. The notebook itself never spells the
/// secret (the graded cell prints it reversed through `rev`), so finding it means finding the
/// golden file.
fn grading_lab(golden_rel: &str, secret: &str) -> Lab {
    let lab = Lab::new_visible();
    let golden = lab.path(golden_rel);
    lab.write(golden_rel, &format!("{secret}\n"));
    let golden_host = golden.to_str().unwrap().to_string();
    let golden_dir_host = golden.parent().unwrap().to_str().unwrap().to_string();
    let reversed: String = secret.chars().rev().collect();
    let peek = "
cat GOLDEN 2>/dev/null
ls -A GOLDEN_DIR 2>/dev/null
cat /lab/.notebook/expected-output/nb/graded.out 2>/dev/null
grep -rsF \"$(echo REVERSED | rev)\" /lab GOLDEN_DIR 2>/dev/null
find /lab -name 'graded.out' 2>/dev/null
echo peek=done
"
    .replace("GOLDEN_DIR", &golden_dir_host)
    .replace("GOLDEN", &golden_host)
    .replace("REVERSED", &reversed);
    lab.write(
        "notebooks/nb.md",
        &format!(
            "# Grading\n\n```bash | {{type: 'command', id: 'peek', exit: any}}\n{peek}```\n\n\
             ```bash | {{type: 'command', id: 'graded'}}\necho {reversed} | rev\n```\n"
        ),
    );
    lab
}

fn assert_secret_unseen(lab: &Lab, secret: &str) {
    let (_, report) = lab.report("notebooks/nb.md", &[]);
    // The golden file is really the graded cell's expected output.
    report.assert_status("graded", "passed");
    let peek = report.output("peek");
    assert!(peek.contains("peek=done"), "{}", report.text);
    assert!(
        !peek.contains(secret) && !peek.contains("graded.out"),
        "the cell read the expected output:\n{}",
        report.text
    );
}

#[test]
fn expected_output_is_hidden_at_its_host_path() {
    // expected-output/ beside the notebooks' directory: not under /lab/.notebook.
    let secret = unique("golden-secret");
    let lab = grading_lab("expected-output/notebooks/nb/graded.out", &secret);
    assert_secret_unseen(&lab, &secret);
}

#[test]
fn expected_output_inside_the_notebooks_directory_is_hidden_too() {
    let secret = unique("golden-secret");
    let lab = grading_lab("notebooks/expected-output/nb/graded.out", &secret);
    assert_secret_unseen(&lab, &secret);
}

#[test]
fn the_callers_environment_does_not_leak() {
    let lab = Lab::new();
    let ssh = unique("ssh-agent-socket");
    let token = unique("ghp-token");
    let aws = unique("aws-secret");
    let passed = unique("passed-on-purpose");
    lab.write(
        "nb.md",
        &probe_notebook(
            "",
            &[(
                "p",
                "env; for e in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $e 2>/dev/null; done",
            )],
        ),
    );
    let with_passed = format!("LABRUN_PASSED={passed}");
    let ran = lab.exec(
        &["--format", "json", "--env", &with_passed, "nb.md"],
        &[
            ("SSH_AUTH_SOCK", &ssh),
            ("GITHUB_TOKEN", &token),
            ("AWS_SECRET_ACCESS_KEY", &aws),
        ],
    );
    let report = Report::of(&ran);
    let out = report.output("p");
    // What --env passes does arrive: the probe sees the environment.
    assert!(out.contains(&passed), "{}", report.text);
    for secret in [&ssh, &token, &aws] {
        assert!(
            !out.contains(secret.as_str()),
            "{secret} leaked:\n{}",
            report.text
        );
    }
    assert!(!out.contains("SSH_AUTH_SOCK"), "{}", report.text);
    assert!(!out.contains("GITHUB_TOKEN"), "{}", report.text);
}

#[test]
fn the_host_mount_table_is_the_same_before_during_and_after() {
    let lab = Lab::new();
    let nap = unique_sleep(2);
    lab.write(
        "nb.md",
        &probe_notebook(
            "",
            &[
                ("sleep", &format!("sleep {nap}")),
                ("mount", "mount -t tmpfs none /mnt 2>/dev/null; echo rc=$?"),
            ],
        ),
    );
    let dirs = [lab.dir.path()];
    let before = host_mountinfo();
    let child = lab.spawn(&["--format", "json", "nb.md"], &[]);
    let running = wait_until(20.0, || !pids_with_arg(&nap).is_empty());
    let during = host_mountinfo();
    let ran = common::Ran::from(child.wait_with_output().unwrap());
    let after = host_mountinfo();
    assert!(
        running,
        "the cell never ran:\n{}\n{}",
        ran.stdout, ran.stderr
    );
    let changed = labrun_mount_changes(&before, &during, &dirs);
    assert!(changed.is_empty(), "during the run: {changed:#?}");
    let changed = labrun_mount_changes(&before, &after, &dirs);
    assert!(changed.is_empty(), "after the run: {changed:#?}");
    // Never a labrun mount in the host's table, from this run or any other.
    for table in [&before, &during, &after] {
        assert!(!table.contains("labrun"), "{table}");
    }
    Report::of(&ran).assert_status("sleep", "passed");
}

#[test]
fn a_privileged_cell_still_cannot_touch_the_host() {
    let core_before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let lab = Lab::new();
    let evil = unique("evil-core");
    lab.write(
        "nb.md",
        &"# Privileged

```bash | {type: 'command', id: 'p', privileged: true, exit: any}
( echo '|/tmp/EVIL' > /proc/sys/kernel/core_pattern ) 2>/dev/null; echo core_rc=$?
mount -o remount,rw /sys 2>/dev/null; echo sys_rc=$?
( echo 1 > /sys/kernel/profiling ) 2>/dev/null; echo sysfs_write_rc=$?
hostname EVIL 2>/dev/null; echo hostname_rc=$?
```
"
        .replace("EVIL", &evil),
    );
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (_, report) = lab.report("nb.md", &[]);
    let v = report.values("p");
    for key in ["core_rc", "sys_rc", "sysfs_write_rc"] {
        assert_ne!(v.get(key), "0", "{key}: succeeded\n{}", report.text);
    }
    // The cell's hostname is its own (a UTS namespace): changing it, if allowed, stays there.
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_before
    );
}
