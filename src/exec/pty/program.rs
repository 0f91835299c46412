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

/// Runs `command` on a fresh terminal and plays `script` against it within `timeout`.
pub async fn run(
    session: &mut ShellSession,
    command: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
    script: &Script<'_>,
    timeout: Duration,
) -> std::io::Result<TerminalRun> {
    let started = Instant::now();
    let deadline = started + timeout;
    let (terminal, slave) = Terminal::open()?;
    let second = slave.try_clone()?;
    let mut process = program::start(session, command, (env, cwd), slave, second, true).await?;
    let talk = converse(&terminal, script, deadline).await;
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
