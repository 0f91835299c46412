//! Waiting for the guest: labrun sends `Hello` and waits for the agent's `Ready`, watching
//! qemu all the while. A guest that panics, never boots or only floods its console ends in
//! "vm failed to boot: ..." with its last console lines, within the boot timeout. The wait
//! is async (it runs when the session starts), so Ctrl-C during a boot ends it at once.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::qemu::Machine;
use super::qmp::Qmp;
use super::wire::{self, FromGuest, Hello, ToGuest};
use std::path::PathBuf;

/// How often labrun looks at qemu while it waits.
const WATCH: Duration = Duration::from_millis(50);

/// The boot timeout: `LABRUN_VM_BOOT_TIMEOUT` seconds, else 60 (TCG on a busy machine).
pub fn timeout() -> Duration {
    std::env::var("LABRUN_VM_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

/// A machine started and not yet answering: what the handshake needs.
pub struct Booting {
    pub machine: Arc<Mutex<Machine>>,
    pub hello: Hello,
    pub limit: Duration,
    /// Restored from a snapshot: its agent said `Booted` before the snapshot was taken.
    pub restored: bool,
    /// A cold boot to save, once its agent says `Booted`, for the runs after it.
    pub save_to: Option<(Qmp, PathBuf)>,
}

impl std::fmt::Debug for Booting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booting")
            .field("restored", &self.restored)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

fn failed(machine: &Mutex<Machine>, why: &str) -> io::Error {
    let console = machine.lock().unwrap().last_console_lines();
    let console = if console.is_empty() {
        "(the console printed nothing)".to_string()
    } else {
        console
    };
    io::Error::other(format!(
        "vm failed to boot: {why}\nthe last lines of its console:\n{console}"
    ))
}

fn exited(machine: &Mutex<Machine>) -> Option<std::process::ExitStatus> {
    machine.lock().unwrap().child.try_wait().ok().flatten()
}

/// Why the connection broke: most often qemu ended (a panic with `panic=-1`).
async fn broken(machine: &Mutex<Machine>, e: &io::Error) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(status) = exited(machine) {
            // What it printed last may still be on its way to the console's reader.
            tokio::time::sleep(WATCH).await;
            return format!("qemu exited ({status})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    format!("the agent's connection broke: {e}")
}

async fn answer(stream: &mut UnixStream) -> io::Result<FromGuest> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let mut body = vec![0u8; wire::length(header)?];
    stream.read_exact(&mut body).await?;
    wire::parse(&body)
}

/// Waits for `Booted` (unless restored), saves the guest when asked, sends `Hello` with this
/// machine's clock and fresh randomness, and waits for `Ready`.
pub async fn handshake(booting: &mut Booting, stream: &mut UnixStream) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + booting.limit;
    let machine = booting.machine.clone();
    if !booting.restored {
        match next(&machine, stream, deadline, booting.limit).await? {
            FromGuest::Booted => {}
            other => return Err(failed(&machine, &format!("the agent answered {other:?}"))),
        }
        if let Some((mut qmp, path)) = booting.save_to.take() {
            // A run that cannot save still runs; the next one boots afresh.
            match super::snapshot::save(&mut qmp, &path) {
                Ok(()) => crate::trace::mark("vm saved for warm starts"),
                Err(e) => crate::trace::mark(&format!("vm not saved: {e}")),
            }
        }
    }
    let mut hello = booting.hello.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hello.now = (now.as_secs() as i64, i64::from(now.subsec_nanos()));
    hello.seed = vec![0u8; 32];
    getrandom::fill(&mut hello.seed).map_err(|e| io::Error::other(e.to_string()))?;
    let hello = wire::frame(&ToGuest::Hello(Box::new(hello)));
    if let Err(e) = stream.write_all(&hello).await {
        let why = broken(&machine, &e).await;
        return Err(failed(&machine, &why));
    }
    match next(&machine, stream, deadline, booting.limit).await? {
        FromGuest::Ready => Ok(()),
        FromGuest::Failed(why) => Err(failed(&machine, &why)),
        other => Err(failed(&machine, &format!("the agent answered {other:?}"))),
    }
}

/// The agent's next message, watching qemu until the boot's deadline.
async fn next(
    machine: &Mutex<Machine>,
    stream: &mut UnixStream,
    deadline: tokio::time::Instant,
    limit: Duration,
) -> io::Result<FromGuest> {
    let reply = answer(stream);
    tokio::pin!(reply);
    loop {
        tokio::select! {
            r = &mut reply => {
                return match r {
                    Ok(message) => Ok(message),
                    Err(e) => {
                        let why = broken(machine, &e).await;
                        Err(failed(machine, &why))
                    }
                };
            }
            _ = tokio::time::sleep(WATCH) => {
                if let Some(status) = exited(machine) {
                    tokio::time::sleep(WATCH).await;
                    return Err(failed(machine, &format!("qemu exited ({status})")));
                }
                if tokio::time::Instant::now() >= deadline {
                    machine.lock().unwrap().kill();
                    return Err(failed(
                        machine,
                        &format!("no answer from the guest within {} s", limit.as_secs_f64()),
                    ));
                }
            }
        }
    }
}
