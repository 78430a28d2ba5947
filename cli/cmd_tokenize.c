/* `ctrain tokenize train|encode|decode|export|pretokenize`: train a
 * byte-level BPE vocabulary, encode text into llm.c-compatible token shards,
 * decode shards to text, convert tokenizers between ctrain's, GPT-2's and
 * tiktoken's files, and show how text is split into pre-tokens. Hugging
 * Face tokenizer.json files (byte-level BPE) are read wherever a tokenizer is
 * asked for.
 *
 * Tokenizer options (encode, decode, export, pretokenize): --tokenizer PATH
 * (a ctrain .bpe file, a .tiktoken file, a tokenizer.json, or a directory of
 * a Hugging Face model or of GPT-2 files),
 * --vocab gpt2 (GPT-2's files from --gpt2-dir DIR or $CT_GPT2_VOCAB_DIR, the
 * one place this variable is read), or --vocab-json F --merges F.
 *
 * Documents: by default each input file is one document; --doc-sep splits
 * files at a separator string (read in blocks, so memory is bounded by the
 * largest document); --jsonl reads one JSON object per line and takes its
 * "text" string. Empty documents are skipped. encode writes the end-of-text
 * token before every document, as llm.c's fineweb shards do.
 *
 * Left out: training on more text than fits in memory (train holds all
 * documents), multithreaded encoding, and compressed inputs.
 *
 * Exit codes: 0 success, 1 runtime error (logged where it happened), 2 usage
 * error (printed with a hint). */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/env.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/data.h"
#include "cli/cli.h"

#define DEFAULT_SHARD_TOKENS 100000000LL
#define READ_BLOCK (1 << 20)
#define PROGRESS_SECONDS 10.0

static const char *k_usage =
    "usage: ctrain tokenize <command> [options]\n"
    "\n"
    "Byte-level BPE tokenizer: learn a vocabulary, encode text into llm.c-compatible\n"
    "token shards, decode shards back to text.\n"
    "\n"
    "commands:\n"
    "  train        learn a vocabulary from text\n"
    "  encode       turn text into token shards\n"
    "  decode       print the text held in token shards\n"
    "  export       write a tokenizer as GPT-2's vocab.json + merges.txt, tiktoken or ctrain\n"
    "  pretokenize  print the pre-tokens (words) text is split into before merging\n"
    "\n"
    "Hugging Face tokenizer.json files of byte-level BPE models (Llama 3, Qwen2,\n"
    "SmolLM2, GPT-2) work everywhere a tokenizer is asked for: --tokenizer FILE.json,\n"
    "or the model's directory. So does GPT-2's own vocabulary: --vocab gpt2\n"
    "with --gpt2-dir DIR (or $CT_GPT2_VOCAB_DIR) holding vocab.json + merges.txt,\n"
    "encoder.json + vocab.bpe, or gpt2.tiktoken.\n"
    "\n"
    "Run 'ctrain tokenize <command> --help' for the options of a command.\n";

static const char *k_usage_train =
    "usage: ctrain tokenize train --vocab-size N --out FILE.bpe [--doc-sep STR] [--jsonl]\n"
    "                             INPUT...\n"
    "\n"
    "Learns a byte-level BPE vocabulary of N tokens: the 256 bytes, N - 257 merges and\n"
    "the end-of-text token (the last id). INPUT is a text file, or '-' for standard\n"
    "input. All documents are held in memory while training.\n"
    "\n"
    "options:\n"
    "  --vocab-size N   tokens in the vocabulary, 257..16777216 (GPT-2 has 50257)\n"
    "  --out FILE       where to write the tokenizer\n"
    "  --doc-sep STR    split each file into documents at every STR; C escapes\n"
    "                   (\\n \\t \\r \\0 \\\\ \\xHH) are allowed. Default: one document per file\n"
    "  --jsonl          each input line is a JSON object whose \"text\" string is a\n"
    "                   document; other fields are ignored\n"
    "  -h, --help       show this help\n"
    "\n"
    "Text is split into pre-tokens (words) as GPT-2 splits it (its regex, with Unicode\n"
    "16.0 classes); merges never cross them, nor documents. Empty documents are\n"
    "skipped.\n";

#define TOKENIZER_OPTIONS                                                                   \
    "tokenizer (exactly one of):\n"                                                           \
    "  --tokenizer PATH   a file from 'ctrain tokenize train', a tiktoken file (*.tiktoken),\n" \
    "                     a Hugging Face tokenizer.json (*.json: byte-level BPE, its special\n" \
    "                     tokens matched in the text as Hugging Face does), or a directory\n" \
    "                     holding tokenizer.json or GPT-2's files (as for --gpt2-dir)\n"      \
    "  --vocab gpt2       GPT-2's vocabulary, from --gpt2-dir DIR or else the directory\n"     \
    "                     in $CT_GPT2_VOCAB_DIR: vocab.json + merges.txt, encoder.json +\n"    \
    "                     vocab.bpe, or gpt2.tiktoken (a tokenizer.json there is read\n"      \
    "                     first). Ids are GPT-2's (end-of-text 50256)\n"                       \
    "  --vocab-json F --merges F   GPT-2-format files by name\n"

