//! An end-to-end test builder: write notebook files into a temp dir, run the real labrun
//! binary there, and assert its stdout, stderr, exit status and the files it leaves.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The labrun binary under test: `LABRUN_BIN` when set (the rootless run copies the binaries
/// where an unprivileged user can read them), else the one cargo built.
pub fn labrun_bin() -> PathBuf {
    std::env::var_os("LABRUN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_labrun")))
}

pub struct Lab {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Lab {
    pub fn new() -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Lab {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        Ran::from(self.command(args, env).output().unwrap())
    }
}

impl Ran {
    #[track_caller]
    pub fn status(&self, want: i32) -> &Ran {
        assert_eq!(
            self.status, want,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Ran {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Ran {
        assert!(
            !self.stdout.contains(needle),
            "stdout has {needle:?}\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Ran {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A root made of the host's static busybox at `dir`: `bin/busybox` and a link to it for each
/// of `applets`.
pub fn busybox_tree(dir: &Path, applets: &[&str]) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in applets {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

// ---------------------------------------------------------------------------------------
// Helpers for the isolation tests (tests/isolation*.rs): real containers through the real
// binary, probed from the outside (processes, mounts, cgroups, run directories).
// ---------------------------------------------------------------------------------------

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A string no other test (or test process) uses: tag, pid, a counter and the clock.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{tag}-{}-{n}-{nanos}", std::process::id())
}

/// A `sleep` argument of about `secs` seconds that no other process on this machine has:
/// `secs.<pid><counter><clock>`, so the sleeper can be found in `/proc/*/cmdline`.
pub fn unique_sleep(secs: u32) -> String {
    let digits: String = unique("").chars().filter(char::is_ascii_digit).collect();
    format!("{secs}.{digits}")
}

/// Host pids of processes with `arg` as one of their arguments (exactly).
pub fn pids_with_arg(arg: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Polls `done` every 20 ms until it holds or `secs` pass; returns whether it held.
pub fn wait_until(secs: f64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// This process's mount table as the kernel shows it.
pub fn host_mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The run directory (`.../labrun-<uid>/run-<token>`) a live labrun holds locked, found
/// through its open descriptors.
pub fn run_dir_of(pid: u32) -> Option<PathBuf> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().find_map(|fd| {
        let target = fs::read_link(fd.path()).ok()?;
        let dir = target.parent()?;
        let is_run = target.file_name()? == "lock"
            && dir.file_name()?.to_str()?.starts_with("run-")
            && dir.parent()?.file_name()?.to_str()?.starts_with("labrun-");
        is_run.then(|| dir.to_path_buf())
    })
}

/// The cgroup directories (any hierarchy, v1 or v2) of the run whose run directory is `run`:
/// they are named `labrun-<uid>-<token>`.
pub fn cgroups_of_run(run: &Path) -> Vec<PathBuf> {
    let token = run
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("run-"))
        .unwrap_or_default();
    let name = format!("labrun-{}-{token}", nix::unistd::getuid());
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_str() == Some(name.as_str()) {
                found.push(e.path());
            } else if depth < 5 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

impl Lab {
    /// A lab outside `/tmp` when it can be (cargo's per-target scratch directory), so that
    /// the `host` image's hiding of the notebook's own directory is actually tested, not
    /// covered by `/tmp` being hidden as a whole.
    pub fn new_visible() -> Lab {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let _ = fs::create_dir_all(&base);
        match tempfile::tempdir_in(&base) {
            Ok(dir) => Lab { dir },
            Err(_) => Lab::new(),
        }
    }

    /// labrun (see [`labrun_bin`]) with these arguments, in the lab, without the caller's
    /// CI variable and colours.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(labrun_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("CI")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs labrun ([`labrun_bin`]) to the end.
    pub fn exec(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        Ran::from(self.command(args, env).output().unwrap())
    }

    /// Starts labrun ([`labrun_bin`]) with stdout and stderr piped.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        self.command(args, env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs `nb` with `--format json` and returns the run and its report.
    pub fn report(&self, nb: &str, env: &[(&str, &str)]) -> (Ran, Report) {
        let ran = self.exec(&["--format", "json", nb], env);
        let report = Report::of(&ran);
        (ran, report)
    }
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The JSON report of one notebook, with the whole text kept for failure messages.
pub struct Report {
    pub doc: serde_json::Value,
    pub text: String,
}

impl Report {
    #[track_caller]
    pub fn of(ran: &Ran) -> Report {
        let doc = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| {
            panic!(
                "not a JSON report ({e})\n--- stdout\n{}\n--- stderr\n{}",
                ran.stdout, ran.stderr
            )
        });
        Report {
            doc,
            text: format!("{}\n--- stderr\n{}", ran.stdout, ran.stderr),
        }
    }

    fn notebook(&self) -> &serde_json::Value {
        &self.doc["notebooks"][0]
    }

    #[track_caller]
    fn cell(&self, id: &str) -> &serde_json::Value {
        self.notebook()["cells"]
            .as_array()
            .and_then(|cells| cells.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no cell {id} in the report:\n{}", self.text))
    }

    /// `passed`, `failed`, ...
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.cell(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// Everything the cell's steps printed, in order.
    #[track_caller]
    pub fn output(&self, id: &str) -> String {
        self.cell(id)["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .filter_map(|s| s["output"].as_str())
                    .collect::<String>()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn notes(&self, id: &str) -> Vec<String> {
        strings(&self.cell(id)["notes"])
    }

    /// The exit code of the cell's last step.
    #[track_caller]
    pub fn exit_code(&self, id: &str) -> Option<i64> {
        self.cell(id)["steps"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["exit_code"].as_i64())
    }

    #[track_caller]
    pub fn truncated_bytes(&self, id: &str) -> u64 {
        self.cell(id)["steps"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["truncated_bytes"].as_u64()).sum())
            .unwrap_or(0)
    }

    /// The `KEY=value` lines cell `id` printed (see [`probe_values`]).
    #[track_caller]
    pub fn values(&self, id: &str) -> Values<'_> {
        Values {
            map: probe_values(&self.output(id)),
            report: self,
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        strings(&self.notebook()["warnings"])
    }

    /// Asserts that cell `id` has status `want`, showing the report otherwise.
    #[track_caller]
    pub fn assert_status(&self, id: &str, want: &str) {
        assert_eq!(self.status(id), want, "cell {id}:\n{}", self.text);
    }

    /// Asserts that one of cell `id`'s notes contains `needle`.
    #[track_caller]
    pub fn assert_note(&self, id: &str, needle: &str) {
        assert!(
            self.notes(id).iter().any(|n| n.contains(needle)),
            "cell {id} has no note with {needle:?}:\n{}",
            self.text
        );
    }

    /// Asserts that one of the notebook's warnings contains `needle`.
    #[track_caller]
    pub fn assert_warning(&self, needle: &str) {
        assert!(
            self.warnings().iter().any(|w| w.contains(needle)),
            "no warning with {needle:?}:\n{}",
            self.text
        );
    }
}

/// A probe's `KEY=value` lines, tied to the report to show when a key is missing.
pub struct Values<'a> {
    pub map: std::collections::BTreeMap<String, String>,
    report: &'a Report,
}

impl Values<'_> {
    #[track_caller]
    pub fn get(&self, key: &str) -> &str {
        self.map
            .get(key)
            .unwrap_or_else(|| panic!("the probe printed no {key}=:\n{}", self.report.text))
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `KEY=value` lines of a probe's output, the last one of each key winning.
pub fn probe_values(output: &str) -> std::collections::BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A notebook of command cells `(id, script)` that accept any exit status, after optional
/// `labrun:` settings (YAML lines, indented here). Probes print `KEY=value` lines and the
/// test reads them from the JSON report.
pub fn probe_notebook(settings: &str, cells: &[(&str, &str)]) -> String {
    let mut s = String::new();
    if !settings.trim().is_empty() {
        s.push_str("---\nlabrun:\n");
        for line in settings.lines() {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("---\n");
    }
    s.push_str("# Probe\n\n");
    for (id, script) in cells {
        s.push_str("```bash | {type: 'command', id: '");
        s.push_str(id);
        s.push_str("', exit: any}\n");
        s.push_str(script.trim_end());
        s.push_str("\n```\n\n");
    }
    s
}

/// The mount-table lines that differ between `before` and `after` and could be labrun's: a
/// container's mount leaking back (propagation) would be an overlay, or sit on the run
/// directory, the lab's `dirs`, `/`, or one of the paths the `host` image hides or the
/// runtime mounts (`/proc`, `/sys`, `/dev`, `/root`, `/tmp`, ...). Changes elsewhere (other
/// programs on a shared machine mounting their own things, such as podman's
/// `/var/lib/containers`) are printed and not counted.
pub fn labrun_mount_changes(before: &str, after: &str, dirs: &[&Path]) -> Vec<String> {
    let old: std::collections::BTreeSet<&str> = before.lines().collect();
    let new: std::collections::BTreeSet<&str> = after.lines().collect();
    let runtime_paths = [
        "/proc", "/sys", "/dev", "/root", "/home", "/tmp", "/var/tmp", "/run", "/mnt", "/media",
        "/etc", "/lab",
    ];
    let under = |p: &str, base: &str| p == base || p.starts_with(&format!("{base}/"));
    let mut suspect = Vec::new();
    for (sign, line) in new
        .difference(&old)
        .map(|l| ('+', *l))
        .chain(old.difference(&new).map(|l| ('-', *l)))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let root = fields.get(3).copied().unwrap_or("");
        let point = fields.get(4).copied().unwrap_or("");
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("");
        let ours = line.contains("labrun")
            || fstype == "overlay"
            || point == "/"
            || runtime_paths.iter().any(|b| under(point, b))
            || dirs.iter().any(|d| {
                let d = d.to_str().unwrap_or("");
                under(point, d) || under(root, d)
            });
        if ours {
            suspect.push(format!("{sign} {line}"));
        } else {
            eprintln!("not labrun's, ignored: mount table {sign} {line}");
        }
    }
    suspect
}
