//! Process trees on Linux: find every descendant of a process and kill them all.
//!
//! labrun becomes a child subreaper so that daemons a cell double-forks (`setsid nohup ... &`)
//! reparent to labrun instead of init, and stay findable until the run ends.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// Makes orphaned descendants reparent to this process (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// The direct children of `pid`, read from /proc/PID/task/*/children.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Processes (with everything under them) that no kill of descendants touches: the init of
/// an environment kept with `--keep`.
static SPARED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Spares `pid` and its tree from `kill_descendants` from now on.
pub fn spare(pid: u32) {
    SPARED.lock().expect("not poisoned").push(pid);
}

/// Every descendant of `pid`, parents before children, `pid` itself excluded.
pub fn descendants(pid: u32) -> Vec<u32> {
    let spared = SPARED.lock().expect("not poisoned").clone();
    let mut out = Vec::new();
    let mut queue = children(pid);
    while let Some(p) = queue.pop() {
        if out.contains(&p) || spared.contains(&p) {
            continue;
        }
        out.push(p);
        queue.extend(children(p));
    }
    out
}

/// Sends `signal` to each pid, ignoring processes that are already gone.
pub fn signal_all(pids: &[u32], signal: Signal) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p as i32), signal);
    }
}

/// Kills the descendants of `pid` (not `pid` itself) until none is left or `limit` passes.
/// Stopped first with SIGSTOP so that a fork loop cannot outrun the kill.
pub fn kill_descendants(pid: u32, limit: Duration) {
    let start = Instant::now();
    loop {
        // A zombie is already dead: waiting for its parent (perhaps stopped, perhaps in a
        // container) to reap it would only spin.
        let found: Vec<u32> = descendants(pid)
            .into_iter()
            .filter(|&p| !is_zombie(p))
            .collect();
        if found.is_empty() || start.elapsed() > limit {
            return;
        }
        signal_all(&found, Signal::SIGSTOP);
        signal_all(&found, Signal::SIGKILL);
        reap_children(&found);
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `pid` has exited and waits to be reaped (or is gone already).
fn is_zombie(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold anything.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// Reaps those of `pids` that are our own children and have exited, without blocking.
pub fn reap_children(pids: &[u32]) {
    for &p in pids {
        let _ = waitpid(Pid::from_raw(p as i32), Some(WaitPidFlag::WNOHANG));
    }
}

/// Reads one variable of a process's initial environment, if we may.
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    let data = fs::read(format!("/proc/{pid}/environ")).ok()?;
    data.split(|&b| b == 0).find_map(|entry| {
        let text = std::str::from_utf8(entry).ok()?;
        let (k, v) = text.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn finds_and_kills_a_tree() {
        // Children and a grandchild; nothing double-forked, which would reparent to init and
        // outlive the test (this test process is no subreaper).
        let mut child = Command::new("bash")
            .args(["-c", "sleep 30 & (sleep 30; true) & wait"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(pid).len() < 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            descendants(pid).len() >= 2,
            "expected the sleeps under bash"
        );
        kill_descendants(pid, Duration::from_secs(5));
        // Dead: at most zombies their parent has not reaped yet.
        assert!(descendants(pid).into_iter().all(is_zombie));
        let _ = child.kill();
        let _ = child.wait();
    }
}