static const char *k_usage_encode =
    "usage: ctrain tokenize encode TOKENIZER --out PREFIX [--val-every K]\n"
    "                              [--shard-tokens N] [--doc-sep STR] [--jsonl] INPUT...\n"
    "\n"
    "Encodes documents into PREFIX_train_000000.bin, PREFIX_train_000001.bin, ...\n"
    "(llm.c shards: uint16 tokens when the vocabulary has at most 65536 tokens, else\n"
    "uint32). The end-of-text token is written before every document (for a\n"
    "tokenizer.json, the special token its post-processor puts first, such as Llama 3's\n"
    "<|begin_of_text|>, else <|endoftext|>). INPUT is a text file, or '-' for standard\n"
    "input.\n"
    "\n"
    TOKENIZER_OPTIONS
    "\n"
    "options:\n"
    "  --out PREFIX       shard name prefix; its directory must exist\n"
    "  --val-every K      send documents K, 2K, 3K, ... to PREFIX_val_000000.bin, ...\n"
    "                     (K >= 2; default 0: no validation split)\n"
    "  --shard-tokens N   tokens per shard, 1..2147483647 (default 100000000)\n"
    "  --doc-sep STR      split each file into documents at every STR (C escapes allowed);\n"
    "                     default: one document per file\n"
    "  --jsonl            each input line is a JSON object whose \"text\" string is a document\n"
    "  -h, --help         show this help\n"
    "\n"
    "Empty documents are skipped. Shards of an earlier run with the same PREFIX are\n"
    "overwritten; if encoding fails, the shards of this run are deleted.\n";

static const char *k_usage_decode =
    "usage: ctrain tokenize decode TOKENIZER SHARD.bin...\n"
    "\n"
    "Writes the text held in the shards to standard output, shard after shard.\n"
    "End-of-text tokens are written as <|endoftext|> (special tokens of a\n"
    "tokenizer.json as their text). TOKENIZER is the one the shards were encoded with.\n"
    "\n"
    TOKENIZER_OPTIONS
    "  -h, --help         show this help\n";

static const char *k_usage_export =
    "usage: ctrain tokenize export TOKENIZER --format gpt2|tiktoken|ctrain OUT\n"
    "\n"
    "Writes the tokenizer in another format, with the same ids:\n"
    "  gpt2      OUT is a directory (created if missing) that gets vocab.json and\n"
    "            merges.txt, as Hugging Face's GPT-2 tokenizer reads them\n"
    "  tiktoken  OUT is a rank file (tiktoken leaves out the end-of-text token, which\n"
    "            must be the last id); refused if it would not load back the same\n"
    "  ctrain    OUT is a .bpe file; only for tokenizers with ctrain's id layout\n"
    "A tokenizer.json is not exported: the other formats would lose its pre-tokenizer,\n"
    "normalizer and special tokens.\n"
    "\n"
    TOKENIZER_OPTIONS
    "  -h, --help         show this help\n";

static const char *k_usage_pretokenize =
    "usage: ctrain tokenize pretokenize [TOKENIZER] [--doc-sep STR] [--jsonl] INPUT...\n"
    "\n"
    "Prints the pre-tokens (words) of each input, one JSON string per line, as the\n"
    "tokenizer's pre-tokenizer splits them (GPT-2's regex when no tokenizer is given).\n"
    "Merges never cross these boundaries. For a tokenizer.json the pieces are after its\n"
    "normalizer (and prefix space), and its special tokens spelled in the text are\n"
    "pieces of their own. Bytes that are not valid UTF-8 are printed\n"
    "as \\udc80..\\udcff, Python's surrogateescape convention. Documents are split\n"
    "one by one, with an empty line between them. INPUT '-' is standard input.\n"
    "\n"
    TOKENIZER_OPTIONS
    "\n"
    "options:\n"
    "  --doc-sep STR      split each file into documents at every STR (C escapes allowed)\n"
    "  --jsonl            each input line is a JSON object whose \"text\" string is a document\n"
    "  -h, --help         show this help\n";

static const char *plural(long long n) { return n == 1 ? "" : "s"; }

/* ---- arguments ---------------------------------------------------------------- */

typedef struct {
    const char *cmd; /* "tokenize train", "tokenize encode", ... */
    const char *vocab_size, *out, *doc_sep, *tokenizer, *val_every, *shard_tokens;
    const char *vocab, *gpt2_dir, *vocab_json, *merges, *format;
    int jsonl;
    const char **inputs;
    int n_inputs;
} args_t;

/* Parses argv[2..] with cli/args.c for the options that `allowed` names, one
 * letter each: v --vocab-size, o --out, s --doc-sep, t --tokenizer (and the
 * other tokenizer options), k --val-every, n --shard-tokens, j --jsonl,
 * f --format. Positionals become a->inputs. Returns -1 to go on, or an exit
 * code. */
