//! `--format tap`: TAP version 14, one test point per cell, the failure in a YAML block.

use super::Summary;
use super::graded::graded;
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

/// A notebook's test points, numbered later: each line starts with `ok`/`not ok`.
pub fn points(plan: &Plan, outcome: &NotebookOutcome) -> String {
    let path = outcome.path.display().to_string();
    let mut text = String::new();
    for c in graded(plan, outcome) {
        let name = format!("{path} {}", c.cell.id);
        let name = name.replace('#', "\\#");
        if let Some(reason) = c.skipped() {
            text.push_str(&format!("ok - {name} # SKIP {}\n", one_line(reason)));
        } else if let Some(why) = c.failure() {
            text.push_str(&format!(
                "not ok - {name}\n  ---\n  line: {}\n",
                c.cell.line
            ));
            text.push_str(&format!(
                "  score: {}\n  max_score: {}\n",
                c.score.score, c.score.max_score
            ));
            text.push_str("  message: |\n");
            why.lines()
                .for_each(|l| text.push_str(&format!("    {}\n", one_line(l))));
            text.push_str("  ...\n");
        } else {
            text.push_str(&format!("ok - {name}\n"));
        }
    }
    text
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Numbers the points of every notebook and puts the plan in front.
pub fn document(parts: &[String], _summary: &Summary) -> String {
    let mut body = String::new();
    let mut n = 0;
    for line in parts.iter().flat_map(|p| p.lines()) {
        let numbered = ["ok - ", "not ok - "].iter().find_map(|lead| {
            line.strip_prefix(lead).map(|rest| {
                n += 1;
                format!("{}{n} - {rest}", &lead[..lead.len() - 2])
            })
        });
        body.push_str(&numbered.unwrap_or_else(|| line.to_string()));
        body.push('\n');
    }
    format!("TAP version 14\n1..{n}\n{body}")
}
