//! Which fenced blocks are cells (section 2), what each one is (section 3), its id, and the
//! `output` block or `expect:` that holds its expected output (section 5).
//!
//! A block is a cell when it carries an annotation after `|`, when its language is a
//! transcript language, or when it is a shell block and the notebook runs all of them. Golden
//! files are the planner's: a cell whose only expectation would be one has `expected: None`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use super::annotation;
use super::attrs::{self, CellAttrs, Pos};
use super::blocks::{Fenced, Item};
use super::hash::FastState;
use super::huge;
use super::ids::Ids;
use super::interactive;
use super::model::{
    Cell, CellId, CellKind, Diagnostic, Expected, ExpectedSource, ProseBlock, Span,
};
use super::source::Source;
use super::transcript::{self, RawLine};

// The lists below are `matches!` rather than slices: they are asked several times a block, and
// a match compares lengths before any bytes.

/// Languages whose blocks are transcripts, and cells without an annotation.
fn is_transcript_lang(lang: &str) -> bool {
    matches!(lang, "console" | "shell-session" | "sh-session" | "scrut")
}

/// Shell languages: scripts, cells under `run: all`, transcripts when they start with `$ `.
fn is_shell_lang(lang: &str) -> bool {
    matches!(lang, "bash" | "sh" | "shell")
}

/// docable's UI-only cell types: reported as skipped, never an error.
fn is_ui_type(cell_type: &str) -> bool {
    matches!(
        cell_type,
        "quiz" | "terminal" | "repl" | "youtube" | "slides" | "info" | "playground"
    )
}

/// Turns the scanned blocks into cells, one item at a time, in document order.
pub struct Builder<'s> {
    src: &'s Source,
    run_all: bool,
    ids: Ids,
    cells: Vec<Cell>,
    not_run: Vec<ProseBlock>,
    warnings: Vec<Diagnostic>,
    /// The cell an `output` block would belong to: only when it is the very next fenced block.
    previous_cell: Option<usize>,
    /// Annotations already read without a warning, by text: notebooks repeat
    /// `{type: 'command'}` many times, and reading one is most of a cell's cost.
    cache: HashMap<String, Rc<CellAttrs>, FastState>,
    /// The attributes of a cell without an annotation.
    none: CellAttrs,
    scratch: Scratch,
}

/// Buffers for bodies read only to be looked at (a transcript's text and lines, a skipped
/// cell's prefix), reused from block to block.
#[derive(Default)]
struct Scratch {
    text: String,
    lines: Vec<RawLine>,
}

impl Scratch {
    /// The buffers, emptied.
    fn clear(&mut self) -> (&mut String, &mut Vec<RawLine>) {
        self.text.clear();
        self.lines.clear();
        (&mut self.text, &mut self.lines)
    }
}

/// Most distinct annotations cached; past that, annotations are read each time.
const CACHE_LIMIT: usize = 1024;

