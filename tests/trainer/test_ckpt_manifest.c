/* The checkpoint manifest (trainer/ckpt.c) on a tiny GPT-2, one process:
 * 1. save then load restores parameters, AdamW state and the data/RNG
 *    position bit for bit, and ct_ckpt_read_config returns the saved config;
 * 2. a torn manifest (cut at every line end and mid-line), an empty one,
 *    one of comments only and one of the bytes FE FF are rejected as
 *    CT_ERR_CORRUPT with the manifest's path (the last two once crashed on
 *    a NULL document);
 * 3. a foreign manifest (another format version, another program's YAML or
 *    JSON, other model dims or TP layout) and a damaged or truncated shard
 *    are rejected, naming the cause;
 * 4. hostile values (an overflowing config, an impossible layout, a config
 *    that disagrees with the manifest) are errors, on disk and in memory;
 * 5. ct_ckpt_find_latest skips step directories without a manifest (an
 *    incomplete save), warning once per directory, and reports
 *    CT_ERR_NOT_FOUND when there is none;
 * 6. ct_ckpt_prune keeps the newest keep_last and the keep_every multiples,
 *    removes incomplete step directories older than the newest complete
 *    checkpoint (an empty one and a half-deleted one, as an interrupted
 *    prune of older versions left them) and step_N.deleting leftovers of
 *    its own, and never touches an incomplete directory newer than the
 *    newest complete one. */
#include <stdarg.h>
#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/fs.h"
#include "test_util.h"
#include "trainer/ckpt_impl.h"
#include "trainer/trainer.h"

static const char *tmp;

static void tiny_config(ct_config_t *cfg)
{
    ct_config_defaults(cfg);
    cfg->model.n_layer = 2;
    cfg->model.n_head = 2;
    cfg->model.n_embd = 16;
    cfg->model.max_seq_len = 8;
    cfg->model.vocab_size = 37;
    cfg->model.init_std = 0.1f;
    cfg->model.device = CT_DEVICE_CPU;
    cfg->train.batch_size = 2;
    cfg->train.seq_len = 8;
    cfg->train.steps = 17;
}

/* A model with seeded weights and AdamW moments that differ from them. */
typedef struct {
    ct_model_t m;
    ct_optim_t o;
} net_t;

static int net_init(net_t *n, const ct_model_config_t *mc, uint64_t seed)
{
    if (ct_model_init(&n->m, mc, 2, 8, NULL) != CT_OK) return -1;
    if (ct_optim_init(&n->o, &n->m, 0, NULL, 1) != CT_OK) {
        ct_model_free(&n->m);
        return -1;
    }
    if (seed) {
        ct_model_init_weights(&n->m, seed, mc->init_std);
        for (size_t i = 0; i < n->o.count; i++) {
            n->o.m[i] = 1e-3f * (float)((i * 7 + seed) % 101) - 0.05f;
            n->o.v[i] = 1e-4f * (float)((i * 13 + seed) % 97);
        }
    }
    return 0;
}

static void net_free(net_t *n)
{
    ct_optim_free(&n->o);
    ct_model_free(&n->m);
}

static int net_equal(const net_t *a, const net_t *b)
{
    return a->m.num_params == b->m.num_params &&
           memcmp(a->m.params, b->m.params, a->m.num_params * sizeof(float)) == 0 &&
           memcmp(a->o.m, b->o.m, a->o.count * sizeof(float)) == 0 &&
           memcmp(a->o.v, b->o.v, a->o.count * sizeof(float)) == 0;
}

/* The file at path, NUL-terminated (core/fs.h's reader), or NULL. */
static char *read_file(const char *path, size_t *len_p)
{
    char *buf = NULL;
    return ct_fs_read_file(path, &buf, len_p) == CT_OK ? buf : NULL;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        exit(2);
    }
}

/* A fresh copy of checkpoint src at tmp/<name>; returns a static path. */
static const char *copy_ckpt(const char *src, const char *name)
{
    static char dst[4200];
    snprintf(dst, sizeof dst, "%s/%s", tmp, name);
    sh("rm -rf '%s' && mkdir -p '%s'", dst, dst);
    sh("cp '%s'/* '%s'/", src, dst);
    return dst;
}

/* Replaces the first `from` in text with `to`; a malloc'd string. */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at) {
        fprintf(stderr, "test bug: '%s' not in the manifest\n", from);
        exit(2);
    }
    size_t a = (size_t)(at - text), n = strlen(text) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)a, text, to, at + strlen(from));
    return out;
}

