/* http1.c: plain-HTTP/1.1 requests from tasks (see http1.h), for local model servers. Each
 * connection is a uv_tcp that stays in read mode for its whole life (no poll interest to
 * toggle per request) and parses responses as bytes arrive, in the scheduler; body bytes are
 * buffered on the connection and the task parked on the transfer's act_event hands them to
 * the caller. A connection belongs to one transfer until it ends, then to its pool. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "actor/actor.h"
#include "http1.h"

#define PAUSE_AT (256u << 10)  /* buffered body bytes at which reading stops (backpressure) */
#define READ_BUF (64u << 10)   /* the client's one read buffer (reads are handled at once) */
#define MAX_LINE 4096          /* a chunk-size line */
#define MAX_CHUNK (1ull << 40) /* a chunk size past this is nonsense, not a body */
#define MAX_POOLS 64           /* host:port pools per client; past it connections close */
#define KEEP_BUF (64u << 10)   /* body buffers over this are freed when a connection idles */
#define HOST_MAX 256
#define EAGER_CLOSE_MS 1000  /* a server that closes an idle connection this soon closes... */
#define NO_KEEP_MS 60000     /* ...after every reply: its connections are not kept this long */

enum {
    ST_HEAD,       /* reading the status line and headers */
    ST_LEN,        /* body of Content-Length bytes */
    ST_CLOSE,      /* body until the server closes */
    ST_CHUNK_SIZE, /* a chunk-size line */
    ST_CHUNK_DATA, /* inside a chunk */
    ST_CHUNK_END,  /* the CRLF after a chunk */
    ST_TRAILER,    /* trailer lines after the last chunk */
    ST_DONE,       /* the response is complete */
};

typedef struct conn conn_t;
typedef struct xfer xfer_t;

typedef struct pool {
    char host[HOST_MAX];
    int port;
    conn_t *idle; /* most recently used first */
    struct pool *next;
    uint64_t no_keep_until; /* uv_now before which its connections are not kept (the server
                               closes them after each reply: see pool_take) */
} pool_t;

typedef struct resolve { /* a name lookup; outlives its connection when abandoned */
    uv_getaddrinfo_t req;
    conn_t *c; /* NULL once abandoned */
    int port;
} resolve_t;

struct conn {
    uv_tcp_t tcp; /* first: the close callback frees the connection */
    uv_connect_t creq;
    uv_write_t wreq;
    agt_h1_t *h;
    pool_t *pool;          /* NULL: never pooled */
    conn_t *pnext, *pprev; /* the pool's idle list */
    conn_t *lnext, *lprev; /* the client's idle list, most recent first */
    xfer_t *x;             /* the transfer using it; NULL while idle */
    resolve_t *res;        /* name lookup under way */
    char *head;            /* response head so far */
    size_t head_n, head_cap;
    char *wbuf; /* request head */
    size_t wcap;
    char *pend, *spare; /* body bytes for the task; the other buffer while it delivers */
    size_t pend_n, pend_cap, spare_cap;
    int state;
    uint64_t left;   /* bytes left of the body (ST_LEN) or the chunk (ST_CHUNK_DATA) */
    size_t line_n;   /* bytes of the current chunk-size or trailer line */
    unsigned digits; /* hex digits of the chunk size read */
    bool in_ext;     /* past the chunk size, in its extensions */
    bool keep;       /* the response allows reuse */
    bool connected, writing, paused, broken, idle;
    unsigned uses;    /* requests sent on it */
    uint64_t idle_at; /* uv_now when it went idle */
};

struct xfer {
    const agt_http_req_t *req;
    agt_http_resp_t *resp;
    act_event_t wake; /* set from the scheduler: bytes, the end, an error */
    conn_t *c;
    const struct url *u;
    size_t max_body;
    bool head_only, got, done, retry;
    int err; /* set by callbacks: the transfer failed */
};

struct agt_h1 {
    uv_loop_t *uv;
    uv_timer_t *timer; /* closes idle connections; heap, freed by its close callback */
    pool_t *pools;
    size_t n_pools;
    conn_t *lru; /* idle connections, most recent first */
    conn_t *lru_tail;
    size_t n_idle, inflight;
    size_t max_idle;  /* bound on n_idle */
    uint64_t idle_ms; /* idle connections older than this close */
    char *rbuf;       /* READ_BUF bytes */
    agt_h1_stats_t st;
};

struct url {
    char host[HOST_MAX]; /* without the brackets of an IPv6 literal */
    const char *auth;    /* host[:port] as written, for Host: */
    size_t auth_len;
    const char *path; /* from the first '/' or '?' to the end or '#' */
    size_t path_len;
    int port;
    bool v6;
};
typedef struct url url_t;

/* ---- URLs and proxies ---- */

