/* Hugging Face files, the parts that need no file: the names and layout of
 * GPT2LMHeadModel's and LlamaForCausalLM's tensors, and the readers of
 * config.json, of a sharded checkpoint's model.safetensors.index.json and
 * of a safetensors JSON header, on bytes in memory. `ctrain import` and
 * `ctrain export` (cli/cmd_hf.c) do the file I/O around them; the fuzzing
 * harness (tests/fuzz/fuzz_hf.c) calls the readers directly.
 *
 * GPT-2's mapping: names transformer.* (GPT2Model's files lack the prefix;
 * the header reader accepts both), the vocabulary unpadded (V rows), the
 * four matrices transposed because HF's Conv1D stores (in, out) where we
 * store (out, in), and the LM head tied to wte. The attention mask buffers
 * older HF files carry (attn.bias, attn.masked_bias) are skipped.
 * Llama's: model.* and lm_head.weight, nn.Linear's (out, in) as ours, q and
 * k rows already in the rotate-half order our RoPE uses, the head tied or
 * not (tie_word_embeddings); rotary_emb.inv_freq buffers are skipped.
 * Left out: GPT-2's untied heads and other activations (only gelu_new);
 * Llama's biases (attention_bias, mlp_bias), RoPE scalings other than
 * llama3, a head_dim other than hidden_size / num_attention_heads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "trainer/trainer.h"

#define HF_ADD(src_, off_, R_, K_, tr_, ...)                                \
    do {                                                                    \
        snprintf(e[n].name, CT_HF_NAME_MAX, __VA_ARGS__);                   \
        e[n].src = (src_), e[n].off = (off_), e[n].R = (R_), e[n].K = (K_); \
        e[n].transpose = (tr_);                                             \
        n++;                                                                \
    } while (0)

/* The index of the model tensor called `name` ("wq"). */
static int model_tensor(const ct_model_dims_t *d, const char *name)
{
    for (int i = 0; i < ct_model_num_tensors(d); i++)
        if (!strcmp(ct_model_tensor_name(d, i), name)) return i;
    CT_ASSERT(0 && "no such tensor");
    return -1;
}

