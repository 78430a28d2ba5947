#!/usr/bin/env bash
# Parallelism is proven by equivalence: every layout below trains the same
# 10 steps (same global batch of 256 tokens, same seed) as one process, and
# must reproduce its train and validation losses within 1e-5 relative, and
# its final parameters within the bound `compare.py weights` states and
# justifies: per element, sum(lr) * min(2, 5e-10 / optim.eps), which is
# 0.05 * sum(lr) = 8.8e-4 here, and 1e-4 relative in L2 norm. Floating-point
# summation order is the only allowed difference; AdamW's division by
# sqrt(v) + eps turns it into up to ~1e-2 * sum(lr) on coordinates whose
# gradient is rounding noise, at any TP size (a fixed 1e-5 per element did
# not hold for TP = 2, 3, 4 or 6 at every seed). TP runs are resharded to
# tp=1 with `ctrain reshard` before their parameters are compared. The
# validation loss is part of the equivalence: its windows depend neither on
# the ranks nor on the per-rank batch size (dp2b4 runs micro-batches of 4
# where the single process runs 2, as dp=2 x 8 against 1 x 16 would).
# TP = 3 runs on a 6-head model with a 4096-token vocabulary, which pads to
# 4224 rows (a multiple of 128 * 3): it trains, matches one process, and
# exports to Hugging Face with exactly 4096 embedding rows.
. "$(dirname "$0")/lib.sh"
setup_mpi_test || { finish; exit 1; }
sed -i 's/steps: 20/steps: 10/' "$WORK/cfg.yaml"

"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/single" > "$WORK/single.log" 2>&1 \
    || { fail "single-process run: $(tail -3 "$WORK/single.log")"; finish; exit 1; }
ref="$WORK/single/ckpt/step_00000010/params_tp0.bin"

run_layout() { # NAME NP DP TP ZERO [--set k=v]...
    local name=$1 np=$2 dp=$3 tp=$4 zero=$5 dir="$WORK/$1"
    shift 5
    timeout 300 "$MPIRUN" -np "$np" "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$dir" \
        --set parallel.dp="$dp" --set parallel.tp="$tp" --set optim.zero="$zero" "$@" > "$dir.log" 2>&1 \
        || { fail "$name: run failed: $(tail -3 "$dir.log")"; return; }
    $CMP losses "$dir/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-5 && pass || fail "$name: losses differ"
    local params="$dir/ckpt/step_00000010/params_tp0.bin"
    if [ "$tp" -gt 1 ]; then
        "$CTRAIN" reshard --tp 1 "$dir/ckpt/step_00000010" "$dir/tp1" > "$dir.reshard.log" 2>&1 \
            || { fail "$name: reshard failed: $(tail -3 "$dir.reshard.log")"; return; }
        params="$dir/tp1/params_tp0.bin"
    fi
    $CMP weights "$params" "$ref" "$WORK/single/metrics.jsonl" && pass \
        || fail "$name: final parameters differ"
}

run_layout dp2        2 2 1 0
run_layout dp2b4      2 2 1 0 --set train.batch_size=4
run_layout dp4        4 4 1 0
run_layout tp2        2 1 2 0
run_layout tp4        4 1 4 0
run_layout dp2tp2     4 2 2 0
run_layout dp2zero    2 2 1 1
run_layout dp2tp2zero 4 2 2 1

# TP = 3 (and TP = 2) of a 6-head model with a 4096-token vocabulary
sed 's/n_head: 4/n_head: 6/; s/n_embd: 32/n_embd: 48/; s/vocab_size: 512/vocab_size: 4096/' \
    "$WORK/cfg.yaml" > "$WORK/cfg6.yaml"
"$CTRAIN" train "$WORK/cfg6.yaml" --set train.run_dir="$WORK/single6" > "$WORK/single6.log" 2>&1 \
    || fail "6-head single-process run: $(tail -3 "$WORK/single6.log")"
for tp in 3 2; do
    d="$WORK/v4096tp$tp"
    timeout 300 "$MPIRUN" -np $tp "$CTRAIN" train "$WORK/cfg6.yaml" --set train.run_dir="$d" \
        --set parallel.tp=$tp > "$d.log" 2>&1 || { fail "tp=$tp, V=4096: run failed: $(tail -3 "$d.log")"; continue; }
    $CMP losses "$d/metrics.jsonl" "$WORK/single6/metrics.jsonl" 1e-5 && pass || fail "tp=$tp, V=4096: losses differ"
    "$CTRAIN" reshard --tp 1 "$d/ckpt/step_00000010" "$d/tp1" > "$d.reshard.log" 2>&1 \
        || { fail "tp=$tp, V=4096: reshard failed: $(tail -3 "$d.reshard.log")"; continue; }
    $CMP weights "$d/tp1/params_tp0.bin" "$WORK/single6/ckpt/step_00000010/params_tp0.bin" \
        "$WORK/single6/metrics.jsonl" && pass || fail "tp=$tp, V=4096: final parameters differ"
done
T3="$WORK/v4096tp3/ckpt/step_00000010"
grep -q "^  padded_vocab: 4224$" "$T3/manifest.yaml" && pass || fail "tp=3 manifest: padded_vocab is not 4224"
# HF export of the TP = 3 checkpoint: 4096 rows, the same file as from its tp=1 reshard
"$CTRAIN" export --format hf "$T3" "$WORK/hf3" > "$WORK/hf3.log" 2>&1 \
    || fail "export of the tp=3 checkpoint: $(tail -3 "$WORK/hf3.log")"
"$CTRAIN" export --format hf "$WORK/v4096tp3/tp1" "$WORK/hf3_tp1" > "$WORK/hf3_tp1.log" 2>&1 \
    || fail "export of its tp=1 reshard: $(tail -3 "$WORK/hf3_tp1.log")"
python3 - "$WORK/hf3/model.safetensors" <<'PY' && pass || fail "tp=3 export: wte is not (4096, 48)"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
sys.exit(0 if h["transformer.wte.weight"]["shape"] == [4096, 48] else 1)
PY
grep -q '"vocab_size": 4096' "$WORK/hf3/config.json" && pass || fail "tp=3 export: config.json vocab_size"
cmp -s "$WORK/hf3/model.safetensors" "$WORK/hf3_tp1/model.safetensors" && pass \
    || fail "the tp=3 export differs from its tp=1 reshard's"

# ZeRO-1 shards the AdamW state: per-rank optimizer memory falls by dp
grep -q "AdamW state: .* per rank (ZeRO-1)" "$WORK/dp2zero.log" && pass || fail "ZeRO log line"
full=$(grep -o 'AdamW state: [0-9.]*' "$WORK/dp2.log" | grep -o '[0-9.]*$')
half=$(grep -o 'AdamW state: [0-9.]*' "$WORK/dp2zero.log" | grep -o '[0-9.]*$')
python3 -c "import sys; sys.exit(0 if abs($full / $half - 2) < 0.05 else 1)" && pass \
    || fail "ZeRO-1 optimizer memory $half MiB is not half of $full MiB"
# every layout's metrics held validation losses (compare.py checks them when
# present): at steps 0, 5 and 10
n=$(grep -c '"val_loss"' "$WORK/dp2b4/metrics.jsonl")
[ "$n" -eq 3 ] && pass || fail "dp2b4 logged $n validation losses, want 3"
finish