static int parse_url(const char *s, url_t *u) {
    if (strncasecmp(s, "http://", 7) != 0) return ACT_EINVAL;
    const char *a = s + 7, *e = a + strcspn(a, "/?#");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) return ACT_EINVAL;
    if (memchr(a, '@', (size_t)(e - a))) return ACT_EINVAL; /* userinfo: curl's job */
    u->auth = a;
    u->auth_len = (size_t)(e - a);
    const char *hs = a, *he, *port = NULL;
    u->v6 = *a == '[';
    if (u->v6) {
        hs = a + 1;
        he = memchr(hs, ']', (size_t)(e - hs));
        if (!he) return ACT_EINVAL;
        if (he + 1 < e) {
            if (he[1] != ':') return ACT_EINVAL;
            port = he + 2;
        }
    } else {
        he = memchr(a, ':', (size_t)(e - a));
        if (he)
            port = he + 1;
        else
            he = e;
    }
    if (he == hs || (size_t)(he - hs) >= HOST_MAX) return ACT_EINVAL;
    memcpy(u->host, hs, (size_t)(he - hs));
    u->host[he - hs] = 0;
    u->port = 80;
    if (port) {
        if (port == e || e - port > 5) return ACT_EINVAL;
        u->port = 0;
        for (const char *p = port; p < e; p++) {
            if (*p < '0' || *p > '9') return ACT_EINVAL;
            u->port = u->port * 10 + (*p - '0');
        }
        if (u->port < 1 || u->port > 65535) return ACT_EINVAL;
    }
    u->path = e;
    u->path_len = strcspn(e, "#");
    return 0;
}

static const char *env2(const char *lower, const char *upper) {
    const char *v = getenv(lower);
    if (!v || !*v) v = getenv(upper);
    return v && *v ? v : NULL;
}

/* NO_PROXY as curl reads it: "*", or names that match the host or a domain above it. */
static bool no_proxy_covers(const char *list, const char *host) {
    size_t hl = strlen(host);
    while (*list) {
        list += strspn(list, ", \t");
        size_t n = strcspn(list, ", \t");
        const char *t = list;
        list += n;
        if (n == 1 && *t == '*') return true;
        if (n && *t == '.') t++, n--;
        if (n >= 2 && *t == '[' && t[n - 1] == ']') t++, n -= 2;
        if (!n || n > hl) continue;
        if (strncasecmp(host + hl - n, t, n) == 0 && (n == hl || host[hl - n - 1] == '.'))
            return true;
    }
    return false;
}

bool agt_h1_handles(const char *s) {
    url_t u;
    if (!s || parse_url(s, &u) != 0) return false;
    const char *proxy = env2("http_proxy", "HTTP_PROXY");
    if (!proxy) proxy = env2("all_proxy", "ALL_PROXY");
    if (!proxy) return true;
    const char *np = env2("no_proxy", "NO_PROXY");
    return np && no_proxy_covers(np, u.host);
}

/* ---- connections ---- */

static void xfail(conn_t *c, int code, const char *fmt, ...) {
    c->broken = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    xfer_t *x = c->x;
    if (!x || x->err || x->done) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->resp->error, sizeof(x->resp->error), fmt, ap);
    va_end(ap);
    x->err = code;
    act_event_set(&x->wake);
}

static void on_closed(uv_handle_t *hd) {
    conn_t *c = (conn_t *)hd;
    free(c->head);
    free(c->wbuf);
    free(c->pend);
    free(c->spare);
    free(c);
}

static void idle_unlink(agt_h1_t *h, conn_t *c) {
    if (!c->idle) return;
    c->idle = false;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        c->pool->idle = c->pnext;
    if (c->pnext) c->pnext->pprev = c->pprev;
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        h->lru = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        h->lru_tail = c->lprev;
    c->pnext = c->pprev = c->lnext = c->lprev = NULL;
    h->n_idle--;
}

