//! An annotation's entries into typed `Attrs` (section 3's attribute table).
//!
//! Wrong types are errors, unknown keys warnings, both at the key's line:column. What a cell
//! *is* (type, skip, platform) is decided in `cells.rs`; this file only reads values.

use std::time::Duration;

use super::annotation::Syntax;
use super::model::{Attrs, Diagnostic, ExitRule, Stream};
use super::value::Value;
use crate::units::parse_duration;

/// Keys that only matter to docable's web UI or to features of a later release; accepted
/// without a warning so docable notebooks read cleanly.
const ACCEPTED_KEYS: &[&str] = &["title"];

/// Attributes read from an annotation, with what `cells.rs` needs to decide the cell's kind.
///
/// Positions are not kept: finding a key in the annotation costs a scan, so `cells.rs` does it
/// only for the keys a diagnostic names.
#[derive(Debug, Clone, Default)]
pub struct CellAttrs {
    pub attrs: Attrs,
    /// `type:` as written.
    pub cell_type: Option<String>,
    /// `spawn` or `serve` when set (background cells come in a later release).
    pub background: Option<&'static str>,
    /// The keys written, in order.
    pub written: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    /// How the annotation was written, to find a value's bytes in it again.
    pub syntax: Option<Syntax>,
}

impl CellAttrs {
    /// A cell without an annotation: every attribute at its default.
    pub fn none() -> CellAttrs {
        CellAttrs {
            attrs: defaults(),
            ..CellAttrs::default()
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.written.iter().any(|k| k == key)
    }
}

/// A 1-based line and column in the notebook.
pub type Pos = (u32, u32);

/// The attributes of a cell with no annotation: everything at its default.
pub fn defaults() -> Attrs {
    Attrs {
        record: true,
        ..Attrs::default()
    }
}

/// Reads `entries`; `at` gives the notebook position of a key (asked only for diagnostics).
pub fn read(
    entries: &[(String, Value)],
    at: &dyn Fn(&str) -> Pos,
) -> Result<CellAttrs, Diagnostic> {
    let mut out = CellAttrs {
        written: Vec::with_capacity(entries.len()),
        ..CellAttrs::none()
    };
    for (key, value) in entries {
        out.written.push(key.clone());
        read_one(&mut out, key, value, at).map_err(|message| {
            let (line, column) = at(key);
            Diagnostic {
                line,
                column,
                message: format!("attribute '{key}': {message}"),
            }
        })?;
    }
    Ok(out)
}

fn read_one(
    out: &mut CellAttrs,
    key: &str,
    value: &Value,
    at: &dyn Fn(&str) -> Pos,
) -> Result<(), String> {
    let a = &mut out.attrs;
    match key {
        "type" => out.cell_type = Some(text(value)?),
        "id" => a.id = Some(cell_id(value)?),
        "timeout" => a.timeout = Some(duration(value)?),
        "exit" => a.exit = exit_rule(value)?,
        "expect" => a.expect = Some(expect_text(value)?),
        "failed_when" => a.failed_when = Some(text(value)?),
        "path" => a.path = Some(text(value)?),
        "user" => a.user = Some(text(value)?),
        "target" => a.target = Some(text(value)?),
        "hint" => a.hint = Some(any_text(value)?),
        "platform" => a.platform = Some(text(value)?),
        "privileged" => a.privileged = boolean(value)?,
        "keep_ansi" => a.keep_ansi = boolean(value)?,
        "tty" => a.tty = boolean(value)?,
        "skip" => a.skip = boolean(value)?,
        "hidden" => a.hidden = boolean(value)?,
        "partial" => a.partial = boolean(value)?,
        "record" => a.record = boolean(value)?,
        "env" => a.env = env(value)?,
        "stream" => a.stream = stream(value)?,
        "points" => a.points = Some(points(value)?),
        "permission" => a.permission = Some(permission(value)?),
        "mode" => a.append = mode(value)?,
        "variables" => a.variables = variables(value)?,
        "prompt" => a.prompt = Some(text(value)?),
        "wait_for" => a.wait_for = Some(any_text(value)?),
        "shell" => a.shell = Some(text(value)?),
        "spawn" | "serve" => {
            let name = if key == "spawn" { "spawn" } else { "serve" };
            if !matches!(value, Value::Bool(false) | Value::Null) {
                out.background = Some(name);
                a.background = true;
            }
        }
        k if ACCEPTED_KEYS.contains(&k) => {}
        _ => {
            let (line, column) = at(key);
            out.warnings.push(Diagnostic {
                line,
                column,
                message: format!("unknown attribute '{key}'; ignored"),
            });
        }
    }
    Ok(())
}

fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::Str(s) if !s.is_empty() => Ok(s.clone()),
        Value::Str(_) => Err("must not be empty".into()),
        other => Err(format!("must be a string, not {}", other.kind())),
    }
}

