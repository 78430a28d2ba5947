#!/usr/bin/env bash
# Resuming across layouts. A run stopped at step 10 and resumed must match
# the uninterrupted 20-step run:
#  - same layout (dp=2 with ZeRO-1): bit for bit;
#  - DP 2 -> 4 and DP 2 -> 1, with and without ZeRO-1 (the AdamW state is
#    re-sliced and the sample sequence continues): within the bound of
#    test_parallel.sh (`compare.py weights`), since only the summation
#    order changes;
#  - TP 2 -> 1 through `ctrain reshard --tp 1`: the same tolerances.
. "$(dirname "$0")/lib.sh"
setup_mpi_test || { finish; exit 1; }

train() { # DIR NP DP TP ZERO [extra ctrain args...]
    local dir=$1 np=$2 dp=$3 tp=$4 zero=$5; shift 5
    timeout 300 "$MPIRUN" -np "$np" "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$dir" \
        --set parallel.dp="$dp" --set parallel.tp="$tp" --set optim.zero="$zero" "$@" \
        >> "$dir.log" 2>&1 || { fail "$(basename "$dir"): run failed: $(tail -3 "$dir.log")"; return 1; }
}
final() { echo "$1/ckpt/step_00000020/params_tp0.bin"; }
same() { # NAME DIR: losses and parameters match the uninterrupted dp=2 run
    $CMP losses "$2/metrics.jsonl" "$WORK/straight/metrics.jsonl" 1e-5 && pass || fail "$1: losses differ"
    $CMP weights "$(final "$2")" "$(final "$WORK/straight")" "$WORK/straight/metrics.jsonl" && pass \
        || fail "$1: parameters differ"
}

train "$WORK/straight" 2 2 1 0
train "$WORK/straightz" 2 2 1 1

# same layout, ZeRO-1: bit-exact
train "$WORK/z" 2 2 1 1 --stop-at 10 && train "$WORK/z" 2 2 1 1 --set checkpoint.resume=auto
[ "$(grep -c '"loss"' "$WORK/z/metrics.jsonl")" = 20 ] && pass || fail "zero resume: not 20 steps"
diff <(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/z/metrics.jsonl") \
     <(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/straightz/metrics.jsonl") >/dev/null \
    && pass || fail "ZeRO-1 resume at the same layout is not bit-exact"
cmp -s "$(final "$WORK/z")" "$(final "$WORK/straightz")" && pass || fail "ZeRO-1 resume: parameters not bit-exact"
for z in 0 1; do
    cmp -s "$WORK/z/ckpt/step_00000020/optim_tp0_z$z.bin" "$WORK/straightz/ckpt/step_00000020/optim_tp0_z$z.bin" \
        && pass || fail "ZeRO-1 resume: optimizer shard $z not bit-exact"
done

# DP 2 -> 4 and 2 -> 1, without and with ZeRO-1
for zero in 0 1; do
    train "$WORK/half$zero" 2 2 1 $zero --stop-at 10 || continue
    for to in 4 1; do
        d="$WORK/dp2to${to}z$zero"
        mkdir -p "$d/ckpt" && cp -r "$WORK/half$zero/ckpt/step_00000010" "$d/ckpt/" && cp "$WORK/half$zero/metrics.jsonl" "$d/"
        train "$d" $to $to 1 $zero --set checkpoint.resume=auto && same "dp 2->$to zero=$zero" "$d"
        grep -q "resumed from .*step_00000010 at step 10" "$d.log" && pass || fail "dp 2->$to: did not resume"
    done
done

# TP 2 -> 1 with the offline reshard
train "$WORK/tp2" 2 1 2 0 --stop-at 10
expect_fail "tp mismatch" "parallel.tp = 2" "ctrain reshard --tp 1" -- \
    "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/tp2" --set checkpoint.resume=auto
"$CTRAIN" reshard --tp 1 "$WORK/tp2/ckpt/step_00000010" "$WORK/tp1ckpt" > "$WORK/reshard.log" 2>&1 \
    && pass || fail "reshard: $(tail -3 "$WORK/reshard.log")"
mkdir -p "$WORK/tp2to1" && cp "$WORK/tp2/metrics.jsonl" "$WORK/tp2to1/"
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/tp2to1" \
    --set checkpoint.resume="$WORK/tp1ckpt" > "$WORK/tp2to1.log" 2>&1 || fail "tp 2->1 resume: $(tail -3 "$WORK/tp2to1.log")"
same "tp 2->1 (reshard)" "$WORK/tp2to1"
# and back up: reshard 1 -> 4 loads at tp=4
"$CTRAIN" reshard --tp 4 "$WORK/tp1ckpt" "$WORK/tp4ckpt" > "$WORK/reshard4.log" 2>&1 \
    && pass || fail "reshard to 4: $(tail -3 "$WORK/reshard4.log")"
mkdir -p "$WORK/tp4" && cp "$WORK/tp2/metrics.jsonl" "$WORK/tp4/"
train "$WORK/tp4" 4 1 4 0 --set checkpoint.resume="$WORK/tp4ckpt" && {
    "$CTRAIN" reshard --tp 1 "$WORK/tp4/ckpt/step_00000020" "$WORK/tp4/back" > /dev/null 2>&1
    $CMP losses "$WORK/tp4/metrics.jsonl" "$WORK/straight/metrics.jsonl" 1e-5 && pass || fail "tp 1->4: losses differ"
    $CMP weights "$WORK/tp4/back/params_tp0.bin" "$(final "$WORK/straight")" "$WORK/straight/metrics.jsonl" \
        && pass || fail "tp 1->4: parameters differ"
}
finish
