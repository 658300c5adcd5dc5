/* tools/web/web_http.c: the console's request head (read by base's reader, base/http_head.h,
 * in its strict form) and parameters, and the checks that decide whether a request may be
 * answered (see web_http.h). Everything here reads untrusted bytes: every length is checked
 * before it is used and nothing is asserted on. */
#include "web_http.h"

#include "base/http_head.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies s[0..n) into out (cap bytes, NUL-terminated). Returns: 0, or -E2BIG. */
static int copy(char *out, size_t cap, const char *s, size_t n) {
    if (n >= cap) return -E2BIG;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

typedef struct fields {
    web_req_t *r;
    size_t max_body;
    bool cl_seen;
} fields_t;

static int content_length(const char *v, size_t n, fields_t *f) {
    if (f->cl_seen || n == 0 || n > 19) return -EINVAL;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -EINVAL;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    f->cl_seen = true;
    f->r->content_length = x;
    return x > f->max_body ? -EFBIG : 0;
}

static bool name_is(const char *name, size_t n, const char *want) {
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* base_http_read_head's header callback: the fields the console reads. Values longer than
 * the field are cut (only Host and the token matter, and a cut one fails its check). */
static int header(void *ctx, const char *name, size_t nn, const char *v, size_t vn) {
    fields_t *f = ctx;
    web_req_t *r = f->r;
    char *dst = NULL;
    if (name_is(name, nn, "content-length")) return content_length(v, vn, f);
    if (name_is(name, nn, "transfer-encoding")) return -EINVAL;
    if (name_is(name, nn, "x-actor-web")) r->has_xweb = true;
    if (name_is(name, nn, "host")) dst = r->host;
    if (name_is(name, nn, "x-actor-token")) dst = r->token;
    if (name_is(name, nn, "content-type")) dst = r->content_type;
    if (dst) copy(dst, WEB_MAX_FIELD, v, vn < WEB_MAX_FIELD ? vn : WEB_MAX_FIELD - 1);
    return 0;
}

int web_req_parse(const char *buf, size_t n, size_t max_head, size_t max_body, web_req_t *r) {
    memset(r, 0, sizeof *r);
    fields_t f = {r, max_body, false};
    base_http_head_opts_t o = {.max = max_head, .strict = true, .on_header = header, .ctx = &f};
    base_http_req_t req;
    int rc = base_http_read_head(buf, n, &o, &req);
    if (rc == 0) return 0;
    if (rc == BASE_HTTP_ELONG || rc == BASE_HTTP_ETOOBIG) return -E2BIG;
    if (rc < 0) return rc; /* -EINVAL, or the callback's -EINVAL / -EFBIG */
    if (copy(r->method, sizeof r->method, req.method, strlen(req.method))) return -EINVAL;
    if (copy(r->path, sizeof r->path, req.path, strlen(req.path)) ||
        copy(r->query, sizeof r->query, req.query, strlen(req.query)))
        return -E2BIG;
    r->head_len = (size_t)rc;
    return 1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int web_url_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3) return -EINVAL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap) return -E2BIG;
        out[o++] = c;
    }
    if (cap == 0) return -E2BIG;
    out[o] = '\0';
    return (int)o;
}

int web_query_get(const char *query, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && p[nl] == '=' && memcmp(p, name, nl) == 0)
            return web_url_decode(p + nl + 1, len - nl - 1, out, cap);
        if (len == nl && memcmp(p, name, nl) == 0) return web_url_decode("", 0, out, cap);
        p += len + (amp ? 1 : 0);
    }
    return -ENOENT;
}

/* Whether s is a dotted quad whose first number is 127. */
static bool ipv4_loopback(const char *s) {
    int parts = 0;
    const char *p = s;
    while (parts < 4) {
        char *end;
        if (*p < '0' || *p > '9') return false;
        unsigned long v = strtoul(p, &end, 10);
        if (v > 255 || end - p > 3 || (parts == 0 && v != 127)) return false;
        parts++;
        p = end;
        if (parts < 4 && *p++ != '.') return false;
    }
    return *p == '\0';
}

bool web_is_loopback(const char *host) {
    return strcasecmp(host, "localhost") == 0 || ipv4_loopback(host) ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

bool web_host_ok(const char *host, int port) {
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host || (host[0] == '[' && colon[-1] != ']')) return false;
    char want[16], name[WEB_MAX_FIELD];
    snprintf(want, sizeof want, "%d", port);
    if (strcmp(colon + 1, want) != 0) return false;
    if (copy(name, sizeof name, host, (size_t)(colon - host)) != 0) return false;
    if (strcmp(name, "::1") == 0) return false; /* a bare IPv6 address needs brackets */
    return web_is_loopback(name);
}

bool web_token_eq(const char *got, const char *want) {
    size_t gn = strlen(got), wn = strlen(want);
    if (wn == 0) return false;
    unsigned char diff = gn != wn;
    for (size_t i = 0; i < wn; i++) diff |= (unsigned char)(want[i] ^ (i < gn ? got[i] : 0));
    return diff == 0;
}

int web_json_str(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    if (cap < 3) return -E2BIG;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t k;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) {
            k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        if (o + k + 2 > cap) return -E2BIG;
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o++] = '"';
    out[o] = '\0';
    return (int)o;
}
