/* Hugging Face interop: `ctrain export --format hf` writes a checkpoint as
 * GPT2LMHeadModel's or LlamaForCausalLM's safetensors + config.json, and
 * `ctrain import` reads them back into a ctrain checkpoint.
 *
 * GPT-2's mapping: names transformer.* (import also accepts them without
 * the prefix, as GPT2Model saves them), the vocabulary unpadded (V rows,
 * padding rows zero on import), the four matrices transposed because HF's
 * Conv1D stores (in, out) where we store (out, in), and the LM head tied to
 * wte (lm_head.weight is omitted on export; on import it must equal wte).
 * Llama's: model.* and lm_head.weight as stored (no transposes), the head
 * tied or not. Export writes F32 or BF16 (--dtype), in one file or sharded
 * (--shard-mib, with model.safetensors.index.json); import reads F32, F16
 * and BF16, one file or sharded. The attention mask buffers older GPT-2
 * files carry and Llama's rotary_emb.inv_freq are skipped. The tensor table
 * and the readers of config.json, the index and the safetensors header
 * live in trainer/hf.c; this file does the file I/O. Left out: GPT-2's
 * untied heads and other activations (only gelu_new), a layer_norm_epsilon
 * other than 1e-5 (warned), and big-endian hosts. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/fs.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/model.h"
#include "cli/cli.h"
#include "trainer/trainer.h"

static int hf_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* ---- loading a whole ctrain checkpoint ----------------------------------- */

/* Resolves a checkpoint directory or a run directory (its newest checkpoint)
 * to a malloc'd checkpoint path. */
static char *hf_resolve_ckpt(const char *arg)
{
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/manifest.yaml", arg);
    struct stat sb;
    char *dir = NULL;
    if (stat(mpath, &sb) == 0) return strdup(arg);
    if (ct_ckpt_find_latest(arg, &dir) == CT_OK) return dir;
    return strdup(arg); /* let the loader report what is missing */
}

/* Loads checkpoint dir (any TP layout) into a tp = 1 model m (capacity
 * B = 1, T = maxT), gathering every TP rank's shard. cfg_p gets the
 * checkpoint's config (caller frees it, and m, on success). */
static CT_MUST_USE ct_status_t hf_load_ckpt(const char *dir, ct_config_t *cfg_p, ct_model_t *m)
{
    ct_status_t st = ct_ckpt_read_config(dir, cfg_p);
    if (st != CT_OK) return st;
    int tp = cfg_p->parallel.tp;
    st = ct_model_init(m, &cfg_p->model, 1, cfg_p->model.max_seq_len, NULL);
    if (st != CT_OK) goto fail_cfg;
    if (tp <= 1) {
        st = ct_ckpt_load(dir, m, NULL, NULL);
        if (st != CT_OK) goto fail_model;
        return CT_OK;
    }
    /* A TP checkpoint: read each rank's shard through ct_ckpt_load, which
     * only needs the shard's dims and a buffer (no collectives, no optimizer
     * state), and scatter it into the full tensors. TP pads the vocabulary
     * wider (a multiple of 128 * tp), so the vocabulary tensor is gathered
     * at the TP layout's size and repadded, real rows only, into m. */
    ct_model_dims_t td; /* the TP layout's full tensors */
    ct_model_dims(&cfg_p->model, tp, 0, &td);
    size_t nwide = 0, woff[CT_MODEL_MAX_TENSORS];
    for (int i = 0; i < m->n_tensors; i++) {
        woff[i] = nwide;
        if (ct_model_full_size(&td, i) != m->sizes[i]) nwide += ct_model_full_size(&td, i);
    }
    float *buf = malloc((m->num_params + nwide) * sizeof(float)), *wide = buf + m->num_params;
    if (!buf) {
        st = CT_ERR_NO_MEMORY;
        goto fail_model;
    }
    for (int r = 0; r < tp && st == CT_OK; r++) {
        ct_model_t shard;
        memset(&shard, 0, sizeof shard);
        ct_model_dims(&cfg_p->model, tp, r, &shard.d);
        ct_model_tensor_sizes(&shard.d, shard.sizes);
        shard.n_tensors = ct_model_num_tensors(&shard.d);
        shard.params = buf;
        st = ct_ckpt_load(dir, &shard, NULL, NULL);
        size_t off = 0;
        for (int i = 0; i < shard.n_tensors && st == CT_OK; i++) {
            float *into = m->params + m->offsets[i];
            int same = ct_model_full_size(&td, i) == m->sizes[i];
            ct_model_shard_copy(&shard.d, r, i, same ? into : wide + woff[i], buf + off, 0);
            if (!same && r == tp - 1) ct_model_full_repad(&td, &m->d, i, wide + woff[i], into);
            off += shard.sizes[i];
        }
    }
    free(buf);
    if (st != CT_OK) goto fail_model;
    CT_LOG_INFO("gathered %d tensor-parallel shards of %s", tp, dir);
    return CT_OK;
fail_model:
    ct_model_free(m);
fail_cfg:
    ct_config_free(cfg_p);
    return st;
}

