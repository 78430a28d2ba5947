/* Checkpoint save, load and discovery. The manifest is plain YAML written
 * with fprintf and read back with libcyaml. */
#include "trainer/ckpt.h"

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

#include "core/log.h"

#define CKPT_FORMAT "ctrain-ckpt-1"

/* ---- manifest schema (libcyaml) ------------------------------------------- */
typedef struct {
    char *name;
    char *file;
    uint64_t offset;
    uint64_t bytes;
    uint32_t crc32;
} mf_tensor_t;

typedef struct {
    int n_layer, n_head, n_embd, max_seq_len, vocab_size, padded_vocab;
} mf_model_t;

typedef struct {
    char *format;
    int64_t step;
    int64_t samples;
    uint64_t sample_rng;
    mf_model_t model;
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
    CYAML_FIELD_END};
static const cyaml_schema_field_t mf_fields[] = {
    CYAML_FIELD_STRING_PTR("format", CYAML_FLAG_POINTER, mf_t, format, 0, CYAML_UNLIMITED),
    CYAML_FIELD_INT("step", CYAML_FLAG_DEFAULT, mf_t, step),
    CYAML_FIELD_INT("samples", CYAML_FLAG_DEFAULT, mf_t, samples),
    CYAML_FIELD_UINT("sample_rng", CYAML_FLAG_DEFAULT, mf_t, sample_rng),
    CYAML_FIELD_MAPPING("model", CYAML_FLAG_DEFAULT, mf_t, model, mf_model_fields),
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

static ct_status_t mf_load(const char *dir, mf_t **mf_p, cyaml_config_t *cc, char *path,
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
    memset(cc, 0, sizeof *cc);
    cc->log_fn = mf_log;
    cc->log_ctx = path;
    cc->log_level = CYAML_LOG_ERROR;
    cc->mem_fn = cyaml_mem;
    cc->flags = CYAML_CFG_DEFAULT;
    mf_t *mf = NULL;
    cyaml_err_t err = cyaml_load_file(path, cc, &mf_schema, (cyaml_data_t **)&mf, NULL);
    if (err != CYAML_OK) {
        CT_LOG_ERROR("cannot parse checkpoint manifest %s: %s", path, cyaml_strerror(err));
        return CT_ERR_CORRUPT;
    }
    if (strcmp(mf->format, CKPT_FORMAT) != 0) {
        CT_LOG_ERROR("checkpoint manifest %s has format '%s', expected '%s'", path, mf->format,
                     CKPT_FORMAT);
        cyaml_free(cc, &mf_schema, mf, 0);
        return CT_ERR_CORRUPT;
    }
    *mf_p = mf;
    return CT_OK;
}

/* ---- save ------------------------------------------------------------------ */
static int ckpt_mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static ct_status_t write_all_sync(const char *path, const void *const *bufs, const size_t *lens,
                                  int n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        CT_LOG_ERROR("cannot create %s: %s", path, strerror(errno));
        return CT_ERR_IO;
    }
    for (int i = 0; i < n; i++) {
        const char *p = bufs[i];
        size_t left = lens[i];
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

ct_status_t ct_ckpt_save(const char *run_dir, const ct_gpt2_t *m, const ct_config_t *cfg,
                         const ct_ckpt_state_t *state, char **dir_p)
{
    char dir[4096], path[4200], tmp[4200];
    snprintf(dir, sizeof dir, "%s/ckpt/step_%08lld", run_dir, (long long)state->step);
    if (ckpt_mkdirs(dir) != 0) {
        CT_LOG_ERROR("cannot create checkpoint directory %s: %s", dir, strerror(errno));
        return CT_ERR_IO;
    }
    /* an older manifest for this step must not vouch for files being rewritten */
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    unlink(path);

    size_t bytes = m->num_params * sizeof(float);
    ct_status_t st;
    snprintf(path, sizeof path, "%s/params.bin", dir);
    const void *pb[1] = {m->params};
    size_t pl[1] = {bytes};
    if ((st = write_all_sync(path, pb, pl, 1)) != CT_OK) return st;
    snprintf(path, sizeof path, "%s/optim.bin", dir);
    const void *ob[2] = {m->m, m->v};
    size_t ol[2] = {bytes, bytes};
    if ((st = write_all_sync(path, ob, ol, 2)) != CT_OK) return st;

    char *cfg_yaml = ct_config_to_yaml(cfg);
    if (!cfg_yaml) return CT_ERR_NO_MEMORY;
    snprintf(tmp, sizeof tmp, "%s/manifest.yaml.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        CT_LOG_ERROR("cannot create %s: %s", tmp, strerror(errno));
        free(cfg_yaml);
        return CT_ERR_IO;
    }
    const ct_gpt2_dims_t *d = &m->d;
    fprintf(f, "format: %s\nstep: %lld\nsamples: %lld\nsample_rng: %llu\n", CKPT_FORMAT,
            (long long)state->step, (long long)state->samples,
            (unsigned long long)state->sample_rng);
    fprintf(f, "model:\n  n_layer: %d\n  n_head: %d\n  n_embd: %d\n  max_seq_len: %d\n"
               "  vocab_size: %d\n  padded_vocab: %d\n",
            d->L, d->NH, d->C, d->maxT, d->V, d->Vp);
    fprintf(f, "config: |\n");
    yaml_block(f, cfg_yaml);
    free(cfg_yaml);
    fprintf(f, "tensors:\n");
    const char *files[3] = {"params.bin", "optim.bin", "optim.bin"};
    const char *prefixes[3] = {"", "adam_m.", "adam_v."};
    const float *bases[3] = {m->params, m->m, m->v};
    for (int k = 0; k < 3; k++) {
        size_t base_off = k == 2 ? bytes : 0;
        for (int i = 0; i < CT_GPT2_NUM_TENSORS; i++) {
            const float *t = bases[k] + m->offsets[i];
            size_t tb = m->sizes[i] * sizeof(float);
            uLong crc = crc32_z(0L, (const Bytef *)t, tb);
            fprintf(f, "  - {name: %s%s, file: %s, offset: %zu, bytes: %zu, crc32: %lu}\n",
                    prefixes[k], ct_gpt2_tensor_names[i], files[k],
                    base_off + m->offsets[i] * sizeof(float), tb, (unsigned long)crc);
        }
    }
    int werr = ferror(f);
    if (fflush(f) != 0 || werr || fsync(fileno(f)) != 0) {
        CT_LOG_ERROR("cannot write %s: %s\n---> HINT: is the disk full?", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return CT_ERR_IO;
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    if (rename(tmp, path) != 0) {
        CT_LOG_ERROR("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        return CT_ERR_IO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (dir_p) *dir_p = strdup(dir);
    return CT_OK;
}

/* ---- discovery ----------------------------------------------------------- */
/* Steps of complete checkpoints, sorted ascending; returns count, *steps_p malloc'd. */
static int ckpt_list(const char *run_dir, long long **steps_p)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    *steps_p = NULL;
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int n = 0, cap = 0;
    long long *steps = NULL;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        long long s;
        char tail;
        if (sscanf(e->d_name, "step_%lld%c", &s, &tail) != 1) continue;
        char mpath[4400];
        snprintf(mpath, sizeof mpath, "%s/%s/manifest.yaml", dir, e->d_name);
        if (access(mpath, R_OK) != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long long *ns = realloc(steps, (size_t)cap * sizeof *ns);
            if (!ns) break;
            steps = ns;
        }
        steps[n++] = s;
    }
    closedir(dp);
    for (int i = 1; i < n; i++) /* insertion sort: few entries */
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            long long t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    *steps_p = steps;
    return n;
}

ct_status_t ct_ckpt_find_latest(const char *run_dir, char **dir_p)
{
    long long *steps;
    int n = ckpt_list(run_dir, &steps);
    if (n == 0) {
        free(steps);
        return CT_ERR_NOT_FOUND;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt/step_%08lld", run_dir, steps[n - 1]);
    free(steps);
    *dir_p = strdup(dir);
    return *dir_p ? CT_OK : CT_ERR_NO_MEMORY;
}

void ct_ckpt_prune(const char *run_dir, int keep_last)
{
    if (keep_last <= 0) return;
    long long *steps;
    int n = ckpt_list(run_dir, &steps);
    for (int i = 0; i + keep_last < n; i++) {
        char dir[4200], path[4400];
        snprintf(dir, sizeof dir, "%s/ckpt/step_%08lld", run_dir, steps[i]);
        /* manifest first: from then on the directory is merely incomplete */
        const char *files[] = {"manifest.yaml", "params.bin", "optim.bin"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[k]);
            unlink(path);
        }
        if (rmdir(dir) != 0) CT_LOG_WARN("cannot remove old checkpoint %s: %s", dir, strerror(errno));
    }
    free(steps);
}

/* ---- load ------------------------------------------------------------------- */
ct_status_t ct_ckpt_read_config(const char *dir, ct_config_t *cfg)
{
    cyaml_config_t cc;
    char path[4200];
    mf_t *mf;
    ct_status_t st = mf_load(dir, &mf, &cc, path, sizeof path);
    if (st != CT_OK) return st;
    st = ct_config_load_string(mf->config, path, cfg);
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}

static ct_status_t ckpt_read_tensor(const char *dir, const mf_t *mf, const char *name, float *dst,
                                    size_t want_bytes)
{
    const mf_tensor_t *t = NULL;
    for (unsigned i = 0; i < mf->tensors_count; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) t = &mf->tensors[i];
    if (!t) {
        CT_LOG_ERROR("checkpoint %s: manifest has no tensor '%s'", dir, name);
        return CT_ERR_CORRUPT;
    }
    if (t->bytes != want_bytes) {
        CT_LOG_ERROR("checkpoint %s: tensor '%s' has %llu bytes, the model needs %zu", dir, name,
                     (unsigned long long)t->bytes, want_bytes);
        return CT_ERR_CORRUPT;
    }
    if (strchr(t->file, '/')) {
        CT_LOG_ERROR("checkpoint %s: tensor '%s' names file '%s' outside the directory", dir,
                     name, t->file);
        return CT_ERR_CORRUPT;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, t->file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        CT_LOG_ERROR("checkpoint file %s: %s", path, strerror(errno));
        return CT_ERR_NOT_FOUND;
    }
    size_t got = 0;
    while (got < want_bytes) {
        ssize_t r = pread(fd, (char *)dst + got, want_bytes - got, (off_t)(t->offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != want_bytes) {
        CT_LOG_ERROR("checkpoint file %s is truncated: tensor '%s' wants bytes %llu..%llu",
                     path, name, (unsigned long long)t->offset,
                     (unsigned long long)(t->offset + want_bytes));
        return CT_ERR_CORRUPT;
    }
    uLong crc = crc32_z(0L, (const Bytef *)dst, want_bytes);
    if ((uint32_t)crc != t->crc32) {
        CT_LOG_ERROR("checkpoint file %s: checksum mismatch in tensor '%s' (crc32 %08lx, manifest "
                     "says %08x)\n---> HINT: the file is corrupt; resume from an earlier checkpoint",
                     path, name, (unsigned long)crc, t->crc32);
        return CT_ERR_CORRUPT;
    }
    return CT_OK;
}

ct_status_t ct_ckpt_load(const char *dir, ct_gpt2_t *m, int with_optim, ct_ckpt_state_t *state_p)
{
    cyaml_config_t cc;
    char path[4200];
    mf_t *mf;
    ct_status_t st = mf_load(dir, &mf, &cc, path, sizeof path);
    if (st != CT_OK) return st;
    const ct_gpt2_dims_t *d = &m->d;
    const mf_model_t *mm = &mf->model;
    if (mm->n_layer != d->L || mm->n_head != d->NH || mm->n_embd != d->C ||
        mm->max_seq_len != d->maxT || mm->vocab_size != d->V || mm->padded_vocab != d->Vp) {
        CT_LOG_ERROR("checkpoint %s holds a model with n_layer=%d n_head=%d n_embd=%d "
                     "max_seq_len=%d vocab_size=%d, the config asks for %d/%d/%d/%d/%d\n---> "
                     "HINT: use the checkpoint's model settings",
                     dir, mm->n_layer, mm->n_head, mm->n_embd, mm->max_seq_len, mm->vocab_size,
                     d->L, d->NH, d->C, d->maxT, d->V);
        st = CT_ERR_CONFIG;
        goto out;
    }
    const char *prefixes[3] = {"", "adam_m.", "adam_v."};
    float *bases[3] = {m->params, m->m, m->v};
    for (int k = 0; k < (with_optim ? 3 : 1) && st == CT_OK; k++) {
        for (int i = 0; i < CT_GPT2_NUM_TENSORS && st == CT_OK; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", prefixes[k], ct_gpt2_tensor_names[i]);
            st = ckpt_read_tensor(dir, mf, name, bases[k] + m->offsets[i],
                                  m->sizes[i] * sizeof(float));
        }
    }
    if (st == CT_OK && state_p) {
        state_p->step = mf->step;
        state_p->samples = mf->samples;
        state_p->sample_rng = mf->sample_rng;
    }
out:
    cyaml_free(&cc, &mf_schema, mf, 0);
    return st;
}
