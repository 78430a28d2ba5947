/* A backtracking regex engine for the pre-tokenizer patterns of Hugging
 * Face tokenizer.json files (a Split with a Regex, as Llama 3, Qwen2,
 * GPT-4o-style and DeepSeek tokenizers use), matching exactly as
 * Oniguruma, the engine of Hugging Face tokenizers (Ruby syntax), does:
 * leftmost match, alternatives tried in order, quantifiers greedy unless
 * lazy, lookaheads atomic.
 *
 * The subset (anything else is refused when compiling, with its offset):
 * - literal characters (UTF-8), escapes \t \n \r \f \v \a \e \0oo \xHH
 *   \x{H...} \uHHHH and any escaped punctuation;
 * - . (any character but \n), \s \S (White_Space), \d \D (Nd),
 *   \p{X} \P{X} \p{^X} for the general categories (L, Lu, Ll, Lt, Lm, Lo,
 *   M, Mn, Mc, Me, N, Nd, Nl, No, P, Pc, Pd, Ps, Pe, Pi, Pf, Po, S, Sm,
 *   Sc, Sk, So, Z, Zs, Zl, Zp, C, Cc, Cf, Cs, Co, Cn), at Unicode 16.0 as
 *   in data/unicode_hf_tables.h;
 * - bracket classes [...] and [^...] of characters, ranges and the sets
 *   above;
 * - groups (...), (?:...), (?<name>...) (all non-capturing here), | ,
 *   lookaheads (?=...) (?!...), quantifiers ? * + {n} {n,} {n,m} {,m}
 *   (at most 1000), greedy or lazy (a trailing ?);
 * - case-insensitive groups (?i:...) (?-i:...) and (?i) (?-i) for the rest
 *   of the group: ASCII letters match both cases, s also U+017F and k also
 *   U+212A, as Oniguruma's case folding does.
 * Refused: anchors (^ $ \A \z \b ...), backreferences, lookbehinds, atomic
 * groups, possessive quantifiers, \w \h and POSIX or nested classes, class
 * intersections (&&), scripts and other properties, bracket classes and
 * non-ASCII letters under (?i), the ASCII pairs that Unicode case folding
 * matches to one character (ss st ff fi fl) under (?i), and a repeated
 * group that can match the empty string without bound.
 *
 * Text is bytes: a byte that does not start a valid UTF-8 sequence is one
 * character of category Cn (Hugging Face never sees such text; this keeps
 * encoding total). Matching keeps an explicit backtracking stack in the
 * compiled pattern, so one pattern is not for two threads at once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/bpe_impl.h"
#include "data/unicode_hf_tables.h"

#define RE_MAX_NODES 8192
#define RE_MAX_PROG 65536
#define RE_MAX_REPEAT 1000
#define RE_MAX_DEPTH 100
/* Backtracking steps one search may take before it gives up (Oniguruma has
 * a similar retry limit); no pattern of a real tokenizer comes near. */
#define RE_MAX_STEPS 100000000ULL

/* ---- characters ---------------------------------------------------------------- */

/* Code point of the character at s[i] (i < n), its length in *len_p; a
 * byte that does not start valid UTF-8 is RE_INVALID, 1 byte. */
#define RE_INVALID 0x110000u

static inline uint32_t re_decode(const uint8_t *s, size_t n, size_t i, size_t *len_p)
{
    uint8_t c = s[i];
    if (c < 0x80) {
        *len_p = 1;
        return c;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else goto invalid;
    if (i + len > n) goto invalid;
    for (size_t k = 1; k < len; k++) {
        uint8_t b = s[i + k];
        if ((b & 0xC0) != 0x80) goto invalid;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) goto invalid;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) goto invalid;
    *len_p = len;
    return cp;
invalid:
    *len_p = 1;
    return RE_INVALID;
}

/* Start of the character that ends at p (lo < p), under re_decode's rules:
 * a lead byte 1 to 3 bytes back whose valid sequence ends exactly at p,
 * else the single byte before p. (A lead byte always starts a character,
 * and a valid sequence from it is always decoded whole, so this inverts
 * decoding forwards from any character start before p.) */
