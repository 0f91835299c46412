//! The default seccomp filter: a classic-BPF program, compiled in the parent, that denies the
//! syscalls a lab never needs on every x86 syscall ABI, and its async-signal-safe installation.
//!
//! The policy is one table, [`SYSCALLS`]: a row per syscall with its x86_64 and i386 numbers
//! side by side and what the filter does with it. Anything not in the table is allowed.
//!
//! The compiled program, in order:
//!
//! 1. Load `arch`. `AUDIT_ARCH_X86_64` and `AUDIT_ARCH_I386` (reached with `int 0x80` even
//!    from a 64-bit process) each get their own section; any other value kills the process
//!    (`SECCOMP_RET_KILL_PROCESS`): there is no other ABI on an x86_64 kernel, so it is a bug.
//! 2. In the x86_64 section, a number with the x32 bit (`0x4000_0000`) set is an x32 call:
//!    denied with `EPERM`, all of them. Labs run x86_64 (and at most i386) binaries; mapping
//!    x32 onto the table would double the rules for an ABI most kernels leave disabled.
//!    Negative numbers (top bit set) are allowed through: they are no syscall, the kernel
//!    answers `ENOSYS` itself, and a tracer uses -1 to skip a call.
//! 3. A search over the table's rows for that ABI, sorted by number: `nr >=` tests halve
//!    them down to a few `nr ==` tests, each jumping to a shared `EPERM` / `ENOSYS` return
//!    or to a short argument check; a number no row has is allowed. The kernel runs the
//!    program for every syscall number when the filter is installed (see `bpf::search`), so
//!    each shell's start pays for its depth more than for its length.
//!
//! The program never looks at arguments before it has matched a syscall number, so the
//! kernel's per-syscall action cache (5.11+) answers every syscall the table does not mention
//! without running the program at all.
//!
//! Argument checks read only the low 32 bits of an argument. That is exact for every checked
//! argument: the kernel itself truncates clone's flags, `ioctl`'s request and `personality`'s
//! value to 32 bits, and rejects `unshare` flags above them with `EINVAL`.

use nix::errno::Errno;

/// A compiled filter, ready to install after fork.
///
/// Building it allocates and so happens in the parent; [`Filter::install`] only reads it.
#[derive(Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .finish()
    }
}

