#!/usr/bin/env bash
# Llama's GPU path under data and tensor parallelism on the CUDA emulator:
# ctrain_emu under mpirun (comm/nccl.c on the emulated NCCL) with
# model/llama_cuda.c: the layer-by-layer DP all-reduce overlapped with the
# backward, ZeRO-1's reduce-scatter/all-gather, and Megatron TP with the
# key/value heads sharded (TP = 2 of 2 key/value heads) and replicated
# (TP = 4 of 2: every rank holds both, their gradients summed over TP),
# and Megatron sequence parallelism on both (the RMSNorm/residual regions
# split over the tokens: reduce-scatter after the row-parallel matmuls,
# all-gather before the column-parallel ones), also under DP x TP.
# Each layout trains the same 6 steps (same global batch) as one emulated
# GPU process and must match its losses within 1e-3 relative and its final
# weights (TP checkpoints resharded to tp=1) within 1e-3 relative L2 /
# 1e-2 absolute (test_parallel_emu.sh's bounds for GPT-2), and rank 0's
# peak device memory must be what `ctrain plan` says. Sequence parallelism
# at TP = 2 must hold at most 55% of TP = 1's activations in the
# RMSNorm/residual regions.
. "$(dirname "$0")/../integration/lib.sh"
setup_mpi_test || { finish; exit 1; }
CMP="python3 $SRC/tests/integration/compare.py"
sed -i 's/steps: 20/steps: 6/' "$WORK/cfg.yaml"
sed -i 's/^model: {n_layer: 2, n_head: 4, n_embd: 32,/model: {arch: llama, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, ffn_dim: 56, tie_embeddings: 0,/' "$WORK/cfg.yaml"
grep -q "arch: llama" "$WORK/cfg.yaml" || fail "the config edit did not apply"
G="--set model.device=cuda"

"$CTRAIN" train "$WORK/cfg.yaml" $G --set train.run_dir="$WORK/single" > "$WORK/single.log" 2>&1 \
    || { fail "single-process run: $(tail -3 "$WORK/single.log")"; finish; exit 1; }
grep -q "GPU model (llama" "$WORK/single.log" && pass || fail "not the Llama GPU backend"

run_layout() { # NAME NP DP TP ZERO [SP]
    local name=$1 np=$2 dp=$3 tp=$4 zero=$5 sp=${6:-false} dir="$WORK/$1" lay params
    lay="--set parallel.dp=$dp --set parallel.tp=$tp --set optim.zero=$zero --set parallel.sp=$sp"
    timeout 600 "$MPIRUN" -np "$np" "$CTRAIN" train "$WORK/cfg.yaml" $G --set train.run_dir="$dir" \
        $lay > "$dir.log" 2>&1 || { fail "$name: run failed: $(tail -3 "$dir.log")"; return; }
    echo "$name: $($CMP losses "$dir/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-3)"
    $CMP losses "$dir/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-3 >/dev/null && pass \
        || fail "$name: losses differ"
    params="$dir/ckpt/step_00000006/params_tp0.bin"
    if [ "$tp" -gt 1 ]; then
        "$CTRAIN" reshard --tp 1 "$dir/ckpt/step_00000006" "$dir/tp1" > "$dir.reshard.log" 2>&1 \
            || { fail "$name: reshard failed: $(tail -3 "$dir.reshard.log")"; return; }
        params="$dir/tp1/params_tp0.bin"
    fi
    $CMP params "$params" "$WORK/single/ckpt/step_00000006/params_tp0.bin" 1e-3 1e-2 && pass \
        || fail "$name: final weights differ"
    local want got
    want=$("$CTRAIN" plan "$WORK/cfg.yaml" $G $lay | awk '$1 == "total" {gsub(/[()]/, "", $4); print $4; exit}')
    got=$(grep -o '"device_mem_mib":[0-9.]*' "$dir/metrics.jsonl" | tail -1 | cut -d: -f2)
    python3 -c 'import sys; sys.exit(abs(int(sys.argv[1]) / 1048576 - float(sys.argv[2])) > 0.05)' \
        "$want" "$got" && pass || fail "$name: plan $want bytes, rank 0 measured $got MiB"
}
run_layout dp2     2 2 1 0
run_layout dp2zero 2 2 1 1
run_layout tp2     2 1 2 0
run_layout tp4     4 1 4 0
grep -q "tensor parallel with replicated key/value heads" "$WORK/tp4.log" && pass \
    || fail "tp4 did not replicate the key/value heads"
run_layout tp2sp    2 1 2 0 true
run_layout tp4sp    4 1 4 0 true
run_layout dp2tp2sp 4 2 2 0 true
for l in tp2sp tp4sp dp2tp2sp; do
    grep -q "sequence parallel)" "$WORK/$l.log" && pass || fail "$l: not sequence parallel"
done
grep -q "replicated key/value heads, sequence parallel" "$WORK/tp4sp.log" && pass \
    || fail "tp4sp did not replicate the key/value heads"

# the RMSNorm/residual regions' activations per rank, as the GPU model
# allocated them: TP = 2 with SP against TP = 1
region() { grep -o 'of them [0-9.]* MiB in the RMSNorm' "$1" | head -1 | grep -o '[0-9.]*'; }
one=$(region "$WORK/single.log") sp2=$(region "$WORK/tp2sp.log")
echo "RMSNorm/residual-region activations per rank: tp1 $one MiB, tp2+sp $sp2 MiB"
python3 -c 'import sys; sys.exit(float(sys.argv[2]) > 0.55 * float(sys.argv[1]))' "$one" "$sp2" \
    && pass || fail "tp2+sp holds $sp2 MiB of RMSNorm/residual activations, over 55% of tp1's $one"
finish
