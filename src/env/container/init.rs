//! PID 1 of a container: starts shells on labrun's request, reaps every zombie, forwards
//! termination signals, and reports the shells' exits.
//!
//! Like the setup before it, this runs in a raw clone of labrun: no allocation, no locks, no
//! panics. Requests arrive into a stack buffer; the shell's arguments and environment are
//! pointers into it. When labrun's end of the socket closes (labrun is done, or died), init
//! exits and the kernel kills everything left in the PID namespace.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::hardening::Hardening;
use super::wire::{self, Reply};

/// Shells reported to labrun when they exit; other children are just reaped.
const MAX_SHELLS: usize = 32;
/// Arguments plus environment entries of one shell.
const MAX_STRINGS: usize = 4096;

fn send(fd: RawFd, kind: u8, a: i32, b: i32) {
    let bytes = Reply { kind, a, b }.encode();
    // SAFETY: a plain send of a stack buffer.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL);
    }
}

struct Shells {
    pids: [libc::pid_t; MAX_SHELLS],
}

impl Shells {
    fn add(&mut self, pid: libc::pid_t) {
        if let Some(slot) = self.pids.iter_mut().find(|p| **p == 0) {
            *slot = pid;
        }
    }

    fn take(&mut self, pid: libc::pid_t) -> bool {
        match self.pids.iter_mut().find(|p| **p == pid) {
            Some(slot) => {
                *slot = 0;
                true
            }
            None => false,
        }
    }
}

/// init's loop. Never returns.
///
/// # Safety
/// Must run in the container's first process, with `ctl` its socket to labrun.
pub unsafe fn run(ctl: RawFd, hardening: &Hardening, mut detach_old_root: bool) -> ! {
    // SAFETY (whole function): system calls on our own descriptors and stack buffers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        let sigfd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        let mut shells = Shells {
            pids: [0; MAX_SHELLS],
        };
        let Some(Scratch { request, mut room }) = Scratch::map() else {
            libc::_exit(1);
        };
        let mut detached = false;
        let mut ctl = ctl;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: ctl,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
                continue;
            }
            if fds[1].revents != 0 {
                let mut info: libc::signalfd_siginfo = std::mem::zeroed();
                let size = std::mem::size_of::<libc::signalfd_siginfo>();
                while libc::read(
                    sigfd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                ) == size as isize
                {
                    let sig = info.ssi_signo as libc::c_int;
                    if sig != libc::SIGCHLD {
                        // Everything in the namespace but init itself.
                        libc::kill(-1, sig);
                    }
                }
                reap(ctl, &mut shells);
            }
            if fds[0].revents != 0 {
                let mut rights = [-1 as RawFd; 2];
                let n = receive(ctl, request, &mut rights);
                if n <= 0 {
                    if !detached {
                        // labrun is gone: end the container.
                        libc::_exit(0);
                    }
                    // Kept (`--keep`): live on until killed.
                    libc::close(ctl);
                    ctl = -1;
                    continue;
                }
                let msg = &request[..n as usize];
                match msg.first() {
                    Some(&wire::SPAWN) => {
                        let pid = spawn(msg, rights, hardening, &mut room);
                        // The old root goes while the first shell starts, and before labrun
                        // hears of that shell, so before it can send it anything to run.
                        if detach_old_root && let Ok(shell) = pid {
                            detach_old_root = false;
                            if let Err(e) = super::ops::detach_old_root() {
                                // Never a shell with the machine's tree in reach: the
                                // container ends here.
                                libc::kill(shell, libc::SIGKILL);
                                send(ctl, wire::SPAWNED, 0, e as i32);
                                libc::_exit(1);
                            }
                        }
                        for fd in rights {
                            if fd >= 0 {
                                libc::close(fd);
                            }
                        }
                        match pid {
                            Ok(pid) => {
                                shells.add(pid);
                                send(ctl, wire::SPAWNED, pid, 0);
                            }
                            Err(e) => send(ctl, wire::SPAWNED, 0, e as i32),
                        }
                    }
                    Some(&wire::DETACH) => {
                        // The run's lock stays open in init: the run is alive while it is.
                        detached = true;
                        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
                        send(ctl, wire::DETACHED, 0, 0);
                    }
                    _ => {
                        for fd in rights {
                            if fd >= 0 {
                                libc::close(fd);
                            }
                        }
                    }
                }
                // A shell that failed to start may already be a zombie.
                reap(ctl, &mut shells);
            }
        }
    }
}

/// Reaps every exited child; reports the shells.
unsafe fn reap(ctl: RawFd, shells: &mut Shells) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a stack variable.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if shells.take(pid) {
            send(ctl, wire::EXITED, pid, status);
        }
    }
}

