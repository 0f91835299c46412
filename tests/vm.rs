//! The vm backend end to end: real qemu guests (TCG here) booted from the Debian kernel that
//! scripts/install-vm.sh unpacks, with labrun's agent inside. What a notebook means is the
//! same on both backends; a guest that fails to boot is named with its console; nothing of a
//! machine outlives labrun.

mod common;

use std::time::{Duration, Instant};

use common::{Lab, Ran, wait_until};

/// The qemu processes whose parent is `pid`.
fn machines_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let ppid = after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok());
            let exe = std::fs::read_link(format!("/proc/{p}/exe")).unwrap_or_default();
            ppid == Some(pid) && exe.to_string_lossy().contains("qemu-system")
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

const PORTABLE: &str = r#"
```console
$ echo "$HOME $LANG $TZ $PWD"
/root C.UTF-8 UTC /lab
$ hostname
portable
$ cat /etc/motd
set up once
$ ls /lab/.notebook
portable.md
$ echo made > here.txt && cat here.txt
made
```
"#;

#[test]
fn a_notebook_means_the_same_on_the_vm_and_container_backends() {
    let lab = Lab::new();
    lab.write(
        "portable.md",
        &format!(
            "---\nlabrun:\n  image: busybox\n  setup:\n    - echo 'set up once' > /etc/motd\n---\n{PORTABLE}"
        ),
    );
    for backend in ["container", "vm"] {
        let ran = lab.run(&["--backend", backend, "portable.md"]);
        ran.status(0).stdout_has("1 passed");
    }
    let ran = lab.run(&["--backend", "vm", "portable.md"]);
    ran.status(0).stdout_has("vm: tcg");
}

const WARM: &str = "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\nhead -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s\n```\n";

/// The random bytes and the clock a run's guest printed (see `WARM`).
fn random_and_clock(ran: &Ran) -> (String, i64) {
    let report = common::Report::of(ran);
    let out = report.output("cell-1");
    let mut lines = out.lines();
    let random = lines.next().unwrap_or_default().to_string();
    let clock = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (random, clock)
}

