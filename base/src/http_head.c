/* base/src/http_head.c: the HTTP head reader and the scraper's answer of base/http_head.h.
 * The reader never reads past n, never allocates and gives up at max bytes, so a peer can
 * cost an endpoint at most max bytes of buffer. */
#include "base/http_head.h"

#include <stdio.h>
#include <string.h>

/* ---- reading a request head ---- */

static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool method_char(unsigned char c, bool strict) {
    return strict ? c >= 'A' && c <= 'Z' : is_tchar(c);
}

/* Copies s[0..n) into out (cap bytes, NUL-terminated). Returns: 0, or BASE_HTTP_ELONG. */
static int copy(char *out, size_t cap, const char *s, size_t n) {
    if (n >= cap) return BASE_HTTP_ELONG;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* Parses "METHOD SP TARGET SP HTTP/1.D" (line without its end). */
static int request_line(const char *s, size_t n, bool strict, base_http_req_t *out) {
    size_t i = 0, m = 0;
    while (i < n && method_char((unsigned char)s[i], strict)) i++;
    if (i == 0 || i >= n || s[i] != ' ') return BASE_HTTP_EBAD;
    if (copy(out->method, sizeof out->method, s, i)) return BASE_HTTP_EBAD;
    size_t t0 = ++i;
    while (i < n && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) return BASE_HTTP_EBAD;
        i++;
    }
    size_t tn = i - t0;
    if (tn == 0 || s[t0] != '/' || i >= n) return BASE_HTTP_EBAD;
    const char *v = s + i + 1;
    if (n - i - 1 != 8 || memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9')
        return BASE_HTTP_EBAD;
    out->minor = v[7] - '0';
    while (m < tn && s[t0 + m] != '?' && s[t0 + m] != '#') m++;
    int rc = copy(out->path, sizeof out->path, s + t0, m);
    if (rc == 0 && m < tn && s[t0 + m] == '?') {
        size_t q = m + 1, qe = q;
        while (qe < tn && s[t0 + qe] != '#') qe++;
        rc = copy(out->query, sizeof out->query, s + t0 + q, qe - q);
    }
    return rc;
}

/* A header line "name: value": a token, a colon, then visible text, spaces or obs-text;
 * handed to the callback with the value's surrounding blanks cut. */
static int header_line(const char *s, size_t n, const base_http_head_opts_t *o) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= n || s[i] != ':') return BASE_HTTP_EBAD;
    size_t nn = i;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return BASE_HTTP_EBAD;
    }
    if (!o->on_header) return 0;
    const char *v = s + nn + 1, *end = s + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    return o->on_header(o->ctx, s, nn, v, (size_t)(end - v));
}

int base_http_read_head(const char *buf, size_t n, const base_http_head_opts_t *o,
                        base_http_req_t *out) {
    size_t line = 0, lines = 0, limit = n < o->max ? n : o->max;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < limit; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c != '\n') {
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) return BASE_HTTP_EBAD;
            continue;
        }
        size_t len = i - line; /* a bare LF ends a line too (RFC 9112 allows it) */
        if (len && buf[i - 1] == '\r') len--;
        else if (o->strict) return BASE_HTTP_EBAD; /* ...but not where lines must be CRLF */
        if (memchr(buf + line, '\r', len)) return BASE_HTTP_EBAD; /* a CR inside a line */
        int rc = 0;
        if (lines == 0) rc = request_line(buf + line, len, o->strict, out);
        else if (len == 0) return (int)(i + 1); /* the empty line: the head is whole */
        else rc = header_line(buf + line, len, o);
        if (rc) return rc;
        lines++;
        line = i + 1;
    }
    return n >= o->max ? BASE_HTTP_ETOOBIG : 0;
}

int base_http_parse(const char *buf, size_t n, size_t max, base_http_req_t *out) {
    base_http_head_opts_t o = {.max = max};
    return base_http_read_head(buf, n, &o, out);
}

int base_http_status(int rc, const base_http_req_t *req, const char *path) {
    if (rc == BASE_HTTP_ETOOBIG) return 431;
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

void base_http_response(base_buf_t *o, int status, const char *content_type,
                        const uint8_t *body, size_t n, bool head_only) {
    char text[96];
    if (status != 200) { /* errors carry their reason as the body */
        snprintf(text, sizeof text, "%d %s\n", status, reason(status));
        body = (const uint8_t *)text;
        n = strlen(text);
        content_type = "text/plain; charset=utf-8";
    }
    base_buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n%s\r\n", status, reason(status), content_type, n,
                    status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only && n) base_buf_put(o, body, n);
}

