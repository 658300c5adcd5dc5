/* base/src/scrape.c: the /metrics endpoint of base/scrape.h: the connection table, head
 * accumulation, eviction of the longest-waiting connection and the idle sweep. */
#include "base/scrape.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/http_head.h"
#include "base/log.h"
#include "base/prom.h"

enum { N_STATUS = 6 }; /* 200, 400, 404, 405, 431, refused */

typedef struct conn {
    bool used;
    uint8_t id[BASE_SCRAPE_MAX_ID];
    size_t idlen;
    char *buf; /* the head so far, at most max_request bytes; allocated on first data */
    size_t n;
    int64_t since;
} conn_t;

struct base_scrape {
    base_scrape_opts_t o;
    conn_t *conns;
    uint64_t counts[N_STATUS];
    base_buf_t body, resp;
};

int base_scrape_new(base_scrape_t **out, const base_scrape_opts_t *opts) {
    *out = NULL;
    if (!opts->max_conns || opts->max_request < 64 || opts->idle_ms <= 0 || !opts->path ||
        !opts->content_type || !opts->render || !opts->send)
        return -EINVAL;
    base_scrape_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->o = *opts;
    s->conns = calloc(opts->max_conns, sizeof *s->conns);
    if (!s->conns) {
        free(s);
        return -ENOMEM;
    }
    base_buf_init(&s->body);
    base_buf_init(&s->resp);
    *out = s;
    return 0;
}

void base_scrape_destroy(base_scrape_t **sp) {
    base_scrape_t *s = *sp;
    if (!s) return;
    for (size_t i = 0; i < s->o.max_conns; i++) free(s->conns[i].buf);
    free(s->conns);
    base_buf_free(&s->body);
    base_buf_free(&s->resp);
    free(s);
    *sp = NULL;
}

static size_t status_index(int status) {
    switch (status) {
    case 200: return 0;
    case 400: return 1;
    case 404: return 2;
    case 405: return 3;
    case 431: return 4;
    default: return 5;
    }
}

uint64_t base_scrape_count(const base_scrape_t *s, int status) {
    return s->counts[status_index(status)];
}

static void forget(conn_t *c) {
    free(c->buf);
    memset(c, 0, sizeof *c);
}

static void conn_close(base_scrape_t *s, conn_t *c) {
    s->o.send(s->o.ctx, c->id, c->idlen, NULL, 0); /* [id][""] closes the connection */
    forget(c);
}

/* Answers the request in c (rc as base_http_parse gave it) and closes the connection. */
static void conn_answer(base_scrape_t *s, conn_t *c, int rc, const base_http_req_t *req) {
    int status = base_http_status(rc, req, s->o.path);
    base_buf_reset(&s->body);
    if (status == 200) s->o.render(s->o.ctx, &s->body);
    s->counts[status_index(status)]++; /* after: a scrape shows the ones before it */
    base_buf_reset(&s->resp);
    base_http_response(&s->resp, status, s->o.content_type, s->body.p,
                       status == 200 && !s->body.failed ? s->body.n : 0,
                       strcmp(req->method, "HEAD") == 0);
    if (status != 200)
        base_log(BASE_LOG_INFO, "metrics_bad_request", "status=%d bytes=%zu", status, c->n);
    if (!s->resp.failed) s->o.send(s->o.ctx, c->id, c->idlen, s->resp.p, s->resp.n);
    conn_close(s, c);
}

static conn_t *conn_find(base_scrape_t *s, const uint8_t *id, size_t idlen) {
    for (size_t i = 0; i < s->o.max_conns; i++) {
        conn_t *c = &s->conns[i];
        if (c->used && c->idlen == idlen && memcmp(c->id, id, idlen) == 0) return c;
    }
    return NULL;
}

/* A connect (or disconnect) notification: an empty data frame. */
static void on_notify(base_scrape_t *s, const uint8_t *id, size_t idlen, int64_t now) {
    conn_t *c = conn_find(s, id, idlen);
    if (c) { /* the scraper went away */
        forget(c);
        return;
    }
    conn_t *oldest = NULL;
    for (size_t i = 0; i < s->o.max_conns; i++) {
        c = &s->conns[i];
        if (!c->used) break;
        if (!oldest || c->since < oldest->since) oldest = c;
        c = NULL;
    }
    if (!c) {
        /* Table full: the connection that has waited longest without a whole request goes,
         * not the newcomer. Connections that never send (slowloris) cannot keep a scraper
         * out: its request comes right after its connect, theirs never does. */
        s->counts[N_STATUS - 1]++;
        base_log(BASE_LOG_WARN, "metrics_evicted", "why=\"too many connections\" max=%zu "
                 "idle_ms=%lld", s->o.max_conns, (long long)(now - oldest->since));
        conn_close(s, oldest);
        c = oldest;
    }
    c->used = true;
    memcpy(c->id, id, idlen);
    c->idlen = idlen;
    c->since = now;
}

static void on_data(base_scrape_t *s, conn_t *c, const uint8_t *p, size_t n) {
    size_t max = s->o.max_request;
    if (!c->buf && !(c->buf = malloc(max))) {
        conn_close(s, c);
        return;
    }
    size_t take = n < max - c->n ? n : max - c->n;
    memcpy(c->buf + c->n, p, take);
    c->n += take;
    base_http_req_t req;
    int rc = base_http_parse(c->buf, c->n, max, &req);
    if (rc != 0) conn_answer(s, c, rc, &req);
}

void base_scrape_on_message(base_scrape_t *s, const uint8_t *id, size_t idlen,
                            const uint8_t *data, size_t n, int64_t now_ms) {
    if (idlen == 0 || idlen > BASE_SCRAPE_MAX_ID) return;
    if (n == 0) {
        on_notify(s, id, idlen, now_ms);
        return;
    }
    conn_t *c = conn_find(s, id, idlen);
    if (c) on_data(s, c, data, n); /* else refused, or already answered */
}

int64_t base_scrape_tick(base_scrape_t *s, int64_t now_ms) {
    int64_t next = now_ms + s->o.idle_ms;
    for (size_t i = 0; i < s->o.max_conns; i++) {
        conn_t *c = &s->conns[i];
        if (!c->used) continue;
        if (now_ms - c->since >= s->o.idle_ms) {
            base_log(BASE_LOG_INFO, "metrics_idle_closed", "bytes=%zu", c->n);
            conn_close(s, c);
        } else if (c->since + s->o.idle_ms < next) {
            next = c->since + s->o.idle_ms;
        }
    }
    return next;
}

void base_scrape_render_requests(const base_scrape_t *s, base_buf_t *o, const char *prefix) {
    static const char *const st[N_STATUS] = {"200", "400", "404", "405", "431", "refused"};
    char name[128], labels[32];
    snprintf(name, sizeof name, "%s_metrics_requests_total", prefix);
    base_prom_family(o, name, "counter",
                     "Requests to this endpoint, by HTTP status (this one not yet counted).");
    for (int i = 0; i < N_STATUS; i++) {
        snprintf(labels, sizeof labels, "status=\"%s\"", st[i]);
        base_prom_u64(o, name, labels, s->counts[i]);
    }
}
