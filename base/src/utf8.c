/* base/src/utf8.c: base/utf8.h. One decoder of a character's length; the rest walk with it. */
#include "base/utf8.h"

size_t base_utf8_len(const uint8_t *p, size_t n) {
    if (n == 0) return 0;
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

bool base_utf8_valid(const char *p, size_t n) {
    const uint8_t *s = (const uint8_t *)p;
    for (size_t i = 0; i < n;) {
        size_t len = base_utf8_len(s + i, n - i);
        if (!len) return false;
        i += len;
    }
    return true;
}

size_t base_utf8_clean(char *dst, size_t cap, const char *src, size_t n) {
    const uint8_t *s = (const uint8_t *)src;
    size_t out = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        size_t len = base_utf8_len(s + i, n - i);
        if (out + (len ? len : 1) >= cap) break; /* whole characters only, and the NUL */
        if (len) {
            for (size_t k = 0; k < len; k++) dst[out++] = (char)s[i + k];
            i += len;
        } else {
            dst[out++] = '?';
            i++;
        }
    }
    dst[out] = '\0';
    return out;
}