/* ---- export ------------------------------------------------------------- */

/* A float as JSON: the shortest %g that reads back as the same float, with
 * a ".0" when that looks like an integer (as Python's json writes floats). */
static const char *hf_json_float(float v, char *buf, size_t n)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", n - strlen(buf) - 1);
    return buf;
}

static CT_MUST_USE ct_status_t hf_write_llama_config(const char *path, const ct_model_dims_t *d,
                                                     const ct_model_config_t *mc, int bf16)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    char eps[32], theta[32], fa[32], lo[32], hi[32], std[32], scaling[256];
    if (d->rope.llama3)
        snprintf(scaling, sizeof scaling,
                 "{\"rope_type\": \"llama3\", \"factor\": %s, \"low_freq_factor\": %s, "
                 "\"high_freq_factor\": %s, \"original_max_position_embeddings\": %d}",
                 hf_json_float(d->rope.factor, fa, sizeof fa),
                 hf_json_float(d->rope.low_freq_factor, lo, sizeof lo),
                 hf_json_float(d->rope.high_freq_factor, hi, sizeof hi),
                 d->rope.original_max_seq_len);
    else
        snprintf(scaling, sizeof scaling, "null");
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"LlamaForCausalLM\"],\n"
            "  \"model_type\": \"llama\",\n"
            "  \"vocab_size\": %d,\n"
            "  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"head_dim\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"rms_norm_eps\": %s,\n"
            "  \"rope_theta\": %s,\n"
            "  \"rope_scaling\": %s,\n"
            "  \"attention_bias\": false,\n"
            "  \"mlp_bias\": false,\n"
            "  \"tie_word_embeddings\": %s,\n"
            "  \"initializer_range\": %s,\n"
            "  \"use_cache\": true,\n"
            "  \"torch_dtype\": \"%s\"\n"
            "}\n",
            d->V, d->C, d->F, d->L, d->NH, d->NKV, d->HS, d->maxT,
            hf_json_float(d->norm_eps, eps, sizeof eps),
            hf_json_float(d->rope.theta, theta, sizeof theta), scaling,
            d->tied ? "true" : "false", hf_json_float(mc->init_std, std, sizeof std),
            bf16 ? "bfloat16" : "float32");
    if (fclose(f) != 0) {
        CT_LOG_ERROR("cannot write %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    return CT_OK;
}

static CT_MUST_USE ct_status_t hf_write_config_json(const char *path, const ct_model_dims_t *d,
                                        const ct_model_config_t *mc)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"model_type\": \"gpt2\",\n"
            "  \"vocab_size\": %d,\n"
            "  \"n_positions\": %d,\n"
            "  \"n_ctx\": %d,\n"
            "  \"n_embd\": %d,\n"
            "  \"n_layer\": %d,\n"
            "  \"n_head\": %d,\n"
            "  \"n_inner\": null,\n"
            "  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"activation_function\": \"gelu_new\",\n"
            "  \"tie_word_embeddings\": true,\n"
            "  \"initializer_range\": %g,\n"
            "  \"resid_pdrop\": 0.0,\n"
            "  \"embd_pdrop\": 0.0,\n"
            "  \"attn_pdrop\": 0.0,\n"
            "  \"scale_attn_weights\": true,\n"
            "  \"use_cache\": true,\n"
            "  \"torch_dtype\": \"float32\"\n"
            "}\n",
            d->V, d->maxT, d->maxT, d->C, d->L, d->NH, (double)mc->init_std);
    if (fclose(f) != 0) {
        CT_LOG_ERROR("cannot write %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    return CT_OK;
}

/* fp32 to bf16, rounding to nearest even; a NaN stays a (quiet) NaN. */
static uint16_t hf_f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Bytes of tensor e in the exported dtype. */
static size_t hf_bytes(const ct_hf_tensor_t *e, int bf16)
{
    return (size_t)e->R * e->K * (bf16 ? 2 : 4);
}

/* Writes tensors e[k0, k1) of model m to the safetensors file path, F32 or
 * BF16. */
static CT_MUST_USE ct_status_t hf_write_safetensors(const char *path, const ct_model_t *m,
                                                    const ct_hf_tensor_t *e, int k0, int k1,
                                                    int bf16)
{
    ct_status_t st = CT_OK;
    size_t cap = (size_t)(k1 - k0) * (CT_HF_NAME_MAX + 128) + 64, len = 0, maxn = 0;
    char *hdr = malloc(cap);
    float *tmp = NULL;
    uint16_t *half = NULL;
    FILE *f = NULL;
    if (!hdr) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    size_t data_off = 0;
    const char *dt = bf16 ? "BF16" : "F32";
    for (int k = k0; k < k1; k++) {
        long long shape[2];
        int nd = ct_hf_shape(&e[k], shape);
        size_t bytes = hf_bytes(&e[k], bf16);
        if (nd == 1)
            len += (size_t)snprintf(hdr + len, cap - len, "\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld]",
                                    e[k].name, dt, shape[0]);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    "\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld]", e[k].name,
                                    dt, shape[0], shape[1]);
        len += (size_t)snprintf(hdr + len, cap - len, ",\"data_offsets\":[%zu,%zu]},", data_off,
                                data_off + bytes);
        data_off += bytes;
        if ((size_t)e[k].R * e[k].K > maxn) maxn = (size_t)e[k].R * e[k].K;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "\"__metadata__\":{\"format\":\"pt\"}}");
    while (len % 8) hdr[len++] = ' ';
    tmp = malloc(maxn * sizeof(float));
    half = bf16 ? malloc(maxn * sizeof(uint16_t)) : NULL;
    if (!tmp || (bf16 && !half)) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    f = fopen(path, "wb");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        st = CT_ERR_IO;
        goto out;
    }
    uint8_t le[8];
    for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)len >> (8 * b));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    for (int k = k0; k < k1 && ok; k++) {
        const float *src = m->params + m->offsets[e[k].src] + e[k].off;
        size_t R = (size_t)e[k].R, K = (size_t)e[k].K;
        const float *out = src;
        if (e[k].transpose) {
            for (size_t r = 0; r < R; r++)
                for (size_t c = 0; c < K; c++) tmp[c * R + r] = src[r * K + c];
            out = tmp;
        }
        if (bf16) {
            for (size_t i = 0; i < R * K; i++) half[i] = hf_f32_to_bf16(out[i]);
            ok = fwrite(half, sizeof(uint16_t), R * K, f) == R * K;
        } else {
            ok = fwrite(out, sizeof(float), R * K, f) == R * K;
        }
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        CT_LOG_ERROR("cannot write %s: %s", path, strerror(errno));
        st = CT_ERR_IO;
    }
