//! Recording output as an expectation, for `--update`.
//!
//! An expected line that still matches is kept exactly as written, so `[..]`, `(re)` and
//! `...` survive an update; everything else becomes the literal output line, escaped with
//! `(esc)` when it would otherwise read as a pattern, a transcript step or an exit status, or
//! is not plain text. What is recorded always matches the output it was recorded from.

use super::align::{Step, align};
use super::escape::{encode_esc, is_plain_text};
use super::normalize::Actual;
use super::pattern::{PatternLine, has_modifier, parse_line};

/// What one recorded line comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A previous pattern kept as written, with the lines it took (none for a pattern that
    /// may take zero lines).
    Kept { pattern: usize, lines: Vec<usize> },
    /// An output line written literally.
    Literal(usize),
}

/// The expectation text to record for `actual`, given the previous expectation if any: lines
/// joined by `\n`, no trailing newline. `(no-eol)` marks the last line when the output did
/// not end with a newline. A last line that is empty is written ` (esc)`, since a final empty
/// line would read as the trailing newline [`parse_expected`](super::parse_expected) drops.
pub fn record(actual: &Actual, previous: Option<&[PatternLine]>) -> String {
    let mut entries = match previous {
        Some(patterns) => kept_entries(patterns, actual),
        None => (0..actual.lines.len()).map(Entry::Literal).collect(),
    };
    let patterns = previous.unwrap_or(&[]);
    let unterminated = !actual.ends_with_newline && !actual.lines.is_empty();
    let last_line = actual.lines.len().wrapping_sub(1);
    // The entry holding the output's last line, when it needs a `(no-eol)`.
    let marked = if unterminated {
        split_off_last_line(&mut entries, patterns, last_line)
    } else {
        None
    };

    let mut out: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(k, entry)| {
            let text = match entry {
                Entry::Kept { pattern, .. } => patterns[*pattern].source().to_string(),
                Entry::Literal(line) => literal_line(&actual.lines[*line]),
            };
            if marked == Some(k) {
                format!("{text} (no-eol)")
            } else {
                text
            }
        })
        .collect();
    if let Some(last) = out.last_mut()
        && last.is_empty()
    {
        last.push_str(" (esc)");
    }
    out.join("\n")
}

/// Aligns the previous patterns with the output and turns the alignment into entries.
fn kept_entries(patterns: &[PatternLine], actual: &Actual) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for step in align(patterns, actual).steps {
        match step {
            Step::Matched { pattern, line } => match entries.last_mut() {
                Some(Entry::Kept { pattern: p, lines })
                    if *p == pattern && lines.last() == Some(&(line.wrapping_sub(1))) =>
                {
                    lines.push(line);
                }
                _ => entries.push(Entry::Kept {
                    pattern,
                    lines: vec![line],
                }),
            },
            Step::Skipped { pattern } => entries.push(Entry::Kept {
                pattern,
                lines: Vec::new(),
            }),
            Step::Missing { .. } => {}
            Step::Unexpected { line } => entries.push(Entry::Literal(line)),
        }
    }
    entries
}

/// Makes sure the output's last line is recorded by an entry that can carry `(no-eol)` and
/// returns that entry's index: a literal, or a kept single-line pattern. A multi-line
/// pattern that took the last line gives it up to a literal (and is dropped when it would
/// then take fewer lines than it needs).
fn split_off_last_line(
    entries: &mut Vec<Entry>,
    patterns: &[PatternLine],
    last_line: usize,
) -> Option<usize> {
    let at = entries.iter().position(|e| match e {
        Entry::Literal(line) => *line == last_line,
        Entry::Kept { lines, .. } => lines.contains(&last_line),
    })?;
    let Entry::Kept { pattern, lines } = &mut entries[at] else {
        return Some(at);
    };
    let pattern = &patterns[*pattern];
    if pattern.is_single() {
        return match pattern {
            PatternLine::Line(p) if p.no_eol() => None,
            _ => Some(at),
        };
    }
    lines.pop();
    if lines.len() >= pattern.min_lines() {
        entries.insert(at + 1, Entry::Literal(last_line));
        Some(at + 1)
    } else {
        entries[at] = Entry::Literal(last_line);
        Some(at)
    }
}

/// An output line as an expected line that matches exactly it and reads as nothing else.
fn literal_line(line: &[u8]) -> String {
    if is_plain_text(line) {
        let text = std::str::from_utf8(line).unwrap_or_default();
        if !reads_as_transcript(text) && reads_as_itself(text) {
            return text.to_string();
        }
    }
    format!("{} (esc)", encode_esc(line, &offending_chars(line)))
}

/// True when the line parses as a plain literal of exactly its own text.
fn reads_as_itself(text: &str) -> bool {
    parse_line(text)
        .ok()
        .and_then(|p| p.as_plain_literal().map(|bytes| bytes == text.as_bytes()))
        .unwrap_or(false)
}

