//! The sandbox's privilege primitives against the real kernel: each case forks, installs the
//! seccomp filter or drops capabilities in the child, makes the call there, and reports the
//! kernel's errno through the child's exit code.
//!
//! The children only make raw syscalls (the test binary is multi-threaded, so a child must not
//! allocate). The expected policy is restated here on purpose, with x86_64 numbers from `libc`
//! rather than from the table under test.

#![cfg(target_arch = "x86_64")]

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, MutexGuard};

use labrun::sandbox::caps::{CapPlan, CapSet};
use labrun::sandbox::seccomp::{Filter, no_new_privs};
use nix::errno::Errno;

/// Exit codes a child uses for its own failures; every errno is below them.
const NO_NEW_PRIVS_FAILED: i32 = 200;
const INSTALL_FAILED: i32 = 201;
const APPLY_FAILED: i32 = 202;
const PANICKED: i32 = 203;

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Signaled(i32),
}

/// What a child reports for a call: 0 on success, the errno otherwise.
fn errno_of(rc: libc::c_long) -> i32 {
    if rc < 0 { Errno::last() as i32 } else { 0 }
}

/// Forking from several test threads at once would let a child inherit another test's pipe
/// ends; the children of this file take turns.
fn fork_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Exits a child whose body unwinds, so that it never returns into the test harness.
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: ends the forked child only.
        unsafe { libc::_exit(PANICKED) }
    }
}

/// Forks; the child runs `body` and exits with its value. Returns the child's pid.
fn fork_child(body: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `body`, which makes raw syscalls, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        let guard = ExitOnUnwind;
        let code = body();
        std::mem::forget(guard);
        // SAFETY: as above.
        unsafe { libc::_exit(code) }
    }
    pid
}

fn wait_for(pid: libc::pid_t) -> End {
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        End::Exited(libc::WEXITSTATUS(status))
    } else {
        End::Signaled(libc::WTERMSIG(status))
    }
}

fn in_child(body: impl FnOnce() -> i32) -> End {
    let _turn = fork_turn();
    wait_for(fork_child(body))
}

/// Runs `body` in a child under `filter`, after `no_new_privs`.
fn filtered(filter: &Filter, body: impl FnOnce() -> i32) -> End {
    in_child(|| {
        if no_new_privs().is_err() {
            return NO_NEW_PRIVS_FAILED;
        }
        if filter.install().is_err() {
            return INSTALL_FAILED;
        }
        body()
    })
}

fn unprivileged() -> Filter {
    Filter::default_for(false)
}

fn privileged() -> Filter {
    Filter::default_for(true)
}

const EPERM: End = End::Exited(libc::EPERM);
const ENOSYS: End = End::Exited(libc::ENOSYS);
const OK: End = End::Exited(0);

fn syscall0(nr: libc::c_long) -> i32 {
    // SAFETY: all-zero arguments; every call here is answered before using them, or rejects
    // zero (null pointers, invalid magic numbers, empty lengths).
    errno_of(unsafe { libc::syscall(nr, 0, 0, 0, 0, 0, 0) })
}

/// Syscalls denied in every cell, by their x86_64 number.
const ALWAYS_DENIED: &[(&str, libc::c_long)] = &[
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("settimeofday", libc::SYS_settimeofday),
    ("adjtimex", libc::SYS_adjtimex),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("syslog", libc::SYS_syslog),
];

/// Syscalls denied outside privileged cells, by their x86_64 number.
const DENIED_UNLESS_PRIVILEGED: &[(&str, libc::c_long)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("setns", libc::SYS_setns),
];

#[test]
fn keyctl_is_denied_on_x86_64() {
    // KEYCTL_GET_KEYRING_ID of KEY_SPEC_PROCESS_KEYRING, without creating it.
    let keyctl = || {
        // SAFETY: integer arguments only.
        errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, -2, 0) })
    };
    assert_ne!(in_child(keyctl), EPERM, "the kernel itself allows it");
    assert_eq!(filtered(&unprivileged(), keyctl), EPERM);
    assert_eq!(filtered(&privileged(), keyctl), EPERM);
}

#[test]
fn every_always_denied_syscall_is_eperm_in_both_kinds_of_cell() {
    for filter in [unprivileged(), privileged()] {
        for &(name, nr) in ALWAYS_DENIED {
            assert_eq!(filtered(&filter, || syscall0(nr)), EPERM, "{name}");
        }
    }
}

