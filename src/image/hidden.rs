//! What the `host` image hides: the host's secrets and the lab's own material, each replaced
//! inside the container by an empty directory or an empty file (the runtime masks them in the run's writable layer, or mounts empty ones over them rootless).
//!
//! The contract's list: `/root`, `/home`, `/tmp`, `/var/tmp`, `/run`, `/mnt`, `/media`,
//! `/etc/shadow`, `/etc/gshadow` (and their `-` backups), `/etc/ssh/*_key`, the labrun cache,
//! plus what the caller adds (the notebook's directory, its expected output, submissions).
//!
//! Paths are canonical (a hidden symbolic link hides what it points to: that is where a mount
//! lands), those that do not exist are skipped, and a path inside another hidden directory is
//! left out: the outer one already hides it, and the inner one could not be mounted on in the
//! empty directory that replaces the outer.

use std::fs;
use std::path::{Path, PathBuf};

use super::Cache;

/// One hidden path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hidden {
    pub path: PathBuf,
    /// Hide with an empty directory (else with an empty file).
    pub is_dir: bool,
}

const HIDDEN_DIRS: [&str; 7] = [
    "/root", "/home", "/tmp", "/var/tmp", "/run", "/mnt", "/media",
];
const HIDDEN_FILES: [&str; 4] = [
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
];

/// The host paths to hide, sorted; see the module documentation.
pub fn host_hidden_paths(cache: &Cache, extra: &[PathBuf]) -> Vec<Hidden> {
    let mut all = vec![cache.root().to_path_buf()];
    all.extend(extra.iter().cloned());
    host_hidden_paths_of(&all)
}

/// The same, with the cache (if any) among `extra`.
pub fn host_hidden_paths_of(extra: &[PathBuf]) -> Vec<Hidden> {
    let mut wanted: Vec<PathBuf> = HIDDEN_DIRS
        .iter()
        .chain(HIDDEN_FILES.iter())
        .map(PathBuf::from)
        .collect();
    wanted.extend(ssh_host_keys(Path::new("/etc/ssh")));
    wanted.extend(extra.iter().cloned());
    let mut found: Vec<Hidden> = wanted
        .iter()
        .filter_map(|p| {
            let path = p.canonicalize().ok()?;
            let is_dir = fs::metadata(&path).ok()?.is_dir();
            Some(Hidden { path, is_dir })
        })
        .collect();
    // Sorted, a directory comes right before everything inside it.
    found.sort();
    found.dedup_by(|a, b| a.path == b.path);
    let mut kept: Vec<Hidden> = Vec::with_capacity(found.len());
    for h in found {
        let covered = kept
            .iter()
            .any(|k| k.is_dir && h.path != k.path && h.path.starts_with(&k.path));
        if !covered {
            kept.push(h);
        }
    }
    kept
}

/// `dir/*_key`: the SSH host private keys.
fn ssh_host_keys(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_key"))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glob_takes_private_keys_only() {
        let t = tempfile::tempdir().unwrap();
        for name in [
            "ssh_host_ed25519_key",
            "ssh_host_ed25519_key.pub",
            "sshd_config",
        ] {
            fs::write(t.path().join(name), "").unwrap();
        }
        assert_eq!(
            ssh_host_keys(t.path()),
            vec![t.path().join("ssh_host_ed25519_key")]
        );
        assert!(ssh_host_keys(&t.path().join("missing")).is_empty());
    }
}