static int parse_args(int argc, char **argv, const char *allowed, const char *help, args_t *a)
{
    const struct {
        char key;
        ct_opt_t opt;
    } all[] = {
        {'v', {"--vocab-size", NULL, CT_OPT_STR, &a->vocab_size}},
        {'o', {"--out", NULL, CT_OPT_STR, &a->out}},
        {'s', {"--doc-sep", NULL, CT_OPT_STR, &a->doc_sep}},
        {'t', {"--tokenizer", NULL, CT_OPT_STR, &a->tokenizer}},
        {'k', {"--val-every", NULL, CT_OPT_STR, &a->val_every}},
        {'n', {"--shard-tokens", NULL, CT_OPT_STR, &a->shard_tokens}},
        {'t', {"--vocab", NULL, CT_OPT_STR, &a->vocab}},
        {'t', {"--gpt2-dir", NULL, CT_OPT_STR, &a->gpt2_dir}},
        {'t', {"--vocab-json", NULL, CT_OPT_STR, &a->vocab_json}},
        {'t', {"--merges", NULL, CT_OPT_STR, &a->merges}},
        {'f', {"--format", NULL, CT_OPT_STR, &a->format}},
        {'j', {"--jsonl", NULL, CT_OPT_FLAG, &a->jsonl}},
    };
    ct_opt_t opts[sizeof all / sizeof all[0]];
    int n = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (strchr(allowed, all[k].key)) opts[n++] = all[k].opt;
    ct_args_t p = {.cmd = a->cmd, .usage = help, .opts = opts, .n_opts = n, .max_pos = -1};
    int rc = ct_args_parse(&p, argc, argv, 2);
    a->inputs = p.pos; /* the caller frees it */
    a->n_inputs = p.n_pos;
    p.pos = NULL;
    ct_args_free(&p);
    return rc;
}

/* Loads the tokenizer the tokenizer options name into *bpe_p; with none
 * given, a usage error when `required`, else *bpe_p stays NULL. Returns -1
 * to go on, or an exit code. */
static int load_tokenizer(const args_t *a, int required, ct_bpe_t **bpe_p)
{
    int given = (a->tokenizer != NULL) + (a->vocab != NULL) + (a->vocab_json || a->merges);
    if (given > 1)
        return ct_cli_usage_error(a->cmd, "give one tokenizer: --tokenizer, --vocab gpt2, or "
                                   "--vocab-json with --merges");
    if (a->gpt2_dir && !a->vocab) return ct_cli_usage_error(a->cmd, "--gpt2-dir goes with --vocab gpt2");
    if (given == 0)
        return required ? ct_cli_usage_error(a->cmd, "a tokenizer is required: --tokenizer PATH, "
                                              "--vocab gpt2, or --vocab-json F --merges F")
                        : -1;
    ct_status_t st;
    if (a->tokenizer) {
        st = ct_bpe_load(a->tokenizer, bpe_p);
    } else if (a->vocab) {
        if (strcmp(a->vocab, "gpt2") != 0)
            return ct_cli_usage_error(a->cmd, "--vocab: unknown vocabulary '%s' (gpt2 is the one known; "
                                       "use --tokenizer for a file)", a->vocab);
        const char *dir = a->gpt2_dir ? a->gpt2_dir : ct_env_get("CT_GPT2_VOCAB_DIR");
        if (!dir || !*dir)
            return ct_cli_usage_error(a->cmd, "--vocab gpt2 needs the directory of GPT-2's files: pass "
                                       "--gpt2-dir DIR or set CT_GPT2_VOCAB_DIR (the directory "
                                       "holds vocab.json + merges.txt, encoder.json + vocab.bpe, "
                                       "or gpt2.tiktoken)");
        struct stat sb;
        int found = stat(dir, &sb) == 0;
        if (!found || !S_ISDIR(sb.st_mode)) {
            CT_LOG_ERROR("--vocab gpt2: %s (from %s) is not a directory: %s\n---> HINT: point "
                         "it at the directory holding GPT-2's vocab.json and merges.txt", dir,
                         a->gpt2_dir ? "--gpt2-dir" : "CT_GPT2_VOCAB_DIR",
                         found ? "it is a file" : strerror(errno));
            return 1;
        }
        st = ct_bpe_load(dir, bpe_p);
    } else {
        if (!a->vocab_json || !a->merges)
            return ct_cli_usage_error(a->cmd, "--vocab-json and --merges go together");
        st = ct_bpe_load_gpt2(a->vocab_json, a->merges, bpe_p);
    }
    return st == CT_OK ? -1 : 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Unescapes --doc-sep into a malloc'd buffer. */
static int parse_sep(const char *cmd, const char *s, char **sep_p, size_t *len_p)
{
    size_t n = strlen(s), k = 0;
    char *out = malloc(n + 1);
    if (!out) return 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[k++] = s[i];
            continue;
        }
        char e = s[++i];
        switch (e) {
        case 'n': out[k++] = '\n'; break;
        case 't': out[k++] = '\t'; break;
        case 'r': out[k++] = '\r'; break;
        case '0': out[k++] = 0; break;
        case '\\': out[k++] = '\\'; break;
        case 'x':
            if (hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                out[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                i += 2;
                break;
            }
            /* fall through */
        default:
            free(out);
            return ct_cli_usage_error(
                cmd, "--doc-sep: unknown escape '\\%c' (use \\n \\t \\r \\0 \\\\ \\xHH)",
                e ? e : ' ');
        }
    }
    if (k == 0) {
        free(out);
        return ct_cli_usage_error(cmd, "--doc-sep must not be empty");
    }
    *sep_p = out;
    *len_p = k;
    return -1;
}

/* ---- documents ------------------------------------------------------------------ */

typedef ct_status_t (*doc_fn)(void *ctx, const char *text, size_t len);

