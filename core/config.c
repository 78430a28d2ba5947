/* Run configuration: defaults, YAML loading, --set overrides, validation and
 * YAML output.
 *
 * One table (config_fields below) is the single place that lists every key
 * with its type, default and range. It drives everything else:
 *   1. a structural pass over the YAML with libyaml's event parser checks that
 *      the document is a mapping of known sections, each a mapping of known
 *      keys to scalars, and records the line of every key;
 *   2. libcyaml loads the document with a schema built at run time from the
 *      table, every leaf loaded as an optional string;
 *   3. each present string is converted by our own strict parsers (libcyaml
 *      1.3.1 would accept `1.5`, `1x`, `1e3` and `010` as integers), with
 *      errors naming the key, the file and the line;
 *   4. cross-field checks run after the file and the --set overrides.
 * Every problem found is logged once; loading keeps going to report the
 * problems in a file (up to 20), then returns CT_ERR_CONFIG. Hostile input
 * costs little: text over CT_CONFIG_MAX_BYTES is refused unparsed, the
 * structural pass stops at nesting deeper than CT_CONFIG_MAX_DEPTH (libyaml
 * slows with the square of the depth), and values quoted in messages are
 * clipped (ct_log_clip) so the reason stays on the line.
 *
 * Deliberately left out: YAML anchors and aliases, multiple documents, and
 * any notion of the data-parallel world size (the trainer checks that the
 * global batch divides across ranks). */
#include "core/config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/log.h"
#include "core/utf8.h"

/* ---- the table ------------------------------------------------------------ */

typedef enum { FT_INT, FT_INT64, FT_FLOAT, FT_STRING, FT_ENUM } field_type_t;

typedef struct {
    const char *section;
    const char *key;
    field_type_t type;
    size_t offset;             /* into ct_config_t */
    size_t size;               /* of the member, checked against the type */
    const char *def;           /* default, parsed by the same strict parsers */
    int64_t imin, imax;        /* FT_INT, FT_INT64: inclusive range */
    double fmin, fmax;         /* FT_FLOAT: range, */
    int fmin_open, fmax_open;  /* with exclusive ends where set */
    const char *const *names;  /* FT_ENUM: NULL-terminated, index = value */
    int nonempty;              /* FT_STRING: "" is rejected */
} field_t;

