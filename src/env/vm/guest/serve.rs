//! The agent's session: the lab's shell, started and driven by the same session code labrun
//! uses on a machine of its own, one `Run` at a time, each answered with its runs.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::super::wire::{self, FromGuest, Hello, ToGuest, WireRun};
use crate::env::container::rootfs::CONTROL_DIR;
use crate::exec::session::{RunOptions, ShellLaunch, ShellSession};
use crate::exec::shell_process::HostStarter;

pub fn serve(mut port: File, hello: &Hello) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(CONTROL_DIR)
        .map_err(|e| format!("creating {CONTROL_DIR}: {e}"))?;
    let launch = ShellLaunch {
        program: PathBuf::from(&hello.shell),
        args: crate::env::shell_args(&hello.shell),
        env: hello.env.clone(),
        cwd: PathBuf::from(&hello.workdir),
        control_dir: PathBuf::from(CONTROL_DIR),
        control_dir_inside: CONTROL_DIR.into(),
        workdir_inside: hello.workdir.clone(),
        starter: Arc::new(HostStarter),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    crate::exec::procs::become_subreaper();
    let mut session = match rt.block_on(ShellSession::start(launch)) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("the shell {} did not start: {e}", hello.shell);
            let _ = wire::send(&mut port, &FromGuest::Failed(message.clone()));
            return Err(message);
        }
    };
    wire::send(&mut port, &FromGuest::Ready).map_err(|e| format!("writing Ready: {e}"))?;
    let mut live_port = port
        .try_clone()
        .map_err(|e| format!("duplicating the port: {e}"))?;
    loop {
        let run = match wire::receive::<ToGuest>(&mut port) {
            Ok(ToGuest::Run(run)) => run,
            Ok(other) => return Err(format!("unexpected message {other:?}")),
            // labrun went away: the machine ends.
            Err(_) => return Ok(()),
        };
        let scripts: Vec<&str> = run.scripts.iter().map(String::as_str).collect();
        let mut forward = |chunk: &[u8]| {
            let _ = live_port.write_all(&wire::frame(&FromGuest::Live(chunk.to_vec())));
        };
        let opts = RunOptions {
            timeout: Duration::from_millis(run.timeout_ms),
            split_streams: run.split_streams,
            env: &run.env,
            cwd: run.cwd.as_deref(),
            output_cap: run.output_cap,
            live: if run.live { Some(&mut forward) } else { None },
        };
        let answer = match rt.block_on(session.run_batch(&scripts, opts)) {
            Ok(runs) => FromGuest::Ran(runs.into_iter().map(WireRun::from).collect()),
            Err(e) => FromGuest::Error(e.to_string()),
        };
        wire::send(&mut port, &answer).map_err(|e| format!("answering: {e}"))?;
    }
}
