//! Expected output: normalising what a cell printed, matching it against the cram/scrut line
//! syntax, showing the difference, recording new expectations, and `failed_when` checks.
//!
//! Pure and synchronous: bytes and text in, verdicts and text out. One aligner
//! (`align`) decides pass or fail and is also the diff and the map `--update` uses.

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
