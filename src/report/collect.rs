//! A reporter for document formats (JUnit, TAP, HTML, Gradescope, CSV): renders each
//! notebook when it finishes, and writes the whole document at the end.

use super::out::Out;
use super::{Event, Reporter, Summary};
use crate::outcome::NotebookOutcome;
use crate::plan::Plan;

/// Renders one notebook's part of the document.
pub type RenderPart = fn(&Plan, &NotebookOutcome) -> String;
/// Joins the parts into the document.
pub type Assemble = fn(&[String], &Summary) -> String;

pub struct CollectingReporter {
    out: Out,
    parts: Vec<String>,
    render: RenderPart,
    assemble: Assemble,
}

impl CollectingReporter {
    pub fn new(out: Out, render: RenderPart, assemble: Assemble) -> Self {
        CollectingReporter {
            out,
            parts: Vec::new(),
            render,
            assemble,
        }
    }
}

impl Reporter for CollectingReporter {
    fn event(&mut self, event: &Event) {
        if let Event::NotebookFinished { plan, outcome } = event {
            self.parts.push((self.render)(plan, outcome));
        }
    }

    fn finish(&mut self, summary: &Summary) {
        let doc = (self.assemble)(&self.parts, summary);
        self.out.write(&doc);
        self.out.flush();
    }
}
