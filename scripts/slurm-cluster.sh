#!/usr/bin/env bash
# A single-node Slurm cluster in a directory of its own, for bench/slurm.sh and
# scripts/test.sh (tests/slurm_cluster does the same from Rust). There is no systemd here, so
# the daemons are started by hand: munged as munge with its own key and socket, slurmctld and
# slurmd on free ports, state and spool in DIR. Needs root and scripts/setup.sh's packages.
#
#   scripts/slurm-cluster.sh start DIR    # then: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm-cluster.sh stop DIR     # kills the daemons by the pids it wrote in DIR
set -euo pipefail

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # WHAT COMMAND...
    local what=$1
    shift
    for _ in $(seq 1 500); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    echo "slurm-cluster: $what did not happen within 10 s (logs in $dir)" >&2
    return 1
}

start() {
    mkdir -p "$dir/munge" "$dir/state" "$dir/spool" /run/munge
    chmod 755 "$dir"
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    chown -R munge:munge "$dir/munge" /run/munge
    setpriv --reuid=munge --regid=munge --clear-groups test -w "$dir/munge" || {
        echo "slurm-cluster: the munge user cannot reach $dir (a parent directory is closed?)" >&2
        return 1
    }
    setpriv --reuid=munge --regid=munge --clear-groups /usr/sbin/munged --foreground \
        --socket="$dir/munge/socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" 2>/dev/null &
    echo $! >"$dir/munged.pid-of-child"
    wait_for "munged's socket" test -S "$dir/munge/socket"
    cat >"$dir/slurm.conf" <<CONF
ClusterName=labrun
SlurmctldHost=$(hostname)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
$(slurmd -C | head -1 | sed 's/ UpTime=.*//')
PartitionName=grade Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -D -i >/dev/null 2>&1 &
    echo $! >"$dir/slurmctld.pid-of-child"
    wait_for "scontrol ping says UP" sh -c 'scontrol ping | grep -q "is UP"'
    slurmd -D >/dev/null 2>&1 &
    echo $! >"$dir/slurmd.pid-of-child"
    # shellcheck disable=SC2016 # the inner shell expands it
    wait_for "the node is idle" sh -c '[ "$(sinfo -h -o %T)" = idle ]'
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        pid=$(cat "$dir/$name.pid-of-child" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$name.pid-of-child"
    done
}

[ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
dir=$(realpath "$2")
case $1 in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
