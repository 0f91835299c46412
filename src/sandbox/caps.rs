//! Linux capabilities: a capability set as a bit mask, Docker's default set, and the
//! async-signal-safe drop of every other capability in a freshly cloned child.
//!
//! What [`CapPlan::apply`] leaves behind, and why:
//!
//! - bounding set = `keep`: nothing outside `keep` can ever come back, not even through a setuid
//!   or file-capability binary;
//! - permitted = effective = `keep`;
//! - inheritable = empty and ambient = empty: nothing is handed to a non-root program across
//!   `execve`. Docker did set inheritable to its default set until that was found to let file
//!   capabilities reach non-root users (CVE-2022-24769); runc and Docker now leave it empty.
//! - securebits untouched. Root inside the cell gets `keep` back at every `execve` because the
//!   kernel treats uid 0 as holding every file capability, capped by the bounding set; setting
//!   `SECBIT_NOROOT` would strip a root shell of everything at its first `execve`. Non-root users
//!   get nothing, as in Docker.

use nix::errno::Errno;

/// Linux capability numbers (`linux/capability.h`), by name.
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const LINUX_IMMUTABLE: u32 = 9;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_BROADCAST: u32 = 11;
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const IPC_LOCK: u32 = 14;
    pub const IPC_OWNER: u32 = 15;
    pub const SYS_MODULE: u32 = 16;
    pub const SYS_RAWIO: u32 = 17;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_PACCT: u32 = 20;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_BOOT: u32 = 22;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const SYS_TIME: u32 = 25;
    pub const SYS_TTY_CONFIG: u32 = 26;
    pub const MKNOD: u32 = 27;
    pub const LEASE: u32 = 28;
    pub const AUDIT_WRITE: u32 = 29;
    pub const AUDIT_CONTROL: u32 = 30;
    pub const SETFCAP: u32 = 31;
    pub const MAC_OVERRIDE: u32 = 32;
    pub const MAC_ADMIN: u32 = 33;
    pub const SYSLOG: u32 = 34;
    pub const WAKE_ALARM: u32 = 35;
    pub const BLOCK_SUSPEND: u32 = 36;
    pub const AUDIT_READ: u32 = 37;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
    pub const CHECKPOINT_RESTORE: u32 = 40;
}

/// Names by capability number; bits the kernel headers do not name yet get their number.
const NAMES: [&str; 64] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_41",
    "CAP_42",
    "CAP_43",
    "CAP_44",
    "CAP_45",
    "CAP_46",
    "CAP_47",
    "CAP_48",
    "CAP_49",
    "CAP_50",
    "CAP_51",
    "CAP_52",
    "CAP_53",
    "CAP_54",
    "CAP_55",
    "CAP_56",
    "CAP_57",
    "CAP_58",
    "CAP_59",
    "CAP_60",
    "CAP_61",
    "CAP_62",
    "CAP_63",
];

/// A set of Linux capabilities as a bit mask (bit n = capability n).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Docker's default set.
    pub const DOCKER_DEFAULT: CapSet = CapSet::of(&[
        cap::CHOWN,
        cap::DAC_OVERRIDE,
        cap::FSETID,
        cap::FOWNER,
        cap::MKNOD,
        cap::NET_RAW,
        cap::SETGID,
        cap::SETUID,
        cap::SETFCAP,
        cap::SETPCAP,
        cap::NET_BIND_SERVICE,
        cap::SYS_CHROOT,
        cap::KILL,
        cap::AUDIT_WRITE,
    ]);

    /// The set of the given capability numbers (each below 64).
    pub const fn of(caps: &[u32]) -> CapSet {
        let mut bits = 0;
        let mut i = 0;
        while i < caps.len() {
            bits |= 1 << caps[i];
            i += 1;
        }
        CapSet(bits)
    }

    /// Capabilities 0 through `last`.
    pub const fn up_to(last: u32) -> CapSet {
        if last >= 63 {
            CapSet(u64::MAX)
        } else {
            CapSet((1 << (last + 1)) - 1)
        }
    }

    /// Every capability the running kernel knows. Not what this process holds: a process
    /// can only keep what its bounding and permitted sets still have.
    pub fn all() -> CapSet {
        CapSet::up_to(last_cap())
    }

    pub const fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub const fn intersection(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    /// The `CAP_*` names of the set, lowest number first.
    pub fn names(&self) -> Vec<&'static str> {
        (0..64)
            .filter(|&n| self.contains(n))
            .map(|n| NAMES[n as usize])
            .collect()
    }
}