static inline size_t re_back(const uint8_t *s, size_t lo, size_t p)
{
    if (s[p - 1] < 0x80 || (s[p - 1] & 0xC0) != 0x80) return p - 1;
    for (size_t k = 2; k <= 4 && p - lo >= k; k++) {
        uint8_t c = s[p - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t len;
        if (re_decode(s, p, p - k, &len) != RE_INVALID && len == k) return p - k;
        break;
    }
    return p - 1;
}

static inline int re_props(uint32_t cp) { return cp >= RE_INVALID ? CT__UHF_CN : ct__uhf_props(cp); }

_Static_assert(CT__BPE_UP_WS == CT__UHF_WS && CT__BPE_UP_ND == CT__UHF_ND &&
                   CT__BPE_UP_NL == CT__UHF_NL && CT__BPE_UP_NO == CT__UHF_NO &&
                   CT__BPE_UP_NFC == CT__UHF_NFC && CT__BPE_UP_CAT == 0x1f && CT__UHF_NCAT <= 32,
               "bpe_impl.h's property bits must match unicode_hf_tables.h");

int ct__bpe_uprops(uint32_t cp) { return re_props(cp); }

/* ---- compiled form -------------------------------------------------------------- */

enum { IT_RANGE, IT_CATS, IT_WS };
typedef struct {
    uint8_t kind, neg;
    uint32_t lo, hi; /* IT_RANGE */
    uint32_t cats;   /* IT_CATS: a bit per general category */
} re_item_t;

/* A set of characters: the union of its items, complemented when neg. */
typedef struct {
    uint64_t ascii[2]; /* membership of U+0000..U+007F, final */
    int neg, first, n; /* items [first, first + n) */
} re_class_t;

enum { OP_CLASS, OP_RUN, OP_SPLIT, OP_JMP, OP_LOOK, OP_MATCH };
/* OP_CLASS x: one character of class x. OP_RUN x min max: min..max (max -1:
 * no bound) characters of class x, greedily. OP_SPLIT x y: try x, then y.
 * OP_JMP x. OP_LOOK (neg) x: the lookahead's program starts at pc + 1 and
 * ends with OP_MATCH; go on at x. */
typedef struct {
    uint8_t op, neg;
    int32_t x, y, min, max;
} re_inst_t;

/* What a match from an instruction can start with: ASCII characters, any
 * other character (a), or nothing at all (a lookahead or the end). */
typedef struct {
    uint64_t ascii[2];
    uint8_t high, empty;
} re_first_t;

typedef struct {
    int32_t pc;    /* where to go on */
    int32_t count; /* -1: an alternative; else the characters an OP_RUN at pc - 1 holds */
    size_t sp;
} re_frame_t;

struct ct__re {
    re_inst_t *prog;
    int n_prog;
    re_first_t *first; /* (n_prog): what a match from each instruction starts with */
    re_class_t *cls;
    int n_cls, cap_cls;
    re_item_t *items;
    int n_items, cap_items;
    re_frame_t *stk;
    size_t cap_stk, top;
    uint64_t steps;
};

static int class_has(const ct__re_t *re, const re_class_t *c, uint32_t cp)
{
    if (cp < 0x80) return (int)(c->ascii[cp >> 6] >> (cp & 63) & 1);
    int props = re_props(cp), in = 0;
    for (int i = c->first; i < c->first + c->n && !in; i++) {
        const re_item_t *it = &re->items[i];
        int m;
        if (it->kind == IT_RANGE) m = cp >= it->lo && cp <= it->hi;
        else if (it->kind == IT_CATS) m = (int)(it->cats >> (props & 31) & 1);
        else m = (props & CT__UHF_WS) != 0;
        in = m != it->neg;
    }
    return in != c->neg;
}

/* ---- the parser ------------------------------------------------------------------- */

enum { N_EMPTY, N_CLASS, N_CAT, N_ALT, N_REP, N_LOOK };
typedef struct {
    uint8_t type, greedy, neg;
    int32_t a, b;     /* children (CAT, ALT: a then b; REP, LOOK: a) */
    int32_t min, max; /* REP; max -1: no bound */
    int32_t cls;      /* CLASS */
    int32_t lit;      /* CLASS from one literal ASCII letter under (?i), else -1 */
} re_node_t;

typedef struct {
    ct__re_t *re;
    const uint8_t *p;
    size_t n, i;
    int icase, depth;
    re_node_t *nodes;
    int n_nodes;
    ct__re_error_t *err;
    ct_status_t st;
} parser_t;

static int perr(parser_t *ps, size_t at, ct_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(parser_t *ps, size_t at, ct_status_t st, const char *fmt, ...)
{
    if (ps->st == CT_OK) {
        ps->st = st;
        ps->err->offset = at;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int oom(parser_t *ps)
{
    return perr(ps, ps->i, CT_ERR_NO_MEMORY, "out of memory compiling the pattern");
}

static int new_node(parser_t *ps, int type)
{
    if (ps->n_nodes >= RE_MAX_NODES)
        return perr(ps, ps->i, CT_ERR_UNSUPPORTED, "the pattern is too long (over %d parts)",
                    RE_MAX_NODES);
    re_node_t *nd = &ps->nodes[ps->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->type = (uint8_t)type;
    nd->a = nd->b = nd->cls = nd->lit = -1;
    return ps->n_nodes++;
}

static int bin_node(parser_t *ps, int type, int a, int b)
{
    int k = new_node(ps, type);
    if (k < 0) return -1;
    ps->nodes[k].a = a;
    ps->nodes[k].b = b;
    return k;
}

/* Starts a new class; items are added with add_item. */
static int new_class(parser_t *ps, int neg)
{
    ct__re_t *re = ps->re;
    if (re->n_cls == re->cap_cls) {
        int nc = re->cap_cls ? 2 * re->cap_cls : 16;
        re_class_t *c = realloc(re->cls, sizeof *c * (size_t)nc);
        if (!c) return oom(ps);
        re->cls = c;
        re->cap_cls = nc;
    }
    re_class_t *c = &re->cls[re->n_cls];
    memset(c, 0, sizeof *c);
    c->neg = neg;
    c->first = re->n_items;
    return re->n_cls++;
}

static int add_item(parser_t *ps, int k, re_item_t it)
{
    ct__re_t *re = ps->re;
    if (re->n_items == re->cap_items) {
        int nc = re->cap_items ? 2 * re->cap_items : 32;
        re_item_t *p = realloc(re->items, sizeof *p * (size_t)nc);
        if (!p) return oom(ps);
        re->items = p;
        re->cap_items = nc;
    }
    CT_ASSERT(re->cls[k].first + re->cls[k].n == re->n_items); /* items of the newest class */
    re->items[re->n_items++] = it;
    re->cls[k].n++;
    return 0;
}

static int add_range(parser_t *ps, int k, uint32_t lo, uint32_t hi)
{
    return add_item(ps, k, (re_item_t){.kind = IT_RANGE, .lo = lo, .hi = hi});
}

/* Fills the ASCII bitmap of class k once its items are complete. */
static void class_done(ct__re_t *re, int k)
{
    re_class_t *c = &re->cls[k];
    int neg = c->neg;
    c->neg = 0;
    uint64_t a[2] = {0, 0};
    for (uint32_t cp = 0; cp < 0x80; cp++) {
        int in = 0;
        for (int i = c->first; i < c->first + c->n && !in; i++) {
            const re_item_t *it = &re->items[i];
            int m;
            if (it->kind == IT_RANGE) m = cp >= it->lo && cp <= it->hi;
            else if (it->kind == IT_CATS) m = (int)(it->cats >> (ct__uhf_props(cp) & 31) & 1);
            else m = (ct__uhf_props(cp) & CT__UHF_WS) != 0;
            in = m != it->neg;
        }
        if (in != neg) a[cp >> 6] |= 1ULL << (cp & 63);
    }
    c->ascii[0] = a[0];
    c->ascii[1] = a[1];
    c->neg = neg;
}

static int class_node(parser_t *ps, int k, int lit)
{
    class_done(ps->re, k);
    int nd = new_node(ps, N_CLASS);
    if (nd < 0) return -1;
    ps->nodes[nd].cls = k;
    ps->nodes[nd].lit = lit;
    return nd;
}

/* The general categories a property name stands for, or 0. */
static uint32_t property_cats(const char *name)
{
    static const char *k_names[] = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl",
                                    "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc",
                                    "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"};
    _Static_assert(sizeof k_names / sizeof k_names[0] == CT__UHF_NCAT, "category names");
    if (strlen(name) == 1) {
        uint32_t m = 0;
        for (int i = 0; i < CT__UHF_NCAT; i++)
            if ((k_names[i][0] | 0x20) == (name[0] | 0x20)) m |= 1u << i;
        return m;
    }
    for (int i = 0; i < CT__UHF_NCAT; i++)
        if (strlen(name) == 2 && (k_names[i][0] | 0x20) == (name[0] | 0x20) &&
            (k_names[i][1] | 0x20) == (name[1] | 0x20))
            return 1u << i;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* An escape (ps->i just past the backslash): a character (returns 1, *cp_p)
 * or a set (returns 2, *it_p), or -1 on an error. */
static int parse_escape(parser_t *ps, uint32_t *cp_p, re_item_t *it_p)
{
    size_t at = ps->i - 1;
    if (ps->i >= ps->n) return perr(ps, at, CT_ERR_CORRUPT, "a backslash at the end of the pattern");
    int c = ps->p[ps->i++];
    switch (c) {
    case 't': *cp_p = '\t'; return 1;
    case 'n': *cp_p = '\n'; return 1;
    case 'r': *cp_p = '\r'; return 1;
    case 'f': *cp_p = '\f'; return 1;
    case 'v': *cp_p = '\v'; return 1;
    case 'a': *cp_p = 7; return 1;
    case 'e': *cp_p = 27; return 1;
    case '0': {
        uint32_t v = 0;
        for (int k = 0; k < 2 && ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '7'; k++)
            v = v * 8 + (uint32_t)(ps->p[ps->i++] - '0');
        *cp_p = v;
        return 1;
    }
    case 'x':
    case 'u': {
        uint32_t v = 0;
        int digits = 0;
        if (c == 'x' && ps->i < ps->n && ps->p[ps->i] == '{') {
            ps->i++;
            while (ps->i < ps->n && hexval(ps->p[ps->i]) >= 0 && digits < 8)
                v = v * 16 + (uint32_t)hexval(ps->p[ps->i++]), digits++;
            if (ps->i >= ps->n || ps->p[ps->i] != '}' || digits == 0)
                return perr(ps, at, CT_ERR_CORRUPT, "a malformed \\x{...} escape");
            ps->i++;
        } else {
            int want = c == 'x' ? 2 : 4;
            while (digits < want && ps->i < ps->n && hexval(ps->p[ps->i]) >= 0)
                v = v * 16 + (uint32_t)hexval(ps->p[ps->i++]), digits++;
            if (digits == 0 || (c == 'u' && digits != 4))
                return perr(ps, at, CT_ERR_CORRUPT, "a malformed \\%c escape", c);
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return perr(ps, at, CT_ERR_CORRUPT, "\\%c escape of an invalid code point", c);
        *cp_p = v;
        return 1;
    }
    case 's':
    case 'S':
        *it_p = (re_item_t){.kind = IT_WS, .neg = c == 'S'};
        return 2;
    case 'd':
    case 'D':
        *it_p = (re_item_t){.kind = IT_CATS, .neg = c == 'D', .cats = 1u << CT__UHF_ND};
        return 2;
    case 'p':
    case 'P': {
        char name[32];
        size_t k = 0;
        int neg = c == 'P';
        if (ps->i >= ps->n || ps->p[ps->i] != '{')
            return perr(ps, at, CT_ERR_UNSUPPORTED, "\\%c without braces (write \\%c{L})", c, c);
        ps->i++;
        if (ps->i < ps->n && ps->p[ps->i] == '^') neg = !neg, ps->i++;
        while (ps->i < ps->n && ps->p[ps->i] != '}' && k + 1 < sizeof name)
            name[k++] = (char)ps->p[ps->i++];
        name[k] = 0;
        if (ps->i >= ps->n || ps->p[ps->i] != '}')
            return perr(ps, at, CT_ERR_CORRUPT, "an unterminated \\%c{...}", c);
        ps->i++;
        uint32_t m = property_cats(name);
        if (!m)
            return perr(ps, at, CT_ERR_UNSUPPORTED, "property \\%c{%s} (only general categories "
                        "such as L, Lu, N, Nd, P, S, M, Z, C are supported)", c, name);
        *it_p = (re_item_t){.kind = IT_CATS, .neg = (uint8_t)neg, .cats = m};
        return 2;
    }
    default:
        break;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9'))
        return perr(ps, at, CT_ERR_UNSUPPORTED, "the escape \\%c", c);
    if (c < 0x80) {
        *cp_p = (uint32_t)c;
        return 1;
    }
    ps->i--;
    size_t len;
    uint32_t cp = re_decode(ps->p, ps->n, ps->i, &len);
    if (cp == RE_INVALID) return perr(ps, ps->i, CT_ERR_CORRUPT, "invalid UTF-8 in the pattern");
    ps->i += len;
    *cp_p = cp;
    return 1;
}

/* One character class node for literal cp, with its case variants under (?i). */
static int literal(parser_t *ps, uint32_t cp, size_t at)
{
    int lower = cp >= 'a' && cp <= 'z', upper = cp >= 'A' && cp <= 'Z';
    if (ps->icase && cp >= 0x80)
        return perr(ps, at, CT_ERR_UNSUPPORTED, "a non-ASCII character under (?i) (case folding "
                    "beyond ASCII letters)");
    int k = new_class(ps, 0);
    if (k < 0 || add_range(ps, k, cp, cp)) return -1;
    int lit = -1;
    if (ps->icase && (lower || upper)) {
        uint32_t lc = cp | 0x20;
        lit = (int)lc;
        if (add_range(ps, k, cp ^ 0x20, cp ^ 0x20)) return -1;
        if (lc == 's' && add_range(ps, k, 0x17F, 0x17F)) return -1;
        if (lc == 'k' && add_range(ps, k, 0x212A, 0x212A)) return -1;
    }
    return class_node(ps, k, lit);
}

/* A bracket class; ps->i just past '['. */
static int parse_bracket(parser_t *ps)
{
    size_t at = ps->i - 1;
    if (ps->icase)
        return perr(ps, at, CT_ERR_UNSUPPORTED, "a bracket class under (?i)");
    int neg = 0;
    if (ps->i < ps->n && ps->p[ps->i] == '^') neg = 1, ps->i++;
    int k = new_class(ps, neg);
    if (k < 0) return -1;
    if (ps->i < ps->n && ps->p[ps->i] == ']')
        return perr(ps, ps->i, CT_ERR_UNSUPPORTED, "']' first in a class (escape it: \\])");
    for (;;) {
        if (ps->i >= ps->n) return perr(ps, at, CT_ERR_CORRUPT, "an unterminated class '['");
        size_t here = ps->i;
        int c = ps->p[ps->i];
        if (c == ']') {
            ps->i++;
            break;
        }
        if (c == '[')
            return perr(ps, here, CT_ERR_UNSUPPORTED, "'[' inside a class (nested and POSIX "
                        "classes; escape it: \\[)");
        if (c == '&' && ps->i + 1 < ps->n && ps->p[ps->i + 1] == '&')
            return perr(ps, here, CT_ERR_UNSUPPORTED, "class intersection &&");
        uint32_t lo;
        re_item_t it;
        int r;
        if (c == '\\') {
            ps->i++;
            if (ps->i < ps->n && ps->p[ps->i] == 'b')
                return perr(ps, here, CT_ERR_UNSUPPORTED, "the escape \\b");
            r = parse_escape(ps, &lo, &it);
            if (r < 0) return -1;
        } else {
            size_t len;
            lo = re_decode(ps->p, ps->n, ps->i, &len);
            if (lo == RE_INVALID) return perr(ps, here, CT_ERR_CORRUPT, "invalid UTF-8 in the pattern");
            ps->i += len;
            r = 1;
        }
        int dash = ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']';
        if (r == 2) {
            if (dash)
                return perr(ps, ps->i, CT_ERR_UNSUPPORTED, "a range from a set such as \\s "
                            "(escape the '-': \\-)");
            if (add_item(ps, k, it)) return -1;
            continue;
        }
        uint32_t hi = lo;
        if (dash) {
            ps->i++;
            size_t at_hi = ps->i;
            if (ps->p[ps->i] == '\\') {
                ps->i++;
                r = parse_escape(ps, &hi, &it);
                if (r < 0) return -1;
                if (r == 2)
                    return perr(ps, at_hi, CT_ERR_UNSUPPORTED, "a range to a set such as \\s");
            } else if (ps->p[ps->i] == '[') {
                return perr(ps, at_hi, CT_ERR_UNSUPPORTED, "'[' inside a class");
            } else {
                size_t len;
                hi = re_decode(ps->p, ps->n, ps->i, &len);
                if (hi == RE_INVALID)
                    return perr(ps, at_hi, CT_ERR_CORRUPT, "invalid UTF-8 in the pattern");
                ps->i += len;
            }
            if (hi < lo) return perr(ps, here, CT_ERR_CORRUPT, "a range out of order");
        }
        if (add_range(ps, k, lo, hi)) return -1;
    }
    return class_node(ps, k, -1);
}

static int parse_alt(parser_t *ps);

/* A group; ps->i just past '('. */
static int parse_group(parser_t *ps)
{
    size_t at = ps->i - 1;
    int saved_icase = ps->icase, look = -1;
    if (ps->i < ps->n && ps->p[ps->i] == '?') {
        ps->i++;
        int c = ps->i < ps->n ? ps->p[ps->i] : 0;
        if (c == ':') {
            ps->i++;
        } else if (c == '=' || c == '!') {
            look = c == '!';
            ps->i++;
        } else if (c == '<' && ps->i + 1 < ps->n &&
                   (ps->p[ps->i + 1] == '=' || ps->p[ps->i + 1] == '!')) {
            return perr(ps, at, CT_ERR_UNSUPPORTED, "a lookbehind (?<%c", ps->p[ps->i + 1]);
        } else if (c == '<' || c == '\'') {
            int close = c == '<' ? '>' : '\'';
            ps->i++;
            while (ps->i < ps->n && ps->p[ps->i] != close) ps->i++;
            if (ps->i >= ps->n) return perr(ps, at, CT_ERR_CORRUPT, "an unterminated group name");
            ps->i++;
        } else if (c == '>') {
            return perr(ps, at, CT_ERR_UNSUPPORTED, "an atomic group (?>");
        } else if (c == '#') {
            return perr(ps, at, CT_ERR_UNSUPPORTED, "a comment group (?#");
        } else {
            /* Flags: (?i) (?-i) (?i:...) (?-i:...) */
            int on = 1, icase = ps->icase;
            while (ps->i < ps->n && ps->p[ps->i] != ':' && ps->p[ps->i] != ')') {
                int f = ps->p[ps->i];
                if (f == '-') on = 0;
                else if (f == 'i') icase = on;
                else
                    return perr(ps, ps->i, CT_ERR_UNSUPPORTED, "the group flag '%c' (only i is "
                                "supported)", f >= 0x20 && f < 0x7f ? f : '?');
                ps->i++;
            }
            if (ps->i >= ps->n) return perr(ps, at, CT_ERR_CORRUPT, "an unterminated group '('");
            if (ps->p[ps->i] == ')') {
                /* For the rest of the enclosing group. */
                ps->i++;
                ps->icase = icase;
                return new_node(ps, N_EMPTY);
            }
            ps->i++;
            ps->icase = icase;
        }
    }
    if (++ps->depth > RE_MAX_DEPTH)
        return perr(ps, at, CT_ERR_UNSUPPORTED, "groups nested over %d deep", RE_MAX_DEPTH);
    int inner = parse_alt(ps);
    ps->depth--;
    ps->icase = saved_icase;
    if (inner < 0) return -1;
    if (ps->i >= ps->n || ps->p[ps->i] != ')')
        return perr(ps, at, CT_ERR_CORRUPT, "an unterminated group '('");
    ps->i++;
    if (look < 0) return inner;
    int k = bin_node(ps, N_LOOK, inner, -1);
    if (k >= 0) ps->nodes[k].neg = (uint8_t)look;
    return k;
}

/* {n}, {n,}, {n,m} or {,m} at ps->i: 1 with the bounds (and ps->i past
 * it), 0 when it is not a quantifier (then '{' is a literal, as in
 * Oniguruma), -1 on an error. */
static int parse_interval(parser_t *ps, int *min_p, int *max_p)
{
    size_t j = ps->i + 1;
    long a = -1, b = -1;
    int comma = 0;
    while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9') {
        a = (a < 0 ? 0 : a) * 10 + (ps->p[j++] - '0');
        if (a > 100000) a = 100000;
    }
    if (j < ps->n && ps->p[j] == ',') {
        comma = 1;
        j++;
        while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9') {
            b = (b < 0 ? 0 : b) * 10 + (ps->p[j++] - '0');
            if (b > 100000) b = 100000;
        }
    }
    if (j >= ps->n || ps->p[j] != '}' || (a < 0 && b < 0)) return 0;
    if (a < 0) a = 0;
    if (!comma) b = a;
    if (a > RE_MAX_REPEAT || b > RE_MAX_REPEAT)
        return perr(ps, ps->i, CT_ERR_UNSUPPORTED, "a repetition count over %d", RE_MAX_REPEAT);
    if (b >= 0 && b < a)
        return perr(ps, ps->i, CT_ERR_CORRUPT, "a repetition {%ld,%ld} whose upper bound is "
                    "below its lower bound", a, b);
    ps->i = j + 1;
    *min_p = (int)a;
    *max_p = (int)b;
    return 1;
}

static int nullable(const parser_t *ps, int k)
{
    const re_node_t *nd = &ps->nodes[k];
    switch (nd->type) {
    case N_EMPTY:
    case N_LOOK: return 1;
    case N_CLASS: return 0;
    case N_CAT: return nullable(ps, nd->a) && nullable(ps, nd->b);
    case N_ALT: return nullable(ps, nd->a) || nullable(ps, nd->b);
    default: return nd->min == 0 || nullable(ps, nd->a);
    }
}

/* An atom and its quantifiers. *lit_p gets the letter of a single literal
 * letter under (?i) (for the case-folding pairs check), else -1. */
static int parse_repeat(parser_t *ps, int *lit_p)
{
    size_t at = ps->i;
    int c = ps->p[ps->i], k;
    *lit_p = -1;
    switch (c) {
    case '(':
        ps->i++;
        k = parse_group(ps);
        break;
    case '[':
        ps->i++;
        k = parse_bracket(ps);
        break;
    case '.': {
        ps->i++;
        int cl = new_class(ps, 1);
        if (cl < 0 || add_range(ps, cl, '\n', '\n')) return -1;
        k = class_node(ps, cl, -1);
        break;
    }
    case '^':
    case '$':
        return perr(ps, at, CT_ERR_UNSUPPORTED, "the anchor '%c'", c);
    case '*':
    case '+':
    case '?':
        return perr(ps, at, CT_ERR_CORRUPT, "'%c' with nothing to repeat", c);
    case '\\': {
        ps->i++;
        uint32_t cp;
        re_item_t it;
        int r = parse_escape(ps, &cp, &it);
        if (r < 0) return -1;
        if (r == 1) {
            k = literal(ps, cp, at);
        } else {
            int cl = new_class(ps, 0);
            if (cl < 0 || add_item(ps, cl, it)) return -1;
            k = class_node(ps, cl, -1);
        }
        break;
    }
    default: {
        int mn, mx;
        if (c == '{') {
            int r = parse_interval(ps, &mn, &mx);
            if (r < 0) return -1;
            if (r > 0) return perr(ps, at, CT_ERR_CORRUPT, "a repetition with nothing to repeat");
        }
        size_t len;
        uint32_t cp = re_decode(ps->p, ps->n, ps->i, &len);
        if (cp == RE_INVALID) return perr(ps, at, CT_ERR_CORRUPT, "invalid UTF-8 in the pattern");
        ps->i += len;
        k = literal(ps, cp, at);
    }
    }
    if (k < 0) return -1;
    *lit_p = ps->nodes[k].lit;
    for (;;) {
        if (ps->i >= ps->n) break;
        size_t qat = ps->i;
        int q = ps->p[ps->i], mn, mx;
        if (q == '*') mn = 0, mx = -1, ps->i++;
        else if (q == '+') mn = 1, mx = -1, ps->i++;
        else if (q == '?') mn = 0, mx = 1, ps->i++;
        else if (q == '{') {
            int r = parse_interval(ps, &mn, &mx);
            if (r < 0) return -1;
            if (r == 0) break;
        } else break;
        int greedy = 1;
        if (ps->i < ps->n && ps->p[ps->i] == '?') greedy = 0, ps->i++;
        else if (q != '{' && ps->i < ps->n && ps->p[ps->i] == '+')
            return perr(ps, qat, CT_ERR_UNSUPPORTED, "a possessive quantifier %c+", q);
        const re_node_t *child = &ps->nodes[k];
        if (child->type == N_LOOK)
            return perr(ps, qat, CT_ERR_UNSUPPORTED, "a quantifier on a lookahead");
        if (child->type == N_EMPTY)
            return perr(ps, qat, CT_ERR_CORRUPT, "a quantifier with nothing to repeat");
        if (mx < 0 && nullable(ps, k))
            return perr(ps, qat, CT_ERR_UNSUPPORTED, "an unbounded repetition of a group that can "
                        "match the empty string");
        int r = bin_node(ps, N_REP, k, -1);
        if (r < 0) return -1;
        ps->nodes[r].min = mn;
        ps->nodes[r].max = mx;
        ps->nodes[r].greedy = (uint8_t)greedy;
        k = r;
        *lit_p = -1;
    }
    return k;
}

/* Pairs of ASCII letters that Unicode case folding matches to one
 * character (ß, ẞ, ﬀ, ﬁ, ﬂ, ﬃ, ﬄ, ﬅ, ﬆ): refused under (?i). */
static int fold_pair(int a, int b)
{
    return (a == 's' && (b == 's' || b == 't')) || (a == 'f' && (b == 'f' || b == 'i' || b == 'l'));
}

static int parse_cat(parser_t *ps)
{
    int k = -1, prev_lit = -1;
    while (ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        size_t at = ps->i;
        int lit, a = parse_repeat(ps, &lit);
        if (a < 0) return -1;
        if (ps->nodes[a].type == N_EMPTY) continue; /* (?i) and the like */
        if (prev_lit >= 0 && lit >= 0 && fold_pair(prev_lit, lit))
            return perr(ps, at, CT_ERR_UNSUPPORTED, "\"%c%c\" under (?i) (Unicode case folding "
                        "matches it to one character)", prev_lit, lit);
        prev_lit = lit;
        k = k < 0 ? a : bin_node(ps, N_CAT, k, a);
        if (k < 0) return -1;
    }
    return k < 0 ? new_node(ps, N_EMPTY) : k;
}

static int parse_alt(parser_t *ps)
{
    int k = parse_cat(ps);
    while (k >= 0 && ps->i < ps->n && ps->p[ps->i] == '|') {
        ps->i++;
        int b = parse_cat(ps);
        if (b < 0) return -1;
        k = bin_node(ps, N_ALT, k, b);
    }
    return k;
}

/* ---- code generation -------------------------------------------------------------- */

typedef struct {
    parser_t *ps;
    re_inst_t *prog;
    int n;
} gen_t;

static int emit(gen_t *g, int op, int x, int y)
{
    if (g->n >= RE_MAX_PROG)
        return perr(g->ps, 0, CT_ERR_UNSUPPORTED, "the pattern compiles to over %d steps "
                    "(large repetition counts)", RE_MAX_PROG);
    g->prog[g->n] = (re_inst_t){.op = (uint8_t)op, .x = x, .y = y};
    return g->n++;
}

static int gen(gen_t *g, int k)
{
    const re_node_t *nd = &g->ps->nodes[k];
    int pc;
    switch (nd->type) {
    case N_EMPTY: return 0;
    case N_CLASS: return emit(g, OP_CLASS, nd->cls, 0) < 0 ? -1 : 0;
    case N_CAT: return gen(g, nd->a) < 0 ? -1 : gen(g, nd->b);
    case N_ALT: {
        int split = emit(g, OP_SPLIT, 0, 0);
        if (split < 0) return -1;
        g->prog[split].x = g->n;
        if (gen(g, nd->a) < 0) return -1;
        int jmp = emit(g, OP_JMP, 0, 0);
        if (jmp < 0) return -1;
        g->prog[split].y = g->n;
        if (gen(g, nd->b) < 0) return -1;
        g->prog[jmp].x = g->n;
        return 0;
    }
    case N_LOOK: {
        int look = emit(g, OP_LOOK, 0, 0);
        if (look < 0 || gen(g, nd->a) < 0 || emit(g, OP_MATCH, 0, 0) < 0) return -1;
        g->prog[look].neg = nd->neg;
        g->prog[look].x = g->n;
        return 0;
    }
    default:
        break;
    }
    /* N_REP */
    const re_node_t *child = &g->ps->nodes[nd->a];
    if (child->type == N_CLASS && nd->greedy) {
        if ((pc = emit(g, OP_RUN, child->cls, 0)) < 0) return -1;
        g->prog[pc].min = nd->min;
        g->prog[pc].max = nd->max;
        return 0;
    }
    for (int i = 0; i < nd->min; i++)
        if (gen(g, nd->a) < 0) return -1;
    if (nd->max < 0) {
        /* L: SPLIT body, end; body: child; JMP L; end: */
        int split = emit(g, OP_SPLIT, 0, 0);
        if (split < 0 || gen(g, nd->a) < 0 || emit(g, OP_JMP, split, 0) < 0) return -1;
        g->prog[split].x = nd->greedy ? split + 1 : g->n;
        g->prog[split].y = nd->greedy ? g->n : split + 1;
        return 0;
    }
    /* max - min optional copies, each tried only after the one before it matched. */
    int opt = nd->max - nd->min, *splits = malloc(sizeof(int) * (size_t)(opt + 1));
    if (!splits) return oom(g->ps);
    for (int i = 0; i < opt; i++) {
        if ((splits[i] = emit(g, OP_SPLIT, 0, 0)) < 0 || gen(g, nd->a) < 0) {
            free(splits);
            return -1;
        }
    }
    for (int i = 0; i < opt; i++) {
        g->prog[splits[i]].x = nd->greedy ? splits[i] + 1 : g->n;
        g->prog[splits[i]].y = nd->greedy ? g->n : splits[i] + 1;
    }
    free(splits);
    return 0;
}

/* Adds what class k matches to f (non-ASCII conservatively). */
static void class_first(const ct__re_t *re, int k, re_first_t *f)
{
    const re_class_t *c = &re->cls[k];
    f->ascii[0] |= c->ascii[0];
    f->ascii[1] |= c->ascii[1];
    int high = c->neg;
    for (int i = c->first; i < c->first + c->n; i++) {
        const re_item_t *it = &re->items[i];
        high |= it->neg || it->kind != IT_RANGE || it->hi >= 0x80;
    }
    f->high |= (uint8_t)high;
}

static void first_union(re_first_t *f, const re_first_t *g)
{
    f->ascii[0] |= g->ascii[0];
    f->ascii[1] |= g->ascii[1];
    f->high |= g->high;
    f->empty |= g->empty;
}

/* The first sets of every instruction, to the least fixpoint (loops
 * always consume, so going round one adds nothing new). */
static int compute_first(ct__re_t *re)
{
    re->first = calloc((size_t)re->n_prog, sizeof *re->first);
    if (!re->first) return -1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int pc = re->n_prog - 1; pc >= 0; pc--) {
            const re_inst_t *in = &re->prog[pc];
            re_first_t f = {{0, 0}, 0, 0};
            switch (in->op) {
            case OP_CLASS: class_first(re, in->x, &f); break;
            case OP_RUN:
                class_first(re, in->x, &f);
                if (in->min == 0) first_union(&f, &re->first[pc + 1]);
                break;
            case OP_SPLIT:
                first_union(&f, &re->first[in->x]);
                first_union(&f, &re->first[in->y]);
                break;
            case OP_JMP: first_union(&f, &re->first[in->x]); break;
            case OP_LOOK: f = (re_first_t){{~0ULL, ~0ULL}, 1, 1}; break;
            default: f.empty = 1; break; /* OP_MATCH */
            }
            if (memcmp(&f, &re->first[pc], sizeof f) != 0) {
                re->first[pc] = f;
                changed = 1;
            }
        }
    }
    return 0;
}

/* Whether a match from an instruction with first set f may start at s[sp]. */
static inline int may_start(const re_first_t *f, const uint8_t *s, size_t n, size_t sp)
{
    if (f->empty) return 1;
    if (sp >= n) return 0;
    uint8_t b = s[sp];
    return b < 0x80 ? (int)(f->ascii[b >> 6] >> (b & 63) & 1) : f->high;
}

void ct__re_free(ct__re_t *re)
{
    if (!re) return;
    free(re->prog);
    free(re->first);
    free(re->cls);
    free(re->items);
    free(re->stk);
    free(re);
}

ct_status_t ct__re_compile(const char *pat, size_t len, ct__re_t **re_p, ct__re_error_t *err)
{
    ct__re_t *re = calloc(1, sizeof *re);
    parser_t ps = {.re = re, .p = (const uint8_t *)pat, .n = len, .err = err, .st = CT_OK};
    err->offset = 0;
    err->msg[0] = 0;
    if (!re || !(ps.nodes = malloc(sizeof *ps.nodes * RE_MAX_NODES))) {
        free(ps.nodes);
        ct__re_free(re);
        snprintf(err->msg, sizeof err->msg, "out of memory compiling the pattern");
        return CT_ERR_NO_MEMORY;
    }
    int root = parse_alt(&ps);
    if (root >= 0 && ps.i < ps.n) /* a ')' with no '(' */
        perr(&ps, ps.i, CT_ERR_CORRUPT, "an unmatched ')'");
    if (ps.st == CT_OK) {
        gen_t g = {.ps = &ps, .prog = malloc(sizeof(re_inst_t) * RE_MAX_PROG)};
        if (!g.prog) {
            oom(&ps);
        } else if (gen(&g, root) == 0 && emit(&g, OP_MATCH, 0, 0) >= 0) {
            re->prog = realloc(g.prog, sizeof(re_inst_t) * (size_t)g.n);
            if (!re->prog) re->prog = g.prog;
            re->n_prog = g.n;
            if (compute_first(re)) oom(&ps);
        } else {
            free(g.prog);
        }
    }
    free(ps.nodes);
    if (ps.st != CT_OK) {
        ct__re_free(re);
        return ps.st;
    }
    *re_p = re;
    return CT_OK;
}

/* ---- matching --------------------------------------------------------------------- */

static int push(ct__re_t *re, int32_t pc, int32_t count, size_t sp)
{
    if (re->top == re->cap_stk) {
        size_t nc = re->cap_stk ? 2 * re->cap_stk : 256;
        re_frame_t *f = realloc(re->stk, sizeof *f * nc);
        if (!f) return -1;
        re->stk = f;
        re->cap_stk = nc;
    }
    re->stk[re->top++] = (re_frame_t){.pc = pc, .count = count, .sp = sp};
    return 0;
}

/* Runs the program from pc at s[sp]: 1 with the end in *end_p, 0 when it
 * does not match, -1 when out of memory, -2 past RE_MAX_STEPS. The frames
 * this call pushes are gone when it returns (so lookaheads are atomic). */
static int vm(ct__re_t *re, const uint8_t *s, size_t n, int32_t pc, size_t sp, size_t *end_p)
{
    size_t base = re->top;
    for (;;) {
        const re_inst_t *in = &re->prog[pc];
        switch (in->op) {
        case OP_CLASS: {
            if (sp >= n) goto fail;
            size_t len;
            uint32_t cp = re_decode(s, n, sp, &len);
            if (!class_has(re, &re->cls[in->x], cp)) goto fail;
            sp += len;
            pc++;
            continue;
        }
        case OP_RUN: {
            const re_class_t *c = &re->cls[in->x];
            int32_t count = 0;
            while ((in->max < 0 || count < in->max) && sp < n) {
                uint8_t b = s[sp];
                if (b < 0x80) {
                    if (!(c->ascii[b >> 6] >> (b & 63) & 1)) break;
                    sp++;
                } else {
                    size_t len;
                    if (!class_has(re, c, re_decode(s, n, sp, &len))) break;
                    sp += len;
                }
                count++;
            }
            if (count < in->min) goto fail;
            if (count > in->min && push(re, pc + 1, count, sp)) return -1;
            pc++;
            continue;
        }
        case OP_SPLIT: {
            /* Branches that cannot start here are not tried (nor pushed). */
            int x = may_start(&re->first[in->x], s, n, sp);
            int y = may_start(&re->first[in->y], s, n, sp);
            if (!x && !y) goto fail;
            if (!x) {
                pc = in->y;
                continue;
            }
            if (y && push(re, in->y, -1, sp)) return -1;
            pc = in->x;
            continue;
        }
        case OP_JMP:
            pc = in->x;
            continue;
        case OP_LOOK: {
            size_t e;
            int r = vm(re, s, n, pc + 1, sp, &e);
            if (r < 0) return r;
            if (r != in->neg) {
                pc = in->x;
                continue;
            }
            goto fail;
        }
        default: /* OP_MATCH */
            *end_p = sp;
            re->top = base;
            return 1;
        }
    fail:
        if (++re->steps > RE_MAX_STEPS) return -2;
        if (re->top == base) return 0;
        re_frame_t *f = &re->stk[re->top - 1];
        pc = f->pc;
        if (f->count < 0) {
            sp = f->sp;
            re->top--;
            continue;
        }
        /* Give back one character of the OP_RUN before pc. */
        sp = f->sp = re_back(s, 0, f->sp);
        if (--f->count == re->prog[pc - 1].min) re->top--;
    }
}

int ct__re_search(ct__re_t *re, const uint8_t *s, size_t n, size_t from, size_t *start_p,
                  size_t *end_p)
{
    re->steps = 0;
    for (size_t at = from;;) {
        re->top = 0;
        size_t e;
        int r = may_start(&re->first[0], s, n, at) ? vm(re, s, n, 0, at, &e) : 0;
        if (r > 0) {
            *start_p = at;
            *end_p = e;
        }
        if (r != 0) return r;
        if (at >= n) return 0;
        size_t len;
        re_decode(s, n, at, &len);
        at += len;
    }
}

int ct__re_match(ct__re_t *re, const uint8_t *s, size_t n, size_t at, size_t *end_p)
{
    re->steps = 0;
    re->top = 0;
    return vm(re, s, n, 0, at, end_p);
}
