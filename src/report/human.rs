//! The terminal report: a line per cell, and for a failing cell its place, its command and a
//! diff with the changed words highlighted. Cell output is always shown escaped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::out::Out;
use super::style::Style;
use super::{Event, Reporter, Summary};
use crate::expect::{display_line, render_diff};
use crate::notebook::{Cell, ExitRule};
use crate::outcome::{CellOutcome, Failure, StepOutcome, Verdict};
use crate::units::show_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct HumanReporter {
    out: Out,
    style: Style,
    verbosity: Verbosity,
    /// With several notebooks at once, each one's lines are held until it finishes.
    buffered: bool,
    buffers: HashMap<PathBuf, String>,
    /// Whether `--update` is in use (changes the advice on a mismatch).
    updating: bool,
    /// Live output stopped in the middle of a line.
    live_mid_line: bool,
}

/// Lines of output shown for a failure that is not an output mismatch.
const CONTEXT_LINES: usize = 20;

impl HumanReporter {
    pub fn new(
        out: Out,
        style: Style,
        verbosity: Verbosity,
        buffered: bool,
        updating: bool,
    ) -> Self {
        HumanReporter {
            out,
            style,
            verbosity,
            buffered,
            buffers: HashMap::new(),
            updating,
            live_mid_line: false,
        }
    }

    fn emit(&mut self, path: &Path, text: String) {
        if self.buffered {
            self.buffers
                .entry(path.to_path_buf())
                .or_default()
                .push_str(&text);
        } else {
            self.out.write(&text);
            self.out.flush();
        }
    }

    fn cell_line(&self, cell: &Cell, outcome: &CellOutcome) -> String {
        let s = self.style;
        let place = s.dim(&format!("line {}", cell.line));
        match &outcome.verdict {
            Verdict::Passed => format!(
                "  {}  {}  {}  {}\n",
                s.pass("ok  "),
                outcome.id,
                place,
                s.dim(&show_duration(outcome.duration))
            ),
            Verdict::Skipped { reason } => {
                format!(
                    "  {}  {}  {}  {}\n",
                    s.skip("skip"),
                    outcome.id,
                    place,
                    s.dim(reason)
                )
            }
            Verdict::Failed(_) => format!(
                "  {}  {}  {}  {}\n",
                s.fail("FAIL"),
                outcome.id,
                place,
                s.dim(&show_duration(outcome.duration))
            ),
        }
    }

    fn failure_detail(&self, path: &str, cell: &Cell, outcome: &CellOutcome) -> String {
        let s = self.style;
        let mut text = String::new();
        for step in &outcome.steps {
            let Verdict::Failed(failures) = &step.verdict else {
                continue;
            };
            text.push_str(&format!(
                "    {}\n",
                s.bold(&format!("{path}:{}", step.line))
            ));
            for (i, line) in step.command.lines().enumerate() {
                let prompt = if i == 0 { "$ " } else { "> " };
                text.push_str(&format!("    {}{}\n", s.dim(prompt), line));
            }
            for f in failures {
                text.push_str(&self.failure(f, step));
            }
        }
        if outcome.steps.is_empty()
            && let Verdict::Failed(failures) = &outcome.verdict
        {
            text.push_str(&format!(
                "    {}\n",
                s.bold(&format!("{path}:{}", cell.line))
            ));
            for f in failures {
                if let Failure::Error { message } = f {
                    text.push_str(&format!("    {}\n", s.fail(&indented(message))));
                }
            }
        }
        for note in &outcome.notes {
            text.push_str(&format!("    {} {}\n", s.skip("note:"), note));
        }
        if let Some(hint) = &cell.attrs.hint {
            text.push_str(&format!("    {} {}\n", s.bold("hint:"), hint));
        }
        text
    }

    fn failure(&self, f: &Failure, step: &StepOutcome) -> String {
        let s = self.style;
        let indent =
            |block: &str| -> String { block.lines().map(|l| format!("    {l}\n")).collect() };
        match f {
            Failure::Output { diff } => {
                let mut t = indent(&render_diff(diff, s.color));
                if !self.updating {
                    t.push_str(&format!(
                        "    {}\n",
                        s.dim("(if the new output is right, `labrun --update` records it)")
                    ));
                }
                t
            }
            Failure::ExitStatus { expected, got } => {
                let want = match expected {
                    ExitRule::Code(c) => format!("{c}"),
                    ExitRule::OneOf(cs) => format!(
                        "one of {}",
                        cs.iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    ExitRule::Any => "any".into(),
                };
                let mut t = format!(
                    "    {}\n",
                    s.fail(&format!("exit status {got}, expected {want}"))
                );
                t.push_str(&self.output_tail(step));
                t
            }
            Failure::Timeout { after } => {
                let mut t = format!(
                    "    {}\n",
                    s.fail(&format!("timeout after {}", show_duration(*after)))
                );
                t.push_str(&self.output_tail(step));
                t
            }
            Failure::FailedWhen { expression } => {
                let mut t = format!(
                    "    {}\n",
                    s.fail(&format!("failed_when is true: {expression}"))
                );
                t.push_str(&self.output_tail(step));
                t
            }
            Failure::Error { message } => format!("    {}\n", s.fail(&indented(message))),
        }
    }

    /// The last lines of a step's output, escaped, for context.
    fn output_tail(&self, step: &StepOutcome) -> String {
        let mut all: Vec<&[u8]> = step.run.output.split(|&b| b == b'\n').collect();
        if all.last().is_some_and(|l| l.is_empty()) {
            all.pop();
        }
        if !step.run.stderr.is_empty() {
            all.extend(
                step.run
                    .stderr
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty()),
            );
        }
        if all.is_empty() {
            return format!("    {}\n", self.style.dim("(no output)"));
        }
        let skip = all.len().saturating_sub(CONTEXT_LINES);
        let mut t = String::new();
        if skip > 0 {
            t.push_str(&format!(
                "    {}\n",
                self.style.dim(&format!("... {skip} earlier lines"))
            ));
        }
        for line in &all[skip..] {
            t.push_str(&format!(
                "    {} {}\n",
                self.style.dim("|"),
                display_line(line)
            ));
        }
        t
    }
}

