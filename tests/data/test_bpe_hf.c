/* Hugging Face tokenizer.json (data/bpe_hf*.c, data/bpe_nfc.c) without
 * Python: the fixtures of tests/data/hf/ (written by bpe_hf_reference.py
 * --make-fixtures with the tokenizers library) encode to the ids that
 * tokenizers gave; decode(encode(x)) == x for any bytes where the pipeline
 * keeps the text; NFC on hand-checked strings; pre-tokenizer pieces; a
 * model directory; and each refused file names itself and the key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "data/bpe_impl.h"
#include "data/data.h"
#include "test_util.h"

static char *read_all(const char *path, size_t *n_p)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    buf[len] = 0;
    *n_p = (size_t)len;
    return buf;
}

static const char *fixture(const char *name)
{
    static char path[4096];
    const char *src = getenv("CT_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/data/hf/%s", src ? src : ".", name);
    return path;
}

static int32_t *encode(ct_bpe_t *bpe, const char *text, size_t len, size_t *n_p)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    CHECK(ct_bpe_encode(bpe, text, len, &ids, &n, &cap) == CT_OK);
    *n_p = n;
    return ids;
}

/* The fixture's tokenizer on the fixture's text gives the fixture's ids. */
static ct_bpe_t *check_fixture(const char *name, const char *text, size_t len)
{
    char file[64];
    snprintf(file, sizeof file, "%s.json", name);
    ct_bpe_t *bpe = NULL;
    ct_status_t st = ct_bpe_load(fixture(file), &bpe);
    CHECK_MSG(st == CT_OK, "load %s: %s", file, ct_status_name(st));
    if (!bpe) return NULL;
    snprintf(file, sizeof file, "%s.ids", name);
    size_t wn;
    char *want = read_all(fixture(file), &wn);
    size_t n;
    int32_t *ids = encode(bpe, text, len, &n);
    size_t k = 0, bad = (size_t)-1;
    char *p = want;
    for (; want && *p && *p != '\n'; k++) {
        long v = strtol(p, &p, 10);
        if (bad == (size_t)-1 && (k >= n || ids[k] != v)) bad = k;
        while (*p == ' ') p++;
    }
    CHECK_MSG(bad == (size_t)-1 && k == n, "%s: ids differ from tokenizers' at %zu (%zu ids, want "
              "%zu)", name, bad, n, k);
    free(want);
    free(ids);
    return bpe;
}

static void check_roundtrip(ct_bpe_t *bpe, const char *text, size_t len, const char *what)
{
    size_t n, dlen = 0;
    int32_t *ids = encode(bpe, text, len, &n);
    char *back = ct_bpe_decode(bpe, ids, n, &dlen);
    CHECK_MSG(back && dlen == len && memcmp(back, text, len) == 0, "%s: decode(encode(x)) != x",
              what);
    free(back);
    free(ids);
}

static void check_nfc(const char *in, const char *want)
{
    ct__bpe_buf_t b = {0};
    int r = ct__bpe_nfc((const uint8_t *)in, strlen(in), &b);
    const char *got = r == 1 ? in : r == 0 ? b.p : "<error>";
    size_t gl = r == 1 ? strlen(in) : r == 0 ? b.n : 7;
    CHECK_MSG(gl == strlen(want) && memcmp(got, want, gl) == 0, "NFC of \"%s\" gave \"%.*s\"", in,
              (int)gl, got);
    free(b.p);
}

/* ---- refused files ------------------------------------------------------------------ */

/* A minimal byte-level tokenizer.json: the 256 byte characters, "ab" made
 * by merging "a" and "b", <|endoftext|>; `model_extra` goes into the model
 * object, `extra` into the top level (each with a leading comma, or ""). */
