//! The plan of a container's root filesystem: which mounts, in which order, as a list of `Op`s.
//!
//! Everything is decided here, in labrun, from what the host looks like; the child only runs
//! the list. The order matters and follows runc's: propagation made private before anything is
//! mounted; the writable layer on a size-limited tmpfs (nodev, nosuid) that lives only in the
//! child's mount namespace, so the kernel removes it when the run's last process exits; the
//! root; a fresh /proc with runc's masked and read-only paths; a read-only /sys; a minimal
//! /dev with its own devpts; labrun's control directory and the notebook's directory; then
//! `pivot_root`, the hostname and the loopback interface.
//!
//! Two ways to build the root:
//! - overlay: the image's layers as read-only lower directories under a fresh upper
//!   directory. For the `host` image as root the lower is `/` itself, and what must stay
//!   hidden is masked in the upper layer before mounting (an opaque empty directory, an empty
//!   file), at no cost per run.
//!   Setup layers go on top of `/` through an overlay of their own first: they live on
//!   `/`'s filesystem, and overlayfs refuses a lower directory below another lower's root.
//! - rootless host: inside a user namespace `lowerdir=/` is refused (locked submounts) and the
//!   host's files belong to users the namespace cannot map, so copy-up would fail anyway. The
//!   root is a tmpfs with each top-level directory of the host bind-mounted read-only, and
//!   fresh writable directories where the contract allows writes.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::beneath::ImagePaths;
use super::ops::{Op, cstring};
pub use crate::image::Hidden;

/// Where the root's read-only content comes from.
#[derive(Debug, Clone)]
pub enum RootSource {
    /// This machine's own root filesystem, with these paths hidden (empty) inside, under
    /// these layers (setup steps), lowest first.
    Host {
        hidden: Vec<Hidden>,
        layers: Vec<PathBuf>,
    },
    /// Image layers, lowest first.
    Layers(Vec<PathBuf>),
}

/// Everything the plan depends on.
#[derive(Debug, Clone)]
pub struct RootSpec {
    pub source: RootSource,
    /// An empty directory of the run, the mount point of the run's tmpfs.
    pub staging: PathBuf,
    /// A writable layer that outlives the run (a setup step's layer being built), instead of
    /// one on the run's tmpfs; its overlay work directory is beside it, `<upper>.work`.
    pub upper: Option<PathBuf>,
    /// labrun's control directory for the session, seen inside at `CONTROL_DIR`.
    pub control_dir: PathBuf,
    /// Mounted read-only at `/lab/.notebook`.
    pub notebook_dir: PathBuf,
    /// Paths below `notebook_dir` (relative) that stay hidden there: expected output, and in
    /// grade mode the grading notebook itself.
    pub notebook_masks: Vec<PathBuf>,
    /// Grade mode: mounted read-only at `/lab/.submission`.
    pub submission_dir: Option<PathBuf>,
    pub workdir: String,
    pub hostname: String,
    /// On a lab's network: `eth0`'s address (the interface is already in the namespace the
    /// child joins), and the file bound read-only at /etc/hosts.
    pub lab_network: Option<(std::net::Ipv4Addr, PathBuf)>,
    /// Size of the writable layer, in bytes.
    pub disk: u64,
    /// Inside a user namespace of its own (labrun not run by root).
    pub rootless: bool,
    /// Leave the network namespace out (`network: host`).
    pub host_network: bool,
    /// Make /dev's nodes with mknod on a tmpfs that allows devices. Only when every process
    /// of the container will live in a user namespace (where CAP_MKNOD makes no device): in
    /// the machine's own, a lab's root could make one.
    pub mknod_devices: bool,
    /// Leave the old root stacked on `/` after `pivot_root` for init to detach while the
    /// first shell starts. Not with a session user namespace: its mount namespace, copied
    /// after `pivot_root`, would hold the old root's mounts locked.
    pub detach_old_root_later: bool,
}

/// Where labrun's control directory appears inside the container.
pub const CONTROL_DIR: &str = "/run/labrun";

