//! The session protocol: one long-lived bash per environment, running one command at a time.
//!
//! How a command's verdict stays out of the command's reach:
//! - labrun writes each command line to the shell over a socket (fd 0 of the shell). A socket,
//!   unlike a pipe, cannot be reopened through /proc/PID/fd, so no process can read ahead.
//! - The command's text goes into a file the shell sources with stdin from /dev/null and
//!   stdout/stderr into a fresh FIFO, opened only for this command; late writes by background
//!   processes land in a FIFO that no longer belongs to any command.
//! - The end of the command and its exit status come back on a second socket (fd 3 of the
//!   shell), closed while the command runs, as a line that carries a random nonce: the nonce
//!   lives only in the line the shell read, so no process of the command can forge it, and
//!   labrun looks for it anywhere in what arrives, so garbage written there cannot shift it.
//!   Nothing is ever parsed out of the command's output.
//! - Every word of the harness line is quoted (no alias applies), and it starts by entering
//!   POSIX mode with an assignment, where `unset` is found before any function, to remove a
//!   function named `builtin`; everything after goes through `builtin`.
//! - The sourced file opens by setting a variable to a second nonce that the status line
//!   reports: a status without it means the file never ran (a disabled builtin): the command
//!   is failed as tampered and a fresh shell takes over.
//! - Traps (DEBUG, RETURN, ERR), aliases and `set -T/-E` are reset before every command.
//!
//! This module must not decide verdicts: it reports what ran.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::dialect::Dialect;
use super::procs;
use super::remote_session::RemoteSession;
use super::shell_process::{ShellProcess, ShellStarter};
use crate::outcome::{CommandRun, ExitStatus, ShellEvent};

/// How long a killed command gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

/// Everything needed to start the session's shell; a backend fills it in.
#[derive(Debug, Clone)]
pub struct ShellLaunch {
    /// The shell program and its arguments, as labrun runs it (a backend may wrap it).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment of the shell: nothing else is inherited.
    pub env: BTreeMap<String, String>,
    /// Where the shell starts (a path as the starter understands it).
    pub cwd: PathBuf,
    /// The control directory as labrun sees it (private, created by the backend).
    pub control_dir: PathBuf,
    /// The same directory as the shell sees it.
    pub control_dir_inside: String,
    /// The working directory the first shell starts in, as the shell sees it.
    pub workdir_inside: String,
    /// Starts the shell process in the environment.
    pub starter: Arc<dyn ShellStarter>,
}

impl ShellLaunch {
    /// The harness's dialect for this shell.
    pub fn dialect(&self) -> Dialect {
        Dialect::of(&self.program.to_string_lossy())
    }
}

/// How the commands of one `run` or `run_batch` call run.
pub struct RunOptions<'a> {
    /// Per command.
    pub timeout: Duration,
    /// Capture stderr apart from stdout (else both go to one stream, in write order).
    pub split_streams: bool,
    /// Variables set for this command only.
    pub env: &'a BTreeMap<String, String>,
    /// A working directory for this command only, as the shell sees it (already resolved).
    pub cwd: Option<&'a str>,
    /// Bytes kept per stream; the rest is counted and dropped.
    pub output_cap: u64,
    /// Called with every chunk of output as it arrives (live streaming), if set.
    pub live: Live<'a>,
}

/// Where live output goes while a command runs.
type Live<'a> = Option<&'a mut dyn FnMut(&[u8])>;

/// A session whose shell labrun starts and drives itself (host, container; and the vm
/// backend's agent, inside its guest).
pub struct LocalSession {
    launch: ShellLaunch,
    child: Box<dyn ShellProcess>,
    pidfd: AsyncFd<OwnedFd>,
    control: UnixStream,
    status: StatusChannel,
    seq: u64,
    /// Working directory before the current command, to restore a lost shell.
    last_cwd: Option<String>,
}

/// A stream being captured from a FIFO.
struct Capture {
    reader: pipe::Receiver,
    /// Our own write end, held so the reader never sees end-of-file before the shell opens it.
    holder: Option<OwnedFd>,
    kept: Vec<u8>,
    truncated: u64,
    cap: u64,
    done: bool,
}

