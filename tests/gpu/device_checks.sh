#!/usr/bin/env bash
# The GPU checks in one run, for a lent GPU machine (the device tool), which
# has the CUDA toolkit, PyTorch and NCCL/cuDNN in Python's nvidia/* folders
# but no libcyaml, OpenBLAS, libcurl or Open MPI. Build here first with
# `bash tests/gpu/pack_bundle.sh`, then run with `.gpu` carried:
#   bash tests/gpu/device_checks.sh [quick]
# It unpacks the bundle at the absolute path it was built at (CTest files
# hold absolute paths), puts the toolkit's and nvidia/* libraries on the
# loader path, runs the gpu-labelled tests with their output, the CPU-vs-GPU
# unit tests, bench/gpu.sh (124M only with `quick`), then the attention
# kernels alone at GPT-2 124M's shape with B=8 (flash, per-row, cuDNN) and a
# 124M step with model.attention: plain, whose ratio to the cuDNN step (issue
# 13: at most 1.5) is printed last. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/ctrain-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_checks.log") 2>&1
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
[ -f .gpu/bundle.tar.xz ] || { echo "no .gpu/bundle.tar.xz: run tests/gpu/pack_bundle.sh here first"; exit 1; }
BUILT_AT=$(cat .gpu/built_at)
if [ "$BUILT_AT" != "$PWD" ]; then
    mkdir -p "$(dirname "$BUILT_AT")"
    [ -e "$BUILT_AT" ] || ln -s "$PWD" "$BUILT_AT"
fi
tar -xJf .gpu/bundle.tar.xz
SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CUDA_LIB=/usr/local/cuda/lib64
command -v nvcc >/dev/null && CUDA_LIB=$(dirname "$(command -v nvcc)")/../lib64
NV=""
for d in "$SITE"/nvidia/*/lib; do NV="$NV:$d"; done
export LD_LIBRARY_PATH="$PWD/build-gpu/gpu-libs:$CUDA_LIB$NV:${LD_LIBRARY_PATH:-}"
echo "unpacked in $(( $(date +%s) - t0 )) s"
missing=$(ldd build-gpu/ctrain | grep 'not found')
[ -z "$missing" ] || { echo "missing libraries: $missing"; exit 1; }
(cd build-gpu && ctest -L gpu --output-on-failure --timeout 240 2>&1 | tee "$OUT/ctest_gpu.log")
(cd build-gpu && ctest -R 'test_gpt2_grad|test_llmc|test_kernels' --output-on-failure --timeout 120 2>&1 | tail -8)
if [ "${1:-}" = quick ]; then
    echo "== GPT-2 124M (L=12, NH=12, C=768), T=1024 =="
    CT_LOG_LEVEL=warn build-gpu/bench/bench_gpu model 12 12 768 1024 ${STEPS:-20} 2>&1 | tee "$OUT/bench_gpu.log"
else
    BUILD=build-gpu STEPS=${STEPS:-20} bash bench/gpu.sh 2>&1 | tee "$OUT/bench_gpu.log"
fi
echo "== attention alone, GPT-2 124M shape (B=8, T=1024, NH=12, HS=64) =="
CT_LOG_LEVEL=warn build-gpu/bench/bench_gpu attention 8 1024 12 64 20 2>&1 | tee "$OUT/bench_attention.log"
echo "== GPT-2 124M, T=1024, model.attention: plain =="
CT_LOG_LEVEL=warn build-gpu/bench/bench_gpu model 12 12 768 1024 ${STEPS:-20} plain 2>&1 |
    tee -a "$OUT/bench_attention.log"
step_ms() { grep -A1 "^model L=12 NH=12 C=768 .*attention=$2" "$1" | grep -o 'ms_per_step=[0-9.]*' | head -1 | cut -d= -f2; }
cudnn_ms=$(step_ms "$OUT/bench_gpu.log" auto) plain_ms=$(step_ms "$OUT/bench_attention.log" plain)
if [ -n "$cudnn_ms" ] && [ -n "$plain_ms" ]; then
    echo "124M step: plain attention $plain_ms ms, auto (cuDNN when built) $cudnn_ms ms," \
         "ratio $(awk -v p="$plain_ms" -v c="$cudnn_ms" 'BEGIN { printf "%.2f", p / c }') (target <= 1.5)"
fi
echo "device checks: $(( $(date +%s) - t0 )) s"
