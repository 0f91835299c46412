//! Expected-output lines: the cram/scrut line syntax, parsed and compiled once.
//!
//! A line is text, optionally followed by one space and a modifier in parentheses at its very
//! end: a kind (`equal`/`eq`, `escaped`/`esc`, `glob`/`gl`, `regex`/`re`, `no-eol`), a
//! quantifier (`?`, `*`, `+`) or both (`(re+)`). `(no-eol)` may also follow another modifier
//! (`x (esc) (no-eol)`) or precede it, as cram writes it (`x (no-eol) (esc)`). A line that
//! is exactly `...` matches any number of lines. Parsing never looks at output.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

use super::escape::decode_esc;
use super::glob::Glob;
use super::normalize::{trim_trailing_ws, trim_trailing_ws_str};

/// One expected line, compiled.
#[derive(Debug, Clone)]
pub enum PatternLine {
    /// A line that is exactly `...`: any number of lines, zero included.
    AnyLines,
    /// One line, or a run of lines when quantified.
    Line(LinePattern),
}

/// A line other than `...`: how it matches one output line, how many lines it may take, and
/// the text it was written as (which `--update` keeps and a diff shows).
#[derive(Debug, Clone)]
pub struct LinePattern {
    source: String,
    rule: Rule,
    repeat: Repeat,
    no_eol: bool,
}

/// How a line pattern matches one output line.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Equal bytes: a plain line, `(equal)`, or an `(esc)` line after decoding. Trailing
    /// white space is not part of it.
    Literal(Vec<u8>),
    /// A plain line containing `[..]`.
    Elided(Glob),
    /// `(glob)`: `*` and `?` over the whole line.
    Glob(Glob),
    /// `(re)`/`(regex)`: anchored at both ends.
    Regex(Regex),
}

/// How many consecutive output lines a line pattern takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Exactly one (no quantifier).
    One,
    /// `?`: zero or one.
    Optional,
    /// `*`: zero or more.
    Any,
    /// `+`: one or more.
    AtLeastOne,
}

impl Repeat {
    /// The fewest lines the pattern must take.
    pub fn min(self) -> usize {
        match self {
            Repeat::One | Repeat::AtLeastOne => 1,
            Repeat::Optional | Repeat::Any => 0,
        }
    }

    /// True when the pattern may take more than one line.
    pub fn is_multi(self) -> bool {
        matches!(self, Repeat::Any | Repeat::AtLeastOne)
    }
}

/// An expected line that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected line {}: {message}", line_index + 1)]
pub struct PatternError {
    /// 0-based index of the line within the expected text.
    pub line_index: usize,
    pub message: String,
}

impl PatternLine {
    /// The line as written (trailing white space removed).
    pub fn source(&self) -> &str {
        match self {
            PatternLine::AnyLines => "...",
            PatternLine::Line(p) => &p.source,
        }
    }

    /// The fewest output lines this pattern must take.
    pub fn min_lines(&self) -> usize {
        match self {
            PatternLine::AnyLines => 0,
            PatternLine::Line(p) => p.repeat.min(),
        }
    }

    /// True when it takes exactly one line.
    pub fn is_single(&self) -> bool {
        matches!(self, PatternLine::Line(p) if p.repeat == Repeat::One)
    }

    /// True when it may take more than one line.
    pub fn is_multi(&self) -> bool {
        match self {
            PatternLine::AnyLines => true,
            PatternLine::Line(p) => p.repeat.is_multi(),
        }
    }

    /// True when output line `line` matches this pattern on its own; `unterminated_last`
    /// says it is the output's last line and has no newline (what `(no-eol)` asks for).
    pub fn matches(&self, line: &[u8], unterminated_last: bool) -> bool {
        match self {
            PatternLine::AnyLines => true,
            PatternLine::Line(p) => (!p.no_eol || unterminated_last) && p.rule.matches(line),
        }
    }

