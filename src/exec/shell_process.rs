//! How a session's shell process starts and ends, whatever environment it runs in.
//!
//! The session protocol needs only this from a backend: start the shell with its control
//! socket as fd 0 and its status socket as fd 3 (and nothing else of labrun's open), give its
//! pid as this machine sees it, say how it ended, and kill it with everything under it. The
//! `host` backend forks it directly; the container backend asks the container's init.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::procs;
use super::session::ShellLaunch;
use crate::outcome::ExitStatus;

/// Starts a session's shell in one environment.
pub trait ShellStarter: Send + Sync + fmt::Debug {
    /// Starts `launch`'s shell with `control` as its fd 0 and `status` as its fd 3.
    fn start(
        &self,
        launch: &ShellLaunch,
        control: OwnedFd,
        status: OwnedFd,
    ) -> io::Result<Box<dyn ShellProcess>>;

    /// A backend whose shell runs out of labrun's reach (a virtual machine) hands over the
    /// connection to its agent instead, once: the session then runs there.
    fn take_agent(&self) -> Option<io::Result<super::remote_session::Agent>> {
        None
    }
}

/// A running shell.
pub trait ShellProcess: Send {
    /// Its pid on this machine.
    fn pid(&self) -> u32;
    /// How it ended; call once it has exited (its pidfd is readable).
    fn reap(&mut self) -> ExitStatus;
    /// Kills it and every process under it, and reaps it.
    fn kill(&mut self);
    /// Ends it when the whole environment is about to go (the session is dropped): a
    /// backend whose teardown kills everything anyway can skip the careful kill.
    fn abandon(&mut self) {
        self.kill();
    }
}

/// Shells forked by labrun itself (the `host` backend).
#[derive(Debug)]
pub struct HostStarter;

impl ShellStarter for HostStarter {
    fn start(
        &self,
        launch: &ShellLaunch,
        control: OwnedFd,
        status: OwnedFd,
    ) -> io::Result<Box<dyn ShellProcess>> {
        let status_fd = status.as_raw_fd();
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .env_clear()
            .envs(&launch.env)
            .current_dir(&launch.cwd)
            .stdin(Stdio::from(control))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // A session of its own: no controlling terminal to inject into, no Ctrl-C
                // from labrun's terminal reaching the shell directly.
                libc::setsid();
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                libc::umask(0o022);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                // The status socket becomes fd 3; descriptors labrun inherited without
                // close-on-exec must not reach a cell.
                if libc::dup2(status_fd, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "failed to start the shell {}: {e}",
                    launch.program.display()
                ),
            )
        })?;
        drop(status);
        Ok(Box::new(HostShell { child }))
    }
}

struct HostShell {
    child: Child,
}

impl ShellProcess for HostShell {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn reap(&mut self) -> ExitStatus {
        match waitpid(Pid::from_raw(self.child.id() as i32), None) {
            Ok(WaitStatus::Exited(_, code)) => ExitStatus::Code(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => ExitStatus::Signal(sig as i32),
            _ => ExitStatus::Signal(libc::SIGKILL),
        }
    }

    fn kill(&mut self) {
        let pid = self.child.id();
        procs::signal_all(&[pid], Signal::SIGSTOP);
        procs::kill_descendants(pid, Duration::from_secs(2));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An exit as `waitpid` reports it, for shells reaped by someone else.
pub fn exit_from_wait_status(status: i32) -> ExitStatus {
    if libc::WIFEXITED(status) {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Signal(libc::SIGKILL)
    }
}
