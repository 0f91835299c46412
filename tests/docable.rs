//! Workshops as written: interactive and tty cells on labrun's terminal, background programs,
//! edit cells, `user:` and `shell:`, `labrun list` of a docable workshop, and `path:` values
//! that try to leave the environment. Real cells in real containers (and the host backend
//! where a test looks at this machine's processes).

mod common;

use common::{Lab, Report, pids_with_arg, unique, unique_sleep, wait_until};

/// A busybox root in `rootfs`, made by the notebook's first cell.
const ROOTFS: &str = "```bash | {id: rootfs}\nmkdir -p rootfs/bin && cp \"$(command -v busybox)\" rootfs/bin/busybox && chroot rootfs /bin/busybox --install -s /bin\n```\n\n";

fn notebook(cells: &str) -> String {
    format!("# T\n\n{ROOTFS}{cells}")
}

fn run(cells: &str, args: &[&str]) -> (Lab, Report) {
    let lab = Lab::new();
    lab.write("nb.md", &notebook(cells));
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    all.push("nb.md");
    let ran = lab.exec(&all, &[]);
    let report = Report::of(&ran);
    (lab, report)
}

fn failures(report: &Report) -> String {
    report.text.clone()
}

#[test]
fn a_chroot_session_is_typed_at_its_prompt_and_checked() {
    let cells = "```bash | {type: 'interactive', prompt: 'C-$ ', id: chroot}\n$ PS1='C-$ ' chroot rootfs /bin/sh\nC-$ touch HELLO.txt\nC-$ ls -1 / | grep -v linuxrc\nHELLO.txt\nbin\nC-$ exit\n```\n\n```console | {id: after}\n$ ls rootfs/HELLO.txt\nrootfs/HELLO.txt\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("chroot", "passed");
    report.assert_status("after", "passed");
}

#[test]
fn a_wrong_screen_fails_with_the_step_that_showed_it() {
    let cells = "```bash | {type: 'interactive', prompt: 'C-$ ', id: chroot}\n$ PS1='C-$ ' chroot rootfs /bin/sh\nC-$ echo one\ntwo\nC-$ exit\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("chroot", "failed");
    assert!(
        report.output("chroot").contains("one\n"),
        "{}",
        failures(&report)
    );
}

#[test]
fn a_prompt_that_never_comes_fails_at_the_timeout_with_the_screen() {
    let cells = "```bash | {type: 'interactive', prompt: 'never> ', timeout: 1, id: stuck}\n$ PS1='shown$ ' chroot rootfs /bin/sh\nnever> ls\n```\n\n```console | {id: after}\n$ echo next\nnext\n```\n";
    let started = std::time::Instant::now();
    let (_lab, report) = run(cells, &[]);
    report.assert_status("stuck", "failed");
    assert!(started.elapsed().as_secs() < 20);
    assert!(
        report.text.contains("did not appear within 1.0 s") && report.text.contains("shown$"),
        "{}",
        report.text
    );
    // The session goes on.
    report.assert_status("after", "passed");
}

#[test]
fn tty_commands_run_on_a_terminal_and_see_end_of_file() {
    let cells = "```bash | {tty: true, id: tty}\ntest -t 0 && test -t 1 && echo terminal; cat; echo \"size $(stty size)\"; echo controlling > /dev/tty\n```\n```output\nterminal\nsize 24 80\ncontrolling\n```\n\n```bash | {id: plain}\ntest -t 0 || echo no terminal\n```\n```output\nno terminal\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("tty", "passed");
    report.assert_status("plain", "passed");
}

#[test]
fn a_served_program_is_waited_for_used_and_stopped_at_the_end() {
    // A fixed port only in the container: its network namespace is its own.
    let cells = "```bash | {serve: true, wait_for: 'port:8080', id: web}\necho hello > index.html; busybox httpd -f -p 127.0.0.1:8080 -h .\n```\n\n```console | {id: after}\n$ busybox wget -q -O - http://127.0.0.1:8080/index.html\nhello\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("web", "passed");
    report.assert_status("after", "passed");
}

