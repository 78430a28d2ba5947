#!/usr/bin/env bash
# Bit-exact resume: 20 steps straight must equal 10 steps, stop, resume
# (auto and by explicit path), 10 more -- the same train and validation
# losses in every digit, and byte-identical final parameters and AdamW state.
. "$(dirname "$0")/lib.sh"
make_corpus "$WORK/data" 512 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 512

losses() { grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$1/metrics.jsonl"; }

"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/straight" > "$WORK/straight.log" 2>&1 \
    || fail "straight run failed: $(tail -3 "$WORK/straight.log")"
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/resumed" --stop-at 10 > "$WORK/r1.log" 2>&1 \
    || fail "first half failed: $(tail -3 "$WORK/r1.log")"
[ -f "$WORK/resumed/ckpt/step_00000010/manifest.yaml" ] && pass || fail "no checkpoint at step 10"
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/resumed" --set checkpoint.resume=auto \
    > "$WORK/r2.log" 2>&1 || fail "second half failed: $(tail -3 "$WORK/r2.log")"
grep -q "resumed from .*step_00000010 at step 10" "$WORK/r2.log" && pass || fail "did not resume from step 10"

a=$(losses "$WORK/straight"); b=$(losses "$WORK/resumed")
[ "$(grep -c '"loss"' <<<"$a")" -eq 20 ] && pass || fail "straight run logged $(grep -c '"loss"' <<<"$a") losses, want 20"
[ "$a" = "$b" ] && pass || { fail "losses differ after resume"; diff <(echo "$a") <(echo "$b") | head >&2; }
for f in params_tp0.bin optim_tp0.bin; do
    cmp -s "$WORK/straight/ckpt/step_00000020/$f" "$WORK/resumed/ckpt/step_00000020/$f" && pass \
        || fail "final $f differs after resume"
done

# explicit path resume gives the same result again
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/explicit" \
    --set checkpoint.resume="$WORK/resumed/ckpt/step_00000010" > "$WORK/r3.log" 2>&1 \
    || fail "explicit resume failed: $(tail -3 "$WORK/r3.log")"
cmp -s "$WORK/straight/ckpt/step_00000020/params_tp0.bin" "$WORK/explicit/ckpt/step_00000020/params_tp0.bin" \
    && pass || fail "explicit-path resume differs"

# the loss went down and the sampler runs on the result
first=$(grep -o '"step":1,"loss":[^,]*' "$WORK/straight/metrics.jsonl" | cut -d: -f3)
last=$(grep -o '"step":20,"loss":[^,]*' "$WORK/straight/metrics.jsonl" | cut -d: -f3)
python3 -c "import sys; sys.exit(0 if $last < $first - 0.5 else 1)" && pass || fail "loss did not fall: $first -> $last"
out=$("$CTRAIN" sample "$WORK/straight" --tokenizer "$WORK/data/tok.bpe" --tokens 20 --seed 3 2>&1) \
    && [ -n "$out" ] && pass || fail "ctrain sample failed: $out"
finish