/// Receives one request and up to two descriptors. Returns the request's length.
unsafe fn receive(ctl: RawFd, buf: &mut [u8], rights: &mut [RawFd; 2]) -> isize {
    // SAFETY: the iovec and control buffers are on the stack and sized as declared.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = loop {
            let n = libc::recvmsg(ctl, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            break n;
        };
        if n <= 0 {
            return n;
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        let mut got = 0;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = data.add(i).read_unaligned();
                    if got < rights.len() {
                        rights[got] = fd;
                        got += 1;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        n
    }
}

/// init's working memory, mapped once: pages are touched only where used. On the stack, the
/// same buffers would cost every page up front (zeroing and stack probes), a few microseconds
/// each on a virtual machine, all before the first shell starts.
struct Scratch {
    /// A request from labrun.
    request: &'static mut [u8],
    room: SpawnRoom,
}

/// What starting a shell needs besides the request.
struct SpawnRoom {
    /// Pointers to the request's arguments and environment, each list ended by a null.
    argv: &'static mut [*const libc::c_char],
    envp: &'static mut [*const libc::c_char],
    /// Top of the stack the shell's process runs on until it executes.
    stack_top: *mut libc::c_void,
}

impl Scratch {
    /// Maps the memory (zeroed by the kernel, so every slice starts out valid); None when
    /// the kernel refuses.
    fn map() -> Option<Scratch> {
        let pointers = MAX_STRINGS * std::mem::size_of::<*const libc::c_char>();
        let len = wire::MAX_REQUEST + 2 * pointers + SHELL_STACK;
        // SAFETY: a fresh private anonymous mapping, never unmapped: init lives as long as
        // it. The slices cover disjoint parts of it; zero bytes are valid for both types.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return None;
            }
            let base = base.cast::<u8>();
            let request = std::slice::from_raw_parts_mut(base, wire::MAX_REQUEST);
            let argv = base.add(wire::MAX_REQUEST).cast::<*const libc::c_char>();
            let envp = base
                .add(wire::MAX_REQUEST + pointers)
                .cast::<*const libc::c_char>();
            Some(Scratch {
                request,
                room: SpawnRoom {
                    argv: std::slice::from_raw_parts_mut(argv, MAX_STRINGS),
                    envp: std::slice::from_raw_parts_mut(envp, MAX_STRINGS),
                    stack_top: base.add(len).cast(),
                },
            })
        }
    }
}

/// Starts a shell from a SPAWN request: `S flags cwd\0 argv...\0 \0 env...\0`.
unsafe fn spawn(
    msg: &[u8],
    rights: [RawFd; 2],
    hardening: &Hardening,
    room: &mut SpawnRoom,
) -> Result<i32, Errno> {
    let [control, status] = rights;
    if control < 0 || status < 0 || msg.len() < 3 || *msg.last().unwrap_or(&1) != 0 {
        return Err(Errno::EINVAL);
    }
    let privileged = msg[1] & wire::PRIVILEGED != 0;
    let (mut argc, mut envc) = (0, 0);
    let mut cwd: *const libc::c_char = std::ptr::null();
    let mut in_env = false;
    let mut start = 2;
    for i in 2..msg.len() {
        if msg[i] != 0 {
            continue;
        }
        let s = msg[start..].as_ptr().cast::<libc::c_char>();
        let empty = i == start;
        start = i + 1;
        if cwd.is_null() {
            cwd = s;
        } else if !in_env && empty {
            in_env = true;
        } else if !in_env {
            if argc + 1 >= MAX_STRINGS {
                return Err(Errno::E2BIG);
            }
            room.argv[argc] = s;
            argc += 1;
        } else {
            if envc + 1 >= MAX_STRINGS {
                return Err(Errno::E2BIG);
            }
            room.envp[envc] = s;
            envc += 1;
        }
    }
    if argc == 0 {
        return Err(Errno::EINVAL);
    }
    // The lists are reused: end each after this request's entries.
    room.argv[argc] = std::ptr::null();
    room.envp[envc] = std::ptr::null();
    let args = ShellArgs {
        control,
        status,
        cwd,
        argv: room.argv.as_ptr(),
        envp: room.envp.as_ptr(),
        privileged,
        hardening,
    };
    // The shell's process shares init's memory until it executes, and init waits for that
    // (vfork): no copy of init's page tables, which are labrun's. It runs on a stack of its
    // own and writes nothing but that stack.
    // SAFETY: the stack and `args` outlive the child's use of them (init is suspended until
    // the child executes or exits); `start_shell` only makes system calls.
    let pid = unsafe {
        libc::clone(
            start_shell,
            room.stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ShellArgs as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(Errno::last());
    }
    Ok(pid)
}

/// Stack of the shell's process until it executes.
const SHELL_STACK: usize = 64 * 1024;

/// What the shell's process needs, on init's stack.
struct ShellArgs<'a> {
    control: RawFd,
    status: RawFd,
    cwd: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    privileged: bool,
    hardening: &'a Hardening,
}

/// The shell's process, from clone to execve.
extern "C" fn start_shell(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ShellArgs` init passed, alive while init waits for us.
    unsafe {
        let ShellArgs {
            control,
            status,
            cwd,
            argv,
            envp,
            privileged,
            hardening,
        } = &*(arg as *const ShellArgs);
        let (control, status, cwd, argv, envp, privileged) =
            (*control, *status, *cwd, *argv, *envp, *privileged);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::setsid();
        let ok = libc::dup2(control, 0) >= 0 && libc::dup2(status, 3) >= 0;
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if !ok || null < 0 || libc::dup2(null, 1) < 0 || libc::dup2(null, 2) < 0 {
            libc::_exit(126);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        if libc::chdir(cwd) < 0 {
            libc::chdir(c"/".as_ptr());
        }
        libc::umask(0o022);
        if hardening.apply(privileged).is_err() {
            libc::_exit(126);
        }
        libc::execve(*argv, argv, envp);
        libc::_exit(127)
    }
}
