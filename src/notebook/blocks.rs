//! Markdown structure: the fenced code blocks of a notebook with exact byte spans, the headings
//! between them, and the first HTML comment (docable's setup block).
//!
//! pulldown-cmark decides what is a fenced block (lists, blockquotes, tabs, nested fences,
//! unclosed fences all as CommonMark says); this file maps its events back to source lines.
//! It does not decide which blocks are cells.

use std::borrow::Cow;
use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::model::Span;
use super::source::{Source, find_newline};
#[cfg(test)]
use super::transcript::BodyLine;
use super::transcript::{RawLine, is_blank};

/// A fenced code block as written.
#[derive(Debug, Clone)]
pub struct Fenced<'a> {
    /// From the opening fence's first character to the closing fence's last (to the end of the
    /// block's container when unclosed).
    pub block: Range<usize>,
    /// 1-based line of the opening fence.
    pub line: u32,
    /// 1-based column of the opening fence.
    pub column: u32,
    /// The fence as written: "```", "~~~~".
    pub fence: &'a str,
    /// Columns before the fence on its line (tabs to the next multiple of 4).
    pub indent: usize,
    /// The info string as written in the source (not unescaped), trimmed.
    pub info: Range<usize>,
    /// Whole source lines between the fences (empty, at the closing fence's line, when none).
    pub body: Span,
    pub closed: bool,
    /// pulldown-cmark's text of the body, piece by piece, with the source range of each.
    pieces: Pieces<'a>,
    /// Start of the block's last line, where the closing fence is when `closed`.
    last_line_start: usize,
}

/// One of pulldown-cmark's text events inside a code block, with its source range.
type Piece<'a> = (CowStr<'a>, Range<usize>);

/// The pieces of a block's body. Most bodies are one piece (pulldown-cmark joins the lines of
/// a block outside any container), which is kept without allocating.
#[derive(Debug, Clone, Default)]
enum Pieces<'a> {
    #[default]
    Empty,
    One(Piece<'a>),
    Many(Vec<Piece<'a>>),
}

impl<'a> Pieces<'a> {
    fn push(&mut self, piece: Piece<'a>) {
        match self {
            Pieces::Many(all) => all.push(piece),
            Pieces::Empty => *self = Pieces::One(piece),
            Pieces::One(_) => {
                if let Pieces::One(first) = std::mem::take(self) {
                    *self = Pieces::Many(vec![first, piece]);
                }
            }
        }
    }

    fn as_slice(&self) -> &[Piece<'a>] {
        match self {
            Pieces::Empty => &[],
            Pieces::One(piece) => std::slice::from_ref(piece),
            Pieces::Many(all) => all,
        }
    }
}

/// A block's body, read out of its pieces, lines and all (for tests: cells read a body with
/// `read_body_into`, into buffers they reuse).
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct Body {
    pub lines: Vec<BodyLine>,
    /// The body with container prefixes removed and CRLF turned into LF.
    pub text: String,
    /// What each line carries before its content (list indentation, `> `).
    pub prefix: String,
}

/// An HTML comment block: `<!--` at `start`, its text between the markers at `inner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub start: usize,
    pub inner: Range<usize>,
}

