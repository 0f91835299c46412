//! What the machine-readable reports share: each planned cell with its outcome, its score,
//! and its failure told in plain text (never the expected output of a `hidden` cell).

use crate::expect::render_diff;
use crate::grade::score::{CellScore, score_cell};
use crate::notebook::{Cell, ExitRule};
use crate::outcome::{CellOutcome, Failure, NotebookOutcome, Verdict};
use crate::plan::Plan;

pub struct GradedCell<'a> {
    pub cell: &'a Cell,
    pub outcome: Option<&'a CellOutcome>,
    pub score: CellScore,
}

/// The planned cells of a run, in order, with what each did and scored.
pub fn graded<'a>(plan: &'a Plan, outcome: &'a NotebookOutcome) -> Vec<GradedCell<'a>> {
    plan.cells
        .iter()
        .map(|planned| {
            let cell = plan.cell(planned);
            let done = outcome.cells.iter().find(|c| c.id == cell.id);
            GradedCell {
                cell,
                outcome: done,
                score: score_cell(cell, done),
            }
        })
        .collect()
}

fn exit_rule(rule: &ExitRule) -> String {
    match rule {
        ExitRule::Code(c) => c.to_string(),
        ExitRule::OneOf(cs) => {
            let list: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
            format!("one of {}", list.join(", "))
        }
        ExitRule::Any => "any".into(),
    }
}

/// One failure in plain words (the diff included).
pub fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Output { diff } => render_diff(diff, false),
        Failure::ExitStatus { expected, got } => {
            format!("exit status {got}, expected {}\n", exit_rule(expected))
        }
        Failure::Timeout { after } => {
            format!("timeout after {}\n", crate::units::show_duration(*after))
        }
        Failure::FailedWhen { expression } => format!("failed_when held: {expression}\n"),
        Failure::Error { message } => format!("{message}\n"),
    }
}

impl GradedCell<'_> {
    pub fn hidden(&self) -> bool {
        self.cell.attrs.hidden
    }

    pub fn passed(&self) -> bool {
        matches!(self.outcome.map(|o| &o.verdict), Some(Verdict::Passed))
    }

    pub fn skipped(&self) -> Option<&str> {
        match self.outcome.map(|o| &o.verdict) {
            Some(Verdict::Skipped { reason }) => Some(reason),
            _ => None,
        }
    }

    /// Why the cell did not pass, for a student's eyes: the steps that failed with their
    /// diffs, then the hint. A hidden cell says only that it failed, and the hint.
    pub fn failure(&self) -> Option<String> {
        if self.passed() || self.skipped().is_some() {
            return None;
        }
        let mut text = String::new();
        match self.outcome {
            None => text.push_str("not run: the run stopped before this cell\n"),
            Some(_) if self.hidden() => text.push_str("a hidden test failed\n"),
            Some(o) => {
                for step in &o.steps {
                    if let Verdict::Failed(fs) = &step.verdict {
                        text.push_str(&format!("$ {}\n", step.command.trim_end()));
                        fs.iter().for_each(|f| text.push_str(&failure_text(f)));
                    }
                }
                if o.steps.is_empty()
                    && let Verdict::Failed(fs) = &o.verdict
                {
                    fs.iter().for_each(|f| text.push_str(&failure_text(f)));
                }
                o.notes
                    .iter()
                    .for_each(|n| text.push_str(&format!("note: {n}\n")));
            }
        }
        if let Some(hint) = &self.cell.attrs.hint {
            text.push_str(&format!("hint: {hint}\n"));
        }
        Some(text)
    }

    pub fn seconds(&self) -> f64 {
        self.outcome.map_or(0.0, |o| o.duration.as_secs_f64())
    }
}
