/* Checkpoint save, load and discovery. The manifest is plain YAML written
 * with fprintf and read back with libcyaml. */

#include <cyaml/cyaml.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fs.h"
#include "core/log.h"
#include "trainer/ckpt_impl.h"
#include "trainer/trainer.h"

#define CKPT_FORMAT "ctrain-ckpt-2"
/* Refused before parsing: a manifest is its config (at most
 * CT_CONFIG_MAX_BYTES) plus a tensor table of a few hundred bytes per
 * tensor and rank. */
#define CKPT_MANIFEST_MAX_BYTES (64 << 20)
/* The layouts a manifest may record (config.h's ranges of parallel.tp and
 * parallel.dp). */
#define CKPT_MAX_TP 1024
#define CKPT_MAX_DP 65536

/* ---- manifest schema (libcyaml) ------------------------------------------- */
typedef struct {
    char *name;
    char *file;
    uint64_t offset; /* bytes into file */
    uint64_t bytes;
    uint32_t crc32;
    uint64_t first;  /* optimizer pieces: flat element index of the first float */
} mf_tensor_t;

typedef struct {
    int dp, tp, zero;
} mf_layout_t;

typedef struct {
    int n_layer, n_head, n_embd, max_seq_len, vocab_size, padded_vocab;
    /* absent before Llama (and still for GPT-2, whose manifests are as
     * they were): arch NULL means gpt2 */
    char *arch;
    int n_kv_head, ffn_dim, tie_embeddings;
} mf_model_t;

typedef struct {
    char *format;
    int64_t step;
    int64_t samples;
    uint64_t sample_rng;
    mf_model_t model;
    mf_layout_t layout;
    char *config;
    mf_tensor_t *tensors;
    unsigned tensors_count;
} mf_t;

static const cyaml_schema_field_t mf_tensor_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, mf_tensor_t, name, 0, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("file", CYAML_FLAG_POINTER, mf_tensor_t, file, 0, CYAML_UNLIMITED),
    CYAML_FIELD_UINT("offset", CYAML_FLAG_DEFAULT, mf_tensor_t, offset),
    CYAML_FIELD_UINT("bytes", CYAML_FLAG_DEFAULT, mf_tensor_t, bytes),
    CYAML_FIELD_UINT("crc32", CYAML_FLAG_DEFAULT, mf_tensor_t, crc32),
    CYAML_FIELD_UINT("first", CYAML_FLAG_OPTIONAL, mf_tensor_t, first),
    CYAML_FIELD_END};
static const cyaml_schema_value_t mf_tensor_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, mf_tensor_t, mf_tensor_fields)};
static const cyaml_schema_field_t mf_model_fields[] = {
    CYAML_FIELD_INT("n_layer", CYAML_FLAG_DEFAULT, mf_model_t, n_layer),
    CYAML_FIELD_INT("n_head", CYAML_FLAG_DEFAULT, mf_model_t, n_head),
    CYAML_FIELD_INT("n_embd", CYAML_FLAG_DEFAULT, mf_model_t, n_embd),
    CYAML_FIELD_INT("max_seq_len", CYAML_FLAG_DEFAULT, mf_model_t, max_seq_len),
    CYAML_FIELD_INT("vocab_size", CYAML_FLAG_DEFAULT, mf_model_t, vocab_size),
    CYAML_FIELD_INT("padded_vocab", CYAML_FLAG_DEFAULT, mf_model_t, padded_vocab),
    CYAML_FIELD_STRING_PTR("arch", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, mf_model_t, arch, 0,
                           CYAML_UNLIMITED),
    CYAML_FIELD_INT("n_kv_head", CYAML_FLAG_OPTIONAL, mf_model_t, n_kv_head),
    CYAML_FIELD_INT("ffn_dim", CYAML_FLAG_OPTIONAL, mf_model_t, ffn_dim),
    CYAML_FIELD_INT("tie_embeddings", CYAML_FLAG_OPTIONAL, mf_model_t, tie_embeddings),
    CYAML_FIELD_END};
static const cyaml_schema_field_t mf_layout_fields[] = {
    CYAML_FIELD_INT("dp", CYAML_FLAG_DEFAULT, mf_layout_t, dp),
    CYAML_FIELD_INT("tp", CYAML_FLAG_DEFAULT, mf_layout_t, tp),
    CYAML_FIELD_INT("zero", CYAML_FLAG_DEFAULT, mf_layout_t, zero),
    CYAML_FIELD_END};
static const cyaml_schema_field_t mf_fields[] = {
    CYAML_FIELD_STRING_PTR("format", CYAML_FLAG_POINTER, mf_t, format, 0, CYAML_UNLIMITED),
    CYAML_FIELD_INT("step", CYAML_FLAG_DEFAULT, mf_t, step),
    CYAML_FIELD_INT("samples", CYAML_FLAG_DEFAULT, mf_t, samples),
    CYAML_FIELD_UINT("sample_rng", CYAML_FLAG_DEFAULT, mf_t, sample_rng),
    CYAML_FIELD_MAPPING("model", CYAML_FLAG_DEFAULT, mf_t, model, mf_model_fields),
    CYAML_FIELD_MAPPING("layout", CYAML_FLAG_DEFAULT, mf_t, layout, mf_layout_fields),
    CYAML_FIELD_STRING_PTR("config", CYAML_FLAG_POINTER, mf_t, config, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("tensors", CYAML_FLAG_POINTER, mf_t, tensors, &mf_tensor_schema, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_END};
static const cyaml_schema_value_t mf_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, mf_t, mf_fields)};

static void mf_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    if (level < CYAML_LOG_ERROR) return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, args);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') buf[--n] = 0;
    CT_LOG_ERROR("manifest %s: %s", (const char *)ctx, buf);
}

