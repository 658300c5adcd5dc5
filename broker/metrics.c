/* broker/metrics.c: the counters behind metrics.h and the /metrics endpoint. Label values
 * come from the network (agent names, error codes a worker made up), so each kind has a
 * bounded table (--metrics-max-labels) and what does not fit is counted under "_other".
 * The endpoint is a ZMQ_STREAM socket polled by the broker's loop: a bounded table of
 * connections, each with a bounded head buffer; one request per connection, then close. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/metrics.h"

#define OTHER "_other"  /* the label of whatever overflowed a table */

typedef struct series {
    brk_node_t node;        /* key: name */
    char *name;
    size_t len;
    proto_hist_t hist;      /* latency of its answered queries */
    uint64_t *by_code;      /* outcomes: index into the code table (0: ok) */
} series_t;

typedef struct conn {
    bool used;
    uint8_t id[BRK_MAX_IDENTITY];
    size_t idlen;
    char *buf;              /* the head so far, at most max_request bytes */
    size_t n;
    int64_t since;
} conn_t;

struct brk_metrics {
    void *sock;
    conn_t *conns;
    size_t max_conns, max_labels;
    series_t *series;       /* max_labels + 1: the last is _other */
    size_t n_series;
    brk_map_t by_name;
    char **codes;           /* max_labels + 1: [0] "ok", the last _other */
    size_t n_codes;
    uint64_t *errors;       /* error replies, per code */
    uint64_t in_msgs[2], in_bytes[2], out_msgs[2], out_bytes[2];
    uint64_t workers_lost, retries, scrapes[6];
    uint64_t bus_refused; /* publications into the broker's own topics */
    uint64_t answered, answered_err; /* every query's terminal message, refusals included */
    int64_t start_unix_ms;
    proto_buf_t body, resp;
};

static int64_t clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- tables ---- */

static int series_init(brk_metrics_t *mx, series_t *s, const char *name, size_t len) {
    s->name = malloc(len + 1);
    s->by_code = calloc(mx->max_labels + 1, sizeof *s->by_code);
    if (!s->name || !s->by_code) return -ENOMEM;
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->len = len;
    s->node.key = s->name;
    s->node.klen = len;
    return 0;
}

/* The series of an agent name, created while there is room, else _other. */
static uint32_t series_slot(brk_metrics_t *mx, const char *name, size_t len) {
    brk_node_t *n = brk_map_get(&mx->by_name, name, len);
    if (n) return (uint32_t)(brk_container_of(n, series_t, node) - mx->series);
    if (mx->n_series >= mx->max_labels) return (uint32_t)mx->max_labels;
    series_t *s = &mx->series[mx->n_series];
    if (series_init(mx, s, name, len) != 0) return (uint32_t)mx->max_labels;
    brk_map_put(&mx->by_name, &s->node);
    return (uint32_t)mx->n_series++;
}

static size_t code_slot(brk_metrics_t *mx, const char *code, size_t len) {
    for (size_t i = 0; i < mx->n_codes; i++)
        if (strlen(mx->codes[i]) == len && memcmp(mx->codes[i], code, len) == 0) return i;
    if (mx->n_codes >= mx->max_labels || !(mx->codes[mx->n_codes] = strndup(code, len)))
        return mx->max_labels;
    return mx->n_codes++;
}

