/* UTF-8: one encoder and one strict decoder for the whole tree.
 *
 * Strict means RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing above U+10FFFF. Left out: anything that allocates, and the
 * pre-tokenizer's own fast decoder (data/bpe.c), which classifies invalid
 * bytes rather than rejecting them. Pure functions, thread-safe. */
#ifndef CT_CORE_UTF8_H
#define CT_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the UTF-8 of code point cp to out and returns its length (1..4).
 * cp must be at most 0x10FFFF; surrogates are encoded as they are (3 bytes),
 * so callers that must not produce them check first. */
size_t ct_utf8_encode(uint32_t cp, char out[4]);

/* Decodes one character at s[0..n) (n >= 1). Returns its length (1..4) and
 * writes the code point to *cp_p, or returns 0 for invalid or truncated
 * UTF-8 (*cp_p untouched). */
size_t ct_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp_p);

#ifdef __cplusplus
}
#endif

#endif