typedef struct {
    const char *sep;
    size_t sep_len;
    int jsonl;
    int64_t bytes;   /* bytes of all documents */
    int64_t skipped; /* empty documents */
} docs_t;

static CT_MUST_USE ct_status_t emit(docs_t *d, doc_fn fn, void *ctx, const char *text, size_t len)
{
    if (len == 0) {
        d->skipped++;
        return CT_OK;
    }
    d->bytes += (int64_t)len;
    return fn(ctx, text, len);
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf_t;

static int sb_reserve(sbuf_t *b, size_t more)
{
    if (b->n + more <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->n + more) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) return -1;
    b->p = p;
    b->cap = nc;
    return 0;
}

static int sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (!b || n == 0) return 0;
    if (sb_reserve(b, n)) return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* Plain text: one document per file, or split at the separator. */
static CT_MUST_USE ct_status_t plain_docs(FILE *f, const char *name, docs_t *d, doc_fn fn, void *ctx)
{
    sbuf_t b = {0};
    ct_status_t st = CT_OK;
    size_t scan = 0;
    for (;;) {
        if (sb_reserve(&b, READ_BLOCK)) {
            CT_LOG_ERROR("%s: out of memory holding a document of %zu bytes", name, b.n);
            st = CT_ERR_NO_MEMORY;
            break;
        }
        size_t k = fread(b.p + b.n, 1, b.cap - b.n, f);
        b.n += k;
        if (d->sep && k > 0) {
            size_t start = 0;
            char *hit;
            while ((hit = memmem(b.p + scan, b.n - scan, d->sep, d->sep_len)) != NULL) {
                if ((st = emit(d, fn, ctx, b.p + start, (size_t)(hit - b.p) - start)) != CT_OK)
                    goto done;
                start = scan = (size_t)(hit - b.p) + d->sep_len;
            }
            memmove(b.p, b.p + start, b.n - start);
            b.n -= start;
            /* A separator may straddle this block and the next. */
            scan = b.n >= d->sep_len ? b.n - d->sep_len + 1 : 0;
        }
        if (k == 0) {
            if (ferror(f)) {
                CT_LOG_ERROR("cannot read %s: %s", name, strerror(errno));
                st = CT_ERR_IO;
            } else {
                st = emit(d, fn, ctx, b.p, b.n);
            }
            break;
        }
    }
done:
    free(b.p);
    return st;
}

/* One JSON object per line; its "text" string is the document (json-c via
 * core/json: a repeated key's last value wins, as in Python, and a lone
 * surrogate escape becomes U+FFFD). Blank lines are skipped. */
