//! One grading batch: check the grading notebook and the environment once, then grade every
//! submission of the shard in parallel, streaming results to the output directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::gradebook::{Entry, Header, Journal};
use super::policy::{self, Allowed};
use super::scheduler;
use super::score;
use super::shard::Shard;
use super::submission::{self, Source, Submission};
use crate::env;
use crate::exec::runner::run_notebook;
use crate::exit_code;
use crate::notebook::{self, BackendKind, ParseOptions};
use crate::outcome::NotebookOutcome;
use crate::plan::{self, Plan, RunOptions};
use crate::report::collect::{Assemble, RenderPart};
use crate::report::{self, Event, Reporter, Summary};

/// The reports written for each submission, in its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionReport {
    /// `results.json`, Gradescope's format.
    Gradescope,
    /// `report.html`.
    Html,
    /// `junit.xml`.
    Junit,
    /// `report.tap`.
    Tap,
}

pub struct GradeOptions {
    pub grading: PathBuf,
    pub submissions: PathBuf,
    /// Where the grade book and the per-submission reports go.
    pub output: PathBuf,
    pub jobs: usize,
    pub submission_timeout: Option<Duration>,
    pub allowed: Allowed,
    pub shard: Option<Shard>,
    pub run_submissions: bool,
    /// More paths hidden from every run (`--hide`).
    pub hide: Vec<PathBuf>,
    pub reports: Vec<SubmissionReport>,
    pub run: RunOptions,
    pub parse: ParseOptions,
    pub progress: bool,
}

impl SubmissionReport {
    /// Its file name, and how it is rendered.
    fn writer(self) -> (&'static str, RenderPart, Assemble) {
        match self {
            SubmissionReport::Gradescope => (
                "results.json",
                report::gradescope::tests,
                report::gradescope::document,
            ),
            SubmissionReport::Html => (
                "report.html",
                report::html::notebook,
                report::html::document,
            ),
            SubmissionReport::Junit => ("junit.xml", report::junit::suite, report::junit::document),
            SubmissionReport::Tap => ("report.tap", report::tap::points, report::tap::document),
        }
    }
}

/// Extra time past `--submission-timeout` for building and removing the environment.
const TEARDOWN_GRACE: Duration = Duration::from_secs(30);

/// Sees nothing: grading reads the outcome at the end of each run.
struct Silent;

impl Reporter for Silent {
    fn event(&mut self, _: &Event) {}
    fn finish(&mut self, _: &Summary) {}
}

fn say(message: &str) {
    eprintln!("labrun: {message}");
}

/// Runs a whole batch and returns labrun's exit status.
pub fn grade(opts: &GradeOptions) -> i32 {
    let started = Instant::now();
    let (base, all) = match prepare(opts) {
        Ok(p) => p,
        Err((status, message)) => {
            say(&format!("error: {message}"));
            return status;
        }
    };
    let mine: Vec<Submission> = all
        .into_iter()
        .filter(|s| opts.shard.is_none_or(|sh| sh.holds(&s.name)))
        .collect();
    let header = Header {
        labrun: env!("CARGO_PKG_VERSION").into(),
        grading: opts.grading.display().to_string(),
        max_score: score::max_score(&base),
        cells: base
            .cells
            .iter()
            .map(|p| base.cell(p))
            .map(|c| (c.id.0.clone(), score::worth(c)))
            .collect(),
        shard: opts.shard.map(|s| s.to_string()),
    };
    let scratch = opts.output.join(".staging");
    let made = fs::create_dir_all(opts.output.join("submissions"))
        .and_then(|_| fs::create_dir_all(&scratch))
        .and_then(|_| Journal::create(&opts.output));
    let mut journal = match made {
        Ok(j) => j,
        Err(e) => {
            say(&format!("error: {}: {e}", opts.output.display()));
            return exit_code::USAGE;
        }
    };
    crate::exec::procs::become_subreaper();
    let count = mine.len();
    let mut errors = 0usize;
    let mut interrupted = false;
    let mut write_failed = None;
    scheduler::run(
        mine,
        opts.jobs,
        opts.progress,
        |rt, sub| grade_one(rt, opts, &base, &scratch, &sub),
        |result| match result {
            None => {
                interrupted = true;
                false
            }
            Some(entry) => {
                errors += usize::from(entry.status != "graded");
                if let Err(e) = journal.append(&entry) {
                    write_failed = Some(e);
                }
                write_failed.is_none()
            }
        },
    );
    crate::exec::procs::kill_descendants(std::process::id(), Duration::from_secs(5));
    let _ = fs::remove_dir_all(&scratch);
    if let Some(e) = write_failed.or_else(|| journal.finish(&header).err()) {
        say(&format!("error: {}: {e}", opts.output.display()));
        return exit_code::ENVIRONMENT;
    }
    say(&format!(
        "graded {} submission{} in {}{}; grade book in {}",
        count - errors,
        if count - errors == 1 { "" } else { "s" },
        crate::units::show_duration(started.elapsed()),
        without_result(errors),
        opts.output.join("grades.csv").display()
    ));
    if interrupted {
        exit_code::INTERRUPTED
    } else if errors > 0 {
        exit_code::CELL_FAILED
    } else {
        exit_code::PASSED
    }
}

