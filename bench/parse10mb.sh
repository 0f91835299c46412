#!/usr/bin/env bash
# How fast labrun reads a big notebook: generate a 10 MB notebook into a temporary file and time
# `labrun list` on it (parsing and planning only, nothing runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

apt_install_missing hyperfine
step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
notebook=$tmp/big.md
target_bytes=${BENCH_BYTES:-$((10 * 1024 * 1024))}

step "generating $notebook (~$target_bytes bytes)"
# Each section holds prose, a transcript, an annotated cell with its output block, and a plain
# block that is not a cell; awk writes sections until the file is big enough.
awk -v target="$target_bytes" '
BEGIN {
    q = sprintf("%c", 39)
    bytes = 0
    out("---\ntitle: big notebook\nlabrun:\n  backend: host\n---\n\n# A big notebook\n\n")
    for (n = 1; bytes < target; n++) {
        out("## Section " n "\n\n" \
            "Some prose about step " n ", long enough to look like the text of a real workshop,\n" \
            "with `inline code`, a [link](https://example.org/" n ") and *emphasis* here and there.\n\n" \
            "```console\n$ echo \"step " n "\"\nstep " n "\n$ seq 3\n1\n2\n3\n```\n\n" \
            "```bash | {type: " q "command" q ", timeout: " q "5s" q "}\n" \
            "printf " q "value %d\\n" q " " n "\n```\n```output\nvalue " n "\n```\n\n" \
            "```python\nprint(\"not a cell: " n "\")\n```\n\n")
    }
    sections = n - 1
    print sections > "/dev/stderr"
}
function out(s) { printf "%s", s; bytes += length(s) }
' >"$notebook" 2>"$tmp/sections"
printf '%s sections, %s bytes\n' "$(cat "$tmp/sections")" "$(stat -c %s "$notebook")"

step "labrun list on it (sanity)"
"$labrun" list "$notebook" | tail -n 2

mkdir -p bench/out
step "hyperfine: labrun list on a 10 MB notebook"
hyperfine -N --warmup 2 --runs "${BENCH_RUNS:-10}" \
    --export-markdown bench/out/parse10mb.md \
    --export-json bench/out/parse10mb.json \
    -n "labrun list (10 MB)" "$(printf '%q' "$labrun") list $(printf '%q' "$notebook")"