/* Parses manifest text (len bytes; path names it in errors) into *mf_p,
 * to be freed with cyaml_free(cc, &mf_schema, ...). Checks the format and
 * that the layout and model dims are in range; the tensor table is checked
 * against the model where it is read. */
static CT_MUST_USE ct_status_t mf_parse(const char *text, size_t len, const char *path, mf_t **mf_p,
                                        cyaml_config_t *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->log_fn = mf_log;
    cc->log_ctx = (void *)path;
    cc->log_level = CYAML_LOG_ERROR;
    cc->mem_fn = cyaml_mem;
    cc->flags = CYAML_CFG_DEFAULT;
    mf_t *mf = NULL;
    cyaml_err_t err = cyaml_load_data((const uint8_t *)text, len, cc, &mf_schema,
                                      (cyaml_data_t **)&mf, NULL);
    if (err != CYAML_OK) {
        CT_LOG_ERROR("cannot parse checkpoint manifest %s: %s", path, cyaml_strerror(err));
        return CT_ERR_CORRUPT;
    }
    if (!mf) { /* libcyaml's answer to a file with no document: empty, comments, a lone BOM */
        CT_LOG_ERROR("checkpoint manifest %s holds no YAML document (empty or only comments)\n"
                     "---> HINT: the file is damaged; resume from an earlier checkpoint",
                     path);
        return CT_ERR_CORRUPT;
    }
    char shown[CT_LOG_CLIP_BUF];
    const mf_model_t *mm = &mf->model;
    const mf_layout_t *ml = &mf->layout;
    if (strcmp(mf->format, CKPT_FORMAT) != 0) {
        CT_LOG_ERROR("checkpoint manifest %s has format '%s', expected '%s'", path,
                     ct_log_clip(mf->format, shown), CKPT_FORMAT);
    } else if (ml->tp < 1 || ml->tp > CKPT_MAX_TP || ml->dp < 1 || ml->dp > CKPT_MAX_DP ||
               (ml->zero != 0 && ml->zero != 1) || mf->step < 0 || mf->samples < 0) {
        CT_LOG_ERROR("checkpoint manifest %s: layout dp=%d tp=%d zero=%d, step %lld, samples %lld: "
                     "out of range\n---> HINT: the file is damaged; resume from an earlier "
                     "checkpoint", path, ml->dp, ml->tp, ml->zero, (long long)mf->step,
                     (long long)mf->samples);
    } else if (mm->n_layer < 1 || mm->n_head < 1 || mm->n_embd < 1 || mm->max_seq_len < 1 ||
               mm->vocab_size < 1 || mm->padded_vocab < mm->vocab_size) {
        CT_LOG_ERROR("checkpoint manifest %s: model n_layer=%d n_head=%d n_embd=%d max_seq_len=%d "
                     "vocab_size=%d padded_vocab=%d: out of range", path, mm->n_layer, mm->n_head,
                     mm->n_embd, mm->max_seq_len, mm->vocab_size, mm->padded_vocab);
    } else if (mm->arch && strcmp(mm->arch, "gpt2") != 0 && strcmp(mm->arch, "llama") != 0) {
        CT_LOG_ERROR("checkpoint manifest %s: model arch '%s' is not one this ctrain knows "
                     "(gpt2, llama)", path, ct_log_clip(mm->arch, shown));
    } else if (mm->arch && !strcmp(mm->arch, "llama") &&
               (mm->n_kv_head < 1 || mm->ffn_dim < 1 || (mm->tie_embeddings & ~1))) {
        CT_LOG_ERROR("checkpoint manifest %s: llama model n_kv_head=%d ffn_dim=%d "
                     "tie_embeddings=%d: out of range", path, mm->n_kv_head, mm->ffn_dim,
                     mm->tie_embeddings);
    } else {
        *mf_p = mf;
        return CT_OK;
    }
    cyaml_free(cc, &mf_schema, mf, 0);
    return CT_ERR_CORRUPT;
}

static CT_MUST_USE ct_status_t mf_load(const char *dir, mf_t **mf_p, cyaml_config_t *cc, char *path,
                           size_t pathsz)
{
    snprintf(path, pathsz, "%s/manifest.yaml", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        CT_LOG_ERROR("checkpoint %s is not a directory: %s", dir,
                     errno ? strerror(errno) : "not a directory");
        return CT_ERR_NOT_FOUND;
    }
    if (stat(path, &st) != 0) {
        CT_LOG_ERROR("checkpoint %s has no manifest.yaml (an incomplete save?)\n---> HINT: use "
                     "an earlier checkpoint, or `resume: auto` to pick the newest complete one",
                     dir);
        return CT_ERR_NOT_FOUND;
    }
    char *text = NULL;
    size_t len = (size_t)st.st_size;
    ct_status_t rst = len > CKPT_MANIFEST_MAX_BYTES ? CT_OK : ct_fs_read_file(path, &text, &len);
    if (rst != CT_OK) {
        CT_LOG_ERROR("cannot read checkpoint manifest %s: %s", path,
                     rst == CT_ERR_NO_MEMORY ? "out of memory" : strerror(errno));
        return rst == CT_ERR_NO_MEMORY ? rst : CT_ERR_IO;
    }
    if (len > CKPT_MANIFEST_MAX_BYTES) { /* refused unread (or it grew while read) */
        CT_LOG_ERROR("checkpoint manifest %s has %zu bytes, more than a manifest may hold (%d "
                     "MiB)\n---> HINT: the file is damaged; resume from an earlier checkpoint",
                     path, len, CKPT_MANIFEST_MAX_BYTES >> 20);
        rst = CT_ERR_CORRUPT;
    } else {
        rst = mf_parse(text, len, path, mf_p, cc);
    }
    free(text);
    return rst;
}

/* ---- save ------------------------------------------------------------------ */
/* Writes n buffers to path and fsyncs it; crcs[i] (optional) gets each
 * buffer's crc32. */