out:
    free(half);
    free(tmp);
    free(hdr);
    return st;
}

/* Writes model m into dir as model.safetensors, or with shard_bytes > 0 as
 * model-0000i-of-0000N.safetensors files of at most shard_bytes each (a
 * larger tensor gets a file of its own) plus model.safetensors.index.json,
 * as transformers' save_pretrained shards. */
static CT_MUST_USE ct_status_t hf_write_weights(const char *dir, const ct_model_t *m, int bf16,
                                                size_t shard_bytes)
{
    int n;
    ct_hf_tensor_t *e = ct_hf_tensors(&m->d, &n);
    if (!e) return CT_ERR_NO_MEMORY;
    char path[4200];
    ct_status_t st = CT_OK;
    /* shard k starts at first[k] */
    int *first = malloc((size_t)(n + 1) * sizeof *first), ns = 0;
    size_t total = 0;
    if (!first) {
        free(e);
        return CT_ERR_NO_MEMORY;
    }
    size_t used = 0;
    for (int k = 0; k < n; k++) {
        size_t b = hf_bytes(&e[k], bf16);
        if (k == 0 || (shard_bytes > 0 && used > 0 && used + b > shard_bytes)) {
            first[ns++] = k;
            used = 0;
        }
        used += b;
        total += b;
    }
    first[ns] = n;
    if (ns == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = hf_write_safetensors(path, m, e, 0, n, bf16);
        goto out;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *idx = fopen(path, "w");
    if (!idx) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        st = CT_ERR_IO;
        goto out;
    }
    fprintf(idx, "{\n  \"metadata\": {\"total_size\": %zu},\n  \"weight_map\": {\n", total);
    for (int s = 0; s < ns && st == CT_OK; s++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, ns);
        for (int k = first[s]; k < first[s + 1]; k++)
            fprintf(idx, "    \"%s\": \"%s\"%s\n", e[k].name, file, k + 1 < n ? "," : "");
        snprintf(path, sizeof path, "%s/%s", dir, file);
        st = hf_write_safetensors(path, m, e, first[s], first[s + 1], bf16);
    }
    fprintf(idx, "  }\n}\n");
    if (fclose(idx) != 0 && st == CT_OK) {
        CT_LOG_ERROR("cannot write %s/model.safetensors.index.json: %s", dir, strerror(errno));
        st = CT_ERR_IO;
    }
