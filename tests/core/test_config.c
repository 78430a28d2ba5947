/* Tests for core/config: defaults, loading, --set overrides, strict scalar
 * parsing, structural errors with key and line, cross-field checks, the YAML
 * round trip and the shipped configs/. Error messages are checked for the
 * key and the line they must name. */
#include "core/config.h"

#include <inttypes.h>
#include <string.h>

#include "core/log.h"
#include "test_util.h"

static const char *tmp_dir;
static char yaml_path[4200];

static const char *write_yaml(const char *name, const char *text)
{
    snprintf(yaml_path, sizeof yaml_path, "%s/%s", tmp_dir, name);
    FILE *fp = fopen(yaml_path, "w");
    if (!fp) {
        fprintf(stderr, "cannot write %s\n", yaml_path);
        exit(2);
    }
    fputs(text, fp);
    fclose(fp);
    return yaml_path;
}

/* Writes `text` to x.yaml and loads it with stderr captured. */
static ct_status_t load_yaml(const char *text, ct_config_t *cfg)
{
    const char *path = write_yaml("x.yaml", text);
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_load(path, NULL, 0, cfg));
    return st;
}

static int all_strings_null(const ct_config_t *c)
{
    return !c->model.init_from && !c->data.train && !c->data.val && !c->train.run_dir &&
           !c->eval.prompt && !c->eval.tokenizer && !c->checkpoint.resume;
}

/* Field-by-field equality, every member of every section. */
static int config_equal(const ct_config_t *a, const ct_config_t *b)
{
#define EQ(x) (a->x == b->x)
#define SEQ(x) (a->x && b->x && strcmp(a->x, b->x) == 0)
    return EQ(model.n_layer) && EQ(model.n_head) && EQ(model.n_embd) && EQ(model.max_seq_len) &&
           EQ(model.vocab_size) && SEQ(model.init_from) && EQ(model.init_std) &&
           SEQ(data.train) && SEQ(data.val) && EQ(data.seed) && EQ(data.chunk_tokens) &&
           EQ(data.window_chunks) && EQ(data.prefetch_mib) && EQ(data.max_retries) &&
           SEQ(data.cache_dir) && EQ(data.cache_mib) && EQ(optim.lr) && EQ(optim.min_lr_frac) &&
           EQ(optim.warmup_steps) && EQ(optim.decay) && EQ(optim.weight_decay) &&
           EQ(optim.beta1) && EQ(optim.beta2) && EQ(optim.eps) && EQ(optim.grad_clip) &&
           SEQ(train.run_dir) && EQ(train.steps) && EQ(train.batch_size) && EQ(train.seq_len) &&
           EQ(train.batch_tokens) && EQ(train.seed) && EQ(train.log_every) &&
           EQ(train.threads) && EQ(train.max_skips) && EQ(train.spike_z) && EQ(eval.every) && EQ(eval.tokens) && EQ(eval.sample_every) &&
           EQ(eval.sample_tokens) && EQ(eval.temperature) && EQ(eval.top_k) &&
           EQ(eval.sample_seed) && SEQ(eval.prompt) && SEQ(eval.tokenizer) &&
           EQ(checkpoint.every) && SEQ(checkpoint.resume) && EQ(checkpoint.keep_last) && EQ(checkpoint.keep_every) &&
           EQ(optim.zero) && EQ(parallel.dp) && EQ(parallel.tp) && EQ(comm.timeout_s) &&
           EQ(comm.bucket_mib) && EQ(model.arch) && EQ(model.n_kv_head) &&
           EQ(model.ffn_dim) && EQ(model.ffn_multiple_of) && EQ(model.ffn_multiplier) &&
           EQ(model.rope_theta) && EQ(model.rope_scaling) && EQ(model.rope_factor) &&
           EQ(model.rope_low_freq_factor) && EQ(model.rope_high_freq_factor) &&
           EQ(model.rope_original_max_seq_len) && EQ(model.norm_eps) &&
           EQ(model.tie_embeddings);
#undef EQ
#undef SEQ
}

static void test_defaults(void)
{
    ct_config_t c;
    ct_config_defaults(&c);
    CHECK(c.model.n_layer == 12 && c.model.n_head == 12 && c.model.n_embd == 768);
    CHECK(c.model.max_seq_len == 1024 && c.model.vocab_size == 50257);
    CHECK(strcmp(c.model.init_from, "") == 0 && c.model.init_std == 0.02f);
    CHECK(strcmp(c.data.train, "") == 0 && strcmp(c.data.val, "") == 0);
    CHECK(c.data.seed == 1337 && c.data.chunk_tokens == 1048576 && c.data.window_chunks == 8);
    CHECK(c.optim.lr == 6e-4f && c.optim.min_lr_frac == 0.1f && c.optim.warmup_steps == 100);
    CHECK(c.optim.decay == CT_DECAY_COSINE && c.optim.weight_decay == 0.1f);
    CHECK(c.optim.beta1 == 0.9f && c.optim.beta2 == 0.95f && c.optim.eps == 1e-8f);
    CHECK(c.optim.grad_clip == 1.0f);
    CHECK(strcmp(c.train.run_dir, "runs/default") == 0 && c.train.steps == 1000);
    CHECK(c.train.batch_size == 4 && c.train.seq_len == 64 && c.train.batch_tokens == 0);
    CHECK(c.train.seed == 1337 && c.train.log_every == 1 && c.train.threads == 0);
    CHECK(c.eval.every == 100 && c.eval.tokens == 0 && c.eval.sample_every == 0);
    CHECK(c.eval.sample_tokens == 64 && c.eval.temperature == 1.0f && c.eval.top_k == 40);
    CHECK(c.eval.sample_seed == 42 && strcmp(c.eval.prompt, "") == 0);
    CHECK(strcmp(c.eval.tokenizer, "") == 0);
    CHECK(c.checkpoint.every == 0 && strcmp(c.checkpoint.resume, "none") == 0);
    CHECK(c.checkpoint.keep_last == 0);
    ct_config_free(&c);
    CHECK(all_strings_null(&c));

    /* Loading no file gives the defaults, and they pass validation. */
    ct_config_t d, e;
    ct_config_defaults(&d);
    CHECK(ct_config_load(NULL, NULL, 0, &e) == CT_OK);
    CHECK(config_equal(&d, &e));
    ct_config_free(&d);
    ct_config_free(&e);
}