/* Loads dir into n with stderr captured. */
static ct_status_t load_quiet(const char *dir, net_t *n, ct_ckpt_state_t *state)
{
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_ckpt_load(dir, &n->m, &n->o, state));
    return st;
}

static char good[4200]; /* step 5 of run "run" */
static char *good_manifest;
static size_t good_len;

static void test_round_trip(const ct_config_t *cfg, const net_t *src)
{
    char run[4200];
    snprintf(run, sizeof run, "%s/run", tmp);
    ct_ckpt_state_t state = {.step = 5, .samples = 40, .sample_rng = 0x0123456789abcdefULL};
    char *dir = NULL;
    CHECK(ct_ckpt_save(run, &src->m, &src->o, cfg, &state, NULL, &dir) == CT_OK);
    if (!dir) exit(1);
    char want[4400];
    snprintf(want, sizeof want, "%s/ckpt/step_00000005", run);
    CHECK_MSG(strcmp(dir, want) == 0, "saved to %s, want %s", dir, want);
    snprintf(good, sizeof good, "%s", dir);
    free(dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.yaml", good);
    good_manifest = read_file(path, &good_len);
    CHECK(good_manifest && strstr(good_manifest, "format: ctrain-ckpt-2\n") == good_manifest);
    snprintf(path, sizeof path, "%s/manifest.yaml.tmp", good);
    CHECK(access(path, F_OK) != 0); /* renamed into place */

    net_t dst;
    CHECK(net_init(&dst, &cfg->model, 0) == 0);
    CHECK(!net_equal(src, &dst));
    ct_ckpt_state_t got = {0, 0, 0};
    CHECK(ct_ckpt_load(good, &dst.m, &dst.o, &got) == CT_OK);
    CHECK_MSG(net_equal(src, &dst), "parameters or AdamW state differ after load");
    CHECK(got.step == 5 && got.samples == 40 && got.sample_rng == 0x0123456789abcdefULL);
    /* parameters only (o = NULL), as sampling loads them */
    net_t p;
    CHECK(net_init(&p, &cfg->model, 0) == 0);
    CHECK(ct_ckpt_load(good, &p.m, NULL, NULL) == CT_OK);
    CHECK(memcmp(p.m.params, src->m.params, src->m.num_params * sizeof(float)) == 0);
    net_free(&p);
    net_free(&dst);

    ct_config_t back;
    CHECK(ct_ckpt_read_config(good, &back) == CT_OK);
    CHECK(back.model.n_layer == 2 && back.model.n_head == 2 && back.model.n_embd == 16 &&
          back.model.max_seq_len == 8 && back.model.vocab_size == 37);
    CHECK(back.train.steps == 17 && back.train.batch_size == 2);
    ct_config_free(&back);
}

/* A manifest cut at every line end and in the middle of every line. */
static void test_torn(const ct_config_t *cfg)
{
    net_t n;
    CHECK(net_init(&n, &cfg->model, 0) == 0);
    const char *dir = copy_ckpt(good, "torn");
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    int tried = 0, accepted = 0;
    size_t line_start = 0;
    for (size_t i = 0; i < good_len; i++) {
        if (good_manifest[i] != '\n') continue;
        size_t cuts[2] = {(line_start + i) / 2, i + 1};
        for (int k = 0; k < 2; k++) {
            if (cuts[k] + 1 >= good_len) continue; /* all of it, or all but the last newline */
            write_bytes(path, good_manifest, cuts[k]);
            ct_status_t st = load_quiet(dir, &n, NULL);
            tried++;
            if (st != CT_ERR_CORRUPT) {
                accepted++;
                fprintf(stderr, "FAIL: manifest cut to %zu of %zu bytes: %s\n", cuts[k], good_len,
                        ct_status_name(st));
            } else if (!strstr(ct_test_captured, dir)) {
                accepted++;
                fprintf(stderr, "FAIL: the error for a cut at %zu names no path\n", cuts[k]);
            }
        }
        line_start = i + 1;
    }
    CHECK_MSG(accepted == 0, "%d of %d torn manifests not rejected as CT_ERR_CORRUPT", accepted,
              tried);
    CHECK(tried > 40);
    net_free(&n);
}

/* Manifests with no document in them: empty, comments only, and the two
 * bytes of a UTF-16 byte-order mark. */
static void test_empty(const ct_config_t *cfg)
{
    static const struct {
        const char *name, *bytes;
        size_t len;
    } cases[] = {
#define CASE(name, lit) {name, lit, sizeof(lit) - 1}
        CASE("empty", ""),
        CASE("comments", "# a manifest\n# with nothing else\n"),
        CASE("bom16", "\xfe\xff"),
        CASE("blank", "\n\n   \n"),
#undef CASE
    };
    net_t n;
    CHECK(net_init(&n, &cfg->model, 0) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = copy_ckpt(good, cases[i].name);
        char path[4400];
        snprintf(path, sizeof path, "%s/manifest.yaml", dir);
        write_bytes(path, cases[i].bytes, cases[i].len);
        ct_status_t st = load_quiet(dir, &n, NULL);
        CHECK_MSG(st == CT_ERR_CORRUPT, "%s manifest: %s", cases[i].name, ct_status_name(st));
        CHECK_CAPTURED(path);
        ct_config_t c;
        CAPTURE_STDERR(st = ct_ckpt_read_config(dir, &c));
        CHECK_MSG(st == CT_ERR_CORRUPT, "read_config, %s manifest: %s", cases[i].name,
                  ct_status_name(st));
        if (st == CT_OK) ct_config_free(&c);
        snprintf(path, sizeof path, "%s/reshard_%s", tmp, cases[i].name);
        CAPTURE_STDERR(st = ct_ckpt_reshard(dir, path, 1));
        CHECK_MSG(st == CT_ERR_CORRUPT, "reshard, %s manifest: %s", cases[i].name,
                  ct_status_name(st));
    }
    net_free(&n);
}

/* Writes good's files with manifest text `mf` to tmp/name and loads it. */
static ct_status_t load_variant(const char *name, const char *mf, net_t *n)
{
    const char *dir = copy_ckpt(good, name);
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.yaml", dir);
    write_bytes(path, mf, strlen(mf));
    return load_quiet(dir, n, NULL);
}

static void test_foreign(const ct_config_t *cfg)
{
    net_t n;
    CHECK(net_init(&n, &cfg->model, 0) == 0);
    ct_status_t st;

    char *v1 = replace(good_manifest, "format: ctrain-ckpt-2", "format: ctrain-ckpt-1");
    st = load_variant("format1", v1, &n);
    CHECK_MSG(st == CT_ERR_CORRUPT, "older format: %s", ct_status_name(st));
    CHECK_CAPTURED("format 'ctrain-ckpt-1', expected 'ctrain-ckpt-2'");
    free(v1);

    st = load_variant("other_yaml", "name: something else\nversion: 3\nweights: [1, 2, 3]\n", &n);
    CHECK_MSG(st == CT_ERR_CORRUPT, "another program's YAML: %s", ct_status_name(st));
    CHECK_CAPTURED("other_yaml/manifest.yaml");

    st = load_variant("json", "{\"format\": \"safetensors\", \"step\": 5}\n", &n);
    CHECK_MSG(st == CT_ERR_CORRUPT, "JSON: %s", ct_status_name(st));

    st = load_variant("scalar", "just a string\n", &n);
    CHECK_MSG(st == CT_ERR_CORRUPT, "a scalar: %s", ct_status_name(st));

    /* the manifest says n_layer 3: not this model */
    char *l3 = replace(good_manifest, "n_layer: 2", "n_layer: 3");
    st = load_variant("layers", l3, &n);
    CHECK_MSG(st == CT_ERR_CONFIG, "n_layer 3 into a 2-layer model: %s", ct_status_name(st));
    CHECK_CAPTURED("n_layer=3");
    free(l3);

    char *tp2 = replace(good_manifest, "tp: 1", "tp: 2");
    st = load_variant("tp2", tp2, &n);
    CHECK_MSG(st == CT_ERR_CONFIG, "a tp=2 checkpoint into tp=1: %s", ct_status_name(st));
    CHECK_CAPTURED("parallel.tp = 2");
    free(tp2);

    /* a tensor naming a file outside its directory */
    char *out = replace(good_manifest, "file: params_tp0.bin", "file: ../run/params_tp0.bin");
    st = load_variant("escape", out, &n);
    CHECK_MSG(st == CT_ERR_CORRUPT, "file outside the directory: %s", ct_status_name(st));
    free(out);

    /* the good checkpoint into a model of other dims (n_embd 32) */
    ct_model_config_t wide = cfg->model;
    wide.n_embd = 32;
    net_t w;
    CHECK(net_init(&w, &wide, 0) == 0);
    st = load_quiet(good, &w, NULL);
    CHECK_MSG(st == CT_ERR_CONFIG, "n_embd 16 checkpoint into n_embd 32: %s", ct_status_name(st));
    CHECK_CAPTURED("n_embd=16");
    net_free(&w);

    /* shards: a flipped byte fails its checksum, a cut file is truncated */
    const char *dir = copy_ckpt(good, "flipped");
    char path[4400];
    snprintf(path, sizeof path, "%s/params_tp0.bin", dir);
    size_t len;
    char *bytes = read_file(path, &len);
    CHECK(bytes && len > 1000);
    if (bytes) {
        bytes[len / 2] ^= 0x10;
        write_bytes(path, bytes, len);
        st = load_quiet(dir, &n, NULL);
        CHECK_MSG(st == CT_ERR_CORRUPT, "flipped byte: %s", ct_status_name(st));
        CHECK_CAPTURED("checksum mismatch");
        free(bytes);
    }
    dir = copy_ckpt(good, "short");
    snprintf(path, sizeof path, "%s/optim_tp0.bin", dir);
    CHECK(truncate(path, 100) == 0);
    st = load_quiet(dir, &n, NULL);
    CHECK_MSG(st == CT_ERR_CORRUPT, "truncated optimizer file: %s", ct_status_name(st));
    CHECK_CAPTURED("is truncated");
    net_free(&n);
}

static void test_find_latest(const ct_config_t *cfg, const net_t *src)
{
    char run[4200], *dir = NULL;
    snprintf(run, sizeof run, "%s/latest", tmp);
    CHECK(ct_ckpt_find_latest(run, &dir) == CT_ERR_NOT_FOUND); /* no ckpt/ at all */
    CHECK(dir == NULL);
    ct_ckpt_state_t s3 = {.step = 3}, s12 = {.step = 12};
    CHECK(ct_ckpt_save(run, &src->m, &src->o, cfg, &s12, NULL, NULL) == CT_OK);
    CHECK(ct_ckpt_save(run, &src->m, &src->o, cfg, &s3, NULL, NULL) == CT_OK);
    /* an incomplete save after them: the files, no manifest (and one with
     * only the temporary manifest) */
    char inc[4400];
    snprintf(inc, sizeof inc, "%s/ckpt/step_00000020", run);
    sh("mkdir -p '%s' && cp '%s'/*.bin '%s'/", inc, good, inc);
    snprintf(inc, sizeof inc, "%s/ckpt/step_00000030", run);
    sh("mkdir -p '%s' && cp '%s'/manifest.yaml '%s'/manifest.yaml.tmp", inc, good, inc);
    /* names that are not step directories */
    snprintf(inc, sizeof inc, "%s/ckpt/step_00000040.old", run);
    sh("mkdir -p '%s' && cp '%s'/manifest.yaml '%s'/", inc, good, inc);
    char want[4400];
    snprintf(want, sizeof want, "%s/ckpt/step_00000012", run);
    CHECK(ct_ckpt_find_latest(run, &dir) == CT_OK);
    CHECK_MSG(dir && strcmp(dir, want) == 0, "latest is %s, want %s", dir ? dir : "(null)", want);
    free(dir);
    dir = NULL;
    snprintf(want, sizeof want, "%s/ckpt/step_00000003", run);
    CHECK(ct_ckpt_find_before(run, 12, &dir) == CT_OK);
    CHECK_MSG(dir && strcmp(dir, want) == 0, "before 12 is %s, want %s", dir ? dir : "(null)",
              want);
    free(dir);
    dir = NULL;
    CHECK(ct_ckpt_find_before(run, 3, &dir) == CT_ERR_NOT_FOUND);
    /* loading the incomplete one by path says what is wrong */
    net_t n;
    CHECK(net_init(&n, &cfg->model, 0) == 0);
    snprintf(inc, sizeof inc, "%s/ckpt/step_00000020", run);
    ct_status_t st = load_quiet(inc, &n, NULL);
    CHECK(st == CT_ERR_NOT_FOUND);
    CHECK_CAPTURED("has no manifest.yaml");
    net_free(&n);
}

/* Occurrences of s in the captured output. */
static int captured_count(const char *s)
{
    int n = 0;
    for (const char *p = ct_test_captured; (p = strstr(p, s)) != NULL; p += strlen(s)) n++;
    return n;
}

static int exists(const char *run, const char *name)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/ckpt/%s", run, name);
    return access(path, F_OK) == 0;
}

