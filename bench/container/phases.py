#!/usr/bin/env python3
"""Where labrun's container start goes: runs a notebook N times with LABRUN_TRACE=1, which
makes labrun print when each phase of a run ends, and writes a markdown table of the median
time of each phase (from the end of the one before), with quartiles.

usage: phases.py LABRUN NOTEBOOK RUNS OUT.md
"""

import os
import statistics
import subprocess
import sys

# What each of labrun's trace marks ends, in the words of the table.
MEANING = {
    "planned": "labrun starts, reads and plans the notebook",
    "image resolved": "the image resolved (host: the paths to hide)",
    "cgroups created": "run directory made, the run's cgroups made and limited",
    "root planned": "the root's mount plan, seccomp and capability plans prepared",
    "container cloned": "clone of the container's first process, id maps, go-ahead",
    "environment built": "the rest of the environment (labrun, while the child works)",
    "container root built": "in the child: joins its cgroups, unshares, mounts the root, pivot_root (seen only with privileged cells, when it asks for its second go-ahead)",
    "shell spawned": "in the child: joins its cgroups, unshares, builds the root, pivot_root; init ready; the first shell hardened and bash executed; the old root detached",
    "shell started": "the shell's pid found, the session's first lines sent",
    "cells run": "bash starts, runs the cell's `echo hi`, labrun checks it",
    "container reaped": "teardown: init killed and waited for (the kernel takes its namespaces and mounts down as it exits)",
    "cgroups removed": "teardown: the run's cgroups removed",
    "environment removed": "teardown: the run directory removed",
}


def one_run(labrun, notebook):
    env = dict(os.environ, LABRUN_TRACE="1")
    out = subprocess.run(
        [labrun, "-q", notebook], env=env, capture_output=True, text=True, check=False
    )
    marks = []
    for line in out.stderr.splitlines():
        if line.startswith("labrun-trace "):
            parts = line.split(None, 3)
            marks.append((parts[3].strip(), float(parts[1])))
    return marks


def main():
    labrun, notebook, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    deltas = {}
    order = []
    totals = []
    for _ in range(runs):
        marks = one_run(labrun, notebook)
        last = 0.0
        for phase, at in marks:
            if phase not in deltas:
                deltas[phase] = []
                order.append(phase)
            deltas[phase].append(at - last)
            last = at
        if marks:
            totals.append(marks[-1][1])
    rows = ["| phase | ends with | median | quartiles |", "|---|---|---|---|"]
    for phase in order:
        values = sorted(deltas[phase])
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        rows.append(
            f"| {MEANING.get(phase, phase)} | `{phase}` | {statistics.median(values):.2f} ms | "
            f"{q[0]:.2f} … {q[2]:.2f} ms |"
        )
    if totals:
        q = statistics.quantiles(sorted(totals), n=4) if len(totals) > 1 else [totals[0]] * 3
        rows.append(
            f"| **labrun's start to its last mark** | | {statistics.median(totals):.2f} ms | "
            f"{q[0]:.2f} … {q[2]:.2f} ms |"
        )
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n\n")
        f.write(
            f"{runs} runs of `LABRUN_TRACE=1 labrun -q` on the same notebook; each phase is "
            "timed from the end of the one before, by labrun's own clock (phases inside the "
            "container are seen when labrun hears of them).\n"
        )


if __name__ == "__main__":
    main()
