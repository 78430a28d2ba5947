/* ctrain's CUDA emulator (tests/cuda_emu): stands in for <mma.h>, the WMMA
 * API (nvcuda::wmma), when kernels/cuda/(*).cu are compiled as host C++.
 *
 * Modelled: the bf16 m16n16k16 fragments (matrix_a and matrix_b, row or
 * column major, __nv_bfloat16) with fp32 accumulators, and fill_fragment,
 * load_matrix_sync, store_matrix_sync and mma_sync on them. Any other
 * shape, element type or WMMA function fails to compile, by design.
 *
 * A fragment here is the whole 16x16 tile, held by every lane of the warp
 * (on a GPU each lane holds 8 elements in an unspecified mapping). Its
 * elements sit in x[] in a scrambled order that differs per fragment type,
 * so code that assumes a mapping computes wrong values, while element-wise
 * work on fragments of one type (scaling, adding a fragment loaded from a
 * broadcast tile) stays correct, as it is on hardware.
 *
 * load, store and mma are warp-collective, as on hardware: every one of the
 * 32 lanes must call them at the same point (the emulator aborts when a lane
 * has returned, or lanes of a warp meet at different collectives). The last
 * lane to arrive does the work once and checks that all 32 lanes passed the
 * same pointer, ldm and layout, and fragments with equal contents: lanes
 * whose fragments differ have touched elements in a lane-dependent way,
 * which has no meaning under the hardware's mapping either. It also checks
 * what the CUDA documentation requires of the arguments: a 256-bit aligned
 * pointer and ldm a multiple of 16 bytes. fill_fragment and element access
 * are per lane (x[], num_elements), as on hardware. Products are exact and
 * sums fp32 in k order; tensor cores may order or round the fp32 sums
 * differently, which the tests' tolerances cover. */
#ifndef CT_EMU_MMA_H
#define CT_EMU_MMA_H

#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

/* emu_runtime.cpp: every lane of a full warp calls it with its own `arg`;
 * the last to arrive runs fn(the 32 lanes' args, what) once, then all go
 * on. Aborts (naming `what`) unless the warp's 32 lanes are live and all
 * are at a collective of the same name. */
void ct_emu_warp_collective(const char *what, void *arg, void (*fn)(void **args, const char *what));
[[noreturn]] void ct_emu_wmma_fail(const char *what, const char *why);

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
enum layout_t { mem_row_major, mem_col_major };

template <class T> struct ct_emu_false { static const bool value = false; };

template <class Use, int m, int n, int k, class T, class Layout = void> class fragment {
    static_assert(ct_emu_false<T>::value,
                  "cuda_emu: this WMMA fragment is not modelled (only m16n16k16 with "
                  "__nv_bfloat16 matrix_a/matrix_b and float accumulators); extend "
                  "tests/cuda_emu/include/mma.h first");
};

/* The tile of a fragment type: element (r, c) of the 16x16 tile sits at
 * x[(16 r + c) * MUL + ADD mod 256] (MUL odd: a bijection). */
template <class T, int MUL, int ADD> struct ct_emu_frag {
    enum { num_elements = 256, num_storage_elements = 256 };
    typedef T element_type;
    typedef T storage_element_type;
    T x[256];
    static int slot(int r, int c) { return ((16 * r + c) * MUL + ADD) & 255; }
};

template <> class fragment<matrix_a, 16, 16, 16, __nv_bfloat16, row_major>
    : public ct_emu_frag<__nv_bfloat16, 73, 5> {};
template <> class fragment<matrix_a, 16, 16, 16, __nv_bfloat16, col_major>
    : public ct_emu_frag<__nv_bfloat16, 21, 9> {};
template <> class fragment<matrix_b, 16, 16, 16, __nv_bfloat16, row_major>
    : public ct_emu_frag<__nv_bfloat16, 29, 3> {};
template <> class fragment<matrix_b, 16, 16, 16, __nv_bfloat16, col_major>
    : public ct_emu_frag<__nv_bfloat16, 45, 17> {};
template <> class fragment<accumulator, 16, 16, 16, float> : public ct_emu_frag<float, 37, 11> {};

/* Per lane, as on hardware. */
template <class T, int MUL, int ADD>
inline void fill_fragment(ct_emu_frag<T, MUL, ADD> &f,
                          const typename ct_emu_frag<T, MUL, ADD>::element_type &v)
{
    for (int i = 0; i < 256; i++) f.x[i] = v;
}