static CT_MUST_USE ct_status_t write_all_sync(const char *path, const void *const *bufs, const size_t *lens,
                                  int n, int64_t *crcs)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    for (int i = 0; i < n; i++) {
        const char *p = bufs[i];
        size_t left = lens[i];
        if (crcs) crcs[i] = (int64_t)crc32_z(0L, (const Bytef *)p, left);
        while (left > 0) {
            ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                CT_LOG_ERROR("cannot write %s: %s\n---> HINT: is the disk full?", path,
                             w < 0 ? strerror(errno) : "short write");
                close(fd);
                return CT_ERR_IO;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        CT_LOG_ERROR("cannot sync %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    return CT_OK;
}

static void yaml_block(FILE *f, const char *text)
{
    fputs("  ", f);
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n' && p[1]) fputs("  ", f);
    }
    if (!*text || text[strlen(text) - 1] != '\n') fputc('\n', f);
}

/* What each rank reports to rank 0 for the manifest: crc32 of its 16
 * parameter tensors (if it wrote params) and of its m and v (if it wrote
 * optimizer state); -1 where it wrote nothing. */
#define CKPT_INFO_LEN (CT_MODEL_MAX_TENSORS + 2)

/* One rank's files: params of TP rank r when write_params, and its
 * optimizer piece (m, v of `count` floats) as optim_tp<r>[_z<z>].bin. */
static CT_MUST_USE ct_status_t ckpt_write_rank(const char *dir, int tp_rank, int z, const float *params,
                                   int n_tensors, const size_t *sizes, const size_t *offsets,
                                   int write_params, const float *m, const float *v, size_t count,
                                   int64_t *info)
{
    char path[4400];
    ct_status_t st = CT_OK;
    for (int i = 0; i < CKPT_INFO_LEN; i++) info[i] = -1;
    if (write_params) {
        const void *bufs[CT_MODEL_MAX_TENSORS];
        size_t lens[CT_MODEL_MAX_TENSORS];
        for (int i = 0; i < n_tensors; i++) {
            bufs[i] = params + offsets[i];
            lens[i] = sizes[i] * sizeof(float);
        }
        snprintf(path, sizeof path, "%s/params_tp%d.bin", dir, tp_rank);
        st = write_all_sync(path, bufs, lens, n_tensors, info);
    }
    if (st == CT_OK && m) {
        if (z >= 0) snprintf(path, sizeof path, "%s/optim_tp%d_z%d.bin", dir, tp_rank, z);
        else snprintf(path, sizeof path, "%s/optim_tp%d.bin", dir, tp_rank);
        const void *bufs[2] = {m, v};
        size_t lens[2] = {count * sizeof(float), count * sizeof(float)};
        st = write_all_sync(path, bufs, lens, 2, info + CT_MODEL_MAX_TENSORS);
    }
    return st;
}

typedef struct {
    int dp, tp, zero;
    size_t opt_count; /* floats per optimizer piece (ZeRO shard, or per TP rank) */
} ckpt_layout_t;

/* Rank 0's manifest: info[rank*CKPT_INFO_LEN...] for every world rank,
 * where rank = dp_rank*tp + tp_rank. `full` gives the model's shape and the
 * layout's padded vocabulary, which the manifest records: it depends on tp
 * (ct_model_padded_vocab), and the shards' sizes depend on it. */
static CT_MUST_USE ct_status_t ckpt_write_manifest(const char *dir, const ct_model_dims_t *full,
                                       const ct_model_config_t *mc, const ct_config_t *cfg,
                                       const ct_ckpt_state_t *state, const ckpt_layout_t *lay,
                                       const int64_t *info)
{
    char path[4400], tmp[4400];
    char *cfg_yaml = ct_config_to_yaml(cfg);
    if (!cfg_yaml) return CT_ERR_NO_MEMORY;
    snprintf(tmp, sizeof tmp, "%s/manifest.yaml.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", tmp, strerror(errno));
        free(cfg_yaml);
        return CT_ERR_IO;
    }
    fprintf(f, "format: %s\nstep: %lld\nsamples: %lld\nsample_rng: %llu\n", CKPT_FORMAT,
            (long long)state->step, (long long)state->samples,
            (unsigned long long)state->sample_rng);
    fprintf(f, "model:\n  n_layer: %d\n  n_head: %d\n  n_embd: %d\n  max_seq_len: %d\n"
               "  vocab_size: %d\n  padded_vocab: %d\n",
            full->L, full->NH, full->C, full->maxT, full->V, full->Vp);
    if (full->arch != CT_ARCH_GPT2)
        fprintf(f, "  arch: %s\n  n_kv_head: %d\n  ffn_dim: %d\n  tie_embeddings: %d\n",
                ct_model_arch_name(full->arch), full->NKV, full->F, full->tied);
    fprintf(f, "layout:\n  dp: %d\n  tp: %d\n  zero: %d\n", lay->dp, lay->tp, lay->zero);
    fprintf(f, "config: |\n");
    yaml_block(f, cfg_yaml);
    free(cfg_yaml);
    fprintf(f, "tensors:\n");
    for (int r = 0; r < lay->tp; r++) {
        ct_model_dims_t d;
        ct_model_dims_padded(mc, lay->tp, r, full->Vp, &d);
        size_t sizes[CT_MODEL_MAX_TENSORS], off = 0;
        ct_model_tensor_sizes(&d, sizes);
        const int64_t *pi = info + (size_t)r * CKPT_INFO_LEN; /* dp_rank 0 wrote params */
        for (int i = 0; i < ct_model_num_tensors(&d); i++) {
            fprintf(f, "  - {name: tp%d.%s, file: params_tp%d.bin, offset: %zu, bytes: %zu, "
                       "crc32: %lld}\n",
                    r, ct_model_tensor_name(&d, i), r, off, sizes[i] * sizeof(float),
                    (long long)pi[i]);
            off += sizes[i] * sizeof(float);
        }
        int pieces = lay->zero ? lay->dp : 1;
        for (int z = 0; z < pieces; z++) {
            const int64_t *oi = info + ((size_t)z * lay->tp + r) * CKPT_INFO_LEN;
            char file[64];
            if (lay->zero) snprintf(file, sizeof file, "optim_tp%d_z%d.bin", r, z);
            else snprintf(file, sizeof file, "optim_tp%d.bin", r);
            size_t bytes = lay->opt_count * sizeof(float);
            for (int k = 0; k < 2; k++)
                fprintf(f, "  - {name: tp%d.%s, file: %s, offset: %zu, bytes: %zu, crc32: %lld, "
                           "first: %zu}\n",
                        r, k ? "adam_v" : "adam_m", file, k ? bytes : (size_t)0, bytes,
                        (long long)oi[CT_MODEL_MAX_TENSORS + k], (size_t)z * lay->opt_count);
        }
    }
    int werr = ferror(f);
    if (fflush(f) != 0 || werr || fsync(fileno(f)) != 0) {
        CT_LOG_ERROR("cannot write %s: %s\n---> HINT: is the disk full?", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return CT_ERR_IO;
    }
    if (fclose(f) != 0) {
        CT_LOG_ERROR("cannot write %s: %s\n---> HINT: is the disk full?", tmp, strerror(errno));
        unlink(tmp);
        return CT_ERR_IO;
    }
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    if (rename(tmp, path) != 0) {
        CT_LOG_ERROR("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        return CT_ERR_IO;
    }
    /* the rename and the shards' names are durable only once the directory is */
    return ct_fs_sync_dir(dir);
}

/* Agrees on a status across the world: the worst one wins. */
static CT_MUST_USE ct_status_t ckpt_agree(const ct_comm_groups_t *g, ct_status_t st)
{
    ct_comm_set_activity("checkpoint: agreeing on the save status");
    return ct_comm_agree(g ? g->world : NULL, st);
}

ct_status_t ct_ckpt_save(const char *run_dir, const ct_model_t *m, const ct_optim_t *o,
                         const ct_config_t *cfg, const ct_ckpt_state_t *state,
                         const ct_comm_groups_t *g, char **dir_p)
{
    char dir[4096], path[4200];
    int rank = g ? g->rank : 0, world = g ? g->world_size : 1;
    int dp = g ? g->dp_size : 1, dp_rank = g ? g->dp_rank : 0;
    snprintf(dir, sizeof dir, "%s/ckpt/step_%08lld", run_dir, (long long)state->step);
    ct_status_t st = CT_OK;
    if (rank == 0) {
        st = ct_fs_mkdir_p(dir); /* logs the cause */
        /* an older manifest for this step must not vouch for files being rewritten */
        snprintf(path, sizeof path, "%s/manifest.yaml", dir);
        unlink(path);
    }
    if ((st = ckpt_agree(g, st)) != CT_OK) return st;

    int64_t info[CKPT_INFO_LEN];
    int zero = o->zero;
    st = ckpt_write_rank(dir, m->d.tp_rank, zero ? dp_rank : -1, m->params, m->n_tensors,
                         m->sizes, m->offsets, dp_rank == 0, (zero || dp_rank == 0) ? o->m : NULL,
                         o->v, o->count, info);
    int64_t *all = malloc((size_t)world * CKPT_INFO_LEN * sizeof *all);
    if (!all) st = CT_ERR_NO_MEMORY;
    if ((st = ckpt_agree(g, st)) != CT_OK) {
        free(all);
        return st;
    }
    /* every rank's files are on disk once this completes */
    if (world > 1) {
        ct_comm_set_activity("checkpoint: gathering checksums");
        st = ct_comm_allgather(g->world, info, all, CKPT_INFO_LEN, CT_DTYPE_I64, NULL);
    } else {
        memcpy(all, info, sizeof info);
    }
    if (st == CT_OK && rank == 0) {
        ckpt_layout_t lay = {.dp = dp, .tp = m->d.tp, .zero = zero, .opt_count = o->count};
        st = ckpt_write_manifest(dir, &m->d, &cfg->model, cfg, state, &lay, all);
    }
    free(all);
    if ((st = ckpt_agree(g, st)) != CT_OK) return st;
    if (dir_p) *dir_p = strdup(dir);
    return CT_OK;
}

/* ---- discovery ----------------------------------------------------------- */
/* A step directory is complete once its manifest exists (it is written
 * last, by rename). One without it is an interrupted save, or a leftover of
 * an interrupted prune by an older ctrain; the listing skips it, with a
 * warning once per directory per process. Prune first renames a directory
 * to step_N.deleting, a name no listing takes for a checkpoint, then
 * empties and removes it; leftovers of that are removed at the next prune.
 * Not thread-safe (the warned-about table); the trainer calls these from
 * its main thread. */
#define CKPT_DELETING ".deleting"

typedef struct {
    long long step;
    int complete;
} ckpt_entry_t;

/* FNV-1a of the paths already warned about (a few; no allocation to free). */
static uint64_t ckpt_warned[64];
static int ckpt_nwarned;

static void ckpt_warn_incomplete(const char *dir)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = dir; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    for (int i = 0; i < ckpt_nwarned; i++)
        if (ckpt_warned[i] == h) return;
    if (ckpt_nwarned < (int)(sizeof ckpt_warned / sizeof ckpt_warned[0]))
        ckpt_warned[ckpt_nwarned++] = h;
    CT_LOG_WARN_R0("checkpoint directory %s has no manifest.yaml: an interrupted save or prune; "
                   "it is skipped\n---> HINT: delete it; with checkpoint.keep_last set, the next "
                   "prune removes it once a newer checkpoint is complete", dir);
}

static int ckpt_entry_cmp(const void *a, const void *b)
{
    long long x = ((const ckpt_entry_t *)a)->step, y = ((const ckpt_entry_t *)b)->step;
    return (x > y) - (x < y);
}

/* Step directories under RUN_DIR/ckpt, sorted by step, complete or not;
 * returns the count (-1: out of memory), *e_p malloc'd. */
static int ckpt_scan(const char *run_dir, ckpt_entry_t **e_p)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    *e_p = NULL;
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int n = 0, cap = 0;
    ckpt_entry_t *e = NULL;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        long long s;
        char tail;
        if (sscanf(de->d_name, "step_%lld%c", &s, &tail) != 1) continue;
        char mpath[4400];
        snprintf(mpath, sizeof mpath, "%s/%s/manifest.yaml", dir, de->d_name);
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            ckpt_entry_t *ne = realloc(e, (size_t)cap * sizeof *ne);
            if (!ne) {
                free(e);
                closedir(dp);
                return -1;
            }
            e = ne;
        }
        e[n].step = s;
        e[n].complete = access(mpath, R_OK) == 0;
        n++;
    }
    closedir(dp);
    if (n > 1) qsort(e, (size_t)n, sizeof *e, ckpt_entry_cmp);
    *e_p = e;
    return n;
}