static void test_good_file(void)
{
    ct_config_t c;
    const char *text = "# a comment\n"
                       "model:\n"
                       "  n_layer: 4      # layers\n"
                       "  n_head: 4\n"
                       "  n_embd: 128\n"
                       "  init_from: \"gpt2_124M.bin\"\n"
                       "  init_std: 0.01\n"
                       "optim:\n"
                       "  lr: 1e-3\n"
                       "  decay: linear\n"
                       "  beta2: 0.99\n"
                       "train:\n"
                       "  run_dir: runs/x y\n"
                       "  batch_tokens: 512\n"
                       "  seed: 9223372036854775807\n"
                       "  threads: 0\n"
                       "eval: {top_k: 0, prompt: 'And God said'}\n"
                       "checkpoint: {}\n";
    CHECK(load_yaml(text, &c) == CT_OK);
    CHECK(c.model.n_layer == 4 && c.model.n_head == 4 && c.model.n_embd == 128);
    CHECK(c.model.vocab_size == 50257); /* untouched keys keep their defaults */
    CHECK(c.model.init_from && strcmp(c.model.init_from, "gpt2_124M.bin") == 0);
    CHECK(c.model.init_std == 0.01f);
    CHECK(c.optim.lr == 1e-3f && c.optim.decay == CT_DECAY_LINEAR && c.optim.beta2 == 0.99f);
    CHECK(c.optim.beta1 == 0.9f);
    CHECK(c.train.run_dir && strcmp(c.train.run_dir, "runs/x y") == 0);
    CHECK(c.train.batch_tokens == 512 && c.train.seed == INT64_MAX && c.train.threads == 0);
    CHECK(c.eval.top_k == 0 && c.eval.prompt && strcmp(c.eval.prompt, "And God said") == 0);
    CHECK(c.checkpoint.resume && strcmp(c.checkpoint.resume, "none") == 0);
    ct_config_free(&c);

    /* An empty file and a file of comments give the defaults. */
    ct_config_t d;
    ct_config_defaults(&d);
    CHECK(load_yaml("", &c) == CT_OK);
    CHECK(config_equal(&c, &d));
    ct_config_free(&c);
    CHECK(load_yaml("# nothing here\n---\n", &c) == CT_OK);
    CHECK(config_equal(&c, &d));
    ct_config_free(&c);
    CHECK(load_yaml("{}\n", &c) == CT_OK);
    CHECK(config_equal(&c, &d));
    ct_config_free(&c);

    /* Strings are literal: YAML's null spellings are not special. */
    CHECK(load_yaml("model:\n  init_from: ~\ndata:\n  train: null\n  val:\n", &c) == CT_OK);
    CHECK(strcmp(c.model.init_from, "~") == 0 && strcmp(c.data.train, "null") == 0);
    CHECK(strcmp(c.data.val, "") == 0);
    ct_config_free(&c);
    ct_config_free(&d);
}