/// True when a transcript would read the line as a step (`$ `), a continuation (`> `) or an
/// exit status (`[N]`).
fn reads_as_transcript(text: &str) -> bool {
    text.starts_with("$ ")
        || text == "$"
        || text.starts_with("> ")
        || text == ">"
        || looks_like_exit_status(text)
}

fn looks_like_exit_status(text: &str) -> bool {
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
        })
}

/// Indices of the ASCII characters to write as `\xNN` so the escaped line reads as what it
/// is: the first `.` of `...`, the `[` of `[..]` and of `[N]`, a leading `$` or `>`, and the
/// closing `)` of a trailing modifier.
fn offending_chars(line: &[u8]) -> Vec<usize> {
    let mut force = Vec::new();
    if line == b"..." {
        force.push(0);
    }
    force.extend(
        line.windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"[..]")
            .map(|(i, _)| i),
    );
    let text = String::from_utf8_lossy(line);
    if looks_like_exit_status(&text)
        || line.starts_with(b"$ ")
        || line == b"$"
        || line.starts_with(b"> ")
        || line == b">"
    {
        force.push(0);
    }
    if line.ends_with(b")") && has_modifier(&text) {
        force.push(line.len() - 1);
    }
    force
}

#[cfg(test)]
mod tests {
    use super::super::matcher::compare;
    use super::super::normalize::normalize;
    use super::super::pattern::parse_expected;
    use super::super::test_support::Rng;
    use super::*;

    fn record_raw(raw: &[u8], previous: Option<&str>) -> String {
        let actual = normalize(raw, false);
        let previous = previous.map(|p| parse_expected(p).unwrap());
        record(&actual, previous.as_deref())
    }

    fn assert_round_trip(actual: &Actual, previous: Option<&[PatternLine]>) -> String {
        let text = record(actual, previous);
        assert!(!text.ends_with('\n'), "{text:?}");
        let parsed = parse_expected(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let c = compare(&parsed, actual);
        assert!(
            c.passed,
            "recorded {text:?} does not match {actual:?}: {:?}",
            c.diff
        );
        text
    }

    #[test]
    fn literal_escaping() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain\n", "plain"),
            (b"...\n", "\\x2e.. (esc)"),
            (b"....\n", "...."),
            (b"a [..] b\n", "a \\x5b..] b (esc)"),
            (b"x (re)\n", "x (re\\x29 (esc)"),
            (b"x (glob)\n", "x (glob\\x29 (esc)"),
            (b"x (no-eol)\n", "x (no-eol\\x29 (esc)"),
            (b"x (esc)\n", "x (esc\\x29 (esc)"),
            (b"x (+)\n", "x (+\\x29 (esc)"),
            (b"x (re+)\n", "x (re+\\x29 (esc)"),
            (b"f(x) (y)\n", "f(x) (y)"),
            (b"[1]\n", "\\x5b1] (esc)"),
            (b"[-1]\n", "\\x5b-1] (esc)"),
            (b"[x]\n", "[x]"),
            (b"$ echo\n", "\\x24 echo (esc)"),
            (b"$\n", "\\x24 (esc)"),
            (b"$HOME\n", "$HOME"),
            (b"> more\n", "\\x3e more (esc)"),
            (b"a\tb\n", "a\\tb (esc)"),
            (b"a\\b\n", "a\\b"),
            (b"a\\b\tc\n", "a\\\\b\\tc (esc)"),
            (b"bell\x07\n", "bell\\x07 (esc)"),
            (b"\xff\xfe\n", "\\xff\\xfe (esc)"),
            ("caf\u{e9}\n".as_bytes(), "caf\u{e9}"),
            ("\u{202e}rtl\n".as_bytes(), "\\xe2\\x80\\xaertl (esc)"),
            (b"x\ry\n", "x\\ry (esc)"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                record_raw(raw, None),
                *want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            assert_round_trip(&normalize(raw, false), None);
        }
    }