/// Files of /proc and /sys a container must not read (runc's masked paths).
const MASKED: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Parts of /proc a container may read but never write (runc's read-only paths).
const READ_ONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// The device nodes of /dev, with their numbers.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Top-level directories that a rootless `host` image makes fresh and empty.
const ROOTLESS_FRESH: &[(&str, u32)] = &[
    ("root", 0o700),
    ("home", 0o755),
    ("tmp", 0o1777),
    ("run", 0o755),
    ("mnt", 0o755),
    ("media", 0o755),
];

/// What a rootless `host` image lets the lab write (the contract's list); the rest of its
/// root is read-only.
const ROOTLESS_WRITABLE: &[(&str, u32)] = &[
    ("lab", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("tmp", 0o1777),
    ("var/tmp", 0o1777),
];

/// The longest `lowerdir=` list written with full paths (see `RootSpec::lowerdir`).
const LONGEST_LOWERDIR: usize = 2048;

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

fn mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Op {
    Op::Mount {
        source: Some(cstring(source)),
        target: cstring(target),
        fstype: fstype.map(cstring),
        flags,
        data: data.map(cstring),
        optional: false,
    }
}

fn mkdir(path: &Path, mode: u32) -> Op {
    Op::Mkdir {
        path: cstring(path),
        mode,
        owner: None,
    }
}

/// Hides what is at `target`: an empty read-only tmpfs over a directory, `/dev/null` bound
/// over a file. `optional`: a missing target is skipped (what one kernel has, another lacks).
fn mask(target: &Path, is_dir: bool, optional: bool) -> Op {
    let (source, fstype, flags, data) = if is_dir {
        (
            "tmpfs",
            Some("tmpfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
            Some("size=4k,mode=0755"),
        )
    } else {
        ("/dev/null", None, libc::MS_BIND, None)
    };
    let mut op = mount(source, target, fstype, flags, data);
    if let Op::Mount { optional: o, .. } = &mut op {
        *o = optional;
    }
    op
}

/// The mount flags a bind mount of `path` must keep when remounted: inside a user namespace
/// the kernel refuses to clear nosuid, nodev, noexec or the atime flags of a locked mount.
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return 0;
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut flags = 0;
    for (have, want) in [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(have) {
            flags |= want;
        }
    }
    flags
}

/// A read-only bind mount of `source` on `target`.
fn bind_read_only(ops: &mut Vec<Op>, source: &Path, target: &Path) {
    ops.push(Op::Mount {
        source: Some(cstring(source)),
        target: cstring(target),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REC,
        data: None,
        optional: false,
    });
    ops.push(Op::Mount {
        source: None,
        target: cstring(target),
        fstype: None,
        flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked_flags(source),
        data: None,
        optional: false,
    });
}

/// `path` relative to `/`, with no `..` (host paths are canonical already).
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

impl RootSpec {
    /// Where the image's own paths are in the root being built, for the link check
    /// (`beneath`): all of `merged` but the insides of what the steps mount there before they
    /// work in it: the notebook's directory and a submission, bound from the machine, and the
    /// fresh /proc, /sys and /dev (`kernel_filesystems`, `devices`).
    pub fn image_paths(&self) -> ImagePaths {
        let merged = self.staging.join("merged");
        ImagePaths::new(
            cstring(&merged),
            ["lab/.notebook", "lab/.submission", "proc", "sys", "dev"]
                .iter()
                .map(|mounted| cstring(merged.join(mounted)))
                .collect(),
        )
    }

    /// The steps, in order. `merged` is where the root is assembled before `pivot_root`.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::Mount {
            source: None,
            target: cstring("/"),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
            optional: false,
        }];
        let s = &self.staging;
        ops.push(mount(
            "tmpfs",
            s,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&format!("size={},mode=0755", self.disk.max(1 << 20))),
        ));
        let merged = s.join("merged");
        match (&self.source, self.rootless) {
            (RootSource::Host { hidden, .. }, true) => {
                self.rootless_host(&mut ops, &merged, hidden)
            }
            (RootSource::Host { hidden, layers }, false) => {
                let mut lowers = vec![PathBuf::from("/")];
                lowers.extend(self.stacked(&mut ops, layers));
                self.overlay(&mut ops, &lowers, hidden)
            }
            (RootSource::Layers(layers), _) => self.overlay(&mut ops, layers, &[]),
        }
        self.kernel_filesystems(&mut ops, &merged);
        self.devices(&mut ops, &merged);
        // The lab itself. Over an overlay root, /lab and /tmp are directories of the run's
        // tmpfs instead, so that a lab can use them as an overlay's upper layer (overlayfs
        // refuses another overlay there), as a workshop that builds a container does.
        if !matches!(
            (&self.source, self.rootless),
            (RootSource::Host { .. }, true)
        ) {
            let scratch = s.join("scratch");
            ops.push(mkdir(&scratch, 0o755));
            for (name, mode) in [("lab", 0o755), ("tmp", 0o1777)] {
                let (from, to) = (scratch.join(name), merged.join(name));
                ops.push(mkdir(&from, mode));
                ops.push(mkdir(&to, mode));
                ops.push(mount(
                    &from.to_string_lossy(),
                    &to,
                    None,
                    libc::MS_BIND,
                    None,
                ));
            }
        }
        // The working directory, and any directory above it the root lacks (an image config's
        // `WorkingDir` need not exist in the image).
        let workdir = relative(Path::new(&self.workdir));
        let mut above: Vec<&Path> = workdir
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        above.reverse();
        for dir in above {
            ops.push(mkdir(&merged.join(dir), 0o755));
        }
        let notebook = merged.join("lab/.notebook");
        ops.push(mkdir(&merged.join("lab"), 0o755));
        ops.push(mkdir(&notebook, 0o755));
        bind_read_only(&mut ops, &self.notebook_dir, &notebook);
        for rel in &self.notebook_masks {
            let is_dir = !self.notebook_dir.join(rel).is_file();
            ops.push(mask(&notebook.join(rel), is_dir, true));
        }
        if let Some((_, hosts)) = &self.lab_network {
            let etc = merged.join("etc");
            ops.push(mkdir(&etc, 0o755));
            ops.push(Op::MkFile {
                path: cstring(etc.join("hosts")),
                mode: 0o644,
                owner: None,
            });
            bind_read_only(&mut ops, hosts, &etc.join("hosts"));
        }
        if let Some(dir) = &self.submission_dir {
            let submission = merged.join("lab/.submission");
            ops.push(mkdir(&submission, 0o755));
            bind_read_only(&mut ops, dir, &submission);
        }
        let control = merged.join(relative(Path::new(CONTROL_DIR)));
        ops.push(mkdir(&merged.join("run"), 0o755));
        ops.push(mkdir(&control, 0o700));
        ops.push(mount(
            &self.control_dir.to_string_lossy(),
            &control,
            None,
            libc::MS_BIND,
            None,
        ));
        if let (RootSource::Host { .. }, true) = (&self.source, self.rootless) {
            // Everything that had to be created on the root is there: now it is read-only,
            // but for the writable directories bound on it.
            ops.push(Op::Mount {
                source: None,
                target: cstring(&merged),
                fstype: None,
                flags: libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                data: None,
                optional: false,
            });
        }
        ops.push(Op::PivotRoot {
            new_root: cstring(&merged),
            detach_later: self.detach_old_root_later,
        });
        ops.push(Op::SetHostname {
            name: cstring(&self.hostname),
        });
        if !self.host_network {
            ops.push(Op::LinkUp {
                name: c"lo",
                address: None,
            });
        }
        if let Some((address, _)) = &self.lab_network {
            ops.push(Op::LinkUp {
                name: c"eth0",
                address: Some((*address, crate::env::network::PREFIX)),
            });
        }
        ops
    }

    /// An overlay of `layers` (lowest first) under a fresh upper layer on the run's tmpfs
    /// (or the persistent one a setup step builds).
    fn overlay(&self, ops: &mut Vec<Op>, layers: &[PathBuf], hidden: &[Hidden]) {
        let s = &self.staging;
        let merged = s.join("merged");
        let (upper, work) = match &self.upper {
            Some(upper) => (upper.clone(), upper.with_extension("work")),
            None => (s.join("upper"), s.join("work")),
        };
        for dir in [&upper, &work, &merged] {
            ops.push(mkdir(dir, 0o755));
        }
        hide_in_upper(ops, &upper, hidden);
        let mut data = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lowerdir(ops, layers, "lower"),
            escape_overlay(&upper.to_string_lossy()),
            escape_overlay(&work.to_string_lossy())
        );
        if self.rootless {
            data.push_str(",userxattr");
        }
        ops.push(mount(
            "overlay",
            &merged,
            Some("overlay"),
            libc::MS_NODEV,
            Some(&data),
        ));
    }

    /// `layers` (lowest first) as one read-only overlay on the run's tmpfs, to stack on `/`;
    /// nothing when there are none. overlayfs wants two lower directories without an upper
    /// one: an empty directory is the lowest.
    fn stacked(&self, ops: &mut Vec<Op>, layers: &[PathBuf]) -> Option<PathBuf> {
        if layers.is_empty() {
            return None;
        }
        let (empty, stack) = (self.staging.join("empty"), self.staging.join("stacked"));
        ops.push(mkdir(&empty, 0o755));
        ops.push(mkdir(&stack, 0o755));
        let mut lowers = vec![empty];
        lowers.extend(layers.iter().cloned());
        let mut data = format!("lowerdir={}", self.lowerdir(ops, &lowers, "stacked-links"));
        if self.rootless {
            data.push_str(",userxattr");
        }
        ops.push(mount(
            "overlay",
            &stack,
            Some("overlay"),
            libc::MS_NODEV | libc::MS_RDONLY,
            Some(&data),
        ));
        Some(stack)
    }

    /// The `lowerdir=` value for `layers` (lowest first). One mount option holds at most a
    /// page, about 40 long cache paths: a longer list is written as numbered links in a
    /// directory `name` of the run's tmpfs, named relative to it after a chdir there (a
    /// hundred layers take 300 bytes; overlayfs itself stops at 500 layers).
    fn lowerdir(&self, ops: &mut Vec<Op>, layers: &[PathBuf], name: &str) -> String {
        let full: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| escape_overlay(&l.to_string_lossy()))
            .collect();
        let joined = full.join(":");
        if joined.len() <= LONGEST_LOWERDIR {
            return joined;
        }
        let links = self.staging.join(name);
        ops.push(mkdir(&links, 0o700));
        for (i, layer) in layers.iter().enumerate() {
            ops.push(Op::Symlink {
                target: cstring(layer),
                path: cstring(links.join(i.to_string())),
            });
        }
        ops.push(Op::Chdir {
            path: cstring(&links),
        });
        let names: Vec<String> = (0..layers.len()).rev().map(|i| i.to_string()).collect();
        names.join(":")
    }

    /// A rootless `host` root: the host's top-level directories bound read-only on a tmpfs.
    fn rootless_host(&self, ops: &mut Vec<Op>, merged: &Path, hidden: &[Hidden]) {
        ops.push(mkdir(merged, 0o755));
        // pivot_root needs a mount point.
        let merged_str = merged.to_string_lossy().into_owned();
        ops.push(mount(&merged_str, merged, None, libc::MS_BIND, None));
        let fresh: BTreeSet<&str> = ROOTLESS_FRESH.iter().map(|(n, _)| *n).collect();
        let mut entries: Vec<_> = fs::read_dir("/")
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name_str = name.to_string_lossy();
            let target = merged.join(&name);
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(to) = fs::read_link(entry.path()) {
                    ops.push(Op::Symlink {
                        target: cstring(to),
                        path: cstring(&target),
                    });
                }
            } else if !meta.is_dir() {
                continue;
            } else if let Some((_, mode)) = ROOTLESS_FRESH.iter().find(|(n, _)| *n == name_str) {
                ops.push(mkdir(&target, *mode));
            } else if ["proc", "sys", "dev", "lab"].contains(&name_str.as_ref()) {
                ops.push(mkdir(&target, 0o755));
            } else {
                ops.push(mkdir(&target, 0o755));
                bind_read_only(ops, &entry.path(), &target);
            }
        }
        for (name, mode) in ROOTLESS_FRESH {
            ops.push(mkdir(&merged.join(name), *mode));
        }
        // The writable directories: each a directory of the run's tmpfs, bound in place.
        let scratch = self.staging.join("scratch");
        ops.push(mkdir(&scratch, 0o755));
        for (name, mode) in ROOTLESS_WRITABLE {
            let from = scratch.join(name.replace('/', "-"));
            let to = merged.join(name);
            ops.push(mkdir(&from, *mode));
            ops.push(mkdir(&to, *mode));
            ops.push(mount(
                &from.to_string_lossy(),
                &to,
                None,
                libc::MS_BIND,
                None,
            ));
        }
        // Hidden paths below directories that are bound read-only get an empty mount on top.
        for h in hidden {
            let rel = relative(&h.path);
            let top = rel.components().next();
            let under_fresh =
                top.is_some_and(|t| fresh.contains(&*t.as_os_str().to_string_lossy()));
            let writable = ROOTLESS_WRITABLE.iter().any(|(w, _)| rel.starts_with(w));
            if under_fresh || writable || rel.as_os_str().is_empty() {
                continue;
            }
            ops.push(mask(&merged.join(&rel), h.is_dir, false));
        }
    }

    /// /proc and /sys, fresh, with what runc masks and keeps read-only.
    fn kernel_filesystems(&self, ops: &mut Vec<Op>, merged: &Path) {
        let proc_dir = merged.join("proc");
        let sys_dir = merged.join("sys");
        ops.push(mkdir(&proc_dir, 0o555));
        ops.push(mkdir(&sys_dir, 0o555));
        ops.push(mount(
            "proc",
            &proc_dir,
            Some("proc"),
            NOSUID_NODEV_NOEXEC,
            None,
        ));
        if self.host_network {
            // sysfs follows the network namespace: without one of its own, bind the host's.
            bind_read_only(ops, Path::new("/sys"), &sys_dir);
        } else {
            ops.push(mount(
                "sysfs",
                &sys_dir,
                Some("sysfs"),
                NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
                None,
            ));
        }
        for path in MASKED {
            let host = Path::new("/").join(path);
            let Ok(meta) = fs::metadata(&host) else {
                continue;
            };
            ops.push(mask(&merged.join(path), meta.is_dir(), true));
        }
        for path in READ_ONLY {
            if !Path::new("/").join(path).exists() {
                continue;
            }
            let target = merged.join(path);
            for flags in [
                libc::MS_BIND | libc::MS_REC,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
            ] {
                ops.push(Op::Mount {
                    source: Some(cstring(&target)),
                    target: cstring(&target),
                    fstype: None,
                    flags,
                    data: None,
                    optional: true,
                });
            }
        }
    }

    /// A minimal /dev: the usual nodes, a devpts of its own, shared memory.
    fn devices(&self, ops: &mut Vec<Op>, merged: &Path) {
        let dev = merged.join("dev");
        ops.push(mkdir(&dev, 0o755));
        // With `mknod_devices` the nodes are made in place (no mount each), so this tmpfs must
        // allow devices; nothing inside can make one (CAP_MKNOD counts only outside every user
        // namespace). Otherwise they are the host's, bound, and the tmpfs is nodev.
        let nodev = if self.mknod_devices {
            0
        } else {
            libc::MS_NODEV
        };
        ops.push(mount(
            "tmpfs",
            &dev,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NOEXEC | nodev,
            Some("mode=0755,size=64k"),
        ));
        for (name, major, minor) in DEVICES {
            let node = dev.join(name);
            if self.mknod_devices {
                ops.push(Op::CharDevice {
                    path: cstring(&node),
                    major: *major,
                    minor: *minor,
                });
                continue;
            }
            ops.push(Op::MkFile {
                path: cstring(&node),
                mode: 0o666,
                owner: None,
            });
            ops.push(mount(
                &format!("/dev/{name}"),
                &node,
                None,
                libc::MS_BIND,
                None,
            ));
        }
        let pts = dev.join("pts");
        ops.push(mkdir(&pts, 0o755));
        ops.push(mount(
            "devpts",
            &pts,
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ));
        let shm = dev.join("shm");
        ops.push(mkdir(&shm, 0o1777));
        ops.push(mount(
            "shm",
            &shm,
            Some("tmpfs"),
            NOSUID_NODEV_NOEXEC,
            Some("mode=1777,size=64m"),
        ));
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            ops.push(Op::Symlink {
                target: cstring(to),
                path: cstring(dev.join(link)),
            });
        }
    }
}