#[test]
fn the_mount_family_and_setns_are_denied_unless_privileged() {
    let (unprivileged, privileged) = (unprivileged(), privileged());
    for &(name, nr) in DENIED_UNLESS_PRIVILEGED {
        assert_eq!(filtered(&unprivileged, || syscall0(nr)), EPERM, "{name}");
        // Privileged: the kernel's own answer (EFAULT, EBADF... as root), not the filter's.
        assert_eq!(
            filtered(&privileged, || syscall0(nr)),
            in_child(|| syscall0(nr)),
            "{name}"
        );
    }
}

#[test]
fn a_user_namespace_is_denied_unless_privileged() {
    let unshare_user = || {
        // SAFETY: integer argument only; the child is single-threaded, as unshare requires.
        errno_of(unsafe { libc::unshare(libc::CLONE_NEWUSER) } as libc::c_long)
    };
    assert_eq!(filtered(&unprivileged(), unshare_user), EPERM);
    assert_eq!(
        filtered(&privileged(), unshare_user),
        in_child(unshare_user)
    );

    // The same through clone, which would fork into a new user namespace.
    let clone_user = || {
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
        // SAFETY: no CLONE_VM and no new stack: fork semantics; the new child exits at once.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        match pid {
            // SAFETY: ends the grandchild.
            0 => unsafe { libc::_exit(0) },
            pid if pid > 0 => {
                // SAFETY: reaps our own child.
                unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
                0
            }
            _ => Errno::last() as i32,
        }
    };
    assert_eq!(filtered(&unprivileged(), clone_user), EPERM);
    assert_eq!(filtered(&privileged(), clone_user), in_child(clone_user));
}

#[test]
fn other_namespaces_are_denied_unless_privileged_too() {
    let unshare_mount = || {
        // SAFETY: integer argument only; a private mount namespace of a dying child.
        errno_of(unsafe { libc::unshare(libc::CLONE_NEWNS) } as libc::c_long)
    };
    assert_eq!(filtered(&unprivileged(), unshare_mount), EPERM);
    assert_eq!(
        filtered(&privileged(), unshare_mount),
        in_child(unshare_mount)
    );
}

#[test]
fn fork_still_works_under_the_filter() {
    let fork_and_reap = || {
        // SAFETY: the grandchild `_exit`s at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe { libc::_exit(7) }
        }
        if pid < 0 {
            return Errno::last() as i32;
        }
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        libc::WEXITSTATUS(status)
    };
    assert_eq!(filtered(&unprivileged(), fork_and_reap), End::Exited(7));
}

#[test]
fn clone3_is_enosys_so_libc_falls_back_to_clone() {
    // SAFETY: a null clone_args with size 0 is rejected by the kernel (EINVAL/EFAULT) if the
    // filter lets it through.
    let clone3 = || errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) });
    assert_ne!(in_child(clone3), ENOSYS, "the kernel has clone3");
    assert_eq!(filtered(&unprivileged(), clone3), ENOSYS);
    assert_eq!(filtered(&privileged(), clone3), ENOSYS);
}

#[test]
fn terminal_injection_ioctls_are_denied() {
    let ioctl = |request: u64| {
        move || {
            let mut byte = 0u8;
            // SAFETY: fd -1 is never valid, so the kernel answers EBADF if the filter does not.
            errno_of(unsafe { libc::syscall(libc::SYS_ioctl, -1, request, &mut byte) })
        }
    };
    let filter = unprivileged();
    assert_eq!(filtered(&filter, ioctl(0x5412)), EPERM, "TIOCSTI");
    assert_eq!(filtered(&filter, ioctl(0x541C)), EPERM, "TIOCLINUX");
    // The kernel reads the request as 32 bits, so high bits must not slip past the filter.
    assert_eq!(
        filtered(&filter, ioctl(0xdead_0000_0000_5412)),
        EPERM,
        "TIOCSTI with high bits"
    );
    assert_eq!(
        filtered(&filter, ioctl(libc::FIONREAD)),
        End::Exited(libc::EBADF),
        "FIONREAD is allowed"
    );
    assert_eq!(filtered(&privileged(), ioctl(0x5412)), EPERM, "privileged");
}