static ct_hf_tensor_t *llama_tensors(const ct_model_dims_t *d, int *n_p)
{
    const int L = d->L, C = d->C, KV = d->NKV * d->HS, F = d->F;
    int n = 0;
    ct_hf_tensor_t *e = calloc((size_t)(3 + 9 * L), sizeof *e);
    if (!e) return NULL;
    const int wq = model_tensor(d, "wq"), wk = model_tensor(d, "wk"), wv = model_tensor(d, "wv");
    const int wo = model_tensor(d, "wo"), ln1 = model_tensor(d, "ln1w"), ln2 = model_tensor(d, "ln2w");
    const int wg = model_tensor(d, "wgate"), wu = model_tensor(d, "wup");
    const int wd = model_tensor(d, "wdown");
    HF_ADD(model_tensor(d, "wte"), 0, d->V, C, 0, "model.embed_tokens.weight");
    for (int l = 0; l < L; l++) {
        size_t lc = (size_t)l * C;
        HF_ADD(ln1, lc, 1, C, 0, "model.layers.%d.input_layernorm.weight", l);
        HF_ADD(wq, lc * C, C, C, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        HF_ADD(wk, lc * KV, KV, C, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        HF_ADD(wv, lc * KV, KV, C, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        HF_ADD(wo, lc * C, C, C, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        HF_ADD(ln2, lc, 1, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        HF_ADD(wg, lc * F, F, C, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        HF_ADD(wu, lc * F, F, C, 0, "model.layers.%d.mlp.up_proj.weight", l);
        HF_ADD(wd, lc * F, C, F, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
    HF_ADD(model_tensor(d, "lnfw"), 0, 1, C, 0, "model.norm.weight");
    if (!d->tied) HF_ADD(model_tensor(d, "lm_head"), 0, d->V, C, 0, "lm_head.weight");
    *n_p = n;
    return e;
}

ct_hf_tensor_t *ct_hf_tensors(const ct_model_dims_t *d, int *n_p)
{
    if (d->arch == CT_ARCH_LLAMA) return llama_tensors(d, n_p);
    int L = d->L, C = d->C, n = 0;
    ct_hf_tensor_t *e = calloc((size_t)(4 + 12 * L), sizeof *e);
    if (!e) return NULL;
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

/* A top-level number: 0 found, 1 absent or null, -1 not a finite number. */
static int config_num(struct json_object *cfg, const char *key, double *v)
{
    struct json_object *x;
    if (!json_object_object_get_ex(cfg, key, &x) || !x) return 1;
    if (!json_object_is_type(x, json_type_double) && !json_object_is_type(x, json_type_int))
        return -1;
    *v = json_object_get_double(x);
    return isfinite(*v) ? 0 : -1;
}

/* A top-level boolean: 0 found, 1 absent or null, -1 not a boolean. */
static int config_bool(struct json_object *cfg, const char *key, int *v)
{
    struct json_object *x;
    if (!json_object_object_get_ex(cfg, key, &x) || !x) return 1;
    if (!json_object_is_type(x, json_type_boolean)) return -1;
    *v = json_object_get_boolean(x);
    return 0;
}

/* LlamaForCausalLM's config.json (LlamaConfig's defaults where a key is
 * absent: num_key_value_heads = num_attention_heads, rope_theta 10000,
 * rms_norm_eps 1e-6, tie_word_embeddings false, hidden_act silu). */
static CT_MUST_USE ct_status_t llama_config(struct json_object *cfg, const char *path,
                                            ct_model_config_t *mc)
{
    char shown[CT_LOG_CLIP_BUF];
    struct {
        const char *key;
        int *dst, need;
    } keys[] = {{"vocab_size", &mc->vocab_size, 1},       {"hidden_size", &mc->n_embd, 1},
                {"intermediate_size", &mc->ffn_dim, 1},   {"num_hidden_layers", &mc->n_layer, 1},
                {"num_attention_heads", &mc->n_head, 1},
                {"max_position_embeddings", &mc->max_seq_len, 1},
                {"num_key_value_heads", &mc->n_kv_head, 0}};
    mc->n_kv_head = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        long long v = 0;
        int r = config_int(cfg, keys[k].key, &v);
        if (r == 1 && !keys[k].need) continue;
        if (r != 0 || v <= 0 || v > (1 << 30)) {
            CT_LOG_ERROR("%s: '%s' is %s, want a positive integer", path, keys[k].key,
                         r == 1 ? "missing" : r < 0 ? "not a valid integer" : "out of range");
            return CT_ERR_CORRUPT;
        }
        *keys[k].dst = (int)v;
    }
    if (mc->n_embd % mc->n_head != 0) {
        CT_LOG_ERROR("%s: hidden_size (%d) is not a multiple of num_attention_heads (%d)", path,
                     mc->n_embd, mc->n_head);
        return CT_ERR_CORRUPT;
    }
    long long hd;
    if (config_int(cfg, "head_dim", &hd) == 0 && hd != mc->n_embd / mc->n_head) {
        CT_LOG_ERROR("%s: head_dim = %lld, but ctrain's heads are hidden_size / "
                     "num_attention_heads = %d wide", path, hd, mc->n_embd / mc->n_head);
        return CT_ERR_UNSUPPORTED;
    }
    struct json_object *x;
    if (json_object_object_get_ex(cfg, "hidden_act", &x) && x &&
        (!json_object_is_type(x, json_type_string) || strcmp(json_object_get_string(x), "silu"))) {
        CT_LOG_ERROR("%s: hidden_act '%s' is not supported: ctrain's SwiGLU uses silu", path,
                     ct_log_clip(json_object_get_string(x), shown));
        return CT_ERR_UNSUPPORTED;
    }
    const char *const no_bias[] = {"attention_bias", "mlp_bias"};
    for (int k = 0; k < 2; k++) {
        int b = 0, r = config_bool(cfg, no_bias[k], &b);
        if (r < 0 || b) {
            CT_LOG_ERROR("%s: %s is %s: ctrain's Llama has no biases", path, no_bias[k],
                         r < 0 ? "not a boolean" : "true");
            return r < 0 ? CT_ERR_CORRUPT : CT_ERR_UNSUPPORTED;
        }
    }
    int tied = 0;
    if (config_bool(cfg, "tie_word_embeddings", &tied) < 0) {
        CT_LOG_ERROR("%s: tie_word_embeddings is not a boolean", path);
        return CT_ERR_CORRUPT;
    }
    mc->tie_embeddings = tied;
    double theta = 10000.0, eps = 1e-6;
    int rt = config_num(cfg, "rope_theta", &theta), re = config_num(cfg, "rms_norm_eps", &eps);
    if (rt < 0 || re < 0 || !(theta > 0) || !(eps > 0) || eps >= 1) {
        CT_LOG_ERROR("%s: '%s' is not a valid number (rope_theta > 0, 0 < rms_norm_eps < 1)",
                     path, rt < 0 || !(theta > 0) ? "rope_theta" : "rms_norm_eps");
        return CT_ERR_CORRUPT;
    }
    mc->rope_theta = (float)theta;
    mc->norm_eps = (float)eps;
    mc->rope_scaling = CT_ROPE_SCALING_NONE;
    struct json_object *rs;
    if (json_object_object_get_ex(cfg, "rope_scaling", &rs) && rs) {
        struct json_object *t;
        const char *type = NULL;
        if (json_object_is_type(rs, json_type_object) &&
            ((json_object_object_get_ex(rs, "rope_type", &t) && t) ||
             (json_object_object_get_ex(rs, "type", &t) && t)) &&
            json_object_is_type(t, json_type_string))
            type = json_object_get_string(t);
        if (!type || (strcmp(type, "llama3") != 0 && strcmp(type, "default") != 0)) {
            CT_LOG_ERROR("%s: rope_scaling %s%s%s is not supported: ctrain has llama3 (and none)",
                         path, type ? "of rope_type '" : "without a rope_type",
                         type ? ct_log_clip(type, shown) : "", type ? "'" : "");
            return CT_ERR_UNSUPPORTED;
        }
        if (!strcmp(type, "llama3")) {
            const char *const k4[] = {"factor", "low_freq_factor", "high_freq_factor",
                                      "original_max_position_embeddings"};
            double v[4];
            for (int k = 0; k < 4; k++)
                if (config_num(rs, k4[k], &v[k]) != 0 || !(v[k] > 0) || v[k] > (1 << 30)) {
                    CT_LOG_ERROR("%s: rope_scaling.%s is missing or not a positive number", path,
                                 k4[k]);
                    return CT_ERR_CORRUPT;
                }
            mc->rope_scaling = CT_ROPE_SCALING_LLAMA3;
            mc->rope_factor = (float)v[0];
            mc->rope_low_freq_factor = (float)v[1];
            mc->rope_high_freq_factor = (float)v[2];
            mc->rope_original_max_seq_len = (int)v[3];
        }
    }
    mc->arch = CT_ARCH_LLAMA;
    return CT_OK;
}

ct_status_t ct_hf_parse_config(const char *text, size_t len, const char *path,
                               ct_model_config_t *mc)
{
    ct_json_error_t err;
    struct json_object *cfg = ct_json_parse(text, len, 0, &err);
    if (!json_object_is_type(cfg, json_type_object)) {
        if (cfg || !err.msg[0]) snprintf(err.msg, sizeof err.msg, "expected an object"), err.line = 1, err.col = 1;
        CT_LOG_ERROR("%s:%d:%d: malformed config.json: %s\n---> HINT: expected a Hugging Face "
                     "GPT-2 or Llama config.json", path, err.line, err.col, err.msg);
        json_object_put(cfg);
        return CT_ERR_CORRUPT;
    }
    /* model_type picks the reader; GPT-2's files have always been read without it */
    struct json_object *mt;
    char shown[CT_LOG_CLIP_BUF];
    if (json_object_object_get_ex(cfg, "model_type", &mt) && mt) {
        const char *type = json_object_is_type(mt, json_type_string) ? json_object_get_string(mt)
                                                                     : "";
        ct_status_t st = CT_OK;
        if (!strcmp(type, "llama")) {
            st = llama_config(cfg, path, mc);
        } else if (strcmp(type, "gpt2") != 0) {
            CT_LOG_ERROR("%s: model_type '%s' is not supported: ctrain reads gpt2 "
                         "(GPT2LMHeadModel) and llama (LlamaForCausalLM)", path,
                         ct_log_clip(type, shown));
            st = CT_ERR_UNSUPPORTED;
        }
        if (strcmp(type, "gpt2") != 0) {
            json_object_put(cfg);
            return st;
        }
    }
    mc->arch = CT_ARCH_GPT2;
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
    return ct_hf_parse_header_part(hdr, hlen, path, e, n, NULL, data_len, reads_p, n_reads_p);
}

/* The entry of e named `name` as a file names it: exactly, or for GPT-2
 * without the transformer. prefix; n for a copy of the tied head
 * (lm_head.weight when e has none); -1 for none. */
static int hf_entry(const ct_hf_tensor_t *e, int n, const char *name)
{
    const int gpt2 = !strncmp(e[0].name, "transformer.", 12);
    char full[512 + 16];
    if (gpt2 && strncmp(name, "transformer.", 12) != 0 && strcmp(name, "lm_head.weight") != 0)
        snprintf(full, sizeof full, "transformer.%s", name);
    else
        snprintf(full, sizeof full, "%s", name);
    for (int q = 0; q < n; q++)
        if (!strcmp(e[q].name, full)) return q;
    return strcmp(full, "lm_head.weight") == 0 ? n : -1;
}

/* Buffers, not parameters: GPT-2's causal masks, Llama's RoPE frequencies. */
static int hf_skipped(const char *name)
{
    const char *const tails[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"};
    size_t fl = strlen(name);
    for (int i = 0; i < 3; i++) {
        size_t tl = strlen(tails[i]);
        if (fl > tl && !strcmp(name + fl - tl, tails[i])) return 1;
    }
    return 0;
}

/* n_layer of a model from its tensor count, for messages. */
static int hf_layers(const ct_hf_tensor_t *e, int n)
{
    return !strncmp(e[0].name, "transformer.", 12) ? (n - 4) / 12 : (n - 2) / 9;
}

ct_status_t ct_hf_parse_header_part(const char *hdr, size_t hlen, const char *path,
                                    const ct_hf_tensor_t *e, int n, const unsigned char *in_file,
                                    int64_t data_len, ct_hf_read_t **reads_p, int *n_reads_p)
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
        bad_at = it.key_offset;
        if (strlen(name) != name_len || name_len >= 512) goto bad_header;
        if (!strcmp(name, "__metadata__")) continue;
        char dtype[16] = "";
        long long shape[4], offs[2] = {-1, -1};
        int nd = -1, no = 0;
        bad_at = it.value_offset;
        if (tensor_info(val, dtype, sizeof dtype, shape, &nd, offs, &no) != 0) goto bad_header;
        if (hf_skipped(name)) continue;
        int code = !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "F16") ? 2 : !strcmp(dtype, "BF16") ? 3 : 0;
        if (!code) {
            CT_LOG_ERROR("%s: tensor '%s' has dtype %s, only F32, F16 and BF16 are supported", path,
                         ct_log_clip(name, shown), dtype);
            st = CT_ERR_UNSUPPORTED;
            goto out;
        }
        int k = hf_entry(e, n, name);
        if (k < 0) {
            CT_LOG_ERROR("%s: unknown tensor '%s' for a %s with n_layer=%d\n---> HINT: is "
                         "config.json from the same model?", path, ct_log_clip(name, shown),
                         strncmp(e[0].name, "transformer.", 12) ? "Llama" : "GPT-2",
                         hf_layers(e, n));
            st = CT_ERR_CORRUPT;
            goto out;
        }
        const ct_hf_tensor_t *want = k == n ? &e[0] : &e[k];
        if (in_file && !in_file[k]) {
            CT_LOG_ERROR("%s: holds tensor '%s', which model.safetensors.index.json maps to "
                         "another file", path, ct_log_clip(name, shown));
            st = CT_ERR_CORRUPT;
            goto out;
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
    for (int k = 0; k <= n; k++)
        if (!seen[k] && (in_file ? in_file[k] : k < n)) {
            CT_LOG_ERROR("%s: missing tensor '%s'%s", path, k < n ? e[k].name : "lm_head.weight",
                         in_file ? " (model.safetensors.index.json maps it to this file)" : "");
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

/* ---- model.safetensors.index.json ------------------------------------------------ */

ct_status_t ct_hf_parse_index(const char *text, size_t len, const char *path,
                              const ct_hf_tensor_t *e, int n, char ***files_p, int *n_files_p,
                              int *file_of)
{
    ct_json_error_t err;
    char shown[CT_LOG_CLIP_BUF];
    struct json_object *root = ct_json_parse(text, len, 0, &err), *map = NULL;
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "weight_map", &map) ||
        !json_object_is_type(map, json_type_object)) {
        if (root || !err.msg[0]) snprintf(err.msg, sizeof err.msg, "expected an object with a "
                                          "\"weight_map\" object"), err.line = 1, err.col = 1;
        CT_LOG_ERROR("%s:%d:%d: malformed index: %s", path, err.line, err.col, err.msg);
        json_object_put(root);
        return CT_ERR_CORRUPT;
    }
    ct_status_t st = CT_OK;
    char **files = calloc((size_t)n + 1, sizeof *files);
    int nf = 0;
    if (!files) {
        json_object_put(root);
        return CT_ERR_NO_MEMORY;
    }
    for (int k = 0; k <= n; k++) file_of[k] = -1;
    json_object_object_foreach(map, name, val)
    {
        const char *file = json_object_is_type(val, json_type_string) ? json_object_get_string(val)
                                                                      : NULL;
        if (!file || !file[0] || strchr(file, '/') || file[0] == '.') {
            CT_LOG_ERROR("%s: weight_map['%s'] is not a file name in the same directory", path,
                         ct_log_clip(name, shown));
            st = CT_ERR_CORRUPT;
            break;
        }
        if (hf_skipped(name)) continue;
        int k = hf_entry(e, n, name);
        if (k < 0) {
            CT_LOG_ERROR("%s: weight_map names unknown tensor '%s' for a %s with n_layer=%d\n"
                         "---> HINT: is config.json from the same model?", path,
                         ct_log_clip(name, shown),
                         strncmp(e[0].name, "transformer.", 12) ? "Llama" : "GPT-2",
                         hf_layers(e, n));
            st = CT_ERR_CORRUPT;
            break;
        }
        int f = 0;
        while (f < nf && strcmp(files[f], file) != 0) f++;
        if (f == nf && !(files[nf++] = strdup(file))) {
            st = CT_ERR_NO_MEMORY;
            break;
        }
        file_of[k] = f;
    }
    for (int k = 0; k < n && st == CT_OK; k++)
        if (file_of[k] < 0) {
            CT_LOG_ERROR("%s: weight_map has no entry for tensor '%s'", path, e[k].name);
            st = CT_ERR_CORRUPT;
        }
    json_object_put(root);
    if (st != CT_OK) {
        for (int f = 0; f < nf; f++) free(files[f]);
        free(files);
        return st;
    }
    *files_p = files;
    *n_files_p = nf;
    return CT_OK;
}
