//! What qemu shows the guest of a share: the share's tree with the paths the lab must not
//! see covered (by an empty read-only tmpfs, or an empty file), in a mount namespace of
//! qemu's own, so that not even the guest's root can reach them through the share.
//!
//! Covering the paths themselves would not do: a share is a descriptor opened before qemu's
//! namespace existed, and lookups through it never meet mounts made later. So each share
//! with something to cover gets a view: its tree bound (recursively) onto an empty
//! directory of the run, the covers mounted in that copy, and the view opened onto the
//! share's descriptor number. Shares with nothing to cover (the image's layers) stay as
//! they are. Nothing of this is seen outside qemu's namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::qemu::ShareDevice;

/// One share's view, prepared before the fork.
#[derive(Debug)]
struct View {
    source: CString,
    at: CString,
    /// The share's descriptor number, which the view replaces.
    fd: i32,
    covers: Vec<(CString, bool)>,
}

/// Every view of one machine, with what applying them needs.
#[derive(Debug)]
pub struct Views {
    views: Vec<View>,
    empty_file: CString,
    /// Rootless: a user namespace first, mapping the caller to itself.
    maps: Option<(CString, CString)>,
}

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

impl Views {
    /// The views `shares` need to hide `hidden` (path, is a directory), each on a fresh
    /// directory under `dir`; `empty_file` covers files.
    pub fn new(
        shares: &[ShareDevice],
        hidden: &[(PathBuf, bool)],
        dir: &Path,
        empty_file: &Path,
    ) -> io::Result<Views> {
        // Compared as the kernel resolves them: a notebook named `./lab.md` has its
        // directory as `.`.
        let hidden: Vec<(PathBuf, bool)> = hidden
            .iter()
            .filter_map(|(h, is_dir)| Some((h.canonicalize().ok()?, *is_dir)))
            .collect();
        let mut views = Vec::new();
        for (i, share) in shares.iter().enumerate() {
            let source = share.source.canonicalize()?;
            let covers: Vec<(PathBuf, bool)> = hidden
                .iter()
                .filter_map(|(h, is_dir)| {
                    let rel = h.strip_prefix(&source).ok()?;
                    (!rel.as_os_str().is_empty()).then(|| (rel.to_path_buf(), *is_dir))
                })
                .collect();
            let covers = outermost(covers);
            if covers.is_empty() {
                continue;
            }
            let at = dir.join(i.to_string());
            std::fs::create_dir_all(&at)?;
            views.push(View {
                source: c(&source)?,
                fd: share.dir.as_raw_fd(),
                covers: covers
                    .iter()
                    .map(|(rel, is_dir)| Ok((c(&at.join(rel))?, *is_dir)))
                    .collect::<io::Result<_>>()?,
                at: c(&at)?,
            });
        }
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        Ok(Views {
            views,
            empty_file: c(empty_file)?,
            maps: (uid != 0).then(|| {
                (
                    CString::new(format!("{uid} {uid} 1")).unwrap(),
                    CString::new(format!("{gid} {gid} 1")).unwrap(),
                )
            }),
        })
    }

    /// In qemu's process, between fork and exec: only system calls on prepared data.
    pub fn apply(&self) -> io::Result<()> {
        if self.views.is_empty() {
            return Ok(());
        }
        // SAFETY: system calls on NUL-terminated strings prepared before the fork.
        unsafe {
            match &self.maps {
                None => check(libc::unshare(libc::CLONE_NEWNS))?,
                Some((uid_map, gid_map)) => {
                    check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
                    write_file(c"/proc/self/setgroups", b"deny")?;
                    write_file(c"/proc/self/uid_map", uid_map.as_bytes())?;
                    write_file(c"/proc/self/gid_map", gid_map.as_bytes())?;
                }
            }
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for view in &self.views {
                check(libc::mount(
                    view.source.as_ptr(),
                    view.at.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                for (path, is_dir) in &view.covers {
                    check(self.cover(path, *is_dir))?;
                }
                let fd = libc::open(view.at.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                check(fd)?;
                // dup2 leaves the copy open across exec.
                check(libc::dup2(fd, view.fd))?;
                libc::close(fd);
            }
        }
        Ok(())
    }

    /// # Safety
    /// Only system calls: callable between fork and exec.
    unsafe fn cover(&self, path: &CString, is_dir: bool) -> libc::c_int {
        // SAFETY: as the function's contract says.
        unsafe {
            if is_dir {
                libc::mount(
                    c"hidden".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=4k,mode=755".as_ptr().cast(),
                )
            } else {
                libc::mount(
                    self.empty_file.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            }
        }
    }
}

/// The covers without those inside a directory already covered (there is nothing left to
/// mount them on).
fn outermost(mut covers: Vec<(PathBuf, bool)>) -> Vec<(PathBuf, bool)> {
    covers.sort();
    covers.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut kept: Vec<(PathBuf, bool)> = Vec::new();
    for (path, is_dir) in covers {
        if !kept.iter().any(|(k, k_dir)| *k_dir && path.starts_with(k)) {
            kept.push((path, is_dir));
        }
    }
    kept
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// # Safety
/// Only system calls: callable between fork and exec.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: as the function's contract says.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if n != data.len() as isize {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_inside_a_covered_directory_are_dropped() {
        let covers = vec![
            (PathBuf::from("lab/expected-output"), true),
            (PathBuf::from("lab"), true),
            (PathBuf::from("etc/shadow"), false),
            (PathBuf::from("lab"), true),
            (PathBuf::from("labx"), true),
        ];
        assert_eq!(
            outermost(covers),
            vec![
                (PathBuf::from("etc/shadow"), false),
                (PathBuf::from("lab"), true),
                (PathBuf::from("labx"), true),
            ]
        );
    }
}
