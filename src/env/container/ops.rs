//! The steps that build a container's root filesystem, prepared by labrun and run in the child.
//!
//! labrun builds the whole list before it clones: every path is a `CString` already, so the
//! child, a raw clone of a possibly multi-threaded labrun, runs the steps without allocating
//! (malloc's locks may be held by a thread that does not exist in the child). A step that fails
//! is reported by its index and errno; labrun turns that into a message with `describe`.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// One step of building the root, run in order in the child.
#[derive(Debug)]
pub enum Op {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
        /// A missing target is skipped rather than failing (masks of optional /proc files).
        optional: bool,
    },
    /// A directory with this mode and owner; an existing one is left as it is.
    Mkdir {
        path: CString,
        mode: u32,
        owner: Option<(u32, u32)>,
    },
    /// An empty regular file (an existing one is fine), then its mode and owner.
    MkFile {
        path: CString,
        mode: u32,
        owner: Option<(u32, u32)>,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// A character device node (only labrun as root may make one).
    CharDevice {
        path: CString,
        major: u32,
        minor: u32,
    },
    SetXattr {
        path: CString,
        name: CString,
        value: &'static [u8],
    },
    /// Makes `new_root` the root: `pivot_root(".", ".")` from inside it, then the old root is
    /// detached, so nothing of the host's tree stays reachable, unless `detach_later`: init
    /// then detaches it with `detach_old_root` while the first shell starts (the detach waits
    /// for an RCU grace period), and before that shell gets anything to run.
    PivotRoot {
        new_root: CString,
        detach_later: bool,
    },
    SetHostname {
        name: CString,
    },
    /// Changes the working directory, so that later mount options may name paths relative
    /// to it (overlay lower directories through short links: see `rootfs`).
    Chdir {
        path: CString,
    },
    /// Brings the loopback interface of the new network namespace up.
    /// `ip link set NAME up`, with `ip addr add ADDRESS/PREFIX dev NAME` first when given.
    LinkUp {
        name: &'static CStr,
        address: Option<(std::net::Ipv4Addr, u8)>,
    },
}

pub fn cstring(path: impl AsRef<Path>) -> CString {
    CString::new(path.as_ref().as_os_str().as_bytes()).expect("paths have no NUL byte")
}

fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The mode (past the umask) and owner a step asks for. Async-signal-safe.
fn set_mode_owner(path: &CStr, mode: u32, owner: Option<(u32, u32)>) -> Result<(), Errno> {
    // SAFETY: `path` is a valid C string for the duration of the calls.
    unsafe {
        check(libc::chmod(path.as_ptr(), mode))?;
        if let Some((uid, gid)) = owner {
            check(libc::lchown(path.as_ptr(), uid, gid))?;
        }
    }
    Ok(())
}

fn opt_ptr(s: &Option<CString>) -> *const libc::c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

impl Op {
    /// Runs the step. Async-signal-safe: no allocation, only system calls.
    pub fn run(&self) -> Result<(), Errno> {
        // SAFETY (whole function): every pointer comes from a CString or static slice owned by
        // `self`, which outlives the call; the calls only read them.
        unsafe {
            match self {
                Op::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                    optional,
                } => {
                    let ret = libc::mount(
                        opt_ptr(source),
                        target.as_ptr(),
                        opt_ptr(fstype),
                        *flags,
                        opt_ptr(data) as *const libc::c_void,
                    );
                    match check(ret) {
                        Err(Errno::ENOENT) if *optional => Ok(()),
                        other => other,
                    }
                }
                Op::Mkdir { path, mode, owner } => {
                    if libc::mkdir(path.as_ptr(), *mode) < 0 {
                        return match Errno::last() {
                            Errno::EEXIST => Ok(()),
                            e => Err(e),
                        };
                    }
                    set_mode_owner(path, *mode, *owner)
                }
                Op::MkFile { path, mode, owner } => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        *mode,
                    );
                    if fd < 0 {
                        return Err(Errno::last());
                    }
                    libc::close(fd);
                    set_mode_owner(path, *mode, *owner)
                }
                Op::CharDevice { path, major, minor } => {
                    let dev = libc::makedev(*major, *minor);
                    check(libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, dev))?;
                    // mknod honours the umask; the nodes are for everyone.
                    check(libc::chmod(path.as_ptr(), 0o666))
                }
                Op::Symlink { target, path } => {
                    let ret = libc::symlink(target.as_ptr(), path.as_ptr());
                    if ret < 0 && Errno::last() != Errno::EEXIST {
                        return Err(Errno::last());
                    }
                    Ok(())
                }
                Op::SetXattr { path, name, value } => check(libc::lsetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr() as *const libc::c_void,
                    value.len(),
                    0,
                )),
                Op::PivotRoot {
                    new_root,
                    detach_later,
                } => {
                    check(libc::chdir(new_root.as_ptr()))?;
                    let dot = c".".as_ptr();
                    check(libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int)?;
                    if !detach_later {
                        check(libc::umount2(dot, libc::MNT_DETACH))?;
                    }
                    check(libc::chdir(c"/".as_ptr()))
                }
                Op::SetHostname { name } => {
                    check(libc::sethostname(name.as_ptr(), name.as_bytes().len()))
                }
                Op::Chdir { path } => check(libc::chdir(path.as_ptr())),
                Op::LinkUp { name, address } => link_up(name, *address),
            }
        }
    }

    /// The path the step creates or mounts on, and whether it leaves a link there alone (a
    /// link of its own it makes, or an existing one that `O_NOFOLLOW` refuses).
    pub fn target(&self) -> Option<(&CStr, bool)> {
        match self {
            Op::Mount { target, .. } => Some((target, false)),
            Op::Mkdir { path, .. } | Op::CharDevice { path, .. } | Op::SetXattr { path, .. } => {
                Some((path, false))
            }
            Op::MkFile { path, .. } | Op::Symlink { path, .. } => Some((path, true)),
            Op::PivotRoot { .. }
            | Op::SetHostname { .. }
            | Op::Chdir { .. }
            | Op::LinkUp { .. } => None,
        }
    }

    /// What the step does, for the error message when it fails.
    pub fn describe(&self) -> String {
        let s = |c: &CStr| c.to_string_lossy().into_owned();
        match self {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                ..
            } => {
                let what = if flags & libc::MS_BIND != 0 {
                    if flags & libc::MS_REMOUNT != 0 {
                        "remounting read-only".to_string()
                    } else {
                        format!(
                            "bind-mounting {}",
                            source.as_deref().map(s).unwrap_or_default()
                        )
                    }
                } else if flags & libc::MS_PRIVATE != 0 {
                    "making mount propagation private on".to_string()
                } else {
                    format!("mounting {}", fstype.as_deref().map(s).unwrap_or_default())
                };
                let data = data
                    .as_deref()
                    .map(|d| format!(" ({})", s(d)))
                    .unwrap_or_default();
                format!("{what} {}{data}", s(target))
            }
            Op::Mkdir { path, .. } => format!("creating the directory {}", s(path)),
            Op::MkFile { path, .. } => format!("creating the file {}", s(path)),
            Op::CharDevice { path, .. } => format!("creating the device node {}", s(path)),
            Op::Symlink { path, target } => {
                format!("creating the link {} -> {}", s(path), s(target))
            }
            Op::SetXattr { path, name, .. } => {
                format!("setting the attribute {} on {}", s(name), s(path))
            }
            Op::PivotRoot { new_root, .. } => format!("pivot_root into {}", s(new_root)),
            Op::SetHostname { name } => format!("setting the hostname to {}", s(name)),
            Op::Chdir { path } => format!("changing directory to {}", s(path)),
            Op::LinkUp {
                name,
                address: None,
            } => format!("bringing the interface {} up", s(name)),
            Op::LinkUp {
                name,
                address: Some((address, prefix)),
            } => format!(
                "giving the interface {} the address {address}/{prefix}",
                s(name)
            ),
        }
    }
}

