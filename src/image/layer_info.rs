//! What each cached layer is and when it was last used, kept beside the layers for the
//! `labrun image` commands:
//!
//! ```text
//! <root>/info/<key>   "parent <key>" and "what <text>" lines, written once after the build
//! <root>/used/<key>   an empty file whose modification time is the layer's last use
//! ```
//!
//! Both are best effort: a layer without them is still a layer (listed as `?`, pruned as
//! unused), and failing to write them never fails a run.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Cache;

/// One cached layer, as `labrun image ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub key: String,
    /// The layer it was built on (setup steps), if any.
    pub parent: Option<String>,
    /// What it is: `setup step 2 of notebooks/x.md: apt-get install -y jq`, `debian:bookworm`.
    pub what: String,
    pub size: u64,
    pub last_used: Option<SystemTime>,
}

impl Cache {
    /// Records what the layer `key` is (once: a record already there stays).
    pub fn describe(&self, key: &str, parent: Option<&str>, what: &str) {
        let path = self.root().join("info").join(key);
        if path.exists() {
            return;
        }
        let text = format!(
            "parent {}\nwhat {}\n",
            parent.unwrap_or("-"),
            what.replace('\n', " ")
        );
        let _ = write_new(&path, text.as_bytes());
    }

    /// Notes that the layers of `keys` are in use now (for `labrun image prune`).
    pub fn mark_used<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let dir = self.root().join("used");
        let _ = fs::create_dir(&dir);
        let now = SystemTime::now();
        for key in keys {
            let path = dir.join(key);
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path);
            if let Ok(f) = file {
                let _ = f.set_modified(now);
            }
        }
    }

    /// Records the cached ones among an image's `layers` as `name` (unless known already),
    /// and marks them used now.
    pub fn describe_image(&self, layers: &[PathBuf], name: &str) {
        let ours = self.root().join("layers");
        let keys: Vec<String> = layers
            .iter()
            .filter(|l| l.parent() == Some(ours.as_path()))
            .filter_map(|l| Some(l.file_name()?.to_string_lossy().into_owned()))
            .collect();
        for key in &keys {
            self.describe(key, None, name);
        }
        self.mark_used(keys.iter().map(String::as_str));
    }

    /// Every finished layer, sorted by key.
    pub fn layers(&self) -> Vec<LayerInfo> {
        let Ok(entries) = fs::read_dir(self.root().join("layers")) else {
            return Vec::new();
        };
        let mut out: Vec<LayerInfo> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| self.info(&e.file_name().to_string_lossy()))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// What is known of the layer `key`.
    pub fn info(&self, key: &str) -> LayerInfo {
        let text = fs::read_to_string(self.root().join("info").join(key)).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_string)
        };
        LayerInfo {
            key: key.to_string(),
            parent: field("parent").filter(|p| p != "-"),
            what: field("what").unwrap_or_else(|| "?".into()),
            size: tree_size(&self.layer_path(key)),
            last_used: fs::metadata(self.root().join("used").join(key))
                .and_then(|m| m.modified())
                .ok(),
        }
    }

    /// Forgets the records of a removed layer.
    pub(crate) fn forget(&self, key: &str) {
        for dir in ["info", "used", "locks"] {
            let name = if dir == "locks" {
                format!("{key}.lock")
            } else {
                key.to_string()
            };
            let _ = fs::remove_file(self.root().join(dir).join(name));
        }
    }
}

/// Writes a file whole under a temporary name, then renames it into place.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    File::create(&tmp)?.write_all(bytes)?;
    fs::rename(&tmp, path)
}

/// The disk a tree takes (its blocks, each hard-linked file counted once per link).
pub fn tree_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut todo: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += meta.blocks() * 512 / meta.nlink().max(1);
            if meta.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    total
}
