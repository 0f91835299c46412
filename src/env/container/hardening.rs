//! What a shell gives up before it runs a cell: capabilities beyond Docker's default set,
//! new privileges through setuid files, and the system calls a lab never needs. Prepared by
//! labrun, applied by the shell's process in the container just before it executes the shell.
//!
//! A privileged shell keeps every capability, but only those of the container's user
//! namespace (see `child`): it can mount an overlay, never write the host's /proc/sys.

use nix::errno::Errno;

use crate::limits::RlimitPlan;
use crate::sandbox::caps::{CapPlan, CapSet};
use crate::sandbox::seccomp::{self, Filter};

/// Prepared in labrun; `apply` only makes system calls (it runs in a raw clone).
pub struct Hardening {
    rlimits: RlimitPlan,
    default_caps: CapPlan,
    privileged_caps: CapPlan,
    default_filter: Filter,
    privileged_filter: Filter,
}

impl Hardening {
    pub fn new(rlimits: RlimitPlan) -> Hardening {
        Hardening {
            rlimits,
            default_caps: CapPlan::new(CapSet::DOCKER_DEFAULT),
            privileged_caps: CapPlan::new(CapSet::all()),
            default_filter: Filter::default_for(false),
            privileged_filter: Filter::default_for(true),
        }
    }

    /// Applies everything to the calling process. Async-signal-safe.
    pub fn apply(&self, privileged: bool) -> Result<(), Errno> {
        let (caps, filter) = if privileged {
            (&self.privileged_caps, &self.privileged_filter)
        } else {
            (&self.default_caps, &self.default_filter)
        };
        self.rlimits.apply()?;
        caps.apply()?;
        seccomp::no_new_privs()?;
        filter.install()
    }
}
