//! Environments: where a notebook's session runs. A backend turns an `EnvSpec` into a
//! `ShellLaunch` (how to start the session shell) plus whatever must live as long as the run.
//!
//! `container` (the default, labrun's own runtime), `host` (unisolated) and `vm` (a freshly
//! booted qemu machine with labrun's agent inside) are here.

pub mod container;
pub mod host;
pub mod limit_watch;
pub mod network;
pub mod rundir;
pub mod vm;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::exec::session::ShellLaunch;
use crate::notebook::BackendKind;

/// What a backend needs to build one run's environment.
#[derive(Debug, Clone, Default)]
pub struct EnvSpec {
    pub backend: BackendKind,
    /// Variables from `env:` and `--env`, on top of the fixed default environment.
    pub env: BTreeMap<String, String>,
    /// The notebook's own directory (fixtures).
    pub notebook_dir: PathBuf,
    /// The shell the notebook asks for; unset, bash where the image has it, else sh.
    pub shell: Option<String>,
    /// The hostname the notebook's environment should have (target name or file stem).
    pub hostname: String,
    /// `image:` as written (container and vm backends); `host` when unset.
    pub image: Option<String>,
    /// `workdir:` (default /lab).
    pub workdir: Option<String>,
    /// `network: host`: no network namespace of its own.
    pub host_network: bool,
    /// `limits:` as written.
    pub limits: BTreeMap<String, String>,
    /// Whether some cell is `privileged: true`.
    pub privileged: bool,
    /// `setup:` steps, each a cached image layer.
    pub setup: Vec<String>,
    /// `--rebuild`: build the setup steps' layers afresh.
    pub rebuild: bool,
    /// Host paths the environment must not show: the notebook's directory and its expected
    /// output (grading adds the submissions).
    pub hidden: Vec<PathBuf>,
    /// The lab's network this machine joins (several machines; set by the runner, which
    /// made the network).
    pub network: Option<network::NetAttach>,
    /// Grade mode: the submission's files, mounted read-only at `/lab/.submission`.
    pub submission: Option<PathBuf>,
    /// `kernel:` or `--kernel` (vm backend), resolved against the notebook's directory.
    pub kernel: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// A built environment: how to start its shell, and what to clean up when it is dropped.
pub struct Environment {
    pub launch: ShellLaunch,
    /// How to start a shell for `privileged: true` cells, where the backend has one.
    pub privileged_launch: Option<ShellLaunch>,
    /// Limits that could not be enforced as asked, and other things the report should say.
    pub warnings: Vec<String>,
    /// Reads what the run's limits counted, between cells.
    pub watch: Option<limit_watch::LimitWatch>,
    /// Where cell paths are resolved on this machine (the working directory's host path).
    pub workdir_host: PathBuf,
    guard: Box<dyn EnvGuard>,
}

/// What keeps an environment alive; dropping it tears the environment down.
pub trait EnvGuard: Send {
    /// Leaves the environment up after labrun exits (`--keep`); says how to enter and
    /// remove it.
    fn keep(self: Box<Self>) -> Result<String, EnvError>;
}

impl Environment {
    /// `--keep`: leaves the environment up and says how to enter and remove it.
    pub fn keep(self) -> Result<String, EnvError> {
        let Environment { guard, .. } = self;
        guard.keep()
    }
}

/// The calling user's name: from the user database (the machine's name services, LDAP and
/// SSSD included), else from the login's `USER` or `LOGNAME` (a uid no service knows). The
/// name picks the user's lines of /etc/subuid and /etc/subgid (which newuidmap checks against
/// the real user anyway) and the host backend's `USER`.
pub(crate) fn caller_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| {
            ["USER", "LOGNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        })
}

/// The fixed default environment of every session (section 1 of the contract).
pub fn default_env() -> BTreeMap<String, String> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("TERM", "dumb"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TZ", "UTC"),
        ("USER", "root"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The session shell's arguments: bash without its startup files; other shells as they are.
pub fn shell_args(shell: &str) -> Vec<std::ffi::OsString> {
    if shell.ends_with("bash") {
        vec!["--noprofile".into(), "--norc".into()]
    } else {
        Vec::new()
    }
}

/// A program of this machine: `name` if it is a path, else found on the default PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    default_env()["PATH"]
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.is_file())
}

/// Builds the environment a spec asks for.
pub fn build(spec: &EnvSpec) -> Result<Environment, EnvError> {
    match spec.backend {
        BackendKind::Host => host::build(spec),
        BackendKind::Container => container::build(spec),
        BackendKind::Vm => vm::build(spec),
    }
}
