/* ctrain's CUDA emulator, host side: the thread model behind emu.h's
 * launches, and the CUDA runtime calls kernels/cuda use, on host memory
 * (one "device", synchronous streams).
 *
 * Thread model: the CUDA threads of a block are fibers (cooperative
 * coroutines, a small x86-64 stack switch) run by the launching OS thread;
 * blocks run one after another. A fiber runs until it waits at a barrier
 * (__syncthreads: every live thread of the block; a warp barrier inside
 * __shfl_xor_sync, __syncwarp and the WMMA collectives of include/mma.h:
 * every live lane of the warp) or returns. The last to arrive releases the
 * others, after running the collective's work once. Lanes of a warp must
 * meet at the same kind of warp barrier, and a lane must not return while
 * the rest of its warp waits at a full-warp one (both abort). When no fiber
 * can run but some have not returned, the kernel is deadlocked (a barrier
 * in divergent code) and the emulator aborts with what each thread waits
 * for. Each fiber's stack ends in a guard page, so an overflow faults. */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

#include "cuda_runtime.h"
#include "emu.h"

#if !defined(__x86_64__)
#error "tests/cuda_emu switches stacks in x86-64 assembly"
#endif

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

extern "C" void ct_emu_switch(void **save_sp, void *new_sp);
asm(R"(
.text
.globl ct_emu_switch
.type ct_emu_switch,@function
ct_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size ct_emu_switch, .-ct_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

namespace {

enum { RUNNABLE, AT_BLOCK, AT_WARP, DONE };
const size_t STACK = 256 * 1024, GUARD = 4096; /* WMMA fragments are whole tiles here */

struct Fiber {
    void *sp;
    char *stack;
    int state;
    uint3 tid;
};

struct Launch {
    std::vector<Fiber> f;
    std::vector<uint64_t> shfl[2]; /* one slot per thread, double-buffered */
    std::vector<unsigned char> parity; /* which buffer a lane's next shuffle uses */
    std::vector<int> warp_live, warp_wait;
    std::vector<unsigned char> warp_full; /* waiters need all 32 lanes */
    std::vector<const char *> tag;        /* the warp barrier a lane waits at */
    std::vector<void *> coll_arg;         /* its argument to a warp collective */
    int live = 0, block_wait = 0, cur = -1;
    void *sched_sp = nullptr;
    const std::function<void()> *body = nullptr;
};

thread_local Launch *L;
inline __attribute__((always_inline)) void yield_to_scheduler();

void trampoline()
{
    Launch *l = L;
    (*l->body)();
    Fiber &me = l->f[(size_t)l->cur];
    me.state = DONE;
    int w = l->cur / 32;
    l->live--;
    l->warp_live[(size_t)w]--;
    /* a barrier the others wait at may now be complete */
    if (l->block_wait > 0 && l->block_wait == l->live) {
        for (auto &x : l->f)
            if (x.state == AT_BLOCK) x.state = RUNNABLE;
        l->block_wait = 0;
    }
    if (l->warp_wait[(size_t)w] > 0 && l->warp_full[(size_t)w]) {
        const char *at = "a warp barrier";
        for (int i = w * 32; i < w * 32 + 32 && i < (int)l->f.size(); i++)
            if (l->f[(size_t)i].state == AT_WARP) at = l->tag[(size_t)i];
        fprintf(stderr, "cuda_emu: a lane of block %u, warp %d returned while the rest of the "
                        "warp waits at %s, which needs all 32 lanes\n", blockIdx.x, w, at);
        abort();
    }
    if (l->warp_wait[(size_t)w] > 0 && l->warp_wait[(size_t)w] == l->warp_live[(size_t)w]) {
        for (int i = w * 32; i < w * 32 + 32 && i < (int)l->f.size(); i++)
            if (l->f[(size_t)i].state == AT_WARP) l->f[(size_t)i].state = RUNNABLE;
        l->warp_wait[(size_t)w] = 0;
    }
    yield_to_scheduler();
    abort(); /* never resumed */
}

/* Switches from the current fiber straight to the next runnable one (round
 * robin), or to the scheduler when none is (deadlock or end of block).
 * Inlined into the barriers: a shuffle is one barrier per lane, and the
 * emulator's time goes to these few lines. */
inline __attribute__((always_inline)) void yield_to_scheduler()
{
    Launch *l = L;
    Fiber &me = l->f[(size_t)l->cur];
    const int n = (int)l->f.size();
    for (int k = 1, t = l->cur; k <= n; k++) {
        if (++t == n) t = 0;
        if (l->f[(size_t)t].state == RUNNABLE) {
            l->cur = t;
            threadIdx = l->f[(size_t)t].tid;
            ct_emu_switch(&me.sp, l->f[(size_t)t].sp);
            return;
        }
    }
    ct_emu_switch(&me.sp, l->sched_sp);
}

void start_fiber(Fiber &fb, int t)
{
    /* The stacks are 260 KiB apart, a multiple of 4 KiB, so their tops
     * would all map to one L1 set and every switch would miss: each
     * fiber's top is moved down by its own cache line (64 sets' worth). */
    uintptr_t top = ((uintptr_t)(fb.stack + STACK - (t % 64) * 64)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = nullptr;                 /* trampoline's (unused) return address */
    *--sp = (void *)&trampoline;     /* popped by ret */
    for (int i = 0; i < 6; i++) *--sp = nullptr; /* rbp rbx r12-r15 */
    fb.sp = sp;
    fb.state = RUNNABLE;
}

} // namespace

void ct_emu_syncthreads(void)
{
    Launch *l = L;
    if (++l->block_wait == l->live) { /* the last to arrive: release all */
        for (auto &x : l->f)
            if (x.state == AT_BLOCK) x.state = RUNNABLE;
        l->block_wait = 0;
        return;
    }
    l->f[(size_t)l->cur].state = AT_BLOCK;
    yield_to_scheduler();
}

/* The calling lane waits at warp barrier `tag` until every live lane of its
 * warp has arrived; the last to arrive checks that all are at the same kind
 * of barrier, runs fn (a collective's work) and releases them. full: the
 * barrier needs all 32 lanes (the caller has checked that they are live). */
static inline __attribute__((always_inline)) void
warp_barrier(Launch *l, int w, const char *tag, bool full, void (*fn)(void **, const char *) = nullptr)
{
    int t = l->cur;
    l->tag[(size_t)t] = tag;
    if (full) l->warp_full[(size_t)w] = 1;
    if (++l->warp_wait[(size_t)w] == l->warp_live[(size_t)w]) {
        for (int i = w * 32; i < w * 32 + 32 && i < (int)l->f.size(); i++)
            if ((l->f[(size_t)i].state == AT_WARP || i == t) && l->tag[(size_t)i] != tag &&
                strcmp(l->tag[(size_t)i], tag)) {
                fprintf(stderr, "cuda_emu: block %u, warp %d: lanes meet at different warp "
                                "barriers (%s and %s): divergent warp-collective code\n",
                        blockIdx.x, w, l->tag[(size_t)i], tag);
                abort();
            }
        if (fn) fn(&l->coll_arg[(size_t)(w * 32)], tag);
        for (int i = w * 32; i < w * 32 + 32 && i < (int)l->f.size(); i++)
            if (l->f[(size_t)i].state == AT_WARP) l->f[(size_t)i].state = RUNNABLE;
        l->warp_wait[(size_t)w] = 0;
        l->warp_full[(size_t)w] = 0;
        return;
    }
    l->f[(size_t)t].state = AT_WARP;
    yield_to_scheduler();
}

/* Aborts unless the calling lane's warp has all 32 lanes live. */
static void need_full_warp(Launch *l, const char *what)
{
    int w = l->cur / 32;
    if (l->warp_live[(size_t)w] != 32) {
        fprintf(stderr, "cuda_emu: %s in block %u, warp %d with %d live lanes (it needs the whole "
                        "warp)\n", what, blockIdx.x, w, l->warp_live[(size_t)w]);
        abort();
    }
}

void ct_emu_syncwarp(unsigned mask)
{
    Launch *l = L;
    if (mask != 0xffffffffu) {
        fprintf(stderr, "cuda_emu: __syncwarp(0x%x): only the full mask is modelled\n", mask);
        abort();
    }
    need_full_warp(l, "__syncwarp");
    warp_barrier(l, l->cur / 32, "__syncwarp", true);
}

void ct_emu_warp_collective(const char *what, void *arg, void (*fn)(void **, const char *))
{
    Launch *l = L;
    need_full_warp(l, what);
    l->coll_arg[(size_t)l->cur] = arg;
    warp_barrier(l, l->cur / 32, what, true, fn);
}

void ct_emu_wmma_fail(const char *what, const char *why)
{
    fprintf(stderr, "cuda_emu: %s in block (%u,%u,%u), warp %d: %s\n", what, blockIdx.x,
            blockIdx.y, blockIdx.z, L ? L->cur / 32 : -1, why);
    abort();
}

uint64_t ct_emu_shfl_xor(unsigned mask, uint64_t v, int lane_mask)
{
    Launch *l = L;
    int t = l->cur, w = t / 32, lane = t % 32;
    if (mask == 0xffffffffu) need_full_warp(l, "full-mask __shfl_xor_sync");
    /* one barrier per shuffle: buffer p is written again only two shuffles
     * later, after a barrier every lane passes after reading it */
    int p = l->parity[(size_t)t];
    l->parity[(size_t)t] = (unsigned char)(p ^ 1);
    l->shfl[p][(size_t)t] = v;
    warp_barrier(l, w, "__shfl_xor_sync", mask == 0xffffffffu);
    return l->shfl[p][(size_t)(w * 32 + (lane ^ lane_mask))];
}

float ct_emu_atomic_add(float *addr, float v)
{
    float old = *addr; /* fibers never run concurrently */
    *addr = old + v;
    return old;
}

void ct_emu_run(dim3 grid, dim3 block, const std::function<void()> &body)
{
    const int nt = (int)(block.x * block.y * block.z);
    const long nb = (long)grid.x * grid.y * grid.z;
    if (nt <= 0 || nt > 1024 || nb <= 0 || grid.y > 65535 || grid.z > 65535) {
        fprintf(stderr, "cuda_emu: invalid launch grid (%u,%u,%u) block (%u,%u,%u)\n", grid.x,
                grid.y, grid.z, block.x, block.y, block.z);
        abort();
    }
    Launch *saved = L;
    Launch l;
    L = &l;
    l.body = &body;
    l.f.resize((size_t)nt);
    l.shfl[0].resize((size_t)nt);
    l.shfl[1].resize((size_t)nt);
    l.parity.resize((size_t)nt);
    l.warp_live.resize((size_t)(nt + 31) / 32);
    l.warp_wait.resize(l.warp_live.size());
    l.warp_full.resize(l.warp_live.size());
    l.tag.resize((size_t)nt);
    l.coll_arg.resize((size_t)nt);
    static thread_local std::vector<char *> pool; /* stacks, reused by launches */
    while (pool.size() < (size_t)nt) {
        char *m = (char *)mmap(nullptr, STACK + GUARD, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED || mprotect(m, GUARD, PROT_NONE) != 0) {
            fprintf(stderr, "cuda_emu: cannot map a fiber stack: %s\n", strerror(errno));
            abort();
        }
        pool.push_back(m + GUARD); /* stacks grow down, into the guard page */
    }
    for (int t = 0; t < nt; t++) {
        l.f[(size_t)t].stack = pool[(size_t)t];
        l.f[(size_t)t].tid =
            make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
    }
    blockDim = block;
    gridDim = grid;
    for (long b = 0; b < nb; b++) {
        blockIdx = make_uint3(b % grid.x, (b / grid.x) % grid.y, b / (grid.x * grid.y));
        l.live = nt;
        l.block_wait = 0;
        for (size_t w = 0; w < l.warp_live.size(); w++) {
            l.warp_live[w] = (int)w * 32 + 32 <= nt ? 32 : nt - (int)w * 32;
            l.warp_wait[w] = 0;
            l.warp_full[w] = 0;
        }
        for (int t = 0; t < nt; t++) start_fiber(l.f[(size_t)t], t);
        for (auto &p : l.parity) p = 0;
        for (;;) {
            bool ran = false;
            for (int t = 0; t < nt; t++) {
                if (l.f[(size_t)t].state != RUNNABLE) continue;
                ran = true;
                l.cur = t;
                threadIdx = l.f[(size_t)t].tid;
                ct_emu_switch(&l.sched_sp, l.f[(size_t)t].sp);
            }
            if (l.live == 0) break;
            if (!ran) {
                fprintf(stderr, "cuda_emu: deadlock in block %ld: %d threads live, %d at "
                                "__syncthreads", b, l.live, l.block_wait);
                for (size_t w = 0; w < l.warp_wait.size(); w++)
                    if (l.warp_wait[w]) fprintf(stderr, ", %d of warp %zu at a shuffle",
                                                l.warp_wait[w], w);
                fprintf(stderr, "\n");
                abort();
            }
        }
    }
    L = saved;
}

/* ---- runtime ------------------------------------------------------------- */
static cudaError_t last_error = cudaSuccess;

extern "C" {
/* What tests count: device allocations and host waits (stream or device
 * synchronisations), to check that a training step does neither except
 * where it should. */
long ct_emu_count_malloc = 0, ct_emu_count_sync = 0;

/* Device memory in use: the bytes asked of cudaMalloc and not yet freed,
 * exactly (no rounding), so cudaMemGetInfo's used = total - free is the sum
 * of the live allocations and a memory plan can be checked against it. */
static std::mutex mem_mu;
static std::unordered_map<void *, size_t> mem_live;
static size_t mem_in_use = 0;
static const size_t mem_total = (size_t)8 << 30;

cudaError_t ct_emu_cudaMalloc(void **p, size_t n)
{
    ct_emu_count_malloc++;
    *p = aligned_alloc(256, (n + 255) / 256 * 256);
    if (!*p) return last_error = cudaErrorMemoryAllocation;
    memset(*p, 0xA5, n); /* garbage, as device memory is */
    std::lock_guard<std::mutex> lk(mem_mu);
    mem_live[*p] = n;
    mem_in_use += n;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaFree(void *p)
{
    if (p) {
        std::lock_guard<std::mutex> lk(mem_mu);
        auto it = mem_live.find(p);
        if (it != mem_live.end()) {
            mem_in_use -= it->second;
            mem_live.erase(it);
        }
    }
    free(p);
    return cudaSuccess;
}
cudaError_t ct_emu_cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k,
                                   cudaStream_t st)
{
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t ct_emu_cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t ct_emu_cudaStreamSynchronize(cudaStream_t s)
{
    ct_emu_count_sync++;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaDeviceSynchronize(void)
{
    ct_emu_count_sync++;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaStreamQuery(cudaStream_t s) { return cudaSuccess; }
cudaError_t ct_emu_cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t ct_emu_cudaPeekAtLastError(void) { return last_error; }
const char *ct_emu_cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error (emulated)" : "emulated CUDA error";
}
/* How many devices the emulator shows: CT_EMU_DEVICES when set (0 to 64;
 * 0 is a machine without a GPU),
 * else, under mpirun, OMPI_COMM_WORLD_LOCAL_SIZE (the ranks on this node:
 * a node with one GPU per rank, the layout ctrain expects, so mpirun tests
 * need not say), else 1. Tests of a node with fewer GPUs than ranks set
 * CT_EMU_DEVICES. The devices are names only: they share one memory pool
 * and the current device is per thread, as in CUDA. */
static int emu_devices(void)
{
    static int n = -1;
    if (n >= 0) return n;
    const char *e = getenv("CT_EMU_DEVICES");
    if (!e || !*e) e = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int v = e && *e ? atoi(e) : 1;
    n = v >= 0 && v <= 64 ? v : 1;
    return n;
}
static thread_local int emu_current = 0;

cudaError_t ct_emu_cudaGetDeviceCount(int *n)
{
    *n = emu_devices();
    return *n ? cudaSuccess : (last_error = cudaErrorNoDevice);
}
cudaError_t ct_emu_cudaSetDevice(int d)
{
    if (d < 0 || d >= emu_devices()) return last_error = cudaErrorInvalidDevice;
    emu_current = d;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaGetDevice(int *d)
{
    *d = emu_current;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    if (d < 0 || d >= emu_devices()) return last_error = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "ctrain CUDA emulator");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->totalGlobalMem = mem_total;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    std::lock_guard<std::mutex> lk(mem_mu);
    *free_b = mem_in_use < mem_total ? mem_total - mem_in_use : 0;
    *total_b = mem_total;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaStreamCreateWithFlags(cudaStream_t *s, unsigned f)
{
    static char dummy[16];
    *s = (cudaStream_t)(dummy + 1);
    return cudaSuccess;
}
cudaError_t ct_emu_cudaStreamDestroy(cudaStream_t s) { return cudaSuccess; }
/* An event is the host time of its last record: the emulator's streams are
 * synchronous, so that is when the work before it finished. */
struct ct_emu_event {
    double t;
};
cudaError_t ct_emu_cudaEventCreateWithFlags(cudaEvent_t *e, unsigned f)
{
    *e = (cudaEvent_t)(new ct_emu_event{0.0});
    return cudaSuccess;
}
cudaError_t ct_emu_cudaEventDestroy(cudaEvent_t e)
{
    delete (ct_emu_event *)e;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ((ct_emu_event *)e)->t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return cudaSuccess;
}
cudaError_t ct_emu_cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    *ms = (float)(1e3 * (((ct_emu_event *)b)->t - ((ct_emu_event *)a)->t));
    return cudaSuccess;
}
cudaError_t ct_emu_cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned f)
{
    return cudaSuccess;
}
}
