//! A run's shells: the session's own, and a privileged one started the first time a
//! `privileged: true` cell runs. Switching between them carries the shell state (variables,
//! functions, options, working directory) from one to the other, so that to the notebook
//! they are one session; files and mounts are shared because both live in the same container.

use std::io;

use super::session::{ShellLaunch, ShellSession};

pub struct Sessions {
    main: ShellSession,
    privileged: Option<ShellSession>,
    /// How to start the privileged shell; `None` where privilege means nothing (host).
    privileged_launch: Option<ShellLaunch>,
    /// Which shell ran the last cell.
    on_privileged: bool,
}

impl Sessions {
    pub async fn start(
        launch: ShellLaunch,
        privileged_launch: Option<ShellLaunch>,
    ) -> io::Result<Sessions> {
        Ok(Sessions {
            main: ShellSession::start(launch).await?,
            privileged: None,
            privileged_launch,
            on_privileged: false,
        })
    }

    /// The shell a cell runs in, with the state of the one that ran the cell before.
    pub async fn for_cell(&mut self, privileged: bool) -> io::Result<&mut ShellSession> {
        let want = privileged && self.privileged_launch.is_some();
        if want != self.on_privileged {
            if want && self.privileged.is_none() {
                let launch = self.privileged_launch.clone().expect("checked above");
                self.privileged = Some(ShellSession::start(launch).await?);
            }
            let (from, to) = match (want, self.privileged.as_mut()) {
                (true, Some(p)) => (&mut self.main, p),
                (false, Some(p)) => (p, &mut self.main),
                (_, None) => unreachable!("the privileged shell exists once it was used"),
            };
            let state = from.export_state().await?;
            to.import_state(&state).await?;
            self.on_privileged = want;
        }
        Ok(match (self.on_privileged, self.privileged.as_mut()) {
            (true, Some(p)) => p,
            _ => &mut self.main,
        })
    }
}
