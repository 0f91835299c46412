#!/usr/bin/env bash
# The whole test suite: build, unit and end-to-end tests, then labrun on the project's own
# notebooks and on the book's pages, then the book itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

step "scripts/setup.sh"
scripts/setup.sh
cargo_bin_on_path

step "cargo build --release"
cargo build --release

step "cargo nextest run --cargo-profile ci --no-fail-fast"
cargo nextest run --cargo-profile ci --no-fail-fast

step "scripts/rootless-tests.sh (the container tests as an unprivileged user)"
scripts/rootless-tests.sh

labrun=$(labrun_bin)
# Some pages of the book run labrun on notebooks they write; they find it in $LABRUN. Their
# cells run in a container, whose host image hides /root, /home and /tmp, where a checkout
# often is: the binary is installed where every lab can see it.
labrun_abs=/usr/local/libexec/labrun-test/labrun
as_root install -D -m 755 "$labrun" "$labrun_abs"

# notebooks/oci-registry.md runs labrun itself on a lab of its own, through $LABRUN.
step "labrun --env LABRUN=$labrun_abs notebooks/*.md"
"$labrun" --env "LABRUN=$labrun_abs" notebooks/*.md

shopt -s globstar nullglob
pages=(book/src/**/*.md)
step "labrun --env LABRUN=$labrun_abs book/src/**/*.md (${#pages[@]} pages)"
"$labrun" --env "LABRUN=$labrun_abs" "${pages[@]}"

# The grading example: three submissions (a directory that passes, one that fails, an
# archive), graded in containers; the grade book must be the one checked in.
step "labrun grade notebooks/grading/grading.md"
grades=$(mktemp -d)
"$labrun" grade notebooks/grading/grading.md --submissions notebooks/grading/submissions \
    --output "$grades"
diff -u notebooks/grading/expected/grades.csv "$grades/grades.csv"
rm -rf "$grades"

# The same through Slurm (grade --slurm), on a single-node cluster started for it.
step "labrun grade --slurm notebooks/grading/grading.md"
slurm=$(mktemp -d)
chmod 755 "$slurm" # munged runs as munge, inside it
scripts/slurm-cluster.sh start "$slurm/cluster"
SLURM_CONF=$slurm/cluster/slurm.conf "$labrun" grade notebooks/grading/grading.md \
    --submissions notebooks/grading/submissions --output "$slurm/grades" --slurm --slurm-tasks 4 \
    || { scripts/slurm-cluster.sh stop "$slurm/cluster"; exit 1; }
scripts/slurm-cluster.sh stop "$slurm/cluster"
diff -u notebooks/grading/expected/grades.csv "$slurm/grades/grades.csv"
rm -rf "$slurm"

# The compatibility notebook must stay valid scrut too (setup.sh installs scrut).
step "scrut test notebooks/scrut-compat.md"
scrut test notebooks/scrut-compat.md

step "mdbook build book"
mdbook build book

step "all tests passed"
