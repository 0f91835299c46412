//! Session shells inside a container: started by the container's init, watched from labrun.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::runtime::Container;
use crate::exec::procs;
use crate::exec::session::ShellLaunch;
use crate::exec::shell_process::{ShellProcess, ShellStarter, exit_from_wait_status};
use crate::outcome::ExitStatus;

/// Starts shells through a container's init.
#[derive(Debug)]
pub struct ContainerStarter {
    pub container: Arc<Container>,
    pub privileged: bool,
}

impl ShellStarter for ContainerStarter {
    fn start(
        &self,
        launch: &ShellLaunch,
        control: OwnedFd,
        status: OwnedFd,
    ) -> io::Result<Box<dyn ShellProcess>> {
        let mut argv = vec![launch.program.to_string_lossy().into_owned()];
        argv.extend(launch.args.iter().map(|a| a.to_string_lossy().into_owned()));
        let env: Vec<String> = launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (ns_pid, host_pid) = self.container.spawn(
            self.privileged,
            &launch.cwd.to_string_lossy(),
            &argv,
            &env,
            control,
            status,
        )?;
        Ok(Box::new(ContainedShell {
            container: self.container.clone(),
            ns_pid,
            host_pid,
            reaped: None,
        }))
    }
}

struct ContainedShell {
    container: Arc<Container>,
    ns_pid: i32,
    host_pid: u32,
    reaped: Option<ExitStatus>,
}

impl ShellProcess for ContainedShell {
    fn pid(&self) -> u32 {
        self.host_pid
    }

    fn reap(&mut self) -> ExitStatus {
        if let Some(status) = self.reaped {
            return status;
        }
        let status = match self.container.wait_exit(self.ns_pid) {
            Ok(raw) => exit_from_wait_status(raw),
            Err(_) => ExitStatus::Signal(libc::SIGKILL),
        };
        self.reaped = Some(status);
        status
    }

    fn abandon(&mut self) {
        // The container's teardown kills everything in it; no need to wait for this one.
        procs::signal_all(&[self.host_pid], Signal::SIGKILL);
        self.reaped = Some(ExitStatus::Signal(libc::SIGKILL));
    }

    fn kill(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        let pid = self.host_pid;
        procs::signal_all(&[pid], Signal::SIGSTOP);
        procs::kill_descendants(pid, Duration::from_secs(2));
        procs::signal_all(&[pid], Signal::SIGKILL);
        self.reap();
    }
}
