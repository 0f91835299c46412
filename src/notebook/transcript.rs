//! Transcript bodies: `$ ` steps, `> ` continuations, expected output and a trailing `[N]`,
//! as cram and scrut write them, with the exact source bytes of each step's expectation.
//!
//! Works on body lines already separated from the markdown (`blocks.rs`), so it knows nothing
//! of fences, lists or line endings beyond the byte ranges it is given.

use std::ops::Range;

use super::model::{Diagnostic, Span, Step};

/// One line of a fenced block's body.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLine {
    /// The line's content: container prefixes (list indentation, `> `) and line ending removed.
    pub text: String,
    /// 1-based line in the notebook.
    pub line: u32,
    /// 1-based column where `text` starts.
    pub column: u32,
    /// Byte range of the whole source line, prefix and line ending (`\n` or `\r\n`) included.
    pub start: usize,
    pub end: usize,
}

/// One line of a fenced block's body, its text a range of the body's text (so reading a body
/// allocates nothing per line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// Bytes of the body's text holding the line's content (container prefixes and line ending
    /// removed).
    pub text: Range<usize>,
    /// 1-based line in the notebook.
    pub line: u32,
    /// 1-based column where the content starts.
    pub column: u32,
    /// Byte range of the whole source line, prefix and line ending (`\n` or `\r\n`) included.
    pub start: usize,
    pub end: usize,
}

/// The command of a `$ ` line (a lone `$` is an empty command).
fn command_of(text: &str) -> Option<&str> {
    if text == "$" {
        return Some("");
    }
    text.strip_prefix("$ ")
}

/// The continued text of a `> ` line.
fn continuation_of(text: &str) -> Option<&str> {
    if text == ">" {
        return Some("");
    }
    text.strip_prefix("> ")
}

/// Whether `text` is empty or all whitespace: `text.trim().is_empty()`, quick for ASCII.
pub fn is_blank(text: &str) -> bool {
    for &b in text.as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {}
            _ if b.is_ascii() => return false,
            // Unicode spaces are whitespace too: leave them to `trim`.
            _ => return text.trim().is_empty(),
        }
    }
    true
}

/// Whether a shell block's body is written as a transcript: its first non-empty line starts
/// with `$ ` (the workshop's `$ docker images` blocks).
pub fn looks_like_transcript(body: &str) -> bool {
    body.lines()
        .find(|l| !is_blank(l))
        .is_some_and(|l| command_of(l.trim_end_matches('\r')).is_some())
}

/// `[N]` on its own line: the step's expected exit status.
fn exit_line(line: &RawLine, text: &str) -> Result<Option<i32>, Diagnostic> {
    let t = text.trim_end();
    let Some(digits) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return Ok(None);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match digits.parse::<i32>() {
        Ok(n) if n <= 255 => Ok(Some(n)),
        _ => Err(Diagnostic {
            line: line.line,
            column: line.column,
            message: format!("exit status [{digits}] is out of range 0..=255"),
        }),
    }
}

/// Splits a transcript body into steps.
///
/// Blank lines before the first `$ ` and at the end of a step's output are separators, not
/// expected output: authors leave a blank line between steps for readability, and an
/// expectation of trailing empty lines would fail on every command that prints none.
#[cfg(test)]
pub fn parse(lines: &[BodyLine]) -> Result<Vec<Step>, Diagnostic> {
    let mut body = String::new();
    let raw: Vec<RawLine> = lines
        .iter()
        .map(|l| {
            let start = body.len();
            body.push_str(&l.text);
            let text = start..body.len();
            body.push('\n');
            RawLine {
                text,
                line: l.line,
                column: l.column,
                start: l.start,
                end: l.end,
            }
        })
        .collect();
    parse_lines(&body, &raw)
}

