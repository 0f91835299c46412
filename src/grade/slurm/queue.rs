//! Talking to Slurm through its client commands: is the controller there (`scontrol ping`),
//! submit the array (`sbatch --parsable`), what state each task is in (`squeue`), cancel.
//! No accounting (`sacct`): clusters without it are common, and the test cluster is one.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A Slurm job id, as sbatch printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId(pub String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!(
                "{program} not found on PATH: --slurm needs Slurm's client commands (sbatch, squeue, scontrol, scancel)"
            ),
            _ => format!("{program}: {e}"),
        })
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Fails unless sbatch is installed and `scontrol ping` reaches a controller that is UP.
pub fn check_controller() -> Result<(), String> {
    run("sbatch", &["--version"])?;
    let ping = run("scontrol", &["ping"])?;
    let said = String::from_utf8_lossy(&ping.stdout);
    if ping.status.success() && said.contains("is UP") {
        return Ok(());
    }
    let what = format!("{} {}", said.trim(), stderr_of(&ping));
    Err(format!(
        "--slurm: no Slurm controller answers (scontrol ping: {}); check SLURM_CONF and slurmctld",
        what.lines().next().unwrap_or("").trim()
    ))
}

/// Submits `script` as an array of `tasks` tasks (1..=tasks); `opts` come last, so the
/// grader's own `--slurm-opt`s win over these defaults.
pub fn submit(
    script: &Path,
    tasks: u64,
    logs: &Path,
    chdir: &Path,
    opts: &[String],
) -> Result<JobId, String> {
    let array = format!("--array=1-{tasks}");
    let output = format!("--output={}", logs.display());
    let chdir = format!("--chdir={}", chdir.display());
    let script = script.display().to_string();
    let mut args = vec![
        "--parsable",
        "--job-name=labrun-grade",
        &array,
        &output,
        &chdir,
    ];
    args.extend(opts.iter().map(String::as_str));
    args.push(&script);
    let out = run("sbatch", &args)?;
    if !out.status.success() {
        return Err(format!("sbatch refused the job: {}", stderr_of(&out)));
    }
    // `--parsable` prints `id` or `id;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("");
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("sbatch printed no job id: {:?}", text.trim()));
    }
    Ok(JobId(id.to_string()))
}

/// Slurm's state of one array task, as squeue names it (PENDING, RUNNING, COMPLETED,
/// CANCELLED, FAILED, TIMEOUT, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState(pub String);

impl TaskState {
    /// Whether the task has ended, one way or another.
    pub fn ended(&self) -> bool {
        !matches!(
            self.0.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESV_DEL_HOLD"
        )
    }
}

/// The tasks of `job` the controller still knows, by task number. A task cancelled while
/// pending can vanish from the list at once; callers treat a missing task as ended.
pub fn tasks(job: &JobId) -> Result<BTreeMap<u64, TaskState>, String> {
    let out = run(
        "squeue",
        &[
            "--noheader",
            "--array",
            "--states=all",
            "--jobs",
            &job.0,
            "--format=%K %T",
        ],
    )?;
    if !out.status.success() {
        return Err(format!("squeue: {}", stderr_of(&out)));
    }
    Ok(parse_tasks(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_tasks(text: &str) -> BTreeMap<u64, TaskState> {
    text.lines()
        .filter_map(|line| {
            let (task, state) = line.trim().split_once(' ')?;
            Some((task.parse().ok()?, TaskState(state.trim().to_string())))
        })
        .collect()
}

/// Cancels the whole array (after Ctrl-C).
pub fn cancel(job: &JobId) {
    let _ = run("scancel", &[&job.0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_task_states() {
        let got = parse_tasks("1 COMPLETED\n3 RUNNING\nN/A PENDING\n\n2 CANCELLED\n");
        assert_eq!(got.len(), 3);
        assert!(got[&1].ended() && got[&2].ended() && !got[&3].ended());
    }
}