#define OFF_(sec, key) offsetof(ct_config_t, sec.key)
#define SIZE_(sec, key) sizeof(((ct_config_t *)0)->sec.key)
#define F_INT(sec, key, def, lo, hi)                                                        \
    {#sec, #key, FT_INT, OFF_(sec, key), SIZE_(sec, key), def, .imin = (lo), .imax = (hi)}
#define F_I64(sec, key, def, lo, hi)                                                        \
    {#sec, #key, FT_INT64, OFF_(sec, key), SIZE_(sec, key), def, .imin = (lo), .imax = (hi)}
#define F_FLT(sec, key, def, lo, lo_open, hi, hi_open)                                      \
    {#sec, #key, FT_FLOAT, OFF_(sec, key), SIZE_(sec, key), def, .fmin = (lo), .fmax = (hi), \
     .fmin_open = (lo_open), .fmax_open = (hi_open)}
#define F_STR(sec, key, def, nonempty_)                                                     \
    {#sec, #key, FT_STRING, OFF_(sec, key), SIZE_(sec, key), def, .nonempty = (nonempty_)}
#define F_ENUM(sec, key, def, names_)                                                       \
    {#sec, #key, FT_ENUM, OFF_(sec, key), SIZE_(sec, key), def, .names = (names_)}

static const char *const decay_names[] = {"cosine", "linear", "constant", NULL};
_Static_assert(CT_DECAY_COSINE == 0 && CT_DECAY_LINEAR == 1 && CT_DECAY_CONSTANT == 2,
               "decay_names follows ct_decay_t");

static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const recompute_names[] = {"none", "gelu", "ln_gelu", NULL};
static const char *const attention_names[] = {"auto", "cudnn", "plain", NULL};
static const char *const bool_names[] = {"false", "true", NULL}; /* a YAML boolean */
static const char *const arch_names[] = {"gpt2", "llama", NULL};
static const char *const rope_scaling_names[] = {"none", "llama3", NULL};
_Static_assert(CT_DEVICE_CUDA == 2 && CT_RECOMPUTE_LN_GELU == 2 && CT_ATTENTION_PLAIN == 2,
               "name tables follow their enums");
_Static_assert(CT_ARCH_LLAMA == 1 && CT_ROPE_SCALING_LLAMA3 == 1, "name tables follow their enums");

/* Every integer key has a maximum, far above any real run, chosen so that
 * no product the code forms from settings can overflow: the model's tensor
 * sizes (L * 12 * C * C, Vp * C, maxT * C) fit easily in 64 bits and the
 * padded vocabulary (V up to 2^24, padded to 128 * tp) in an int, and
 * validate() checks the products of the batch keys
 * (B * T in an int, B * T * dp and steps * global batch in an int64) with
 * __builtin_mul_overflow. Seeds take any int64 >= 0; they are only hashed.
 * config.h repeats the ranges. */
#define K_ (1 << 10)
#define M_ (1 << 20)
#define G_ (1 << 30)

/* Keys of one section are contiguous, sections in the order of sections[]. */
static const field_t config_fields[] = {
    F_INT(model, n_layer, "12", 1, K_),
    F_INT(model, n_head, "12", 1, K_),
    F_INT(model, n_embd, "768", 1, 64 * K_),
    F_INT(model, max_seq_len, "1024", 1, M_),
    F_INT(model, vocab_size, "50257", 2, CT_CONFIG_MAX_VOCAB),
    F_STR(model, init_from, "", 0),
    F_FLT(model, init_std, "0.02", 0, 0, INFINITY, 0),
    F_ENUM(model, device, "auto", device_names),
    F_ENUM(model, recompute, "gelu", recompute_names),
    F_ENUM(model, attention, "auto", attention_names),
    F_ENUM(model, arch, "gpt2", arch_names),
    /* llama only (LLAMA_FIRST_KEY onwards, to the end of the section) */
    F_INT(model, n_kv_head, "0", 0, K_),
    F_INT(model, ffn_dim, "0", 0, M_),
    F_INT(model, ffn_multiple_of, "256", 1, 64 * K_),
    F_FLT(model, ffn_multiplier, "1.0", 0, 1, 64, 0),
    F_FLT(model, rope_theta, "10000", 0, 1, INFINITY, 0),
    F_ENUM(model, rope_scaling, "none", rope_scaling_names),
    F_FLT(model, rope_factor, "8", 1, 0, INFINITY, 0),
    F_FLT(model, rope_low_freq_factor, "1", 0, 1, INFINITY, 0),
    F_FLT(model, rope_high_freq_factor, "4", 0, 1, INFINITY, 0),
    F_INT(model, rope_original_max_seq_len, "8192", 1, M_),
    F_FLT(model, norm_eps, "1e-5", 0, 1, 1, 0),
    F_INT(model, tie_embeddings, "1", 0, 1),

    F_STR(data, train, "", 0),
    F_STR(data, val, "", 0),
    F_I64(data, seed, "1337", 0, INT64_MAX),
    F_INT(data, chunk_tokens, "1048576", 1, G_),
    F_INT(data, window_chunks, "8", 1, 64 * K_),
    F_INT(data, prefetch_mib, "0", 0, M_),
    F_INT(data, max_retries, "5", 0, 100),
    F_STR(data, cache_dir, "", 0),
    F_INT(data, cache_mib, "4096", 1, 16 * M_),

    F_FLT(optim, lr, "6e-4", 0, 0, INFINITY, 0),
    F_FLT(optim, min_lr_frac, "0.1", 0, 0, 1, 0),
    F_INT(optim, warmup_steps, "100", 0, G_),
    F_ENUM(optim, decay, "cosine", decay_names),
    F_FLT(optim, weight_decay, "0.1", 0, 0, INFINITY, 0),
    F_FLT(optim, beta1, "0.9", 0, 0, 1, 1),
    F_FLT(optim, beta2, "0.95", 0, 0, 1, 1),
    F_FLT(optim, eps, "1e-8", 0, 1, INFINITY, 0),
    F_FLT(optim, grad_clip, "1.0", 0, 0, INFINITY, 0),
    F_INT(optim, zero, "0", 0, 1),
    F_INT(optim, stochastic_rounding, "0", 0, 1),

    F_STR(train, run_dir, "runs/default", 1),
    F_INT(train, steps, "1000", 1, G_),
    F_INT(train, batch_size, "4", 1, M_),
    F_INT(train, seq_len, "64", 1, M_),
    F_I64(train, batch_tokens, "0", 0, (int64_t)1 << 40),
    F_I64(train, seed, "1337", 0, INT64_MAX),
    F_INT(train, log_every, "1", 1, G_),
    F_INT(train, threads, "0", 0, 4 * K_),
    F_INT(train, max_skips, "5", 1, M_),
    F_FLT(train, spike_z, "4", 0, 0, INFINITY, 0),
    F_FLT(train, peak_tflops, "0", 0, 0, INFINITY, 0),
    F_ENUM(train, profile_ops, "false", bool_names),

    F_INT(eval, every, "100", 0, G_),
    F_I64(eval, tokens, "0", 0, (int64_t)1 << 48),
    F_INT(eval, sample_every, "0", 0, G_),
    F_INT(eval, sample_tokens, "64", 0, M_), /* 0: no sample at the end either */
    F_FLT(eval, temperature, "1.0", 0, 1, INFINITY, 0),
    F_INT(eval, top_k, "40", 0, CT_CONFIG_MAX_VOCAB),
    F_I64(eval, sample_seed, "42", 0, INT64_MAX),
    F_STR(eval, prompt, "", 0),
    F_STR(eval, tokenizer, "", 0),

    F_INT(checkpoint, every, "0", 0, G_),
    F_STR(checkpoint, resume, "none", 1),
    F_INT(checkpoint, keep_last, "0", 0, M_),
    F_INT(checkpoint, keep_every, "0", 0, G_),

    F_INT(parallel, dp, "1", 1, 64 * K_),
    F_INT(parallel, tp, "1", 1, K_),
    F_ENUM(parallel, sp, "false", bool_names),

    F_FLT(comm, timeout_s, "300", 0, 0, 1e6, 0), /* the watchdog turns it into a time_t */
    F_INT(comm, bucket_mib, "25", 1, 64 * K_),
};

#undef K_
#undef M_
#undef G_
#define N_FIELDS ((int)(sizeof config_fields / sizeof config_fields[0]))

static const char *const sections[] = {"model", "data",       "optim",    "train",
                                       "eval",  "checkpoint", "parallel", "comm"};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

/* Keys that older versions wrote. A config file or --set that uses one is an
 * error that says what replaced it; a checkpoint's stored config (read with
 * ct_config_load_string) may hold them, and they are skipped there, so old
 * checkpoints stay readable. */
static const struct {
    const char *section, *key, *why;
} retired_keys[] = {
    {"eval", "batches", "validation batches depended on train.batch_size; validation now covers "
                        "the whole held-out set\n---> HINT: delete the key, or cap validation "
                        "with eval.tokens"},
};

static const char *retired_why(const char *section, const char *key)
{
    for (size_t i = 0; i < sizeof retired_keys / sizeof retired_keys[0]; i++)
        if (!strcmp(retired_keys[i].section, section) && !strcmp(retired_keys[i].key, key))
            return retired_keys[i].why;
    return NULL;
}

/* ---- small helpers -------------------------------------------------------- */

/* Where each field's current value came from, for cross-field messages. */
typedef struct {
    const char *origin[N_FIELDS]; /* NULL = default */
    int line[N_FIELDS];           /* 0 = no line (a --set or a string) */
} srcmap_t;

typedef union {
    int64_t i;
    float f;
    int e;
    const char *s; /* borrowed from the parsed text */
} value_t;

static int find_section(const char *name)
{
    for (int s = 0; s < N_SECTIONS; s++)
        if (strcmp(sections[s], name) == 0) return s;
    return -1;
}

/* First field of section `s` and the number of its fields. */
static int section_fields(int s, int *count_p)
{
    int first = -1, n = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        if (strcmp(config_fields[i].section, sections[s]) != 0) continue;
        if (first < 0) first = i;
        n++;
    }
    *count_p = n;
    return first;
}

static int find_field(int s, const char *key)
{
    for (int i = 0; i < N_FIELDS; i++)
        if (strcmp(config_fields[i].section, sections[s]) == 0 &&
            strcmp(config_fields[i].key, key) == 0)
            return i;
    return -1;
}

static void list_keys(int s, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < N_FIELDS && used < n; i++) {
        if (strcmp(config_fields[i].section, sections[s]) != 0) continue;
        used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "",
                                 config_fields[i].key);
    }
}

static void list_sections(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int s = 0; s < N_SECTIONS && used < n; s++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", s ? ", " : "", sections[s]);
}

/* "origin:line" or "origin" into buf. */
static const char *where(const char *origin, int line, char *buf, size_t n)
{
    if (line > 0)
        snprintf(buf, n, "%s:%d", origin, line);
    else
        snprintf(buf, n, "%s", origin);
    return buf;
}

/* What a field accepts, in words, for error messages. */
static void describe(const field_t *f, char *buf, size_t n)
{
    switch (f->type) {
    case FT_INT:
    case FT_INT64:
        if (f->imax == (f->type == FT_INT ? INT_MAX : INT64_MAX))
            snprintf(buf, n, "a decimal integer >= %" PRId64, f->imin);
        else
            snprintf(buf, n, "a decimal integer in [%" PRId64 ", %" PRId64 "]", f->imin, f->imax);
        break;
    case FT_FLOAT:
        if (isinf(f->fmax))
            snprintf(buf, n, "a number %s %g", f->fmin_open ? ">" : ">=", f->fmin);
        else
            snprintf(buf, n, "a number in %c%g, %g%c", f->fmin_open ? '(' : '[', f->fmin, f->fmax,
                     f->fmax_open ? ')' : ']');
        break;
    case FT_ENUM: {
        size_t used = (size_t)snprintf(buf, n, "one of: ");
        for (int k = 0; f->names[k] && used < n; k++)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", k ? ", " : "", f->names[k]);
        break;
    }
    case FT_STRING:
        snprintf(buf, n, "%s", f->nonempty ? "a non-empty string" : "a string");
        break;
    }
}

/* ---- strict scalar parsers ------------------------------------------------ */

/* Decimal integer: "0" or an optional '-' then digits without leading zeros.
 * "+1", "-0", "010", "1.5", "1e3", "0x10", " 1" are all rejected. */
static int parse_int64(const char *s, int64_t *out_p, int *overflow_p)
{
    const char *p = s;
    int neg = 0;
    *overflow_p = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9') return -1;
    if (*p == '0' && (neg || p[1] != 0)) return -1;
    uint64_t mag = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (mag > (limit - d) / 10) *overflow_p = 1;
        else mag = mag * 10 + d;
    }
    if (*overflow_p) return -1;
    *out_p = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

/* "-0" or digits with a leading zero such as "010" or "-01". */
static int is_noncanonical_int(const char *s)
{
    int neg = *s == '-';
    if (neg) s++;
    if (s[0] != '0') return 0;
    if (s[1] == 0) return neg;
    return strspn(s, "0123456789") == strlen(s);
}

/* A finite decimal number: strtod over the whole string, restricted to the
 * characters of decimal notation (so no hex floats, "inf" or "nan"). */
static int parse_float(const char *s, double *out_p)
{
    int digits = 0;
    if (!*s) return -1;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9') digits = 1;
        else if (!strchr(".eE+-", *p)) return -1;
    }
    if (!digits) return -1;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != 0) return -1;
    *out_p = v;
    return 0;
}

