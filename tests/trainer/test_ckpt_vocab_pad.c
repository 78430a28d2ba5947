/* The vocabulary padding follows tp (a multiple of 128 * tp, model/model.h),
 * and checkpoints stay exact across it, on a tiny GPT-2 with vocab_size 37:
 * 1. the rule: 37 pads to 128 at tp 1, 256 at tp 2, 384 at tp 3; 4096 to
 *    4224 at tp 3 (the layout issue 11 found refused);
 * 2. `reshard` to tp 3 records padded_vocab 384 and splits 384 rows into
 *    3 x 128, and resharding back to tp 1 (directly, or through tp 2) gives
 *    the parameters and AdamW state bit for bit;
 * 3. a tp = 2 checkpoint padded by the old rule (128 for every tp), written
 *    here by hand, is refused by ct_ckpt_load with the reshard command in
 *    the hint, and `reshard` converts it to the same model, bit for bit;
 * 4. a manifest whose padded_vocab cannot belong to its layout is refused. */
#include <stdint.h>

#include "core/config.h"
#include "core/fs.h"
#include "core/log.h"
#include "test_util.h"
#include "trainer/trainer.h"

static const char *tmp;

static void tiny_config(ct_config_t *cfg)
{
    ct_config_defaults(cfg);
    cfg->model.n_layer = 2;
    cfg->model.n_head = 6;
    cfg->model.n_embd = 24;
    cfg->model.max_seq_len = 8;
    cfg->model.vocab_size = 37;
    cfg->model.init_std = 0.1f;
    cfg->model.device = CT_DEVICE_CPU;
    cfg->train.batch_size = 2;
    cfg->train.seq_len = 8;
}

typedef struct {
    ct_model_t m;
    ct_optim_t o;
} net_t;

static int net_init(net_t *n, const ct_model_config_t *mc, uint64_t seed)
{
    if (ct_model_init(&n->m, mc, 1, 8, NULL) != CT_OK) return -1;
    if (ct_optim_init(&n->o, &n->m, 0, NULL, 1) != CT_OK) {
        ct_model_free(&n->m);
        return -1;
    }
    if (seed) {
        ct_model_init_weights(&n->m, seed, mc->init_std);
        const ct_model_dims_t *d = &n->m.d;
        for (size_t i = 0; i < n->o.count; i++) {
            n->o.m[i] = 1e-3f * (float)((i * 7 + seed) % 101) - 0.05f;
            n->o.v[i] = 1e-4f * (float)((i * 13 + seed) % 97);
        }
        /* the padding rows' AdamW state is zero, as training leaves it */
        size_t real = (size_t)d->V * d->C, all = (size_t)d->Vp * d->C;
        memset(n->o.m + real, 0, (all - real) * sizeof(float));
        memset(n->o.v + real, 0, (all - real) * sizeof(float));
    }
    return 0;
}

static void net_free(net_t *n)
{
    ct_optim_free(&n->o);
    ct_model_free(&n->m);
}

/* Loads tp = 1 checkpoint dir into a fresh net and compares it with src. */
static int loads_equal(const char *dir, const ct_config_t *cfg, const net_t *src)
{
    net_t n;
    if (net_init(&n, &cfg->model, 0) != 0) return 0;
    int ok = ct_ckpt_load(dir, &n.m, &n.o, NULL) == CT_OK &&
             memcmp(n.m.params, src->m.params, src->m.num_params * sizeof(float)) == 0 &&
             memcmp(n.o.m, src->o.m, src->o.count * sizeof(float)) == 0 &&
             memcmp(n.o.v, src->o.v, src->o.count * sizeof(float)) == 0;
    net_free(&n);
    return ok;
}

static char *manifest(const char *dir)
{
    char path[4400], *buf = NULL;
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    size_t len;
    return ct_fs_read_file(path, &buf, &len) == CT_OK ? buf : NULL;
}

