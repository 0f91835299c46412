//! `--format html`: the notebook itself rendered (comrak), each cell in place marked passed or
//! failed with its score, its diff and its hint. A hidden cell shows neither its body nor its
//! expected output. Raw HTML in the notebook is not passed through.

use comrak::{Options, markdown_to_html};

use super::Summary;
use super::graded::{GradedCell, graded};
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto}\
.cell{border-left:.4rem solid #999;padding:.2rem .8rem;margin:1rem 0}\
.cell.passed{border-color:#2da44e}.cell.failed,.cell.partial,.cell.not-run{border-color:#cf222e}\
.cell header{font-weight:bold}.del{color:#cf222e}.ins{color:#1a7f37}.hint{font-style:italic}";

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn prose(markdown: &str, first: bool) -> String {
    let mut options = Options::default();
    options.extension.table = true;
    options.extension.strikethrough = true;
    options.extension.tasklist = true;
    if first {
        options.extension.front_matter_delimiter = Some("---".into());
    }
    markdown_to_html(markdown, &options)
}

/// A failure's text with the diff's removed and added lines marked.
fn failure_html(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let class = match l.as_bytes().first() {
                Some(b'-') if !l.starts_with("---") => "del",
                Some(b'+') if !l.starts_with("+++") => "ins",
                _ => "",
            };
            if class.is_empty() {
                escape(l)
            } else {
                format!("<span class=\"{class}\">{}</span>", escape(l))
            }
        })
        .collect();
    format!("<pre class=\"failure\">{}</pre>\n", lines.join("\n"))
}

fn cell_html(c: &GradedCell, source: &str) -> String {
    let status = c.score.status.replace(' ', "-");
    let mut html = format!(
        "<section class=\"cell {status}\" id=\"cell-{id}\">\n<header>{id}: {} ({} / {} points)</header>\n",
        escape(&c.score.status),
        c.score.score,
        c.score.max_score,
        id = escape(&c.cell.id.0),
    );
    if c.hidden() {
        html.push_str("<p>A hidden test.</p>\n");
    } else {
        let body = source.get(c.cell.body.start..c.cell.body.end).unwrap_or("");
        html.push_str(&format!("<pre><code>{}</code></pre>\n", escape(body)));
    }
    if let Some(reason) = c.skipped() {
        html.push_str(&format!("<p>skipped: {}</p>\n", escape(reason)));
    }
    if let Some(text) = c.failure() {
        let (diff, hint) = match text.rfind("hint: ") {
            Some(at) if c.cell.attrs.hint.is_some() => (&text[..at], Some(&text[at + 6..])),
            _ => (text.as_str(), None),
        };
        html.push_str(&failure_html(diff));
        if let Some(hint) = hint {
            html.push_str(&format!(
                "<p class=\"hint\">Hint: {}</p>\n",
                escape(hint.trim())
            ));
        }
    }
    html.push_str("</section>\n");
    html
}

/// One notebook's report: its prose rendered, its cells replaced by their results.
pub fn notebook(plan: &Plan, outcome: &NotebookOutcome) -> String {
    let source = &plan.notebook.source;
    let mut cells = graded(plan, outcome);
    cells.sort_by_key(|c| c.cell.block.start);
    let total: f64 = cells.iter().map(|c| c.score.score).sum();
    let max: f64 = cells.iter().map(|c| c.score.max_score).sum();
    let mut html = format!(
        "<article>\n<h1 class=\"report\">{}: {} / {} points</h1>\n",
        escape(&outcome.path.display().to_string()),
        crate::grade::score::round(total),
        crate::grade::score::round(max)
    );
    if let Some(why) = &outcome.aborted {
        html.push_str(&format!("<p class=\"aborted\">{}</p>\n", escape(why)));
    }
    let mut at = 0;
    for c in &cells {
        let start = c.cell.block.start.max(at);
        html.push_str(&prose(source.get(at..start).unwrap_or(""), at == 0));
        html.push_str(&cell_html(c, source));
        at = c.cell.block.end.max(at);
    }
    html.push_str(&prose(source.get(at..).unwrap_or(""), at == 0));
    html.push_str("</article>\n");
    html
}

pub fn document(parts: &[String], _summary: &Summary) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>labrun report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
        parts.concat()
    )
}