/// A string, or a number written without quotes (`hint: 42` reads as text).
fn any_text(value: &Value) -> Result<String, String> {
    match value {
        Value::Int(_) | Value::Float(_) => Ok(value.scalar_text().unwrap_or_default()),
        _ => text(value),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("must be true or false, not {}", other.kind())),
    }
}

/// Ids name golden files (`<id>.out`), so they are plain names: no `/`, no `..`.
fn cell_id(value: &Value) -> Result<String, String> {
    let id = text(value)?;
    let mut chars = id.chars();
    let ok = id.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(id)
    } else {
        Err(format!(
            "'{id}' is not a valid id (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128)"
        ))
    }
}

/// A duration written as text (`10s`, `500ms`) or a bare number.
///
/// A bare number is seconds, as everywhere in labrun (`units::parse_duration`). docable has no
/// timeout attribute, so there is no milliseconds convention to stay compatible with, and no
/// guessing from the size of the number.
pub fn duration(value: &Value) -> Result<Duration, String> {
    let d = match value {
        Value::Str(s) => parse_duration(s)?,
        Value::Int(n) => parse_duration(&n.to_string())?,
        Value::Float(f) => parse_duration(&f.to_string())?,
        other => return Err(format!("must be a duration like 30s, not {}", other.kind())),
    };
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn exit_code(value: &Value) -> Result<i32, String> {
    match value {
        Value::Int(n) if (0..=255).contains(n) => Ok(*n as i32),
        Value::Int(n) => Err(format!("exit status {n} is out of range 0..=255")),
        other => Err(format!(
            "must be an exit status, a list of them, or 'any', not {}",
            other.kind()
        )),
    }
}

fn exit_rule(value: &Value) -> Result<ExitRule, String> {
    match value {
        Value::Str(s) if s == "any" => Ok(ExitRule::Any),
        Value::Seq(items) if !items.is_empty() => {
            let codes = items.iter().map(exit_code).collect::<Result<Vec<_>, _>>()?;
            Ok(ExitRule::OneOf(codes))
        }
        Value::Seq(_) => Err("the list of exit statuses is empty".into()),
        other => exit_code(other).map(ExitRule::Code),
    }
}

/// Inline expected output: a string, or a list of lines.
fn expect_text(value: &Value) -> Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.strip_suffix('\n').unwrap_or(s).to_owned()),
        Value::Seq(lines) => {
            let lines = lines
                .iter()
                .map(|l| match l {
                    Value::Str(s) => Ok(s.as_str()),
                    other => Err(format!("each line must be a string, not {}", other.kind())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(lines.join("\n"))
        }
        other => Err(format!(
            "must be a string or a list of lines, not {}",
            other.kind()
        )),
    }
}

fn env(value: &Value) -> Result<std::collections::BTreeMap<String, String>, String> {
    let Value::Map(vars) = value else {
        return Err(format!("must be a mapping, not {}", value.kind()));
    };
    let mut out = std::collections::BTreeMap::new();
    for (name, val) in vars {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("'{name}' is not a valid variable name"));
        }
        let val = match val {
            Value::Null => String::new(),
            other => other
                .scalar_text()
                .ok_or_else(|| format!("{name} must be a string, not {}", other.kind()))?,
        };
        if val.contains('\0') {
            return Err(format!("{name} contains a nul byte"));
        }
        out.insert(name.clone(), val);
    }
    Ok(out)
}

