//! A small client of qemu's machine protocol (QMP), over a socket pair labrun made: enough to
//! stop a guest, stream its state into a file labrun opened, and let a restored one run.

use std::io::{self, BufRead, BufReader, IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde_json::{Value, json};

/// How long one command may take to be answered.
const ANSWER: Duration = Duration::from_secs(30);

pub struct Qmp {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    /// Reads qemu's greeting and enters command mode.
    pub fn connect(stream: UnixStream) -> io::Result<Qmp> {
        stream.set_read_timeout(Some(ANSWER))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut qmp = Qmp { stream, reader };
        let greeting = qmp.line()?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn line(&mut self) -> io::Result<Value> {
        let mut text = String::new();
        if self.reader.read_line(&mut text)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "qemu closed its monitor",
            ));
        }
        serde_json::from_str(&text).map_err(|e| io::Error::other(format!("QMP: {e}: {text}")))
    }

    /// Sends one command (with a descriptor for qemu to keep, for `getfd`) and returns its
    /// answer, skipping the events that come between.
    fn send(
        &mut self,
        command: &str,
        arguments: Value,
        fd: Option<BorrowedFd>,
    ) -> io::Result<Value> {
        let text = format!(
            "{}\n",
            json!({ "execute": command, "arguments": arguments })
        );
        match fd {
            None => self.stream.write_all(text.as_bytes())?,
            Some(fd) => {
                let fds = [fd.as_raw_fd()];
                sendmsg::<()>(
                    self.stream.as_raw_fd(),
                    &[IoSlice::new(text.as_bytes())],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
                .map_err(io::Error::from)?;
            }
        }
        loop {
            let answer = self.line()?;
            if let Some(r) = answer.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = answer.get("error") {
                return Err(io::Error::other(format!("QMP {command}: {e}")));
            }
        }
    }

    pub fn execute(&mut self, command: &str, arguments: Value) -> io::Result<Value> {
        self.send(command, arguments, None)
    }

    /// Hands qemu a descriptor under `name`.
    pub fn give_fd(&mut self, name: &str, fd: BorrowedFd) -> io::Result<()> {
        self.send("getfd", json!({ "fdname": name }), Some(fd))
            .map(|_| ())
    }

    /// Waits until the migration (out or in) has completed.
    pub fn await_migration(&mut self, limit: Duration) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let state = self.execute("query-migrate", json!({}))?;
            match state.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    let why = state
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    return Err(io::Error::other(format!("the migration failed: {why}")));
                }
                _ => {}
            }
            if started.elapsed() > limit {
                return Err(io::Error::other("the migration did not finish in time"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
