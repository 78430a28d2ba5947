/* Hugging Face GPT-2 files, the parts that need no file: the names and
 * layout of GPT2LMHeadModel's tensors, and the readers of config.json and
 * of a safetensors JSON header, on bytes in memory. `ctrain import` and
 * `ctrain export` (cli/cmd_hf.c) do the file I/O around them; the fuzzing
 * harness (tests/fuzz/fuzz_hf.c) calls the readers directly.
 *
 * The mapping: names transformer.* (GPT2Model's files lack the prefix; the
 * header reader accepts both), the vocabulary unpadded (V rows), the four
 * matrices transposed because HF's Conv1D stores (in, out) where we store
 * (out, in), and the LM head tied to wte. The attention mask buffers older
 * HF files carry (attn.bias, attn.masked_bias) are skipped.
 * Left out: untied heads, other activations (only gelu_new), sharded
 * safetensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "trainer/trainer.h"

ct_hf_tensor_t *ct_hf_tensors(const ct_model_dims_t *d, int *n_p)
{
    int L = d->L, C = d->C, n = 0;
    ct_hf_tensor_t *e = calloc((size_t)(4 + 12 * L), sizeof *e);
    if (!e) return NULL;
#define HF_ADD(src_, off_, R_, K_, tr_, ...)                                \
    do {                                                                    \
        snprintf(e[n].name, CT_HF_NAME_MAX, __VA_ARGS__);                   \
        e[n].src = (src_), e[n].off = (off_), e[n].R = (R_), e[n].K = (K_); \
        e[n].transpose = (tr_);                                             \
        n++;                                                                \
    } while (0)
    HF_ADD(0, 0, d->V, C, 0, "transformer.wte.weight");
    HF_ADD(1, 0, d->maxT, C, 0, "transformer.wpe.weight");
    for (int l = 0; l < L; l++) {
        size_t lc = (size_t)l * C;
        HF_ADD(2, lc, 1, C, 0, "transformer.h.%d.ln_1.weight", l);
        HF_ADD(3, lc, 1, C, 0, "transformer.h.%d.ln_1.bias", l);
        HF_ADD(4, lc * 3 * C, 3 * C, C, 1, "transformer.h.%d.attn.c_attn.weight", l);
        HF_ADD(5, lc * 3, 1, 3 * C, 0, "transformer.h.%d.attn.c_attn.bias", l);
        HF_ADD(6, lc * C, C, C, 1, "transformer.h.%d.attn.c_proj.weight", l);
        HF_ADD(7, lc, 1, C, 0, "transformer.h.%d.attn.c_proj.bias", l);
        HF_ADD(8, lc, 1, C, 0, "transformer.h.%d.ln_2.weight", l);
        HF_ADD(9, lc, 1, C, 0, "transformer.h.%d.ln_2.bias", l);
        HF_ADD(10, lc * 4 * C, 4 * C, C, 1, "transformer.h.%d.mlp.c_fc.weight", l);
        HF_ADD(11, lc * 4, 1, 4 * C, 0, "transformer.h.%d.mlp.c_fc.bias", l);
        HF_ADD(12, lc * 4 * C, C, 4 * C, 1, "transformer.h.%d.mlp.c_proj.weight", l);
        HF_ADD(13, lc, 1, C, 0, "transformer.h.%d.mlp.c_proj.bias", l);
    }
    HF_ADD(14, 0, 1, C, 0, "transformer.ln_f.weight");
    HF_ADD(15, 0, 1, C, 0, "transformer.ln_f.bias");
#undef HF_ADD
    *n_p = n;
    return e;
}

int ct_hf_shape(const ct_hf_tensor_t *e, long long shape[2])
{
    if (e->R == 1) {
        shape[0] = e->K;
        return 1;
    }
    shape[0] = e->transpose ? e->K : e->R;
    shape[1] = e->transpose ? e->R : e->K;
    return 2;
}

/* ---- config.json ----------------------------------------------------------- */

/* Top-level integer key of config.json: 0 found, 1 absent or null, -1 not
 * an integer. */
static int config_int(struct json_object *cfg, const char *key, long long *v)
{
    struct json_object *x;
    if (!json_object_object_get_ex(cfg, key, &x) || !x) return 1;
    int64_t i;
    if (ct_json_get_int64(x, &i) != 0) return -1;
    *v = (long long)i;
    return 0;
}