/* Converts `text` for field `f`. On failure writes the reason (value and
 * expectation) into `why` and returns -1. `quoted` marks a quoted YAML
 * scalar, which is accepted only for strings and enums. */
static int parse_value(const field_t *f, const char *text, int quoted, value_t *out_p, char *why,
                       size_t n)
{
    char expect[256], shown_buf[CT_LOG_CLIP_BUF];
    describe(f, expect, sizeof expect);
    const char *shown = ct_log_clip(text, shown_buf); /* the value as messages quote it */
    if (quoted && (f->type == FT_INT || f->type == FT_INT64 || f->type == FT_FLOAT)) {
        snprintf(why, n, "'%s' is a quoted string; write numbers without quotes (expected %s)",
                 shown, expect);
        return -1;
    }
    switch (f->type) {
    case FT_INT:
    case FT_INT64: {
        int64_t v;
        int overflow;
        if (parse_int64(text, &v, &overflow) != 0) {
            if (overflow)
                snprintf(why, n, "'%s' is out of range (expected %s)", shown, expect);
            else if (is_noncanonical_int(text))
                snprintf(why, n,
                         "'%s' is not a decimal integer: no leading zeros or '-0' (expected %s)",
                         shown, expect);
            else
                snprintf(why, n, "'%s' is not an integer (expected %s)", shown, expect);
            return -1;
        }
        if (v < f->imin || v > f->imax) {
            snprintf(why, n, "'%s' is out of range (expected %s)", shown, expect);
            return -1;
        }
        out_p->i = v;
        return 0;
    }
    case FT_FLOAT: {
        double d;
        if (parse_float(text, &d) != 0) {
            snprintf(why, n, "'%s' is not a number (expected %s)", shown, expect);
            return -1;
        }
        float v = (float)d;
        double vd = v;
        if (!isfinite(v) || vd < f->fmin || (f->fmin_open && vd == f->fmin) || vd > f->fmax ||
            (f->fmax_open && vd == f->fmax)) {
            snprintf(why, n, "'%s' is out of range (expected %s)", shown, expect);
            return -1;
        }
        out_p->f = v;
        return 0;
    }
    case FT_ENUM:
        for (int k = 0; f->names[k]; k++)
            if (strcmp(f->names[k], text) == 0) {
                out_p->e = k;
                return 0;
            }
        snprintf(why, n, "'%s' is not valid (expected %s)", shown, expect);
        return -1;
    case FT_STRING:
        if (f->nonempty && !text[0]) {
            snprintf(why, n, "'' is empty (expected %s)", expect);
            return -1;
        }
        /* YAML holds only UTF-8: a config and the copy stored in each
         * checkpoint must read back (a --set can bring any bytes) */
        for (size_t i = 0, len = strlen(text); i < len;) {
            uint32_t cp;
            size_t k = ct_utf8_decode((const uint8_t *)text + i, len - i, &cp);
            if (k == 0) {
                snprintf(why, n, "the value is not valid UTF-8 (byte %zu is 0x%02x)", i,
                         (unsigned char)text[i]);
                return -1;
            }
            i += k;
        }
        out_p->s = text;
        return 0;
    }
    return -1;
}

/* Stores a parsed value; strings are copied. Returns -1 only when out of
 * memory, leaving the old value in place. */
static int store_value(ct_config_t *cfg, const field_t *f, const value_t *v)
{
    char *dst = (char *)cfg + f->offset;
    switch (f->type) {
    case FT_INT: *(int *)dst = (int)v->i; break;
    case FT_INT64: *(int64_t *)dst = v->i; break;
    case FT_FLOAT: *(float *)dst = v->f; break;
    case FT_ENUM: *(int *)dst = v->e; break;
    case FT_STRING: {
        char *copy = strdup(v->s);
        if (!copy) return -1;
        free(*(char **)dst);
        *(char **)dst = copy;
        break;
    }
    }
    return 0;
}

/* Parses and stores one field; logs and returns non-OK on failure. */
static CT_MUST_USE ct_status_t apply_field(ct_config_t *cfg, int idx, const char *text, int quoted,
                               const char *origin, int line, srcmap_t *src)
{
    const field_t *f = &config_fields[idx];
    char why[1024], loc[512];
    value_t v;
    if (parse_value(f, text, quoted, &v, why, sizeof why) != 0) {
        CT_LOG_ERROR("config error: %s: %s.%s: %s", where(origin, line, loc, sizeof loc),
                     f->section, f->key, why);
        return CT_ERR_CONFIG;
    }
    if (store_value(cfg, f, &v) != 0) {
        CT_LOG_ERROR("config error: %s: %s.%s: out of memory copying the value",
                     where(origin, line, loc, sizeof loc), f->section, f->key);
        return CT_ERR_NO_MEMORY;
    }
    if (src) {
        src->origin[idx] = origin;
        src->line[idx] = line;
    }
    return CT_OK;
}

/* ---- defaults, free, set -------------------------------------------------- */

void ct_config_free(ct_config_t *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < N_FIELDS; i++) {
        if (config_fields[i].type != FT_STRING) continue;
        char **p = (char **)((char *)cfg + config_fields[i].offset);
        free(*p);
        *p = NULL;
    }
}

