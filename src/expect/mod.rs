//! Expected output: normalising what a cell printed, matching it against the cram/scrut line
//! syntax, showing the difference, recording new expectations, and `failed_when` checks.
//!
//! Pure and synchronous: bytes and text in, verdicts and text out; nothing here runs a
//! process, reads a file or writes one. One aligner (`align`) decides pass or fail and is
//! also the diff a reader sees and the map `--update` uses to keep patterns.
//!
//! The flow: [`normalize`] the raw output into an [`Actual`], [`parse_expected`] the
//! expectation once, [`compare`] them, [`render_diff`] a failure for the reader, and
//! [`record`] the output for `--update`.

mod align;
mod diff;
mod escape;
pub mod failed_when;
mod glob;
mod matcher;
mod normalize;
mod pattern;
mod record;
#[cfg(test)]
mod test_support;

pub use diff::render_diff;
pub use escape::display_line;
pub use glob::Glob;
pub use matcher::{Comparison, DiffLine, compare};
pub use normalize::{Actual, normalize};
pub use pattern::{
    LinePattern, PatternError, PatternLine, Repeat, Rule, parse_expected, parse_line,
};
pub use record::record;
