//! The command line: raw flags (clap) are parsed once, validated into a `Config`, and the
//! chosen mode runs. `main` only maps the returned status to the process's exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exec::procs;
use crate::exec::runner::run_notebook;
use crate::exit_code;
use crate::notebook::{self, BackendKind, CellKind, ParseOptions};
use crate::plan::{self, Plan, RunOptions};
use crate::report::collect::{Assemble, CollectingReporter, RenderPart};
use crate::report::human::{HumanReporter, Verbosity};
use crate::report::json::JsonReporter;
use crate::report::out::Out;
use crate::report::style::{ColorChoice, Style, use_color};
use crate::report::{self, Fanout, Reporter, Summary};
use crate::units;

#[derive(Parser, Debug)]
#[command(
    name = "labrun",
    version,
    about = "Run a markdown workshop as a verified lab",
    long_about = "Runs the command cells of markdown notebooks in one fresh session each, \
                  compares every step's output with what the notebook expects, and reports \
                  step by step.\n\n`labrun NOTEBOOK.md` is short for `labrun run NOTEBOOK.md`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run notebooks and check them (the default command).
    Run(Box<RunArgs>),
    /// Show each notebook's cells: id, line, type, backend and first command line.
    List(ListArgs),
    /// Grade submissions: run a grading notebook once per submission, into a grade book.
    Grade(Box<crate::grade::command::GradeArgs>),
    /// Join the grade books of shards (`grade --shard K/N`) into one.
    Merge(crate::grade::command::MergeArgs),
    /// Manage the image layer cache: ls, build NOTEBOOK, rm NAME, prune.
    Image(crate::cli_image::ImageArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Host,
    Container,
    Vm,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Notebooks to run.
    #[arg(required = true, value_name = "NOTEBOOK")]
    notebooks: Vec<PathBuf>,
    /// Run in this backend, whatever the notebooks say.
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// The vm backend's kernel (over the notebook's `kernel:`).
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Record or refresh expected output (golden files and inline expectations).
    #[arg(long)]
    update: bool,
    /// Allow --update when the CI variable is set.
    #[arg(long)]
    force: bool,
    /// Where golden files live (instead of the nearest expected-output/).
    #[arg(long, value_name = "DIR")]
    expected_dir: Option<PathBuf>,
    /// Where `copy` cells may copy files out of the environment (nowhere without it).
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// A value for a docable `{{variable}}` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Pass a variable into the environment: NAME=VALUE, or NAME to copy labrun's own (repeatable).
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,
    /// Also run unannotated bash/sh blocks.
    #[arg(long)]
    run_all: bool,
    /// Run only these cells (repeatable, or comma-separated ids).
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    only: Vec<String>,
    /// Start at this cell.
    #[arg(long, value_name = "ID")]
    from: Option<String>,
    /// Stop after this cell.
    #[arg(long, value_name = "ID")]
    to: Option<String>,
    /// Stop a notebook at its first failing cell.
    #[arg(long)]
    fail_fast: bool,
    /// Leave the environment up after the run, for debugging; says how to enter and remove it.
    #[arg(long)]
    keep: bool,
    /// Build the setup steps' layers afresh, ignoring the cache.
    #[arg(long)]
    rebuild: bool,
    /// Default per-cell timeout (500ms, 30s, 5m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Notebooks at once (default: the number of cores).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// Report format: human, json, junit, tap, html, gradescope or csv; FORMAT=PATH writes it
    /// to a file (repeatable).
    #[arg(long = "format", value_name = "FORMAT[=PATH]", default_value = "human")]
    formats: Vec<String>,
    /// Write the (single) report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Show each cell's output as it runs.
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Show only failures and the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Colour: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorArg,
}

#[derive(Args, Debug)]
struct ListArgs {
    #[arg(required = true, value_name = "NOTEBOOK")]
    notebooks: Vec<PathBuf>,
    /// Also list unannotated bash/sh blocks.
    #[arg(long)]
    run_all: bool,
    /// The backend to show (as `run --backend` would use).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
}

const SUBCOMMANDS: &[&str] = &["run", "list", "grade", "merge", "image", "help"];

/// Inserts the default `run` when the first argument is not a subcommand or a top-level flag.
fn with_default_command(args: Vec<String>) -> Vec<String> {
    let mut args = args;
    let first = args.get(1).map(String::as_str);
    let top_level = matches!(first, Some("-h" | "--help" | "-V" | "--version"));
    if !top_level && first.is_some_and(|a| !SUBCOMMANDS.contains(&a)) {
        args.insert(1, "run".into());
    }
    args
}

