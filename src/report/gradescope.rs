//! `--format gradescope`: Gradescope's autograder `results.json`, one test per cell with its
//! score, its failure and hint as the output a student sees.

use serde_json::{Value, json};

use super::Summary;
use super::graded::graded;
use crate::grade::score::round;
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

/// The tests of one notebook's run, as a JSON array (text).
pub fn tests(plan: &Plan, outcome: &NotebookOutcome) -> String {
    let tests: Vec<Value> = graded(plan, outcome)
        .iter()
        .filter(|c| c.skipped().is_none())
        .map(|c| {
            json!({
                "name": c.cell.id.0,
                "number": c.cell.line.to_string(),
                "score": c.score.score,
                "max_score": c.score.max_score,
                "status": if c.passed() { "passed" } else { "failed" },
                "output": c.failure().unwrap_or_default(),
                "visibility": "visible",
            })
        })
        .collect();
    Value::Array(tests).to_string()
}

/// The results document over every notebook's tests.
pub fn document(parts: &[String], summary: &Summary) -> String {
    let tests: Vec<Value> = parts
        .iter()
        .filter_map(|p| serde_json::from_str::<Vec<Value>>(p).ok())
        .flatten()
        .collect();
    let sum = |key: &str| round(tests.iter().filter_map(|t| t[key].as_f64()).sum());
    let mut doc = json!({
        "score": sum("score"),
        "max_score": sum("max_score"),
        "execution_time": summary.elapsed.as_secs_f64().round() as u64,
        "tests": tests,
    });
    if !summary.errors.is_empty() {
        doc["output"] = json!(summary.errors.join("\n"));
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
