/* tools/web/web_http.c: reading a request head and its parameters, and the checks that decide
 * whether a request may be answered (see web_http.h). Everything here reads untrusted bytes:
 * every length is checked before it is used and nothing is asserted on. */
#include "web_http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The head's end: the index just past "\r\n\r\n" within buf[0..n), 0 when absent. */
static size_t head_end(const char *buf, size_t n) {
    for (size_t i = 3; i < n; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
    return 0;
}

static bool ctl_byte(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

/* Copies s[0..n) into out (cap bytes, NUL-terminated). Returns: 0, or -E2BIG. */
static int copy(char *out, size_t cap, const char *s, size_t n) {
    if (n >= cap) return -E2BIG;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* "METHOD SP target SP HTTP/1.x" in line[0..n). */
static int request_line(const char *line, size_t n, web_req_t *r) {
    const char *sp1 = memchr(line, ' ', n);
    if (!sp1 || sp1 == line || (size_t)(sp1 - line) >= sizeof r->method) return -EINVAL;
    for (const char *p = line; p < sp1; p++)
        if (*p < 'A' || *p > 'Z') return -EINVAL;
    const char *t = sp1 + 1, *end = line + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t || *t != '/') return -EINVAL;
    if (end - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9')
        return -EINVAL;
    for (const char *p = t; p < sp2; p++)
        if (ctl_byte((unsigned char)*p) || *p == '\t') return -EINVAL;
    memcpy(r->method, line, (size_t)(sp1 - line));
    r->method[sp1 - line] = '\0';
    const char *q = memchr(t, '?', (size_t)(sp2 - t));
    const char *pend = q ? q : sp2;
    int rc = copy(r->path, sizeof r->path, t, (size_t)(pend - t));
    if (rc == 0 && q) rc = copy(r->query, sizeof r->query, q + 1, (size_t)(sp2 - q - 1));
    return rc;
}

static int content_length(const char *v, size_t n, size_t max_body, web_req_t *r, bool *seen) {
    if (*seen || n == 0 || n > 19) return -EINVAL;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -EINVAL;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *seen = true;
    r->content_length = x;
    return x > max_body ? -EFBIG : 0;
}

static bool name_is(const char *name, size_t n, const char *want) {
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* One "Name: value" line. Values longer than the field are cut (only Host and the token
 * matter, and a cut one fails its check). */
static int header(const char *line, size_t n, size_t max_body, web_req_t *r, bool *cl_seen) {
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line) return -EINVAL;
    size_t nn = (size_t)(colon - line);
    for (size_t i = 0; i < nn; i++)
        if (line[i] <= ' ' || line[i] == 0x7f) return -EINVAL;
    const char *v = colon + 1, *end = line + n;
    for (const char *p = v; p < end; p++)
        if (ctl_byte((unsigned char)*p)) return -EINVAL;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t vn = (size_t)(end - v);
    char *dst = NULL;
    if (name_is(line, nn, "content-length")) return content_length(v, vn, max_body, r, cl_seen);
    if (name_is(line, nn, "transfer-encoding")) return -EINVAL;
    if (name_is(line, nn, "x-actor-web")) r->has_xweb = true;
    if (name_is(line, nn, "host")) dst = r->host;
    if (name_is(line, nn, "x-actor-token")) dst = r->token;
    if (name_is(line, nn, "content-type")) dst = r->content_type;
    if (dst) copy(dst, WEB_MAX_FIELD, v, vn < WEB_MAX_FIELD ? vn : WEB_MAX_FIELD - 1);
    return 0;
}

int web_req_parse(const char *buf, size_t n, size_t max_head, size_t max_body, web_req_t *r) {
    memset(r, 0, sizeof *r);
    size_t end = head_end(buf, n < max_head ? n : max_head);
    if (!end) return n >= max_head ? -E2BIG : 0;
    const char *p = buf, *stop = buf + end - 2; /* the last line's CRLF */
    bool first = true, cl_seen = false;
    while (p < stop) {
        const char *nl = memchr(p, '\r', (size_t)(stop - p));
        if (!nl || nl[1] != '\n') return -EINVAL;
        size_t len = (size_t)(nl - p);
        int rc = first ? request_line(p, len, r) : header(p, len, max_body, r, &cl_seen);
        if (rc) return rc;
        first = false;
        p = nl + 2;
    }
    if (first) return -EINVAL;
    r->head_len = end;
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
