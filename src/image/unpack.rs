//! The safe tar unpacker: writes a tar stream's entries under a destination directory and
//! nowhere else, whatever the archive says.
//!
//! The rules:
//! - a name that is absolute or has a `..` component is refused by name ("entry '../x'
//!   escapes the image"); `.` components are dropped, and `./` itself is the root;
//! - nothing is written through a symbolic link: every parent of an entry is looked at with
//!   `lstat` before anything is created in it, and a symbolic link or a non-directory there
//!   is refused; files are opened with `O_NOFOLLOW` and `O_EXCL`. This check-then-act is
//!   sound because the destination is private to this process (a fresh temporary directory
//!   of the cache), so nothing else changes it between the check and the write;
//! - a hard link must name an earlier entry inside, reached without symbolic links;
//! - an entry replaces whatever is at its path (a directory replaced by a file goes, tree and
//!   all, inside the destination only); a directory entry over a directory only sets its
//!   attributes;
//! - modes are kept exactly (umask does not apply); owners are kept when `owners` is set
//!   (by default when running as root) and ignored otherwise; modification times are kept;
//! - directory attributes are applied at the end, deepest first, so a read-only directory
//!   can still be filled; directories an earlier layer left read-only are opened up while
//!   writing into them and restored at the end;
//! - device nodes are created only with `devices` (root), else skipped and reported; fifos
//!   are always created (any user may);
//! - at most `max_entries` entries and `max_bytes` bytes of file data.
//!
//! Whiteouts: with [`Whiteouts::Keep`] (a rootfs tarball) `.wh.*` names are ordinary files.
//! With [`Whiteouts::Apply`] the stream is an OCI layer unpacked over the layers below it
//! (already in the destination): `.wh.<name>` removes `<name>` from below, and
//! `.wh..wh..opq` empties its directory of everything from below; neither touches what this
//! same stream wrote, and the markers themselves are not written. With
//! [`Whiteouts::Overlay`] the stream is an OCI layer unpacked alone, to be stacked as an
//! overlayfs lower directory: `.wh.<name>` becomes overlayfs's whiteout (a character device
//! 0:0, which the kernel lets any user create), and `.wh..wh..opq` marks its directory opaque
//! with the `user.overlay.opaque` attribute (read by rootless mounts, which use `userxattr`)
//! and, as root, `trusted.overlay.opaque` too (read by root's mounts). Either way what this
//! same stream writes stays. An OCI layer may be empty; a rootfs tarball may not.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, FileTimes, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::ImageError;
use super::cache::remove_tree;

/// What `.wh.` names mean in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Ordinary files (a rootfs tarball).
    Keep,
    /// OCI whiteouts, applied to what the destination already holds.
    Apply,
    /// OCI whiteouts, written as overlayfs whiteouts and opaque markers in this layer.
    Overlay,
}

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Names the archive in errors and notes: a path, or an image and layer digest.
    pub label: String,
    pub whiteouts: Whiteouts,
    /// Keep the archive's uid and gid.
    pub owners: bool,
    /// Create device nodes (else skip them).
    pub devices: bool,
    /// The most file data the archive may unpack to.
    pub max_bytes: u64,
    /// The most entries the archive may have.
    pub max_entries: u64,
}

/// 8 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