/// `both`, `stdout` or `stderr`. docable's `stream: true` (show output while it runs) has
/// nothing to do with which stream is compared; labrun streams with `-v`, so a boolean is
/// accepted and leaves the default.
fn stream(value: &Value) -> Result<Stream, String> {
    match value {
        Value::Bool(_) => Ok(Stream::Both),
        Value::Str(s) => match s.as_str() {
            "both" => Ok(Stream::Both),
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            other => Err(format!(
                "unknown stream '{other}' (use both, stdout or stderr)"
            )),
        },
        other => Err(format!(
            "must be both, stdout or stderr, not {}",
            other.kind()
        )),
    }
}

fn points(value: &Value) -> Result<f64, String> {
    let n = match value {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        other => return Err(format!("must be a number, not {}", other.kind())),
    };
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(format!("{n} is not a number of points (zero or more)"))
    }
}

/// `+x`, `0755`, `u+rw,g-w`; a bare number (`755`) is read as its digits.
fn permission(value: &Value) -> Result<String, String> {
    let p = match value {
        Value::Int(n) => n.to_string(),
        other => text(other)?,
    };
    let ok = p
        .chars()
        .all(|c| c.is_ascii_digit() || "ugoa+-=rwxXst,".contains(c));
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "'{p}' is not a file mode (write it like +x or 0755)"
        ))
    }
}

fn mode(value: &Value) -> Result<bool, String> {
    match text(value)?.as_str() {
        "append" => Ok(true),
        "write" | "overwrite" => Ok(false),
        other => Err(format!("unknown mode '{other}' (use append)")),
    }
}

