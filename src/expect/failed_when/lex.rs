//! Tokenizing a `failed_when` expression, each token with the column it starts at.

/// One token and its 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: Tok,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    Dot,
    Comma,
    Not,
    Minus,
    AndAnd,
    OrOr,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    End,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Int(n) => format!("`{n}`"),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Not => "`!`".to_string(),
            Tok::Minus => "`-`".to_string(),
            Tok::AndAnd => "`&&`".to_string(),
            Tok::OrOr => "`||`".to_string(),
            Tok::Eq => "`==`".to_string(),
            Tok::Ne => "`!=`".to_string(),
            Tok::Lt => "`<`".to_string(),
            Tok::Gt => "`>`".to_string(),
            Tok::Le => "`<=`".to_string(),
            Tok::Ge => "`>=`".to_string(),
            Tok::End => "the end".to_string(),
        }
    }
}

/// Splits `src` into tokens, ending with [`Tok::End`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        let next2 = chars.get(i + 2).copied();
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '.' => (Tok::Dot, 1),
            ',' => (Tok::Comma, 1),
            '-' => (Tok::Minus, 1),
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '=' if next == Some('=') && next2 == Some('=') => (Tok::Eq, 3),
            '=' if next == Some('=') => (Tok::Eq, 2),
            '!' if next == Some('=') && next2 == Some('=') => (Tok::Ne, 3),
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '\'' | '"' => {
                let (text, len) = string_literal(&chars[i..], column)?;
                (Tok::Str(text), len)
            }
            c if c.is_ascii_digit() => {
                let len = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if chars
                    .get(i + len)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    return Err(format!(
                        "only whole decimal numbers are supported, at column {column}"
                    ));
                }
                let digits: String = chars[i..i + len].iter().collect();
                let n = digits
                    .parse::<i64>()
                    .map_err(|_| format!("number too large at column {column}"))?;
                (Tok::Int(n), len)
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '$')
                    .count();
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            '=' => return Err(format!("`=` assigns; compare with `==` (column {column})")),
            '&' | '|' => {
                return Err(format!(
                    "`{c}` is not supported; use `{c}{c}` (column {column})"
                ));
            }
            c => {
                let shown = super::super::escape::display_line(c.to_string().as_bytes());
                return Err(format!("unexpected character `{shown}` at column {column}"));
            }
        };
        tokens.push(Token { kind, column });
        i += len;
    }
    tokens.push(Token {
        kind: Tok::End,
        column: chars.len() + 1,
    });
    Ok(tokens)
}

/// Reads a quoted string starting at `chars[0]`; returns its value and its length in chars.
fn string_literal(chars: &[char], column: usize) -> Result<(String, usize), String> {
    let quote = chars[0];
    let mut out = String::new();
    let mut i = 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!("unterminated string starting at column {column}"));
        };
        i += 1;
        if c == quote {
            return Ok((out, i));
        }
        if c == '\n' {
            return Err(format!("unterminated string starting at column {column}"));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            return Err(format!("unterminated string starting at column {column}"));
        };
        i += 1;
        let at = column + i - 2;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'x' => {
                let code = hex_digits(chars, i, 2)
                    .ok_or_else(|| format!("`\\x` needs two hex digits at column {at}"))?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                i += 2;
            }
            'u' if chars.get(i) == Some(&'{') => {
                let len = chars[i + 1..].iter().take_while(|c| **c != '}').count();
                let code = (1..=6)
                    .contains(&len)
                    .then(|| hex_digits(chars, i + 1, len))
                    .flatten()
                    .and_then(char::from_u32)
                    .filter(|_| chars.get(i + 1 + len) == Some(&'}'))
                    .ok_or_else(|| format!("invalid `\\u{{...}}` escape at column {at}"))?;
                out.push(code);
                i += len + 2;
            }
            'u' => {
                let code = hex_digits(chars, i, 4)
                    .ok_or_else(|| format!("`\\u` needs four hex digits at column {at}"))?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                i += 4;
            }
            // JavaScript: any other escaped character is itself (`\'`, `\"`, `\\`).
            other => out.push(other),
        }
    }
}

fn hex_digits(chars: &[char], from: usize, len: usize) -> Option<u32> {
    let digits = chars.get(from..from + len)?;
    digits
        .iter()
        .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            kinds("exitCode !== 0"),
            vec![
                Tok::Ident("exitCode".into()),
                Tok::Ne,
                Tok::Int(0),
                Tok::End
            ]
        );
        assert_eq!(
            kinds("a===b<=c>=d<e>f!g"),
            vec![
                Tok::Ident("a".into()),
                Tok::Eq,
                Tok::Ident("b".into()),
                Tok::Le,
                Tok::Ident("c".into()),
                Tok::Ge,
                Tok::Ident("d".into()),
                Tok::Lt,
                Tok::Ident("e".into()),
                Tok::Gt,
                Tok::Ident("f".into()),
                Tok::Not,
                Tok::Ident("g".into()),
                Tok::End
            ]
        );
        let cols: Vec<usize> = tokenize("  a && 'é' || 1")
            .unwrap()
            .iter()
            .map(|t| t.column)
            .collect();
        assert_eq!(cols, vec![3, 5, 8, 12, 15, 16]);
    }

    #[test]
    fn strings() {
        let cases: &[(&str, &str)] = &[
            (r#"'plain'"#, "plain"),
            (r#""double""#, "double"),
            (r#"'it\'s'"#, "it's"),
            (r#""say \"hi\"""#, "say \"hi\""),
            (r#"'a\nb\tc\\d'"#, "a\nb\tc\\d"),
            (r#"'\x41\u0042\u{43}'"#, "ABC"),
            (r#"'\q'"#, "q"),
            (r#"'"'"#, "\""),
        ];
        for (src, want) in cases {
            assert_eq!(
                kinds(src),
                vec![Tok::Str(want.to_string()), Tok::End],
                "{src}"
            );
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("'open", "unterminated string starting at column 1"),
            ("a == \"x", "unterminated string starting at column 6"),
            ("'\\x4'", "two hex digits"),
            ("'\\u{110000}'", "invalid `\\u{...}` escape"),
            ("a = 1", "`=` assigns"),
            ("a & b", "use `&&`"),
            ("a # b", "unexpected character `#` at column 3"),
            ("99999999999999999999", "number too large at column 1"),
            ("1.5", "whole decimal numbers"),
            ("a\u{1b}", "unexpected character `\\x1b` at column 2"),
        ];
        for (src, want) in cases {
            let err = tokenize(src).unwrap_err();
            assert!(err.contains(want), "{src:?}: {err}");
        }
    }
}