/// The end of the closing line when some submissions got no result.
pub fn without_result(errors: usize) -> String {
    if errors > 0 {
        format!(", {errors} without a result (see grades.csv)")
    } else {
        String::new()
    }
}

type Failed = (i32, String);

/// Everything checked before the batch: the grading notebook parses and passes the policy,
/// the submissions can be listed, and the environment builds (else exit 3).
fn prepare(opts: &GradeOptions) -> Result<(Plan, Vec<Submission>), Failed> {
    let usage = |m: String| (exit_code::USAGE, m);
    if opts.run.backend == Some(BackendKind::Host) {
        return Err(usage(
            "policy forbids --backend host in grade mode (submissions run in containers)".into(),
        ));
    }
    let nb = notebook::load(&opts.grading, &opts.parse).map_err(|e| usage(e.to_string()))?;
    policy::check_grader(&nb, opts.allowed).map_err(usage)?;
    let mut base = plan::plan(nb, &opts.run).map_err(|e| usage(e.to_string()))?;
    let subs = submission::list(&opts.submissions).map_err(usage)?;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    fs::create_dir_all(&opts.output)
        .map_err(|e| usage(format!("{}: {e}", opts.output.display())))?;
    // No run may see the other submissions, the grade book, or the grading notebook (its
    // hidden cells' expected output); the rest of its directory stays at /lab/.notebook.
    base.env.hidden.push(canonical(&opts.grading));
    base.env.hidden.push(canonical(&opts.submissions));
    base.env.hidden.push(canonical(&opts.output));
    base.env
        .hidden
        .extend(opts.hide.iter().map(|p| canonical(p)));
    let probe = env::build(&base.env).map_err(|e| {
        (
            exit_code::ENVIRONMENT,
            format!(
                "{}: the grading environment could not be built: {e}",
                opts.grading.display()
            ),
        )
    })?;
    drop(probe);
    Ok((base, subs))
}

fn error_entry(sub: &Submission, max_score: f64, message: String, took: Duration) -> Entry {
    say(&format!("error: submission '{}': {message}", sub.name));
    Entry {
        submission: sub.name.clone(),
        status: "error".into(),
        score: 0.0,
        max_score,
        error: Some(message),
        note: None,
        duration_ms: took.as_secs_f64() * 1e3,
        cells: Vec::new(),
    }
}

