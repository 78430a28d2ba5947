#!/usr/bin/env bash
# `make bench`: the CPU benchmark of GPT-2 124M at B=4, T=64 (the issue's
# reference point; llm.c's train_gpt2.c takes about 9 s per step on a 2-core
# AVX2 machine) and at B=1, T=1024, and the same for the SmolLM2-135M shape
# (a Llama of about the same size: 30 layers, GQA, SwiGLU).
set -euo pipefail
BUILD=${BUILD:-build}
BIN="$BUILD/bench/bench_cpu"
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
echo "== GPT-2 124M, B=4, T=64 =="
"$BIN" 4 64 5
echo
echo "== GPT-2 124M, B=1, T=1024 =="
"$BIN" 1 1024 2
echo
echo "== SmolLM2-135M shape, B=4, T=64 =="
"$BIN" --config configs/smollm2-135m.yaml 4 64 5
echo
echo "== SmolLM2-135M shape, B=1, T=1024 =="
"$BIN" --config configs/smollm2-135m.yaml 1 1024 2
