//! The body of a `copy` cell: `COPY SRC DEST` lines (docable's syntax), read into places.
//!
//! A place is `TARGET:/path` (a path on that machine), `/path` (on the cell's own machine),
//! or a relative path: as a source, below the notebook's directory; as a destination, below
//! the directory given with `--artifacts`. Relative paths never hold `..`. Quoting is not
//! needed and not read: paths are single words, as in docable.

use std::path::{Component, Path};

/// Where a copy reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An absolute path on a machine: the named target, or the cell's own.
    Machine {
        target: Option<String>,
        path: String,
    },
    /// Below the notebook's directory (sources only).
    Notebook(String),
    /// Below `--artifacts DIR` (destinations only).
    Artifacts(String),
}

/// One `COPY` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    pub line: u32,
    pub from: Place,
    pub to: Place,
}

impl Place {
    /// As the report shows it.
    pub fn show(&self) -> String {
        match self {
            Place::Machine {
                target: Some(t),
                path,
            } => format!("{t}:{path}"),
            Place::Machine { target: None, path } => path.clone(),
            Place::Notebook(rel) => format!("{rel} (notebook)"),
            Place::Artifacts(rel) => format!("{rel} (artifacts)"),
        }
    }
}

/// Reads a copy cell's body; `first_line` is the line of its first body line. Errors carry
/// the line they are about.
pub fn parse(body: &str, first_line: u32) -> Result<Vec<CopyStep>, (u32, String)> {
    let mut steps = Vec::new();
    for (i, raw) in body.lines().enumerate() {
        let line = first_line + i as u32;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        let [keyword, from, to] = words[..] else {
            return Err((line, format!("'{text}': a copy line is COPY SRC DEST")));
        };
        if !keyword.eq_ignore_ascii_case("copy") {
            return Err((line, format!("'{text}': a copy line starts with COPY")));
        }
        let from = place(from, true).map_err(|m| (line, m))?;
        let to = place(to, false).map_err(|m| (line, m))?;
        if matches!((&from, &to), (Place::Notebook(_), Place::Artifacts(_))) {
            return Err((
                line,
                format!(
                    "'{text}': copies go into or out of a machine, not from the notebook's directory to the artifacts"
                ),
            ));
        }
        steps.push(CopyStep { line, from, to });
    }
    if steps.is_empty() {
        return Err((
            first_line,
            "a copy cell needs at least one COPY SRC DEST line".into(),
        ));
    }
    Ok(steps)
}

fn place(word: &str, source: bool) -> Result<Place, String> {
    if let Some((target, path)) = word.split_once(':')
        && path.starts_with('/')
        && !target.is_empty()
        && !target.contains('/')
    {
        return Ok(Place::Machine {
            target: Some(target.to_string()),
            path: path.to_string(),
        });
    }
    if word.starts_with('/') {
        return Ok(Place::Machine {
            target: None,
            path: word.to_string(),
        });
    }
    let rel = Path::new(word);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("'{word}' leaves its directory (..)"));
    }
    Ok(if source {
        Place::Notebook(word.to_string())
    } else {
        Place::Artifacts(word.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(target: Option<&str>, path: &str) -> Place {
        Place::Machine {
            target: target.map(String::from),
            path: path.into(),
        }
    }

    #[test]
    fn places_are_machines_the_notebook_or_artifacts() {
        let steps = parse(
            "COPY web:/srv/a /tmp/a\n\n# a comment\ncopy files/site.conf db:/etc/site.conf\nCOPY /lab/out.txt results/out.txt\n",
            10,
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].line, 10);
        assert_eq!(steps[0].from, machine(Some("web"), "/srv/a"));
        assert_eq!(steps[0].to, machine(None, "/tmp/a"));
        assert_eq!(steps[1].line, 13);
        assert_eq!(steps[1].from, Place::Notebook("files/site.conf".into()));
        assert_eq!(steps[1].to, machine(Some("db"), "/etc/site.conf"));
        assert_eq!(steps[2].to, Place::Artifacts("results/out.txt".into()));
    }

    #[test]
    fn bad_lines_are_errors_at_their_line() {
        for (body, line, needle) in [
            ("COPY a", 1, "COPY SRC DEST"),
            ("MOVE a /b", 1, "starts with COPY"),
            ("\nCOPY ../secret /tmp/x", 2, "leaves its directory"),
            ("COPY /x ../../etc/passwd", 1, "leaves its directory"),
            ("COPY a b", 1, "not from the notebook's directory"),
            ("# nothing", 1, "at least one"),
        ] {
            let (at, message) = parse(body, 1).unwrap_err();
            assert_eq!(at, line, "{body}");
            assert!(message.contains(needle), "{body}: {message}");
        }
    }
}
