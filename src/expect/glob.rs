//! Whole-line wildcard matching: `(glob)` lines and the `[..]` elision of plain lines.
//!
//! `*` (and `[..]`) match any run of characters, `?` exactly one character (an invalid UTF-8
//! byte counts as one), everything else is literal. Matching is the classic greedy algorithm
//! with one remembered star: no recursion, never exponential.

/// A compiled wildcard line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// The pattern one byte at a time; used when no `?` occurs or the line is ASCII.
    bytes: Vec<Token<u8>>,
    /// The pattern one character at a time; used for `?` against a non-ASCII line.
    chars: Vec<Token<u32>>,
    has_one: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<T> {
    Lit(T),
    One,
    Star,
}

/// A piece of a wildcard line before compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Char(char),
    One,
    Star,
}

impl Glob {
    /// Compiles a `(glob)` text: `*` any run, `?` one character, `\*`, `\?` and `\\` the
    /// character itself, any other character (a lone backslash included) literal.
    pub fn from_glob(text: &str) -> Glob {
        let mut pieces = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => pieces.push(Piece::Star),
                '?' => pieces.push(Piece::One),
                '\\' => match chars.peek() {
                    Some(&next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        pieces.push(Piece::Char(next));
                    }
                    _ => pieces.push(Piece::Char('\\')),
                },
                c => pieces.push(Piece::Char(c)),
            }
        }
        Glob::compile(&pieces)
    }

    /// Compiles a plain line in which `[..]` stands for any run of characters.
    pub fn from_elided(text: &str) -> Glob {
        let mut pieces = Vec::new();
        for (n, part) in text.split("[..]").enumerate() {
            if n > 0 {
                pieces.push(Piece::Star);
            }
            pieces.push(Piece::Text(part));
        }
        Glob::compile(&pieces)
    }

    fn compile(pieces: &[Piece<'_>]) -> Glob {
        let mut bytes = Vec::new();
        let mut chars = Vec::new();
        let mut has_one = false;
        let push_char = |c: char, bytes: &mut Vec<Token<u8>>, chars: &mut Vec<Token<u32>>| {
            let mut buf = [0u8; 4];
            bytes.extend(c.encode_utf8(&mut buf).bytes().map(Token::Lit));
            chars.push(Token::Lit(c as u32));
        };
        for piece in pieces {
            match piece {
                Piece::Text(t) => t.chars().for_each(|c| push_char(c, &mut bytes, &mut chars)),
                Piece::Char(c) => push_char(*c, &mut bytes, &mut chars),
                Piece::One => {
                    has_one = true;
                    bytes.push(Token::One);
                    chars.push(Token::One);
                }
                // Consecutive stars are one star.
                Piece::Star if bytes.last() == Some(&Token::Star) => {}
                Piece::Star => {
                    bytes.push(Token::Star);
                    chars.push(Token::Star);
                }
            }
        }
        Glob {
            bytes,
            chars,
            has_one,
        }
    }

    /// A byte regex (anchored) that matches every line this glob matches, and perhaps more:
    /// `?` becomes one to four bytes. Used to filter many lines at once; a line it matches
    /// must still be checked with [`Glob::matches`].
    pub(crate) fn superset_regex(&self) -> String {
        let mut re = String::from(r"\A(?s-u:");
        for token in &self.bytes {
            match token {
                Token::Lit(b) if b.is_ascii_alphanumeric() => re.push(char::from(*b)),
                Token::Lit(b) => re.push_str(&format!(r"\x{b:02x}")),
                Token::One => re.push_str(".{1,4}"),
                Token::Star => re.push_str(".*"),
            }
        }
        re.push_str(r")\z");
        re
    }

    /// True when the whole of `line` matches.
    pub fn matches(&self, line: &[u8]) -> bool {
        if !self.has_one || line.is_ascii() {
            return wildmatch(&self.bytes, line);
        }
        let units: Vec<u32> = line
            .utf8_chunks()
            .flat_map(|chunk| {
                let valid = chunk.valid().chars().map(|c| c as u32);
                // An invalid byte is one unit of its own, distinct from every character.
                let invalid = chunk.invalid().iter().map(|&b| 0x11_0000 + u32::from(b));
                valid.chain(invalid)
            })
            .collect();
        wildmatch(&self.chars, &units)
    }
}