impl<'s> Builder<'s> {
    pub fn new(src: &'s Source, run_all: bool) -> Builder<'s> {
        Builder {
            src,
            run_all,
            ids: Ids::default(),
            cells: Vec::new(),
            not_run: Vec::new(),
            warnings: Vec::new(),
            previous_cell: None,
            cache: HashMap::default(),
            none: CellAttrs::none(),
            scratch: Scratch::default(),
        }
    }

    pub fn push(&mut self, item: Item<'_>) -> Result<(), Diagnostic> {
        let src = self.src;
        let f = match item {
            Item::Heading(text) => {
                self.ids.heading(&text);
                return Ok(());
            }
            Item::Fenced(f) => f,
        };
        let info = Info::read(src, &f);
        if let Some(at) = info.stray_braces {
            self.warnings.push(src.diag(
                at,
                format!(
                    "attributes after '{}' need a '|' before them (```{} | {{...}}); these are not read",
                    info.lang, info.lang
                ),
            ));
        }
        let ann = match info.annotation {
            Some((text, at)) => Some(self.annotation(text, at)?),
            None => None,
        };
        let ann = ann.as_deref();
        match role(&info, ann, self.run_all) {
            Role::Prose => {
                if !f.closed {
                    self.warnings.push(unclosed(src, &f, false));
                }
                let (text, _) = self.scratch.clear();
                f.read_body_into(src, text, None);
                self.not_run.push(ProseBlock {
                    line: f.line,
                    lang: info.lang.to_owned(),
                    first_line: text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .to_owned(),
                });
                self.previous_cell = None;
            }
            Role::Output => {
                let target = self
                    .previous_cell
                    .take()
                    .and_then(|i| self.cells.get_mut(i));
                output_block(src, &f, &info, ann, target, &mut self.warnings)?;
            }
            Role::Cell => {
                let ann = ann.unwrap_or(&self.none);
                let cell = cell(
                    src,
                    f,
                    info,
                    ann,
                    &mut self.ids,
                    &mut self.warnings,
                    &mut self.scratch,
                )?;
                if self.cells.len() == self.cells.capacity() {
                    huge::grow(&mut self.cells);
                }
                self.cells.push(cell);
                self.previous_cell = Some(self.cells.len() - 1);
            }
        }
        Ok(())
    }

    fn annotation(&mut self, text: &str, at: usize) -> Result<Rc<CellAttrs>, Diagnostic> {
        if let Some(hit) = self.cache.get(text) {
            return Ok(Rc::clone(hit));
        }
        let attrs = Rc::new(read_annotation(self.src, text, at)?);
        if attrs.warnings.is_empty() && self.cache.len() < CACHE_LIMIT {
            self.cache.insert(text.to_owned(), Rc::clone(&attrs));
        }
        Ok(attrs)
    }

    /// The cells, the blocks that are not, and the warnings found on the way.
    pub fn finish(self) -> (Vec<Cell>, Vec<ProseBlock>, Vec<Diagnostic>) {
        (self.cells, self.not_run, self.warnings)
    }
}

/// The parts of an info string: ```` ```bash ignore | {type: 'command'} ````.
struct Info<'s> {
    lang: &'s str,
    lang_lower: Cow<'s, str>,
    /// The word `ignore` after the language.
    ignore: bool,
    /// The annotation text and its byte offset: after `|`, or a scrut block's `{...}`.
    annotation: Option<(&'s str, usize)>,
    /// Where a `{` follows a transcript's language without a `|`: attributes an author meant,
    /// which are not read (only scrut reads its own that way).
    stray_braces: Option<usize>,
}

impl<'s> Info<'s> {
    fn read(src: &'s Source, f: &Fenced) -> Info<'s> {
        let info = &src.text[f.info.clone()];
        let (head, after_bar) = match info.bytes().position(|b| b == b'|') {
            Some(i) => (&info[..i], Some((&info[i + 1..], f.info.start + i + 1))),
            None => (info, None),
        };
        let head_trimmed = head.trim_start();
        let lang = first_word(head_trimmed);
        let lang_lower = if lang.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(lang.to_ascii_lowercase())
        } else {
            Cow::Borrowed(lang)
        };
        let rest_offset = f.info.start + (head.len() - head_trimmed.len()) + lang.len();
        let rest = &head_trimmed[lang.len()..];
        let mut annotation = after_bar.map(|(text, at)| {
            let lead = text.len() - text.trim_start().len();
            (text.trim(), at + lead)
        });
        let mut words = rest;
        // scrut's own configuration follows its language without a `|`.
        if annotation.is_none() && lang_lower == "scrut" && rest.trim_start().starts_with('{') {
            let lead = rest.len() - rest.trim_start().len();
            annotation = Some((rest.trim(), rest_offset + lead));
            words = "";
        }
        let ignore = words.split_whitespace().any(|w| w == "ignore");
        let stray_braces = (annotation.is_none()
            && is_transcript_lang(&lang_lower)
            && words.trim_start().starts_with('{'))
        .then(|| rest_offset + (words.len() - words.trim_start().len()));
        Info {
            lang,
            lang_lower,
            ignore,
            annotation,
            stray_braces,
        }
    }
}

/// `text.split_whitespace().next().unwrap_or("")` for a text without leading whitespace,
/// without decoding characters when the word ends at ASCII whitespace.
fn first_word(text: &str) -> &str {
    for (i, b) in text.bytes().enumerate() {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => return &text[..i],
            _ if b.is_ascii() => {}
            // A character that might be Unicode whitespace: let `split_whitespace` decide.
            _ => return text.split_whitespace().next().unwrap_or(""),
        }
    }
    text
}

enum Role {
    /// Not run and not an expectation: a code sample.
    Prose,
    /// An `output` block.
    Output,
    Cell,
}

fn role(info: &Info, ann: Option<&CellAttrs>, run_all: bool) -> Role {
    let cell_type = ann.and_then(|a| a.cell_type.as_deref());
    let lang = info.lang_lower.as_ref();
    if cell_type == Some("output") || (cell_type.is_none() && lang == "output") {
        return Role::Output;
    }
    let is_cell = ann.is_some() || is_transcript_lang(lang) || (run_all && is_shell_lang(lang));
    if is_cell { Role::Cell } else { Role::Prose }
}

fn read_annotation(src: &Source, text: &str, at: usize) -> Result<CellAttrs, Diagnostic> {
    let parsed = annotation::parse(text).map_err(|e| {
        let (line, column) = src.nested_position(at, 1, e.column);
        Diagnostic {
            line,
            column,
            message: e.message,
        }
    })?;
    let mut attrs = attrs::read(&parsed.entries, &|key: &str| {
        key_position(src, text, at, key)
    })?;
    attrs.syntax = Some(parsed.syntax);
    Ok(attrs)
}

/// Where `key` is written in an annotation at byte `at` (its start when not found).
fn key_position(src: &Source, text: &str, at: usize, key: &str) -> Pos {
    let column = annotation::find_key(text, key).unwrap_or(1);
    src.nested_position(at, 1, column)
}

impl Info<'_> {
    /// The bytes of top-level `key`'s value literal in this block's annotation.
    fn value_span(&self, key: &str, syntax: Option<annotation::Syntax>, line: u32) -> Option<Span> {
        let (text, at) = self.annotation?;
        let range = annotation::value_span(text, syntax?, key)?;
        Some(Span {
            start: at + range.start,
            end: at + range.end,
            line,
        })
    }

    /// Where `key` is written in this block's annotation, or `fallback` without one.
    fn key_position(&self, src: &Source, key: &str, fallback: Pos) -> Pos {
        match self.annotation {
            Some((text, at)) => key_position(src, text, at, key),
            None => fallback,
        }
    }
}