#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A heading's plain text.
    Heading(Cow<'a, str>),
    Fenced(Fenced<'a>),
}

/// Walks the markdown from byte `from` (after any front matter) to the end, handing each
/// heading and fenced block to `visit` as it is found; stops at the first error `visit`
/// returns. Returns the first HTML comment.
pub fn scan<'a, E>(
    src: &'a Source,
    from: usize,
    mut visit: impl FnMut(Item<'a>) -> Result<(), E>,
) -> Result<Option<Comment>, E> {
    let markdown = &src.text[from..];
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut first_comment = None;
    let mut heading: Option<Cow<'a, str>> = None;
    let mut code: Option<(Range<usize>, Pieces<'a>)> = None;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        let range = range.start + from..range.end + from;
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(Cow::Borrowed("")),
            Event::End(TagEnd::Heading(_)) => {
                if let Some(text) = heading.take() {
                    visit(Item::Heading(text))?;
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                code = Some((range, Pieces::Empty))
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((block, pieces)) = code.take() {
                    visit(Item::Fenced(fenced(src, block, pieces)))?;
                }
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some((_, pieces)) = code.as_mut() {
                    pieces.push((text, range));
                } else if let Some(h) = heading.as_mut() {
                    match text {
                        // A heading of one piece of source text borrows it.
                        CowStr::Borrowed(piece) if h.is_empty() => *h = Cow::Borrowed(piece),
                        other => h.to_mut().push_str(&other),
                    }
                }
            }
            Event::Start(Tag::HtmlBlock) if first_comment.is_none() => {
                first_comment = comment(src, range);
            }
            _ => {}
        }
    }
    Ok(first_comment)
}

fn comment(src: &Source, range: Range<usize>) -> Option<Comment> {
    let text = &src.text[range.clone()];
    let lead = text.len() - text.trim_start().len();
    let start = range.start + lead;
    let body = src.text[start..range.end].strip_prefix("<!--")?;
    let close = body.find("-->")?;
    let inner = start + 4..start + 4 + close;
    Some(Comment { start, inner })
}

fn fenced<'a>(src: &'a Source, block: Range<usize>, pieces: Pieces<'a>) -> Fenced<'a> {
    let text = src.text.as_str();
    let idx = &src.lines;
    let open_line = idx.line_of(block.start);
    let (line, column) = idx.position_on(text, open_line, block.start);
    let line_start = idx.start(open_line);

    let fence_char = text[block.start..].chars().next().unwrap_or('`');
    let fence_len = text[block.start..]
        .bytes()
        .take_while(|&b| b == fence_char as u8)
        .count();
    let fence = &text[block.start..block.start + fence_len];

    // The opening line ends at the first `\n` after the fence: where the next line starts.
    let open_end = if open_line + 1 < idx.count() {
        idx.start(open_line + 1) - 1
    } else {
        text.len()
    };
    let info_raw = &text[block.start + fence_len..open_end];
    let info_start = block.start + fence_len + (info_raw.len() - info_raw.trim_start().len());
    let info_end = block.start + fence_len + info_raw.trim_end().len();
    let info = info_start..info_end.max(info_start);

    let indent = columns(&text[line_start..block.start]);

    // Closed when the block's last line is a fence of at least the opening's length, and is
    // not a body line (pulldown-cmark runs an unclosed block to the end of its container).
    let last_line = idx.line_of(block.end.saturating_sub(1).max(block.start));
    let last_line_start = idx.start(last_line);
    let last_is_body = pieces
        .as_slice()
        .last()
        .is_some_and(|(_, r)| r.end > last_line_start);
    let closing = text[last_line_start.max(block.start)..block.end].trim_end();
    let run = closing.len() - closing.trim_end_matches(fence_char).len();
    let closed = last_line != open_line && !last_is_body && run >= fence_len;

    let body_start = idx.start(open_line + 1).min(block.end);
    let body_line = u32::try_from(open_line + 2).unwrap_or(u32::MAX);
    let body = Span {
        start: body_start,
        end: if closed {
            last_line_start
        } else {
            block.end.max(body_start)
        },
        line: body_line,
    };

    Fenced {
        block,
        line,
        column,
        fence,
        indent,
        info,
        body,
        closed,
        pieces,
        last_line_start,
    }
}

impl Fenced<'_> {
    /// Reads the body's text and line prefix out of pulldown-cmark's pieces, and its lines
    /// when `with_lines`.
    #[cfg(test)]
    pub fn read_body(&self, src: &Source, with_lines: bool) -> Body {
        let mut text = String::new();
        let mut raw = Vec::new();
        let prefix = self.read_body_into(src, &mut text, with_lines.then_some(&mut raw));
        let lines = raw
            .iter()
            .map(|l| BodyLine {
                text: text[l.text.clone()].to_owned(),
                line: l.line,
                column: l.column,
                start: l.start,
                end: l.end,
            })
            .collect();
        Body {
            lines,
            text,
            prefix,
        }
    }

    /// Reads the body out of pulldown-cmark's pieces: appends its text to `body_text` (container
    /// prefixes removed, CRLF turned into LF), and its lines to `lines` when given (a transcript
    /// needs them; their text ranges are offsets in `body_text`). Returns the line prefix.
    ///
    /// The caller owns the buffers, so a body read only to be looked at reuses them.
    pub fn read_body_into(
        &self,
        src: &Source,
        body_text: &mut String,
        mut lines: Option<&mut Vec<RawLine>>,
    ) -> String {
        let text = &src.text;
        let idx = &src.lines;
        let with_lines = lines.is_some();
        body_text.reserve(self.body.end - self.body.start);
        let mut prefix: Option<&str> = None;
        let mut at_line_start = true;
        for (piece, range) in self.pieces.as_slice() {
            let piece: &str = piece;
            let base_line = if with_lines || prefix.is_none() {
                idx.line_of(range.start)
            } else {
                0
            };
            let verbatim = piece.len() == range.len();
            // The piece is the source's own bytes at `range` (pulldown-cmark borrowed them).
            let exact =
                verbatim && std::ptr::eq(piece.as_ptr(), text.as_ptr().wrapping_add(range.start));
            let mut newlines = 0;
            let mut k = 0;
            // The piece's lines, each with its `\n` (the last one may have none).
            while k < piece.len() {
                let (content_end, segment_end) = match find_newline(&piece.as_bytes()[k..]) {
                    Some(i) => (k + i, k + i + 1),
                    None => (piece.len(), piece.len()),
                };
                let ends = segment_end > content_end;
                let content = &piece[k..content_end];
                if at_line_start && k > 0 && exact {
                    // A line that starts inside a piece of the source: right after the piece's
                    // `\n`, with nothing before its text (so no prefix, and column 1), and it
                    // ends at its own `\n` when the piece holds it.
                    let src_line = base_line + newlines;
                    let line_start = range.start + k;
                    if prefix.is_none() && !is_blank(content) {
                        prefix = Some("");
                    }
                    if let Some(lines) = lines.as_deref_mut() {
                        lines.push(RawLine {
                            text: body_text.len()..body_text.len(),
                            line: u32::try_from(src_line + 1).unwrap_or(u32::MAX),
                            column: 1,
                            start: line_start,
                            end: if ends {
                                range.start + segment_end
                            } else {
                                idx.end(src_line)
                            },
                        });
                    }
                } else if at_line_start && (with_lines || prefix.is_none()) {
                    let src_line = base_line + newlines;
                    let line_start = idx.start(src_line);
                    // Where the line's text starts in the source, when that is known exactly.
                    let text_offset = if k == 0 {
                        range.start
                    } else if verbatim {
                        range.start + k
                    } else {
                        line_start
                    };
                    let blank = is_blank(content);
                    if prefix.is_none() && !blank {
                        prefix = text.get(line_start.min(text_offset)..text_offset);
                    }
                    if let Some(lines) = lines.as_deref_mut() {
                        // A blank line's piece may sit on its `\r\n`: column 1 says more.
                        let from = if src_line == 0 {
                            line_start.max(src.bom)
                        } else {
                            line_start
                        };
                        let column = match text.get(from..text_offset) {
                            Some(before) if !blank => before.chars().count() + 1,
                            _ => 1,
                        };
                        lines.push(RawLine {
                            text: body_text.len()..body_text.len(),
                            line: u32::try_from(src_line + 1).unwrap_or(u32::MAX),
                            column: u32::try_from(column).unwrap_or(u32::MAX),
                            start: line_start,
                            end: idx.end(src_line),
                        });
                    }
                }
                at_line_start = false;
                let content = content.strip_suffix('\r').unwrap_or(content);
                body_text.push_str(content);
                if let Some(last) = lines.as_deref_mut().and_then(|l| l.last_mut()) {
                    last.text.end = body_text.len();
                }
                if ends {
                    body_text.push('\n');
                    newlines += 1;
                    at_line_start = true;
                }
                k = segment_end;
            }
        }
        match prefix {
            Some(p) => p.to_owned(),
            None => self.fallback_prefix(text),
        }
    }

    /// With no body line to learn from: the closing fence's line up to the fence.
    fn fallback_prefix(&self, text: &str) -> String {
        if !self.closed {
            return " ".repeat(self.indent);
        }
        let from = self.last_line_start.max(self.block.start);
        let closing = text[from..self.block.end].trim_end();
        let fence_char = self.fence.chars().next().unwrap_or('`');
        let run_start = from + closing.trim_end_matches(fence_char).len();
        text[self.last_line_start..run_start].to_owned()
    }
}

