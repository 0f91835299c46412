#!/usr/bin/env python3
"""Where labrun's container start spends its time, seen from outside with `perf trace`.

Usage: phases.py LABRUN NOTEBOOK RUNS OUT.md

Runs `perf trace` on `LABRUN NOTEBOOK -q` RUNS times, tracing only the system calls that mark a
phase, takes each phase's median and quartiles over the runs and writes a markdown table to
OUT.md (and prints it). perf trace reads the kernel's syscall tracepoints and does not stop the
traced processes (strace does, and would mostly measure itself), but it is not free either:
compare the traced total with the untraced median of the same run.

perf trace's times are milliseconds from its first event, the end of labrun's execve. The marks,
in the order labrun makes them today (a phase whose marks are missing, because labrun changed,
shows as "not seen"):

  rename(... run-...)           labrun's run directory exists (notebook read and planned)
  clone(NEWPID ...)             the container's init is cloned (and how long the clone took)
  write()s of init's pid        init moved into the run's cgroups (cgroup.procs)
  write(..., 1 byte)            init may go on
  unshare(...)                  init's namespaces: mount, uts, ipc, net, cgroup
  pivot_root                    the root is built
  sendmsg                       labrun asks init for the shell
  clone in init                 the shell's process exists
  execve(bash)                  start and duration of the exec
  write(1, 3 bytes) by bash     the cell has printed "hi"
  exit_group(labrun)            labrun is done (checked, reported, torn down)
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

TRACE = "rename,clone,clone3,write,unshare,pivot_root,sendmsg,execve,exit_group"

# "    14.925 ( 1.020 ms): labrun/32391 unshare(unshare_flags: 1308753920)   = 0"
LINE = re.compile(r"^\s*([\d.]+|\?) \(\s*([\d.]+)?\s*(?:ms)?\s*\): (\S+)/(\d+) (.*)$")

PHASES = [
    ("start", "rundir", "labrun after its exec: loads, reads and plans the notebook, "
     "makes its run directory"),
    ("rundir", "clone", "stale sweeps, the run's cgroups made and limited"),
    ("clone", "cloned", "clone of the container's init (a copy of labrun)"),
    ("cloned", "go", "init moved into the cgroups (`cgroup.procs`), go-ahead"),
    ("cg_first", "cg_first_end", "of which the first `cgroup.procs` write alone"),
    ("unshare", "unshared", "unshare: mount, UTS, IPC, network, cgroup namespaces"),
    ("unshared", "pivot", "root built: overlay on /, /proc, /sys, /dev, binds, pivot_root"),
    ("pivot", "spawn", "old root detached, hostname, loopback, user namespace and id maps"),
    ("spawn", "forked", "init forks the shell's process"),
    ("forked", "exec", "the shell's process: signals, capabilities, seccomp"),
    ("exec", "execd", "execve of bash"),
    ("execd", "hi", "bash starts, the session's handshake, the cell prints `hi`"),
    ("hi", "exit", "output checked, report, teardown (kill, cgroups, run directory)"),
    ("start", "exit", "**total under perf trace** (end of labrun's exec to its exit_group)"),
]


def marks(path):
    """The time of each mark in one trace, in milliseconds."""
    found = {}
    labrun = init = shell = None
    go_count = None
    pending = {}  # pid -> the mark that its interrupted call's end makes
    with open(path) as f:
        for raw in f:
            m = LINE.match(raw)
            if not m:
                continue
            t = None if m.group(1) == "?" else float(m.group(1))
            took = float(m.group(2)) if m.group(2) else None
            pid, call = int(m.group(4)), m.group(5)
            if labrun is None:
                # The first event is the end of labrun's own execve.
                labrun = pid
                found["start"] = 0.0

            def put(key, value=t):
                if value is not None:
                    found.setdefault(key, value)

            def end(key):
                # A call interrupted by another process's event is printed in two parts; the
                # second, "[continued]", repeats the start time and gives the duration.
                if took is not None:
                    put(key, t + took)
                else:
                    pending[pid] = key

            continued = "[continued]:" in call
            if continued and pid in pending and took is not None and t is not None:
                put(pending.pop(pid), t + took)
                continue
            if pid == labrun and call.startswith("rename("):
                put("rundir")
            elif pid == labrun and call.startswith("clone(") and "NEWPID" in call:
                put("clone")
                end("cloned")
                r = re.search(r"= (\d+)", call)
                if r:
                    init = int(r.group(1))
                    go_count = len(str(init))
            elif pid == labrun and call.startswith("write(") and init and "go" not in found:
                count = re.search(r"count: (\d+)", call)
                if count and int(count.group(1)) == go_count and "cg_first" not in found:
                    put("cg_first")
                    end("cg_first_end")
                elif count and count.group(1) == "1":
                    put("go")
            elif pid == init and call.startswith("unshare(") and "unshare" not in found:
                put("unshare")
                end("unshared")
            elif pid == init and call.startswith("pivot_root("):
                end("pivot")
            elif pid == labrun and call.startswith("sendmsg(") and "spawn" not in found:
                put("spawn")
            elif pid == init and call.startswith("clone(") and "spawn" in found:
                end("forked")
            elif "execve(" in call and "spawn" in found and pid not in (labrun, init) and \
                    shell in (None, pid):
                # The shell's process: the first other one that execs after the request. perf
                # prints the exec on one line, or split in two (its start, then "[continued]"
                # under the new name, with the same start time and the duration).
                shell = pid
                put("exec")
                end("execd")
            elif pid == shell and call.startswith("write(") and "count: 3)" in call:
                put("hi")
            elif pid == labrun and call.startswith("exit_group("):
                put("exit")
    return found


def spread(values):
    """'median | q1 … q3' in milliseconds, for a table row."""
    if not values:
        return "not seen |"
    if len(values) < 2:
        return f"{values[0]:.2f} ms |"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.2f} ms | {q1:.2f} … {q3:.2f} ms"


def main():
    labrun, notebook, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    samples = {(a, b): [] for a, b, _ in PHASES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            trace = os.path.join(tmp, f"trace.{i}")
            subprocess.run(
                ["perf", "trace", "-e", TRACE, "-o", trace, "--", labrun, notebook, "-q"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            found = marks(trace)
            for a, b, _ in PHASES:
                if a in found and b in found:
                    samples[(a, b)].append(found[b] - found[a])

    rows = ["| phase | median (traced) | quartiles |", "|---|---|---|"]
    for a, b, what in PHASES:
        rows.append(f"| {what} | {spread(samples[(a, b)])} |")
    text = "\n".join(rows) + "\n"
    with open(out, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
