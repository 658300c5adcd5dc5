/* tools/web/api.c: what actor-web's paths mean. Each /api/... path turns into a client
 * message to the broker (status, query, cancel, tasks, session.list/get/delete) under ids
 * "web-<n>", and the reply goes back as its JSON; /events streams the bus and a periodic
 * status as server-sent events; /api/bus gives the bus messages kept in a bounded ring, for
 * pages opened later. Every byte from the broker, the bus or a browser goes out as JSON
 * written by proto's encoder (strings escaped); the page builds its DOM from it as text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "web.h"

#define ID_PREFIX "web-"

/* ---- ids ---- */

static proto_raw_t pack_id(proto_buf_t *b, uint64_t n) {
    char s[32];
    int len = snprintf(s, sizeof s, ID_PREFIX "%" PRIu64, n);
    proto_buf_reset(b);
    proto_pack_str(b, s, (size_t)len);
    return (proto_raw_t){b->p, b->n};
}

/* The n of an id "web-<n>" (0: not one of ours). */
static uint64_t id_number(proto_raw_t id) {
    proto_str_t s;
    if (!proto_raw_str(id, &s) || s.n <= 4 || s.n > 24 || memcmp(s.p, ID_PREFIX, 4) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = 4; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    return v;
}

static int send_msg(web_t *w, const proto_buf_t *m) {
    if (m->failed) return -ENOMEM;
    return zmq_send(w->dealer, m->p, m->n, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

/* ---- JSON out ---- */

/* v as JSON into w->json (reset first). Returns: 0, or PROTO_EBAD / PROTO_ENOMEM. */
static int to_json(web_t *w, proto_raw_t v) {
    proto_buf_reset(&w->json);
    int rc = proto_raw_to_json(v, &w->json);
    return rc ? rc : w->json.failed ? -ENOMEM : 0;
}

static void broadcast(web_t *w, const char *event, const char *json, size_t n) {
    char head[64];
    int hn = snprintf(head, sizeof head, "event: %s\ndata: ", event);
    for (size_t i = 0; i < w->o.max_conns; i++) {
        web_conn_t *c = &w->conns[i];
        if (c->st != WEB_C_SSE) continue;
        if (web_send(w, c, head, (size_t)hn) == 0 && web_send(w, c, json, n) == 0)
            web_send(w, c, "\n\n", 2);
    }
}

/* ---- replies ---- */

static web_conn_t *conn_of(web_t *w, uint64_t req) {
    for (size_t i = 0; req && i < w->o.max_conns; i++) {
        web_conn_t *c = &w->conns[i];
        if ((c->st == WEB_C_WAIT || c->st == WEB_C_QUERY) && c->req == req) return c;
    }
    return NULL;
}

static void on_status(web_t *w) {
    char *copy = malloc(w->json.n + 1);
    if (!copy) return;
    memcpy(copy, w->json.p, w->json.n + 1);
    free(w->status_json);
    w->status_json = copy;
    w->status_n = w->json.n;
    broadcast(w, "status", copy, w->status_n);
}

void web_on_reply(web_t *w) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, w->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        return;
    }
    proto_msg_t m;
    proto_error_t err = {0};
    if (proto_decode(zmq_msg_data(&f), zmq_msg_size(&f), &w->lim, &m, &err) != 0 ||
        to_json(w, m.body) != 0) {
        fprintf(stderr, "actor-web: a bad reply from the broker (%s)\n", err.message);
        zmq_msg_close(&f);
        return;
    }
    uint64_t req = id_number(m.id);
    web_conn_t *c = conn_of(w, req);
    if (req && req == w->status_req) {
        w->status_req = 0;
        on_status(w);
    } else if (c && c->st == WEB_C_WAIT && m.type != PROTO_EVENT) {
        if (w->json.n + 1024 > w->o.max_buffer) /* a session's many events, say */
            web_respond_error(w, c, 502, "too_large", "the broker's answer is larger than "
                                                      "--max-buffer (ask for fewer events)");
        else
            web_respond(w, c, 200, "application/json", (const char *)w->json.p, w->json.n);
    } else if (c && c->st == WEB_C_QUERY) {
        web_send(w, c, (const char *)w->json.p, w->json.n);
        web_send(w, c, "\n", 1);
        if (m.type == PROTO_RESULT || m.type == PROTO_ERROR) {
            c->req = 0;
            c->st = WEB_C_WRITE;
            c->deadline = base_mono_ms() + w->o.request_ms; /* to send the rest */
            c->close_when_sent = true;
        }
    }
    zmq_msg_close(&f);
}

/* ---- the bus ---- */

static void ring_drop_oldest(web_t *w) {
    web_ring_entry_t *e = &w->ring[w->ring_head];
    w->ring_bytes -= e->n;
    free(e->json);
    e->json = NULL;
    w->ring_head = (w->ring_head + 1) % w->o.ring;
    w->ring_n--;
}

static void ring_push(web_t *w, const char *json, size_t n) {
    if (n > w->o.ring_bytes) return;
    while (w->ring_n && (w->ring_n == w->o.ring || w->ring_bytes + n > w->o.ring_bytes))
        ring_drop_oldest(w);
    char *copy = malloc(n + 1);
    if (!copy) return;
    memcpy(copy, json, n + 1);
    web_ring_entry_t *e = &w->ring[(w->ring_head + w->ring_n) % w->o.ring];
    *e = (web_ring_entry_t){.seq = w->bus_seq, .json = copy, .n = n};
    w->ring_n++;
    w->ring_bytes += n;
}

void web_ring_free(web_t *w) {
    while (w->ring && w->ring_n) ring_drop_oldest(w);
    free(w->ring);
    w->ring = NULL;
}

/* {"seq":N,"topic":"...","msg":{...}} of one bus message into w->msg (as text). */
static int bus_json(web_t *w, const char *topic, size_t tn, proto_raw_t body) {
    proto_buf_t *o = &w->msg;
    proto_buf_reset(o);
    char head[64];
    int hn = snprintf(head, sizeof head, "{\"seq\":%" PRIu64 ",\"topic\":", w->bus_seq);
    proto_buf_raw(o, (proto_raw_t){(const uint8_t *)head, (size_t)hn});
    proto_buf_t t;
    proto_buf_init(&t);
    proto_pack_str(&t, topic, tn);
    int rc = to_json(w, (proto_raw_t){t.p, t.n});
    proto_buf_free(&t);
    if (rc) return rc;
    proto_buf_raw(o, (proto_raw_t){w->json.p, w->json.n});
    proto_buf_raw(o, (proto_raw_t){(const uint8_t *)",\"msg\":", 7});
    if (to_json(w, body) == 0) { /* a publisher may send anything: not msgpack is null */
        proto_buf_raw(o, (proto_raw_t){w->json.p, w->json.n});
    } else {
        proto_buf_raw(o, (proto_raw_t){(const uint8_t *)"null", 4});
    }
    proto_buf_raw(o, (proto_raw_t){(const uint8_t *)"}", 2}); /* with the NUL */
    if (o->failed) return -ENOMEM;
    o->n--;
    return 0;
}

void web_on_bus(web_t *w) {
    zmq_msg_t f[2];
    zmq_msg_init(&f[0]);
    zmq_msg_init(&f[1]);
    if (zmq_msg_recv(&f[0], w->sub, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return;
    }
    size_t frames = 1;
    bool more = zmq_msg_more(&f[0]);
    while (more) { /* keep the second frame, drop any others */
        zmq_msg_t *dst = frames == 1 ? &f[1] : NULL, extra;
        if (!dst) zmq_msg_init(dst = &extra);
        zmq_msg_recv(dst, w->sub, 0);
        more = zmq_msg_more(dst);
        if (dst == &extra) zmq_msg_close(&extra);
        frames++;
    }
    if (frames == 2) {
        w->bus_seq++;
        proto_raw_t body = {zmq_msg_data(&f[1]), zmq_msg_size(&f[1])};
        if (bus_json(w, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), body) == 0) {
            ring_push(w, (const char *)w->msg.p, w->msg.n);
            broadcast(w, "bus", (const char *)w->msg.p, w->msg.n);
        }
    }
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
}

/* GET /api/bus?after=SEQ: the ring's messages after SEQ as a JSON array, oldest first, cut
 * to what fits in half a connection's buffer. */
static void bus_dump(web_t *w, web_conn_t *c, const web_req_t *r) {
    char v[32];
    uint64_t after = web_query_get(r->query, "after", v, sizeof v) > 0 ? strtoull(v, NULL, 10)
                                                                        : 0;
    size_t cap = w->o.max_buffer / 2, n = 1, first = w->ring_n;
    for (size_t i = w->ring_n; i-- > 0;) { /* newest first, to know where to start */
        web_ring_entry_t *e = &w->ring[(w->ring_head + i) % w->o.ring];
        if (e->seq <= after || n + e->n + 1 > cap) break;
        n += e->n + 1;
        first = i;
    }
    char *out = malloc(n + 2), *p = out;
    if (!out) {
        web_respond_error(w, c, 503, "internal", "out of memory");
        return;
    }
    *p++ = '[';
    for (size_t i = first; i < w->ring_n; i++) {
        web_ring_entry_t *e = &w->ring[(w->ring_head + i) % w->o.ring];
        if (p > out + 1) *p++ = ',';
        memcpy(p, e->json, e->n);
        p += e->n;
    }
    *p++ = ']';
    web_respond(w, c, 200, "application/json", out, (size_t)(p - out));
    free(out);
}

/* ---- requests to the broker ---- */

/* Sends the request in w->msg (made for id number req) and parks c until its reply. */
static void ask(web_t *w, web_conn_t *c, uint64_t req, int enc_rc, web_cstate_t st) {
    if (enc_rc != 0 || send_msg(w, &w->msg) != 0) {
        web_respond_error(w, c, 502, "unreachable", "could not send the request to the broker "
                                                    "(no connection to it now)");
        return;
    }
    c->req = req;
    c->st = st;
    c->deadline = base_mono_ms() + w->o.request_ms;
}

/* A query parameter as a proto string in buf; {NULL, 0} when absent or empty. Returns: 0,
 * or -1 after answering 400. */
static int param(web_t *w, web_conn_t *c, const web_req_t *r, const char *name, char *buf,
                 size_t cap, proto_str_t *out) {
    int n = web_query_get(r->query, name, buf, cap);
    *out = (proto_str_t){n > 0 ? buf : NULL, n > 0 ? (size_t)n : 0};
    if (n >= 0 || n == -ENOENT) return 0;
    char m[96];
    snprintf(m, sizeof m, "parameter '%s' is badly encoded or too long", name);
    web_respond_error(w, c, 400, "bad_request", m);
    return -1;
}

static void api_tasks(web_t *w, web_conn_t *c, const web_req_t *r, uint64_t req,
                      proto_raw_t id) {
    char wb[300];
    proto_str_t worker;
    if (param(w, c, r, "worker", wb, sizeof wb, &worker)) return;
    if (!worker.n) {
        web_respond_error(w, c, 400, "bad_request", "parameter 'worker' is missing");
        return;
    }
    ask(w, c, req, proto_enc_tasks(&w->msg, id, worker), WEB_C_WAIT);
}

static void api_sessions(web_t *w, web_conn_t *c, const web_req_t *r, uint64_t req,
                         proto_raw_t id) {
    char ab[300], ub[300], xb[300], lb[32];
    proto_str_t app, user, after, lim;
    if (param(w, c, r, "app", ab, sizeof ab, &app) || param(w, c, r, "user", ub, sizeof ub, &user)
        || param(w, c, r, "after", xb, sizeof xb, &after) ||
        param(w, c, r, "limit", lb, sizeof lb, &lim))
        return;
    uint64_t limit = lim.n ? strtoull(lb, NULL, 10) : 0;
    ask(w, c, req, proto_enc_session_list(&w->msg, id, app, user, after, limit), WEB_C_WAIT);
}

static void api_session(web_t *w, web_conn_t *c, const web_req_t *r, uint64_t req,
                        proto_raw_t id, bool del) {
    char sb[300], ab[300], ub[300], eb[32];
    proto_str_t sid, app, user, ev;
    if (param(w, c, r, "id", sb, sizeof sb, &sid) || param(w, c, r, "app", ab, sizeof ab, &app)
        || param(w, c, r, "user", ub, sizeof ub, &user) ||
        param(w, c, r, "events", eb, sizeof eb, &ev))
        return;
    if (!sid.n) {
        web_respond_error(w, c, 400, "bad_request", "parameter 'id' (the session) is missing");
        return;
    }
    int rc = del ? proto_enc_session_delete(&w->msg, id, sid)
                 : proto_enc_session_get(&w->msg, id, sid, app, user,
                                         ev.n ? strtoll(eb, NULL, 10) : -1);
    ask(w, c, req, rc, WEB_C_WAIT);
}

/* Cancels go out on a DEALER of their own: the broker finds the query among every client's,
 * and the answer to the cancel (which carries the query's id) stays off the query's stream,
 * where the query's own `cancelled` error ends it. */
static int send_cancel(web_t *w, proto_raw_t id) {
    if (proto_enc_cancel_id(&w->msg, id) != 0 || w->msg.failed) return -ENOMEM;
    return zmq_send(w->canceller, w->msg.p, w->msg.n, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

static void api_cancel(web_t *w, web_conn_t *c, const web_req_t *r) {
    char qb[64];
    proto_str_t qid;
    if (param(w, c, r, "id", qb, sizeof qb, &qid)) return;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_pack_str(&b, qid.p ? qid.p : "", qid.n);
    proto_raw_t id = {b.p, b.n};
    if (!id_number(id))
        web_respond_error(w, c, 400, "bad_request", "parameter 'id' is not a query of this "
                                                    "console (web-<n>)");
    else if (send_cancel(w, id) == 0)
        web_respond(w, c, 200, "application/json", "{\"type\":\"sent\"}", 15);
    else
        web_respond_error(w, c, 502, "internal", "could not send the cancel");
    proto_buf_free(&b);
}

/* POST /api/query {"agent","input","session","timeout_ms"}: the answer is a stream of JSON
 * lines: {"type":"accepted","id":"web-<n>"}, then the query's events, then its result or
 * error, as the broker sent them. */
static void api_query(web_t *w, web_conn_t *c, const char *body, uint64_t req, proto_raw_t id) {
    proto_buf_t in;
    proto_buf_init(&in);
    proto_error_t err;
    proto_val_t map, agent, input, session, tmo;
    const char *why = NULL;
    if (proto_json_to_msgpack(body, strlen(body), &in, &err) != 0 ||
        proto_val_read(in.p, in.n, &map) != 0 || map.type != PROTO_V_MAP)
        why = "the body is not a JSON object";
    else if (proto_val_map_get(&map, "agent", &agent) != 1 || agent.type != PROTO_V_STR ||
             !agent.len)
        why = "field 'agent' must be a non-empty string";
    int has_s = why ? 0 : proto_val_map_get(&map, "session", &session);
    int has_t = why ? 0 : proto_val_map_get(&map, "timeout_ms", &tmo);
    if (!why && has_s == 1 && session.type != PROTO_V_STR && session.type != PROTO_V_NIL)
        why = "field 'session' must be a string";
    if (!why && has_t == 1 && (tmo.type != PROTO_V_INT || tmo.i < 0))
        why = "field 'timeout_ms' must be a non-negative integer";
    if (why) {
        web_respond_error(w, c, 400, "bad_request", why);
        proto_buf_free(&in);
        return;
    }
    static const uint8_t nil = 0xc0;
    proto_raw_t in_raw = {&nil, 1};
    if (proto_val_map_get(&map, "input", &input) == 1) in_raw = (proto_raw_t){input.raw,
                                                                             input.raw_n};
    proto_str_t sess = {NULL, 0};
    if (has_s == 1 && session.type == PROTO_V_STR && session.len)
        sess = (proto_str_t){(const char *)session.data, session.len};
    int rc = proto_enc_query(&w->msg, id, (proto_str_t){(const char *)agent.data, agent.len},
                             in_raw, sess, has_t == 1 ? tmo.i : -1, false);
    ask(w, c, req, rc, WEB_C_QUERY);
    if (c->st == WEB_C_QUERY) {
        char line[64];
        int n = snprintf(line, sizeof line, "{\"type\":\"accepted\",\"id\":\"" ID_PREFIX
                         "%" PRIu64 "\"}\n", req);
        web_stream_head(w, c, "application/x-ndjson");
        web_send(w, c, line, (size_t)n);
    }
    proto_buf_free(&in);
}

static void events_open(web_t *w, web_conn_t *c) {
    if (w->n_sse >= w->o.max_sse) {
        web_respond_error(w, c, 503, "overloaded", "too many live pages (--max-sse)");
        return;
    }
    web_stream_head(w, c, "text/event-stream");
    c->st = WEB_C_SSE;
    w->n_sse++;
    char hello[96]; /* bus seqs count from this process's start */
    int n = snprintf(hello, sizeof hello, "retry: 2000\nevent: hello\ndata: {\"epoch\":%" PRId64
                     ",\"seq\":%" PRIu64 "}\n\n", w->epoch, w->bus_seq);
    web_send(w, c, hello, (size_t)n);
    if (w->status_json) {
        web_send(w, c, "event: status\ndata: ", 20);
        web_send(w, c, w->status_json, w->status_n);
        web_send(w, c, "\n\n", 2);
    }
    w->next_status = 0; /* a fresh one at once */
}

void web_route(web_t *w, web_conn_t *c, const web_req_t *r, const char *body) {
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");
    const char *p = r->path;
    /* Anything that changes something is a POST carrying X-Actor-Web: a form or an image of
     * another site cannot send that header without a preflight, which is never allowed. */
    bool writes = !strcmp(p, "/api/query") || !strcmp(p, "/api/cancel") ||
                  !strcmp(p, "/api/session/delete");
    if (writes ? !(post && r->has_xweb) : !get) {
        web_respond_error(w, c, 405, "bad_request",
                          writes ? "this path takes a POST with an X-Actor-Web header"
                                 : "this path takes a GET");
        return;
    }
    if (!strcmp(p, "/events")) {
        events_open(w, c);
        return;
    }
    if (!strcmp(p, "/api/bus")) {
        bus_dump(w, c, r);
        return;
    }
    uint64_t req = w->next_req++;
    proto_buf_t idb;
    proto_buf_init(&idb);
    proto_raw_t id = pack_id(&idb, req);
    if (!strcmp(p, "/api/status"))
        ask(w, c, req, proto_enc_status_request(&w->msg, id), WEB_C_WAIT);
    else if (!strcmp(p, "/api/tasks"))
        api_tasks(w, c, r, req, id);
    else if (!strcmp(p, "/api/sessions"))
        api_sessions(w, c, r, req, id);
    else if (!strcmp(p, "/api/session") || !strcmp(p, "/api/session/delete"))
        api_session(w, c, r, req, id, post);
    else if (!strcmp(p, "/api/query"))
        api_query(w, c, body, req, id);
    else if (!strcmp(p, "/api/cancel"))
        api_cancel(w, c, r);
    else
        web_respond_error(w, c, 404, "not_found", "no such path");
    proto_buf_free(&idb);
}

/* ---- time ---- */

void web_forget(web_t *w, web_conn_t *c) {
    if (c->st != WEB_C_QUERY || !c->req) return;
    proto_buf_t b;
    proto_buf_init(&b);
    send_cancel(w, pack_id(&b, c->req)); /* the page left: nobody waits for the answer */
    proto_buf_free(&b);
    c->req = 0;
}

void web_tick(web_t *w, int64_t now) {
    zmq_msg_t drop; /* answers to cancels: their queries' streams tell the outcome */
    zmq_msg_init(&drop);
    while (zmq_msg_recv(&drop, w->canceller, ZMQ_DONTWAIT) >= 0) continue;
    zmq_msg_close(&drop);
    if (w->n_sse && now >= w->next_status) {
        uint64_t req = w->next_req++;
        proto_buf_t b;
        proto_buf_init(&b);
        if (proto_enc_status_request(&w->msg, pack_id(&b, req)) == 0 && send_msg(w, &w->msg) == 0)
            w->status_req = req; /* a reply that never comes is replaced by the next poll */
        proto_buf_free(&b);
        w->next_status = now + w->o.status_ms;
    }
    if (now >= w->next_ping) {
        for (size_t i = 0; i < w->o.max_conns; i++)
            if (w->conns[i].st == WEB_C_SSE) web_send(w, &w->conns[i], ": ping\n\n", 8);
        w->next_ping = now + 15000;
    }
    for (size_t i = 0; i < w->o.max_conns; i++) {
        web_conn_t *c = &w->conns[i];
        if ((c->st == WEB_C_READ || c->st == WEB_C_WRITE) && now >= c->deadline) {
            web_close(w, c);
            continue;
        }
        if (c->st == WEB_C_WAIT && now >= c->deadline) {
            c->req = 0;
            web_respond_error(w, c, 504, "timeout", "the broker did not answer in time "
                                                    "(--request-timeout)");
        }
    }
}
