/* Causal self-attention on cuDNN's fused scaled-dot-product attention
 * (flash attention), built through the cuDNN graph API with NVIDIA's
 * header-only cudnn-frontend. Compiled only when CMake finds cuDNN and the
 * frontend headers; attention_nocudnn.cu stands in otherwise.
 *
 * Layouts (element strides; C = NH*HS). cuDNN wants {B, NH, T, HS} views,
 * which strides express over our buffers without any permute:
 *   Q, K, V    inside qkv (B,T,3,NH,HS): dims {B,NH,T,HS},
 *              strides {T*3C, HS, 3C, 1}; K starts C and V 2C elements in;
 *   dQ, dK, dV the same inside dqkv;
 *   O, dO      (B,T,NH,HS): strides {T*C, HS, C, 1};
 *   Stats      fp32 (B,NH,T): dims {B,NH,T,1}, strides {NH*T, T, 1, 1}.
 * Grouped-query attention (ct__cudnn_gqa_*, Llama) takes q (B,T,NH,HS) and
 * k, v (B,T,NKV,HS) in separate buffers: Q dims {B,NH,T,HS} strides
 * {T*C, HS, C, 1}, K and V dims {B,NKV,T,HS} strides {T*KV, HS, KV, 1}
 * (KV = NKV*HS), cuDNN sharing each key/value head among NH/NKV query
 * heads; dQ, dK, dV have their inputs' layouts.
 * io bf16, intermediate and compute fp32, scale 1/sqrt(HS), causal mask
 * (diagonal band right bound 0, top-left aligned: key j <= query i).
 *
 * Stats: with generate_stats the forward writes, per query row, cuDNN's
 * softmax statistic max_j(s_ij) + ln(sum_j exp(s_ij - max)) over the scaled,
 * masked scores s = scale * q.k, i.e. the natural-log log-sum-exp (we leave
 * stats_use_log2 off). That is the quantity kernels.h specifies for
 * `stats` and the plain kernels store, so a forward from one implementation
 * can feed the backward of the other.
 *
 * The backward uses cuDNN's default algorithm, which is not deterministic
 * (summation order may vary). On Hopper, set_deterministic_algorithm makes this
 * frontend choose a path with a B*NH*T*T bf16 dP workspace (1.5 GiB at
 * B=64, NH=12, T=1024), too large for training shapes.
 *
 * State (ctx->cudnn): the cuDNN handle, a graph cache keyed by
 * (B, T, NH, HS, forward/backward), and one workspace sized for the largest
 * graph, grown only by ct__cudnn_prepare. No C++ exception leaves the
 * ct__cudnn_* entry points: frontend errors come back as error_t objects,
 * and every entry point also catches exceptions.
 *
 * Linking: besides libcudnn, the frontend's headers reference NVRTC
 * (nvrtcCreateProgram etc., for an open-source engine compiled at run
 * time), so whatever links this file also needs libnvrtc (CUDA::nvrtc). */

/* No graph serialisation here: leaving out the frontend's bundled JSON
 * library cuts this file's compile time. */
#define CUDNN_FRONTEND_SKIP_JSON_LIB 1
#include <cstring> /* the frontend needs it and, without the JSON library, misses it */
#include <cudnn.h>
/* The frontend headers trip warnings of their own: nvcc's #128 (unreachable
 * loop) and #2810 (ignored nodiscard result), and gcc's -Wunused-function
 * for a static helper. */
#pragma nv_diagnostic push
#pragma nv_diag_suppress 128
#pragma nv_diag_suppress 2810
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <cudnn_frontend.h>
#pragma GCC diagnostic pop
#pragma nv_diagnostic pop

#include <cmath>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"

namespace fe = cudnn_frontend;