impl Reporter for HumanReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::NotebookStarted { plan } => {
                if self.verbosity > Verbosity::Quiet {
                    let mut machines = plan.env.backend.name().to_string();
                    if !plan.more_targets.is_empty() {
                        let addresses: Vec<String> = plan
                            .targets()
                            .enumerate()
                            .map(|(i, t)| {
                                format!("{} {}", t.hostname, crate::env::network::address_of(i))
                            })
                            .collect();
                        machines = format!("{machines}: {}", addresses.join(", "));
                    }
                    let head = format!(
                        "{} {}\n",
                        self.style.bold(&plan.notebook.path.display().to_string()),
                        self.style.dim(&format!("({machines})"))
                    );
                    self.emit(&plan.notebook.path, head);
                }
            }
            Event::Warning { plan, message } => {
                if self.verbosity > Verbosity::Quiet {
                    let t = format!("  {} {message}\n", self.style.skip("warning:"));
                    self.emit(&plan.notebook.path, t);
                }
            }
            Event::CellStarted { plan, cell } => {
                if self.verbosity == Verbosity::Verbose && !self.buffered {
                    let t = format!("  {} {}\n", self.style.dim("run "), cell.id);
                    self.emit(&plan.notebook.path, t);
                }
            }
            Event::Output { plan, chunk, .. } => {
                if self.verbosity == Verbosity::Verbose && !self.buffered {
                    let mut text = String::new();
                    for l in String::from_utf8_lossy(chunk).split_inclusive('\n') {
                        let (body, nl) = l.strip_suffix('\n').map_or((l, ""), |b| (b, "\n"));
                        if !self.live_mid_line {
                            text.push_str(&format!("    {} ", self.style.dim("|")));
                        }
                        text.push_str(&display_line(body.as_bytes()));
                        text.push_str(nl);
                        self.live_mid_line = nl.is_empty();
                    }
                    self.emit(&plan.notebook.path, text);
                }
            }
            Event::CellFinished {
                plan,
                cell,
                outcome,
            } => {
                let failed = outcome.verdict.is_failed();
                let mut t = String::new();
                if std::mem::take(&mut self.live_mid_line) {
                    t.push('\n');
                }
                if self.verbosity > Verbosity::Quiet || failed {
                    if self.verbosity == Verbosity::Quiet {
                        t.push_str(&format!("{}\n", plan.notebook.path.display()));
                    }
                    t.push_str(&self.cell_line(cell, outcome));
                }
                if failed {
                    t.push_str(&self.failure_detail(
                        &plan.notebook.path.display().to_string(),
                        cell,
                        outcome,
                    ));
                } else if self.verbosity > Verbosity::Quiet {
                    for note in &outcome.notes {
                        t.push_str(&format!("    {} {}\n", self.style.skip("note:"), note));
                    }
                }
                self.emit(&plan.notebook.path, t);
            }
            Event::NotebookFinished { plan, outcome } => {
                let mut t = String::new();
                if let Some(why) = &outcome.aborted {
                    t.push_str(&format!("  {} {}\n", self.style.skip("stopped:"), why));
                }
                if self.verbosity > Verbosity::Quiet {
                    t.push_str(&format!(
                        "  {} passed, {} failed, {} skipped in {}\n",
                        outcome.passed(),
                        outcome.failed(),
                        outcome.skipped(),
                        show_duration(outcome.duration)
                    ));
                }
                self.emit(&plan.notebook.path, t);
                if let Some(text) = self.buffers.remove(&plan.notebook.path) {
                    self.out.write(&text);
                    self.out.flush();
                }
            }
        }
    }

    fn finish(&mut self, summary: &Summary) {
        // Errors were said on stderr as they happened; the summary counts them.
        if summary.notebooks > 1 || self.verbosity == Verbosity::Quiet || !summary.errors.is_empty()
        {
            let verdict = if summary.failed == 0 && summary.errors.is_empty() {
                self.style.pass("ok")
            } else {
                self.style.fail("FAILED")
            };
            let errors = match summary.errors.len() {
                0 => String::new(),
                1 => ", 1 error".to_string(),
                n => format!(", {n} errors"),
            };
            self.out.write(&format!(
                "{verdict}: {} passed, {} failed, {} skipped{errors} in {} notebook{} ({})\n",
                summary.passed,
                summary.failed,
                summary.skipped,
                summary.notebooks,
                if summary.notebooks == 1 { "" } else { "s" },
                show_duration(summary.elapsed)
            ));
        }
        self.out.flush();
    }
}

/// A message of several lines (a screen, a hunk) with its later lines under its first.
fn indented(message: &str) -> String {
    message.replace('\n', "\n    ")
}
