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
    /// Bytes of screen dropped past the output cap.
    pub truncated: u64,
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

/// What the program showed since the last typed line, kept to the cell's output cap (the
/// oldest bytes go: a prompt is at the end).
struct Segment {
    raw: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Segment {
    async fn read(&mut self, term: &Terminal, deadline: Instant) -> io::Result<Read> {
        let read = term.read(&mut self.raw, deadline).await?;
        if self.raw.len() > self.cap {
            let excess = self.raw.len() - self.cap;
            self.raw.drain(..excess);
            self.dropped += excess as u64;
        }
        Ok(read)
    }

    /// Whether the screen's last line ends with `prompt` (only that line is played out).
    fn ends_with(&self, prompt: &str) -> bool {
        let start = self
            .raw
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        render(&self.raw[start..]).ends_with(prompt)
    }

    fn shown(&self) -> String {
        render(&self.raw)
    }

    /// Starts the next segment; what was dropped stays counted.
    fn restart(&mut self) {
        self.raw.clear();
    }
}

/// Plays `script` against the program on `term` until it exits or `deadline` passes, keeping
/// at most `cap` bytes of screen between two prompts.
pub async fn converse(
    term: &Terminal,
    script: &Script<'_>,
    cap: u64,
    deadline: Instant,
) -> io::Result<Talk> {
    let mut segment = Segment {
        raw: Vec::new(),
        cap: usize::try_from(cap).unwrap_or(usize::MAX).max(1),
        dropped: 0,
    };
    let mut talk = Talk::default();
    let prompt = script.prompt.unwrap_or_default();
    for (step, line) in script.typed.iter().enumerate() {
        while !segment.ends_with(prompt) {
            let end = match segment.read(term, deadline).await? {
                Read::Bytes(_) => continue,
                Read::Closed => End::EndedEarly {
                    step,
                    screen: segment.shown(),
                },
                Read::TimedOut => End::NoPrompt {
                    step,
                    screen: segment.shown(),
                },
            };
            talk.end = end;
            talk.truncated = segment.dropped;
            return Ok(talk);
        }
        let shown = segment.shown();
        let before = shown.strip_suffix(prompt).unwrap_or(&shown).to_owned();
        keep(&mut talk, before, script.typed, step);
        term.type_in(format!("{line}\r").as_bytes()).await?;
        segment.restart();
    }
    if script.end_of_file {
        term.type_in(b"\x04").await?;
    }
    loop {
        match segment.read(term, deadline).await? {
            Read::Bytes(_) => {}
            Read::Closed => break,
            Read::TimedOut => {
                talk.end = End::StillRunning {
                    screen: segment.shown(),
                };
                talk.truncated = segment.dropped;
                return Ok(talk);
            }
        }
    }
    keep(&mut talk, segment.shown(), script.typed, script.typed.len());
    talk.truncated = segment.dropped;
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