#[test]
fn spawned_programs_wait_for_output_or_a_file_and_end_with_the_run() {
    let sleep = unique_sleep(300);
    let cells = format!(
        "```bash | {{spawn: true, wait_for: 'output:up', id: out}}\necho up; exec sleep {sleep}\n```\n\n```bash | {{spawn: true, wait_for: 'file:ready', id: file}}\nsleep 0.2; touch ready; sleep 100\n```\n\n```console | {{id: after}}\n$ ls ready\nready\n```\n"
    );
    for backend in ["container", "host"] {
        let (_lab, report) = run(&cells, &["--backend", backend]);
        for id in ["out", "file", "after"] {
            report.assert_status(id, "passed");
        }
        assert!(
            wait_until(5.0, || pids_with_arg(&sleep).is_empty()),
            "{backend}: the background sleep outlived the run"
        );
    }
}

#[test]
fn a_background_program_that_never_gets_ready_fails_with_its_output() {
    let cells = "```bash | {serve: true, wait_for: 'port:9', timeout: 1, id: web}\necho starting; sleep 30\n```\n\n```bash | {spawn: true, wait_for: 'file:never', id: gone}\necho bye\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("web", "failed");
    report.assert_status("gone", "failed");
    assert!(report.text.contains("no sign of port 9"), "{}", report.text);
    assert!(report.text.contains("| starting"), "{}", report.text);
    assert!(
        report.text.contains("ended before the file never"),
        "{}",
        report.text
    );
}

#[test]
fn background_programs_die_when_labrun_is_interrupted() {
    let sleep = unique_sleep(300);
    let lab = Lab::new();
    lab.write(
        "nb.md",
        &format!("# T\n\n```bash | {{spawn: true}}\nsleep {sleep} & wait\n```\n\n```bash | {{type: command}}\nsleep 60\n```\n"),
    );
    let mut child = lab.spawn(&["--backend", "host", "nb.md"], &[]);
    assert!(wait_until(20.0, || !pids_with_arg(&sleep).is_empty()));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(wait_until(5.0, || pids_with_arg(&sleep).is_empty()));
}

#[test]
fn edit_cells_apply_a_diff_and_show_a_hunk_that_does_not_apply() {
    let cells = "```bash | {type: file, path: app/conf.txt}\nname=old\nport=80\n```\n\n```diff | {type: edit, path: app/conf.txt, id: good}\n--- a/conf.txt\n+++ b/conf.txt\n@@ -1,2 +1,2 @@\n-name=old\n+name=new\n port=80\n```\n\n```diff | {type: edit, path: app/conf.txt, id: bad}\n@@ -2 +2 @@\n-port=8080\n+port=1\n```\n\n```console | {id: after}\n$ cat app/conf.txt\nname=new\nport=80\n```\n";
    let (_lab, report) = run(cells, &[]);
    report.assert_status("good", "passed");
    report.assert_status("bad", "failed");
    assert!(
        report
            .text
            .contains("hunk 1 does not apply to app/conf.txt")
            && report.text.contains("-port=8080"),
        "{}",
        report.text
    );
    report.assert_status("after", "passed");
}

#[test]
fn user_and_shell_per_cell() {
    let cells = "```bash | {user: nobody, id: who}\nid -un\n```\n```output\nnobody\n```\n\n```bash | {type: file, path: owned.txt, user: nobody, id: owned}\nx\n```\n\n```bash | {shell: sh, id: sh}\necho \"${BASH_VERSION:-no bash}\"\n```\n```output\nno bash\n```\n\n```console | {id: after}\n$ stat -c %U owned.txt\nnobody\n```\n";
    let (_lab, report) = run(cells, &[]);
    for id in ["who", "owned", "sh", "after"] {
        report.assert_status(id, "passed");
    }
}

#[test]
fn list_shows_a_docable_workshop_with_the_blocks_it_does_not_run() {
    let lab = Lab::new();
    lab.write(
        "w.md",
        "# W\n\n```bash\nsetup-something\n```\n\n```bash | {type:'command'}\nbakerx run x\n```\n\n```bash|{type:'file',path:'id.js'}\nconsole.log(1)\n```\n\n```bash | {type: 'quiz'}\nq\n```\n",
    );
    let ran = lab.run(&["list", "w.md"]);
    ran.status(0)
        .stdout_has("  -        3  not run     -          setup-something\n")
        .stdout_has("  w-1      7  command     container  bakerx run x\n")
        .stdout_has("  w-2     11  file        container  -> id.js\n")
        .stdout_has("  w-3     15  skipped     container  docable ui cell 'quiz'\n");
    lab.run(&["list", "--run-all", "w.md"])
        .status(0)
        .stdout_lacks("not run")
        .stdout_has("setup-something");
}