void ct_config_defaults(ct_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_FIELDS; i++) {
        const field_t *f = &config_fields[i];
        /* The table checks itself: member sizes match the types, sections are
         * contiguous and every default passes its own parser. */
        size_t want = f->type == FT_INT64 ? sizeof(int64_t)
                    : f->type == FT_FLOAT ? sizeof(float)
                    : f->type == FT_STRING ? sizeof(char *)
                    : sizeof(int);
        CT_ASSERT(f->size == want);
        CT_ASSERT(find_section(f->section) >= 0);
        CT_ASSERT(i == 0 || find_section(f->section) >= find_section(config_fields[i - 1].section));
        value_t v;
        char why[512];
        if (parse_value(f, f->def, 0, &v, why, sizeof why) != 0)
            ct__fatal(__FILE__, __LINE__, __func__, "bad default for %s.%s: %s", f->section,
                      f->key, why);
        if (store_value(cfg, f, &v) != 0)
            ct__fatal(__FILE__, __LINE__, __func__, "out of memory setting config defaults");
    }
}

static CT_MUST_USE ct_status_t set_impl(ct_config_t *cfg, const char *assignment, const char *origin,
                            srcmap_t *src)
{
    CT_ASSERT(cfg && assignment);
    if (!origin) origin = "--set";
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq) {
        char shown[CT_LOG_CLIP_BUF];
        CT_LOG_ERROR("config error: %s: '%s' is not of the form section.key=value", origin,
                     ct_log_clip(assignment, shown));
        return CT_ERR_CONFIG;
    }
    char section[64], key[64];
    size_t slen = (size_t)(dot - assignment), klen = (size_t)(eq - dot - 1);
    char valid[512];
    if (slen >= sizeof section) slen = sizeof section - 1;
    if (klen >= sizeof key) klen = sizeof key - 1;
    memcpy(section, assignment, slen);
    section[slen] = 0;
    memcpy(key, dot + 1, klen);
    key[klen] = 0;
    int s = find_section(section);
    if (s < 0) {
        list_sections(valid, sizeof valid);
        CT_LOG_ERROR("config error: %s: unknown section '%s'; valid sections: %s", origin, section,
                     valid);
        return CT_ERR_CONFIG;
    }
    int idx = find_field(s, key);
    if (idx < 0 && retired_why(section, key)) {
        CT_LOG_ERROR("config error: %s: key '%s.%s' was removed: %s", origin, section, key,
                     retired_why(section, key));
        return CT_ERR_CONFIG;
    }
    if (idx < 0) {
        list_keys(s, valid, sizeof valid);
        CT_LOG_ERROR("config error: %s: unknown key '%s.%s'; valid keys in %s: %s", origin,
                     section, key, section, valid);
        return CT_ERR_CONFIG;
    }
    return apply_field(cfg, idx, eq + 1, 0, origin, 0, src);
}

ct_status_t ct_config_set(ct_config_t *cfg, const char *assignment, const char *origin)
{
    return set_impl(cfg, assignment, origin, NULL);
}

/* ---- structural pass (libyaml events) -------------------------------------- */

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev;
    int have_ev;
    const char *origin;
    int n_errors;
    int depth;                   /* mappings and sequences open */
    int empty;                   /* no root mapping: nothing to load */
    int stored;                  /* a checkpoint's config: retired keys are skipped */
    int line[N_FIELDS];          /* line of each key present, 0 = absent */
    unsigned char quoted[N_FIELDS];
    int section_line[N_SECTIONS];
} scan_t;

static const char *event_kind(yaml_event_type_t t)
{
    switch (t) {
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "an unexpected YAML event";
    }
}

static int ev_line(const scan_t *sc) { return (int)sc->ev.start_mark.line + 1; }

/* Problems reported in one file before the pass gives up on the rest. */
#define SCAN_MAX_ERRORS 20

/* Advances to the next event. Returns -1 after logging a syntax error, at
 * nesting deeper than CT_CONFIG_MAX_DEPTH (libyaml's time grows with the
 * square of the depth: 200000 levels took minutes) and once
 * SCAN_MAX_ERRORS problems have been reported. */
static int scan_next(scan_t *sc)
{
    if (sc->have_ev) yaml_event_delete(&sc->ev);
    sc->have_ev = 0;
    if (sc->n_errors >= SCAN_MAX_ERRORS) {
        CT_LOG_ERROR("config error: %s: %d problems found; not reading further", sc->origin,
                     sc->n_errors);
        return -1;
    }
    if (!yaml_parser_parse(&sc->parser, &sc->ev)) {
        char loc[512];
        const yaml_parser_t *p = &sc->parser;
        CT_LOG_ERROR("config error: %s: invalid YAML: %s%s%s",
                     where(sc->origin, (int)p->problem_mark.line + 1, loc, sizeof loc),
                     p->problem ? p->problem : "parse error", p->context ? " " : "",
                     p->context ? p->context : "");
        sc->n_errors++;
        return -1;
    }
    sc->have_ev = 1;
    yaml_event_type_t t = sc->ev.type;
    if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
        if (++sc->depth > CT_CONFIG_MAX_DEPTH) {
            char loc[512];
            CT_LOG_ERROR("config error: %s: YAML nested more than %d levels deep; not reading "
                         "further (a config has two levels: sections, then keys)",
                         where(sc->origin, ev_line(sc), loc, sizeof loc), CT_CONFIG_MAX_DEPTH);
            sc->n_errors++;
            return -1;
        }
    } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
        sc->depth--;
    }
    return 0;
}

/* The current event starts a node; consumes the rest of it. */
static int scan_skip_node(scan_t *sc)
{
    int depth = 0;
    do {
        yaml_event_type_t t = sc->ev.type;
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) depth++;
        else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) depth--;
        if (depth == 0) return 0;
    } while (scan_next(sc) == 0);
    return -1;
}

/* Scalar text of the current event, for messages: a long one is clipped
 * (ct_log_clip). buf holds CT_LOG_CLIP_BUF bytes. */
static const char *scalar_text(const scan_t *sc, char *buf)
{
    return ct_log_clip_n((const char *)sc->ev.data.scalar.value, sc->ev.data.scalar.length, buf);
}

/* A scalar holding a NUL ("n_layer\0x" in double quotes) names no key. */
static int scalar_has_nul(const scan_t *sc)
{
    return memchr(sc->ev.data.scalar.value, 0, sc->ev.data.scalar.length) != NULL;
}

