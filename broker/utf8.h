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

#endif
