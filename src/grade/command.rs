//! The command lines of `labrun grade` and `labrun merge`: flags into options.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::batch::{GradeOptions, SubmissionReport, grade};
use super::policy::Allowed;
use super::shard::Shard;
use super::slurm::SlurmBatch;
use crate::exit_code;
use crate::notebook::ParseOptions;
use crate::plan::RunOptions;
use crate::units;

#[derive(Args, Debug)]
pub struct GradeArgs {
    /// The grading notebook (trusted: the grader's own).
    #[arg(value_name = "GRADING.md")]
    grading: PathBuf,
    /// A directory whose entries are the submissions: directories, .zip, .tar.gz or .md files.
    #[arg(long, value_name = "DIR")]
    submissions: PathBuf,
    /// Where the grade book (grades.csv, grades.json) and each submission's reports go.
    #[arg(long, value_name = "DIR", default_value = "grades")]
    output: PathBuf,
    /// Submissions at once (default: the number of cores).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// The most one submission's run may take (500ms, 30s, 5m).
    #[arg(long, value_name = "DURATION")]
    submission_timeout: Option<String>,
    /// Let the grading notebook's own cells be privileged (`--allow privileged`).
    #[arg(long, value_name = "WHAT")]
    allow: Vec<String>,
    /// Grade only a stable share of the submissions: K/N, K from 1.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Run each submission's own notebook (its only .md) as the lab, under the grade policy.
    #[arg(long)]
    run_submissions: bool,
    /// Reports per submission: gradescope, html, junit, tap, or none (repeatable,
    /// comma-separated; default all four).
    #[arg(long = "format", value_name = "FORMAT", value_delimiter = ',')]
    formats: Vec<String>,
    /// Default per-cell timeout.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Pass a variable into the environment: NAME=VALUE, or NAME to copy labrun's own.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,
    /// A value for a docable `{{variable}}` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Also run unannotated bash/sh blocks.
    #[arg(long)]
    run_all: bool,
    /// Show no progress bar, even on a terminal.
    #[arg(short, long)]
    quiet: bool,
    /// Grade as one Slurm array job, a task per shard, and merge the shards into --output.
    #[arg(long, conflicts_with = "shard")]
    slurm: bool,
    /// An sbatch option for --slurm (repeatable): --slurm-opt=--partition=lab.
    #[arg(
        long = "slurm-opt",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "slurm"
    )]
    slurm_opts: Vec<String>,
    /// Array tasks (shards) for --slurm (default: one per submission, at most 32).
    #[arg(long, value_name = "N", requires = "slurm", value_parser = clap::value_parser!(u64).range(1..))]
    slurm_tasks: Option<u64>,
    /// Also hide DIR from every run (--slurm's tasks hide the whole batch's output).
    #[arg(long, value_name = "DIR", hide = true)]
    hide: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The grade books (grades.json) of the shards.
    #[arg(required = true, value_name = "RESULT.json")]
    results: Vec<PathBuf>,
    /// Where the merged grades.json and grades.csv go.
    #[arg(long, value_name = "DIR", default_value = "grades")]
    output: PathBuf,
}

fn reports(names: &[String]) -> Result<Vec<SubmissionReport>, String> {
    if names.is_empty() {
        return Ok(vec![
            SubmissionReport::Gradescope,
            SubmissionReport::Html,
            SubmissionReport::Junit,
            SubmissionReport::Tap,
        ]);
    }
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "gradescope" => out.push(SubmissionReport::Gradescope),
            "html" => out.push(SubmissionReport::Html),
            "junit" => out.push(SubmissionReport::Junit),
            "tap" => out.push(SubmissionReport::Tap),
            "none" => {}
            other => {
                return Err(format!(
                    "--format {other}: grade writes gradescope, html, junit or tap per submission (or none); the grade book is always written"
                ));
            }
        }
    }
    Ok(out)
}

