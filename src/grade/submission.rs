//! Submissions: the entries of `--submissions DIR`, and each one staged as a directory the
//! environment mounts read-only at `/lab/.submission`.

use std::fs;
use std::path::{Path, PathBuf};

use super::archive::{self, Caps, Format};

/// Where a submission is seen inside the environment (read-only); its files are also copied
/// into the working directory before the first cell.
pub const MOUNT_POINT: &str = "/lab/.submission";

/// What one entry of the submissions directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Directory,
    Archive(Format),
    Notebook,
}

#[derive(Debug, Clone)]
pub struct Submission {
    /// The entry's name without its extension: the student's name in every report.
    pub name: String,
    pub path: PathBuf,
    pub source: Source,
}

/// The submissions in `dir`, sorted by name. Hidden entries (`.git`) are left out; an entry of
/// another kind, or two entries with one name, is an error naming them.
pub fn list(dir: &Path) -> Result<Vec<Submission>, String> {
    let read = fs::read_dir(dir).map_err(|e| format!("--submissions {}: {e}", dir.display()))?;
    let mut out: Vec<Submission> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("--submissions {}: {e}", dir.display()))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let (name, source) = classify(&path, &file_name)?;
        out.push(Submission {
            name: name.to_string(),
            path,
            source,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!(
            "{} and {} are both the submission '{}'",
            w[0].path.display(),
            w[1].path.display(),
            w[0].name
        ));
    }
    Ok(out)
}

fn classify<'a>(path: &Path, file_name: &'a str) -> Result<(&'a str, Source), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return Ok((file_name, Source::Directory));
    }
    if meta.is_file() {
        if let Some((format, stem)) = Format::of(file_name) {
            return Ok((stem, Source::Archive(format)));
        }
        if let Some(stem) = file_name.strip_suffix(".md") {
            return Ok((stem, Source::Notebook));
        }
    }
    Err(format!(
        "{}: not a submission (a directory, .zip, .tar.gz, .tgz, .tar or .md)",
        path.display()
    ))
}

impl Submission {
    /// The directory to mount for this submission: the directory itself, or a fresh one
    /// under `scratch` holding the notebook or the archive's unpacked files.
    pub fn stage(&self, scratch: &Path) -> Result<PathBuf, String> {
        if self.source == Source::Directory {
            return Ok(self.path.clone());
        }
        let dir = scratch.join(&self.name);
        fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match &self.source {
            Source::Archive(format) => archive::extract(&self.path, *format, &dir, Caps::default())
                .map_err(|why| format!("{}: {why}", self.path.display()))?,
            _ => {
                let name = self.path.file_name().unwrap_or_default();
                fs::copy(&self.path, dir.join(name))
                    .map_err(|e| format!("{}: {e}", self.path.display()))?;
            }
        }
        Ok(dir)
    }

    /// The notebook a submission brings, for `--run-submissions`: the file itself, or the
    /// only `.md` file at the top of the staged directory.
    pub fn notebook(&self, staged: &Path) -> Result<PathBuf, String> {
        let found: Vec<PathBuf> = fs::read_dir(staged)
            .map_err(|e| format!("{}: {e}", self.path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md") && p.is_file())
            .collect();
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!(
                "{}: has no notebook (.md) to run",
                self.path.display()
            )),
            _ => Err(format!(
                "{}: has several notebooks at its top; --run-submissions needs exactly one",
                self.path.display()
            )),
        }
    }
}
