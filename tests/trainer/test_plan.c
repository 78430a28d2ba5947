/* The memory and FLOP plan (ct_model_plan, model/plan.c) without a device:
 * 1. The CUDA activation table that gpt2_cuda.c allocates from fills every
 *    pointer of its struct exactly once.
 * 2. The CPU path's host plan is what ct_model_init + ct_optim_init
 *    allocate: the arenas' sizes exactly, and the process's heap growth
 *    (mallinfo2) within the allocator's rounding (a page per allocation),
 *    for a few sizes, batches and ZeRO slices.
 * 3. The TP arithmetic at tp = 2 and 4, sequence parallelism off and on:
 *    sharded tensors add up over the TP ranks to tp = 1's, replicated ones
 *    stay whole; every activation marked [tp] is tp = 1's divided by tp,
 *    [sp] the same under SP and whole without, the rest whole; the SP
 *    regions at tp = 2 are at most 55% of tp = 1's (exactly 50%).
 * 4. FLOPs are ct_model_flops_per_token times the tokens of a step.
 * 5. Layouts the model cannot split fail with CT_ERR_CONFIG, head sizes the
 *    GPU attention refuses with CT_ERR_UNSUPPORTED (the CPU plan is fine). */
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "model/gpt2.h" /* the CUDA activation table (private to model/) */
#include "model/model.h"
#include "test_util.h"

static ct_config_t config(int L, int NH, int C, int V, int B, int T)
{
    ct_config_t cfg;
    ct_config_defaults(&cfg);
    cfg.model.n_layer = L;
    cfg.model.n_head = NH;
    cfg.model.n_embd = C;
    cfg.model.vocab_size = V;
    cfg.model.max_seq_len = T;
    cfg.train.batch_size = B;
    cfg.train.seq_len = T;
    return cfg;
}