/// The highest capability number the running kernel knows: `/proc/sys/kernel/cap_last_cap`,
/// or, without `/proc`, the last number `PR_CAPBSET_READ` accepts.
fn last_cap() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    if let Some(last) = from_proc {
        return last.min(63);
    }
    let mut last = 0;
    // SAFETY: prctl with integer arguments only.
    while last < 63 && unsafe { libc::prctl(libc::PR_CAPBSET_READ, last + 1, 0, 0, 0) } >= 0 {
        last += 1;
    }
    last
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What [`CapPlan::apply`] needs, prepared in the parent (reading the kernel's last
/// capability allocates, so it cannot happen after fork).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapPlan {
    keep: CapSet,
    last_cap: u32,
}

impl CapPlan {
    /// A plan to keep `keep`, less any capability the running kernel does not know.
    pub fn new(keep: CapSet) -> CapPlan {
        let last_cap = last_cap();
        CapPlan {
            keep: keep.intersection(CapSet::up_to(last_cap)),
            last_cap,
        }
    }

    /// The capabilities the plan keeps.
    pub fn keep(&self) -> CapSet {
        self.keep
    }

    /// Drops every capability not in `keep` from the bounding set, clears the ambient set,
    /// then sets permitted and effective to `keep` and inheritable to nothing (the module docs
    /// say why). Securebits are left alone. Applies to the calling thread.
    ///
    /// Needs `CAP_SETPCAP` to shrink the bounding set (a capability already absent is skipped,
    /// so a thread whose bounding set is already within `keep` needs nothing) and `keep` within
    /// the current permitted set; otherwise `EPERM`. Call it after any uid change: a switch
    /// away from uid 0 clears the capability sets on its own.
    ///
    /// Async-signal-safe: `prctl` and `capset` only; no allocation.
    pub fn apply(&self) -> Result<(), Errno> {
        for cap in 0..=self.last_cap {
            if self.keep.contains(cap) {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
            if present < 0 {
                return Err(Errno::last());
            }
            // SAFETY: as above.
            if present == 1 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                return Err(Errno::last());
            }
        }

        // SAFETY: as above.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }

        let header = CapUserHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let word = |bits: u64| CapUserData {
            effective: bits as u32,
            permitted: bits as u32,
            inheritable: 0,
        };
        let data = [word(self.keep.0), word(self.keep.0 >> 32)];
        // SAFETY: version 3 reads exactly one header and two data words, all valid here.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &header as *const CapUserHeader,
                data.as_ptr(),
            )
        };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_is_fourteen_capabilities_with_their_names() {
        let names = CapSet::DOCKER_DEFAULT.names();
        assert_eq!(names.len(), 14);
        assert_eq!(names[0], "CAP_CHOWN");
        assert!(names.contains(&"CAP_AUDIT_WRITE"));
        assert!(!CapSet::DOCKER_DEFAULT.contains(cap::SYS_ADMIN));
        assert_eq!(CapSet::DOCKER_DEFAULT.0, 0xa804_25fb);
    }

    #[test]
    fn names_follow_capability_numbers() {
        assert_eq!(NAMES[cap::SYS_ADMIN as usize], "CAP_SYS_ADMIN");
        assert_eq!(NAMES[cap::SETFCAP as usize], "CAP_SETFCAP");
        assert_eq!(
            NAMES[cap::CHECKPOINT_RESTORE as usize],
            "CAP_CHECKPOINT_RESTORE"
        );
        assert_eq!(CapSet(1 << 63).names(), ["CAP_63"]);
    }

    #[test]
    fn all_is_what_the_kernel_knows() {
        let last = last_cap();
        assert!(last >= cap::CHECKPOINT_RESTORE, "kernel 5.9+ knows 41 caps");
        assert_eq!(CapSet::all(), CapSet::up_to(last));
        assert_eq!(CapSet::up_to(63), CapSet(u64::MAX));
        assert_eq!(CapSet::up_to(0), CapSet(1));
    }
}