    /// The literal bytes when this is a plain line matching exactly one line of exactly
    /// these bytes, whatever its newline.
    pub(crate) fn as_plain_literal(&self) -> Option<&[u8]> {
        match self {
            PatternLine::Line(LinePattern {
                rule: Rule::Literal(bytes),
                repeat: Repeat::One,
                no_eol: false,
                ..
            }) => Some(bytes),
            _ => None,
        }
    }
}

impl fmt::Display for PatternLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())
    }
}

impl LinePattern {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    pub fn repeat(&self) -> Repeat {
        self.repeat
    }

    /// True for `(no-eol)`: only the output's last line, without a trailing newline, matches.
    pub fn no_eol(&self) -> bool {
        self.no_eol
    }
}

impl Rule {
    /// True when `line` (trailing white space already removed) matches.
    pub fn matches(&self, line: &[u8]) -> bool {
        match self {
            Rule::Literal(bytes) => bytes.as_slice() == line,
            Rule::Elided(glob) | Rule::Glob(glob) => glob.matches(line),
            Rule::Regex(re) => re.is_match(line),
        }
    }
}

/// Parses expected output: lines joined by `\n`. A trailing newline adds no line; `""` is
/// zero lines.
pub fn parse_expected(text: &str) -> Result<Vec<PatternLine>, PatternError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .enumerate()
        .map(|(line_index, line)| {
            parse_line(line).map_err(|message| PatternError {
                line_index,
                message,
            })
        })
        .collect()
}

/// The kinds a modifier can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Equal,
    Escaped,
    Glob,
    Regex,
    NoEol,
}

/// Parses one expected line (a `\n` inside it is not expected).
pub fn parse_line(line: &str) -> Result<PatternLine, String> {
    let line = trim_trailing_ws_str(line);
    if line == "..." {
        return Ok(PatternLine::AnyLines);
    }
    let source = line.to_string();
    let (mut text, mut kind, mut repeat) = match split_modifier(line) {
        Some((text, kind, repeat)) => (text, kind, repeat),
        None => (line, Kind::Plain, Repeat::One),
    };
    let mut no_eol = false;
    if kind == Kind::NoEol {
        if repeat != Repeat::One {
            return Err("(no-eol) takes no quantifier".to_string());
        }
        no_eol = true;
        (text, kind, repeat) = match split_modifier(text) {
            Some((inner, k, r)) if k != Kind::NoEol => (inner, k, r),
            _ => (text, Kind::Plain, Repeat::One),
        };
    } else if let Some(inner) = text.strip_suffix(" (no-eol)") {
        // cram writes `text (no-eol) (esc)`.
        no_eol = true;
        text = inner;
    }
    if no_eol && repeat != Repeat::One {
        return Err("a (no-eol) line cannot be quantified".to_string());
    }
    let rule = match kind {
        Kind::Plain if text.contains("[..]") => {
            Rule::Elided(Glob::from_elided(trim_trailing_ws_str(text)))
        }
        Kind::Plain | Kind::Equal => Rule::Literal(trim_trailing_ws_str(text).as_bytes().to_vec()),
        Kind::Escaped => {
            let bytes = decode_esc(text)?;
            Rule::Literal(trim_trailing_ws(&bytes).to_vec())
        }
        Kind::Glob => Rule::Glob(Glob::from_glob(trim_trailing_ws_str(text))),
        Kind::Regex => Rule::Regex(compile_regex(text)?),
        Kind::NoEol => unreachable!("handled above"),
    };
    Ok(PatternLine::Line(LinePattern {
        source,
        rule,
        repeat,
        no_eol,
    }))
}

/// Splits `text (modifier)` into the text, the kind and the quantifier, when the line ends
/// with a modifier this syntax knows; otherwise the line is plain text.
fn split_modifier(line: &str) -> Option<(&str, Kind, Repeat)> {
    let inner = line.strip_suffix(')')?;
    let open = inner.rfind(" (")?;
    let word = &inner[open + 2..];
    let (name, repeat) = match word.as_bytes().last()? {
        b'?' => (&word[..word.len() - 1], Repeat::Optional),
        b'*' => (&word[..word.len() - 1], Repeat::Any),
        b'+' => (&word[..word.len() - 1], Repeat::AtLeastOne),
        _ => (word, Repeat::One),
    };
    let kind = match name {
        "" if repeat != Repeat::One => Kind::Plain,
        "equal" | "eq" => Kind::Equal,
        "escaped" | "esc" => Kind::Escaped,
        "glob" | "gl" => Kind::Glob,
        "regex" | "re" => Kind::Regex,
        "no-eol" => Kind::NoEol,
        _ => return None,
    };
    Some((&line[..open], kind, repeat))
}

