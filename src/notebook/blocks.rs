//! Markdown structure: the fenced code blocks of a notebook with exact byte spans, the headings
//! between them, and the first HTML comment (docable's setup block).
//!
//! pulldown-cmark decides what is a fenced block (lists, blockquotes, tabs, nested fences,
//! unclosed fences all as CommonMark says); this file maps its events back to source lines.
//! It does not decide which blocks are cells.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::model::Span;
use super::source::Source;
use super::transcript::BodyLine;

/// A fenced code block as written.
#[derive(Debug, Clone)]
pub struct Fenced {
    /// From the opening fence's first character to the closing fence's last (to the end of the
    /// block's container when unclosed).
    pub block: Range<usize>,
    /// 1-based line of the opening fence.
    pub line: u32,
    /// 1-based column of the opening fence.
    pub column: u32,
    /// The fence as written: "```", "~~~~".
    pub fence: String,
    /// Columns before the fence on its line (tabs to the next multiple of 4).
    pub indent: usize,
    /// The info string as written in the source (not unescaped), trimmed.
    pub info: Range<usize>,
    /// Whole source lines between the fences (empty, at the closing fence's line, when none).
    pub body: Span,
    pub lines: Vec<BodyLine>,
    /// The body with container prefixes removed and CRLF turned into LF.
    pub text: String,
    pub prefix: String,
    pub closed: bool,
}

/// An HTML comment block: `<!--` at `start`, its text between the markers at `inner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub start: usize,
    pub inner: Range<usize>,
}

#[derive(Debug, Clone)]
pub enum Item {
    /// A heading's plain text.
    Heading(String),
    Fenced(Fenced),
}

#[derive(Debug, Default)]
pub struct Scan {
    pub items: Vec<Item>,
    pub first_comment: Option<Comment>,
}

