//! The messages between labrun and its agent in the guest, over one virtio-serial port: each
//! a JSON document after its length (four bytes, big-endian).
//!
//! The agent says `Booted` once its port is open (a guest restored from a snapshot said it
//! before the snapshot was taken); labrun sends `Hello` once, then one `Run` at a time; the
//! agent answers `Ready` (or `Failed`), and each `Run` with any number of `Live` chunks and
//! then `Ran` or `Error`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::{CommandRun, ExitStatus, ShellEvent};

/// The largest message either side accepts (outputs are capped well below it).
pub const MAX_MESSAGE: usize = 256 << 20;

/// One 9p share the agent mounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Share {
    /// The device's mount tag.
    pub tag: String,
    /// Where it goes in the guest's root (for root layers: unused).
    pub target: String,
}

/// What labrun asks of the agent before the first command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The root's read-only layers, lowest first.
    pub layers: Vec<Share>,
    /// Directories that are this machine's own (the `host` image), each at its target,
    /// under the layers.
    pub host_dirs: Vec<Share>,
    /// Symbolic links at the top of this machine's root (`/bin -> usr/bin`), for `host`.
    pub host_links: Vec<(String, String)>,
    /// This machine's directories hidden as a whole (`/root`, `/tmp`): made empty, for `host`.
    pub host_empty: Vec<String>,
    /// Read-only shares mounted after the root is built (notebook, submission, stage).
    pub mounts: Vec<Share>,
    /// Size of the writable layer (a tmpfs), in bytes.
    pub disk: u64,
    /// Mount the root without set-id programs: labrun is not root, so this machine's files
    /// reach the guest owned by nobody, and a set-uid root program would run as nobody.
    pub nosuid: bool,
    pub hostname: String,
    pub workdir: String,
    /// The session shell's path in the guest's root.
    pub shell: String,
    /// The shell's complete environment.
    pub env: BTreeMap<String, String>,
    /// This machine's clock (seconds and nanoseconds since the epoch): a guest restored from a
    /// snapshot wakes up with the snapshot's.
    pub now: (i64, i64),
    /// Fresh random bytes the guest mixes into its pool and reseeds from, so that guests
    /// restored from one snapshot never share a random stream.
    pub seed: Vec<u8>,
}

/// One batch of commands (see `ShellSession::run_batch`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub scripts: Vec<String>,
    pub timeout_ms: u64,
    pub split_streams: bool,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub output_cap: u64,
    /// Send the output as it comes (`Live`).
    pub live: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToGuest {
    Hello(Box<Hello>),
    Run(Run),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromGuest {
    /// The agent is up and waits for `Hello` (the moment a snapshot is taken).
    Booted,
    /// The root is built and the shell answers.
    Ready,
    /// The guest could not build what `Hello` asked for.
    Failed(String),
    Live(Vec<u8>),
    Ran(Vec<WireRun>),
    Error(String),
}

/// A `CommandRun` as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireRun {
    pub output: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, or the signal when `signal` is set.
    pub status: i32,
    pub signal: bool,
    pub duration_ms: f64,
    pub timed_out_ms: Option<f64>,
    pub truncated: u64,
    /// A shell event: (reason, state restored); `tampered` for the other kind.
    pub replaced: Option<(String, bool)>,
    pub tampered: bool,
}

impl From<CommandRun> for WireRun {
    fn from(r: CommandRun) -> WireRun {
        let (status, signal) = match r.status {
            ExitStatus::Code(c) => (c, false),
            ExitStatus::Signal(s) => (s, true),
        };
        WireRun {
            output: r.output,
            stderr: r.stderr,
            status,
            signal,
            duration_ms: r.duration.as_secs_f64() * 1e3,
            timed_out_ms: r.timed_out.map(|d| d.as_secs_f64() * 1e3),
            truncated: r.truncated,
            replaced: match &r.shell_event {
                Some(ShellEvent::Replaced {
                    reason,
                    state_restored,
                }) => Some((reason.clone(), *state_restored)),
                _ => None,
            },
            tampered: matches!(r.shell_event, Some(ShellEvent::Tampered)),
        }
    }
}

impl From<WireRun> for CommandRun {
    fn from(w: WireRun) -> CommandRun {
        let ms = |m: f64| Duration::from_secs_f64(m.max(0.0) / 1e3);
        CommandRun {
            output: w.output,
            stderr: w.stderr,
            status: if w.signal {
                ExitStatus::Signal(w.status)
            } else {
                ExitStatus::Code(w.status)
            },
            duration: ms(w.duration_ms),
            timed_out: w.timed_out_ms.map(ms),
            truncated: w.truncated,
            shell_event: match (w.replaced, w.tampered) {
                (Some((reason, state_restored)), _) => Some(ShellEvent::Replaced {
                    reason,
                    state_restored,
                }),
                (None, true) => Some(ShellEvent::Tampered),
                (None, false) => None,
            },
        }
    }
}

/// A message as bytes on the wire: its length, then its JSON.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("wire messages serialize");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses one message's JSON.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad message: {e}")))
}

/// The length a frame header announces, checked.
pub fn length(header: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes is past the limit"),
        ));
    }
    Ok(len)
}

/// Sends one message on a blocking stream.
pub fn send<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    out.write_all(&frame(message))?;
    out.flush()
}

/// Reads one message from a blocking stream.
pub fn receive<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> io::Result<T> {
    let mut header = [0u8; 4];
    input.read_exact(&mut header)?;
    let mut body = vec![0u8; length(header)?];
    input.read_exact(&mut body)?;
    parse(&body)
}