impl Capture {
    fn open(path: &Path, cap: u64) -> io::Result<Capture> {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(io::Error::from)?;
        let reader = pipe::OpenOptions::new().open_receiver(path)?;
        let holder = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Capture {
            reader,
            holder: Some(holder.into()),
            kept: Vec::new(),
            truncated: 0,
            cap,
            done: false,
        })
    }

    fn take(&mut self, chunk: &[u8], live: &mut Live) {
        if let Some(f) = live.as_mut() {
            f(chunk);
        }
        let room = self.cap.saturating_sub(self.kept.len() as u64) as usize;
        let keep = room.min(chunk.len());
        self.kept.extend_from_slice(&chunk[..keep]);
        self.truncated += (chunk.len() - keep) as u64;
    }

    /// Reads whatever is available now; returns false once the stream is at end-of-file.
    /// `direct` reads the descriptor without consulting tokio's cached readiness, which may
    /// not have seen data that arrived just before the command ended.
    fn drain_now(&mut self, live: &mut Live, direct: bool) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            let got = if direct {
                nix::unistd::read(&self.reader, &mut buf).map_err(io::Error::from)
            } else {
                self.reader.try_read(&mut buf)
            };
            match got {
                Ok(0) => {
                    self.done = true;
                    return false;
                }
                Ok(n) => self.take(&buf[..n], live),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.done = true;
                    return false;
                }
            }
        }
    }

    /// After the command ended: drop our write end and take what is left without waiting
    /// for background processes that still hold the FIFO.
    fn finish(&mut self, live: &mut Live) {
        self.holder = None;
        if !self.done {
            self.drain_now(live, true);
        }
    }
}

/// Commands sent to the shell in one line at most (each holds two descriptors open).
const MAX_BATCH: usize = 64;

/// One command of a batch, while it runs.
struct Step {
    cell_file: PathBuf,
    inside_cell: String,
    out: Capture,
    err: Option<Capture>,
    out_path: PathBuf,
    err_path: PathBuf,
    begin: String,
}

/// labrun's end of the status socket, and what has arrived on it.
struct StatusChannel {
    socket: AsyncFd<UnixStream>,
    buf: Vec<u8>,
}

