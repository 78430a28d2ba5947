#!/usr/bin/env bash
# Proves the Slurm + PMIx + Open MPI wiring with a tiny MPI program, before
# any ctrain code is involved: `srun --mpi=pmix -n 2` must give two ranks of
# one world that can all-reduce, and an sbatch job doing the same must end
# COMPLETED with that output. Needs a cluster (tests/slurm/setup.sh); exits
# 77 (skipped) when none answers. The exit code is the verdict.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/slurm_lib.sh"
slurm_up || { echo "test_hello: no Slurm cluster answers (run tests/slurm/setup.sh); skipped"; exit 77; }
command -v mpicc >/dev/null || { echo "test_hello: no mpicc; skipped"; exit 77; }

WORK=${CT_TEST_TMP:-/tmp}/slurm_hello.$$
rm -rf "$WORK" && mkdir -p "$WORK"
FAILURES=0 CHECKS=0
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }

mpicc -O1 -o "$WORK/mpi_hello" "$HERE/mpi_hello.c" || { echo "FAIL: mpicc" >&2; exit 1; }

# both ranks of a world of 2, and the all-reduce agreed
check_hello() {   # check_hello NAME OUTPUT
    for r in 0 1; do
        grep -q "^hello rank $r of 2 on .* allreduce 1 ok$" <<<"$2" && pass \
            || { fail "$1: no 'rank $r of 2 ... ok' line"; echo "$2" | tail -8 >&2; }
    done
}

# 1. interactive step: srun allocates, launches and wires PMIx itself
out=$(cd "$WORK" && timeout 90 srun --mpi=pmix -n 2 -t 1 -J ct-hello ./mpi_hello 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "srun --mpi=pmix -n 2 exited $rc"
check_hello srun "$out"

# 2. batch job: the same step inside sbatch, waited for with a bound
cat > "$WORK/hello.sbatch" <<'SB'
#!/usr/bin/env bash
#SBATCH --job-name=ct-hello-batch
#SBATCH --ntasks=2
#SBATCH --time=1
#SBATCH --output=hello-%j.out
srun --mpi=pmix ./mpi_hello
SB
id=$(timeout 30 sbatch --parsable --chdir="$WORK" "$WORK/hello.sbatch" 2>&1) \
    || { fail "sbatch: $id"; id=; }
if [ -n "$id" ]; then
    state=$(wait_job "$id" 120)
    [ "$state" = COMPLETED ] && pass || fail "batch job $id ended $state"
    [ "$(job_field "$id" ExitCode)" = 0:0 ] && pass || fail "batch job exit code $(job_field "$id" ExitCode)"
    check_hello sbatch "$(cat "$WORK/hello-$id.out" 2>&1)"
fi

echo "test_hello: $CHECKS checks, $FAILURES failed"
[ $FAILURES -eq 0 ] && rm -rf "$WORK"
[ $FAILURES -eq 0 ]