static char *make_json(const char *model_extra, const char *extra, const char *merges)
{
    ct__bpe_buf_t b = {0};
    ct__bpe_buf_printf(&b, "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int i = 0; i < 256; i++) {
        char u[4];
        size_t k = ct_utf8_encode(ct__bpe_byte_to_unicode((uint8_t)i), u);
        ct__bpe_buf_put(&b, "\"", 1);
        if (u[0] == '"' || u[0] == '\\') ct__bpe_buf_put(&b, "\\", 1);
        ct__bpe_buf_put(&b, u, k);
        ct__bpe_buf_printf(&b, "\": %d, ", i);
    }
    ct__bpe_buf_printf(&b, "\"ab\": 256}, \"merges\": %s", merges ? merges : "[\"a b\"]");
    ct__bpe_buf_put(&b, model_extra, strlen(model_extra));
    ct__bpe_buf_printf(&b, "}, \"added_tokens\": [{\"id\": 257, \"content\": \"<|endoftext|>\", "
                           "\"special\": true, \"normalized\": false}], \"pre_tokenizer\": "
                           "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}");
    ct__bpe_buf_put(&b, extra, strlen(extra));
    ct__bpe_buf_put(&b, "}", 2);
    return b.p;
}

/* Loading must fail with status want, naming bad.json and every word. */
static void check_refused(const char *json, ct_status_t want, const char *w1, const char *w2)
{
    ct_bpe_t *bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct__bpe_parse_hf(json, strlen(json), "bad.json", &bpe));
    CHECK_MSG(st == want && bpe == NULL && strstr(ct_test_captured, "bad.json") &&
              strstr(ct_test_captured, w1) && (!w2 || strstr(ct_test_captured, w2)) &&
              strstr(ct_test_captured, "HINT"),
              "want %s naming %s %s; got %s: %s", ct_status_name(want), w1, w2 ? w2 : "",
              ct_status_name(st), ct_test_captured);
    ct_bpe_free(bpe);
}

