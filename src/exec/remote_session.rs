//! A session whose shell runs in a virtual machine: labrun's agent there runs the same
//! session code on the guest's shell, and this side sends it each batch of commands and
//! reads back the runs (and the live output) over the machine's serial port.

use std::io;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::{RunOptions, ShellLaunch};
use crate::env::vm::wire::{self, FromGuest, Run, ToGuest};
use crate::outcome::CommandRun;

/// How long past a batch's own timeouts labrun waits for the agent's answer.
const ANSWER_GRACE: Duration = Duration::from_secs(30);

/// The connection to a guest's agent.
#[derive(Debug)]
pub struct Agent {
    pub stream: UnixStream,
    /// The process of the machine (qemu) on this one.
    pub pid: u32,
    /// The machine's boot, to wait for before the first command.
    pub booting: Option<crate::env::vm::boot::Booting>,
}

pub struct RemoteSession {
    launch: ShellLaunch,
    stream: tokio::net::UnixStream,
    pid: u32,
}

impl RemoteSession {
    /// The session on a machine: waits for its boot first.
    pub async fn start(launch: ShellLaunch, agent: Agent) -> io::Result<RemoteSession> {
        agent.stream.set_nonblocking(true)?;
        let mut stream = tokio::net::UnixStream::from_std(agent.stream)?;
        if let Some(mut booting) = agent.booting {
            crate::env::vm::boot::handshake(&mut booting, &mut stream).await?;
            crate::trace::mark("vm booted");
        }
        Ok(RemoteSession {
            launch,
            stream,
            pid: agent.pid,
        })
    }

    pub fn launch(&self) -> &ShellLaunch {
        &self.launch
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    async fn receive(&mut self) -> io::Result<FromGuest> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).await?;
        let mut body = vec![0u8; wire::length(header)?];
        self.stream.read_exact(&mut body).await?;
        wire::parse(&body)
    }

    pub async fn run_batch(
        &mut self,
        scripts: &[&str],
        mut opts: RunOptions<'_>,
    ) -> io::Result<Vec<CommandRun>> {
        let run = Run {
            scripts: scripts.iter().map(|s| s.to_string()).collect(),
            timeout_ms: opts.timeout.as_millis() as u64,
            split_streams: opts.split_streams,
            env: opts.env.clone(),
            cwd: opts.cwd.map(str::to_string),
            output_cap: opts.output_cap,
            live: opts.live.is_some(),
        };
        self.stream
            .write_all(&wire::frame(&ToGuest::Run(run)))
            .await
            .map_err(gone)?;
        // Saturating: a notebook may ask for timeouts far past anything a sum can hold.
        let patience = opts
            .timeout
            .checked_mul(scripts.len().max(1) as u32)
            .and_then(|d| d.checked_add(ANSWER_GRACE))
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        let answer = async {
            loop {
                match self.receive().await.map_err(gone)? {
                    FromGuest::Live(chunk) => {
                        if let Some(live) = opts.live.as_mut() {
                            live(&chunk);
                        }
                    }
                    FromGuest::Ran(runs) => {
                        return Ok(runs.into_iter().map(CommandRun::from).collect());
                    }
                    FromGuest::Error(e) => return Err(io::Error::other(format!("in the vm: {e}"))),
                    other => {
                        return Err(io::Error::other(format!(
                            "the vm's agent answered out of turn: {other:?}"
                        )));
                    }
                }
            }
        };
        tokio::time::timeout(patience, answer).await.map_err(|_| {
            io::Error::other(format!(
                "the vm stopped answering (nothing for {} s past the commands' timeouts)",
                ANSWER_GRACE.as_secs()
            ))
        })?
    }
}

fn gone(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::other("the vm stopped (its agent closed the connection)")
    } else {
        e
    }
}
