#!/usr/bin/env bash
# One binary for CPU and GPU machines: the ctrain binary must not link the
# CUDA driver (libcuda is loaded at run time by the static CUDA runtime),
# model.device: auto must fall back to the CPU with a clear log line when no
# GPU is usable (and use it when one is), model.device: cuda without a GPU
# must fail with a hint, and the new keys are checked like any other.
. "$(dirname "$0")/lib.sh"
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 300
C="$WORK/cfg.yaml"

if command -v readelf >/dev/null; then
    needed=$(readelf -d "$CTRAIN" | grep NEEDED)
    if grep -q "libcuda\.so" <<<"$needed"; then fail "ctrain links libcuda: $needed"; else pass; fi
fi

out=$("$CTRAIN" train "$C" --set train.steps=2 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "device auto: exit $rc: $(tail -3 <<<"$out")"
if grep -q "CUDA device 0:" <<<"$out"; then
    gpu=1   # a GPU machine: auto took the GPU path
    grep -q "mfu" <<<"$out" && pass || fail "GPU run without an mfu figure: $(tail -3 <<<"$out")"
else
    gpu=0
    grep -q "no CUDA device found: training on the CPU" <<<"$out" && pass \
        || fail "device auto on a machine without a GPU: no fallback line: $(tail -3 <<<"$out")"
    expect_fail "device cuda without a GPU" "model.device is cuda" "HINT" -- \
        "$CTRAIN" train "$C" --set train.steps=2 --set model.device=cuda --set train.run_dir="$WORK/run_cuda"
fi
out=$("$CTRAIN" train "$C" --set train.steps=2 --set model.device=cpu --set train.run_dir="$WORK/run_cpu" 2>&1) \
    && ! grep -q "CUDA device 0:" <<<"$out" && pass || fail "model.device=cpu: $(tail -3 <<<"$out")"
expect_fail "bad device" "model.device" "auto" "cpu" "cuda" -- "$CTRAIN" train "$C" --set model.device=tpu
expect_fail "bad recompute" "model.recompute" "ln_gelu" -- "$CTRAIN" train "$C" --set model.recompute=all
expect_fail "bad attention" "model.attention" "cudnn" -- "$CTRAIN" train "$C" --set model.attention=flash
expect_fail "bad stochastic rounding" "optim.stochastic_rounding" -- \
    "$CTRAIN" train "$C" --set optim.stochastic_rounding=2
expect_fail "negative peak" "train.peak_tflops" -- "$CTRAIN" train "$C" --set train.peak_tflops=-1
echo "device test ran with gpu=$gpu"
finish
