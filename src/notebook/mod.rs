//! Notebook parsing: markdown in, a `Notebook` of cells with byte spans out. Pure and synchronous.
//!
//! The stages, one file each: `source` (bytes to text, positions), `front_matter` (settings),
//! `blocks` (fenced blocks with exact spans, via pulldown-cmark), `annotation` and `attrs`
//! (what a block's info string says), `transcript` (`$ ` steps), `ids`, and `cells` (which
//! blocks are cells and what they mean). Bad input is a `ParseError` naming the file, line and
//! column; it never panics.

mod annotation;
mod attrs;
mod blocks;
mod cells;
pub mod copy_spec;
mod front_matter;
mod hash;
mod huge;
mod ids;
mod interactive;
pub mod model;
mod source;
mod transcript;
mod value;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use model::*;
use source::Source;

/// Notebooks over this size are refused (section 2).
pub const MAX_NOTEBOOK_BYTES: u64 = 64 * 1024 * 1024;

/// How a notebook is read, from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// `--run-all`: every bash/sh/shell block is a cell, as with `run: all`.
    pub run_all: bool,
}

/// A notebook that cannot be read or parsed. Nothing runs.
///
/// Line and column are 1-based; both are 0 when the error concerns the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ParseError {
    pub path: PathBuf,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ParseError {
    fn new(path: &Path, diagnostic: Diagnostic) -> ParseError {
        ParseError {
            path: path.to_path_buf(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message,
        }
    }

    fn whole_file(path: &Path, message: String) -> ParseError {
        ParseError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message,
        }
    }
}

/// Reads and parses the notebook at `path`.
pub fn load(path: &Path, opts: &ParseOptions) -> Result<Notebook, ParseError> {
    let fail = |message: String| ParseError::whole_file(path, message);
    let io = |err: std::io::Error| fail(format!("cannot read notebook: {}", io_message(&err)));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(fail("is a directory, not a notebook".into()));
    }
    if meta.len() > MAX_NOTEBOOK_BYTES {
        return Err(fail(too_large()));
    }
    // The size can change between the check and the read (or be unknown, for a pipe): read at
    // most one byte past the limit whatever the metadata said.
    let file = File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.take(MAX_NOTEBOOK_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse(path, &bytes, opts)
}

fn too_large() -> String {
    "notebook is larger than 64 MiB".into()
}

