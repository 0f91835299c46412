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
///
/// Byte by byte: a character outside ASCII is never a letter or digit here, and each of its
/// bytes (all outside ASCII too) says the same.
fn slug_into(heading: &str, out: &mut String) {
    let mut pending_dash = false;
    for b in heading.bytes() {
        if b.is_ascii_alphanumeric() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(char::from(b.to_ascii_lowercase()));
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
    /// Section names handed out so far, each with where its cells start in `cells`.
    sections: StrMap<Section>,
    /// The next suffix to try for a heading slug, so a hundred "Step" headings stay linear.
    next_suffix: HashMap<String, usize, FastState>,
    current: Option<String>,
    counter: usize,
    /// Every cell so far, in order: its section and, when its id was generated, its line.
    cells: Vec<CellEntry>,
    /// Ids given with `id:`, with the 1-based line of their cell.
    explicit: StrMap<u32>,
    /// The buffer of the section before the current one, reused for the next heading's name.
    spare: String,
}

/// A section's number (in order of appearance) and the index of its first cell in `cells`:
/// a section's cells are the cells up to the next heading, so its `n`th is at `first + n - 1`.
#[derive(Debug, Clone, Copy)]
struct Section {
    number: usize,
    first: usize,
}

#[derive(Debug, Clone, Copy)]
struct CellEntry {
    section: usize,
    /// The cell's line when its id was generated (`section-n`), `None` for an explicit id.
    generated: Option<u32>,
}

// Which ids are taken, without a table of every id: section names are unique and a section's
// cell numbers increase, so no two generated ids `section-n` are the same. A generated id is
// taken only when an explicit id took it; an explicit id is taken by an explicit id, or by the
// generated id it spells, found by splitting it at its last `-` into section and number.

impl Ids {
    /// A heading starts a new section.
    pub fn heading(&mut self, text: &str) {
        let mut name = std::mem::take(&mut self.spare);
        name.clear();
        slug_into(text, &mut name);
        if name.is_empty() {
            name.push_str(NO_HEADING);
        }
        let section = Section {
            number: self.sections.len(),
            first: self.cells.len(),
        };
        if self.sections.insert_new(&name, section).is_err() {
            let base = name;
            let next = self.next_suffix.entry(base.clone()).or_insert(1);
            loop {
                name = numbered(&base, *next);
                *next += 1;
                if self.sections.insert_new(&name, section).is_ok() {
                    break;
                }
            }
        }
        self.spare = self.current.replace(name).unwrap_or_default();
        self.counter = 0;
    }

    /// The id of the next cell: `explicit` when given, else the section's next number.
    /// `Err` carries the line of the cell that already has the id.
    pub fn next(&mut self, explicit: Option<&str>, line: u32) -> Result<String, (String, u32)> {
        if self.current.is_none() {
            let section = Section {
                number: self.sections.len(),
                first: self.cells.len(),
            };
            let _ = self.sections.insert_new(NO_HEADING, section);
            self.current = Some(NO_HEADING.to_owned());
        }
        let section = self.current.as_deref().unwrap_or(NO_HEADING);
        let number = self.sections.len() - 1;
        self.counter += 1;
        match explicit {
            Some(id) => {
                if let Some(first) = self.generated_line(id) {
                    return Err((id.to_owned(), first));
                }
                if let Err(&first) = self.explicit.insert_new(id, line) {
                    return Err((id.to_owned(), first));
                }
                self.cells.push(CellEntry {
                    section: number,
                    generated: None,
                });
                Ok(id.to_owned())
            }
            None => {
                let id = numbered(section, self.counter);
                if let Some(&first) = self.explicit.get(&id) {
                    return Err((id, first));
                }
                self.cells.push(CellEntry {
                    section: number,
                    generated: Some(line),
                });
                Ok(id)
            }
        }
    }

    /// The line of the cell whose generated id is `id`, if there is one.
    fn generated_line(&self, id: &str) -> Option<u32> {
        let (section, n) = id.rsplit_once('-')?;
        // `numbered` writes a number from 1 without leading zeros.
        if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = n.parse().ok()?;
        let s = *self.sections.get(section)?;
        let cell = self.cells.get(s.first.checked_add(n - 1)?)?;
        if cell.section == s.number {
            cell.generated
        } else {
            None
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

    /// The ids as they were kept before: one table of every id.
    #[derive(Default)]
    struct Reference {
        sections: std::collections::HashSet<String>,
        next_suffix: HashMap<String, usize>,
        current: Option<String>,
        counter: usize,
        taken: HashMap<String, u32>,
    }

    impl Reference {
        fn heading(&mut self, text: &str) {
            let mut name = match slug(text) {
                s if s.is_empty() => NO_HEADING.to_owned(),
                s => s,
            };
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
            self.sections.insert(name.clone());
            self.current = Some(name);
            self.counter = 0;
        }

        fn next(&mut self, explicit: Option<&str>, line: u32) -> Result<String, (String, u32)> {
            let section = self.current.get_or_insert_with(|| {
                self.sections.insert(NO_HEADING.to_owned());
                NO_HEADING.to_owned()
            });
            self.counter += 1;
            let id = match explicit {
                Some(id) => id.to_owned(),
                None => numbered(section, self.counter),
            };
            match self.taken.entry(id) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    Err((first.key().clone(), *first.get()))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let id = slot.key().clone();
                    slot.insert(line);
                    Ok(id)
                }
            }
        }
    }

    #[test]
    fn taken_ids_agree_with_a_table_of_every_id() {
        let headings = ["A", "a 1", "A-1", "Cell", "", "b", "cell 1", "x-0"];
        let explicit = [
            "a-1",
            "a-2",
            "a-1-1",
            "cell-1",
            "cell-2",
            "a",
            "b-1",
            "a-01",
            "a-0",
            "cell-1-1",
            "x",
            "a-18446744073709551616",
            "-1",
            "b--1",
            "x-0-1",
        ];
        let mut seed: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Collisions seen: an explicit id taken by a generated one, and the other way round.
        let (mut explicit_taken, mut generated_taken) = (0, 0);
        for _ in 0..3000 {
            let (mut ids, mut reference) = (Ids::default(), Reference::default());
            for line in 1..30 {
                match next() % 4 {
                    0 => {
                        let h = headings[next() as usize % headings.len()];
                        ids.heading(h);
                        reference.heading(h);
                    }
                    1 => {
                        let e = explicit[next() as usize % explicit.len()];
                        let got = ids.next(Some(e), line);
                        assert_eq!(got, reference.next(Some(e), line));
                        if let Err((_, first)) = got {
                            if ids.cells.iter().any(|c| c.generated == Some(first)) {
                                explicit_taken += 1;
                            }
                            break;
                        }
                    }
                    _ => {
                        let got = ids.next(None, line);
                        assert_eq!(got, reference.next(None, line));
                        if got.is_err() {
                            generated_taken += 1;
                            break;
                        }
                    }
                }
            }
        }
        assert!(
            explicit_taken > 50 && generated_taken > 50,
            "{explicit_taken} {generated_taken}"
        );
    }
}
