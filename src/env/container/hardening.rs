//! What a shell gives up before it runs a cell: privileges and resources, prepared by labrun
//! and applied by the shell's process in the container, just before it executes the shell.

use nix::errno::Errno;

/// Prepared in labrun; `apply` only makes system calls (it runs in a raw clone).
#[derive(Debug, Default)]
pub struct Hardening {}

impl Hardening {
    pub fn new() -> Hardening {
        Hardening {}
    }

    /// Applies everything to the calling process. Async-signal-safe.
    pub fn apply(&self, _privileged: bool) -> Result<(), Errno> {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}