impl StatusChannel {
    /// Waits for the status line carrying `nonce`: `NONCE STATUS RAN`. Anything else on the
    /// socket (it is never written by a command, but be safe) is skipped.
    async fn read_report(&mut self, nonce: &str, ran_nonce: Option<&str>) -> io::Result<Report> {
        loop {
            if let Some(report) = find_report(&mut self.buf, nonce, ran_nonce) {
                return Ok(report);
            }
            let mut guard = self.socket.readable().await?;
            let mut chunk = [0u8; 4096];
            match guard.try_io(|s| io::Read::read(&mut s.get_ref(), &mut chunk)) {
                Ok(Ok(0)) => {
                    // The shell is gone; its exit is noticed through the pidfd.
                    std::future::pending::<()>().await;
                }
                Ok(Ok(n)) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > 1 << 16 {
                        let keep = self.buf.len() - 4096;
                        self.buf.drain(..keep);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// What the status socket said about the current command.
#[derive(Default, Clone, Copy)]
struct Report {
    status: i32,
    /// The sourced file really ran (it set the second nonce).
    ran: bool,
}

pub(crate) fn register<T: AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor and the AsyncFd owns `inner`, so the descriptor
    // stays open for exactly as long as it is registered.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }.map_err(io::Error::from)
}

pub(crate) fn random_token() -> String {
    random_tokens(1).remove(0)
}

/// `count` random 96-bit tokens in hex, from one call to the kernel.
fn random_tokens(count: usize) -> Vec<String> {
    let mut bytes = vec![0u8; 12 * count];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    bytes
        .chunks(12)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// Quotes `s` for bash as one word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl LocalSession {
    /// Starts a shell and waits until it is ready. `restore` names a state file to source.
    pub async fn start(launch: ShellLaunch) -> io::Result<LocalSession> {
        Self::spawn(launch, None, None).await
    }

    async fn spawn(
        launch: ShellLaunch,
        restore: Option<&Path>,
        cwd: Option<&str>,
    ) -> io::Result<LocalSession> {
        let (control, shell_end) = UnixStream::pair()?;
        let (status, status_end) = UnixStream::pair()?;
        status.set_nonblocking(true)?;
        let starter = launch.starter.clone();
        let child = starter.start(&launch, OwnedFd::from(shell_end), OwnedFd::from(status_end))?;
        let pidfd = register(pidfd_open(child.pid())?)?;
        let mut session = LocalSession {
            launch,
            child,
            pidfd,
            control,
            status: StatusChannel {
                socket: register(status)?,
                buf: Vec::new(),
            },
            seq: 0,
            last_cwd: None,
        };
        session.initialise(restore, cwd).await?;
        Ok(session)
    }

    fn dir(&self) -> String {
        shell_quote(&self.launch.control_dir_inside)
    }

    async fn initialise(&mut self, restore: Option<&Path>, cwd: Option<&str>) -> io::Result<()> {
        let d = self.dir();
        let ready = random_token();
        let mut init = String::new();
        let dialect = self.launch.dialect();
        init.push_str(dialect.prelude());
        // The state a cell's `exit`, or a TERM from labrun, leaves for the next shell.
        init.push_str(&dialect.save_function(&d));
        init.push_str(dialect.save_traps());
        // The working directory first: a saved state, sourced after it, carries its own.
        let cwd = cwd.unwrap_or(&self.launch.workdir_inside).to_string();
        init.push_str(&dialect.cd(&cwd));
        if let Some(state) = restore {
            init.push_str(&dialect.source_quietly(&state.to_string_lossy()));
            init.push_str(dialect.save_traps());
        }
        init.push_str(&dialect.report(&format!("{ready} 0 0")));
        // Sourced from a file: the shell reads its input socket a byte at a time.
        let init_name = format!("init.{ready}");
        fs::write(self.launch.control_dir.join(&init_name), init)?;
        let init_file = format!("{}/{init_name}", self.launch.control_dir_inside);
        self.send(&match dialect {
            Dialect::Bash => format!("builtin . {}\n", shell_quote(&init_file)),
            Dialect::Posix => format!("\\. {}\n", shell_quote(&init_file)),
        })?;
        // No round trip to wait for it: the shell reads the next line only once it has run
        // this one, the ready report just waits in the status buffer, and a shell that dies
        // while starting is seen through the pidfd by the first command.
        Ok(())
    }

    fn send(&mut self, text: &str) -> io::Result<()> {
        self.control.write_all(text.as_bytes())
    }

    /// How this session's shell was started: other programs of the same environment start
    /// the same way (interactive cells, background processes).
    pub fn launch(&self) -> &ShellLaunch {
        &self.launch
    }

    /// The harness's dialect for this session's shell.
    pub fn dialect(&self) -> Dialect {
        self.launch.dialect()
    }

    /// Saves the shell's state (variables, functions, options, directory, umask) into a file
    /// of the control directory, for another shell of the same environment; returns its path
    /// as the shells see it.
    pub async fn export_state(&mut self) -> io::Result<String> {
        let env = BTreeMap::new();
        self.run("__labrun_save", quiet_options(&env)).await?;
        let name = format!("xfer.{}", random_token());
        let state = self.launch.control_dir.join("state");
        // The harness's own variables belong to the shell that saved them: sourced in the
        // middle of a command, they would replace the importing shell's nonces.
        let text = fs::read(&state)?;
        fs::remove_file(&state)?;
        let kept: Vec<&[u8]> = text
            .split_inclusive(|&b| b == b'\n')
            .filter(|line| {
                !line.starts_with(b"declare -- __labrun_") && !line.starts_with(b"__labrun_")
            })
            .collect();
        fs::write(self.launch.control_dir.join(&name), kept.concat())?;
        Ok(format!("{}/{name}", self.launch.control_dir_inside))
    }

    /// Takes over the state another shell exported.
    pub async fn import_state(&mut self, inside_path: &str) -> io::Result<()> {
        let env = BTreeMap::new();
        let dialect = self.launch.dialect();
        self.run(&dialect.source_quietly(inside_path), quiet_options(&env))
            .await?;
        Ok(())
    }

    /// The shell's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    fn reap(&mut self) -> ExitStatus {
        self.child.reap()
    }

    /// Runs one command and reports what it did. Errors are labrun's own failures.
    pub async fn run(&mut self, script: &str, opts: RunOptions<'_>) -> io::Result<CommandRun> {
        let mut runs = self.run_batch(&[script], opts).await?;
        Ok(runs.remove(0))
    }

    /// Runs several commands one after another (the steps of a transcript) with one line
    /// sent to the shell, and reports each on its own. The shell runs ahead; labrun follows
    /// each command's status in order. A command that ends the shell, times out or finds the
    /// harness tampered with ends the batch there; the rest run in a fresh batch.
    pub async fn run_batch(
        &mut self,
        scripts: &[&str],
        opts: RunOptions<'_>,
    ) -> io::Result<Vec<CommandRun>> {
        let RunOptions {
            timeout,
            split_streams,
            env,
            cwd,
            output_cap,
            mut live,
        } = opts;
        let mut results: Vec<CommandRun> = Vec::with_capacity(scripts.len());
        let mut pending_event: Option<ShellEvent> = None;
        while results.len() < scripts.len() {
            let todo = &scripts[results.len()..];
            let todo = &todo[..todo.len().min(MAX_BATCH)];
            let mut shell_event = pending_event.take();
            self.seq += 1;
            let n = self.seq;
            let ctl = self.launch.control_dir.clone();
            let inside = self.launch.control_dir_inside.clone();
            let d = self.dir();
            let tokens = random_tokens(2 + todo.len());
            let nonce = &tokens[0];
            let fifo_tag = &tokens[1];

            self.last_cwd = fs::read_link(format!("/proc/{}/cwd", self.child.pid()))
                .ok()
                .map(|p| p.to_string_lossy().into_owned());

            // The harness for these commands, in a file of its own so that the line the shell
            // reads byte by byte stays short. Every word is quoted (no alias applies); an
            // assignment enters POSIX mode, where `unset` is found before any function, to
            // remove a function named `builtin` or `enable`; everything else goes through
            // `builtin`. The nonce is not in the file: it comes as the file's argument, in the
            // line only the shell reads.
            let dialect = self.launch.dialect();
            let assignments: String = env
                .iter()
                .map(|(k, v)| format!("{k}={} ", shell_quote(v)))
                .collect();
            let mut steps = Vec::with_capacity(todo.len());
            let mut wrapper = dialect.wrapper_head();
            for (i, script) in todo.iter().enumerate() {
                let begin = &tokens[2 + i];
                let cell_file = ctl.join(format!("c.{n}.{i}"));
                let inside_cell = format!("{inside}/c.{n}.{i}");
                // The first line resets what an earlier cell may have left in the way, on the
                // same line as the cell's own first line so that bash's line numbers stay the
                // cell's.
                let mut body = dialect.command_head(begin);
                body.push_str(script);
                if !script.ends_with('\n') {
                    body.push('\n');
                }
                fs::write(&cell_file, body)?;
                let out_name = format!("o.{fifo_tag}.{i}");
                let err_name = format!("e.{fifo_tag}.{i}");
                let out = Capture::open(&ctl.join(&out_name), output_cap)?;
                let err = if split_streams {
                    Some(Capture::open(&ctl.join(&err_name), output_cap)?)
                } else {
                    None
                };
                let redirects = if split_streams {
                    format!("</dev/null >{d}/{out_name} 2>{d}/{err_name} 3>&-")
                } else {
                    format!("</dev/null >{d}/{out_name} 2>&1 3>&-")
                };
                let source = dialect.source(&assignments, &inside_cell, &redirects);
                wrapper.push_str(dialect.before_command());
                match cwd {
                    Some(dir) => wrapper
                        .push_str(&format!("{} && {source}\n", dialect.enter(dir, &redirects))),
                    None => wrapper.push_str(&format!("{source}\n")),
                }
                wrapper.push_str(&dialect.status_report(i));
                if cwd.is_some() {
                    wrapper.push_str(dialect.leave());
                }
                steps.push(Step {
                    cell_file,
                    inside_cell,
                    out,
                    err,
                    out_path: ctl.join(&out_name),
                    err_path: ctl.join(&err_name),
                    begin: begin.clone(),
                });
            }
            let wrapper_file = ctl.join(format!("w.{n}"));
            fs::write(&wrapper_file, wrapper)?;
            // In POSIX mode `.` is found before any function, and the line stays short.
            let line = dialect.batch_line(&format!("{inside}/w.{n}"), nonce);

            if self.has_exited() || self.send(&line).is_err() {
                // The shell died between commands (a background process killed it).
                let restored = self.replace(true).await?;
                shell_event = Some(ShellEvent::Replaced {
                    reason: "the shell had exited before this cell".into(),
                    state_restored: restored,
                });
                self.send(&line)?;
            }

            let mut ended_batch = false;
            for (i, step) in steps.iter_mut().enumerate() {
                let started = Instant::now();
                if ended_batch {
                    break;
                }
                let needle = match dialect {
                    Dialect::Bash => format!("{}: ", step.inside_cell),
                    Dialect::Posix => {
                        format!("{}: {}: ", self.launch.program.display(), step.inside_cell)
                    }
                };
                let shown = match dialect {
                    Dialect::Bash => "bash: ".to_string(),
                    Dialect::Posix => format!(
                        "{}: ",
                        self.launch
                            .program
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                    ),
                };
                // Live output shows error messages as the recorded output will.
                let streaming = live.is_some();
                let mut renamer = LiveRename::new(&needle, &shown);
                let mut forward = |chunk: &[u8]| {
                    if let Some(f) = live.as_mut() {
                        let ready = renamer.push(chunk);
                        if !ready.is_empty() {
                            f(&ready);
                        }
                    }
                };
                let mut step_live: Live = if streaming { Some(&mut forward) } else { None };
                let deadline = started + timeout;
                let key = format!("{nonce}.{i}");
                let mut report: Option<Report> = None;
                let mut timed_out = None;
                let mut shell_exit: Option<ExitStatus> = None;
                let mut killing_since: Option<Instant> = None;
                loop {
                    let err_open = step.err.as_ref().is_some_and(|c| !c.done);
                    let kill_deadline = killing_since.map(|t| t + KILL_GRACE);
                    // In this order: a shell that ran ahead and already exited (`exit` in a
                    // later step) left this step's status on the socket before its exit, and
                    // output that never stops must not hold off the status or the timeout
                    // (what is left of it is taken once the step ends).
                    tokio::select! {
                        biased;
                        r = self.status.read_report(&key, Some(&step.begin)) => {
                            report = Some(r?);
                            break;
                        }
                        _ = self.pidfd.readable() => {
                            shell_exit = Some(self.reap());
                            break;
                        }
                        _ = tokio::time::sleep_until(deadline.into()), if killing_since.is_none() => {
                            timed_out = Some(timeout);
                            killing_since = Some(Instant::now());
                            // The whole tree, the shell included: the shell's TERM trap saves
                            // its state so the next shell can carry on from it.
                            let mut tree = procs::descendants(self.child.pid());
                            tree.push(self.child.pid());
                            procs::signal_all(&tree, Signal::SIGTERM);
                        }
                        _ = async { tokio::time::sleep_until(kill_deadline.unwrap().into()).await }, if kill_deadline.is_some() => {
                            procs::kill_descendants(self.child.pid(), Duration::from_secs(2));
                            procs::signal_all(&[self.child.pid()], Signal::SIGKILL);
                            killing_since = Some(Instant::now() + Duration::from_secs(3600));
                        }
                        r = step.out.reader.readable(), if !step.out.done => {
                            r?;
                            step.out.drain_now(&mut step_live, false);
                        }
                        r = async { step.err.as_ref().unwrap().reader.readable().await }, if err_open => {
                            r?;
                            if let Some(e) = step.err.as_mut() { e.drain_now(&mut step_live, false); }
                        }
                    }
                }
                let duration = started.elapsed();
                if timed_out.is_some() && shell_exit.is_none() {
                    // The shell was sent SIGTERM with its tree. Either its TERM trap is saving
                    // its state and exiting, or the cell made it ignore TERM and it finished the
                    // command: then this line asks it to save and exit. Past the grace period it
                    // is killed.
                    let _ = self.send(dialect.save_and_exit());
                    shell_exit = Some(self.wait_exit(KILL_GRACE).await);
                }
                if timed_out.is_some() {
                    // Whatever ignored SIGTERM under the shell goes now.
                    procs::kill_descendants(self.child.pid(), Duration::from_secs(2));
                }
                step.out.finish(&mut step_live);
                if let Some(e) = step.err.as_mut() {
                    e.finish(&mut step_live);
                }
                let rest = renamer.finish();
                if let Some(f) = live.as_mut()
                    && !rest.is_empty()
                {
                    f(&rest);
                }
                let status = match (report.map(|r| r.status), shell_exit) {
                    (Some(_), _) if !report.is_some_and(|r| r.ran) => {
                        // The harness did not run the command as written.
                        self.replace(false).await?;
                        shell_event = Some(ShellEvent::Tampered);
                        ended_batch = true;
                        ExitStatus::Code(255)
                    }
                    (marker, Some(exit)) => {
                        let restored = self.replace(true).await?;
                        let reason = if timed_out.is_some() {
                            "the shell was stopped at the timeout".to_string()
                        } else {
                            format!("the shell exited during this cell (status {})", exit.code())
                        };
                        shell_event = Some(ShellEvent::Replaced {
                            reason,
                            state_restored: restored,
                        });
                        ended_batch = true;
                        marker.map(ExitStatus::Code).unwrap_or(exit)
                    }
                    (Some(code), None) => ExitStatus::Code(code),
                    (None, None) => {
                        unreachable!("the loop ends only with a status or a dead shell")
                    }
                };
                let cleanup = |bytes: Vec<u8>| rename_source(bytes, &needle, &shown);
                results.push(CommandRun {
                    output: cleanup(std::mem::take(&mut step.out.kept)),
                    stderr: step
                        .err
                        .as_mut()
                        .map(|e| cleanup(std::mem::take(&mut e.kept)))
                        .unwrap_or_default(),
                    status,
                    duration,
                    timed_out,
                    truncated: step.out.truncated + step.err.as_ref().map_or(0, |e| e.truncated),
                    shell_event: shell_event.take(),
                });
            }
            for step in &steps {
                let _ = fs::remove_file(&step.cell_file);
                let _ = fs::remove_file(&step.out_path);
                let _ = fs::remove_file(&step.err_path);
            }
            let _ = fs::remove_file(&wrapper_file);
            pending_event = shell_event;
        }
        Ok(results)
    }

    /// Whether the shell has already exited (a background process killed it), without waiting.
    fn has_exited(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.pidfd.get_ref().as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
    }

    /// Waits up to `grace` for the shell to exit, then kills it and its tree; reaps it.
    async fn wait_exit(&mut self, grace: Duration) -> ExitStatus {
        let exited = tokio::time::timeout(grace, self.pidfd.readable())
            .await
            .is_ok();
        if !exited {
            procs::kill_descendants(self.child.pid(), Duration::from_secs(2));
            procs::signal_all(&[self.child.pid()], Signal::SIGKILL);
            let _ = self.pidfd.readable().await;
        }
        self.reap()
    }

    /// Replaces a dead or tampered shell. Returns whether its saved state was restored.
    async fn replace(&mut self, use_state: bool) -> io::Result<bool> {
        self.kill_all();
        let state = self.launch.control_dir.join("state");
        let restore = use_state && state.exists();
        // A name of its own: the new shell sources it after this returns, without a round
        // trip, so it is left for the run directory's removal rather than deleted here.
        let restore_name = format!("state.{}", random_token());
        let restore_path = restore
            .then(|| PathBuf::from(format!("{}/{restore_name}", self.launch.control_dir_inside)));
        if restore {
            fs::rename(&state, self.launch.control_dir.join(&restore_name))?;
        }
        let _ = fs::remove_file(&state);
        let cwd = self.last_cwd.clone();
        let next = Box::pin(Self::spawn(
            self.launch.clone(),
            restore_path.as_deref(),
            cwd.as_deref(),
        ))
        .await?;
        let old = std::mem::replace(self, next);
        drop(old);
        Ok(restore)
    }

    /// Kills the shell and everything under it.
    pub fn kill_all(&mut self) {
        self.child.kill();
    }
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        self.child.abandon();
    }
}

/// A session: driven here, or by labrun's agent in a virtual machine.
pub enum ShellSession {
    Local(LocalSession),
    Remote(RemoteSession),
}

impl ShellSession {
    /// Starts the session's shell; a backend whose shell runs elsewhere hands over its agent.
    pub async fn start(launch: ShellLaunch) -> io::Result<ShellSession> {
        match launch.starter.take_agent() {
            Some(agent) => Ok(ShellSession::Remote(
                RemoteSession::start(launch, agent?).await?,
            )),
            None => Ok(ShellSession::Local(LocalSession::start(launch).await?)),
        }
    }

    pub fn launch(&self) -> &ShellLaunch {
        match self {
            ShellSession::Local(s) => s.launch(),
            ShellSession::Remote(s) => s.launch(),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.launch().dialect()
    }

    /// Whether the shell runs in a machine of its own (pty, background and copy cells need
    /// a local one).
    pub fn is_remote(&self) -> bool {
        matches!(self, ShellSession::Remote(_))
    }

    fn local(&mut self, what: &str) -> io::Result<&mut LocalSession> {
        match self {
            ShellSession::Local(s) => Ok(s),
            ShellSession::Remote(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{what} is not supported on the vm backend"),
            )),
        }
    }

    pub async fn export_state(&mut self) -> io::Result<String> {
        self.local("moving shell state between shells")?
            .export_state()
            .await
    }

    pub async fn import_state(&mut self, inside_path: &str) -> io::Result<()> {
        self.local("moving shell state between shells")?
            .import_state(inside_path)
            .await
    }

    /// The shell's pid on this machine (for a remote session: its machine's).
    pub fn pid(&self) -> u32 {
        match self {
            ShellSession::Local(s) => s.pid(),
            ShellSession::Remote(s) => s.pid(),
        }
    }

    pub async fn run(&mut self, script: &str, opts: RunOptions<'_>) -> io::Result<CommandRun> {
        let mut runs = self.run_batch(&[script], opts).await?;
        Ok(runs.remove(0))
    }

    /// See [`LocalSession::run_batch`].
    pub async fn run_batch(
        &mut self,
        scripts: &[&str],
        opts: RunOptions<'_>,
    ) -> io::Result<Vec<CommandRun>> {
        match self {
            ShellSession::Local(s) => s.run_batch(scripts, opts).await,
            ShellSession::Remote(s) => s.run_batch(scripts, opts).await,
        }
    }

    pub fn kill_all(&mut self) {
        if let ShellSession::Local(s) = self {
            s.kill_all();
        }
    }
}

/// Options for the harness's own commands (state transfer).
fn quiet_options(env: &BTreeMap<String, String>) -> RunOptions<'_> {
    RunOptions {
        timeout: Duration::from_secs(30),
        split_streams: false,
        env,
        cwd: None,
        output_cap: 4096,
        live: None,
    }
}

/// Finds `NONCE STATUS RAN` in what arrived on the status socket, consuming up to it.
/// `ran` is true when RAN equals `ran_nonce` (or when none is expected).
fn find_report(buf: &mut Vec<u8>, nonce: &str, ran_nonce: Option<&str>) -> Option<Report> {
    let needle = format!("{nonce} ");
    let at = buf
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let rest = &buf[at + needle.len()..];
    let end = rest.iter().position(|&b| b == b'\n')?;
    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
    buf.drain(..at + needle.len() + end + 1);
    let mut parts = text.split(' ');
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(255);
    let ran = match ran_nonce {
        Some(want) => parts.next() == Some(want),
        None => true,
    };
    Some(Report { status, ran })
}

/// `rename_source` for output shown as it comes: a file name may arrive split across two
/// chunks, so a tail that could be the start of one waits for the next chunk (or the end).
struct LiveRename<'a> {
    needle: &'a str,
    shown: &'a str,
    held: Vec<u8>,
}

