//! The `host` backend: cells run directly on this machine, in a fresh temporary directory.
//!
//! Unisolated by design, for authors who trust their own docs: the working directory and HOME
//! are fresh and the environment is fixed, but a cell can reach anything its user can.

use super::rundir::RunDir;
use super::{EnvError, EnvSpec, Environment, default_env, find_program};
use std::sync::Arc;

use crate::exec::session::ShellLaunch;
use crate::exec::shell_process::HostStarter;

pub fn build(spec: &EnvSpec) -> Result<Environment, EnvError> {
    let wanted = spec.shell.as_deref().unwrap_or("bash");
    let shell = find_program(wanted).ok_or_else(|| {
        EnvError::Other(format!(
            "the shell '{wanted}' is not installed on this machine"
        ))
    })?;
    let run = RunDir::create()?;
    let control = run.subdir("ctl", 0o700)?;
    let lab = run.subdir("lab", 0o755)?;
    let home = run.subdir("home", 0o700)?;
    let mut env = default_env();
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    env.insert(
        "USER".into(),
        super::caller_name().unwrap_or_else(|| "root".into()),
    );
    env.insert(
        "LABRUN_NOTEBOOK_DIR".into(),
        spec.notebook_dir.to_string_lossy().into_owned(),
    );
    env.extend(spec.env.clone());
    let launch = ShellLaunch {
        program: shell,
        args: vec!["--noprofile".into(), "--norc".into()],
        env,
        cwd: lab.clone(),
        control_dir: control.clone(),
        control_dir_inside: control.to_string_lossy().into_owned(),
        workdir_inside: lab.to_string_lossy().into_owned(),
        starter: Arc::new(HostStarter),
    };
    Ok(Environment {
        launch,
        privileged_launch: None,
        warnings: Vec::new(),
        watch: None,
        workdir_host: lab,
        guard: Box::new(run),
    })
}
