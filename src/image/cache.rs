//! The layer cache: a directory of finished layers, each built once, shared by every labrun
//! process of the user.
//!
//! Where: `$LABRUN_CACHE`, else `$XDG_CACHE_HOME/labrun` (when absolute, as the XDG spec
//! asks), else `$HOME/.cache/labrun`, else the real user's home from the password database.
//! Created 0700, and refused when it belongs to another user: layers are root filesystems,
//! and one planted by someone else would run as the lab's root.
//!
//! Layout:
//! ```text
//! <root>/layers/<key>/          a finished layer (a root tree); never changed once there
//! <root>/layers/<key>.notes     what its build wanted said (skipped device nodes), if anything
//! <root>/locks/<key>.lock       flock held by the one process building <key>
//! <root>/tmp/tmp-<random>/      a build in progress (`.work`: a setup step's overlay work dir)
//! <root>/tmp/tmp-<random>.lock  flock held by that build's process for the build's whole life
//! <root>/trash/<key>-<random>/  a layer replaced by `--rebuild`, removed by `image prune`
//! ```
//!
//! What each layer is and when it was last used live beside it (`store`), for the
//! `labrun image` commands.
//!
//! (A crash in the instant between creating a build's lock file and renaming it to its
//! `tmp-` name leaves a `new-<random>.lock` of zero bytes; nothing else is ever left.)
//!
//! Building ([`Cache::get_or_build`]): take `<key>.lock` (so two processes do not build the
//! same layer twice; the second waits, then finds it done), build into a fresh
//! `tmp/tmp-<random>`, flush the filesystem, and rename it to `layers/<key>` with
//! `RENAME_NOREPLACE`. A rename that loses anyway (a filesystem without working flock) finds
//! the target there, removes its own copy and uses the winner's. A crash mid-build leaves a
//! temporary directory whose lock nobody holds: every later build removes those first. No
//! ages or clocks are involved, so a long build is never mistaken for a dead one.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};

use super::ImageError;

/// The layer store (see the module documentation for its layout).
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A layer in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub path: PathBuf,
    pub notes: Vec<String>,
}

impl Cache {
    /// The user's cache, from the environment (see the module documentation).
    pub fn open() -> Result<Cache, ImageError> {
        Cache::at(default_root(|name| std::env::var_os(name))?)
    }