/// Masks hidden host paths in the upper layer: an opaque empty directory, an empty file. Parent
/// directories are created with the host's mode and owner, as overlayfs shows the upper's.
fn hide_in_upper(ops: &mut Vec<Op>, upper: &Path, hidden: &[Hidden]) {
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    let mut sorted: Vec<&Hidden> = hidden.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hidden_dirs: Vec<PathBuf> = Vec::new();
    for h in sorted {
        let rel = relative(&h.path);
        if rel.as_os_str().is_empty() || hidden_dirs.iter().any(|d| rel.starts_with(d)) {
            continue;
        }
        let mut partial = PathBuf::new();
        let parts: Vec<_> = rel.components().collect();
        for (i, part) in parts.iter().enumerate() {
            partial.push(part);
            let last = i + 1 == parts.len();
            if !last && made.contains(&partial) {
                continue;
            }
            let host = Path::new("/").join(&partial);
            let Ok(meta) = fs::symlink_metadata(&host) else {
                break;
            };
            let owner = Some((meta.uid(), meta.gid()));
            let mode = meta.mode() & 0o7777;
            let path = cstring(upper.join(&partial));
            if last && !h.is_dir {
                ops.push(Op::MkFile { path, mode, owner });
            } else if meta.is_dir() {
                ops.push(Op::Mkdir { path, mode, owner });
                if last {
                    ops.push(Op::SetXattr {
                        path: cstring(upper.join(&partial)),
                        name: cstring("trusted.overlay.opaque"),
                        value: b"y",
                    });
                    hidden_dirs.push(partial.clone());
                }
            } else {
                break;
            }
            made.insert(partial.clone());
        }
    }
}

