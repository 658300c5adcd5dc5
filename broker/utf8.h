/* broker/utf8.h: the UTF-8 check the broker applies to names it passes on (agents, sessions,
 * workers) and the session store applies to names and state keys: a client's msgpack library
 * may refuse a str that is not UTF-8. */
#ifndef BRK_UTF8_H
#define BRK_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Whether p holds well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
bool brk_utf8_valid(const char *p, size_t n);

/* Copies src[0..n) into dst (cap bytes, NUL-terminated) as well-formed UTF-8: each byte that
 * does not start a well-formed character becomes '?', and the copy ends before a character
 * that does not fit whole, so a cut never splits one. Returns: the bytes written, not
 * counting the NUL. Used on every error message and code the broker sends: a strict msgpack
 * decoder refuses a str that is not UTF-8. */
size_t brk_utf8_clean(char *dst, size_t cap, const char *src, size_t n);

#endif
