//! `--format junit`: JUnit XML, one test suite per notebook and one test case per cell, as CI
//! systems read it (tests/junit.xsd is the schema the tests validate it against).

use super::Summary;
use super::graded::graded;
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

/// Text as XML 1.0 accepts it: markup escaped, and characters XML cannot hold at all (most
/// control characters) written as `\xNN`.
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// One `<testsuite>` for a notebook's run.
pub fn suite(plan: &Plan, outcome: &NotebookOutcome) -> String {
    let name = xml_text(&outcome.path.display().to_string());
    let cells = graded(plan, outcome);
    let failures = cells.iter().filter(|c| c.failure().is_some()).count();
    let skipped = cells.iter().filter(|c| c.skipped().is_some()).count();
    let mut xml = format!(
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        cells.len(),
        outcome.duration.as_secs_f64()
    );
    for c in &cells {
        xml.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{name}\" time=\"{:.3}\" file=\"{name}\" line=\"{}\"",
            xml_text(&c.cell.id.0),
            c.seconds(),
            c.cell.line
        ));
        if let Some(reason) = c.skipped() {
            xml.push_str(&format!(
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                xml_text(reason)
            ));
        } else if let Some(text) = c.failure() {
            let first = text.lines().next().unwrap_or("failed");
            xml.push_str(&format!(
                ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                xml_text(first),
                xml_text(&c.score.status),
                xml_text(&text)
            ));
        } else {
            xml.push_str("/>\n");
        }
    }
    if let Some(why) = &outcome.aborted {
        xml.push_str(&format!("    <system-err>{}</system-err>\n", xml_text(why)));
    }
    xml.push_str("  </testsuite>\n");
    xml
}

/// The whole document around the suites.
pub fn document(suites: &[String], summary: &Summary) -> String {
    let count = |what: &str| {
        suites
            .iter()
            .filter_map(|s| s.lines().next())
            .filter_map(|l| l.split(&format!(" {what}=\"")).nth(1))
            .filter_map(|rest| rest.split('"').next()?.parse::<usize>().ok())
            .sum::<usize>()
    };
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"labrun\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">\n",
        count("tests"),
        count("failures"),
        count("skipped"),
        summary.elapsed.as_secs_f64()
    );
    suites.iter().for_each(|s| xml.push_str(s));
    xml.push_str("</testsuites>\n");
    xml
}
