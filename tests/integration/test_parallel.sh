#!/usr/bin/env bash
# Parallelism is proven by equivalence: every layout below trains the same
# 10 steps (same global batch of 256 tokens, same seed) as one process, and
# must reproduce its train and validation losses within 1e-5 relative, and
# its final parameters within 1e-5 relative in L2 norm and 1e-5 absolute per
# element (parameters are O(0.01..1); a per-element relative bound cannot
# hold for coordinates whose gradient is pure rounding noise, such as the
# key biases, which Adam turns into lr-sized steps). Floating-point summation
# order is the only allowed difference. TP runs are resharded to
# tp=1 with `ctrain reshard` before their parameters are compared. The
# validation loss is part of the equivalence: its windows depend neither on
# the ranks nor on the per-rank batch size (dp2b4 runs micro-batches of 4
# where the single process runs 2, as dp=2 x 8 against 1 x 16 would).
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
    $CMP params "$params" "$ref" 1e-5 1e-5 && pass || fail "$name: final parameters differ"
}

run_layout dp2        2 2 1 0
run_layout dp2b4      2 2 1 0 --set train.batch_size=4
run_layout dp4        4 4 1 0
run_layout tp2        2 1 2 0
run_layout tp4        4 1 4 0
run_layout dp2tp2     4 2 2 0
run_layout dp2zero    2 2 1 1
run_layout dp2tp2zero 4 2 2 1

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
