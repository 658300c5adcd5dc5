/* broker/broker_metrics.c: the counters behind broker_metrics.h and the /metrics endpoint. Label values
 * come from the network (agent names, error codes a worker made up), so each kind has a
 * bounded table (--metrics-max-labels) and what does not fit is counted under "_other".
 * The endpoint is base's (base/scrape.h) on a ZMQ_STREAM socket polled by the broker's loop;
 * this file reads the socket for it and writes the broker's families. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/prom.h"
#include "base/scrape.h"

#define OTHER "_other"  /* the label of whatever overflowed a table */

typedef struct series {
    brk_node_t node;        /* key: name */
    char *name;
    size_t len;
    base_hist_t hist;      /* latency of its answered queries */
    uint64_t *by_code;      /* outcomes: index into the code table (0: ok) */
} series_t;

struct brk_metrics {
    void *sock;
    base_scrape_t *scrape;  /* the endpoint's connections; NULL without --metrics */
    size_t max_labels;
    series_t *series;       /* max_labels + 1: the last is _other */
    size_t n_series;
    brk_map_t by_name;
    char **codes;           /* max_labels + 1: [0] "ok", the last _other */
    size_t n_codes;
    uint64_t *errors;       /* error replies, per code */
    uint64_t in_msgs[2], in_bytes[2], out_msgs[2], out_bytes[2];
    uint64_t workers_lost, retries;
    uint64_t bus_refused; /* publications into the broker's own topics */
    uint64_t answered, answered_err; /* every query's terminal message, refusals included */
    int64_t start_unix_ms;
};

static void render(void *ctx, base_buf_t *o);
static void stream_send(void *ctx, const uint8_t *id, size_t idlen, const uint8_t *p,
                        size_t n);

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
    if (n) return (uint32_t)(base_container_of(n, series_t, node) - mx->series);
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
    mx->start_unix_ms = base_unix_ms();
    mx->series = calloc(mx->max_labels + 1, sizeof *mx->series);
    mx->codes = calloc(mx->max_labels + 1, sizeof *mx->codes);
    mx->errors = calloc(mx->max_labels + 1, sizeof *mx->errors);
    if (!mx->series || !mx->codes || !mx->errors || brk_map_init(&mx->by_name))
        return -ENOMEM;
    if (series_init(mx, &mx->series[mx->max_labels], OTHER, strlen(OTHER)) ||
        !(mx->codes[0] = strdup("ok")) || !(mx->codes[mx->max_labels] = strdup(OTHER)))
        return -ENOMEM;
    mx->n_codes = 1;
    if (!b->cfg.metrics_ep[0]) return 0;
    base_scrape_opts_t o = {.max_conns = b->cfg.metrics_max_conns,
                            .max_request = b->cfg.metrics_max_request,
                            .idle_ms = (int64_t)b->cfg.metrics_idle_ms,
                            .path = "/metrics",
                            .content_type = "text/plain; version=0.0.4; charset=utf-8",
                            .render = render,
                            .send = stream_send,
                            .ctx = b};
    int rc = base_scrape_new(&mx->scrape, &o);
    if (rc) return rc;
    mx->sock = zmq_socket(b->ctx, ZMQ_STREAM);
    if (!mx->sock) return -ENOMEM;
    if (zmq_bind(mx->sock, b->cfg.metrics_ep) != 0) {
        base_log(BASE_LOG_ERROR, "bind_failed", "socket=metrics endpoint=%s error=\"%s\"",
                 b->cfg.metrics_ep, zmq_strerror(errno));
        return -EADDRINUSE;
    }
    base_log(BASE_LOG_INFO, "listening", "socket=metrics endpoint=%s", b->cfg.metrics_ep);
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
    base_scrape_destroy(&mx->scrape);
    if (mx->by_name.buckets) brk_map_close(&mx->by_name);
    free(mx->series);
    free(mx->codes);
    free(mx->errors);
    free(mx);
    b->mx = NULL;
}

void *brk_metrics_socket(brk_t *b) { return b->mx ? b->mx->sock : NULL; }

/* ---- hooks ---- */

void brk_mx_accept(brk_t *b, brk_job_t *j, brk_agent_t *a) {
    if (!a->mx_slot) a->mx_slot = series_slot(b->mx, a->name, a->len) + 1;
    j->mx_slot = a->mx_slot - 1;
    j->t0_us = base_mono_us();
}

