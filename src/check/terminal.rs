//! Verdicts of cells that ran on a terminal: an interactive conversation, or a `tty` command.

use std::time::Duration;

use super::{check_command, compare_output};
use crate::exec::pty::conversation::{End, Talk};
use crate::notebook::{Attrs, Step};
use crate::outcome::{CommandRun, ExitStatus, Failure, StepOutcome, Verdict};

fn screen_run(screen: &str, status: Option<ExitStatus>, duration: Duration) -> CommandRun {
    CommandRun {
        output: screen.as_bytes().to_vec(),
        stderr: Vec::new(),
        status: status.unwrap_or(ExitStatus::Signal(libc::SIGKILL)),
        duration,
        timed_out: None,
        truncated: 0,
        shell_event: None,
    }
}

/// Screen text set off from the message around it, one `| ` line each.
pub fn quoted(text: &str) -> String {
    let lines: Vec<String> = text
        .trim()
        .lines()
        .map(|l| format!("| {l}").trim_end().to_owned())
        .collect();
    lines.join("\n")
}

/// Why a conversation stopped short, in words, with the screen as it was.
fn end_failure(end: &End, prompt: &str, steps: &[Step], timeout: Duration) -> Option<Failure> {
    let typed = |step: &usize| steps.get(*step).map_or("", |s| s.command.as_str());
    let (what, screen) = match end {
        End::Exited => return None,
        End::NoPrompt { step, screen } => (
            format!(
                "the prompt '{prompt}' did not appear within {} (waiting to type '{}')",
                crate::units::show_duration(timeout),
                typed(step)
            ),
            screen,
        ),
        End::EndedEarly { step, screen } => (
            format!(
                "the program ended before its prompt '{prompt}' (waiting to type '{}')",
                typed(step)
            ),
            screen,
        ),
        End::StillRunning { screen } => (
            format!(
                "the program was still running {} after it started, with every line typed",
                crate::units::show_duration(timeout)
            ),
            screen,
        ),
    };
    Some(Failure::Error {
        message: format!("{what}; the screen showed:\n{}", quoted(screen)),
    })
}

/// Checks an interactive cell: each reply against its step's expected lines, the banner
/// when lines are written for it, how the conversation ended and the exit status.
pub fn check_interactive(
    attrs: &Attrs,
    (command, line): (&str, u32),
    banner: &str,
    steps: &[Step],
    talk: &Talk,
    status: Option<ExitStatus>,
    timeout: Duration,
) -> (Verdict, Vec<StepOutcome>) {
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    let mut record = |command: &str, line: u32, expected: &str, shown: &str| {
        let verdict = match compare_output(expected, shown.as_bytes(), attrs.keep_ansi) {
            Some(f) => {
                failures.push(f.clone());
                Verdict::Failed(vec![f])
            }
            None => Verdict::Passed,
        };
        outcomes.push(StepOutcome {
            command: command.to_owned(),
            line,
            run: screen_run(shown, Some(ExitStatus::Code(0)), Duration::ZERO),
            verdict,
        });
    };
    if !banner.is_empty() {
        record(command, line, banner, &talk.banner);
    }
    for (step, shown) in steps.iter().zip(&talk.replies) {
        record(&step.command, step.line, &step.expected, shown);
    }
    // How the program ended is a step of its own, under the line that started it, so that
    // every report shows it.
    let prompt = attrs.prompt.as_deref().unwrap_or("");
    let mut ending: Vec<Failure> = end_failure(&talk.end, prompt, steps, timeout)
        .into_iter()
        .collect();
    if let Some(code) = status.map(ExitStatus::code)
        && !attrs.exit.accepts(code)
    {
        ending.push(Failure::ExitStatus {
            expected: attrs.exit.clone(),
            got: code,
        });
    }
    if !ending.is_empty() {
        failures.extend(ending.iter().cloned());
        outcomes.push(StepOutcome {
            command: command.to_owned(),
            line,
            run: screen_run("", status, Duration::ZERO),
            verdict: Verdict::Failed(ending),
        });
    }
    let verdict = if failures.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(failures)
    };
    (verdict, outcomes)
}

/// Checks a `tty: true` command: the whole screen is its output.
pub fn check_tty(
    attrs: &Attrs,
    expected: Option<&str>,
    talk: &Talk,
    status: Option<ExitStatus>,
    timing: (Duration, Duration),
) -> (Verdict, CommandRun) {
    let (timeout, duration) = timing;
    let mut run = screen_run(&talk.banner, status, duration);
    if status.is_none() {
        run.timed_out = Some(timeout);
        run.output = match &talk.end {
            End::StillRunning { screen } => screen.as_bytes().to_vec(),
            _ => run.output,
        };
    }
    (check_command(attrs, expected, &run), run)
}
