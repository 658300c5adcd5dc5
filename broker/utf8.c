/* broker/utf8.c: brk_utf8_valid and brk_utf8_clean (utf8.h), shared by the broker's request
 * checks, its error replies and the session store. */
#include "utf8.h"

/* The length of the well-formed character at s (1-4), or 0 when s does not start one. */
static size_t char_len(const unsigned char *s, const unsigned char *end) {
    unsigned c = *s++;
    size_t more = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2
                : c >= 0xf0 && c < 0xf5 ? 3 : 9;
    if (more == 9 || (size_t)(end - s) < more) return 0;
    unsigned cp = c & (0x3f >> more);
    for (size_t i = 0; i < more; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and code points past U+10FFFF */
    if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
        (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return more + 1;
}

bool brk_utf8_valid(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p, *end = s + n;
    while (s < end) {
        size_t len = char_len(s, end);
        if (!len) return false;
        s += len;
    }
    return true;
}

size_t brk_utf8_clean(char *dst, size_t cap, const char *src, size_t n) {
    const unsigned char *s = (const unsigned char *)src, *end = s + n;
    size_t out = 0;
    if (cap == 0) return 0;
    while (s < end) {
        size_t len = char_len(s, end);
        if (out + (len ? len : 1) >= cap) break; /* whole characters only, and the NUL */
        if (len) {
            for (size_t i = 0; i < len; i++) dst[out++] = (char)s[i];
            s += len;
        } else {
            dst[out++] = '?';
            s++;
        }
    }
    dst[out] = 0;
    return out;
}