namespace {

/* Tensor uids shared by the forward and backward graphs. */
enum : int64_t {
    UID_Q = 1,
    UID_K,
    UID_V,
    UID_O,
    UID_STATS,
    UID_DO,
    UID_DQ,
    UID_DK,
    UID_DV,
};

using GraphPtr = std::shared_ptr<fe::graph::Graph>;
/* B, T, NH, NKV, HS, backward; NKV 0 is the packed qkv layout (GPT-2) */
using GraphKey = std::tuple<int, int, int, int, int, int>;

struct CudnnState {
    cudnnHandle_t handle = nullptr;
    std::map<GraphKey, GraphPtr> graphs;
    void *ws = nullptr; /* device workspace shared by all graphs */
    size_t ws_bytes = 0;
};

CudnnState *state_of(ct_cuda_t *ctx) { return static_cast<CudnnState *>(ctx->cudnn); }

GraphPtr lookup(CudnnState *st, int B, int T, int NH, int NKV, int HS, int bwd)
{
    auto it = st->graphs.find(GraphKey(B, T, NH, NKV, HS, bwd));
    return it == st->graphs.end() ? nullptr : it->second;
}

/* Records the first failing step and its message; true on success. */
struct Failure {
    const char *step = nullptr;
    std::string message;
};

bool fe_ok(fe::error_t err, const char *step, Failure *f)
{
    if (err.is_good()) return true;
    f->step = step;
    f->message = err.get_message();
    return false;
}

/* validate -> operation graph -> heuristic plans -> support -> build;
 * then the workspace the chosen plan needs. */
bool finish_graph(const GraphPtr &g, cudnnHandle_t handle, int64_t *ws_bytes, Failure *f)
{
    if (!fe_ok(g->validate(), "validate", f)) return false;
    if (!fe_ok(g->build_operation_graph(handle), "build_operation_graph", f)) return false;
    if (!fe_ok(g->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans", f))
        return false;
    if (!fe_ok(g->check_support(), "check_support", f)) return false;
    if (!fe_ok(g->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans", f))
        return false;
    int64_t ws = 0;
    if (!fe_ok(g->get_workspace_size(ws), "get_workspace_size", f)) return false;
    *ws_bytes = ws;
    return true;
}

GraphPtr new_graph()
{
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return g;
}

using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

/* A bf16 (the graph's io type) input tensor. */
TensorPtr input(const GraphPtr &g, const char *name, int64_t uid, const std::vector<int64_t> &dim,
                const std::vector<int64_t> &stride)
{
    return g->tensor(
        fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride));
}

/* The dims and strides of Q (and O, dQ) and of K and V (and dK, dV): the
 * packed qkv layout for NKV == 0, else separate q and k/v buffers. */
struct Layout {
    std::vector<int64_t> q_dim, q_stride, kv_dim, kv_stride, o_stride;
};

Layout layout(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS)
{
    const int64_t C = NH * HS;
    Layout l;
    l.q_dim = {B, NH, T, HS};
    l.o_stride = {T * C, HS, C, 1};
    if (NKV == 0) {
        l.q_stride = {T * 3 * C, HS, 3 * C, 1};
        l.kv_dim = l.q_dim;
        l.kv_stride = l.q_stride;
    } else {
        const int64_t KV = NKV * HS;
        l.q_stride = l.o_stride;
        l.kv_dim = {B, NKV, T, HS};
        l.kv_stride = {T * KV, HS, KV, 1};
    }
    return l;
}

GraphPtr build_forward(cudnnHandle_t handle, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                       int64_t HS, int64_t *ws_bytes, Failure *f)
{
    const Layout l = layout(B, T, NH, NKV, HS);
    const std::vector<int64_t> &dim = l.q_dim, &o_stride = l.o_stride;
    auto g = new_graph();
    auto Q = input(g, "Q", UID_Q, dim, l.q_stride);
    auto K = input(g, "K", UID_K, l.kv_dim, l.kv_stride);
    auto V = input(g, "V", UID_V, l.kv_dim, l.kv_stride);
    auto opts = fe::graph::SDPA_attributes()
                    .set_name("ct_attention_forward")
                    .set_generate_stats(true)
                    .set_attn_scale(1.0f / sqrtf((float)HS))
                    .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                    .set_diagonal_band_right_bound(0);
    auto outs = g->sdpa(Q, K, V, opts);
    auto O = outs[0], stats = outs[1];
    O->set_output(true).set_uid(UID_O).set_dim(dim).set_stride(o_stride);
    stats->set_output(true)
        .set_uid(UID_STATS)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({B, NH, T, 1})
        .set_stride({NH * T, T, 1, 1});
    if (!finish_graph(g, handle, ws_bytes, f)) return nullptr;
    return g;
}

GraphPtr build_backward(cudnnHandle_t handle, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                        int64_t HS, int64_t *ws_bytes, Failure *f)
{
    const Layout l = layout(B, T, NH, NKV, HS);
    const std::vector<int64_t> &dim = l.q_dim, &o_stride = l.o_stride;
    auto g = new_graph();
    auto Q = input(g, "Q", UID_Q, dim, l.q_stride);
    auto K = input(g, "K", UID_K, l.kv_dim, l.kv_stride);
    auto V = input(g, "V", UID_V, l.kv_dim, l.kv_stride);
    auto O = input(g, "O", UID_O, dim, o_stride);
    auto dO = input(g, "dO", UID_DO, dim, o_stride);
    auto stats = g->tensor(fe::graph::Tensor_attributes()
                               .set_name("stats")
                               .set_uid(UID_STATS)
                               .set_data_type(fe::DataType_t::FLOAT)
                               .set_dim({B, NH, T, 1})
                               .set_stride({NH * T, T, 1, 1}));
    auto opts = fe::graph::SDPA_backward_attributes()
                    .set_name("ct_attention_backward")
                    .set_attn_scale(1.0f / sqrtf((float)HS))
                    .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                    .set_diagonal_band_right_bound(0);
    auto grads = g->sdpa_backward(Q, K, V, O, dO, stats, opts);
    grads[0]->set_output(true).set_uid(UID_DQ).set_dim(dim).set_stride(l.q_stride);
    grads[1]->set_output(true).set_uid(UID_DK).set_dim(l.kv_dim).set_stride(l.kv_stride);
    grads[2]->set_output(true).set_uid(UID_DV).set_dim(l.kv_dim).set_stride(l.kv_stride);
    if (!finish_graph(g, handle, ws_bytes, f)) return nullptr;
    return g;
}

ct_status_t prepare(ct_cuda_t *ctx, CudnnState *st, int B, int T, int NH, int NKV, int HS)
{
    if (lookup(st, B, T, NH, NKV, HS, 0) && lookup(st, B, T, NH, NKV, HS, 1)) return CT_OK;
    Failure f;
    int64_t ws_fwd = 0, ws_bwd = 0;
    const char *which = "forward";
    GraphPtr fwd = build_forward(st->handle, B, T, NH, NKV, HS, &ws_fwd, &f);
    GraphPtr bwd;
    if (fwd) {
        which = "backward";
        bwd = build_backward(st->handle, B, T, NH, NKV, HS, &ws_bwd, &f);
    }
    if (!fwd || !bwd) {
        CT_LOG_DEBUG("cuDNN attention does not support B=%d T=%d NH=%d NKV=%d HS=%d: %s graph "
                     "failed at %s: %s",
                     B, T, NH, NKV, HS, which, f.step, f.message.c_str());
        return CT_ERR_UNSUPPORTED;
    }

    size_t need = (size_t)(ws_fwd > ws_bwd ? ws_fwd : ws_bwd);
    if (need > st->ws_bytes) {
        /* Allocate the new workspace before dropping the old one, so the
         * graphs already cached keep a valid workspace if this fails; wait
         * for queued work that may still use the old one. */
        void *ws = nullptr;
        ct_status_t s = ct_cuda_alloc(ctx, need, "cuDNN attention workspace", &ws);
        if (s != CT_OK) return s;
        if (st->ws) {
            CT_CHECK_CUDA(cudaDeviceSynchronize());
            ct_cuda_dealloc(st->ws);
        }
        st->ws = ws;
        st->ws_bytes = need;
    }
    st->graphs[GraphKey(B, T, NH, NKV, HS, 0)] = fwd;
    st->graphs[GraphKey(B, T, NH, NKV, HS, 1)] = bwd;
    CT_LOG_DEBUG("cuDNN attention prepared for B=%d T=%d NH=%d NKV=%d HS=%d (workspace fwd "
                 "%lld, bwd %lld bytes)",
                 B, T, NH, NKV, HS, (long long)ws_fwd, (long long)ws_bwd);
    return CT_OK;
}

/* The cached graph for a shape, preparing it on a miss (the only path on
 * which forward/backward may allocate). Aborts if cuDNN rejects the shape:
 * callers are expected to have prepared it and fallen back on failure. */
GraphPtr graph_for(ct_cuda_t *ctx, CudnnState *st, int B, int T, int NH, int NKV, int HS,
                   int bwd)
{
    GraphPtr g = lookup(st, B, T, NH, NKV, HS, bwd);
    if (g) return g;
    if (prepare(ctx, st, B, T, NH, NKV, HS) != CT_OK) {
        ct__fatal(__FILE__, __LINE__, __func__,
                  "cuDNN attention cannot run B=%d T=%d NH=%d NKV=%d HS=%d (not prepared, and "
                  "preparing failed)",
                  B, T, NH, NKV, HS);
    }
    g = lookup(st, B, T, NH, NKV, HS, bwd);
    CT_ASSERT(g);
    return g;
}

void execute(CudnnState *st, const GraphPtr &g, std::unordered_map<int64_t, void *> &pack,
             cudaStream_t stream, const char *what, int B, int T, int NH, int HS)
{
    cudnnStatus_t cs = cudnnSetStream(st->handle, stream);
    if (cs != CUDNN_STATUS_SUCCESS) {
        ct__fatal(__FILE__, __LINE__, __func__, "cudnnSetStream failed: %s",
                  cudnnGetErrorString(cs));
    }
    fe::error_t err = g->execute(st->handle, pack, st->ws);
    if (err.is_bad()) {
        ct__fatal(__FILE__, __LINE__, __func__,
                  "cuDNN attention %s failed for B=%d T=%d NH=%d HS=%d: %s", what, B, T, NH, HS,
                  err.get_message().c_str());
    }
}

}  // namespace

int ct__cudnn_available(void) { return 1; }

ct_status_t ct__cudnn_init(ct_cuda_t *ctx)
{
    CT_ASSERT(ctx);
    ctx->cudnn = nullptr;
    try {
        size_t version = cudnnGetVersion();
        if (version < 90000) {
            CT_LOG_ERROR("cuDNN attention needs cuDNN 9 or newer, the loaded library is %zu",
                         version);
            return CT_ERR_UNSUPPORTED;
        }
        std::unique_ptr<CudnnState> st(new CudnnState());
        cudnnStatus_t cs = cudnnCreate(&st->handle);
        if (cs != CUDNN_STATUS_SUCCESS) {
            CT_LOG_ERROR("cudnnCreate failed: %s", cudnnGetErrorString(cs));
            return CT_ERR_UNSUPPORTED;
        }
        CT_LOG_DEBUG("cuDNN %zu, cudnn-frontend %d.%d.%d", version, CUDNN_FRONTEND_MAJOR_VERSION,
                     CUDNN_FRONTEND_MINOR_VERSION, CUDNN_FRONTEND_PATCH_VERSION);
        ctx->cudnn = st.release();
        return CT_OK;
    } catch (const std::exception &e) {
        CT_LOG_ERROR("cuDNN initialisation failed: %s", e.what());
    } catch (...) {
        CT_LOG_ERROR("cuDNN initialisation failed: unknown C++ exception");
    }
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_free(ct_cuda_t *ctx)
{
    if (!ctx || !ctx->cudnn) return;
    CudnnState *st = state_of(ctx);
    try {
        st->graphs.clear(); /* plans go before the handle */
    } catch (...) {
        CT_LOG_WARN("cuDNN graph destruction raised a C++ exception (ignored)");
    }
    if (st->ws) ct_cuda_dealloc(st->ws);
    if (st->handle) {
        cudnnStatus_t cs = cudnnDestroy(st->handle);
        if (cs != CUDNN_STATUS_SUCCESS)
            CT_LOG_WARN("cudnnDestroy failed: %s", cudnnGetErrorString(cs));
    }
    delete st;
    ctx->cudnn = nullptr;
}

ct_status_t ct__cudnn_prepare(ct_cuda_t *ctx, int B, int T, int NH, int HS)
{
    CT_ASSERT(ctx && ctx->cudnn);
    CT_ASSERT(B > 0 && T > 0 && NH > 0 && HS > 0);
    try {
        return prepare(ctx, state_of(ctx), B, T, NH, 0, HS);
    } catch (const std::exception &e) {
        CT_LOG_DEBUG("cuDNN attention does not support B=%d T=%d NH=%d HS=%d: %s", B, T, NH, HS,
                     e.what());
    } catch (...) {
        CT_LOG_DEBUG("cuDNN attention does not support B=%d T=%d NH=%d HS=%d: unknown C++ "
                     "exception",
                     B, T, NH, HS);
    }
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_attention_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats,
                                            const ct_bf16_t *qkv, int B, int T, int NH, int HS,
                                            cudaStream_t stream)
{
    CT_ASSERT(ctx && ctx->cudnn && out && stats && qkv);
    CudnnState *st = state_of(ctx);
    const long C = (long)NH * HS;
    try {
        GraphPtr g = graph_for(ctx, st, B, T, NH, 0, HS, 0);
        ct_bf16_t *q = const_cast<ct_bf16_t *>(qkv);
        std::unordered_map<int64_t, void *> pack = {
            {UID_Q, q}, {UID_K, q + C}, {UID_V, q + 2 * C}, {UID_O, out}, {UID_STATS, stats},
        };
        execute(st, g, pack, stream, "forward", B, T, NH, HS);
    } catch (const std::exception &e) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN attention forward: %s", e.what());
    } catch (...) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN attention forward: unknown C++ exception");
    }
}

void ct__cudnn_attention_backward(ct_cuda_t *ctx, ct_bf16_t *dqkv,
                                             const ct_bf16_t *dout, const ct_bf16_t *qkv,
                                             const ct_bf16_t *out, const float *stats, int B,
                                             int T, int NH, int HS, cudaStream_t stream)
{
    CT_ASSERT(ctx && ctx->cudnn && dqkv && dout && qkv && out && stats);
    CudnnState *st = state_of(ctx);
    const long C = (long)NH * HS;
    try {
        GraphPtr g = graph_for(ctx, st, B, T, NH, 0, HS, 1);
        ct_bf16_t *q = const_cast<ct_bf16_t *>(qkv);
        std::unordered_map<int64_t, void *> pack = {
            {UID_Q, q},
            {UID_K, q + C},
            {UID_V, q + 2 * C},
            {UID_O, const_cast<ct_bf16_t *>(out)},
            {UID_DO, const_cast<ct_bf16_t *>(dout)},
            {UID_STATS, const_cast<float *>(stats)},
            {UID_DQ, dqkv},
            {UID_DK, dqkv + C},
            {UID_DV, dqkv + 2 * C},
        };
        execute(st, g, pack, stream, "backward", B, T, NH, HS);
    } catch (const std::exception &e) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN attention backward: %s", e.what());
    } catch (...) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN attention backward: unknown C++ exception");
    }
}

