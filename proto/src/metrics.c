/* proto/src/metrics.c: the HTTP head reader, the scraper's answer and the Prometheus text
 * writer of proto/metrics.h. The reader never reads past n, never allocates and gives up at
 * max bytes, so a peer can cost an endpoint at most max bytes of buffer. */
#include "proto/metrics.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint64_t proto_hist_bounds_us[PROTO_HIST_BUCKETS] = {
    100,    250,    500,     1000,    2500,    5000,     10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

/* ---- reading a request head ---- */

static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parses "METHOD SP TARGET SP HTTP/1.D" (line without its end). */
static int request_line(const char *s, size_t n, proto_http_req_t *out) {
    size_t i = 0, m = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= sizeof out->method || i >= n || s[i] != ' ') return PROTO_EBAD;
    memcpy(out->method, s, i);
    out->method[i] = '\0';
    size_t t0 = ++i;
    while (i < n && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) return PROTO_EBAD;
        i++;
    }
    size_t tn = i - t0;
    if (tn == 0 || s[t0] != '/' || i >= n) return PROTO_EBAD;
    while (m < tn && s[t0 + m] != '?' && s[t0 + m] != '#') m++;
    if (m >= sizeof out->path) return PROTO_EBAD;
    memcpy(out->path, s + t0, m);
    out->path[m] = '\0';
    const char *v = s + i + 1;
    if (n - i - 1 != 8 || memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9')
        return PROTO_EBAD;
    out->minor = v[7] - '0';
    return 0;
}

/* A header line "name: value": a token, a colon, then visible text, spaces or obs-text. */
static int header_line(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= n || s[i] != ':') return PROTO_EBAD;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return PROTO_EBAD;
    }
    return 0;
}

int proto_http_parse(const char *buf, size_t n, size_t max, proto_http_req_t *out) {
    size_t line = 0, lines = 0, limit = n < max ? n : max;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < limit; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c != '\n') {
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) return PROTO_EBAD;
            continue;
        }
        size_t len = i - line; /* a bare LF ends a line too (RFC 9112 allows it) */
        if (len && buf[i - 1] == '\r') len--;
        if (memchr(buf + line, '\r', len)) return PROTO_EBAD; /* a CR inside a line */
        int rc = 0;
        if (lines == 0) rc = request_line(buf + line, len, out);
        else if (len == 0) return (int)(i + 1); /* the empty line: the head is whole */
        else rc = header_line(buf + line, len);
        if (rc) return rc;
        lines++;
        line = i + 1;
    }
    return n >= max ? PROTO_ETOOBIG : 0;
}

int proto_http_status(int rc, const proto_http_req_t *req, const char *path) {
    if (rc == PROTO_ETOOBIG) return 431;
    if (rc <= 0) return 400;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) return 405;
    return strcmp(req->path, path) == 0 ? 200 : 404;
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void proto_http_response(proto_buf_t *o, int status, const char *content_type,
                         const uint8_t *body, size_t n, bool head_only) {
    char text[96];
    if (status != 200) { /* errors carry their reason as the body */
        snprintf(text, sizeof text, "%d %s\n", status, reason(status));
        body = (const uint8_t *)text;
        n = strlen(text);
        content_type = "text/plain; charset=utf-8";
    }
    proto_text_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n%s\r\n", status, reason(status), content_type, n,
                      status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only && n) proto_buf_raw(o, (proto_raw_t){body, n});
}

/* ---- writing Prometheus text ---- */

void proto_text_printf(proto_buf_t *o, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        proto_buf_raw(o, (proto_raw_t){(const uint8_t *)small, (size_t)n});
        return;
    }
    /* Longer than the stack buffer: format again, into the buffer's own room. */
    if (proto__buf_reserve(o, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf((char *)o->p + o->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->n += (size_t)n;
}

void proto_prom_label(proto_buf_t *o, const char *s, size_t n) {
    static const char fffd[] = "\xef\xbf\xbd"; /* U+FFFD, the replacement character */
    const uint8_t *u = (const uint8_t *)s;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        size_t len = u[i] ? proto__utf8_len(u + i, n - i) : 0;
        const char *esc = !len ? fffd : s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\""
                        : s[i] == '\n' ? "\\n" : NULL;
        if (!esc) {
            i += len;
            continue;
        }
        proto_buf_raw(o, (proto_raw_t){u + run, i - run});
        proto_buf_raw(o, (proto_raw_t){(const uint8_t *)esc, strlen(esc)});
        run = i = i + (len ? len : 1);
    }
    proto_buf_raw(o, (proto_raw_t){u + run, n - run});
}

void proto_prom_family(proto_buf_t *o, const char *name, const char *type, const char *help) {
    proto_text_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void proto_prom_u64(proto_buf_t *o, const char *name, const char *labels, uint64_t v) {
    proto_text_printf(o, "%s%s%s%s %llu\n", name, *labels ? "{" : "", labels,
                      *labels ? "}" : "", (unsigned long long)v);
}

void proto_hist_observe(proto_hist_t *h, uint64_t us) {
    size_t i = 0;
    while (i < PROTO_HIST_BUCKETS && us > proto_hist_bounds_us[i]) i++;
    h->counts[i]++;
    h->count++;
    h->sum_us += us;
}

void proto_prom_hist(proto_buf_t *o, const char *name, const char *labels,
                     const proto_hist_t *h) {
    const char *sep = *labels ? "," : "";
    uint64_t cum = 0;
    for (size_t i = 0; i <= PROTO_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        char le[32];
        if (i == PROTO_HIST_BUCKETS)
            snprintf(le, sizeof le, "+Inf");
        else
            snprintf(le, sizeof le, "%g", (double)proto_hist_bounds_us[i] / 1e6);
        proto_text_printf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
                          (unsigned long long)cum);
    }
    proto_text_printf(o, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels,
                      *labels ? "}" : "", (double)h->sum_us / 1e6);
    char count[160];
    snprintf(count, sizeof count, "%s_count", name);
    proto_prom_u64(o, count, labels, h->count);
}