/// Width in columns of a line's leading text, tabs advancing to the next multiple of 4.
fn columns(text: &str) -> usize {
    text.chars().fold(0, |col, c| {
        if c == '\t' {
            (col / 4 + 1) * 4
        } else {
            col + 1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each fenced block with its body read.
    fn blocks(md: &str) -> Vec<(Fenced<'static>, Body)> {
        let src: &'static Source = Box::leak(Box::new(Source::decode(md.as_bytes()).unwrap()));
        let mut out = Vec::new();
        scan(src, src.bom, |item| {
            if let Item::Fenced(f) = item {
                let body = f.read_body(src, true);
                out.push((f, body));
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    fn one(md: &str) -> (Fenced<'static>, Body) {
        let mut all = blocks(md);
        assert_eq!(all.len(), 1, "{md:?}");
        all.remove(0)
    }

    /// (markdown, block, body, text, info, fence, indent, prefix, closed)
    type SpanCase = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        usize,
        &'static str,
        bool,
    );

    #[test]
    fn spans_are_exact() {
        let cases: [SpanCase; 14] = [
            (
                "```bash\necho a\n```\n",
                "```bash\necho a\n```",
                "echo a\n",
                "echo a\n",
                "bash",
                "```",
                0,
                "",
                true,
            ),
            (
                "# T\r\n\r\n```bash | {a: 1}\r\n$ x\r\ny\r\n```\r\n",
                "```bash | {a: 1}\r\n$ x\r\ny\r\n```",
                "$ x\r\ny\r\n",
                "$ x\ny\n",
                "bash | {a: 1}",
                "```",
                0,
                "",
                true,
            ),
            (
                "- item\n\n  ```sh\n  echo a\n    b\n  ```\n",
                "```sh\n  echo a\n    b\n  ```",
                "  echo a\n    b\n",
                "echo a\n  b\n",
                "sh",
                "```",
                2,
                "  ",
                true,
            ),
            (
                "> ```bash\n> echo a\n>   b\n> ```\n",
                "```bash\n> echo a\n>   b\n> ```",
                "> echo a\n>   b\n",
                "echo a\n  b\n",
                "bash",
                "```",
                2,
                "> ",
                true,
            ),
            (
                "````md\n```\ninner\n```\n````\n",
                "````md\n```\ninner\n```\n````",
                "```\ninner\n```\n",
                "```\ninner\n```\n",
                "md",
                "````",
                0,
                "",
                true,
            ),
            (
                "~~~ bash | {x: 1}  \nz\n~~~\n",
                "~~~ bash | {x: 1}  \nz\n~~~",
                "z\n",
                "z\n",
                "bash | {x: 1}",
                "~~~",
                0,
                "",
                true,
            ),
            ("```\n```\n", "```\n```", "", "", "", "```", 0, "", true),
            (
                "- a\n\t```\n\tx\n\t\ty\n\t```\n",
                "```\n\tx\n\t\ty\n\t```",
                "\tx\n\t\ty\n",
                "x\n\ty\n",
                "",
                "```",
                4,
                "\t",
                true,
            ),
            (
                "```bash\nx\n```   \nafter\n",
                "```bash\nx\n```   ",
                "x\n",
                "x\n",
                "bash",
                "```",
                0,
                "",
                true,
            ),
            (
                "```\nx\n`````\n",
                "```\nx\n`````",
                "x\n",
                "x\n",
                "",
                "```",
                0,
                "",
                true,
            ),
            (
                "```bash\n\n\n```\n",
                "```bash\n\n\n```",
                "\n\n",
                "\n\n",
                "bash",
                "```",
                0,
                "",
                true,
            ),
            (
                "```bash\nunclosed\nmore\n",
                "```bash\nunclosed\nmore\n",
                "unclosed\nmore\n",
                "unclosed\nmore\n",
                "bash",
                "```",
                0,
                "",
                false,
            ),
            (
                "```bash\n    ```\n",
                "```bash\n    ```\n",
                "    ```\n",
                "    ```\n",
                "bash",
                "```",
                0,
                "",
                false,
            ),
            ("```bash", "```bash", "", "", "bash", "```", 0, "", false),
        ];
        for (md, block, body, text, info, fence, indent, prefix, closed) in cases {
            let (f, b) = one(md);
            assert_eq!(&md[f.block.clone()], block, "block of {md:?}");
            assert_eq!(&md[f.body.start..f.body.end], body, "body of {md:?}");
            assert_eq!(b.text, text, "text of {md:?}");
            assert_eq!(&md[f.info.clone()], info, "info of {md:?}");
            assert_eq!(f.fence, fence, "fence of {md:?}");
            assert_eq!(f.indent, indent, "indent of {md:?}");
            assert_eq!(b.prefix, prefix, "prefix of {md:?}");
            assert_eq!(f.closed, closed, "closed of {md:?}");
        }
    }

    #[test]
    fn body_lines_map_to_source_lines() {
        let md = "# T\r\n\r\n- x\r\n\r\n  ```console\r\n  $ a\r\n\r\n  out\r\n  ```\r\n";
        let (f, b) = one(md);
        let got: Vec<(&str, u32, u32, &str)> = b
            .lines
            .iter()
            .map(|l| (l.text.as_str(), l.line, l.column, &md[l.start..l.end]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("$ a", 6, 3, "  $ a\r\n"),
                ("", 7, 1, "\r\n"),
                ("out", 8, 3, "  out\r\n"),
            ]
        );
        assert_eq!((f.line, f.column, f.body.line), (5, 3, 6));
    }

    #[test]
    fn unclosed_fence_in_a_list_item_ends_with_the_item() {
        let md = "- ```bash\n  x\n- next\n\n```bash\ny\n```\n";
        let all = blocks(md);
        assert_eq!(all.len(), 2);
        assert!(!all[0].0.closed);
        assert_eq!(all[0].1.text, "x\n");
        assert!(all[1].0.closed);
    }

    #[test]
    fn indented_code_and_tab_fences_are_not_fenced_blocks() {
        assert!(blocks("\t```bash\n\techo\n\t```\n").is_empty());
        assert!(blocks("    ```bash\n    x\n    ```\n").is_empty());
    }

    #[test]
    fn headings_and_the_first_comment() {
        let md = "<p>x</p>\n\n<!--\nsetup:\n  local: {}\n-->\n\n# One *two* `three`\n\n<!-- later -->\n\nSetext\n======\n";
        let src = Source::decode(md.as_bytes()).unwrap();
        let mut headings = Vec::new();
        let first_comment = scan(&src, 0, |item| {
            if let Item::Heading(h) = item {
                headings.push(h);
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(headings, vec!["One two three", "Setext"]);
        let c = first_comment.unwrap();
        assert_eq!(&md[c.start..c.start + 4], "<!--");
        assert_eq!(&md[c.inner], "\nsetup:\n  local: {}\n");
    }

    /// A block's body read the plain way: the pieces split at each `\n`, every line's position
    /// looked up in the line index, and the text of each line kept on its own.
    fn reference_body(f: &Fenced, src: &Source, with_lines: bool) -> Body {
        let text = &src.text;
        let idx = &src.lines;
        let mut lines: Vec<BodyLine> = Vec::new();
        let mut body_text = String::new();
        let mut prefix: Option<String> = None;
        let mut at_line_start = true;
        for (piece, range) in f.pieces.as_slice() {
            let base_line = idx.line_of(range.start);
            let verbatim = piece.len() == range.len();
            let mut newlines = 0;
            let mut k = 0;
            for segment in piece.split_inclusive('\n') {
                if at_line_start {
                    let src_line = base_line + newlines;
                    let line_start = idx.start(src_line);
                    let text_offset = if k == 0 {
                        range.start
                    } else if verbatim {
                        range.start + k
                    } else {
                        line_start
                    };
                    let content = segment.trim_end_matches('\n');
                    let blank = content.trim().is_empty();
                    if prefix.is_none() && !blank {
                        prefix = text
                            .get(line_start.min(text_offset)..text_offset)
                            .map(String::from);
                    }
                    if with_lines {
                        let from = if src_line == 0 {
                            line_start.max(src.bom)
                        } else {
                            line_start
                        };
                        let column = match text.get(from..text_offset) {
                            Some(before) if !blank => before.chars().count() + 1,
                            _ => 1,
                        };
                        lines.push(BodyLine {
                            text: String::new(),
                            line: u32::try_from(src_line + 1).unwrap_or(u32::MAX),
                            column: u32::try_from(column).unwrap_or(u32::MAX),
                            start: line_start,
                            end: idx.end(src_line),
                        });
                    }
                }
                at_line_start = false;
                let (content, ends) = match segment.strip_suffix('\n') {
                    Some(c) => (c, true),
                    None => (segment, false),
                };
                let content = content.strip_suffix('\r').unwrap_or(content);
                if let Some(last) = lines.last_mut() {
                    last.text.push_str(content);
                }
                body_text.push_str(content);
                if ends {
                    body_text.push('\n');
                    newlines += 1;
                    at_line_start = true;
                }
                k += segment.len();
            }
        }
        let prefix = prefix.unwrap_or_else(|| f.fallback_prefix(text));
        Body {
            lines,
            text: body_text,
            prefix,
        }
    }

    #[test]
    fn bodies_read_as_the_plain_way_reads_them() {
        let bodies = [
            "$ echo a\na\n\n$ false\n[1]\n",
            "\n\n  x\n\ty\n \u{a0}\n\u{e9}t\u{e9}\n",
            "one line without end",
            "",
            "\n",
            "a\rb\nc\r\n",
            "  indented\n    more\n",
        ];
        let wrappers: [(&str, &str, &str); 7] = [
            ("", "", ""),
            ("# T\n\n", "", "after\n"),
            ("- item\n\n", "  ", ""),
            ("1. item\n\n", "   ", ""),
            ("", "> ", ""),
            ("> - x\n>\n", ">   ", ""),
            ("- a\n", "\t", ""),
        ];
        let mut checked = 0;
        for body in bodies {
            for (before, prefix, after) in wrappers {
                for fence in ["```console", "~~~~bash | {a: 1}"] {
                    for crlf in [false, true] {
                        for closed in [true, false] {
                            let close = if closed { &fence[..3] } else { "" };
                            let mut md = format!("{before}{prefix}{fence}\n");
                            for line in body.split_inclusive('\n') {
                                md.push_str(prefix);
                                md.push_str(line);
                            }
                            if !body.is_empty() && !body.ends_with('\n') {
                                md.push('\n');
                            }
                            md.push_str(&format!("{prefix}{close}\n{after}"));
                            if crlf {
                                md = md.replace('\n', "\r\n");
                            }
                            let src: &'static Source =
                                Box::leak(Box::new(Source::decode(md.as_bytes()).unwrap()));
                            scan(src, 0, |item| {
                                if let Item::Fenced(f) = item {
                                    for with_lines in [false, true] {
                                        let got = f.read_body(src, with_lines);
                                        let want = reference_body(&f, src, with_lines);
                                        assert_eq!(got.text, want.text, "{md:?}");
                                        assert_eq!(got.prefix, want.prefix, "{md:?}");
                                        if with_lines {
                                            assert_eq!(got.lines, want.lines, "{md:?}");
                                        }
                                        checked += 1;
                                    }
                                }
                                Ok::<(), ()>(())
                            })
                            .unwrap();
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }
}
