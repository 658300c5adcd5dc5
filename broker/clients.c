/* broker/clients.c: client requests (query, cancel, publish, status; session.* go on to
 * session_requests.c) and the client table.
 * A client entry exists only while it has queries in flight: it counts them against
 * --max-client-inflight and lists them, so that a duplicate id or a cancel finds its job.
 * Workers calling other agents are clients too, keyed by their worker socket. */
#include "broker.h"
#include "fair.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int brk_clients_init(brk_t *b) { return brk_map_init(&b->client_map); }

void brk_clients_close(brk_t *b) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->client_map, NULL))) {
        brk_map_del(&b->client_map, n);
        free(base_container_of(n, brk_client_t, node));
    }
    brk_map_close(&b->client_map);
    b->client_last = NULL;
    b->n_clients = 0;
}

static size_t client_key(uint8_t *key, brk_sock_t s, const uint8_t *id, size_t idlen) {
    key[0] = (uint8_t)s;
    memcpy(key + 1, id, idlen);
    return idlen + 1;
}

brk_client_t *brk_client_find(brk_t *b, brk_sock_t s, const uint8_t *id, size_t idlen) {
    brk_client_t *c = b->client_last;
    if (c && c->keylen == idlen + 1 && c->key[0] == (uint8_t)s &&
        brk_eq(c->key + 1, id, idlen))
        return c;
    uint8_t key[1 + BRK_MAX_IDENTITY];
    size_t n = client_key(key, s, id, idlen);
    brk_node_t *node = brk_map_get(&b->client_map, key, n);
    if (!node) return NULL;
    return b->client_last = base_container_of(node, brk_client_t, node);
}

static brk_client_t *client_new(brk_t *b, const brk_in_t *in) {
    brk_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->sock = in->sock;
    c->curve_key = brk_key_ref(in->key);
    c->keylen = client_key(c->key, in->sock, in->id, in->idlen);
    c->node.key = c->key;
    c->node.klen = c->keylen;
    base_list_init(&c->jobs);
    brk_gone_track(b, c, in);
    brk_map_put(&b->client_map, &c->node);
    b->n_clients++;
    return c;
}

brk_client_t *brk_client_adopt(brk_t *b, brk_sock_t sock, const uint8_t *rid, size_t ridlen,
                               brk_key_t *key) {
    brk_client_t *c = brk_client_find(b, sock, rid, ridlen);
    if (c || b->n_clients >= b->cfg.max_clients || ridlen > BRK_MAX_IDENTITY) return c;
    brk_in_t in = {.sock = sock, .idlen = ridlen, .fd = -1, .key = key};
    memcpy(in.id, rid, ridlen);
    return client_new(b, &in);
}

void brk_client_adopted(brk_client_t *c) {
    c->in_flight++;
    if (c->curve_key) c->curve_key->in_flight++; /* as on_query counts it */
}

static void client_free_if_idle(brk_t *b, brk_client_t *c) {
    if (c->in_flight) return;
    brk_gone_untrack(b, c);
    brk_map_del(&b->client_map, &c->node);
    if (b->client_last == c) b->client_last = NULL;
    b->n_clients--;
    brk_key_unref(b, &c->curve_key);
    free(c);
}

void brk_client_unadopt(brk_t *b, brk_client_t *c) { client_free_if_idle(b, c); }

void brk_client_pending(brk_t *b, brk_job_t *j, bool on) {
    brk_client_t *c = j->client;
    if (on == j->pending || (on && !c)) return;
    j->pending = on;
    if (on) {
        if (c->n_pending++ == 0) b->n_pend_clients++;
        if (c->curve_key && c->curve_key->n_pending++ == 0) b->n_pend_keys++;
    } else {
        if (--c->n_pending == 0) b->n_pend_clients--;
        if (c->curve_key && --c->curve_key->n_pending == 0) b->n_pend_keys--;
    }
}

void brk_client_on_answer(brk_t *b, brk_job_t *j) {
    brk_client_t *c = j->client;
    base_list_unlink(&j->clink);
    j->client = NULL;
    BRK_ASSERT(c->in_flight > 0);
    c->in_flight--;
    if (c->curve_key) c->curve_key->in_flight--;
    client_free_if_idle(b, c);
}