/// `labrun run ...` (and so `labrun NOTEBOOK...`), parsed against the run command's own
/// arguments only: building the whole command line (five commands) took about a fifth of a
/// millisecond of every start. Anything but a clean parse (a mistake, `--help`) returns None
/// and goes through the whole command line, so that every message is the one it gives.
fn parse_run(args: &[String]) -> Option<RunArgs> {
    if args.get(1).map(String::as_str) != Some("run") {
        return None;
    }
    let command = RunArgs::augment_args(clap::Command::new("run"));
    let matches = command.try_get_matches_from(&args[1..]).ok()?;
    <RunArgs as clap::FromArgMatches>::from_arg_matches(&matches).ok()
}

fn say_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "labrun: error: {message}");
}

fn backend(arg: Option<BackendArg>) -> Option<BackendKind> {
    arg.map(|b| match b {
        BackendArg::Host => BackendKind::Host,
        BackendArg::Container => BackendKind::Container,
        BackendArg::Vm => BackendKind::Vm,
    })
}

/// Runs labrun with these arguments and returns its exit status.
pub fn main_with(args: Vec<String>) -> i32 {
    let args = with_default_command(args);
    if let Some(run_args) = parse_run(&args) {
        return run(run_args);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::PASSED
            };
        }
    };
    match cli.command {
        Command::Run(args) => run(*args),
        Command::List(args) => list(args),
        Command::Grade(args) => crate::grade::command::grade_command(*args),
        Command::Merge(args) => crate::grade::command::merge_command(args),
        Command::Image(args) => crate::cli_image::main(args),
    }
}

pub(crate) fn parse_pairs(
    items: &[String],
    flag: &str,
    from_env: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), v.to_string());
            }
            None if from_env && !item.is_empty() => {
                let v = std::env::var(item).map_err(|_| {
                    format!("{flag} {item}: labrun's own environment has no {item}")
                })?;
                map.insert(item.clone(), v);
            }
            _ => return Err(format!("{flag} {item}: expected NAME=VALUE")),
        }
    }
    Ok(map)
}

enum Format {
    Human(Option<PathBuf>),
    Json(Option<PathBuf>),
    /// JUnit, TAP, HTML, Gradescope, CSV: documents written at the end.
    Document(&'static str, Option<PathBuf>),
}

fn formats(args: &RunArgs) -> Result<Vec<Format>, String> {
    let mut out = Vec::new();
    for f in &args.formats {
        let (name, path) = match f.split_once('=') {
            Some((n, p)) => (n, Some(PathBuf::from(p))),
            None => (f.as_str(), None),
        };
        out.push(match name {
            "human" => Format::Human(path),
            "json" => Format::Json(path),
            other => match DOCUMENTS.iter().find(|d| d.0 == other) {
                Some(d) => Format::Document(d.0, path),
                None => {
                    return Err(format!(
                        "--format {other}: not a format of this release (human, json, junit, tap, html, gradescope, csv)"
                    ));
                }
            },
        });
    }
    if let Some(p) = &args.output {
        match out.as_mut_slice() {
            [Format::Human(path)] | [Format::Json(path)] | [Format::Document(_, path)] => {
                *path = Some(p.clone())
            }
            _ => return Err("--output goes with exactly one --format".into()),
        }
    }
    Ok(out)
}

/// The document formats: name, how one notebook renders, how the document is assembled.
const DOCUMENTS: &[(&str, RenderPart, Assemble)] = &[
    ("junit", report::junit::suite, report::junit::document),
    ("tap", report::tap::points, report::tap::document),
    ("html", report::html::notebook, report::html::document),
    (
        "gradescope",
        report::gradescope::tests,
        report::gradescope::document,
    ),
    ("csv", report::csv::rows, report::csv::document),
];

fn document_reporter(name: &str, out: Out) -> Box<dyn Reporter> {
    let (_, render, assemble) = DOCUMENTS
        .iter()
        .find(|d| d.0 == name)
        .expect("a known document format");
    Box::new(CollectingReporter::new(out, *render, *assemble))
}

fn run(args: RunArgs) -> i32 {
    let started = Instant::now();
    if args.update && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) && !args.force {
        say_error(
            "--update is refused when CI is set (it would rewrite files in a CI checkout); add --force to do it anyway",
        );
        return exit_code::USAGE;
    }
    let opts = match run_options(&args) {
        Ok(o) => o,
        Err(m) => {
            say_error(&m);
            return exit_code::USAGE;
        }
    };
    let formats = match formats(&args) {
        Ok(f) => f,
        Err(m) => {
            say_error(&m);
            return exit_code::USAGE;
        }
    };
    let jobs = match (args.jobs, args.notebooks.len()) {
        (_, 1) => 1,
        (Some(j), n) => j.clamp(1, n),
        (None, n) => std::thread::available_parallelism().map_or(1, |c| c.get().min(n)),
    };
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let color = use_color(match args.color {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    });
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    for f in formats {
        let made: Result<Box<dyn Reporter>, std::io::Error> = match f {
            Format::Human(path) => {
                let (out, col) = match path {
                    Some(p) => (Out::file(&p), false),
                    None => (Ok(Out::stdout()), color),
                };
                out.map(|o| {
                    Box::new(HumanReporter::new(
                        o,
                        Style { color: col },
                        verbosity,
                        jobs > 1,
                        args.update,
                    )) as Box<dyn Reporter>
                })
            }
            Format::Json(path) => match path {
                Some(p) => Out::file(&p),
                None => Ok(Out::stdout()),
            }
            .map(|o| Box::new(JsonReporter::new(o)) as Box<dyn Reporter>),
            Format::Document(name, path) => match path {
                Some(p) => Out::file(&p),
                None => Ok(Out::stdout()),
            }
            .map(|o| document_reporter(name, o)),
        };
        match made {
            Ok(r) => reporters.push(r),
            Err(e) => {
                say_error(&e.to_string());
                return exit_code::USAGE;
            }
        }
    }
    let reporter = Mutex::new(Fanout(reporters));
    let parse_opts = ParseOptions {
        run_all: args.run_all,
    };

