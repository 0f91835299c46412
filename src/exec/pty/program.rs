//! A cell's program on a terminal labrun owns: started in the environment, driven by a
//! `conversation`, killed at the deadline, its exit status taken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::conversation::{End, Script, Talk, converse};
use super::terminal::Terminal;
use crate::exec::program;
use crate::exec::session::{ShellSession, pidfd_open, register};
use crate::outcome::ExitStatus;

/// What running a program on a terminal gave.
pub struct TerminalRun {
    pub talk: Talk,
    /// How the program ended; `None` when labrun had to kill it.
    pub status: Option<ExitStatus>,
    pub duration: Duration,
}

/// How a program runs on a terminal: the cell's `env:` and `path:`, its timeout, and the
/// output cap of the run.
pub struct Limits<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
    pub timeout: Duration,
    pub output_cap: u64,
}

/// Runs `command` on a fresh terminal and plays `script` against it.
pub async fn run(
    session: &mut ShellSession,
    command: &str,
    script: &Script<'_>,
    limits: Limits<'_>,
) -> std::io::Result<TerminalRun> {
    let Limits {
        env,
        cwd,
        timeout,
        output_cap,
    } = limits;
    let started = Instant::now();
    let deadline = started + timeout;
    let (terminal, slave) = Terminal::open()?;
    let second = slave.try_clone()?;
    let mut program = program::start(session, command, (env, cwd), slave, second, true).await?;
    let process = &mut program.process;
    let talk = converse(&terminal, script, output_cap, deadline).await;
    let exited = match &talk {
        Ok(t) if t.end == End::Exited => exits_by(process.pid(), deadline).await,
        _ => false,
    };
    let status = if exited {
        Some(process.reap())
    } else {
        process.kill();
        None
    };
    Ok(TerminalRun {
        talk: talk?,
        status,
        duration: started.elapsed(),
    })
}

/// Whether process `pid` ends before `deadline` (it closed the terminal; it may linger).
async fn exits_by(pid: u32, deadline: Instant) -> bool {
    let Ok(fd) = pidfd_open(pid).and_then(register) else {
        return true;
    };
    let until = tokio::time::Instant::from_std(deadline);
    matches!(
        tokio::time::timeout_at(until, fd.readable()).await,
        Ok(Ok(_))
    )
}
