//! The container's first process, from the moment labrun clones it until it becomes init.
//!
//! It is a raw clone of labrun, which may have other threads: it must not allocate, lock or
//! panic, only make system calls on data labrun prepared (`ChildPlan`). It waits for labrun's
//! go-ahead (its user and cgroup are set up by then), unshares the remaining namespaces itself
//! (never the parent, or pivot_root would move labrun's root too), builds the root, and, when
//! labrun runs as root, enters a user namespace of the session's own so that even privileged
//! cells hold their capabilities only there. Then it closes every descriptor it inherited but
//! its socket to labrun, and runs init.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::beneath::ImagePaths;
use super::hardening::Hardening;
use super::init;
use super::ops::Op;
use super::wire::{self, Reply};

/// Everything the child needs, built by labrun before the clone.
pub struct ChildPlan {
    /// Read end of a pipe: one byte from labrun per go-ahead, end-of-file if labrun died.
    pub sync: RawFd,
    /// The child's end of the socket to labrun.
    pub control: RawFd,
    /// Namespaces the child unshares first, itself (mount, UTS, IPC, network); the cgroup
    /// namespace comes once it is in the run's cgroups.
    pub unshare: libc::c_int,
    /// A network namespace to join instead of making one (a machine of a lab's network), or -1.
    pub join_netns: RawFd,
    pub ops: Vec<Op>,
    /// Enter a user namespace after the root is built (labrun runs as root and the notebook
    /// has privileged cells, whose capabilities must count only there).
    pub session_userns: bool,
    /// The old root is still stacked on `/` (see `Op::PivotRoot`): init detaches it when it
    /// starts the first shell.
    pub detach_old_root: bool,
    /// labrun's command line in memory, overwritten so /proc/1/cmdline does not show it.
    pub argv_area: Option<(usize, usize)>,
    pub hardening: Hardening,
    /// Where the root is assembled on this machine, to show paths as the lab will see them.
    pub merged: String,
    /// Where the image's paths are in the root being built: a step whose path there passes
    /// through a symbolic link is refused (`beneath`).
    pub image_paths: ImagePaths,
    /// The run's `cgroup.procs` files: the child writes itself into each, first thing. A
    /// process that moves itself is quick; moving another one can wait for an RCU grace
    /// period (milliseconds on a busy machine).
    pub cgroup_procs: Vec<std::ffi::CString>,
}

/// Step numbers past the ops that name a cgroup the child could not join.
const JOIN_STEP: usize = 1000;

/// Writes this process into a cgroup. Async-signal-safe.
fn join_cgroup(procs: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: open, write and close on a path the plan owns and a stack buffer.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(Errno::last());
        }
        let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
        let err = Errno::last();
        libc::close(fd);
        if ok { Ok(()) } else { Err(err) }
    }
}

fn send(fd: RawFd, reply: Reply) {
    let bytes = reply.encode();
    // SAFETY: a plain write of a stack buffer.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL);
    }
}

/// Waits for labrun's next go-ahead; false when labrun is gone.
fn wait_go(sync: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into a stack variable.
        let n = unsafe { libc::read(sync, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return true;
        }
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return false;
    }
}

