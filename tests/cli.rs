//! End to end: the real binary on real notebooks, asserting stdout, exit status and files.

mod common;

use common::Lab;

const PASSING: &str = "---
labrun:
  backend: host
---
# Greeting

```console
$ echo hello
hello
$ printf 'a\\nb\\n'
a
b
$ false
[1]
```

```bash | {type: 'command'}
echo docable
```

```output
docable
```
";

#[test]
fn a_passing_notebook_exits_zero() {
    let lab = Lab::new();
    lab.write("nb.md", PASSING);
    lab.run(&["nb.md"])
        .status(0)
        .stdout_has("ok    greeting-1")
        .stdout_has("ok    greeting-2")
        .stdout_has("2 passed, 0 failed");
}

#[test]
fn a_failing_cell_shows_place_command_and_diff() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "# Intro\n\n```console\n$ echo hello world\nhello there\n```\n\n```console\n$ echo next\nnext\n```\n",
    );
    let r = lab.run(&["nb.md"]);
    r.status(1)
        .stdout_has("FAIL  intro-1")
        .stdout_has("nb.md:4")
        .stdout_has("$ echo hello world")
        .stdout_has("- hello there")
        .stdout_has("+ hello world")
        .stdout_has("ok    intro-2")
        .stdout_lacks("\x1b[");
}

#[test]
fn colours_only_when_asked() {
    let lab = Lab::new();
    lab.write("nb.md", "```console\n$ echo a\nb\n```\n");
    let r = lab.run(&["--color", "always", "nb.md"]);
    r.status(1);
    assert!(r.stdout.contains("\x1b["), "{}", r.stdout);
}

#[test]
fn json_is_one_document() {
    let lab = Lab::new();
    lab.write("nb.md", PASSING);
    let r = lab.run(&["--format", "json", "nb.md"]);
    r.status(0);
    let doc = r.json();
    assert_eq!(doc["exit_code"], 0);
    let cells = &doc["notebooks"][0]["cells"];
    assert_eq!(cells[0]["id"], "greeting-1");
    assert_eq!(cells[0]["status"], "passed");
    assert_eq!(cells[0]["steps"][2]["exit_code"], 1);
    assert_eq!(cells[0]["steps"][0]["output"], "hello\n");
}

#[test]
fn update_records_golden_files_and_rewrites_only_expectations() {
    let lab = Lab::new();
    let original = "Intro text stays.\n\n```console\n$ echo one; echo two\none\nold\n$ date +%Y\n[0-9]+ (re)\n$ exit 3\n```\n\n```bash | {type: 'command'}\necho golden\n```\n\nTrailing prose.\n";
    lab.write("nb.md", original);
    lab.run(&["nb.md"]).status(1);
    assert_eq!(
        lab.read("nb.md"),
        original,
        "nothing is written without --update"
    );
    lab.run_env(&["--update", "nb.md"], &[("CI", "true")])
        .status(2)
        .stderr_has("--force");
    assert_eq!(lab.read("nb.md"), original);
    lab.run(&["--update", "nb.md"]).status(0);
    let updated = lab.read("nb.md");
    assert_eq!(
        updated,
        "Intro text stays.\n\n```console\n$ echo one; echo two\none\ntwo\n$ date +%Y\n[0-9]+ (re)\n$ exit 3\n[3]\n```\n\n```bash | {type: 'command'}\necho golden\n```\n\nTrailing prose.\n"
    );
    assert_eq!(lab.read("expected-output/nb/cell-2.out"), "golden\n");
    lab.run(&["nb.md"]).status(0);
}

#[test]
fn update_never_records_a_cell_that_failed_otherwise() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {type: 'command', exit: 0}\necho out; exit 4\n```\n",
    );
    lab.run(&["--update", "nb.md"])
        .status(1)
        .stderr_has("not recorded");
    assert!(!lab.path("expected-output").exists());
}

#[test]
fn update_rewrites_output_blocks_and_lengthens_fences() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {type: 'command'}\nprintf '```\\nx\\n'\n```\n\n```output\nold\n```\n",
    );
    lab.run(&["--update", "nb.md"]).status(0);
    assert_eq!(
        lab.read("nb.md"),
        "```bash | {type: 'command'}\nprintf '```\\nx\\n'\n```\n\n````output\n```\nx\n````\n"
    );
    lab.run(&["nb.md"]).status(0);
}