/// overlayfs splits its options at commas and its lower directories at colons.
fn escape_overlay(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: RootSource, rootless: bool) -> RootSpec {
        RootSpec {
            source,
            staging: PathBuf::from("/run/x/root"),
            upper: None,
            control_dir: PathBuf::from("/run/x/ctl"),
            notebook_dir: PathBuf::from("/"),
            notebook_masks: vec![],
            submission_dir: None,
            workdir: "/lab".into(),
            hostname: "tour".into(),
            disk: 1 << 30,
            rootless,
            host_network: false,
            lab_network: None,
            mknod_devices: false,
            detach_old_root_later: false,
        }
    }

    fn described(ops: &[Op]) -> Vec<String> {
        ops.iter().map(Op::describe).collect()
    }

    #[test]
    fn propagation_is_private_first_and_pivot_root_comes_after_every_mount() {
        let ops =
            described(&spec(RootSource::Layers(vec!["/l1".into(), "/l2".into()]), false).ops());
        assert!(ops[0].starts_with("making mount propagation private on /"));
        let pivot = ops
            .iter()
            .position(|d| d.starts_with("pivot_root"))
            .unwrap();
        assert!(ops[pivot + 1..].iter().all(|d| !d.contains("mounting")));
        let overlay = ops
            .iter()
            .find(|d| d.starts_with("mounting overlay"))
            .unwrap();
        assert!(overlay.contains("lowerdir=/l2:/l1,"), "{overlay}");
    }

    #[test]
    fn long_layer_lists_go_through_numbered_links() {
        let layers: Vec<PathBuf> = (0..120)
            .map(|i| PathBuf::from(format!("/cache/labrun/layers/step-{i:064}")))
            .collect();
        let ops = described(&spec(RootSource::Layers(layers), false).ops());
        assert!(ops.contains(&"changing directory to /run/x/root/lower".to_string()));
        let overlay = ops
            .iter()
            .find(|d| d.starts_with("mounting overlay"))
            .unwrap();
        assert!(overlay.contains("lowerdir=119:118:"), "{overlay}");
        assert!(overlay.contains(":1:0,upperdir="), "{overlay}");
    }

    #[test]
    fn setup_layers_on_the_host_are_stacked_in_an_overlay_of_their_own() {
        let source = RootSource::Host {
            hidden: vec![],
            layers: vec!["/c/l1".into(), "/c/l2".into()],
        };
        let ops = described(&spec(source, false).ops());
        let overlays: Vec<&String> = ops
            .iter()
            .filter(|d| d.starts_with("mounting overlay"))
            .collect();
        assert_eq!(overlays.len(), 2, "{ops:?}");
        assert!(overlays[0].contains("lowerdir=/c/l2:/c/l1:/run/x/root/empty"));
        assert!(overlays[1].contains("lowerdir=/run/x/root/stacked:/,"));
    }

    #[test]
    fn host_secrets_are_masked_in_the_upper_layer() {
        let hidden = vec![
            Hidden {
                path: "/root".into(),
                is_dir: true,
            },
            Hidden {
                path: "/etc/shadow".into(),
                is_dir: false,
            },
        ];
        let ops = described(
            &spec(
                RootSource::Host {
                    hidden,
                    layers: vec![],
                },
                false,
            )
            .ops(),
        );
        assert!(ops.contains(
            &"setting the attribute trusted.overlay.opaque on /run/x/root/upper/root".to_string()
        ));
        assert!(ops.contains(&"creating the file /run/x/root/upper/etc/shadow".to_string()));
    }

    #[test]
    fn rootless_host_binds_top_level_directories_read_only() {
        let ops = described(
            &spec(
                RootSource::Host {
                    hidden: vec![],
                    layers: vec![],
                },
                true,
            )
            .ops(),
        );
        assert!(
            ops.iter()
                .any(|d| d == "bind-mounting /usr /run/x/root/merged/usr")
        );
        assert!(!ops.iter().any(|d| d.starts_with("bind-mounting /root ")));
        assert!(!ops.iter().any(|d| d.starts_with("mounting overlay")));
    }

    #[test]
    fn overlay_options_are_escaped() {
        assert_eq!(escape_overlay("/a,b:c"), "/a\\,b\\:c");
    }
}
