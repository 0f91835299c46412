//! Pseudo-terminals labrun owns: `type: interactive` and `tty: true` cells run on one
//! (section 3 of the format). `terminal` opens and moves bytes, `screen` turns what the
//! program drew into text lines, `conversation` types at prompts and collects the screen
//! between them, `program` starts a cell's program on the terminal in the environment.

pub mod conversation;
pub mod program;
pub mod screen;
pub mod terminal;