static uint32_t crc32_of(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void write_file(const char *path, const float *a, const float *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, sizeof(float), n, f) != n || (b && fwrite(b, sizeof(float), n, f) != n) ||
        fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

/* src's model as a tp = 2 checkpoint padded to `vp` rows (the old rule:
 * 128 whatever tp), files and manifest written the way ct_ckpt_save writes
 * them. `head` is a tp = 1 manifest of the same model up to "tensors:". */
static void write_tp2(const char *dir, const ct_config_t *cfg, const net_t *src, int vp,
                      const char *head)
{
    char path[4400];
    if (ct_fs_mkdir_p(dir) != CT_OK) exit(2);
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    FILE *mf = fopen(path, "w");
    if (!mf) exit(2);
    /* the head with this layout's padding and tp */
    const char *pv = strstr(head, "  padded_vocab: "), *lay = strstr(head, "layout:\n  dp: 1\n  tp: 1\n");
    const char *tens = strstr(head, "tensors:\n");
    if (!pv || !lay || !tens || !(pv < lay && lay < tens)) {
        fprintf(stderr, "test bug: unexpected manifest head\n");
        exit(2);
    }
    const char *pv_end = strchr(pv, '\n');
    fprintf(mf, "%.*s  padded_vocab: %d%.*slayout:\n  dp: 1\n  tp: 2\n%.*s", (int)(pv - head),
            head, vp, (int)(lay - pv_end), pv_end, (int)(tens - lay - 24), lay + 24);
    fprintf(mf, "tensors:\n");
    ct_model_dims_t full;
    ct_model_dims_padded(&cfg->model, 1, 0, vp, &full);
    const ct_model_t *m = &src->m;
    for (int r = 0; r < 2; r++) {
        ct_model_dims_t d;
        ct_model_dims_padded(&cfg->model, 2, r, vp, &d);
        size_t sz[CT_MODEL_MAX_TENSORS], n = 0;
        ct_model_tensor_sizes(&d, sz);
        for (int i = 0; i < m->n_tensors; i++) n += sz[i];
        float *sh[3];
        const float *from[3] = {m->params, src->o.m, src->o.v};
        for (int k = 0; k < 3; k++) {
            sh[k] = calloc(n, sizeof(float));
            size_t off = 0;
            for (int i = 0; i < m->n_tensors; i++) {
                /* src's tensors at tp 1 pad to 128 rows = vp here */
                CT_ASSERT(ct_model_full_size(&full, i) == m->sizes[i]);
                ct_model_shard_copy(&d, r, i, (float *)from[k] + m->offsets[i], sh[k] + off, 1);
                off += sz[i];
            }
        }
        snprintf(path, sizeof path, "%s/params_tp%d.bin", dir, r);
        write_file(path, sh[0], NULL, n);
        snprintf(path, sizeof path, "%s/optim_tp%d.bin", dir, r);
        write_file(path, sh[1], sh[2], n);
        size_t off = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            fprintf(mf, "  - {name: tp%d.%s, file: params_tp%d.bin, offset: %zu, bytes: %zu, "
                        "crc32: %u}\n", r, ct_model_tensor_name(&d, i), r, off * 4, sz[i] * 4,
                    crc32_of(sh[0] + off, sz[i] * 4));
            off += sz[i];
        }
        for (int k = 0; k < 2; k++)
            fprintf(mf, "  - {name: tp%d.%s, file: optim_tp%d.bin, offset: %zu, bytes: %zu, "
                        "crc32: %u, first: 0}\n", r, k ? "adam_v" : "adam_m", r, k ? n * 4 : 0,
                    n * 4, crc32_of(sh[1 + k], n * 4));
        for (int k = 0; k < 3; k++) free(sh[k]);
    }
    if (fclose(mf) != 0) exit(2);
}