/* ---- grouped-query attention (separate q, k, v buffers) ------------------------ */

ct_status_t ct__cudnn_gqa_prepare(ct_cuda_t *ctx, int B, int T, int NH, int NKV, int HS)
{
    CT_ASSERT(ctx && ctx->cudnn);
    CT_ASSERT(B > 0 && T > 0 && NH > 0 && NKV > 0 && NH % NKV == 0 && HS > 0);
    try {
        return prepare(ctx, state_of(ctx), B, T, NH, NKV, HS);
    } catch (const std::exception &e) {
        CT_LOG_DEBUG("cuDNN attention does not support B=%d T=%d NH=%d NKV=%d HS=%d: %s", B, T,
                     NH, NKV, HS, e.what());
    } catch (...) {
        CT_LOG_DEBUG("cuDNN attention does not support B=%d T=%d NH=%d NKV=%d HS=%d: unknown "
                     "C++ exception",
                     B, T, NH, NKV, HS);
    }
    return CT_ERR_UNSUPPORTED;
}

void ct__cudnn_gqa_forward(ct_cuda_t *ctx, ct_bf16_t *out, float *stats, const ct_bf16_t *q,
                           const ct_bf16_t *k, const ct_bf16_t *v, int B, int T, int NH, int NKV,
                           int HS, cudaStream_t stream)
{
    CT_ASSERT(ctx && ctx->cudnn && out && stats && q && k && v);
    CudnnState *st = state_of(ctx);
    try {
        GraphPtr g = graph_for(ctx, st, B, T, NH, NKV, HS, 0);
        std::unordered_map<int64_t, void *> pack = {
            {UID_Q, const_cast<ct_bf16_t *>(q)}, {UID_K, const_cast<ct_bf16_t *>(k)},
            {UID_V, const_cast<ct_bf16_t *>(v)}, {UID_O, out},
            {UID_STATS, stats},
        };
        execute(st, g, pack, stream, "forward (GQA)", B, T, NH, HS);
    } catch (const std::exception &e) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN GQA forward: %s", e.what());
    } catch (...) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN GQA forward: unknown C++ exception");
    }
}