#[test]
fn only_common_personalities_are_allowed() {
    let personality = |value: u32| {
        // SAFETY: integer argument only.
        move || errno_of(unsafe { libc::syscall(libc::SYS_personality, value) })
    };
    let filter = unprivileged();
    assert_eq!(filtered(&filter, personality(0xffff_ffff)), OK, "query");
    assert_eq!(filtered(&filter, personality(0)), OK, "PER_LINUX");
    assert_eq!(filtered(&filter, personality(0x0008)), OK, "PER_LINUX32");
    assert_eq!(
        filtered(&filter, personality(0x0004_0000)),
        EPERM,
        "ADDR_NO_RANDOMIZE"
    );
    assert_eq!(
        filtered(&filter, personality(0x0040_0000)),
        EPERM,
        "READ_IMPLIES_EXEC"
    );
}

#[test]
fn ordinary_syscalls_still_work() {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let write_and_getpid = || {
        // SAFETY: a valid fd and a 5-byte buffer.
        let written = unsafe { libc::write(fds[1], b"hello".as_ptr().cast(), 5) };
        if written != 5 {
            return 1;
        }
        // SAFETY: no arguments.
        if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
            return 2;
        }
        0
    };
    assert_eq!(filtered(&unprivileged(), write_and_getpid), OK);
    let mut buf = [0u8; 5];
    // SAFETY: reads into a 5-byte buffer.
    assert_eq!(unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 5) }, 5);
    assert_eq!(&buf, b"hello");
    // SAFETY: our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn calls_outside_the_table_get_the_kernels_own_answer() {
    // ptrace is a lab's strace; pivot_root is the runtime's, before it installs the filter.
    // SAFETY: an unknown request on no process; null paths. The kernel rejects both.
    let ptrace = || errno_of(unsafe { libc::syscall(libc::SYS_ptrace, 0x7fff, 0, 0, 0) });
    let pivot_root = || syscall0(libc::SYS_pivot_root);
    for filter in [unprivileged(), privileged()] {
        assert_eq!(filtered(&filter, ptrace), in_child(ptrace), "ptrace");
        assert_eq!(
            filtered(&filter, pivot_root),
            in_child(pivot_root),
            "pivot_root"
        );
    }
}

#[test]
fn x32_syscalls_are_denied() {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    let x32_getpid = || syscall0(X32_SYSCALL_BIT | libc::SYS_getpid);
    let without = in_child(x32_getpid);
    eprintln!("x32 getpid without the filter: {without:?} (ENOSYS = no x32 support)");
    assert_eq!(filtered(&unprivileged(), x32_getpid), EPERM);
    assert_eq!(filtered(&privileged(), x32_getpid), EPERM);

    // A negative number is no syscall at all: the kernel answers ENOSYS itself.
    assert_eq!(filtered(&unprivileged(), || syscall0(-1)), ENOSYS);
}

/// An i386 syscall through `int 0x80`, from this 64-bit process. Returns the kernel's raw
/// answer: the result, or -errno.
fn int80(nr: u32, a0: u32, a1: u32, a2: u32) -> i32 {
    let ret: u64;
    // SAFETY: `int 0x80` reads eax, ebx, ecx, edx and writes eax; r8-r11 are declared clobbered
    // for kernels that zero them. rbx is reserved by LLVM, so it is swapped in and out.
    unsafe {
        core::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) u64::from(a0) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(a1),
            in("rdx") u64::from(a2),
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    ret as i32
}

fn i386_errno(nr: u32, a0: u32, a1: u32, a2: u32) -> i32 {
    let ret = int80(nr, a0, a1, a2);
    if ret < 0 { -ret } else { 0 }
}

/// Whether the kernel runs i386 syscalls (IA32 emulation), probed with getpid (20).
fn ia32_emulation() -> bool {
    // SAFETY: no arguments.
    let pid = unsafe { libc::getpid() };
    let answer = int80(20, 0, 0, 0);
    if answer == pid {
        return true;
    }
    assert_eq!(answer, -libc::ENOSYS, "int 0x80 getpid");
    eprintln!("IA32 emulation is off in this kernel: the i386 ABI cannot be reached, not tested");
    false
}