ct_status_t ct_hf_parse_config(const char *text, size_t len, const char *path,
                               ct_model_config_t *mc)
{
    ct_json_error_t err;
    struct json_object *cfg = ct_json_parse(text, len, 0, &err);
    if (!json_object_is_type(cfg, json_type_object)) {
        if (cfg || !err.msg[0]) snprintf(err.msg, sizeof err.msg, "expected an object"), err.line = 1, err.col = 1;
        CT_LOG_ERROR("%s:%d:%d: malformed config.json: %s\n---> HINT: expected a Hugging Face "
                     "GPT-2 config.json", path, err.line, err.col, err.msg);
        json_object_put(cfg);
        return CT_ERR_CORRUPT;
    }
    struct {
        const char *key, *alt;
        int *dst;
    } keys[] = {{"vocab_size", NULL, &mc->vocab_size}, {"n_positions", "n_ctx", &mc->max_seq_len},
                {"n_embd", NULL, &mc->n_embd},         {"n_layer", NULL, &mc->n_layer},
                {"n_head", NULL, &mc->n_head}};
    ct_status_t st = CT_OK;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && st == CT_OK; k++) {
        long long v = 0;
        int r = config_int(cfg, keys[k].key, &v);
        if (r == 1 && keys[k].alt) r = config_int(cfg, keys[k].alt, &v);
        if (r != 0 || v <= 0 || v > (1 << 30)) {
            CT_LOG_ERROR("%s: '%s' is %s, want a positive integer", path, keys[k].key,
                         r == 1 ? "missing" : "not a valid integer");
            st = CT_ERR_CORRUPT;
        } else {
            *keys[k].dst = (int)v;
        }
    }
    long long inner;
    if (st == CT_OK && config_int(cfg, "n_inner", &inner) == 0 && inner != 4LL * mc->n_embd) {
        CT_LOG_ERROR("%s: n_inner = %lld, ctrain's MLP is 4 * n_embd = %lld", path, inner,
                     4LL * mc->n_embd);
        st = CT_ERR_UNSUPPORTED;
    }
    struct json_object *x;
    char shown[CT_LOG_CLIP_BUF];
    if (st == CT_OK && json_object_object_get_ex(cfg, "activation_function", &x) &&
        json_object_is_type(x, json_type_string) &&
        strcmp(json_object_get_string(x), "gelu_new") != 0 &&
        strcmp(json_object_get_string(x), "gelu_pytorch_tanh") != 0) {
        CT_LOG_ERROR("%s: activation_function '%s' is not supported, ctrain uses gelu_new (tanh)",
                     path, ct_log_clip(json_object_get_string(x), shown));
        st = CT_ERR_UNSUPPORTED;
    }
    if (st == CT_OK && json_object_object_get_ex(cfg, "tie_word_embeddings", &x) &&
        json_object_is_type(x, json_type_boolean) && !json_object_get_boolean(x)) {
        CT_LOG_ERROR("%s: tie_word_embeddings is false, ctrain ties the LM head to wte", path);
        st = CT_ERR_UNSUPPORTED;
    }
    if (st == CT_OK && json_object_object_get_ex(cfg, "layer_norm_epsilon", &x) &&
        (json_object_is_type(x, json_type_double) || json_object_is_type(x, json_type_int))) {
        double e = json_object_get_double(x);
        if (fabs(e - 1e-5) > 1e-12)
            CT_LOG_WARN("%s: layer_norm_epsilon = %g, ctrain uses 1e-5", path, e);
    }
    if (st == CT_OK && mc->n_embd % mc->n_head != 0) {
        CT_LOG_ERROR("%s: n_embd (%d) is not a multiple of n_head (%d)", path, mc->n_embd,
                     mc->n_head);
        st = CT_ERR_CORRUPT;
    }
    json_object_put(cfg);
    return st;
}

/* ---- the safetensors header ---------------------------------------------------- */

/* A safetensors header entry: {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]}, other keys ignored. Integers must be exact and >= 0 (json-c
 * keeps them as int64, so large offsets stay exact). nd_p and no_p get the
 * lengths of shape and data_offsets (the first 4 and 2 values are kept).
 * 0, or -1 when the entry is malformed. */
static int tensor_info(struct json_object *v, char *dtype, size_t dtype_cap, long long shape[4],
                       int *nd_p, long long offs[2], int *no_p)
{
    if (!json_object_is_type(v, json_type_object)) return -1;
    struct json_object *x;
    if (!json_object_object_get_ex(v, "dtype", &x) || !json_object_is_type(x, json_type_string) ||
        (size_t)json_object_get_string_len(x) >= dtype_cap)
        return -1;
    snprintf(dtype, dtype_cap, "%s", json_object_get_string(x));
    for (int which = 0; which < 2; which++) {
        long long *dst = which == 0 ? shape : offs;
        size_t keep = which == 0 ? 4 : 2;
        if (!json_object_object_get_ex(v, which == 0 ? "shape" : "data_offsets", &x) ||
            !json_object_is_type(x, json_type_array))
            return -1;
        size_t cnt = json_object_array_length(x);
        for (size_t i = 0; i < cnt; i++) {
            int64_t d;
            if (ct_json_get_int64(json_object_array_get_idx(x, i), &d) != 0 || d < 0) return -1;
            if (i < keep) dst[i] = (long long)d;
        }
        *(which == 0 ? nd_p : no_p) = (int)cnt;
    }
    return *no_p == 2 && dtype[0] ? 0 : -1;
}