void brk_client_drop(brk_t *b, brk_client_t *c, const char *code, const char *why) {
    /* Each abort answers one job and unlinks it; the last one frees c. */
    for (uint64_t n = c->in_flight; n > 0; n--) {
        brk_job_t *j = base_container_of(c->jobs.next, brk_job_t, clink);
        brk_job_abort(b, j, code, why);
    }
}

static void send_reply(brk_t *b, const brk_in_t *in) {
    int rc = brk_send(b, in->sock, in->id, in->idlen, in->req, b->out.p, b->out.n);
    if (rc < 0) base_log(BASE_LOG_DEBUG, "send_failed", "what=reply errno=%d", -rc);
}

/* Refuses a decoded query: the error goes to the sender and, like every answer about a
 * query, to the bus. */
static void reject_query(brk_t *b, const brk_in_t *in, const proto_msg_t *m, const char *code,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reject_query(brk_t *b, const brk_in_t *in, const proto_msg_t *m, const char *code,
                         const char *fmt, ...) {
    char raw[256], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    base_utf8_clean(msg, sizeof msg, raw, strlen(raw)); /* the cut may split a character */
    brk_reply_error(b, in, m->id, code, "%s", msg);
    brk_mx_reject(b, m->agent, code);
    brk_qmsg_t q = {.type = PROTO_ERROR, .id = m->id, .agent = m->agent, .session = m->session};
    q.code.p = code;
    q.code.n = strlen(code);
    q.message.p = msg;
    q.message.n = strlen(msg);
    brk_bus_query(b, &q);
}

/* Whether every byte is ASCII and none is NUL: then valid UTF-8 with no NUL, and the full
 * checks below (a call per character) can be skipped; names are nearly always such. */
static bool plain_ascii(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)p[i] - 1u >= 0x7fu) return false;
    return true;
}

/* What the codec leaves to the broker: names it passes on must be short and UTF-8. */
static const char *query_invalid(const proto_msg_t *m) {
    if (m->agent.n > BRK_MAX_NAME) return "field 'agent' is longer than 256 bytes";
    if (m->session.n <= BRK_MAX_NAME && plain_ascii(m->agent.p, m->agent.n) &&
        plain_ascii(m->session.p, m->session.n))
        return m->session.p && m->session.n == 0
                   ? "field 'session' must not be empty (leave it out for no session)"
                   : NULL;
    if (m->session.n > BRK_MAX_NAME) return "field 'session' is longer than 256 bytes";
    if (!base_utf8_valid(m->agent.p, m->agent.n)) return "field 'agent' is not valid UTF-8";
    if (!base_utf8_valid(m->session.p, m->session.n)) return "field 'session' is not valid UTF-8";
    if (m->session.p && m->session.n == 0) /* present but empty: not the same as absent */
        return "field 'session' must not be empty (leave it out for no session)";
    /* A NUL would cut the name wherever it becomes a C string (logs, /metrics labels). */
    if (memchr(m->agent.p, 0, m->agent.n)) return "field 'agent' holds a NUL byte";
    if (m->session.n && memchr(m->session.p, 0, m->session.n))
        return "field 'session' holds a NUL byte";
    return NULL;
}

/* A query that cannot start now (no free worker, or its session is busy) takes a place in
 * the queue: within --max-queue, counting queries waiting for a session, and within its
 * owner's fair share (fair.h). The owner is the CURVE key, over all its connections, else
 * the connection. Workers' own sub-queries have only the hard bound: refusing them would
 * fail a running parent. False when refused (answered). */
static bool queue_admits(brk_t *b, const brk_in_t *in, const proto_msg_t *m,
                         const brk_client_t *c, brk_agent_t *a, const brk_inv_t *inv) {
    if (brk_agent_has_free(a) && !(inv && brk_inv_will_wait(inv))) return true;
    uint64_t pending = b->n_queued + b->n_waiting, max = b->cfg.max_queue;
    if (pending >= max) {
        reject_query(b, in, m, "overloaded", "no free worker and the queue is full "
                     "(max-queue %llu)", (unsigned long long)max);
        return false;
    }
    if (in->sock == BRK_SOCK_WORKERS) return true;
    uint64_t mine = in->key ? in->key->n_pending : c ? c->n_pending : 0;
    uint64_t owners = in->key ? b->n_pend_keys : b->n_pend_clients;
    if (brk_fair_admit(pending, max, b->cfg.fair_share_from, mine, owners)) return true;
    reject_query(b, in, m, "overloaded", "the queue is %llu%% full and this %s has "
                 "%llu queries waiting, past its fair share (max-queue %llu over %llu owners)",
                 (unsigned long long)(pending * 100 / max), in->key ? "key" : "client",
                 (unsigned long long)mine, (unsigned long long)max,
                 (unsigned long long)(owners + (mine == 0)));
    return false;
}

