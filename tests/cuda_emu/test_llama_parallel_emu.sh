#!/usr/bin/env bash
# Llama's GPU path under data and tensor parallelism on the CUDA emulator:
# ctrain_emu under mpirun (comm/nccl.c on the emulated NCCL) with
# model/llama_cuda.c: the layer-by-layer DP all-reduce overlapped with the
# backward, ZeRO-1's reduce-scatter/all-gather, and Megatron TP with the
# key/value heads sharded (TP = 2 of 2 key/value heads) and replicated
# (TP = 4 of 2: every rank holds both, their gradients summed over TP).
# Each layout trains the same 6 steps (same global batch) as one emulated
# GPU process and must match its losses within 1e-3 relative and its final
# weights (TP checkpoints resharded to tp=1) within 1e-3 relative L2 /
# 1e-2 absolute (test_parallel_emu.sh's bounds for GPT-2), and rank 0's
# peak device memory must be what `ctrain plan` says. Sequence parallelism
# is refused on every rank with a hint (the Llama GPU path has none yet).
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

run_layout() { # NAME NP DP TP ZERO
    local name=$1 np=$2 dp=$3 tp=$4 zero=$5 dir="$WORK/$1" lay params
    lay="--set parallel.dp=$dp --set parallel.tp=$tp --set optim.zero=$zero"
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

out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" train "$WORK/cfg.yaml" $G --set train.run_dir="$WORK/sp" \
    --set parallel.tp=2 --set parallel.sp=true 2>&1) && fail "sp on the GPU: expected failure, got exit 0"
n=$(grep -c "ERROR.*sequence parallelism" <<<"$out")
[ "$n" -ge 1 ] && grep -q "HINT" <<<"$out" && pass || { fail "sp: no refusal with a hint"; tail -5 <<<"$out" >&2; }
finish
