#!/usr/bin/env bash
# Bad input through the real binary: each case must fail with exit != 0 and
# a message naming the file or key.
. "$(dirname "$0")/lib.sh"
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 300
C="$WORK/cfg.yaml"

# config errors
printf 'model:\n  n_layr: 2\n' > "$WORK/unknown.yaml"
expect_fail "unknown key" "n_layr" "unknown.yaml:2" -- "$CTRAIN" train "$WORK/unknown.yaml"
expect_fail "strict int" "train.steps" "1e3" -- "$CTRAIN" train "$C" --set train.steps=1e3
expect_fail "missing config" "nope.yaml" -- "$CTRAIN" train "$WORK/nope.yaml"

# data errors
expect_fail "missing shard" "$WORK/data/none.bin" -- "$CTRAIN" train "$C" --set data.train="$WORK/data/none.bin" \
    --set train.run_dir="$WORK/never/run"
# a run that fails at start leaves no run directory behind: not when the data
# is missing, nor when a later step of the setup fails (missing init weights)
[ ! -e "$WORK/never/run" ] && pass || fail "a run with missing data left $WORK/never/run behind"
expect_fail "missing init_from" "$WORK/nope.bin" -- "$CTRAIN" train "$C" --set model.init_from="$WORK/nope.bin" \
    --set train.run_dir="$WORK/never/run"
[ ! -e "$WORK/never/run" ] && pass || fail "a run with missing init weights left $WORK/never/run behind"
mkdir -p "$WORK/kept"
expect_fail "missing shard, existing run dir" "none.bin" -- "$CTRAIN" train "$C" \
    --set data.train="$WORK/data/none.bin" --set train.run_dir="$WORK/kept"
[ -d "$WORK/kept" ] && pass || fail "a failed run removed a run directory it did not create"
cp "$WORK/data/c_train_000000.bin" "$WORK/magic.bin"
printf '\x01\x02\x03\x04' | dd of="$WORK/magic.bin" bs=1 count=4 conv=notrunc status=none
expect_fail "wrong magic" "magic.bin" "bad magic" -- "$CTRAIN" train "$C" --set data.train="$WORK/magic.bin"
head -c 3000 "$WORK/data/c_train_000000.bin" > "$WORK/trunc.bin"
expect_fail "truncated shard" "trunc.bin" "truncated" -- "$CTRAIN" train "$C" --set data.train="$WORK/trunc.bin"
expect_fail "token >= vocab" "outside the vocabulary" "model.vocab_size = 200" -- \
    "$CTRAIN" train "$C" --set model.vocab_size=200

# train.steps below optim.warmup_steps (3 here): one warning naming both keys,
# and none when warmup ends within the run
out=$("$CTRAIN" train "$C" --set train.steps=2 --set train.run_dir="$WORK/warm2" 2>&1) \
    || fail "2 steps with 3 warmup steps: $(tail -3 <<<"$out")"
n=$(grep -c "train.steps = 2 is below optim.warmup_steps = 3" <<<"$out")
[ "$n" -eq 1 ] && pass || fail "want one warmup warning, got $n: $(grep -i warmup <<<"$out")"
out=$("$CTRAIN" train "$C" --set train.steps=4 --set train.run_dir="$WORK/warm4" 2>&1)
grep -q "warmup_steps" <<<"$out" && fail "warmup warning with 4 steps > 3 warmup steps" || pass

# checkpoint without manifest
mkdir -p "$WORK/run2/ckpt/step_00000005"
expect_fail "no manifest" "step_00000005" "no manifest.yaml" -- \
    "$CTRAIN" train "$C" --set train.run_dir="$WORK/run2" --set checkpoint.resume="$WORK/run2/ckpt/step_00000005"
# resume: auto skips the incomplete directory and starts fresh
out=$("$CTRAIN" train "$C" --set train.run_dir="$WORK/run2" --set checkpoint.resume=auto --set train.steps=2 2>&1) \
    && grep -q "found no usable checkpoint" <<<"$out" && pass || fail "resume auto with only an incomplete checkpoint: $out"
# a corrupted parameter file is caught by its checksum
ck="$WORK/run2/ckpt/step_00000002"
printf "\xff\xff\xff\xff" | dd of="$ck/params_tp0.bin" bs=1 seek=100 count=4 conv=notrunc status=none
expect_fail "corrupt checkpoint" "params_tp0.bin" "checksum mismatch" -- \
    "$CTRAIN" train "$C" --set train.run_dir="$WORK/run2" --set checkpoint.resume="$ck" --set train.steps=4

# CLI usage errors
expect_fail "unknown command" "unknown command" -- "$CTRAIN" frobnicate
"$CTRAIN" --help | grep -q "usage: ctrain" && pass || fail "ctrain --help"
for c in train sample tokenize; do
    "$CTRAIN" $c --help | grep -q "usage" && pass || fail "ctrain $c --help"
done
finish