impl Filter {
    /// labrun's default filter, in the spirit of Docker's default profile: [`SYSCALLS`] as
    /// described in the module docs. `privileged` relaxes only what a privileged cell needs:
    /// the mount family, `setns`, and namespace flags (user namespaces included) in `clone` and
    /// `unshare`. Everything else in the table is denied in both kinds of cell.
    ///
    /// On hosts other than x86_64 the filter is empty and [`Filter::install`] refuses it.
    pub fn default_for(privileged: bool) -> Filter {
        Filter {
            program: compile(privileged),
        }
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether there is no program at all (only on hosts that are not x86_64).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Installs the filter on the calling thread. The thread needs `PR_SET_NO_NEW_PRIVS` (see
    /// [`no_new_privs`]) or `CAP_SYS_ADMIN`. An empty filter is refused with `ENOSYS`, so that
    /// a host without a filter fails loudly instead of running a lab unfiltered.
    ///
    /// Async-signal-safe: one `seccomp(2)` call on data built beforehand; no allocation.
    pub fn install(&self) -> Result<(), Errno> {
        if self.program.is_empty() {
            return Err(Errno::ENOSYS);
        }
        let fprog = libc::sock_fprog {
            // `compile` keeps the program within BPF_MAXINSNS, so this cannot truncate.
            len: self.program.len() as libc::c_ushort,
            // The kernel only reads the program; `sock_fprog` merely spells the pointer `*mut`.
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `len` valid instructions that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }
}

/// Sets `PR_SET_NO_NEW_PRIVS` on the calling thread: from now on `execve` never grants
/// privileges (setuid bits, file capabilities), and an unprivileged thread may install a filter.
/// Async-signal-safe.
pub fn no_new_privs() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// What the filter does with one syscall.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// `EPERM` in every cell.
    Deny,
    /// `EPERM` unless the cell is privileged.
    DenyUnlessPrivileged,
    /// `ENOSYS` in every cell, so that libc falls back to an older call whose arguments the
    /// filter can inspect (`clone3` passes its flags in memory, out of a filter's reach).
    NoSys,
    /// `EPERM` when argument `arg` has any bit of `mask` set, unless the cell is privileged.
    DenyBitsUnlessPrivileged { arg: usize, mask: u32 },
    /// `EPERM` when argument `arg` is one of `values`, in every cell.
    DenyValues { arg: usize, values: &'static [u32] },
    /// `EPERM` unless argument `arg` is one of `values`, in every cell.
    AllowOnlyValues { arg: usize, values: &'static [u32] },
}

/// One row of the policy: a syscall, its number in each ABI (`None`: the ABI lacks it), and
/// its rule.
#[derive(Debug, Clone, Copy)]
pub struct Syscall {
    pub name: &'static str,
    pub x86_64: Option<u32>,
    pub i386: Option<u32>,
    pub rule: Rule,
}

const fn row(name: &'static str, x86_64: u32, i386: u32, rule: Rule) -> Syscall {
    Syscall {
        name,
        x86_64: Some(x86_64),
        i386: Some(i386),
        rule,
    }
}

const fn x86_64_only(name: &'static str, x86_64: u32, rule: Rule) -> Syscall {
    Syscall {
        name,
        x86_64: Some(x86_64),
        i386: None,
        rule,
    }
}

const fn i386_only(name: &'static str, i386: u32, rule: Rule) -> Syscall {
    Syscall {
        name,
        x86_64: None,
        i386: Some(i386),
        rule,
    }
}

/// Namespace-creating flags of `clone` (whose low byte is the exit signal, so no
/// `CLONE_NEWTIME` there): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
pub const CLONE_NAMESPACE_FLAGS: u32 = 0x7E02_0000;
/// Namespace-creating flags of `unshare`: those of `clone` plus `CLONE_NEWTIME` (0x80).
pub const UNSHARE_NAMESPACE_FLAGS: u32 = CLONE_NAMESPACE_FLAGS | 0x80;
/// `ioctl` requests that push input into, or reconfigure, a terminal someone else reads.
pub const DENIED_IOCTLS: &[u32] = &[0x5412 /* TIOCSTI */, 0x541C /* TIOCLINUX */];
/// `personality` values a lab may set: PER_LINUX, PER_LINUX32, UNAME26, both, and the query.
pub const ALLOWED_PERSONALITIES: &[u32] = &[0, 0x0008, 0x0002_0000, 0x0002_0008, 0xFFFF_FFFF];

/// The policy. Numbers are from the kernel's `syscall_64.tbl` and `syscall_32.tbl` (checked
/// against the system headers by a unit test). Unprivileged cells lack `CAP_SYS_ADMIN` anyway,
/// so the mount family, `setns` and namespace flags are denied twice there; the filter is the
/// layer that still holds if a capability leaks.
pub const SYSCALLS: &[Syscall] = &[
    // Kernel keyring: not namespaced, shared with the host.
    row("keyctl", 250, 288, Rule::Deny),
    row("add_key", 248, 286, Rule::Deny),
    row("request_key", 249, 287, Rule::Deny),
    // eBPF, perf and userfaultfd: large kernel attack surface, nothing a lab needs.
    row("bpf", 321, 357, Rule::Deny),
    row("perf_event_open", 298, 336, Rule::Deny),
    row("userfaultfd", 323, 374, Rule::Deny),
    // Kernel modules and kexec.
    row("init_module", 175, 128, Rule::Deny),
    row("finit_module", 313, 350, Rule::Deny),
    row("delete_module", 176, 129, Rule::Deny),
    row("kexec_load", 246, 283, Rule::Deny),
    x86_64_only("kexec_file_load", 320, Rule::Deny),
    // The clock is the host's.
    row("clock_settime", 227, 264, Rule::Deny),
    i386_only("clock_settime64", 404, Rule::Deny),
    row("clock_adjtime", 305, 343, Rule::Deny),
    i386_only("clock_adjtime64", 405, Rule::Deny),
    row("settimeofday", 164, 79, Rule::Deny),
    row("adjtimex", 159, 124, Rule::Deny),
    i386_only("stime", 25, Rule::Deny),
    // File handles bypass the mount namespace (the "shocker" escape).
    row("open_by_handle_at", 304, 342, Rule::Deny),
    row("name_to_handle_at", 303, 341, Rule::Deny),
    // Host-wide administration.
    row("swapon", 167, 87, Rule::Deny),
    row("swapoff", 168, 115, Rule::Deny),
    row("reboot", 169, 88, Rule::Deny),
    row("acct", 163, 51, Rule::Deny),
    row("quotactl", 179, 131, Rule::Deny),
    row("quotactl_fd", 443, 443, Rule::Deny),
    row("lookup_dcookie", 212, 253, Rule::Deny),
    row("nfsservctl", 180, 169, Rule::Deny),
    row("syslog", 103, 103, Rule::Deny),
    // Direct hardware access and virtual-8086 mode.
    row("iopl", 172, 110, Rule::Deny),
    row("ioperm", 173, 101, Rule::Deny),
    i386_only("vm86", 166, Rule::Deny),
    i386_only("vm86old", 113, Rule::Deny),
    // The mount family and joining namespaces: privileged cells only. (pivot_root stays
    // allowed: the runtime calls it before installing the filter.)
    row("mount", 165, 21, Rule::DenyUnlessPrivileged),
    row("umount2", 166, 52, Rule::DenyUnlessPrivileged),
    i386_only("umount", 22, Rule::DenyUnlessPrivileged),
    row("open_tree", 428, 428, Rule::DenyUnlessPrivileged),
    row("move_mount", 429, 429, Rule::DenyUnlessPrivileged),
    row("fsopen", 430, 430, Rule::DenyUnlessPrivileged),
    row("fsconfig", 431, 431, Rule::DenyUnlessPrivileged),
    row("fsmount", 432, 432, Rule::DenyUnlessPrivileged),
    row("fspick", 433, 433, Rule::DenyUnlessPrivileged),
    row("mount_setattr", 442, 442, Rule::DenyUnlessPrivileged),
    row("open_tree_attr", 467, 467, Rule::DenyUnlessPrivileged),
    row("setns", 308, 346, Rule::DenyUnlessPrivileged),
    // New namespaces (a user namespace above all: it hands out a full capability set):
    // privileged cells only. clone's flags are argument 0 on x86_64 and on i386.
    row(
        "clone",
        56,
        120,
        Rule::DenyBitsUnlessPrivileged {
            arg: 0,
            mask: CLONE_NAMESPACE_FLAGS,
        },
    ),
    row(
        "unshare",
        272,
        310,
        Rule::DenyBitsUnlessPrivileged {
            arg: 0,
            mask: UNSHARE_NAMESPACE_FLAGS,
        },
    ),
    row("clone3", 435, 435, Rule::NoSys),
    // Typing into the controlling terminal (TIOCSTI) or poking the console (TIOCLINUX).
    row(
        "ioctl",
        16,
        54,
        Rule::DenyValues {
            arg: 1,
            values: DENIED_IOCTLS,
        },
    ),
    // Execution domains other than Linux's own (e.g. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE).
    row(
        "personality",
        135,
        136,
        Rule::AllowOnlyValues {
            arg: 0,
            values: ALLOWED_PERSONALITIES,
        },
    ),
];

#[cfg(not(target_arch = "x86_64"))]
fn compile(_privileged: bool) -> Vec<libc::sock_filter> {
    Vec::new()
}

#[cfg(target_arch = "x86_64")]
fn compile(privileged: bool) -> Vec<libc::sock_filter> {
    bpf::compile(privileged)
}

/// The compiler from [`SYSCALLS`] to classic BPF, and the few BPF words it needs.
#[cfg(target_arch = "x86_64")]
mod bpf {
    use super::{Rule, SYSCALLS};

    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const NEGATIVE_SYSCALL: u32 = 0x8000_0000;

    const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    const NR_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
    const ARCH_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, arch) as u32;

    /// Where the low 32 bits of argument `arg` sit (x86 is little-endian).
    fn arg_low_offset(arg: usize) -> u32 {
        assert!(arg < 6, "seccomp sees six arguments");
        (std::mem::offset_of!(libc::seccomp_data, args) + 8 * arg) as u32
    }

    /// Rows a branch of the search tests one by one.
    const SEARCH_LEAF: usize = 4;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Abi {
        X86_64,
        I386,
    }

    pub(super) fn compile(privileged: bool) -> Vec<libc::sock_filter> {
        let mut p = Program::default();
        let x86_64 = p.label();
        let i386 = p.label();
        p.load(ARCH_OFFSET);
        p.jump(JEQ, AUDIT_ARCH_X86_64, To::Label(x86_64), To::Next);
        p.jump(JEQ, AUDIT_ARCH_I386, To::Label(i386), To::Next);
        p.ret(KILL);
        p.bind(x86_64);
        p.abi_section(Abi::X86_64, privileged);
        p.bind(i386);
        p.abi_section(Abi::I386, privileged);
        p.assemble()
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct Label(usize);

    #[derive(Clone, Copy)]
    enum To {
        Next,
        Label(Label),
    }

    enum Insn {
        Statement { code: u16, k: u32 },
        Jump { code: u16, k: u32, yes: To, no: To },
        Bind(Label),
    }

    /// A BPF program with symbolic forward jumps, resolved by `assemble`.
    #[derive(Default)]
    struct Program {
        insns: Vec<Insn>,
        labels: usize,
    }

    impl Program {
        fn label(&mut self) -> Label {
            self.labels += 1;
            Label(self.labels - 1)
        }

        fn bind(&mut self, label: Label) {
            self.insns.push(Insn::Bind(label));
        }

        fn load(&mut self, offset: u32) {
            self.insns.push(Insn::Statement {
                code: LOAD_WORD,
                k: offset,
            });
        }

        fn ret(&mut self, action: u32) {
            self.insns.push(Insn::Statement {
                code: RETURN,
                k: action,
            });
        }

        fn jump(&mut self, code: u16, k: u32, yes: To, no: To) {
            self.insns.push(Insn::Jump { code, k, yes, no });
        }

        /// The rules of one ABI: a search tree over the syscall numbers the table names,
        /// then the argument checks, then the shared returns.
        fn abi_section(&mut self, abi: Abi, privileged: bool) {
            let allow = self.label();
            let eperm = self.label();
            let enosys = self.label();
            let x32 = (abi == Abi::X86_64).then(|| self.label());
            let mut argument_checks = Vec::new();
            let mut rows: Vec<(u32, Label)> = Vec::new();

            self.load(NR_OFFSET);
            if let Some(x32) = x32 {
                self.jump(JGE, X32_SYSCALL_BIT, To::Label(x32), To::Next);
            }
            for syscall in SYSCALLS {
                let number = match abi {
                    Abi::X86_64 => syscall.x86_64,
                    Abi::I386 => syscall.i386,
                };
                let Some(number) = number else { continue };
                let target = match syscall.rule {
                    Rule::Deny => eperm,
                    Rule::NoSys => enosys,
                    Rule::DenyUnlessPrivileged | Rule::DenyBitsUnlessPrivileged { .. }
                        if privileged =>
                    {
                        continue;
                    }
                    Rule::DenyUnlessPrivileged => eperm,
                    Rule::DenyBitsUnlessPrivileged { .. }
                    | Rule::DenyValues { .. }
                    | Rule::AllowOnlyValues { .. } => {
                        let check = self.label();
                        argument_checks.push((check, syscall.rule));
                        check
                    }
                };
                rows.push((number, target));
            }
            rows.sort_by_key(|&(number, _)| number);
            self.search(&rows);

            for (check, rule) in argument_checks {
                self.bind(check);
                self.argument_check(rule, allow, eperm);
            }
            if let Some(x32) = x32 {
                self.bind(x32);
                self.jump(JGE, NEGATIVE_SYSCALL, To::Label(allow), To::Label(eperm));
            }
            self.bind(allow);
            self.ret(ALLOW);
            self.bind(eperm);
            self.ret(EPERM);
            self.bind(enosys);
            self.ret(ENOSYS);
        }

        /// Sends the loaded syscall number to its row's target, or allows it: halves the
        /// sorted `rows` with `>=` tests down to a few, then tests those for equality. The
        /// kernel runs the program once per syscall number when the filter is installed (to
        /// fill its cache of always-allowed calls), so the depth counts for more than the
        /// length: installing a chain of every row took 0.24 ms here, this tree 0.17 ms.
        fn search(&mut self, rows: &[(u32, Label)]) {
            if rows.len() <= SEARCH_LEAF {
                for &(number, target) in rows {
                    self.jump(JEQ, number, To::Label(target), To::Next);
                }
                self.ret(ALLOW);
                return;
            }
            let (low, high) = rows.split_at(rows.len() / 2);
            let upper = self.label();
            self.jump(JGE, high[0].0, To::Label(upper), To::Next);
            self.search(low);
            self.bind(upper);
            self.search(high);
        }

        fn argument_check(&mut self, rule: Rule, allow: Label, eperm: Label) {
            match rule {
                Rule::DenyBitsUnlessPrivileged { arg, mask } => {
                    self.load(arg_low_offset(arg));
                    self.jump(JSET, mask, To::Label(eperm), To::Label(allow));
                }
                Rule::DenyValues { arg, values } => {
                    self.load(arg_low_offset(arg));
                    for &value in values {
                        self.jump(JEQ, value, To::Label(eperm), To::Next);
                    }
                    self.ret(ALLOW);
                }
                Rule::AllowOnlyValues { arg, values } => {
                    self.load(arg_low_offset(arg));
                    for &value in values {
                        self.jump(JEQ, value, To::Label(allow), To::Next);
                    }
                    self.ret(EPERM);
                }
                Rule::Deny | Rule::DenyUnlessPrivileged | Rule::NoSys => {
                    unreachable!("{rule:?} needs no argument check")
                }
            }
        }

        /// Resolves labels to the forward offsets classic BPF jumps take.
        fn assemble(self) -> Vec<libc::sock_filter> {
            let mut position = vec![None; self.labels];
            let mut count = 0;
            for insn in &self.insns {
                match insn {
                    Insn::Bind(label) => position[label.0] = Some(count),
                    _ => count += 1,
                }
            }
            assert!(
                count <= libc::BPF_MAXINSNS as usize,
                "seccomp program too long: {count}"
            );
            let offset = |from: usize, to: To| -> u8 {
                let to = match to {
                    To::Next => return 0,
                    To::Label(label) => position[label.0].expect("every label is bound"),
                };
                let distance = to.checked_sub(from + 1).expect("BPF jumps go forward only");
                u8::try_from(distance).expect("BPF conditional jumps reach 255 instructions")
            };
            let mut program = Vec::with_capacity(count);
            for insn in &self.insns {
                let here = program.len();
                match *insn {
                    Insn::Bind(_) => {}
                    Insn::Statement { code, k } => program.push(libc::sock_filter {
                        code,
                        jt: 0,
                        jf: 0,
                        k,
                    }),
                    Insn::Jump { code, k, yes, no } => program.push(libc::sock_filter {
                        code,
                        jt: offset(here, yes),
                        jf: offset(here, no),
                        k,
                    }),
                }
            }
            program
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `__NR_<name>` numbers from a kernel uapi `unistd_*.h`.
    fn header_numbers(path: &str) -> Option<std::collections::HashMap<String, u32>> {
        let text = std::fs::read_to_string(path).ok()?;
        let numbers = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next()? == "#define").then_some(())?;
                let name = words.next()?.strip_prefix("__NR_")?;
                let number = words.next()?.parse().ok()?;
                Some((name.to_string(), number))
            })
            .collect();
        Some(numbers)
    }

    fn check_against_header(path: &str, number_of: fn(&Syscall) -> Option<u32>) {
        let Some(header) = header_numbers(path) else {
            eprintln!("{path} is missing; syscall numbers not cross-checked");
            return;
        };
        let mut checked = 0;
        for syscall in SYSCALLS {
            let Some(ours) = number_of(syscall) else {
                continue;
            };
            match header.get(syscall.name) {
                Some(&theirs) => {
                    assert_eq!(ours, theirs, "{} in {path}", syscall.name);
                    checked += 1;
                }
                None => eprintln!("{} is newer than {path}; not cross-checked", syscall.name),
            }
        }
        assert!(checked > 40, "only {checked} syscalls found in {path}");
    }

    #[test]
    fn x86_64_numbers_match_the_system_header() {
        check_against_header("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", |s| {
            s.x86_64
        });
    }

    #[test]
    fn i386_numbers_match_the_system_header() {
        check_against_header("/usr/include/x86_64-linux-gnu/asm/unistd_32.h", |s| s.i386);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers_match_libc() {
        for (name, number) in [
            ("keyctl", libc::SYS_keyctl),
            ("bpf", libc::SYS_bpf),
            ("mount", libc::SYS_mount),
            ("clone", libc::SYS_clone),
            ("unshare", libc::SYS_unshare),
            ("clone3", libc::SYS_clone3),
            ("ioctl", libc::SYS_ioctl),
            ("personality", libc::SYS_personality),
            ("setns", libc::SYS_setns),
            ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ] {
            let row = SYSCALLS.iter().find(|s| s.name == name).expect(name);
            assert_eq!(row.x86_64, Some(number as u32), "{name}");
        }
    }

    #[test]
    fn every_syscall_is_listed_once() {
        let mut names: Vec<_> = SYSCALLS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    /// Runs a seccomp program on one call as the kernel does; returns the action and how
    /// many instructions ran.
    #[cfg(target_arch = "x86_64")]
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => nr,
                4 => arch,
                16..=63 => {
                    let arg = args[(offset as usize - 16) / 8];
                    if offset.is_multiple_of(8) {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                _ => panic!("load of offset {offset}"),
            }
        };
        let (mut pc, mut a, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let insn = program[pc];
            steps += 1;
            let class = u32::from(insn.code);
            let taken = |yes: bool| if yes { insn.jt } else { insn.jf } as usize;
            pc += 1;
            match class {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = word(insn.k),
                c if c == libc::BPF_RET | libc::BPF_K => return (insn.k, steps),
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += taken(a == insn.k),
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += taken(a >= insn.k),
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += taken(a & insn.k != 0)
                }
                _ => panic!("instruction {class:#x} is not one the compiler emits"),
            }
        }
    }

    /// What the table says of one call, read straight from [`SYSCALLS`].
    fn expected(x86_64: bool, nr: u32, args: [u64; 6], privileged: bool) -> u32 {
        let allow = libc::SECCOMP_RET_ALLOW;
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        if x86_64 && nr >= 0x4000_0000 {
            return if nr >= 0x8000_0000 { allow } else { eperm };
        }
        let row = SYSCALLS.iter().find(|s| {
            let number = if x86_64 { s.x86_64 } else { s.i386 };
            number == Some(nr)
        });
        let Some(row) = row else { return allow };
        let low = |arg: usize| args[arg] as u32;
        let verdict = |deny: bool| if deny { eperm } else { allow };
        match row.rule {
            Rule::Deny => eperm,
            Rule::NoSys => enosys,
            Rule::DenyUnlessPrivileged => verdict(!privileged),
            Rule::DenyBitsUnlessPrivileged { arg, mask } => {
                verdict(!privileged && low(arg) & mask != 0)
            }
            Rule::DenyValues { arg, values } => verdict(values.contains(&low(arg))),
            Rule::AllowOnlyValues { arg, values } => verdict(!values.contains(&low(arg))),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_program_does_what_the_table_says_for_every_call() {
        let mut values: Vec<u64> = vec![0, 1, 0xFFFF_FFFF, 0x1_0000_0000, libc::SIGCHLD as u64];
        values.extend(DENIED_IOCTLS.iter().map(|&v| u64::from(v)));
        values.extend(ALLOWED_PERSONALITIES.iter().map(|&v| u64::from(v)));
        values.extend((0..32).map(|bit| 1u64 << bit));
        let mut numbers: Vec<u32> = (0..1100).collect();
        numbers.extend([0x4000_0000, 0x4000_0001, 0x7FFF_FFFF, 0x8000_0000, u32::MAX]);
        let (x86_64, i386) = (0xC000_003E, 0x4000_0003);
        for privileged in [false, true] {
            let program = Filter::default_for(privileged).program;
            for &nr in &numbers {
                for &value in &values {
                    // The checked arguments are 0 and 1; the other slot holds something else.
                    for args in [[value, 0x5412, 0, 0, 0, 0], [0, value, 0, 0, 0, 0]] {
                        for (arch, is_64) in [(x86_64, true), (i386, false)] {
                            let (action, _) = run(&program, arch, nr, args);
                            assert_eq!(
                                action,
                                expected(is_64, nr, args, privileged),
                                "nr {nr} args {args:x?} on {arch:#x}, privileged {privileged}"
                            );
                        }
                    }
                }
                let (other_arch, _) = run(&program, 0x4000_00B7, nr, [0; 6]);
                assert_eq!(other_arch, libc::SECCOMP_RET_KILL_PROCESS);
            }
        }
    }

    /// Installing a filter runs it for every syscall number, so a deep program makes every
    /// shell's start slower (a chain of every row ran up to 70 instructions per number).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_syscall_number_is_decided_within_a_few_instructions() {
        for privileged in [false, true] {
            let program = Filter::default_for(privileged).program;
            for arch in [0xC000_003E, 0x4000_0003] {
                let deepest = (0..1100)
                    .map(|nr| run(&program, arch, nr, [0; 6]).1)
                    .max()
                    .unwrap_or(0);
                // The architecture and number tests, four halvings, four rows, and the
                // longest argument check (personality's five values).
                assert!(
                    deepest <= 20,
                    "{deepest} instructions for one number on {arch:#x}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn both_filters_compile_and_privileged_is_shorter() {
        let unprivileged = Filter::default_for(false);
        let privileged = Filter::default_for(true);
        assert!(!unprivileged.is_empty());
        assert!(privileged.len() < unprivileged.len());
        assert!(unprivileged.len() < 4096);
    }
}
