//! The `vm` backend: a freshly booted qemu machine per run, with labrun's agent inside.
//!
//! - `accel` picks KVM or TCG honestly; `kernel` finds the kernel and unpacks it for a direct
//!   boot; `initramfs` (written by `cpio`) carries the agent, its libraries and the modules;
//! - `shares` lists what the guest gets over 9p, and `views` what qemu may see of it;
//! - `qemu` finds qemu and starts it; `launch` restores a `snapshot` or boots, through `qmp`;
//! - `guest` is the agent's side (labrun as the guest's PID 1), `wire` the messages, `boot`
//!   the wait for the agent's first answers;
//! - the root is built in the guest from the same layers the container backend uses (9p
//!   shares, read-only, under an overlay), so `image:`, `setup:` and the default environment
//!   mean the same on both backends.

pub mod accel;
pub mod boot;
pub mod cpio;
pub mod guest;
pub mod initramfs;
pub mod kernel;
mod launch;
pub mod qemu;
mod qmp;
mod shares;
pub mod snapshot;
pub mod views;
pub mod wire;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::container::{LabRoot, lab_root, lab_workdir, shell_env};
use super::rundir::RunDir;
use super::{EnvError, EnvSpec, Environment};
use crate::exec::remote_session::Agent;
use crate::exec::session::ShellLaunch;
use crate::exec::shell_process::{ShellProcess, ShellStarter};
use crate::image::maintenance::CacheHold;
use crate::image::{Cache, vm_files};
use crate::limits::{DEFAULT_DISK, Limits};
use shares::shares_for;
use wire::Hello;

/// Where the stage (files labrun writes for cells: scripts, file contents) appears in the
/// guest, read-only.
pub const STAGE_DIR: &str = "/run/labrun-stage";
/// The guest's memory besides the lab's own limit and its disk (the kernel, the agent).
const OVERHEAD_MIB: u64 = 160;
/// The lab's memory when `limits.memory` is not set.
const DEFAULT_MEMORY: u64 = 512 << 20;

/// What lives as long as the run: the machine first, then its directory, the layers and the
/// vm's cached files (`labrun image prune` waits for it); last, with the holds let go, the
/// vm's files are trimmed to their budget.
struct Guard {
    _machine: Arc<Mutex<qemu::Machine>>,
    _run: RunDir,
    _hold: Option<CacheHold>,
    _vm_files_hold: CacheHold,
    _trim: TrimVmFiles,
}

/// Keeps the vm's files within their budget when dropped, if no other run (of either backend)
/// holds the cache; otherwise a later vm run's end does it.
struct TrimVmFiles {
    cache: Cache,
    budget: Option<u64>,
}

impl Drop for TrimVmFiles {
    fn drop(&mut self) {
        if let Some(budget) = self.budget {
            let _ = self.cache.trim_vm_files(budget);
        }
    }
}

impl super::EnvGuard for Guard {
    fn keep(self: Box<Self>) -> Result<String, EnvError> {
        drop(self);
        Ok("the vm backend cannot keep its machine after labrun exits; it was stopped".into())
    }
}

/// Hands the booted agent to the session, once.
#[derive(Debug)]
struct VmStarter {
    agent: Mutex<Option<Agent>>,
}

impl ShellStarter for VmStarter {
    fn start(
        &self,
        _launch: &ShellLaunch,
        _control: OwnedFd,
        _status: OwnedFd,
    ) -> std::io::Result<Box<dyn ShellProcess>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the vm backend's shell runs in its guest",
        ))
    }

    fn take_agent(&self) -> Option<std::io::Result<Agent>> {
        Some(match self.agent.lock().unwrap().take() {
            Some(agent) => Ok(agent),
            None => Err(std::io::Error::other(
                "the vm's session is already running (one session a machine)",
            )),
        })
    }
}