/// Greedy wildcard matching with backtracking to the last star only, which is enough: a later
/// star can absorb anything an earlier one could. O(pattern x text) at worst.
fn wildmatch<T: Copy + Eq>(pattern: &[Token<T>], text: &[T]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Star) => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Token::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((after, from)) => {
                star = Some((after, from + 1));
                p = after;
                t = from + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|tok| *tok == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("abc", b"abc", true),
            ("abc", b"abcd", false),
            ("a*", b"a", true),
            ("a*", b"abc", true),
            ("*c", b"abc", true),
            ("*c", b"abd", false),
            ("a*b*c", b"a-b-b-c", true),
            ("a*b*c", b"a-c-b", false),
            ("?", b"x", true),
            ("?", b"", false),
            ("?", b"xy", false),
            ("??", "\u{e9}".as_bytes(), false),
            ("?", "\u{e9}".as_bytes(), true),
            ("*??", "\u{20ac}".as_bytes(), false),
            ("*??", "a\u{20ac}".as_bytes(), true),
            ("?", b"\xff", true),
            ("??", b"\xff", false),
            ("caf?", "caf\u{e9}".as_bytes(), true),
            ("\\*", b"*", true),
            ("\\*", b"x", false),
            ("\\?x", b"?x", true),
            ("\\\\", b"\\", true),
            ("a\\b", b"a\\b", true),
            ("", b"", true),
            ("", b"x", false),
            ("*", b"", true),
            ("**", b"anything \xff at all", true),
            ("*x*", b"\xffx\xfe", true),
            ("size: * bytes", b"size: 1024 bytes", true),
        ];
        for (pat, line, want) in cases {
            assert_eq!(
                Glob::from_glob(pat).matches(line),
                *want,
                "{pat:?} against {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn elided_table() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("took [..] ms", b"took 12 ms", true),
            ("took [..] ms", b"took  ms", true),
            ("took [..] ms", b"took 12 s", false),
            ("[..]", b"", true),
            ("[..]", b"anything", true),
            ("a[..]b[..]c", b"aXbYc", true),
            ("a[..]b[..]c", b"acb", false),
            // `*` and `?` are literal in a plain line.
            ("a*? [..]", b"a*? x", true),
            ("a*? [..]", b"ab? x", false),
            ("[.]", b"[.]", true),
            ("[...]", b"[...]", true),
        ];
        for (pat, line, want) in cases {
            assert_eq!(
                Glob::from_elided(pat).matches(line),
                *want,
                "{pat:?} against {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn superset_regex_covers_every_match() {
        let cases: &[(&str, bool)] = &[
            ("a*b?c", false),
            ("caf? [..]", true),
            ("\\* (x) . + ^ $ | { } [ ]", false),
            ("\u{e9}*\u{ff}", false),
            ("", false),
        ];
        let lines: &[&[u8]] = &[
            b"ab-c",
            b"abxc",
            "caf\u{e9} [..]".as_bytes(),
            "caf\u{e9} x".as_bytes(),
            b"* (x) . + ^ $ | { } [ ]",
            b"\xffx",
            b"",
        ];
        for (pat, elided) in cases {
            let glob = if *elided {
                Glob::from_elided(pat)
            } else {
                Glob::from_glob(pat)
            };
            let re = regex::bytes::Regex::new(&glob.superset_regex()).unwrap();
            for line in lines {
                if glob.matches(line) {
                    assert!(
                        re.is_match(line),
                        "{pat:?} {line:?} {}",
                        glob.superset_regex()
                    );
                }
            }
        }
        let exact = regex::bytes::Regex::new(&Glob::from_elided("a [..] b").superset_regex());
        assert!(exact.unwrap().is_match(b"a \xff b"));
    }

    #[test]
    fn long_lines_are_not_exponential() {
        let line = vec![b'a'; 20_000];
        let glob = Glob::from_glob("*a*a*a*a*a*a*a*a*b");
        let start = std::time::Instant::now();
        assert!(!glob.matches(&line));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
