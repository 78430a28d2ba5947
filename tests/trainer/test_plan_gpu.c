/* The memory plan against what the GPU path allocates, label gpu; exits 77
 * (skipped) without a CUDA device. For a few model sizes, batches,
 * recompute modes and ZeRO-1 slices (dp = 2, one process standing in for
 * each DP rank: the AdamW state is the rank's slice, NCCL is not needed),
 * the model goes to the device and trains two steps, then the device's
 * peak memory (ct_model_peak_memory, cudaMemGetInfo sampled at every
 * allocation) is compared with ct_model_plan's device total.
 *
 * On tests/cuda_emu, device memory in use is exactly the bytes asked of
 * cudaMalloc, the context allocates nothing of its own and cuDNN is not
 * there, so the plan must match to the byte. On a real GPU the peak also
 * holds the CUDA context, the libraries' handles, cuDNN's attention
 * workspace and cudaMalloc's rounding, none of which ctrain sizes: there
 * the plan must not exceed the peak, and the difference is printed. */
#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/rng.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test_util.h"

static ct_config_t config(int L, int NH, int C, int V, int B, int T, ct_recompute_t rc)
{
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.n_layer = L;
    cfg.model.n_head = NH;
    cfg.model.n_embd = C;
    cfg.model.vocab_size = V;
    cfg.model.max_seq_len = T;
    cfg.model.recompute = rc;
    cfg.model.attention = CT_ATTENTION_PLAIN;
    cfg.train.batch_size = B;
    cfg.train.seq_len = T;
    return cfg;
}

/* Places a model for DP rank r of cfg's layout on the device, trains two
 * steps, returns the device's peak memory. */
static size_t measure(const ct_config_t *cfg, int r)
{
    const int B = cfg->train.batch_size, T = cfg->train.seq_len, dp = cfg->parallel.dp;
    ct_comm_groups_t g = {.rank = r, .world_size = dp, .dp_rank = r, .dp_size = dp,
                          .tp_size = 1};
    ct_model_t m;
    ct_optim_t o;
    CHECK(ct_model_init(&m, &cfg->model, 0, 0, NULL) == CT_OK);
    CHECK(ct_optim_init(&o, &m, cfg->optim.zero, &g, 25) == CT_OK);
    ct_model_init_weights(&m, 1337, 0.02f);
    CHECK(ct_model_to_device(&m, &o, cfg, NULL, 0, B, T) == CT_OK);
    int32_t *inp = malloc((size_t)B * T * sizeof *inp), *tgt = malloc((size_t)B * T * sizeof *tgt);
    ct_rng_t rng;
    ct_rng_seed(&rng, 7, 0, 0);
    for (int s = 1; s <= 2; s++) {
        for (int i = 0; i < B * T; i++) {
            inp[i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->model.vocab_size);
            tgt[i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->model.vocab_size);
        }
        ct_model_zero_grad(&m);
        float loss = ct_model_forward(&m, inp, tgt, B, T);
        m.grad_sync = 1;
        ct_model_backward(&m, inp, B, T, 1.0f);
        float norm;
        CHECK(ct_optim_step(&o, &m, &cfg->optim, 1e-3f, s, &norm) == CT_OK);
        CHECK(isfinite(loss) && isfinite(norm));
    }
    size_t peak = ct_model_peak_memory(&m);
    free(inp);
    free(tgt);
    ct_optim_free(&o);
    ct_model_free(&m);
    return peak;
}

int main(void)
{
    if (ct_cuda_device_count() == 0) {
        fprintf(stderr, "test_plan_gpu: no CUDA device, skipped\n");
        return 77;
    }
    const struct { int L, NH, C, V, B, T; ct_recompute_t rc; int dp, zero; } cases[] = {
        {2, 2, 32, 200, 2, 16, CT_RECOMPUTE_NONE, 1, 0},
        {2, 2, 32, 200, 2, 16, CT_RECOMPUTE_GELU, 1, 0},
        {2, 2, 32, 200, 2, 16, CT_RECOMPUTE_LN_GELU, 1, 0},
        {3, 4, 64, 500, 3, 24, CT_RECOMPUTE_NONE, 1, 0},
        {3, 4, 64, 500, 1, 24, CT_RECOMPUTE_LN_GELU, 1, 0},
        {3, 4, 64, 500, 3, 24, CT_RECOMPUTE_NONE, 2, 1},
        {2, 2, 32, 200, 2, 16, CT_RECOMPUTE_GELU, 2, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_config_t cfg = config(cases[k].L, cases[k].NH, cases[k].C, cases[k].V, cases[k].B,
                                 cases[k].T, cases[k].rc);
        cfg.parallel.dp = cases[k].dp;
        cfg.optim.zero = cases[k].zero;
        for (int r = 0; r < cases[k].dp; r++) {
            ct_model_plan_t p;
            CHECK(ct_model_plan(&cfg, 1, 0, r, 0, &p) == CT_OK);
            size_t peak = measure(&cfg, r);
            fprintf(stderr, "L=%d C=%d B=%d T=%d recompute %d dp %d zero %d rank %d: plan %zu "
                    "bytes (%.3f MiB), measured peak %zu (%.3f MiB), difference %lld\n",
                    cases[k].L, cases[k].C, cases[k].B, cases[k].T, (int)cases[k].rc,
                    cases[k].dp, cases[k].zero, r, p.device.total, p.device.total / 1048576.0,
                    peak, peak / 1048576.0, (long long)peak - (long long)p.device.total);
#ifdef CT_TEST_EMU
            CHECK_MSG(peak == p.device.total, "case %zu rank %d: plan %zu bytes, emulator peak "
                      "%zu", k, r, p.device.total, peak);
#else
            CHECK_MSG(peak >= p.device.total, "case %zu rank %d: plan %zu bytes above the "
                      "measured peak %zu", k, r, p.device.total, peak);
#endif
        }
        ct_config_free(&cfg);
    }
    return ct_test_finish("test_plan_gpu");
}