#[test]
fn a_second_run_starts_warm_from_a_snapshot_with_its_own_clock_and_randomness() {
    let lab = Lab::new();
    lab.write("warm.md", WARM);
    // A cache of the test's own: the first run boots and saves, the next ones restore.
    let cache = lab.path("cache");
    let env = [("LABRUN_CACHE", cache.to_str().unwrap())];
    let first = lab.run_env(&["--format", "json", "warm.md"], &env);
    first.status(0);
    assert!(
        first.stderr.contains("booted") || first.stdout.contains("booted"),
        "{}",
        first.stdout
    );
    let saved: Vec<_> = std::fs::read_dir(cache.join("vm"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        .collect();
    assert_eq!(saved.len(), 1, "one snapshot for one shape of machine");
    let second = lab.run_env(&["--format", "json", "warm.md"], &env);
    let third = lab.run_env(&["--format", "json", "warm.md"], &env);
    for ran in [&second, &third] {
        ran.status(0);
        assert!(
            common::Report::of(ran)
                .text
                .contains("restored from a snapshot"),
            "{}",
            ran.stdout
        );
    }
    let (r2, c2) = random_and_clock(&second);
    let (r3, c3) = random_and_clock(&third);
    assert_eq!(r2.len(), 32, "{r2}");
    assert_ne!(
        r2, r3,
        "guests of one snapshot do not share a random stream"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for c in [c2, c3] {
        assert!(
            (now - c).abs() < 120,
            "the guest's clock is this machine's: {c} vs {now}"
        );
    }
    // A snapshot that does not restore is dropped, and the run boots afresh.
    std::fs::write(saved[0].path(), b"not a guest").unwrap();
    let fourth = lab.run_env(&["--format", "json", "warm.md"], &env);
    fourth.status(0);
    assert!(
        !common::Report::of(&fourth)
            .text
            .contains("restored from a snapshot"),
        "{}",
        fourth.stdout
    );
    // And warm starts can be turned off.
    let cold = lab.run_env(
        &["--format", "json", "warm.md"],
        &[env[0], ("LABRUN_VM_SNAPSHOT", "0")],
    );
    cold.status(0);
    assert!(
        !common::Report::of(&cold).text.contains("restored"),
        "{}",
        cold.stdout
    );
}

/// A file of the vm's cache, `size` bytes (sparse), last used `days` ago.
fn stale_vm_file(cache: &std::path::Path, name: &str, size: u64, days: u64) -> std::path::PathBuf {
    let vm = cache.join("vm");
    std::fs::create_dir_all(&vm).unwrap();
    let path = vm.join(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    let then = std::time::SystemTime::now() - Duration::from_secs(days * 86400);
    file.set_times(std::fs::FileTimes::new().set_accessed(then))
        .unwrap();
    path
}

#[test]
fn a_vm_run_trims_the_vm_cache_to_its_budget_when_it_ends() {
    let lab = Lab::new();
    lab.write("warm.md", WARM);
    let cache = lab.path("cache");
    // What older labrun builds left, unused for days. With the run's own files (a kernel, an
    // initramfs and a snapshot: 150 to 250 MiB), only the last of them fits in the budget.
    let oldest = stale_vm_file(&cache, "snapshot-0123456789abcdef.bin", 500 << 20, 9);
    let older = stale_vm_file(&cache, "snapshot-1123456789abcdef.bin", 500 << 20, 8);
    let old = stale_vm_file(&cache, "initramfs-fedcba9876543210.cpio", 300 << 20, 3);
    let env = [
        ("LABRUN_CACHE", cache.to_str().unwrap()),
        ("LABRUN_VM_CACHE_MAX", "700MiB"),
    ];
    lab.run_env(&["-q", "warm.md"], &env).status(0);
    assert!(
        !oldest.exists() && !older.exists(),
        "the least recently used go first"
    );
    assert!(old.exists(), "the rest fit in the budget");
    let names: Vec<String> = std::fs::read_dir(cache.join("vm"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for kind in ["snapshot-", "initramfs-", "vmlinux-"] {
        assert!(
            names.iter().any(|n| n.starts_with(kind)),
            "the run's own {kind} file stays: {names:?}"
        );
    }
    // The next run starts from the files the trimming kept.
    let warm = lab.run_env(&["--format", "json", "warm.md"], &env);
    warm.status(0);
    assert!(
        common::Report::of(&warm)
            .text
            .contains("restored from a snapshot"),
        "{}",
        warm.stdout
    );

    // With no budget, nothing is trimmed; a budget that is not a size is refused by name.
    let kept = stale_vm_file(&cache, "snapshot-00000000000000aa.bin", 2 << 30, 9);
    lab.run_env(
        &["-q", "warm.md"],
        &[env[0], ("LABRUN_VM_CACHE_MAX", "none")],
    )
    .status(0);
    assert!(kept.exists());
    lab.run_env(
        &["-q", "warm.md"],
        &[env[0], ("LABRUN_VM_CACHE_MAX", "lots")],
    )
    .status(3)
    .stderr_has("LABRUN_VM_CACHE_MAX: invalid size 'lots'");
    assert!(kept.exists());
}

#[test]
fn the_guest_runs_its_own_kernel_with_the_agent_as_init() {
    let lab = Lab::new();
    lab.write(
        "kernel.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\nuname -r; cat /proc/1/comm; grep -c . /proc/modules\n```\n",
    );
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let ran = lab.run(&["--format", "json", "kernel.md"]);
    ran.status(0);
    let report = common::Report::of(&ran);
    let out = report.output("cell-1");
    let mut lines = out.lines();
    let release = lines.next().unwrap();
    assert_ne!(
        release,
        host_release.trim(),
        "the guest's kernel is not this machine's"
    );
    assert!(release.contains("amd64"), "{out}");
    assert_eq!(lines.next(), Some("init"));
    let modules: u32 = lines.next().unwrap().parse().unwrap();
    assert!(modules >= 5, "virtio, 9p and overlay modules loaded: {out}");
}

#[test]
fn the_host_image_hides_secrets_even_from_the_guests_root() {
    let lab = Lab::new_visible();
    lab.write("expected-output/secret.md/cell-1.out", "the answer\n");
    // Where the expected output is below each share's root: the notebook's own directory,
    // and this machine's top-level directory that holds it.
    let dir = lab.dir.path().canonicalize().unwrap();
    let below_top: std::path::PathBuf = dir.components().skip(2).collect();
    let expected = "expected-output/secret.md/cell-1.out";
    lab.write(
        "secret.md",
        &format!(
            r#"---
labrun:
  backend: vm
---

```bash | {{type: 'command', exit: any}}
wc -c < /etc/shadow; ls -A /root | wc -l
# The notebook's share, unmounted and mounted again by the guest's root: still covered.
umount /lab/.notebook && mkdir -p /mnt/nb && mount -t 9p -o trans=virtio,version=9p2000.L notebook /mnt/nb
ls /mnt/nb | tr '\n' ' '; echo
# Every other share that can be mounted again (those in use cannot): still covered.
for t in $(seq 0 40); do
  mkdir -p /mnt/s/$t
  mount -t 9p -o trans=virtio,version=9p2000.L h$t /mnt/s/$t 2>/dev/null
done
cat /mnt/s/*/etc/shadow /mnt/s/*/shadow /mnt/s/*/{below}/{expected} /mnt/nb/{expected} 2>/dev/null; echo end
```
"#,
            below = below_top.display()
        ),
    );
    let ran = lab.run(&["--format", "json", "--timeout", "120", "secret.md"]);
    let report = common::Report::of(&ran);
    let out = report.output("cell-1");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0", "0"], "{}", report.text);
    assert_eq!(
        lines[2], "expected-output secret.md ",
        "the guest mounted the notebook's share again: {}",
        report.text
    );
    assert_eq!(lines[3..], ["end"], "{}", report.text);
}

#[test]
fn a_guest_that_panics_is_named_with_its_console() {
    let lab = Lab::new();
    lab.write(
        "panic.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\ntrue\n```\n",
    );
    let started = Instant::now();
    let ran = lab.run_env(
        &["panic.md"],
        &[("LABRUN_VM_APPEND", "rdinit=/no-such-init")],
    );
    ran.status(3)
        .stderr_has("vm failed to boot: qemu exited")
        .stderr_has("the last lines of its console")
        .stderr_has("Kernel panic");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_guest_that_never_answers_fails_within_the_boot_timeout() {
    let lab = Lab::new();
    lab.write(
        "slow.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\ntrue\n```\n",
    );
    let started = Instant::now();
    let ran = lab.run_env(&["slow.md"], &[("LABRUN_VM_BOOT_TIMEOUT", "0.5")]);
    ran.status(3)
        .stderr_has("vm failed to boot: no answer from the guest within 0.5 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_guest_flooding_its_console_while_booting_shows_only_its_last_lines() {
    let lab = Lab::new();
    lab.write(
        "noisy.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command'}\ntrue\n```\n",
    );
    // Every initcall printed, and the agent never reached in time.
    let ran = lab.run_env(
        &["noisy.md"],
        &[
            ("LABRUN_VM_APPEND", "initcall_debug ignore_loglevel"),
            ("LABRUN_VM_BOOT_TIMEOUT", "3"),
        ],
    );
    ran.status(3)
        .stderr_has("vm failed to boot: no answer from the guest within 3 s")
        .stderr_has("initcall");
    let console = ran
        .stderr
        .split("the last lines of its console:\n")
        .nth(1)
        .unwrap();
    assert!(console.lines().count() <= 30, "{console}");
}

#[test]
fn a_missing_kernel_says_how_to_get_one() {
    let lab = Lab::new();
    lab.write(
        "nokernel.md",
        "---\nlabrun:\n  backend: vm\n  kernel: ./vmlinuz-none\n---\n\n```bash | {type: 'command', exit: any}\ntrue\n```\n",
    );
    let ran = lab.run(&["nokernel.md"]);
    ran.status(3)
        .stderr_has("vmlinuz-none does not exist")
        .stderr_has("install-vm.sh");
}

#[test]
fn a_flooded_console_costs_the_lab_nothing() {
    let lab = Lab::new();
    lab.write(
        "flood.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\n(yes flooding-the-console > /dev/console &) ; sleep 2; echo flooded\n```\n\n```bash | {type: 'command', exit: any}\necho still answering\n```\n",
    );
    let ran = lab.run(&["flood.md"]);
    ran.status(0).stdout_has("2 passed");
}

#[test]
fn cells_that_need_a_local_shell_are_refused_clearly() {
    let lab = Lab::new();
    lab.write(
        "tty.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', tty: true}\ntty\n```\n\n```bash | {type: 'command', exit: any}\necho after\n```\n",
    );
    let ran = lab.run(&["tty.md"]);
    ran.status(1)
        .stdout_has("tty cells are not supported on the vm backend yet")
        .stdout_has("1 passed, 1 failed");
}

/// Starts a long vm notebook and waits until its machine runs.
fn started_machine(lab: &Lab) -> (std::process::Child, u32) {
    lab.write(
        "long.md",
        "---\nlabrun:\n  backend: vm\n  image: busybox\n---\n\n```bash | {type: 'command', exit: any}\nsleep 300\n```\n",
    );
    let child = lab.spawn(&["--timeout", "400", "long.md"], &[]);
    let pid = child.id();
    let mut machine = None;
    assert!(
        wait_until(60.0, || {
            machine = machines_of(pid).first().copied();
            machine.is_some()
        }),
        "labrun starts qemu"
    );
    (child, machine.unwrap())
}

#[test]
fn killing_labrun_stops_its_machine() {
    let lab = Lab::new();
    let (mut child, machine) = started_machine(&lab);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wait_until(5.0, || !alive(machine)), "qemu dies with labrun");
}

#[test]
fn ctrl_c_exits_130_and_stops_its_machine() {
    let lab = Lab::new();
    let (child, machine) = started_machine(&lab);
    // Past the boot, into the cell.
    std::thread::sleep(Duration::from_secs(8));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let ran = Ran::from(out);
    assert_eq!(ran.status, 130, "{}{}", ran.stdout, ran.stderr);
    assert!(wait_until(5.0, || !alive(machine)), "no qemu is left");
}
