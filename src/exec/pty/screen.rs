//! What a program drew on the terminal, as text lines: the terminal's CRLF, carriage returns
//! and backspaces of line editors, erase-to-end-of-line and cursor moves along a line are
//! played out; colours and other escape sequences go. One line at a time, no full screen:
//! labs type commands and read their output, they do not run full-screen editors.

/// Plays `raw` out into text: lines separated by `\n`, the last one possibly unterminated.
pub fn render(raw: &[u8]) -> String {
    let mut screen = Screen::default();
    let text = String::from_utf8_lossy(raw);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => screen.escape(&mut chars),
            '\r' => screen.column = 0,
            '\n' => screen.newline(),
            '\x08' => screen.column = screen.column.saturating_sub(1),
            '\x07' | '\0' => {}
            c => screen.put(c),
        }
    }
    screen.finish()
}

#[derive(Default)]
struct Screen {
    done: String,
    line: Vec<char>,
    column: usize,
}

impl Screen {
    fn put(&mut self, c: char) {
        if self.column < self.line.len() {
            self.line[self.column] = c;
        } else {
            self.line.resize(self.column, ' ');
            self.line.push(c);
        }
        self.column += 1;
    }

    fn newline(&mut self) {
        self.done.extend(self.line.drain(..));
        self.done.push('\n');
        self.column = 0;
    }

    /// An escape sequence: CSI (`ESC [ params final`), OSC and friends (to BEL or `ESC \`),
    /// or a short two-byte one.
    fn escape(&mut self, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
        match chars.next() {
            Some('[') => {
                let mut params = String::new();
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        self.csi(c, &params);
                        return;
                    }
                    params.push(c);
                }
            }
            Some(']' | 'P' | '_' | '^' | 'X') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        return;
                    }
                }
            }
            Some('(' | ')' | '#' | '%') => {
                chars.next();
            }
            _ => {}
        }
    }

    fn csi(&mut self, command: char, params: &str) {
        let n = params.parse::<usize>().unwrap_or(1).max(1);
        match command {
            // Erase to the end of the line (the only erase that matters to a line editor).
            'K' if params.is_empty() || params == "0" => self.line.truncate(self.column),
            'K' if params == "2" => self.line.clear(),
            'C' => self.column += n,
            'D' => self.column = self.column.saturating_sub(n),
            'G' => self.column = n - 1,
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        self.done.extend(self.line.drain(..));
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn crlf_colours_and_titles_go() {
        assert_eq!(
            render(b"\x1b]0;title\x07\x1b[1;32mgreen\x1b[0m\r\nnext\r\n"),
            "green\nnext\n"
        );
    }

    #[test]
    fn line_editors_redraw() {
        // Typed "lss", backspace, then the editor redraws the line from its start.
        assert_eq!(render(b"$ lss\x08 \x08\r$ ls\x1b[K\r\n"), "$ ls\n");
        assert_eq!(render(b"abc\x1b[2Dx"), "axc");
        assert_eq!(render(b"prompt> "), "prompt> ");
    }

    #[test]
    fn a_cut_sequence_does_not_eat_text_after_it() {
        assert_eq!(render(b"a\x1b(Bb"), "ab");
    }
}
