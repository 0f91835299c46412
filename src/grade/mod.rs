//! Grade mode (`labrun grade`): one grading notebook run once per submission, each in a
//! fresh environment, scored by points and written to a grade book and per-submission
//! reports (section 9 of the contract).
//!
//! One concept a file: `submission` (what DIR holds, staged as a directory), `archive` (safe
//! extraction), `policy`, `score`, `scheduler` (parallel workers), `shard`, `gradebook`
//! (streamed to disk), `merge`, and `batch` (the run of one batch, tying them together); `slurm` runs a batch as
//! a Slurm array job of shards.

pub mod archive;
pub mod batch;
pub mod command;
pub mod gradebook;
pub mod merge;
pub mod policy;
pub mod scheduler;
pub mod score;
pub mod shard;
pub mod slurm;
pub mod submission;