namespace ct_emu {

template <class L> struct is_col { static const bool value = false; };
template <> struct is_col<col_major> { static const bool value = true; };

/* One lane's arguments to a load or store. */
template <class F, class T> struct mem_args {
    F *frag;
    T *ptr;
    unsigned ldm;
    bool col; /* element (r, c) at ptr[c*ldm + r], else ptr[r*ldm + c] */
};

template <class F, class T> void check_mem(void **args, const char *what)
{
    const mem_args<F, T> &a0 = *(const mem_args<F, T> *)args[0];
    for (int l = 1; l < 32; l++) {
        const mem_args<F, T> &a = *(const mem_args<F, T> *)args[l];
        if (a.ptr != a0.ptr || a.ldm != a0.ldm || a.col != a0.col)
            ct_emu_wmma_fail(what, "lanes of the warp passed different pointers, ldm or layouts");
    }
    if ((uintptr_t)a0.ptr % 32 != 0)
        ct_emu_wmma_fail(what, "the pointer is not 256-bit (32-byte) aligned");
    if ((a0.ldm * sizeof(T)) % 16 != 0)
        ct_emu_wmma_fail(what, "ldm is not a multiple of 16 bytes (8 bf16 or 4 floats)");
}

template <class F> void check_same(void *const *frags, const char *what, const char *name)
{
    for (int l = 1; l < 32; l++)
        if (memcmp(frags[l], frags[0], sizeof(F)) != 0)
            ct_emu_wmma_fail(what, name);
}

template <class F, class T> void load_fn(void **args, const char *what)
{
    check_mem<F, T>(args, what);
    const mem_args<F, T> &a0 = *(const mem_args<F, T> *)args[0];
    F *f0 = a0.frag;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            f0->x[F::slot(r, c)] = a0.col ? a0.ptr[(size_t)c * a0.ldm + r]
                                          : a0.ptr[(size_t)r * a0.ldm + c];
    for (int l = 1; l < 32; l++) *((const mem_args<F, T> *)args[l])->frag = *f0;
}

template <class F> void store_fn(void **args, const char *what)
{
    check_mem<const F, float>(args, what);
    void *frags[32];
    for (int l = 0; l < 32; l++) frags[l] = (void *)((mem_args<const F, float> *)args[l])->frag;
    check_same<F>(frags, what,
                  "the lanes' fragments differ (an element was changed in a lane-dependent way)");
    const mem_args<const F, float> &a0 = *(const mem_args<const F, float> *)args[0];
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            (a0.col ? a0.ptr[(size_t)c * a0.ldm + r] : a0.ptr[(size_t)r * a0.ldm + c]) =
                a0.frag->x[F::slot(r, c)];
}

template <class FA, class FB> struct mma_args {
    fragment<accumulator, 16, 16, 16, float> *d;
    const FA *a;
    const FB *b;
    const fragment<accumulator, 16, 16, 16, float> *c;
};

template <class FA, class FB> void mma_fn(void **args, const char *what)
{
    typedef fragment<accumulator, 16, 16, 16, float> FC;
    typedef mma_args<FA, FB> A;
    void *fa[32], *fb[32], *fc[32];
    for (int l = 0; l < 32; l++) {
        fa[l] = (void *)((A *)args[l])->a;
        fb[l] = (void *)((A *)args[l])->b;
        fc[l] = (void *)((A *)args[l])->c;
    }
    const char *why = "the lanes' fragments differ (an element was changed in a lane-dependent way)";
    check_same<FA>(fa, what, why);
    check_same<FB>(fb, what, why);
    check_same<FC>(fc, what, why);
    const A &a0 = *(const A *)args[0];
    float a[16][16], b[16][16];
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            a[r][c] = __bfloat162float(a0.a->x[FA::slot(r, c)]);
            b[r][c] = __bfloat162float(a0.b->x[FB::slot(r, c)]);
        }
    FC d;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float s = a0.c->x[FC::slot(i, j)];
            for (int k = 0; k < 16; k++) s += a[i][k] * b[k][j]; /* products exact in fp32 */
            d.x[FC::slot(i, j)] = s;
        }
    for (int l = 0; l < 32; l++) *((A *)args[l])->d = d; /* d may alias c */
}

} // namespace ct_emu

template <class Use, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, L> &f,
                             const __nv_bfloat16 *p, unsigned ldm)
{
    typedef fragment<Use, 16, 16, 16, __nv_bfloat16, L> F;
    ct_emu::mem_args<F, const __nv_bfloat16> a = {&f, p, ldm, ct_emu::is_col<L>::value};
    ct_emu_warp_collective("wmma::load_matrix_sync", &a,
                           ct_emu::load_fn<F, const __nv_bfloat16>);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p,
                             unsigned ldm, layout_t layout)
{
    typedef fragment<accumulator, 16, 16, 16, float> F;
    ct_emu::mem_args<F, const float> a = {&f, p, ldm, layout == mem_col_major};
    ct_emu_warp_collective("wmma::load_matrix_sync", &a, ct_emu::load_fn<F, const float>);
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ldm, layout_t layout)
{
    typedef fragment<accumulator, 16, 16, 16, float> F;
    ct_emu::mem_args<const F, float> a = {&f, p, ldm, layout == mem_col_major};
    ct_emu_warp_collective("wmma::store_matrix_sync", &a, ct_emu::store_fn<F>);
}

template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c)
{
    typedef fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> FA;
    typedef fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> FB;
    ct_emu::mma_args<FA, FB> args = {&d, &a, &b, &c};
    ct_emu_warp_collective("wmma::mma_sync", &args, ct_emu::mma_fn<FA, FB>);
}

} // namespace wmma
} // namespace nvcuda

#endif
