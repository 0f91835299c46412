//! `--update`: turns outcomes into writes, golden files or in-place edits at recorded spans.
//!
//! Only the bytes of an expectation change; everything else in the notebook stays byte for
//! byte. Cells that failed for any reason but their output (and, in a transcript, their
//! `[N]`) are never recorded. Nothing is written unless `--update` was given.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::check;
use crate::expect::{self, PatternLine};
use crate::notebook::{CellKind, ExpectedSource, LineEnding, Notebook, Span};
use crate::outcome::{NotebookOutcome, Verdict};
use crate::plan::Plan;

/// What an update did to one notebook.
#[derive(Debug, Default)]
pub struct Blessed {
    pub notebook_edits: usize,
    pub golden_files: Vec<PathBuf>,
    /// Cells that could not be recorded, with why (they stay failed).
    pub refused: Vec<(String, String)>,
}

struct Edit {
    span: Span,
    text: String,
}

fn previous(text: &str) -> Option<Vec<PatternLine>> {
    expect::parse_expected(text).ok()
}

/// The recorded expectation for some output, given the old one.
fn recorded(output: &[u8], keep_ansi: bool, old: Option<&str>) -> String {
    let prev = old.and_then(previous);
    expect::record(&expect::normalize(output, keep_ansi), prev.as_deref())
}

/// Lines joined with the notebook's line ending, each indented, each ending in a newline.
fn lines_block(text: &str, prefix: &str, eol: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    text.split('\n')
        .map(|l| format!("{prefix}{l}{eol}"))
        .collect()
}

fn eol(nb: &Notebook) -> &'static str {
    match nb.line_ending {
        LineEnding::Lf => "\n",
        LineEnding::Crlf => "\r\n",
    }
}

/// The end of the line that starts at `at` (after its newline).
fn line_end(src: &str, at: usize) -> usize {
    src[at..].find('\n').map_or(src.len(), |i| at + i + 1)
}

/// A fence long enough that no line of `text` closes it.
fn fence_for(text: &str, fence: &str) -> String {
    let ch = fence.chars().next().unwrap_or('`');
    let longest = text
        .lines()
        .map(|l| l.trim_start().chars().take_while(|&c| c == ch).count())
        .max()
        .unwrap_or(0);
    let len = fence.chars().count().max(longest + 1).max(3);
    std::iter::repeat_n(ch, len).collect()
}