impl UnpackOptions {
    /// The defaults: plain `.wh.` files, owners and devices kept when running as root, the
    /// default limits.
    pub fn new(label: impl Into<String>) -> UnpackOptions {
        let root = nix::unistd::geteuid().is_root();
        UnpackOptions {
            label: label.into(),
            whiteouts: Whiteouts::Keep,
            owners: root,
            devices: root,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl UnpackOptions {
    /// A cache key for the tree these options unpack from the archive with `digest`: what
    /// decides the tree is the bytes, the caller's rules (`recipe`, `format`: bumped when
    /// they change), and whether owners and device nodes are kept (root and non-root unpacks
    /// differ). Limits only refuse, so are not in it.
    pub fn tree_key(&self, recipe: &str, format: &str, digest: &str) -> String {
        super::digest::recipe_key(&[
            recipe,
            format,
            digest,
            if self.owners { "owners" } else { "no-owners" },
            if self.devices {
                "devices"
            } else {
                "no-devices"
            },
        ])
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Entries not created, each as `'<name>' (<why>)`.
    pub skipped: Vec<String>,
}

/// Unpacks the tar stream `reader` into the existing directory `dest` (see the module
/// documentation for the rules). On an error, `dest` holds a partial tree: the caller
/// (a cache build) throws it away.
pub fn unpack(
    reader: &mut impl Read,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked, ImageError> {
    let mut u = Unpacker {
        dest,
        opts,
        deferred: BTreeMap::new(),
        written: HashSet::new(),
        done: Unpacked::default(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| u.fail(format!("cannot be read: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| u.fail(format!("is not a tar archive or is damaged: {e}")))?;
        u.done.entries += 1;
        if u.done.entries > opts.max_entries {
            return Err(u.fail(format!(
                "has more than {} entries (the limit)",
                opts.max_entries
            )));
        }
        u.entry(&mut entry)?;
    }
    if u.done.entries == 0 && opts.whiteouts == Whiteouts::Keep {
        return Err(u.fail("has no entries (an empty or truncated tarball)".into()));
    }
    u.finish_dirs()?;
    Ok(u.done)
}

/// Attributes a directory gets at the end.
#[derive(Debug, Clone, Copy)]
struct DirAttrs {
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: Option<u64>,
}

struct Unpacker<'a> {
    dest: &'a Path,
    opts: &'a UnpackOptions,
    /// Relative directory path ("" is the root) → what to set at the end.
    deferred: BTreeMap<PathBuf, DirAttrs>,
    /// With whiteouts applied: every path this stream wrote, and their parents.
    written: HashSet<PathBuf>,
    done: Unpacked,
}

/// An entry's fields, read from its header.
struct Meta {
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: u64,
}

impl Unpacker<'_> {
    fn fail(&self, message: String) -> ImageError {
        fail(self.opts, message)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_bytes = entry.path_bytes().into_owned();
        let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
        let rel = self.clean(&raw, Path::new(OsStr::from_bytes(&raw_bytes)))?;
        let opts = self.opts;
        let io_err = |e: io::Error| fail(opts, format!("entry '{raw}': {e}"));
        let header = entry.header();
        let meta = Meta {
            mode: header.mode().map_err(io_err)? & 0o7777,
            owner: if self.opts.owners {
                let uid = header.uid().map_err(io_err)?;
                let gid = header.gid().map_err(io_err)?;
                Some((id32(uid, &raw, self)?, id32(gid, &raw, self)?))
            } else {
                None
            },
            mtime: header.mtime().unwrap_or(0),
        };

        if self.opts.whiteouts != Whiteouts::Keep
            && let Some(name) = rel.file_name().and_then(OsStr::to_str)
            && let Some(victim) = name.strip_prefix(".wh.")
        {
            return self.whiteout(&raw, &rel, victim);
        }
        if rel.as_os_str().is_empty() {
            if kind != EntryType::Directory {
                return Err(self.fail(format!("entry '{raw}' would replace the image's root")));
            }
            self.defer(&rel, &meta);
            return Ok(());
        }
        self.make_parents(&raw, &rel)?;
        let path = self.dest.join(&rel);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => open_dir_up(&path, &m).map_err(io_err)?,
                    _ => {
                        replace(&path).map_err(io_err)?;
                        fs::DirBuilder::new().create(&path).map_err(io_err)?;
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                            .map_err(io_err)?;
                    }
                }
                self.defer(&rel, &meta);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                replace(&path).map_err(io_err)?;
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io_err)?;
                let room = self.opts.max_bytes - self.done.bytes;
                let mut out = BufWriter::with_capacity(256 << 10, file);
                let n = io::copy(
                    &mut Read::take(&mut *entry, room.saturating_add(1)),
                    &mut out,
                )
                .map_err(io_err)?;
                if n > room {
                    return Err(self.fail(format!(
                        "unpacks to more than {} bytes (the limit)",
                        self.opts.max_bytes
                    )));
                }
                // The tar reader ends a short last entry quietly: a truncated archive.
                if kind != EntryType::GNUSparse && n < entry.size() {
                    return Err(self.fail(format!(
                        "entry '{raw}' is cut short ({n} of {} bytes): the archive is truncated",
                        entry.size()
                    )));
                }
                self.done.bytes += n;
                out.flush().map_err(io_err)?;
                let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
                if let Some((uid, gid)) = meta.owner {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err)?;
                }
                // After chown, which clears set-id bits.
                file.set_permissions(fs::Permissions::from_mode(meta.mode))
                    .map_err(io_err)?;
                file.set_times(FileTimes::new().set_modified(time(meta.mtime)))
                    .map_err(io_err)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| self.fail(format!("symbolic link '{raw}' has no target")))?
                    .into_owned();
                replace(&path).map_err(io_err)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(io_err)?;
                self.finish_special(&path, &meta, false).map_err(io_err)?;
            }
            EntryType::Link => self.hard_link(entry, &raw, &rel, &path)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, what) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, "character device"),
                    EntryType::Block => (SFlag::S_IFBLK, "block device"),
                    _ => (SFlag::S_IFIFO, "fifo"),
                };
                if sflag != SFlag::S_IFIFO && !self.opts.devices {
                    self.done
                        .skipped
                        .push(format!("'{raw}' ({what}: only root creates device nodes)"));
                    return Ok(());
                }
                let major = header.device_major().map_err(io_err)?.unwrap_or(0);
                let minor = header.device_minor().map_err(io_err)?.unwrap_or(0);
                replace(&path).map_err(io_err)?;
                let made = mknod(
                    &path,
                    sflag,
                    Mode::from_bits_truncate(meta.mode & 0o777),
                    makedev(u64::from(major), u64::from(minor)),
                );
                match made {
                    Ok(()) => self.finish_special(&path, &meta, true).map_err(io_err)?,
                    Err(nix::errno::Errno::EPERM) => {
                        self.done
                            .skipped
                            .push(format!("'{raw}' ({what}: not permitted here)"));
                        return Ok(());
                    }
                    Err(e) => return Err(io_err(e.into())),
                }
            }
            other => {
                return Err(self.fail(format!(
                    "entry '{raw}' has a type labrun does not unpack ({other:?})"
                )));
            }
        }
        self.mark_written(&rel);
        Ok(())
    }

    /// The entry's name as a clean relative path, or the reason it escapes.
    fn clean(&self, raw: &str, name: &Path) -> Result<PathBuf, ImageError> {
        let mut rel = PathBuf::new();
        for c in name.components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.fail(format!(
                        "entry '{raw}' escapes the image (an absolute path)"
                    )));
                }
                Component::ParentDir => {
                    return Err(self.fail(format!("entry '{raw}' escapes the image")));
                }
            }
        }
        Ok(rel)
    }

    /// Creates the missing parents of `rel` (0755), refusing a path through a symbolic link
    /// or a non-directory.
    fn make_parents(&mut self, raw: &str, rel: &Path) -> Result<(), ImageError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut at = self.dest.to_path_buf();
        let mut at_rel = PathBuf::new();
        for c in parent.components() {
            at.push(c);
            at_rel.push(c);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {
                    if m.mode() & 0o300 != 0o300 && !self.deferred.contains_key(&at_rel) {
                        // A read-only directory from a layer below: restore it at the end.
                        self.deferred.insert(
                            at_rel.clone(),
                            DirAttrs {
                                mode: m.mode() & 0o7777,
                                owner: None,
                                mtime: None,
                            },
                        );
                    }
                    open_dir_up(&at, &m).map_err(|e| self.fail(format!("entry '{raw}': {e}")))?;
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.fail(format!(
                        "entry '{raw}' goes through the symbolic link '{}'",
                        at_rel.display()
                    )));
                }
                Ok(_) => {
                    return Err(self.fail(format!(
                        "entry '{raw}' goes through '{}', which is not a directory",
                        at_rel.display()
                    )));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .create(&at)
                        .and_then(|()| fs::set_permissions(&at, fs::Permissions::from_mode(0o755)))
                        .map_err(|e| self.fail(format!("entry '{raw}': {e}")))?;
                }
                Err(e) => return Err(self.fail(format!("entry '{raw}': {e}"))),
            }
        }
        Ok(())
    }

    /// The host path of an existing entry `rel`, reached without symbolic links; `None`
    /// when it (or a parent) is missing.
    fn existing(&self, raw: &str, rel: &Path, what: &str) -> Result<Option<PathBuf>, ImageError> {
        let mut at = self.dest.to_path_buf();
        let mut at_rel = PathBuf::new();
        let parents = rel.parent().map(|p| p.components().count()).unwrap_or(0);
        for (i, c) in rel.components().enumerate() {
            at.push(c);
            at_rel.push(c);
            match fs::symlink_metadata(&at) {
                Ok(_) if i == parents => {}
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.fail(format!(
                        "entry '{raw}' is {what} through the symbolic link '{}'",
                        at_rel.display()
                    )));
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.fail(format!("entry '{raw}': {e}"))),
            }
        }
        Ok(Some(at))
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        raw: &str,
        rel: &Path,
        path: &Path,
    ) -> Result<(), ImageError> {
        let target_bytes = entry
            .link_name_bytes()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.fail(format!("hard link '{raw}' has no target")))?
            .into_owned();
        let target_raw = String::from_utf8_lossy(&target_bytes).into_owned();
        let outside = || {
            self.fail(format!(
                "entry '{raw}' is a hard link to '{target_raw}', outside the image"
            ))
        };
        let target_rel = self
            .clean(&target_raw, Path::new(OsStr::from_bytes(&target_bytes)))
            .map_err(|_| outside())?;
        if target_rel == rel {
            return Ok(());
        }
        let target = self
            .existing(raw, &target_rel, "a hard link")?
            .filter(|t| fs::symlink_metadata(t).is_ok_and(|m| !m.is_dir()))
            .ok_or_else(|| {
                self.fail(format!(
                    "entry '{raw}' is a hard link to '{target_raw}', which is not a file earlier in the archive"
                ))
            })?;
        let io_err = |e: io::Error| self.fail(format!("entry '{raw}': {e}"));
        replace(path).map_err(io_err)?;
        fs::hard_link(&target, path).map_err(io_err)?;
        self.mark_written(rel);
        Ok(())
    }

    fn whiteout(&mut self, raw: &str, rel: &Path, victim: &str) -> Result<(), ImageError> {
        if self.opts.whiteouts == Whiteouts::Overlay {
            return self.overlay_marker(raw, rel, victim);
        }
        let dir = rel.parent().unwrap_or(Path::new(""));
        if victim == ".wh..opq" {
            // Opaque: everything below that this stream did not write goes.
            if let Some(host) = self.existing(raw, dir, "a whiteout")?
                && host.is_dir()
            {
                self.empty_below(dir, &host)
                    .map_err(|e| self.fail(format!("entry '{raw}': {e}")))?;
            }
            return Ok(());
        }
        if victim.is_empty() || victim == "." || victim == ".." || victim.contains('/') {
            return Err(self.fail(format!("entry '{raw}' is a whiteout of nothing")));
        }
        let victim_rel = dir.join(victim);
        if self.written.contains(&victim_rel) {
            return Ok(());
        }
        if let Some(host) = self.existing(raw, &victim_rel, "a whiteout")? {
            remove_tree(&host).map_err(|e| self.fail(format!("entry '{raw}': {e}")))?;
        }
        Ok(())
    }

    /// A whiteout as overlayfs writes it, for a layer stacked as a lower directory.
    fn overlay_marker(&mut self, raw: &str, rel: &Path, victim: &str) -> Result<(), ImageError> {
        let dir = rel.parent().unwrap_or(Path::new(""));
        let opts = self.opts;
        let io_err = |e: io::Error| fail(opts, format!("entry '{raw}': {e}"));
        if victim == ".wh..opq" {
            self.make_parents(raw, rel)?;
            return mark_opaque(&self.dest.join(dir)).map_err(io_err);
        }
        if victim.is_empty() || victim == "." || victim == ".." || victim.contains('/') {
            return Err(self.fail(format!("entry '{raw}' is a whiteout of nothing")));
        }
        let victim_rel = dir.join(victim);
        if self.written.contains(&victim_rel) {
            return Ok(());
        }
        self.make_parents(raw, rel)?;
        let path = self.dest.join(&victim_rel);
        replace(&path).map_err(io_err)?;
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| {
            io_err(io::Error::other(format!(
                "cannot create an overlay whiteout: {e}"
            )))
        })
    }

    fn empty_below(&self, rel: &Path, host: &Path) -> io::Result<()> {
        for child in fs::read_dir(host)? {
            let child = child?;
            let child_rel = rel.join(child.file_name());
            if !self.written.contains(&child_rel) {
                remove_tree(&child.path())?;
            } else if child.file_type()?.is_dir() {
                self.empty_below(&child_rel, &child.path())?;
            }
        }
        Ok(())
    }

    fn mark_written(&mut self, rel: &Path) {
        if self.opts.whiteouts != Whiteouts::Keep {
            for a in rel.ancestors() {
                if !self.written.insert(a.to_path_buf()) {
                    break;
                }
            }
        }
    }

    fn defer(&mut self, rel: &Path, meta: &Meta) {
        self.deferred.insert(
            rel.to_path_buf(),
            DirAttrs {
                mode: meta.mode,
                owner: meta.owner,
                mtime: Some(meta.mtime),
            },
        );
        self.mark_written(rel);
    }

    /// Owner and time for a symbolic link, device or fifo (and its mode, but a link's).
    fn finish_special(&self, path: &Path, meta: &Meta, chmod: bool) -> io::Result<()> {
        if let Some((uid, gid)) = meta.owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        }
        if chmod {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))?;
        }
        set_mtime(path, meta.mtime)
    }

    /// Directory attributes, deepest first.
    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        let mut dirs: Vec<(&PathBuf, &DirAttrs)> = self.deferred.iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, attrs) in dirs {
            let path = self.dest.join(rel);
            let fail = |e: io::Error| self.fail(format!("directory '{}': {e}", rel.display()));
            // A directory a later entry replaced is not there any more.
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if let Some((uid, gid)) = attrs.owner {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(fail)?;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(attrs.mode)).map_err(fail)?;
            if let Some(t) = attrs.mtime {
                set_mtime(&path, t).map_err(fail)?;
            }
        }
        Ok(())
    }
}

