//! `--format csv`: one row per cell of every notebook, with its status and score.

use super::Summary;
use super::graded::graded;
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One CSV record, ended with CRLF as RFC 4180 has it.
pub fn record<S: AsRef<str>>(fields: &[S]) -> String {
    let cells: Vec<String> = fields.iter().map(|f| field(f.as_ref())).collect();
    format!("{}\r\n", cells.join(","))
}

pub fn rows(plan: &Plan, outcome: &NotebookOutcome) -> String {
    let path = outcome.path.display().to_string();
    graded(plan, outcome)
        .iter()
        .map(|c| {
            record(&[
                path.clone(),
                c.cell.id.0.clone(),
                c.cell.line.to_string(),
                c.score.status.clone(),
                c.score.score.to_string(),
                c.score.max_score.to_string(),
            ])
        })
        .collect()
}

pub fn document(parts: &[String], _summary: &Summary) -> String {
    let mut text = record(&["notebook", "cell", "line", "status", "score", "max_score"]);
    parts.iter().for_each(|p| text.push_str(p));
    text
}
