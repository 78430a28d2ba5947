/* The device context: device selection and properties, the cuBLASLt handle
 * and workspace, the attention implementation, device memory and streams,
 * and the bf16 dense peak of known GPUs for MFU. Leaves out multi-device
 * contexts: a process drives one GPU (comm/ picks it from the node-local
 * rank). */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sizes.h" /* CT__LT_WORKSPACE */

int ct_cuda_device_count(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: not sticky */
        return 0;
    }
    return n;
}

/* bf16 dense tensor-core peak in TFLOP/s, from the vendors' data sheets
 * (the sparse figures are twice these). Matched on the device name. */
static double peak_from_name(const char *name)
{
    /* First match wins: a name that contains another (GH200 / H200,
     * GB200 / B200, H200 NVL / H200) must come before it. */
    static const struct { const char *pat, *also; double tflops; } table[] = {
        {"GH200", NULL, 989.0}, {"H200", "NVL", 835.0},     {"H200", NULL, 989.0},
        {"H100", "PCIe", 756.0}, {"H100", "NVL", 835.0},    {"H100", NULL, 989.0},
        {"H800", NULL, 989.0},  {"GB200", NULL, 2500.0},    {"B200", NULL, 2250.0},
        {"A100", NULL, 312.0},  {"A800", NULL, 312.0},      {"L40S", NULL, 362.0},
        {"A10G", NULL, 70.0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(name, table[i].pat) && (!table[i].also || strstr(name, table[i].also)))
            return table[i].tflops;
    return 0.0;
}

ct_status_t ct_cuda_init(int device, ct_attn_impl_t attn, ct_cuda_t **ctx_p)
{
    int n = ct_cuda_device_count();
    if (device < 0 || device >= n) {
        CT_LOG_ERROR("CUDA device %d requested but %d device(s) are visible\n---> HINT: check "
                     "CUDA_VISIBLE_DEVICES and nvidia-smi, or set model.device: cpu",
                     device, n);
        return CT_ERR_UNSUPPORTED;
    }
    cudaDeviceProp prop;
    CT_CHECK_CUDA(cudaSetDevice(device));
    CT_CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
    if (prop.major < 8) {
        CT_LOG_ERROR("CUDA device %d (%s) has compute capability %d.%d; the bf16 path needs 8.0 "
                     "or newer\n---> HINT: set model.device: cpu",
                     device, prop.name, prop.major, prop.minor);
        return CT_ERR_UNSUPPORTED;
    }
    if (attn == CT_ATTN_CUDNN && !ct__cudnn_available()) {
        CT_LOG_ERROR("model.attention is cudnn but this build has no cuDNN\n---> HINT: rebuild "
                     "with cuDNN (CUDNN_ROOT=...) or set model.attention: plain");
        return CT_ERR_UNSUPPORTED;
    }
    ct_cuda_t *ctx = (ct_cuda_t *)calloc(1, sizeof *ctx);
    CT_ASSERT(ctx != NULL);
    ctx->device = device;
    snprintf(ctx->name, sizeof ctx->name, "%s", prop.name);
    ctx->cc_major = prop.major;
    ctx->cc_minor = prop.minor;
    ctx->sm_count = prop.multiProcessorCount;
    ctx->peak_tflops = peak_from_name(prop.name);
    CT_CHECK_CUBLAS(cublasLtCreate(&ctx->lt));
    ctx->lt_ws_bytes = CT__LT_WORKSPACE;
    ct_status_t st = ct_cuda_alloc(ctx, ctx->lt_ws_bytes, "cuBLASLt workspace", &ctx->lt_ws);
    if (st != CT_OK) goto fail;
    ctx->attn = CT_ATTN_PLAIN;
    if (attn != CT_ATTN_PLAIN && ct__cudnn_available()) {
        st = ct__cudnn_init(ctx);
        if (st == CT_OK) ctx->attn = CT_ATTN_CUDNN;
        else if (attn == CT_ATTN_CUDNN) goto fail;
        else CT_LOG_WARN("cuDNN attention unavailable, using the plain CUDA attention kernels");
    }
    CT_LOG_INFO_R0("CUDA device %d: %s (sm_%d%d, %d SMs, %.1f GiB), bf16 peak %s, attention %s",
                   device, prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                   prop.totalGlobalMem / 1073741824.0,
                   ctx->peak_tflops > 0 ? "known" : "unknown (set train.peak_tflops)",
                   ctx->attn == CT_ATTN_CUDNN ? "cuDNN SDPA" : "plain CUDA");
    *ctx_p = ctx;
    return CT_OK;
fail:
    ct_cuda_free(ctx);
    return st;
}

void ct_cuda_free(ct_cuda_t *ctx)
{
    if (!ctx) return;
    if (ctx->cudnn) ct__cudnn_free(ctx);
    ct_cuda_dealloc(ctx->attn_scratch);
    ct_cuda_dealloc(ctx->lt_ws);
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    free(ctx);
}

const char *ct_cuda_device_name(const ct_cuda_t *ctx) { return ctx->name; }
double ct_cuda_peak_bf16_tflops(const ct_cuda_t *ctx) { return ctx->peak_tflops; }
ct_attn_impl_t ct_cuda_attn_impl(const ct_cuda_t *ctx) { return ctx->attn; }

void ct_cuda_sample_memory(ct_cuda_t *ctx)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError(); /* else the next CT_CHECK_LAUNCH reports it */
        return;
    }
    if (total_b - free_b > ctx->peak_mem) ctx->peak_mem = total_b - free_b;
}

