#!/usr/bin/env bash
# A stand-in for the ctrain binary, for test_requeue.sh: each rank logs its
# arguments and the job's restart count. On the first start it waits (at
# most 60 s) for SIGUSR1 and exits 0 on it, as ctrain's graceful save will;
# after a requeue it exits 0 at once, as a resumed run that is done would.
r=${SLURM_PROCID:-?}
echo "fake-ctrain rank $r restart ${SLURM_RESTART_COUNT:-0} omp ${OMP_NUM_THREADS:-unset} args: $*"
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
    got=
    trap 'got=1' USR1
    echo "fake-ctrain rank $r waiting"
    # Short sleeps in the background: `wait` returns as soon as USR1 lands,
    # and Slurm also signals the sleep itself (every process of the step).
    end=$((SECONDS + 60))
    while [ -z "$got" ] && [ $SECONDS -lt $end ]; do sleep 1 & wait $!; done
    [ -n "$got" ] || { echo "fake-ctrain rank $r never got SIGUSR1"; exit 3; }
    echo "fake-ctrain rank $r got SIGUSR1"
    exit 0
fi
echo "fake-ctrain rank $r done"