static void test_table_slots(void)
{
    ct_model_dims_t d;
    ct_config_t cfg = config(2, 2, 32, 200, 2, 16);
    ct_model_dims(&cfg.model, 1, 0, &d);
    ct_plan_item_t it[CT_PLAN_MAX_ITEMS];
    /* tp = 1 uses every buffer but the four TP ones; tp = 2 with SP all;
     * but those that share another's memory are not in the table */
    size_t alias[CT_GPT2_CUDA_MAX_ALIASES][2];
    const int na = ct__gpt2_cuda_act_aliases(CT_RECOMPUTE_NONE, alias);
    for (int tp = 1; tp <= 2; tp++) {
        ct_model_dims(&cfg.model, tp, 0, &d);
        int n = ct__gpt2_cuda_act_items(&d, 2, 16, CT_RECOMPUTE_NONE, tp == 2, it);
        int want = CT_GPT2_CUDA_NUM_ACTS - na - (tp == 1 ? 4 : 0);
        CHECK_MSG(n == want, "tp %d: %d items, want %d of %d pointers", tp, n, want,
                  CT_GPT2_CUDA_NUM_ACTS);
        char seen[sizeof(ct_gpt2_cuda_acts_t)] = {0};
        for (int i = 0; i < n; i++) {
            size_t s = it[i].slot;
            CHECK_MSG(s < sizeof seen && s % sizeof(void *) == 0 && !seen[s], "%s: slot %zu",
                      it[i].name, s);
            if (s < sizeof seen) seen[s] = 1;
            CHECK_MSG(it[i].bytes > 0, "%s: 0 bytes", it[i].name);
        }
    }
    ct_config_free(&cfg);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_cpu_host(void)
{
    const struct { int L, NH, C, V, B, T, dp, zero; } cases[] = {
        {2, 2, 32, 200, 2, 16, 1, 0},   {3, 4, 64, 500, 3, 24, 1, 0},
        {4, 4, 128, 4096, 4, 64, 2, 1}, {2, 2, 32, 200, 1, 16, 3, 1},
        {2, 2, 32, 200, 2, 16, 2, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_config_t cfg = config(cases[k].L, cases[k].NH, cases[k].C, cases[k].V, cases[k].B,
                                 cases[k].T);
        cfg.parallel.dp = cases[k].dp;
        cfg.optim.zero = cases[k].zero;
        for (int r = 0; r < cases[k].dp; r++) {
            ct_model_plan_t p;
            CHECK(ct_model_plan(&cfg, 0, 0, r, 0, &p) == CT_OK);
            /* one process stands in for DP rank r: ct_optim_init reads only
             * the group sizes and ranks */
            ct_comm_groups_t g = {.rank = r, .world_size = cases[k].dp, .dp_rank = r,
                                  .dp_size = cases[k].dp, .tp_size = 1};
            ct_model_t m;
            ct_optim_t o;
            size_t before = heap_in_use();
            CHECK(ct_model_init(&m, &cfg.model, cases[k].B, cases[k].T, NULL) == CT_OK);
            CHECK(ct_optim_init(&o, &m, cases[k].zero, &g, 25) == CT_OK);
            size_t grown = heap_in_use() - before;
            const ct_plan_mem_t *h = &p.host;
            CHECK(p.num_params == m.num_params && p.optim_count == o.count);
            CHECK_MSG(h->kind_bytes[CT_PLAN_WEIGHTS] == m.params_arena.size,
                      "case %zu: weights plan %zu arena %zu", k, h->kind_bytes[CT_PLAN_WEIGHTS],
                      m.params_arena.size);
            CHECK(h->kind_bytes[CT_PLAN_GRADS] == m.grads_arena.size);
            CHECK_MSG(h->kind_bytes[CT_PLAN_OPTIM] == o.arena.size,
                      "case %zu rank %d: AdamW plan %zu arena %zu", k, r,
                      h->kind_bytes[CT_PLAN_OPTIM], o.arena.size);
#ifndef __SANITIZE_ADDRESS__ /* ASan's allocator does not feed mallinfo2 */
            /* the activation arena is not visible from here: the heap's
             * growth covers it; each of the 5 allocations may round up to a
             * page (mmap) or carry a chunk header and alignment slack */
            const size_t slack = 5 * 4096 + 2048;
            CHECK_MSG(grown >= h->total && grown <= h->total + slack,
                      "case %zu rank %d: host plan %zu bytes, heap grew %zu", k, r, h->total,
                      grown);
#endif
            fprintf(stderr, "cpu case %zu rank %d: plan %zu bytes, heap grew %zu\n", k, r, h->total,
                    grown);
            ct_optim_free(&o);
            ct_model_free(&m);
        }
        ct_config_free(&cfg);
    }
}

/* Bytes of the device items of region `r` and kind ACTS. */
static size_t acts_in(const ct_model_plan_t *p, ct_plan_region_t r)
{
    size_t s = 0;
    for (int i = 0; i < p->device.n; i++)
        if (p->device.item[i].kind == CT_PLAN_ACTS && p->device.item[i].region == r &&
            p->device.item[i].slot != SIZE_MAX)
            s += p->device.item[i].bytes;
    return s;
}

static const ct_plan_item_t *by_slot(const ct_model_plan_t *p, size_t slot)
{
    for (int i = 0; i < p->device.n; i++)
        if (p->device.item[i].slot == slot) return &p->device.item[i];
    return NULL;
}

static void test_tp(void)
{
    /* V = 512 is its own padding under tp = 1, 2 and 4 (whether the rule
     * pads to 128 or to 128 * tp), so the shards are tp = 1's split */
    ct_config_t cfg = config(3, 4, 64, 512, 4, 32);
    ct_model_plan_t p1;
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p1) == CT_OK);
    CHECK(!p1.sp);
    ct_model_plan_t q;
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 1, &q) == CT_OK); /* sp at tp = 1: nothing to split */
    CHECK(!q.sp && q.device.total == p1.device.total);

    size_t repl = 0, sizes1[CT_MODEL_MAX_TENSORS];
    ct_model_tensor_sizes(&p1.d, sizes1);
    for (int i = 0; i < ct_model_num_tensors(&p1.d); i++)
        if (ct_model_tensor_replicated(&p1.d, i)) repl += sizes1[i];
    CHECK(p1.num_params == p1.full_params);

    for (int tp = 2; tp <= 4; tp += 2) {
        cfg.parallel.tp = tp;
        for (int rc = 0; rc < 3; rc++) {
            cfg.model.recompute = (ct_recompute_t)rc;
            cfg.parallel.tp = 1;
            CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p1) == CT_OK);
            cfg.parallel.tp = tp;
            for (int sp = 0; sp <= 1; sp++) {
                size_t sharded_sum = 0;
                for (int r = 0; r < tp; r++) {
                    ct_model_plan_t p;
                    CHECK(ct_model_plan(&cfg, 1, r, 0, sp, &p) == CT_OK);
                    CHECK(p.sp == sp && p.full_params == p1.full_params);
                    sharded_sum += p.num_params - repl;
                    /* weights, gradients, AdamW: this rank's parameters */
                    CHECK(p.device.kind_bytes[CT_PLAN_WEIGHTS] ==
                          (p.num_params + CT_MODEL_PAD_FLOATS) * 4 + p.num_params * 2);
                    CHECK(p.device.kind_bytes[CT_PLAN_GRADS] ==
                          (p.num_params + CT_MODEL_PAD_FLOATS) * 4);
                    CHECK(p.device.kind_bytes[CT_PLAN_OPTIM] == 2 * p.num_params * 4);
                    /* every activation against tp = 1's */
                    for (int i = 0; i < p.device.n; i++) {
                        const ct_plan_item_t *a = &p.device.item[i];
                        if (a->kind != CT_PLAN_ACTS) continue;
                        const ct_plan_item_t *b = by_slot(&p1, a->slot);
                        if (!b) { /* the TP buffers: partial sums, lse, SP all-gather */
                            const size_t N = (size_t)cfg.train.batch_size * cfg.train.seq_len;
                            CHECK_MSG(a->region == CT_PLAN_FULL &&
                                          (a->bytes == N * 64 * 4 || a->bytes == N * 4 ||
                                           (sp && a->bytes == N * 64 * 2)),
                                      "tp %d sp %d: %s, %zu bytes", tp, sp, a->name, a->bytes);
                            continue;
                        }
                        CHECK(b->region == a->region);
                        size_t want = a->region == CT_PLAN_TP || (a->region == CT_PLAN_SP && sp)
                                          ? b->bytes / (size_t)tp
                                          : b->bytes;
                        CHECK_MSG(a->bytes == want && (want * (size_t)tp == b->bytes ||
                                                       want == b->bytes),
                                  "tp %d sp %d recompute %d: %s is %zu bytes, tp=1 %zu", tp, sp,
                                  rc, a->name, a->bytes, b->bytes);
                    }
                    if (tp == 2 && sp) {
                        size_t s2 = acts_in(&p, CT_PLAN_SP), s1 = acts_in(&p1, CT_PLAN_SP);
                        CHECK_MSG(s2 * 100 <= s1 * 55, "SP regions at tp=2: %zu bytes, tp=1 %zu",
                                  s2, s1);
                        if (rc == 0 && r == 0)
                            fprintf(stderr, "SP regions per rank: tp=1 %zu bytes, tp=2 sp %zu "
                                            "(%.1f%%)\n", s1, s2, 100.0 * s2 / s1);
                    }
                    if (sp) { /* SP saves memory over plain TP */
                        ct_model_plan_t nosp;
                        CHECK(ct_model_plan(&cfg, 1, r, 0, 0, &nosp) == CT_OK);
                        CHECK(p.device.kind_bytes[CT_PLAN_ACTS] <
                              nosp.device.kind_bytes[CT_PLAN_ACTS]);
                    }
                    CHECK(p.device.total < p1.device.total);
                }
                CHECK_MSG(sharded_sum == p1.full_params - repl,
                          "tp %d: sharded parameters add up to %zu, tp=1 has %zu", tp,
                          sharded_sum, p1.full_params - repl);
            }
        }
    }
    ct_config_free(&cfg);
}

