//! `labrun grade --slurm`: the batch as one Slurm array job, one task per shard, each task a
//! plain `labrun grade --shard K/N`; then the shards merged into one grade book, as a local
//! run would have written it, and labrun's exit status as a local run would have given it.
//!
//! `script` writes the sbatch script, `queue` talks to Slurm's commands, `watch` waits for the
//! tasks; this file ties them to `merge` and reports tasks that failed or were cancelled.

pub mod queue;
pub mod script;
pub mod watch;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::gradebook::{self, Entry};
use super::shard::Shard;
use super::submission;
use crate::exit_code;
use watch::TaskEnd;

/// A `--slurm` batch, from the grade command line.
pub struct SlurmBatch {
    /// The labrun the tasks run (this one: the nodes must see it at the same path).
    pub labrun: PathBuf,
    /// The grade flags every task gets, before its `--shard` and `--output`.
    pub flags: Vec<OsString>,
    pub submissions: PathBuf,
    pub output: PathBuf,
    /// Array tasks (shards); `None`: one per submission, at most `MAX_DEFAULT_TASKS`.
    pub tasks: Option<u64>,
    /// Extra sbatch options (`--slurm-opt`).
    pub sbatch: Vec<String>,
    pub progress: bool,
}

/// The default number of tasks when there are many submissions.
pub const MAX_DEFAULT_TASKS: u64 = 32;

/// The work directory inside `--output`: the script, each task's log, status and grade book.
pub const WORK_DIR: &str = ".slurm";

fn say(message: &str) {
    eprintln!("labrun: {message}");
}

/// Runs the batch through Slurm and returns labrun's exit status.
pub fn grade(batch: &SlurmBatch) -> i32 {
    match run(batch) {
        Ok(status) => status,
        Err((status, message)) => {
            say(&format!("error: {message}"));
            status
        }
    }
}

type Failed = (i32, String);

fn run(batch: &SlurmBatch) -> Result<i32, Failed> {
    let started = Instant::now();
    let usage = |m: String| (exit_code::USAGE, m);
    let env = |m: String| (exit_code::ENVIRONMENT, m);
    let subs = submission::list(&batch.submissions).map_err(usage)?;
    queue::check_controller().map_err(env)?;
    let tasks = batch
        .tasks
        .unwrap_or((subs.len() as u64).clamp(1, MAX_DEFAULT_TASKS));
    let work = prepare_work_dir(&batch.output).map_err(env)?;
    let script_path = work.join("grade.sbatch");
    fs::write(
        &script_path,
        script::render(&batch.labrun, &batch.flags, &work),
    )
    .map_err(|e| env(format!("{}: {e}", script_path.display())))?;
    let here = std::env::current_dir().map_err(|e| env(format!("current directory: {e}")))?;
    let logs = work.join("shard-%a.log");
    let job = queue::submit(&script_path, tasks, &logs, &here, &batch.sbatch).map_err(env)?;
    if batch.progress {
        say(&format!(
            "submitted slurm job {job}: {tasks} tasks, {} submissions",
            subs.len()
        ));
    }
    let Some(ends) = watch::wait(&job, tasks, &work, batch.progress).map_err(env)? else {
        say(&format!("interrupted; slurm job {job} cancelled"));
        return Ok(exit_code::INTERRUPTED);
    };
    let names: Vec<String> = subs.into_iter().map(|s| s.name).collect();
    finish(batch, &job, &work, &ends, &names, started)
}

/// `--output/.slurm`, emptied of an earlier batch's files.
fn prepare_work_dir(output: &Path) -> Result<PathBuf, String> {
    let work = output.join(WORK_DIR);
    if work.exists() {
        fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    // Absolute, since the tasks run in the directory sbatch was given.
    work.canonicalize()
        .map_err(|e| format!("{}: {e}", work.display()))
}

/// What one task left behind, and what to say about it when it failed.
struct TaskResult {
    task: u64,
    book: Option<PathBuf>,
    /// The exit status the task contributes.
    status: i32,
    /// Why it has no grade book, naming the task.
    failure: Option<String>,
}

fn task_result(
    job: &queue::JobId,
    work: &Path,
    task: u64,
    count: u64,
    end: &TaskEnd,
) -> TaskResult {
    let book = script::shard_dir(work, task).join("grades.json");
    let has_book = book.is_file();
    let log = script::log_file(work, task);
    let name = format!("slurm task {job}_{task} (shard {task}/{count})");
    let failure = match end {
        TaskEnd::Exited(code) if has_book => {
            return TaskResult {
                task,
                book: Some(book),
                status: *code,
                failure: None,
            };
        }
        TaskEnd::Exited(code) => format!(
            "{name} exited with status {code} without a grade book{}",
            last_words(&log)
        ),
        TaskEnd::Cancelled => format!("{name} was cancelled{}", last_words(&log)),
        TaskEnd::Lost(state) => format!("{name} ended {state}{}", last_words(&log)),
    };
    let status = match end {
        TaskEnd::Exited(code) if *code != exit_code::PASSED => *code,
        _ => exit_code::CELL_FAILED,
    };
    TaskResult {
        task,
        book: None,
        status,
        failure: Some(failure),
    }
}

/// The last line of a task's log, where labrun's own error would be.
fn last_words(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!(": {} (log: {})", line.trim(), log.display()),
        None => String::new(),
    }
}

