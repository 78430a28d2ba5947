#!/usr/bin/env bash
# PID 1 of an MPI Operator worker pod (see mpijob.yaml): runs the ssh daemon
# that the launcher's mpirun reaches the worker through, and turns the pod's
# SIGTERM into a checkpoint instead of lost work.
#
#   worker-entry.sh [DAEMON [ARGS...]]     default: /usr/sbin/sshd -De
#
# Kubernetes stops a pod (job deleted, node drained, preempted) by sending
# SIGTERM to PID 1 alone and SIGKILL to every process of the pod
# terminationGracePeriodSeconds later. A daemon as PID 1 would exit at once
# and take the ranks with it, since the container ends with its PID 1. This
# script instead sends SIGUSR1 to the ctrain ranks of this pod (the ranks
# agree over MPI to stop after the same step, so signalling some of them is
# enough), waits until they have saved their checkpoint and exited, then
# stops the daemon and exits 0. Set terminationGracePeriodSeconds above the
# time of a step plus a checkpoint save.
set -u
[ $# -gt 0 ] || set -- /usr/sbin/sshd -De

ranks() { pgrep -x ctrain; }   # this pod's: the container has its own PID namespace

stopping=0
on_term() {
    [ "$stopping" = 0 ] || return
    stopping=1
    local pids
    pids=$(ranks | tr '\n' ' ')
    echo "worker-entry.sh: SIGTERM: asking the ranks of this pod (${pids:-none}) to save and stop" >&2
    [ -n "$pids" ] && kill -USR1 $pids 2>/dev/null
    local t0=$SECONDS
    while [ -n "$(ranks)" ]; do sleep 0.2; done
    echo "worker-entry.sh: the ranks exited after $((SECONDS - t0)) s; stopping $1" >&2
    kill -TERM "$daemon" 2>/dev/null
}

"$@" &
daemon=$!
trap 'on_term "$1"' TERM
rc=0
while :; do   # `wait` returns early when the trap runs; wait again until the daemon ends
    wait "$daemon" || rc=$?
    kill -0 "$daemon" 2>/dev/null || break
done
[ "$stopping" = 1 ] && exit 0
exit "$rc"