#[test]
fn i386_syscalls_get_the_same_rules() {
    if !ia32_emulation() {
        return;
    }
    let (unprivileged, privileged) = (unprivileged(), privileged());

    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 0) is keyctl = 288 on i386.
    let keyctl = || i386_errno(288, 0, -2i32 as u32, 0);
    assert_ne!(in_child(keyctl), EPERM, "the kernel itself allows it");
    assert_eq!(filtered(&unprivileged, keyctl), EPERM);

    // The always-denied list by i386 number: keyctl, add_key, request_key, bpf, init_module,
    // finit_module, delete_module, kexec_load, clock_settime, clock_settime64, clock_adjtime,
    // clock_adjtime64, settimeofday, adjtimex, stime, open_by_handle_at, name_to_handle_at,
    // perf_event_open, userfaultfd, swapon, swapoff, reboot, acct, quotactl, quotactl_fd,
    // lookup_dcookie, nfsservctl, iopl, ioperm, vm86, vm86old, syslog.
    for nr in [
        288, 286, 287, 357, 128, 350, 129, 283, 264, 404, 343, 405, 79, 124, 25, 342, 341, 336,
        374, 87, 115, 88, 51, 131, 443, 253, 169, 110, 101, 166, 113, 103,
    ] {
        for filter in [&unprivileged, &privileged] {
            assert_eq!(
                filtered(filter, || i386_errno(nr, 0, 0, 0)),
                EPERM,
                "i386 {nr}"
            );
        }
    }

    // mount, umount2, umount, setns, fsopen: privileged cells only.
    for nr in [21, 52, 22, 346, 430] {
        let call = || i386_errno(nr, 0, 0, 0);
        assert_eq!(filtered(&unprivileged, call), EPERM, "i386 {nr}");
        assert_eq!(filtered(&privileged, call), in_child(call), "i386 {nr}");
    }

    // unshare (310) and clone (120) with CLONE_NEWUSER; clone's flags are argument 0 on i386.
    let unshare_user = || i386_errno(310, libc::CLONE_NEWUSER as u32, 0, 0);
    assert_eq!(filtered(&unprivileged, unshare_user), EPERM);
    assert_eq!(filtered(&privileged, unshare_user), in_child(unshare_user));
    let clone_user = || {
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u32;
        match int80(120, flags, 0, 0) {
            // SAFETY: ends the grandchild.
            0 => unsafe { libc::_exit(0) },
            pid if pid > 0 => {
                // SAFETY: reaps our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                0
            }
            error => -error,
        }
    };
    assert_eq!(filtered(&unprivileged, clone_user), EPERM);

    // clone3 (435): ENOSYS. ioctl (54) TIOCSTI: EPERM. personality (136): common values only.
    assert_eq!(filtered(&unprivileged, || i386_errno(435, 0, 0, 0)), ENOSYS);
    let tiocsti = || i386_errno(54, u32::MAX, 0x5412, 0);
    assert_eq!(filtered(&unprivileged, tiocsti), EPERM);
    assert_eq!(
        filtered(&unprivileged, || i386_errno(136, 0x0004_0000, 0, 0)),
        EPERM
    );
    assert_eq!(
        filtered(&unprivileged, || i386_errno(136, 0xffff_ffff, 0, 0)),
        OK
    );

    // getpid (20) and write (4) of zero bytes to fd 1: allowed.
    assert_eq!(filtered(&unprivileged, || i386_errno(20, 0, 0, 0)), OK);
    assert_eq!(filtered(&unprivileged, || i386_errno(4, 1, 0, 0)), OK);
}

/// A `/proc/<pid>/status` capability line, such as `CapEff`, as a mask.
fn status_mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{field} in status"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// Capability tests need root holding Docker's default set; say so and skip otherwise.
fn can_drop_capabilities() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let permitted = CapSet(status_mask(&status, "CapPrm"));
    let bounding = CapSet(status_mask(&status, "CapBnd"));
    let docker = CapSet::DOCKER_DEFAULT;
    let held = nix::unistd::geteuid().is_root()
        && permitted.intersection(docker) == docker
        && bounding.intersection(docker) == docker;
    if !held {
        eprintln!("not root with Docker's default capabilities: capability drops not tested");
    }
    held
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    fds
}

fn close(fd: libc::c_int) {
    // SAFETY: closes our own descriptor.
    unsafe { libc::close(fd) };
}