pub fn build(spec: &EnvSpec) -> Result<Environment, EnvError> {
    if spec.network.is_some() {
        return Err(EnvError::Other(
            "the vm backend does not join a lab's private network yet: give this target \
             backend: container"
                .into(),
        ));
    }
    let budget = vm_files::budget().map_err(EnvError::Other)?;
    let qemu = qemu::find().map_err(EnvError::Other)?;
    let kernel = kernel::find(spec.kernel.as_deref())?;
    let LabRoot {
        source,
        shell,
        notes,
        hold,
        run_config,
    } = lab_root(spec)?;
    let cache = Cache::open().map_err(|e| EnvError::Other(e.to_string()))?;
    let vm_files_hold = cache.hold().map_err(|e| EnvError::Other(e.to_string()))?;
    let vm_cache = vm_files::dir(cache.root());
    let bootable = kernel::bootable(&kernel.path, &vm_cache);
    let initramfs = initramfs::build(kernel.modules.as_deref(), &vm_cache)
        .map_err(|e| EnvError::Other(format!("building the vm's initramfs: {e}")))?;
    crate::trace::mark("vm kernel and initramfs");

    let limits = Limits::from_map(&spec.limits)
        .map_err(EnvError::Other)?
        .with_defaults();
    let disk = limits.disk.unwrap_or(DEFAULT_DISK);
    let memory = limits.memory.unwrap_or(DEFAULT_MEMORY);
    let mut warnings: Vec<String> = Vec::new();
    for (name, set) in [
        ("pids", limits.pids.is_some()),
        ("cpus", limits.cpus.is_some()),
    ] {
        if set && spec.limits.contains_key(name) {
            warnings.push(format!(
                "limit not enforced as asked: {name} (the vm backend bounds memory, disk and output)"
            ));
        }
    }
    warnings.extend(notes);

    let run = RunDir::create()?;
    let stage = run.subdir("stage", 0o755)?;
    let empty_file = run.path().join("empty");
    std::fs::write(&empty_file, "")?;
    let shares = shares_for(spec, &source, &stage, kernel.modules.as_deref())?;
    let (accel, why) = accel::choose();
    let memory_mib = (memory + disk) / (1 << 20) + OVERHEAD_MIB;
    // A snapshot fits a machine of exactly this shape.
    let tags: Vec<&str> = shares.devices.iter().map(|d| d.tag.as_str()).collect();
    let shape = [
        snapshot::stamp(&qemu.binary),
        snapshot::stamp(&bootable),
        snapshot::stamp(&initramfs),
        memory_mib.to_string(),
        tags.join(","),
        accel.name().to_string(),
        qemu::kernel_args(),
    ];
    let shape: Vec<&str> = shape.iter().map(String::as_str).collect();
    let started = launch::start(&launch::Plan {
        qemu: &qemu,
        accel,
        memory_mib,
        kernel: &bootable,
        initramfs: &initramfs,
        shares: &shares.devices,
        hidden: &shares.hidden,
        views_dir: &run.subdir("views", 0o700)?,
        empty_file: &empty_file,
        snapshot: snapshot::enabled().then(|| snapshot::path_for(&vm_cache, &shape)),
    })?;
    crate::trace::mark("qemu started");
    // What `labrun image ls` shows as last used, and `prune` keeps.
    for used in [&bootable, &initramfs] {
        vm_files::mark_used(used);
    }
    let launch::Started {
        machine,
        agent: ours,
        restored,
        save_to,
    } = started;

    let workdir = lab_workdir(spec, &run_config);
    let env = shell_env(spec, &run_config);
    let hello = Hello {
        layers: shares.hello_layers,
        host_dirs: shares.hello_host_dirs,
        host_links: shares.host_links,
        host_empty: shares.host_empty,
        mounts: shares.mounts,
        disk,
        nosuid: !nix::unistd::geteuid().is_root(),
        hostname: spec.hostname.clone(),
        workdir: workdir.clone(),
        shell: shell.clone(),
        env: env.clone(),
        now: (0, 0),
        seed: Vec::new(),
    };
    let pid = machine.child.id();
    let machine = Arc::new(Mutex::new(machine));
    let start = if restored {
        "restored from a snapshot"
    } else {
        "booted"
    };
    warnings.insert(0, format!("vm: {}, {start} ({why})", accel.name()));
    let launch = ShellLaunch {
        program: PathBuf::from(&shell),
        args: Vec::new(),
        env,
        cwd: PathBuf::from(&workdir),
        control_dir: stage,
        control_dir_inside: STAGE_DIR.into(),
        workdir_inside: workdir,
        starter: Arc::new(VmStarter {
            agent: Mutex::new(Some(Agent {
                stream: ours,
                pid,
                booting: Some(boot::Booting {
                    machine: machine.clone(),
                    hello,
                    limit: boot::timeout(),
                    restored,
                    save_to,
                }),
            })),
        }),
    };
    Ok(Environment {
        launch,
        privileged_launch: None,
        warnings,
        watch: None,
        workdir_host: PathBuf::new(),
        guard: Box::new(Guard {
            _machine: machine,
            _run: run,
            _hold: hold,
            _vm_files_hold: vm_files_hold,
            _trim: TrimVmFiles { cache, budget },
        }),
    })
}
