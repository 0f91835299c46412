//! Normalisation of a cell's raw output into the lines the matcher compares.
//!
//! CRLF becomes LF, terminal escape sequences go (unless the cell keeps them), trailing white
//! space of every line goes. Nothing here decides whether output is right.

use std::borrow::Cow;

/// A cell's output after normalisation: the lines the matcher sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actual {
    /// The lines without their `\n`, trailing white space removed.
    pub lines: Vec<Vec<u8>>,
    /// True when the last line was terminated by a newline (false for empty output: there is
    /// no last line).
    pub ends_with_newline: bool,
}

impl Actual {
    /// True when `index` is the last line and the output did not end with a newline: the only
    /// line a `(no-eol)` expectation can match.
    pub fn is_unterminated_last(&self, index: usize) -> bool {
        !self.ends_with_newline && index + 1 == self.lines.len()
    }
}

/// Normalises raw output: `\r\n` to `\n` (any other `\r` is kept), ANSI escape sequences
/// removed unless `keep_ansi`, split into lines, trailing white space of each line removed.
///
/// Besides CSI (`ESC [ ... final`) and OSC/DCS/APC/PM/SOS strings (ended by BEL or `ESC \`),
/// the short ECMA-48 escapes (`ESC ( B`, `ESC 7`, `ESC =`) go too: `tput sgr0` prints
/// `ESC ( B ESC [ m`. A malformed or unterminated sequence is kept byte for byte so it shows,
/// escaped, in a diff rather than silently eating output.
///
/// A last line without a newline that is only white space is dropped, and the output then
/// counts as ending with a newline: it is trailing white space of the whole output.
pub fn normalize(raw: &[u8], keep_ansi: bool) -> Actual {
    let text: Cow<'_, [u8]> = if keep_ansi {
        Cow::Borrowed(raw)
    } else {
        strip_escape_sequences(raw)
    };
    let mut lines = Vec::new();
    let mut ends_with_newline = false;
    let mut rest: &[u8] = &text;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                lines.push(trim_trailing_ws(&rest[..end]).to_vec());
                ends_with_newline = true;
                rest = &rest[end + 1..];
            }
            None => {
                let last = trim_trailing_ws(rest);
                if !last.is_empty() {
                    lines.push(last.to_vec());
                    ends_with_newline = false;
                }
                rest = &[];
            }
        }
    }
    Actual {
        ends_with_newline: ends_with_newline && !lines.is_empty(),
        lines,
    }
}

/// The white space ignored at the end of a line, on both the expected and the actual side.
/// `\r` is included, so the `\r` of a CRLF pair goes with it.
pub(crate) fn is_trailing_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

pub(crate) fn trim_trailing_ws(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| !is_trailing_ws(b))
        .map_or(0, |p| p + 1);
    &line[..end]
}

pub(crate) fn trim_trailing_ws_str(line: &str) -> &str {
    line.trim_end_matches(|c: char| c.is_ascii() && is_trailing_ws(c as u8))
}

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// Removes terminal escape sequences, keeping everything else byte for byte.
fn strip_escape_sequences(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&ESC) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == ESC
            && let Some(len) = escape_sequence_len(&raw[i..])
        {
            i += len;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// The length of the well-formed escape sequence at the start of `s` (which starts with ESC),
/// or `None` when it is not one.
fn escape_sequence_len(s: &[u8]) -> Option<usize> {
    match *s.get(1)? {
        // CSI: parameter bytes, intermediate bytes, one final byte.
        b'[' => {
            let mut i = 2;
            while matches!(s.get(i)?, 0x30..=0x3f) {
                i += 1;
            }
            while matches!(s.get(i)?, 0x20..=0x2f) {
                i += 1;
            }
            matches!(s[i], 0x40..=0x7e).then_some(i + 1)
        }
        // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (`ESC \`), never by a newline.
        b']' | b'P' | b'X' | b'^' | b'_' => {
            let mut i = 2;
            loop {
                match *s.get(i)? {
                    BEL => return Some(i + 1),
                    ESC if s.get(i + 1) == Some(&b'\\') => return Some(i + 2),
                    b'\n' | ESC => return None,
                    _ => i += 1,
                }
            }
        }
        // nF escapes such as `ESC ( B`: intermediate bytes, then a final byte.
        0x20..=0x2f => {
            let mut i = 1;
            while matches!(s.get(i)?, 0x20..=0x2f) {
                i += 1;
            }
            matches!(s[i], 0x30..=0x7e).then_some(i + 1)
        }
        // Two-byte escapes: `ESC 7`, `ESC =`, `ESC M`, `ESC c`.
        0x30..=0x7e => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(a: &Actual) -> Vec<&str> {
        a.lines
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_and_strips() {
        let cases: &[(&[u8], bool, &[&str], bool)] = &[
            (b"", false, &[], false),
            (b"\n", false, &[""], true),
            (b"a", false, &["a"], false),
            (b"a\n", false, &["a"], true),
            (b"a\nb", false, &["a", "b"], false),
            (b"a\r\nb\r\n", false, &["a", "b"], true),
            (b"a  \t\nb \n", false, &["a", "b"], true),
            (b"a\n\n", false, &["a", ""], true),
            (b"a\n   ", false, &["a"], true),
            (b"   ", false, &[], false),
            (b"x\ry\n", false, &["x\ry"], true),
            (b"\x1b[1;31mred\x1b[0m\n", false, &["red"], true),
            (
                b"\x1b[1;31mred\x1b[0m\n",
                true,
                &["\x1b[1;31mred\x1b[0m"],
                true,
            ),
            (b"\x1b]0;title\x07hi\n", false, &["hi"], true),
            (
                b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n",
                false,
                &["link"],
                true,
            ),
            (b"\x1b(B\x1b[mplain\n", false, &["plain"], true),
            (b"a\x1b[?25lb\n", false, &["ab"], true),
            (b"progress\r\x1b[Kdone\n", false, &["progress\rdone"], true),
        ];
        for (raw, keep, want, eol) in cases {
            let a = normalize(raw, *keep);
            assert_eq!(lines(&a), *want, "input {:?}", String::from_utf8_lossy(raw));
            assert_eq!(a.ends_with_newline, *eol, "input {raw:?}");
        }
    }

    #[test]
    fn malformed_escapes_are_kept() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"\x1b", b"\x1b"),
            (b"a\x1b[", b"a\x1b["),
            (b"\x1b[31\x01m", b"\x1b[31\x01m"),
            (b"\x1b]0;no end", b"\x1b]0;no end"),
            (b"\x1b\x01", b"\x1b\x01"),
        ];
        for (raw, want) in cases {
            let a = normalize(raw, false);
            assert_eq!(a.lines, vec![want.to_vec()], "input {raw:?}");
        }
        // An OSC never runs across a newline.
        let a = normalize(b"\x1b]0;a\nb\x07\n", false);
        assert_eq!(a.lines, vec![b"\x1b]0;a".to_vec(), b"b\x07".to_vec()]);
    }

    #[test]
    fn unterminated_last_line() {
        let a = normalize(b"a\nb", false);
        assert!(!a.is_unterminated_last(0));
        assert!(a.is_unterminated_last(1));
        let a = normalize(b"a\nb\n", false);
        assert!(!a.is_unterminated_last(1));
    }

    #[test]
    fn invalid_utf8_survives() {
        let a = normalize(b"\xff\xfe ok\n", false);
        assert_eq!(a.lines, vec![b"\xff\xfe ok".to_vec()]);
    }
}