static void test_prune(const ct_config_t *cfg, const net_t *src)
{
    char run[4200], d[4400];
    snprintf(run, sizeof run, "%s/prune", tmp);
    for (int s = 10; s <= 40; s += 10) {
        ct_ckpt_state_t st = {.step = s};
        CHECK(ct_ckpt_save(run, &src->m, &src->o, cfg, &st, NULL, NULL) == CT_OK);
    }
    /* an empty step directory and a half-deleted one (files, no manifest),
     * older than the newest complete checkpoint; the leftover of an
     * interrupted prune of this version; an incomplete one newer than all */
    snprintf(d, sizeof d, "%s/ckpt/step_00000005", run);
    sh("mkdir -p '%s'", d);
    snprintf(d, sizeof d, "%s/ckpt/step_00000015", run);
    sh("mkdir -p '%s' && cp '%s'/params_tp0.bin '%s'/", d, good, d);
    snprintf(d, sizeof d, "%s/ckpt/step_00000025.deleting", run);
    sh("mkdir -p '%s' && cp '%s'/*.bin '%s'/", d, good, d);
    snprintf(d, sizeof d, "%s/ckpt/step_00000050", run);
    sh("mkdir -p '%s' && cp '%s'/*.bin '%s'/", d, good, d);

    /* the listing warns about each incomplete one, once, and names it */
    char *dir = NULL, *dir2 = NULL;
    ct_status_t s1 = CT_OK, s2 = CT_OK;
    CAPTURE_STDERR(s1 = ct_ckpt_find_latest(run, &dir); s2 = ct_ckpt_find_before(run, 30, &dir2));
    CHECK(s1 == CT_OK && s2 == CT_OK);
    snprintf(d, sizeof d, "%s/ckpt/step_00000040", run);
    CHECK_MSG(dir && strcmp(dir, d) == 0, "latest is %s, want %s", dir ? dir : "(null)", d);
    free(dir);
    free(dir2);
    const char *inc[] = {"step_00000005 has no manifest.yaml", "step_00000015 has no manifest.yaml",
                         "step_00000050 has no manifest.yaml"};
    for (int i = 0; i < 3; i++)
        CHECK_MSG(captured_count(inc[i]) == 1, "warned %d times: %s", captured_count(inc[i]),
                  inc[i]);
    CHECK_CAPTURED("\n---> HINT: delete it");
    CHECK(captured_count("has no manifest.yaml") == 3); /* not the .deleting one */

    CAPTURE_STDERR(ct_ckpt_prune(run, 2, 20));
    struct {
        const char *name;
        int kept;
    } want[] = {{"step_00000005", 0}, {"step_00000010", 0}, {"step_00000015", 0},
                {"step_00000020", 1}, /* keep_every */
                {"step_00000025.deleting", 0}, {"step_00000030", 1}, {"step_00000040", 1},
                {"step_00000050", 1}, /* newer than the newest complete: maybe being rewritten */
                {"step_00000005.deleting", 0}, {"step_00000010.deleting", 0},
                {"step_00000015.deleting", 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_MSG(exists(run, want[i].name) == want[i].kept, "after prune, %s %s", want[i].name,
                  want[i].kept ? "is gone" : "is still there");
    CHECK_CAPTURED("removing incomplete checkpoint directory");
    /* the complete ones kept still load */
    net_t n;
    CHECK(net_init(&n, &cfg->model, 0) == 0);
    snprintf(d, sizeof d, "%s/ckpt/step_00000020", run);
    CHECK(ct_ckpt_load(d, &n.m, &n.o, NULL) == CT_OK);
    net_free(&n);
}

/* Hostile values in a manifest: the fuzzer's SIGFPE config (batch_size *
 * seq_len * dp wrapped to 0) in the config block is a config error through
 * ct_ckpt_read_config, as `ctrain sample` reads it; an out-of-range layout
 * (tp: 0 made reshard write zeros) and a config that disagrees with the
 * manifest's model are corrupt; a long format string is clipped. The same
 * text in memory gives the same answers (ct__ckpt_parse_manifest, what the
 * fuzzing harness calls). */
static void test_hostile(void)
{
    struct {
        const char *name, *from, *to, *want;
        ct_status_t st;
        const char *from2, *to2;
    } cases[] = {
        {"fpe", "    batch_size: 2\n    seq_len: 8\n    batch_tokens: 0\n",
         "    batch_size: 1073741824\n    seq_len: 16\n    batch_tokens: 1\n",
         "train.batch_size: '1073741824' is out of range", CT_ERR_CONFIG,
         "  parallel:\n    dp: 1\n", "  parallel:\n    dp: 1073741824\n"},
        {"tp0", "tp: 1", "tp: 0", "layout dp=1 tp=0 zero=0", CT_ERR_CORRUPT, NULL, NULL},
        {"dp_neg", "dp: 1", "dp: -4", "layout dp=-4 tp=1", CT_ERR_CORRUPT, NULL, NULL},
        {"vocab", "vocab_size: 37", "vocab_size: -2147483648", "vocab_size=-2147483648",
         CT_ERR_CORRUPT, NULL, NULL},
        {"disagree", "    n_embd: 16", "    n_embd: 32", "its model and its stored config disagree",
         CT_ERR_CORRUPT, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *mf = replace(good_manifest, cases[i].from, cases[i].to);
        CHECK_MSG(strcmp(mf, good_manifest) != 0, "%s: no '%s' in the manifest", cases[i].name,
                  cases[i].from);
        if (cases[i].from2) {
            char *mf2 = replace(mf, cases[i].from2, cases[i].to2);
            CHECK_MSG(strcmp(mf, mf2) != 0, "%s: no '%s'", cases[i].name, cases[i].from2);
            free(mf);
            mf = mf2;
        }
        const char *dir = copy_ckpt(good, cases[i].name);
        char path[4400];
        snprintf(path, sizeof path, "%s/manifest.yaml", dir);
        write_bytes(path, mf, strlen(mf));
        ct_config_t c;
        ct_status_t st;
        CAPTURE_STDERR(st = ct_ckpt_read_config(dir, &c));
        CHECK_MSG(st == cases[i].st, "%s: %s", cases[i].name, ct_status_name(st));
        if (st == CT_OK) ct_config_free(&c);
        CHECK_CAPTURED(cases[i].want);
        CAPTURE_STDERR(st = ct__ckpt_parse_manifest(mf, strlen(mf), "mem", &c));
        CHECK_MSG(st == cases[i].st, "%s in memory: %s", cases[i].name, ct_status_name(st));
        if (st == CT_OK) ct_config_free(&c);
        CHECK_CAPTURED(cases[i].want);
        snprintf(path, sizeof path, "%s/reshard_%s", tmp, cases[i].name);
        CAPTURE_STDERR(st = ct_ckpt_reshard(dir, path, 1));
        CHECK_MSG(st == cases[i].st, "reshard %s: %s", cases[i].name, ct_status_name(st));
        free(mf);
    }
    char *longf = malloc(80001);
    CHECK(longf != NULL);
    if (!longf) return;
    memset(longf, 'f', 80000);
    longf[80000] = 0;
    char *fmt = replace(good_manifest, "ctrain-ckpt-2", longf);
    free(longf);
    ct_config_t c;
    ct_status_t st;
    CAPTURE_STDERR(st = ct__ckpt_parse_manifest(fmt, strlen(fmt), "mem", &c));
    CHECK(st == CT_ERR_CORRUPT);
    CHECK_CAPTURED("ffff... (80000 bytes)', expected 'ctrain-ckpt-2'");
    free(fmt);
    /* the good one parses in memory too */
    CAPTURE_STDERR(st = ct__ckpt_parse_manifest(good_manifest, strlen(good_manifest), "mem", &c));
    CHECK(st == CT_OK);
    if (st == CT_OK) ct_config_free(&c);
}

int main(void)
{
    ct_log_init();
    tmp = ct_test_dir("ckpt_manifest");
    ct_config_t cfg;
    tiny_config(&cfg);
    net_t src;
    if (net_init(&src, &cfg.model, 3) != 0) return 1;
    test_round_trip(&cfg, &src);
    if (!good_manifest) return ct_test_finish("test_ckpt_manifest");
    test_torn(&cfg);
    test_empty(&cfg);
    test_foreign(&cfg);
    test_hostile();
    test_find_latest(&cfg, &src);
    test_prune(&cfg, &src);
    free(good_manifest);
    net_free(&src);
    ct_config_free(&cfg);
    return ct_test_finish("test_ckpt_manifest");
}
