//! Builds the lab's root in the guest: the image's layers (9p shares, read-only) under an
//! overlay whose writable layer is a tmpfs of the lab's disk size, this machine's own
//! directories for the `host` image, fresh /proc, /sys and /dev, the read-only shares at
//! their places; then makes it the root, as switch_root does.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use super::super::wire::{Hello, Share};

const BASE: &str = "/labrun";

fn nothing() -> Option<&'static str> {
    None
}

fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), String> {
    mkdirs(target)?;
    mount(
        Some(source),
        target,
        Some(fstype),
        flags,
        (!data.is_empty()).then_some(data),
    )
    .map_err(|e| format!("mounting {fstype} '{source}' on {}: {e}", target.display()))
}

fn mkdirs(path: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

/// What PID 1 needs before anything else.
pub fn mount_early() -> Result<(), String> {
    let none = MsFlags::empty();
    mount_fs("proc", Path::new("/proc"), "proc", none, "")?;
    mount_fs("sysfs", Path::new("/sys"), "sysfs", none, "")?;
    mount_fs("dev", Path::new("/dev"), "devtmpfs", none, "")
}

fn mount_share(share: &Share, at: &Path, cache: &str) -> Result<(), String> {
    let options = format!("trans=virtio,version=9p2000.L,msize=512000,cache={cache}");
    mount_fs(&share.tag, at, "9p", MsFlags::MS_RDONLY, &options)
}

fn overlay(lowers: &[PathBuf], upper: &Path, at: &Path, flags: MsFlags) -> Result<(), String> {
    let work = upper.with_extension("work");
    mkdirs(upper)?;
    mkdirs(&work)?;
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    mount_fs("overlay", at, "overlay", flags, &options)
}

/// Builds the root `hello` describes and makes it `/`.
pub fn build(hello: &Hello) -> Result<(), String> {
    let base = Path::new(BASE);
    let rw = base.join("rw");
    mount_fs(
        "lab",
        &rw,
        "tmpfs",
        MsFlags::MS_NODEV,
        &format!("size={},mode=755", hello.disk),
    )?;
    // The layers, highest first as overlayfs lists them.
    let mut layers = Vec::new();
    for (i, share) in hello.layers.iter().enumerate() {
        let at = base.join(format!("layer{i}"));
        mount_share(share, &at, "loose")?;
        layers.insert(0, at);
    }
    let root = base.join("root");
    let flags = if hello.nosuid {
        MsFlags::MS_NOSUID
    } else {
        MsFlags::empty()
    };
    if hello.host_dirs.is_empty() {
        overlay(&layers, &rw.join("root"), &root, flags)?;
    } else {
        // This machine's directories, each an overlay of its own (a 9p share cannot be one
        // lower layer with mounts inside), under a root whose top level is the layers'.
        let empty = base.join("empty");
        mkdirs(&empty)?;
        let mut top = layers.clone();
        top.push(empty);
        overlay(&top, &rw.join("root"), &root, flags)?;
        for (i, share) in hello.host_dirs.iter().enumerate() {
            let at = base.join(format!("host{i}"));
            mount_share(share, &at, "loose")?;
            let rel = share.target.trim_start_matches('/');
            let mut lowers: Vec<PathBuf> = layers
                .iter()
                .map(|l| l.join(rel))
                .filter(|p| p.is_dir())
                .collect();
            lowers.push(at);
            overlay(&lowers, &rw.join(format!("dir{i}")), &root.join(rel), flags)?;
        }
        for dir in &hello.host_empty {
            let at = root.join(dir.trim_start_matches('/'));
            mkdirs(&at)?;
            let mode = match dir.as_str() {
                "/tmp" | "/var/tmp" => 0o1777,
                "/root" => 0o700,
                _ => 0o755,
            };
            fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(|e| format!("{}: {e}", at.display()))?;
        }
        for (name, target) in &hello.host_links {
            let link = root.join(name.trim_start_matches('/'));
            if fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, &link)
                    .map_err(|e| format!("linking {}: {e}", link.display()))?;
            }
        }
    }
    finish(hello, &root)
}

/// /proc, /sys, /dev, the working directory and the read-only shares; then the switch.
fn finish(hello: &Hello, root: &Path) -> Result<(), String> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", &root.join("proc"), "proc", nosuid, "")?;
    mount_fs(
        "sysfs",
        &root.join("sys"),
        "sysfs",
        nosuid | MsFlags::MS_RDONLY,
        "",
    )?;
    mount_fs("dev", &root.join("dev"), "devtmpfs", MsFlags::MS_NOSUID, "")?;
    mount_fs(
        "devpts",
        &root.join("dev/pts"),
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )?;
    mount_fs("shm", &root.join("dev/shm"), "tmpfs", nosuid, "mode=1777")?;
    mkdirs(&root.join(hello.workdir.trim_start_matches('/')))?;
    for share in &hello.mounts {
        mount_share(
            share,
            &root.join(share.target.trim_start_matches('/')),
            "none",
        )?;
    }
    nix::unistd::sethostname(&hello.hostname).map_err(|e| format!("sethostname: {e}"))?;
    crate::env::container::ops::link_up(c"lo", None).map_err(|e| format!("bringing lo up: {e}"))?;
    nix::unistd::chdir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    mount(Some("."), "/", nothing(), MsFlags::MS_MOVE, nothing())
        .map_err(|e| format!("moving the root: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}