static void conn_close(conn_t *c) {
    idle_unlink(c->h, c);
    if (c->res) { /* its callback frees it */
        c->res->c = NULL;
        uv_cancel((uv_req_t *)&c->res->req);
        c->res = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b) {
    (void)hint;
    conn_t *c = (conn_t *)hd;
    b->base = c->h->rbuf;
    b->len = READ_BUF;
}

/* Appends decoded body bytes for the task; stops reading while the task is far behind. */
static int emit(conn_t *c, const char *p, size_t n) {
    xfer_t *x = c->x;
    if (x->resp->body_len + n > x->max_body) {
        xfail(c, ACT_EMSGSIZE, "response body over %zu bytes", x->max_body);
        return -1;
    }
    if (c->pend_n + n > c->pend_cap) {
        size_t cap = c->pend_cap ? c->pend_cap : 4096;
        while (cap < c->pend_n + n)
            cap *= 2;
        char *np = realloc(c->pend, cap);
        if (!np) {
            xfail(c, ACT_ENOMEM, "out of memory for the response body");
            return -1;
        }
        c->pend = np;
        c->pend_cap = cap;
    }
    memcpy(c->pend + c->pend_n, p, n);
    c->pend_n += n;
    x->resp->body_len += n;
    if (c->pend_n >= PAUSE_AT && !c->paused) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    act_event_set(&x->wake);
    return 0;
}

/* ---- parsing the response, in the scheduler ---- */

static void finish_resp(conn_t *c) {
    c->state = ST_DONE;
    c->x->done = true;
    act_event_set(&c->x->wake);
}

/* The connection ended or failed under a transfer. A pooled connection that the server had
 * closed before anything of the response came may be retried (the caller decides). */
static void conn_lost(conn_t *c, int status, const char *what) {
    xfer_t *x = c->x;
    if (!x || x->done || x->err) {
        c->broken = true;
        return;
    }
    if (status == UV_EOF && c->state == ST_CLOSE) { /* the body that runs until close */
        c->keep = false;
        c->broken = true;
        finish_resp(c);
        return;
    }
    x->retry = c->uses > 1 && !x->got;
    if (status == UV_EOF)
        xfail(c, ACT_EIO, "%s closed the connection %s", x->u->host,
              x->got ? "before the response ended" : "without a response");
    else
        xfail(c, ACT_EIO, "connection to %s lost while %s: %s", x->u->host, what,
              uv_strerror(status));
}

/* Copies up to 48 bytes of untrusted text, printable ASCII only, for an error message. */
static void quote(char *out, size_t cap, const char *p, size_t n) {
    if (n > 48) n = 48;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    out[n] = 0;
}

static void copy_value(char *out, size_t cap, const char *v, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

/* Whether the comma-separated header value v holds token (any case). */
static bool has_token(const char *v, size_t n, const char *token) {
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, token, tl) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == ';'))
            return true;
    return false;
}

typedef struct head_info {
    bool chunked, te_other, has_len, close, keep_alive;
    uint64_t len;
} head_info_t;

/* One header line; only those that shape the body or that the caller reads matter. */
static int header_line(conn_t *c, head_info_t *hi, const char *l, size_t n) {
    agt_http_resp_t *r = c->x->resp;
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l) return -1;
    size_t nl = (size_t)(colon - l);
    const char *v = colon + 1;
    size_t vn = n - nl - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
    if (nl == 14 && strncasecmp(l, "content-length", 14) == 0) {
        uint64_t len = 0;
        if (!vn || vn > 18) return -1;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9') return -1;
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (hi->has_len && hi->len != len) return -1;
        hi->has_len = true, hi->len = len;
    } else if (nl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
        hi->chunked = vn >= 7 && strncasecmp(v + vn - 7, "chunked", 7) == 0;
        hi->te_other = !hi->chunked;
    } else if (nl == 10 && strncasecmp(l, "connection", 10) == 0) {
        hi->close |= has_token(v, vn, "close");
        hi->keep_alive |= has_token(v, vn, "keep-alive");
    } else if (nl == 11 && strncasecmp(l, "retry-after", 11) == 0) {
        char buf[128];
        copy_value(buf, sizeof(buf), v, vn);
        r->retry_after_ms = agt_http_retry_after_ms(buf, time(NULL));
    } else if (nl == 12 && strncasecmp(l, "content-type", 12) == 0) {
        copy_value(r->content_type, sizeof(r->content_type), v, vn);
    } else if (nl == 16 && strncasecmp(l, "content-encoding", 16) == 0 &&
               !agt_http_identity(v, vn)) {
        copy_value(r->content_encoding, sizeof(r->content_encoding), v, vn);
    }
    return 0;
}

/* Sets up reading the body the head announces. */
static void body_mode(conn_t *c, const head_info_t *hi, long status) {
    if (c->x->head_only || status == 204 || status == 304) {
        finish_resp(c);
    } else if (hi->chunked) {
        c->state = ST_CHUNK_SIZE;
        c->left = 0;
        c->keep &= !hi->has_len; /* both framings: trust neither for what follows */
    } else if (hi->te_other || !hi->has_len) {
        c->state = ST_CLOSE;
        c->keep = false;
    } else if (hi->len == 0) {
        finish_resp(c);
    } else {
        c->state = ST_LEN;
        c->left = hi->len;
    }
}

/* A complete head of len bytes (ending in the blank line). Returns 0 (an interim 1xx head is
 * skipped and ST_HEAD stays), -1 once the transfer failed. */