static void check_bad_files(void)
{
    char *ok = make_json("", "", NULL);
    ct_bpe_t *bpe = NULL;
    CHECK(ct__bpe_parse_hf(ok, strlen(ok), "ok.json", &bpe) == CT_OK);
    if (bpe) {
        size_t n;
        int32_t *ids = encode(bpe, "ab<|endoftext|>a", 16, &n);
        CHECK(n == 3 && ids[0] == 256 && ids[1] == 257 && ids[2] == 'a' - 0 &&
              ct_bpe_eot(bpe) == 257 && ct_bpe_vocab_size(bpe) == 258);
        free(ids);
        ct_bpe_free(bpe);
    }
    free(ok);

    struct {
        const char *model, *extra, *merges;
        ct_status_t st;
        const char *w1, *w2;
    } cases[] = {
        {", \"x\": 1", ", \"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}", NULL,
         CT_ERR_UNSUPPORTED, "model.type", "Unigram"},
        {", \"x\": 1", ", \"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}", NULL,
         CT_ERR_UNSUPPORTED, "model.type", "WordPiece"},
        {"", ", \"version\": \"2.0\"", NULL, CT_ERR_UNSUPPORTED, "version", "2.0"},
        {", \"dropout\": 0.1", "", NULL, CT_ERR_UNSUPPORTED, "model.dropout", NULL},
        {", \"continuing_subword_prefix\": \"##\"", "", NULL, CT_ERR_UNSUPPORTED,
         "model.continuing_subword_prefix", NULL},
        {"", "", "[\"a b c\"]", CT_ERR_CORRUPT, "model.merges[0]", "one space"},
        {"", "", "[\"a q9\"]", CT_ERR_CORRUPT, "model.merges[0]", "\"q9\" is not in model.vocab"},
        {"", "", "[[\"b\", \"a\"]]", CT_ERR_CORRUPT, "model.merges[0]", "\"ba\" is not in"},
        {"", "", "[7]", CT_ERR_CORRUPT, "model.merges[0]", "expected"},
        {"", ", \"normalizer\": {\"type\": \"NFKC\"}", NULL, CT_ERR_UNSUPPORTED, "normalizer.type",
         "NFKC"},
        {"", ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, "
             "{\"type\": \"Lowercase\"}]}", NULL, CT_ERR_UNSUPPORTED,
         "normalizer.normalizers[1].type", "Lowercase"},
        {"", ", \"pre_tokenizer\": null", NULL, CT_ERR_UNSUPPORTED, "pre_tokenizer", "ByteLevel"},
        {"", ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"ByteLevel\"}, {\"type\": \"Digits\"}]}", NULL, CT_ERR_UNSUPPORTED,
         "pre_tokenizer.pretokenizers[1]", "after ByteLevel"},
        {"", ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"Split\", \"pattern\": {\"Regex\": \"a(?<=b)\"}, \"behavior\": \"Isolated\", "
             "\"invert\": false}, {\"type\": \"ByteLevel\"}]}", NULL, CT_ERR_UNSUPPORTED,
         "pre_tokenizer.pretokenizers[0].pattern.Regex", "lookbehind (?<=, at byte 1"},
        {"", ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}, "
             "{\"type\": \"ByteLevel\"}]}", NULL, CT_ERR_CORRUPT,
         "pre_tokenizer.pretokenizers[0].behavior", "Sideways"},
        {"", ", \"pre_tokenizer\": {\"type\": \"Metaspace\"}", NULL, CT_ERR_UNSUPPORTED,
         "pre_tokenizer.type", "Metaspace"},
        {"", ", \"decoder\": {\"type\": \"WordPiece\"}", NULL, CT_ERR_UNSUPPORTED, "decoder.type",
         "WordPiece"},
        {"", ", \"added_tokens\": [{\"id\": 257, \"content\": \"<x>\", \"single_word\": true}]",
         NULL, CT_ERR_UNSUPPORTED, "added_tokens[0].single_word", NULL},
        {"", ", \"added_tokens\": []", NULL, CT_ERR_UNSUPPORTED, "post_processor",
         "no document separator"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = make_json(cases[i].model, cases[i].extra, cases[i].merges);
        check_refused(j, cases[i].st, cases[i].w1, cases[i].w2);
        free(j);
    }
    /* A vocabulary without the space byte's character. */
    char *j = make_json("", "", NULL);
    char *sp = strstr(j, "\"\xc4\xa0\": 32");
    CHECK(sp != NULL);
    if (sp) memcpy(sp, "\"__\"", 4);
    check_refused(j, CT_ERR_CORRUPT, "model.vocab", "byte 0x20");
    free(j);
    check_refused("{\"model\": {\"type\": \"BPE\",}}", CT_ERR_CORRUPT, "bad.json:1:", NULL);
    check_refused("[1, 2]", CT_ERR_CORRUPT, "expected a JSON object", NULL);

    /* An added token whose id in the file is not the one tokenizers gives:
     * a warning, and tokenizers' id. */
    j = make_json("", ", \"added_tokens\": [{\"id\": 999, \"content\": \"<|endoftext|>\"}]", NULL);
    bpe = NULL;
    ct_status_t st;
    CAPTURE_STDERR(st = ct__bpe_parse_hf(j, strlen(j), "warn.json", &bpe));
    CHECK(st == CT_OK && bpe && ct_bpe_eot(bpe) == 257 && strstr(ct_test_captured, "id 999"));
    ct_bpe_free(bpe);
    free(j);
}

/* ---- pieces ------------------------------------------------------------------------- */

typedef struct {
    char out[1024];
    size_t n;
} pieces_t;

static ct_status_t add_piece(void *ctx, const char *p, size_t n, int32_t id)
{
    pieces_t *q = ctx;
    if (q->n + n + 8 < sizeof q->out) {
        if (q->n) q->out[q->n++] = '|';
        if (id >= 0) q->n += (size_t)snprintf(q->out + q->n, 8, "#");
        memcpy(q->out + q->n, p, n);
        q->n += n;
        q->out[q->n] = 0;
    }
    return CT_OK;
}

static void check_pieces(ct_bpe_t *bpe, const char *text, const char *want)
{
    pieces_t q = {.n = 0};
    q.out[0] = 0;
    CHECK(ct_bpe_pretokenize(bpe, text, strlen(text), add_piece, &q) == CT_OK);
    CHECK_MSG(strcmp(q.out, want) == 0, "pieces of \"%s\": \"%s\", want \"%s\"", text, q.out, want);
}