    #[test]
    fn whole_outputs() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"a\nb\n", "a\nb"),
            (b"a\nb", "a\nb (no-eol)"),
            (b"...", "\\x2e.. (esc) (no-eol)"),
            (b"\n", " (esc)"),
            (b"a\n\n", "a\n (esc)"),
            (b"a\n\nb\n", "a\n\nb"),
            (b"a\r\nb\r\n", "a\nb"),
            (b"\x1b[1mbold\x1b[0m\n", "bold"),
        ];
        for (raw, want) in cases {
            let text = record_raw(raw, None);
            assert_eq!(text, *want, "{raw:?}");
            assert_round_trip(&normalize(raw, false), None);
        }
    }

    #[test]
    fn kept_patterns() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("took [..] ms", b"took 5 ms\n", "took [..] ms"),
            ("v\\d+ (re)\nb", b"v2\nB\n", "v\\d+ (re)\nB"),
            ("head\n...\ntail", b"head\n1\n2\ntail\n", "head\n...\ntail"),
            ("head\n...\ntail", b"head\ntail\n", "head\n...\ntail"),
            // The cheapest alignment lets `...` take the changed last line.
            ("head\n...\ntail", b"head\nx\nTAIL\n", "head\n..."),
            ("\\d (re+)\nend", b"1\n2\nend\n", "\\d (re+)\nend"),
            ("\\d (re*)\nend", b"end\n", "\\d (re*)\nend"),
            ("\\d (re+)\nend", b"x\nend\n", "x\nend"),
            ("gone\nstays", b"stays\n", "stays"),
            ("a\n* (glob)", b"a\nnew\n", "a\n* (glob)"),
            // no-eol on kept lines.
            ("v\\d (re)", b"v1", "v\\d (re) (no-eol)"),
            ("v\\d (re) (no-eol)", b"v1", "v\\d (re) (no-eol)"),
            ("v\\d (re) (no-eol)", b"v1\n", "v1"),
            ("head\n...", b"head\nx\ny", "head\n...\ny (no-eol)"),
            ("\\d (re+)", b"1", "1 (no-eol)"),
            ("\\d (re+)", b"1\n2", "\\d (re+)\n2 (no-eol)"),
            ("\\d (re?)", b"1", "\\d (re?)\n1 (no-eol)"),
            ("a\n...", b"a", "a (no-eol)\n..."),
        ];
        for (previous, raw, want) in cases {
            let text = record_raw(raw, Some(previous));
            assert_eq!(text, *want, "previous {previous:?}, output {raw:?}");
            let parsed = parse_expected(previous).unwrap();
            assert_round_trip(&normalize(raw, false), Some(&parsed));
        }
    }

    #[test]
    fn an_unchanged_expectation_is_recorded_unchanged() {
        let previous = "start\n[..] ms\n...\ncount: \\d+ (re)\n* (glob)\nend";
        let output = b"start\n12 ms\nnoise\nmore noise\ncount: 42\nanything\nend\n";
        assert_eq!(record_raw(output, Some(previous)), previous);
    }

    #[test]
    fn round_trip_tricky_inputs() {
        let cases: &[&[u8]] = &[
            b"",
            b"\n",
            b"\n\n\n",
            b"   \n\t\n",
            b"...\n... (re)\n[..]\n",
            b"\\\n\\\\\n\\x41\n",
            b" (esc)\n (no-eol)\n(no-eol)\n",
            b"x (no-eol) (esc)\n",
            b"\x00\x01\x02\x7f\x1b\n",
            b"\x1b[31mcolour\x1b[0m\n",
            b"\r\r\n\r",
            b"\xc3\n\xe2\x80\n\xf0\x9f\x98\x80\n",
            b"$ \n> \n[0]\n[]\n",
            b"trailing   ",
            b"a (re)",
            b"end (esc)",
            b"   leading\n",
            b"\x0b\x0c\n",
            b"a\\t (esc)\n",
        ];
        for raw in cases {
            for keep_ansi in [false, true] {
                assert_round_trip(&normalize(raw, keep_ansi), None);
            }
        }
    }

    #[test]
    fn round_trip_random_bytes() {
        let mut rng = Rng::new(42);
        for _ in 0..3_000 {
            let raw = rng.bytes(40);
            let actual = normalize(&raw, rng.below(2) == 0);
            assert_round_trip(&actual, None);
        }
    }

    #[test]
    fn round_trip_random_previous() {
        let mut rng = Rng::new(9);
        let pieces: &[&str] = &[
            "a",
            "b",
            "...",
            "[..]",
            "a[..]",
            "\\w (re+)",
            "b (re?)",
            "* (glob*)",
            "a (no-eol)",
            "",
            "x (re) (no-eol)",
            "\\x61 (esc)",
            "a (+)",
        ];
        let words: &[&str] = &["a", "b", "ab", "", "x"];
        for _ in 0..3_000 {
            let previous: Vec<&str> = (0..rng.below(6)).map(|_| *rng.pick(pieces)).collect();
            let patterns = parse_expected(&previous.join("\n")).unwrap();
            let mut out = (0..rng.below(6))
                .map(|_| *rng.pick(words))
                .collect::<Vec<_>>()
                .join("\n");
            if rng.below(2) == 0 {
                out.push('\n');
            }
            let actual = normalize(out.as_bytes(), false);
            assert_round_trip(&actual, Some(&patterns));
        }
    }

    #[test]
    fn hand_built_actual_with_empty_unterminated_line() {
        let actual = Actual {
            lines: vec![b"a".to_vec(), Vec::new()],
            ends_with_newline: false,
        };
        assert_eq!(assert_round_trip(&actual, None), "a\n (no-eol)");
    }
}
