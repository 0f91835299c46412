//! The annotation after the first `|` of an info string: ```` ```bash | {type: 'command'} ````.
//!
//! JSON5 first (docable's own format, `{type:'file',path:'id.js'}`), then a YAML flow mapping
//! when the text is not JSON5 (`{type: command, timeout: 10s}`). Only the text is read here;
//! what the keys mean is `attrs.rs`'s business. Positions are 1-based character columns inside
//! the annotation text; the caller shifts them into the notebook.

use super::value::{self, Limits, Value};

/// Longest annotation accepted, in bytes.
pub const MAX_LEN: usize = 4 * 1024;

/// An annotation's nesting and expansion limits (a flow mapping may still use YAML aliases).
const LIMITS: Limits = Limits {
    budget: 256 * 1024,
    depth: 16,
};

/// Which reading of the text succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Json5,
    YamlFlow,
}

/// A parsed annotation: its entries in the order written, and how it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub entries: Vec<(String, Value)>,
    pub syntax: Syntax,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    /// 1-based character column inside the annotation text.
    pub column: usize,
    pub message: String,
}

fn error(column: usize, message: impl Into<String>) -> AnnotationError {
    AnnotationError {
        column: column.max(1),
        message: message.into(),
    }
}

/// Parses an annotation into its entries, in the order written.
pub fn parse(text: &str) -> Result<Annotation, AnnotationError> {
    if text.len() > MAX_LEN {
        return Err(error(1, "annotation is larger than 4 KiB"));
    }
    if text.trim().is_empty() {
        return Err(error(1, "empty annotation after '|'"));
    }
    if !text.starts_with('{') {
        return Err(error(
            1,
            "annotation must be a mapping in braces, like {type: 'command'}",
        ));
    }
    let (value, syntax) = match value::from_json5(text, LIMITS) {
        Ok(v) => (v, Syntax::Json5),
        Err(json5_err) => {
            // json5 places "EOF parsing object" at the object's start: the end is more useful.
            let end = text.chars().count() + 1;
            let at_end = json5_err
                .code()
                .is_some_and(|c| c.to_string().starts_with("EOF"));
            let json5_column = match json5_err.position() {
                Some(p) if !at_end => p.column + 1,
                _ => end,
            };
            match value::from_yaml(text, LIMITS) {
                Ok(v) => (v, Syntax::YamlFlow),
                Err(yaml_err) => {
                    // Report whichever parser got further: it is the one the author meant.
                    let yaml_column = yaml_err.location().map_or(1, |l| {
                        let index = l.index().min(text.len());
                        text.get(..index).map_or(end, |t| t.chars().count() + 1)
                    });
                    let (column, message) = if yaml_column > json5_column {
                        (yaml_column, value::clean_message(&yaml_err.to_string()))
                    } else {
                        (json5_column, value::clean_message(&json5_err.to_string()))
                    };
                    return Err(error(column, format!("invalid annotation: {message}")));
                }
            }
        }
    };
    let Value::Map(entries) = value else {
        return Err(error(
            1,
            "annotation must be a mapping in braces, like {type: 'command'}",
        ));
    };
    check_keys(text, &entries)?;
    Ok(Annotation { entries, syntax })
}

/// A key with a colon is almost always `{type:command}` read by YAML as one key: say so.
fn check_keys(text: &str, entries: &[(String, Value)]) -> Result<(), AnnotationError> {
    for (key, value) in entries {
        if let Some((k, v)) = key.split_once(':') {
            return Err(error(
                find_key_byte(text, false, |rest| {
                    rest.trim_start_matches(['\'', '"'])
                        .starts_with(key.as_str())
                })
                .map_or(1, |i| column_of(text, i)),
                format!("key '{key}' contains ':'; write '{k}: {v}' with a space after the colon"),
            ));
        }
        if let Value::Map(inner) = value {
            check_keys(text, inner)?;
        }
    }
    Ok(())
}