static int parse_head(conn_t *c, const char *h, size_t len) {
    xfer_t *x = c->x;
    const char *end = h + len - 2, *l = h;
    const char *le = memchr(l, '\n', len);
    size_t n = (size_t)(le - l) - (le > l && le[-1] == '\r');
    char q[64];
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
        l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
        (n > 12 && l[12] != ' ')) {
        quote(q, sizeof(q), l, n);
        xfail(c, ACT_EIO, "bad status line from %s: \"%s\"", x->u->host, q);
        return -1;
    }
    long status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    head_info_t hi = {0};
    for (l = le + 1; l < end; l = le + 1) {
        le = memchr(l, '\n', (size_t)(end - l) + 1);
        n = (size_t)(le - l) - (le > l && le[-1] == '\r');
        if (n && (*l == ' ' || *l == '\t')) continue; /* obsolete line folding: ignored */
        if (header_line(c, &hi, l, n) != 0) {
            quote(q, sizeof(q), l, n);
            xfail(c, ACT_EIO, "bad header line from %s: \"%s\"", x->u->host, q);
            return -1;
        }
    }
    if (status < 200) {
        x->resp->content_encoding[0] = 0;
        if (status != 101) return 0; /* 100 Continue and friends: the real head follows */
        xfail(c, ACT_EIO, "%s switched protocols unasked", x->u->host);
        return -1;
    }
    x->resp->status = status;
    c->keep = !hi.close && (h[7] == '1' || hi.keep_alive);
    if (x->resp->content_encoding[0]) { /* compressed: we decode none, and asked for none */
        quote(q, sizeof(q), x->resp->content_encoding, strlen(x->resp->content_encoding));
        xfail(c, ACT_EIO, "response from %s has Content-Encoding %s, which this client does "
              "not decode (it asks for identity)", x->u->host, q);
        return -1;
    }
    body_mode(c, &hi, status);
    return 0;
}

static int head_over(conn_t *c) {
    xfail(c, ACT_EIO, "response head from %s over %u bytes", c->x->u->host, AGT_H1_MAX_HEAD);
    return -1;
}

/* Takes head bytes from *p. Returns 0 once a head was parsed (*p, *n: what follows it), -1
 * when every byte was taken and the head is not complete, or the transfer failed. */
static int head_step(conn_t *c, const char **p, size_t *n) {
    const char *e;
    if (c->head_n == 0 && (e = memmem(*p, *n, "\r\n\r\n", 4))) { /* all here: no copy */
        size_t len = (size_t)(e + 4 - *p);
        if (len > AGT_H1_MAX_HEAD) return head_over(c);
        const char *h = *p;
        *p += len, *n -= len;
        return parse_head(c, h, len);
    }
    if (c->head_n + *n > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap : 1024;
        while (cap < c->head_n + *n)
            cap *= 2;
        char *np = realloc(c->head, cap);
        if (!np) {
            xfail(c, ACT_ENOMEM, "out of memory for the response head");
            return -1;
        }
        c->head = np, c->head_cap = cap;
    }
    size_t from = c->head_n > 3 ? c->head_n - 3 : 0;
    memcpy(c->head + c->head_n, *p, *n);
    c->head_n += *n;
    e = memmem(c->head + from, c->head_n - from, "\r\n\r\n", 4);
    if (!e) {
        *n = 0;
        return c->head_n > AGT_H1_MAX_HEAD ? head_over(c) : -1;
    }
    size_t len = (size_t)(e + 4 - c->head), rest = c->head_n - len; /* rest: the tail of p */
    if (len > AGT_H1_MAX_HEAD) return head_over(c);
    *p += *n - rest, *n = rest;
    c->head_n = 0;
    return parse_head(c, c->head, len);
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int bad_chunk(conn_t *c, const char *what) {
    xfail(c, ACT_EIO, "bad chunked body from %s: %s", c->x->u->host, what);
    return -1;
}

/* One byte of chunk framing (size line, CRLF after data, trailers). */
static int chunk_byte(conn_t *c, char ch) {
    int v;
    switch (c->state) {
    case ST_CHUNK_SIZE:
        if (++c->line_n > MAX_LINE) return bad_chunk(c, "chunk-size line too long");
        if (ch == '\n') {
            if (!c->digits) return bad_chunk(c, "no chunk size");
            c->state = c->left ? ST_CHUNK_DATA : ST_TRAILER;
            c->line_n = c->digits = 0;
            c->in_ext = false;
        } else if (!c->in_ext && (v = hexval(ch)) >= 0) {
            c->left = c->left * 16 + (uint64_t)v;
            if (++c->digits > 10 || c->left > MAX_CHUNK) return bad_chunk(c, "chunk too large");
        } else if (ch == ';' || ch == '\r' || ch == ' ' || ch == '\t') {
            c->in_ext = true;
        } else if (!c->in_ext) {
            return bad_chunk(c, "chunk size not hex");
        }
        return 0;
    case ST_CHUNK_END:
        if (ch == '\r' && !c->line_n) {
            c->line_n = 1;
        } else if (ch == '\n') {
            c->state = ST_CHUNK_SIZE;
            c->line_n = 0;
            c->left = 0;
        } else {
            return bad_chunk(c, "chunk not followed by CRLF");
        }
        return 0;
    default: /* ST_TRAILER: lines until an empty one; c->left counts their bytes */
        if (++c->left > AGT_H1_MAX_HEAD) return bad_chunk(c, "trailers too long");
        if (ch == '\n') {
            if (!c->line_n) finish_resp(c);
            c->line_n = 0;
        } else if (ch != '\r') {
            c->line_n++;
        }
        return 0;
    }
}

/* Body bytes: decoded and handed on, until the response ends or fails. */
static void body_feed(conn_t *c, const char *p, size_t n) {
    while (n && !c->broken && c->state != ST_DONE) {
        if (c->state == ST_LEN || c->state == ST_CHUNK_DATA || c->state == ST_CLOSE) {
            size_t k = c->state == ST_CLOSE || c->left > n ? n : (size_t)c->left;
            if (emit(c, p, k) != 0) return;
            p += k, n -= k;
            if (c->state == ST_CLOSE) continue;
            c->left -= k;
            if (c->left) continue;
            if (c->state == ST_LEN)
                finish_resp(c);
            else
                c->state = ST_CHUNK_END, c->line_n = 0;
        } else {
            if (chunk_byte(c, *p) != 0) return;
            p++, n--;
        }
    }
    if (n) c->broken = true; /* bytes past the response: the connection is not in step */
}

static void feed(conn_t *c, const char *p, size_t n) {
    while (c->state == ST_HEAD && n)
        if (head_step(c, &p, &n) != 0) return;
    if (n) body_feed(c, p, n);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
    conn_t *c = (conn_t *)s;
    if (nread == 0) return;
    if (!c->x) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(c);
        return;
    }
    if (c->broken) return;
    if (nread < 0) {
        conn_lost(c, (int)nread, "reading the response");
        return;
    }
    if (c->state == ST_DONE) { /* bytes past the response: not a connection to reuse */
        c->broken = true;
        return;
    }
    c->x->got = true;
    feed(c, b->base, (size_t)nread);
}

