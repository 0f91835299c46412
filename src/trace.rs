//! `LABRUN_TRACE=1`: prints when each phase of a run ends, in milliseconds since labrun
//! started, to find where the time goes (the benchmarks page uses it). Off, it costs one check.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| std::env::var_os("LABRUN_TRACE").map(|_| Instant::now()))
}

/// Starts the clock (call first thing in main).
pub fn begin() {
    let _ = start();
}

/// Notes that `phase` just ended.
pub fn mark(phase: &str) {
    if let Some(t0) = start() {
        eprintln!(
            "labrun-trace {:8.3} ms  {phase}",
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
}
