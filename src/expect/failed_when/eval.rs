//! Evaluating a parsed `failed_when` expression against a cell's result.
//!
//! Values are booleans, integers and strings; output strings are borrowed, never copied.

use std::borrow::Cow;

use super::parse::{CmpOp, Expr, Method, Node, Var};

/// What the names in an expression stand for.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    pub exit_code: i32,
    pub stdout: &'a str,
    pub stderr: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value<'a> {
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
}

impl Value<'_> {
    /// JavaScript truthiness: `false`, `0` and `''` are false.
    fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Str(s) => !s.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Str(_) => "a string",
        }
    }
}

/// Evaluates `expr`: true means the cell failed. The final value counts by its truthiness.
pub fn eval(expr: &Expr, bindings: &Bindings<'_>) -> Result<bool, String> {
    Ok(value(&expr.root, bindings)?.truthy())
}

fn value<'a>(node: &Node, b: &Bindings<'a>) -> Result<Value<'a>, String> {
    Ok(match node {
        Node::Bool(v) => Value::Bool(*v),
        Node::Int(n) => Value::Int(*n),
        Node::Str(s) => Value::Str(Cow::Owned(s.clone())),
        Node::Var(Var::ExitCode) => Value::Int(i64::from(b.exit_code)),
        Node::Var(Var::Stdout) => Value::Str(Cow::Borrowed(b.stdout)),
        Node::Var(Var::Stderr) => Value::Str(Cow::Borrowed(b.stderr)),
        Node::Not(inner) => Value::Bool(!value(inner, b)?.truthy()),
        Node::Neg(inner, column) => match value(inner, b)? {
            Value::Int(n) => Value::Int(
                n.checked_neg()
                    .ok_or_else(|| format!("number out of range at column {column}"))?,
            ),
            other => {
                return Err(format!(
                    "cannot negate {} at column {column}",
                    other.type_name()
                ));
            }
        },
        // Short-circuit, as JavaScript does.
        Node::And(items) => {
            for item in items {
                if !value(item, b)?.truthy() {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Node::Or(items) => {
            for item in items {
                if value(item, b)?.truthy() {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Node::Cmp(op, left, right, column) => {
            Value::Bool(compare(*op, &value(left, b)?, &value(right, b)?, *column)?)
        }
        Node::Length(inner, column) => match value(inner, b)? {
            // JavaScript counts UTF-16 code units.
            Value::Str(s) => Value::Int(s.encode_utf16().count() as i64),
            other => {
                return Err(format!(
                    "`.length` needs a string, not {} (column {column})",
                    other.type_name()
                ));
            }
        },
        Node::Call(method, recv, args, column) => {
            let s = match value(recv, b)? {
                Value::Str(s) => s,
                other => {
                    return Err(format!(
                        "`.{}` needs a string, not {} (column {column})",
                        method_name(*method),
                        other.type_name()
                    ));
                }
            };
            let arg = match args.first() {
                Some(node) => match value(node, b)? {
                    Value::Str(a) => Some(a),
                    other => {
                        return Err(format!(
                            "`.{}` needs a string argument, not {} (column {column})",
                            method_name(*method),
                            other.type_name()
                        ));
                    }
                },
                None => None,
            };
            let arg = arg.as_deref().unwrap_or("");
            match method {
                Method::Includes => Value::Bool(s.contains(arg)),
                Method::StartsWith => Value::Bool(s.starts_with(arg)),
                Method::EndsWith => Value::Bool(s.ends_with(arg)),
                Method::Trim => Value::Str(match s {
                    Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                    Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
                }),
            }
        }
    })
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Includes => "includes",
        Method::StartsWith => "startsWith",
        Method::EndsWith => "endsWith",
        Method::Trim => "trim",
    }
}

fn compare(op: CmpOp, left: &Value<'_>, right: &Value<'_>, column: usize) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ordering: Ordering = match (left, right) {
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Str(a), Value::Str(b)) => a.as_ref().cmp(b.as_ref()),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => a.cmp(b),
        (Value::Bool(_), Value::Bool(_)) => {
            return Err(format!("cannot order booleans at column {column}"));
        }
        (a, b) => {
            return Err(format!(
                "cannot compare {} with {} at column {column}",
                a.type_name(),
                b.type_name()
            ));
        }
    };
    Ok(match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::Rng;
    use super::super::parse::parse;
    use super::*;

    fn run(src: &str, exit_code: i32, stdout: &str, stderr: &str) -> Result<bool, String> {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        eval(
            &expr,
            &Bindings {
                exit_code,
                stdout,
                stderr,
            },
        )
    }

    #[test]
    fn truth_table() {
        // (expression, exit code, stdout, stderr, failed?)
        let cases: &[(&str, i32, &str, &str, bool)] = &[
            ("exitCode != 0", 0, "", "", false),
            ("exitCode != 0", 1, "", "", true),
            ("exitCode !== 0", 2, "", "", true),
            ("exitCode === 0", 0, "", "", true),
            ("exitCode == 0", 3, "", "", false),
            ("exitCode > 1", 1, "", "", false),
            ("exitCode > 1", 2, "", "", true),
            ("exitCode >= 1", 1, "", "", true),
            ("exitCode < 0", -1, "", "", true),
            ("exitCode <= -1", -1, "", "", true),
            ("exitCode == -1", -1, "", "", true),
            ("-exitCode == 1", -1, "", "", true),
            ("!stdout.includes('hello')", 0, "say hello\n", "", false),
            ("!stdout.includes('hello')", 0, "bye\n", "", true),
            ("stderr.includes(\"x\") || exitCode > 1", 0, "", "x", true),
            ("stderr.includes(\"x\") || exitCode > 1", 2, "", "", true),
            ("stderr.includes(\"x\") || exitCode > 1", 1, "x", "", false),
            ("exitCode == 0 && stdout.includes('ok')", 0, "ok", "", true),
            ("exitCode == 0 && stdout.includes('ok')", 1, "ok", "", false),
            ("exitCode == 0 && stdout.includes('ok')", 0, "no", "", false),
            ("stdout.trim() == 'ok'", 0, "  ok\n", "", true),
            ("stdout.trim().length == 2", 0, " ok \n", "", true),
            ("stdout.length", 0, "", "", false),
            ("stdout.length", 0, "x", "", true),
            ("stdout.length == 2", 0, "\u{1f600}", "", true),
            ("stdout", 0, "", "", false),
            ("!stderr", 0, "", "", true),
            ("exitCode", 0, "", "", false),
            ("exitCode", 7, "", "", true),
            ("true", 0, "", "", true),
            ("false", 0, "", "", false),
            ("!(exitCode == 0 || exitCode == 1)", 1, "", "", false),
            ("!(exitCode == 0 || exitCode == 1)", 2, "", "", true),
            (
                "stdout.startsWith('a') && stdout.endsWith('z')",
                0,
                "a..z",
                "",
                true,
            ),
            ("stdout.includes('') ", 0, "", "", true),
            ("'abc' < 'abd'", 0, "", "", true),
            ("(exitCode > 0) == true", 1, "", "", true),
            ("stdout.includes('it\\'s')", 0, "it's", "", true),
            ("stdout == \"line\\n\"", 0, "line\n", "", true),
            (
                "exitCode == 1 || exitCode == 2 || exitCode == 3",
                3,
                "",
                "",
                true,
            ),
        ];
        for (src, code, out, err, want) in cases {
            assert_eq!(
                run(src, *code, out, err),
                Ok(*want),
                "{src} with {code} {out:?} {err:?}"
            );
        }
    }

    #[test]
    fn short_circuit_skips_errors() {
        assert_eq!(run("true || stdout == 1", 0, "", ""), Ok(true));
        assert_eq!(run("false && stdout == 1", 0, "", ""), Ok(false));
    }

    #[test]
    fn type_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "stdout == 1",
                "cannot compare a string with a number at column 8",
            ),
            (
                "exitCode == '0'",
                "cannot compare a number with a string at column 10",
            ),
            ("exitCode == true", "cannot compare a number with a boolean"),
            ("true < false", "cannot order booleans"),
            (
                "exitCode.includes('1')",
                "`.includes` needs a string, not a number",
            ),
            (
                "stdout.includes(1)",
                "needs a string argument, not a number",
            ),
            ("exitCode.length", "`.length` needs a string"),
            ("-stdout", "cannot negate a string at column 1"),
        ];
        for (src, want) in cases {
            let err = run(src, 0, "", "").unwrap_err();
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng::new(3);
        let pieces: &[&str] = &[
            "exitCode",
            "stdout",
            "stderr",
            "true",
            "false",
            "'a'",
            "\"b\\\"\"",
            "0",
            "-1",
            "42",
            "==",
            "!=",
            "===",
            "!==",
            "<",
            ">",
            "<=",
            ">=",
            "&&",
            "||",
            "!",
            "(",
            ")",
            ".",
            "includes",
            "trim",
            "length",
            "(",
            ")",
            ",",
            "-",
            "'",
            "\\",
            "é",
            "#",
            " ",
        ];
        let bindings = Bindings {
            exit_code: 1,
            stdout: "out",
            stderr: "err",
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let src: String = (0..rng.below(12)).map(|_| *rng.pick(pieces)).collect();
            if let Ok(expr) = parse(&src) {
                parsed += 1;
                let _ = eval(&expr, &bindings);
            }
        }
        assert!(parsed > 100, "only {parsed} random expressions parsed");
        for _ in 0..2_000 {
            let raw = rng.bytes(30);
            let src = String::from_utf8_lossy(&raw);
            if let Ok(expr) = parse(&src) {
                let _ = eval(&expr, &bindings);
            }
        }
    }
}