int main(void)
{
    size_t len;
    char *text = read_all(fixture("text.txt"), &len);
    if (!text) return ct_test_finish("test_bpe_hf");

    ct_bpe_t *llama = check_fixture("llama3", text, len);
    ct_bpe_t *qwen = check_fixture("qwen2", text, len);
    ct_bpe_t *exotic = check_fixture("exotic", text, len);
    if (llama) {
        int blen;
        const char *bos = ct_bpe_token(llama, ct_bpe_eot(llama), &blen);
        CHECK(bos && blen == 17 && memcmp(bos, "<|begin_of_text|>", 17) == 0);
        check_roundtrip(llama, text, len, "llama3 on text.txt");
        /* Any bytes, invalid UTF-8 included. */
        uint64_t r = 99;
        char buf[3000];
        for (int t = 0; t < 50; t++) {
            size_t n = 1 + t * 59 % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                r = r * 6364136223846793005ULL + 1442695040888963407ULL;
                int k = (int)(r >> 60);
                buf[i] = k < 6 ? (char)(r >> 33) : k < 10 ? " \n'\t"[k - 6] : "aZ1<|>"[k - 10];
            }
            check_roundtrip(llama, buf, n, "llama3 on random bytes");
        }
        check_pieces(llama, "<|end_of_text|>I'M 12345  ok\n\n<|begin_of_text",
                     "#<|end_of_text|>|I|'M| |123|45| | ok|\n\n|<||begin|_of|_text");
    }
    if (qwen) {
        /* NFC first, then the normalized added token: both spellings match it. */
        check_pieces(qwen, "<|im_start|>cafe\xcc\x81 au lait caf\xc3\xa9 au lait1",
                     "#<|im_start|>|#caf\xc3\xa9 au lait| |#caf\xc3\xa9 au lait|1");
    }
    if (exotic) check_pieces(exotic, "a  <sep>  b<left>c", " a|#  <sep>  | b|#<left>| c");

    /* A model directory: its tokenizer.json wins over vocab.json + merges.txt. */
    const char *dir = ct_test_dir("test_bpe_hf");
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/tokenizer.json'", fixture("llama3.json"), dir);
    CHECK(system(cmd) == 0);
    ct_bpe_t *d = NULL;
    CHECK(ct_bpe_load(dir, &d) == CT_OK && d && llama && ct_bpe_eot(d) == ct_bpe_eot(llama));
    ct_bpe_free(d);
    if (llama) CHECK(ct_bpe_save(llama, "/nonexistent/x.bpe") == CT_ERR_UNSUPPORTED);

    check_nfc("plain ascii", "plain ascii");
    check_nfc("e\xcc\x81", "\xc3\xa9");                       /* e + acute -> é */
    check_nfc("\xe2\x84\xab", "\xc3\x85");                    /* Angstrom sign -> Å */
    check_nfc("a\xcc\x82\xcc\xa3", "\xe1\xba\xad");           /* a + circumflex + dot below -> ậ */
    check_nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"); /* L V T jamo -> 각 */
    check_nfc("\xe0\xa7\x87\xe0\xa6\xbe", "\xe0\xa7\x8b");    /* Bengali e + aa -> o */
    check_nfc("e\xcc\x81\xff" "e\xcc\x81", "\xc3\xa9\xff\xc3\xa9"); /* invalid bytes stay */
    /* U+09FE is newer than tokenizers' Unicode 9.0 tables: it stays put. */
    check_nfc("a\xe0\xa7\xbe\xcc\xa3", "a\xe0\xa7\xbe\xcc\xa3");
    check_nfc("a\xcc\x81\xcc\xa3", "\xe1\xba\xa1\xcc\x81"); /* reordered, then composed: ạ́ */

    check_bad_files();
    ct_bpe_free(llama);
    ct_bpe_free(qwen);
    ct_bpe_free(exotic);
    free(text);
    return ct_test_finish("test_bpe_hf");
}