static void on_write(uv_write_t *w, int status) {
    conn_t *c = w->data;
    c->writing = false;
    if (status == 0 || status == UV_ECANCELED) return;
    conn_lost(c, status, "sending the request");
}

static void on_connect(uv_connect_t *r, int status) {
    conn_t *c = r->data;
    if (status == UV_ECANCELED || !c->x) return;
    if (status < 0) {
        xfail(c, ACT_EIO, "cannot connect to %s port %d: %s", c->x->u->host, c->x->u->port,
              uv_strerror(status));
        return;
    }
    c->connected = true;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        xfail(c, ACT_EIO, "cannot read from %s: %s", c->x->u->host, uv_strerror(rc));
        return;
    }
    act_event_set(&c->x->wake);
}

static void on_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *ai) {
    resolve_t *rs = (resolve_t *)r;
    conn_t *c = rs->c;
    if (c) {
        c->res = NULL;
        int rc = status;
        if (!rc) rc = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, on_connect);
        if (rc)
            xfail(c, ACT_EIO, "cannot connect to %s port %d: %s", c->x->u->host, c->x->u->port,
                  uv_strerror(rc));
    }
    uv_freeaddrinfo(ai);
    free(rs);
}

/* ---- the client ---- */

static void free_handle(uv_handle_t *hd) { free(hd); }

static void on_idle_timer(uv_timer_t *t) {
    agt_h1_t *h = t->data;
    uint64_t now = uv_now(h->uv);
    while (h->lru_tail && h->lru_tail->idle_at + h->idle_ms <= now)
        conn_close(h->lru_tail);
    if (h->lru_tail) uv_timer_start(t, on_idle_timer, h->lru_tail->idle_at + h->idle_ms - now, 0);
}

static size_t env_size(const char *name, size_t def, size_t max) {
    const char *v = getenv(name);
    char *end;
    if (!v || !*v) return def;
    unsigned long long n = strtoull(v, &end, 10);
    return *end || n > max ? def : (size_t)n;
}

int agt_h1_new(agt_h1_t **out, uv_loop_t *uv) {
    agt_h1_t *h = calloc(1, sizeof(*h));
    if (!h) return ACT_ENOMEM;
    h->rbuf = malloc(READ_BUF);
    h->timer = malloc(sizeof(*h->timer));
    if (!h->rbuf || !h->timer) {
        free(h->rbuf);
        free(h->timer);
        free(h);
        return ACT_ENOMEM;
    }
    h->uv = uv;
    h->max_idle = env_size("ACTORBUS_HTTP_MAX_IDLE", AGT_H1_MAX_IDLE, 65536);
    h->idle_ms = env_size("ACTORBUS_HTTP_IDLE_MS", AGT_H1_IDLE_MS, 86400000);
    uv_timer_init(uv, h->timer);
    uv_unref((uv_handle_t *)h->timer); /* it never keeps the loop alive on its own */
    h->timer->data = h;
    *out = h;
    return 0;
}

