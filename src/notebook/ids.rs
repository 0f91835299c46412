//! Cell ids: `id:` when given, else `<slug of the nearest heading above>-<n>`, and the check
//! that no two cells share one.
//!
//! Headings with the same slug are told apart the way anchors are (`setup`, `setup-1`), so two
//! "Example" sections do not make every notebook with them fail on duplicate ids. Cells before
//! any heading are in a section named `cell`. Every cell takes the next number of its section,
//! explicit ids included, so giving one cell an id does not rename the cells after it.

use std::collections::HashMap;

use super::hash::{FastState, StrMap};

/// The section name of cells above the first heading (or under a heading with no ASCII
/// letters or digits).
const NO_HEADING: &str = "cell";

/// Longest slug kept from a heading, so ids stay usable as file names.
const MAX_SLUG: usize = 64;

/// A heading's slug: lowercase ASCII letters and digits, other runs become one `-`.
#[cfg(test)]
pub fn slug(heading: &str) -> String {
    let mut out = String::with_capacity(heading.len().min(MAX_SLUG));
    slug_into(heading, &mut out);
    out
}

/// `slug`, appended to `out` (empty on entry).
fn slug_into(heading: &str, out: &mut String) {
    let mut pending_dash = false;
    for c in heading.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c.to_ascii_lowercase());
            if out.len() >= MAX_SLUG {
                break;
            }
        } else {
            pending_dash = true;
        }
    }
}

#[derive(Debug, Default)]
pub struct Ids {
    /// Section slugs handed out so far.
    sections: StrMap<()>,
    /// The next suffix to try for a heading slug, so a hundred "Step" headings stay linear.
    next_suffix: HashMap<String, usize, FastState>,
    current: Option<String>,
    counter: usize,
    /// Every cell id so far, with its 1-based line.
    taken: StrMap<u32>,
    /// The buffer of the section before the current one, reused for the next heading's name.
    spare: String,
}

impl Ids {
    /// A heading starts a new section.
    pub fn heading(&mut self, text: &str) {
        let mut name = std::mem::take(&mut self.spare);
        name.clear();
        slug_into(text, &mut name);
        if name.is_empty() {
            name.push_str(NO_HEADING);
        }
        if self.sections.contains(&name) {
            let base = name;
            let next = self.next_suffix.entry(base.clone()).or_insert(1);
            loop {
                name = numbered(&base, *next);
                *next += 1;
                if !self.sections.contains(&name) {
                    break;
                }
            }
        }
        let _ = self.sections.insert_new(&name, ());
        self.spare = self.current.replace(name).unwrap_or_default();
        self.counter = 0;
    }

    /// The id of the next cell: `explicit` when given, else the section's next number.
    /// `Err` carries the line of the cell that already has the id.
    pub fn next(&mut self, explicit: Option<&str>, line: u32) -> Result<String, (String, u32)> {
        let section = self.current.get_or_insert_with(|| {
            let _ = self.sections.insert_new(NO_HEADING, ());
            NO_HEADING.to_owned()
        });
        self.counter += 1;
        let id = match explicit {
            Some(id) => id.to_owned(),
            None => numbered(section, self.counter),
        };
        match self.taken.insert_new(&id, line) {
            Ok(()) => Ok(id),
            Err(&first) => Err((id, first)),
        }
    }
}

/// `base-n`, without the formatting machinery (this runs once per cell).
fn numbered(base: &str, n: usize) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(base.len() + 1 + digits.len() - i);
    out.push_str(base);
    out.push('-');
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let cases = [
            ("A Simple Container", "a-simple-container"),
            (
                "Prepare a simple rootfs with busybox.",
                "prepare-a-simple-rootfs-with-busybox",
            ),
            (
                "  Introducing Docker containers.  ",
                "introducing-docker-containers",
            ),
            ("⚙ Setup (optional)", "setup-optional"),
            ("Über--größe", "ber-gr-e"),
            ("C++ & Rust_2024", "c-rust-2024"),
            ("日本語", ""),
            ("", ""),
        ];
        for (heading, want) in cases {
            assert_eq!(slug(heading), want, "{heading}");
        }
        let long = slug(&"ab ".repeat(100));
        assert_eq!(long.len(), MAX_SLUG);
        assert!(long.starts_with("ab-ab-") && !long.ends_with('-'));
    }

    #[test]
    fn numbering_per_section() {
        let mut ids = Ids::default();
        let mut got = Vec::new();
        let mut line = 0;
        let mut cell = |ids: &mut Ids, explicit: Option<&str>| {
            line += 1;
            ids.next(explicit, line).unwrap()
        };
        got.push(cell(&mut ids, None));
        ids.heading("Intro");
        got.push(cell(&mut ids, None));
        got.push(cell(&mut ids, Some("build")));
        got.push(cell(&mut ids, None));
        ids.heading("Example");
        got.push(cell(&mut ids, None));
        ids.heading("Example");
        got.push(cell(&mut ids, None));
        ids.heading("日本語");
        got.push(cell(&mut ids, None));
        assert_eq!(
            got,
            vec![
                "cell-1",
                "intro-1",
                "build",
                "intro-3",
                "example-1",
                "example-1-1",
                "cell-1-1"
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(numbered("a", 0), "a-0");
        assert_eq!(numbered("step", 1), "step-1");
        assert_eq!(numbered("x-1", 1234567890), "x-1-1234567890");
    }

    #[test]
    fn a_heading_named_cell_without_cells_above_keeps_its_slug() {
        let mut ids = Ids::default();
        ids.heading("Cell");
        assert_eq!(ids.next(None, 1).unwrap(), "cell-1");
    }

    #[test]
    fn duplicates_name_the_first_line() {
        let mut ids = Ids::default();
        ids.heading("Intro");
        assert_eq!(ids.next(Some("x"), 3).unwrap(), "x");
        assert_eq!(ids.next(Some("x"), 9), Err(("x".to_owned(), 3)));
        assert_eq!(ids.next(Some("intro-4"), 12).unwrap(), "intro-4");
        assert_eq!(ids.next(None, 15), Err(("intro-4".to_owned(), 12)));
    }
}