/// 1-based character column of `key` where it is written as a key (`key:`, `'key' :`), if it is.
pub fn find_key(text: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    find_key_byte(text, false, |rest| key_at(rest, key)).map(|i| column_of(text, i))
}

fn column_of(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(1, |t| t.chars().count() + 1)
}

/// Byte offset of the first key position where `matches` holds: after `{` or `,` outside
/// quotes, at the top level of the mapping only when `top_level`. A small scan, not a parse,
/// so the same word inside a string value is never taken for a key.
fn find_key_byte(text: &str, top_level: bool, matches: impl Fn(&str) -> bool) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut expect_key = false;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if expect_key && !c.is_whitespace() {
            expect_key = false;
            if (!top_level || depth == 1) && matches(&text[i..]) {
                return Some(i);
            }
        }
        match c {
            '{' | '[' => {
                depth += 1;
                expect_key = c == '{';
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            ',' => expect_key = true,
            '\'' | '"' => quote = Some(c),
            _ => {}
        }
    }
    None
}

/// Byte range of the literal written for top-level `key` (a quoted string with its quotes, or
/// a plain YAML scalar), so `--update` can replace exactly it. `None` for a list or mapping.
pub fn value_span(text: &str, syntax: Syntax, key: &str) -> Option<std::ops::Range<usize>> {
    let at = find_key_byte(text, true, |rest| key_at(rest, key))?;
    let quoted = matches!(text[at..].chars().next(), Some('\'' | '"'));
    let after_key = at + key.len() + if quoted { 2 } else { 0 };
    let rest = &text[after_key..];
    let colon = rest.find(':')?;
    let value = rest[colon + 1..].trim_start_matches([' ', '\t']);
    let start = text.len() - value.len();
    let mut chars = value.char_indices();
    let len = match chars.next()? {
        (_, q @ ('\'' | '"')) => {
            // JSON5 and YAML double quotes escape with a backslash; YAML single quotes by
            // doubling the quote.
            let backslash = syntax == Syntax::Json5 || q == '"';
            let mut end = None;
            let mut escaped = false;
            let mut chars = chars.peekable();
            while let Some((i, c)) = chars.next() {
                if escaped {
                    escaped = false;
                } else if backslash && c == '\\' {
                    escaped = true;
                } else if c == q {
                    if !backslash && chars.peek().is_some_and(|&(_, n)| n == q) {
                        chars.next();
                        continue;
                    }
                    end = Some(i + 1);
                    break;
                }
            }
            end?
        }
        (_, '[' | '{') => return None,
        _ => value
            .find([',', '}'])
            .map_or(value.len(), |i| value[..i].trim_end().len()),
    };
    (len > 0).then_some(start..start + len)
}

