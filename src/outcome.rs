//! What running a notebook produced: raw cell runs, verdicts and outcomes. Pure data.
//!
//! A failing cell is a `Verdict`, never an `Err`: errors are for labrun itself failing.

use std::path::PathBuf;
use std::time::Duration;

use crate::expect::DiffLine;
use crate::notebook::{CellId, ExitRule};

/// How a process ended, as a shell reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The status as `$?` shows it: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// What the session shell had to do around one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// The shell exited or was replaced during the command; a new one took over.
    Replaced {
        reason: String,
        state_restored: bool,
    },
    /// Something an earlier cell defined kept labrun's harness from running this command.
    Tampered,
}

/// The raw result of running one command in a session.
#[derive(Debug, Clone)]
pub struct CommandRun {
    /// stdout and stderr interleaved, or stdout alone when the streams were captured apart.
    pub output: Vec<u8>,
    /// stderr when captured apart, else empty.
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
    pub duration: Duration,
    /// Set when the command ran past its timeout and was killed.
    pub timed_out: Option<Duration>,
    /// Bytes dropped past the output cap.
    pub truncated: u64,
    pub shell_event: Option<ShellEvent>,
}

/// Why a cell (or a transcript step) did not pass.
#[derive(Debug, Clone)]
pub enum Failure {
    Output {
        diff: Vec<DiffLine>,
    },
    ExitStatus {
        expected: ExitRule,
        got: i32,
    },
    Timeout {
        after: Duration,
    },
    FailedWhen {
        expression: String,
    },
    /// The cell could not be run as written (bad path, missing interpreter, a tampered shell).
    Error {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub enum Verdict {
    Passed,
    Failed(Vec<Failure>),
    Skipped { reason: String },
}

impl Verdict {
    pub fn is_failed(&self) -> bool {
        matches!(self, Verdict::Failed(_))
    }
}

/// One transcript step (or the single command of a non-transcript cell).
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub command: String,
    pub line: u32,
    pub run: CommandRun,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub struct CellOutcome {
    pub id: CellId,
    pub line: u32,
    pub kind: &'static str,
    pub verdict: Verdict,
    pub steps: Vec<StepOutcome>,
    /// Notes for the reader (a replaced shell, a truncated output).
    pub notes: Vec<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct NotebookOutcome {
    pub path: PathBuf,
    pub cells: Vec<CellOutcome>,
    pub duration: Duration,
    /// Set when the run stopped before its end (total timeout, interrupt, environment failure).
    pub aborted: Option<String>,
    /// What the environment could not do as asked (limits not enforced).
    pub warnings: Vec<String>,
}

impl NotebookOutcome {
    pub fn passed(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Passed))
            .count()
    }
    pub fn failed(&self) -> usize {
        self.cells.iter().filter(|c| c.verdict.is_failed()).count()
    }
    pub fn skipped(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Skipped { .. }))
            .count()
    }
}