/* Reads the keys of section `s`; the current event is its MAPPING_START. */
static int scan_section(scan_t *sc, int s)
{
    char loc[512], key[CT_LOG_CLIP_BUF], valid[512];
    for (;;) {
        if (scan_next(sc) != 0) return -1;
        if (sc->ev.type == YAML_MAPPING_END_EVENT) return 0;
        int line = ev_line(sc);
        int idx = -1;
        if (sc->ev.type != YAML_SCALAR_EVENT) {
            CT_LOG_ERROR("config error: %s: a key in section '%s' is %s; keys must be plain names",
                         where(sc->origin, line, loc, sizeof loc), sections[s],
                         event_kind(sc->ev.type));
            sc->n_errors++;
            if (scan_skip_node(sc) != 0) return -1;
        } else {
            scalar_text(sc, key);
            idx = scalar_has_nul(sc) ? -1 : find_field(s, key);
            const char *why = idx < 0 ? retired_why(sections[s], key) : NULL;
            if (why && sc->stored) {
                CT_LOG_DEBUG("%s: skipping retired key '%s.%s'", sc->origin, sections[s], key);
            } else if (why) {
                CT_LOG_ERROR("config error: %s: key '%s.%s' was removed: %s",
                             where(sc->origin, line, loc, sizeof loc), sections[s], key, why);
                sc->n_errors++;
            } else if (idx < 0) {
                list_keys(s, valid, sizeof valid);
                CT_LOG_ERROR("config error: %s: unknown key '%s.%s'; valid keys in %s: %s",
                             where(sc->origin, line, loc, sizeof loc), sections[s], key,
                             sections[s], valid);
                sc->n_errors++;
            } else if (sc->line[idx]) {
                CT_LOG_ERROR("config error: %s: duplicate key '%s.%s' (first set at line %d)",
                             where(sc->origin, line, loc, sizeof loc), sections[s], key,
                             sc->line[idx]);
                sc->n_errors++;
                idx = -1;
            }
        }
        if (scan_next(sc) != 0) return -1;
        if (sc->ev.type == YAML_SCALAR_EVENT) {
            if (idx >= 0) {
                sc->line[idx] = line;
                sc->quoted[idx] = sc->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            }
            continue;
        }
        if (idx >= 0) {
            CT_LOG_ERROR("config error: %s: %s.%s: expected a scalar value, got %s",
                         where(sc->origin, line, loc, sizeof loc), sections[s], key,
                         event_kind(sc->ev.type));
            sc->n_errors++;
        }
        if (scan_skip_node(sc) != 0) return -1;
    }
}

/* Checks the structure of the document and records key lines. Returns -1 if
 * anything is wrong (every problem already logged). */
static int scan_document(scan_t *sc)
{
    char loc[512], name[CT_LOG_CLIP_BUF], valid[256];
    int seen_section[N_SECTIONS] = {0};
    if (scan_next(sc) != 0) return -1; /* STREAM_START */
    if (scan_next(sc) != 0) return -1;
    if (sc->ev.type == YAML_STREAM_END_EVENT) {
        sc->empty = 1; /* empty file or only comments */
        return 0;
    }
    if (scan_next(sc) != 0) return -1; /* root node after DOCUMENT_START */
    if (sc->ev.type == YAML_SCALAR_EVENT && sc->ev.data.scalar.length == 0 &&
        sc->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        sc->empty = 1; /* a bare "---" */
    } else if (sc->ev.type != YAML_MAPPING_START_EVENT) {
        list_sections(valid, sizeof valid);
        CT_LOG_ERROR("config error: %s: the top level is %s; expected a mapping of sections (%s)",
                     where(sc->origin, ev_line(sc), loc, sizeof loc), event_kind(sc->ev.type),
                     valid);
        sc->n_errors++;
        return -1;
    } else {
        for (;;) {
            if (scan_next(sc) != 0) return -1;
            if (sc->ev.type == YAML_MAPPING_END_EVENT) break;
            int line = ev_line(sc);
            int s = -1;
            if (sc->ev.type != YAML_SCALAR_EVENT) {
                CT_LOG_ERROR("config error: %s: a top-level key is %s; keys must be section names",
                             where(sc->origin, line, loc, sizeof loc), event_kind(sc->ev.type));
                sc->n_errors++;
                if (scan_skip_node(sc) != 0) return -1;
            } else {
                scalar_text(sc, name);
                s = scalar_has_nul(sc) ? -1 : find_section(name);
                if (s < 0) {
                    list_sections(valid, sizeof valid);
                    CT_LOG_ERROR("config error: %s: unknown section '%s'; valid sections: %s",
                                 where(sc->origin, line, loc, sizeof loc), name, valid);
                    sc->n_errors++;
                } else if (seen_section[s]) {
                    CT_LOG_ERROR("config error: %s: duplicate section '%s' (first at line %d)",
                                 where(sc->origin, line, loc, sizeof loc), name, seen_section[s]);
                    sc->n_errors++;
                    s = -1;
                } else {
                    seen_section[s] = line;
                }
            }
            if (scan_next(sc) != 0) return -1;
            if (s >= 0 && sc->ev.type == YAML_MAPPING_START_EVENT) {
                if (scan_section(sc, s) != 0) return -1;
                continue;
            }
            if (s >= 0) {
                char what[CT_LOG_CLIP_BUF + 16];
                if (sc->ev.type == YAML_SCALAR_EVENT && sc->ev.data.scalar.length == 0) {
                    snprintf(what, sizeof what, "empty");
                } else if (sc->ev.type == YAML_SCALAR_EVENT) {
                    char tmp[CT_LOG_CLIP_BUF];
                    snprintf(what, sizeof what, "a scalar '%s'", scalar_text(sc, tmp));
                } else {
                    snprintf(what, sizeof what, "%s", event_kind(sc->ev.type));
                }
                CT_LOG_ERROR("config error: %s: section '%s' is %s; expected a mapping of keys "
                             "(write '%s: {}' for an empty section)",
                             where(sc->origin, line, loc, sizeof loc), name, what, name);
                sc->n_errors++;
            }
            if (scan_skip_node(sc) != 0) return -1;
        }
    }
    if (scan_next(sc) != 0) return -1; /* DOCUMENT_END */
    if (scan_next(sc) != 0) return -1;
    if (sc->ev.type != YAML_STREAM_END_EVENT) {
        CT_LOG_ERROR("config error: %s: more than one YAML document; expected one",
                     where(sc->origin, ev_line(sc), loc, sizeof loc));
        sc->n_errors++;
    }
    return sc->n_errors ? -1 : 0;
}

/* ---- libcyaml load ----------------------------------------------------------- */

/* libcyaml loads every leaf as an optional string into this flat array. */
typedef struct {
    char *v[N_FIELDS];
} raw_config_t;

typedef struct {
    cyaml_schema_field_t top[N_SECTIONS + 1];
    cyaml_schema_field_t keys[N_FIELDS + N_SECTIONS]; /* per section, NULL-key terminated */
    cyaml_schema_value_t root;
} schema_t;