/// `std::io::Error`'s message starts with a capital ("No such file"); diagnostics do not.
fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Parses a notebook's bytes; `path` names it in errors and in the result.
pub fn parse(path: &Path, bytes: &[u8], opts: &ParseOptions) -> Result<Notebook, ParseError> {
    if bytes.len() as u64 > MAX_NOTEBOOK_BYTES {
        return Err(ParseError::whole_file(path, too_large()));
    }
    let fail = |d: Diagnostic| ParseError::new(path, d);
    let src = Source::decode(bytes).map_err(fail)?;
    let mut warnings = Vec::new();

    let (front, unclosed) = front_matter::find(&src).map_err(fail)?;
    warnings.extend(unclosed);
    let (mut settings, markdown_start) = match front {
        Some(block) => {
            let (settings, w) = front_matter::read(&src, block).map_err(fail)?;
            warnings.extend(w);
            (settings, block.end)
        }
        None => (Settings::default(), src.bom),
    };

    let run_all = opts.run_all || settings.run == RunMode::All;
    let mut builder = cells::Builder::new(&src, run_all);
    let first_comment =
        blocks::scan(&src, markdown_start, |item| builder.push(item)).map_err(fail)?;
    let (cells, not_run, w) = builder.finish();
    warnings.extend(w);
    if front.is_none()
        && let Some(comment) = &first_comment
    {
        let inner = &src.text[comment.inner.clone()];
        let (docable, w) =
            front_matter::read_docable(&src, comment.inner.start, inner, comment.start);
        warnings.extend(w);
        if let Some(docable) = docable {
            settings = docable;
        }
    }
    warnings.sort_by_key(|w| (w.line, w.column));

    Ok(Notebook {
        path: path.to_path_buf(),
        line_ending: src.line_ending,
        source: src.text,
        settings,
        cells,
        not_run,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RICH: &str = "---
title: Lab
labrun:
  image: busybox
  timeout: 5s
---

<!-- a comment -->

# Setup

```bash | {type: 'command', id: prep}
mkdir -p /lab/x
```

```output
```

## Files

```js | {type:'file',path:'id.js'}
console.log(1)
```

```python | {type: 'script', timeout: 10s}
print('hi')
```

```output
hi
```

## Checks

```console
$ echo a
a

$ cat <<EOF
> b
> EOF
b
$ false
[1]
```

- In a list:

  ```scrut {timeout: 3s}
  $ ls
  x
  ```

> ```bash | {type: 'command', expect: 'q'}
> echo q
> ```

```bash | {skip: true}
rm -rf /
```

```quiz | {type: 'quiz'}
?
```
";

    fn parse_str(md: &str) -> Result<Notebook, ParseError> {
        parse(Path::new("lab.md"), md.as_bytes(), &ParseOptions::default())
    }

    /// Everything about the cells that does not depend on byte offsets.
    fn shape(n: &Notebook) -> Vec<String> {
        n.cells
            .iter()
            .map(|c| {
                let kind = match &c.kind {
                    CellKind::Transcript { steps, stdout_only } => format!(
                        "transcript {stdout_only} {:?}",
                        steps
                            .iter()
                            .map(|s| (
                                &s.command,
                                s.line,
                                &s.expected,
                                s.exit,
                                s.exit_written,
                                s.expected_span.line,
                                s.expected_span.end - s.expected_span.start > 0,
                            ))
                            .collect::<Vec<_>>()
                    ),
                    other => format!("{other:?}"),
                };
                let expected = c.expected.as_ref().map(|e| {
                    let span_line = match &e.source {
                        ExpectedSource::OutputBlock { block, body, .. } => (block.line, body.line),
                        _ => (0, 0),
                    };
                    (e.text.clone(), span_line)
                });
                format!(
                    "{} line {} body-line {} lang {} fence {} indent {} prefix {:?} {kind} attrs {:?} expected {expected:?}",
                    c.id, c.line, c.body.line, c.lang, c.fence, c.indent, c.prefix, c.attrs
                )
            })
            .collect()
    }

    #[test]
    fn reads_a_rich_notebook() {
        let n = parse_str(RICH).unwrap();
        let ids: Vec<&str> = n.cells.iter().map(|c| c.id.0.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "prep", "files-1", "files-2", "checks-1", "checks-2", "checks-3", "checks-4",
                "checks-5"
            ]
        );
        assert!(n.warnings.is_empty(), "{:?}", n.warnings);
        assert_eq!(n.settings.image.as_deref(), Some("busybox"));
        assert_eq!(n.line_ending, LineEnding::Lf);
        assert_eq!(n.source, RICH);
        // Every recorded span indexes the source at the bytes it describes.
        for c in &n.cells {
            let block = &n.source[c.block.start..c.block.end];
            assert!(block.starts_with(&c.fence), "{}: {block:?}", c.id);
            assert!(block.trim_end().ends_with(&c.fence), "{}: {block:?}", c.id);
            assert_eq!(
                n.source[..c.block.start].matches('\n').count() + 1,
                c.line as usize
            );
        }
        let prep = &n.cells[0];
        let Some(Expected {
            source: ExpectedSource::OutputBlock { body, .. },
            text,
            ..
        }) = &prep.expected
        else {
            panic!("{:?}", prep.expected)
        };
        assert_eq!(
            (text.as_str(), body.start, body.end),
            ("", body.start, body.start)
        );
        assert_eq!(&n.source[body.start..body.start + 3], "```");
        let CellKind::Transcript {
            steps,
            stdout_only: false,
        } = &n.cells[3].kind
        else {
            panic!()
        };
        let spans: Vec<&str> = steps
            .iter()
            .map(|s| &n.source[s.expected_span.start..s.expected_span.end])
            .collect();
        assert_eq!(spans, vec!["a\n", "b\n", ""]);
        let exit = steps[2].exit_span.unwrap();
        assert_eq!(&n.source[exit.start..exit.end], "[1]\n");
        assert_eq!(&n.source[steps[2].expected_span.start..][..4], "[1]\n");
        assert!(matches!(
            &n.cells[4].kind,
            CellKind::Transcript {
                stdout_only: true,
                ..
            }
        ));
        assert_eq!(
            n.cells[4].attrs.timeout,
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(n.cells[5].prefix, "> ");
        assert!(matches!(&n.cells[5].kind, CellKind::Command { script } if script == "echo q\n"));
    }

    #[test]
    fn crlf_and_bom_give_the_same_cells() {
        let lf = parse_str(RICH).unwrap();
        let crlf_text = format!("\u{feff}{}", RICH.replace('\n', "\r\n"));
        let crlf = parse_str(&crlf_text).unwrap();
        assert_eq!(crlf.line_ending, LineEnding::Crlf);
        assert_eq!(crlf.source, crlf_text, "the source is kept as read");
        assert_eq!(shape(&crlf), shape(&lf));
        assert_eq!(crlf.settings.image, lf.settings.image);
        // Spans in the CRLF file still cover whole lines, `\r\n` included.
        let CellKind::Transcript { steps, .. } = &crlf.cells[3].kind else {
            panic!()
        };
        let s = steps[0].expected_span;
        assert_eq!(&crlf.source[s.start..s.end], "a\r\n");
        let c = &crlf.cells[0];
        assert_eq!(
            &crlf.source[c.body.start..c.body.end],
            "mkdir -p /lab/x\r\n"
        );
        // Errors and warnings are at the same line and column too.
        for md in [
            "\n# T\n\n```bash | {type: 'command', x: 1}\nls\n```\n",
            "# T\n\n~~~\nopen\n",
        ] {
            let a = parse_str(md).unwrap().warnings;
            let b = parse_str(&format!("\u{feff}{}", md.replace('\n', "\r\n")))
                .unwrap()
                .warnings;
            assert_eq!(a, b, "{md}");
            assert!(!a.is_empty());
        }
        let md = "```bash | {timeout: x}\nls\n```\n";
        let a = parse_str(md).unwrap_err();
        let b = parse_str(&format!("\u{feff}{}", md.replace('\n', "\r\n"))).unwrap_err();
        assert_eq!(
            (a.line, a.column, &a.message),
            (b.line, b.column, &b.message)
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_with_its_position() {
        let e = parse(
            Path::new("x.md"),
            b"# T\n\nok \xe2\x82 bad\n",
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, 4));
        assert_eq!(
            e.to_string(),
            "x.md:3:4: invalid utf-8 (byte 0xe2); notebooks must be utf-8 text"
        );
    }

    #[test]
    fn run_all_option() {
        let md = "```bash\nls\n```\n";
        assert!(parse_str(md).unwrap().cells.is_empty());
        let n = parse(
            Path::new("x.md"),
            md.as_bytes(),
            &ParseOptions { run_all: true },
        )
        .unwrap();
        assert_eq!(n.cells.len(), 1);
        assert_eq!(
            n.settings.run,
            RunMode::Marked,
            "settings say what the notebook says"
        );
    }

    #[test]
    fn load_reads_files_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lab.md");
        std::fs::write(&file, "```console\n$ true\n```\n").unwrap();
        let n = load(&file, &ParseOptions::default()).unwrap();
        assert_eq!((n.cells.len(), n.path.as_path()), (1, file.as_path()));

        let e = load(dir.path(), &ParseOptions::default()).unwrap_err();
        assert_eq!((e.line, e.column), (0, 0));
        assert!(e.message.contains("is a directory"), "{e}");

        let missing = dir.path().join("missing.md");
        let e = load(&missing, &ParseOptions::default()).unwrap_err();
        assert!(
            e.message.starts_with("cannot read notebook: no such file"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{}:0:0: ", missing.display())),
            "{e}"
        );

        let big = dir.path().join("big.md");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_NOTEBOOK_BYTES + 1).unwrap();
        let e = load(&big, &ParseOptions::default()).unwrap_err();
        assert!(e.message.contains("larger than 64 MiB"), "{e}");
    }

    #[test]
    fn parse_refuses_more_than_64_mib() {
        let bytes = vec![b'a'; MAX_NOTEBOOK_BYTES as usize + 1];
        let e = parse(Path::new("x.md"), &bytes, &ParseOptions::default()).unwrap_err();
        assert!(e.message.contains("larger than 64 MiB"));
    }

    #[test]
    fn a_10_mb_notebook_parses() {
        let section = "## Step\n\nSome prose with `code` and a [link](https://example.org).\n\n```bash | {type: 'command', timeout: '5s'}\necho hello\nls -la /tmp\n```\n\n```output\nhello\n...\n```\n\n```console\n$ echo a\na\n$ false\n[1]\n```\n\n```\nsample, not a cell\n```\n\n";
        let mut md = String::with_capacity(10 * 1024 * 1024 + section.len());
        let mut sections = 0;
        while md.len() < 10 * 1024 * 1024 {
            md.push_str(section);
            sections += 1;
        }
        let n = parse_str(&md).unwrap();
        assert_eq!(n.cells.len(), sections * 2);
        assert_eq!(
            n.cells.last().unwrap().id.0,
            format!("step-{}-2", sections - 1)
        );
        assert!(n.warnings.is_empty());
    }

    #[test]
    fn bad_input_never_panics() {
        // Deterministic mutations of a rich notebook: every result is a notebook or an error.
        let base = RICH.as_bytes();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"`~|{}[]:'\"$> \n\r\t-#*\\!<>,0123456789abc\xff\xc3";
        for _ in 0..1500 {
            let mut bytes = base.to_vec();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            if let Err(e) = parse(Path::new("f.md"), &bytes, &ParseOptions { run_all: true }) {
                assert!(!e.message.is_empty());
                assert!(e.line >= 1, "{e}");
            }
        }
        for weird in [
            "",
            "\u{feff}",
            "```",
            "---",
            "---\n",
            "```bash |",
            "~~~~~~~~",
            "\r\r\r```\r",
            "<!--",
            "<!-- setup: [ -->",
        ] {
            let _ = parse_str(weird);
        }
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    #[test]
    fn pathological_markdown_is_bounded() {
        let n = 50_000;
        let cases = [
            format!("{}```console\n$ x\n```\n", "> ".repeat(n)),
            format!("{}```console\n$ x\n```\n", "- ".repeat(n)),
            format!("{}```console\n$ x\n```\n", "1. ".repeat(n)),
            "[".repeat(n * 2),
            "*a ".repeat(n * 2),
            "<!--".repeat(n),
            format!("```bash | {{a: {}}}\nx\n```\n", "[".repeat(2000)),
            "```\n".repeat(n),
            "#".repeat(n) + " heading\n",
            format!("---\nlabrun:\n{}\n---\n", "  - ".repeat(5000)),
        ];
        for md in cases {
            let start = std::time::Instant::now();
            let _ = parse(
                Path::new("h.md"),
                md.as_bytes(),
                &ParseOptions { run_all: true },
            );
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{}...",
                &md[..40.min(md.len())]
            );
        }
    }
}