/* The checks a query passes before it is accepted, cheapest and most specific first. */
static void on_query(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    char name[80];
    const char *bad = query_invalid(m);
    if (bad) {
        brk_reply_error(b, in, m->id, "bad_request", "%s", bad);
        return;
    }
    /* answered before: same reply (only explicit routing ids have answers kept) */
    if (m->id.n && brk_rid_explicit(in->id, in->idlen) && brk_dedup_replay(b, in, m->id))
        return;
    brk_client_t *c = brk_client_find(b, in->sock, in->id, in->idlen);
    if (c && c->curve_key != in->key) {
        /* Another CURVE key took over this routing id while the queries of the key before
         * are in flight: it may neither attach to them nor be counted as that client. */
        reject_query(b, in, m, "unauthorized", "this routing id has queries of another key");
        return;
    }
    if (c) brk_client_attach(b, c, in); /* its owner is back (gone.c) */
    uint64_t idh = brk_map_hash(m->id.p, m->id.n); /* once, for every map of ids */
    brk_job_t *dup = c ? brk_job_find_cid(b, c, m->id, idh) : NULL;
    if (dup && brk_dedup_eligible(b->dedup, in->id, in->idlen) && in->sock == BRK_SOCK_CLIENTS) {
        /* A resend of a query in flight (a drain too: refusing it would be a second reply).
         * Its one answer goes out in this connection's envelope. */
        dup->req = in->req;
        dup->quiet = false; /* adopted at a takeover: this resend takes its answer */
        base_log(BASE_LOG_DEBUG, "query_attached", "job=%llu", (unsigned long long)dup->job_id);
        return;
    }
    if (b->draining) {
        reject_query(b, in, m, "shutting_down", "the broker is draining");
        return;
    }
    if (dup) {
        reject_query(b, in, m, "duplicate_id", "a query with this id is already in flight");
        return;
    }
    if (c && c->in_flight >= b->cfg.max_client_inflight) {
        reject_query(b, in, m, "overloaded", "client has %llu queries in flight "
                     "(max-client-inflight)", (unsigned long long)c->in_flight);
        return;
    }
    if (in->key && in->key->max_inflight && in->key->in_flight >= in->key->max_inflight) {
        reject_query(b, in, m, "overloaded", "key %s has %llu queries in flight (its "
                     "max_inflight)", in->key->name[0] ? in->key->name : in->key->z85,
                     (unsigned long long)in->key->in_flight);
        return;
    }
    brk_agent_t *a = brk_agent_find(b, m->agent);
    if (!a) a = brk_agent_hold(b, m->agent); /* just started: its worker may be on the way */
    if (!a) {
        reject_query(b, in, m, "unknown_agent", "no worker hosts agent %s",
                     base_log_str(name, sizeof name, m->agent.p, m->agent.n));
        return;
    }
    if (!brk_jobs_room(b)) {
        reject_query(b, in, m, "overloaded", "job table full (max-jobs %llu)",
                     (unsigned long long)b->cfg.max_jobs);
        return;
    }
    if (!c && b->n_clients >= b->cfg.max_clients) {
        reject_query(b, in, m, "overloaded", "client table full (max-clients %llu)",
                     (unsigned long long)b->cfg.max_clients);
        return;
    }
    /* An invocation, or a worker's sub-invocation (which takes its root's session). */
    /* brk_inv_prepare changes the message only for a session or a parent, so only those
     * pay for a copy of it (560 bytes); any other is taken as decoded. */
    proto_msg_t qcopy;
    const proto_msg_t *qm = m;
    brk_inv_t *inv = NULL;
    brk_inv_err_t ierr;
    if (m->has_parent || m->session.n) {
        qcopy = *m;
        qm = &qcopy;
        if (brk_inv_prepare(b, in, &qcopy, &inv, &ierr) != 0) {
            reject_query(b, in, m, ierr.code, "%s", ierr.message);
            return;
        }
    }
    if (!queue_admits(b, in, m, c, a, inv)) {
        brk_inv_discard(b, &inv);
        return;
    }
    if (!c && !(c = client_new(b, in))) {
        brk_inv_discard(b, &inv);
        reject_query(b, in, m, "internal", "out of memory");
        return;
    }
    if (c->curve_key) c->curve_key->in_flight++; /* first: accepting may answer it at once */
    if (brk_job_accept(b, c, in, qm, idh, a, inv) != 0) {
        if (c->curve_key) c->curve_key->in_flight--;
        brk_inv_discard(b, &inv);
        client_free_if_idle(b, c);
        reject_query(b, in, m, "internal", "out of memory");
    }
}

