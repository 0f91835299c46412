//! Applying a unified diff (`diff -u`, `git diff`) to a file's text: what an `edit` cell
//! does. Pure. A hunk whose old lines are not in the file is an error that shows the hunk.
//!
//! Hunks apply in order; each is looked for at the line its header names (shifted by what
//! earlier hunks added or removed), then anywhere after the previous hunk, as `patch` does
//! without fuzz.

/// A hunk that did not apply.
#[derive(Debug, PartialEq, Eq)]
pub struct HunkError {
    /// 1-based number of the hunk in the diff.
    pub number: usize,
    /// The hunk as written, header included.
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Default)]
struct Hunk {
    old_start: usize,
    old: Vec<String>,
    new: Vec<String>,
    text: String,
}

/// `original` with every hunk of `diff` applied.
pub fn apply(original: &str, diff: &str) -> Result<String, HunkError> {
    let hunks = parse(diff)?;
    let ends_with_newline = original.is_empty() || original.ends_with('\n');
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    let mut shift: isize = 0;
    let mut from = 0;
    for (i, hunk) in hunks.iter().enumerate() {
        let wanted = (hunk.old_start.saturating_sub(1) as isize + shift).max(0) as usize;
        let at = find(&lines, &hunk.old, wanted, from).ok_or_else(|| HunkError {
            number: i + 1,
            text: hunk.text.clone(),
            reason: "its old lines are not in the file".into(),
        })?;
        lines.splice(at..at + hunk.old.len(), hunk.new.iter().cloned());
        shift += hunk.new.len() as isize - hunk.old.len() as isize;
        from = at + hunk.new.len();
    }
    let mut out = lines.join("\n");
    if ends_with_newline && !lines.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// Where `old` is in `lines`: at `wanted` if it is there, else the first place from `from`.
fn find(lines: &[String], old: &[String], wanted: usize, from: usize) -> Option<usize> {
    let fits = |at: usize| at + old.len() <= lines.len() && lines[at..at + old.len()] == *old;
    if fits(wanted) {
        return Some(wanted);
    }
    (from..=lines.len().saturating_sub(old.len())).find(|&at| fits(at))
}

fn parse(diff: &str) -> Result<Vec<Hunk>, HunkError> {
    let mut hunks: Vec<Hunk> = Vec::new();
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            let old_start = old_start(header).ok_or_else(|| HunkError {
                number: hunks.len() + 1,
                text: line.to_owned(),
                reason: "the hunk header is not '@@ -N,M +N,M @@'".into(),
            })?;
            hunks.push(Hunk {
                old_start,
                text: format!("{line}\n"),
                ..Hunk::default()
            });
            continue;
        }
        let Some(hunk) = hunks.last_mut() else {
            continue; // `diff --git`, `---`, `+++` and prose before the first hunk
        };
        hunk.text.push_str(line);
        hunk.text.push('\n');
        match line.split_at_checked(1) {
            Some(("-", rest)) => hunk.old.push(rest.to_owned()),
            Some(("+", rest)) => hunk.new.push(rest.to_owned()),
            Some((" ", rest)) => {
                hunk.old.push(rest.to_owned());
                hunk.new.push(rest.to_owned());
            }
            // An empty context line whose space an editor removed.
            None => {
                hunk.old.push(String::new());
                hunk.new.push(String::new());
            }
            _ => {} // `\ No newline at end of file`
        }
    }
    if hunks.is_empty() {
        return Err(HunkError {
            number: 0,
            text: String::new(),
            reason: "the diff has no hunk (no line starting with '@@ ')".into(),
        });
    }
    Ok(hunks)
}

/// The old side's first line from `-N,M +N,M @@`.
fn old_start(header: &str) -> Option<usize> {
    let old = header.strip_prefix('-')?.split_whitespace().next()?;
    old.split(',').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "one\ntwo\nthree\nfour\nfive\n";

    #[test]
    fn hunks_apply_in_order() {
        let diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-one\n+ONE\n two\n@@ -4,2 +4,3 @@\n four\n five\n+six\n";
        assert_eq!(
            apply(FILE, diff).unwrap(),
            "ONE\ntwo\nthree\nfour\nfive\nsix\n"
        );
    }

    #[test]
    fn a_hunk_found_elsewhere_still_applies() {
        let diff = "@@ -1,1 +1,1 @@\n-three\n+3\n";
        assert_eq!(apply(FILE, diff).unwrap(), "one\ntwo\n3\nfour\nfive\n");
    }

    #[test]
    fn a_hunk_that_does_not_apply_is_shown() {
        let diff = "@@ -2,1 +2,1 @@\n-zwei\n+2\n";
        let e = apply(FILE, diff).unwrap_err();
        assert_eq!(e.number, 1);
        assert_eq!(e.text, "@@ -2,1 +2,1 @@\n-zwei\n+2\n");
    }

    #[test]
    fn no_hunk_and_bad_headers_are_errors() {
        assert!(apply(FILE, "just text\n").is_err());
        assert!(apply(FILE, "@@ nonsense @@\n").is_err());
    }

    #[test]
    fn a_new_file_from_nothing() {
        assert_eq!(apply("", "@@ -0,0 +1,2 @@\n+a\n+b\n").unwrap(), "a\nb\n");
    }
}
