#!/usr/bin/env bash
# Side-by-side benchmark: start a fresh container and run `echo hi` in bash, with labrun (a
# one-cell notebook in its default container) and with bubblewrap, runc, crun and podman, all on
# the host's own root, read-only. One hyperfine invocation holds every row; the table (medians,
# and each median over bubblewrap+bash's) goes to bench/out/container.md and between the
# container-start markers of book/src/design/benchmarks.md. A row that cannot run on this
# machine is kept in the table as "n/a: <reason>".
#
#   bench/container.sh                  # 5 warm-up runs, then 50 measured runs of each row
#   BENCH_RUNS=200 bench/container.sh   # more runs
#   BENCH_PHASES=0 bench/container.sh   # skip the LABRUN_TRACE breakdown of labrun's start
#   BENCH_CPU=0 bench/container.sh      # skip the perf stat CPU column (BENCH_CPU_RUNS: 30)
#
# runc, crun and podman need root; run as root (the book's numbers are).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

apt_install_missing hyperfine bubblewrap runc crun podman uidmap python3 linux-perf

step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)
notebook=bench/container/one-cell.md

out=bench/out
work=$PWD/$out/container
mkdir -p "$work"
results=$out/container.json
table=$out/container.md
book=book/src/design/benchmarks.md
runs=${BENCH_RUNS:-50}

# What the rows run, besides labrun. The same flags for the ceiling and its reference.
bwrap_args=(--unshare-all --die-with-parent --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp)
bundle=$work/bundle
nsdir=$work/ns
is_root=false
[ "$(id -u)" -eq 0 ] && is_root=true

cleanup() {
    if $is_root; then
        runc delete --force labrun-bench-runc >/dev/null 2>&1 || true
        if mountpoint -q "$bundle/rootfs"; then umount "$bundle/rootfs" || true; fi
        if [ -e "$nsdir/mnt" ]; then umount "$nsdir/mnt" 2>/dev/null || true; fi
        if mountpoint -q "$nsdir"; then umount "$nsdir" || true; fi
    fi
    return 0
}
trap cleanup EXIT

# Rows: a name, what runs (for the table) and the command line hyperfine runs (no shell: -N),
# or a reason the row cannot run here.
names=() whats=() commands=() skipped=()
row() { # NAME WHAT COMMAND
    names+=("$1") whats+=("$2") commands+=("$3")
}
skip() { # NAME WHAT REASON
    skipped+=("$1"$'\t'"$2"$'\t'"$3")
    printf 'skipped %s: %s\n' "$1" "$3" >&2
}
# The last line a failed check printed, as the reason in the table.
reason_of() {
    tail -n 1 "$1" | tr -d '`|' | cut -c1-150
}
# Runs a command line the way hyperfine will; true when it succeeds and prints "hi".
check() { # COMMAND (a string, split like hyperfine -N does) LOG
    local log=$2
    eval "set -- $1"
    "$@" >"$log" 2>&1 && grep -qx hi "$log"
}

step "checking every row"
q_labrun=$(printf '%q' "$labrun")
# labrun's default: a fresh container on the host image. Tried three times: a failure here is
# reported, not hidden, but one flaky start should not cost the whole benchmark.
labrun_ok=false
for _ in 1 2 3; do
    if "$labrun" -q "$notebook" >"$work/check.log" 2>&1; then
        labrun_ok=true
        break
    fi
    cat "$work/check.log" >&2
done
if $labrun_ok; then
    row "labrun" "one-cell notebook, default container (host image)" "$q_labrun $notebook -q"
else
    skip "labrun" "one-cell notebook, default container (host image)" "$(reason_of "$work/check.log")"
fi
if "$labrun" -q --backend host "$notebook" >"$work/check.log" 2>&1; then
    row "labrun --backend host" "the same notebook without a container (reference)" \
        "$q_labrun $notebook -q --backend host"
else
    skip "labrun --backend host" "the same notebook without a container (reference)" \
        "$(reason_of "$work/check.log")"
fi

bwrap_line="bwrap ${bwrap_args[*]}"
if check "$bwrap_line bash -c 'echo hi'" "$work/check.log"; then
    row "bwrap + bash" "the ceiling: bwrap --unshare-all, bash -c 'echo hi'" \
        "$bwrap_line bash -c 'echo hi'"
    row "bwrap /bin/true" "the same container running /bin/true (reference)" \
        "$bwrap_line /bin/true"
else
    skip "bwrap + bash" "the ceiling" "$(reason_of "$work/check.log")"
fi

