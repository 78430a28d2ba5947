#!/usr/bin/env bash
# Stops what tests/slurm/setup.sh started: slurmd and slurmctld (by their
# pid files), then munged if setup.sh started it. --keep-munge leaves munged
# running (setup.sh uses it before a restart). Bounded: SIGTERM, up to 15 s,
# then SIGKILL. Safe to run when nothing is running.
set -uo pipefail
[ "$(id -u)" = 0 ] || exec sudo -E bash "$0" "$@"
STATE=/run/ctrain-slurm

stop_pidfile() {   # stop_pidfile NAME PIDFILE
    local pid
    [ -s "$2" ] || return 0
    pid=$(cat "$2")
    # Only that daemon: a stale pid file may name a reused pid.
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
        echo "slurm-teardown: stopping $1 ($pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$2"
}

# Jobs first, so no slurmstepd outlives its slurmd.
if [ -e $STATE/slurm ] && command -v scancel >/dev/null; then
    timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
    for _ in $(seq 20); do
        [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
    done
fi
stop_pidfile slurmd /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
rm -f $STATE/slurm

if [ "${1:-}" != --keep-munge ] && [ -e $STATE/munged ]; then
    stop_pidfile munged /run/munge/munged.pid
    rm -f $STATE/munged
fi
exit 0
