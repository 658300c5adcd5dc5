/* broker/workers.c: the worker table: `ready` registers a worker with its capacity and agents,
 * credit tracks how much work it may hold, heartbeats go out when a worker is otherwise idle
 * and a worker silent past liveness is lost. A lost worker is removed at a safe point (reap):
 * its jobs are retried or answered (broker_jobs.c) and its own calls to other agents are ended. */
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int brk_workers_init(brk_t *b) { return brk_map_init(&b->worker_map); }

static void worker_free(brk_t *b, brk_worker_t *w) {
    brk_worker_t **slot = &b->worker_cache[w->idlen ? w->id[w->idlen - 1] % BRK_WORKER_CACHE : 0];
    if (*slot == w) *slot = NULL;
    free(w->agents);
    free(w->agent_history);
    free(w);
}

void brk_workers_close(brk_t *b) {
    /* their key references go with the keys (brk_zap_close, after this) */
    while (!base_list_empty(&b->worker_list)) {
        brk_worker_t *w = base_container_of(b->worker_list.next, brk_worker_t, link);
        base_list_unlink(&w->link);
        brk_map_del(&b->worker_map, &w->node);
        worker_free(b, w);
    }
    brk_map_close(&b->worker_map);
    b->n_workers = 0;
}

void brk_worker_want_pump(brk_t *b, brk_worker_t *w) {
    if (!w->dead && !base_list_linked(&w->pump_link)) base_list_push(&b->pump, &w->pump_link);
}

void brk_worker_mark_dead(brk_t *b, brk_worker_t *w, const char *why) {
    if (w->dead) return;
    w->dead = true;
    w->dead_why = why;
    b->have_dead = true;
    base_list_unlink(&w->pump_link);
}

int brk_worker_send(brk_t *b, brk_worker_t *w, const uint8_t *body, size_t n) {
    int rc = brk_send(b, BRK_SOCK_WORKERS, w->id, w->idlen, false, body, n);
    if (rc == 0)
        w->last_sent = b->now;
    else if (rc == -EHOSTUNREACH)
        brk_worker_mark_dead(b, w, "unreachable");
    return rc;
}

static void send_simple(brk_t *b, const brk_in_t *in, proto_type_t type) {
    if (proto_enc_simple(&b->out, type) == 0)
        brk_send(b, in->sock, in->id, in->idlen, in->req, b->out.p, b->out.n);
}

/* Removes w: its jobs are retried elsewhere or answered, its agents lose a host (an agent
 * with none left answers its queue), and the queries it made are ended. */
static void worker_remove(brk_t *b, brk_worker_t *w) {
    char name[80];
    base_log(BASE_LOG_INFO, "worker_lost", "name=%s why=%s in_flight=%llu",
             base_log_str(name, sizeof name, w->name, w->name_len),
             w->dead_why ? w->dead_why : "removed", (unsigned long long)w->in_flight);
    w->dead = true; /* no longer picked: the retries below go to other hosts */
    brk_mx_worker_lost(b);
    brk_tasks_worker_gone(b, w);
    base_list_unlink(&w->pump_link);
    while (!base_list_empty(&w->jobs))
        brk_job_worker_lost(b, base_container_of(w->jobs.next, brk_job_t, link));
    for (uint32_t i = 0; i < w->n_agents; i++)
        brk_agent_remove_host(b, w->agents[i], w, w->agent_history[i]);
    b->n_hostings -= w->n_agents;
    brk_budget_worker_lost(b, w);
    brk_client_t *c = brk_client_find(b, BRK_SOCK_WORKERS, w->id, w->idlen);
    if (c) brk_client_drop(b, c, "cancelled", "the calling worker was lost");
    base_list_unlink(&w->link);
    brk_map_del(&b->worker_map, &w->node);
    b->n_workers--;
    brk_key_unref(b, &w->key);
    worker_free(b, w);
}

void brk_workers_reap(brk_t *b) {
    while (b->have_dead) {
        b->have_dead = false;
        for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
            brk_worker_t *w = base_container_of(l, brk_worker_t, link);
            if (!w->dead) continue;
            worker_remove(b, w);
            b->have_dead = true; /* the list changed under us: look again */
            break;
        }
    }
}