    /// A cache at `root`, created (0700) when missing.
    pub fn at(root: impl Into<PathBuf>) -> Result<Cache, ImageError> {
        let root = std::path::absolute(root.into())
            .map_err(|e| ImageError::io("the labrun cache directory", e))?;
        make_private_dir(&root, true)?;
        let meta = fs::metadata(&root).map_err(|e| ImageError::io_at(&root, "reading", e))?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() {
            return Err(ImageError::io_at(
                &root,
                "the labrun cache",
                io::Error::new(ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        if meta.uid() != me {
            return Err(ImageError::io_at(
                &root,
                "the labrun cache",
                io::Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "it belongs to uid {}, not to this user (uid {me}); set LABRUN_CACHE",
                        meta.uid()
                    ),
                ),
            ));
        }
        for sub in ["layers", "locks", "tmp"] {
            make_private_dir(&root.join(sub), false)?;
        }
        Ok(Cache { root })
    }

    /// The cache where it would be, without creating it (to hide it from the `host` image).
    pub fn locate() -> Result<Cache, ImageError> {
        Ok(Cache {
            root: default_root(|v| std::env::var_os(v))?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the layer named `key` lives (whether or not it is built).
    pub fn layer_path(&self, key: &str) -> PathBuf {
        self.root.join("layers").join(key)
    }

    /// The layer named `key`, building it with `build` first when it is not there. `build`
    /// fills the empty directory it is given (which becomes the layer's root: it sets that
    /// directory's mode too) and returns notes to keep with the layer. Blocking: it waits
    /// for another process building the same key.
    pub fn get_or_build(
        &self,
        key: &str,
        build: impl FnOnce(&Path) -> Result<Vec<String>, ImageError>,
    ) -> Result<Built, ImageError> {
        self.build_layer(key, false, build)
    }

    /// The layer named `key` built afresh with `build`, whether or not it is there
    /// (`--rebuild`). The old one moves to `trash/`, where runs that still use it keep it
    /// until `labrun image prune`.
    pub fn rebuild(
        &self,
        key: &str,
        build: impl FnOnce(&Path) -> Result<Vec<String>, ImageError>,
    ) -> Result<Built, ImageError> {
        self.build_layer(key, true, build)
    }

    fn build_layer(
        &self,
        key: &str,
        fresh: bool,
        build: impl FnOnce(&Path) -> Result<Vec<String>, ImageError>,
    ) -> Result<Built, ImageError> {
        check_key(key)?;
        let target = self.layer_path(key);
        if !fresh && let Some(built) = self.finished(&target)? {
            return Ok(built);
        }
        let lock_path = self.root.join("locks").join(format!("{key}.lock"));
        let _key_lock = lock_file(&lock_path, FlockArg::LockExclusive)?
            .expect("a blocking lock is always taken");
        if !fresh && let Some(built) = self.finished(&target)? {
            return Ok(built);
        }
        self.clean_stale_builds();
        let temp = TempBuild::new(&self.root.join("tmp"))?;
        let notes = build(&temp.dir)?;
        if fresh {
            self.throw_away(key)?;
        }
        if !notes.is_empty() {
            let notes_tmp = temp.dir.with_extension("notes");
            fs::write(&notes_tmp, notes.join("\n") + "\n")
                .and_then(|()| fs::rename(&notes_tmp, target.with_extension("notes")))
                .map_err(|e| ImageError::io_at(&target, "writing the notes of", e))?;
        }
        // Everything the build wrote reaches the disk before the layer can be seen: a crash
        // must never leave a finished layer with half-written files.
        let dir = File::open(&temp.dir).map_err(|e| ImageError::io_at(&temp.dir, "opening", e))?;
        nix::unistd::syncfs(&dir)
            .map_err(|e| ImageError::io_at(&temp.dir, "flushing", e.into()))?;
        drop(dir);
        match renameat2(
            AT_FDCWD,
            &temp.dir,
            AT_FDCWD,
            &target,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {} // lost the race: the winner's is there
            Err(Errno::EINVAL) if !target.exists() => fs::rename(&temp.dir, &target)
                .map_err(|e| ImageError::io_at(&target, "renaming into place", e))?,
            Err(Errno::EINVAL) => {}
            Err(e) => return Err(ImageError::io_at(&target, "renaming into place", e.into())),
        }
        drop(temp);
        self.finished(&target)?.ok_or_else(|| {
            ImageError::io_at(
                &target,
                "building",
                io::Error::new(ErrorKind::NotFound, "the layer vanished"),
            )
        })
    }

    /// Moves the layer `key` (if any) and its notes out of `layers/` into `trash/`.
    pub(crate) fn throw_away(&self, key: &str) -> Result<(), ImageError> {
        let target = self.layer_path(key);
        if fs::symlink_metadata(&target).is_err() {
            return Ok(());
        }
        let trash = self.root.join("trash");
        make_private_dir(&trash, false)?;
        let gone = trash.join(format!("{key}-{}", random_id()?));
        fs::rename(&target, &gone).map_err(|e| ImageError::io_at(&target, "removing", e))?;
        let _ = fs::remove_file(target.with_extension("notes"));
        Ok(())
    }

    fn finished(&self, target: &Path) -> Result<Option<Built>, ImageError> {
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ImageError::io_at(
                    target,
                    "the cached layer",
                    io::Error::new(ErrorKind::NotADirectory, "is not a directory"),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io_at(target, "reading", e)),
        }
        let notes = match fs::read_to_string(target.with_extension("notes")) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        };
        Ok(Some(Built {
            path: target.to_path_buf(),
            notes,
        }))
    }

    /// Removes temporary build directories whose builder is gone (its lock is free).
    /// Best effort: a failure here only leaves garbage behind.
    fn clean_stale_builds(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_prefix("tmp-") else {
                continue;
            };
            let stem = stem.split('.').next().unwrap_or(stem);
            let dir = tmp.join(format!("tmp-{stem}"));
            let lock = tmp.join(format!("tmp-{stem}.lock"));
            // A builder creates and locks its lock file before its directory, so a directory
            // without a lock file is an orphan too.
            let held = match lock_file_existing(&lock) {
                Ok(Some(guard)) => Some(guard),
                Ok(None) => continue, // a live build
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(_) => continue,
            };
            let _ = remove_tree(&dir);
            let _ = remove_tree(&dir.with_extension("work"));
            let _ = fs::remove_file(dir.with_extension("notes"));
            if held.is_some() {
                let _ = fs::remove_file(&lock);
            }
        }
    }
}

/// The cache root the environment asks for; `var` reads an environment variable.
pub fn default_root(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, ImageError> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = set("LABRUN_CACHE") {
        return std::path::absolute(&p).map_err(|e| ImageError::io("LABRUN_CACHE", e));
    }
    if let Some(p) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(p.join("labrun"));
    }
    let home = match set("HOME").filter(|p| p.is_absolute()) {
        Some(h) => h,
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
            .ok_or_else(|| {
                ImageError::io(
                    "finding the labrun cache",
                    io::Error::new(
                        ErrorKind::NotFound,
                        "no HOME, no XDG_CACHE_HOME and no home directory for this user; set LABRUN_CACHE",
                    ),
                )
            })?,
    };
    Ok(home.join(".cache").join("labrun"))
}

/// Removes a tree, also when some of its directories lack write permission (a layer keeps a
/// tarball's modes, and `rm -rf` as a non-root user fails on a 0555 directory). Never follows
/// symbolic links.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            open_up(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) => Err(e),
    }
}