impl<'a> LiveRename<'a> {
    fn new(needle: &'a str, shown: &'a str) -> Self {
        LiveRename {
            needle,
            shown,
            held: Vec::new(),
        }
    }

    /// What of the output so far can be shown now, renamed.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        let needle = self.needle.as_bytes();
        // The longest tail that is a proper beginning of the needle stays.
        let keep = (1..needle.len().min(self.held.len() + 1))
            .rev()
            .find(|&n| self.held.ends_with(&needle[..n]))
            .unwrap_or(0);
        let ready: Vec<u8> = self.held.drain(..self.held.len() - keep).collect();
        rename_source(ready, self.needle, self.shown)
    }

    /// The rest, at the end of the command.
    fn finish(&mut self) -> Vec<u8> {
        rename_source(std::mem::take(&mut self.held), self.needle, self.shown)
    }
}

/// Error messages name the sourced file ("/…/c.3: line 2: …"); show them as bash would
/// for a command typed at a prompt ("bash: line 2: …"), so output does not depend on
/// where the control directory happens to be.
fn rename_source(bytes: Vec<u8>, needle: &str, shown: &str) -> Vec<u8> {
    let needle = needle.as_bytes();
    if bytes.len() < needle.len() || !bytes.windows(needle.len()).any(|w| w == needle) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(needle) {
            out.extend_from_slice(shown.as_bytes());
            i += needle.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_output_is_renamed_when_a_name_arrives_in_pieces() {
        let needle = "/bin/sh: /run/labrun/c.1.0: ";
        let whole = b"a\n/bin/sh: /run/labrun/c.1.0: line 1: x: not found\nb";
        // Every way of cutting the output in two gives the same shown text.
        for cut in 0..=whole.len() {
            let mut live = LiveRename::new(needle, "sh: ");
            let mut shown = live.push(&whole[..cut]);
            shown.extend(live.push(&whole[cut..]));
            shown.extend(live.finish());
            assert_eq!(
                String::from_utf8(shown).unwrap(),
                "a\nsh: line 1: x: not found\nb",
                "cut at {cut}"
            );
        }
        // A prompt that merely looks like the start of a name is shown at the end at the latest.
        let mut live = LiveRename::new(needle, "sh: ");
        assert_eq!(live.push(b"Password: /bin"), b"Password: ");
        assert_eq!(live.finish(), b"/bin");
    }

    #[test]
    fn reports_are_found_by_nonce_whatever_surrounds_them() {
        let mut buf = b"garbage without newline abc 0 x\nab".to_vec();
        assert!(find_report(&mut buf, "n1", Some("r1")).is_none());
        buf.extend_from_slice(b"c n1 7 r1\nrest");
        let r = find_report(&mut buf, "n1", Some("r1")).unwrap();
        assert_eq!(r.status, 7);
        assert!(r.ran);
        assert_eq!(buf, b"rest");
        let mut buf = b"n2 0 \n".to_vec();
        assert!(!find_report(&mut buf, "n2", Some("r2")).unwrap().ran);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn renames_the_sourced_file_in_messages() {
        let got = rename_source(
            b"/x/c.3: line 2: foo: command not found\n".to_vec(),
            "/x/c.3: ",
            "bash: ",
        );
        assert_eq!(got, b"bash: line 2: foo: command not found\n");
        assert_eq!(
            rename_source(b"plain".to_vec(), "/x/c.3: ", "bash: "),
            b"plain"
        );
    }
}