static void ckpt_step_dir(const char *run_dir, long long step, char *dir, size_t n)
{
    snprintf(dir, n, "%s/ckpt/step_%08lld", run_dir, step);
}

ct_status_t ct_ckpt_find_latest(const char *run_dir, char **dir_p)
{
    return ct_ckpt_find_before(run_dir, INT64_MAX, dir_p);
}

ct_status_t ct_ckpt_find_before(const char *run_dir, int64_t before, char **dir_p)
{
    ckpt_entry_t *e;
    int n = ckpt_scan(run_dir, &e);
    if (n < 0) return CT_ERR_NO_MEMORY;
    char dir[4200];
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (!e[i].complete) {
            ckpt_step_dir(run_dir, e[i].step, dir, sizeof dir);
            ckpt_warn_incomplete(dir);
        } else if (e[i].step < before) {
            found = i;
        }
    }
    if (found < 0) {
        free(e);
        return CT_ERR_NOT_FOUND;
    }
    ckpt_step_dir(run_dir, e[found].step, dir, sizeof dir);
    free(e);
    *dir_p = strdup(dir);
    return *dir_p ? CT_OK : CT_ERR_NO_MEMORY;
}

/* Empties directory `dir` (checkpoints hold only files) and removes it. */
static void ckpt_remove_dir(const char *dir)
{
    char path[4400];
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            CT_LOG_WARN("cannot remove %s: %s", path, strerror(errno));
    }
    if (dp) closedir(dp);
    if (rmdir(dir) != 0 && errno != ENOENT)
        CT_LOG_WARN("cannot remove old checkpoint directory %s: %s\n---> HINT: remove it by hand",
                    dir, strerror(errno));
}