static void schema_build(schema_t *sch)
{
    memset(sch, 0, sizeof *sch);
    int k = 0;
    for (int s = 0; s < N_SECTIONS; s++) {
        int count;
        int first = section_fields(s, &count);
        cyaml_schema_field_t *sec_keys = &sch->keys[k];
        for (int i = 0; i < count; i++) {
            cyaml_schema_field_t *sf = &sch->keys[k++];
            sf->key = config_fields[first + i].key;
            sf->data_offset = (uint32_t)(i * sizeof(char *));
            sf->value.type = CYAML_STRING;
            sf->value.flags = CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL;
            sf->value.data_size = sizeof(char);
            sf->value.string.min = 0;
            sf->value.string.max = CYAML_UNLIMITED;
        }
        k++; /* terminator, zeroed */
        cyaml_schema_field_t *tf = &sch->top[s];
        tf->key = sections[s];
        tf->data_offset = (uint32_t)(offsetof(raw_config_t, v) + (size_t)first * sizeof(char *));
        tf->value.type = CYAML_MAPPING;
        tf->value.flags = CYAML_FLAG_OPTIONAL;
        tf->value.data_size = (uint32_t)(count * sizeof(char *));
        tf->value.mapping.fields = sec_keys;
    }
    sch->root.type = CYAML_MAPPING;
    sch->root.flags = CYAML_FLAG_POINTER;
    sch->root.data_size = sizeof(raw_config_t);
    sch->root.mapping.fields = sch->top;
}

typedef struct {
    char buf[1024];
    size_t used;
} cyaml_log_buf_t;

static void cyaml_log_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    cyaml_log_buf_t *lb = ctx;
    if (lb->used + 1 >= sizeof lb->buf) return;
    int n = vsnprintf(lb->buf + lb->used, sizeof lb->buf - lb->used, fmt, args);
    if (n > 0) lb->used += (size_t)n;
    if (lb->used >= sizeof lb->buf) lb->used = sizeof lb->buf - 1;
    for (char *p = lb->buf; *p; p++)
        if (*p == '\n') *p = ' ';
}

/* Loads YAML text over cfg (which holds defaults or earlier values). */
static CT_MUST_USE ct_status_t load_text(ct_config_t *cfg, const char *text, size_t len, const char *origin,
                             int stored, srcmap_t *src)
{
    if (len > CT_CONFIG_MAX_BYTES) {
        CT_LOG_ERROR("config error: %s: larger than %d MiB, the most a config may hold (one "
                     "is a few KiB of YAML)\n---> HINT: is this the right file?", origin,
                     CT_CONFIG_MAX_BYTES >> 20);
        return CT_ERR_CONFIG;
    }
    scan_t *sc = calloc(1, sizeof *sc);
    if (!sc) {
        CT_LOG_ERROR("config error: %s: out of memory", origin);
        return CT_ERR_NO_MEMORY;
    }
    sc->origin = origin;
    sc->stored = stored;
    ct_status_t st = CT_OK;
    if (!yaml_parser_initialize(&sc->parser)) {
        CT_LOG_ERROR("config error: %s: cannot initialize the YAML parser (out of memory)", origin);
        st = CT_ERR_NO_MEMORY;
        goto free_scan;
    }
    yaml_parser_set_input_string(&sc->parser, (const unsigned char *)text, len);
    int scan_rc = scan_document(sc);
    if (sc->have_ev) yaml_event_delete(&sc->ev);
    yaml_parser_delete(&sc->parser);
    if (scan_rc != 0) {
        st = CT_ERR_CONFIG;
        goto free_scan;
    }
    if (sc->empty) goto free_scan;

    schema_t sch;
    schema_build(&sch);
    cyaml_log_buf_t lb = {.used = 0};
    const cyaml_config_t ycfg = {
        .log_fn = cyaml_log_capture,
        .log_ctx = &lb,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        /* the structural pass has rejected unknown keys; retired ones are skipped */
        .flags = CYAML_CFG_NO_ALIAS | CYAML_CFG_IGNORE_UNKNOWN_KEYS,
    };
    raw_config_t *raw = NULL;
    cyaml_err_t err = cyaml_load_data((const uint8_t *)text, len, &ycfg, &sch.root,
                                      (cyaml_data_t **)&raw, NULL);
    if (err != CYAML_OK) {
        CT_LOG_ERROR("config error: %s: libcyaml: %s%s%s", origin, cyaml_strerror(err),
                     lb.used ? ": " : "", lb.buf);
        st = CT_ERR_CONFIG;
        goto free_scan;
    }
    if (raw) {
        for (int i = 0; i < N_FIELDS; i++) {
            if (!raw->v[i]) continue;
            ct_status_t fst =
                apply_field(cfg, i, raw->v[i], sc->quoted[i], origin, sc->line[i], src);
            if (fst != CT_OK && (st == CT_OK || fst == CT_ERR_NO_MEMORY)) st = fst;
        }
        cyaml_free(&ycfg, &sch.root, raw, 0);
    }
free_scan:
    free(sc);
    return st;
}

/* ---- cross-field validation --------------------------------------------------- */

static int field_index(size_t offset)
{
    for (int i = 0; i < N_FIELDS; i++)
        if (config_fields[i].offset == offset) return i;
    CT_ASSERT(0 && "no such field");
    return -1;
}

/* "model.n_embd = 768 (from x.yaml:3)" into buf. */
static const char *describe_source(const ct_config_t *cfg, size_t offset, const srcmap_t *src,
                                   char *buf, size_t n)
{
    int i = field_index(offset);
    const field_t *f = &config_fields[i];
    const char *p = (const char *)cfg + offset;
    char val[64], loc[512];
    if (f->type == FT_INT) snprintf(val, sizeof val, "%d", *(const int *)p);
    else if (f->type == FT_INT64) snprintf(val, sizeof val, "%" PRId64, *(const int64_t *)p);
    else if (f->type == FT_FLOAT) snprintf(val, sizeof val, "%g", (double)*(const float *)p);
    else if (f->type == FT_ENUM) snprintf(val, sizeof val, "%s", f->names[*(const int *)p]);
    else snprintf(val, sizeof val, "?");
    if (src && src->origin[i])
        snprintf(buf, n, "%s.%s = %s (from %s)", f->section, f->key, val,
                 where(src->origin[i], src->line[i], loc, sizeof loc));
    else
        snprintf(buf, n, "%s.%s = %s (default)", f->section, f->key, val);
    return buf;
}

#define SRC_(sec, key, buf) describe_source(cfg, OFF_(sec, key), src, buf, sizeof buf)

int ct_config_ffn_dim(const ct_model_config_t *m)
{
    if (m->ffn_dim > 0) return m->ffn_dim;
    /* Meta's rule (llama/model.py): hidden = int(2 * 4C / 3), scaled by
     * ffn_dim_multiplier, rounded up to multiple_of; bounded by the key
     * ranges: 8 * 64K / 3 * 64 fits an int */
    int64_t hidden = 8 * (int64_t)m->n_embd / 3;
    hidden = (int64_t)((double)m->ffn_multiplier * (double)hidden);
    int64_t q = m->ffn_multiple_of;
    hidden = (hidden + q - 1) / q * q;
    return (int)(hidden > 0 ? hidden : q);
}

/* The model section's llama-only keys: with arch gpt2 each must keep its
 * default; with arch llama they must describe a model that can be built
 * and split over parallel.tp. */