int brk_metrics_open(brk_t *b) {
    brk_metrics_t *mx = calloc(1, sizeof *mx);
    if (!mx) return -ENOMEM;
    b->mx = mx;
    mx->max_labels = b->cfg.metrics_max_labels;
    mx->max_conns = b->cfg.metrics_max_conns;
    mx->start_unix_ms = brk_unix_ms();
    proto_buf_init(&mx->body);
    proto_buf_init(&mx->resp);
    mx->series = calloc(mx->max_labels + 1, sizeof *mx->series);
    mx->codes = calloc(mx->max_labels + 1, sizeof *mx->codes);
    mx->errors = calloc(mx->max_labels + 1, sizeof *mx->errors);
    mx->conns = calloc(mx->max_conns, sizeof *mx->conns);
    if (!mx->series || !mx->codes || !mx->errors || !mx->conns || brk_map_init(&mx->by_name))
        return -ENOMEM;
    if (series_init(mx, &mx->series[mx->max_labels], OTHER, strlen(OTHER)) ||
        !(mx->codes[0] = strdup("ok")) || !(mx->codes[mx->max_labels] = strdup(OTHER)))
        return -ENOMEM;
    mx->n_codes = 1;
    if (!b->cfg.metrics_ep[0]) return 0;
    mx->sock = zmq_socket(b->ctx, ZMQ_STREAM);
    if (!mx->sock) return -ENOMEM;
    if (zmq_bind(mx->sock, b->cfg.metrics_ep) != 0) {
        brk_log(BRK_LOG_ERROR, "bind_failed", "socket=metrics endpoint=%s error=\"%s\"",
                b->cfg.metrics_ep, zmq_strerror(errno));
        return -EADDRINUSE;
    }
    brk_log(BRK_LOG_INFO, "listening", "socket=metrics endpoint=%s", b->cfg.metrics_ep);
    return 0;
}

