/* base/http_head.h: what an endpoint needs of HTTP/1.x to answer a scraper: a bounded reader
 * of one request head, the status the scraper gets, and a whole `Connection: close` answer. */
#ifndef BASE_HTTP_HEAD_H
#define BASE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define BASE_HTTP_MAX_PATH 256
#define BASE_HTTP_DEFAULT_MAX 8192 /* bytes of a request head, by default */

/* base_http_parse's errors. */
#define BASE_HTTP_EBAD (-1)    /* not an HTTP/1.x request head */
#define BASE_HTTP_ETOOBIG (-2) /* no end of the head within max bytes */

typedef struct base_http_req {
    char method[16];                /* "GET" */
    char path[BASE_HTTP_MAX_PATH];  /* "/metrics", the query string cut off */
    int minor;                      /* HTTP/1.<minor> */
} base_http_req_t;

/* Reads the request head at buf[0..n): the request line and header lines up to the empty
 * line. Header fields are checked for shape (name ":" value) and otherwise ignored. Never
 * reads past n or max, never allocates.
 * Returns: 0 while the head is incomplete (read more), else the head's length in bytes.
 * Errors: BASE_HTTP_EBAD (a bad request line, a method or target longer than the fields
 * above, a bad header line, NUL or control bytes), BASE_HTTP_ETOOBIG (no end of the head
 * within max bytes). */
int base_http_parse(const char *buf, size_t n, size_t max, base_http_req_t *out);

/* The status a scraper gets for a head (rc as base_http_parse returned it, > 0) or an error:
 * 200 for GET (or HEAD) of path, 404 another path, 405 another method, 400 a bad head,
 * 431 a head over the limit. */
int base_http_status(int rc, const base_http_req_t *req, const char *path);

/* Appends a whole HTTP/1.1 response with `Connection: close` to o: the status line, the
 * headers and, unless head_only, body[0..n). Errors are answered with a short text body. */
void base_http_response(base_buf_t *o, int status, const char *content_type,
                        const uint8_t *body, size_t n, bool head_only);

#endif