fn fail(opts: &UnpackOptions, message: String) -> ImageError {
    ImageError::Archive {
        archive: opts.label.clone(),
        message,
    }
}

fn id32(id: u64, raw: &str, u: &Unpacker<'_>) -> Result<u32, ImageError> {
    u32::try_from(id).map_err(|_| u.fail(format!("entry '{raw}' has owner id {id}, too large")))
}

/// Marks a directory opaque for overlayfs: `user.overlay.opaque` always (a rootless mount's
/// `userxattr`), `trusted.overlay.opaque` when root (a root mount's; only root may set it).
fn mark_opaque(dir: &Path) -> io::Result<()> {
    set_xattr(dir, "user.overlay.opaque", b"y")?;
    if nix::unistd::geteuid().is_root() {
        set_xattr(dir, "trusted.overlay.opaque", b"y")?;
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: both strings are NUL-terminated and live across the call; value's pointer and
    // length describe one slice.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "setting {name}: {}",
            io::Error::last_os_error()
        )))
    }
}

/// Makes room for an entry at `path`: removes what is there (a directory with its tree).
fn replace(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => remove_tree(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Lets this process write into a directory whose mode does not (its mode is restored at the
/// end from the deferred attributes).
fn open_dir_up(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(
            path,
            fs::Permissions::from_mode((meta.mode() & 0o7777) | 0o700),
        )?;
    }
    Ok(())
}

fn time(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn set_mtime(path: &Path, secs: u64) -> io::Result<()> {
    let mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::UTIME_OMIT,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}
