//! `labrun merge`: joins the grade books of shards into one, equal to an unsharded run's
//! except for timing fields.

use std::path::Path;

use super::gradebook::{self, Entry, Header};

/// Merges the grade books at `inputs` into `grades.json` and `grades.csv` in `out_dir`.
pub fn merge(inputs: &[impl AsRef<Path>], out_dir: &Path) -> Result<usize, String> {
    let mut header: Option<(Header, &Path)> = None;
    let mut entries: Vec<Entry> = Vec::new();
    for input in inputs {
        let path = input.as_ref();
        let book = gradebook::read(path)?;
        let mut this = book.header;
        this.shard = None;
        match &header {
            None => header = Some((this, path)),
            Some((first, first_path))
                if first.grading != this.grading || first.cells != this.cells =>
            {
                return Err(format!(
                    "{} and {} grade different notebooks ({} and {}); merge only shards of one run",
                    first_path.display(),
                    path.display(),
                    first.grading,
                    this.grading
                ));
            }
            Some(_) => {}
        }
        entries.extend(book.submissions);
    }
    let Some((header, _)) = header else {
        return Err("merge needs at least one grade book".into());
    };
    entries.sort_by(|a, b| a.submission.cmp(&b.submission));
    if let Some(w) = entries
        .windows(2)
        .find(|w| w[0].submission == w[1].submission)
    {
        return Err(format!(
            "the submission '{}' is in two of these grade books (were the shards of different sizes?)",
            w[0].submission
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let count = entries.len();
    gradebook::write(out_dir, &header, entries.into_iter().map(Ok))
        .map_err(|e| format!("{}: {e}", out_dir.display()))?;
    Ok(count)
}
