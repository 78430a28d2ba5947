#!/usr/bin/env bash
# The requeue path of launch/slurm/train.sbatch under real Slurm, with a
# stand-in ctrain (fake_ctrain.sh), so it runs without the trainer: the
# time-limit warning (sent here by hand: scancel --batch --signal=USR1)
# must reach every rank through srun, the script must requeue the job, and
# the second start must pass checkpoint.resume=auto and append to the same
# log, the job ending COMPLETED with one restart. A trainer that fails
# without a signal must fail the job instead. Exits 77 when no cluster
# answers. The exit code is the verdict.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
. "$HERE/slurm_lib.sh"
slurm_up || { echo "test_requeue: no Slurm cluster answers (run tests/slurm/setup.sh); skipped"; exit 77; }

WORK=${CT_TEST_TMP:-/tmp}/slurm_requeue.$$
rm -rf "$WORK" && mkdir -p "$WORK/logs"
FAILURES=0 CHECKS=0
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }
expect_log() {   # expect_log COUNT PATTERN: the log has COUNT lines with PATTERN
    local n; n=$(grep -cF -- "$2" "$log" 2>/dev/null); n=${n:-0}
    [ "$n" -eq "$1" ] && pass || fail "log has $n lines with '$2', want $1"
}

echo "model: {}" > "$WORK/cfg.yaml"
# Small sizes override the #SBATCH lines; the warning is moved to 10 s
# before the limit so that only our signal arrives during the test.
id=$(cd "$WORK" && CTRAIN="$HERE/fake_ctrain.sh" timeout 30 sbatch --parsable -J ct-requeue \
        --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=3 --signal=B:USR1@10 \
        "$SRC/launch/slurm/train.sbatch" "$WORK/cfg.yaml" --set train.steps=7 2>&1) \
    || { echo "FAIL: sbatch: $id" >&2; exit 1; }
log=$WORK/logs/ct-requeue-$id.out

if wait_log "$log" "waiting" 2 60; then
    pass
    timeout 10 scancel --batch --signal=USR1 "$id" || fail "scancel --signal=USR1 failed"
else
    fail "ranks did not start within 60 s (state $(job_field "$id" JobState))"
fi
# requeue waits for the credential to expire (cred_expire=10 in setup.sh)
state=$(wait_job "$id" 150)
[ "$state" = COMPLETED ] && pass || fail "job $id ended $state"
[ "$(job_field "$id" Restarts)" = 1 ] && pass || fail "Restarts=$(job_field "$id" Restarts), want 1"

args="args: train $WORK/cfg.yaml --set checkpoint.resume=auto --set train.steps=7"
expect_log 2 "restart 0 omp 1 $args"
expect_log 2 "got SIGUSR1"
expect_log 1 "ctrain.sbatch: scontrol requeue $id"
expect_log 2 "restart 1 omp 1 $args"
expect_log 2 "done"
expect_log 0 "never got SIGUSR1"
[ $FAILURES -eq 0 ] || { echo "--- $log" >&2; tail -n 30 "$log" >&2; }

# A trainer that fails without a signal fails the job: no requeue.
id=$(cd "$WORK" && CTRAIN=/bin/false timeout 30 sbatch --parsable -J ct-fail --nodes=1 \
        --ntasks-per-node=2 --cpus-per-task=1 --time=1 "$SRC/launch/slurm/train.sbatch" cfg.yaml 2>&1) \
    || { fail "sbatch: $id"; id=0; }
state=$(wait_job "$id" 90)
[ "$state" = FAILED ] && pass || fail "failing job $id ended $state, want FAILED"
[ "$(job_field "$id" Restarts)" = 0 ] && pass || fail "failing job requeued: Restarts=$(job_field "$id" Restarts)"

echo "test_requeue: $CHECKS checks, $FAILURES failed"
[ $FAILURES -eq 0 ] && rm -rf "$WORK"
[ $FAILURES -eq 0 ]
