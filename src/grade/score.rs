//! Points: each cell is worth `points` (default 1); a `partial: true` cell scores the share of
//! its transcript steps that passed, any other cell all or nothing. Skipped cells count for
//! nothing either way; cells a run never reached score zero.

use serde::{Deserialize, Serialize};

use crate::notebook::Cell;
use crate::outcome::{CellOutcome, NotebookOutcome, Verdict};
use crate::plan::Plan;

/// One cell's share of a grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellScore {
    pub id: String,
    pub score: f64,
    pub max_score: f64,
    /// passed, failed, partial, skipped or not run.
    pub status: String,
}

/// What a cell is worth.
pub fn worth(cell: &Cell) -> f64 {
    cell.attrs.points.unwrap_or(1.0)
}

/// Scores one cell from what it did (`None`: it never ran).
pub fn score_cell(cell: &Cell, outcome: Option<&CellOutcome>) -> CellScore {
    let max = worth(cell);
    let (score, max_score, status) = match outcome.map(|o| (&o.verdict, o)) {
        None => (0.0, max, "not run"),
        Some((Verdict::Skipped { .. }, _)) => (0.0, 0.0, "skipped"),
        Some((Verdict::Passed, _)) => (max, max, "passed"),
        Some((Verdict::Failed(_), o)) if cell.attrs.partial && !o.steps.is_empty() => {
            let passed = o
                .steps
                .iter()
                .filter(|s| matches!(s.verdict, Verdict::Passed))
                .count();
            let share = passed as f64 / o.steps.len() as f64;
            let status = if passed == 0 { "failed" } else { "partial" };
            (round(max * share), max, status)
        }
        Some((Verdict::Failed(_), _)) => (0.0, max, "failed"),
    };
    CellScore {
        id: cell.id.0.clone(),
        score,
        max_score,
        status: status.into(),
    }
}

/// Hundredths are as fine as a grade gets; it keeps sums stable across machines.
pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Scores every planned cell of a run.
pub fn score(plan: &Plan, outcome: &NotebookOutcome) -> Vec<CellScore> {
    plan.cells
        .iter()
        .map(|planned| {
            let cell = plan.cell(planned);
            let done = outcome.cells.iter().find(|c| c.id == cell.id);
            score_cell(cell, done)
        })
        .collect()
}

/// The most a run of this plan can score.
pub fn max_score(plan: &Plan) -> f64 {
    round(
        plan.cells
            .iter()
            .map(|p| plan.cell(p))
            .filter(|c| !matches!(c.kind, crate::notebook::CellKind::Skipped { .. }))
            .map(worth)
            .sum(),
    )
}

/// The sum of the cells' scores.
pub fn total(scores: &[CellScore]) -> f64 {
    round(scores.iter().map(|s| s.score).sum())
}
