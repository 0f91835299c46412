//! Bytes to notebook text: UTF-8 validation, the byte-order mark, the line-ending style, and a
//! line index that turns byte offsets into 1-based line:column positions.
//!
//! It never changes the text: spans index the text exactly as read, BOM and CRLF included.

use super::huge;
use super::model::{Diagnostic, LineEnding};

/// The UTF-8 byte-order mark some editors write at the start of a file.
const BOM: &str = "\u{feff}";

/// A notebook's text as read, with what the rest of the parser needs to know about its bytes.
#[derive(Debug)]
pub struct Source {
    pub text: String,
    /// Bytes of the byte-order mark at the start (0 or 3); markdown starts after it.
    pub bom: usize,
    pub line_ending: LineEnding,
    pub lines: LineIndex,
}

impl Source {
    /// Validates `bytes` as UTF-8. An invalid byte is an error at its line:column.
    pub fn decode(bytes: &[u8]) -> Result<Source, Diagnostic> {
        // The copy goes to a buffer on huge pages when it is big enough (see `huge`).
        let mut copy = Vec::with_capacity(bytes.len());
        huge::advise(&copy);
        copy.extend_from_slice(bytes);
        let text = match String::from_utf8(copy) {
            Ok(text) => text,
            Err(err) => {
                let err = err.utf8_error();
                // The prefix up to the first bad byte is valid, so positions can be computed on it.
                let valid = &bytes[..err.valid_up_to()];
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let lines = LineIndex::new(valid, bom_len(valid));
                let (line, column) = lines.position(valid, valid.len());
                return Err(Diagnostic {
                    line,
                    column,
                    message: format!(
                        "invalid utf-8 (byte 0x{:02x}); notebooks must be utf-8 text",
                        bytes[err.valid_up_to()]
                    ),
                });
            }
        };
        let bom = bom_len(&text);
        let line_ending = match text.find('\n') {
            Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => LineEnding::Crlf,
            _ => LineEnding::Lf,
        };
        let lines = LineIndex::new(&text, bom);
        Ok(Source {
            text,
            bom,
            line_ending,
            lines,
        })
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (u32, u32) {
        self.lines.position(&self.text, offset)
    }

    /// A diagnostic at a byte offset.
    pub fn diag(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.position(offset);
        Diagnostic {
            line,
            column,
            message: message.into(),
        }
    }

    /// Maps a position reported by a nested parser (YAML, JSON5) to the notebook.
    ///
    /// `base` is the byte offset where the nested text starts; `line` and `column` are 1-based
    /// and relative to it, columns counted in characters as both parsers count them. Only the
    /// first nested line is shifted by the base's column: later lines start at column 1.
    pub fn nested_position(&self, base: usize, line: usize, column: usize) -> (u32, u32) {
        let (base_line, base_column) = self.position(base);
        let line = line.max(1);
        let column = column.max(1);
        let abs_line = (base_line as usize).saturating_add(line - 1);
        let abs_column = if line == 1 {
            (base_column as usize).saturating_add(column - 1)
        } else {
            column
        };
        (clamp_u32(abs_line), clamp_u32(abs_column))
    }
}

fn bom_len(text: &str) -> usize {
    if text.starts_with(BOM) { BOM.len() } else { 0 }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Byte offsets of line starts. Lines end at `\n` (a `\r` before it belongs to the line ending),
/// as pulldown-cmark reads them; a lone `\r` is not a line break.
///
/// The parser asks about offsets in document order, so a lookup starts from the line of the
/// previous one and usually finds its answer there or a line or two further on.
///
/// Offsets are kept as `u32`: notebooks are at most 64 MiB (`MAX_NOTEBOOK_BYTES`), and the
/// index of a big notebook is half the memory it would be otherwise.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<u32>,
    len: usize,
    bom: usize,
    /// The line of the previous lookup.
    hint: std::cell::Cell<usize>,
}

/// Bytes whose high bit is set where the byte of `word` is `\n`, and nowhere else.
fn newline_mask(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    // A byte of `x` is zero exactly where `word` has a newline; no carry crosses bytes.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Calls `found` with the offset of every `\n` in `bytes`, in order, eight bytes at a time.
pub fn for_each_newline(bytes: &[u8], mut found: impl FnMut(usize)) {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut mask = newline_mask(word_of(chunk));
        while mask != 0 {
            found(base + (mask.trailing_zeros() / 8) as usize);
            mask &= mask - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b'\n' {
            found(base + i);
        }
    }
}

/// Offset of the first `\n` in `bytes`, eight bytes at a time.
pub fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mask = newline_mask(word_of(chunk));
        if mask != 0 {
            return Some(base + (mask.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == b'\n').map(|i| base + i)
}

/// Eight bytes as a little-endian word (the first byte lowest).
fn word_of(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    u64::from_le_bytes(word)
}

/// An offset as stored in the index (saturating: notebooks are far below 4 GiB).
fn offset32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

impl LineIndex {
    pub fn new(text: &str, bom: usize) -> LineIndex {
        // Room for a line every 8 bytes: more than most texts have, so the index is not copied
        // as it grows (room never written is never touched, so it costs no memory).
        let mut starts = Vec::with_capacity(text.len() / 8 + 2);
        starts.push(0);
        for_each_newline(text.as_bytes(), |i| starts.push(offset32(i + 1)));
        LineIndex {
            starts,
            len: text.len(),
            bom,
            hint: std::cell::Cell::new(0),
        }
    }

    /// Number of lines; a final line ending starts an empty last line.
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// 0-based line of a byte offset (offsets past the end map to the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        let starts = &self.starts;
        let offset = offset32(offset);
        let hint = self.hint.get().min(starts.len() - 1);
        // Gallop from the previous answer to a bracket `lo..hi` with `starts[lo] <= offset`
        // and `starts[hi] > offset` (or `hi` past the end), then search inside it: nearby
        // lookups touch a few nearby entries instead of the whole index.
        let (lo, hi) = if starts[hint] <= offset {
            let mut lo = hint;
            let mut step = 1;
            loop {
                let probe = lo + step;
                if probe >= starts.len() || starts[probe] > offset {
                    break (lo, probe.min(starts.len()));
                }
                lo = probe;
                step *= 2;
            }
        } else {
            let mut hi = hint;
            let mut step = 1;
            loop {
                if step > hi {
                    break (0, hi);
                }
                let probe = hi - step;
                if starts[probe] <= offset {
                    break (probe, hi);
                }
                hi = probe;
                step *= 2;
            }
        };
        let line = lo + starts[lo + 1..hi].partition_point(|&s| s <= offset);
        self.hint.set(line);
        line
    }

    /// Byte offset where 0-based line `line` starts; the text's length past the last line.
    pub fn start(&self, line: usize) -> usize {
        self.starts.get(line).map_or(self.len, |&s| s as usize)
    }

    /// Byte offset where the line after `line` starts: the end of `line` including its ending.
    pub fn end(&self, line: usize) -> usize {
        self.start(line + 1)
    }

    /// 1-based line and column of a byte offset. Columns count characters (a tab is one), and
    /// the byte-order mark is not a column.
    pub fn position(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let line = self.line_of(offset);
        self.position_on(text, line, offset)
    }

    /// `position` when the 0-based line of `offset` is already known.
    pub fn position_on(&self, text: &str, line: usize, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let mut start = self.start(line);
        if line == 0 {
            start = start.max(self.bom).min(offset);
        }
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (clamp_u32(line + 1), clamp_u32(column + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_points_at_the_first_bad_byte() {
        let cases: [(&[u8], u32, u32); 4] = [
            (b"\xff", 1, 1),
            (b"ab\xc3", 1, 3),
            (b"line one\nh\xc3\xa9llo \xfe", 2, 7),
            (b"\xef\xbb\xbfx\r\ny\r\nzz\x80", 3, 3),
        ];
        for (bytes, line, column) in cases {
            let err = Source::decode(bytes).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{bytes:?}");
            assert!(err.message.starts_with("invalid utf-8"), "{}", err.message);
        }
    }

    #[test]
    fn bom_and_line_endings() {
        let s = Source::decode(b"\xef\xbb\xbf# T\r\nx\n").unwrap();
        assert_eq!(s.bom, 3);
        assert_eq!(s.line_ending, LineEnding::Crlf);
        assert_eq!(s.position(3), (1, 1), "the bom is not a column");
        assert_eq!(s.position(5), (1, 3));
        let s = Source::decode(b"a\nb\r\n").unwrap();
        assert_eq!((s.bom, s.line_ending), (0, LineEnding::Lf));
        assert_eq!(Source::decode(b"").unwrap().line_ending, LineEnding::Lf);
    }

    #[test]
    fn positions() {
        let text = "ab\ncd\r\n\u{e9}f\n";
        let idx = LineIndex::new(text, 0);
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (5, (2, 3)),
            (6, (2, 4)),
            (7, (3, 1)),
            (9, (3, 2)),
            (11, (4, 1)),
            (500, (4, 1)),
        ];
        for (offset, want) in cases {
            assert_eq!(idx.position(text, offset), want, "offset {offset}");
        }
        assert_eq!(idx.count(), 4);
        assert_eq!((idx.start(1), idx.end(1), idx.start(9)), (3, 7, text.len()));
    }

    #[test]
    fn lookups_in_any_order_agree_with_a_search_of_the_whole_index() {
        let mut text = String::new();
        for n in 0..300 {
            text.push_str(&"x".repeat(n % 13));
            text.push(if n % 7 == 0 { '\r' } else { '\n' });
        }
        let idx = LineIndex::new(&text, 0);
        let whole = |offset: usize| {
            idx.starts
                .partition_point(|&s| s as usize <= offset)
                .saturating_sub(1)
        };
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut offsets: Vec<usize> = (0..=text.len() + 3).collect();
        offsets.extend((0..=text.len()).rev());
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            offsets.push(seed as usize % (text.len() + 5));
        }
        for offset in offsets {
            assert_eq!(idx.line_of(offset), whole(offset), "offset {offset}");
        }
        let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let mut found = Vec::new();
        for_each_newline(text.as_bytes(), |i| found.push(i));
        assert_eq!(found, newlines);
        for from in 0..text.len() {
            let want = text[from..].find('\n');
            assert_eq!(find_newline(&text.as_bytes()[from..]), want, "from {from}");
        }
    }

    #[test]
    fn nested_positions_shift_only_the_first_line() {
        let s = Source::decode(b"# x\n```bash | {a: 1}\n").unwrap();
        let base = s.text.find('{').unwrap();
        assert_eq!(s.nested_position(base, 1, 1), (2, 11));
        assert_eq!(s.nested_position(base, 1, 4), (2, 14));
        assert_eq!(s.nested_position(base, 2, 4), (3, 4));
    }
}