/* Checks a `ready` before anything is created: name, capacity and every agent name. */
static const char *ready_invalid(const proto_msg_t *m, uint32_t *n_agents) {
    size_t cur = 0;
    proto_str_t s;
    int rc;
    if (m->name.n == 0 || m->name.n > BRK_MAX_NAME) return "field 'name' must be 1-256 bytes";
    if (!base_utf8_valid(m->name.p, m->name.n)) return "field 'name' is not valid UTF-8";
    if (memchr(m->name.p, 0, m->name.n)) return "field 'name' holds a NUL byte";
    if (m->capacity < 1) return "field 'capacity' must be at least 1";
    *n_agents = 0;
    while ((rc = proto_agents_next(m->agents, &cur, &s)) == 1) {
        if (s.n == 0 || s.n > BRK_MAX_NAME) return "agent names must be 1-256 bytes";
        if (!base_utf8_valid(s.p, s.n)) return "agent names must be valid UTF-8";
        if (memchr(s.p, 0, s.n)) return "agent names must not hold a NUL byte";
        if (++*n_agents > BRK_MAX_AGENTS) return "too many agents (at most 1024)";
    }
    if (rc < 0) return "field 'agents' must be an array of strings";
    uint32_t n_hist = 0;
    cur = 0;
    while (proto_agents_next(m->history_agents, &cur, &s) == 1)
        if (++n_hist > BRK_MAX_AGENTS) return "too many history_agents (at most 1024)";
    return NULL;
}

/* Whether name is among ready's history_agents (a linear scan: ready is rare and bounded). */
static bool wants_history(const proto_msg_t *m, proto_str_t name) {
    size_t cur = 0;
    proto_str_t s;
    while (proto_agents_next(m->history_agents, &cur, &s) == 1)
        if (s.n == name.n && memcmp(s.p, name.p, s.n) == 0) return true;
    return false;
}

static int worker_add_agents(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    size_t cur = 0;
    proto_str_t s;
    while (proto_agents_next(m->agents, &cur, &s) == 1) {
        brk_agent_t *a;
        bool history = m->history_agents.n && wants_history(m, s);
        if (brk_agent_add_host(b, s, w, history, &a) != 0) return -ENOMEM;
        if (!a) continue;
        w->agent_history[w->n_agents] = history;
        w->agents[w->n_agents++] = a;
        b->n_hostings++;
    }
    return 0;
}

/* Creates and registers a worker, not yet hosting anything. */
static brk_worker_t *worker_new(brk_t *b, const brk_in_t *in, const proto_msg_t *m,
                                uint32_t n_agents) {
    brk_worker_t *w = calloc(1, sizeof *w);
    if (!w || !(w->agents = calloc(n_agents ? n_agents : 1, sizeof *w->agents)) ||
        !(w->agent_history = calloc(n_agents ? n_agents : 1, 1))) {
        if (w) free(w->agents);
        free(w);
        return NULL;
    }
    memcpy(w->id, in->id, in->idlen);
    w->idlen = in->idlen;
    w->seq = ++b->next_worker_seq;
    memcpy(w->name, m->name.p, m->name.n);
    w->name_len = m->name.n;
    w->key = brk_key_ref(in->key);
    w->capacity = m->capacity;
    w->hb_ms = m->heartbeat_ms ? m->heartbeat_ms : b->cfg.heartbeat_ms;
    if (w->hb_ms < 10) w->hb_ms = 10; /* the same bounds as --heartbeat-ms */
    if (w->hb_ms > 3600000) w->hb_ms = 3600000;
    w->last_seen = w->last_sent = b->now;
    w->node.key = w->id;
    w->node.klen = w->idlen;
    base_list_init(&w->jobs);
    base_list_init(&w->pump_link);
    base_list_push(&b->worker_list, &w->link);
    brk_map_put(&b->worker_map, &w->node);
    b->n_workers++;
    b->workers_due = 0; /* its heartbeats and liveness join the next tick */
    return w;
}

