#!/usr/bin/env bash
# Llama's GPU path under data parallelism on the CUDA emulator: ctrain_emu
# under mpirun (comm/nccl.c on the emulated NCCL) with model/llama_cuda.c,
# the layer-by-layer DP all-reduce overlapped with the backward and
# ZeRO-1's reduce-scatter/all-gather. Each layout trains the same 6 steps
# (same global batch) as one emulated GPU process and must match its losses
# within 1e-3 relative and its final weights within 1e-3 relative L2 /
# 1e-2 absolute (test_parallel_emu.sh's bounds for GPT-2), and rank 0's
# peak device memory must be what `ctrain plan` says. Tensor parallelism is
# refused on every rank with a hint (the Llama GPU path has none yet).
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

run_layout() { # NAME NP DP ZERO
    local name=$1 np=$2 dp=$3 zero=$4 dir="$WORK/$1" lay
    lay="--set parallel.dp=$dp --set optim.zero=$zero"
    timeout 600 "$MPIRUN" -np "$np" "$CTRAIN" train "$WORK/cfg.yaml" $G --set train.run_dir="$dir" \
        $lay > "$dir.log" 2>&1 || { fail "$name: run failed: $(tail -3 "$dir.log")"; return; }
    echo "$name: $($CMP losses "$dir/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-3)"
    $CMP losses "$dir/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-3 >/dev/null && pass \
        || fail "$name: losses differ"
    $CMP params "$dir/ckpt/step_00000006/params_tp0.bin" \
        "$WORK/single/ckpt/step_00000006/params_tp0.bin" 1e-3 1e-2 && pass \
        || fail "$name: final weights differ"
    local want got
    want=$("$CTRAIN" plan "$WORK/cfg.yaml" $G $lay | awk '$1 == "total" {gsub(/[()]/, "", $4); print $4; exit}')
    got=$(grep -o '"device_mem_mib":[0-9.]*' "$dir/metrics.jsonl" | tail -1 | cut -d: -f2)
    python3 -c 'import sys; sys.exit(abs(int(sys.argv[1]) / 1048576 - float(sys.argv[2])) > 0.05)' \
        "$want" "$got" && pass || fail "$name: plan $want bytes, rank 0 measured $got MiB"
}
run_layout dp2     2 2 0
run_layout dp2zero 2 2 1

out=$(timeout 120 "$MPIRUN" -np 2 "$CTRAIN" train "$WORK/cfg.yaml" $G --set train.run_dir="$WORK/tp2" \
    --set parallel.tp=2 2>&1) && fail "tp=2 on the GPU: expected failure, got exit 0"
n=$(grep -c "ERROR.*tensor parallelism" <<<"$out")
[ "$n" -ge 1 ] && grep -q "HINT" <<<"$out" && pass || { fail "tp=2: no refusal with a hint"; tail -5 <<<"$out" >&2; }
finish
