//! Waiting for an array job: polls squeue (not `sbatch --wait`, which lags by seconds) and
//! each task's status file, with a progress line, until every task has ended.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::queue::{self, JobId, TaskState};
use super::script;

/// How a task ended, as far as squeue and its files tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// Its `labrun grade` exited with this status (from its status file).
    Exited(i32),
    /// Slurm says it was cancelled.
    Cancelled,
    /// It ended in this Slurm state (FAILED, TIMEOUT, NODE_FAIL, ...) without a status file.
    Lost(String),
}

const POLL: Duration = Duration::from_millis(200);
/// squeue failing this many times in a row means the controller is gone.
const SQUEUE_RETRIES: u32 = 25;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Waits for tasks 1..=count of `job`; `Ok(None)` when Ctrl-C stopped the wait (the job is
/// cancelled then).
pub fn wait(
    job: &JobId,
    count: u64,
    work: &Path,
    progress: bool,
) -> Result<Option<BTreeMap<u64, TaskEnd>>, String> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    let started = Instant::now();
    let mut line = Progress::new(progress);
    let mut ends: BTreeMap<u64, TaskEnd> = BTreeMap::new();
    let mut failures = 0;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            queue::cancel(job);
            line.finish();
            return Ok(None);
        }
        let states = match queue::tasks(job) {
            Ok(s) => {
                failures = 0;
                s
            }
            Err(e) if failures >= SQUEUE_RETRIES => return Err(e),
            Err(_) => {
                failures += 1;
                std::thread::sleep(POLL);
                continue;
            }
        };
        for task in 1..=count {
            if !ends.contains_key(&task)
                && let Some(end) = task_end(work, task, states.get(&task))
            {
                ends.insert(task, end);
            }
        }
        let running = states.values().filter(|s| s.0 == "RUNNING").count();
        line.show(&format!(
            "slurm job {job}: {} of {count} tasks done, {running} running ({})",
            ends.len(),
            crate::units::show_duration(started.elapsed())
        ));
        if ends.len() as u64 == count {
            line.finish();
            return Ok(Some(ends));
        }
        std::thread::sleep(POLL);
    }
}

/// A task has ended when its status file is there, or when Slurm lists it as ended or no
/// longer lists it (then its status file, written last, says whether it got that far).
fn task_end(work: &Path, task: u64, state: Option<&TaskState>) -> Option<TaskEnd> {
    let status = || {
        std::fs::read_to_string(script::status_file(work, task))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    if let Some(code) = status() {
        // scancel's SIGTERM can reach the task's labrun before its batch script, which then
        // still leaves a status (143): Slurm's own word decides, once it has one.
        if code == 128 + libc::SIGTERM {
            match state {
                Some(s) if !s.ended() => return None,
                Some(s) if s.0 == "CANCELLED" => return Some(TaskEnd::Cancelled),
                None => return Some(TaskEnd::Cancelled),
                Some(_) => {}
            }
        }
        return Some(TaskEnd::Exited(code));
    }
    match state {
        Some(s) if !s.ended() => None,
        Some(s) if s.0 == "CANCELLED" => Some(TaskEnd::Cancelled),
        Some(s) => Some(status().map_or(TaskEnd::Lost(s.0.clone()), TaskEnd::Exited)),
        None => Some(status().map_or(TaskEnd::Cancelled, TaskEnd::Exited)),
    }
}

/// One line on stderr: rewritten in place on a terminal, printed when it changes otherwise.
struct Progress {
    enabled: bool,
    terminal: bool,
    last: String,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K{text}");
        } else if strip_time(text) != strip_time(&self.last) {
            let _ = writeln!(err, "labrun: {text}");
        }
        self.last = text.to_string();
    }

    fn finish(&mut self) {
        if self.enabled && self.terminal && !self.last.is_empty() {
            eprintln!();
        }
    }
}

/// The line without its clock, to print a new line only when the counts change.
fn strip_time(text: &str) -> &str {
    text.rsplit_once(" (").map_or(text, |(head, _)| head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_ends_by_its_status_file_or_by_what_slurm_says() {
        let work = tempfile::tempdir().unwrap();
        let state = |s: &str| TaskState(s.to_string());
        std::fs::write(script::status_file(work.path(), 1), "2\n").unwrap();
        let cases = [
            (1, Some(state("RUNNING")), Some(TaskEnd::Exited(2))),
            (2, Some(state("RUNNING")), None),
            (2, Some(state("PENDING")), None),
            (2, Some(state("CANCELLED")), Some(TaskEnd::Cancelled)),
            (
                2,
                Some(state("TIMEOUT")),
                Some(TaskEnd::Lost("TIMEOUT".into())),
            ),
            (2, None, Some(TaskEnd::Cancelled)),
        ];
        for (task, slurm, want) in cases {
            assert_eq!(
                task_end(work.path(), task, slurm.as_ref()),
                want,
                "{task} {slurm:?}"
            );
        }
    }

    #[test]
    fn a_new_line_only_when_the_counts_change() {
        assert_eq!(
            strip_time("2 of 4 tasks done, 1 running (3 s)"),
            "2 of 4 tasks done, 1 running"
        );
    }
}