static void on_ready(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    proto_raw_t nil = {NULL, 0};
    uint32_t n_agents = 0;
    const char *bad = ready_invalid(m, &n_agents);
    if (bad) {
        brk_reply_error(b, in, nil, "bad_request", "%s", bad);
        return;
    }
    if (b->n_hostings + n_agents > b->cfg.max_agent_hosts) {
        char name[80];
        base_log(BASE_LOG_WARN, "worker_refused", "name=%s agents=%u why=\"max-agent-hosts\"",
                 base_log_str(name, sizeof name, m->name.p, m->name.n), n_agents);
        brk_reply_error(b, in, nil, "overloaded", "workers announce %llu agents in all, and "
                        "%u more would pass max-agent-hosts %llu",
                        (unsigned long long)b->n_hostings, n_agents,
                        (unsigned long long)b->cfg.max_agent_hosts);
        return;
    }
    if (b->n_workers >= b->cfg.max_workers) {
        char name[80];
        base_log(BASE_LOG_WARN, "worker_refused", "name=%s why=\"worker table full\"",
                 base_log_str(name, sizeof name, m->name.p, m->name.n));
        brk_reply_error(b, in, nil, "overloaded", "worker table full (max-workers %llu)",
                        (unsigned long long)b->cfg.max_workers);
        return;
    }
    brk_worker_t *w = worker_new(b, in, m, n_agents);
    if (!w) {
        brk_reply_error(b, in, nil, "internal", "out of memory");
        return;
    }
    if (worker_add_agents(b, w, m) != 0) {
        brk_worker_mark_dead(b, w, "out of memory");
        return;
    }
    char name[80];
    base_log(BASE_LOG_INFO, "worker_ready", "name=%s capacity=%llu agents=%u heartbeat_ms=%llu",
             base_log_str(name, sizeof name, w->name, w->name_len),
             (unsigned long long)w->capacity, w->n_agents, (unsigned long long)w->hb_ms);
    brk_budget_worker_ready(b, w);
    brk_adopt_held(b, w, in, m->held); /* jobs it kept running across a takeover (adopt.c) */
    /* Answered at once: a worker counts the broker lost `liveness` intervals after it sent
     * ready, and a ready that waited in its socket for the broker to bind (a broker restart)
     * arrives near that deadline. Silent until the first interval, the broker would see the
     * worker give up and come back on a new connection: a second registration of one name,
     * the first one stale, and work sent to it lost. */
    if (proto_enc_simple(&b->out, PROTO_HEARTBEAT) == 0)
        brk_worker_send(b, w, b->out.p, b->out.n);
    brk_worker_want_pump(b, w);
}

static brk_worker_t *worker_find(brk_t *b, const brk_in_t *in) {
    brk_worker_t **slot = &b->worker_cache[in->idlen ? in->id[in->idlen - 1] % BRK_WORKER_CACHE
                                                     : 0];
    brk_worker_t *w = *slot;
    if (w && w->idlen == in->idlen && brk_eq(w->id, in->id, in->idlen)) return w;
    brk_node_t *n = brk_map_get(&b->worker_map, in->id, in->idlen);
    if (!n) return NULL;
    return *slot = base_container_of(n, brk_worker_t, node);
}

/* A decoded message from a registered worker. */
static void known_worker_message(brk_t *b, brk_worker_t *w, const brk_in_t *in,
                                 const proto_msg_t *m) {
    switch (m->type) {
    case PROTO_READY: /* it started over: what it held is lost */
        brk_worker_mark_dead(b, w, "ready again");
        brk_workers_reap(b);
        on_ready(b, in, m);
        break;
    case PROTO_HEARTBEAT:
        break;
    case PROTO_DISCONNECT:
        brk_worker_mark_dead(b, w, "disconnect");
        break;
    case PROTO_CREDIT:
        w->capacity = m->capacity;
        brk_worker_want_pump(b, w);
        break;
    case PROTO_EVENT:
    case PROTO_RESULT:
    case PROTO_ERROR:
        if (!m->has_job) {
            brk_reply_error(b, in, m->id, "bad_request", "field 'job' is required in %s",
                            proto_type_name(m->type));
            break;
        }
        brk_job_from_worker(b, w, m, in->n);
        break;
    case PROTO_TASKS_REPLY:
        brk_tasks_reply(b, w, m);
        break;
    case PROTO_QUERY:
    case PROTO_CANCEL:
    case PROTO_PUBLISH:
    case PROTO_STATUS:
    case PROTO_TASKS:
        brk_client_request(b, in, m);
        break;
    case PROTO_BUDGET_ACQUIRE:
    case PROTO_BUDGET_RELEASE:
    case PROTO_BUDGET_CANCEL:
        brk_budget_message(b, w, in, m);
        break;
    default:
        brk_reply_error(b, in, m->id, "bad_request", "type '%s' is not a worker message",
                        proto_type_name(m->type));
        break;
    }
}