int main(void)
{
    ct_log_init();
    tmp = ct_test_dir("ckpt_vocab_pad");
    CHECK(ct_model_padded_vocab(37, 1) == 128 && ct_model_padded_vocab(37, 2) == 256 &&
          ct_model_padded_vocab(37, 3) == 384 && ct_model_padded_vocab(128, 1) == 128);
    CHECK(ct_model_padded_vocab(4096, 3) == 4224 && ct_model_padded_vocab(4096, 2) == 4096 &&
          ct_model_padded_vocab(50257, 1) == 50304 && ct_model_padded_vocab(50257, 3) == 50304);
    ct_config_t cfg;
    tiny_config(&cfg);
    net_t src;
    if (net_init(&src, &cfg.model, 11) != 0) return 1;
    char run[4200], dir[4200], a[4200], b[4200];
    snprintf(run, sizeof run, "%s/run", tmp);
    ct_ckpt_state_t state = {.step = 3, .samples = 6, .sample_rng = 42};
    char *good = NULL;
    CHECK(ct_ckpt_save(run, &src.m, &src.o, &cfg, &state, NULL, &good) == CT_OK);
    if (!good) return ct_test_finish("test_ckpt_vocab_pad");
    CHECK(loads_equal(good, &cfg, &src));

    /* tp 3: 384 rows, 3 x 128; back to tp 1 directly and through tp 2 */
    snprintf(dir, sizeof dir, "%s/tp3", tmp);
    CHECK(ct_ckpt_reshard(good, dir, 3) == CT_OK);
    char *mf = manifest(dir);
    CHECK_MSG(mf && strstr(mf, "  padded_vocab: 384\n"), "tp 3 manifest lacks padded_vocab 384");
    CHECK(mf && strstr(mf, "{name: tp2.wte, file: params_tp2.bin, offset: 0, bytes: 12288,"));
    free(mf);
    snprintf(a, sizeof a, "%s/tp3_tp1", tmp);
    CHECK(ct_ckpt_reshard(dir, a, 1) == CT_OK);
    CHECK_MSG(loads_equal(a, &cfg, &src), "tp 1 -> 3 -> 1 is not exact");
    snprintf(a, sizeof a, "%s/tp3_tp2", tmp);
    snprintf(b, sizeof b, "%s/tp3_tp2_tp1", tmp);
    CHECK(ct_ckpt_reshard(dir, a, 2) == CT_OK && ct_ckpt_reshard(a, b, 1) == CT_OK);
    CHECK_MSG(loads_equal(b, &cfg, &src), "tp 1 -> 3 -> 2 -> 1 is not exact");

    /* the old rule at tp 2: 128 rows as 2 x 64, where this build pads to 256 */
    char *head = manifest(good);
    snprintf(dir, sizeof dir, "%s/old_tp2", tmp);
    if (head) write_tp2(dir, &cfg, &src, 128, head);
    ct_model_t shard; /* a tp = 2 rank-0 shard: dims and a buffer, as cmd_hf.c loads them */
    memset(&shard, 0, sizeof shard);
    ct_model_dims(&cfg.model, 2, 0, &shard.d);
    ct_model_tensor_sizes(&shard.d, shard.sizes);
    shard.n_tensors = ct_model_num_tensors(&shard.d);
    shard.params = malloc(src.m.num_params * sizeof(float));
    ct_status_t st;
    CAPTURE_STDERR(st = ct_ckpt_load(dir, &shard, NULL, NULL));
    CHECK_MSG(st == CT_ERR_CONFIG, "old-rule tp 2 checkpoint: %s", ct_status_name(st));
    CHECK_CAPTURED("pads the vocabulary to 128 rows for tp = 2; this run pads it to 256");
    CHECK_CAPTURED("ctrain reshard --tp 2");
    snprintf(a, sizeof a, "%s/old_tp2_tp1", tmp);
    CHECK(ct_ckpt_reshard(dir, a, 1) == CT_OK);
    CHECK_MSG(loads_equal(a, &cfg, &src), "old tp 2 -> tp 1 is not exact");
    snprintf(a, sizeof a, "%s/old_tp2_tp2", tmp);
    CHECK(ct_ckpt_reshard(dir, a, 2) == CT_OK);
    CHECK(ct_ckpt_load(a, &shard, NULL, NULL) == CT_OK); /* now the new rule's 256 */
    snprintf(b, sizeof b, "%s/old_tp2_tp2_tp1", tmp);
    CHECK(ct_ckpt_reshard(a, b, 1) == CT_OK);
    CHECK_MSG(loads_equal(b, &cfg, &src), "old tp 2 -> new tp 2 -> tp 1 is not exact");

    /* a padded_vocab no layout of tp 2 has: 129 rows do not split in 2 */
    snprintf(dir, sizeof dir, "%s/bad_tp2", tmp);
    if (head) write_tp2(dir, &cfg, &src, 128, head);
    mf = manifest(dir);
    char *at = mf ? strstr(mf, "  padded_vocab: 128\n") : NULL;
    if (at) {
        memcpy(at, "  padded_vocab: 129\n", 20);
        char path[4400];
        snprintf(path, sizeof path, "%s/manifest.yaml", dir);
        FILE *f = fopen(path, "w");
        fputs(mf, f);
        fclose(f);
    }
    free(mf);
    snprintf(a, sizeof a, "%s/bad_tp1", tmp);
    CAPTURE_STDERR(st = ct_ckpt_reshard(dir, a, 1));
    CHECK_MSG(st == CT_ERR_CORRUPT, "padded_vocab 129 at tp 2: %s", ct_status_name(st));
    CHECK_CAPTURED("padded_vocab = 129 does not fit");

    free(head);
    free(shard.params);
    free(good);
    net_free(&src);
    ct_config_free(&cfg);
    return ct_test_finish("test_ckpt_vocab_pad");
}
