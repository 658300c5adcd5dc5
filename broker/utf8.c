/* broker/utf8.c: brk_utf8_valid (utf8.h), shared by the broker's request checks and the
 * session store. */
#include "utf8.h"

bool brk_utf8_valid(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p, *end = s + n;
    while (s < end) {
        unsigned c = *s++;
        size_t more = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2
                    : c >= 0xf0 && c < 0xf5 ? 3 : 9;
        if (more == 9 || (size_t)(end - s) < more) return false;
        unsigned cp = c & (0x3f >> more);
        for (size_t i = 0; i < more; i++) {
            if ((s[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        /* overlong forms, surrogates and code points past U+10FFFF */
        if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        s += more;
    }
    return true;
}
