#!/usr/bin/env bash
# The floor of the grading benchmark: one submission's work without labrun, a container or any
# check. Like grade mode, it copies the submission into a working directory of its own (`cp
# -R`), then sources COMMANDS (the lab's ten commands, one per line, taken from
# bench/grade/lab.md by bench/grade.sh) in this same bash, their output thrown away.
#
#   bench/grade/floor.sh COMMANDS WORK-ROOT SUBMISSION-DIR
set -uo pipefail
commands=$1 submission=$3
workdir=$2/${submission##*/}
cp -R "$submission" "$workdir" || exit 1
cd "$workdir" || exit 1
export LABRUN_SUBMISSION_DIR=$submission
. "$commands" >/dev/null 2>&1
exit 0
