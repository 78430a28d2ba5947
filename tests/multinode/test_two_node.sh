#!/usr/bin/env bash
# Two nodes for real, on one machine: two network namespaces, each with its
# own address on a private bridge and its own hostname (tests/multinode/
# netns.sh), and Open MPI over TCP with a hostfile naming them; mpirun
# reaches the second node through netns.sh's launch agent, as it would
# through ssh. Every rank of a node runs in that node's namespace.
#  (a) DP=2 x TP=2, each TP group inside one node, trains configs/tiny.yaml
#      (made small) to the losses of one process with the same global
#      batch: within 1e-5 relative, as tests/integration/test_parallel.sh
#      (floating-point summation order is the only difference), and its
#      final parameters, resharded to tp=1, within 1e-5 (L2 relative and per
#      element absolute);
#  (b) node-local rank and device are per node: rank 0 logs "2 per node",
#      the per-rank logs (CT_LOG_FILE=%h.r%r.log) put ranks 0,1 on node 1
#      and 2,3 on node 2, and each rank's placement line says local rank
#      (rank % 2) of 2 and device cpu;
#  (c) killing every rank of node 2 (SIGKILL) ends the job within 30 s,
#      non-zero, and mpirun's message names a rank of node 2 and the node;
#  (d) `ctrain doctor` across the two nodes passes and prints one bandwidth
#      line per node and one across nodes.
# The namespaces are removed on every exit (trap). Exits 77 (skipped) only
# when this machine cannot make namespaces (not root, no veth or bridge
# support) or has no mpirun. The exit code is the verdict.
# usage: test_two_node.sh PATH/TO/ctrain
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
NETNS=$HERE/netns.sh
command -v mpirun >/dev/null || { echo "test_two_node: no mpirun; skipped"; exit 77; }
why=$(sh "$NETNS" check 2>&1) || { echo "test_two_node: ${why#netns.sh: }; skipped"; exit 77; }
. "$HERE/../integration/lib.sh"   # CTRAIN, SRC, WORK, fail/pass/finish, make_corpus
CTRAIN=$(cd "$(dirname "$CTRAIN")" && pwd)/$(basename "$CTRAIN")
CMP="python3 $SRC/tests/integration/compare.py"
t_start=$SECONDS

