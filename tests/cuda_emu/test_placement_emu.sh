#!/usr/bin/env bash
# Rank-to-GPU mapping on the CUDA emulator (ctrain_emu) under mpirun, on one
# machine; CT_EMU_DEVICES sets how many GPUs the node shows (default: one
# per rank). tests/multinode/test_two_node_placement.sh does TP across nodes.
#  (a) 2 ranks, 2 GPUs: rank r drives cuda:r (the placement lines) and trains;
#  (b) 2 ranks, 1 GPU: fails at start, before any shard is opened, on both
#      ranks, naming the ranks, the GPUs, CUDA_VISIBLE_DEVICES and the fix
#      (mpirun --map-by ppr:1:node, Slurm --ntasks-per-node, the override);
#  (c) the same with CT_ALLOW_GPU_SHARING=1 trains, with a warning;
#  (d) 1 GPU seen by each rank but a different one (a per-rank
#      CUDA_VISIBLE_DEVICES, as Slurm --gpus-per-task gives) trains; the
#      same GPU (by UUID) for both is refused;
#  (e) a rank without a GPU: model.device cuda and auto fail on both ranks;
#      CT_ALLOW_GPU_SHARING=yes is refused;
#  (f) `ctrain doctor`: the TP group's all-reduce on the GPUs (nccl) is exact
#      and has a bandwidth line; with 1 GPU for 2 ranks the device row fails.
. "$(dirname "$0")/../integration/lib.sh"
setup_mpi_test 60 || { finish; exit 1; }
C="$WORK/cfg.yaml"
sed -i 's/steps: 20/steps: 1/; s/every: 5,/every: 0,/' "$C"
G=(--set model.device=cuda --set parallel.dp=2)
NODATA=(--set data.train="$WORK/nowhere/x_*.bin")
run() { timeout 120 "$MPIRUN" -np 2 "$@"; }

# (a) one rank per GPU, by node-local rank
out=$(run -x CT_LOG_LEVEL=debug "$CTRAIN" train "$C" "${G[@]}" --set train.run_dir="$WORK/a" 2>&1) \
    && pass || fail "(a) 2 ranks on 2 GPUs: $(tail -3 <<<"$out")"
for r in 0 1; do
    grep -q "r$r/2 DEBUG .*placement: rank $r of 2, .*local rank $r of 2 on this node, device cuda:$r; node 0 of 1" \
        <<<"$out" && pass || { fail "(a) rank $r is not on cuda:$r"; grep placement <<<"$out" >&2; }
done
grep -q "2 per node on 1 node" <<<"$out" && pass || fail "(a) no '2 per node on 1 node'"

# (b) more ranks than GPUs: both ranks fail with the cause and the fix
out=$(CT_EMU_DEVICES=1 run -x CT_EMU_DEVICES "$CTRAIN" train "$C" "${G[@]}" "${NODATA[@]}" \
    --set train.run_dir="$WORK/b" 2>&1); rc=$?
[ $rc -ne 0 ] && pass || fail "(b) 2 ranks on 1 GPU: exit 0"
for r in 0 1; do
    grep -q "r$r/2 ERROR 2 ranks run on node .* but it shows them 1 GPU(s), so ranks 0 and 1 would both drive GPU 0 (CUDA_VISIBLE_DEVICES is not set on this rank)" \
        <<<"$out" && pass || { fail "(b) rank $r does not name the cause"; tail -8 <<<"$out" >&2; }
done
for p in "HINT: start at most 1 rank(s) per node" "mpirun --map-by ppr:1:node" \
    "Slurm --ntasks-per-node=1 --gpus-per-node=1" "CT_ALLOW_GPU_SHARING=1"; do
    grep -qF -- "$p" <<<"$out" && pass || fail "(b) no '$p'"
done
grep -q "nowhere" <<<"$out" && fail "(b) a shard was opened before the layout was checked" || pass
[ ! -e "$WORK/b" ] && pass || fail "(b) the run directory was made"

# (c) sharing on purpose
out=$(CT_EMU_DEVICES=1 CT_ALLOW_GPU_SHARING=1 run -x CT_EMU_DEVICES -x CT_ALLOW_GPU_SHARING \
    "$CTRAIN" train "$C" "${G[@]}" --set train.run_dir="$WORK/c" 2>&1) \
    && pass || fail "(c) CT_ALLOW_GPU_SHARING=1: $(tail -3 <<<"$out")"
grep -q "r0/2 WARN ranks 0 and 1 on node .* share GPU 0 (CT_ALLOW_GPU_SHARING=1)" <<<"$out" && pass \
    || fail "(c) no warning about the shared GPU"

