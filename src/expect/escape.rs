//! Escaping of cell output: for showing it to a reader, and the `(esc)` line syntax.
//!
//! Nothing a cell prints may reach the reader's terminal raw: control characters, invalid
//! UTF-8 and characters that reorder or hide text are shown as escapes. The `(esc)` encoder
//! and decoder are exact inverses, which `--update` relies on.

use std::fmt::Write as _;

/// Escapes a line of cell output for display: `\t`, `\r`, `\n`, `\xNN` for the other C0
/// controls, DEL and bytes that are not UTF-8, `\u{NN}` for C1 controls and for characters
/// that reorder or hide text (bidi controls, zero-width characters). Everything else,
/// backslashes included, is shown as is.
pub fn display_line(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if is_hidden_char(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Characters that are not ASCII controls but still must not be shown raw: C1 controls, and
/// format characters that reorder or hide text (the "Trojan Source" set).
pub(crate) fn is_hidden_char(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}'
    )
}

/// True when `line` can be written as is in an expectation: valid UTF-8 with no control
/// characters (tab included) and nothing hidden.
pub(crate) fn is_plain_text(line: &[u8]) -> bool {
    match std::str::from_utf8(line) {
        Ok(s) => !s.chars().any(|c| c.is_control() || is_hidden_char(c)),
        Err(_) => false,
    }
}

/// Decodes the text of an `(esc)` line: `\\`, `\t`, `\n`, `\r` and `\xNN`.
pub(crate) fn decode_esc(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let hex = bytes
                    .get(i + 2..i + 4)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .map(|h| hex_value(h[0]) << 4 | hex_value(h[1]));
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 4;
                        continue;
                    }
                    None => {
                        return Err(format!(
                            "invalid escape at byte {}: \\x needs two hex digits",
                            i + 1
                        ));
                    }
                }
            }
            Some(_) => {
                let c = text[i + 1..].chars().next().unwrap_or('?');
                return Err(format!(
                    "invalid escape \\{} at byte {} (use \\\\, \\t, \\n, \\r or \\xNN)",
                    display_line(c.to_string().as_bytes()),
                    i + 1
                ));
            }
            None => return Err("a lone backslash ends the line (write \\\\)".to_string()),
        }
        i += 2;
    }
    Ok(out)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// Encodes `line` as the text of an `(esc)` line so that [`decode_esc`] gives it back
/// exactly. Backslashes, tabs, `\r`, control characters, hidden characters and bytes that are
/// not UTF-8 are escaped, as is every byte at an index in `force` (an ASCII character that
/// would otherwise make the line read as a pattern).
pub(crate) fn encode_esc(line: &[u8], force: &[usize]) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut offset = 0;
    for chunk in line.utf8_chunks() {
        let valid = chunk.valid();
        for (at, c) in valid.char_indices() {
            let index = offset + at;
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || is_hidden_char(c) || force.contains(&index) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        offset += valid.len();
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
        offset += chunk.invalid().len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_hostile_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain text", "plain text"),
            (b"tab\there", "tab\\there"),
            (b"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
            (b"cr\rlf\n", "cr\\rlf\\n"),
            (b"nul\x00del\x7f", "nul\\x00del\\x7f"),
            (b"bad \xff\xfe utf8", "bad \\xff\\xfe utf8"),
            (b"\xe2\x80\xae reversed", "\\u{202e} reversed"),
            ("c1 \u{9b}".as_bytes(), "c1 \\u{9b}"),
            ("caf\u{e9} ok".as_bytes(), "caf\u{e9} ok"),
            (b"back\\slash", "back\\slash"),
            (b"\x07bell", "\\x07bell"),
        ];
        for (raw, want) in cases {
            let shown = display_line(raw);
            assert_eq!(shown, *want);
            assert!(!shown.contains('\x1b'));
            assert!(!shown.chars().any(|c| c.is_control()));
        }
    }

    #[test]
    fn decode_forms() {
        let cases: &[(&str, &[u8])] = &[
            ("plain", b"plain"),
            ("a\\tb", b"a\tb"),
            ("\\x1b[0m", b"\x1b[0m"),
            ("\\xFF\\x00", b"\xff\x00"),
            ("\\\\x41", b"\\x41"),
            ("\\r\\n", b"\r\n"),
            ("caf\u{e9}", "caf\u{e9}".as_bytes()),
        ];
        for (text, want) in cases {
            assert_eq!(decode_esc(text).unwrap(), want.to_vec(), "{text}");
        }
    }

    #[test]
    fn decode_errors() {
        for bad in [
            "\\q",
            "\\x4",
            "\\x+1",
            "\\xzz",
            "end\\",
            "\\x\u{e9}\u{e9}",
            "\\\u{e9}",
        ] {
            let err = decode_esc(bad).unwrap_err();
            assert!(
                err.contains("escape") || err.contains("backslash"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn encode_round_trips() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain",
            b"\\x41 not an escape",
            b"\t\r\x00\x1b\x7f",
            b"\xff\xc3(",
            "\u{202e}\u{85}\u{e9}".as_bytes(),
            b"trailing backslash \\",
        ];
        for line in cases {
            let text = encode_esc(line, &[]);
            assert_eq!(decode_esc(&text).unwrap(), line.to_vec(), "{text}");
            assert!(!text.chars().any(|c| c.is_control() || is_hidden_char(c)));
        }
        assert_eq!(encode_esc(b"...", &[0]), "\\x2e..");
        assert_eq!(encode_esc(b"a\tb", &[]), "a\\tb");
    }

    #[test]
    fn plain_text() {
        assert!(is_plain_text(b"hello [..] (re)"));
        assert!(is_plain_text("caf\u{e9}".as_bytes()));
        assert!(!is_plain_text(b"a\tb"));
        assert!(!is_plain_text(b"\xff"));
        assert!(!is_plain_text("\u{200b}".as_bytes()));
    }
}