/// True when `line` ends with a modifier (` (re)`, ` (no-eol)`, ` (+)`, ...), that is, when a
/// literal line with this text would not read as itself.
pub(crate) fn has_modifier(line: &str) -> bool {
    split_modifier(line).is_some()
}

/// Compiles a `(re)` text anchored at both ends. The text must be a regular expression on
/// its own, so an unbalanced `)` cannot break out of the anchoring group.
fn compile_regex(text: &str) -> Result<Regex, String> {
    const SIZE_LIMIT: usize = 1 << 20;
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
    };
    let invalid = |e: regex::Error| format!("invalid regex `{text}`: {}", regex_message(&e));
    build(text).map_err(invalid)?;
    build(&format!(r"\A(?:{text})\z")).map_err(invalid)
}

/// The regex crate's message without its multi-line caret diagram.
fn regex_message(e: &regex::Error) -> String {
    let full = e.to_string();
    match full.rfind("error: ") {
        Some(at) => full[at + "error: ".len()..].trim().to_string(),
        None => full.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact description of a parsed line, to compare in tables.
    fn describe(p: &PatternLine) -> String {
        match p {
            PatternLine::AnyLines => "any".to_string(),
            PatternLine::Line(l) => {
                let rule = match &l.rule {
                    Rule::Literal(b) => format!("lit {:?}", String::from_utf8_lossy(b)),
                    Rule::Elided(_) => "elided".to_string(),
                    Rule::Glob(_) => "glob".to_string(),
                    Rule::Regex(re) => format!("re {}", re.as_str()),
                };
                let repeat = match l.repeat {
                    Repeat::One => "",
                    Repeat::Optional => " ?",
                    Repeat::Any => " *",
                    Repeat::AtLeastOne => " +",
                };
                let eol = if l.no_eol { " no-eol" } else { "" };
                format!("{rule}{repeat}{eol}")
            }
        }
    }

    #[test]
    fn parses_every_form() {
        let cases: &[(&str, &str)] = &[
            ("hello", "lit \"hello\""),
            ("hello   ", "lit \"hello\""),
            ("", "lit \"\""),
            ("...", "any"),
            ("... ", "any"),
            (" ...", "lit \" ...\""),
            ("....", "lit \"....\""),
            ("took [..] ms", "elided"),
            ("x (re)", "re \\A(?:x)\\z"),
            ("x (regex)", "re \\A(?:x)\\z"),
            ("x* (glob)", "glob"),
            ("x* (gl)", "glob"),
            ("a\\tb (esc)", "lit \"a\\tb\""),
            ("a\\tb (escaped)", "lit \"a\\tb\""),
            ("x [..] (eq)", "lit \"x [..]\""),
            ("x [..] (equal)", "lit \"x [..]\""),
            ("end (no-eol)", "lit \"end\" no-eol"),
            ("a\\x00 (esc) (no-eol)", "lit \"a\\0\" no-eol"),
            ("a\\x00 (no-eol) (esc)", "lit \"a\\0\" no-eol"),
            ("v\\d (re) (no-eol)", "re \\A(?:v\\d)\\z no-eol"),
            ("a [..] (no-eol)", "elided no-eol"),
            ("\\d+ (re+)", "re \\A(?:\\d+)\\z +"),
            ("\\d+ (regex+)", "re \\A(?:\\d+)\\z +"),
            ("\\d+ (re*)", "re \\A(?:\\d+)\\z *"),
            ("\\d+ (regex*)", "re \\A(?:\\d+)\\z *"),
            ("\\d+ (re?)", "re \\A(?:\\d+)\\z ?"),
            ("\\d+ (regex?)", "re \\A(?:\\d+)\\z ?"),
            ("* (glob+)", "glob +"),
            ("* (glob*)", "glob *"),
            ("* (glob?)", "glob ?"),
            ("line (+)", "lit \"line\" +"),
            ("line (?)", "lit \"line\" ?"),
            ("line (*)", "lit \"line\" *"),
            ("a\\tb (esc+)", "lit \"a\\tb\" +"),
            // Not modifiers: no space, unknown word, not at the end.
            ("x(re)", "lit \"x(re)\""),
            ("x (rex)", "lit \"x (rex)\""),
            ("x (re) y", "lit \"x (re) y\""),
            ("f(x) (y)", "lit \"f(x) (y)\""),
            ("()", "lit \"()\""),
            (" ()", "lit \" ()\""),
            ("[3]", "lit \"[3]\""),
            // The decoded text loses trailing white space like output lines do.
            ("tab\\t (esc)", "lit \"tab\""),
        ];
        for (line, want) in cases {
            let parsed = parse_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(describe(&parsed), *want, "{line:?}");
        }
    }

    #[test]
    fn source_is_kept() {
        let p = parse_line("took [..] ms  ").unwrap();
        assert_eq!(p.source(), "took [..] ms");
        assert_eq!(p.to_string(), "took [..] ms");
        assert_eq!(PatternLine::AnyLines.source(), "...");
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("foo( (re)", "invalid regex `foo(`"),
            ("a)|(b (re)", "invalid regex `a)|(b`"),
            ("\\q (esc)", "invalid escape"),
            ("x (no-eol+)", "no quantifier"),
            ("x (re+) (no-eol)", "cannot be quantified"),
            ("a{1000}{1000} (re)", "invalid regex"),
        ];
        for (line, want) in cases {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err}");
            assert!(!err.contains('\n'), "{line:?}: {err}");
        }
    }

    #[test]
    fn expected_text_lines() {
        assert_eq!(parse_expected("").unwrap().len(), 0);
        assert_eq!(parse_expected("a").unwrap().len(), 1);
        assert_eq!(parse_expected("a\n").unwrap().len(), 1);
        assert_eq!(parse_expected("a\n\n").unwrap().len(), 2);
        assert_eq!(parse_expected("\n").unwrap().len(), 1);
        assert_eq!(parse_expected("a\r\nb\r\n").unwrap()[0].source(), "a");
        let err = parse_expected("ok\nalso ok\nbad( (re)").unwrap_err();
        assert_eq!(err.line_index, 2);
        assert!(
            err.to_string()
                .starts_with("expected line 3: invalid regex `bad(`"),
            "{err}"
        );
    }

    #[test]
    fn single_line_matching() {
        let cases: &[(&str, &[u8], bool, bool)] = &[
            ("hello", b"hello", false, true),
            ("hello", b"hello", true, true),
            ("hello", b"hell", false, false),
            ("hello", b"Hello", false, false),
            ("v\\d+\\.\\d+ (re)", b"v1.22", false, true),
            ("v\\d+ (re)", b"xv1", false, false),
            ("v\\d+ (re)", b"v1x", false, false),
            ("a|b (re)", b"ab", false, false),
            ("a|b (re)", b"b", false, true),
            (". (re)", b"\xff", false, false),
            ("(?-u:.) (re)", b"\xff", false, true),
            ("x* (glob)", b"xyz", false, true),
            ("a\\x1b[0m (esc)", b"a\x1b[0m", false, true),
            ("end (no-eol)", b"end", true, true),
            ("end (no-eol)", b"end", false, false),
            ("[..] (no-eol)", b"anything", true, true),
            ("took [..] ms", b"took 3 ms", false, true),
        ];
        for (pat, line, last, want) in cases {
            let p = parse_line(pat).unwrap();
            assert_eq!(p.matches(line, *last), *want, "{pat:?} against {line:?}");
        }
    }
}
