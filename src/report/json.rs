//! `--format json`: one machine-readable document for the whole invocation, printed at the end.
//!
//! Output bytes are given as text when they are UTF-8 and as `*_base64` otherwise, so
//! nothing a cell printed is lost or mangled.

use serde_json::{Value, json};

use super::out::Out;
use super::{Event, Reporter, Summary};
use crate::expect::{DiffLine, display_line, render_diff};
use crate::notebook::ExitRule;
use crate::outcome::{CellOutcome, CommandRun, ExitStatus, Failure, NotebookOutcome, Verdict};

pub struct JsonReporter {
    out: Out,
    notebooks: Vec<Value>,
}

impl JsonReporter {
    pub fn new(out: Out) -> Self {
        JsonReporter {
            out,
            notebooks: Vec::new(),
        }
    }
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn bytes_field(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            obj.insert(name.into(), Value::String(text.into()));
        }
        Err(_) => {
            obj.insert(format!("{name}_base64"), Value::String(base64(bytes)));
        }
    }
}

fn exit_rule(rule: &ExitRule) -> Value {
    match rule {
        ExitRule::Code(c) => json!(c),
        ExitRule::OneOf(cs) => json!(cs),
        ExitRule::Any => json!("any"),
    }
}

fn failure(f: &Failure) -> Value {
    match f {
        Failure::Output { diff } => {
            let lines: Vec<Value> = diff
                .iter()
                .map(|l| match l {
                    DiffLine::Same(b) => json!({"same": display_line(b)}),
                    DiffLine::Missing(t) => json!({"expected": t}),
                    DiffLine::Unexpected(b) => json!({"actual": display_line(b)}),
                })
                .collect();
            json!({"kind": "output", "diff": render_diff(diff, false), "lines": lines})
        }
        Failure::ExitStatus { expected, got } => {
            json!({"kind": "exit_status", "expected": exit_rule(expected), "got": got})
        }
        Failure::Timeout { after } => json!({"kind": "timeout", "after_ms": millis(*after)}),
        Failure::FailedWhen { expression } => {
            json!({"kind": "failed_when", "expression": expression})
        }
        Failure::Error { message } => json!({"kind": "error", "message": message}),
    }
}

fn verdict_fields(v: &Verdict) -> (Value, Value, Vec<Value>) {
    match v {
        Verdict::Passed => (json!("passed"), Value::Null, vec![]),
        Verdict::Skipped { reason } => (json!("skipped"), json!(reason), vec![]),
        Verdict::Failed(fs) => (
            json!("failed"),
            Value::Null,
            fs.iter().map(failure).collect(),
        ),
    }
}

fn run_json(run: &CommandRun) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("exit_code".into(), json!(run.status.code()));
    if let ExitStatus::Signal(s) = run.status {
        m.insert("signal".into(), json!(s));
    }
    bytes_field(&mut m, "output", &run.output);
    if !run.stderr.is_empty() {
        bytes_field(&mut m, "stderr", &run.stderr);
    }
    m.insert("duration_ms".into(), json!(millis(run.duration)));
    m.insert("timed_out".into(), json!(run.timed_out.is_some()));
    m.insert("truncated_bytes".into(), json!(run.truncated));
    m
}

fn cell_json(c: &CellOutcome) -> Value {
    let (status, reason, failures) = verdict_fields(&c.verdict);
    let steps: Vec<Value> = c
        .steps
        .iter()
        .map(|s| {
            let (st, _, fs) = verdict_fields(&s.verdict);
            let mut m = run_json(&s.run);
            m.insert("command".into(), json!(s.command));
            m.insert("line".into(), json!(s.line));
            m.insert("status".into(), st);
            m.insert("failures".into(), Value::Array(fs));
            Value::Object(m)
        })
        .collect();
    json!({
        "id": c.id.0,
        "line": c.line,
        "kind": c.kind,
        "status": status,
        "reason": reason,
        "duration_ms": millis(c.duration),
        "failures": failures,
        "steps": steps,
        "notes": c.notes,
    })
}

fn notebook_json(n: &NotebookOutcome, backend: &str) -> Value {
    json!({
        "path": n.path.display().to_string(),
        "backend": backend,
        "passed": n.passed(),
        "failed": n.failed(),
        "skipped": n.skipped(),
        "duration_ms": millis(n.duration),
        "aborted": n.aborted,
        "warnings": n.warnings,
        "cells": n.cells.iter().map(cell_json).collect::<Vec<_>>(),
    })
}

impl Reporter for JsonReporter {
    fn event(&mut self, event: &Event) {
        if let Event::NotebookFinished { plan, outcome } = event {
            self.notebooks
                .push(notebook_json(outcome, plan.env.backend.name()));
        }
    }

    fn finish(&mut self, summary: &Summary) {
        let doc = json!({
            "labrun": env!("CARGO_PKG_VERSION"),
            "exit_code": summary.exit_code,
            "summary": {
                "notebooks": summary.notebooks,
                "passed": summary.passed,
                "failed": summary.failed,
                "skipped": summary.skipped,
                "duration_ms": millis(summary.elapsed),
            },
            "errors": summary.errors,
            "notebooks": self.notebooks,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        self.out.write(&text);
        self.out.write("\n");
        self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
