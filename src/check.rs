//! Checking: turns what a command did into a verdict, by the rules of section 5.
//!
//! Pure. Uses `expect` for matching; never runs anything.

pub mod terminal;

use crate::expect::{self, failed_when};
use crate::notebook::{Attrs, ExitRule, Step, Stream};
use crate::outcome::{CommandRun, Failure, ShellEvent, Verdict};

/// How a command's streams must be captured for checking.
pub fn split_streams(attrs: &Attrs, stdout_only: bool) -> bool {
    if stdout_only || attrs.stream != Stream::Both {
        return true;
    }
    match attrs.failed_when.as_deref().map(failed_when::parse) {
        Some(Ok(e)) => e.names_stdout() || e.names_stderr(),
        _ => false,
    }
}

fn verdict_of(failures: Vec<Failure>) -> Verdict {
    if failures.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(failures)
    }
}

/// Failures that end any check early: a timeout or a tampered harness.
fn run_failures(run: &CommandRun) -> Option<Failure> {
    if let Some(after) = run.timed_out {
        return Some(Failure::Timeout { after });
    }
    if run.shell_event == Some(ShellEvent::Tampered) {
        return Some(Failure::Error {
            message: "an earlier cell replaced what labrun's harness relies on (a function named \
                      `builtin` or `.`, or a disabled builtin); this command did not run and a \
                      fresh shell took over"
                .into(),
        });
    }
    None
}

/// The stream a check compares.
pub fn compared_output<'a>(run: &'a CommandRun, attrs: &Attrs) -> &'a [u8] {
    match attrs.stream {
        Stream::Stderr => &run.stderr,
        _ => &run.output,
    }
}

/// Compares output with expected lines (section 5): `None` when they match.
pub fn compare_output(expected: &str, actual: &[u8], keep_ansi: bool) -> Option<Failure> {
    let patterns = match expect::parse_expected(expected) {
        Ok(p) => p,
        Err(e) => {
            return Some(Failure::Error {
                message: format!("expected output: {e}"),
            });
        }
    };
    let cmp = expect::compare(&patterns, &expect::normalize(actual, keep_ansi));
    (!cmp.passed).then_some(Failure::Output { diff: cmp.diff })
}

/// Checks a command, script or file cell.
pub fn check_command(attrs: &Attrs, expected: Option<&str>, run: &CommandRun) -> Verdict {
    if let Some(f) = run_failures(run) {
        return Verdict::Failed(vec![f]);
    }
    let mut failures = Vec::new();
    let code = run.status.code();
    match attrs.failed_when.as_deref() {
        Some(src) => match failed_when::parse(src) {
            Ok(expr) => {
                let (stdout, stderr) = if run.stderr.is_empty() && attrs.stream == Stream::Both {
                    (String::from_utf8_lossy(&run.output), Default::default())
                } else {
                    (
                        String::from_utf8_lossy(&run.output),
                        String::from_utf8_lossy(&run.stderr),
                    )
                };
                let bindings = failed_when::Bindings {
                    exit_code: code,
                    stdout: &stdout,
                    stderr: &stderr,
                };
                match failed_when::eval(&expr, &bindings) {
                    Ok(true) => failures.push(Failure::FailedWhen {
                        expression: src.to_string(),
                    }),
                    Ok(false) => {}
                    Err(e) => failures.push(Failure::Error {
                        message: format!("failed_when: {e}"),
                    }),
                }
            }
            Err(e) => failures.push(Failure::Error {
                message: format!("failed_when: {e}"),
            }),
        },
        None => {
            if !attrs.exit.accepts(code) {
                failures.push(Failure::ExitStatus {
                    expected: attrs.exit.clone(),
                    got: code,
                });
            }
        }
    }
    if let Some(text) = expected
        && let Some(f) = compare_output(text, compared_output(run, attrs), attrs.keep_ansi)
    {
        failures.push(f);
    }
    verdict_of(failures)
}

/// Checks one transcript step: its output lines and its `[N]` exit status.
pub fn check_step(step: &Step, attrs: &Attrs, run: &CommandRun) -> Verdict {
    if let Some(f) = run_failures(run) {
        return Verdict::Failed(vec![f]);
    }
    let mut failures = Vec::new();
    let code = run.status.code();
    if code != step.exit {
        failures.push(Failure::ExitStatus {
            expected: ExitRule::Code(step.exit),
            got: code,
        });
    }
    if let Some(f) = compare_output(&step.expected, &run.output, attrs.keep_ansi) {
        failures.push(f);
    }
    verdict_of(failures)
}

/// Whether `--update` may record over this verdict: it failed on its output (and, for a
/// transcript step, its `[N]`) alone.
pub fn recordable(verdict: &Verdict, transcript: bool) -> bool {
    match verdict {
        Verdict::Passed => true,
        Verdict::Skipped { .. } => false,
        Verdict::Failed(fs) => fs.iter().all(|f| match f {
            Failure::Output { .. } => true,
            Failure::ExitStatus { .. } => transcript,
            _ => false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ExitStatus;
    use std::time::Duration;

    fn run(out: &str, code: i32) -> CommandRun {
        CommandRun {
            output: out.as_bytes().to_vec(),
            stderr: Vec::new(),
            status: ExitStatus::Code(code),
            duration: Duration::ZERO,
            timed_out: None,
            truncated: 0,
            shell_event: None,
        }
    }

    fn attrs() -> Attrs {
        Attrs {
            record: true,
            ..Attrs::default()
        }
    }

    #[test]
    fn exit_rules_and_output() {
        let a = attrs();
        assert!(matches!(
            check_command(&a, Some("hi"), &run("hi\n", 0)),
            Verdict::Passed
        ));
        assert!(check_command(&a, Some("hi"), &run("ho\n", 0)).is_failed());
        assert!(check_command(&a, None, &run("", 1)).is_failed());
        let any = Attrs {
            exit: ExitRule::Any,
            ..attrs()
        };
        assert!(matches!(
            check_command(&any, None, &run("", 3)),
            Verdict::Passed
        ));
        let list = Attrs {
            exit: ExitRule::OneOf(vec![1, 2]),
            ..attrs()
        };
        assert!(matches!(
            check_command(&list, None, &run("", 2)),
            Verdict::Passed
        ));
        assert!(check_command(&list, None, &run("", 0)).is_failed());
    }

    #[test]
    fn failed_when_replaces_the_exit_check() {
        let a = Attrs {
            failed_when: Some("!stdout.includes('ok')".into()),
            ..attrs()
        };
        assert!(matches!(
            check_command(&a, None, &run("all ok\n", 1)),
            Verdict::Passed
        ));
        assert!(check_command(&a, None, &run("bad\n", 0)).is_failed());
    }

    #[test]
    fn timeouts_fail_whatever_the_output() {
        let mut r = run("hi\n", 0);
        r.timed_out = Some(Duration::from_secs(1));
        let v = check_command(&attrs(), Some("hi"), &r);
        assert!(matches!(&v, Verdict::Failed(f) if matches!(f[0], Failure::Timeout { .. })));
        assert!(!recordable(&v, false));
    }
}
