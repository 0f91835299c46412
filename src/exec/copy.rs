//! `copy` cells: files between a run's machines, into one from the notebook's directory, and
//! out of the environment into `--artifacts`.
//!
//! Each machine resolves its own paths: the copy is `cp -a` run by the machine's own shell,
//! between its path and a staging entry in its control directory (`/run/labrun` inside), so
//! `..`, absolute paths and symlinks a cell planted can only ever reach that machine's files.
//! labrun itself only moves the staged entry from one control directory to another, or copies
//! it into the artifacts directory, where it writes regular files and directories only (a
//! link is left out and named), never following anything the lab made.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstat};
use std::time::Duration;

use crate::exec::machines::Machines;
use crate::exec::session::{RunOptions, shell_quote};
use crate::notebook::BackendKind;
use crate::notebook::copy_spec::{CopyStep, Place};
use crate::outcome::{ExitStatus, Failure, Verdict};
use crate::plan::{Plan, PlannedCell};

/// What one copy cell needs besides the machines.
pub struct CopyCell<'a> {
    pub plan: &'a Plan,
    pub planned: &'a PlannedCell,
    pub timeout: Duration,
}

impl CopyCell<'_> {
    /// Runs every `COPY` line in order; the first that fails ends the cell.
    pub async fn run(
        &self,
        machines: &mut Machines,
        steps: &[CopyStep],
    ) -> io::Result<(Verdict, Vec<String>)> {
        let mut notes = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Err(message) = self.one(machines, step, i, &mut notes).await? {
                let line = format!(
                    "line {}: COPY {} {}: {message}",
                    step.line,
                    step.from.show(),
                    step.to.show()
                );
                return Ok((
                    Verdict::Failed(vec![Failure::Error { message: line }]),
                    notes,
                ));
            }
        }
        Ok((Verdict::Passed, notes))
    }

    /// The machine a place is on (`None`: not on a machine).
    fn machine_of(&self, place: &Place) -> Option<usize> {
        match place {
            Place::Machine { target: None, .. } => Some(self.planned.target),
            Place::Machine {
                target: Some(name), ..
            } => self.plan.targets().position(|t| &t.hostname == name),
            _ => None,
        }
    }

    async fn one(
        &self,
        machines: &mut Machines,
        step: &CopyStep,
        index: usize,
        notes: &mut Vec<String>,
    ) -> io::Result<Result<(), String>> {
        let staged = format!("xfer.{}.{index}", self.planned.index);
        for place in [&step.from, &step.to] {
            if let Some(m) = self.machine_of(place)
                && self.plan.targets().nth(m).map(|t| t.backend) == Some(BackendKind::Host)
            {
                return Ok(Err(
                    "copy cells need the container backend (the host backend has no machine of its own)".into(),
                ));
            }
        }
        if let Some(from) = self.machine_of(&step.from)
            && self.plan.targets().nth(from).map(|t| t.backend) == Some(BackendKind::Vm)
            && self.machine_of(&step.to) != Some(from)
        {
            return Ok(Err(
                "copying files out of a vm machine is not supported yet (a copy cell can copy into one, and within it)".into(),
            ));
        }
        match (&step.from, &step.to) {
            (Place::Notebook(rel), Place::Machine { path, .. }) => {
                let to = self.machine_of(&step.to).unwrap_or(self.planned.target);
                let source = format!("\"$LABRUN_NOTEBOOK_DIR\"/{}", shell_quote(rel));
                self.cp(machines, to, &source, &shell_quote(path)).await
            }
            (
                Place::Machine {
                    path: from_path, ..
                },
                Place::Machine { path: to_path, .. },
            ) => {
                let from = self.machine_of(&step.from).unwrap_or(self.planned.target);
                let to = self.machine_of(&step.to).unwrap_or(self.planned.target);
                if from == to {
                    return self
                        .cp(
                            machines,
                            from,
                            &shell_quote(from_path),
                            &shell_quote(to_path),
                        )
                        .await;
                }
                if let Err(m) = self.stage_out(machines, from, from_path, &staged).await? {
                    return Ok(Err(m));
                }
                let (from_dir, to_dir) = (control_dir(machines, from), control_dir(machines, to));
                fs::rename(from_dir.join(&staged), to_dir.join(&staged))?;
                let inside = format!("{}/{staged}", control_dir_inside(machines, to));
                let result = self
                    .cp(machines, to, &shell_quote(&inside), &shell_quote(to_path))
                    .await?;
                remove_staged(&to_dir.join(&staged));
                Ok(result)
            }
            (Place::Machine { path, .. }, Place::Artifacts(rel)) => {
                let Some(artifacts) = &self.plan.artifacts else {
                    return Ok(Err(
                        "copying out of the environment needs --artifacts DIR".into()
                    ));
                };
                let from = self.machine_of(&step.from).unwrap_or(self.planned.target);
                if let Err(m) = self.stage_out(machines, from, path, &staged).await? {
                    return Ok(Err(m));
                }
                let from_dir = control_dir(machines, from).join(&staged);
                let result = export(&from_dir, &artifacts.join(rel), notes);
                remove_staged(&from_dir);
                result
            }
            _ => Ok(Err("this copy goes nowhere a lab can copy to".into())),
        }
    }

    /// Copies `path` on machine `m` into its control directory as `staged`.
    async fn stage_out(
        &self,
        machines: &mut Machines,
        m: usize,
        path: &str,
        staged: &str,
    ) -> io::Result<Result<(), String>> {
        let inside = format!("{}/{staged}", control_dir_inside(machines, m));
        self.cp(machines, m, &shell_quote(path), &shell_quote(&inside))
            .await
    }

    /// `cp -a SOURCE DEST` on machine `m`, both already quoted for its shell.
    async fn cp(
        &self,
        machines: &mut Machines,
        m: usize,
        source: &str,
        dest: &str,
    ) -> io::Result<Result<(), String>> {
        let script = format!("cp -a -- {source} {dest}");
        let env = Default::default();
        let opts = RunOptions {
            timeout: self.timeout,
            split_streams: false,
            env: &env,
            cwd: None,
            output_cap: 64 * 1024,
            live: None,
        };
        let session = machines.get(m).sessions.for_cell(false).await?;
        let run = session.run_batch(&[script.as_str()], opts).await?.remove(0);
        if run.timed_out.is_some() {
            return Ok(Err("timed out".into()));
        }
        Ok(match run.status {
            ExitStatus::Code(0) => Ok(()),
            status => Err(format!(
                "{} ({status:?})",
                String::from_utf8_lossy(&run.output).trim_end()
            )),
        })
    }
}

