/* ctrain's CUDA emulator, kernel side: force-included (g++ -include) into
 * every kernels/cuda/*.cu compiled as host C++ by tests/cuda_emu. A launch
 * `k<<<grid, block, smem, stream>>>(args)` (rewritten by translate.py into
 * ct_emu_launch(k, grid, block, smem, stream)(args)) runs synchronously:
 * one OS thread per CUDA thread of a block, the blocks one after another.
 * __syncthreads is a barrier over the block's threads that have not
 * returned; __shfl_xor_sync exchanges through a per-warp buffer and fails
 * loudly if a lane of a full-mask shuffle has returned; __syncwarp is a
 * barrier of the whole warp (full mask only); WMMA (nvcuda::wmma, bf16
 * m16n16k16) is modelled by include/mma.h; a barrier nobody
 * completes within 60 s is reported as a deadlock (abort). __shared__
 * variables become statics, which is sound because blocks never overlap.
 * What it does not model: timing, memory coherence subtleties beyond
 * barrier ordering, warp-synchronous code without __syncwarp, and any
 * device intrinsic not defined below (compilation fails, by design). */
#ifndef CT_EMU_H
#define CT_EMU_H

#include <cuda_runtime.h> /* the emulator's, first: it renames the runtime */
#include <cuda_bf16.h>
#include <vector_types.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

void ct_emu_syncthreads(void);
void ct_emu_syncwarp(unsigned mask);
uint64_t ct_emu_shfl_xor(unsigned mask, uint64_t v, int lane_mask);
void ct_emu_run(dim3 grid, dim3 block, const std::function<void()> &body);
float ct_emu_atomic_add(float *addr, float v);

inline void __syncthreads(void) { ct_emu_syncthreads(); }
/* Full mask only; every lane of the warp must be live (else abort). */
inline void __syncwarp(unsigned mask = 0xffffffffu) { ct_emu_syncwarp(mask); }
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = ct_emu_shfl_xor(mask, bits, lane_mask);
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
inline float atomicAdd(float *addr, float v) { return ct_emu_atomic_add(addr, v); }
/* Blocks run one after another and a block's threads are fibers that never
 * run concurrently, so an unsigned add, a fence and an L2 load are plain. */
inline unsigned atomicAdd(unsigned *addr, unsigned v)
{
    unsigned old = *addr;
    *addr = old + v;
    return old;
}
inline void __threadfence(void) {}
template <class T> inline T __ldcg(const T *p) { return *p; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
using std::isfinite;

inline dim3 ct_emu_dim(dim3 d) { return d; }
inline dim3 ct_emu_dim(unsigned long long x) { return dim3((unsigned)x); }
inline dim3 ct_emu_dim(long long x) { return dim3((unsigned)x); }
inline dim3 ct_emu_dim(unsigned long x) { return dim3((unsigned)x); }
inline dim3 ct_emu_dim(long x) { return dim3((unsigned)x); }
inline dim3 ct_emu_dim(unsigned x) { return dim3(x); }
inline dim3 ct_emu_dim(int x) { return dim3((unsigned)x); }

template <class F> struct ct_emu_launcher {
    F *kernel;
    dim3 grid, block;
    template <class... A> void operator()(A... args) const
    {
        F *k = kernel;
        ct_emu_run(grid, block, [&]() { k(args...); });
    }
};
template <class F, class G, class B>
ct_emu_launcher<F> ct_emu_launch(F *kernel, G grid, B block, size_t smem = 0, void *stream = 0)
{
    (void)smem;
    (void)stream;
    return ct_emu_launcher<F>{kernel, ct_emu_dim(grid), ct_emu_dim(block)};
}
template <class F, class G, class B, class S>
ct_emu_launcher<F> ct_emu_launch(F *kernel, G grid, B block, size_t smem, S *stream)
{
    (void)smem;
    (void)stream;
    return ct_emu_launcher<F>{kernel, ct_emu_dim(grid), ct_emu_dim(block)};
}

#endif