    procs::become_subreaper();
    let mut results = Vec::<NotebookResult>::new();
    // Workers take notebooks off one queue until it is empty or Ctrl-C stops the run.
    crate::grade::scheduler::run(
        args.notebooks.iter().collect(),
        jobs,
        false,
        |rt, path| {
            rt.block_on(one_notebook(
                path,
                &parse_opts,
                &opts,
                args.update,
                &reporter,
            ))
        },
        |result| {
            let go_on = result.status != exit_code::INTERRUPTED;
            results.push(result);
            go_on
        },
    );
    // Daemons that cells double-forked reparented to labrun; none outlives the run.
    procs::kill_descendants(std::process::id(), Duration::from_secs(5));

    let mut summary = Summary {
        notebooks: results.len(),
        passed: 0,
        failed: 0,
        skipped: 0,
        exit_code: exit_code::PASSED,
        elapsed: started.elapsed(),
        errors: Vec::new(),
    };
    for r in &results {
        summary.passed += r.passed;
        summary.failed += r.failed;
        summary.skipped += r.skipped;
        summary.exit_code = exit_code::combine(summary.exit_code, r.status);
        summary.errors.extend(r.errors.iter().cloned());
    }
    reporter.into_inner().unwrap().finish(&summary);
    summary.exit_code
}

struct NotebookResult {
    status: i32,
    passed: usize,
    failed: usize,
    skipped: usize,
    errors: Vec<String>,
}

impl NotebookResult {
    /// A notebook that could not run: said on stderr at once, counted in the summary.
    fn error(status: i32, message: String) -> Self {
        say_error(&message);
        NotebookResult {
            status,
            passed: 0,
            failed: 0,
            skipped: 0,
            errors: vec![message],
        }
    }
}

