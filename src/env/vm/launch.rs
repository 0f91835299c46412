//! Starting a machine: restored from the snapshot of its shape when there is one (and it
//! restores), else booted from its kernel, and then saved for the runs after it.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::super::EnvError;
use super::accel::Accel;
use super::qemu::{self, Machine, Qemu, ShareDevice, Views};
use super::qmp::Qmp;
use super::snapshot;

/// Everything a start needs.
pub struct Plan<'a> {
    pub qemu: &'a Qemu,
    pub accel: Accel,
    pub memory_mib: u64,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub shares: &'a [ShareDevice],
    pub hidden: &'a [(PathBuf, bool)],
    /// Where the shares' views are made (a directory of the run).
    pub views_dir: &'a Path,
    pub empty_file: &'a Path,
    /// The snapshot of this machine's shape (`None`: warm starts are off).
    pub snapshot: Option<PathBuf>,
}

/// A started machine and labrun's ends of its connections.
pub struct Started {
    pub machine: Machine,
    pub agent: UnixStream,
    /// Restored from the snapshot rather than booted.
    pub restored: bool,
    /// A booted machine to save once its agent is up (no snapshot of its shape yet).
    pub save_to: Option<(Qmp, PathBuf)>,
}

fn open(path: &Path) -> Result<File, EnvError> {
    File::open(path).map_err(|e| EnvError::Other(format!("{}: {e}", path.display())))
}

/// One qemu, restoring `incoming` if given.
fn spawn(
    p: &Plan,
    incoming: Option<&File>,
    attempt: u32,
) -> Result<(Machine, UnixStream, Qmp), EnvError> {
    let views = Views::new(
        p.shares,
        p.hidden,
        &p.views_dir.join(attempt.to_string()),
        p.empty_file,
    )?;
    let (agent, agent_theirs) = UnixStream::pair()?;
    let (monitor, monitor_theirs) = UnixStream::pair()?;
    let (agent_theirs, monitor_theirs) =
        (OwnedFd::from(agent_theirs), OwnedFd::from(monitor_theirs));
    let kernel = open(p.kernel)?;
    let initramfs = open(p.initramfs)?;
    let machine = qemu::start(
        &qemu::MachineSpec {
            qemu: p.qemu,
            accel: p.accel,
            memory_mib: p.memory_mib,
            kernel: &kernel,
            initramfs: &initramfs,
            agent: &agent_theirs,
            monitor: &monitor_theirs,
            incoming,
            shares: p.shares,
        },
        views,
    )
    .map_err(|e| EnvError::Other(format!("vm failed to start: {e}")))?;
    // Only qemu holds its ends now: if it dies, labrun reads the end of the stream.
    drop((agent_theirs, monitor_theirs));
    let qmp = Qmp::connect(monitor)
        .map_err(|e| EnvError::Other(format!("vm failed to start: its monitor: {e}")))?;
    Ok((machine, agent, qmp))
}

/// The machine restored from `saved`.
fn warm(p: &Plan, saved: &Path) -> Result<Started, EnvError> {
    let file = open(saved)?;
    // Dropped (and killed) with the error if it does not restore.
    let (machine, agent, mut qmp) = spawn(p, Some(&file), 0)?;
    snapshot::resume(&mut qmp).map_err(|e| EnvError::Other(e.to_string()))?;
    Ok(Started {
        machine,
        agent,
        restored: true,
        save_to: None,
    })
}

pub fn start(p: &Plan) -> Result<Started, EnvError> {
    if let Some(saved) = p.snapshot.as_ref().filter(|s| s.is_file()) {
        match warm(p, saved) {
            Ok(started) => {
                crate::trace::mark("vm restored");
                crate::image::vm_files::mark_used(saved);
                return Ok(started);
            }
            Err(e) => {
                // A snapshot this qemu cannot take: boot afresh, and save a new one.
                crate::trace::mark(&format!("vm snapshot not restored: {e}"));
                let _ = std::fs::remove_file(saved);
            }
        }
    }
    let (machine, agent, qmp) = spawn(p, None, 1)?;
    Ok(Started {
        machine,
        agent,
        restored: false,
        save_to: p.snapshot.clone().map(|path| (qmp, path)),
    })
}