void brk_mx_answer(brk_t *b, const brk_job_t *j, const brk_term_t *t) {
    brk_metrics_t *mx = b->mx;
    series_t *s = &mx->series[j->mx_slot];
    int64_t us = base_mono_us() - j->t0_us;
    base_hist_observe(&s->hist, us > 0 ? (uint64_t)us : 0);
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
    base_hist_observe(&s->hist, 0); /* answered on arrival */
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
    int64_t up = base_unix_ms() - b->mx->start_unix_ms;
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

static void label(base_buf_t *o, const char *key, const char *v, size_t n) {
    base_buf_printf(o, "%s=\"", key);
    base_prom_label(o, v, n);
    base_buf_put(o, "\"", 1);
}

/* Renders one label set into a scratch buffer as a C string. */
static const char *labels1(base_buf_t *tmp, const char *key, const char *v, size_t n) {
    base_buf_reset(tmp);
    label(tmp, key, v, n);
    return base_buf_cstr(tmp);
}

static void render_queries(brk_metrics_t *mx, base_buf_t *o, base_buf_t *tmp) {
    base_prom_family(o, "actorbus_broker_queries_total", "counter",
                      "Queries answered, by agent and outcome (ok or the error code).");
    for (size_t i = 0; i <= mx->max_labels; i++) {
        series_t *s = &mx->series[i];
        if (i >= mx->n_series && i < mx->max_labels) continue;
        for (size_t c = 0; c <= mx->max_labels; c++) {
            if (!s->by_code[c]) continue;
            base_buf_reset(tmp);
            label(tmp, "agent", s->name, s->len);
            base_buf_put(tmp, ",", 1);
            label(tmp, "outcome", mx->codes[c], strlen(mx->codes[c]));
            const char *labels = base_buf_cstr(tmp);
            if (*labels)
                base_prom_u64(o, "actorbus_broker_queries_total", labels, s->by_code[c]);
        }
    }
    base_prom_family(o, "actorbus_broker_query_duration_seconds", "histogram",
                      "Time from a query's arrival to its terminal reply, by agent.");
    for (size_t i = 0; i <= mx->max_labels; i++) {
        series_t *s = &mx->series[i];
        if ((i >= mx->n_series && i < mx->max_labels) || !s->hist.count) continue;
        base_prom_hist(o, "actorbus_broker_query_duration_seconds",
                        labels1(tmp, "agent", s->name, s->len), &s->hist);
    }
    base_prom_family(o, "actorbus_broker_errors_total", "counter",
                      "Error replies sent, by code (refused requests included).");
    for (size_t c = 1; c <= mx->max_labels; c++)
        if (mx->errors[c])
            base_prom_u64(o, "actorbus_broker_errors_total",
                           labels1(tmp, "code", mx->codes[c], strlen(mx->codes[c])),
                           mx->errors[c]);
}

static void gauge(base_buf_t *o, const char *name, const char *help, uint64_t v) {
    base_prom_one(o, name, "gauge", help, v);
}

static void counter(base_buf_t *o, const char *name, const char *help, uint64_t v) {
    base_prom_one(o, name, "counter", help, v);
}

static void render_workers(brk_t *b, base_buf_t *o, base_buf_t *tmp) {
    uint64_t capacity = 0, busy = 0;
    base_list_t *l;
    for (l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
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
        base_prom_family(o, fam[k][0], "gauge", fam[k][1]);
        for (l = b->worker_list.next; l != &b->worker_list; l = l->next) {
            brk_worker_t *w = base_container_of(l, brk_worker_t, link);
            if (!w->dead)
                base_prom_u64(o, fam[k][0], labels1(tmp, "worker", w->name, w->name_len),
                               k ? w->in_flight : w->capacity);
        }
    }
    counter(o, "actorbus_broker_workers_lost_total", "Workers removed (lost, gone, restarted).",
            b->mx->workers_lost);
}

static void render_traffic(brk_metrics_t *mx, base_buf_t *o) {
    static const char *const sock[2] = {"socket=\"clients\"", "socket=\"workers\""};
    static const char *const fam[4][2] = {
        {"actorbus_broker_received_messages_total", "Messages received, by socket."},
        {"actorbus_broker_received_bytes_total", "Body bytes received, by socket."},
        {"actorbus_broker_sent_messages_total", "Messages sent, by socket."},
        {"actorbus_broker_sent_bytes_total", "Body bytes sent, by socket."}};
    const uint64_t *v[4] = {mx->in_msgs, mx->in_bytes, mx->out_msgs, mx->out_bytes};
    for (int k = 0; k < 4; k++) {
        base_prom_family(o, fam[k][0], "counter", fam[k][1]);
        for (int s = 0; s < 2; s++) base_prom_u64(o, fam[k][0], sock[s], v[k][s]);
    }
}

/* base_scrape's render callback: every broker family into o. */
static void render(void *ctx, base_buf_t *o) {
    brk_t *b = ctx;
    brk_metrics_t *mx = b->mx;
    base_buf_t tmp;
    base_buf_init(&tmp);
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
    base_prom_family(o, "actorbus_broker_start_time_seconds", "gauge",
                      "When the broker started, Unix seconds.");
    base_buf_printf(o, "actorbus_broker_start_time_seconds %.3f\n",
                      (double)mx->start_unix_ms / 1000.0);
    gauge(o, "actorbus_broker_draining", "1 while the broker drains after SIGTERM.",
          b->draining ? 1 : 0);
    base_scrape_render_requests(mx->scrape, o, "actorbus_broker");
    base_buf_free(&tmp);
}

/* ---- the endpoint ---- */

/* base_scrape's send callback. ZMQ_STREAM: [id][bytes] writes to the TCP connection,
 * [id][""] closes it; a full pipe drops the answer rather than stall the broker's loop. */
static void stream_send(void *ctx, const uint8_t *id, size_t idlen, const uint8_t *p,
                        size_t n) {
    brk_t *b = ctx;
    if (zmq_send(b->mx->sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
    zmq_send(b->mx->sock, p, n, ZMQ_DONTWAIT);
}

bool brk_metrics_read(brk_t *b) {
    zmq_msg_t f[2];
    size_t nf, total = brk_recv_frames(b->mx->sock, f, 2, &nf);
    if (total == 0) return false;
    if (nf == 2 && total == 2)
        base_scrape_on_message(b->mx->scrape, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
                               zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), b->now);
    for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    return true;
}

int64_t brk_metrics_tick(brk_t *b) {
    brk_metrics_t *mx = b->mx;
    int64_t next = brk_tasks_tick(b);
    if (next < 0) next = b->now + 1000;
    if (mx && mx->scrape) {
        int64_t scrape_next = base_scrape_tick(mx->scrape, b->now);
        if (scrape_next < next) next = scrape_next;
    }
    return next;
}
