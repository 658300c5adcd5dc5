/* base/http_head.h: the one reader of HTTP/1.x request heads (the /metrics endpoints and
 * actor-web's console), bounded, with header fields handed to a callback; the status a
 * scraper gets, and a whole `Connection: close` answer. */
#ifndef BASE_HTTP_HEAD_H
#define BASE_HTTP_HEAD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define BASE_HTTP_MAX_PATH 256
#define BASE_HTTP_MAX_QUERY 2048
#define BASE_HTTP_DEFAULT_MAX 8192 /* bytes of a request head, by default */

/* The reader's errors (negative errno values, so a header callback's own codes pass
 * through beside them). */
#define BASE_HTTP_EBAD (-EINVAL)        /* not an HTTP/1.x request head */
#define BASE_HTTP_ETOOBIG (-E2BIG)      /* no end of the head within max bytes */
#define BASE_HTTP_ELONG (-ENAMETOOLONG) /* a target or query longer than its field */

typedef struct base_http_req {
    char method[16];                  /* "GET" */
    char path[BASE_HTTP_MAX_PATH];    /* "/metrics", not decoded, the query string cut off */
    char query[BASE_HTTP_MAX_QUERY];  /* what followed '?', "" when none */
    int minor;                        /* HTTP/1.<minor> */
} base_http_req_t;

/* Receives one header line: name[0..nn) (a token) and value[0..vn) with its surrounding
 * blanks cut. Returns: 0 to go on, or a negative code that ends the read with it. */
typedef int (*base_http_header_fn)(void *ctx, const char *name, size_t nn, const char *value,
                                   size_t vn);

typedef struct base_http_head_opts {
    size_t max;   /* bytes of the head */
    bool strict;  /* CRLF line ends only and an upper-case method: a server that other
                     software may sit in front of reads the head as strictly as it can */
    base_http_header_fn on_header; /* NULL: header lines are checked for shape only */
    void *ctx;
} base_http_head_opts_t;

/* Reads the request head at buf[0..n): the request line and header lines up to the empty
 * line. Never reads past n or max, never allocates.
 * Returns: 0 while the head is incomplete (read more), else the head's length in bytes.
 * Errors: BASE_HTTP_EBAD (a bad request line, a method longer than its field, a header line
 * that is not a token, ':' and text, NUL or control bytes, a bare LF when strict),
 * BASE_HTTP_ELONG (a target or query longer than its field), BASE_HTTP_ETOOBIG (no end of
 * the head within max bytes), or what on_header returned. */
int base_http_read_head(const char *buf, size_t n, const base_http_head_opts_t *o,
                        base_http_req_t *out);
/* base_http_read_head with max and nothing else: how the /metrics endpoints read. */
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
