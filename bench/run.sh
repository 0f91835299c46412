#!/usr/bin/env bash
# Side-by-side benchmark: the same twenty checked commands run by plain bash (the floor),
# by labrun, and by scrut. Results go to bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

apt_install_missing hyperfine
if ! command -v scrut >/dev/null 2>&1; then
    step "cargo install --locked scrut"
    cargo install --locked scrut
fi

step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)

# Each tool must pass on its own before its speed means anything.
step "checking that every runner passes"
bash bench/echo20.sh >/dev/null
"$labrun" -q bench/echo20.md
scrut test bench/echo20-scrut.md >/dev/null

mkdir -p bench/out
step "hyperfine: echo20"
# -N runs each command without an intermediate shell, so the shell's start-up is not counted
# twice; --warmup fills the page cache first.
hyperfine -N --warmup 5 --runs "${BENCH_RUNS:-50}" \
    --export-markdown bench/out/echo20.md \
    --export-json bench/out/echo20.json \
    -n bash "bash bench/echo20.sh" \
    -n labrun "$(printf '%q' "$labrun") bench/echo20.md" \
    -n scrut "$(printf '%q' "$(command -v scrut)") test bench/echo20-scrut.md"

step "results (bench/out/echo20.md)"
cat bench/out/echo20.md

step "medians"
# hyperfine writes one key per line; pick each command's name and median.
awk -F': ' '
    /"command":/ { gsub(/[",]/, "", $2); name = $2 }
    /"median":/  { gsub(/,/, "", $2); printf "%-8s %8.2f ms\n", name, $2 * 1000 }
' bench/out/echo20.json
