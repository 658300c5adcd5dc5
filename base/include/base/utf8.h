/* base/utf8.h: the one UTF-8 reader: names and messages a peer sends are checked or cleaned
 * with it (a strict msgpack decoder refuses a str that is not UTF-8), and JSON and Prometheus
 * text use it to tell characters from stray bytes. */
#ifndef BASE_UTF8_H
#define BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns: the length (1-4) of the well-formed character at p[0..n), or 0 when p does not
 * start one (overlong forms, surrogates, code points past U+10FFFF, a cut character, n 0). */
size_t base_utf8_len(const uint8_t *p, size_t n);

/* Whether p[0..n) is well-formed UTF-8. */
bool base_utf8_valid(const char *p, size_t n);

/* Copies src[0..n) into dst (cap bytes, NUL-terminated) as well-formed UTF-8: each byte that
 * does not start a well-formed character becomes '?', and the copy ends before a character
 * that does not fit whole, so a cut never splits one. Returns: the bytes written, not
 * counting the NUL (0 when cap is 0). */
size_t base_utf8_clean(char *dst, size_t cap, const char *src, size_t n);

#endif
