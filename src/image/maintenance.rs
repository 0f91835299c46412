//! Removing layers (`labrun image rm` and `prune`) while other labrun processes may be using
//! them.
//!
//! Every process that uses the cache's layers holds a shared lock on `<root>/in-use.lock`
//! for as long as it does ([`Cache::hold`]: a run keeps it until its container is gone).
//! Removing takes the lock exclusively, and refuses at once when a run holds it: a layer
//! taken away under a running lab would be files vanishing from its root. A layer is
//! renamed into `trash/` first, so it disappears whole even when its removal is cut short.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::cache::remove_tree;
use super::{Cache, ImageError, LayerInfo};

/// A hold on the cache's layers: shared by users, exclusive for removal.
#[derive(Debug)]
pub struct CacheHold {
    _lock: Flock<File>,
}

/// What a removal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub layers: Vec<String>,
    /// Files of the vm backend (`prune` only).
    pub vm_files: Vec<super::vm_files::VmFile>,
    pub bytes: u64,
}

impl Cache {
    /// A shared hold: the layers stay while it lives. Blocks while a removal runs.
    pub fn hold(&self) -> Result<CacheHold, ImageError> {
        self.hold_as(FlockArg::LockShared)?
            .ok_or_else(|| unreachable_busy(self))
    }

    fn hold_exclusively(&self) -> Result<CacheHold, ImageError> {
        self.hold_as(FlockArg::LockExclusiveNonblock)?
            .ok_or_else(|| {
                ImageError::io_at(
                    self.root(),
                    "removing layers from",
                    io::Error::new(
                        ErrorKind::ResourceBusy,
                        "a running labrun is using the cache; try again when it ends",
                    ),
                )
            })
    }

    fn hold_as(&self, how: FlockArg) -> Result<Option<CacheHold>, ImageError> {
        let path = self.root().join("in-use.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ImageError::io_at(&path, "opening the lock", e))?;
        loop {
            match Flock::lock(file, how) {
                Ok(lock) => return Ok(Some(CacheHold { _lock: lock })),
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(ImageError::io_at(&path, "locking", e.into())),
            }
        }
    }

    /// Removes the layer that `name` names (its key, a prefix of it that names one layer, or
    /// what it is, as `image ls` shows: `debian:bookworm`) and every layer built on it.
    pub fn remove(&self, name: &str) -> Result<Removed, ImageError> {
        let _hold = self.hold_exclusively()?;
        let all = self.layers();
        let chosen = choose(&all, name).map_err(|problem| ImageError::Invalid {
            image: name.to_string(),
            problem,
        })?;
        let mut doomed: Vec<&LayerInfo> = Vec::new();
        for layer in &all {
            if descends_from(&all, layer, &chosen) {
                doomed.push(layer);
            }
        }
        self.remove_all(&doomed)
    }

    /// Removes what an interrupted build left, layers replaced by `--rebuild`, and layers not
    /// used for `unused_for` (every layer when `None`); the vm backend's files likewise.
    pub fn prune(&self, unused_for: Option<Duration>) -> Result<Removed, ImageError> {
        let _hold = self.hold_exclusively()?;
        let now = SystemTime::now();
        let all = self.layers();
        let doomed: Vec<&LayerInfo> = all
            .iter()
            .filter(|l| match (unused_for, l.last_used) {
                (None, _) | (Some(_), None) => true,
                (Some(age), Some(used)) => now.duration_since(used).unwrap_or_default() >= age,
            })
            .collect();
        let mut removed = self.remove_all(&doomed)?;
        removed.vm_files = super::vm_files::prune(self.root(), unused_for);
        removed.bytes += removed.vm_files.iter().map(|f| f.size).sum::<u64>();
        for dir in ["trash", "tmp"] {
            if let Ok(entries) = fs::read_dir(self.root().join(dir)) {
                for entry in entries.flatten() {
                    let _ = remove_tree(&entry.path());
                }
            }
        }
        Ok(removed)
    }

    /// Keeps the vm's files within `budget` (see [`super::vm_files::trim`]) when no run is
    /// using the cache; `None` when one is (its own end will try again).
    pub fn trim_vm_files(
        &self,
        budget: u64,
    ) -> Result<Option<Vec<super::vm_files::VmFile>>, ImageError> {
        let Some(_hold) = self.hold_as(FlockArg::LockExclusiveNonblock)? else {
            return Ok(None);
        };
        Ok(Some(super::vm_files::trim(
            self.root(),
            budget,
            super::vm_files::KEPT_WHILE_RECENT,
        )))
    }

    fn remove_all(&self, doomed: &[&LayerInfo]) -> Result<Removed, ImageError> {
        let mut removed = Removed::default();
        for layer in doomed {
            self.throw_away(&layer.key)?;
            self.forget(&layer.key);
            removed.layers.push(layer.key.clone());
            removed.bytes += layer.size;
        }
        if let Ok(entries) = fs::read_dir(self.root().join("trash")) {
            for entry in entries.flatten() {
                remove_tree(&entry.path())
                    .map_err(|e| ImageError::io_at(&entry.path(), "removing", e))?;
            }
        }
        Ok(removed)
    }
}

fn unreachable_busy(cache: &Cache) -> ImageError {
    ImageError::io_at(
        cache.root(),
        "holding",
        io::Error::other("a blocking lock came back busy"),
    )
}

/// The key `name` picks among `all`.
fn choose(all: &[LayerInfo], name: &str) -> Result<String, String> {
    if let Some(l) = all.iter().find(|l| l.key == name) {
        return Ok(l.key.clone());
    }
    let by_what: Vec<&LayerInfo> = all.iter().filter(|l| l.what == name).collect();
    let by_prefix: Vec<&LayerInfo> = all
        .iter()
        .filter(|l| name.len() >= 4 && l.key.starts_with(name))
        .collect();
    match (by_what.as_slice(), by_prefix.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.key.clone()),
        ([], []) => Err("is not a cached layer (see labrun image ls)".into()),
        _ => Err("names more than one cached layer; give more of its key".into()),
    }
}

