#!/usr/bin/env bash
# Config errors under mpirun name each rank: the config is read before MPI
# starts, so the log label comes from the launcher's environment
# (OMPI_COMM_WORLD_RANK/SIZE here). Before, every rank said r0/1.
. "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=${MPIEXEC:-mpirun}
printf 'model:\n  n_layr: 4\n' > "$WORK/bad.yaml"

out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" train "$WORK/bad.yaml" 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -ne 0 ] || fail "a bad config exited 0 under mpirun"
for r in 0 1; do
    grep -qE " r$r/2 ERROR config error: .*bad.yaml:2: unknown key 'model.n_layr'" <<<"$out" && pass \
        || { fail "rank $r's config error is not labelled r$r/2"; echo "$out" | tail -8 >&2; }
done
grep -q " r0/1 " <<<"$out" && fail "a line still says r0/1" || pass

# a bad --set is labelled the same way
printf 'model:\n  n_layer: 4\n' > "$WORK/good.yaml"
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" train "$WORK/good.yaml" --set train.steps=0 2>&1)
grep -qE " r1/2 ERROR config error: --set train.steps=0: train.steps: '0' is out of range" <<<"$out" \
    && pass || { fail "--set error not labelled r1/2"; echo "$out" | tail -8 >&2; }
finish