/// Walks the markdown from byte `from` (after any front matter) to the end.
pub fn scan(src: &Source, from: usize) -> Scan {
    let markdown = &src.text[from..];
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut out = Scan::default();
    let mut heading: Option<String> = None;
    let mut code: Option<(Range<usize>, Vec<(CowStr<'_>, Range<usize>)>)> = None;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        let range = range.start + from..range.end + from;
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                if let Some(text) = heading.take() {
                    out.items.push(Item::Heading(text));
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                code = Some((range, Vec::new()))
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((block, pieces)) = code.take() {
                    out.items.push(Item::Fenced(fenced(src, block, &pieces)));
                }
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some((_, pieces)) = code.as_mut() {
                    pieces.push((text, range));
                } else if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
            }
            Event::Start(Tag::HtmlBlock) if out.first_comment.is_none() => {
                out.first_comment = comment(src, range);
            }
            _ => {}
        }
    }
    out
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

fn fenced(src: &Source, block: Range<usize>, pieces: &[(CowStr<'_>, Range<usize>)]) -> Fenced {
    let text = &src.text;
    let idx = &src.lines;
    let open_line = idx.line_of(block.start);
    let (line, column) = src.position(block.start);
    let line_start = idx.start(open_line);

    let fence_char = text[block.start..].chars().next().unwrap_or('`');
    let fence_len = text[block.start..]
        .bytes()
        .take_while(|&b| b == fence_char as u8)
        .count();
    let fence = text[block.start..block.start + fence_len].to_owned();

    let open_end = text[block.start..]
        .find('\n')
        .map_or(text.len(), |i| block.start + i);
    let info_raw = &text[block.start + fence_len..open_end];
    let info_start = block.start + fence_len + (info_raw.len() - info_raw.trim_start().len());
    let info_end = block.start + fence_len + info_raw.trim_end().len();
    let info = info_start..info_end.max(info_start);

    let indent = columns(&text[line_start..block.start]);

    // Body lines, mapped to their source lines.
    let mut lines: Vec<BodyLine> = Vec::new();
    let mut body_text = String::new();
    let mut prefix: Option<String> = None;
    let mut at_line_start = true;
    for (piece, range) in pieces {
        let base_line = idx.line_of(range.start);
        let verbatim = piece.len() == range.len();
        let mut newlines = 0;
        let mut k = 0;
        for segment in piece.split_inclusive('\n') {
            if segment.is_empty() {
                continue;
            }
            if at_line_start {
                let src_line = base_line + newlines;
                let text_offset = if k == 0 {
                    Some(range.start)
                } else if verbatim {
                    Some(range.start + k)
                } else {
                    None
                };
                let text_offset = text_offset.unwrap_or(idx.start(src_line));
                let content = segment.trim_end_matches('\n');
                // A blank line's piece may sit on its `\r\n`: column 1 says more.
                let column = if content.trim().is_empty() {
                    1
                } else {
                    src.position(text_offset).1
                };
                lines.push(BodyLine {
                    text: String::new(),
                    line: u32::try_from(src_line + 1).unwrap_or(u32::MAX),
                    column,
                    start: idx.start(src_line),
                    end: idx.end(src_line),
                });
                at_line_start = false;
                if prefix.is_none() && !content.trim().is_empty() && text_offset <= text.len() {
                    let line_start = idx.start(src_line).min(text_offset);
                    prefix = text.get(line_start..text_offset).map(String::from);
                }
            }
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

    // Closed when the block's last line is a fence of at least the opening's length, and is
    // not a body line (pulldown-cmark runs an unclosed block to the end of its container).
    let last_line = idx.line_of(block.end.saturating_sub(1).max(block.start));
    let last_line_start = idx.start(last_line);
    let last_is_body = lines.last().is_some_and(|l| l.start >= last_line_start);
    let closing = text[last_line_start.max(block.start)..block.end].trim_end();
    let run = closing.len() - closing.trim_end_matches(fence_char).len();
    let closed = last_line != open_line && !last_is_body && run >= fence_len;

    let body_start = idx.start(open_line + 1).min(block.end);
    let body = if closed {
        Span {
            start: body_start,
            end: last_line_start,
            line: u32::try_from(open_line + 2).unwrap_or(u32::MAX),
        }
    } else {
        Span {
            start: body_start,
            end: block.end.max(body_start),
            line: u32::try_from(open_line + 2).unwrap_or(u32::MAX),
        }
    };

    let prefix = prefix.unwrap_or_else(|| {
        if closed {
            let run_start = last_line_start.max(block.start) + closing.len() - run;
            text[last_line_start..run_start].to_owned()
        } else {
            " ".repeat(indent)
        }
    });

    Fenced {
        block,
        line,
        column,
        fence,
        indent,
        info,
        body,
        lines,
        text: body_text,
        prefix,
        closed,
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

    fn blocks(md: &str) -> Vec<Fenced> {
        let src = Source::decode(md.as_bytes()).unwrap();
        scan(&src, src.bom)
            .items
            .into_iter()
            .filter_map(|i| match i {
                Item::Fenced(f) => Some(f),
                Item::Heading(_) => None,
            })
            .collect()
    }

    fn one(md: &str) -> Fenced {
        let mut all = blocks(md);
        assert_eq!(all.len(), 1, "{md:?}");
        all.remove(0)
    }

    #[test]
    fn spans_are_exact() {
        // (markdown, block, body, text, info, fence, indent, prefix, closed)
        #[allow(clippy::type_complexity)]
        let cases: [(&str, &str, &str, &str, &str, &str, usize, &str, bool); 14] = [
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
            let f = one(md);
            assert_eq!(&md[f.block.clone()], block, "block of {md:?}");
            assert_eq!(&md[f.body.start..f.body.end], body, "body of {md:?}");
            assert_eq!(f.text, text, "text of {md:?}");
            assert_eq!(&md[f.info.clone()], info, "info of {md:?}");
            assert_eq!(f.fence, fence, "fence of {md:?}");
            assert_eq!(f.indent, indent, "indent of {md:?}");
            assert_eq!(f.prefix, prefix, "prefix of {md:?}");
            assert_eq!(f.closed, closed, "closed of {md:?}");
        }
    }

    #[test]
    fn body_lines_map_to_source_lines() {
        let md = "# T\r\n\r\n- x\r\n\r\n  ```console\r\n  $ a\r\n\r\n  out\r\n  ```\r\n";
        let f = one(md);
        let got: Vec<(&str, u32, u32, &str)> = f
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
        assert!(!all[0].closed);
        assert_eq!(all[0].text, "x\n");
        assert!(all[1].closed);
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
        let s = scan(&src, 0);
        let headings: Vec<&str> = s
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Heading(h) => Some(h.as_str()),
                Item::Fenced(_) => None,
            })
            .collect();
        assert_eq!(headings, vec!["One two three", "Setext"]);
        let c = s.first_comment.unwrap();
        assert_eq!(&md[c.start..c.start + 4], "<!--");
        assert_eq!(&md[c.inner], "\nsetup:\n  local: {}\n");
    }
}