fn options(args: GradeArgs) -> Result<GradeOptions, String> {
    let duration = |flag: &str, t: &Option<String>| {
        t.as_deref()
            .map(|t| units::parse_duration(t).map_err(|e| format!("{flag}: {e}")))
            .transpose()
    };
    let mut allowed = Allowed::default();
    for what in &args.allow {
        match what.as_str() {
            "privileged" => allowed.privileged = true,
            other => return Err(format!("--allow {other}: only `--allow privileged` exists")),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    Ok(GradeOptions {
        jobs: args.jobs.unwrap_or(cores).max(1),
        submission_timeout: duration("--submission-timeout", &args.submission_timeout)?,
        shard: args.shard.as_deref().map(Shard::parse).transpose()?,
        reports: reports(&args.formats)?,
        run: RunOptions {
            timeout: duration("--timeout", &args.timeout)?,
            env: crate::cli::parse_pairs(&args.envs, "--env", true)?,
            vars: crate::cli::parse_pairs(&args.vars, "--var", false)?,
            grading: true,
            ..RunOptions::default()
        },
        parse: ParseOptions {
            run_all: args.run_all,
        },
        progress: !args.quiet && std::io::stderr().is_terminal(),
        allowed,
        run_submissions: args.run_submissions,
        hide: args.hide,
        grading: args.grading,
        submissions: args.submissions,
        output: args.output,
    })
}

/// The flags each `--slurm` task runs `labrun grade` with: this batch's own, without where
/// results go and how the batch is spread (the task adds its `--shard` and `--output`).
fn task_flags(args: &GradeArgs, output: &std::path::Path) -> Vec<OsString> {
    let mut flags: Vec<OsString> = vec!["grade".into(), args.grading.clone().into()];
    let mut flag = |name: &str, value: &dyn AsRef<std::ffi::OsStr>| {
        flags.push(name.into());
        flags.push(value.as_ref().to_owned());
    };
    flag("--submissions", &args.submissions);
    flag("--hide", &output);
    if let Some(j) = args.jobs {
        flag("--jobs", &j.to_string());
    }
    let optional = [
        ("--submission-timeout", &args.submission_timeout),
        ("--timeout", &args.timeout),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            flag(name, v);
        }
    }
    let repeated = [
        ("--allow", &args.allow),
        ("--format", &args.formats),
        ("--env", &args.envs),
        ("--var", &args.vars),
    ];
    for (name, values) in repeated {
        for v in values {
            flag(name, v);
        }
    }
    let switches = [
        ("--run-submissions", args.run_submissions),
        ("--run-all", args.run_all),
        ("--quiet", true),
    ];
    flags.extend(switches.iter().filter(|(_, on)| *on).map(|(n, _)| n.into()));
    flags
}

fn slurm_batch(args: &GradeArgs) -> Result<SlurmBatch, String> {
    let output =
        std::path::absolute(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
    Ok(SlurmBatch {
        labrun: std::env::current_exe().map_err(|e| format!("labrun's own path: {e}"))?,
        flags: task_flags(args, &output),
        submissions: args.submissions.clone(),
        output: args.output.clone(),
        tasks: args.slurm_tasks,
        sbatch: args.slurm_opts.clone(),
        progress: !args.quiet,
    })
}

pub fn grade_command(args: GradeArgs) -> i32 {
    if args.slurm {
        return match slurm_batch(&args) {
            Ok(batch) => super::slurm::grade(&batch),
            Err(m) => {
                eprintln!("labrun: error: {m}");
                exit_code::ENVIRONMENT
            }
        };
    }
    match options(args) {
        Ok(opts) => grade(&opts),
        Err(m) => {
            eprintln!("labrun: error: {m}");
            exit_code::USAGE
        }
    }
}

pub fn merge_command(args: MergeArgs) -> i32 {
    match super::merge::merge(&args.results, &args.output) {
        Ok(n) => {
            eprintln!(
                "labrun: merged {n} submissions from {} grade books into {}",
                args.results.len(),
                args.output.join("grades.csv").display()
            );
            exit_code::PASSED
        }
        Err(m) => {
            eprintln!("labrun: error: {m}");
            exit_code::USAGE
        }
    }
}
