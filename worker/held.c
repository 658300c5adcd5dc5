/* held.c: what a worker keeps across a broker takeover (a broker pair, proto/PROTOCOL.md
 * "Broker pairs"). A job whose work carried `origin` keeps running when the connection goes;
 * its answer, if it comes while no broker is connected (or was still queued when the
 * connection went), is kept here, bounded. The next `ready` lists both (`held`): the running
 * jobs with their origin, the kept answers as entries marked done, which follow the ready. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

/* Packs j's held entry: {job, agent, session?, invocation?, timeout_ms?, input?, origin,
 * calls?, call_queries?, done?}. input only within *input_left bytes (NULL: never); calls:
 * the ids of its calls still waiting for an answer (kept across the reconnect, calls.c),
 * call_queries their query messages (bin, or nil), within *input_left too. */
static void pack_entry(proto_buf_t *o, const abp_ctx_t *j, bool done, size_t *input_left) {
    int64_t left = -1;
    if (!done && j->deadline >= 0) {
        left = j->deadline - act_now();
        if (left < 0) left = 0;
    }
    bool input = input_left && j->input_n <= *input_left;
    if (input) *input_left -= j->input_n;
    uint32_t calls = 0; /* its calls still waiting: the new broker links their jobs to them */
    for (const abp_call_t *c = done ? NULL : j->calls; c; c = c->next) calls += !c->done;
    msgpack_pack_map(&o->pk, 3 + (j->session != NULL) + (j->invocation != NULL) + (left >= 0) +
                                 input + done + 2 * (calls > 0));
    proto_pack_cstr(o, "job");
    msgpack_pack_uint64(&o->pk, j->id);
    proto_pack_cstr(o, "agent");
    proto_pack_cstr(o, j->agent->name);
    if (j->session) {
        proto_pack_cstr(o, "session");
        proto_pack_cstr(o, j->session);
    }
    if (j->invocation) {
        proto_pack_cstr(o, "invocation");
        proto_pack_cstr(o, j->invocation);
    }
    if (left >= 0) {
        proto_pack_cstr(o, "timeout_ms");
        msgpack_pack_uint64(&o->pk, (uint64_t)left);
    }
    if (input) {
        proto_pack_cstr(o, "input");
        proto_buf_raw(o, (proto_raw_t){j->input, j->input_n});
    }
    proto_pack_cstr(o, "origin");
    proto_buf_raw(o, (proto_raw_t){j->origin, j->origin_n});
    if (calls) {
        proto_pack_cstr(o, "calls");
        msgpack_pack_array(&o->pk, calls);
        for (const abp_call_t *c = j->calls; c; c = c->next)
            if (!c->done) msgpack_pack_uint64(&o->pk, c->id);
        /* each call's query (nil past the inputs' share of the report): a call whose query
         * its old broker never sent on can run on the new one (PROTOCOL.md "Broker pairs") */
        proto_pack_cstr(o, "call_queries");
        msgpack_pack_array(&o->pk, calls);
        for (const abp_call_t *c = j->calls; c; c = c->next) {
            if (c->done) continue;
            if (c->query && input_left && c->query_n <= *input_left) {
                *input_left -= c->query_n;
                msgpack_pack_bin(&o->pk, c->query_n);
                msgpack_pack_bin_body(&o->pk, c->query, c->query_n);
            } else {
                msgpack_pack_nil(&o->pk);
            }
        }
    }
    if (done) {
        proto_pack_cstr(o, "done");
        msgpack_pack_true(&o->pk);
    }
}

void wrk_held_answer(wrk_t *w, abp_ctx_t *j, const proto_buf_t *msg) {
    proto_buf_t e;
    proto_buf_init(&e);
    pack_entry(&e, j, true, NULL);
    wrk_held_t *h = e.failed ? NULL : malloc(sizeof *h + e.n + msg->n);
    if (!h) {
        act_log(ACT_LOG_ERROR, "send_dropped", "reason=out_of_memory job=%llu",
                (unsigned long long)j->id);
        proto_buf_free(&e);
        return;
    }
    h->next = NULL;
    h->recalled = false;
    h->entry_n = e.n;
    h->msg_n = msg->n;
    memcpy(h->data, e.p, e.n);
    memcpy(h->data + e.n, msg->p, msg->n);
    proto_buf_free(&e);
    if (j->gen == w->gen && w->sock) wrk_send_held(w, h);
    else wrk_held_keep(w, h); /* its broker is gone: for the next one */
}