/// Parses, plans, runs and (with --update) records one notebook.
async fn one_notebook(
    path: &std::path::Path,
    parse_opts: &ParseOptions,
    opts: &RunOptions,
    update: bool,
    reporter: &Mutex<Fanout>,
) -> NotebookResult {
    let nb = match notebook::load(path, parse_opts) {
        Ok(nb) => nb,
        Err(e) => return NotebookResult::error(exit_code::USAGE, e.to_string()),
    };
    for w in &nb.warnings {
        let _ = writeln!(
            std::io::stderr(),
            "labrun: warning: {}:{}:{}: {}",
            path.display(),
            w.line,
            w.column,
            w.message
        );
    }
    let plan: Plan = match plan::plan(nb, opts) {
        Ok(p) => p,
        Err(e) => return NotebookResult::error(exit_code::USAGE, e.to_string()),
    };
    let mut sink = LockedReporter(reporter);
    let outcome = tokio::select! {
        r = run_notebook(&plan, &mut sink) => r,
        _ = tokio::signal::ctrl_c() => {
            return NotebookResult::error(exit_code::INTERRUPTED, format!("{}: interrupted", path.display()));
        }
    };
    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => return NotebookResult::error(exit_code::ENVIRONMENT, e.to_string()),
    };
    let mut errors = Vec::new();
    if update {
        match crate::bless::bless(&plan, &mut outcome) {
            Ok(done) => {
                let mut note = String::new();
                if done.notebook_edits > 0 {
                    note.push_str(&format!(
                        "labrun: updated {} expectation{} in {}\n",
                        done.notebook_edits,
                        if done.notebook_edits == 1 { "" } else { "s" },
                        path.display()
                    ));
                }
                for g in &done.golden_files {
                    note.push_str(&format!("labrun: recorded {}\n", g.display()));
                }
                for (id, why) in &done.refused {
                    note.push_str(&format!("labrun: not recorded: {id}: {why}\n"));
                }
                let _ = std::io::stderr().write_all(note.as_bytes());
            }
            Err(e) => {
                let message = format!("{}: --update: {e}", path.display());
                say_error(&message);
                errors.push(message);
            }
        }
    }
    let status = if !errors.is_empty() {
        exit_code::ENVIRONMENT
    } else if outcome.failed() > 0 {
        exit_code::CELL_FAILED
    } else {
        exit_code::PASSED
    };
    NotebookResult {
        status,
        passed: outcome.passed(),
        failed: outcome.failed(),
        skipped: outcome.skipped(),
        errors,
    }
}

/// Lets several notebook threads share the reporters, one event at a time.
struct LockedReporter<'a>(&'a Mutex<Fanout>);

impl Reporter for LockedReporter<'_> {
    fn event(&mut self, event: &crate::report::Event) {
        self.0.lock().unwrap().event(event);
    }
    fn finish(&mut self, summary: &Summary) {
        self.0.lock().unwrap().finish(summary);
    }
}

fn run_options(args: &RunArgs) -> Result<RunOptions, String> {
    let timeout = match &args.timeout {
        Some(t) => Some(units::parse_duration(t).map_err(|e| format!("--timeout: {e}"))?),
        None => None,
    };
    Ok(RunOptions {
        backend: backend(args.backend),
        kernel: args.kernel.clone(),
        timeout,
        env: parse_pairs(&args.envs, "--env", true)?,
        vars: parse_pairs(&args.vars, "--var", false)?,
        only: args.only.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        fail_fast: args.fail_fast,
        keep: args.keep,
        rebuild: args.rebuild,
        expected_dir: args.expected_dir.clone(),
        artifacts: args.artifacts.clone(),
        grading: false,
    })
}

fn first_line(kind: &CellKind) -> String {
    if let CellKind::Copy { steps } = kind {
        let first = &steps[0];
        return format!("COPY {} {}", first.from.show(), first.to.show());
    }
    let text = match kind {
        CellKind::Command { script } => script.lines().find(|l| !l.trim().is_empty()).unwrap_or(""),
        CellKind::Transcript { steps, .. } => steps
            .first()
            .map_or("", |s| s.command.lines().next().unwrap_or("")),
        CellKind::File { .. } | CellKind::Edit { .. } => "",
        CellKind::Interactive { command, .. } => command.as_str(),
        CellKind::Script { program, .. } => program.lines().next().unwrap_or(""),
        CellKind::Skipped { reason } => reason.as_str(),
        CellKind::Copy { .. } => "",
    };
    text.chars().filter(|c| !c.is_control()).take(60).collect()
}

