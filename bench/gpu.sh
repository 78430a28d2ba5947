#!/usr/bin/env bash
# GPU benchmark on one device, results in one block: GPT-2 124M and 350M at
# T=1024 with the largest micro-batch that fits, and 1.5B at B=40 (BIG=0
# leaves it out) (tokens/s, ms/step, MFU against the bf16 dense peak, peak
# device memory next to `ctrain plan`'s total for the same layout);
# SmolLM2-135M and Llama-3.2-1B (configs/smollm2-135m.yaml,
# configs/llama3.2-1b.yaml) at T=2048, the largest micro-batch that fits
# (our flash GQA kernels, head size 64, under model.attention auto; SmolLM2 also
# cuDNN's SDPA with fewer key/value heads where the build has cuDNN); the
# bf16 GEMM rate at 4096^3 through our matmul and through cuBLASLt alone;
# and the LayerNorm kernels alone at 124M's shape (ms per call, GB/s).
# llm.c on an H200 (issue 13): 350M B=64 50.7 GiB, 1.5B B=40 101.9 GiB.
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
  if [ "${BIG:-1}" = 1 ]; then
    echo "== GPT-2 1.5B (L=48, NH=25, C=1600), T=1024, B=40 =="
    "$BIN" model 48 25 1600 1024 ${STEPS_BIG:-5} auto 40 || exit $?
  fi
  echo "== SmolLM2-135M (L=30, NH=9, NKV=3, C=576, V=49152), T=2048 =="
  "$BIN" config configs/smollm2-135m.yaml 2048 ${STEPS:-20} || exit $?
  echo "== SmolLM2-135M, T=2048, model.attention: cudnn (cuDNN SDPA with fewer KV heads) =="
  "$BIN" config configs/smollm2-135m.yaml 2048 ${STEPS:-20} cudnn || echo "(no cuDNN GQA here)"
  echo "== Llama-3.2-1B (L=16, NH=32, NKV=8, C=2048, V=128256), T=2048 =="
  "$BIN" config configs/llama3.2-1b.yaml 2048 ${STEPS:-20} || exit $?
  echo "== bf16 GEMM 4096^3 =="
  "$BIN" gemm 4096 || exit $?
  echo "== LayerNorm alone, 124M at B=64 T=1024 (N=65536, C=768) =="
  "$BIN" layernorm 65536 768 || exit $?
} 2>&1)
rc=$?
set -e
echo "$out"
exit $rc