/// Whether `rest` starts with `key` (bare or quoted) followed by a colon.
fn key_at(rest: &str, key: &str) -> bool {
    let (body, q) = match rest.chars().next() {
        Some(q @ ('\'' | '"')) => (&rest[1..], Some(q)),
        _ => (rest, None),
    };
    let Some(after) = body.strip_prefix(key) else {
        return false;
    };
    let after = match q {
        Some(q) => match after.strip_prefix(q) {
            Some(a) => a,
            None => return false,
        },
        None => after,
    };
    after.trim_start_matches([' ', '\t']).starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn docable_and_yaml_flow_forms() {
        let cases: Vec<(&str, Vec<(&str, Value)>)> = vec![
            ("{type: 'command'}", vec![("type", s("command"))]),
            ("{type:'command'}", vec![("type", s("command"))]),
            (
                "{type:'file',path:'id.js'}",
                vec![("type", s("file")), ("path", s("id.js"))],
            ),
            (
                "{type: 'file', path: 'server/index.js', permission: '+x'}",
                vec![
                    ("type", s("file")),
                    ("path", s("server/index.js")),
                    ("permission", s("+x")),
                ],
            ),
            (
                "{ \"type\": \"command\", \"failed_when\": \"exitCode != 0\" }",
                vec![("type", s("command")), ("failed_when", s("exitCode != 0"))],
            ),
            // Not JSON5 (`10s`, bare `command`): read as a YAML flow mapping.
            (
                "{type: 'command', timeout: 10s}",
                vec![("type", s("command")), ("timeout", s("10s"))],
            ),
            (
                "{type: command, exit: [0, 1], env: {A: b}}",
                vec![
                    ("type", s("command")),
                    ("exit", Value::Seq(vec![Value::Int(0), Value::Int(1)])),
                    ("env", Value::Map(vec![("A".into(), s("b"))])),
                ],
            ),
            ("{skip: true,}", vec![("skip", Value::Bool(true))]),
        ];
        for (text, want) in cases {
            let got = parse(text)
                .unwrap_or_else(|e| panic!("{text}: {e:?}"))
                .entries;
            let want: Vec<(String, Value)> =
                want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn errors_point_into_the_annotation() {
        let cases = [
            ("{type:command}", 2, "key 'type:command' contains ':'"),
            ("{type: 'command', path:x}", 19, "key 'path:x' contains ':'"),
            ("{type: 'command' timeout: 1}", 18, "invalid annotation"),
            ("{type: 'command'", 17, "invalid annotation"),
            ("type: command", 1, "must be a mapping in braces"),
            ("", 1, "empty annotation"),
            ("{a: 1, a: 2}", 1, "duplicate key 'a'"),
            ("{a: 1} trailing", 8, "invalid annotation"),
        ];
        for (text, column, message) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.column, column, "{text}: {err:?}");
            assert!(err.message.contains(message), "{text}: {err:?}");
            assert!(!err.message.contains(" at line "), "{text}: {err:?}");
        }
    }

    #[test]
    fn size_is_capped() {
        let text = format!("{{hint: '{}'}}", "x".repeat(MAX_LEN));
        assert!(parse(&text).unwrap_err().message.contains("4 KiB"));
        let text = format!("{{hint: '{}'}}", "x".repeat(MAX_LEN - 20));
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn alias_bombs_in_a_flow_mapping_are_refused() {
        let items = vec!["x"; 500].join(",");
        let refs = vec!["*a"; 500].join(",");
        let text = format!("{{a: &a [{items}], b: [{refs}]}}");
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("too much data"), "{err:?}");
    }

    #[test]
    fn syntax_is_reported() {
        assert_eq!(parse("{type:'x'}").unwrap().syntax, Syntax::Json5);
        assert_eq!(parse("{type: x}").unwrap().syntax, Syntax::YamlFlow);
    }

    #[test]
    fn value_spans_cover_the_literal() {
        let cases = [
            ("{type: 'command', expect: 'hi'}", "expect", Some("'hi'")),
            (
                "{expect:\"a \\\"b\\\" c\", x: 1}",
                "expect",
                Some("\"a \\\"b\\\" c\""),
            ),
            (
                "{expect: 'it''s', type: command}",
                "expect",
                Some("'it''s'"),
            ),
            (
                "{expect: plain words , x: 1}",
                "expect",
                Some("plain words"),
            ),
            (
                "{env: {expect: 'no'}, expect: 'yes'}",
                "expect",
                Some("'yes'"),
            ),
            ("{expect: [a, b]}", "expect", None),
            ("{hint: 'expect: x'}", "expect", None),
        ];
        for (text, key, want) in cases {
            let syntax = parse(text).unwrap().syntax;
            let got = value_span(text, syntax, key).map(|r| &text[r]);
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn finds_keys_as_written() {
        let cases = [
            ("{type: 'command', timeout: 1}", "timeout", Some(19)),
            ("{'type' :'x'}", "type", Some(2)),
            ("{hint: 'the type: x', type: 'x'}", "type", Some(23)),
            ("{subtype: 1}", "type", None),
            ("{é: 1, path: 2}", "path", Some(8)),
        ];
        for (text, key, want) in cases {
            assert_eq!(find_key(text, key), want, "{text} {key}");
        }
    }
}
