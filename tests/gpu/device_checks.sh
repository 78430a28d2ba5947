#!/usr/bin/env bash
# Issue 5's GPU checks in one run, for a lent GPU machine (the device tool):
# configure with CUDA on and MPI off (that machine has no Open MPI), NCCL
# and cuDNN from the Python environment's nvidia/* folders, build, run the
# gpu-labelled tests, the GPU half of the integration tests and
# bench/gpu.sh; every log goes under $OUT. Libraries the image may lack
# (libcyaml, libyaml, OpenBLAS, libcurl) can travel as .deb files in .debs/
# (carry it), unpacked into /tmp/sysroot here.
# Usage (device tool): bash tests/gpu/device_checks.sh   (OUT is set there)
set -uo pipefail
OUT=${OUT:-/tmp/ctrain-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_checks.log") 2>&1
SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
if ls .debs/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/sysroot
    for f in .debs/*.deb; do dpkg -x "$f" /tmp/sysroot; done
    export CMAKE_PREFIX_PATH=/tmp/sysroot/usr
    export LD_LIBRARY_PATH=/tmp/sysroot/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
    export CPATH=/tmp/sysroot/usr/include:${CPATH:-}
fi
export NCCL_ROOT=${NCCL_ROOT:-$SITE/nvidia/nccl} CUDNN_ROOT=${CUDNN_ROOT:-$SITE/nvidia/cudnn}
export LD_LIBRARY_PATH=$NCCL_ROOT/lib:$CUDNN_ROOT/lib:${LD_LIBRARY_PATH:-}
[ -f "$SITE/include/cudnn_frontend.h" ] || [ -n "${CUDNN_FRONTEND_ROOT:-}" ] \
    || echo "WARNING: no cudnn-frontend headers: cuDNN attention will be off (carry the wheel)"
t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCT_CUDA=ON -DCT_MPI=OFF \
    -DCMAKE_CUDA_ARCHITECTURES=90 2>&1 | tail -8 || exit 1
cmake --build build-gpu -j "$(nproc)" 2>&1 | tail -20
[ -x build-gpu/ctrain ] || { echo "build failed"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
(cd build-gpu && ctest -L gpu --output-on-failure --timeout 300 2>&1 | tee "$OUT/ctest_gpu.log")
(cd build-gpu && ctest -R 'test_device|test_gpt2_grad|test_resume$' --output-on-failure 2>&1 | tail -15)
BUILD=build-gpu STEPS=${STEPS:-20} bash bench/gpu.sh 2>&1 | tee "$OUT/bench_gpu.log"