/// Sends labrun a descriptor of /lab, on the lab's writable disk: labrun measures the disk's
/// free space with fstatfs on it, without asking the container. The root is built, so /lab
/// is the lab's own (never one of the image's links: it is a mount, or a directory labrun made).
///
/// # Safety
/// Called by the child with `control` its socket to labrun.
unsafe fn share_disk(control: RawFd, steps: usize) {
    // SAFETY: open, sendmsg and close on stack data; the control buffer is sized for one fd.
    unsafe {
        let fd = libc::open(
            c"/lab".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if fd < 0 {
            fail(control, steps + 5, Errno::last());
        }
        let bytes = Reply {
            kind: wire::DISK_FD,
            a: 0,
            b: 0,
        }
        .encode();
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        let mut cbuf = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
        let sent = libc::sendmsg(control, &msg, libc::MSG_NOSIGNAL);
        let err = Errno::last();
        libc::close(fd);
        if sent < 0 {
            fail(control, steps + 5, err);
        }
    }
}

fn fail(control: RawFd, step: usize, err: Errno) -> ! {
    send(
        control,
        Reply {
            kind: wire::SETUP_FAILED,
            a: step as i32,
            b: err as i32,
        },
    );
    // SAFETY: ends the process without running anything of labrun's.
    unsafe { libc::_exit(1) }
}

/// The child's whole life. Never returns.
///
/// # Safety
/// Must be called only in a freshly cloned child process, with `plan` valid.
pub unsafe fn main(plan: &ChildPlan) -> ! {
    // SAFETY (whole function): system calls on descriptors and data the plan owns.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // A session of its own: Ctrl-C at labrun's terminal goes to labrun's process group,
        // and labrun decides what the container gets.
        libc::setsid();
        // Not readable by what runs inside: /proc/1/mem, environ and exe stay closed.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NAME, c"labrun-init".as_ptr(), 0, 0, 0);
        let control = plan.control;
        let steps = plan.ops.len();
        if !wait_go(plan.sync) {
            libc::_exit(1);
        }
        for (i, procs) in plan.cgroup_procs.iter().enumerate() {
            if let Err(e) = join_cgroup(procs) {
                fail(control, steps + JOIN_STEP + i, e);
            }
        }
        if libc::unshare(plan.unshare) < 0 {
            fail(control, steps, Errno::last());
        }
        if plan.join_netns >= 0 && libc::setns(plan.join_netns, libc::CLONE_NEWNET) < 0 {
            fail(control, steps + 4, Errno::last());
        }
        for (i, op) in plan.ops.iter().enumerate() {
            if let Some((path, last_may_link)) = op.target()
                && let Err(e) = plan.image_paths.check(path, last_may_link)
            {
                fail(control, i, e);
            }
            if let Err(e) = op.run() {
                fail(control, i, e);
            }
        }
        share_disk(control, steps);
        if plan.session_userns {
            if libc::unshare(libc::CLONE_NEWUSER) < 0 {
                fail(control, steps + 1, Errno::last());
            }
            // labrun writes the session's id maps before the second go-ahead.
            send(
                control,
                Reply {
                    kind: wire::NEED_MAPS,
                    a: 0,
                    b: 0,
                },
            );
            if !wait_go(plan.sync) {
                libc::_exit(1);
            }
        }
        // The cgroup namespace only now, rooted at the run's cgroup. With a session user
        // namespace, a mount namespace it owns: privileged cells can mount in it, and every
        // mount made so far is locked in place.
        let mut later = libc::CLONE_NEWCGROUP;
        if plan.session_userns {
            later |= libc::CLONE_NEWNS;
        }
        if libc::unshare(later) < 0 {
            fail(control, steps + 2, Errno::last());
        }
        if let Some((start, end)) = plan.argv_area {
            std::ptr::write_bytes(start as *mut u8, 0, end - start);
            let name = b"labrun-init";
            if end - start > name.len() {
                std::ptr::copy_nonoverlapping(name.as_ptr(), start as *mut u8, name.len());
            }
        }
        // Keep only the socket to labrun, as fd 3; 0-2 become /dev/null.
        let mut ctl = control;
        if ctl != 3 {
            if libc::dup2(ctl, 3) < 0 {
                fail(control, steps + 3, Errno::last());
            }
            ctl = 3;
        }
        libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32);
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null == 0 {
            libc::dup2(0, 1);
            libc::dup2(0, 2);
        }
        libc::chdir(c"/".as_ptr());
        init::run(ctl, &plan.hardening, plan.detach_old_root)
    }
}

/// The message for a failed step, as labrun reports it.
pub fn describe_failure(plan_ops: &[Op], step: usize, errno: i32) -> String {
    let err = Errno::from_raw(errno);
    let what = match plan_ops.get(step) {
        Some(op) => op.describe(),
        None => match step - plan_ops.len() {
            0 => "unsharing the mount, UTS, IPC and network namespaces".into(),
            1 => "entering the session's user namespace".into(),
            2 => "unsharing the cgroup namespace (and the session's mount namespace)".into(),
            4 => "joining the lab's network namespace".into(),
            5 => "opening /lab, to measure the lab's disk".into(),
            _ => "setting up init's descriptors".into(),
        },
    };
    if err == Errno::ELOOP {
        return format!(
            "{what}: the image has a symbolic link on this path, and labrun does not follow an \
             image's links while it builds the root"
        );
    }
    format!("{what}: {}", err.desc())
}

/// A failure message with the assembly directory's paths shown as paths inside the lab.
pub fn describe_inside(plan: &ChildPlan, step: usize, errno: i32) -> String {
    if let Some(procs) = step
        .checked_sub(plan.ops.len() + JOIN_STEP)
        .and_then(|i| plan.cgroup_procs.get(i))
    {
        return format!(
            "joining the run's cgroup {}: {}",
            procs.to_string_lossy(),
            Errno::from_raw(errno).desc()
        );
    }
    let text = describe_failure(&plan.ops, step, errno);
    if plan.merged.is_empty() {
        return text;
    }
    text.replace(&format!("{}/", plan.merged), "/")
        .replace(&plan.merged, "/")
}