fn list(args: ListArgs) -> i32 {
    let opts = ParseOptions {
        run_all: args.run_all,
    };
    let mut status = exit_code::PASSED;
    let mut out = Out::stdout();
    for path in &args.notebooks {
        let nb = match notebook::load(path, &opts) {
            Ok(nb) => nb,
            Err(e) => {
                say_error(&e.to_string());
                status = exit_code::combine(status, exit_code::USAGE);
                continue;
            }
        };
        let targets = &nb.settings.targets;
        // The machine a cell runs on (several-machine labs), and that machine's backend.
        let machine_of = |cell: &notebook::Cell| -> (String, &'static str) {
            let target = cell
                .attrs
                .target
                .as_deref()
                .and_then(|name| targets.iter().find(|t| t.name == name))
                .or(targets.first());
            let backend = backend(args.backend)
                .or(target.and_then(|t| t.settings.backend))
                .or(nb.settings.backend)
                .unwrap_or(BackendKind::Container)
                .name();
            let name = cell.attrs.target.clone().or(target.map(|t| t.name.clone()));
            (name.unwrap_or_default(), backend)
        };
        let target_width = targets
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let target_column = |name: &str| match targets.is_empty() {
            true => String::new(),
            false => format!("{name:target_width$}  "),
        };
        out.write(&format!("{}\n", path.display()));
        let width = nb
            .cells
            .iter()
            .map(|c| c.id.0.len())
            .max()
            .unwrap_or(2)
            .max(2);
        out.write(&format!(
            "  {:width$}  {:>5}  {:10}  {}{:9}  FIRST LINE\n",
            "ID",
            "LINE",
            "TYPE",
            target_column("TARGET"),
            "BACKEND"
        ));
        let mut rows: Vec<(u32, String)> = nb
            .cells
            .iter()
            .map(|cell| {
                let detail = match &cell.kind {
                    CellKind::File { .. } | CellKind::Edit { .. } => {
                        format!("-> {}", cell.attrs.path.as_deref().unwrap_or("?"))
                    }
                    k => first_line(k),
                };
                let (target, backend) = machine_of(cell);
                let row = format!(
                    "  {:width$}  {:>5}  {:10}  {}{:9}  {}\n",
                    cell.id.0,
                    cell.line,
                    cell.kind.name(),
                    target_column(&target),
                    backend,
                    detail
                );
                (cell.line, row)
            })
            .collect();
        rows.extend(nb.not_run.iter().map(|block| {
            let shown: String = block
                .first_line
                .chars()
                .filter(|c| !c.is_control())
                .take(60)
                .collect();
            let row = format!(
                "  {:width$}  {:>5}  {:10}  {}{:9}  {}\n",
                "-",
                block.line,
                "not run",
                target_column("-"),
                "-",
                shown
            );
            (block.line, row)
        }));
        rows.sort_by_key(|(line, _)| *line);
        for (_, row) in rows {
            out.write(&row);
        }
    }
    out.flush();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_is_the_default_command() {
        assert_eq!(with_default_command(args(&["labrun", "x.md"]))[1], "run");
        assert_eq!(
            with_default_command(args(&["labrun", "--update", "x.md"]))[1],
            "run"
        );
        assert_eq!(
            with_default_command(args(&["labrun", "list", "x.md"]))[1],
            "list"
        );
        assert_eq!(
            with_default_command(args(&["labrun", "--help"]))[1],
            "--help"
        );
    }

    #[test]
    fn the_run_commands_own_parse_agrees_with_the_whole_command_line() {
        for line in [
            "labrun x.md",
            "labrun run -q a.md b.md --backend host",
            "labrun --update --force -j 3 x.md --env A=B --var C=d --format junit=out.xml",
            "labrun -v --only a,b --from c --timeout 30s --color never --fail-fast x.md",
            "labrun x.md --keep --rebuild --run-all --artifacts out --expected-dir e --to z",
        ] {
            let argv = with_default_command(line.split(' ').map(String::from).collect());
            let fast = parse_run(&argv).unwrap_or_else(|| panic!("{line}: not parsed"));
            let Command::Run(full) = Cli::try_parse_from(&argv).unwrap().command else {
                panic!("{line}: not the run command");
            };
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line}");
        }
        // Mistakes, help and the other commands go through the whole command line.
        for line in [
            "labrun run --no-such-flag x.md",
            "labrun --backend nowhere x.md",
            "labrun -q -v x.md",
            "labrun run --help",
            "labrun run",
            "labrun list x.md",
            "labrun --version",
        ] {
            let argv = with_default_command(line.split(' ').map(String::from).collect());
            assert!(parse_run(&argv).is_none(), "{line}");
        }
    }

    #[test]
    fn pairs() {
        let m = parse_pairs(&args(&["A=1", "B=x=y"]), "--var", false).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "x=y");
        assert!(parse_pairs(&args(&["A"]), "--var", false).is_err());
        assert!(parse_pairs(&args(&["=1"]), "--var", false).is_err());
    }
}
