#!/usr/bin/env bash
# TP groups and nodes, on two real "nodes" (network namespaces, netns.sh, as
# test_two_node.sh): 4 ranks, 2 per node, DP=2 x TP=2.
#  (a) ranks dealt round-robin (--map-by node: ranks 0,2 on node 1 and 1,3
#      on node 2) split both TP groups over the nodes. On the CPU that is a
#      warning on rank 0 and the run trains; each rank's placement line says
#      which node it is on;
#  (b) on the GPU path (ctrain_emu, the CUDA emulator, 2 GPUs per node) the
#      same launch fails at start on every rank, naming parallel.tp, the
#      ranks and nodes, and the fix (--map-by ppr:2:node); with
#      CT_ALLOW_TP_ACROSS_NODES=1 `ctrain doctor` passes, its device rows
#      warning that the TP group spans 2 nodes;
#  (c) packed by node (--map-by ppr:2:node), `ctrain doctor` on the emulator
#      passes with the TP group's all-reduce on the GPUs inside each node.
# (b) and (c) need build/tests/ctrain_emu next to build/ctrain (a build with
# the CUDA toolkit); without it they are skipped with a note. Exits 77 when
# this machine cannot make namespaces or has no mpirun.
# usage: test_two_node_placement.sh PATH/TO/ctrain
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
NETNS=$HERE/netns.sh
command -v mpirun >/dev/null || { echo "test_two_node_placement: no mpirun; skipped"; exit 77; }
why=$(sh "$NETNS" check 2>&1) || { echo "test_two_node_placement: ${why#netns.sh: }; skipped"; exit 77; }
. "$HERE/../integration/lib.sh"   # CTRAIN, SRC, WORK, fail/pass/finish, make_corpus
CTRAIN=$(cd "$(dirname "$CTRAIN")" && pwd)/$(basename "$CTRAIN")
EMU=$(dirname "$CTRAIN")/tests/ctrain_emu
t_start=$SECONDS

