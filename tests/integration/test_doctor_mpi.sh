#!/usr/bin/env bash
# `ctrain doctor` on a real 2-rank job. A good setup exits 0 with every check
# OK on both ranks, and one bandwidth line for its one node (tests/multinode
# checks the two-node lines); each broken setup exits 1 and names the failing check:
#  - data.train names no shard;
#  - train.run_dir lies under a regular file (mkdir fails even as root);
#  - world size != parallel.dp * parallel.tp.
. "$(dirname "$0")/lib.sh"
setup_mpi_test 20 || { finish; exit 1; }
C="$WORK/cfg.yaml"
DP2=(--set parallel.dp=2)

# expect_row OUT RANK CHECK STATUS: the table has that row.
expect_row() {
    CHECKS=$((CHECKS + 1))
    grep -Eq "^$2 +[^ ]+ +$3 +$4 " <<<"$1" || { fail "no row: rank $2 $3 $4"; echo "$1" | tail -15 >&2; }
}

# a good setup
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/good" "${DP2[@]}" 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 0 ] || { fail "good setup: exit $rc"; echo "$out" | tail -20 >&2; }
# 2 ranks on one node with one thread each; a single-core machine warns
dev=OK; [ "$(nproc --all)" -lt 2 ] && dev=WARN
for r in 0 1; do
    for chk in mpi allreduce.world allreduce.dp allreduce.tp allreduce.node allreduce.inter \
        data.train data.val ckpt_dir; do
        expect_row "$out" $r "$chk" OK
    done
    expect_row "$out" $r device "$dev"
    expect_row "$out" $r allreduce.tp_gpu SKIP   # no GPU: the row says so
    # Open MPI's default kill timeout (1 s) leaves no time to save after SIGTERM
    expect_row "$out" $r preempt WARN
done
grep -q "ckpt_dir .*32 MiB probe written and fsync'd at [0-9]* MB/s" <<<"$out" && pass \
    || fail "good setup: no write speed"
grep -q "preempt .*kill timeout 1 s < a step + .*OMPI_MCA_odls_base_sigkill_timeout=[0-9]" <<<"$out" && pass \
    || fail "good setup: the preempt warning does not say what to set"
# a kill timeout that leaves time, and launch/mpirun.sh's forwarding: OK
for env in OMPI_MCA_odls_base_sigkill_timeout=60 CT_LAUNCHER=mpirun.sh; do
    out2=$(env $env timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/good" \
        "${DP2[@]}" 2>&1)
    for r in 0 1; do expect_row "$out2" $r preempt OK; done
done
grep -q "allreduce.dp .*exact sum over 2 ranks; 16 MiB: [0-9]* MB/s" <<<"$out" && pass \
    || fail "good setup: no all-reduce bandwidth"
grep -q "cpu, 1 OpenMP threads" <<<"$out" && pass || fail "good setup: no thread count"
grep -Eq "allreduce.tp_gpu +SKIP +skipped: no CUDA device on this rank" <<<"$out" && pass \
    || fail "good setup: the GPU TP row does not say why it was skipped"
# one node: its all-reduce is over both ranks, and there is no link between nodes
host=$(hostname -s)
grep -q "allreduce.node .*exact sum over 2 ranks of node $host; 16 MiB: [0-9]* MB/s" <<<"$out" && pass \
    || fail "good setup: no all-reduce within the node"
grep -q "allreduce.inter .*one node: no link between nodes" <<<"$out" && pass || fail "good setup: inter row"
grep -q "^doctor: node $host: 2 ranks, all-reduce within the node [0-9]* MB/s busbw" <<<"$out" && pass \
    || fail "good setup: no per-node bandwidth line"
grep -q "doctor: all 22 checks passed on 2 ranks (with warnings)" <<<"$out" && pass || fail "good setup: no summary"
[ -z "$(ls -A "$WORK/good/ckpt")" ] && pass || fail "good setup: probe files left in ckpt/"

# a data.train that does not exist: both ranks fail the data check with the cause
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/nodata" "${DP2[@]}" \
    --set data.train="$WORK/nowhere/shard_*.bin" 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 1 ] || { fail "missing data: exit $rc, expected 1"; echo "$out" | tail -10 >&2; }
for r in 0 1; do expect_row "$out" $r data.train FAIL; expect_row "$out" $r ckpt_dir OK; done
grep -q "data.train .*nowhere/shard_" <<<"$out" && pass || fail "missing data: path not named in the table"
grep -q "checks FAILED on 2 ranks" <<<"$out" && pass || fail "missing data: no summary"

# an unwritable run_dir: a path under a regular file
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/cfg.yaml/x" "${DP2[@]}" 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 1 ] || { fail "unwritable run_dir: exit $rc, expected 1"; echo "$out" | tail -10 >&2; }
for r in 0 1; do expect_row "$out" $r ckpt_dir FAIL; expect_row "$out" $r data.train OK; done
grep -q "ckpt_dir .*cannot create directory $WORK/cfg.yaml/x: Not a directory" <<<"$out" && pass \
    || fail "unwritable run_dir: cause not in the table"

# world size != dp * tp: MPI check fails on every rank
expect_fail "world != dp*tp" "world size 2 does not match parallel.dp 1 x parallel.tp 1" \
    "doctor: FAIL mpi on" -- \
    timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/world" --set parallel.dp=1
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/world" --set parallel.dp=1 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 1 ] || fail "world != dp*tp: exit $rc, expected 1"
for r in 0 1; do
    grep -q "doctor: FAIL mpi on .* rank $r:" <<<"$out" && pass || fail "world != dp*tp: rank $r does not report it"
done

# tp = 2 also passes, with the tp group of 2 and dp groups of 1
out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" doctor "$C" --set train.run_dir="$WORK/tp" --set parallel.tp=2 2>&1); rc=$?
CHECKS=$((CHECKS + 1))
[ $rc -eq 0 ] || { fail "tp=2: exit $rc"; echo "$out" | tail -20 >&2; }
grep -q "allreduce.tp .*exact sum over 2 ranks" <<<"$out" && pass || fail "tp=2: tp all-reduce not over 2 ranks"
grep -q "allreduce.dp .*exact sum over 1 rank;" <<<"$out" && pass || fail "tp=2: dp all-reduce not over 1 rank"

# usage
"$CTRAIN" doctor --help | grep -q "usage: ctrain doctor" && pass || fail "--help"
"$CTRAIN" doctor >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "no config: expected exit 2"
finish
