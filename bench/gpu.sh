#!/usr/bin/env bash
# GPU benchmark on one device, results in one block: GPT-2 124M and 350M at
# T=1024, SmolLM2-135M and Llama-3.2-1B (configs/smollm2-135m.yaml,
# configs/llama3.2-1b.yaml) at T=2048, each with the largest micro-batch
# that fits (tokens/s, ms/step, MFU against the bf16 dense peak, peak device
# memory), and the bf16 GEMM rate at 4096^3 through our matmul and through
# cuBLASLt alone. The Llama shapes run the plain GQA attention kernels
# (model.attention auto), SmolLM2 also cuDNN's SDPA with fewer key/value
# heads (model.attention cudnn, where the build has cuDNN).
# Targets on an H100/H200: 124M at >= 50% MFU; our GEMM within 5% of
# cuBLASLt's. Exits 77 when there is no CUDA device.
set -euo pipefail
BUILD=${BUILD:-build}
BIN="$BUILD/bench/bench_gpu"
[ -x "$BIN" ] || { echo "bench_gpu not built: build with CUDA (cmake -DCT_CUDA=ON)" >&2; exit 1; }
export CT_LOG_LEVEL=${CT_LOG_LEVEL:-warn}
set +e
out=$({
  echo "== GPT-2 124M (L=12, NH=12, C=768), T=1024 =="
  "$BIN" model 12 12 768 1024 ${STEPS:-20} || exit $?
  echo "== GPT-2 350M (L=24, NH=16, C=1024), T=1024 =="
  "$BIN" model 24 16 1024 1024 ${STEPS:-20} || exit $?
  echo "== SmolLM2-135M (L=30, NH=9, NKV=3, C=576, V=49152), T=2048 =="
  "$BIN" config configs/smollm2-135m.yaml 2048 ${STEPS:-20} || exit $?
  echo "== SmolLM2-135M, T=2048, model.attention: cudnn (cuDNN SDPA with fewer KV heads) =="
  "$BIN" config configs/smollm2-135m.yaml 2048 ${STEPS:-20} cudnn || echo "(no cuDNN GQA here)"
  echo "== Llama-3.2-1B (L=16, NH=32, NKV=8, C=2048, V=128256), T=2048 =="
  "$BIN" config configs/llama3.2-1b.yaml 2048 ${STEPS:-20} || exit $?
  echo "== bf16 GEMM 4096^3 =="
  "$BIN" gemm 4096 || exit $?
} 2>&1)
rc=$?
set -e
echo "$out"
exit $rc