if ! $is_root; then
    skip "runc" "runc run, bundle on the host root" "needs root"
    skip "crun" "crun run, the same bundle" "needs root"
    skip "podman" "podman run --rootfs" "needs root"
else
    # The bundle's rootfs is the host's / bound read-only (not recursively: the container
    # mounts its own /proc, /dev and /sys). runc cannot pivot_root into / itself.
    mkdir -p "$bundle/rootfs"
    mountpoint -q "$bundle/rootfs" || mount --bind / "$bundle/rootfs"
    mount -o remount,bind,ro "$bundle/rootfs"
    rm -f "$bundle/config.json"
    runc spec --bundle "$bundle"
    python3 bench/container/oci-config.py "$bundle"

    # `runc run` deletes the container when its process exits, so one id serves every run.
    runc delete --force labrun-bench-runc >/dev/null 2>&1 || true
    runc_line="runc run --bundle $bundle labrun-bench-runc"
    if check "$runc_line" "$work/check.log"; then
        row "runc" "runc run: pid, net, ipc, uts, mount namespaces, cgroups (v1)" "$runc_line"
    else
        skip "runc" "runc run" "$(reason_of "$work/check.log")"
    fi

    # crun refuses hybrid cgroups (a cgroup2 mount that holds a controller). Then it runs in a
    # mount namespace of its own where /sys/fs/cgroup/unified is unmounted, so it sees cgroup
    # v1 only; nsenter enters that namespace on each run (its cost is the reference row).
    crun_line="crun run --bundle $bundle labrun-bench-crun"
    crun_via=""
    if ! check "$crun_line" "$work/check.log" && grep -q 'hybrid mode' "$work/check.log"; then
        mkdir -p "$nsdir"
        if ! mountpoint -q "$nsdir"; then
            mount --bind "$nsdir" "$nsdir"
            mount --make-private "$nsdir"
        fi
        touch "$nsdir/mnt"
        unshare --mount="$nsdir/mnt" --propagation private umount /sys/fs/cgroup/unified
        crun_via="nsenter --mount=$nsdir/mnt "
    fi
    if check "$crun_via$crun_line" "$work/check.log"; then
        if [ -n "$crun_via" ]; then
            row "crun" "crun run, the same bundle (via nsenter: cgroup v1 only, see above)" \
                "$crun_via$crun_line"
            row "nsenter /bin/true" "nsenter into crun's mount namespace (reference)" \
                "${crun_via}/bin/true"
        else
            row "crun" "crun run, the same bundle" "$crun_line"
        fi
    else
        skip "crun" "crun run, the same bundle" "$(reason_of "$work/check.log")"
    fi

    # podman: runc (see containers.conf), no network, the same read-only root. /sys/fs/cgroup
    # is a tmpfs as in the other rows (runc cannot bind the v1 cpu hierarchy on hybrid hosts).
    # The ulimits are this shell's hard limits: podman's defaults (nofile 1048576) need
    # CAP_SYS_RESOURCE, and podman lowers its own nproc to 32768 before it starts the runtime.
    export CONTAINERS_CONF=$PWD/bench/container/containers.conf
    nproc_limit=$(ulimit -Hu)
    if [ "$nproc_limit" = unlimited ] || [ "$nproc_limit" -gt 32768 ]; then
        nproc_limit=32768
    fi
    nofile_limit=$(ulimit -Hn)
    podman_line="podman run --rm --network none --tmpfs /sys/fs/cgroup"
    podman_line+=" --ulimit nofile=$nofile_limit:$nofile_limit"
    podman_line+=" --ulimit nproc=$nproc_limit:$nproc_limit"
    podman_line+=" --rootfs $bundle/rootfs bash -c 'echo hi'"
    if check "$podman_line" "$work/check.log"; then
        row "podman" "podman run --rm --network none --rootfs (runtime runc)" "$podman_line"
    else
        skip "podman" "podman run --rootfs" "$(reason_of "$work/check.log")"
    fi
fi

step "hyperfine: container start (${#names[@]} rows, $runs runs each)"
args=()
for i in "${!names[@]}"; do
    args+=(-n "${names[$i]}" "${commands[$i]}")
done
# -N: no intermediate shell. -i: a failed run is counted and reported in the table, instead of
# throwing away the other rows' numbers.
hyperfine -N -i --warmup 5 --runs "$runs" --export-json "$results" "${args[@]}"