void brk_worker_message(brk_t *b, const brk_in_t *in) {
    proto_raw_t nil = {NULL, 0};
    if (in->frame_err[0]) {
        brk_reply_error(b, in, nil, "bad_request", "%s", in->frame_err);
        return;
    }
    proto_msg_t m;
    proto_error_t err;
    err.code = NULL; /* what the error path reads: set only on failure */
    err.message[0] = '\0';
    if (proto_decode(in->body, in->n, &b->wlim, &m, &err) != 0) {
        brk_reply_error(b, in, m.id, err.code ? err.code : "bad_request", "%s",
                        err.message[0] ? err.message : "undecodable message");
        return;
    }
    brk_worker_t *w = worker_find(b, in);
    if (w) w->last_seen = b->now;
    /* A job's event, result or error may run over max-msg (up to the socket's limit): it is
     * decoded to learn its job, whose client then gets too_large instead of waiting forever. */
    bool job_msg = m.has_job && (m.type == PROTO_EVENT || m.type == PROTO_RESULT ||
                                 m.type == PROTO_ERROR || m.type == PROTO_TASKS_REPLY);
    if (in->n > b->cfg.max_msg && !(w && job_msg)) {
        brk_reply_error(b, in, m.id, "too_large", "message of %zu bytes exceeds max-msg %llu",
                        in->n, (unsigned long long)b->cfg.max_msg);
        return;
    }
    if (w)
        known_worker_message(b, w, in, &m);
    else if (m.type == PROTO_READY)
        on_ready(b, in, &m);
    else if (m.type != PROTO_DISCONNECT)
        send_simple(b, in, PROTO_DISCONNECT); /* a stranger: make it start over with ready */
}

int64_t brk_workers_tick(brk_t *b) {
    int64_t next = b->now + 1000;
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if (w->dead) continue;
        int64_t window = (int64_t)(w->hb_ms * b->cfg.liveness);
        int64_t lost_at = brk_after(w->last_seen, w->hb_ms * b->cfg.liveness);
        /* Silent only if the socket was read empty after its deadline: a heartbeat still
         * queued behind a busy loop is the broker's delay, not the worker's. A socket that
         * never runs empty (sustained traffic) gets one more window, then liveness holds. */
        if (b->now > lost_at &&
            (b->wdrained_at > lost_at || b->now > brk_after(lost_at, (uint64_t)window))) {
            if (proto_enc_simple(&b->out, PROTO_DISCONNECT) == 0)
                brk_worker_send(b, w, b->out.p, b->out.n); /* if alive, it starts over */
            brk_worker_mark_dead(b, w, "silent");
            continue;
        }
        uint64_t every = w->hb_ms < b->cfg.heartbeat_ms ? w->hb_ms : b->cfg.heartbeat_ms;
        if (b->now - w->last_sent >= (int64_t)every &&
            proto_enc_simple(&b->out, PROTO_HEARTBEAT) == 0)
            brk_worker_send(b, w, b->out.p, b->out.n);
        if (w->last_sent + (int64_t)every < next) next = w->last_sent + (int64_t)every;
        if (lost_at + 1 < next) next = lost_at + 1;
    }
    return next;
}

void brk_workers_disconnect_all(brk_t *b) {
    if (proto_enc_simple(&b->out, PROTO_DISCONNECT) != 0) return;
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if (!w->dead) brk_send(b, BRK_SOCK_WORKERS, w->id, w->idlen, false, b->out.p, b->out.n);
    }
}