void wrk_held_keep(wrk_t *w, wrk_held_t *h) {
    size_t bytes = h->entry_n + h->msg_n;
    if (w->n_held >= w->cfg.max_held || w->held_bytes + bytes > w->cfg.max_held_bytes) {
        w->held_dropped++;
        act_log(ACT_LOG_WARN, "held_dropped", "bytes=%zu held=%zu held_bytes=%zu dropped=%llu "
                "why=\"--max-held or --max-held-bytes: the client's resend gets worker_lost "
                "or runs again\"", bytes, w->n_held, w->held_bytes,
                (unsigned long long)w->held_dropped);
        free(h);
        return;
    }
    h->next = NULL;
    if (w->held_tail) w->held_tail->next = h;
    else w->held_head = h;
    w->held_tail = h;
    w->n_held++;
    w->held_bytes += bytes;
}

/* Running held jobs past the report's bytes: they cannot be adopted, so they stop (their
 * answer would go to a broker that does not know them). Returns how many were packed. */
static size_t pack_running(wrk_t *w, proto_buf_t *e, size_t budget, size_t *cut) {
    size_t n = 0, input_left = budget / 2; /* inputs: at most half the report */
    abp_ctx_t *next;
    for (abp_ctx_t *j = w->jobs; j; j = next) {
        next = j->next; /* wrk_jobs_cancel may free j */
        if (!j->held) continue;
        size_t before = e->n;
        pack_entry(e, j, false, &input_left);
        if (e->n <= budget) {
            n++;
            continue;
        }
        e->n = before;
        (*cut)++;
        j->held = false;
        j->orphaned = true;
        wrk_jobs_cancel(w, j->id);
    }
    return n;
}

/* Kept answers (recalled ones or the others) past the report's bytes are dropped (counted
 * in held_dropped). */
static size_t pack_done(wrk_t *w, proto_buf_t *e, size_t budget, size_t *cut, bool recalled) {
    size_t n = 0;
    wrk_held_t **pp = &w->held_head, *last = NULL;
    while (*pp) {
        wrk_held_t *h = *pp;
        if (h->recalled != recalled) {
            last = h;
            pp = &h->next;
            continue;
        }
        if (e->n + h->entry_n > budget) {
            *pp = h->next;
            w->n_held--;
            w->held_bytes -= h->entry_n + h->msg_n;
            w->held_dropped++;
            (*cut)++;
            free(h);
            continue;
        }
        proto_buf_raw(e, (proto_raw_t){h->data, h->entry_n});
        n++;
        last = h;
        pp = &h->next;
    }
    w->held_tail = last;
    return n;
}

void wrk_held_incarnation(wrk_t *w) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v || v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
            ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)w;
    }
    w->incarnation = v ? v : 1;
}

void wrk_held_conn_end(wrk_t *w) {
    size_t i = w->gen % WRK_RECV_KEPT;
    w->recv_conn[i] = w->gen;
    w->recv_n[i] = w->works_in;
    w->works_in = 0;
}

/* `incarnation` (this process), `connection` (this connection: nothing of an earlier one is
 * read after this ready) and `received` ([connection, works] for the last connections, which
 * a broker reads in order): a work the broker counted as the k-th it sent on connection c,
 * with k past what c received, never reached this process (proto/PROTOCOL.md, "Broker
 * pairs"). */
static int pack_incarnation(wrk_t *w, proto_buf_t *o) {
    size_t at = o->n, n = 0;
    for (size_t i = 0; i < WRK_RECV_KEPT; i++) n += w->recv_conn[i] != 0;
    proto_pack_cstr(o, "incarnation");
    msgpack_pack_uint64(&o->pk, w->incarnation);
    proto_pack_cstr(o, "connection");
    msgpack_pack_uint64(&o->pk, w->gen);
    proto_pack_cstr(o, "received");
    msgpack_pack_array(&o->pk, (uint32_t)n);
    for (size_t i = 0; i < WRK_RECV_KEPT; i++) {
        if (!w->recv_conn[i]) continue;
        msgpack_pack_array(&o->pk, 2);
        msgpack_pack_uint64(&o->pk, w->recv_conn[i]);
        msgpack_pack_uint64(&o->pk, w->recv_n[i]);
    }
    if (o->failed || !proto_buf_map_grow(o, 3)) {
        o->n = at; /* without incarnation the broker takes nothing as proof */
        o->failed = false;
        return ACT_ENOMEM;
    }
    return 0;
}

