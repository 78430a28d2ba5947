#!/usr/bin/env bash
# launch/mpirun.sh without Slurm: the rank count from the config's
# parallel.dp * parallel.tp (block and flow YAML, `--set` overrides, $NP),
# real 2- and 4-rank worlds with mpi_hello standing in for ctrain, and the
# command it builds (environment passed by name only, the user's --map-by
# replacing the default, --allow-run-as-root only for root), and its refusal
# of a PPN that would split TP groups over nodes. Exits 77 when
# there is no mpicc. The exit code is the verdict.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
LAUNCH=$HERE/../../launch/mpirun.sh
command -v mpicc >/dev/null || { echo "test_mpirun: no mpicc; skipped"; exit 77; }
WORK=${CT_TEST_TMP:-/tmp}/slurm_mpirun.$$
rm -rf "$WORK" && mkdir -p "$WORK"
FAILURES=0 CHECKS=0
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }
mpicc -O1 -o "$WORK/mpi_hello" "$HERE/mpi_hello.c" || { echo "FAIL: mpicc" >&2; exit 1; }
export CTRAIN=$WORK/mpi_hello

printf 'model: {n_layer: 2}\nparallel:\n  dp: 2  # replicas\n  tp: 1\n' > "$WORK/block.yaml"
printf 'parallel: {tp: 2, dp: 3}\n' > "$WORK/flow.yaml"
echo 'model: {n_layer: 2}' > "$WORK/none.yaml"

world() {   # world WANT ARGS...: every rank of the run reports a world of WANT
    local want=$1 out; shift
    out=$(timeout 60 "$LAUNCH" "$@" 2>&1)
    [ "$(grep -c "^hello rank [0-9]* of $want on .* ok$" <<<"$out")" -eq "$want" ] && pass \
        || { fail "mpirun.sh $*: want $want ranks of $want"; echo "$out" | tail -5 >&2; }
}
world 2 "$WORK/block.yaml"
world 4 "$WORK/block.yaml" -- --set parallel.tp=2      # more ranks than cores here: unbound
world 1 "$WORK/none.yaml"
NP=2 world 2 "$WORK/none.yaml"

dry() { CT_DRY_RUN=1 "$LAUNCH" "$@" 2>&1; }
np_of() { dry "$@" | grep -o -- '-np [0-9]*' | cut -d' ' -f2; }
[ "$(np_of "$WORK/flow.yaml")" = 6 ] && pass || fail "flow-style dp 3 tp 2: -np $(np_of "$WORK/flow.yaml")"
[ "$(np_of "$WORK/flow.yaml" -- --set parallel.dp=1)" = 2 ] && pass || fail "--set parallel.dp=1 ignored"
out=$(CT_MARKER=1 AWS_SECRET_ACCESS_KEY=do-not-print dry "$WORK/block.yaml" --map-by slot -- --set a.b=c)
grep -q -- '-x CT_MARKER' <<<"$out" && pass || fail "CT_* not passed: $out"
grep -q -- '-x AWS_SECRET_ACCESS_KEY' <<<"$out" && ! grep -q do-not-print <<<"$out" && pass \
    || fail "AWS_* must pass by name only: $out"
[ "$(grep -o -- '--map-by [^ ]*' <<<"$out")" = "--map-by slot" ] && ! grep -q -- '--bind-to' <<<"$out" && pass \
    || fail "user --map-by must replace the default: $out"
grep -q 'train .*block.yaml --set a.b=c *$' <<<"$out" && pass || fail "ctrain args lost: $out"
if [ "$(id -u)" = 0 ]; then grep -q -- --allow-run-as-root <<<"$out"; else ! grep -q -- --allow-run-as-root <<<"$out"; fi \
    && pass || fail "--allow-run-as-root must follow the user id: $out"

# TP groups inside a node: PPN ranks per node (GPUs per node) must hold whole
# TP groups when the job spans nodes (flow.yaml: tp 2, 6 ranks)
out=$(PPN=3 dry "$WORK/flow.yaml"); rc=$?
[ $rc -eq 2 ] && grep -q "parallel.tp=2 does not divide PPN=3 ranks per node" <<<"$out" && pass \
    || fail "PPN=3 with tp=2 over two nodes: exit $rc, want 2 and the cause: $out"
out=$(PPN=2 dry "$WORK/flow.yaml") && grep -q -- '--map-by ppr:2:node' <<<"$out" && pass \
    || fail "PPN=2 with tp=2: $out"
out=$(PPN=3 dry "$WORK/flow.yaml" --map-by ppr:3:node) && pass \
    || fail "the user's --map-by is theirs (ctrain checks the layout at start): $out"

echo "test_mpirun: $CHECKS checks, $FAILURES failed"
[ $FAILURES -eq 0 ] && rm -rf "$WORK"
[ $FAILURES -eq 0 ]
