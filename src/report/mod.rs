//! Reporting: the executor emits `Event`s; reporters only consume them.
//!
//! Human (terminal) and JSON reporters, and the document formats (JUnit, TAP, HTML,
//! Gradescope, CSV), are peers behind one small trait. No reporter
//! decides a verdict, and none writes anything but its own report.

pub mod collect;
pub mod csv;
pub mod graded;
pub mod gradescope;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod out;
pub mod style;
pub mod tap;

use crate::notebook::Cell;
use crate::outcome::{CellOutcome, NotebookOutcome};
use crate::plan::Plan;

/// What happened, as it happens.
pub enum Event<'a> {
    NotebookStarted {
        plan: &'a Plan,
    },
    /// Something the author should know about the run's environment (a limit not enforced).
    Warning {
        plan: &'a Plan,
        message: &'a str,
    },
    CellStarted {
        plan: &'a Plan,
        cell: &'a Cell,
    },
    /// Live output of the running cell (stdout and stderr as they come).
    Output {
        plan: &'a Plan,
        cell: &'a Cell,
        chunk: &'a [u8],
    },
    CellFinished {
        plan: &'a Plan,
        cell: &'a Cell,
        outcome: &'a CellOutcome,
    },
    NotebookFinished {
        plan: &'a Plan,
        outcome: &'a NotebookOutcome,
    },
}

/// The end of a whole invocation.
pub struct Summary {
    pub notebooks: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub exit_code: i32,
    pub elapsed: std::time::Duration,
    /// Errors that kept notebooks from running (parse errors, environments), one line each.
    pub errors: Vec<String>,
}

pub trait Reporter: Send {
    fn event(&mut self, event: &Event);
    fn finish(&mut self, summary: &Summary);
}

/// Sends every event to several reporters.
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl Reporter for Fanout {
    fn event(&mut self, event: &Event) {
        for r in &mut self.0 {
            r.event(event);
        }
    }
    fn finish(&mut self, summary: &Summary) {
        for r in &mut self.0 {
            r.finish(summary);
        }
    }
}
