//! The sandbox's privilege primitives: the default seccomp filter and the capability drop that
//! the container runtime applies in a cell's process between `clone` and `execve`.
//!
//! Two halves, each a prepare-then-apply pair:
//!
//! - [`seccomp`]: `Filter::default_for(privileged) -> Filter` compiles the BPF program;
//!   `Filter::install(&self)` installs it; `no_new_privs()` sets `PR_SET_NO_NEW_PRIVS`.
//!   The policy itself is the table `seccomp::SYSCALLS`.
//! - [`caps`]: `CapSet` (a bit mask, with `DOCKER_DEFAULT`, `all()`, `names()`);
//!   `CapPlan::new(keep) -> CapPlan` reads what it needs from the kernel;
//!   `CapPlan::apply(&self)` drops the rest.
//!
//! The prepare half runs in the parent and may allocate. The apply half runs in a child made by
//! a raw `clone()` of a possibly multi-threaded parent, where another thread may have held the
//! allocator's lock at the moment of the clone. So every apply function is async-signal-safe:
//! only raw `prctl`/`capset`/`seccomp` calls on data prepared beforehand, no allocation, no
//! locks, no formatting, no panics; failures come back as `Result<(), nix::errno::Errno>`
//! (`Errno` is `Copy`), read from the calling thread's `errno`.
//!
//! In the child, after the mounts and `pivot_root` (the filter denies the mount family outside
//! privileged cells):
//!
//! 1. `CapPlan::apply` — it needs `CAP_SETPCAP`, which the drop may then remove;
//! 2. `no_new_privs` then `Filter::install` — last, so the filter never stands in the way of
//!    the setup. (Docker's default instead installs the filter while `CAP_SYS_ADMIN` is still
//!    held and skips `no_new_privs`, which keeps setuid programs such as `sudo` working;
//!    `install` supports that order too: call it before `CapPlan::apply`.)
//! 3. `execve`.

pub mod caps;
pub mod seccomp;