fn unclosed(src: &Source, f: &Fenced, cell: bool) -> Diagnostic {
    let message = if cell {
        "unclosed fence opened here: the block would run to the end of the document (or of its list item or quote)"
    } else {
        "unclosed fence opened here: the rest of the document (or of its list item or quote) is read as code"
    };
    src.diag(f.block.start, message)
}

fn diag(pos: Pos, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        line: pos.0,
        column: pos.1,
        message: message.into(),
    }
}

/// Attaches an `output` block to the cell before it, or warns that there is none.
fn output_block(
    src: &Source,
    f: &Fenced,
    info: &Info,
    ann: Option<&CellAttrs>,
    target: Option<&mut Cell>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let fence_pos = (f.line, f.column);
    if let Some(ann) = ann {
        warnings.extend(ann.warnings.iter().cloned());
        for key in &ann.written {
            if key != "type" {
                let pos = info.key_position(src, key, fence_pos);
                warnings.push(diag(
                    pos,
                    format!("attribute '{key}' has no effect on an output block"),
                ));
            }
        }
    }
    let Some(cell) = target else {
        if !f.closed {
            warnings.push(unclosed(src, f, false));
        }
        warnings.push(diag(
            fence_pos,
            "output block follows no cell (it must be the next fenced block after one); ignored",
        ));
        return Ok(());
    };
    if !f.closed {
        return Err(unclosed(src, f, true));
    }
    match &cell.kind {
        CellKind::Transcript { .. } => {
            warnings.push(diag(
                fence_pos,
                "output block after a transcript is ignored: each '$ ' step holds its own output",
            ));
            return Ok(());
        }
        CellKind::File { .. } => {
            warnings.push(diag(
                fence_pos,
                "output block after a file cell is ignored: writing a file prints nothing",
            ));
            return Ok(());
        }
        _ => {}
    }
    if matches!(
        cell.expected,
        Some(Expected {
            source: ExpectedSource::Attribute,
            ..
        })
    ) {
        warnings.push(diag(
            fence_pos,
            format!(
                "this output block replaces the expect: attribute of cell '{}'",
                cell.id
            ),
        ));
    }
    let mut text = String::new();
    let prefix = f.read_body_into(src, &mut text, None);
    if text.ends_with('\n') {
        text.pop();
    }
    cell.expected = Some(Expected {
        source: ExpectedSource::OutputBlock {
            block: Span {
                start: f.block.start,
                end: f.block.end,
                line: f.line,
            },
            body: f.body,
            fence: f.fence.to_owned(),
            indent: f.indent,
            prefix,
        },
        text,
        attribute_value: None,
    });
    Ok(())
}

/// Builds a cell from a block that is one.
fn cell(
    src: &Source,
    f: Fenced<'_>,
    info: Info,
    ann: &CellAttrs,
    ids: &mut Ids,
    warnings: &mut Vec<Diagnostic>,
    scratch: &mut Scratch,
) -> Result<Cell, Diagnostic> {
    let fence_pos = (f.line, f.column);
    if !f.closed {
        return Err(unclosed(src, &f, true));
    }
    warnings.extend(ann.warnings.iter().cloned());
    let lang = info.lang_lower.as_ref();
    let transcript_lang = is_transcript_lang(lang);
    let cell_type = match &ann.cell_type {
        Some(t) => t.as_str(),
        None if transcript_lang => "transcript",
        None => "command",
    };
    let at = |key: &str| info.key_position(src, key, fence_pos);
    let type_pos = || {
        if ann.cell_type.is_some() {
            at("type")
        } else {
            fence_pos
        }
    };
    let known = matches!(
        cell_type,
        "command" | "transcript" | "file" | "script" | "copy" | "interactive" | "edit"
    ) || is_ui_type(cell_type);
    if !known {
        return Err(diag(
            type_pos(),
            format!(
                "unknown cell type '{cell_type}' (known: command, transcript, file, script, edit, copy, interactive, output, and docable's ui types)"
            ),
        ));
    }
    let a = &ann.attrs;

    let id = ids.next(a.id.as_deref(), f.line).map_err(|(id, first)| {
        let pos = if a.id.is_some() { at("id") } else { fence_pos };
        diag(
            pos,
            format!("duplicate cell id '{id}' (first used by the cell at line {first})"),
        )
    })?;

    // Skipping wins over errors in the body: an author can keep such a cell inert.
    let skipped = if a.skip {
        Some("skip: true".to_owned())
    } else if info.ignore {
        Some("ignore".to_owned())
    } else if let Some(p) = a
        .platform
        .as_deref()
        .filter(|p| !p.eq_ignore_ascii_case("linux"))
    {
        Some(format!("platform {p}"))
    } else if is_ui_type(cell_type) {
        Some(format!("docable ui cell '{cell_type}'"))
    } else {
        None
    };

    let (kind, prefix) = match skipped {
        Some(reason) => {
            let (text, _) = scratch.clear();
            (
                CellKind::Skipped { reason },
                f.read_body_into(src, text, None),
            )
        }
        None => {
            if let Some(name) = ann.background
                && (a.tty || cell_type != "command")
            {
                return Err(diag(
                    at(name),
                    format!("attribute '{name}' applies to command cells without tty"),
                ));
            }
            kind_of(src, &f, &info, cell_type, ann, fence_pos, scratch)?
        }
    };

    if let CellKind::Transcript { .. } = kind {
        for key in ["exit", "expect"] {
            if ann.has(key) {
                warnings.push(diag(
                    at(key),
                    format!("attribute '{key}' does not apply to transcripts: write the output and [N] after each step"),
                ));
            }
        }
    }
    let expected = match (&kind, &a.expect) {
        (CellKind::Transcript { .. }, _) | (_, None) => None,
        (_, Some(text)) => Some(Expected {
            source: ExpectedSource::Attribute,
            text: text.clone(),
            attribute_value: info.value_span("expect", ann.syntax, f.line),
        }),
    };

    Ok(Cell {
        id: CellId(id),
        line: f.line,
        block: Span {
            start: f.block.start,
            end: f.block.end,
            line: f.line,
        },
        body: f.body,
        fence: f.fence.to_owned(),
        indent: f.indent,
        prefix,
        lang: info.lang.to_owned(),
        kind,
        attrs: ann.attrs.clone(),
        expected,
    })
}