/// Detaches the old root that `pivot_root(".", ".")` left stacked on `/` (see
/// `Op::PivotRoot`). From `/`, the path resolves to the topmost mount there: the old root.
/// Async-signal-safe.
pub fn detach_old_root() -> Result<(), Errno> {
    // SAFETY: umount2 of a static path.
    check(unsafe { libc::umount2(c"/".as_ptr(), libc::MNT_DETACH) })
}

/// An IPv4 socket address for an ifreq (no allocation).
fn sockaddr_in(address: std::net::Ipv4Addr) -> libc::sockaddr {
    // SAFETY: sockaddr_in fits in sockaddr (both 16 bytes); zeroed is valid for both.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes(address.octets());
        std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin)
    }
}

/// An interface up (and addressed), with ioctls on a throwaway socket. Async-signal-safe.
pub(crate) fn link_up(name: &CStr, address: Option<(std::net::Ipv4Addr, u8)>) -> Result<(), Errno> {
    // SAFETY: a zeroed ifreq is valid; the name is copied into its fixed array (at most 15
    // bytes and the NUL); the socket is closed on every path.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(Errno::last());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.to_bytes_with_nul().iter().take(16))
        {
            *dst = *src as libc::c_char;
        }
        let mut ret = 0;
        if let Some((address, prefix)) = address {
            req.ifr_ifru.ifru_addr = sockaddr_in(address);
            ret = libc::ioctl(sock, libc::SIOCSIFADDR, &req);
            if ret == 0 {
                let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
                req.ifr_ifru.ifru_netmask = sockaddr_in(std::net::Ipv4Addr::from(mask));
                ret = libc::ioctl(sock, libc::SIOCSIFNETMASK, &req);
            }
        }
        if ret == 0 {
            ret = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        }
        if ret == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ret = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let err = Errno::last();
        libc::close(sock);
        if ret < 0 { Err(err) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_what_failed() {
        let op = Op::Mount {
            source: Some(cstring("overlay")),
            target: cstring("/x/merged"),
            fstype: Some(cstring("overlay")),
            flags: 0,
            data: Some(cstring("lowerdir=/")),
            optional: false,
        };
        assert_eq!(op.describe(), "mounting overlay /x/merged (lowerdir=/)");
        let op = Op::Mount {
            source: Some(cstring("/dev/null")),
            target: cstring("/r/dev/null"),
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
            optional: false,
        };
        assert_eq!(op.describe(), "bind-mounting /dev/null /r/dev/null");
    }

    #[test]
    fn directory_and_file_steps_run_and_tolerate_existing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        let mk = Op::Mkdir {
            path: cstring(&sub),
            mode: 0o750,
            owner: None,
        };
        mk.run().unwrap();
        mk.run().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        let file = Op::MkFile {
            path: cstring(sub.join("f")),
            mode: 0o600,
            owner: None,
        };
        file.run().unwrap();
        file.run().unwrap();
        assert_eq!(std::fs::read(sub.join("f")).unwrap(), b"");
        let bad = Op::Mkdir {
            path: cstring(dir.path().join("missing/deeper")),
            mode: 0o755,
            owner: None,
        };
        assert_eq!(bad.run(), Err(Errno::ENOENT));
    }
}
