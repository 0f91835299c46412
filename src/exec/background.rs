//! `spawn: true` / `serve: true` cells: a program that keeps running in the background while
//! later cells use it (a web server, a database), stopped when the run ends however it ends.
//!
//! Readiness (`wait_for:`) is one of: a TCP port listening in the environment (`8080`,
//! `port:8080`), a file that exists there (`file:/tmp/ready`), or a line of the program's
//! output that contains a text (`output:Listening`, or any other text).

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::program::{self, Program};
use super::session::{ShellSession, random_token};

/// How often readiness is looked at.
const POLL: Duration = Duration::from_millis(50);

/// What `wait_for:` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Port(u16),
    File(String),
    Output(String),
}

impl Ready {
    /// Reads a `wait_for:` value.
    pub fn parse(text: &str) -> Ready {
        let port = |p: &str| p.trim().parse::<u16>().ok();
        if let Some(p) = port(text) {
            return Ready::Port(p);
        }
        if let Some(p) = text
            .strip_prefix("port:")
            .or(text.strip_prefix("tcp:"))
            .and_then(port)
        {
            return Ready::Port(p);
        }
        if let Some(f) = text.strip_prefix("file:") {
            return Ready::File(f.trim().to_owned());
        }
        Ready::Output(text.strip_prefix("output:").unwrap_or(text).to_owned())
    }

    pub fn describe(&self) -> String {
        match self {
            Ready::Port(p) => format!("port {p} to listen"),
            Ready::File(f) => format!("the file {f}"),
            Ready::Output(t) => format!("a line of output with '{t}'"),
        }
    }
}

/// A running background program. Dropping it kills it and everything it started.
pub struct Background {
    program: Program,
    log: PathBuf,
}

impl Background {
    /// Starts `command` with its output going to a file of the control directory.
    pub async fn start(
        session: &mut ShellSession,
        command: &str,
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
    ) -> std::io::Result<Background> {
        let log = session
            .launch()
            .control_dir
            .join(format!("background.{}", random_token()));
        let output: OwnedFd = fs::File::create(&log)?.into();
        let input: OwnedFd = fs::File::open("/dev/null")?.into();
        let program = program::start(session, command, (env, cwd), input, output, false).await?;
        Ok(Background { program, log })
    }

    /// What the program printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Whether the program (its first process) has ended.
    pub fn ended(&self) -> bool {
        gone_or_zombie(self.program.process.pid())
    }

    /// Waits until `ready` holds. File checks run in the session (paths are the
    /// environment's); ports are read from the program's own network namespace.
    pub async fn wait(
        &self,
        ready: &Ready,
        session: &mut ShellSession,
        deadline: Instant,
    ) -> Result<(), String> {
        loop {
            let holds = match ready {
                Ready::Port(p) => listening(self.program.process.pid(), *p),
                Ready::Output(t) => self.output().lines().any(|l| l.contains(t.as_str())),
                Ready::File(f) => file_exists(session, f).await,
            };
            if holds {
                return Ok(());
            }
            if self.ended() {
                return Err(format!(
                    "the program ended before {} came",
                    ready.describe()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("no sign of {} in time", ready.describe()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.program.process.kill();
    }
}

/// Whether `pid` is gone or has ended and waits to be reaped.
fn gone_or_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Whether something listens on TCP `port` in the network namespace of process `pid`.
fn listening(pid: u32, port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|table| {
        fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                local.ends_with(&wanted) && state == "0A"
            })
    })
}

async fn file_exists(session: &mut ShellSession, path: &str) -> bool {
    let env = BTreeMap::new();
    let script = format!("test -e {}", super::session::shell_quote(path));
    let opts = super::session::RunOptions {
        timeout: Duration::from_secs(5),
        split_streams: false,
        env: &env,
        cwd: None,
        output_cap: 4096,
        live: None,
    };
    matches!(
        session.run(&script, opts).await,
        Ok(run) if run.status == crate::outcome::ExitStatus::Code(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_values() {
        assert_eq!(Ready::parse("8080"), Ready::Port(8080));
        assert_eq!(Ready::parse("port:80"), Ready::Port(80));
        assert_eq!(Ready::parse("file:/tmp/up"), Ready::File("/tmp/up".into()));
        assert_eq!(
            Ready::parse("output:Listening"),
            Ready::Output("Listening".into())
        );
        assert_eq!(
            Ready::parse("ready to go"),
            Ready::Output("ready to go".into())
        );
    }
}
