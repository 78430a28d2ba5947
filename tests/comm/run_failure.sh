#!/usr/bin/env bash
# Runs mpi_failure under mpirun with 2 ranks and checks that a failed rank
# fails the job, fast, with a message that says what happened:
#   hang, stop: rank 1 never enters the all-reduce; rank 0's watchdog
#               (timeout 2 s) must end the job, naming the collective, the
#               group, the activity and rank 1, and saying whether rank 1
#               answers (hang: it runs, outside any collective) or not
#               (stop);
#   kill:       rank 1 dies by SIGKILL; mpirun must end the job and name
#               rank 1 (the watchdog timeout is 30 s, so it is not the one).
# usage: run_failure.sh hang|stop|kill MPIEXEC MPI_FAILURE_BINARY [NUMPROC_FLAG]
set -u
mode=$1 mpiexec=$2 bin=$3 npflag=${4:--np}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

case $mode in
  hang|stop) watchdog_s=2 ;;
  kill) watchdog_s=30 ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
timeout --kill-after=10 60 "$mpiexec" "$npflag" 2 --oversubscribe "$bin" "$mode" "$watchdog_s" >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
echo "run_failure.sh $mode: exit status $rc after ${elapsed} s"

fail() { echo "FAIL run_failure.sh $mode: $*"; exit 1; }
[ "$rc" -ne 0 ] || fail "the job exited 0"
# 124: the outer timeout ended it (137 too, after --kill-after, caught below).
[ "$rc" -ne 124 ] || fail "the job was still running after 60 s"
[ "$elapsed" -le 20 ] || fail "the job took ${elapsed} s to fail"
case $mode in
  hang|stop)
    grep -q "r0/2 ERROR rank 0: collective #4 (allreduce on group dp) has not completed after" "$out" \
      || fail "rank 0 did not report the hung all-reduce (the 4th on dp)"
    # The side channel tells a stopped rank from one that runs elsewhere.
    if [ "$mode" = hang ]; then
      named="has not entered" why="it is not in a collective (it has entered 3 on dp) while step 3: dp gradient all-reduce"
    else
      named="holds up" why="it does not answer on the side channel"
    fi
    grep -q "while step 3: dp gradient all-reduce; rank 1 (host [^,]*, pid [0-9]*) $named collective #4 (allreduce on dp)" "$out" \
      || fail "the report does not name the activity and rank 1"
    grep -qF "$why" "$out" || fail "the report does not say '$why'"
    ;;
  kill)
    # Open MPI: "mpirun noticed that process rank 1 with PID ... exited on signal 9 (Killed)."
    grep -Eq "process rank 1 .*signal 9" "$out" || fail "mpirun's report does not name rank 1"
    if grep -q "has not completed" "$out"; then fail "the watchdog fired; mpirun should have ended the job"; fi
    ;;
esac
echo "ok run_failure.sh $mode"