size_t ct_cuda_peak_memory(ct_cuda_t *ctx)
{
    ct_cuda_sample_memory(ctx);
    return ctx->peak_mem;
}

ct_status_t ct_cuda_alloc(ct_cuda_t *ctx, size_t bytes, const char *what, void **ptr_p)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        CT_LOG_ERROR("out of device memory allocating %s: %.1f MiB requested, %.1f MiB free of "
                     "%.1f MiB (%s)\n---> HINT: lower train.batch_size, set model.recompute: "
                     "ln_gelu, or use optim.zero: 1",
                     what, bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0,
                     cudaGetErrorString(e));
        return CT_ERR_NO_MEMORY;
    }
    if (ctx) ct_cuda_sample_memory(ctx);
    *ptr_p = p;
    return CT_OK;
}

void ct_cuda_dealloc(void *ptr)
{
    if (ptr) CT_CHECK_CUDA(cudaFree(ptr));
}

void ct_cuda_copy(void *dst, const void *src, size_t bytes, void *stream)
{
    if (bytes) CT_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, ct__stream(stream)));
}

void ct_cuda_zero(void *ptr, size_t bytes, void *stream)
{
    if (bytes) CT_CHECK_CUDA(cudaMemsetAsync(ptr, 0, bytes, ct__stream(stream)));
}

void ct_cuda_stream_sync(void *stream) { CT_CHECK_CUDA(cudaStreamSynchronize(ct__stream(stream))); }

void *ct_cuda_stream_create(void)
{
    cudaStream_t s;
    CT_CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return (void *)s;
}

void ct_cuda_stream_destroy(void *stream)
{
    if (stream) CT_CHECK_CUDA(cudaStreamDestroy(ct__stream(stream)));
}

void *ct_cuda_event_create(void)
{
    cudaEvent_t e;
    CT_CHECK_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return (void *)e;
}

void *ct_cuda_timing_event_create(void)
{
    cudaEvent_t e;
    CT_CHECK_CUDA(cudaEventCreateWithFlags(&e, cudaEventDefault));
    return (void *)e;
}

float ct_cuda_event_elapsed_ms(void *start, void *end)
{
    float ms = 0.0f;
    CT_CHECK_CUDA(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end));
    return ms;
}

void ct_cuda_event_destroy(void *event)
{
    if (event) CT_CHECK_CUDA(cudaEventDestroy((cudaEvent_t)event));
}

void ct_cuda_event_record(void *event, void *stream)
{
    CT_CHECK_CUDA(cudaEventRecord((cudaEvent_t)event, ct__stream(stream)));
}

void ct_cuda_stream_wait_event(void *stream, void *event)
{
    CT_CHECK_CUDA(cudaStreamWaitEvent(ct__stream(stream), (cudaEvent_t)event, 0));
}