/// Grades one submission; `None` when Ctrl-C stopped it.
fn grade_one(
    rt: &tokio::runtime::Runtime,
    opts: &GradeOptions,
    base: &Plan,
    scratch: &Path,
    sub: &Submission,
) -> Option<Entry> {
    let started = Instant::now();
    let max = score::max_score(base);
    let staged = match sub.stage(scratch) {
        Ok(dir) => dir,
        Err(m) => return Some(error_entry(sub, max, m, started.elapsed())),
    };
    let result = rt.block_on(run_submission(opts, base, sub, &staged));
    if sub.source != Source::Directory {
        let _ = fs::remove_dir_all(&staged);
    }
    let (plan, outcome) = match result {
        Ok(Some(done)) => done,
        Ok(None) => return None,
        Err(m) => return Some(error_entry(sub, max, m, started.elapsed())),
    };
    let report_dir = opts.output.join("submissions").join(&sub.name);
    if let Err(e) = write_reports(&report_dir, &opts.reports, &plan, &outcome) {
        return Some(error_entry(
            sub,
            max,
            format!("{}: {e}", report_dir.display()),
            started.elapsed(),
        ));
    }
    let cells = score::score(&plan, &outcome);
    Some(Entry {
        submission: sub.name.clone(),
        status: "graded".into(),
        score: score::total(&cells),
        max_score: score::max_score(&plan),
        error: None,
        note: outcome
            .aborted
            .as_deref()
            .map(|why| submission_note(opts, &plan, why)),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        cells,
    })
}

/// Why a run stopped early, in grade mode's words: the deadline the run met is the
/// submission's own when `--submission-timeout` set it.
fn submission_note(opts: &GradeOptions, plan: &Plan, why: &str) -> String {
    match (opts.submission_timeout, plan.total_timeout) {
        (Some(limit), Some(total)) if limit == total && why.starts_with("total_timeout") => {
            format!(
                "--submission-timeout of {} reached; later cells did not run",
                crate::units::show_duration(limit)
            )
        }
        _ => why.to_string(),
    }
}

/// The plan for this submission: the grading notebook with the submission mounted, and
/// with `--run-submissions` the submission's own cells after the grader's.
fn submission_plan(
    opts: &GradeOptions,
    base: &Plan,
    sub: &Submission,
    staged: &Path,
) -> Result<Plan, String> {
    let mut plan = base.clone();
    plan.env.submission = Some(staged.to_path_buf());
    plan.env.hidden.push(staged.to_path_buf());
    if let Some(limit) = opts.submission_timeout {
        plan.total_timeout = Some(plan.total_timeout.map_or(limit, |t| t.min(limit)));
    }
    if opts.run_submissions {
        let path = sub.notebook(staged)?;
        let nb = notebook::load(&path, &opts.parse).map_err(|e| e.to_string())?;
        policy::check_submission(&nb).map_err(|e| {
            let inside = e.strip_prefix(&format!("{}", path.display())).unwrap_or(&e);
            format!("{}{inside}", sub.path.display())
        })?;
        let theirs = plan::plan(nb, &RunOptions::default()).map_err(|e| e.to_string())?;
        plan.notebook = theirs.notebook;
        plan.cells = theirs.cells;
    }
    Ok(plan)
}

async fn run_submission(
    opts: &GradeOptions,
    base: &Plan,
    sub: &Submission,
    staged: &Path,
) -> Result<Option<(Plan, NotebookOutcome)>, String> {
    let plan = submission_plan(opts, base, sub, staged)?;
    let limit = plan
        .total_timeout
        .map_or(Duration::from_secs(86_400), |t| t + TEARDOWN_GRACE);
    let mut silent = Silent;
    let run = tokio::time::timeout(limit, run_notebook(&plan, &mut silent));
    tokio::select! {
        r = run => match r {
            Ok(Ok(outcome)) => Ok(Some((plan, outcome))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "did not finish within {} (the submission's time and {} for its environment)",
                crate::units::show_duration(limit - TEARDOWN_GRACE),
                crate::units::show_duration(TEARDOWN_GRACE)
            )),
        },
        _ = tokio::signal::ctrl_c() => Ok(None),
    }
}

/// Writes the chosen reports of one submission into `dir`.
fn write_reports(
    dir: &Path,
    which: &[SubmissionReport],
    plan: &Plan,
    outcome: &NotebookOutcome,
) -> std::io::Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let summary = Summary {
        notebooks: 1,
        passed: outcome.passed(),
        failed: outcome.failed(),
        skipped: outcome.skipped(),
        exit_code: exit_code::PASSED,
        elapsed: outcome.duration,
        errors: Vec::new(),
    };
    for r in which {
        let (name, render, assemble) = r.writer();
        fs::write(dir.join(name), assemble(&[render(plan, outcome)], &summary))?;
    }
    Ok(())
}