static void test_flops(void)
{
    ct_config_t cfg = config(3, 4, 64, 300, 4, 32);
    cfg.parallel.dp = 2;
    cfg.train.batch_tokens = 4 * 32 * 2 * 3; /* 3 micro-batches per rank */
    ct_model_plan_t p;
    CHECK(ct_model_plan(&cfg, 1, 0, 1, 0, &p) == CT_OK);
    ct_model_t m;
    CHECK(ct_model_init(&m, &cfg.model, 0, 0, NULL) == CT_OK);
    double fpt = ct_model_flops_per_token(&m, 32);
    CHECK(p.flops_per_token == fpt && p.accum == 3 && p.tokens_per_step == 768);
    CHECK(p.flops_per_step == fpt * 768);
    ct_model_free(&m);
    ct_config_free(&cfg);
}

static void test_errors(void)
{
    ct_model_plan_t p;
    ct_config_t cfg = config(2, 4, 64, 300, 2, 16);
    cfg.parallel.tp = 3; /* 4 heads do not split over 3 ranks */
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p) == CT_ERR_CONFIG);
    CHECK(ct_model_plan(&cfg, 0, 0, 0, 0, &p) == CT_ERR_CONFIG);
    ct_config_free(&cfg);

    /* 5 heads over 5 ranks: whether the padded vocabulary splits is the
     * model's padding rule's business; the plan follows ct_model_dims */
    cfg = config(2, 5, 80, 300, 2, 16);
    cfg.parallel.tp = 5;
    ct_model_dims_t d;
    ct_model_dims(&cfg.model, 5, 0, &d);
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p) == (d.Vp % 5 ? CT_ERR_CONFIG : CT_OK));
    ct_config_free(&cfg);

    cfg = config(2, 2, 32, 200, 2, 15);
    cfg.parallel.tp = 2; /* sequence parallelism splits T = 15 over 2 ranks */
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 1, &p) == CT_ERR_CONFIG);
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p) == CT_OK);
    ct_config_free(&cfg);

    cfg = config(2, 1, 256, 200, 2, 16); /* head size 256 */
    CHECK(ct_model_plan(&cfg, 1, 0, 0, 0, &p) == CT_ERR_UNSUPPORTED);
    CHECK(ct_model_plan(&cfg, 0, 0, 0, 0, &p) == CT_OK);
    ct_config_free(&cfg);
}

int main(void)
{
    test_table_slots();
    test_cpu_host();
    test_tp();
    test_flops();
    test_errors();
    return ct_test_finish("test_plan");
}
