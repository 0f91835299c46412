//! Interactive bodies: the line that starts the program, then lines typed at its prompt and
//! the screen output expected after each (section 3 of the format).
//!
//! ```text
//! $ PS1='C-$ ' chroot rootfs /bin/busybox sh     <- starts the program (`$ ` optional)
//! C-$ touch HELLO.txt                            <- typed when `C-$ ` shows
//! C-$ ls
//! HELLO.txt                                      <- expected between this prompt and the next
//! C-$ exit
//! ```

use super::model::{Span, Step};

/// An interactive cell's body, read.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub command: String,
    /// Expected lines before the first prompt, joined with `\n`.
    pub banner: String,
    pub steps: Vec<Step>,
}

/// Reads `body` (whose first line is notebook line `first_line`) with `prompt`.
pub fn parse(body: &str, prompt: &str, first_line: u32) -> Result<Conversation, String> {
    let mut lines = body.lines().zip(first_line..);
    let command = loop {
        match lines.next() {
            Some((text, _)) if text.trim().is_empty() => continue,
            Some((text, _)) => break text.strip_prefix("$ ").unwrap_or(text).to_owned(),
            None => {
                return Err(
                    "an interactive cell needs a first line that starts its program".into(),
                );
            }
        }
    };
    let mut banner: Vec<&str> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    for (text, line) in lines {
        if let Some(typed) = typed_text(text, prompt) {
            steps.push(step(typed, line));
            continue;
        }
        let expected = match steps.last_mut() {
            Some(step) => &mut step.expected,
            None => {
                banner.push(text);
                continue;
            }
        };
        if !expected.is_empty() || text.trim().is_empty() {
            expected.push('\n');
        }
        expected.push_str(text);
    }
    for step in &mut steps {
        step.expected = step.expected.trim_end_matches('\n').to_owned();
    }
    Ok(Conversation {
        command,
        banner: banner.join("\n").trim().to_owned(),
        steps,
    })
}

/// The text typed on a line that starts with the prompt (trailing blanks of the prompt may be
/// missing on an empty line).
fn typed_text<'a>(text: &'a str, prompt: &str) -> Option<&'a str> {
    text.strip_prefix(prompt)
        .or_else(|| (text == prompt.trim_end()).then_some(""))
}

fn step(typed: &str, line: u32) -> Step {
    Step {
        command: typed.to_owned(),
        line,
        expected: String::new(),
        expected_span: Span::default(),
        exit: 0,
        exit_written: false,
        exit_span: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workshop_session() {
        let body = "$ PS1='C-$ ' chroot rootfs /bin/busybox sh\nC-$ touch HELLO.txt\nC-$ ls\nHELLO.txt  bin\n\nsbin\nC-$ exit\n";
        let c = parse(body, "C-$ ", 10).unwrap();
        assert_eq!(c.command, "PS1='C-$ ' chroot rootfs /bin/busybox sh");
        assert_eq!(c.banner, "");
        let typed: Vec<(&str, u32, &str)> = c
            .steps
            .iter()
            .map(|s| (s.command.as_str(), s.line, s.expected.as_str()))
            .collect();
        assert_eq!(
            typed,
            vec![
                ("touch HELLO.txt", 11, ""),
                ("ls", 12, "HELLO.txt  bin\n\nsbin"),
                ("exit", 16, "")
            ]
        );
    }

    #[test]
    fn banner_and_bare_command() {
        let c = parse("\npython3 -i\nPython 3[..]\n>>> 1+1\n2\n>>>\n", ">>> ", 1).unwrap();
        assert_eq!(c.command, "python3 -i");
        assert_eq!(c.banner, "Python 3[..]");
        assert_eq!(c.steps.len(), 2);
        assert_eq!(c.steps[1].command, "");
    }

    #[test]
    fn an_empty_body_is_an_error() {
        assert!(parse("\n\n", "$ ", 1).is_err());
    }
}
