//! Symbolic links an image plants on the paths labrun builds on are refused, not followed.
//!
//! The child builds the root before `pivot_root`, while `/` is still the machine's: a step on
//! `<root>/run/labrun` where the image makes `/run` a link to `/etc` would create `/etc/labrun`
//! on the machine (an absolute link resolves against the machine's root), and a mount would
//! land on the machine's tree. Every step whose path lies in the image's part of the root is
//! checked first, component by component with `lstat`: a link anywhere on the way stops the
//! build with `ELOOP`, which labrun reports as such. Only labrun writes below the root while
//! the child builds it (the run's directory is labrun's, mode 0700), so nothing can swap a
//! component between the check and the step.

use std::ffi::{CStr, CString};

use nix::errno::Errno;

/// The longest path checked; a longer one is refused (`ENAMETOOLONG`).
const MAX_PATH: usize = 4096;

/// Where the image's paths are: below `root`, except in the directories labrun binds there
/// from the machine (the notebook's directory, a submission), whose insides are not the
/// image's.
#[derive(Debug, Default)]
pub struct ImagePaths {
    pub root: CString,
    pub host_binds: Vec<CString>,
}

impl ImagePaths {
    /// `Err(ELOOP)` when `path` lies in the image's part of the root and a component of it
    /// below the root is a symbolic link (the last one too, unless `last_may_link`: a step
    /// that does not follow it). Components that do not exist end the check: the step makes
    /// them. Async-signal-safe: it runs in the child, on a stack buffer.
    pub fn check(&self, path: &CStr, last_may_link: bool) -> Result<(), Errno> {
        let path = path.to_bytes();
        let root = self.root.to_bytes();
        if root.is_empty() || !below(path, root) || path.len() == root.len() {
            return Ok(());
        }
        if self.host_binds.iter().any(|b| {
            let b = b.to_bytes();
            below(path, b) && path.len() > b.len()
        }) {
            return Ok(());
        }
        if path.len() >= MAX_PATH {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut buf = [0u8; MAX_PATH];
        buf[..path.len()].copy_from_slice(path);
        // Each prefix that ends a component below the root: at every '/' past it, and the
        // whole path.
        let ends = (root.len() + 1..path.len())
            .filter(|&i| path[i] == b'/')
            .chain((!last_may_link).then_some(path.len()));
        for end in ends {
            buf[end] = 0;
            // SAFETY: `buf` holds a NUL-terminated prefix of `path`; `stat` is written by lstat.
            let link = unsafe {
                let mut stat: libc::stat = std::mem::zeroed();
                if libc::lstat(buf.as_ptr().cast(), &mut stat) < 0 {
                    return match Errno::last() {
                        Errno::ENOENT => Ok(()),
                        e => Err(e),
                    };
                }
                stat.st_mode & libc::S_IFMT == libc::S_IFLNK
            };
            if link {
                return Err(Errno::ELOOP);
            }
            if end < path.len() {
                buf[end] = b'/';
            }
        }
        Ok(())
    }
}

/// `path` is `dir` or below it.
fn below(path: &[u8], dir: &[u8]) -> bool {
    path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn c(p: &std::path::Path) -> CString {
        CString::new(p.to_str().unwrap()).unwrap()
    }

    #[test]
    fn links_on_the_way_below_the_root_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("lab/.notebook/answers")).unwrap();
        symlink("/etc", root.join("run")).unwrap();
        symlink("answers", root.join("lab/.notebook/linked")).unwrap();
        let paths = ImagePaths {
            root: c(&root),
            host_binds: vec![c(&root.join("lab/.notebook"))],
        };
        let check = |rel: &str, last_may_link| paths.check(&c(&root.join(rel)), last_may_link);
        assert_eq!(check("run/labrun", false), Err(Errno::ELOOP));
        assert_eq!(check("run", false), Err(Errno::ELOOP));
        // A step that makes the link itself does not follow it.
        assert_eq!(check("run", true), Ok(()));
        assert_eq!(check("etc/hosts", false), Ok(()));
        assert_eq!(check("missing/deeper/still", false), Ok(()));
        // The notebook's own directory is the machine's, not the image's.
        assert_eq!(check("lab/.notebook/linked/x", false), Ok(()));
        // Outside the root, and the root itself, are labrun's.
        assert_eq!(paths.check(c"/etc/passwd", false), Ok(()));
        assert_eq!(paths.check(&c(&root), false), Ok(()));
        let rootish = c(&t.path().join("root2/run"));
        assert_eq!(paths.check(&rootish, false), Ok(()));
    }
}
