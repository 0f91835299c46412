//! Safe extraction of a submission archive (.zip, .tar.gz, .tgz, .tar), entry by entry.
//!
//! Nothing is trusted: an entry with `..`, an absolute path, a hard link, a symlink that
//! leads out, a device or a size past the caps is refused by name, and the whole archive with
//! it. Sizes are counted on the bytes actually written, never on what a header claims.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// How much one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub entries: usize,
    pub entry_bytes: u64,
    pub total_bytes: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            entries: 10_000,
            entry_bytes: 64 << 20,
            total_bytes: 256 << 20,
        }
    }
}

/// The formats a submission may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    TarGz,
    Tar,
}

impl Format {
    /// The format a file name says, and the name without its extension.
    pub fn of(name: &str) -> Option<(Format, &str)> {
        [
            (".tar.gz", Format::TarGz),
            (".tgz", Format::TarGz),
            (".tar", Format::Tar),
            (".zip", Format::Zip),
        ]
        .into_iter()
        .find_map(|(ext, f)| name.strip_suffix(ext).map(|stem| (f, stem)))
    }
}

/// What kind of entry an archive holds.
enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// Writes entries under `root`, keeping count against the caps.
struct Extractor<'a> {
    root: &'a Path,
    caps: Caps,
    entries: usize,
    total: u64,
}

/// The entry's path below the root, or why it is refused.
fn relative_path(name: &str) -> Result<PathBuf, String> {
    let path = Path::new(name);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("has '..' in its path".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path".into()),
        }
    }
    Ok(out)
}

/// Whether a symlink at `rel` pointing to `target` stays inside the root, judged on the
/// path alone (the link is never followed while extracting).
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

impl Extractor<'_> {
    /// Refuses a parent directory that is not a real directory of the extraction (a symlink
    /// an earlier entry planted), then creates it.
    fn parent_dirs(&self, rel: &Path) -> Result<(), String> {
        let mut dir = self.root.to_path_buf();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            dir.push(c);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err("lies below an entry that is not a directory".into()),
                Err(_) => fs::create_dir(&dir).map_err(|e| e.to_string())?,
            }
        }
        Ok(())
    }

    fn entry(
        &mut self,
        name: &str,
        kind: Kind,
        mode: u32,
        data: &mut dyn Read,
    ) -> Result<(), String> {
        let refuse = |why: String| format!("entry '{name}' {why}");
        self.entries += 1;
        if self.entries > self.caps.entries {
            return Err(format!("has more than {} entries", self.caps.entries));
        }
        let rel = relative_path(name).map_err(refuse)?;
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        self.parent_dirs(&rel).map_err(refuse)?;
        let path = self.root.join(&rel);
        match kind {
            Kind::Dir => match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(refuse("is a directory over another entry".into())),
                Err(_) => fs::create_dir(&path).map_err(|e| refuse(e.to_string())),
            },
            Kind::Symlink(target) => {
                if !link_stays_inside(&rel, &target) {
                    return Err(refuse(format!(
                        "is a symlink out of the submission (to {})",
                        target.display()
                    )));
                }
                std::os::unix::fs::symlink(&target, &path).map_err(|e| refuse(e.to_string()))
            }
            Kind::File => self.file(&path, mode, data).map_err(refuse),
        }
    }

    fn file(&mut self, path: &Path, mode: u32, data: &mut dyn Read) -> Result<(), String> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot be written: {e}"))?;
        let left = self.caps.total_bytes - self.total;
        let cap = self.caps.entry_bytes.min(left);
        let copied = io::copy(&mut data.take(cap + 1), &mut out).map_err(|e| e.to_string())?;
        if copied > cap {
            return Err(if cap == self.caps.entry_bytes {
                format!(
                    "is larger than {} (the cap of one entry)",
                    crate::units::show_size(cap)
                )
            } else {
                format!(
                    "takes the archive past {} unpacked",
                    crate::units::show_size(self.caps.total_bytes)
                )
            });
        }
        self.total += copied;
        out.flush().map_err(|e| e.to_string())?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
    }
}

/// Unpacks `archive` into the empty directory `into`; the error says which entry and why.
pub fn extract(archive: &Path, format: Format, into: &Path, caps: Caps) -> Result<(), String> {
    let mut ex = Extractor {
        root: into,
        caps,
        entries: 0,
        total: 0,
    };
    let file = File::open(archive).map_err(|e| e.to_string())?;
    match format {
        Format::Zip => extract_zip(file, &mut ex),
        Format::TarGz => extract_tar(flate2::read::GzDecoder::new(file), &mut ex),
        Format::Tar => extract_tar(file, &mut ex),
    }
}

fn extract_tar(reader: impl Read, ex: &mut Extractor) -> Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| format!("is not a readable tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("is not a readable tar archive: {e}"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Symlink => Kind::Symlink(
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.into_owned())
                    .unwrap_or_default(),
            ),
            tar::EntryType::Link => return Err(format!("entry '{name}' is a hard link")),
            // Extended headers are read by the tar crate itself; anything else is refused.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(format!(
                    "entry '{name}' is a {other:?} entry (only files, directories and symlinks)"
                ));
            }
        };
        ex.entry(&name, kind, mode, &mut entry)?;
    }
    Ok(())
}

fn extract_zip(file: File, ex: &mut Extractor) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("is not a readable zip archive: {e}"))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("is not a readable zip archive: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("entry {i} has a name that cannot be read: {e}"))?
            .into_owned();
        let mode = entry.unix_mode().unwrap_or(0o644);
        let kind = if entry.is_dir() {
            Kind::Dir
        } else if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| format!("entry '{name}': {e}"))?;
            Kind::Symlink(PathBuf::from(target))
        } else {
            Kind::File
        };
        ex.entry(&name, kind, mode, &mut entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_are_refused() {
        assert!(relative_path("a/../../x").is_err());
        assert!(relative_path("/etc/passwd").is_err());
        assert_eq!(relative_path("./a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn links_are_judged_on_their_path() {
        assert!(link_stays_inside(Path::new("a/l"), Path::new("../b")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("../b")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("/etc")));
        assert!(!link_stays_inside(
            Path::new("a/l"),
            Path::new("x/../../../y")
        ));
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::of("ada.tar.gz"), Some((Format::TarGz, "ada")));
        assert_eq!(Format::of("bob.zip"), Some((Format::Zip, "bob")));
        assert_eq!(Format::of("notes.md"), None);
    }
}
