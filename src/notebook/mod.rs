//! Notebook parsing: markdown in, a `Notebook` of cells with byte spans out. Pure and synchronous.

pub mod model;

pub use model::*;