/* Which query a cancel names. The sender's own query with that id first; then (an operator
 * cancelling from another connection: actorctl cancel ID) any client's, where the id names
 * exactly one. Under CURVE a key reaches only its own queries, over all its connections,
 * unless its allowlist line says role=operator. Returns NULL with *err set when refused. */
static brk_job_t *cancel_target(brk_t *b, const brk_in_t *in, proto_raw_t id,
                                const char **err, size_t *matches) {
    brk_client_t *c = brk_client_find(b, in->sock, in->id, in->idlen);
    uint64_t idh = brk_map_hash(id.p, id.n); /* once, for both maps */
    brk_job_t *j = c && c->curve_key == in->key ? brk_job_find_cid(b, c, id, idh) : NULL;
    *err = NULL;
    *matches = 0;
    if (j || in->sock != BRK_SOCK_CLIENTS) return j;
    const brk_key_t *owner = in->key && !in->key->is_operator ? in->key : NULL;
    j = brk_job_find_any(b, id, idh, owner, matches);
    if (*matches > 1) {
        *err = "ambiguous";
        return NULL;
    }
    return j;
}

static void on_cancel(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    /* {"cancelled": true} and {"cancelled": false}, as msgpack */
    static const uint8_t yes[] = {0x81, 0xa9, 'c', 'a', 'n', 'c', 'e', 'l', 'l', 'e', 'd', 0xc3};
    static const uint8_t no[] = {0x81, 0xa9, 'c', 'a', 'n', 'c', 'e', 'l', 'l', 'e', 'd', 0xc2};
    if (m->id.n == 0) {
        brk_reply_error(b, in, m->id, "bad_request", "field 'id' is required in cancel");
        return;
    }
    const char *err;
    size_t matches;
    brk_job_t *j = cancel_target(b, in, m->id, &err, &matches);
    if (err) {
        brk_reply_error(b, in, m->id, "bad_request",
                        "id names several queries of different clients; cancel it from the "
                        "connection that sent it");
        return;
    }
    if (j) brk_job_abort(b, j, "cancelled", "cancelled by the client");
    proto_raw_t out = {j ? yes : no, sizeof yes};
    if (proto_enc_result(&b->out, m->id, out) == 0) send_reply(b, in);
}

static void on_publish(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    proto_raw_t nil = {NULL, 0};
    if (brk_bus_reserved(m->topic.p, m->topic.n)) {
        brk_mx_bus_refused(b);
        brk_reply_error(b, in, m->id, "unauthorized", "topics starting '%s' are the broker's "
                        "own", BRK_BUS_RESERVED);
        return;
    }
    if (brk_bus_publish(b, m->topic, m->data) != 0) {
        brk_reply_error(b, in, m->id, "internal", "out of memory");
        return;
    }
    if (proto_enc_result(&b->out, m->id, nil) == 0) send_reply(b, in);
}

void brk_client_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    switch (m->type) {
    case PROTO_QUERY:
        on_query(b, in, m);
        break;
    case PROTO_CANCEL:
        on_cancel(b, in, m);
        break;
    case PROTO_PUBLISH:
        on_publish(b, in, m);
        break;
    case PROTO_STATUS:
        brk_workers_status(b, in, m);
        break;
    case PROTO_TASKS:
        brk_tasks_request(b, in, m);
        break;
    case PROTO_SESSION_GET:
    case PROTO_SESSION_LIST:
    case PROTO_SESSION_DELETE:
        brk_session_request(b, in, m);
        break;
    default:
        brk_reply_error(b, in, m->id, "bad_request", "type '%s' is not a client request",
                        proto_type_name(m->type));
        break;
    }
}
