//! The machines of a run: one environment and its shells per target (section 6), joined in a
//! lab network of their own when there are several.
//!
//! Dropped in order: the machines (their containers killed and removed), then the network,
//! which by then holds nothing.

use crate::env::limit_watch::Usage;
use crate::env::network::LabNetwork;
use crate::env::{self, EnvError, EnvSpec, Environment};
use crate::exec::sessions::Sessions;
use crate::notebook::BackendKind;
use crate::plan::Plan;

/// One target's environment, its shells, and what its limits counted so far.
///
/// Fields drop in order: the shells first, so that the environment's guard holds the last
/// reference to its container and removes it (init killed and waited for) before its cgroups.
/// The other way round, the cgroups would be removed under live processes.
pub struct Machine {
    pub sessions: Sessions,
    pub environment: Environment,
    pub usage: Option<Usage>,
}

pub struct Machines {
    list: Vec<Machine>,
    _network: Option<LabNetwork>,
}

impl Machines {
    /// Builds every target of the plan, fresh, and starts its shell.
    pub async fn start(plan: &Plan) -> Result<Machines, EnvError> {
        let mut specs: Vec<EnvSpec> = plan.targets().cloned().collect();
        let network = if specs.len() > 1 {
            Some(lab_network(&specs)?)
        } else {
            None
        };
        if let Some(network) = &network {
            for (i, spec) in specs.iter_mut().enumerate() {
                spec.network = network.attach(i);
            }
        }
        let environments = build_all(&specs)?;
        crate::trace::mark("environment built");
        let mut list = Vec::with_capacity(environments.len());
        for environment in environments {
            let sessions = Sessions::start(
                environment.launch.clone(),
                environment.privileged_launch.clone(),
            )
            .await
            .map_err(EnvError::Io)?;
            let usage = environment.watch.as_ref().map(|w| w.usage());
            list.push(Machine {
                environment,
                sessions,
                usage,
            });
        }
        Ok(Machines {
            list,
            _network: network,
        })
    }

    /// The `target`-th machine (`PlannedCell::target`).
    pub fn get(&mut self, target: usize) -> &mut Machine {
        &mut self.list[target]
    }

    /// What every machine's environment warns about, the machine named when there are
    /// several.
    pub fn warnings(&self, plan: &Plan) -> Vec<String> {
        let several = self.list.len() > 1;
        self.list
            .iter()
            .zip(plan.targets())
            .flat_map(|(m, spec)| {
                m.environment.warnings.iter().map(move |w| {
                    if several {
                        format!("{}: {w}", spec.hostname)
                    } else {
                        w.clone()
                    }
                })
            })
            .collect()
    }

    /// `--keep`: leaves every machine up; says how to enter each. (The lab network stays as
    /// long as the machines do.)
    pub fn keep(self) -> Result<Vec<String>, EnvError> {
        let Machines { list, _network } = self;
        let mut messages = Vec::with_capacity(list.len());
        for machine in list {
            drop(machine.sessions);
            messages.push(machine.environment.keep()?);
        }
        Ok(messages)
    }
}

/// The network the targets share: they must all be containers of this machine, and labrun
/// must be root to wire it.
fn lab_network(specs: &[EnvSpec]) -> Result<LabNetwork, EnvError> {
    if let Some(spec) = specs.iter().find(|s| s.backend != BackendKind::Container) {
        return Err(EnvError::Other(format!(
            "target '{}': several targets run on the container backend only (in this release), not on {}",
            spec.hostname,
            spec.backend.name()
        )));
    }
    if let Some(spec) = specs.iter().find(|s| s.host_network) {
        return Err(EnvError::Other(format!(
            "target '{}': network: host cannot join the lab's private network",
            spec.hostname
        )));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(EnvError::Other(
            "a lab with several targets needs root for its private network (run labrun as root, \
             or give the lab one target)"
                .into(),
        ));
    }
    let names: Vec<String> = specs.iter().map(|s| s.hostname.clone()).collect();
    LabNetwork::create(&names)
        .map_err(|e| EnvError::Other(format!("building the lab's network: {e}")))
}

/// Builds the environments one after another, on this thread: a container's first process
/// dies with the thread that cloned it (PR_SET_PDEATHSIG follows the thread), so no helper
/// thread may clone one. A failure names the target, and drops the ones built so far.
fn build_all(specs: &[EnvSpec]) -> Result<Vec<Environment>, EnvError> {
    let several = specs.len() > 1;
    specs
        .iter()
        .map(|spec| {
            env::build(spec).map_err(|e| match several {
                true => EnvError::Other(format!("target '{}': {e}", spec.hostname)),
                false => e,
            })
        })
        .collect()
}