# (d) each rank sees its own GPU as device 0
out=$(CT_EMU_DEVICES=1 run -x CT_EMU_DEVICES -x CT_LOG_LEVEL=debug \
    sh -c 'CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK exec "$0" "$@"' \
    "$CTRAIN" train "$C" "${G[@]}" --set train.run_dir="$WORK/d" 2>&1) \
    && pass || fail "(d) a GPU of its own per rank: $(tail -3 <<<"$out")"
[ "$(grep -c "placement: .*device cuda:0;" <<<"$out")" -eq 2 ] && pass || fail "(d) not both on cuda:0"
# ... but the same GPU given to both (by UUID) is two ranks on one GPU
out=$(CT_EMU_DEVICES=1 CUDA_VISIBLE_DEVICES=GPU-5e1f run -x CT_EMU_DEVICES -x CUDA_VISIBLE_DEVICES \
    "$CTRAIN" train "$C" "${G[@]}" --set train.run_dir="$WORK/d2" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "r1/2 ERROR .*ranks 0 and 1 would both drive GPU GPU-5e1f (this rank has CUDA_VISIBLE_DEVICES=GPU-5e1f)" \
    <<<"$out" && pass || { fail "(d) one GPU by UUID for two ranks: exit $rc"; tail -4 <<<"$out" >&2; }

# (e) a rank without a GPU
for dev in cuda auto; do
    out=$(run sh -c 'CT_EMU_DEVICES=$OMPI_COMM_WORLD_RANK exec "$0" "$@"' "$CTRAIN" train "$C" \
        "${G[@]}" --set model.device=$dev --set train.run_dir="$WORK/e" 2>&1); rc=$?
    [ $rc -ne 0 ] && pass || fail "(e) model.device=$dev with a rank without a GPU: exit 0"
    want="model.device is auto but rank 0 on .* sees no CUDA device while rank 1"
    [ $dev = cuda ] && want="model.device is cuda but (no CUDA device is usable on this machine|rank 0 on .* sees no CUDA device)"
    [ "$(grep -cE "r[01]/2 ERROR ($want)" <<<"$out")" -eq 2 ] && pass \
        || { fail "(e) model.device=$dev: not both ranks name rank 0"; tail -6 <<<"$out" >&2; }
done
expect_fail "(e) CT_ALLOW_GPU_SHARING=yes" "environment variable CT_ALLOW_GPU_SHARING is 'yes'" \
    "HINT: set it to 1" -- env CT_ALLOW_GPU_SHARING=yes "$MPIRUN" -np 2 -x CT_ALLOW_GPU_SHARING \
    "$CTRAIN" train "$C" "${G[@]}" --set train.run_dir="$WORK/e2"

# (f) doctor: the TP group's all-reduce on the GPUs
TP=(--set model.device=cuda --set parallel.tp=2)
out=$(run "$CTRAIN" doctor "$C" "${TP[@]}" --set train.run_dir="$WORK/f" 2>&1) \
    && pass || { fail "(f) doctor tp=2 on 2 GPUs: exit $?"; tail -20 <<<"$out" >&2; }
for r in 0 1; do
    grep -Eq "^$r +[^ ]+ +device +OK +cuda device $r of 2 \(local rank $r/2, node 0 of 1\)" <<<"$out" \
        && pass || fail "(f) rank $r: device row"
    grep -Eq "^$r +[^ ]+ +allreduce.tp_gpu +OK +exact sum over 2 ranks on cuda device $r \(nccl\); 16 MiB: [0-9]+ MB/s algbw" \
        <<<"$out" && pass || fail "(f) rank $r: no GPU TP all-reduce row"
done
grep -Eq "^doctor: TP groups on the GPUs: all-reduce [0-9]+ MB/s busbw" <<<"$out" && pass \
    || fail "(f) no GPU TP bandwidth line"
grep "^doctor: TP" <<<"$out"
out=$(CT_EMU_DEVICES=1 run -x CT_EMU_DEVICES "$CTRAIN" doctor "$C" "${TP[@]}" \
    --set train.run_dir="$WORK/f" 2>&1); rc=$?
[ $rc -eq 1 ] && pass || fail "(f) doctor with 2 ranks on 1 GPU: exit $rc, want 1"
[ "$(grep -cE "^[01] +[^ ]+ +device +FAIL +2 ranks run on node" <<<"$out")" -eq 2 ] && pass \
    || fail "(f) the device rows do not fail"
[ "$(grep -cE "allreduce.tp_gpu +SKIP +skipped: the device check failed" <<<"$out")" -eq 2 ] && pass \
    || fail "(f) the GPU TP rows are not skipped"
finish