#[test]
fn golden_files_are_checked() {
    let lab = Lab::new();
    lab.write("expected-output/docs/nb/intro-1.out", "hello [..]\n");
    lab.write(
        "docs/nb.md",
        "# Intro\n```bash | {type: 'command'}\necho hello world\n```\n",
    );
    lab.run(&["docs/nb.md"]).status(0);
    lab.write("expected-output/docs/nb/intro-1.out", "goodbye\n");
    lab.run(&["docs/nb.md"]).status(1).stdout_has("- goodbye");
}

#[test]
fn list_shows_every_cell() {
    let lab = Lab::new();
    lab.write("nb.md", PASSING);
    let r = lab.run(&["list", "nb.md"]);
    r.status(0)
        .stdout_has("greeting-1")
        .stdout_has("transcript")
        .stdout_has("echo hello")
        .stdout_has("greeting-2")
        .stdout_has("command")
        .stdout_has("host");
}

#[test]
fn list_shows_each_cells_target_and_its_backend() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "---\nlabrun:\n  targets:\n    server:\n      backend: host\n    client: {}\n---\n\n```bash | {type: 'command'}\necho one\n```\n\n```bash | {type: 'command', target: client}\necho two\n```\n",
    );
    let r = lab.run(&["list", "nb.md"]);
    r.status(0).stdout_has("TARGET");
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .filter(|l| l.contains("echo"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][3..5], ["server", "host"], "{}", r.stdout);
    assert_eq!(rows[1][3..5], ["client", "container"], "{}", r.stdout);
    lab.write(
        "bad.md",
        "---\nlabrun:\n  targets:\n    a: {}\n---\n\n```bash | {type: 'command', target: b}\necho\n```\n",
    );
    lab.run(&["bad.md"])
        .status(2)
        .stderr_has("bad.md:7: unknown target 'b' (the notebook's targets: a)");
}

