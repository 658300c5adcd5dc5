/* proto/metrics.h: what the broker's and the worker's /metrics endpoints share (they share
 * nothing but proto): a bounded reader of one HTTP/1.x request head, the answer a scraper
 * gets, and a writer of Prometheus text (exposition format 0.0.4) with a fixed-bucket
 * latency histogram. Text goes into a proto_buf_t used as a plain byte buffer. */
#ifndef PROTO_METRICS_H
#define PROTO_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define PROTO_HTTP_MAX_PATH 256
#define PROTO_HTTP_DEFAULT_MAX 8192 /* bytes of a request head, by default */

typedef struct proto_http_req {
    char method[16];                   /* "GET" */
    char path[PROTO_HTTP_MAX_PATH];    /* "/metrics", the query string cut off */
    int minor;                         /* HTTP/1.<minor> */
} proto_http_req_t;

/* Reads the request head at buf[0..n): the request line and header lines up to the empty
 * line. Header fields are checked for shape (name ":" value) and otherwise ignored.
 * Returns: 0 while the head is incomplete (read more), else the head's length in bytes.
 * Errors: PROTO_EBAD (not an HTTP/1.x request head: a bad request line, a method or target
 * longer than the fields above, a bad header line, NUL or control bytes), PROTO_ETOOBIG (no
 * end of the head within max bytes). */
int proto_http_parse(const char *buf, size_t n, size_t max, proto_http_req_t *out);

/* The status a scraper gets for a head (rc as proto_http_parse returned it, > 0) or an error:
 * 200 for GET (or HEAD) of path, 404 another path, 405 another method, 400 a bad head,
 * 431 a head over the limit. */
int proto_http_status(int rc, const proto_http_req_t *req, const char *path);

/* Appends a whole HTTP/1.1 response with `Connection: close` to o: the status line, the
 * headers and, unless head_only, body[0..n). Errors are answered with a short text body. */
void proto_http_response(proto_buf_t *o, int status, const char *content_type,
                         const uint8_t *body, size_t n, bool head_only);

/* Appends printf-formatted text to o (no NUL). */
void proto_text_printf(proto_buf_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a Prometheus label value: \\, \" and \n escaped, and each NUL or byte
 * that does not start well-formed UTF-8 written as U+FFFD, so the text stays parseable and
 * can be held in a C string. */
void proto_prom_label(proto_buf_t *o, const char *s, size_t n);
/* Appends "# HELP name help\n# TYPE name type\n". */
void proto_prom_family(proto_buf_t *o, const char *name, const char *type, const char *help);
/* Appends "name{labels} value\n"; labels is rendered text (`agent="echo"`) or "". */
void proto_prom_u64(proto_buf_t *o, const char *name, const char *labels, uint64_t v);

/* Latency buckets in microseconds: 100 us to 60 s, the upper bounds of Prometheus `le`. */
#define PROTO_HIST_BUCKETS 18
extern const uint64_t proto_hist_bounds_us[PROTO_HIST_BUCKETS];

typedef struct proto_hist {
    uint64_t counts[PROTO_HIST_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t count;                          /* observations */
    uint64_t sum_us;                         /* their sum */
} proto_hist_t;

/* Counts one observation of us microseconds. */
void proto_hist_observe(proto_hist_t *h, uint64_t us);
/* Appends the histogram's samples: name_bucket{labels,le="..."} (cumulative), name_sum (in
 * seconds) and name_count. labels as for proto_prom_u64. */
void proto_prom_hist(proto_buf_t *o, const char *name, const char *labels,
                     const proto_hist_t *h);

#endif
