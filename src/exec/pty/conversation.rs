//! Driving a program on a terminal as a learner would: wait for its prompt, type a line,
//! read what it shows until the next prompt; at the end, wait for it to exit.
//!
//! What comes back is text as `screen` renders it, the echo of each typed line removed, so
//! expected output is only what the program itself printed.

use std::io;
use std::time::Instant;

use super::screen::render;
use super::terminal::{Read, Terminal};

/// What to type, and when.
pub struct Script<'a> {
    /// What the program shows when it waits for a line (none for a `tty` command).
    pub prompt: Option<&'a str>,
    /// Lines to type, one per prompt.
    pub typed: &'a [String],
    /// Send end-of-file once everything was typed (a `tty` command's stdin ends).
    pub end_of_file: bool,
}

/// The screen, cut at the prompts.
#[derive(Debug, Default)]
pub struct Talk {
    /// What the program showed before the first prompt (everything, without prompts).
    pub banner: String,
    /// What it showed after each typed line, up to the next prompt or its end.
    pub replies: Vec<String>,
    pub end: End,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum End {
    /// Every line was typed and the program closed the terminal.
    #[default]
    Exited,
    /// The prompt for typed line `step` (0-based) never came before the deadline.
    NoPrompt { step: usize, screen: String },
    /// The program ended before the prompt for typed line `step`.
    EndedEarly { step: usize, screen: String },
    /// Everything was typed but the program was still running at the deadline.
    StillRunning { screen: String },
}

/// Plays `script` against the program on `term` until it exits or `deadline` passes.
pub async fn converse(term: &Terminal, script: &Script<'_>, deadline: Instant) -> io::Result<Talk> {
    let mut raw = Vec::new();
    let mut mark = 0;
    let mut talk = Talk::default();
    for (step, line) in script.typed.iter().enumerate() {
        let prompt = script.prompt.unwrap_or_default();
        let shown = loop {
            let segment = render(&raw[mark..]);
            if let Some(before) = segment.strip_suffix(prompt) {
                break before.to_owned();
            }
            match term.read(&mut raw, deadline).await? {
                Read::Bytes(_) => {}
                Read::Closed => {
                    talk.end = End::EndedEarly {
                        step,
                        screen: segment,
                    };
                    return Ok(talk);
                }
                Read::TimedOut => {
                    talk.end = End::NoPrompt {
                        step,
                        screen: segment,
                    };
                    return Ok(talk);
                }
            }
        };
        keep(&mut talk, shown, script.typed, step);
        term.type_in(format!("{line}\r").as_bytes()).await?;
        mark = raw.len();
    }
    if script.end_of_file {
        term.type_in(b"\x04").await?;
    }
    loop {
        match term.read(&mut raw, deadline).await? {
            Read::Bytes(_) => {}
            Read::Closed => break,
            Read::TimedOut => {
                talk.end = End::StillRunning {
                    screen: render(&raw[mark..]),
                };
                return Ok(talk);
            }
        }
    }
    let shown = render(&raw[mark..]);
    keep(&mut talk, shown, script.typed, script.typed.len());
    Ok(talk)
}

/// Files what the screen showed before typed line `step`: the banner before the first, the
/// reply to the line before otherwise.
fn keep(talk: &mut Talk, shown: String, typed: &[String], step: usize) {
    match step.checked_sub(1) {
        None => talk.banner = shown,
        Some(previous) => talk.replies.push(without_echo(&shown, &typed[previous])),
    }
}

/// `screen` without the terminal's echo of `typed` on its first line.
fn without_echo(screen: &str, typed: &str) -> String {
    let (first, rest) = screen.split_once('\n').unwrap_or((screen, ""));
    if first.trim_end() == typed.trim_end() {
        rest.to_owned()
    } else {
        screen.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_removed_only_when_it_is_there() {
        assert_eq!(without_echo("ls\nHELLO.txt\n", "ls"), "HELLO.txt\n");
        assert_eq!(
            without_echo("secret output\n", "hunter2"),
            "secret output\n"
        );
        assert_eq!(without_echo("exit\n", "exit"), "");
    }
}
