//! labrun runs a markdown workshop as a verified lab.
//!
//! The pipeline, one module a stage:
//! `notebook` (parse) → `plan` (which cells, which settings) → `exec` (sessions in an `env`
//! backend, emitting events) → `expect` (verdicts) → `report` (terminal, JSON) and `bless`
//! (`--update` writes). Only `exec` and `env` touch processes; everything else is pure.

pub mod bless;
pub mod check;
pub mod cli;
pub mod cli_image;
pub mod env;
pub mod exec;
pub mod exit_code;
pub mod expect;
pub mod grade;
pub mod image;
pub mod limits;
pub mod notebook;
pub mod outcome;
pub mod plan;
pub mod report;
pub mod sandbox;
pub mod trace;
pub mod unified_diff;
pub mod units;