/// `parse` on lines whose text is a range of `body`.
pub fn parse_lines(body: &str, lines: &[RawLine]) -> Result<Vec<Step>, Diagnostic> {
    let text = |l: &RawLine| body.get(l.text.clone()).unwrap_or_default();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() && is_blank(text(&lines[i])) {
        i += 1;
    }
    while i < lines.len() {
        let first = &lines[i];
        let Some(command) = command_of(text(first)) else {
            return Err(Diagnostic {
                line: first.line,
                column: first.column,
                message: "transcript output before its first '$ ' command".into(),
            });
        };
        let mut command = command.to_owned();
        i += 1;
        while let Some(more) = lines.get(i).and_then(|l| continuation_of(text(l))) {
            command.push('\n');
            command.push_str(more);
            i += 1;
        }
        let last_command_line = &lines[i - 1];
        let output_start = i;
        while i < lines.len() && command_of(text(&lines[i])).is_none() {
            i += 1;
        }
        let mut output = &lines[output_start..i];
        while let Some((last, rest)) = output.split_last() {
            if !is_blank(text(last)) {
                break;
            }
            output = rest;
        }
        let mut exit = 0;
        let mut exit_span = None;
        if let Some((last, rest)) = output.split_last()
            && let Some(code) = exit_line(last, text(last))?
        {
            exit = code;
            exit_span = Some(Span {
                start: last.start,
                end: last.end,
                line: last.line,
            });
            output = rest;
        }
        let expected_span = match (output.first(), output.last()) {
            (Some(a), Some(b)) => Span {
                start: a.start,
                end: b.end,
                line: a.line,
            },
            _ => Span {
                start: last_command_line.end,
                end: last_command_line.end,
                line: last_command_line.line + 1,
            },
        };
        // The lines joined with `\n`, without a list of them first.
        let mut expected =
            String::with_capacity(output.iter().map(|l| l.text.len() + 1).sum::<usize>());
        for (n, l) in output.iter().enumerate() {
            if n > 0 {
                expected.push('\n');
            }
            expected.push_str(text(l));
        }
        steps.push(Step {
            command,
            line: first.line,
            expected,
            expected_span,
            exit,
            exit_written: exit_span.is_some(),
            exit_span,
        });
    }
    Ok(steps)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Body lines of a plain (unindented) text, as if it started at line 1, byte 0.
    pub(crate) fn lines_of(body: &str) -> Vec<BodyLine> {
        let mut out = Vec::new();
        let mut start = 0;
        for (n, raw) in body.split_inclusive('\n').enumerate() {
            let text = raw.trim_end_matches('\n').trim_end_matches('\r');
            out.push(BodyLine {
                text: text.to_owned(),
                line: n as u32 + 1,
                column: 1,
                start,
                end: start + raw.len(),
            });
            start += raw.len();
        }
        out
    }

    fn steps(body: &str) -> Vec<Step> {
        parse(&lines_of(body)).unwrap_or_else(|e| panic!("{body:?}: {e:?}"))
    }

    #[test]
    fn steps_outputs_and_exit_statuses() {
        // (body, [(command, expected, exit, exit_written)])
        type Case = (&'static str, Vec<(&'static str, &'static str, i32, bool)>);
        let cases: Vec<Case> = vec![
            ("$ echo hi\nhi\n", vec![("echo hi", "hi", 0, false)]),
            ("$ true\n", vec![("true", "", 0, false)]),
            (
                "$ false\n[1]\n$ echo a; echo b\na\nb\n",
                vec![("false", "", 1, true), ("echo a; echo b", "a\nb", 0, false)],
            ),
            (
                "$ cat <<EOF\n> one\n>\n> EOF\none\n\n[0]\n",
                vec![("cat <<EOF\none\n\nEOF", "one\n", 0, true)],
            ),
            (
                "\n\n$ ls\na\n\n\n$ pwd\n/lab\n\n",
                vec![("ls", "a", 0, false), ("pwd", "/lab", 0, false)],
            ),
            (
                "$ grep x f\n[..]x (re)\n...\n[2]\n",
                vec![("grep x f", "[..]x (re)\n...", 2, true)],
            ),
            ("$\n$ x\n", vec![("", "", 0, false), ("x", "", 0, false)]),
            // `[N]` only counts at the end of a step's output, and `> ` only right after a command.
            ("$ x\n[1]\nmore\n", vec![("x", "[1]\nmore", 0, false)]),
            (
                "$ x\nout\n> quoted\n",
                vec![("x", "out\n> quoted", 0, false)],
            ),
            ("$ x\n[1a]\n", vec![("x", "[1a]", 0, false)]),
            ("", vec![]),
            ("\n  \n", vec![]),
        ];
        for (body, want) in cases {
            let got: Vec<(String, String, i32, bool)> = steps(body)
                .into_iter()
                .map(|s| (s.command, s.expected, s.exit, s.exit_written))
                .collect();
            let want: Vec<(String, String, i32, bool)> = want
                .into_iter()
                .map(|(c, e, x, w)| (c.to_owned(), e.to_owned(), x, w))
                .collect();
            assert_eq!(got, want, "{body:?}");
        }
    }

    #[test]
    fn spans_cover_exactly_the_expected_lines() {
        let body = "$ echo a\na\nb\n[3]\n\n$ cat <<X\n> y\n> X\n$ z\n";
        let s = steps(body);
        assert_eq!(
            &body[s[0].expected_span.start..s[0].expected_span.end],
            "a\nb\n"
        );
        assert_eq!(s[0].expected_span.line, 2);
        let exit = s[0].exit_span.unwrap();
        assert_eq!((&body[exit.start..exit.end], exit.line), ("[3]\n", 4));
        // No output: an empty span right after the last continuation line.
        let e = s[1].expected_span;
        assert_eq!(
            (e.start, e.end, e.line),
            (body.find("$ z").unwrap(), body.find("$ z").unwrap(), 9)
        );
        assert_eq!(s[1].line, 6);
        let e = s[2].expected_span;
        assert_eq!((e.start, e.end), (body.len(), body.len()));
    }

    #[test]
    fn crlf_spans_include_the_line_endings() {
        let body = "$ echo a\r\na\r\nb\r\n[1]\r\n$ x\r\n";
        let s = steps(body);
        assert_eq!(s[0].expected, "a\nb");
        let e = s[0].expected_span;
        assert_eq!(&body[e.start..e.end], "a\r\nb\r\n");
        let x = s[0].exit_span.unwrap();
        assert_eq!(&body[x.start..x.end], "[1]\r\n");
    }

    #[test]
    fn errors() {
        let err = parse(&lines_of("\noutput first\n$ x\n")).unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("before its first '$ ' command"));
        let err = parse(&lines_of("$ x\n[300]\n")).unwrap_err();
        assert_eq!((err.line, err.message.contains("out of range")), (2, true));
    }

    #[test]
    fn blank_is_trim_empty() {
        for text in [
            "",
            " ",
            "\t\r\n",
            "\x0b\x0c",
            "a",
            " a ",
            "\u{a0}",
            " \u{2003} ",
            "\u{85}",
            "é",
            " \u{a0}x",
            "\x1c",
            "\x1f",
            "\0",
        ] {
            assert_eq!(is_blank(text), text.trim().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn detects_transcripts() {
        let cases = [
            ("$ docker images\nREPO\n", true),
            ("\n\n$ ls\n", true),
            ("$\n", true),
            ("echo $HOME\n", false),
            ("$HOME/bin/x\n", false),
            ("  $ indented\n", false),
            ("", false),
        ];
        for (body, want) in cases {
            assert_eq!(looks_like_transcript(body), want, "{body:?}");
        }
    }
}
