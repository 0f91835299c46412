//! Execution: sessions, timeouts, interrupts and parallel notebooks. The only async code.

pub mod background;
pub mod cell_shell;
pub mod copy;
pub mod dialect;
pub mod machines;
pub mod procs;
pub mod program;
pub mod pty;
pub mod remote_session;
pub mod runner;
pub mod session;
pub mod sessions;
pub mod shell_process;