/// The cell's kind, and the prefix of its lines.
fn kind_of(
    src: &Source,
    f: &Fenced,
    info: &Info,
    cell_type: &str,
    ann: &CellAttrs,
    fence_pos: Pos,
    scratch: &mut Scratch,
) -> Result<(CellKind, String), Diagnostic> {
    let type_pos = || {
        if ann.cell_type.is_some() {
            info.key_position(src, "type", fence_pos)
        } else {
            fence_pos
        }
    };
    let lang = info.lang_lower.as_ref();
    let shell = is_shell_lang(lang);
    // Body lines are only needed to split a transcript into steps; its text is only looked
    // at, so it goes to the scratch buffers. Other bodies are kept as the cell's text.
    let transcript_of = |scratch: &mut Scratch| {
        let (text, lines) = scratch.clear();
        let prefix = f.read_body_into(src, text, Some(lines));
        transcript::parse_lines(text, lines).map(|steps| (steps, prefix))
    };
    if cell_type == "transcript" {
        let (steps, prefix) = transcript_of(scratch)?;
        let kind = CellKind::Transcript {
            steps,
            stdout_only: lang == "scrut",
        };
        return Ok((kind, prefix));
    }
    let mut text = String::new();
    let prefix = f.read_body_into(src, &mut text, None);
    let kind = match cell_type {
        // A shell block written as `$ cmd` lines is a transcript even when typed `command`:
        // run as a script, `$ docker images` would only ever fail with "$: not found".
        "command" if shell && transcript::looks_like_transcript(&text) => {
            let (steps, prefix) = transcript_of(scratch)?;
            let kind = CellKind::Transcript {
                steps,
                stdout_only: false,
            };
            return Ok((kind, prefix));
        }
        "command" => CellKind::Command { script: text },
        "copy" => {
            let steps = super::copy_spec::parse(&text, fence_pos.0 + 1)
                .map_err(|(line, message)| diag((line, 1), message))?;
            CellKind::Copy { steps }
        }
        "interactive" => {
            let Some(prompt) = ann.attrs.prompt.as_deref() else {
                return Err(diag(
                    type_pos(),
                    "an interactive cell needs a 'prompt' attribute (what the program shows when it waits for a line)",
                ));
            };
            let c =
                interactive::parse(&text, prompt, f.line + 1).map_err(|m| diag(fence_pos, m))?;
            CellKind::Interactive {
                command: c.command,
                banner: c.banner,
                steps: c.steps,
            }
        }
        "edit" => {
            if ann.attrs.path.is_none() {
                return Err(diag(type_pos(), "an edit cell needs a 'path' attribute"));
            }
            CellKind::Edit { diff: text }
        }
        "file" => {
            if ann.attrs.path.is_none() {
                return Err(diag(type_pos(), "a file cell needs a 'path' attribute"));
            }
            CellKind::File { content: text }
        }
        "script" => {
            let interpreter = match lang {
                "" => {
                    return Err(diag(
                        fence_pos,
                        "a script cell needs a language naming its interpreter (```python | {type: 'script'})",
                    ));
                }
                "py" | "python" => "python",
                "js" | "javascript" | "node" => "node",
                "shell" => "sh",
                other => other,
            };
            CellKind::Script {
                interpreter: interpreter.to_owned(),
                program: text,
            }
        }
        other => unreachable_type(other, fence_pos)?,
    };
    Ok((kind, prefix))
}