/// Whether `layer` is `ancestor` or built on it, following parent records.
fn descends_from(all: &[LayerInfo], layer: &LayerInfo, ancestor: &str) -> bool {
    let mut at = Some(layer);
    for _ in 0..=all.len() {
        let Some(l) = at else { return false };
        if l.key == ancestor {
            return true;
        }
        at = l
            .parent
            .as_deref()
            .and_then(|p| all.iter().find(|x| x.key == p));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(key: &str, parent: Option<&str>, what: &str) -> LayerInfo {
        LayerInfo {
            key: key.into(),
            parent: parent.map(str::to_string),
            what: what.into(),
            size: 0,
            last_used: None,
        }
    }

    #[test]
    fn layers_are_named_by_key_prefix_or_what_they_are() {
        let all = [
            layer("debian-aaaa1", None, "debian:bookworm"),
            layer("step-bbbb1", Some("debian-aaaa1"), "setup step 1"),
            layer("step-bbbb2", Some("step-bbbb1"), "setup step 2"),
        ];
        assert_eq!(choose(&all, "debian:bookworm").unwrap(), "debian-aaaa1");
        assert_eq!(choose(&all, "step-bbbb2").unwrap(), "step-bbbb2");
        assert!(
            choose(&all, "step-bbbb")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            choose(&all, "ste")
                .unwrap_err()
                .contains("not a cached layer")
        );
        assert!(descends_from(&all, &all[2], "debian-aaaa1"));
        assert!(!descends_from(&all, &all[0], "step-bbbb1"));
    }

    #[test]
    fn the_vm_files_are_trimmed_only_when_no_run_holds_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::at(t.path().join("cache")).unwrap();
        let vm = super::super::vm_files::dir(cache.root());
        fs::create_dir_all(&vm).unwrap();
        let stale = vm.join("snapshot-stale.bin");
        let file = File::create(&stale).unwrap();
        file.set_len(10 << 20).unwrap();
        file.set_times(
            fs::FileTimes::new().set_accessed(SystemTime::now() - Duration::from_secs(86400)),
        )
        .unwrap();

        let running = cache.hold().unwrap();
        assert_eq!(
            cache.trim_vm_files(1 << 20).unwrap(),
            None,
            "a run holds it"
        );
        assert!(stale.exists());
        drop(running);
        let removed = cache.trim_vm_files(1 << 20).unwrap().unwrap();
        assert_eq!(removed.len(), 1);
        assert!(!stale.exists());
    }
}
