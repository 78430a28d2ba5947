/* Reading Hugging Face model directories from disk: config.json, and the
 * weights in model.safetensors or in the files a sharded checkpoint's
 * model.safetensors.index.json lists, into a model's host parameters. The
 * parsing is trainer/hf.c's; `ctrain import` (cli/cmd_hf.c) and
 * model.init_from (trainer/train.c) read through here. F32, F16 and BF16
 * are read; values are converted to fp32 exactly. */
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
#include "trainer/trainer.h"

/* ---- config.json --------------------------------------------------------------------- */

ct_status_t ct_hf_read_config(const char *path, ct_model_config_t *mc)
{
    char *text;
    size_t len;
    ct_status_t st = ct_fs_read_file(path, &text, &len);
    if (st != CT_OK) {
        CT_LOG_ERROR("cannot read %s: %s", path,
                     st == CT_ERR_NO_MEMORY ? "out of memory" : strerror(errno));
        return st == CT_ERR_IO ? CT_ERR_NOT_FOUND : st;
    }
    st = ct_hf_parse_config(text, len, path, mc);
    free(text);
    return st;
}

static float hf_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Reads `count` elements of dtype (4 F32, 2 F16, 3 BF16 by code) at byte
 * `off` of f into out as fp32. */
static int hf_read_tensor(FILE *f, long long off, int dtype, size_t count, float *out)
{
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) return -1;
    if (dtype == 4) return fread(out, sizeof(float), count, f) == count ? 0 : -1;
    uint16_t *h = malloc(count * sizeof *h);
    if (!h) return -1;
    int rc = fread(h, 2, count, f) == count ? 0 : -1;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (dtype == 2) {
            out[i] = hf_half_to_float(h[i]);
        } else {
            uint32_t bits = (uint32_t)h[i] << 16;
            memcpy(&out[i], &bits, 4);
        }
    }
    free(h);
    return rc;
}

/* Parses the safetensors file path and fills m's parameters: all of them,
 * or those in_file marks (ct_hf_parse_header_part) of the n tensors e. */
static CT_MUST_USE ct_status_t hf_read_safetensors(const char *path, ct_model_t *m,
                                                   const ct_hf_tensor_t *e, int n,
                                                   const unsigned char *in_file)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        CT_LOG_ERROR("cannot open %s: %s", path, strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    ct_status_t st = CT_OK;
    char *hdr = NULL;
    float *tmp = NULL, *head = NULL;
    ct_hf_read_t *reads = NULL;
    int nr = 0;
    uint8_t le[8];
    long long fsize = -1;
    if (fseeko(f, 0, SEEK_END) == 0) fsize = (long long)ftello(f);
    rewind(f);
    if (!e || fread(le, 1, 8, f) != 8) {
        CT_LOG_ERROR("%s: too short for a safetensors file", path);
        st = e ? CT_ERR_CORRUPT : CT_ERR_NO_MEMORY;
        goto out;
    }
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--) hlen = hlen << 8 | le[b];
    if (hlen == 0 || hlen > (100u << 20) || (long long)(hlen + 8) > fsize) {
        CT_LOG_ERROR("%s: header length %llu does not fit the file (%lld bytes); not a "
                     "safetensors file?", path, (unsigned long long)hlen, fsize);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    long long data_start = 8 + (long long)hlen, data_len = fsize - data_start;
    hdr = malloc(hlen + 1);
    size_t maxn = (size_t)m->d.V * m->d.C;
    for (int k = 0; k < n; k++)
        if ((size_t)e[k].R * e[k].K > maxn) maxn = (size_t)e[k].R * e[k].K;
    tmp = malloc(maxn * sizeof(float));
    if (!hdr || !tmp) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        CT_LOG_ERROR("%s: truncated header", path);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    hdr[hlen] = 0;
    if ((st = ct_hf_parse_header_part(hdr, hlen, path, e, n, in_file, data_len, &reads, &nr)) !=
        CT_OK)
        goto out;
    for (int i = 0; i < nr; i++) {
        const ct_hf_read_t *rd = &reads[i];
        const ct_hf_tensor_t *want = rd->entry == n ? &e[0] : &e[rd->entry];
        float *dst = rd->entry == n ? (head = malloc(rd->count * sizeof(float))) : tmp;
        if (!dst || hf_read_tensor(f, data_start + rd->offset, rd->dtype, rd->count, dst) != 0) {
            CT_LOG_ERROR("%s: cannot read tensor '%s'", path,
                         rd->entry == n ? "lm_head.weight" : want->name);
            st = dst ? CT_ERR_IO : CT_ERR_NO_MEMORY;
            goto out;
        }
        if (rd->entry == n) continue;
        float *p = m->params + m->offsets[want->src] + want->off;
        size_t R = (size_t)want->R, K = (size_t)want->K;
        if (want->transpose)
            for (size_t r = 0; r < R; r++)
                for (size_t c = 0; c < K; c++) p[r * K + c] = tmp[c * R + r];
        else
            memcpy(p, tmp, rd->count * sizeof(float));
    }
    /* a tied head's copy (the embedding is read first where both are in
     * one file, and a sharded import reads the copy's file last) */
    if (head && memcmp(head, m->params + m->offsets[0], (size_t)m->d.V * m->d.C * sizeof(float))) {
        CT_LOG_ERROR("%s: lm_head.weight differs from %s, but the head is tied%s", path, e[0].name,
                     m->d.arch == CT_ARCH_LLAMA ? " (config.json: tie_word_embeddings is true)"
                                                : "; ctrain only supports a tied GPT-2 head");
        st = CT_ERR_UNSUPPORTED;
    }
out:
    free(reads);
    free(head);
    free(tmp);
    free(hdr);
    fclose(f);
    return st;
}