export CT_NETNS_PREFIX=ctmp$$n CT_NETNS_SUBNET=10.214.$(($$ % 250 + 1))
N1=${CT_NETNS_PREFIX}1 N2=${CT_NETNS_PREFIX}2
trap 'sh "$NETNS" down "$CT_NETNS_PREFIX" 2' EXIT
trap 'exit 130' INT TERM
sh "$NETNS" up "$CT_NETNS_PREFIX" 2 "$CT_NETNS_SUBNET" || { fail "netns.sh up"; finish; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm_rsh_agent="$NETNS agent"
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=$CT_NETNS_SUBNET.0/24
export OMPI_MCA_oob_tcp_if_include=$CT_NETNS_SUBNET.0/24
unset OMPI_MCA_rmaps_base_oversubscribe
printf '%s slots=2\n%s slots=2\n' "$N1" "$N2" > "$WORK/hosts"
# run MAP ARGS...: 4 ranks from node 1 with --map-by MAP, bounded
run() {
    local map=$1; shift
    timeout 120 "$NETNS" exec 1 mpirun --hostfile "$WORK/hosts" -np 4 --map-by "$map" \
        --bind-to none -x OMP_NUM_THREADS=1 "$@"
}

make_corpus "$WORK/data" 512 || { finish; exit 1; }
D=$WORK/data
TINY=(configs/tiny.yaml --set model.n_layer=2 --set model.n_embd=64 --set model.max_seq_len=32
      --set model.vocab_size=512 --set data.train="$D/c_train_*.bin" --set data.val="$D/c_val_*.bin"
      --set eval.tokenizer="$D/tok.bpe" --set eval.every=0 --set eval.sample_tokens=0
      --set train.steps=1 --set train.batch_size=2
      --set train.seq_len=32 --set train.batch_tokens=128 --set train.threads=1
      --set optim.warmup_steps=1 --set checkpoint.every=0 --set comm.timeout_s=30
      --set parallel.dp=2 --set parallel.tp=2)
cd "$SRC" || exit 1

# ---- (a) CPU: TP across nodes warns and trains -------------------------------
out=$(run node -x CT_LOG_LEVEL=debug "$CTRAIN" train "${TINY[@]}" --set model.device=cpu \
    --set train.run_dir="$WORK/cpu" 2>&1) && pass || { fail "(a) cpu, --map-by node: exit $?"; tail -5 <<<"$out" >&2; }
grep -q "r0/4 WARN .*parallel.tp=2: 2 of 2 TP groups span nodes, e.g. ranks 0-1 on $N1 and $N2" <<<"$out" \
    && pass || fail "(a) no warning that TP groups span nodes"
grep -qF -- "---> HINT: pack ranks by node, in rank order: mpirun --map-by ppr:2:node" <<<"$out" \
    && pass || fail "(a) the warning does not say how to pack ranks"
for r in 0 1 2 3; do
    grep -q "r$r/4 DEBUG .*placement: rank $r of 4,.* device cpu; node $((r % 2)) of 2" <<<"$out" \
        && pass || { fail "(a) rank $r is not on node $((r % 2)) of 2"; grep placement <<<"$out" >&2; }
done

if [ ! -x "$EMU" ]; then
    echo "test_two_node_placement: no $EMU (a build without the CUDA toolkit): GPU cases skipped"
    finish
    exit
fi
# ---- (b) GPU: TP across nodes fails on every rank ----------------------------
out=$(run node "$EMU" train "${TINY[@]}" --set model.device=cuda --set train.run_dir="$WORK/gpu" 2>&1); rc=$?
[ $rc -ne 0 ] && pass || fail "(b) gpu, --map-by node: exit 0"
n=$(grep -c "r[0-3]/4 ERROR parallel.tp=2 but 2 of 2 TP groups span nodes, e.g. ranks 0-1 on $N1 and $N2 (this rank's group spans 2)" <<<"$out")
[ "$n" -eq 4 ] && pass || { fail "(b) $n of 4 ranks name parallel.tp and the nodes"; tail -12 <<<"$out" >&2; }
[ "$(grep -cF -- "---> HINT: pack ranks by node, in rank order: mpirun --map-by ppr:2:node (PPN=2 launch/mpirun.sh), never --map-by node" <<<"$out")" -eq 4 ] \
    && pass || fail "(b) not every rank gives the fix"
grep -q "CT_ALLOW_TP_ACROSS_NODES=1" <<<"$out" && pass || fail "(b) the override is not named"
out=$(run node -x CT_ALLOW_TP_ACROSS_NODES=1 "$EMU" doctor "${TINY[@]}" --set model.device=cuda \
    --set train.run_dir="$WORK/gpu" 2>&1) && pass || { fail "(b) doctor with the override: exit $?"; tail -20 <<<"$out" >&2; }
[ "$(grep -cE "^[0-3] +[^ ]+ +device +WARN +cuda device [01] of 2 .*its TP group spans 2 nodes \(CT_ALLOW_TP_ACROSS_NODES=1\)" <<<"$out")" -eq 4 ] \
    && pass || fail "(b) doctor: the device rows do not warn about the TP group"

# ---- (c) GPU, packed by node: doctor's GPU TP all-reduce inside each node -----
out=$(run ppr:2:node "$EMU" doctor "${TINY[@]}" --set model.device=cuda --set train.run_dir="$WORK/gpu" 2>&1) \
    && pass || { fail "(c) doctor, --map-by ppr:2:node: exit $?"; tail -20 <<<"$out" >&2; }
for r in 0 1 2 3; do
    grep -Eq "^$r +[^ ]+ +device +OK +cuda device $((r % 2)) of 2 \(local rank $((r % 2))/2, node $((r / 2)) of 2\)" <<<"$out" \
        && pass || fail "(c) rank $r: device row"
    grep -Eq "^$r +[^ ]+ +allreduce.tp_gpu +OK +exact sum over 2 ranks on cuda device $((r % 2)) \(nccl\)" <<<"$out" \
        && pass || fail "(c) rank $r: GPU TP all-reduce row"
done
grep "^doctor: TP" <<<"$out"
echo "test_two_node_placement: all in $((SECONDS - t_start)) s"
finish
