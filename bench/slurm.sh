#!/usr/bin/env bash
# The Slurm benchmark: what `labrun grade --slurm` costs over a local `labrun grade -j` run,
# for a 4-shard batch of the checked-in grading example (notebooks/grading/), on a real
# single-node Slurm cluster started for it (scripts/slurm-cluster.sh). Writes its table to
# bench/out/slurm.md and between the slurm markers of book/src/design/benchmarks.md.
#
#   bench/slurm.sh                 # 10 runs of each
#   BENCH_RUNS=3 bench/slurm.sh
#
# Needs root (slurmd does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path
apt_install_missing slurmctld slurmd slurm-client munge hyperfine python3

step "cargo build --release"
cargo build --release
labrun=$(realpath "$(labrun_bin)")
runs=${BENCH_RUNS:-10}
work=$PWD/bench/out/slurm
rm -rf "$work"
mkdir -p "$work"
jobs=$(nproc)

step "a single-node Slurm cluster in $work/cluster"
trap 'scripts/slurm-cluster.sh stop "$work/cluster"' EXIT
scripts/slurm-cluster.sh start "$work/cluster"
export SLURM_CONF=$work/cluster/slurm.conf

grade="$labrun grade notebooks/grading/grading.md --submissions notebooks/grading/submissions -q"
step "local -j $jobs vs --slurm with 4 tasks vs Slurm alone ($runs runs each)"
hyperfine --runs "$runs" --warmup 1 --export-json "$work/runs.json" \
    -n "labrun grade -j $jobs (local)" "$grade -j $jobs --output $work/local" \
    -n "labrun grade -j $jobs --slurm --slurm-tasks 4" \
    "$grade -j $jobs --slurm --slurm-tasks 4 --output $work/slurm" \
    -n "Slurm alone: a 4-task array of true, squeue polled every 200 ms" \
    "sh -c 'j=\$(sbatch --parsable --array=1-4 --output=/dev/null --wrap=true) && while [ -n \"\$(squeue -h -r -j \$j -o %i)\" ]; do sleep 0.2; done'"
diff -u notebooks/grading/expected/grades.csv "$work/local/grades.csv"
diff -u notebooks/grading/expected/grades.csv "$work/slurm/grades.csv"

step "table (bench/out/slurm.md)"
machine=$(machine_description)
versions="$("$labrun" --version | head -1); Slurm $(sinfo --version | awk '{print $2}')"
python3 - "$work/runs.json" "$runs" "$machine" "$versions" >bench/out/slurm.md <<'PY'
import json, statistics, sys, datetime
path, runs, machine, versions = sys.argv[1:]
results = json.load(open(path))["results"]
local = statistics.median(results[0]["times"])
print("| row | median wall time | over local |")
print("|---|---|---|")
for r in results:
    m = statistics.median(r["times"])
    print(f"| `{r['command']}` | {m:.2f} s | {m / local:.1f}× (+{m - local:.2f} s) |")
print()
print(f"Measured {datetime.date.today()} by `bench/slurm.sh`: medians of {runs} runs after one "
      f"warm-up, 3 submissions in 4 shards. Machine: {machine}. Versions: {versions}.")
PY
cat bench/out/slurm.md
replace_between book/src/design/benchmarks.md '<!-- slurm:begin -->' '<!-- slurm:end -->' \
    bench/out/slurm.md
step "written into book/src/design/benchmarks.md"