#[test]
fn bad_input_is_a_one_line_error_with_a_place() {
    let lab = Lab::new();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "annotation.md",
            b"# A\n\n```bash | {type: 'command'\necho\n```\n",
            "annotation.md:3:",
        ),
        (
            "type.md",
            b"```bash | {type: 'teleport'}\necho\n```\n",
            "type.md:1:",
        ),
        (
            "front.md",
            b"---\nlabrun:\n  backend: [unclosed\n---\n",
            "front.md:",
        ),
        ("utf8.md", b"# ok\n\nabc \xff\xfe\n", "utf8.md:3:5"),
        (
            "dup.md",
            b"```bash | {id: x}\necho\n```\n```bash | {id: x}\necho\n```\n",
            "dup.md:4:",
        ),
    ];
    for (name, body, place) in cases {
        let p = lab.path(name);
        std::fs::write(&p, body).unwrap();
        let r = lab.run(&[name]);
        r.status(2);
        assert!(r.stderr.contains(place), "{name}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

#[test]
fn a_yaml_alias_bomb_is_refused_fast() {
    let lab = Lab::new();
    let mut bomb =
        String::from("---\nlabrun:\n  env:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!(
            "    a{i}: &a{i} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n",
            p = prev
        ));
    }
    bomb.push_str("---\n");
    lab.write("bomb.md", &bomb);
    let start = std::time::Instant::now();
    lab.run(&["bomb.md"]).status(2);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn crlf_and_bom_give_the_same_cells() {
    let lab = Lab::new();
    let lf = "# T\n\n```console\n$ echo a\na\n```\n";
    lab.write("lf.md", lf);
    lab.write("crlf.md", &format!("\u{feff}{}", lf.replace('\n', "\r\n")));
    let a = lab.run(&["--format", "json", "lf.md"]);
    let b = lab.run(&["--format", "json", "crlf.md"]);
    a.status(0);
    b.status(0);
    let ids = |r: &common::Ran| r.json()["notebooks"][0]["cells"][0]["id"].clone();
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn environments_that_cannot_be_made_exit_three() {
    let lab = Lab::new();
    lab.write("nb.md", "```console\n$ true\n```\n");
    lab.run(&["--backend", "vm", "--kernel", "/no/such/vmlinuz", "nb.md"])
        .status(3)
        .stderr_has("the kernel /no/such/vmlinuz does not exist");
    lab.write(
        "img.md",
        "---\nlabrun: {image: no-such-image-kind:1}\n---\n```console\n$ true\n```\n",
    );
    lab.run(&["img.md"])
        .status(3)
        .stderr_has("no-such-image-kind:1");
}

#[test]
fn selection_and_fail_fast() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {id: a}\necho a\n```\n```bash | {id: b}\nfalse\n```\n```bash | {id: c}\necho c\n```\n",
    );
    lab.run(&["--only", "a,c", "nb.md"])
        .status(0)
        .stdout_lacks(" b ");
    lab.run(&["--from", "c", "nb.md"])
        .status(0)
        .stdout_has("ok    c");
    lab.run(&["--to", "a", "nb.md"])
        .status(0)
        .stdout_lacks("  c ");
    lab.run(&["--fail-fast", "nb.md"])
        .status(1)
        .stdout_lacks("ok    c")
        .stdout_has("--fail-fast");
    lab.run(&["--only", "zzz", "nb.md"])
        .status(2)
        .stderr_has("zzz");
}

#[test]
fn timeouts_fail_the_cell_and_the_run_goes_on() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {type: 'command', timeout: '500ms'}\necho started; sleep 30\n```\n```console\n$ echo after\nafter\n```\n",
    );
    let start = std::time::Instant::now();
    lab.run(&["nb.md"])
        .status(1)
        .stdout_has("timeout after 500 ms")
        .stdout_has("| started")
        .stdout_has("ok    cell-2");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn failed_when_and_variables() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {type: 'command', failed_when: \"!stdout.includes('Ada')\", variables: 'name'}\necho hello {{name}}; exit 5\n```\n",
    );
    lab.run(&["nb.md"]).status(2).stderr_has("--var name=");
    lab.run(&["--var", "name=Ada", "nb.md"]).status(0);
    lab.run(&["--var", "name=Bob", "nb.md"])
        .status(1)
        .stdout_has("failed_when");
}

#[test]
fn environment_is_fixed_and_env_passes_values() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "---\nlabrun:\n  env: {FROM_NOTEBOOK: yes}\n---\n```console\n$ echo \"$FROM_NOTEBOOK [$SECRET_TOKEN] $LANG $TZ $TERM [$FROM_FLAG]\"\nyes [] C.UTF-8 UTC dumb [given]\n```\n",
    );
    lab.run_env(
        &["--env", "FROM_FLAG=given", "nb.md"],
        &[("SECRET_TOKEN", "s3cret")],
    )
    .status(0);
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let lab = Lab::new();
    lab.write("nb.md", PASSING);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} nb.md | head -c 1; exit ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_labrun")
        ))
        .current_dir(lab.dir.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn several_notebooks_combine_exit_statuses() {
    let lab = Lab::new();
    lab.write("good.md", "```console\n$ true\n```\n");
    lab.write("bad.md", "```console\n$ false\n```\n");
    lab.write("broken.md", "```bash | {type: 'nope'}\nx\n```\n");
    lab.run(&["good.md", "bad.md"]).status(1);
    lab.run(&["good.md", "bad.md", "broken.md"]).status(2);
    lab.run(&["-j", "1", "good.md", "good.md"])
        .status(0)
        .stdout_has("2 notebooks");
}

#[test]
fn missing_notebook_is_a_usage_error() {
    let lab = Lab::new();
    lab.run(&["nope.md"]).status(2).stderr_has("nope.md");
}

#[test]
fn update_rewrites_a_single_line_expect_attribute() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "```bash | {type: 'command', expect: 'old', timeout: 10s}\necho \"new \\\"one\\\"\"\n```\n",
    );
    lab.run(&["nb.md"]).status(1);
    lab.run(&["--update", "nb.md"]).status(0);
    assert_eq!(
        lab.read("nb.md"),
        "```bash | {type: 'command', expect: \"new \\\"one\\\"\", timeout: 10s}\necho \"new \\\"one\\\"\"\n```\n"
    );
    lab.run(&["nb.md"]).status(0);
}

