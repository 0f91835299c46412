//! The parallel scheduler (for `grade`'s submissions and `run`'s notebooks): `jobs` workers take submissions off one queue, each with a tokio
//! runtime of its own; a progress bar with an ETA shows on a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs `work` on every item with `jobs` workers; `done` receives each result as it comes
/// (under a lock, in completion order). Stops taking new items once `stop` says so.
pub fn run<T: Send, R>(
    items: Vec<T>,
    jobs: usize,
    progress: bool,
    work: impl Fn(&tokio::runtime::Runtime, T) -> R + Sync,
    done: impl FnMut(R) -> bool + Send,
) {
    let bar = if progress {
        let bar =
            ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} submissions, {per_sec}, ETA {eta}")
                .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let queue = Mutex::new(items.into_iter());
    let done = Mutex::new((done, false));
    let worker = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        loop {
            if done.lock().unwrap().1 {
                break;
            }
            let Some(item) = queue.lock().unwrap().next() else {
                break;
            };
            let result = work(&rt, item);
            let mut guard = done.lock().unwrap();
            let (sink, stopped) = &mut *guard;
            *stopped |= !sink(result);
            bar.inc(1);
        }
    };
    if jobs <= 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(worker);
            }
        });
    }
    bar.finish_and_clear();
}