/* Removes step directory `dir` so that no interruption leaves something a
 * listing could mistake for a checkpoint: renamed out of the step_N names
 * first (one atomic step), made durable, then emptied and removed. */
static void ckpt_delete_step(const char *ckpt_dir, const char *dir)
{
    char gone[4400];
    snprintf(gone, sizeof gone, "%s" CKPT_DELETING, dir);
    if (rename(dir, gone) != 0) {
        CT_LOG_WARN("cannot rename old checkpoint %s to %s: %s", dir, gone, strerror(errno));
        return;
    }
    if (ct_fs_sync_dir(ckpt_dir) != CT_OK) return; /* logged; the files stay */
    ckpt_remove_dir(gone);
}

void ct_ckpt_prune(const char *run_dir, int keep_last, int keep_every)
{
    if (keep_last <= 0) return;
    char ckpt_dir[4096], path[4400];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run_dir);
    /* leftovers of an interrupted prune: step_N.deleting */
    DIR *dp = opendir(ckpt_dir);
    struct dirent *de;
    while (dp && (de = readdir(dp)) != NULL) {
        long long s;
        int end = 0;
        if (sscanf(de->d_name, "step_%lld" CKPT_DELETING "%n", &s, &end) == 1 &&
            de->d_name[end] == 0 && end > 0) {
            snprintf(path, sizeof path, "%s/%s", ckpt_dir, de->d_name);
            ckpt_remove_dir(path);
        }
    }
    if (dp) closedir(dp);

    ckpt_entry_t *e;
    int n = ckpt_scan(run_dir, &e);
    int complete = 0, newest = -1;
    for (int i = 0; i < n; i++)
        if (e[i].complete) complete++, newest = i;
    /* complete ones: all but the newest keep_last and the keep_every
     * multiples; incomplete ones: those older than the newest complete
     * checkpoint (no save is writing them: saves are synchronous and this
     * runs after one), never a newer one */
    for (int i = 0, rank = 0; i < n; i++) {
        char dir[4200];
        ckpt_step_dir(run_dir, e[i].step, dir, sizeof dir);
        if (e[i].complete) {
            int old = rank++ + keep_last < complete;
            if (!old || (keep_every > 0 && e[i].step % keep_every == 0)) continue;
        } else if (i > newest) {
            continue;
        } else {
            CT_LOG_INFO("removing incomplete checkpoint directory %s (an interrupted save or "
                        "prune)", dir);
        }
        ckpt_delete_step(ckpt_dir, dir);
    }
    free(e);
}

/* ---- load ------------------------------------------------------------------- */
static int mf_model_matches(const mf_model_t *mm, const ct_model_dims_t *d);

/* Loads the config stored in mf into cfg and checks that it describes the
 * model the manifest records. */