/// Types are checked before `kind_of`; reaching here is a bug, reported rather than panicking.
fn unreachable_type(cell_type: &str, pos: Pos) -> Result<CellKind, Diagnostic> {
    Err(diag(
        pos,
        format!("internal error: cell type '{cell_type}' has no kind"),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::notebook::{Notebook, ParseError, ParseOptions, parse};

    fn nb(md: &str) -> Notebook {
        parse_with(md, false).unwrap_or_else(|e| panic!("{e}\n{md}"))
    }

    fn parse_with(md: &str, run_all: bool) -> Result<Notebook, ParseError> {
        parse(Path::new("t.md"), md.as_bytes(), &ParseOptions { run_all })
    }

    fn err(md: &str) -> ParseError {
        match parse_with(md, false) {
            Ok(_) => panic!("expected an error for\n{md}"),
            Err(e) => e,
        }
    }

    /// A short, offset-free description of a cell's kind.
    fn kind(c: &Cell) -> String {
        match &c.kind {
            CellKind::Command { script } => format!("command {script:?}"),
            CellKind::Transcript { steps, stdout_only } => format!(
                "transcript{} {:?}",
                if *stdout_only { " stdout" } else { "" },
                steps
                    .iter()
                    .map(|s| format!("{}=>{}[{}]", s.command, s.expected, s.exit))
                    .collect::<Vec<_>>()
            ),
            CellKind::File { content } => format!("file {content:?}"),
            CellKind::Script {
                interpreter,
                program,
            } => format!("script {interpreter} {program:?}"),
            CellKind::Copy { steps } => format!("copy {steps:?}"),
            CellKind::Interactive { command, steps, .. } => format!(
                "interactive {command:?} {:?}",
                steps
                    .iter()
                    .map(|s| format!("{}=>{}", s.command, s.expected))
                    .collect::<Vec<_>>()
            ),
            CellKind::Edit { diff } => format!("edit {diff:?}"),
            CellKind::Skipped { reason } => format!("skipped {reason}"),
        }
    }

    fn summary(md: &str, run_all: bool) -> Vec<(String, String)> {
        parse_with(md, run_all)
            .unwrap_or_else(|e| panic!("{e}\n{md}"))
            .cells
            .iter()
            .map(|c| (c.id.0.clone(), kind(c)))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn which_blocks_are_cells() {
        // (markdown, run_all, [(id, kind)])
        type Case = (&'static str, bool, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            // Docable annotations, with and without spaces.
            (
                "```bash | {type: 'command'}\nls\n```\n",
                false,
                vec![("cell-1", "command \"ls\\n\"")],
            ),
            (
                "```bash|{type:'command'}\nls\n```\n",
                false,
                vec![("cell-1", "command \"ls\\n\"")],
            ),
            (
                "```js | {type:'file',path:'id.js'}\nx()\n```\n",
                false,
                vec![("cell-1", "file \"x()\\n\"")],
            ),
            // YAML flow fallback.
            (
                "```bash | {type: command, timeout: 10s}\nls\n```\n",
                false,
                vec![("cell-1", "command \"ls\\n\"")],
            ),
            // Plain shell blocks are samples unless the notebook runs all of them.
            ("```bash\nls\n```\n", false, vec![]),
            (
                "```bash\nls\n```\n",
                true,
                vec![("cell-1", "command \"ls\\n\"")],
            ),
            (
                "```sh\nls\n```\n```shell\npwd\n```\n```zsh\nx\n```\n```\ny\n```\n",
                true,
                vec![
                    ("cell-1", "command \"ls\\n\""),
                    ("cell-2", "command \"pwd\\n\""),
                ],
            ),
            (
                "---\nlabrun: {run: all}\n---\n```bash\nls\n```\n",
                false,
                vec![("cell-1", "command \"ls\\n\"")],
            ),
            // Transcript languages.
            (
                "```console\n$ echo hi\nhi\n```\n",
                false,
                vec![("cell-1", "transcript [\"echo hi=>hi[0]\"]")],
            ),
            (
                "```shell-session\n$ false\n[1]\n```\n```sh-session\n$ true\n```\n",
                false,
                vec![
                    ("cell-1", "transcript [\"false=>[1]\"]"),
                    ("cell-2", "transcript [\"true=>[0]\"]"),
                ],
            ),
            // The workshop's `$ docker images` bash blocks read as transcripts when they run.
            (
                "```bash\n$ docker images\nREPOSITORY  TAG\n```\n",
                true,
                vec![(
                    "cell-1",
                    "transcript [\"docker images=>REPOSITORY  TAG[0]\"]",
                )],
            ),
            (
                "```bash | {type: 'command'}\n$ ls\na\n```\n",
                false,
                vec![("cell-1", "transcript [\"ls=>a[0]\"]")],
            ),
            // `type:` overrides the language.
            (
                "```console | {type: 'command'}\n$ ls\n```\n",
                false,
                vec![("cell-1", "command \"$ ls\\n\"")],
            ),
            (
                "```text | {type: 'transcript'}\n$ ls\n```\n",
                false,
                vec![("cell-1", "transcript [\"ls=>[0]\"]")],
            ),
            // scrut: stdout only, its own configuration without `|`.
            (
                "```scrut\n$ echo a\na\n```\n",
                false,
                vec![("cell-1", "transcript stdout [\"echo a=>a[0]\"]")],
            ),
            (
                "```scrut {timeout: 10s}\n$ echo a\na\n```\n",
                false,
                vec![("cell-1", "transcript stdout [\"echo a=>a[0]\"]")],
            ),
            // Scripts.
            (
                "```python | {type: 'script'}\nprint(1)\n```\n",
                false,
                vec![("cell-1", "script python \"print(1)\\n\"")],
            ),
            (
                "```js | {type: 'script'}\nx\n```\n```ruby | {type: 'script'}\ny\n```\n",
                false,
                vec![
                    ("cell-1", "script node \"x\\n\""),
                    ("cell-2", "script ruby \"y\\n\""),
                ],
            ),
            // Empty cells.
            (
                "```bash | {type: 'command'}\n```\n",
                false,
                vec![("cell-1", "command \"\"")],
            ),
            (
                "```console\n```\n",
                false,
                vec![("cell-1", "transcript []")],
            ),
            // Skips.
            (
                "```bash | {skip: true}\nrm -rf /\n```\n",
                false,
                vec![("cell-1", "skipped skip: true")],
            ),
            (
                "```bash ignore | {type: 'command'}\nx\n```\n",
                false,
                vec![("cell-1", "skipped ignore")],
            ),
            (
                "```console ignore\n$ x\n```\n",
                false,
                vec![("cell-1", "skipped ignore")],
            ),
            ("```bash ignore\nx\n```\n", false, vec![]),
            (
                "```bash ignore\nx\n```\n",
                true,
                vec![("cell-1", "skipped ignore")],
            ),
            (
                "```bash | {type: 'command', platform: 'win32'}\ndir\n```\n",
                false,
                vec![("cell-1", "skipped platform win32")],
            ),
            (
                "```bash | {platform: 'darwin'}\nx\n```\n",
                false,
                vec![("cell-1", "skipped platform darwin")],
            ),
            (
                "```bash | {platform: 'linux'}\nx\n```\n",
                false,
                vec![("cell-1", "command \"x\\n\"")],
            ),
            (
                "```js | {type: 'quiz'}\nq\n```\n```x | {type: 'youtube', id: 'v1'}\n```\n",
                false,
                vec![
                    ("cell-1", "skipped docable ui cell 'quiz'"),
                    ("v1", "skipped docable ui cell 'youtube'"),
                ],
            ),
            (
                "```bash | {type: 'interactive', prompt: 'C-$ '}\n$ sh\nC-$ ls\nHELLO.txt\nC-$ exit\n```\n",
                false,
                vec![(
                    "cell-1",
                    "interactive \"sh\" [\"ls=>HELLO.txt\", \"exit=>\"]",
                )],
            ),
            (
                "```diff | {type:'edit',path:'id.js'}\n@@ -1 +1 @@\n-a\n+b\n```\n",
                false,
                vec![("cell-1", "edit \"@@ -1 +1 @@\\n-a\\n+b\\n\"")],
            ),
            // Later features are inert when skipped.
            (
                "```diff | {type: 'edit', path: 'f', skip: true}\n-a\n+b\n```\n",
                false,
                vec![("cell-1", "skipped skip: true")],
            ),
        ];
        for (md, run_all, want) in cases {
            assert_eq!(summary(md, run_all), pairs(&want), "\n{md}");
        }
    }

    /// A notebook in the reference workshop's style (written for this test): docable
    /// annotations, unlabeled samples, `$ `-prefixed bash blocks, a block inside a list item.
    const WORKSHOP: &str = "# Lab\n\nSome intro.\n\n```bash\ntool import https://example.org/lab\n```\n\n## Build a Box\n\nFirst:\n\n```bash | {type: 'command'}\nmkdir -p /srv/box\n```\n\n```bash | {type: 'command'}\ntouch /srv/box/ok\n```\n\n### Look around\n\n```\n$ ls /srv\n```\n\n```bash\n$ ls /srv/box\nok\n```\n\n* A point worth making, with code:\n\n  ```bash\n  mkdir -p /tmp/$nonce/x\n  mount -t tmpfs none /tmp/$nonce/x\n  ```\n\nDone.\n";

    #[test]
    fn a_workshop_reads() {
        let marked = nb(WORKSHOP);
        let ids: Vec<&str> = marked.cells.iter().map(|c| c.id.0.as_str()).collect();
        assert_eq!(ids, vec!["build-a-box-1", "build-a-box-2"]);
        assert!(marked.warnings.is_empty(), "{:?}", marked.warnings);
        let all = parse_with(WORKSHOP, true).unwrap();
        let got: Vec<(String, String)> = all
            .cells
            .iter()
            .map(|c| (c.id.0.clone(), kind(c)))
            .collect();
        assert_eq!(
            got,
            pairs(&[
                (
                    "lab-1",
                    "command \"tool import https://example.org/lab\\n\""
                ),
                ("build-a-box-1", "command \"mkdir -p /srv/box\\n\""),
                ("build-a-box-2", "command \"touch /srv/box/ok\\n\""),
                ("look-around-1", "transcript [\"ls /srv/box=>ok[0]\"]"),
                (
                    "look-around-2",
                    "command \"mkdir -p /tmp/$nonce/x\\nmount -t tmpfs none /tmp/$nonce/x\\n\""
                ),
            ])
        );
        let indented = &all.cells[4];
        assert_eq!(
            (indented.indent, indented.prefix.as_str(), indented.line),
            (2, "  ", 34)
        );
    }

    #[test]
    fn first_words() {
        for text in [
            "",
            "bash",
            "bash ignore",
            "js\t| x",
            "py\u{a0}x",
            "é x",
            "a\u{2003}b c",
            "x\x0by",
            "x\x1cy",
        ] {
            let want = text.split_whitespace().next().unwrap_or("");
            assert_eq!(first_word(text), want, "{text:?}");
        }
    }

    #[test]
    fn ids_from_headings() {
        let md = "Intro text.\n\n```console\n$ a\n```\n\n# A Simple Container\n\n```console\n$ b\n```\n\n```console | {id: 'named'}\n$ c\n```\n\n```console\n$ d\n```\n\n## Example\n\n```console\n$ e\n```\n\n## Example\n\n```console\n$ f\n```\n";
        let ids: Vec<String> = nb(md).cells.iter().map(|c| c.id.0.clone()).collect();
        assert_eq!(
            ids,
            vec![
                "cell-1",
                "a-simple-container-1",
                "named",
                "a-simple-container-3",
                "example-1",
                "example-1-1"
            ]
        );
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let e =
            err("# T\n\n```console | {id: 'x'}\n$ a\n```\n\n```console | {id: 'x'}\n$ b\n```\n");
        assert_eq!((e.line, e.column), (7, 15), "{e}");
        assert!(
            e.message
                .contains("duplicate cell id 'x' (first used by the cell at line 3)"),
            "{e}"
        );
        let e = err("# T\n\n```console | {id: 't-2'}\n$ a\n```\n\n```console\n$ b\n```\n");
        assert_eq!((e.line, e.column), (7, 1), "{e}");
        assert!(e.message.contains("'t-2'"), "{e}");
    }

    #[test]
    fn output_blocks() {
        let md = "# T\n\n```bash | {type: 'command'}\necho hi\n```\n\nIt prints:\n\n```output\nhi\nthere\n```\n\n```output\norphan\n```\n";
        let n = nb(md);
        let c = &n.cells[0];
        let e = c.expected.as_ref().unwrap();
        assert_eq!(e.text, "hi\nthere");
        let ExpectedSource::OutputBlock {
            block,
            body,
            fence,
            indent,
            prefix,
        } = &e.source
        else {
            panic!("{e:?}")
        };
        assert_eq!(&md[block.start..block.end], "```output\nhi\nthere\n```");
        assert_eq!(&md[body.start..body.end], "hi\nthere\n");
        assert_eq!(
            (
                block.line,
                body.line,
                fence.as_str(),
                *indent,
                prefix.as_str()
            ),
            (9, 10, "```", 0, "")
        );
        assert_eq!(n.warnings.len(), 1);
        assert_eq!(n.warnings[0].line, 14);
        assert!(n.warnings[0].message.contains("follows no cell"));

        // An annotation type 'output' works too; an empty output block expects no output.
        let n = nb("```bash | {type: 'command'}\ntrue\n```\n```text | {type: 'output'}\n```\n");
        let e = n.cells[0].expected.as_ref().unwrap();
        assert_eq!(e.text, "");
        let ExpectedSource::OutputBlock { body, .. } = &e.source else {
            panic!()
        };
        assert_eq!((body.start, body.end, body.line), (64, 64, 5));

        // Only the next fenced block: a sample in between breaks the link.
        let n = nb("```bash | {type: 'command'}\nx\n```\n```\nsample\n```\n```output\nx\n```\n");
        assert!(n.cells[0].expected.is_none());
        assert!(n.warnings[0].message.contains("follows no cell"));

        // After a transcript the output block is ignored with a warning.
        let n = nb("```console\n$ x\n```\n```output\nx\n```\n");
        assert!(n.cells[0].expected.is_none());
        assert!(n.warnings[0].message.contains("after a transcript"));
    }

    #[test]
    fn expect_attribute_and_its_precedence() {
        let md = "# T\n\n```bash | {type: 'command', expect: 'hi'}\necho hi\n```\n";
        let n = nb(md);
        let e = n.cells[0].expected.as_ref().unwrap();
        assert!(matches!(e.source, ExpectedSource::Attribute));
        assert_eq!(e.text, "hi");
        let v = e.attribute_value.unwrap();
        assert_eq!((&md[v.start..v.end], v.line), ("'hi'", 3));
        let n = nb("```bash | {expect: [a, b]}\necho a; echo b\n```\n");
        let e = n.cells[0].expected.as_ref().unwrap();
        assert_eq!((e.text.as_str(), e.attribute_value), ("a\nb", None));
        let n = nb("```bash | {expect: 'a'}\necho b\n```\n```output\nb\n```\n");
        let e = n.cells[0].expected.as_ref().unwrap();
        assert!(matches!(e.source, ExpectedSource::OutputBlock { .. }));
        assert_eq!(e.text, "b");
        assert!(
            n.warnings[0]
                .message
                .contains("replaces the expect: attribute")
        );
        // A plain block: no inline expectation (a golden file is the planner's business).
        assert!(
            nb("```console | {type: 'command'}\nx\n```\n").cells[0]
                .expected
                .is_none()
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            (
                "# T\n\n```bash | {type: 'edit'}\nx\n```\n",
                3,
                12,
                "an edit cell needs a 'path' attribute",
            ),
            (
                "```bash | {type: 'copy'}\nx\n```\n",
                2,
                1,
                "'x': a copy line is COPY SRC DEST",
            ),
            (
                "```bash | {type: 'interactive'}\nx\n```\n",
                1,
                12,
                "an interactive cell needs a 'prompt' attribute",
            ),
            (
                "```bash | {type: 'command', tty: true, serve: true}\nx\n```\n",
                1,
                40,
                "attribute 'serve' applies to command cells without tty",
            ),
            (
                "```bash | {type: 'file', path: x, spawn: 'yes'}\nx\n```\n",
                1,
                35,
                "attribute 'spawn' applies to command cells without tty",
            ),
            (
                "```bash | {type: 'comand'}\nx\n```\n",
                1,
                12,
                "unknown cell type 'comand'",
            ),
            (
                "```bash | {type:command}\nx\n```\n",
                1,
                12,
                "key 'type:command' contains ':'",
            ),
            (
                "x\n\n```bash | {type: 'command'\nx\n```\n",
                3,
                27,
                "invalid annotation",
            ),
            (
                "```js | {type: 'file'}\nx\n```\n",
                1,
                10,
                "a file cell needs a 'path' attribute",
            ),
            (
                "``` | {type: 'script'}\nx\n```\n",
                1,
                1,
                "script cell needs a language",
            ),
            (
                "```bash | {timeout: forever}\nx\n```\n",
                1,
                12,
                "attribute 'timeout': invalid duration",
            ),
            (
                "```console\noops\n$ x\n```\n",
                2,
                1,
                "before its first '$ ' command",
            ),
            (
                "- a\n\n  ```console\n  stray\n  ```\n",
                4,
                3,
                "before its first '$ ' command",
            ),
            ("```bash | \nx\n```\n", 1, 10, "empty annotation"),
        ];
        for (md, line, column, message) in cases {
            let e = err(md);
            assert_eq!((e.line, e.column), (line, column), "{md}\n{e}");
            assert!(e.message.contains(message), "{md}\n{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("t.md:{line}:{column}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn unclosed_fences() {
        // A cell: an error at the opening fence.
        let e = err("# T\n\n```bash | {type: 'command'}\nls\n\nMore prose.\n");
        assert_eq!((e.line, e.column), (3, 1));
        assert!(e.message.starts_with("unclosed fence opened here"), "{e}");
        let e = err("- item\n\n  ```console\n  $ x\n- next\n");
        assert_eq!((e.line, e.column), (3, 3), "{e}");
        // Not a cell: a warning, and the rest is code.
        let n = nb("~~~\nsample\n\n```bash | {type: 'command'}\nls\n```\n");
        assert!(n.cells.is_empty());
        assert_eq!(n.warnings.len(), 1);
        assert_eq!((n.warnings[0].line, n.warnings[0].column), (1, 1));
        assert!(
            n.warnings[0]
                .message
                .starts_with("unclosed fence opened here")
        );
    }

    #[test]
    fn unknown_attributes_warn() {
        let n = nb("```bash | {type: 'command', colour: 'red'}\nx\n```\n");
        assert_eq!(n.cells.len(), 1);
        assert_eq!((n.warnings[0].line, n.warnings[0].column), (1, 29));
        assert!(n.warnings[0].message.contains("unknown attribute 'colour'"));
        let n = nb("```console | {exit: 1}\n$ false\n[1]\n```\n");
        assert!(
            n.warnings[0]
                .message
                .contains("'exit' does not apply to transcripts")
        );
    }

    #[test]
    fn braces_after_a_transcript_language_without_a_bar_warn() {
        let n = nb("```console {target: web}\n$ true\n```\n");
        assert_eq!(n.cells.len(), 1);
        assert_eq!((n.warnings[0].line, n.warnings[0].column), (1, 12));
        assert!(n.warnings[0].message.contains("need a '|' before them"));
        // scrut reads its own, and other languages' braces belong to other tools.
        for md in [
            "```scrut {timeout: 10s}\n$ true\n```\n",
            "```python {.numberLines}\nx\n```\n",
        ] {
            assert!(nb(md).warnings.is_empty(), "{md}");
        }
    }

    #[test]
    fn nested_tilde_list_and_quote_fences() {
        let md = "````bash | {type: 'command'}\ncat <<EOF\n```\nEOF\n````\n\n~~~console\n$ echo '```'\n```\n~~~\n\n1. step\n\n   ```console\n   $ ls\n   a\n   ```\n\n> ```console\n> $ pwd\n> /lab\n> ```\n";
        let n = nb(md);
        let got: Vec<(String, u32, usize, String, String)> = n
            .cells
            .iter()
            .map(|c| (kind(c), c.line, c.indent, c.prefix.clone(), c.fence.clone()))
            .collect();
        let want = vec![
            (
                "command \"cat <<EOF\\n```\\nEOF\\n\"".to_owned(),
                1,
                0,
                String::new(),
                "````".to_owned(),
            ),
            (
                "transcript [\"echo '```'=>```[0]\"]".to_owned(),
                7,
                0,
                String::new(),
                "~~~".to_owned(),
            ),
            (
                "transcript [\"ls=>a[0]\"]".to_owned(),
                14,
                3,
                "   ".to_owned(),
                "```".to_owned(),
            ),
            (
                "transcript [\"pwd=>/lab[0]\"]".to_owned(),
                19,
                2,
                "> ".to_owned(),
                "```".to_owned(),
            ),
        ];
        assert_eq!(got, want);
        // Step spans cover whole source lines, prefixes included.
        let CellKind::Transcript { steps, .. } = &n.cells[3].kind else {
            panic!()
        };
        let s = steps[0].expected_span;
        assert_eq!((&md[s.start..s.end], s.line), ("> /lab\n", 21));
        let CellKind::Transcript { steps, .. } = &n.cells[2].kind else {
            panic!()
        };
        let s = steps[0].expected_span;
        assert_eq!(&md[s.start..s.end], "   a\n");
    }

    #[test]
    fn docable_setup_comment_without_front_matter() {
        let md = "<!--\nsetup:\n  local: {}\n-->\n\n# T\n\n```bash | {type: 'command'}\nls\n```\n";
        let n = nb(md);
        assert_eq!(
            n.settings.backend,
            Some(crate::notebook::BackendKind::Container)
        );
        assert_eq!(n.settings.image.as_deref(), Some("host"));
        assert_eq!(n.settings.line, 1);
        // With front matter the comment is only a comment.
        let n = nb(&format!("---\nlabrun: {{image: busybox}}\n---\n{md}"));
        assert_eq!(n.settings.image.as_deref(), Some("busybox"));
        assert_eq!(n.settings.backend, None);
    }
}
