#!/usr/bin/env bash
# Llama's GPU path end to end on the CUDA emulator (ctrain_emu): a Llama
# with grouped-query attention and an untied head, model.device cuda,
# trains on the (emulated) device and tracks the CPU run (every loss within
# 1%), samples, and a run stopped at step 5 and resumed from its checkpoint
# ends bit for bit where the uninterrupted run does (losses in every digit,
# parameters and AdamW state byte for byte). `ctrain plan`'s device total
# is the measured peak. Recompute, which the Llama GPU path lacks, and
# cuDNN attention in a build without cuDNN fail with a hint.
. "$(dirname "$0")/../integration/lib.sh"
CMP="python3 $SRC/tests/integration/compare.py"
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 300
sed -i 's/^model: {n_layer: 2, n_head: 2, n_embd: 32,/model: {arch: llama, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, ffn_dim: 56, tie_embeddings: 0,/' "$WORK/cfg.yaml"
grep -q "arch: llama" "$WORK/cfg.yaml" || fail "the config edit did not apply"
C="$WORK/cfg.yaml"
G="--set model.device=cuda"
S="--set train.steps=10"

losses() { grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$1/metrics.jsonl"; }

out=$("$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/gpu" --set eval.sample_tokens=8 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "GPU run: exit $rc: $(tail -5 <<<"$out")"
grep -q "CUDA device 0: ctrain CUDA emulator" <<<"$out" && pass || fail "GPU run did not use the device"
grep -q "GPU model (llama" <<<"$out" && pass || fail "not the Llama GPU backend"
grep -q -- "---- sample at step 10" <<<"$out" && pass || fail "no sample at the end: $(tail -5 <<<"$out")"

"$CTRAIN" train "$C" $S --set model.device=cpu --set train.run_dir="$WORK/cpu" >/dev/null 2>&1 \
    && pass || fail "CPU run"
$CMP losses "$WORK/gpu/metrics.jsonl" "$WORK/cpu/metrics.jsonl" 1e-2 && pass \
    || fail "GPU losses do not track the CPU's"

# preempted at step 5 with a checkpoint, resumed to 10: bit for bit
"$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/res" --stop-at 5 >/dev/null 2>&1 && pass \
    || fail "GPU run to step 5"
out=$("$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/res" --set checkpoint.resume=auto 2>&1) \
    && grep -q "resumed from .*step_00000005" <<<"$out" && pass || fail "GPU resume: $(tail -3 <<<"$out")"
a=$(losses "$WORK/gpu"); b=$(losses "$WORK/res")
[ "$(grep -c '"loss"' <<<"$a")" -eq 10 ] && [ "$a" = "$b" ] && pass \
    || { fail "resumed GPU losses differ"; diff <(echo "$a") <(echo "$b") | head >&2; }
for f in params_tp0.bin optim_tp0.bin; do
    cmp -s "$WORK/gpu/ckpt/step_00000010/$f" "$WORK/res/ckpt/step_00000010/$f" && pass \
        || fail "final $f differs after resume"
done

# the plan's device total is the peak the emulator measured (to 0.05 MiB)
want=$("$CTRAIN" plan "$C" $G | awk '$1 == "total" {gsub(/[()]/, "", $4); print $4; exit}')
got=$(grep -o '"device_mem_mib":[0-9.]*' "$WORK/gpu/metrics.jsonl" | tail -1 | cut -d: -f2)
python3 -c 'import sys; sys.exit(abs(int(sys.argv[1]) / 1048576 - float(sys.argv[2])) > 0.05)' \
    "$want" "$got" && pass || fail "plan $want bytes, measured $got MiB"

expect_fail "cudnn without cuDNN" "no cuDNN" "HINT" -- \
    "$CTRAIN" train "$C" $G --set model.attention=cudnn --set train.run_dir="$WORK/cudnn"
expect_fail "recompute" "model.recompute: gelu or none" "HINT" -- \
    "$CTRAIN" train "$C" $G --set model.recompute=ln_gelu --set train.run_dir="$WORK/rc"
finish