static CT_MUST_USE ct_status_t mf_config(const mf_t *mf, const char *path, ct_config_t *cfg)
{
    ct_status_t st = ct_config_load_string(mf->config, path, cfg);
    if (st != CT_OK) return st;
    ct_model_dims_t fd;
    ct_model_dims(&cfg->model, 1, 0, &fd);
    if (!mf_model_matches(&mf->model, &fd)) {
        CT_LOG_ERROR("checkpoint manifest %s: its model and its stored config disagree", path);
        ct_config_free(cfg);
        return CT_ERR_CORRUPT;
    }
    return CT_OK;
}

ct_status_t ct__ckpt_parse_manifest(const char *text, size_t len, const char *origin,
                                    ct_config_t *cfg)
{
    cyaml_config_t cc;
    mf_t *mf;
    ct_status_t st = mf_parse(text, len, origin, &mf, &cc);
    if (st != CT_OK) return st;
    st = mf_config(mf, origin, cfg);
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}

ct_status_t ct_ckpt_read_config(const char *dir, ct_config_t *cfg)
{
    cyaml_config_t cc;
    char path[4200];
    mf_t *mf;
    ct_status_t st = mf_load(dir, &mf, &cc, path, sizeof path);
    if (st != CT_OK) return st;
    st = mf_config(mf, path, cfg);
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}

static const mf_tensor_t *mf_find(const mf_t *mf, const char *name, unsigned from)
{
    for (unsigned i = from; i < mf->tensors_count; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) return &mf->tensors[i];
    return NULL;
}

/* Streams entry t of dir through its crc32, copying entry bytes
 * [skip, skip + len) to dst. The whole entry is always checksummed. */
