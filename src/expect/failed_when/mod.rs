//! `failed_when`: docable's small expressions over `exitCode`, `stdout` and `stderr`.
//!
//! labrun's own evaluator: a tokenizer, a recursive-descent parser with a depth limit and a
//! tree walker. It never runs a shell or a JavaScript engine, and hostile input can neither
//! overflow the stack nor run for long. Every occurrence of a name is bound (docable bound
//! only the first).
//!
//! The language, in JavaScript's precedence order: `||`; `&&`; `==` `!=` `===` `!==`;
//! `<` `>` `<=` `>=`; prefix `!` and `-`; `.includes(s)`, `.startsWith(s)`, `.endsWith(s)`,
//! `.trim()`, `.length`; literals `'...'`, `"..."` (backslash escapes), integers, `true`,
//! `false`; parentheses. `!`, `&&`, `||` and the final verdict use JavaScript truthiness
//! (`0` and `''` are false); comparing values of different types is an error, not `false`.

mod eval;
mod lex;
mod parse;

pub use eval::{Bindings, eval};
pub use parse::{Expr, parse};

/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;

/// Deepest nesting accepted (parentheses, prefix operators, method arguments, operator chains).
pub const MAX_DEPTH: usize = 64;