/// Merges the shards that have grade books, adds an error entry for every submission of a
/// shard that has none, moves the per-submission reports into place, and says how it went.
fn finish(
    batch: &SlurmBatch,
    job: &queue::JobId,
    work: &Path,
    ends: &BTreeMap<u64, TaskEnd>,
    names: &[String],
    started: Instant,
) -> Result<i32, Failed> {
    let count = ends.len() as u64;
    let results: Vec<TaskResult> = ends
        .iter()
        .map(|(&task, end)| task_result(job, work, task, count, end))
        .collect();
    let mut status = results
        .iter()
        .fold(exit_code::PASSED, |a, r| exit_code::combine(a, r.status));
    let mut books: Vec<PathBuf> = results.iter().filter_map(|r| r.book.clone()).collect();
    for r in &results {
        if let Some(why) = &r.failure {
            say(&format!("error: {why}"));
        }
    }
    if books.is_empty() {
        say(&format!(
            "error: no task of slurm job {job} wrote a grade book"
        ));
        return Ok(status);
    }
    let lost = lost_entries(&results, count, names);
    if !lost.is_empty() {
        books.push(write_lost(work, &books[0], lost).map_err(|e| (exit_code::ENVIRONMENT, e))?);
    }
    let merged =
        super::merge::merge(&books, &batch.output).map_err(|e| (exit_code::ENVIRONMENT, e))?;
    for r in results.iter().filter(|r| r.book.is_some()) {
        move_reports(&script::shard_dir(work, r.task), &batch.output)
            .map_err(|e| (exit_code::ENVIRONMENT, e))?;
    }
    let errors = gradebook::read(&batch.output.join("grades.json"))
        .map_err(|e| (exit_code::ENVIRONMENT, e))?
        .submissions
        .iter()
        .filter(|e| e.status != "graded")
        .count();
    if errors > 0 {
        status = exit_code::combine(status, exit_code::CELL_FAILED);
    }
    say(&format!(
        "graded {} of {merged} submissions through slurm job {job} ({count} tasks) in {}{}; grade book in {}",
        merged - errors,
        crate::units::show_duration(started.elapsed()),
        super::batch::without_result(errors),
        batch.output.join("grades.csv").display()
    ));
    Ok(status)
}

/// An error entry for each submission whose shard left no grade book, naming the task.
fn lost_entries(results: &[TaskResult], count: u64, names: &[String]) -> Vec<Entry> {
    let mut lost = Vec::new();
    for r in results {
        let Some(why) = &r.failure else { continue };
        let shard = Shard {
            index: r.task,
            count,
        };
        lost.extend(names.iter().filter(|n| shard.holds(n)).map(|n| Entry {
            submission: n.clone(),
            status: "error".into(),
            score: 0.0,
            max_score: 0.0,
            error: Some(why.clone()),
            note: None,
            duration_ms: 0.0,
            cells: Vec::new(),
        }));
    }
    lost
}

/// Writes the lost entries as one more grade book, with the header of a real one, so that
/// `merge` joins it like any shard's.
fn write_lost(work: &Path, like: &Path, mut lost: Vec<Entry>) -> Result<PathBuf, String> {
    let header = gradebook::read(like)?.header;
    for e in &mut lost {
        e.max_score = header.max_score;
    }
    lost.sort_by(|a, b| a.submission.cmp(&b.submission));
    let dir = work.join("lost");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    gradebook::write(&dir, &header, lost.into_iter().map(Ok))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir.join("grades.json"))
}

/// Moves a shard's `submissions/<name>/` reports to the batch's `--output/submissions/`.
fn move_reports(shard: &Path, output: &Path) -> Result<(), String> {
    let from = shard.join("submissions");
    let to = output.join("submissions");
    fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
    let Ok(entries) = fs::read_dir(&from) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        if target.exists() {
            let _ = fs::remove_dir_all(&target);
        }
        fs::rename(entry.path(), &target)
            .map_err(|e| format!("{} to {}: {e}", entry.path().display(), target.display()))?;
    }
    Ok(())
}
