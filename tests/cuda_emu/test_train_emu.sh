#!/usr/bin/env bash
# ctrain's GPU path end to end on the CUDA emulator (ctrain_emu: the real
# trainer linked with kernels/cuda compiled by tests/cuda_emu): model.device
# cuda trains and tracks the CPU run, checkpoints come back from the device
# and resume onto it bit for bit, recompute and the plain attention give the
# same losses, samples are generated, MFU is reported, train.profile_ops
# logs a per-op table each logged step (shape only: the emulator's timings
# mean nothing) without changing the losses, and asking for cuDNN attention
# in a build without it fails with a hint.
. "$(dirname "$0")/../integration/lib.sh"
CMP="python3 $SRC/tests/integration/compare.py"
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 300
C="$WORK/cfg.yaml"
G="--set model.device=cuda --set train.peak_tflops=100"
S="--set train.steps=10"   # the emulator runs ~0.7 s per step here

out=$("$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/gpu" --set eval.sample_tokens=8 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "GPU run: exit $rc: $(tail -5 <<<"$out")"
grep -q "CUDA device 0: ctrain CUDA emulator" <<<"$out" && pass || fail "GPU run did not use the device"
grep -q "| mfu " <<<"$out" && pass || fail "no mfu on the step line"
grep -q "peak device memory" <<<"$out" && pass || fail "no peak device memory line"
n=$(grep -c '"device_mem_mib":' "$WORK/gpu/metrics.jsonl"); m=$(grep -c '"mfu":' "$WORK/gpu/metrics.jsonl")
[ "$n" -eq 10 ] && [ "$m" -eq 10 ] && pass || fail "GPU metrics: $n device_mem_mib and $m mfu fields in 10 steps"
grep -q -- "---- sample at step 10" <<<"$out" && pass || fail "no sample at the end: $(tail -5 <<<"$out")"

"$CTRAIN" train "$C" $S --set model.device=cpu --set train.run_dir="$WORK/cpu" >/dev/null 2>&1 \
    && pass || fail "CPU run"
# bf16 against fp32: every train and val loss within 1% (observed ~1e-3)
$CMP losses "$WORK/gpu/metrics.jsonl" "$WORK/cpu/metrics.jsonl" 1e-2 && pass \
    || fail "GPU losses do not track the CPU's"

# preempted at step 5 with a checkpoint, resumed to 10: same losses, same
# final weights as the uninterrupted GPU run (the emulator is deterministic)
"$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/res" --stop-at 5 >/dev/null 2>&1 && pass \
    || fail "GPU run to step 5"
out=$("$CTRAIN" train "$C" $G $S --set train.run_dir="$WORK/res" --set checkpoint.resume=auto 2>&1) \
    && grep -q "resumed from" <<<"$out" && pass || fail "GPU resume: $(tail -3 <<<"$out")"
$CMP losses "$WORK/res/metrics.jsonl" "$WORK/gpu/metrics.jsonl" 1e-6 && pass \
    || fail "resumed GPU losses differ"
$CMP params "$WORK/res/ckpt/step_00000010/params_tp0.bin" "$WORK/gpu/ckpt/step_00000010/params_tp0.bin" \
    0 0 && pass || fail "resumed GPU weights differ"

for v in "model.recompute=ln_gelu" "model.recompute=gelu" "model.attention=plain"; do
    "$CTRAIN" train "$C" $G $S --set "$v" --set train.run_dir="$WORK/v_${v##*=}" >/dev/null 2>&1 && pass \
        || fail "GPU run with $v"
    $CMP losses "$WORK/v_${v##*=}/metrics.jsonl" "$WORK/gpu/metrics.jsonl" 1e-3 && pass \
        || fail "$v changes the losses"
done
# per-op timing: one table per logged step, every family of a GPT-2 step,
# the times in metrics.jsonl, the same losses as without it
out=$("$CTRAIN" train "$C" $G --set train.steps=3 --set train.log_every=1 --set train.profile_ops=true \
    --set train.run_dir="$WORK/prof" 2>&1) && pass || fail "profile_ops run: $(tail -3 <<<"$out")"
n=$(grep -c "device time by op, step" <<<"$out")
[ "$n" -eq 3 ] && pass || fail "profile_ops: $n tables in 3 steps"
for op in embedding layernorm matmul attention cross-entropy optimizer; do
    grep -qE "^  $op +[0-9.]+ +[0-9.]+% +[0-9]+  [0-9.]+ (TFLOP|GB)/s$" <<<"$out" && pass \
        || fail "profile_ops: no table row for $op"
done
python3 - "$WORK/prof/metrics.jsonl" <<'PY' && pass || fail "profile_ops: metrics lack ops_ms"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
want = {"embedding", "layernorm", "matmul", "attention", "gelu", "cross-entropy", "tp comm",
        "dp comm", "optimizer", "other"}
ok = len(rows) == 3 and all(set(r["ops_ms"]) == want and r["ops_ms"]["matmul"] > 0
                            and r["tp_comm_ms"] == 0 and r["dp_comm_ms"] == 0 for r in rows)
sys.exit(0 if ok else 1)
PY
python3 - "$WORK/prof/metrics.jsonl" "$WORK/gpu/metrics.jsonl" <<'PY' && pass || fail "profile_ops changed the losses"
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p) if '"loss"' in l] for p in sys.argv[1:])
sys.exit(0 if a == b[:3] else 1)
PY
expect_fail "cudnn without cuDNN" "no cuDNN" "HINT" -- \
    "$CTRAIN" train "$C" $G --set model.attention=cudnn --set train.run_dir="$WORK/cudnn"
finish