ct_status_t ct_hf_parse_header(const char *hdr, size_t hlen, const char *path,
                               const ct_hf_tensor_t *e, int n, int64_t data_len,
                               ct_hf_read_t **reads_p, int *n_reads_p)
{
    ct_json_iter_t it = {0};
    ct_json_error_t jerr = {0};
    ct_status_t st = CT_OK;
    char shown[CT_LOG_CLIP_BUF];
    size_t bad_at = 0;
    char *seen = calloc((size_t)n + 1, 1);
    ct_hf_read_t *reads = calloc((size_t)n + 1, sizeof *reads);
    int nr = 0;
    if (!seen || !reads) {
        CT_LOG_ERROR("%s: out of memory reading the header", path);
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    if (ct_json_iter_init(&it, hdr, hlen, 0, &jerr) != 0) {
        bad_at = jerr.offset;
        goto bad_header;
    }
    const char *name;
    size_t name_len;
    struct json_object *val;
    while (ct_json_iter_next(&it, &name, &name_len, &val)) {
        char full[512 + 16];
        bad_at = it.key_offset;
        if (strlen(name) != name_len || name_len >= 512) goto bad_header;
        if (!strcmp(name, "__metadata__")) continue;
        char dtype[16] = "";
        long long shape[4], offs[2] = {-1, -1};
        int nd = -1, no = 0;
        bad_at = it.value_offset;
        if (tensor_info(val, dtype, sizeof dtype, shape, &nd, offs, &no) != 0) goto bad_header;
        /* GPT2Model files lack the transformer. prefix */
        if (strncmp(name, "transformer.", 12) != 0 && strcmp(name, "lm_head.weight") != 0)
            snprintf(full, sizeof full, "transformer.%s", name);
        else
            snprintf(full, sizeof full, "%s", name);
        size_t fl = strlen(full);
        if ((fl > 10 && !strcmp(full + fl - 10, ".attn.bias")) ||
            (fl > 17 && !strcmp(full + fl - 17, ".attn.masked_bias")))
            continue; /* causal-mask buffers, not parameters */
        int code = !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "F16") ? 2 : !strcmp(dtype, "BF16") ? 3 : 0;
        if (!code) {
            CT_LOG_ERROR("%s: tensor '%s' has dtype %s, only F32, F16 and BF16 are supported", path,
                         ct_log_clip(name, shown), dtype);
            st = CT_ERR_UNSUPPORTED;
            goto out;
        }
        int k = -1;
        const ct_hf_tensor_t *want = NULL;
        if (!strcmp(full, "lm_head.weight")) {
            k = n;
            want = &e[0];
        } else {
            for (int q = 0; q < n; q++)
                if (!strcmp(e[q].name, full)) k = q;
            if (k < 0) {
                CT_LOG_ERROR("%s: unknown tensor '%s' for a GPT-2 with n_layer=%d\n---> HINT: is "
                             "config.json from the same model?", path, ct_log_clip(name, shown),
                             (n - 4) / 12);
                st = CT_ERR_CORRUPT;
                goto out;
            }
            want = &e[k];
        }
        if (seen[k]) {
            CT_LOG_ERROR("%s: tensor '%s' appears twice", path, ct_log_clip(name, shown));
            st = CT_ERR_CORRUPT;
            goto out;
        }
        seen[k] = 1;
        long long ws[2] = {0, 0};
        int wnd = ct_hf_shape(want, ws);
        if (nd != wnd || shape[0] != ws[0] || (nd == 2 && shape[1] != ws[1])) {
            char got[96] = "", exp[64];
            for (int d = 0; d < nd && d < 4; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                         shape[d]);
            if (nd > 4) snprintf(got + strlen(got), sizeof got - strlen(got), ", ...");
            if (wnd == 1) snprintf(exp, sizeof exp, "%lld", ws[0]);
            else snprintf(exp, sizeof exp, "%lld, %lld", ws[0], ws[1]);
            CT_LOG_ERROR("%s: tensor '%s' has shape (%s), config.json implies (%s)", path,
                         ct_log_clip(name, shown), got, exp);
            st = CT_ERR_CORRUPT;
            goto out;
        }
        size_t count = (size_t)want->R * want->K, esz = code == 4 ? 4 : 2;
        if (offs[1] < offs[0] || (size_t)(offs[1] - offs[0]) != count * esz || offs[1] > data_len) {
            CT_LOG_ERROR("%s: tensor '%s' has data_offsets [%lld, %lld], want %zu bytes within the "
                         "%lld data bytes", path, ct_log_clip(name, shown), offs[0], offs[1],
                         count * esz, (long long)data_len);
            st = CT_ERR_CORRUPT;
            goto out;
        }
        reads[nr++] = (ct_hf_read_t){.entry = k, .dtype = code, .offset = offs[0], .count = count};
    }
    for (int k = 0; k < n; k++)
        if (!seen[k]) {
            CT_LOG_ERROR("%s: missing tensor '%s'", path, e[k].name);
            st = CT_ERR_CORRUPT;
            goto out;
        }
    goto out;
bad_header:
    CT_LOG_ERROR("%s: malformed safetensors JSON header near byte %zu%s%s", path, bad_at,
                 jerr.msg[0] ? ": " : "", jerr.msg);
    st = CT_ERR_CORRUPT;
out:
    ct_json_iter_free(&it);
    free(seen);
    if (st == CT_OK) {
        *reads_p = reads;
        *n_reads_p = nr;
    } else {
        free(reads);
    }
    return st;
}