void agt_h1_destroy(agt_h1_t **hp) {
    if (!hp || !*hp) return;
    agt_h1_t *h = *hp;
    if (h->inflight) {
        fprintf(stderr, "agentrt: agt_h1_destroy with %zu requests in flight\n", h->inflight);
        abort(); /* programmer misuse: a task still uses the client */
    }
    while (h->lru)
        conn_close(h->lru);
    uv_timer_stop(h->timer);
    uv_close((uv_handle_t *)h->timer, free_handle);
    while (h->pools) {
        pool_t *p = h->pools;
        h->pools = p->next;
        free(p);
    }
    free(h->rbuf);
    free(h);
    *hp = NULL;
}

void agt_h1_stats(const agt_h1_t *h, agt_h1_stats_t *out) {
    *out = h->st;
    out->idle = h->n_idle;
}

/* The pool of host:port, made on first use; NULL past MAX_POOLS (connections then close). */
static pool_t *pool_get(agt_h1_t *h, const url_t *u) {
    for (pool_t *p = h->pools; p; p = p->next)
        if (p->port == u->port && strcasecmp(p->host, u->host) == 0) return p;
    if (h->n_pools >= MAX_POOLS) return NULL;
    pool_t *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    memcpy(p->host, u->host, sizeof(p->host));
    p->port = u->port;
    p->next = h->pools;
    h->pools = p;
    h->n_pools++;
    return p;
}

/* Whether an idle connection is still open and quiet. A server may close a connection
 * right after a reply whose head promised keep-alive (llama.cpp's server does, after each
 * streamed reply); its FIN can be in the socket before the loop has read it, when the next
 * request comes in the same turn of the loop. A request written into such a connection is
 * lost, so the socket is asked first (a peek: nothing is consumed). */
static bool idle_alive(conn_t *c) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return false;
    char b;
    ssize_t n;
    do
        n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK); /* 0: EOF; > 0: unasked bytes */
}

static conn_t *pool_take(agt_h1_t *h, pool_t *p) {
    conn_t *c;
    while ((c = p ? p->idle : NULL)) {
        idle_unlink(h, c);
        if (idle_alive(c)) break;
        h->st.stale++;
        /* Closed this soon after its reply: the server closes after every reply, and the
         * next FIN may come after the next peek. Keep none of its connections for a while. */
        uint64_t now = uv_now(h->uv);
        if (now - c->idle_at < EAGER_CLOSE_MS) {
            if (p->no_keep_until <= now)
                act_log(ACT_LOG_INFO, "http_no_keepalive", "host=%s port=%d for_ms=%d",
                        p->host, p->port, NO_KEEP_MS);
            p->no_keep_until = now + NO_KEEP_MS;
        }
        conn_close(c);
    }
    if (!c) return NULL;
    uv_ref((uv_handle_t *)&c->tcp);
    h->st.reused++;
    return c;
}

/* Ends the transfer's hold on c: back to its pool when the response ended cleanly and
 * allows reuse, else closed (a deadline, a cancellation or an error drops the connection). */
static void conn_release(agt_h1_t *h, conn_t *c, bool ok) {
    if (!c) return;
    if (c->x) c->x->c = NULL;
    c->x = NULL;
    if (!ok || !c->pool || !c->keep || c->broken || c->writing || c->paused ||
        c->state != ST_DONE || !c->connected || !h->max_idle ||
        c->pool->no_keep_until > uv_now(h->uv)) {
        conn_close(c);
        return;
    }
    c->state = ST_HEAD;
    c->head_n = c->pend_n = 0;
    c->left = c->line_n = c->digits = 0;
    if (c->pend_cap > KEEP_BUF) free(c->pend), c->pend = NULL, c->pend_cap = 0;
    if (c->spare_cap > KEEP_BUF) free(c->spare), c->spare = NULL, c->spare_cap = 0;
    if (h->n_idle >= h->max_idle) conn_close(h->lru_tail); /* room for the most recent */
    c->idle = true;
    c->idle_at = uv_now(h->uv);
    c->pnext = c->pool->idle;
    if (c->pnext) c->pnext->pprev = c;
    c->pool->idle = c;
    c->lnext = h->lru;
    if (c->lnext)
        c->lnext->lprev = c;
    else
        h->lru_tail = c;
    h->lru = c;
    h->n_idle++;
    uv_unref((uv_handle_t *)&c->tcp); /* an idle connection keeps nothing alive */
    if (!uv_is_active((uv_handle_t *)h->timer))
        uv_timer_start(h->timer, on_idle_timer, h->idle_ms, 0);
}

