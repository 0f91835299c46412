//! labrun's exit statuses, named (section 7 of the notebook contract).

/// Every selected cell passed.
pub const PASSED: i32 = 0;
/// At least one cell failed.
pub const CELL_FAILED: i32 = 1;
/// A usage error or a notebook that does not parse.
pub const USAGE: i32 = 2;
/// The environment could not be built or started.
pub const ENVIRONMENT: i32 = 3;
/// Interrupted (Ctrl-C).
pub const INTERRUPTED: i32 = 130;

/// Combines the statuses of several notebooks: 130 over all, then the highest of 1 < 2 < 3.
pub fn combine(a: i32, b: i32) -> i32 {
    if a == INTERRUPTED || b == INTERRUPTED {
        INTERRUPTED
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining() {
        assert_eq!(combine(PASSED, CELL_FAILED), CELL_FAILED);
        assert_eq!(combine(ENVIRONMENT, USAGE), ENVIRONMENT);
        assert_eq!(combine(INTERRUPTED, ENVIRONMENT), INTERRUPTED);
        assert_eq!(combine(PASSED, PASSED), PASSED);
    }
}
