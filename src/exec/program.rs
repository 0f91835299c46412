//! Programs a cell starts beside the session shell (on a terminal, in the background), in
//! the same environment and with the session's state: its variables, functions and working
//! directory are saved by the session and sourced by a fresh shell that then runs the
//! command with the descriptors labrun hands it.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;

use super::session::{ShellSession, random_token, shell_quote};
use super::shell_process::ShellProcess;

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
) -> std::io::Result<Box<dyn ShellProcess>> {
    let state = session.export_state().await?;
    let dialect = session.dialect();
    let mut launch = session.launch().clone();
    let mut text = dialect.source_quietly(&state);
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
    let name = format!("program.{}", random_token());
    fs::write(launch.control_dir.join(&name), text)?;
    launch
        .args
        .push(format!("{}/{name}", launch.control_dir_inside).into());
    let starter = launch.starter.clone();
    starter.start(&launch, input, output)
}