/* ---- a request, in the calling task ---- */

static int await(xfer_t *x, int64_t deadline) {
    int rc = act_event_wait(&x->wake, deadline);
    if (rc) return rc;
    act_event_clear(&x->wake);
    return 0;
}

/* Starts connecting c to u: numeric addresses and "localhost" at once, names through
 * uv_getaddrinfo (off the loop thread). */
static int dial(conn_t *c, const url_t *u) {
    struct sockaddr_storage ss;
    int rc;
    if (u->v6)
        rc = uv_ip6_addr(u->host, u->port, (struct sockaddr_in6 *)&ss);
    else if (strcasecmp(u->host, "localhost") == 0)
        rc = uv_ip4_addr("127.0.0.1", u->port, (struct sockaddr_in *)&ss);
    else
        rc = uv_ip4_addr(u->host, u->port, (struct sockaddr_in *)&ss);
    if (rc == 0) return uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect);
    if (u->v6) return rc;
    resolve_t *rs = calloc(1, sizeof(*rs));
    if (!rs) return UV_ENOMEM;
    char port[8];
    snprintf(port, sizeof(port), "%d", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rs->c = c;
    rc = uv_getaddrinfo(c->h->uv, &rs->req, on_resolved, u->host, port, &hints);
    if (rc)
        free(rs);
    else
        c->res = rs;
    return rc;
}

/* A new connection for x, connected (or failed: *out is set either way for release). */
static int conn_open(agt_h1_t *h, pool_t *pool, xfer_t *x, conn_t **out, int64_t deadline) {
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) return ACT_ENOMEM;
    if (uv_tcp_init(h->uv, &c->tcp) != 0) {
        free(c);
        return ACT_ENOMEM;
    }
    *out = c;
    c->h = h, c->pool = pool, c->x = x, x->c = c;
    c->creq.data = c->wreq.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    h->st.connects++;
    int rc = dial(c, x->u);
    if (rc) {
        snprintf(x->resp->error, sizeof(x->resp->error), "cannot connect to %.100s port %d: %s",
                 x->u->host, x->u->port, uv_strerror(rc));
        return ACT_EIO;
    }
    int64_t cto = x->req->connect_timeout_ms > 0 ? x->req->connect_timeout_ms
                                                 : AGT_HTTP_DEFAULT_CONNECT_MS;
    int64_t cdl = act_deadline_in(cto), eff = act_effective_deadline();
    if (deadline >= 0 && (eff < 0 || deadline < eff)) eff = deadline;
    int64_t wd = eff >= 0 && eff < cdl ? eff : cdl;
    while (!c->connected && !x->err) {
        rc = await(x, wd);
        if (rc == ACT_ETIMEDOUT && wd == cdl && (eff < 0 || act_now() < eff)) {
            snprintf(x->resp->error, sizeof(x->resp->error),
                     "connection to %.100s port %d timed out after %lld ms", x->u->host, x->u->port,
                     (long long)cto);
            return ACT_EIO;
        }
        if (rc) return rc;
    }
    return x->err;
}

static void put(char **w, const char *s, size_t n) {
    memcpy(*w, s, n);
    *w += n;
}

static int write_bufs(conn_t *c, xfer_t *x, uv_buf_t *b, unsigned nb);

/* Writes the request: head and body in one writev. */
static int send_req(conn_t *c, xfer_t *x, const char *method) {
    const agt_http_req_t *rq = x->req;
    const url_t *u = x->u;
    size_t ml = strlen(method), need = ml + u->path_len + u->auth_len + 128;
    for (size_t i = 0; i < rq->n_headers; i++)
        need += strlen(rq->headers[i]) + 2;
    if (need > c->wcap) {
        char *nb = realloc(c->wbuf, need);
        if (!nb) return ACT_ENOMEM;
        c->wbuf = nb, c->wcap = need;
    }
    char *w = c->wbuf;
    put(&w, method, ml);
    put(&w, " ", 1);
    if (!u->path_len || *u->path != '/') put(&w, "/", 1);
    put(&w, u->path, u->path_len);
    put(&w, " HTTP/1.1\r\nHost: ", 17);
    put(&w, u->auth, u->auth_len);
    put(&w, "\r\nConnection: keep-alive\r\n", 26);
    if (rq->body) w += snprintf(w, 40, "Content-Length: %zu\r\n", rq->body_len);
    for (size_t i = 0; i < rq->n_headers; i++) {
        const char *hd = rq->headers[i];
        size_t n = strlen(hd);
        if (n && hd[n - 1] == ':') continue; /* "Name:" removes a header, as with curl */
        put(&w, hd, n);
        put(&w, "\r\n", 2);
    }
    put(&w, "\r\n", 2);
    uv_buf_t b[2] = {uv_buf_init(c->wbuf, (unsigned)(w - c->wbuf)),
                     uv_buf_init((char *)rq->body, (unsigned)rq->body_len)};
    c->uses++;
    c->h->st.sent++;
    return write_bufs(c, x, b, rq->body_len ? 2 : 1);
}