# hyperfine's CPU column counts only the processes each row's command waited for: what the
# kernel reaps in a PID namespace of bwrap's never reaches it. perf stat counts every task a
# row starts, so the CPU column that compares rows comes from it.
cpu=$work/cpu.tsv
: >"$cpu"
if [ "${BENCH_CPU:-1}" != 0 ] && perf stat -e task-clock -o /dev/null true 2>/dev/null; then
    step "CPU of every task a row starts (perf stat, ${BENCH_CPU_RUNS:-30} runs each)"
    for i in "${!names[@]}"; do
        eval "set -- ${commands[$i]}"
        perf stat -x, -o "$work/perf.csv" -r "${BENCH_CPU_RUNS:-30}" -e task-clock -- "$@" \
            >/dev/null 2>&1 || true
        ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$work/perf.csv")
        printf '%s\t%s\n' "${names[$i]}" "$ms" >>"$cpu"
    done
fi

phases=$out/container-phases.md
if [ "${BENCH_PHASES:-1}" != 0 ] && $labrun_ok && $is_root; then
    step "where labrun's start goes (LABRUN_TRACE=1, ${BENCH_PHASE_RUNS:-30} runs)"
    python3 bench/container/phases.py "$labrun" "$notebook" "${BENCH_PHASE_RUNS:-30}" "$phases"
fi

step "table ($table)"
machine=$(machine_description)
versions="$("$labrun" --version 2>/dev/null | head -1); bwrap $(bwrap --version | awk '{print $2}')"
versions+="; runc $(runc --version | awk 'NR==1 {print $3}'); crun $(crun --version | awk 'NR==1 {print $3}')"
versions+="; podman $(podman --version | awk '{print $3}'); $(hyperfine --version)"
printf '%s\n' "${whats[@]}" >"$work/whats"
printf '%s\n' "${skipped[@]+"${skipped[@]}"}" >"$work/skipped"
python3 - "$results" "$work/whats" "$work/skipped" "$table" "$runs" "$machine" "$versions" "$cpu" <<'EOF'
import datetime, json, statistics, sys
results, whats, skipped, table, runs, machine, versions, cpu = sys.argv[1:]
perf = dict(l.split("\t") for l in open(cpu).read().splitlines() if "\t" in l)
data = json.load(open(results))["results"]
whats = open(whats).read().splitlines()
skipped = [l.split("\t") for l in open(skipped).read().splitlines() if l]
ms = lambda s: s * 1000
fmt = lambda v: f"{v:.1f}" if v >= 10 else f"{v:.2f}"
ceiling = next((r["median"] for r in data if r["command"] == "bwrap + bash"), None)
rows = ["| row | what runs | median | mean ± σ | min … max | CPU, every task (perf) | CPU waited for (hyperfine) | median / bwrap+bash |",
        "|---|---|---|---|---|---|---|---|"]
def cpu_of(name):
    try:
        return f"{fmt(float(perf[name]))} ms"
    except (KeyError, ValueError):
        return "n/a"
for r, what in zip(data, whats):
    failed = sum(1 for c in r.get("exit_codes", []) if c != 0)
    name = f"`{r['command']}`"
    if failed:
        name += f" ({failed} of {len(r['times'])} runs failed)"
    ratio = f"{r['median'] / ceiling:.2f}" if ceiling else "n/a"
    rows.append(f"| {name} | {what} | {fmt(ms(r['median']))} ms | "
                f"{fmt(ms(r['mean']))} ± {fmt(ms(r['stddev'] or 0))} ms | "
                f"{fmt(ms(r['min']))} … {fmt(ms(r['max']))} ms | "
                f"{cpu_of(r['command'])} | {fmt(ms(r['user'] + r['system']))} ms | {ratio} |")
for name, what, reason in skipped:
    rows.append(f"| `{name}` | {what} | n/a: {reason} | | | | | |")
day = datetime.date.today().isoformat()
text = "\n".join(rows) + "\n\n" + (
    f"Measured {day} by `bench/container.sh`: one hyperfine invocation, `-N`, 5 warm-up and "
    f"{runs} measured runs of each row. CPU, every task: the mean task-clock `perf stat` counts "
    f"over every task the row starts, in runs of its own after hyperfine's; CPU waited for: the "
    f"mean user and system time hyperfine counts (the row's process and the children it waited "
    f"for, which leaves out what the kernel reaps in a PID namespace). Machine: {machine}. Versions: {versions}.\n")
open(table, "w").write(text)
print(text, end="")
EOF

# Into the book, between the markers, so that running this again refreshes the page.
replace_between "$book" "<!-- container-start:begin -->" "<!-- container-start:end -->" "$table"
if [ -s "$phases" ] && [ "${BENCH_PHASES:-1}" != 0 ]; then
    replace_between "$book" "<!-- container-phases:begin -->" "<!-- container-phases:end -->" \
        "$phases"
fi
step "written into $book"