int wrk_held_ready(wrk_t *w, proto_buf_t *o) {
    bool any = w->n_held > 0;
    for (const abp_ctx_t *j = w->jobs; j && !any; j = j->next) any = j->held;
    if (!any) return pack_incarnation(w, o);
    proto_buf_t e;
    proto_buf_init(&e);
    size_t budget = w->cfg.max_held_report, cut_run = 0, cut_done = 0;
    size_t n_run = pack_running(w, &e, budget, &cut_run);
    /* Answers nobody has read first; those sent lately (maybe read) with the room left. */
    size_t n_done = pack_done(w, &e, budget, &cut_done, false);
    n_done += pack_done(w, &e, budget, &cut_done, true);
    if (cut_run || cut_done)
        act_log(ACT_LOG_WARN, "held_cut", "running=%zu answered=%zu max_held_report=%zu "
                "dropped=%llu", cut_run, cut_done, budget, (unsigned long long)w->held_dropped);
    size_t at = o->n;
    proto_pack_cstr(o, "held");
    msgpack_pack_array(&o->pk, (uint32_t)(n_run + n_done));
    proto_buf_raw(o, (proto_raw_t){e.p, e.n});
    int rc = 0;
    if (e.failed || o->failed || !proto_buf_map_grow(o, 1)) {
        o->n = at;
        o->failed = false;
        act_log(ACT_LOG_ERROR, "held_not_reported", "jobs=%zu why=out_of_memory",
                n_run + n_done);
        rc = ACT_ENOMEM;
    } else {
        act_log(ACT_LOG_INFO, "held_reported", "running=%zu answered=%zu bytes=%zu", n_run,
                n_done, e.n);
    }
    proto_buf_free(&e);
    int irc = pack_incarnation(w, o);
    return rc ? rc : irc;
}

void wrk_held_flush(wrk_t *w) {
    for (abp_ctx_t *j = w->jobs; j; j = j->next) {
        if (!j->held) continue;
        j->held = false;
        j->gen = w->gen; /* its events and answer go to the new broker */
    }
    wrk_held_t *h = w->held_head;
    w->held_head = w->held_tail = NULL;
    w->n_held = w->held_bytes = 0;
    while (h) {
        wrk_held_t *next = h->next;
        wrk_send_held(w, h);
        h = next;
    }
}

static void free_list(wrk_held_t *h) {
    while (h) {
        wrk_held_t *next = h->next;
        free(h);
        h = next;
    }
}

void wrk_held_free_all(wrk_t *w) {
    free_list(w->held_head);
    w->held_head = w->held_tail = NULL;
    w->n_held = w->held_bytes = 0;
    free_list(w->recent_head);
    w->recent_head = w->recent_tail = NULL;
    w->n_recent = w->recent_bytes = 0;
}

/* How long a sent answer is kept: what the worker takes to notice a dead broker. */
static int64_t recent_ms(const wrk_t *w) { return w->cfg.heartbeat_ms * w->cfg.liveness; }

static void recent_drop_head(wrk_t *w) {
    wrk_held_t *h = w->recent_head;
    w->recent_head = h->next;
    if (!w->recent_head) w->recent_tail = NULL;
    w->n_recent--;
    w->recent_bytes -= h->entry_n + h->msg_n;
    free(h);
}

void wrk_held_sent(wrk_t *w, wrk_held_t *h) {
    size_t bytes = h->entry_n + h->msg_n;
    h->next = NULL;
    h->sent_at = act_now();
    if (w->recent_tail) w->recent_tail->next = h;
    else w->recent_head = h;
    w->recent_tail = h;
    w->n_recent++;
    w->recent_bytes += bytes;
    /* oldest first: past the window or the bounds (the newest are the likeliest unread) */
    int64_t old = h->sent_at - recent_ms(w);
    while (w->recent_head && (w->recent_head->sent_at < old || w->n_recent > w->cfg.max_held ||
                              w->recent_bytes > w->cfg.max_held_bytes)) {
        recent_drop_head(w);
    }
}

void wrk_held_recall(wrk_t *w) {
    int64_t old = act_now() - recent_ms(w);
    while (w->recent_head && w->recent_head->sent_at < old) recent_drop_head(w);
    wrk_held_t *h = w->recent_head;
    w->recent_head = w->recent_tail = NULL;
    w->n_recent = w->recent_bytes = 0;
    while (h) {
        wrk_held_t *next = h->next;
        h->recalled = true;
        wrk_held_keep(w, h);
        h = next;
    }
}
