#!/usr/bin/env bash
# The floor of the grading benchmark: one submission's work without labrun, a container or any
# check. The lab's ten commands (its `$ ` lines, taken from bench/grade/lab.md) run in one plain
# bash on the host, after a `cp -R` of the submission into a scratch directory as grade mode
# does; their output is thrown away.
#
#   bench/grade/floor.sh SUBMISSION-DIR
set -euo pipefail
lab=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.md
submission=$(cd "$1" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -R "$submission/." "$scratch/"
cd "$scratch"
sed -n 's/^\$ //p' "$lab" | LABRUN_SUBMISSION_DIR=$submission bash >/dev/null 2>&1 || true
