#!/usr/bin/env bash
# Llama's parallel layouts are proven by equivalence, as test_parallel.sh
# proves GPT-2's: each layout trains the same 10 steps (global batch of 256
# tokens, same seed) as one process and must reproduce its train and
# validation losses within 1e-5 relative and, resharded to tp=1, its final
# parameters within the bound compare.py states. The model: 4 query heads
# sharing 2 key/value heads, SwiGLU width 64, untied head. TP = 2 shards
# the key/value heads (one per rank); TP = 4 replicates them (2 heads do
# not split over 4 ranks), the case whose k/v gradients are summed over the
# TP group. DP, ZeRO-1 and DP x TP with ZeRO-1 too, a tied head at TP 2, and
# TP 4 starting from a Hugging Face directory (model.init_from).
. "$(dirname "$0")/lib.sh"
setup_mpi_test || { finish; exit 1; }
sed -i 's/steps: 20/steps: 10/; s/^model: {n_layer: 2,/model: {arch: llama, n_kv_head: 2, ffn_dim: 64, tie_embeddings: 0, n_layer: 2,/' "$WORK/cfg.yaml"
grep -q "arch: llama" "$WORK/cfg.yaml" || fail "the config edit did not apply"

single() { # NAME [--set k=v]...
    local name=$1; shift
    "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/$name" "$@" > "$WORK/$name.log" 2>&1 \
        || fail "single-process run $name: $(tail -3 "$WORK/$name.log")"
}
run_layout() { # NAME REF NP DP TP ZERO [--set k=v]...
    local name=$1 ref=$2 np=$3 dp=$4 tp=$5 zero=$6 dir="$WORK/$1"
    shift 6
    timeout 300 "$MPIRUN" -np "$np" "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$dir" \
        --set parallel.dp="$dp" --set parallel.tp="$tp" --set optim.zero="$zero" "$@" > "$dir.log" 2>&1 \
        || { fail "$name: run failed: $(tail -3 "$dir.log")"; return; }
    $CMP losses "$dir/metrics.jsonl" "$WORK/$ref/metrics.jsonl" 1e-5 && pass || fail "$name: losses differ"
    local params="$dir/ckpt/step_00000010/params_tp0.bin"
    if [ "$tp" -gt 1 ]; then
        "$CTRAIN" reshard --tp 1 "$dir/ckpt/step_00000010" "$dir/tp1" > "$dir.reshard.log" 2>&1 \
            || { fail "$name: reshard failed: $(tail -3 "$dir.reshard.log")"; return; }
        params="$dir/tp1/params_tp0.bin"
    fi
    $CMP weights "$params" "$WORK/$ref/ckpt/step_00000010/params_tp0.bin" "$WORK/$ref/metrics.jsonl" \
        && pass || fail "$name: final parameters differ"
}

single single
run_layout dp2        single 2 2 1 0
run_layout tp2        single 2 1 2 0
run_layout tp4        single 4 1 4 0
run_layout dp2zero    single 2 2 1 1
run_layout dp2tp2zero single 4 2 2 1
grep -q "tp0.wk" "$WORK/tp4/ckpt/step_00000010/manifest.yaml" && pass || fail "tp4: no wk in the manifest"
# the replicated key/value projections are identical on every TP rank
python3 - "$WORK/tp4/ckpt/step_00000010" <<'PY' && pass || fail "tp4: replicated wk/wv differ across ranks"
import re, sys
d = sys.argv[1]
m = open(d + "/manifest.yaml").read()
def tensor(r, name):
    e = re.search(r"name: tp%d\.%s, file: (\S+), offset: (\d+), bytes: (\d+)" % (r, name), m)
    f, off, n = e.group(1).rstrip(","), int(e.group(2)), int(e.group(3))
    return open(d + "/" + f, "rb").read()[off:off + n]
sys.exit(0 if all(tensor(r, t) == tensor(0, t) for r in range(1, 4) for t in ("wk", "wv")) else 1)
PY
single tied --set model.tie_embeddings=1
run_layout tp2tied    tied 2 1 2 0 --set model.tie_embeddings=1
# model.init_from a Hugging Face directory (the single run, exported) gives
# each TP rank its shard: TP = 4 (key/value heads replicated) as one process
"$CTRAIN" export --format hf "$WORK/single" "$WORK/hf" > "$WORK/hf.log" 2>&1 || fail "export: $(tail -3 "$WORK/hf.log")"
single init --set model.init_from="$WORK/hf"
run_layout tp4init    init 4 1 4 0 --set model.init_from="$WORK/hf"
finish