ct_status_t ct_hf_read_weights(const char *dir, ct_model_t *m)
{
    CT_ASSERT(m->d.tp == 1);
    const uint16_t one = 1;
    if (*(const uint8_t *)&one != 1) {
        CT_LOG_ERROR("reading %s needs a little-endian host", dir);
        return CT_ERR_UNSUPPORTED;
    }
    char path[4200], ipath[4200];
    int n = 0;
    ct_hf_tensor_t *e = ct_hf_tensors(&m->d, &n);
    if (!e) return CT_ERR_NO_MEMORY;
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    ct_status_t st;
    if (stat(ipath, &sb) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = hf_read_safetensors(path, m, e, n, NULL);
        free(e);
        return st;
    }
    char *text = NULL, **files = NULL;
    size_t len = 0;
    int nf = 0, *file_of = malloc((size_t)(n + 1) * sizeof *file_of);
    unsigned char *in_file = malloc((size_t)n + 1);
    if (!file_of || !in_file) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    if ((st = ct_fs_read_file(ipath, &text, &len)) != CT_OK) {
        CT_LOG_ERROR("cannot read %s: %s", ipath,
                     st == CT_ERR_NO_MEMORY ? "out of memory" : strerror(errno));
        goto out;
    }
    if ((st = ct_hf_parse_index(text, len, ipath, e, n, &files, &nf, file_of)) != CT_OK) goto out;
    /* the file with a tied head's copy goes last, after the embedding */
    int last = file_of[n];
    for (int pass = 0; pass < 2 && st == CT_OK; pass++)
        for (int f = 0; f < nf && st == CT_OK; f++) {
            if ((f == last) != (pass == 1)) continue;
            snprintf(path, sizeof path, "%s/%s", dir, files[f]);
            if (stat(path, &sb) != 0) {
                CT_LOG_ERROR("%s lists %s, which is missing: %s\n---> HINT: copy every "
                             "model-*.safetensors file of the checkpoint", ipath, path,
                             strerror(errno));
                st = CT_ERR_NOT_FOUND;
                break;
            }
            for (int k = 0; k <= n; k++) in_file[k] = file_of[k] == f;
            st = hf_read_safetensors(path, m, e, n, in_file);
        }
    if (st == CT_OK) CT_LOG_INFO("read %d safetensors files listed in %s", nf, ipath);
out:
    for (int f = 0; f < nf; f++) free(files[f]);
    free(files);
    free(text);
    free(in_file);
    free(file_of);
    free(e);
    return st;
}

/* ---- model.init_from: a Hugging Face directory ------------------------------------ */

/* Shape keys must agree; keys a run may change on purpose (the context
 * length, RoPE and the norm epsilon, for context extension) are warned. */