static void test_set(void)
{
    ct_config_t c;
    const char *path = write_yaml("s.yaml", "model:\n  n_layer: 4\n  n_head: 4\n  n_embd: 128\n");
    const char *sets[] = {"model.n_layer=6", "optim.decay=constant", "data.train=a,b.bin",
                          "eval.prompt=", "optim.lr=3e-4", "train.seed=0"};
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_load(path, sets, 6, &c));
    CHECK(st == CT_OK);
    CHECK(c.model.n_layer == 6 && c.model.n_head == 4);
    CHECK(c.optim.decay == CT_DECAY_CONSTANT && c.optim.lr == 3e-4f && c.train.seed == 0);
    CHECK(c.data.train && strcmp(c.data.train, "a,b.bin") == 0);
    CHECK(c.eval.prompt && strcmp(c.eval.prompt, "") == 0);

    /* ct_config_set directly: a bad value leaves the old one in place. */
    CHECK(ct_config_set(&c, "train.run_dir=runs/other", "test") == CT_OK);
    CHECK(strcmp(c.train.run_dir, "runs/other") == 0);
    CAPTURE_STDERR(st = ct_config_set(&c, "model.n_layer=1x", "--set model.n_layer=1x"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK(c.model.n_layer == 6);
    CHECK_CAPTURED("--set model.n_layer=1x");
    CHECK_CAPTURED("model.n_layer: '1x' is not an integer");
    CHECK_CAPTURED("expected a decimal integer in [1, 1024]");
    CAPTURE_STDERR(st = ct_config_set(&c, "model.n_layr=3", "cli"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("unknown key 'model.n_layr'");
    CHECK_CAPTURED("valid keys in model: n_layer, n_head, n_embd, max_seq_len, vocab_size");
    CAPTURE_STDERR(st = ct_config_set(&c, "modl.n_layer=3", "cli"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("unknown section 'modl'");
    CHECK_CAPTURED("valid sections: model, data, optim, train, eval, checkpoint");
    CAPTURE_STDERR(st = ct_config_set(&c, "model.n_layer", "cli"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("section.key=value");
    CAPTURE_STDERR(st = ct_config_set(&c, "checkpoint.resume=", "cli"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("checkpoint.resume");
    CHECK(strcmp(c.checkpoint.resume, "none") == 0);
    ct_config_free(&c);

    /* A bad --set through ct_config_load names the argument and frees cfg. */
    const char *bad[] = {"model.n_layer=8", "train.steps=1e3"};
    CAPTURE_STDERR(st = ct_config_load(path, bad, 2, &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("--set train.steps=1e3");
    CHECK_CAPTURED("train.steps: '1e3' is not an integer");
    CHECK(all_strings_null(&c));
}

/* Loads "model:\n  n_layer: <v>\n" and expects rejection naming line 2. */
static void expect_bad_int(const char *v, const char *reason)
{
    char text[256], want[256];
    ct_config_t c;
    snprintf(text, sizeof text, "model:\n  n_layer: %s\n", v);
    ct_status_t st = load_yaml(text, &c);
    CHECK_MSG(st == CT_ERR_CONFIG, "n_layer '%s' accepted", v);
    snprintf(want, sizeof want, "x.yaml:2: model.n_layer: '%s' %s", v, reason);
    CHECK_CAPTURED(want);
    CHECK(all_strings_null(&c));
}

static void test_strict_numbers(void)
{
    const char *not_int = "is not an integer (expected a decimal integer in [1, 1024])";
    expect_bad_int("1.5", not_int);
    expect_bad_int("1x", not_int);
    expect_bad_int("1e3", not_int);
    expect_bad_int("0x10", not_int);
    expect_bad_int("+12", not_int);
    expect_bad_int("12.0", not_int);
    expect_bad_int("true", not_int);
    expect_bad_int("", not_int);
    expect_bad_int("010", "is not a decimal integer: no leading zeros");
    expect_bad_int("-0", "is not a decimal integer: no leading zeros");
    expect_bad_int("0", "is out of range (expected a decimal integer in [1, 1024])");
    expect_bad_int("1025", "is out of range (expected a decimal integer in [1, 1024])");
    expect_bad_int("-3", "is out of range");
    expect_bad_int("2147483648", "is out of range");
    expect_bad_int("99999999999999999999999", "is out of range");

    ct_config_t c;
    CHECK(load_yaml("model:\n  n_layer: \"12\"\n", &c) == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: model.n_layer: '12' is a quoted string; "
                   "write numbers without quotes");

    CHECK(load_yaml("model:\n  n_layer: 1024\ntrain:\n  threads: 0\n", &c) == CT_OK);
    CHECK(c.model.n_layer == 1024 && c.train.threads == 0);
    ct_config_free(&c);

    /* 64-bit fields take the whole int64 range above their minimum. */
    CHECK(load_yaml("data:\n  seed: 9223372036854775808\n", &c) == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: data.seed: '9223372036854775808' is out of range");

    /* Floats: decimal notation only, finite as a float. */
    const char *bad_lr[] = {"inf", "nan", "0x1p-3", "1e39", "1e-3x", "'1e-3'", "abc", "-1e-3"};
    for (int i = 0; i < (int)(sizeof bad_lr / sizeof bad_lr[0]); i++) {
        char text[128];
        snprintf(text, sizeof text, "optim:\n  weight_decay: 0\n  lr: %s\n", bad_lr[i]);
        CHECK_MSG(load_yaml(text, &c) == CT_ERR_CONFIG, "lr '%s' accepted", bad_lr[i]);
        CHECK_CAPTURED("x.yaml:3: optim.lr:");
    }
    CHECK(load_yaml("optim:\n  lr: .5\n  eps: 1E-6\n  grad_clip: 0\n", &c) == CT_OK);
    CHECK(c.optim.lr == 0.5f && c.optim.eps == 1e-6f && c.optim.grad_clip == 0.0f);
    ct_config_free(&c);
}

static void test_structure(void)
{
    ct_config_t c;
    ct_status_t st;

    st = load_yaml("model:\n  n_layer: 4\n  n_layr: 3\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: unknown key 'model.n_layr'");
    CHECK_CAPTURED("valid keys in model: n_layer, n_head, n_embd, max_seq_len, vocab_size, "
                   "init_from, init_std");
    CHECK(all_strings_null(&c));

    st = load_yaml("model:\n  n_layer: 4\n\noptimizer:\n  lr: 1\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:4: unknown section 'optimizer'");
    CHECK_CAPTURED("valid sections: model, data, optim, train, eval, checkpoint");

    /* Every structural problem in a file is reported, not just the first. */
    st = load_yaml("model:\n  foo: 1\ntrain:\n  bar: 2\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: unknown key 'model.foo'");
    CHECK_CAPTURED("x.yaml:4: unknown key 'train.bar'");

    st = load_yaml("model:\n  n_layer:\n    a: 1\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: model.n_layer: expected a scalar value, got a mapping");

    st = load_yaml("data:\n  seed: 1\n  train: [a.bin, b.bin]\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: data.train: expected a scalar value, got a sequence");

    st = load_yaml("train:\n  steps: 10\nmodel: 5\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: section 'model' is a scalar '5'; expected a mapping of keys");

    st = load_yaml("model:\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:1: section 'model' is empty; expected a mapping of keys");

    st = load_yaml("- model\n- data\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:1: the top level is a sequence; expected a mapping of sections");

    st = load_yaml("model:\n  n_layer: 4\n  n_layer: 5\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: duplicate key 'model.n_layer' (first set at line 2)");

    st = load_yaml("model:\n  n_layer: 4\nmodel:\n  n_head: 4\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: duplicate section 'model'");

    st = load_yaml("model:\n  n_layer: 4\n   n_head: 4\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: invalid YAML");

    st = load_yaml("model:\n  n_layer: &a 4\n  n_head: *a\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:3: model.n_head: expected a scalar value, got an alias");

    st = load_yaml("model:\n  n_layer: 4\n---\nmodel:\n  n_layer: 5\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("more than one YAML document");

    st = load_yaml("optim:\n  decay: cosinus\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: optim.decay: 'cosinus' is not valid (expected one of: cosine, "
                   "linear, constant)");
}

/* Loads `text`, expects CT_ERR_CONFIG and `msg` in the log. */
static void expect_error(const char *text, const char *msg)
{
    ct_config_t c;
    ct_status_t st = load_yaml(text, &c);
    CHECK_MSG(st == CT_ERR_CONFIG, "accepted: %s", text);
    CHECK_CAPTURED(msg);
}

static void test_ranges(void)
{
    expect_error("model:\n  n_layer: 0\n",
                 "x.yaml:2: model.n_layer: '0' is out of range (expected a decimal integer in "
                 "[1, 1024])");
    expect_error("model:\n  vocab_size: 1\n", "x.yaml:2: model.vocab_size: '1' is out of range");
    expect_error("optim:\n  beta1: 1.5\n",
                 "x.yaml:2: optim.beta1: '1.5' is out of range (expected a number in [0, 1))");
    expect_error("optim:\n  beta2: 1\n", "x.yaml:2: optim.beta2: '1' is out of range");
    expect_error("optim:\n  min_lr_frac: 1.01\n",
                 "optim.min_lr_frac: '1.01' is out of range (expected a number in [0, 1])");
    expect_error("optim:\n  eps: 0\n", "optim.eps: '0' is out of range (expected a number > 0)");
    expect_error("optim:\n  lr: -0.1\n", "optim.lr: '-0.1' is out of range");
    expect_error("optim:\n  grad_clip: -1\n", "optim.grad_clip: '-1' is out of range");
    expect_error("eval:\n  temperature: 0\n", "eval.temperature: '0' is out of range");
    expect_error("eval:\n  top_k: -1\n", "eval.top_k: '-1' is out of range");
    expect_error("train:\n  log_every: 0\n", "train.log_every: '0' is out of range");
    expect_error("checkpoint:\n  resume: \"\"\n", "x.yaml:2: checkpoint.resume: '' is empty");
    expect_error("train:\n  run_dir: ''\n", "train.run_dir: '' is empty");

    /* Cross-field checks name both keys and where each value came from. */
    expect_error("model:\n  n_embd: 100\n  n_head: 12\n", "model.n_embd = 100 (from ");
    CHECK_CAPTURED("x.yaml:2) is not a multiple of model.n_head = 12 (from ");
    CHECK_CAPTURED("x.yaml:3)");
    expect_error("model:\n  n_embd: 100\n",
                 "x.yaml:2) is not a multiple of model.n_head = 12 (default)");
    expect_error("model:\n  max_seq_len: 32\n",
                 "train.seq_len = 64 (default) exceeds model.max_seq_len = 32 (from ");
    expect_error("train:\n  batch_tokens: 1000\n", "train.batch_tokens = 1000 (from ");
    CHECK_CAPTURED("x.yaml:2) is not a multiple of train.batch_size * train.seq_len * parallel.dp = 256");

    expect_error("parallel:\n  tp: 5\n", "model.n_head = 12 (default) is not divisible by "
                                          "parallel.tp = 5 (from ");
    expect_error("optim:\n  zero: 2\n", "optim.zero");
    /* sequence parallelism: a YAML boolean, and the sequence must split */
    expect_error("parallel:\n  sp: yes\n", "parallel.sp");
    expect_error("model:\n  n_head: 12\ntrain:\n  seq_len: 1000\nparallel:\n  tp: 3\n  sp: true\n",
                 "parallel.sp = true (from ");
    CHECK_CAPTURED("x.yaml:7) with parallel.tp = 3 (from ");
    CHECK_CAPTURED("train.seq_len = 1000 (from ");
    CHECK_CAPTURED("does not divide by it");

    ct_config_t c;
    const char *sets[] = {"model.n_head=10"};
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_load(NULL, sets, 1, &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.n_head = 10 (from --set model.n_head=10)");
    CHECK(all_strings_null(&c));

    CHECK(load_yaml("train:\n  seq_len: 960\nparallel:\n  tp: 3\n  sp: true\n", &c) == CT_OK);
    CHECK(c.parallel.sp == 1 && c.parallel.tp == 3);
    ct_config_free(&c);
    CHECK(load_yaml("parallel:\n  sp: true\n", &c) == CT_OK); /* no effect at tp = 1 */
    ct_config_free(&c);
    CHECK(load_yaml("train:\n  batch_tokens: 1024\n", &c) == CT_OK);
    CHECK(c.train.batch_tokens == 1024);
    ct_config_free(&c);
    CHECK(load_yaml("checkpoint:\n  resume: auto\n", &c) == CT_OK);
    CHECK(strcmp(c.checkpoint.resume, "auto") == 0);
    ct_config_free(&c);
}

/* Hostile files: deep nesting and size are refused before (or as soon as)
 * they cost time, the pass stops after a bounded number of problems, and a
 * huge value is clipped inside the message so the reason stays readable. */
static void test_hostile(void)
{
    ct_config_t c;
    ct_status_t st;
    /* 200000 levels: libyaml's time grows with the square of the depth (300 s
     * here before the limit); now the pass stops at level 65. */
    enum { DEEP = 200000 };
    char *deep = malloc(2 * DEEP + 64);
    CHECK(deep != NULL);
    if (!deep) return;
    const char *forms[][2] = {{"model:\n  a: ", "["}, {"model: ", "{a: "},
                              {"model:\n  n_layer: ", "["}};
    for (int f = 0; f < 3; f++) {
        size_t n = (size_t)sprintf(deep, "%s", forms[f][0]), open_len = strlen(forms[f][1]);
        char *big = malloc(n + (open_len + 1) * DEEP + 8);
        CHECK(big != NULL);
        if (!big) break;
        memcpy(big, deep, n);
        for (int i = 0; i < DEEP; i++, n += open_len) memcpy(big + n, forms[f][1], open_len);
        big[n++] = '1';
        for (int i = 0; i < DEEP; i++) big[n++] = forms[f][1][0] == '[' ? ']' : '}';
        big[n++] = '\n';
        big[n] = 0;
        st = load_yaml(big, &c);
        free(big);
        CHECK_MSG(st == CT_ERR_CONFIG, "deep form %d accepted", f);
        CHECK_CAPTURED("YAML nested more than 64 levels deep; not reading further");
        CHECK(all_strings_null(&c));
    }
    free(deep);
    /* 64 levels are still only a structural error, not a refusal. */
    st = load_yaml("model:\n  a: [[[[[[[[1]]]]]]]]\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("unknown key 'model.a'");
    CHECK(strstr(ct_test_captured, "levels deep") == NULL);

    /* A file over CT_CONFIG_MAX_BYTES is refused before parsing. */
    size_t big_n = CT_CONFIG_MAX_BYTES + 10;
    char *big = malloc(big_n + 1);
    CHECK(big != NULL);
    if (big) {
        memset(big, '#', big_n);
        big[big_n] = 0;
        st = load_yaml(big, &c);
        CHECK(st == CT_ERR_CONFIG);
        CHECK_CAPTURED("x.yaml: larger than 4 MiB, the most a config may hold");
        CAPTURE_STDERR(st = ct_config_load_string(big, "ckpt/manifest.yaml", &c));
        CHECK(st == CT_ERR_CONFIG);
        CHECK_CAPTURED("ckpt/manifest.yaml: larger than 4 MiB");
        free(big);
    }

    /* At most 20 problems are reported, then the pass stops. */
    char many[4096];
    size_t m = (size_t)sprintf(many, "model:\n");
    for (int i = 0; i < 40; i++) m += (size_t)sprintf(many + m, "  bad%d: 1\n", i);
    st = load_yaml(many, &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("unknown key 'model.bad19'");
    CHECK_CAPTURED("x.yaml: 20 problems found; not reading further");
    CHECK(strstr(ct_test_captured, "model.bad20") == NULL);

    /* An 80 KB value: the message keeps the reason after the value. */
    enum { HUGE = 80000 };
    char *val = malloc(HUGE + 64);
    CHECK(val != NULL);
    if (!val) return;
    memset(val, 'a', HUGE);
    val[HUGE] = 0;
    char *text = malloc(HUGE + 64);
    CHECK(text != NULL);
    if (!text) {
        free(val);
        return;
    }
    snprintf(text, HUGE + 64, "model:\n  n_layer: %s\n", val);
    st = load_yaml(text, &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: model.n_layer: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaa... (80000 bytes)' is not an integer (expected a decimal integer "
                   "in [1, 1024])");
    /* the same through --set: the argument in the origin is clipped too */
    snprintf(text, HUGE + 64, "model.n_layer=%s", val);
    const char *sets[] = {text};
    CAPTURE_STDERR(st = ct_config_load(NULL, sets, 1, &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("--set model.n_layer=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... "
                   "(80014 bytes): model.n_layer: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaa... (80000 bytes)' is not an integer (expected");
    /* a long unknown key (YAML keys are at most 1024 characters), and a key
     * with a NUL in it */
    snprintf(text, HUGE + 64, "model:\n  %.1000s: 1\n", val);
    st = load_yaml(text, &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("aaaaaaaaaaaa... (1000 bytes)'; valid keys in model: n_layer");
    free(text);
    free(val);
    st = load_yaml("model:\n  \"n_layer\\0x\": 4\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("x.yaml:2: unknown key 'model.n_layer'");
}

/* Products of integer settings never overflow: each key has a maximum, and
 * the batch products are checked. Before, batch_size * seq_len * dp wrapped
 * to 0 and validation divided by it (SIGFPE), and vocab_size + 127
 * overflowed an int. */
static void test_overflow(void)
{
    ct_config_t c;
    ct_status_t st;
    /* the fuzzer's crash: B * T * dp = 2^64 wrapped to 0 */
    const char *fpe[] = {"train.batch_size=1073741824", "train.seq_len=16",
                         "train.batch_tokens=1", "parallel.dp=1073741824",
                         "model.max_seq_len=16"};
    CAPTURE_STDERR(st = ct_config_load(NULL, fpe, 5, &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("train.batch_size: '1073741824' is out of range (expected a decimal integer in "
                   "[1, 1048576])");
    CHECK_CAPTURED("parallel.dp: '1073741824' is out of range");
    /* the same values as a checkpoint's stored config */
    CAPTURE_STDERR(st = ct_config_load_string("train:\n  batch_size: 1073741824\n  seq_len: 16\n"
                                              "  batch_tokens: 1\nparallel:\n  dp: 1073741824\n",
                                              "ckpt", &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("ckpt:2: train.batch_size: '1073741824' is out of range");

    /* in range one by one, too big together */
    expect_error("model:\n  max_seq_len: 1048576\ntrain:\n  batch_size: 1048576\n  seq_len: "
                 "1048576\n",
                 "a micro-batch of train.batch_size = 1048576 (from ");
    CHECK_CAPTURED("is more than 2147483647 tokens");
    expect_error("train:\n  batch_size: 1\n  seq_len: 1\n  batch_tokens: 1099511627776\n",
                 "micro-batches per rank per step, more than 2147483647");
    expect_error("train:\n  steps: 1073741824\n  batch_size: 1024\n  seq_len: 1024\n"
                 "  batch_tokens: 1099511627776\nmodel:\n  max_seq_len: 1024\n",
                 "train.steps = 1073741824 (from ");
    CHECK_CAPTURED("is more than 2^63 tokens in all");
    CHECK(load_yaml("train:\n  steps: 1073741824\n  batch_size: 1024\n  seq_len: 1024\n"
                    "  batch_tokens: 4294967296\nmodel:\n  max_seq_len: 1024\n",
                    &c) == CT_OK);
    ct_config_free(&c);

    /* vocab_size + 127 overflowed an int above 2147483520 */
    expect_error("model:\n  vocab_size: 2147483647\n",
                 "model.vocab_size: '2147483647' is out of range (expected a decimal integer in "
                 "[2, 16777216])");
    expect_error("model:\n  vocab_size: 16777217\n", "model.vocab_size: '16777217' is out of range");
    CHECK(load_yaml("model:\n  vocab_size: 16777216\n", &c) == CT_OK);
    ct_config_free(&c);
    /* the watchdog turns comm.timeout_s into a time_t */
    expect_error("comm:\n  timeout_s: 1e30\n", "comm.timeout_s: '1e30' is out of range");
}

static void test_missing_file(void)
{
    ct_config_t c;
    char path[4300];
    snprintf(path, sizeof path, "%s/no-such-config.yaml", tmp_dir);
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_load(path, NULL, 0, &c));
    CHECK(st == CT_ERR_NOT_FOUND);
    CHECK_CAPTURED(path);
    CHECK_CAPTURED("No such file or directory");
    CHECK(all_strings_null(&c));
}

static void test_round_trip(void)
{
    ct_config_t a, b;
    ct_config_defaults(&a);
    CHECK(ct_config_set(&a, "model.init_from=weird \"quoted\" \\ back: #hash", "t") == CT_OK);
    CHECK(ct_config_set(&a, "eval.prompt=line1\nline2\ttab \x01 caf\xc3\xa9 'single' ", "t") ==
          CT_OK);
    CHECK(ct_config_set(&a, "data.train= leading space, trailing: ", "t") == CT_OK);
    CHECK(ct_config_set(&a, "eval.tokenizer=null", "t") == CT_OK);
    CHECK(ct_config_set(&a, "train.run_dir=- [not, a, list]", "t") == CT_OK);
    CHECK(ct_config_set(&a, "checkpoint.resume=~", "t") == CT_OK);
    CHECK(ct_config_set(&a, "optim.lr=0.000123456789", "t") == CT_OK);
    CHECK(ct_config_set(&a, "optim.eps=1.17549435e-38", "t") == CT_OK);
    CHECK(ct_config_set(&a, "model.init_std=3.14159265358979", "t") == CT_OK);
    CHECK(ct_config_set(&a, "eval.temperature=1e30", "t") == CT_OK);
    CHECK(ct_config_set(&a, "optim.decay=linear", "t") == CT_OK);
    CHECK(ct_config_set(&a, "train.seed=9223372036854775807", "t") == CT_OK);
    CHECK(ct_config_set(&a, "optim.beta2=0.999999", "t") == CT_OK);
    a.optim.min_lr_frac = 1.0f / 3.0f;
    char *y = ct_config_to_yaml(&a);
    CHECK(y != NULL);
    if (!y) return;
    CHECK(strstr(y, "  n_layer: 12\n") != NULL);
    CHECK(strstr(y, "  decay: linear\n") != NULL);
    CHECK(strstr(y, "  resume: \"~\"\n") != NULL);
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_load_string(y, "resolved.yaml", &b));
    CHECK(st == CT_OK);
    if (st == CT_OK) {
        CHECK(config_equal(&a, &b));
        char *y2 = ct_config_to_yaml(&b);
        CHECK(y2 && strcmp(y, y2) == 0);
        free(y2);
        ct_config_free(&b);
    } else {
        fprintf(stderr, "yaml was:\n%s\n", y);
    }
    free(y);
    ct_config_free(&a);

    /* The defaults round-trip too. */
    ct_config_defaults(&a);
    y = ct_config_to_yaml(&a);
    CHECK(y && ct_config_load_string(y, "defaults", &b) == CT_OK);
    CHECK(config_equal(&a, &b));
    free(y);
    ct_config_free(&a);
    ct_config_free(&b);

    /* Characters YAML folds (U+0085, U+2028, U+2029) or does not allow raw
     * (C1 controls, U+FFFE) and the byte-order mark are escaped, so a
     * prompt holding them comes back from a checkpoint unchanged (the
     * fuzzer's round-trip property; U+2028 came back as a space). */
    const char *odd = "a" "\xe2\x80\xa8" "b" "\xe2\x80\xa9" "c" "\xc2\x85" "d" "\xc2\x80\xc2\x9f"
                      "\xef\xbb\xbf\xef\xbf\xbe\xef\xbf\xbf\xc2\xa0\xf0\x9f\x98\x80" "e";
    ct_config_defaults(&a);
    char set[256];
    snprintf(set, sizeof set, "eval.prompt=%s", odd);
    CHECK(ct_config_set(&a, set, "t") == CT_OK);
    y = ct_config_to_yaml(&a);
    CHECK(y && strstr(y, "\"a\\u2028b\\u2029c\\x85d\\x80\\x9f\\ufeff\\ufffe\\uffff"
                         "\xc2\xa0\xf0\x9f\x98\x80" "e\""));
    CAPTURE_STDERR(st = ct_config_load_string(y, "odd.yaml", &b));
    CHECK(st == CT_OK);
    if (st == CT_OK) {
        CHECK_MSG(strcmp(b.eval.prompt, odd) == 0, "prompt came back as '%s'", b.eval.prompt);
        ct_config_free(&b);
    }
    free(y);
    ct_config_free(&a);
    /* bytes that are not UTF-8 could not be written back: refused */
    ct_config_defaults(&a);
    CAPTURE_STDERR(st = ct_config_set(&a, "eval.prompt=ok\xff\xfe", "--set"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("eval.prompt: the value is not valid UTF-8 (byte 2 is 0xff)");
    CAPTURE_STDERR(st = ct_config_set(&a, "data.train=\xc0\xaf", "--set"));
    CHECK(st == CT_ERR_CONFIG); /* an overlong '/' */
    ct_config_free(&a);

    /* load_string names its origin in errors. */
    CAPTURE_STDERR(st = ct_config_load_string("model:\n  n_head: 1.5\n", "ckpt/config.yaml", &b));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("ckpt/config.yaml:2: model.n_head: '1.5' is not an integer");
    CHECK(all_strings_null(&b));
}

/* A retired key (eval.batches) is an error that names its replacement in a
 * file and in --set, and is skipped in a checkpoint's stored config. */
static void test_retired_keys(void)
{
    expect_error("eval:\n  every: 5\n  batches: 2\n",
                 "x.yaml:3: key 'eval.batches' was removed");
    CHECK_CAPTURED("eval.tokens");
    ct_config_t c;
    ct_config_defaults(&c);
    ct_status_t st = CT_OK;
    CAPTURE_STDERR(st = ct_config_set(&c, "eval.batches=2", "--set"));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("--set: key 'eval.batches' was removed");
    ct_config_free(&c);
    CAPTURE_STDERR(st = ct_config_load_string("eval:\n  every: 7\n  batches: 20\n", "ckpt", &c));
    CHECK(st == CT_OK);
    if (st == CT_OK) {
        CHECK(c.eval.every == 7 && c.eval.tokens == 0);
        ct_config_free(&c);
    }
    /* an unknown key is still an error in a stored config */
    CAPTURE_STDERR(st = ct_config_load_string("eval:\n  batchez: 20\n", "ckpt", &c));
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("unknown key 'eval.batchez'");
}

static void test_free_twice(void)
{
    ct_config_t c;
    ct_config_defaults(&c);
    ct_config_free(&c);
    ct_config_free(&c);
    CHECK(all_strings_null(&c));
    ct_config_free(NULL);
}

/* model.arch and the llama-only keys: defaults, validation, round trip. */
static void test_llama_keys(void)
{
    ct_config_t c, b;
    ct_config_defaults(&c);
    CHECK(c.model.arch == CT_ARCH_GPT2 && c.model.n_kv_head == 0 && c.model.ffn_dim == 0 &&
          c.model.tie_embeddings == 1 && c.model.rope_scaling == CT_ROPE_SCALING_NONE &&
          c.model.rope_theta == 10000.0f && c.model.norm_eps == 1e-5f);
    ct_config_free(&c);
    ct_status_t st = load_yaml("model:\n  arch: llama\n  n_head: 12\n  n_kv_head: 4\n"
                               "  rope_scaling: llama3\n  tie_embeddings: 0\n", &c);
    CHECK(st == CT_OK);
    if (st == CT_OK) {
        CHECK(c.model.arch == CT_ARCH_LLAMA && c.model.n_kv_head == 4 && !c.model.tie_embeddings);
        CHECK(ct_config_ffn_dim(&c.model) == 2048); /* 8 * 768 / 3 = 2048, a multiple of 256 */
        char *y = ct_config_to_yaml(&c);
        CHECK(y && strstr(y, "  arch: llama\n") && strstr(y, "  rope_scaling: llama3\n"));
        CAPTURE_STDERR(st = ct_config_load_string(y, "resolved.yaml", &b));
        CHECK(st == CT_OK);
        if (st == CT_OK) {
            CHECK(config_equal(&c, &b));
            ct_config_free(&b);
        }
        free(y);
        ct_config_free(&c);
    }
    /* GPT-2 keeps every llama key at its default, and says which one is not */
    st = load_yaml("model:\n  n_kv_head: 4\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.n_kv_head = 4 (from ");
    CHECK_CAPTURED("applies to Llama models only");
    st = load_yaml("model:\n  rope_theta: 500000\n  tie_embeddings: 0\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.rope_theta = 500000");
    CHECK_CAPTURED("model.tie_embeddings = 0");
    /* Llama's cross-key rules */
    st = load_yaml("model:\n  arch: llama\n  n_head: 12\n  n_kv_head: 5\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("is not a multiple of model.n_kv_head = 5");
    st = load_yaml("model:\n  arch: llama\n  n_head: 4\n  n_embd: 12\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("head size model.n_embd = 12 (from ");
    CHECK_CAPTURED("x.yaml:3) = 3 is odd: RoPE rotates pairs");
    st = load_yaml("model:\n  arch: llama\n  n_head: 4\n  ffn_dim: 30\nparallel:\n  tp: 4\n",
                   &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("the SwiGLU width 30");
    CHECK_CAPTURED("not divisible by parallel.tp = 4");
    st = load_yaml("model:\n  arch: llama\n  rope_scaling: llama3\n  rope_low_freq_factor: 4\n",
                   &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.rope_high_freq_factor = 4 (default) must be above "
                   "model.rope_low_freq_factor = 4");
    st = load_yaml("model:\n  arch: mamba\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.arch: 'mamba' is not valid (expected one of: gpt2, llama)");
    st = load_yaml("model:\n  arch: llama\n  norm_eps: 0\n", &c);
    CHECK(st == CT_ERR_CONFIG);
    CHECK_CAPTURED("model.norm_eps: '0' is out of range");
    /* a large vocabulary (Gemma 3's 262144) */
    st = load_yaml("model:\n  arch: llama\n  vocab_size: 262144\n", &c);
    CHECK(st == CT_OK);
    if (st == CT_OK) ct_config_free(&c);
}

static void test_shipped_configs(void)
{
    const char *src = getenv("CT_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "CT_SOURCE_DIR is not set: skipping the configs/ check\n");
        return;
    }
    const char *names[] = {"tiny", "gpt2-124m", "gpt2-124m-cpu", "llama-tiny", "smollm2-135m",
                           "llama3.2-1b"};
    for (int i = 0; i < 6; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/configs/%s.yaml", src, names[i]);
        ct_config_t c;
        ct_status_t st = ct_config_load(path, NULL, 0, &c);
        CHECK_MSG(st == CT_OK, "%s: %s", path, ct_status_name(st));
        if (st != CT_OK) continue;
        if (i >= 3) {
            CHECK(c.model.arch == CT_ARCH_LLAMA);
            if (i == 3) CHECK(c.model.n_layer == 4 && ct_config_ffn_dim(&c.model) == 352);
            if (i == 4) CHECK(c.model.n_kv_head == 3 && ct_config_ffn_dim(&c.model) == 1536);
            if (i == 5) CHECK(c.model.n_kv_head == 8 && ct_config_ffn_dim(&c.model) == 8192 &&
                              c.model.rope_scaling == CT_ROPE_SCALING_LLAMA3);
        } else if (i == 0) {
            CHECK(strcmp(c.eval.tokenizer, "datasets/kjv/kjv.bpe") == 0);
            CHECK(strcmp(c.train.run_dir, "runs/tiny") == 0);
        } else {
            CHECK(c.model.n_layer == 12 && c.model.n_embd == 768 && c.model.vocab_size == 50257);
        }
        if (i == 1) CHECK(c.train.seq_len == 1024 && c.train.batch_tokens == 524288);
        if (i == 2) CHECK(c.train.seq_len == 64 && c.train.steps == 10 && c.eval.every == 0);
        ct_config_free(&c);
    }
}

int main(void)
{
    ct_log_init();
    tmp_dir = strdup(ct_test_dir("test_config"));
    test_defaults();
    test_good_file();
    test_set();
    test_strict_numbers();
    test_structure();
    test_ranges();
    test_hostile();
    test_overflow();
    test_missing_file();
    test_round_trip();
    test_retired_keys();
    test_free_twice();
    test_llama_keys();
    test_shipped_configs();
    free((void *)tmp_dir);
    return ct_test_finish("test_config");
}
