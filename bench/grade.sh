#!/usr/bin/env bash
# The grading benchmark: `labrun grade` on a thousand submissions of a checked-in ten-cell lab
# (bench/grade/lab.md), in containers, against the same lab run with one `podman run` per
# submission on a sample, and against the floor: the lab's commands in plain bash on the host
# (bench/grade/floor.sh), nothing checked. Writes its table to bench/out/grade.md and between
# the grade markers of book/src/design/benchmarks.md.
#
#   bench/grade.sh                                  # 1000 submissions, 3 runs, a sample of 40 for podman
#   BENCH_SUBMISSIONS=200 BENCH_RUNS=1 bench/grade.sh
#
# podman needs root; run as root (the book's numbers are).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path
apt_install_missing podman python3

step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)
lab=bench/grade/lab.md
n=${BENCH_SUBMISSIONS:-1000}
runs=${BENCH_RUNS:-3}
sample=${BENCH_PODMAN_SAMPLE:-40}
jobs=$(nproc)
work=$PWD/bench/out/grade
rm -rf "$work"
mkdir -p "$work/subs"

step "$n submissions (one in ten wrong)"
for i in $(seq -w 1 "$n"); do
    d=$work/subs/s$i
    mkdir "$d"
    if [ $((10#$i % 10)) -eq 0 ]; then
        printf 'apple\nbanana\ncherry\n' >"$d/words.txt"
        printf 'wc -w\n' >"$d/count.sh"
    else
        printf 'apple\nbanana\ncherry\ndate\nelderberry\n' >"$d/words.txt"
        printf 'wc -l\n' >"$d/count.sh"
    fi
done

grade() { # OUTPUT-DIR FLAGS...
    local out=$1
    shift
    python3 bench/grade/measure.py "$labrun" grade "$lab" --submissions "$work/subs" \
        --output "$out" -j "$jobs" -q "$@"
}

step "labrun grade, grade book only ($runs runs)"
: >"$work/runs.jsonl"
for r in $(seq 1 "$runs"); do
    grade "$work/out-$r" --format none | tee -a "$work/runs.jsonl"
done
full=$(grep -c ',graded,10,10,' "$work/out-1/grades.csv" || true)
wrong=$(grep -c ',graded,[0-9],10,' "$work/out-1/grades.csv" || true)
echo "full marks: $full, wrong: $wrong"
[ "$full" -eq $((n - n / 10)) ] && [ "$wrong" -eq $((n / 10)) ] || {
    echo "unexpected grades; see $work/out-1/grades.csv" >&2
    exit 1
}

step "labrun grade, with every report per submission ($runs runs)"
: >"$work/reports.jsonl"
for r in $(seq 1 "$runs"); do
    grade "$work/reports-$r" | tee -a "$work/reports.jsonl"
done

step "the floor: the lab's commands in plain bash, no container, no checks, $jobs at once ($runs runs)"
: >"$work/floor.jsonl"
find "$work/subs" -mindepth 1 -maxdepth 1 | sort >"$work/all-subs"
sed -n 's/^\$ //p' "$lab" >"$work/commands.sh"
for r in $(seq 1 "$runs"); do
    rm -rf "$work/floor-$r"
    mkdir "$work/floor-$r"
    python3 bench/grade/measure.py xargs -a "$work/all-subs" -P "$jobs" -n 1 \
        bench/grade/floor.sh "$work/commands.sh" "$work/floor-$r" | tee -a "$work/floor.jsonl"
done

step "one podman run per submission, $jobs at once ($sample submissions, $runs runs)"
: >"$work/podman.jsonl"
if [ "$(id -u)" -eq 0 ]; then
    rootfs=$work/rootfs
    mkdir -p "$rootfs"
    mount --bind / "$rootfs"
    mount -o remount,bind,ro "$rootfs"
    trap 'umount "$rootfs" 2>/dev/null || true' EXIT
    export CONTAINERS_CONF=$PWD/bench/container/containers.conf
    nofile=$(ulimit -Hn)
    cat >"$work/podman-one.sh" <<SH
#!/bin/sh
exec podman run --rm --network none --tmpfs /sys/fs/cgroup --tmpfs /tmp:rw,notmpcopyup \
    --ulimit nofile=$nofile:$nofile --ulimit nproc=32768:32768 \
    -v "\$1:/mnt:ro" -v "$PWD/bench/grade:/srv:ro" --rootfs "$rootfs" \
    "$labrun" --backend host -q --env LABRUN_SUBMISSION_DIR=/mnt /srv/lab.md
SH
    chmod +x "$work/podman-one.sh"
    # The root is read-only: the submission and the lab are mounted on directories it has.
    podman_ok=true
    "$work/podman-one.sh" "$work/subs/s$(printf "%0${#n}d" 1)" || {
        echo "podman could not run the lab; its row says so" >&2
        podman_ok=false
    }
    for r in $(seq 1 "$runs"); do
        $podman_ok || break
        # (Not `sort | head`: under pipefail, sort's SIGPIPE would end the script.)
        find "$work/subs" -mindepth 1 -maxdepth 1 | sort >"$work/all"
        head -n "$sample" "$work/all" >"$work/sample"
        python3 bench/grade/measure.py xargs -a "$work/sample" -P "$jobs" -n 1 \
            "$work/podman-one.sh" | tee -a "$work/podman.jsonl"
    done
fi

step "table (bench/out/grade.md)"
machine=$(machine_description)
versions="$("$labrun" --version | head -1); podman $(podman --version | awk '{print $3}')"
python3 bench/grade/table.py "$work/runs.jsonl" "$work/reports.jsonl" "$work/podman.jsonl" "$work/floor.jsonl" \
    "$n" "$sample" "$jobs" "$machine" "$versions" bench/out/grade.md book/src/design/benchmarks.md
step "written into book/src/design/benchmarks.md"