static CT_MUST_USE ct_status_t hf_check_config(const char *path, const ct_model_config_t *hf,
                                               const ct_model_config_t *mc)
{
    ct_model_dims_t a, b;
    ct_model_dims(hf, 1, 0, &a);
    ct_model_dims(mc, 1, 0, &b);
    const struct {
        const char *key;
        int hf, run;
    } shape[] = {{"model.arch", hf->arch, mc->arch},
                 {"model.n_layer", a.L, b.L},
                 {"model.n_head", a.NH, b.NH},
                 {"model.n_embd", a.C, b.C},
                 {"model.vocab_size", a.V, b.V},
                 {"model.n_kv_head", a.NKV, b.NKV},
                 {"model.ffn_dim", a.F, b.F},
                 {"model.tie_embeddings", a.tied, b.tied}};
    ct_status_t st = CT_OK;
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        if (shape[i].hf == shape[i].run) continue;
        if (i == 0)
            CT_LOG_ERROR("model.init_from: %s describes a %s model, the config a %s one\n---> "
                         "HINT: set model.arch: %s and the model keys to match", path,
                         ct_model_arch_name(hf->arch), ct_model_arch_name(mc->arch),
                         ct_model_arch_name(hf->arch));
        else
            CT_LOG_ERROR("model.init_from: %s gives %s = %d, the config %d\n---> HINT: set %s: %d",
                         path, shape[i].key, shape[i].hf, shape[i].run, shape[i].key,
                         shape[i].hf);
        st = CT_ERR_CONFIG;
        if (i == 0) break;
    }
    if (st != CT_OK) return st;
    if (hf->max_seq_len != mc->max_seq_len)
        CT_LOG_WARN_R0("model.init_from: %s has max_position_embeddings %d, this run "
                       "model.max_seq_len %d", path, hf->max_seq_len, mc->max_seq_len);
    if (a.arch == CT_ARCH_LLAMA &&
        (a.rope.theta != b.rope.theta || a.rope.llama3 != b.rope.llama3 ||
         (a.rope.llama3 && (a.rope.factor != b.rope.factor ||
                            a.rope.low_freq_factor != b.rope.low_freq_factor ||
                            a.rope.high_freq_factor != b.rope.high_freq_factor ||
                            a.rope.original_max_seq_len != b.rope.original_max_seq_len)) ||
         a.norm_eps != b.norm_eps))
        CT_LOG_WARN_R0("model.init_from: %s sets RoPE (rope_theta %g%s) or rms_norm_eps (%g) "
                       "unlike this run's model.rope_* (%g%s) and model.norm_eps (%g): the "
                       "weights will be used under this run's settings", path,
                       (double)a.rope.theta, a.rope.llama3 ? ", llama3 scaling" : "",
                       (double)a.norm_eps, (double)b.rope.theta,
                       b.rope.llama3 ? ", llama3 scaling" : "", (double)b.norm_eps);
    return CT_OK;
}

ct_status_t ct_hf_init_from(const char *dir, const ct_model_config_t *mc, ct_model_t *m)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ct_model_config_t hf = *mc;
    ct_status_t st = ct_hf_read_config(path, &hf);
    if (st == CT_OK) st = hf_check_config(path, &hf, mc);
    if (st != CT_OK) return st;
    if (m->d.tp == 1) return ct_hf_read_weights(dir, m);
    /* a TP shard: read the whole model (no activations), then keep this
     * rank's slice; the vocabulary rows are repadded to the TP layout's */
    ct_model_t full;
    if ((st = ct_model_init(&full, mc, 0, 0, NULL)) != CT_OK) return st;
    if ((st = ct_hf_read_weights(dir, &full)) == CT_OK) {
        ct_model_dims_t td; /* the TP layout's whole tensors */
        ct_model_dims(mc, m->d.tp, 0, &td);
        for (int i = 0; i < m->n_tensors && st == CT_OK; i++) {
            float *src = full.params + full.offsets[i], *wide = NULL;
            size_t wn = ct_model_full_size(&td, i);
            if (wn != full.sizes[i]) {
                if (!(wide = malloc(wn * sizeof(float)))) {
                    st = CT_ERR_NO_MEMORY;
                    break;
                }
                ct_model_full_repad(&full.d, &td, i, src, wide);
                src = wide;
            }
            ct_model_shard_copy(&m->d, m->d.tp_rank, i, src, m->params + m->offsets[i], 1);
            free(wide);
        }
    }
    ct_model_free(&full);
    return st;
}