void ct__cudnn_gqa_backward(ct_cuda_t *ctx, ct_bf16_t *dq, ct_bf16_t *dk, ct_bf16_t *dv,
                            const ct_bf16_t *dout, const ct_bf16_t *q, const ct_bf16_t *k,
                            const ct_bf16_t *v, const ct_bf16_t *out, const float *stats, int B,
                            int T, int NH, int NKV, int HS, cudaStream_t stream)
{
    CT_ASSERT(ctx && ctx->cudnn && dq && dk && dv && dout && q && k && v && out && stats);
    CudnnState *st = state_of(ctx);
    try {
        GraphPtr g = graph_for(ctx, st, B, T, NH, NKV, HS, 1);
        std::unordered_map<int64_t, void *> pack = {
            {UID_Q, const_cast<ct_bf16_t *>(q)},
            {UID_K, const_cast<ct_bf16_t *>(k)},
            {UID_V, const_cast<ct_bf16_t *>(v)},
            {UID_O, const_cast<ct_bf16_t *>(out)},
            {UID_DO, const_cast<ct_bf16_t *>(dout)},
            {UID_STATS, const_cast<float *>(stats)},
            {UID_DQ, dq},
            {UID_DK, dk},
            {UID_DV, dv},
        };
        execute(st, g, pack, stream, "backward (GQA)", B, T, NH, HS);
    } catch (const std::exception &e) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN GQA backward: %s", e.what());
    } catch (...) {
        ct__fatal(__FILE__, __LINE__, __func__, "cuDNN GQA backward: unknown C++ exception");
    }
}
