#!/usr/bin/env bash
# Side-by-side benchmark: a three-machine lab (targets: on a private network) to its first
# command and back, against three single-machine labs run one after another by one labrun
# (-j 1). The difference is what the lab network and the second and third machines cost on
# top of starting the containers. One hyperfine invocation holds every row; the table goes to
# bench/out/targets.md and between the targets markers of book/src/design/benchmarks.md.
# Needs root (the lab network does).
#
#   bench/targets.sh                 # 3 warm-up runs, then 40 measured runs of each row
#   BENCH_RUNS=100 bench/targets.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path
apt_install_missing hyperfine python3
step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)
out=bench/out
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
results=$out/targets.json
table=$out/targets.md
book=book/src/design/benchmarks.md
runs=${BENCH_RUNS:-40}

cell='```console\n$ echo hi\nhi\n```\n'
printf -- "---\nlabrun:\n  targets:\n    one: {}\n    two: {}\n    three: {}\n---\n# Three\n\n$cell" >"$work/three.md"
for n in a b c; do printf -- "# One\n\n$cell" >"$work/$n.md"; done
printf -- "# One\n\n$cell" >"$work/single.md"
"$labrun" -q "$work/three.md" "$work/a.md"

step "hyperfine: three machines ($runs runs each)"
q() { printf '%q' "$1"; }
hyperfine -N --warmup 3 --runs "$runs" --export-json "$results" \
    -n "three targets, one lab" "$(q "$labrun") -q $(q "$work/three.md")" \
    -n "three labs, one after another" "$(q "$labrun") -q -j 1 $(q "$work/a.md") $(q "$work/b.md") $(q "$work/c.md")" \
    -n "one lab, one machine" "$(q "$labrun") -q $(q "$work/single.md")"

step "table ($table)"
machine=$(machine_description)
versions="$("$labrun" --version 2>/dev/null | head -1); $(hyperfine --version)"
python3 bench/table.py "$results" "$table" \
    --reference "three labs, one after another" --ratio "three labs" \
    --what "three targets, one lab=a lab with three machines on a private network, one cell on the first" \
    --what "three labs, one after another=three one-machine labs of one cell each, by one labrun (-j 1)" \
    --what "one lab, one machine=a one-machine lab of one cell" \
    --footer "Measured $(date +%F) by \`bench/targets.sh\`: one hyperfine invocation, \`-N\`, 3 warm-up and $runs measured runs of each row. Machine: $machine. Versions: $versions." >/dev/null
cat "$table"
replace_between "$book" "<!-- targets:begin -->" "<!-- targets:end -->" "$table"
