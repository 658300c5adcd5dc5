/* base/buf.h: a growable byte buffer for text (HTTP answers, Prometheus text). A failed
 * allocation sets failed and drops every later write, so a writer checks once at the end. */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct base_buf {
    uint8_t *p;    /* bytes (not NUL-terminated unless the writer put one) */
    size_t n, cap; /* used, allocated */
    bool failed;   /* an allocation failed: the contents are incomplete */
} base_buf_t;

void base_buf_init(base_buf_t *b);
void base_buf_reset(base_buf_t *b); /* n = 0, failed = false, keeps the memory */
void base_buf_free(base_buf_t *b);  /* frees the memory; b is empty and usable again */
/* Makes room for extra more bytes. Returns: 0. Errors: -ENOMEM (sets failed). */
int base_buf_reserve(base_buf_t *b, size_t extra);
/* Appends p[0..n). */
void base_buf_put(base_buf_t *b, const void *p, size_t n);
/* Appends printf-formatted text (no NUL). */
void base_buf_printf(base_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a NUL and returns the text as a C string; "" when the buffer failed. The NUL is
 * not counted in n. */
const char *base_buf_cstr(base_buf_t *b);

#endif