static CT_MUST_USE ct_status_t ckpt_read_entry(const char *dir, const mf_tensor_t *t, size_t skip, size_t len,
                                   void *dst)
{
    if (strchr(t->file, '/')) {
        CT_LOG_ERROR("checkpoint %s: tensor '%s' names file '%s' outside the directory", dir,
                     t->name, t->file);
        return CT_ERR_CORRUPT;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, t->file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        CT_LOG_ERROR("checkpoint file %s: %s", path, strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    const size_t CHUNK = 16u << 20;
    char *buf = (skip == 0 && len == t->bytes) ? NULL : malloc(CHUNK);
    uLong crc = crc32_z(0L, Z_NULL, 0);
    ct_status_t st = CT_OK;
    for (size_t pos = 0; pos < t->bytes && st == CT_OK;) {
        size_t n = t->bytes - pos < CHUNK ? t->bytes - pos : CHUNK;
        char *into = buf ? buf : (char *)dst + pos;
        size_t got = 0;
        while (got < n) {
            ssize_t r = pread(fd, into + got, n - got, (off_t)(t->offset + pos + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got != n) {
            CT_LOG_ERROR("checkpoint file %s is truncated: tensor '%s' wants bytes %llu..%llu",
                         path, t->name, (unsigned long long)t->offset,
                         (unsigned long long)(t->offset + t->bytes));
            st = CT_ERR_CORRUPT;
            break;
        }
        crc = crc32_z(crc, (const Bytef *)into, n);
        if (buf) { /* copy the overlap of [pos, pos+n) with [skip, skip+len) */
            size_t a = pos > skip ? pos : skip, b = pos + n < skip + len ? pos + n : skip + len;
            if (a < b) memcpy((char *)dst + (a - skip), buf + (a - pos), b - a);
        }
        pos += n;
    }
    free(buf);
    close(fd);
    if (st == CT_OK && (uint32_t)crc != t->crc32) {
        CT_LOG_ERROR("checkpoint file %s: checksum mismatch in tensor '%s' (crc32 %08lx, manifest "
                     "says %08x)\n---> HINT: the file is corrupt; resume from an earlier checkpoint",
                     path, t->name, (unsigned long)crc, t->crc32);
        st = CT_ERR_CORRUPT;
    }
    return st;
}

/* Parameters of TP rank r (dims d) into params (flat, d's offsets). */
static CT_MUST_USE ct_status_t ckpt_read_params(const char *dir, const mf_t *mf, const ct_model_dims_t *d,
                                    float *params)
{
    size_t sizes[CT_MODEL_MAX_TENSORS], off = 0;
    ct_model_tensor_sizes(d, sizes);
    for (int i = 0; i < ct_model_num_tensors(d); i++) {
        char name[64];
        snprintf(name, sizeof name, "tp%d.%s", d->tp_rank, ct_model_tensor_name(d, i));
        const mf_tensor_t *t = mf_find(mf, name, 0);
        size_t want = sizes[i] * sizeof(float);
        if (!t) {
            CT_LOG_ERROR("checkpoint %s: manifest has no tensor '%s'", dir, name);
            return CT_ERR_CORRUPT;
        }
        if (t->bytes != want) {
            CT_LOG_ERROR("checkpoint %s: tensor '%s' has %llu bytes, the model needs %zu", dir,
                         name, (unsigned long long)t->bytes, want);
            return CT_ERR_CORRUPT;
        }
        ct_status_t st = ckpt_read_entry(dir, t, 0, want, params + off);
        if (st != CT_OK) return st;
        off += sizes[i];
    }
    return CT_OK;
}

/* Flat elements [start, start+count) of TP rank r's AdamW m or v (which 0/1),
 * assembled from whichever pieces the saved layout has. Elements at or past
 * nparams (ZeRO padding) are zero. */
static CT_MUST_USE ct_status_t ckpt_read_optim(const char *dir, const mf_t *mf, int r, int which,
                                   size_t nparams, size_t start, size_t count, float *dst)
{
    char name[64];
    snprintf(name, sizeof name, "tp%d.%s", r, which ? "adam_v" : "adam_m");
    memset(dst, 0, count * sizeof(float));
    size_t end = start + count < nparams ? start + count : nparams, covered = 0;
    for (unsigned i = 0; i < mf->tensors_count; i++) {
        const mf_tensor_t *t = &mf->tensors[i];
        if (strcmp(t->name, name) != 0) continue;
        size_t n = t->bytes / sizeof(float), a = t->first > start ? t->first : start;
        size_t b = t->first + n < end ? t->first + n : end;
        if (a >= b) continue;
        ct_status_t st = ckpt_read_entry(dir, t, (a - t->first) * sizeof(float),
                                         (b - a) * sizeof(float), dst + (a - start));
        if (st != CT_OK) return st;
        covered += b - a;
    }
    if (start < end && covered != end - start) {
        CT_LOG_ERROR("checkpoint %s: the optimizer pieces '%s' cover %zu of the %zu elements this "
                     "rank needs", dir, name, covered, end - start);
        return CT_ERR_CORRUPT;
    }
    return CT_OK;
}

/* The model's shape; the padded vocabulary is the layout's, checked apart. */
static int mf_model_matches(const mf_model_t *mm, const ct_model_dims_t *d)
{
    const char *arch = mm->arch ? mm->arch : "gpt2";
    if (strcmp(arch, ct_model_arch_name(d->arch)) != 0) return 0;
    if (d->arch == CT_ARCH_LLAMA &&
        (mm->n_kv_head != d->NKV || mm->ffn_dim != d->F || mm->tie_embeddings != d->tied))
        return 0;
    return mm->n_layer == d->L && mm->n_head == d->NH && mm->n_embd == d->C &&
           mm->max_seq_len == d->maxT && mm->vocab_size == d->V;
}

/* "gpt2 n_layer=12 ..." or "llama n_layer=... n_kv_head=... ffn_dim=...
 * tie_embeddings=...", for messages. */
static const char *mf_describe(const char *arch, int L, int NH, int C, int maxT, int V, int NKV,
                               int F, int tied, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s n_layer=%d n_head=%d n_embd=%d max_seq_len=%d vocab_size=%d",
                     arch ? arch : "gpt2", L, NH, C, maxT, V);
    if (arch && strcmp(arch, "gpt2") != 0 && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " n_kv_head=%d ffn_dim=%d tie_embeddings=%d", NKV, F,
                 tied);
    return buf;
}

ct_status_t ct_ckpt_load(const char *dir, ct_model_t *m, ct_optim_t *o, ct_ckpt_state_t *state_p)
{
    cyaml_config_t cc;
    char path[4200];
    mf_t *mf;
    ct_status_t st = mf_load(dir, &mf, &cc, path, sizeof path);
    if (st != CT_OK) return st;
    const ct_model_dims_t *d = &m->d;
    const mf_model_t *mm = &mf->model;
    if (!mf_model_matches(mm, d)) {
        char have[256], want[256];
        CT_LOG_ERROR("checkpoint %s holds a model %s; the config asks for %s\n---> HINT: use "
                     "the checkpoint's model settings", dir,
                     mf_describe(mm->arch, mm->n_layer, mm->n_head, mm->n_embd, mm->max_seq_len,
                                 mm->vocab_size, mm->n_kv_head, mm->ffn_dim, mm->tie_embeddings,
                                 have, sizeof have),
                     mf_describe(ct_model_arch_name(d->arch), d->L, d->NH, d->C, d->maxT, d->V,
                                 d->NKV, d->F, d->tied, want, sizeof want));
        st = CT_ERR_CONFIG;
        goto out;
    }
    if (mf->layout.tp != d->tp) {
        CT_LOG_ERROR("checkpoint %s was saved with parallel.tp = %d, this run has tp = %d\n---> "
                     "HINT: convert it with `ctrain reshard --tp %d %s NEW_DIR`",
                     dir, mf->layout.tp, d->tp, d->tp, dir);
        st = CT_ERR_CONFIG;
        goto out;
    }
    if (mm->padded_vocab != d->Vp) {
        /* saved before the padding followed tp (it was 128 for every tp) */
        CT_LOG_ERROR("checkpoint %s pads the vocabulary to %d rows for tp = %d; this run pads it "
                     "to %d (a multiple of 128 * tp), so its shards split the rows "
                     "differently\n---> HINT: convert it with `ctrain reshard --tp %d %s NEW_DIR` "
                     "and resume from NEW_DIR",
                     dir, mm->padded_vocab, mf->layout.tp, d->Vp, d->tp, dir);
        st = CT_ERR_CONFIG;
        goto out;
    }
    st = ckpt_read_params(dir, mf, d, m->params);
    for (int k = 0; k < 2 && o && st == CT_OK; k++)
        st = ckpt_read_optim(dir, mf, d->tp_rank, k, m->num_params, o->start, o->count,
                             k ? o->v : o->m);
    if (st == CT_OK && state_p) {
        state_p->step = mf->step;
        state_p->samples = mf->samples;
        state_p->sample_rng = mf->sample_rng;
    }
out:
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}

/* ---- offline TP reshard --------------------------------------------------- */
/* The full (unsharded) tensors of the saved layout are gathered, then cut
 * for the new one. The two layouts may pad the vocabulary differently (the
 * padding follows tp, and older checkpoints padded to 128 for every tp):
 * the vocabulary tensor is then repadded, real rows only, on its way out. */
ct_status_t ct_ckpt_reshard(const char *src, const char *dst, int new_tp)
{
    cyaml_config_t cc;
    char path[4200];
    mf_t *mf;
    ct_status_t st = mf_load(src, &mf, &cc, path, sizeof path);
    if (st != CT_OK) return st;
    ct_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    float *full[3] = {NULL, NULL, NULL}, *shard[3] = {NULL, NULL, NULL}, *repad = NULL;
    int have_cfg = 0;
    if ((st = mf_config(mf, path, &cfg)) != CT_OK) goto out;
    have_cfg = 1;
    ct_model_dims_t fd, nd; /* full tensors as saved, and as the new layout pads them */
    ct_model_dims(&cfg.model, 1, 0, &fd);
    const int old_tp = mf->layout.tp, old_vp = mf->model.padded_vocab;
    if (!mf_model_matches(&mf->model, &fd)) {
        CT_LOG_ERROR("checkpoint %s: manifest model and stored config disagree", src);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    /* whatever rule wrote it: V <= Vp < V + 128 * tp, and whole rows per rank */
    if (old_tp < 1 || !ct_model_tp_divides(&cfg.model, old_tp) || old_vp < fd.V ||
        old_vp % old_tp != 0 || (int64_t)old_vp - fd.V >= 128 * (int64_t)old_tp) {
        CT_LOG_ERROR("checkpoint %s: layout tp = %d with padded_vocab = %d does not fit "
                     "vocab_size = %d and n_head = %d", src, old_tp, old_vp, fd.V, fd.NH);
        st = CT_ERR_CORRUPT;
        goto out;
    }
    if (new_tp < 1 || !ct_model_tp_divides(&cfg.model, new_tp)) {
        CT_LOG_ERROR("cannot reshard to tp = %d: n_head (%d)%s must be divisible by it", new_tp,
                     fd.NH, fd.arch == CT_ARCH_LLAMA ? " and the SwiGLU width" : "");
        st = CT_ERR_INVALID_ARG;
        goto out;
    }
    ct_model_dims_padded(&cfg.model, 1, 0, old_vp, &fd);
    ct_model_dims(&cfg.model, new_tp, 0, &nd);
    size_t total = 0, most = 0, fsz[CT_MODEL_MAX_TENSORS], foff[CT_MODEL_MAX_TENSORS];
    for (int i = 0; i < ct_model_num_tensors(&fd); i++) {
        fsz[i] = ct_model_full_size(&fd, i);
        foff[i] = total;
        total += fsz[i];
        size_t nsz = ct_model_full_size(&nd, i);
        if (nsz != fsz[i] && nsz > most) most = nsz;
    }
    size_t shard_max = total + most; /* a shard is never larger than its full layout */
    for (int k = 0; k < 3; k++) {
        full[k] = calloc(total, sizeof(float));
        shard[k] = malloc(shard_max * sizeof(float));
        if (!full[k] || !shard[k]) {
            st = CT_ERR_NO_MEMORY;
            goto out;
        }
    }
    if (most && !(repad = malloc(most * sizeof(float)))) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    /* gather: every old TP rank's shard into the full tensors */
    for (int r = 0; r < old_tp && st == CT_OK; r++) {
        ct_model_dims_t d;
        ct_model_dims_padded(&cfg.model, old_tp, r, old_vp, &d);
        size_t sz[CT_MODEL_MAX_TENSORS], n = 0;
        ct_model_tensor_sizes(&d, sz);
        for (int i = 0; i < ct_model_num_tensors(&d); i++) n += sz[i];
        st = ckpt_read_params(src, mf, &d, shard[0]);
        for (int k = 1; k < 3 && st == CT_OK; k++)
            st = ckpt_read_optim(src, mf, r, k - 1, n, 0, n, shard[k]);
        for (int k = 0; k < 3 && st == CT_OK; k++) {
            size_t off = 0;
            for (int i = 0; i < ct_model_num_tensors(&d); i++) {
                ct_model_shard_copy(&d, r, i, full[k] + foff[i], shard[k] + off, 0);
                off += sz[i];
            }
        }
    }
    if (st != CT_OK) goto out;
    /* scatter: the new layout, one params and one optimizer file per TP rank */
    if ((st = ct_fs_mkdir_p(dst)) != CT_OK) goto out;
    snprintf(path, sizeof path, "%s/manifest.yaml", dst);
    unlink(path);
    int64_t *info = calloc((size_t)new_tp * CKPT_INFO_LEN, sizeof *info);
    if (!info) {
        st = CT_ERR_NO_MEMORY;
        goto out;
    }
    size_t count = 0;
    for (int r = 0; r < new_tp && st == CT_OK; r++) {
        ct_model_dims_t d;
        ct_model_dims(&cfg.model, new_tp, r, &d);
        size_t sz[CT_MODEL_MAX_TENSORS], off[CT_MODEL_MAX_TENSORS], n = 0;
        ct_model_tensor_sizes(&d, sz);
        for (int i = 0; i < ct_model_num_tensors(&d); i++) {
            off[i] = n;
            n += sz[i];
        }
        CT_ASSERT(n <= shard_max);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < ct_model_num_tensors(&d); i++) {
                float *from = full[k] + foff[i];
                if (ct_model_full_size(&d, i) != fsz[i]) {
                    ct_model_full_repad(&fd, &d, i, from, repad);
                    from = repad;
                }
                ct_model_shard_copy(&d, r, i, from, shard[k] + off[i], 1);
            }
        count = n;
        st = ckpt_write_rank(dst, r, -1, shard[0], ct_model_num_tensors(&d), sz, off, 1, shard[1],
                             shard[2], n, info + (size_t)r * CKPT_INFO_LEN);
    }
    if (st == CT_OK) {
        cfg.parallel.tp = new_tp;
        ct_ckpt_state_t state = {mf->step, mf->samples, mf->sample_rng};
        ckpt_layout_t lay = {.dp = 1, .tp = new_tp, .zero = 0, .opt_count = count};
        st = ckpt_write_manifest(dst, &nd, &cfg.model, &cfg, &state, &lay, info);
    }
    free(info);
out:
    for (int k = 0; k < 3; k++) {
        free(full[k]);
        free(shard[k]);
    }
    free(repad);
    if (have_cfg) ct_config_free(&cfg);
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}