static CT_MUST_USE ct_status_t jsonl_docs(FILE *f, const char *name, docs_t *d, doc_fn fn, void *ctx)
{
    char *line = NULL;
    size_t lcap = 0;
    ct_status_t st = CT_OK;
    long long lineno = 0;
    ssize_t n;
    errno = 0;
    while ((n = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        ssize_t i = 0;
        while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r'))
            i++;
        if (i == n) continue; /* blank line */
        ct_json_error_t err;
        struct json_object *doc = ct_json_parse(line, (size_t)n, 0, &err), *text = NULL;
        if (doc && !json_object_is_type(doc, json_type_object)) {
            err.offset = (size_t)i;
            snprintf(err.msg, sizeof err.msg, "expected a JSON object");
        } else if (doc && !json_object_object_get_ex(doc, "text", &text)) {
            err.offset = (size_t)n;
            snprintf(err.msg, sizeof err.msg, "no \"text\" field");
        } else if (doc && !json_object_is_type(text, json_type_string)) {
            err.offset = (size_t)n;
            snprintf(err.msg, sizeof err.msg, "the \"text\" field is not a string");
        } else if (!doc && !err.msg[0]) { /* the line is null */
            err.offset = (size_t)i;
            snprintf(err.msg, sizeof err.msg, "expected a JSON object");
        } else if (doc) {
            st = emit(d, fn, ctx, json_object_get_string(text),
                      (size_t)json_object_get_string_len(text));
            json_object_put(doc);
            if (st != CT_OK) break;
            errno = 0;
            continue;
        }
        json_object_put(doc);
        CT_LOG_ERROR("%s:%lld: malformed JSON at column %lld: %s\n---> HINT: --jsonl expects one "
                     "object with a \"text\" string per line",
                     name, lineno, (long long)err.offset + 1, err.msg);
        st = CT_ERR_CORRUPT;
        break;
    }
    if (st == CT_OK && ferror(f)) {
        CT_LOG_ERROR("cannot read %s: %s", name, strerror(errno));
        st = CT_ERR_IO;
    }
    free(line);
    return st;
}

/* Calls fn for every non-empty document of every input, in order. */
static CT_MUST_USE ct_status_t for_each_doc(const args_t *a, docs_t *d, doc_fn fn, void *ctx)
{
    for (int i = 0; i < a->n_inputs; i++) {
        int is_stdin = strcmp(a->inputs[i], "-") == 0;
        const char *name = is_stdin ? "<stdin>" : a->inputs[i];
        FILE *f = is_stdin ? stdin : fopen(name, "rb");
        if (!f) {
            CT_LOG_ERROR("cannot open %s: %s", name, strerror(errno));
            return errno == ENOENT ? CT_ERR_NOT_FOUND : CT_ERR_IO;
        }
        ct_status_t st =
            d->jsonl ? jsonl_docs(f, name, d, fn, ctx) : plain_docs(f, name, d, fn, ctx);
        if (!is_stdin) fclose(f);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

/* Parses the options shared by train and encode into d; -1 to go on. */
static int docs_setup(const args_t *a, docs_t *d, char **sep_owned)
{
    *d = (docs_t){.jsonl = a->jsonl};
    *sep_owned = NULL;
    if (a->doc_sep) {
        if (a->jsonl) return ct_cli_usage_error(a->cmd, "--doc-sep and --jsonl cannot be combined");
        int rc = parse_sep(a->cmd, a->doc_sep, sep_owned, &d->sep_len);
        if (rc >= 0) return rc;
        d->sep = *sep_owned;
    }
    if (a->n_inputs == 0) return ct_cli_usage_error(a->cmd, "no INPUT given (use '-' for standard input)");
    return -1;
}

/* ---- train ------------------------------------------------------------------------ */

typedef struct {
    sbuf_t all;
    size_t *ends;
    size_t nd, capd;
} collect_t;

static CT_MUST_USE ct_status_t collect_doc(void *ctx, const char *text, size_t len)
{
    collect_t *c = ctx;
    if (c->nd == INT_MAX) {
        CT_LOG_ERROR("bpe train: more than %d documents", INT_MAX);
        return CT_ERR_UNSUPPORTED;
    }
    if (c->nd == c->capd) {
        size_t nc = c->capd ? 2 * c->capd : 1024;
        size_t *e = realloc(c->ends, nc * sizeof *e);
        if (!e) goto oom;
        c->ends = e;
        c->capd = nc;
    }
    if (sb_put(&c->all, text, len)) goto oom;
    c->ends[c->nd++] = c->all.n;
    return CT_OK;
oom:
    CT_LOG_ERROR("bpe train: out of memory holding %zu bytes of text", c->all.n + len);
    return CT_ERR_NO_MEMORY;
}

static int cmd_train(int argc, char **argv)
{
    args_t a = {.cmd = "tokenize train"};
    docs_t d;
    char *sep = NULL;
    collect_t c = {0};
    const char **texts = NULL;
    size_t *lens = NULL;
    ct_bpe_t *bpe = NULL;
    long long vocab = 0;
    int rc = parse_args(argc, argv, "vosj", k_usage_train, &a);
    if (rc >= 0) goto out;
    if (!a.vocab_size) {
        rc = ct_cli_usage_error(a.cmd, "--vocab-size is required");
        goto out;
    }
    if (!a.out) {
        rc = ct_cli_usage_error(a.cmd, "--out is required");
        goto out;
    }
    if ((rc = ct_args_int(a.cmd, "--vocab-size", a.vocab_size, 257, 1 << 24, &vocab)) >= 0) goto out;
    if ((rc = docs_setup(&a, &d, &sep)) >= 0) goto out;
    rc = 1;
    double t0 = ct_time_now();
    if (for_each_doc(&a, &d, collect_doc, &c) != CT_OK) goto out;
    if (c.nd == 0) {
        CT_LOG_ERROR("bpe train: the input holds no text (%lld empty documents)",
                     (long long)d.skipped);
        goto out;
    }
    texts = malloc(c.nd * sizeof *texts);
    lens = malloc(c.nd * sizeof *lens);
    if (!texts || !lens) {
        CT_LOG_ERROR("bpe train: out of memory");
        goto out;
    }
    for (size_t i = 0; i < c.nd; i++) {
        size_t start = i ? c.ends[i - 1] : 0;
        texts[i] = c.all.p + start;
        lens[i] = c.ends[i] - start;
    }
    double t1 = ct_time_now();
    if (ct_bpe_train(texts, lens, (int)c.nd, (int)vocab, &bpe) != CT_OK) goto out;
    double t2 = ct_time_now();
    if (ct_bpe_save(bpe, a.out) != CT_OK) goto out;
    printf("trained %d merges (vocab size %d) in %.2f s on %.1f MB in %zu document%s (read in "
           "%.2f s); wrote %s\n",
           ct_bpe_vocab_size(bpe) - 257, ct_bpe_vocab_size(bpe), t2 - t1, (double)d.bytes / 1e6,
           c.nd, plural((long long)c.nd), t1 - t0, a.out);
    rc = 0;
out:
    ct_bpe_free(bpe);
    free(texts);
    free(lens);
    free(c.all.p);
    free(c.ends);
    free(sep);
    free(a.inputs);
    return rc;
}

/* ---- encode ----------------------------------------------------------------------- */

typedef struct {
    ct_bpe_t *bpe;
    const char *prefix;
    int64_t shard_tokens;
    long long val_every;
    ct_shard_writer_t *w[2]; /* train, val; opened on their first document */
    int64_t docs[2], toks[2];
    int64_t attempted[2]; /* tokens handed to each writer, including a failed push */
    int shards[2];
    int64_t doc_index;
    int32_t *ids;
    size_t cap;
    docs_t *d;
    double t0, last_log;
} encode_t;

static CT_MUST_USE ct_status_t encode_doc(void *ctx, const char *text, size_t len)
{
    encode_t *e = ctx;
    int v = e->val_every > 0 && e->doc_index % e->val_every == e->val_every - 1;
    e->doc_index++;
    ct_status_t st;
    if (!e->w[v]) {
        char prefix[4096];
        int n = snprintf(prefix, sizeof prefix, "%s_%s", e->prefix, v ? "val" : "train");
        if (n < 0 || (size_t)n >= sizeof prefix) {
            CT_LOG_ERROR("--out prefix too long");
            return CT_ERR_INVALID_ARG;
        }
        if ((st = ct_shard_writer_init(prefix, e->shard_tokens, ct_bpe_vocab_size(e->bpe),
                                       &e->w[v])) != CT_OK)
            return st;
    }
    size_t n = 1;
    e->ids[0] = ct_bpe_eot(e->bpe);
    if ((st = ct_bpe_encode(e->bpe, text, len, &e->ids, &n, &e->cap)) != CT_OK) return st;
    e->attempted[v] += (int64_t)n;
    if ((st = ct_shard_writer_push(e->w[v], e->ids, n)) != CT_OK) return st;
    e->docs[v]++;
    e->toks[v] += (int64_t)n;
    double now = ct_time_now();
    if (now - e->last_log > PROGRESS_SECONDS) {
        e->last_log = now;
        CT_LOG_INFO("encoded %lld documents, %.1f MB, %lld tokens (%.1f MB/s)",
                    (long long)e->doc_index, (double)e->d->bytes / 1e6,
                    (long long)(e->toks[0] + e->toks[1]),
                    (double)e->d->bytes / 1e6 / (now - e->t0));
    }
    return CT_OK;
}

/* Deletes the shards this run may have finished: the writers report no
 * count after an error, but a shard can only exist once the tokens before
 * it were handed over. */
static int remove_shards(const encode_t *e)
{
    int removed = 0;
    for (int v = 0; v < 2; v++) {
        int64_t n = (e->attempted[v] + e->shard_tokens - 1) / e->shard_tokens;
        for (int64_t i = 0; i < n; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s_%s_%06lld.bin", e->prefix, v ? "val" : "train",
                     (long long)i);
            if (unlink(path) == 0) removed++;
            else if (errno != ENOENT) CT_LOG_WARN("cannot remove %s: %s", path, strerror(errno));
        }
    }
    return removed;
}

static int cmd_encode(int argc, char **argv)
{
    args_t a = {.cmd = "tokenize encode"};
    docs_t d;
    char *sep = NULL;
    encode_t e = {0};
    long long val_every = 0, shard_tokens = DEFAULT_SHARD_TOKENS;
    int rc = parse_args(argc, argv, "tosknj", k_usage_encode, &a);
    if (rc >= 0) goto out;
    if (!a.out) {
        rc = ct_cli_usage_error(a.cmd, "--out is required");
        goto out;
    }
    if (a.val_every &&
        (rc = ct_args_int(a.cmd, "--val-every", a.val_every, 0, INT64_MAX, &val_every)) >= 0)
        goto out;
    if (val_every == 1) {
        rc = ct_cli_usage_error(a.cmd, "--val-every 1 would send every document to validation; use 0 "
                                "(none) or K >= 2");
        goto out;
    }
    if (a.shard_tokens &&
        (rc = ct_args_int(a.cmd, "--shard-tokens", a.shard_tokens, 1, INT32_MAX, &shard_tokens)) >= 0)
        goto out;
    if ((rc = docs_setup(&a, &d, &sep)) >= 0) goto out;
    if ((rc = load_tokenizer(&a, 1, &e.bpe)) >= 0) goto out;
    rc = 1;
    e.prefix = a.out;
    e.shard_tokens = shard_tokens;
    e.val_every = val_every;
    e.d = &d;
    e.cap = 1 << 16;
    e.ids = malloc(e.cap * sizeof *e.ids);
    if (!e.ids) {
        CT_LOG_ERROR("out of memory");
        goto out;
    }
    e.t0 = e.last_log = ct_time_now();
    ct_status_t st = for_each_doc(&a, &d, encode_doc, &e);
    /* Close both writers even after an error, so no temporary file stays. */
    for (int v = 0; v < 2; v++) {
        if (!e.w[v]) continue;
        int64_t ntok = 0;
        ct_status_t cs = ct_shard_writer_close(e.w[v], &e.shards[v], &ntok);
        e.w[v] = NULL;
        if (st == CT_OK) st = cs;
    }
    if (st != CT_OK) {
        /* An incomplete corpus must not pass for a complete one: remove the
         * shards of this run. */
        int removed = remove_shards(&e);
        CT_LOG_ERROR("encode failed at document %lld; removed the %d shard%s written so far",
                     (long long)e.doc_index, removed, plural(removed));
        goto out;
    }
    if (e.doc_index == 0) {
        CT_LOG_ERROR("the input holds no documents (%lld empty ones skipped); no shards written",
                     (long long)d.skipped);
        goto out;
    }
    if (val_every > 0 && e.docs[1] == 0)
        CT_LOG_WARN("--val-every %lld: only %lld document%s, so no validation shard was written",
                    val_every, (long long)e.doc_index, plural(e.doc_index));
    double dt = ct_time_now() - e.t0;
    printf("encoded %lld document%s (%lld empty skipped), %.1f MB of text into %lld tokens in "
           "%.2f s (%.1f MB/s)\n",
           (long long)e.doc_index, plural(e.doc_index), (long long)d.skipped, (double)d.bytes / 1e6,
           (long long)(e.toks[0] + e.toks[1]), dt, dt > 0 ? (double)d.bytes / 1e6 / dt : 0.0);
    for (int v = 0; v < 2; v++)
        if (e.docs[v] > 0)
            printf("  %-5s %lld document%s, %lld tokens, %d shard%s: %s_%s_*.bin\n",
                   v ? "val" : "train", (long long)e.docs[v], plural(e.docs[v]),
                   (long long)e.toks[v], e.shards[v], plural(e.shards[v]), a.out,
                   v ? "val" : "train");
    rc = 0;
out: /* the writers were closed above: none is open before for_each_doc */
    ct_bpe_free(e.bpe);
    free(e.ids);
    free(sep);
    free(a.inputs);
    return rc;
}

/* ---- decode ----------------------------------------------------------------------- */

static int decode_shard(const ct_bpe_t *bpe, const char *path, int32_t *ids, uint8_t *raw,
                        size_t chunk)
{
    ct_shard_info_t info;
    if (ct_shard_read_header(path, &info) != CT_OK) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        CT_LOG_ERROR("cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    int rc = 1;
    if (fseek(f, CT_SHARD_HEADER_BYTES, SEEK_SET) != 0) {
        CT_LOG_ERROR("cannot seek in %s: %s", path, strerror(errno));
        goto out;
    }
    int V = ct_bpe_vocab_size(bpe);
    for (int64_t done = 0; done < info.ntok;) {
        size_t k = (size_t)(info.ntok - done) < chunk ? (size_t)(info.ntok - done) : chunk;
        if (fread(raw, (size_t)info.width, k, f) != k) {
            CT_LOG_ERROR("%s: cannot read tokens at offset %lld: %s", path,
                         (long long)(CT_SHARD_HEADER_BYTES + done * info.width),
                         ferror(f) ? strerror(errno) : "unexpected end of file");
            goto out;
        }
        for (size_t i = 0; i < k; i++) {
            const uint8_t *p = raw + i * (size_t)info.width;
            uint32_t v = info.width == 2 ? (uint32_t)(p[0] | p[1] << 8)
                                         : (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                                               (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (v >= (uint32_t)V) {
                CT_LOG_ERROR("%s: token %u at index %lld (offset %lld) is outside the tokenizer's "
                             "vocabulary of %d\n---> HINT: was the shard encoded with another "
                             "tokenizer?",
                             path, v, (long long)(done + (int64_t)i),
                             (long long)(CT_SHARD_HEADER_BYTES + (done + (int64_t)i) * info.width),
                             V);
                goto out;
            }
            ids[i] = (int32_t)v;
        }
        size_t len;
        char *text = ct_bpe_decode(bpe, ids, k, &len);
        if (!text) {
            CT_LOG_ERROR("out of memory decoding %s", path);
            goto out;
        }
        size_t w = fwrite(text, 1, len, stdout);
        free(text);
        if (w != len) {
            CT_LOG_ERROR("cannot write to standard output: %s", strerror(errno));
            goto out;
        }
        done += (int64_t)k;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

static int cmd_decode(int argc, char **argv)
{
    args_t a = {.cmd = "tokenize decode"};
    ct_bpe_t *bpe = NULL;
    size_t chunk = 1 << 16;
    int32_t *ids = NULL;
    uint8_t *raw = NULL;
    int rc = parse_args(argc, argv, "t", k_usage_decode, &a);
    if (rc >= 0) goto out;
    if (a.n_inputs == 0) {
        rc = ct_cli_usage_error(a.cmd, "no SHARD.bin given");
        goto out;
    }
    if ((rc = load_tokenizer(&a, 1, &bpe)) >= 0) goto out;
    rc = 1;
    ids = malloc(chunk * sizeof *ids);
    raw = malloc(chunk * 4);
    if (!ids || !raw) {
        CT_LOG_ERROR("out of memory");
        goto out;
    }
    for (int i = 0; i < a.n_inputs; i++)
        if (decode_shard(bpe, a.inputs[i], ids, raw, chunk)) goto out;
    if (fflush(stdout) != 0) {
        CT_LOG_ERROR("cannot write to standard output: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    ct_bpe_free(bpe);
    free(ids);
    free(raw);
    free(a.inputs);
    return rc;
}

/* ---- export ----------------------------------------------------------------------- */

static int cmd_export(int argc, char **argv)
{
    args_t a = {.cmd = "tokenize export"};
    ct_bpe_t *bpe = NULL;
    int rc = parse_args(argc, argv, "tf", k_usage_export, &a);
    if (rc >= 0) goto out;
    if (!a.format || (strcmp(a.format, "gpt2") && strcmp(a.format, "tiktoken") &&
                      strcmp(a.format, "ctrain"))) {
        rc = ct_cli_usage_error(a.cmd, "--format must be gpt2, tiktoken or ctrain%s%s%s",
                         a.format ? " (got '" : "", a.format ? a.format : "", a.format ? "')" : "");
        goto out;
    }
    if (a.n_inputs != 1) {
        rc = ct_cli_usage_error(a.cmd, "expected one OUT path, got %d", a.n_inputs);
        goto out;
    }
    if ((rc = load_tokenizer(&a, 1, &bpe)) >= 0) goto out;
    rc = 1;
    const char *out = a.inputs[0];
    ct_status_t st;
    if (strcmp(a.format, "gpt2") == 0) {
        if (ct_fs_mkdir_p(out) != CT_OK) goto out;
        char vj[4200], mt[4200];
        snprintf(vj, sizeof vj, "%s/vocab.json", out);
        snprintf(mt, sizeof mt, "%s/merges.txt", out);
        st = ct_bpe_save_gpt2(bpe, vj, mt);
    } else if (strcmp(a.format, "tiktoken") == 0) {
        st = ct_bpe_save_tiktoken(bpe, out);
    } else {
        st = ct_bpe_save(bpe, out);
    }
    if (st != CT_OK) goto out;
    printf("wrote %s: %d tokens, end-of-text id %d, %s format\n", out, ct_bpe_vocab_size(bpe),
           ct_bpe_eot(bpe), a.format);
    rc = 0;
out:
    ct_bpe_free(bpe);
    free(a.inputs);
    return rc;
}

/* ---- pretokenize ------------------------------------------------------------------- */

/* Writes s[0..n) as a JSON string: valid UTF-8 as it is, invalid bytes as
 * \udc80..\udcff (surrogateescape). */
static int put_json_bytes(sbuf_t *b, const uint8_t *s, size_t n)
{
    int err = sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            err |= sb_put(b, esc, 2);
            i++;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            err |= sb_put(b, esc, 2);
            i++;
            continue;
        }
        if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            err |= sb_put(b, esc, 6);
            i++;
            continue;
        }
        /* The length of a valid UTF-8 sequence at s[i], or 0. */
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len > n - i) len = 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) len = 0;
        if (len >= 3) {
            uint32_t cp = len == 3 ? (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6
                                   : (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12;
            if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                len = 0;
        }
        if (len == 0) {
            snprintf(esc, sizeof esc, "\\udc%02x", c);
            err |= sb_put(b, esc, 6);
            i++;
        } else {
            err |= sb_put(b, (const char *)s + i, len);
            i += len;
        }
    }
    return err | sb_put(b, "\"\n", 2);
}

typedef struct {
    ct_bpe_t *bpe; /* NULL: GPT-2's pre-tokenizer */
    int64_t docs, pieces;
    sbuf_t b;
} pretok_t;

static CT_MUST_USE ct_status_t pretok_flush(pretok_t *p)
{
    if (fwrite(p->b.p, 1, p->b.n, stdout) != p->b.n) {
        CT_LOG_ERROR("cannot write to standard output: %s", strerror(errno));
        return CT_ERR_IO;
    }
    p->b.n = 0;
    return CT_OK;
}

/* One piece of ct_bpe_pretokenize: a word, or an added token (printed as
 * the text it matched, like a word). */
static CT_MUST_USE ct_status_t pretok_piece(void *ctx, const char *s, size_t n, int32_t id)
{
    pretok_t *p = ctx;
    (void)id;
    if (put_json_bytes(&p->b, (const uint8_t *)s, n)) {
        CT_LOG_ERROR("pretokenize: out of memory");
        return CT_ERR_NO_MEMORY;
    }
    p->pieces++;
    return p->b.n >= READ_BLOCK ? pretok_flush(p) : CT_OK;
}

static CT_MUST_USE ct_status_t pretok_doc(void *ctx, const char *text, size_t len)
{
    pretok_t *p = ctx;
    if (p->docs++ > 0 && sb_put(&p->b, "\n", 1)) {
        CT_LOG_ERROR("pretokenize: out of memory");
        return CT_ERR_NO_MEMORY;
    }
    ct_status_t st = ct_bpe_pretokenize(p->bpe, text, len, pretok_piece, p);
    return st == CT_OK ? pretok_flush(p) : st;
}

static int cmd_pretokenize(int argc, char **argv)
{
    args_t a = {.cmd = "tokenize pretokenize"};
    docs_t d;
    char *sep = NULL;
    ct_bpe_t *bpe = NULL;
    int rc = parse_args(argc, argv, "tsj", k_usage_pretokenize, &a);
    if (rc >= 0) goto out;
    if ((rc = docs_setup(&a, &d, &sep)) >= 0) goto out;
    if ((rc = load_tokenizer(&a, 0, &bpe)) >= 0) goto out;
    rc = 1;
    pretok_t p = {.bpe = bpe};
    ct_status_t st = for_each_doc(&a, &d, pretok_doc, &p);
    free(p.b.p);
    if (st != CT_OK) goto out;
    if (fflush(stdout) != 0) {
        CT_LOG_ERROR("cannot write to standard output: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    ct_bpe_free(bpe);
    free(sep);
    free(a.inputs);
    return rc;
}

int ct_cmd_tokenize(int argc, char **argv)
{
    if (argc < 2) {
        fputs(k_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(k_usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc, argv);
    if (strcmp(cmd, "encode") == 0) return cmd_encode(argc, argv);
    if (strcmp(cmd, "decode") == 0) return cmd_decode(argc, argv);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc, argv);
    if (strcmp(cmd, "pretokenize") == 0) return cmd_pretokenize(argc, argv);
    return ct_cli_usage_error("tokenize", "unknown command '%s' (expected train, encode, decode, export or "
                             "pretokenize)", cmd);
}