#[test]
fn paths_reach_only_the_environments_own_files() {
    let marker = unique("escape");
    let cells = format!(
        "```bash | {{type: file, path: '/etc/{marker}', id: abs}}\nx\n```\n\n```bash | {{type: file, path: '../../../../etc/{marker}-up', id: up}}\nx\n```\n\n```bash | {{id: plant}}\nln -s /etc planted\n```\n\n```bash | {{type: file, path: 'planted/{marker}-link', id: link}}\nx\n```\n\n```bash | {{path: planted, id: cwd}}\ntouch {marker}-cwd\n```\n"
    );
    let (_lab, report) = run(&cells, &[]);
    for suffix in ["", "-up", "-link", "-cwd"] {
        let host = std::path::Path::new("/etc").join(format!("{marker}{suffix}"));
        assert!(!host.exists(), "{} reached the host", host.display());
    }
    // Inside the container they are the container's own files.
    report.assert_status("abs", "passed");
    report.assert_status("link", "passed");
    // On the host backend, anything that leaves the lab's directory is refused.
    let (_lab, report) = run(&cells, &["--backend", "host"]);
    for id in ["abs", "up", "link", "cwd"] {
        report.assert_status(id, "failed");
    }
    for suffix in ["", "-up", "-link", "-cwd"] {
        let host = std::path::Path::new("/etc").join(format!("{marker}{suffix}"));
        assert!(!host.exists(), "{} reached the host", host.display());
    }
}

#[test]
fn a_script_cell_names_the_interpreter_it_lacks() {
    let cells = "```ruby | {type: 'script', id: rb}\nputs 1\n```\n\n```python | {type: 'script', id: py}\nprint(6 * 7)\n```\n```output\n42\n```\n";
    let (_lab, report) = run(cells, &["--backend", "host"]);
    report.assert_status("py", "passed");
    report.assert_status("rb", "failed");
    assert!(
        report
            .text
            .contains("the interpreter 'ruby' is not installed"),
        "{}",
        report.text
    );
}

#[test]
fn programs_beside_the_session_see_its_state_on_every_backend() {
    let cells = "```console\n$ export GREETING=hi; mkdir -p sub; cd sub\n```\n\n```bash | {type: 'interactive', prompt: 'p$ ', id: talk}\n$ PS1='p$ ' sh\np$ echo \"$GREETING from $(basename \"$PWD\")\"\nhi from sub\np$ exit\n```\n\n```bash | {tty: true, id: tty}\necho \"$GREETING on a terminal\"\n```\n```output\nhi on a terminal\n```\n\n```bash | {spawn: true, wait_for: 'file:here', id: bg}\necho \"$GREETING\" > here; exec sleep 100\n```\n\n```console | {id: after}\n$ cat here\nhi\n```\n";
    let settings = [
        ("host", "---\nlabrun:\n  backend: host\n---\n"),
        ("container", ""),
        ("busybox", "---\nlabrun:\n  image: busybox\n---\n"),
    ];
    for (name, front) in settings {
        let lab = Lab::new();
        lab.write("nb.md", &format!("{front}# T\n\n{cells}"));
        let (_ran, report) = lab.report("nb.md", &[]);
        for id in ["talk", "tty", "bg", "after"] {
            assert_eq!(report.status(id), "passed", "{name}: {id}\n{}", report.text);
        }
    }
}

#[test]
fn a_terminal_keeps_no_more_screen_than_the_output_cap() {
    let lab = Lab::new();
    lab.write(
        "nb.md",
        "---\nlabrun:\n  limits: { output: 1KiB }\n---\n# C\n\n```bash | {tty: true, id: flood}\nyes hello | head -c 600000; echo; echo last\n```\n```output\n...\nlast\n```\n",
    );
    let (_ran, report) = lab.report("nb.md", &[]);
    report.assert_status("flood", "passed");
    report.assert_note("flood", "screen cut at the output cap");
    assert!(report.output("flood").len() <= 1024, "{}", report.text);
}