static CT_MUST_USE ct_status_t validate_arch(const ct_config_t *cfg, const srcmap_t *src)
{
    char a[768], b[768];
    const ct_model_config_t *m = &cfg->model;
    ct_status_t st = CT_OK;
    if (m->arch == CT_ARCH_GPT2) {
        ct_config_t def;
        ct_config_defaults(&def);
        for (int i = field_index(OFF_(model, n_kv_head)); i < N_FIELDS; i++) {
            const field_t *f = &config_fields[i];
            if (strcmp(f->section, "model") != 0) break;
            if (memcmp((const char *)cfg + f->offset, (const char *)&def + f->offset, f->size) == 0)
                continue;
            CT_LOG_ERROR("config error: %s applies to Llama models only, and this one is "
                         "GPT-2 (model.arch = gpt2)\n---> HINT: delete the key, or set "
                         "model.arch: llama", describe_source(cfg, f->offset, src, a, sizeof a));
            st = CT_ERR_CONFIG;
        }
        ct_config_free(&def);
        return st;
    }
    const int kv = m->n_kv_head ? m->n_kv_head : m->n_head;
    if (m->n_head % kv != 0) {
        CT_LOG_ERROR("config error: %s is not a multiple of %s: grouped-query attention shares "
                     "each key/value head among n_head / n_kv_head query heads\n---> HINT: "
                     "choose n_kv_head among the divisors of n_head",
                     SRC_(model, n_head, a), SRC_(model, n_kv_head, b));
        st = CT_ERR_CONFIG;
    }
    if (m->n_embd % m->n_head == 0 && (m->n_embd / m->n_head) % 2 != 0) {
        CT_LOG_ERROR("config error: the head size %s / %s = %d is odd: RoPE rotates pairs of "
                     "channels\n---> HINT: choose n_embd and n_head with an even quotient",
                     SRC_(model, n_embd, a), SRC_(model, n_head, b), m->n_embd / m->n_head);
        st = CT_ERR_CONFIG;
    }
    const int ffn = ct_config_ffn_dim(m);
    if (ffn % cfg->parallel.tp != 0) {
        CT_LOG_ERROR("config error: the SwiGLU width %d (%s; 0 means from n_embd, "
                     "ffn_multiplier and ffn_multiple_of) is not divisible by %s: tensor "
                     "parallelism splits whole hidden units\n---> HINT: set model.ffn_dim to "
                     "a multiple of parallel.tp", ffn, SRC_(model, ffn_dim, a),
                     SRC_(parallel, tp, b));
        st = CT_ERR_CONFIG;
    }
    if (m->rope_scaling == CT_ROPE_SCALING_LLAMA3 &&
        !(m->rope_high_freq_factor > m->rope_low_freq_factor)) {
        CT_LOG_ERROR("config error: %s must be above %s (Llama 3 RoPE scaling blends between "
                     "the two wavelengths they set)",
                     SRC_(model, rope_high_freq_factor, a), SRC_(model, rope_low_freq_factor, b));
        st = CT_ERR_CONFIG;
    }
    return st;
}

/* Checks that span several keys; single-key ranges were checked on parsing. */
static CT_MUST_USE ct_status_t validate(const ct_config_t *cfg, const srcmap_t *src)
{
    char a[768], b[768], c[768];
    ct_status_t st = CT_OK;
    if (cfg->model.n_embd % cfg->model.n_head != 0) {
        CT_LOG_ERROR("config error: %s is not a multiple of %s", SRC_(model, n_embd, a),
                     SRC_(model, n_head, b));
        st = CT_ERR_CONFIG;
    }
    if (cfg->train.seq_len > cfg->model.max_seq_len) {
        CT_LOG_ERROR("config error: %s exceeds %s", SRC_(train, seq_len, a),
                     SRC_(model, max_seq_len, b));
        st = CT_ERR_CONFIG;
    }
    /* The batch products, each checked: the per-key ranges alone allow
     * B * T = 2^40, and steps * global batch = 2^77. */
    int micro;
    int64_t bt, gb, total;
    if (__builtin_mul_overflow(cfg->train.batch_size, cfg->train.seq_len, &micro)) {
        CT_LOG_ERROR("config error: a micro-batch of %s times %s is more than %d tokens, the most "
                     "one micro-batch may hold\n---> HINT: lower train.batch_size and reach the "
                     "global batch with train.batch_tokens (gradient accumulation)",
                     SRC_(train, batch_size, a), SRC_(train, seq_len, b), INT_MAX);
        return CT_ERR_CONFIG;
    }
    if (__builtin_mul_overflow((int64_t)micro, (int64_t)cfg->parallel.dp, &bt)) {
        CT_LOG_ERROR("config error: train.batch_size * train.seq_len * %s overflows",
                     SRC_(parallel, dp, a));
        return CT_ERR_CONFIG;
    }
    gb = cfg->train.batch_tokens ? cfg->train.batch_tokens : bt;
    if (gb / bt > INT_MAX) {
        CT_LOG_ERROR("config error: %s means %" PRId64 " micro-batches per rank per step, more "
                     "than %d", SRC_(train, batch_tokens, a), gb / bt, INT_MAX);
        st = CT_ERR_CONFIG;
    }
    if (__builtin_mul_overflow(gb, (int64_t)cfg->train.steps, &total)) {
        CT_LOG_ERROR("config error: %s at a global batch of %" PRId64 " tokens is more than 2^63 "
                     "tokens in all", SRC_(train, steps, a), gb);
        st = CT_ERR_CONFIG;
    }
    if (cfg->train.batch_tokens != 0 && cfg->train.batch_tokens % bt != 0) {
        CT_LOG_ERROR("config error: %s is not a multiple of train.batch_size * train.seq_len * "
                     "parallel.dp = %" PRId64 " (%s, %s, dp %d); use 0 for one micro-batch per "
                     "rank per step",
                     SRC_(train, batch_tokens, a), bt, SRC_(train, batch_size, b),
                     SRC_(train, seq_len, c), cfg->parallel.dp);
        st = CT_ERR_CONFIG;
    }
    if (cfg->model.n_head % cfg->parallel.tp != 0) {
        CT_LOG_ERROR("config error: %s is not divisible by %s: tensor parallelism splits whole "
                     "heads\n---> HINT: choose parallel.tp among the divisors of n_head",
                     SRC_(model, n_head, a), SRC_(parallel, tp, b));
        st = CT_ERR_CONFIG;
    }
    if (cfg->parallel.sp && cfg->parallel.tp > 1 && cfg->train.seq_len % cfg->parallel.tp != 0) {
        CT_LOG_ERROR("config error: %s with %s: sequence parallelism splits each sequence over "
                     "the TP group, but %s does not divide by it\n---> HINT: choose "
                     "train.seq_len a multiple of parallel.tp, or set parallel.sp: false",
                     SRC_(parallel, sp, a), SRC_(parallel, tp, b), SRC_(train, seq_len, c));
        st = CT_ERR_CONFIG;
    }
    /* The vocabulary is padded to a multiple of 128 * tp (model/model.h), so
     * every tp divides it; the padded size must still be an int. */
    int64_t vq = 128 * (int64_t)cfg->parallel.tp;
    int64_t vp = ((int64_t)cfg->model.vocab_size + vq - 1) / vq * vq;
    if (vp > INT32_MAX) {
        CT_LOG_ERROR("config error: %s padded to a multiple of 128 * %s is %" PRId64
                     ", beyond 2^31 - 1", SRC_(model, vocab_size, a), SRC_(parallel, tp, b), vp);
        st = CT_ERR_CONFIG;
    }
    if (validate_arch(cfg, src) != CT_OK) st = CT_ERR_CONFIG;
    return st;
}

