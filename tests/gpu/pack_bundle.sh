#!/usr/bin/env bash
# Builds the GPU path here (a machine with nvcc but no GPU) for a lent GPU
# machine that has the CUDA toolkit, cuDNN and NCCL (Python nvidia/*) but no
# libcyaml, OpenBLAS, libcurl or Open MPI: configure with MPI off, no
# -march=native and sm_90, build, copy the non-CUDA shared libraries the
# binaries need, and pack build, libraries and CTest files into
# .gpu/bundle.tar.xz (ignored by git; carry `.gpu` in the device call).
# tests/gpu/device_checks.sh unpacks and runs it there.
# Usage: bash tests/gpu/pack_bundle.sh   (from the repository root)
set -euo pipefail
BUILD=build-gpu
cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DCT_CUDA=ON -DCT_MPI=OFF -DCT_NATIVE=OFF \
    -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build $BUILD -j "$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -30 "$BUILD/build.log"; exit 1; }
rm -rf .gpu $BUILD/gpu-libs && mkdir -p .gpu $BUILD/gpu-libs
# the libraries the device machine lacks; CUDA's own come from there
for bin in $BUILD/ctrain $BUILD/bench/bench_gpu $BUILD/tests/test_*; do
    [ -x "$bin" ] || continue
    ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | grep -Ev '/(lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)[.-]|ld-linux|libcuda|libcudnn|libnccl|libcublas|libnvrtc)' |
    while read -r lib; do cp -L "$lib" $BUILD/gpu-libs/; done
# the objects and the emulator are not needed there, only what runs and CTest's
# files (about 14 MiB)
tar -C . --exclude='*.o' --exclude='*.a' --exclude='*_emu' --exclude="$BUILD/tests/cuda_emu" \
    --exclude='CMakeFiles/*.dir' --exclude='test-tmp' -cJf .gpu/bundle.tar.xz $BUILD
echo "bundle: $(du -h .gpu/bundle.tar.xz | cut -f1), built at $PWD"
echo "$PWD" > .gpu/built_at