# Names no other test uses: the pid in the namespaces (and hostnames) and
# in the subnet. The bridge is private, so even a clash could not leak.
export CT_NETNS_PREFIX=ctmn$$n CT_NETNS_SUBNET=10.213.$(($$ % 250 + 1))
N1=${CT_NETNS_PREFIX}1 N2=${CT_NETNS_PREFIX}2
JOB=
cleanup() {
    [ -n "$JOB" ] && kill -KILL "$JOB" 2>/dev/null
    sh "$NETNS" down "$CT_NETNS_PREFIX" 2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sh "$NETNS" up "$CT_NETNS_PREFIX" 2 "$CT_NETNS_SUBNET" || { fail "netns.sh up"; finish; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm_rsh_agent="$NETNS agent"
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=$CT_NETNS_SUBNET.0/24
export OMPI_MCA_oob_tcp_if_include=$CT_NETNS_SUBNET.0/24
unset OMPI_MCA_rmaps_base_oversubscribe
printf '%s slots=2\n%s slots=2\n' "$N1" "$N2" > "$WORK/hosts"
# "${MPIRUN2[@]}" ARGS...: 4 ranks, 2 per node, launched from node 1, bounded
MPIRUN2=(timeout 120 "$NETNS" exec 1 mpirun --hostfile "$WORK/hosts" -np 4 --map-by ppr:2:node
         --bind-to none -x OMP_NUM_THREADS=1)

make_corpus "$WORK/data" 512 || { finish; exit 1; }
D=$WORK/data
TINY=(configs/tiny.yaml --set model.n_layer=2 --set model.n_embd=64 --set model.max_seq_len=32
      --set model.vocab_size=512 --set data.train="$D/c_train_*.bin" --set data.val="$D/c_val_*.bin"
      --set eval.tokenizer="$D/tok.bpe" --set eval.every=3 --set eval.tokens=1024
      --set eval.sample_tokens=0 --set train.steps=6 --set train.batch_size=2 --set train.seq_len=32
      --set train.batch_tokens=128 --set train.log_every=1 --set train.threads=1
      --set optim.warmup_steps=2 --set checkpoint.every=0 --set comm.timeout_s=30)
cd "$SRC" || exit 1

# ---- (a) DP=2 x TP=2 over two nodes = one process --------------------------
t=$SECONDS
"$CTRAIN" train "${TINY[@]}" --set train.run_dir="$WORK/single" > "$WORK/single.log" 2>&1 \
    || { fail "one-process run: $(tail -3 "$WORK/single.log")"; finish; exit 1; }
mkdir -p "$WORK/logs"
"${MPIRUN2[@]}" -x CT_LOG_FILE="$WORK/logs/%h.r%r.log" -x CT_LOG_LEVEL=debug \
    "$CTRAIN" train "${TINY[@]}" --set train.run_dir="$WORK/two" --set parallel.dp=2 \
    --set parallel.tp=2 > "$WORK/two.log" 2>&1
rc=$?
echo "test_two_node: dp2 x tp2 over 2 nodes: exit $rc in $((SECONDS - t)) s (with the one-process run)"
if [ $rc -eq 0 ]; then
    pass
    $CMP losses "$WORK/two/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-5 && pass \
        || fail "two nodes: losses differ from one process"
    "$CTRAIN" reshard --tp 1 "$WORK/two/ckpt/step_00000006" "$WORK/two/tp1" > "$WORK/reshard.log" 2>&1 \
        && $CMP params "$WORK/two/tp1/params_tp0.bin" "$WORK/single/ckpt/step_00000006/params_tp0.bin" \
            1e-5 1e-5 && pass || fail "two nodes: final parameters differ from one process"
else
    fail "two nodes: exit $rc"; tail -20 "$WORK/two.log" >&2
fi

# ---- (b) node-local rank and device per node ---------------------------------
grep -q "r0/4 INFO .*comm: backend mpi, world 4 = dp 2 x tp 2, 2 per node" "$WORK/logs/$N1.r0.log" \
    2>/dev/null && pass || fail "rank 0 does not log '2 per node'"
want="$N1.r0.log $N1.r1.log $N2.r2.log $N2.r3.log"
got=$(cd "$WORK/logs" && echo *)
[ "$got" = "$want" ] && pass || fail "per-rank logs are '$got', want '$want' (TP pairs inside one node)"
for r in 0 1 2 3; do
    f=$WORK/logs/$([ $r -lt 2 ] && echo "$N1" || echo "$N2").r$r.log
    line="placement: rank $r of 4, dp rank $((r / 2)) of 2, tp rank $((r % 2)) of 2, local rank $((r % 2)) of 2 on this node, device cpu"
    grep -qF "$line" "$f" 2>/dev/null && pass || { fail "rank $r: no '$line' in $f"; grep placement "$f" >&2; }
done

# ---- (c) killing every rank of node 2 ends the job, naming the node ---------
t=$SECONDS
"${MPIRUN2[@]}" "$CTRAIN" train "${TINY[@]}" --set train.run_dir="$WORK/kill" --set parallel.dp=2 \
    --set parallel.tp=2 --set train.steps=1000000 --set eval.every=0 > "$WORK/kill.log" 2>&1 &
JOB=$!
for _ in $(seq 300); do grep -q "step 5/" "$WORK/kill.log" && break; sleep 0.2; done
ranks=
for p in $(ip netns pids "$N2" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = ctrain ] && ranks="$ranks $p"
done
if [ "$(wc -w <<<"$ranks")" -ne 2 ]; then
    fail "kill: want the 2 ranks of node 2 running, found '$ranks': $(tail -3 "$WORK/kill.log")"
else
    t0=$(date +%s.%N)
    kill -KILL $ranks
    for _ in $(seq 300); do kill -0 "$JOB" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$JOB" 2>/dev/null; then
        fail "kill: the job still runs 30 s after node 2's ranks died"
    else
        wait "$JOB"; rc=$?
        secs=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
        msg=$(grep -m1 "mpirun noticed" "$WORK/kill.log")
        echo "test_two_node: killed node 2's ranks: the job ended in $secs s, exit $rc: $msg"
        [ $rc -ne 0 ] && pass || fail "kill: exit 0"
        grep -qE "process rank [23] with PID [0-9]+ on node $N2 exited on signal 9" <<<"$msg" && pass \
            || { fail "kill: mpirun's message does not name a rank of node $N2"; tail -15 "$WORK/kill.log" >&2; }
    fi
    JOB=
fi
echo "test_two_node: kill case in $((SECONDS - t)) s"

# ---- (d) doctor reports the bandwidth per node and across nodes --------------
t=$SECONDS
out=$("${MPIRUN2[@]}" "$CTRAIN" doctor "${TINY[@]}" --set train.run_dir="$WORK/doctor" \
    --set parallel.dp=2 --set parallel.tp=2 2>&1); rc=$?
[ $rc -eq 0 ] && pass || { fail "doctor: exit $rc"; echo "$out" | tail -20 >&2; }
for n in "$N1" "$N2"; do
    grep -qE "^doctor: node $n: 2 ranks, all-reduce within the node [0-9]+ MB/s busbw" <<<"$out" && pass \
        || fail "doctor: no bandwidth line for node $n"
    [ "$(grep -cE "^[0-3] +$n +allreduce.node +OK .*over 2 ranks of node $n;" <<<"$out")" -eq 2 ] && pass \
        || fail "doctor: want 2 allreduce.node rows on $n"
done
grep -qE "^doctor: across nodes: all-reduce [0-9]+ MB/s busbw" <<<"$out" && pass \
    || fail "doctor: no bandwidth line across nodes"
[ "$(grep -cE "allreduce.inter +OK .*over 2 ranks on 2 of 2 nodes" <<<"$out")" -eq 4 ] && pass \
    || fail "doctor: want 4 allreduce.inter rows over 2 nodes"
grep -qE "doctor: all [0-9]+ checks passed on 4 ranks" <<<"$out" && pass || fail "doctor: no summary"
grep "^doctor: \(node\|across\)" <<<"$out"
echo "test_two_node: doctor in $((SECONDS - t)) s; all in $((SECONDS - t_start)) s"
finish
