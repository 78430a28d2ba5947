#!/usr/bin/env bash
# The build finds NCCL and cuDNN outside the CUDA toolkit, as a Python
# environment's nvidia/* folders hold them (versioned .so only, no
# unversioned link), through NCCL_ROOT / CUDNN_ROOT / CUDNN_FRONTEND_ROOT,
# with MPI off (one process). Configures a scratch build and compiles comm/
# (the nccl backend) in it. Skipped (77) without nvcc.
. "$(dirname "$0")/lib.sh"
command -v nvcc >/dev/null || { echo "no nvcc: skipped"; exit 77; }
tk=$(dirname "$(dirname "$(command -v nvcc)")")
cudnn_so=$(ls "$tk"/lib*/libcudnn.so.9* "$tk"/lib*/*/libcudnn.so.9* 2>/dev/null | head -1)
nccl_so=$(ls "$tk"/lib*/libnccl.so.2* "$tk"/lib*/*/libnccl.so.2* 2>/dev/null | head -1)
fe=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/include
[ -n "$cudnn_so" ] && [ -n "$nccl_so" ] && [ -f "$fe/cudnn_frontend.h" ] \
    || { echo "no cuDNN/NCCL/cudnn-frontend to copy: skipped"; exit 77; }
# a pip-like layout: nvidia/cudnn/{include,lib}, nvidia/nccl/{include,lib}
P="$WORK/site/nvidia"
mkdir -p "$P/cudnn/include" "$P/cudnn/lib" "$P/nccl/include" "$P/nccl/lib" "$WORK/fe"
ln -s "$cudnn_so" "$P/cudnn/lib/libcudnn.so.9"
ln -s "$nccl_so" "$P/nccl/lib/libnccl.so.2"
cp "$tk"/include/cudnn*.h "$P/cudnn/include/"
cp "$tk"/include/nccl.h "$P/nccl/include/"
ln -s "$fe" "$WORK/fe/include"
# the toolkit's own copies must not be what is found: point CMake away from them
out=$(cmake -S "$SRC" -B "$WORK/build" -DCT_MPI=OFF -DCT_CUDA=ON \
      -DCUDNN_ROOT="$P/cudnn" -DNCCL_ROOT="$P/nccl" -DCUDNN_FRONTEND_ROOT="$WORK/fe" 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "configure failed: $(tail -5 <<<"$out")"
cache="$WORK/build/CMakeCache.txt"
grep -q "^CT_CUDNN_LIB:FILEPATH=$P/cudnn/lib/libcudnn.so.9" "$cache" && pass || fail "cuDNN not found under CUDNN_ROOT: $(grep CT_CUDNN_LIB "$cache")"
grep -q "^CT_NCCL_LIB:FILEPATH=$P/nccl/lib/libnccl.so.2" "$cache" && pass || fail "NCCL not found under NCCL_ROOT: $(grep CT_NCCL_LIB "$cache")"
grep -q "^CT_CUDNN_INCLUDE:PATH=$P/cudnn/include" "$cache" && pass || fail "cudnn.h not from CUDNN_ROOT: $(grep CT_CUDNN_INCLUDE "$cache")"
grep -q "comm: MPI OFF" <<<"$out" && pass || fail "CT_MPI=OFF not honoured"
grep -q "cuDNN attention: ON" <<<"$out" && pass || fail "cuDNN attention off: $(grep cuDNN <<<"$out")"
out=$(cmake --build "$WORK/build" --target ct_comm 2>&1) && pass || fail "ct_comm (nccl backend, no MPI) does not build: $(tail -5 <<<"$out")"
finish