#[test]
fn apply_leaves_exactly_the_kept_set() {
    if !can_drop_capabilities() {
        return;
    }
    let plan = CapPlan::new(CapSet::DOCKER_DEFAULT);
    let _turn = fork_turn();
    let (applied, proceed) = (pipe(), pipe());
    let pid = fork_child(|| {
        let code = if plan.apply().is_ok() {
            0
        } else {
            APPLY_FAILED
        };
        let mut byte = 0u8;
        // SAFETY: one byte to and from our own pipes; the parent looks at us in between.
        unsafe {
            libc::write(applied[1], [code as u8].as_ptr().cast(), 1);
            libc::read(proceed[0], (&mut byte as *mut u8).cast(), 1);
        }
        code
    });
    let mut code = 0u8;
    // SAFETY: reads one byte into `code`.
    assert_eq!(
        unsafe { libc::read(applied[0], (&mut code as *mut u8).cast(), 1) },
        1
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // SAFETY: writes one byte to our own pipe.
    unsafe { libc::write(proceed[1], b"x".as_ptr().cast(), 1) };
    assert_eq!(wait_for(pid), OK);
    for fd in applied.into_iter().chain(proceed) {
        close(fd);
    }

    let docker = CapSet::DOCKER_DEFAULT.0;
    assert_eq!(status_mask(&status, "CapEff"), docker, "{status}");
    assert_eq!(status_mask(&status, "CapPrm"), docker);
    assert_eq!(status_mask(&status, "CapBnd"), docker);
    assert_eq!(status_mask(&status, "CapInh"), 0);
    assert_eq!(status_mask(&status, "CapAmb"), 0);
}

#[test]
fn root_keeps_the_set_across_execve() {
    if !can_drop_capabilities() {
        return;
    }
    let plan = CapPlan::new(CapSet::DOCKER_DEFAULT);
    let cat = CString::new("/bin/cat").unwrap();
    let status_path = CString::new("/proc/self/status").unwrap();
    let argv = [cat.as_ptr(), status_path.as_ptr(), std::ptr::null()];
    let _turn = fork_turn();
    let out = pipe();
    let pid = fork_child(|| {
        if plan.apply().is_err() {
            return APPLY_FAILED;
        }
        // SAFETY: fd juggling and execv on strings prepared before the fork.
        unsafe {
            libc::dup2(out[1], 1);
            libc::execv(cat.as_ptr(), argv.as_ptr());
        }
        127
    });
    close(out[1]);
    // SAFETY: `out[0]` is ours, and the file is its only owner from here on.
    let mut reader = unsafe { std::fs::File::from_raw_fd(out[0]) };
    let mut status = String::new();
    reader.read_to_string(&mut status).unwrap();
    assert_eq!(wait_for(pid), OK);

    assert_eq!(status_mask(&status, "CapEff"), CapSet::DOCKER_DEFAULT.0);
    assert_eq!(status_mask(&status, "CapPrm"), CapSet::DOCKER_DEFAULT.0);
    assert_eq!(status_mask(&status, "CapBnd"), CapSet::DOCKER_DEFAULT.0);
}

/// Runs `body` in a child with only `keep`, inside a private mount namespace of its own (made
/// before the drop), so that a mount that should fail cannot reach the host if it succeeds.
fn with_caps(keep: CapSet, body: impl FnOnce() -> i32) -> End {
    let plan = CapPlan::new(keep);
    in_child(|| {
        // SAFETY: a new mount namespace for this child, made private; null-terminated literals.
        let isolated = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
        };
        if !isolated {
            return APPLY_FAILED;
        }
        if plan.apply().is_err() {
            return APPLY_FAILED;
        }
        body()
    })
}

#[test]
fn capabilities_outside_the_set_are_gone() {
    if !can_drop_capabilities() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    let mount_tmpfs = || {
        // SAFETY: C strings prepared before the fork.
        errno_of(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        } as libc::c_long)
    };
    // SAFETY: integer argument only.
    let unshare_uts = || errno_of(unsafe { libc::unshare(libc::CLONE_NEWUTS) } as libc::c_long);

    // CAP_SYS_ADMIN is not in Docker's set.
    assert_eq!(with_caps(CapSet::DOCKER_DEFAULT, mount_tmpfs), EPERM);
    assert_eq!(with_caps(CapSet::DOCKER_DEFAULT, unshare_uts), EPERM);
    // ...and with every capability kept, both work.
    let everything = CapSet::all();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let held = everything.intersection(CapSet(status_mask(&status, "CapPrm")));
    assert_eq!(with_caps(held, mount_tmpfs), OK);
    assert_eq!(with_caps(held, unshare_uts), OK);
}

#[test]
fn chown_works_with_cap_chown_and_fails_without() {
    if !can_drop_capabilities() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned");
    std::fs::write(&file, "").unwrap();
    let path = CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    let chown = || {
        // SAFETY: a C string prepared before the fork.
        errno_of(unsafe { libc::chown(path.as_ptr(), 4242, 4242) } as libc::c_long)
    };

    assert_eq!(with_caps(CapSet::EMPTY, chown), EPERM);
    assert_eq!(with_caps(CapSet::DOCKER_DEFAULT, chown), OK);
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&file).unwrap());
    assert_eq!(owner, 4242);
}