/* Writes at once what the socket takes (uv_write's completion would also re-arm the epoll
 * interest, one epoll_ctl per request); queues the rest with uv_write. */
static int write_bufs(conn_t *c, xfer_t *x, uv_buf_t *b, unsigned nb) {
    int rc = c->connected ? uv_try_write((uv_stream_t *)&c->tcp, b, nb) : UV_EAGAIN;
    size_t done = rc > 0 ? (size_t)rc : 0;
    if (rc >= 0 || rc == UV_EAGAIN) {
        while (nb && done >= b->len)
            done -= b->len, b++, nb--;
        if (!nb) return 0;
        b->base += done, b->len -= done;
        rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b, nb, on_write);
    }
    if (rc) {
        x->retry = c->uses > 1;
        xfail(c, ACT_EIO, "cannot send to %s: %s", x->u->host, uv_strerror(rc));
        return ACT_EIO;
    }
    c->writing = true;
    return 0;
}

/* Hands buffered bytes to on_body until none are left (more may come while it blocks). */
static int deliver(conn_t *c, xfer_t *x) {
    while (c->pend_n) {
        char *p = c->pend;
        size_t n = c->pend_n, cap = c->pend_cap;
        c->pend = c->spare, c->pend_cap = c->spare_cap, c->pend_n = 0;
        c->spare = p, c->spare_cap = cap;
        if (c->paused && !c->broken) { /* room again */
            c->paused = false;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        if (x->req->on_body) {
            int rc = x->req->on_body(x->req->ctx, x->resp, p, n);
            if (rc) return rc;
        }
    }
    return 0;
}

/* One request and its response on c. */
static int exchange(conn_t *c, xfer_t *x, const char *method, int64_t deadline) {
    c->x = x, x->c = c;
    int rc = send_req(c, x, method);
    while (!rc) {
        rc = await(x, deadline);
        if (!rc) rc = deliver(c, x);
        if (!rc && x->err) rc = x->err;
        if (!rc && x->done) break;
    }
    return rc;
}

static int check_req(const agt_http_req_t *rq) {
    for (size_t i = 0; i < rq->n_headers; i++)
        if (!rq->headers[i] || strpbrk(rq->headers[i], "\r\n") || !strchr(rq->headers[i], ':'))
            return ACT_EINVAL;
    const char *m = rq->method;
    if (m && (!*m || strpbrk(m, " \r\n"))) return ACT_EINVAL;
    if (rq->body_len > UINT32_MAX / 2) return ACT_EINVAL; /* uv_buf_t lengths are unsigned */
    return rq->body_len && !rq->body ? ACT_EINVAL : 0;
}

/* Runs the request: on a pooled connection when there is one, once more on a fresh one when
 * the pooled one turns out closed before any of the response came. */
static int run(agt_h1_t *h, xfer_t *x, pool_t *pool, const char *method, int64_t deadline) {
    int rc;
    for (int attempt = 0;; attempt++) {
        conn_t *c = attempt == 0 ? pool_take(h, pool) : NULL;
        rc = c ? 0 : conn_open(h, pool, x, &c, deadline);
        if (!rc) rc = exchange(c, x, method, deadline);
        conn_release(h, c, rc == 0);
        if (rc != ACT_EIO || !x->retry || attempt) return rc;
        h->st.retried++;
        x->err = 0, x->retry = x->got = x->done = false;
        x->resp->error[0] = 0;
        act_event_clear(&x->wake);
    }
}

int agt_h1_perform(agt_h1_t *h, const agt_http_req_t *req, agt_http_resp_t *resp,
                   int64_t deadline) {
    if (!h || !req || !req->url || !resp || (req->n_headers && !req->headers)) return ACT_EINVAL;
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_ms = -1;
    act_loop_t *L = act_loop_current();
    if (!L || !act_current() || act_loop_uv(L) != h->uv) return ACT_EINVAL;
    url_t u;
    if (parse_url(req->url, &u) != 0 || check_req(req) != 0) {
        snprintf(resp->error, sizeof(resp->error), "bad request or URL");
        return ACT_EINVAL;
    }
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    xfer_t x = {.req = req, .resp = resp, .u = &u};
    x.max_body = req->max_body ? req->max_body : AGT_HTTP_DEFAULT_MAX_BODY;
    x.head_only = strcmp(method, "HEAD") == 0;
    act_event_init(&x.wake);
    h->inflight++;
    int rc = run(h, &x, pool_get(h, &u), method, deadline);
    h->inflight--;
    act_event_close(&x.wake);
    return rc;
}
