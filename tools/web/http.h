/* tools/web/http.h: the parts of actor-web that read untrusted bytes, kept free of sockets so
 * tests/web/test_web.c can drive them: one HTTP/1.x request head (bounded), query-string
 * parameters, the Host and token checks that keep other web pages out, and JSON string
 * escaping for the few strings the server writes itself. */
#ifndef WEB_HTTP_H
#define WEB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define WEB_MAX_PATH 256   /* bytes of a request's path */
#define WEB_MAX_QUERY 2048 /* bytes of its query string */
#define WEB_MAX_FIELD 256  /* bytes kept of Host, X-Actor-Token, Content-Type */

typedef struct web_req {
    char method[8];               /* "GET", "POST", ... */
    char path[WEB_MAX_PATH];      /* "/api/session", not decoded, query string cut off */
    char query[WEB_MAX_QUERY];    /* what followed '?', "" when none */
    char host[WEB_MAX_FIELD];     /* the Host header, "" when none */
    char token[WEB_MAX_FIELD];    /* X-Actor-Token, "" when none */
    char content_type[WEB_MAX_FIELD];
    bool has_xweb;                /* an X-Actor-Web header: a script of ours, not a form */
    size_t content_length;        /* 0 when none */
    size_t head_len;              /* bytes of the head, the blank line included */
} web_req_t;

/* Reads the request head at the start of buf[0..n). The body (content_length bytes) follows
 * head_len bytes in. max_head bounds the head, max_body the body it announces.
 * Returns: 0 when the head is not complete yet (and n < max_head), 1 with *r filled.
 * Errors: -EINVAL (not an HTTP/1.x request: a bad request line, a header without ':', a bad
 * or repeated Content-Length, Transfer-Encoding (not supported), a control byte),
 * -E2BIG (the head passes max_head; a path or query over its size), -EFBIG (a body over
 * max_body). */
int web_req_parse(const char *buf, size_t n, size_t max_head, size_t max_body, web_req_t *r);

/* Decodes %XX escapes and '+' (as a space) of s[0..n) into out (NUL-terminated).
 * Returns: the decoded length. Errors: -EINVAL (a bad escape, or a decoded NUL byte),
 * -E2BIG (more than cap - 1 bytes). */
int web_url_decode(const char *s, size_t n, char *out, size_t cap);

/* Finds parameter name in a query string ("a=1&b=x%20y") and decodes its value into out.
 * Returns: the decoded length. Errors: -ENOENT (absent), and web_url_decode's. */
int web_query_get(const char *query, const char *name, char *out, size_t cap);

/* Whether host (an address or name, no port) is a loopback one: "localhost", 127.0.0.0/8,
 * "::1" (with or without brackets). */
bool web_is_loopback(const char *host);

/* Whether a Host header names this server on loopback: localhost, 127.x.y.z or [::1], with
 * the given port. A page from another site that a DNS name was rebound for sends its own
 * name, and is refused. */
bool web_host_ok(const char *host, int port);

/* Compares a token given by a client with ours in time that does not depend on where they
 * differ. Returns: true when equal (an empty `want` never matches). */
bool web_token_eq(const char *got, const char *want);

/* Writes s[0..n) as a JSON string, quotes included, into out (NUL-terminated): '"', '\\'
 * and control bytes escaped, and '<', '>', '&' as \u003c... so the text is inert in any
 * page. Bytes >= 0x80 are copied (the caller passes UTF-8).
 * Returns: the length written. Errors: -E2BIG (out too small: cap must be > 6 n + 2). */
int web_json_str(const char *s, size_t n, char *out, size_t cap);

#endif