/* ---- public loading -------------------------------------------------------------- */

static CT_MUST_USE ct_status_t read_file(const char *path, char **text_p, size_t *len_p)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        CT_LOG_ERROR("config error: cannot open config file '%s': %s%s", path, strerror(e),
                     e == ENOENT && path[0] != '/'
                         ? "\n---> HINT: a relative path is taken from the working directory"
                         : "");
        return e == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ct_status_t st = CT_OK;
    if (!buf) goto no_memory;
    /* Reads at most one byte past the limit: a huge file (or /dev/zero) is
     * refused without reading it all. */
    while (len <= CT_CONFIG_MAX_BYTES) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) goto no_memory;
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - 1 - len;
        if (want > (size_t)CT_CONFIG_MAX_BYTES + 1 - len) want = (size_t)CT_CONFIG_MAX_BYTES + 1 - len;
        size_t n = fread(buf + len, 1, want, fp);
        len += n;
        if (n == 0) break;
    }
    if (ferror(fp)) {
        CT_LOG_ERROR("config error: cannot read config file '%s': %s", path, strerror(errno));
        st = CT_ERR_IO;
        goto free_buf;
    }
    buf[len] = 0;
    fclose(fp);
    *text_p = buf;
    *len_p = len;
    return CT_OK;
no_memory:
    CT_LOG_ERROR("config error: out of memory reading '%s'", path);
    st = CT_ERR_NO_MEMORY;
free_buf:
    free(buf);
    fclose(fp);
    return st;
}

ct_status_t ct_config_load(const char *path, const char *const *sets, int n_sets, ct_config_t *cfg)
{
    CT_ASSERT(cfg && n_sets >= 0 && (n_sets == 0 || sets));
    ct_config_defaults(cfg);
    srcmap_t src = {{0}, {0}};
    char **set_origins = NULL;
    ct_status_t st = CT_OK;
    if (path) {
        char *text = NULL;
        size_t len = 0;
        st = read_file(path, &text, &len);
        if (st != CT_OK) goto fail;
        st = load_text(cfg, text, len, path, 0, &src);
        free(text);
        if (st != CT_OK) goto fail;
    }
    if (n_sets > 0) {
        set_origins = calloc((size_t)n_sets, sizeof *set_origins);
        if (!set_origins) {
            CT_LOG_ERROR("config error: out of memory");
            st = CT_ERR_NO_MEMORY;
            goto fail;
        }
    }
    for (int i = 0; i < n_sets; i++) {
        /* errors name the argument, with a long value clipped */
        char shown[CT_LOG_CLIP_BUF];
        const char *arg = ct_log_clip(sets[i], shown);
        size_t n = strlen(arg) + sizeof "--set ";
        set_origins[i] = malloc(n);
        if (!set_origins[i]) {
            CT_LOG_ERROR("config error: out of memory");
            st = CT_ERR_NO_MEMORY;
            goto free_origins;
        }
        snprintf(set_origins[i], n, "--set %s", arg);
        ct_status_t sst = set_impl(cfg, sets[i], set_origins[i], &src);
        if (sst != CT_OK && st == CT_OK) st = sst;
    }
    if (st == CT_OK) st = validate(cfg, &src);
free_origins:
    for (int i = 0; i < n_sets && set_origins; i++) free(set_origins[i]);
    free(set_origins);
    if (st == CT_OK) return CT_OK;
fail:
    ct_config_free(cfg);
    return st;
}

ct_status_t ct_config_load_string(const char *yaml, const char *origin, ct_config_t *cfg)
{
    CT_ASSERT(yaml && cfg);
    if (!origin) origin = "<string>";
    ct_config_defaults(cfg);
    srcmap_t src = {{0}, {0}};
    ct_status_t st = load_text(cfg, yaml, strlen(yaml), origin, 1, &src);
    if (st == CT_OK) st = validate(cfg, &src);
    if (st != CT_OK) ct_config_free(cfg);
    return st;
}

/* ---- YAML output ------------------------------------------------------------------ */

/* Double-quoted YAML scalar that reads back as the same bytes. Printable
 * UTF-8 passes through; escaped are ASCII controls, the C1 controls
 * U+0080..U+009F (not printable in YAML), the line separators U+0085,
 * U+2028 and U+2029 (folded inside a quoted scalar), the byte-order mark
 * and U+FFFE/U+FFFF. Strings are valid UTF-8 (parse_value checks); an
 * invalid byte would be written as \xNN, which reads back as U+00NN. */
static void write_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        size_t k = *p < 0x80 ? 1 : ct_utf8_decode(p, strnlen((const char *)p, 4), &cp);
        if (*p < 0x80) {
            switch (*p) {
            case '"': fputs("\\\"", out); break;
            case '\\': fputs("\\\\", out); break;
            case '\n': fputs("\\n", out); break;
            case '\t': fputs("\\t", out); break;
            case '\r': fputs("\\r", out); break;
            default:
                if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
                else fputc(*p, out);
            }
        } else if (k == 0) {
            fprintf(out, "\\x%02x", *p);
            k = 1;
        } else if (cp <= 0x9f) {
            fprintf(out, "\\x%02x", (unsigned)cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
            fprintf(out, "\\u%04x", (unsigned)cp);
        } else {
            fwrite(p, 1, k, out);
        }
        p += k;
    }
    fputc('"', out);
}

char *ct_config_to_yaml(const ct_config_t *cfg)
{
    CT_ASSERT(cfg);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) return NULL;
    fputs("# ctrain resolved configuration\n", out);
    for (int s = 0; s < N_SECTIONS; s++) {
        int count;
        int first = section_fields(s, &count);
        fprintf(out, "%s:\n", sections[s]);
        for (int i = first; i < first + count; i++) {
            const field_t *f = &config_fields[i];
            const char *p = (const char *)cfg + f->offset;
            fprintf(out, "  %s: ", f->key);
            switch (f->type) {
            case FT_INT: fprintf(out, "%d", *(const int *)p); break;
            case FT_INT64: fprintf(out, "%" PRId64, *(const int64_t *)p); break;
            case FT_FLOAT: fprintf(out, "%.9g", (double)*(const float *)p); break;
            case FT_ENUM: {
                int e = *(const int *)p;
                int n_names = 0;
                while (f->names[n_names]) n_names++;
                CT_ASSERT(e >= 0 && e < n_names);
                fputs(f->names[e], out);
                break;
            }
            case FT_STRING: write_quoted(out, *(char *const *)p ? *(char *const *)p : ""); break;
            }
            fputc('\n', out);
        }
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