out:
    free(first);
    free(e);
    return st;
}

/* Debug aid for the interop test: runs the forward pass on each line of
 * tokens_path (whitespace-separated ids, one sequence per line, at most
 * maxT) and appends the (T, V) fp32 logits of each to out_path. */
static CT_MUST_USE ct_status_t hf_dump_logits(ct_model_t *m, const char *tokens_path, const char *out_path)
{
    FILE *in = fopen(tokens_path, "r"), *out = NULL;
    if (!in) {
        CT_LOG_ERROR("cannot open %s: %s", tokens_path, strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    ct_status_t st = CT_OK;
    int32_t *toks = malloc((size_t)m->d.maxT * sizeof *toks);
    char *line = NULL;
    size_t cap = 0;
    out = fopen(out_path, "wb");
    if (!out || !toks) {
        CT_LOG_ERROR("cannot create %s: %s", out_path, strerror(errno));
        st = CT_ERR_IO;
        goto out;
    }
    int lineno = 0;
    while (getline(&line, &cap, in) >= 0 && st == CT_OK) {
        lineno++;
        int T = 0;
        char *p = line, *end;
        for (;;) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (v < 0 || v >= m->d.V || T >= m->d.maxT) {
                CT_LOG_ERROR("%s:%d: token %ld out of range or sequence longer than %d",
                             tokens_path, lineno, v, m->d.maxT);
                st = CT_ERR_INVALID_ARG;
                break;
            }
            toks[T++] = (int32_t)v;
            p = end;
        }
        if (st != CT_OK || T == 0) continue;
        ct_model_forward(m, toks, NULL, 1, T);
        for (int t = 0; t < T && st == CT_OK; t++)
            if (fwrite(ct_model_logits_row(m, t), sizeof(float), (size_t)m->d.V, out) !=
                (size_t)m->d.V)
                st = CT_ERR_IO;
    }
out:
    if (out && fclose(out) != 0 && st == CT_OK) st = CT_ERR_IO;
    fclose(in);
    free(line);
    free(toks);
    return st;
}

static const char export_usage[] =
    "usage: ctrain export --format hf [--dtype f32|bf16] [--shard-mib N] CKPT_DIR OUT_DIR\n"
    "\n"
    "Writes a checkpoint (or a run directory's newest one; any tensor-parallel\n"
    "layout) as a Hugging Face model in OUT_DIR: config.json and the weights,\n"
    "a GPT2LMHeadModel (tied head, lm_head.weight omitted) or a\n"
    "LlamaForCausalLM (lm_head.weight when untied). Load it with\n"
    "transformers' AutoModelForCausalLM.from_pretrained(OUT_DIR). The tokenizer\n"
    "is not exported.\n"
    "\n"
    "  --dtype f32|bf16  the weights' type (default f32; bf16 rounds to nearest even)\n"
    "  --shard-mib N     split the weights into files of at most N MiB (a number > 0;\n"
    "                    a larger tensor gets a file of its own),\n"
    "                    model-0000i-of-0000n.safetensors with\n"
    "                    model.safetensors.index.json (default: one model.safetensors)\n";

int ct_cmd_export(int argc, char **argv)
{
    const char *fmt = NULL, *dtype = NULL, *shard_s = NULL, *dump[2] = {NULL, NULL};
    /* --dump-logits TOKENS_FILE OUT.bin is hidden, for tests/integration/hf_forward.py */
    const ct_opt_t opts[] = {{"--format", NULL, CT_OPT_STR, &fmt},
                             {"--dtype", NULL, CT_OPT_STR, &dtype},
                             {"--shard-mib", NULL, CT_OPT_STR, &shard_s},
                             {"--dump-logits", NULL, CT_OPT_PAIR, dump}};
    ct_args_t a = {.cmd = "export", .usage = export_usage, .opts = opts, .n_opts = 4,
                   .min_pos = 2, .max_pos = 2, .pos_names = "CKPT_DIR and OUT_DIR"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    if (rc < 0 && (!fmt || strcmp(fmt, "hf") != 0))
        rc = ct_cli_usage_error(a.cmd, "need --format hf (the only format)%s%s", fmt ? ", got " : "",
                                 fmt ? fmt : "");
    if (rc < 0 && dtype && strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0)
        rc = ct_cli_usage_error(a.cmd, "--dtype must be f32 or bf16, got %s", dtype);
    double shard_mib = 0.0;
    if (rc < 0 && shard_s) rc = ct_args_double(a.cmd, "--shard-mib", shard_s, 0.0, &shard_mib);
    const int bf16 = dtype && !strcmp(dtype, "bf16");
    const char *src = rc < 0 ? a.pos[0] : NULL, *dst = rc < 0 ? a.pos[1] : NULL;
    const char *dump_in = dump[0], *dump_out = dump[1];
    ct_args_free(&a);
    if (rc >= 0) return rc;
    if (!hf_little_endian()) {
        CT_LOG_ERROR("export needs a little-endian host");
        return 1;
    }
    char *dir = hf_resolve_ckpt(src);
    if (!dir) return 1;
    ct_config_t cfg;
    ct_model_t m;
    ct_status_t st = hf_load_ckpt(dir, &cfg, &m);
    if (st != CT_OK) {
        free(dir);
        return 1;
    }
    const int llama = m.d.arch == CT_ARCH_LLAMA;
    char path[4200];
    st = ct_fs_mkdir_p(dst);
    if (st == CT_OK) st = hf_write_weights(dst, &m, bf16, (size_t)(shard_mib * 1048576.0));
    if (st == CT_OK) {
        snprintf(path, sizeof path, "%s/config.json", dst);
        st = llama ? hf_write_llama_config(path, &m.d, &cfg.model, bf16)
                   : hf_write_config_json(path, &m.d, &cfg.model);
    }
    if (st == CT_OK && dump_in) st = hf_dump_logits(&m, dump_in, dump_out);
    if (st == CT_OK)
        CT_LOG_INFO("exported %s to %s (Hugging Face %s, %s)", dir, dst,
                    llama ? "LlamaForCausalLM" : "GPT2LMHeadModel", bf16 ? "bf16" : "f32");
    ct_model_free(&m);
    ct_config_free(&cfg);
    free(dir);
    return st == CT_OK ? 0 : 1;
}

static const char import_usage[] =
    "usage: ctrain import HF_DIR OUT_DIR [--set section.key=value]...\n"
    "\n"
    "Reads a Hugging Face GPT2LMHeadModel (tied head) or LlamaForCausalLM (tied or\n"
    "not): HF_DIR/config.json and HF_DIR/model.safetensors, or the files\n"
    "HF_DIR/model.safetensors.index.json lists (a sharded checkpoint); F32, F16 or\n"
    "BF16. It becomes a ctrain checkpoint at\n"
    "OUT_DIR/ckpt/step_00000000 (tp = 1, AdamW state zero), printed on stdout.\n"
    "`ctrain sample OUT_DIR` generates from it; train from it with\n"
    "--set checkpoint.resume=OUT_DIR/ckpt/step_00000000 and the same model.*\n"
    "settings. Each --set goes into the stored config (e.g. eval.tokenizer);\n"
    "the model dims come from config.json.\n";

int ct_cmd_import(int argc, char **argv)
{
    const ct_opt_t opts[] = {{"--set", NULL, CT_OPT_SET, NULL}};
    ct_args_t a = {.cmd = "import", .usage = import_usage, .opts = opts, .n_opts = 1,
                   .min_pos = 2, .max_pos = 2, .pos_names = "HF_DIR and OUT_DIR"};
    int rc = ct_args_parse(&a, argc, argv, 1);
    for (int k = 0; rc < 0 && k < a.n_sets; k++)
        if (!strncmp(a.sets[k], "model.", 6) && strncmp(a.sets[k], "model.init_std=", 15) != 0)
            rc = ct_cli_usage_error(a.cmd, "--set %s: the model dims come from config.json",
                                     a.sets[k]);
    if (rc < 0 && !hf_little_endian()) {
        CT_LOG_ERROR("import needs a little-endian host");
        rc = 1;
    }
    if (rc >= 0) {
        ct_args_free(&a);
        return rc;
    }
    const char *src = a.pos[0], *dst = a.pos[1];
    rc = 1;
    char path[4200];
    ct_config_t cfg;
    if (ct_config_load(NULL, a.sets, a.n_sets, &cfg) != CT_OK) {
        ct_args_free(&a);
        return 1;
    }
    ct_args_free(&a);
    /* config.json sets the architecture and the model's keys (the other
     * model keys keep their defaults or --set values) */
    ct_model_config_t hm = cfg.model;
    snprintf(path, sizeof path, "%s/config.json", src);
    if (ct_hf_read_config(path, &hm) != CT_OK) {
        ct_config_free(&cfg);
        return 1;
    }
    cfg.model = hm;
    cfg.parallel.tp = 1;
    cfg.parallel.dp = 1;
    /* the stored config must load again: a default seq_len longer than the
     * model's context is cut to it */
    if (cfg.train.seq_len > hm.max_seq_len) cfg.train.seq_len = hm.max_seq_len;
    ct_model_t m;
    char *yaml = ct_config_to_yaml(&cfg);
    ct_config_t check;
    if (!yaml || ct_config_load_string(yaml, "the imported config", &check) != CT_OK) {
        CT_LOG_ERROR("the config for %s is invalid (see above)\n---> HINT: adjust it with --set",
                     dst);
        free(yaml);
        goto out_cfg;
    }
    free(yaml);
    ct_config_free(&check);
    ct_optim_t o;
    char *out_dir = NULL;
    if (ct_model_init(&m, &cfg.model, 1, 1, NULL) != CT_OK) goto out_cfg;
    if (ct_optim_init(&o, &m, 0, NULL, cfg.comm.bucket_mib) != CT_OK) goto out_model;
    if (ct_hf_read_weights(src, &m) != CT_OK) goto out_optim;
    ct_rng_t rng;
    ct_rng_seed(&rng, (uint64_t)cfg.eval.sample_seed, 0, 0);
    ct_ckpt_state_t state = {.step = 0, .samples = 0, .sample_rng = rng.s};
    if (ct_ckpt_save(dst, &m, &o, &cfg, &state, NULL, &out_dir) != CT_OK) goto out_optim;
    CT_LOG_INFO("imported %s (%s n_layer=%d n_head=%d n_embd=%d vocab_size=%d) to %s", src,
                ct_model_arch_name(hm.arch), hm.n_layer, hm.n_head, hm.n_embd, hm.vocab_size,
                out_dir);
    printf("%s\n", out_dir);
    free(out_dir);
    rc = 0;
out_optim:
    ct_optim_free(&o);
out_model:
    ct_model_free(&m);
out_cfg:
    ct_config_free(&cfg);
    return rc;
}