/// A single-line expectation as a double-quoted annotation value: JSON5 and YAML flow
/// mappings read `\\` and `\"` the same way.
fn quote_attribute(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Records what `outcome` saw into `plan`'s notebook and golden files; marks recorded cells
/// as passed in `outcome`.
pub fn bless(plan: &Plan, outcome: &mut NotebookOutcome) -> io::Result<Blessed> {
    let nb = &plan.notebook;
    let src = nb.source.as_str();
    let eol = eol(nb);
    let mut edits: Vec<Edit> = Vec::new();
    let mut done = Blessed::default();
    for (planned, cell_out) in plan.cells.iter().zip(outcome.cells.iter_mut()) {
        let cell = plan.cell(planned);
        let transcript = matches!(planned.kind, CellKind::Transcript { .. });
        if !check::recordable(&cell_out.verdict, transcript) {
            if cell_out.verdict.is_failed() {
                done.refused.push((
                    cell.id.0.clone(),
                    "it failed for a reason other than its output".into(),
                ));
            }
            continue;
        }
        let failed = cell_out.verdict.is_failed();
        let keep_ansi = cell.attrs.keep_ansi;
        match &planned.kind {
            CellKind::Transcript { steps, .. } => {
                for (step, step_out) in steps.iter().zip(&cell_out.steps) {
                    if !step_out.verdict.is_failed() {
                        continue;
                    }
                    let mut text = lines_block(
                        &recorded(&step_out.run.output, keep_ansi, Some(&step.expected)),
                        &cell.prefix,
                        eol,
                    );
                    let code = step_out.run.status.code();
                    if code != 0 {
                        text.push_str(&format!("{}[{code}]{eol}", cell.prefix));
                    }
                    let mut span = step.expected_span;
                    if let Some(exit) = step.exit_span {
                        span.end = exit.end;
                    }
                    edits.push(Edit { span, text });
                }
            }
            CellKind::Command { .. } | CellKind::Script { .. } => {
                let Some(run) = cell_out.steps.first().map(|s| &s.run) else {
                    continue;
                };
                let output = check::compared_output(run, &cell.attrs);
                match planned
                    .expected
                    .as_ref()
                    .map(|e| (&e.source, e.text.as_str()))
                {
                    Some((
                        ExpectedSource::OutputBlock {
                            block,
                            body,
                            fence,
                            prefix,
                            ..
                        },
                        old,
                    )) => {
                        if !failed {
                            continue;
                        }
                        let new = recorded(output, keep_ansi, Some(old));
                        let need = fence_for(&new, fence);
                        if need == *fence {
                            edits.push(Edit {
                                span: *body,
                                text: lines_block(&new, prefix, eol),
                            });
                        } else {
                            // Lengthen both fences; keep the info string as written. The
                            // block runs from the opening fence's first character to the
                            // closing fence's last.
                            let open_end = line_end(src, block.start);
                            let info = src[block.start..open_end]
                                .trim_start_matches(fence.chars().next().unwrap_or('`'))
                                .trim_end_matches(['\r', '\n']);
                            let text = format!(
                                "{need}{info}{eol}{}{prefix}{need}",
                                lines_block(&new, prefix, eol)
                            );
                            let span = *block;
                            edits.push(Edit { span, text });
                        }
                    }
                    Some((ExpectedSource::Attribute, old)) => {
                        if !failed {
                            continue;
                        }
                        let new = recorded(output, keep_ansi, Some(old));
                        let value = planned.expected.as_ref().and_then(|e| e.attribute_value);
                        match value {
                            Some(span) if !new.contains('\n') => {
                                edits.push(Edit {
                                    span,
                                    text: quote_attribute(&new),
                                });
                            }
                            _ => done.refused.push((
                                cell.id.0.clone(),
                                "its new output does not fit a single-line expect: (move it into an output block)".into(),
                            )),
                        }
                    }
                    Some((ExpectedSource::Golden(path), old)) => {
                        if failed {
                            write_golden(path, &recorded(output, keep_ansi, Some(old)))?;
                            done.golden_files.push(path.clone());
                        }
                    }
                    None => {
                        if cell.attrs.record {
                            write_golden(&planned.golden_path, &recorded(output, keep_ansi, None))?;
                            done.golden_files.push(planned.golden_path.clone());
                        }
                    }
                }
            }
            _ => {}
        }
        if failed {
            cell_out.verdict = Verdict::Passed;
            for s in &mut cell_out.steps {
                s.verdict = Verdict::Passed;
            }
        }
    }
    if !edits.is_empty() {
        done.notebook_edits = edits.len();
        edits.sort_by_key(|e| std::cmp::Reverse(e.span.start));
        let mut text = nb.source.clone();
        for e in &edits {
            text.replace_range(e.span.start..e.span.end, &e.text);
        }
        write_atomically(&nb.path, text.as_bytes())?;
    }
    Ok(done)
}

fn write_golden(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    let mut body = text.to_string();
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomically(path, body.as_bytes())
}

/// Writes through a temporary file and a rename, so a crash never leaves half a notebook.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.labrun-update"));
    let result = (|| {
        fs::write(&tmp, bytes)?;
        if let Ok(meta) = fs::metadata(path) {
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("failed to write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_grow_past_their_content() {
        assert_eq!(fence_for("plain", "```"), "```");
        assert_eq!(fence_for("```\nx", "```"), "````");
        assert_eq!(fence_for("~~~~~", "~~~"), "~~~~~~");
    }

    #[test]
    fn attribute_values_are_quoted() {
        assert_eq!(quote_attribute("it's"), r#""it's""#);
        assert_eq!(quote_attribute(r#"a\b "c""#), r#""a\\b \"c\"""#);
    }

    #[test]
    fn blocks_of_lines() {
        assert_eq!(lines_block("a\nb", "  ", "\r\n"), "  a\r\n  b\r\n");
        assert_eq!(lines_block("", "", "\n"), "");
    }
}