fn open_up(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(
            dir,
            fs::Permissions::from_mode((meta.mode() & 0o7777) | 0o700),
        )?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_up(&entry.path())?;
        }
    }
    Ok(())
}

fn make_private_dir(path: &Path, recursive: bool) -> Result<(), ImageError> {
    match fs::DirBuilder::new()
        .recursive(recursive)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(ImageError::io_at(path, "creating the cache directory", e)),
    }
}

/// Opens (creating) and locks a lock file; `None` when a non-blocking lock is busy.
fn lock_file(path: &Path, how: FlockArg) -> Result<Option<Flock<File>>, ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| ImageError::io_at(path, "opening the lock", e))?;
    lock(file, how).map_err(|e| ImageError::io_at(path, "locking", e))
}

/// Locks an existing lock file without waiting; `None` when it is held.
fn lock_file_existing(path: &Path) -> io::Result<Option<Flock<File>>> {
    let file = OpenOptions::new().read(true).open(path)?;
    lock(file, FlockArg::LockExclusiveNonblock)
}

fn lock(mut file: File, how: FlockArg) -> io::Result<Option<Flock<File>>> {
    loop {
        match Flock::lock(file, how) {
            Ok(l) => return Ok(Some(l)),
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(e.into()),
        }
    }
}

/// Sixteen random hex digits, for names nobody else picks.
fn random_id() -> Result<String, ImageError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id)
        .map_err(|e| ImageError::io("random name", io::Error::other(e.to_string())))?;
    Ok(super::digest::hex(&id))
}

/// Refuses a layer key that is not `[a-z0-9-]+` (it becomes a file name).
pub(crate) fn check_key(key: &str) -> Result<(), ImageError> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ImageError::io(
            format!("layer key '{key}'"),
            io::Error::new(ErrorKind::InvalidInput, "not [a-z0-9-]+"),
        ));
    }
    Ok(())
}

/// A build's temporary directory and the lock that marks it alive; dropping it removes
/// whatever is left of it.
struct TempBuild {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<File>,
}

impl TempBuild {
    fn new(tmp: &Path) -> Result<TempBuild, ImageError> {
        loop {
            let id = random_id()?;
            let name = format!("tmp-{id}");
            // The lock file is created and locked under a name cleaners ignore, then renamed:
            // a cleaner never sees it unlocked.
            let staging = tmp.join(format!("new-{id}.lock"));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&staging)
            {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ImageError::io_at(&staging, "creating", e)),
            };
            let lock = lock(file, FlockArg::LockExclusive)
                .map_err(|e| ImageError::io_at(&staging, "locking", e))?
                .expect("a blocking lock is always taken");
            let lock_path = tmp.join(format!("{name}.lock"));
            fs::rename(&staging, &lock_path)
                .map_err(|e| ImageError::io_at(&lock_path, "creating", e))?;
            let dir = tmp.join(&name);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| ImageError::io_at(&dir, "creating", e))?;
            return Ok(TempBuild {
                dir,
                lock_path,
                _lock: lock,
            });
        }
    }
}

impl Drop for TempBuild {
    fn drop(&mut self) {
        let _ = remove_tree(&self.dir);
        let _ = remove_tree(&self.dir.with_extension("work"));
        let _ = fs::remove_file(self.dir.with_extension("notes"));
        let _ = fs::remove_file(&self.lock_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_the_cache_is() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        const ALL: [(&str, &str); 3] = [
            ("LABRUN_CACHE", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(default_root(env(&ALL)).unwrap(), Path::new("/c"));
        assert_eq!(
            default_root(env(&ALL[1..])).unwrap(),
            Path::new("/x/labrun")
        );
        assert_eq!(
            default_root(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])).unwrap(),
            Path::new("/h/.cache/labrun")
        );
        assert_eq!(
            default_root(env(&[("LABRUN_CACHE", ""), ("HOME", "/h")])).unwrap(),
            Path::new("/h/.cache/labrun")
        );
        // No variables at all: the password database's home of the real user.
        assert!(default_root(env(&[])).unwrap().ends_with(".cache/labrun"));
    }
}