static void status_worker(proto_buf_t *o, const brk_worker_t *w) {
    msgpack_pack_map(&o->pk, 4);
    proto_pack_cstr(o, "name");
    proto_pack_str(o, w->name, w->name_len);
    proto_pack_cstr(o, "capacity");
    msgpack_pack_uint64(&o->pk, w->capacity);
    proto_pack_cstr(o, "in_flight");
    msgpack_pack_uint64(&o->pk, w->in_flight);
    proto_pack_cstr(o, "agents");
    msgpack_pack_array(&o->pk, w->n_agents);
    for (uint32_t i = 0; i < w->n_agents; i++)
        proto_pack_str(o, w->agents[i]->name, w->agents[i]->len);
}

/* The worker after which a status page starts: its registration number, as decimal text;
 * 0 (the first page) when absent. -1 when the cursor is not a number. */
static int64_t status_cursor(proto_str_t after) {
    uint64_t v = 0;
    if (after.n == 0) return 0;
    if (after.n > 19) return -1;
    for (size_t i = 0; i < after.n; i++) {
        if (after.p[i] < '0' || after.p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(after.p[i] - '0');
    }
    return (int64_t)v;
}

/* One page of workers, in registration order from after: at most limit of them and, past the
 * first, within --max-reply bytes, so that one 16-byte request cannot make the broker build
 * and queue a reply of every worker's agents (130 MiB with 1024 workers of 1024 agents).
 * *next: the cursor of the next page, 0 on the last. Returns how many it packed. */
static uint32_t status_page(brk_t *b, proto_buf_t *o, uint64_t after, uint64_t limit,
                            uint64_t *next) {
    size_t start = o->n;
    uint32_t n = 0;
    *next = 0;
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if (w->dead || w->seq <= after) continue;
        if (n == limit || (n && o->n - start >= b->cfg.max_reply)) {
            *next = w->seq;
            break;
        }
        status_worker(o, w);
        n++;
        *next = 0;
    }
    return n;
}

void brk_workers_status(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    proto_buf_t *o = &b->out;
    int64_t after = status_cursor(m->after);
    if (after < 0) {
        brk_reply_error(b, in, m->id, "bad_request", "field 'after' must be the 'next' of an "
                        "earlier status");
        return;
    }
    uint64_t n = 0, capacity = 0, in_flight = 0;
    base_list_t *l;
    for (l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if (w->dead) continue;
        n++;
        capacity = brk_add_sat(capacity, w->capacity);
        in_flight += w->in_flight;
    }
    /* The workers go into a scratch buffer first: their count heads the array. */
    proto_buf_t *page = &b->busbuf;
    proto_buf_reset(page);
    uint64_t next;
    uint32_t k = status_page(b, page, (uint64_t)after, m->limit ? m->limit : UINT32_MAX, &next);
    /* A `result` like every other request's answer (PROTOCOL.md "Versioning"). */
    proto_enc_result_begin(o, m->id);
    msgpack_pack_map(&o->pk, 7 + BRK_MX_STATUS_FIELDS);
    proto_pack_cstr(o, "workers");
    msgpack_pack_array(&o->pk, k);
    proto_raw_t pr = {(const uint8_t *)page->p, page->n};
    if (page->n) proto_buf_raw(o, pr);
    proto_pack_cstr(o, "next");
    if (next) {
        char cur[24];
        int cn = snprintf(cur, sizeof cur, "%llu", (unsigned long long)(next - 1));
        proto_pack_str(o, cur, (size_t)cn);
    } else {
        msgpack_pack_nil(&o->pk);
    }
    proto_pack_cstr(o, "workers_total");
    msgpack_pack_uint64(&o->pk, n);
    proto_pack_cstr(o, "capacity");
    msgpack_pack_uint64(&o->pk, capacity);
    proto_pack_cstr(o, "in_flight");
    msgpack_pack_uint64(&o->pk, in_flight);
    proto_pack_cstr(o, "queued");
    msgpack_pack_uint64(&o->pk, b->n_queued);
    proto_pack_cstr(o, "clients");
    msgpack_pack_uint64(&o->pk, b->n_clients);
    brk_mx_status(b, o);
    if (page->failed || o->failed) {
        brk_reply_error(b, in, m->id, "internal", "out of memory");
        return;
    }
    int rc = brk_send(b, in->sock, in->id, in->idlen, in->req, o->p, o->n);
    if (rc < 0) base_log(BASE_LOG_DEBUG, "send_failed", "what=status errno=%d", -rc);
}