/// `'a, b'` or `[a, b]`.
fn variables(value: &Value) -> Result<Vec<String>, String> {
    let names: Vec<String> = match value {
        Value::Str(s) => s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
        Value::Seq(items) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.trim().to_owned()),
                other => Err(format!("each name must be a string, not {}", other.kind())),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("must be a list of names, not {}", other.kind())),
    };
    for name in &names {
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(format!("'{name}' is not a valid variable name"));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::annotation;

    /// Reads an annotation the way `cells.rs` does, positions as columns on line 1.
    fn attrs(text: &str) -> Result<CellAttrs, Diagnostic> {
        let entries = annotation::parse(text).expect("annotation parses").entries;
        read(&entries, &|key| {
            (1, annotation::find_key(text, key).unwrap_or(1) as u32)
        })
    }

    #[test]
    fn defaults_record() {
        let a = attrs("{}").unwrap().attrs;
        assert!(a.record);
        assert_eq!(a.exit, ExitRule::Code(0));
        assert_eq!(a.stream, Stream::Both);
    }

    #[test]
    fn reads_typed_values() {
        let c = attrs("{type: 'command', id: build-1, timeout: 10s, exit: [0, 2], stream: stderr, env: {A: 1, B: x}, privileged: true, points: 2.5, record: false, variables: 'a, b', hint: 42}").unwrap();
        let a = &c.attrs;
        assert_eq!(c.cell_type.as_deref(), Some("command"));
        assert!(c.has("env") && !c.has("tty"));
        assert_eq!(a.id.as_deref(), Some("build-1"));
        assert_eq!(a.timeout, Some(Duration::from_secs(10)));
        assert_eq!(a.exit, ExitRule::OneOf(vec![0, 2]));
        assert_eq!(a.stream, Stream::Stderr);
        assert_eq!(a.env.get("A").map(String::as_str), Some("1"));
        assert!(a.privileged && !a.record);
        assert_eq!(a.points, Some(2.5));
        assert_eq!(a.variables, vec!["a", "b"]);
        assert_eq!(a.hint.as_deref(), Some("42"));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn durations_and_exit_rules() {
        let cases: [(&str, Option<u64>); 5] = [
            ("{timeout: 10}", Some(10_000)),
            ("{timeout: 1.5}", Some(1_500)),
            ("{timeout: '500ms'}", Some(500)),
            ("{timeout: 2m}", Some(120_000)),
            ("{timeout: 5000}", Some(5_000_000)),
        ];
        for (text, want) in cases {
            let got = attrs(text)
                .unwrap()
                .attrs
                .timeout
                .map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{text}");
        }
        let exits = [
            ("{exit: 1}", ExitRule::Code(1)),
            ("{exit: 'any'}", ExitRule::Any),
            ("{exit: [1]}", ExitRule::OneOf(vec![1])),
        ];
        for (text, want) in exits {
            assert_eq!(attrs(text).unwrap().attrs.exit, want, "{text}");
        }
    }

    #[test]
    fn file_attributes() {
        let a = attrs("{type: 'file', path: 'id.js', permission: '+x', mode: 'append', variables: [host, port]}").unwrap().attrs;
        assert_eq!(a.path.as_deref(), Some("id.js"));
        assert_eq!(a.permission.as_deref(), Some("+x"));
        assert!(a.append);
        assert_eq!(a.variables, vec!["host", "port"]);
        assert_eq!(
            attrs("{permission: 755}")
                .unwrap()
                .attrs
                .permission
                .as_deref(),
            Some("755")
        );
    }

    #[test]
    fn wrong_types_are_errors_at_the_key() {
        let cases = [
            (
                "{timeout: soon}",
                2,
                "attribute 'timeout': invalid duration",
            ),
            ("{timeout: 0}", 2, "longer than zero"),
            ("{timeout: true}", 2, "must be a duration"),
            (
                "{type: 'command', exit: 'some'}",
                19,
                "attribute 'exit': must be an exit status",
            ),
            ("{exit: 256}", 2, "out of range"),
            ("{exit: []}", 2, "empty"),
            ("{skip: 'yes'}", 2, "must be true or false"),
            ("{stream: 'both2'}", 2, "unknown stream"),
            ("{env: [a]}", 2, "must be a mapping"),
            ("{env: {'A B': 1}}", 2, "not a valid variable name"),
            ("{points: -1}", 2, "points"),
            ("{id: '../x'}", 2, "not a valid id"),
            ("{id: ''}", 2, "must not be empty"),
            ("{mode: 'prepend'}", 2, "unknown mode"),
            ("{variables: 'a b'}", 2, "not a valid variable name"),
            ("{permission: 'rm -rf'}", 2, "not a file mode"),
            ("{path: 3}", 2, "must be a string"),
        ];
        for (text, column, message) in cases {
            let err = attrs(text).unwrap_err();
            assert_eq!((err.line, err.column), (1, column), "{text}: {err:?}");
            assert!(err.message.contains(message), "{text}: {err:?}");
        }
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let c = attrs("{type: 'command', shell: 'bash', wait_for: 'x', colour: 1}").unwrap();
        assert_eq!(c.attrs.shell.as_deref(), Some("bash"));
        assert_eq!(c.attrs.wait_for.as_deref(), Some("x"));
        let got: Vec<(u32, &str)> = c
            .warnings
            .iter()
            .map(|w| (w.column, w.message.as_str()))
            .collect();
        assert_eq!(got, vec![(49, "unknown attribute 'colour'; ignored")]);
    }

    #[test]
    fn background_and_docable_stream() {
        let c = attrs("{serve: true, stream: true}").unwrap();
        assert_eq!(c.background, Some("serve"));
        assert!(c.attrs.background);
        assert_eq!(c.attrs.stream, Stream::Both);
        assert_eq!(attrs("{spawn: false}").unwrap().background, None);
    }
}
