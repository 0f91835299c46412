//! The backend conformance suite: the session protocol on a real shell in each backend —
//! state between commands, streams, exit codes, a replaced shell, timeouts, fresh state
//! between runs, cleanup, and the attempts to forge a verdict that the contract lists.
//! Every backend runs every case (the `conformance!` list at the end); a new backend adds
//! one line there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{pids_with_arg, wait_until};
use labrun::env::{self, EnvSpec};
use labrun::exec::session::{RunOptions, ShellSession};
use labrun::notebook::BackendKind;
use labrun::outcome::{CommandRun, ExitStatus, ShellEvent};

struct Lab {
    /// The session's shell is bash (else a POSIX shell such as busybox ash).
    bash: bool,
    backend: BackendKind,
    image: Option<String>,
    _env: env::Environment,
    session: ShellSession,
    rt: tokio::runtime::Runtime,
}

fn lab(backend: BackendKind, image: Option<&str>) -> Lab {
    let spec = EnvSpec {
        backend,
        // A directory every user can read (the rootless run is not the checkout's owner).
        notebook_dir: PathBuf::from("/usr/share"),
        hostname: "test".into(),
        image: image.map(str::to_string),
        ..EnvSpec::default()
    };
    let built = env::build(&spec).unwrap_or_else(|e| panic!("{} environment: {e}", backend.name()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let session = rt
        .block_on(ShellSession::start(built.launch.clone()))
        .expect("shell starts");
    Lab {
        bash: built.launch.dialect() == labrun::exec::dialect::Dialect::Bash,
        backend,
        image: image.map(str::to_string),
        _env: built,
        session,
        rt,
    }
}

impl Lab {
    /// Another environment of the same backend and image: a new run.
    fn fresh(&self) -> Lab {
        lab(self.backend, self.image.as_deref())
    }

    fn run_with(&mut self, script: &str, timeout: Duration, split: bool) -> CommandRun {
        let env = BTreeMap::new();
        let opts = RunOptions {
            timeout,
            split_streams: split,
            env: &env,
            cwd: None,
            output_cap: 1 << 20,
            live: None,
        };
        self.rt
            .block_on(self.session.run(script, opts))
            .unwrap_or_else(|e| panic!("labrun itself failed: {e}"))
    }
    fn run(&mut self, script: &str) -> CommandRun {
        self.run_with(script, Duration::from_secs(20), false)
    }
    fn out(&mut self, script: &str) -> String {
        let r = self.run(script);
        String::from_utf8_lossy(&r.output).into_owned()
    }
}

fn state_carries_between_commands(mut lab: Lab) {
    lab.run("mkdir sub && cd sub");
    lab.run("export GREETING=hello; plain=kept; greet() { echo \"$GREETING from $1\"; }");
    assert_eq!(
        lab.out("greet $(basename $PWD); echo $plain"),
        "hello from sub\nkept\n"
    );
}

fn each_command_has_its_own_output_and_status(mut lab: Lab) {
    let a = lab.run("echo one; echo err >&2; false");
    assert_eq!(a.output, b"one\nerr\n");
    assert_eq!(a.status, ExitStatus::Code(1));
    let b = lab.run("echo two");
    assert_eq!(b.output, b"two\n");
    assert_eq!(b.status, ExitStatus::Code(0));
    let split = lab.run_with("echo out; echo err >&2", Duration::from_secs(5), true);
    assert_eq!(split.output, b"out\n");
    assert_eq!(split.stderr, b"err\n");
}

fn exit_ends_only_the_command_and_keeps_state(mut lab: Lab) {
    lab.run("cd /; export KEEP=yes; f() { echo func; }");
    let r = lab.run("echo before; exit 7");
    assert_eq!(r.status, ExitStatus::Code(7));
    assert_eq!(r.output, b"before\n");
    assert!(matches!(
        r.shell_event,
        Some(ShellEvent::Replaced {
            state_restored: true,
            ..
        })
    ));
    if lab.bash {
        assert_eq!(lab.out("pwd; echo $KEEP; f"), "/\nyes\nfunc\n");
    } else {
        // A POSIX shell cannot list its functions: the book says they are lost.
        assert_eq!(lab.out("pwd; echo $KEEP"), "/\nyes\n");
    }
}

fn a_killed_or_replaced_shell_is_replaced(mut lab: Lab) {
    lab.run("cd /usr");
    let r = lab.run("kill -9 $$");
    assert_eq!(r.status, ExitStatus::Signal(9));
    assert!(r.shell_event.is_some());
    assert_eq!(lab.out("pwd"), "/usr\n", "the working directory survives");
    let r = lab.run("exec true");
    assert_eq!(r.status, ExitStatus::Code(0));
    assert!(r.shell_event.is_some());
    assert_eq!(lab.out("echo alive"), "alive\n");
    let r = lab.run("exec >/dev/null; echo hidden");
    assert_eq!(r.output, b"");
    assert_eq!(lab.out("echo visible"), "visible\n");
}

fn stdin_is_dev_null_and_never_swallows_the_next_command(mut lab: Lab) {
    let r = lab.run("read x; echo \"status $? [$x]\"; cat; readlink /proc/self/fd/0");
    assert_eq!(r.output, b"status 1 []\n/dev/null\n");
    assert_eq!(lab.out("echo next"), "next\n");
}

fn no_labrun_descriptor_leaks_in(mut lab: Lab) {
    let listing = lab.out("ls /proc/self/fd | sort -n | tr '\\n' ' '");
    // 0, 1, 2 and the directory ls itself opened.
    assert_eq!(listing, "0 1 2 3 ");
    let r = lab.run("for fd in 3 4 5 6 7 8 9; do echo forged >&$fd; done 2>/dev/null; echo done");
    assert_eq!(r.output, b"done\n");
    assert_eq!(lab.out("echo fine"), "fine\n");
}

fn printed_markers_and_dumps_change_nothing(mut lab: Lab) {
    let r = lab.run("set >/dev/null; declare -f; echo s.deadbeef.0; echo b.x; false");
    assert_eq!(r.status, ExitStatus::Code(1));
    let r = lab.run("ls \"$(dirname \"$BASH_SOURCE\")\" | while read f; do : > \"$(dirname \"$BASH_SOURCE\")/s.$f.0\"; done; false");
    assert_eq!(
        r.status,
        ExitStatus::Code(1),
        "forged status files are ignored"
    );
    assert_eq!(lab.out("echo ok"), "ok\n");
}

fn aliases_traps_and_redefined_functions_do_not_reach_later_commands(mut lab: Lab) {
    lab.run(
        "shopt -s expand_aliases; alias printf=false echo=false; trap 'echo X' DEBUG RETURN ERR",
    );
    let r = lab.run("echo clean; printf 'p\\n'; false");
    assert_eq!(r.output, b"clean\np\n");
    assert_eq!(r.status, ExitStatus::Code(1));
    lab.run("printf() { :; }; __labrun_save() { :; }; cd() { :; }; trap() { :; }");
    if !lab.bash {
        assert_eq!(lab.out("command printf 'x\\n'"), "x\n");
        lab.run("command() { :; }; unset() { :; }; export() { :; }");
        let r = lab.run("echo after command was redefined; echo p");
        assert_eq!(r.output, b"after command was redefined\np\n", "{r:?}");
        return;
    }
    assert_eq!(lab.out("builtin printf 'x\\n'"), "x\n");
    let r = lab.run("builtin() { :; }; .() { :; }; enable -n printf");
    assert_eq!(r.status, ExitStatus::Code(0));
    let r = lab.run("echo after builtin was redefined; echo p");
    assert_eq!(r.output, b"after builtin was redefined\np\n", "{r:?}");
    assert_eq!(r.shell_event, None);
    lab.run("enable -n builtin");
    assert_eq!(lab.out("echo still fine"), "still fine\n");
}

fn a_timeout_kills_the_whole_tree_and_the_session_goes_on(mut lab: Lab) {
    lab.run("export KEEP=1");
    let start = Instant::now();
    // A duration of its own, so that other tests' sleeps on this machine never match.
    let secs = 100_000 + std::process::id() % 100_000;
    let r = lab.run_with(
        &format!("trap '' TERM; (trap '' TERM; sleep {secs}) & sleep {secs}; echo never"),
        Duration::from_millis(300),
        false,
    );
    assert!(r.timed_out.is_some());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "killed after the grace period"
    );
    // The shell itself ignored SIGTERM, so it was killed: its variables are lost, the
    // working directory is not, and nothing of the tree survives.
    // No pgrep in every image: scan /proc, with a pattern that does not match itself.
    let digits = secs.to_string();
    let (head, last) = digits.split_at(5);
    let r = lab.run(&format!(
        "echo \"[$KEEP]\"; grep -l -a '{head}[{last}]' /proc/[0-9]*/cmdline 2>/dev/null || echo none"
    ));
    assert_eq!(String::from_utf8_lossy(&r.output), "[]\nnone\n", "{r:?}");
}

fn a_timeout_keeps_the_state_when_the_shell_can_save_it(mut lab: Lab) {
    lab.run("export KEEP=1; cd /");
    let r = lab.run_with("sleep 1000", Duration::from_millis(200), false);
    assert!(r.timed_out.is_some());
    assert_eq!(lab.out("echo $KEEP; pwd"), "1\n/\n");
}

fn a_shell_killed_between_commands_is_replaced(mut lab: Lab) {
    lab.run("(sleep 0.1; kill -9 $$) &");
    // A guest under TCG runs its background job later than a process here.
    let settle = match lab.backend {
        BackendKind::Vm => 3000,
        _ => 400,
    };
    std::thread::sleep(Duration::from_millis(settle));
    let r = lab.run("echo still here");
    assert_eq!(r.output, b"still here\n");
    assert!(r.shell_event.is_some());
}

fn background_output_belongs_to_no_command(mut lab: Lab) {
    let r = lab.run("(sleep 0.2; echo late) & echo now");
    assert_eq!(r.output, b"now\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(lab.out("echo mine"), "mine\n");
}

fn error_messages_do_not_name_labrun_files(mut lab: Lab) {
    let r = lab.run("echo a\nno-such-command-here");
    let expected = if lab.bash {
        "a\nbash: line 2: no-such-command-here: command not found\n"
    } else {
        "a\nsh: line 2: no-such-command-here: not found\n"
    };
    assert_eq!(String::from_utf8_lossy(&r.output), expected);
    assert_eq!(r.status, ExitStatus::Code(127));
}

fn output_is_capped(mut lab: Lab) {
    let env = BTreeMap::new();
    let opts = RunOptions {
        timeout: Duration::from_secs(10),
        split_streams: false,
        env: &env,
        cwd: None,
        output_cap: 1000,
        live: None,
    };
    let r = lab
        .rt
        .block_on(lab.session.run("head -c 100000 /dev/zero", opts))
        .unwrap();
    assert_eq!(r.output.len(), 1000);
    assert_eq!(r.truncated, 99000);
}

fn each_run_starts_fresh(mut lab: Lab) {
    lab.run("echo kept > fresh-marker; export FRESH=1; f() { :; }");
    assert_eq!(lab.out("cat fresh-marker; echo $FRESH"), "kept\n1\n");
    let mut other = lab.fresh();
    assert_eq!(
        other.out(
            "test -e fresh-marker || echo none; echo \"[${FRESH-}]\"; f 2>/dev/null || echo no-f"
        ),
        "none\n[]\nno-f\n"
    );
}

fn nothing_of_a_run_outlives_it(mut lab: Lab) {
    let secs = (300_000 + std::process::id() % 100_000).to_string();
    lab.run(&format!("sleep {secs} & sleep {secs} & echo started"));
    if lab.backend == BackendKind::Vm {
        // The jobs run in the guest; what must not outlive the run is the machine itself.
        let machine = lab.session.pid();
        assert!(std::path::Path::new(&format!("/proc/{machine}")).exists());
        drop(lab);
        assert!(
            wait_until(2.0, || !std::path::Path::new(&format!("/proc/{machine}"))
                .exists()),
            "the machine stops with the run"
        );
        return;
    }
    assert!(
        wait_until(2.0, || pids_with_arg(&secs).len() == 2),
        "the background jobs run while the session does"
    );
    drop(lab);
    assert!(
        wait_until(2.0, || pids_with_arg(&secs).is_empty()),
        "nothing survives the run"
    );
}

fn exit_keeps_the_directory_the_cell_moved_to(mut lab: Lab) {
    lab.run("mkdir -p a/b && cd a");
    let r = lab.run("cd b; exit 2");
    assert_eq!(r.status, ExitStatus::Code(2));
    // The directory itself, not just the variable.
    assert_eq!(lab.out("basename \"$(pwd -P)\"; ls -d ../b"), "b\n../b\n");
}

fn a_batch_reports_each_step_and_survives_exit_and_timeouts_midway(mut lab: Lab) {
    let env = BTreeMap::new();
    let scripts = [
        "echo one",
        "cd /; exit 3",
        "echo \"three in $PWD\"",
        "sleep 30",
        "echo five",
        "false",
    ];
    // Under TCG a replaced shell takes a while to start in the guest: the timeout is there
    // to stop `sleep 30`, not to time the others.
    let timeout = match lab.backend {
        BackendKind::Vm => Duration::from_secs(3),
        _ => Duration::from_millis(500),
    };
    let opts = RunOptions {
        timeout,
        split_streams: false,
        env: &env,
        cwd: None,
        output_cap: 1 << 20,
        live: None,
    };
    let runs = lab
        .rt
        .block_on(lab.session.run_batch(&scripts, opts))
        .unwrap();
    let outs: Vec<String> = runs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.output).into_owned())
        .collect();
    assert_eq!(outs[0], "one\n");
    assert_eq!(runs[1].status, ExitStatus::Code(3));
    assert!(runs[1].shell_event.is_some());
    assert_eq!(outs[2], "three in /\n");
    assert!(runs[3].timed_out.is_some());
    assert_eq!(outs[4], "five\n");
    assert_eq!(runs[5].status, ExitStatus::Code(1));
    assert_eq!(runs.len(), 6);
}

