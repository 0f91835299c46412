//! Programs a cell starts beside the session shell (on a terminal, in the background), in
//! the same environment and with the session's state: its variables, functions and working
//! directory are saved by the session and sourced by a fresh shell that then runs the
//! command with the descriptors labrun hands it.
//!
//! A backend finds a started process on this machine only while it runs, so the fresh shell
//! first waits at a gate, a FIFO labrun opens, and goes on once labrun has found it: a
//! command that ends at once is not lost before it is watched.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use super::session::{ShellSession, random_token, shell_quote};
use super::shell_process::ShellProcess;

/// A program started beside the session, and the gate it waited at (held open while it
/// runs: a gate no process holds open would lose its line).
pub struct Program {
    pub process: Box<dyn ShellProcess>,
    _gate: fs::File,
}

/// Starts `command` as the session's shell would run it, with `input` as its stdin and
/// `output` as its stdout and stderr. `env` is the cell's own, `cwd` its `path:`. When
/// `terminal`, `input` is a terminal that becomes the program's controlling terminal.
pub async fn start(
    session: &mut ShellSession,
    command: &str,
    (env, cwd): (&BTreeMap<String, String>, Option<&str>),
    input: OwnedFd,
    output: OwnedFd,
    terminal: bool,
) -> std::io::Result<Program> {
    let state = session.export_state().await?;
    let dialect = session.dialect();
    let mut launch = session.launch().clone();
    let token = random_token();
    let gate_name = format!("gate.{token}");
    let gate_path = launch.control_dir.join(&gate_name);
    nix::unistd::mkfifo(&gate_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)?;
    // Read and write: opening does not wait for the program, and the FIFO keeps its line.
    let mut gate = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&gate_path)?;
    let gate_inside = format!("{}/{gate_name}", launch.control_dir_inside);
    let mut text = format!("read __labrun_gate < {}\n", shell_quote(&gate_inside));
    text.push_str(&dialect.source_quietly(&state));
    if let Some(dir) = cwd {
        text.push_str(&dialect.cd(dir));
    }
    for (name, value) in env {
        text.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    // The starter hands `output` over as fd 3 (where the session's status socket goes).
    text.push_str("exec 1>&3 2>&3 3>&-\n");
    if terminal {
        // The shell leads a session of its own (the starters see to it): opening its
        // terminal again, through the descriptor's own link rather than a /dev/pts name that
        // may be another device in a container, makes it the session's controlling terminal,
        // so the program gets job control and Ctrl-C.
        text.push_str("exec 0<>/proc/self/fd/0 1>&0 2>&0\n");
    }
    text.push_str(command);
    text.push('\n');
    let name = format!("program.{token}");
    fs::write(launch.control_dir.join(&name), text)?;
    launch
        .args
        .push(format!("{}/{name}", launch.control_dir_inside).into());
    let starter = launch.starter.clone();
    let process = starter.start(&launch, input, output)?;
    gate.write_all(b"go\n")?;
    Ok(Program {
        process,
        _gate: gate,
    })
}