/// Processes whose command line contains `needle` (pgrep would match itself in some setups).
fn processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn background_and_detached_processes_die_with_the_run() {
    let lab = Lab::new();
    let tag = format!("labrun-bg-{}", std::process::id());
    lab.write(
        "nb.md",
        &format!(
            "```bash | {{type: 'command'}}\n(exec -a {tag}-a sleep 1000) &\nsetsid nohup bash -c 'exec -a {tag}-b sleep 1000' >/dev/null 2>&1 &\necho started\n```\n"
        ),
    );
    lab.run(&["nb.md"]).status(0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(processes_matching(&tag), Vec::<String>::new());
}

#[test]
fn ctrl_c_exits_130_and_leaves_nothing_behind() {
    let lab = Lab::new();
    let tag = format!("labrun-int-{}", std::process::id());
    lab.write(
        "nb.md",
        &format!("```bash | {{type: 'command'}}\nexec -a {tag} sleep 1000\n```\n"),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_labrun"))
        .arg("nb.md")
        .current_dir(lab.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while processes_matching(&tag).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!processes_matching(&tag).is_empty(), "the cell started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(processes_matching(&tag), Vec::<String>::new());
}

/// A uid above `from` that the machine's user database does not know.
fn unknown_uid(from: u32) -> u32 {
    (from..)
        .find(|&uid| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .is_none()
        })
        .unwrap()
}

#[test]
fn a_caller_no_user_database_knows_is_named_by_the_login() {
    // What an LDAP or SSSD user looks like when its directory cannot answer: a uid that no
    // name service knows. labrun asks the machine's name services (Debian's nsswitch.conf
    // says `passwd: files systemd`), then takes USER or LOGNAME. A static labrun crashed here
    // with SIGSEGV, in the systemd module it loaded.
    if !common::is_root() {
        eprintln!("skipped: only root can run labrun as a uid nobody knows");
        return;
    }
    let uid = unknown_uid(42420).to_string();
    let lab = Lab::new();
    std::fs::set_permissions(
        lab.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let notebook = |name: &str| {
        format!(
            "---\nlabrun:\n  backend: host\n---\n\n```console\n$ echo \"$USER\"\n{name}\n$ id -u\n{uid}\n```\n"
        )
    };
    lab.write("user.md", &notebook("ghost"));
    lab.write("logname.md", &notebook("spectre"));
    let run_as = |nb: &str, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid", &uid, "--regid", &uid, "--clear-groups"])
            .arg(common::labrun_bin())
            .arg(nb)
            .current_dir(lab.dir.path())
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("CI")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("LABRUN_RUN_DIR")
            .env("NO_COLOR", "1")
            .env("HOME", "/nonexistent");
        for (k, v) in env {
            cmd.env(k, v);
        }
        common::Ran::from(cmd.output().unwrap())
    };
    run_as("user.md", &[("USER", "ghost"), ("LOGNAME", "other")])
        .status(0)
        .stdout_has("1 passed");
    run_as("logname.md", &[("LOGNAME", "spectre")])
        .status(0)
        .stdout_has("1 passed");
    // The run's private directories went with it; the per-user one above them is removed
    // here, as nothing else would.
    let _ = std::fs::remove_dir(format!("/dev/shm/labrun-{uid}"));
}
