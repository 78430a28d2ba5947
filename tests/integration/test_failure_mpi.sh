#!/usr/bin/env bash
# Failure paths of a multi-rank job. Each must end with a non-zero exit
# status, within the collective timeout (never a hang), and name the rank
# and the cause:
#  - world size != dp * tp, and n_head not divisible by tp;
#  - one rank given an unreadable shard;
#  - a rank killed with SIGKILL mid-run;
#  - a rank hung (SIGSTOP) mid-run: its peers' collectives time out, and
#    rank 0 names rank 1 with its pid.
. "$(dirname "$0")/lib.sh"
setup_mpi_test 5 || { finish; exit 1; }
C="$WORK/cfg.yaml"

expect_fail "world != dp*tp" "world size 2 does not match parallel.dp 1 x parallel.tp 1" -- \
    timeout 60 "$MPIRUN" -np 2 "$CTRAIN" train "$C" --set train.run_dir="$WORK/a"
expect_fail "n_head % tp" "model.n_head = 4" "parallel.tp = 3" -- \
    timeout 60 "$MPIRUN" -np 3 "$CTRAIN" train "$C" --set train.run_dir="$WORK/b" --set parallel.tp=3

# rank 1 alone gets a shard it cannot read (MPMD launch)
touch "$WORK/locked.bin" && chmod 000 "$WORK/locked.bin"
bad="$WORK/locked.bin"
[ "$(id -u)" = 0 ] && { rm -f "$bad"; bad="$WORK/data/missing_shard.bin"; } # root reads anything
start=$(date +%s)
expect_fail "one rank's shard" "r1/2 ERROR" "$(basename "$bad")" "training failed on rank 1" -- \
    timeout 60 "$MPIRUN" -np 1 "$CTRAIN" train "$C" --set train.run_dir="$WORK/c" --set parallel.dp=2 \
    : -np 1 "$CTRAIN" train "$C" --set train.run_dir="$WORK/c" --set parallel.dp=2 --set data.train="$bad"
[ $(( $(date +%s) - start )) -lt 30 ] && pass || fail "unreadable shard took $(( $(date +%s) - start )) s to end the job"

# long runs for the kill and hang cases
long=(--set train.steps=100000 --set eval.every=0 --set parallel.dp=2)
launch() { # LOG: start a 2-rank job in the background, find rank 1's pid
    "$MPIRUN" -np 2 "$CTRAIN" train "$C" --set train.run_dir="$WORK/$1" "${long[@]}" > "$WORK/$1.log" 2>&1 &
    JOB=$!
    PID1=
    for _ in $(seq 100); do
        if grep -q "step 5/" "$WORK/$1.log" 2>/dev/null; then
            for p in $(pgrep -f "run_dir=$WORK/$1 "); do
                tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && PID1=$p
            done
            [ -n "$PID1" ] && return 0
        fi
        sleep 0.2
    done
    return 1
}
wait_job() { # seconds within which the job must end; sets RC
    local limit=$1 t=0
    while kill -0 $JOB 2>/dev/null && [ $t -lt $((limit * 10)) ]; do sleep 0.1; t=$((t + 1)); done
    if kill -0 $JOB 2>/dev/null; then kill -9 $JOB; RC=hang; else wait $JOB; RC=$?; fi
}

if launch killed; then
    kill -9 "$PID1"
    wait_job 20
    [ "$RC" != hang ] && [ "$RC" != 0 ] && pass || fail "killed rank: job exit '$RC'"
    grep -q "rank 1" "$WORK/killed.log" && pass || { fail "killed rank: rank 1 not named"; tail -5 "$WORK/killed.log" >&2; }
else
    fail "killed rank: job did not start: $(tail -3 "$WORK/killed.log")"; kill -9 $JOB 2>/dev/null
fi

if launch hung; then
    kill -STOP "$PID1"
    wait_job 30
    kill -9 "$PID1" 2>/dev/null
    [ "$RC" != hang ] && [ "$RC" != 0 ] && pass || fail "hung rank: job exit '$RC'"
    grep -q "r0/2 ERROR .*has not completed after 5 s" "$WORK/hung.log" && pass \
        || { fail "hung rank: no timeout message from rank 0"; tail -5 "$WORK/hung.log" >&2; }
    grep -Eq "r0/2 ERROR .*has not completed after 5 s.*; rank 1 \(host [^,]*, pid $PID1\) (holds up|has not entered)" \
        "$WORK/hung.log" && pass || { fail "hung rank: rank 0 does not name rank 1"; tail -5 "$WORK/hung.log" >&2; }
else
    fail "hung rank: job did not start: $(tail -3 "$WORK/hung.log")"; kill -9 $JOB 2>/dev/null
fi
finish