void brk_metrics_close_socket(brk_t *b) {
    if (!b->mx || !b->mx->sock) return;
    int linger = 0;
    zmq_setsockopt(b->mx->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(b->mx->sock);
    b->mx->sock = NULL;
}

void brk_metrics_close(brk_t *b) {
    brk_metrics_t *mx = b->mx;
    if (!mx) return;
    brk_metrics_close_socket(b);
    for (size_t i = 0; mx->series && i <= mx->max_labels; i++) {
        free(mx->series[i].name);
        free(mx->series[i].by_code);
    }
    for (size_t i = 0; mx->codes && i <= mx->max_labels; i++) free(mx->codes[i]);
    for (size_t i = 0; mx->conns && i < mx->max_conns; i++) free(mx->conns[i].buf);
    if (mx->by_name.buckets) brk_map_close(&mx->by_name);
    free(mx->series);
    free(mx->codes);
    free(mx->errors);
    free(mx->conns);
    proto_buf_free(&mx->body);
    proto_buf_free(&mx->resp);
    free(mx);
    b->mx = NULL;
}

void *brk_metrics_socket(brk_t *b) { return b->mx ? b->mx->sock : NULL; }

/* ---- hooks ---- */

void brk_mx_accept(brk_t *b, brk_job_t *j, brk_agent_t *a) {
    if (!a->mx_slot) a->mx_slot = series_slot(b->mx, a->name, a->len) + 1;
    j->mx_slot = a->mx_slot - 1;
    j->t0_us = clock_us();
}

void brk_mx_answer(brk_t *b, const brk_job_t *j, const brk_term_t *t) {
    brk_metrics_t *mx = b->mx;
    series_t *s = &mx->series[j->mx_slot];
    int64_t us = clock_us() - j->t0_us;
    proto_hist_observe(&s->hist, us > 0 ? (uint64_t)us : 0);
    mx->answered++;
    if (t->ok) {
        s->by_code[0]++;
        return;
    }
    size_t c = code_slot(mx, t->code.p, t->code.n);
    mx->answered_err++;
    s->by_code[c]++;
    mx->errors[c]++;
}

void brk_mx_reject(brk_t *b, proto_str_t agent, const char *code) {
    brk_metrics_t *mx = b->mx;
    series_t *s = &mx->series[series_slot(mx, agent.p, agent.n)];
    proto_hist_observe(&s->hist, 0); /* answered on arrival */
    mx->answered++;
    mx->answered_err++;
    s->by_code[code_slot(mx, code, strlen(code))]++;
}

void brk_mx_error(brk_t *b, const char *code) {
    b->mx->errors[code_slot(b->mx, code, strlen(code))]++;
}

void brk_mx_in(brk_t *b, int s, size_t n) {
    b->mx->in_msgs[s & 1]++;
    b->mx->in_bytes[s & 1] += n;
}

void brk_mx_out(brk_t *b, int s, size_t n) {
    b->mx->out_msgs[s & 1]++;
    b->mx->out_bytes[s & 1] += n;
}

void brk_mx_status(brk_t *b, proto_buf_t *o) {
    proto_pack_cstr(o, "answered");
    msgpack_pack_uint64(&o->pk, b->mx->answered);
    proto_pack_cstr(o, "errors");
    msgpack_pack_uint64(&o->pk, b->mx->answered_err);
    proto_pack_cstr(o, "uptime_ms");
    int64_t up = brk_unix_ms() - b->mx->start_unix_ms;
    msgpack_pack_uint64(&o->pk, up > 0 ? (uint64_t)up : 0);
    proto_pack_cstr(o, "draining");
    if (b->draining) msgpack_pack_true(&o->pk);
    else msgpack_pack_false(&o->pk);
    proto_pack_cstr(o, "sessions_locked");
    msgpack_pack_uint64(&o->pk, brk_invs_locked(b));
    proto_pack_cstr(o, "session_waiters");
    msgpack_pack_uint64(&o->pk, brk_invs_waiting(b));
    brk_lease_status(b, o, b->mx->start_unix_ms);
}

void brk_mx_worker_lost(brk_t *b) { b->mx->workers_lost++; }
void brk_mx_retry(brk_t *b) { b->mx->retries++; }
void brk_mx_bus_refused(brk_t *b) { b->mx->bus_refused++; }

/* ---- the text ---- */

static void label(proto_buf_t *o, const char *key, const char *v, size_t n) {
    proto_text_printf(o, "%s=\"", key);
    proto_prom_label(o, v, n);
    proto_buf_raw(o, (proto_raw_t){(const uint8_t *)"\"", 1});
}

/* Renders one label set into a scratch buffer as a C string. */
static const char *labels1(proto_buf_t *tmp, const char *key, const char *v, size_t n) {
    proto_buf_reset(tmp);
    label(tmp, key, v, n);
    proto_buf_raw(tmp, (proto_raw_t){(const uint8_t *)"", 1});
    return tmp->failed ? "" : (const char *)tmp->p;
}

static void render_queries(brk_metrics_t *mx, proto_buf_t *o, proto_buf_t *tmp) {
    proto_prom_family(o, "actorbus_broker_queries_total", "counter",
                      "Queries answered, by agent and outcome (ok or the error code).");
    for (size_t i = 0; i <= mx->max_labels; i++) {
        series_t *s = &mx->series[i];
        if (i >= mx->n_series && i < mx->max_labels) continue;
        for (size_t c = 0; c <= mx->max_labels; c++) {
            if (!s->by_code[c]) continue;
            proto_buf_reset(tmp);
            label(tmp, "agent", s->name, s->len);
            proto_buf_raw(tmp, (proto_raw_t){(const uint8_t *)",", 1});
            label(tmp, "outcome", mx->codes[c], strlen(mx->codes[c]));
            proto_buf_raw(tmp, (proto_raw_t){(const uint8_t *)"", 1});
            if (!tmp->failed)
                proto_prom_u64(o, "actorbus_broker_queries_total", (const char *)tmp->p,
                               s->by_code[c]);
        }
    }
    proto_prom_family(o, "actorbus_broker_query_duration_seconds", "histogram",
                      "Time from a query's arrival to its terminal reply, by agent.");
    for (size_t i = 0; i <= mx->max_labels; i++) {
        series_t *s = &mx->series[i];
        if ((i >= mx->n_series && i < mx->max_labels) || !s->hist.count) continue;
        proto_prom_hist(o, "actorbus_broker_query_duration_seconds",
                        labels1(tmp, "agent", s->name, s->len), &s->hist);
    }
    proto_prom_family(o, "actorbus_broker_errors_total", "counter",
                      "Error replies sent, by code (refused requests included).");
    for (size_t c = 1; c <= mx->max_labels; c++)
        if (mx->errors[c])
            proto_prom_u64(o, "actorbus_broker_errors_total",
                           labels1(tmp, "code", mx->codes[c], strlen(mx->codes[c])),
                           mx->errors[c]);
}

static void gauge(proto_buf_t *o, const char *name, const char *help, uint64_t v) {
    proto_prom_family(o, name, "gauge", help);
    proto_prom_u64(o, name, "", v);
}

static void counter(proto_buf_t *o, const char *name, const char *help, uint64_t v) {
    proto_prom_family(o, name, "counter", help);
    proto_prom_u64(o, name, "", v);
}

static void render_workers(brk_t *b, proto_buf_t *o, proto_buf_t *tmp) {
    uint64_t capacity = 0, busy = 0;
    brk_list_t *l;
    for (l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = brk_container_of(l, brk_worker_t, link);
        if (!w->dead) capacity = brk_add_sat(capacity, w->capacity), busy += w->in_flight;
    }
    gauge(o, "actorbus_broker_workers", "Registered workers.", b->n_workers);
    gauge(o, "actorbus_broker_capacity", "Jobs all workers together declared they take.",
          capacity);
    gauge(o, "actorbus_broker_worker_jobs", "Jobs on workers (credit in use).", busy);
    static const char *const fam[2][2] = {
        {"actorbus_broker_worker_capacity", "A worker's declared capacity."},
        {"actorbus_broker_worker_in_flight", "Jobs a worker holds."}};
    for (int k = 0; k < 2; k++) {
        proto_prom_family(o, fam[k][0], "gauge", fam[k][1]);
        for (l = b->worker_list.next; l != &b->worker_list; l = l->next) {
            brk_worker_t *w = brk_container_of(l, brk_worker_t, link);
            if (!w->dead)
                proto_prom_u64(o, fam[k][0], labels1(tmp, "worker", w->name, w->name_len),
                               k ? w->in_flight : w->capacity);
        }
    }
    counter(o, "actorbus_broker_workers_lost_total", "Workers removed (lost, gone, restarted).",
            b->mx->workers_lost);
}

static void render_traffic(brk_metrics_t *mx, proto_buf_t *o) {
    static const char *const sock[2] = {"socket=\"clients\"", "socket=\"workers\""};
    static const char *const fam[4][2] = {
        {"actorbus_broker_received_messages_total", "Messages received, by socket."},
        {"actorbus_broker_received_bytes_total", "Body bytes received, by socket."},
        {"actorbus_broker_sent_messages_total", "Messages sent, by socket."},
        {"actorbus_broker_sent_bytes_total", "Body bytes sent, by socket."}};
    const uint64_t *v[4] = {mx->in_msgs, mx->in_bytes, mx->out_msgs, mx->out_bytes};
    for (int k = 0; k < 4; k++) {
        proto_prom_family(o, fam[k][0], "counter", fam[k][1]);
        for (int s = 0; s < 2; s++) proto_prom_u64(o, fam[k][0], sock[s], v[k][s]);
    }
}

static void render(brk_t *b, proto_buf_t *o) {
    brk_metrics_t *mx = b->mx;
    proto_buf_t tmp;
    proto_buf_init(&tmp);
    proto_buf_reset(o);
    render_queries(mx, o, &tmp);
    gauge(o, "actorbus_broker_in_flight", "Accepted queries not yet answered.", b->n_live);
    gauge(o, "actorbus_broker_queued", "Queries waiting for a worker's credit.", b->n_queued);
    gauge(o, "actorbus_broker_sessions_locked", "Sessions with an invocation running or waiting.",
          brk_invs_locked(b));
    gauge(o, "actorbus_broker_session_waiters", "Queries waiting for a busy session.",
          brk_invs_waiting(b));
    gauge(o, "actorbus_broker_jobs", "Jobs in every state, cancelling ones included.",
          b->n_jobs);
    gauge(o, "actorbus_broker_clients", "Clients with queries in flight.", b->n_clients);
    render_workers(b, o, &tmp);
    gauge(o, "actorbus_broker_active", "1: this broker serves (a standby binds nothing).", 1);
    gauge(o, "actorbus_broker_pair", "1: one of an active/standby pair (--pair).",
          b->lease ? 1 : 0);
    counter(o, "actorbus_broker_takeovers_total",
            "Times the pair's lease changed hands (read when this broker took it).",
            brk_lease_takeovers(b));
    counter(o, "actorbus_broker_query_retries_total",
            "Idempotent queries sent again after their worker was lost.", mx->retries);
    counter(o, "actorbus_broker_client_sends_dropped_total",
            "Messages to a client not sent: its bytes not yet read passed --client-queue-bytes "
            "(or all clients' --clients-queue-bytes).", b->outq_refused);
    gauge(o, "actorbus_broker_client_queued_bytes",
          "Bytes handed to libzmq for client connections and not yet written out.",
          atomic_load(&b->outq_total));
    counter(o, "actorbus_broker_bus_refused_total",
            "Publications refused or dropped: the topic is the broker's own (query.).",
            mx->bus_refused);
    render_traffic(mx, o);
    brk_subs_metrics(b, o); /* actorbus_broker_bus_subscriptions and its bounds (subs.c) */
    brk_zap_metrics(b, o); /* actorbus_broker_curve_*: with --curve-secret only */
    proto_prom_family(o, "actorbus_broker_start_time_seconds", "gauge",
                      "When the broker started, Unix seconds.");
    proto_text_printf(o, "actorbus_broker_start_time_seconds %.3f\n",
                      (double)mx->start_unix_ms / 1000.0);
    gauge(o, "actorbus_broker_draining", "1 while the broker drains after SIGTERM.",
          b->draining ? 1 : 0);
    static const char *const st[6] = {"200", "400", "404", "405", "431", "refused"};
    proto_prom_family(o, "actorbus_broker_metrics_requests_total", "counter",
                      "Requests to this endpoint, by HTTP status (this one not yet counted).");
    for (int i = 0; i < 6; i++)
        proto_prom_u64(o, "actorbus_broker_metrics_requests_total",
                       labels1(&tmp, "status", st[i], strlen(st[i])), mx->scrapes[i]);
    proto_buf_free(&tmp);
}

/* ---- the endpoint ---- */

static void stream_send(brk_metrics_t *mx, const conn_t *c, const uint8_t *p, size_t n) {
    /* ZMQ_STREAM: [id][bytes] writes to the TCP connection, [id][""] closes it. */
    if (zmq_send(mx->sock, c->id, c->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
    zmq_send(mx->sock, p, n, ZMQ_DONTWAIT);
}

static void conn_close(brk_metrics_t *mx, conn_t *c) {
    stream_send(mx, c, NULL, 0);
    free(c->buf);
    memset(c, 0, sizeof *c);
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

/* Answers the request in c (rc as proto_http_parse gave it) and closes the connection. */
static void conn_answer(brk_t *b, conn_t *c, int rc, const proto_http_req_t *req) {
    brk_metrics_t *mx = b->mx;
    int status = proto_http_status(rc, req, "/metrics");
    if (status == 200) render(b, &mx->body);
    mx->scrapes[status_index(status)]++; /* after: a scrape shows the ones before it */
    proto_buf_reset(&mx->resp);
    proto_http_response(&mx->resp, status, "text/plain; version=0.0.4; charset=utf-8",
                        mx->body.p, status == 200 ? mx->body.n : 0,
                        strcmp(req->method, "HEAD") == 0);
    if (status != 200)
        brk_log(BRK_LOG_INFO, "metrics_bad_request", "status=%d bytes=%zu", status, c->n);
    if (!mx->resp.failed) stream_send(mx, c, mx->resp.p, mx->resp.n);
    conn_close(mx, c);
}

static conn_t *conn_find(brk_metrics_t *mx, const uint8_t *id, size_t idlen) {
    for (size_t i = 0; i < mx->max_conns; i++) {
        conn_t *c = &mx->conns[i];
        if (c->used && c->idlen == idlen && memcmp(c->id, id, idlen) == 0) return c;
    }
    return NULL;
}

/* A connect (or disconnect) notification: an empty data frame. */
static void on_notify(brk_t *b, const uint8_t *id, size_t idlen) {
    brk_metrics_t *mx = b->mx;
    conn_t *c = conn_find(mx, id, idlen);
    if (c) { /* the scraper went away */
        free(c->buf);
        memset(c, 0, sizeof *c);
        return;
    }
    conn_t *oldest = NULL;
    for (size_t i = 0; i < mx->max_conns; i++) {
        c = &mx->conns[i];
        if (!c->used) break;
        if (!oldest || c->since < oldest->since) oldest = c;
        c = NULL;
    }
    if (!c) {
        /* Table full: the connection that has waited longest without a whole request goes,
         * not the newcomer. Connections that never send (slowloris) cannot keep a scraper
         * out: its request comes right after its connect, theirs never does. */
        mx->scrapes[5]++;
        brk_log(BRK_LOG_WARN, "metrics_evicted", "why=\"too many connections\" max=%zu "
                "idle_ms=%lld", mx->max_conns, (long long)(b->now - oldest->since));
        conn_close(mx, oldest);
        c = oldest;
    }
    c->used = true;
    memcpy(c->id, id, idlen);
    c->idlen = idlen;
    c->since = b->now;
}

static void on_data(brk_t *b, const uint8_t *id, size_t idlen, const uint8_t *p, size_t n) {
    brk_metrics_t *mx = b->mx;
    size_t max = b->cfg.metrics_max_request;
    conn_t *c = conn_find(mx, id, idlen);
    if (!c) return; /* refused, or already answered */
    if (!c->buf && !(c->buf = malloc(max))) {
        conn_close(mx, c);
        return;
    }
    size_t take = n < max - c->n ? n : max - c->n;
    memcpy(c->buf + c->n, p, take);
    c->n += take;
    proto_http_req_t req;
    int rc = proto_http_parse(c->buf, c->n, max, &req);
    if (rc != 0) conn_answer(b, c, rc, &req);
}

bool brk_metrics_read(brk_t *b) {
    zmq_msg_t f[2];
    size_t nf, total = brk_recv_frames(b->mx->sock, f, 2, &nf);
    if (total == 0) return false;
    if (nf == 2 && total == 2 && zmq_msg_size(&f[0]) <= BRK_MAX_IDENTITY) {
        const uint8_t *id = zmq_msg_data(&f[0]);
        size_t idlen = zmq_msg_size(&f[0]), n = zmq_msg_size(&f[1]);
        if (n == 0)
            on_notify(b, id, idlen);
        else
            on_data(b, id, idlen, zmq_msg_data(&f[1]), n);
    }
    for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    return true;
}

int64_t brk_metrics_tick(brk_t *b) {
    brk_metrics_t *mx = b->mx;
    int64_t next = brk_tasks_tick(b);
    if (next < 0) next = b->now + 1000;
    for (size_t i = 0; mx && mx->sock && i < mx->max_conns; i++) {
        conn_t *c = &mx->conns[i];
        if (!c->used) continue;
        int64_t idle_ms = (int64_t)b->cfg.metrics_idle_ms;
        if (b->now - c->since >= idle_ms) {
            brk_log(BRK_LOG_INFO, "metrics_idle_closed", "bytes=%zu", c->n);
            conn_close(mx, c);
        } else if (c->since + idle_ms < next) {
            next = c->since + idle_ms;
        }
    }
    return next;
}
