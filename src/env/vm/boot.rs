//! Waiting for the guest: labrun sends `Hello` and waits for the agent's `Ready`, watching
//! qemu all the while. A guest that panics, never boots or only floods its console ends in
//! "vm failed to boot: ..." with its last console lines, within the boot timeout.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::super::EnvError;
use super::qemu::Machine;
use super::wire::{self, FromGuest, Hello, ToGuest};

/// The boot timeout: `LABRUN_VM_BOOT_TIMEOUT` seconds, else 60 (TCG on a busy machine).
pub fn timeout() -> Duration {
    std::env::var("LABRUN_VM_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

fn failed(machine: &Machine, why: &str) -> EnvError {
    let console = machine.last_console_lines();
    let console = if console.is_empty() {
        "(the console printed nothing)".to_string()
    } else {
        console
    };
    EnvError::Other(format!(
        "vm failed to boot: {why}\nthe last lines of its console:\n{console}"
    ))
}

/// Sends `hello` and waits for `Ready`; the stream, ready for the session.
pub fn handshake(
    machine: &mut Machine,
    mut stream: UnixStream,
    hello: &Hello,
    limit: Duration,
) -> Result<UnixStream, EnvError> {
    let started = Instant::now();
    wire::send(&mut stream, &ToGuest::Hello(Box::new(hello.clone())))
        .map_err(|e| failed(machine, &format!("sending the agent its work: {e}")))?;
    loop {
        if let Ok(Some(status)) = machine.child.try_wait() {
            // What it printed last may still be on its way to the console's reader.
            std::thread::sleep(Duration::from_millis(50));
            return Err(failed(machine, &format!("qemu exited ({status})")));
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            machine.kill();
            return Err(failed(
                machine,
                &format!("no answer from the guest within {} s", limit.as_secs_f64()),
            ));
        }
        let step = left.min(Duration::from_millis(50));
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(step).unwrap_or(PollTimeout::MAX),
        )
        .map_err(|e| EnvError::Other(format!("waiting for the vm: {e}")))?;
        if ready == 0 {
            continue;
        }
        stream.set_read_timeout(Some(left.max(Duration::from_millis(10))))?;
        let answer: io::Result<FromGuest> = wire::receive(&mut stream);
        stream.set_read_timeout(None)?;
        return match answer {
            Ok(FromGuest::Ready) => Ok(stream),
            Ok(FromGuest::Failed(why)) => Err(failed(machine, &why)),
            Ok(other) => Err(failed(machine, &format!("the agent answered {other:?}"))),
            Err(e) => {
                std::thread::sleep(Duration::from_millis(50));
                Err(failed(
                    machine,
                    &format!("the agent's connection broke: {e}"),
                ))
            }
        };
    }
}