fn control_dir(machines: &mut Machines, m: usize) -> PathBuf {
    machines.get(m).environment.launch.control_dir.clone()
}

fn control_dir_inside(machines: &mut Machines, m: usize) -> String {
    machines
        .get(m)
        .environment
        .launch
        .control_dir_inside
        .clone()
}

fn remove_staged(path: &Path) {
    let _ = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
}

/// Copies a staged entry out to `dest` on this machine: directories and regular files only
/// (modes kept, without set-id bits); links and special files are left out and named in
/// `notes`. The lab may still be changing the staged tree while this runs, so every entry is
/// opened relative to its parent's descriptor with `O_NOFOLLOW`, and read through what was
/// opened: a link swapped in midway only makes that open fail.
fn export(staged: &Path, dest: &Path, notes: &mut Vec<String>) -> io::Result<Result<(), String>> {
    let parent = staged.parent().unwrap_or(Path::new("/"));
    let parent = OwnedFd::from(fs::File::open(parent)?);
    let name = staged.file_name().unwrap_or_default();
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    export_at(&parent, name, dest, notes)
}

fn export_at(
    parent: &OwnedFd,
    name: &OsStr,
    dest: &Path,
    notes: &mut Vec<String>,
) -> io::Result<Result<(), String>> {
    if fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(Err(format!(
            "{} is a link; not written through",
            dest.display()
        )));
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let entry = openat(parent, name, flags, Mode::empty()).map_err(io::Error::from)?;
    let stat = fstat(&entry).map_err(io::Error::from)?;
    let mode = stat.st_mode & 0o777;
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            let dir = openat(
                &entry,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)?;
            fs::create_dir_all(dest)?;
            let names: Vec<std::ffi::OsString> = Dir::from_fd(dir.try_clone()?)
                .map_err(io::Error::from)?
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .filter(|n| n != "." && n != "..")
                .collect();
            for child in names {
                if let Err(m) = export_at(&dir, &child, &dest.join(&child), notes)? {
                    return Ok(Err(m));
                }
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
        }
        libc::S_IFREG => {
            // Reopened through the descriptor: the very file that was checked.
            let proc_path = format!("/proc/self/fd/{}", entry.as_raw_fd());
            let mut source = fs::File::open(proc_path)?;
            let _ = fs::remove_file(dest);
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(dest)?;
            io::copy(&mut source, &mut out)?;
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
        }
        _ => notes.push(format!(
            "{} is a link or a special file; left out of the artifacts",
            dest.display()
        )),
    }
    Ok(Ok(()))
}
