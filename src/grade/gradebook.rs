//! The grade book: one entry per submission, streamed to a journal as results come in (so
//! memory stays bounded), then written sorted by name as `grades.json` and `grades.csv`.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::score::CellScore;

/// One submission's line of the grade book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub submission: String,
    /// `graded`, or `error` when the submission got no result (a bad archive, a refused
    /// notebook); `error` says why.
    pub status: String,
    pub score: f64,
    pub max_score: f64,
    pub error: Option<String>,
    /// Why the run stopped before its end (the submission's time ran out), when it did.
    pub note: Option<String>,
    /// Timing: the one field a merge of shards does not reproduce.
    pub duration_ms: f64,
    pub cells: Vec<CellScore>,
}

/// What every grade book of one grading notebook shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub labrun: String,
    /// The grading notebook, as named on the command line.
    pub grading: String,
    pub max_score: f64,
    /// The grading notebook's cells: id and points, in order (the CSV's columns).
    pub cells: Vec<(String, f64)>,
    /// `K/N` when this book holds one shard; `None` for a whole run or a merge.
    pub shard: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradeBook {
    #[serde(flatten)]
    pub header: Header,
    pub submissions: Vec<Entry>,
}

/// Appends entries to `results.jsonl` as submissions finish, one line each.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
}

pub const JOURNAL: &str = "results.jsonl";

impl Journal {
    pub fn create(dir: &Path) -> io::Result<Journal> {
        let path = dir.join(JOURNAL);
        let out = BufWriter::new(File::create(&path)?);
        Ok(Journal { path, out })
    }

    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes the sorted grade book next to the journal, reading the journal back one entry
    /// at a time (only names and offsets are held).
    pub fn finish(mut self, header: &Header) -> io::Result<()> {
        self.out.flush()?;
        let mut index: Vec<(String, u64, usize)> = Vec::new();
        let mut reader = BufReader::new(File::open(&self.path)?);
        let mut offset = 0u64;
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            let entry: Entry = serde_json::from_str(&line).map_err(io::Error::other)?;
            index.push((entry.submission, offset, n));
            offset += n as u64;
        }
        index.sort();
        let mut file = File::open(&self.path)?;
        let entries = index.into_iter().map(move |(_, at, len)| {
            let mut buf = vec![0u8; len];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut buf)?;
            serde_json::from_slice::<Entry>(&buf).map_err(io::Error::other)
        });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        write(dir, header, entries)
    }
}

/// Writes `grades.json` and `grades.csv` in `dir` from entries already sorted by name.
pub fn write(
    dir: &Path,
    header: &Header,
    entries: impl Iterator<Item = io::Result<Entry>>,
) -> io::Result<()> {
    let mut json = BufWriter::new(File::create(dir.join("grades.json"))?);
    let mut csv = BufWriter::new(File::create(dir.join("grades.csv"))?);
    let head = serde_json::to_value(header).map_err(io::Error::other)?;
    json.write_all(b"{\n")?;
    for (key, value) in head.as_object().into_iter().flatten() {
        writeln!(json, "  {}: {},", serde_json::to_string(key)?, value)?;
    }
    json.write_all(b"  \"submissions\": [")?;
    let mut columns = vec!["submission", "status", "score", "max_score"];
    columns.extend(header.cells.iter().map(|(id, _)| id.as_str()));
    columns.push("error");
    csv_row(&mut csv, columns.iter().map(|c| c.to_string()))?;
    for (i, entry) in entries.enumerate() {
        let entry = entry?;
        json.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
        serde_json::to_writer(&mut json, &entry)?;
        csv_row(&mut csv, csv_fields(header, &entry))?;
    }
    json.write_all(b"\n  ]\n}\n")?;
    json.flush()?;
    csv.flush()
}

fn csv_fields(header: &Header, entry: &Entry) -> impl Iterator<Item = String> {
    let mut fields = vec![
        entry.submission.clone(),
        entry.status.clone(),
        entry.score.to_string(),
        entry.max_score.to_string(),
    ];
    for (id, _) in &header.cells {
        let cell = entry.cells.iter().find(|c| &c.id == id);
        fields.push(cell.map(|c| c.score.to_string()).unwrap_or_default());
    }
    fields.push(entry.error.clone().unwrap_or_default());
    fields.into_iter()
}

fn csv_row(out: &mut impl Write, fields: impl Iterator<Item = String>) -> io::Result<()> {
    let fields: Vec<String> = fields.collect();
    out.write_all(crate::report::csv::record(&fields).as_bytes())
}

/// Reads a grade book written by `labrun grade`.
pub fn read(path: &Path) -> Result<GradeBook, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a labrun grade book: {e}", path.display()))
}