/// Every case, for one backend.
macro_rules! conformance {
    ($backend:ident, $kind:expr, $image:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::$case(super::lab($kind, $image));
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $kind:expr, $image:expr) => {
        conformance!(
            $backend,
            $kind,
            $image,
            [
                state_carries_between_commands,
                each_command_has_its_own_output_and_status,
                exit_ends_only_the_command_and_keeps_state,
                a_killed_or_replaced_shell_is_replaced,
                stdin_is_dev_null_and_never_swallows_the_next_command,
                no_labrun_descriptor_leaks_in,
                printed_markers_and_dumps_change_nothing,
                aliases_traps_and_redefined_functions_do_not_reach_later_commands,
                a_timeout_kills_the_whole_tree_and_the_session_goes_on,
                a_timeout_keeps_the_state_when_the_shell_can_save_it,
                a_shell_killed_between_commands_is_replaced,
                background_output_belongs_to_no_command,
                error_messages_do_not_name_labrun_files,
                output_is_capped,
                exit_keeps_the_directory_the_cell_moved_to,
                each_run_starts_fresh,
                nothing_of_a_run_outlives_it,
                a_batch_reports_each_step_and_survives_exit_and_timeouts_midway,
            ]
        );
    };
}

all_cases!(host, labrun::notebook::BackendKind::Host, None);
all_cases!(container, labrun::notebook::BackendKind::Container, None);
all_cases!(
    container_busybox,
    labrun::notebook::BackendKind::Container,
    Some("busybox")
);
all_cases!(vm, labrun::notebook::BackendKind::Vm, None);
all_cases!(
    vm_busybox,
    labrun::notebook::BackendKind::Vm,
    Some("busybox")
);
