#!/usr/bin/env bash
# A real 2-rank data-parallel ctrain job through launch/slurm/train.sbatch:
# the first job stops at step 10 with a checkpoint (as a preempted job
# would), the second, submitted the same way, must resume from it through
# the script's checkpoint.resume=auto and finish step 20. Both must end
# COMPLETED with exit 0, and the log must show the 2-rank steps and the
# checkpoints. Then preemption by SIGUSR1 (requeue) and by scancel (SIGTERM
# within KillWait). Every wait is bounded. Exits 77 when no cluster answers.
# usage: test_sbatch.sh PATH/TO/ctrain
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/slurm_lib.sh"
: "${1:?usage: $0 PATH/TO/ctrain}"
slurm_up || { echo "test_sbatch: no Slurm cluster answers (run tests/slurm/setup.sh); skipped"; exit 77; }
. "$HERE/../integration/lib.sh"      # CTRAIN, SRC, WORK, fail/pass/finish, make_corpus, write_config
CTRAIN=$(cd "$(dirname "$CTRAIN")" && pwd)/$(basename "$CTRAIN")   # the job runs in $WORK

make_corpus "$WORK/data" 512 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 512
mkdir -p "$WORK/logs"
CKPT=$WORK/run/ckpt

# submit NAME [ctrain args]: prints the job id. Sizes override the #SBATCH
# lines; the time-limit warning moves to 30 s before the 2-minute limit.
submit() {
    local name=$1; shift
    (cd "$WORK" && CTRAIN=$CTRAIN timeout 30 sbatch --parsable -J "$name" \
        --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=2 --signal=B:USR1@30 \
        "$SRC/launch/slurm/train.sbatch" cfg.yaml \
        --set parallel.dp=2 --set parallel.tp=1 --set comm.timeout_s=60 "$@")
}
# run_job NAME [ctrain args]: submits, waits (bounded), checks COMPLETED
# and exit 0; sets $log.
run_job() {
    local name=$1 id state; shift
    id=$(submit "$name" "$@" 2>&1) || { fail "sbatch $name: $id"; log=/dev/null; return; }
    log=$WORK/logs/$name-$id.out
    state=$(wait_job "$id" 180)
    [ "$state" = COMPLETED ] && pass || fail "$name: job $id ended $state"
    [ "$(job_field "$id" ExitCode)" = 0:0 ] && pass || fail "$name: exit code $(job_field "$id" ExitCode)"
    [ $FAILURES -eq 0 ] || { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
}
expect_log() {   # expect_log NAME REGEX
    grep -qE -- "$2" "$log" && pass || fail "$1: log lacks /$2/"
}

# 1. first half: 10 steps on 2 ranks, then a checkpoint and a clean exit
run_job ct-dp-first --stop-at 10
expect_log first "r0/2 .*step 10/20 \| loss"
expect_log first "saved checkpoint .*step_00000010"
[ -f "$CKPT/step_00000010/manifest.yaml" ] && pass || fail "first: no checkpoint at step 10"
[ ! -e "$CKPT/step_00000020" ] && pass || fail "first: ran past --stop-at 10"

# 2. the same submission again resumes (checkpoint.resume=auto) and ends
run_job ct-dp-second
expect_log second "resumed from .*step_00000010 at step 10"
expect_log second "r0/2 .*step 20/20 \| loss"
[ -f "$CKPT/step_00000020/manifest.yaml" ] && pass || fail "second: no checkpoint at step 20"
n=$(grep -c '"loss"' "$WORK/run/metrics.jsonl" 2>/dev/null); n=${n:-0}
[ "$n" -eq 20 ] && pass || fail "metrics.jsonl has $n loss lines over both jobs, want 20"

# 3. preemption: `scancel --signal=USR1 --batch` mid-run. The script forwards
# the signal to the ranks, they finish the step, save together and exit;
# the script requeues the job, which resumes and ends with the same final
# loss as an uninterrupted run (the same 2-rank layout: bit for bit).
PRE=(--set train.run_dir="$WORK/pre" --set train.steps=1000 --set model.n_embd=128 --set eval.every=0)
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout 300 \
    mpirun -np 2 --oversubscribe "$CTRAIN" train "$WORK/cfg.yaml" --set parallel.dp=2 \
    "${PRE[@]}" --set train.run_dir="$WORK/ref" > "$WORK/ref.log" 2>&1 || fail "reference run: $(tail -2 "$WORK/ref.log")"
id=$(submit ct-preempt "${PRE[@]}" 2>&1) || fail "sbatch ct-preempt: $id"
log=$WORK/logs/ct-preempt-$id.out
wait_log "$WORK/pre/metrics.jsonl" '"loss"' 20 120 || fail "preempt: the job made no progress"
timeout 10 scancel --signal=USR1 --batch "$id" || fail "scancel --signal=USR1 failed"
state=$(wait_job "$id" 240)
[ "$state" = COMPLETED ] && pass || fail "preempt: job $id ended $state"
expect_log preempt "saving a checkpoint at step"
expect_log preempt "scontrol requeue $id"
expect_log preempt "resumed from .*step_[0-9]+ at step"
expect_log preempt "r0/2 .*step 1000/1000 \| loss"
last() { grep -o '"step":1000,"loss":[^,]*' "$1" | tail -1; }
[ -n "$(last "$WORK/ref/metrics.jsonl")" ] && [ "$(last "$WORK/pre/metrics.jsonl")" = "$(last "$WORK/ref/metrics.jsonl")" ] \
    && pass || fail "preempt: final loss $(last "$WORK/pre/metrics.jsonl") != uninterrupted $(last "$WORK/ref/metrics.jsonl")"
[ $FAILURES -eq 0 ] || { echo "--- $log" >&2; tail -n 20 "$log" >&2; }

# 4. a plain `scancel` mid-run: Slurm sends SIGTERM to every rank at once and
# SIGKILL KillWait (10 s here) later. The ranks save a checkpoint within
# that, the job stays cancelled, and the script passed KillWait on, so
# ctrain found the time sufficient and did not warn.
CAN=(--set train.run_dir="$WORK/can" --set train.steps=1000 --set model.n_embd=128 --set eval.every=0)
id=$(submit ct-cancel "${CAN[@]}" 2>&1) || fail "sbatch ct-cancel: $id"
log=$WORK/logs/ct-cancel-$id.out
wait_log "$WORK/can/metrics.jsonl" '"loss"' 20 120 || fail "cancel: the job made no progress"
timeout 10 scancel "$id" || fail "scancel failed"
state=$(wait_job "$id" 60)
[ "$state" = CANCELLED ] && pass || fail "cancel: job $id ended $state, want CANCELLED"
wait_log "$log" "saved checkpoint" 1 30   # the state changes before the ranks are done
expect_log cancel "signal Terminated: saving a checkpoint at step"
at=$(grep -o 'saving a checkpoint at step [0-9]*' "$log" | head -1 | grep -o '[0-9]*$')
[ -n "$at" ] && [ -f "$WORK/can/ckpt/step_$(printf %08d "$at")/manifest.yaml" ] && pass \
    || fail "cancel: no complete checkpoint at step ${at:-?}"
grep -q 'would lose the work' "$log" && fail "cancel: warned although KillWait suffices" || pass
[ $FAILURES -eq 0 ] || { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
finish
