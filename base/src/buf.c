/* base/src/buf.c: the byte buffer of base/buf.h, doubling from 256 bytes. */
#include "base/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void base_buf_init(base_buf_t *b) { *b = (base_buf_t){0}; }

void base_buf_reset(base_buf_t *b) {
    b->n = 0;
    b->failed = false;
}

void base_buf_free(base_buf_t *b) {
    free(b->p);
    base_buf_init(b);
}

int base_buf_reserve(base_buf_t *b, size_t extra) {
    if (b->failed) return -ENOMEM;
    if (extra <= b->cap - b->n) return 0;
    if (extra > SIZE_MAX / 2 - b->n) goto fail;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) goto fail;
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = true;
    return -ENOMEM;
}

void base_buf_put(base_buf_t *b, const void *p, size_t n) {
    if (!n || base_buf_reserve(b, n)) return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void base_buf_printf(base_buf_t *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        base_buf_put(b, small, (size_t)n);
        return;
    }
    /* Longer than the stack buffer: format again, into the buffer's own room. */
    if (base_buf_reserve(b, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

const char *base_buf_cstr(base_buf_t *b) {
    if (base_buf_reserve(b, 1)) return "";
    b->p[b->n] = '\0';
    return (const char *)b->p;
}
