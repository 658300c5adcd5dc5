/* broker/broker_jobs.c: the job table and its state machine. A job is an accepted query: QUEUED in
 * its agent's queue, RUNNING on a worker (holding one credit), or CANCELLING (answered, still
 * holding the credit until the worker answers or the grace ends). job_answer is the one place
 * a query's terminal message is sent, and it asserts it runs once per job; every path out of
 * QUEUED or RUNNING goes through it. Deadlines (timeout_ms, cancel grace) sit in a min-heap. */
#include "broker.h"

#include "base/asan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKEY_MAX (sizeof(void *) + 1024)

/* Small jobs (most queries) take fixed-size blocks recycled through a bounded free list, so
 * the steady state allocates nothing. Sanitizer builds keep no cache: every job is its own
 * allocation, so a use after free is still caught. */
#define JOB_BLOCK 512
#ifdef BASE_ASAN
#define JOB_CACHE_MAX 0
#else
#define JOB_CACHE_MAX 1024
#endif
static const size_t job_cache_max = JOB_CACHE_MAX; /* a variable: no always-true warning */

/* A job of size bytes in all, or NULL. Its brk_job_t is zeroed; the bytes after it are not
 * (both callers write every one of them: the key, names and input). */
static brk_job_t *job_alloc(brk_t *b, size_t size) {
    void *p = NULL;
    if (size <= JOB_BLOCK) {
        if (b->job_cache) {
            p = b->job_cache;
            memcpy(&b->job_cache, p, sizeof p);
            b->job_cache_n--;
        } else {
            p = malloc(JOB_BLOCK);
        }
        if (p) memset(p, 0, sizeof(brk_job_t));
        return p;
    }
    return calloc(1, size);
}

static void job_release(brk_t *b, brk_job_t *j, size_t size) {
    if (size > JOB_BLOCK || b->job_cache_n >= job_cache_max) {
        free(j);
        return;
    }
    memcpy((void *)j, &b->job_cache, sizeof b->job_cache);
    b->job_cache = j;
    b->job_cache_n++;
}

static size_t job_size(const brk_job_t *j) {
    return sizeof *j + j->ckey_len + j->agent_name.n + j->session.n + j->input.n;
}

/* ---- the deadline heap (base/heap.h): a slot per job, reserved when the job is admitted ---- */

#define HEAP_JOB(n) base_container_of(n, brk_job_t, deadline_node)

static void heap_remove(brk_t *b, brk_job_t *j) {
    base_heap_remove(&b->deadlines, &j->deadline_node);
}

static void heap_set(brk_t *b, brk_job_t *j, int64_t deadline) {
    heap_remove(b, j);
    BRK_ASSERT(b->deadlines.n < b->deadlines.cap); /* reserved by brk_jobs_room */
    base_heap_push(&b->deadlines, &j->deadline_node, deadline);
}

bool brk_jobs_room(brk_t *b) {
    if (b->n_jobs >= b->cfg.max_jobs) return false;
    if (brk_slots_reserve(&b->job_slots) != 0) return false; /* the id's slot, too */
    if (b->deadlines.cap > b->n_jobs) return true;
    return base_heap_reserve(&b->deadlines, b->deadlines.cap ? b->deadlines.cap * 2 : 64) == 0;
}

/* ---- the table ---- */

int brk_jobs_init(brk_t *b) {
    brk_slots_init(&b->job_slots, b->cfg.max_jobs);
    if (brk_map_init(&b->job_map) || brk_map_init(&b->cid_map)) return -ENOMEM;
    if (brk_invs_init(b)) return -ENOMEM; /* the session locks live beside the jobs */
    if (brk_jobindex_init(b)) return -ENOMEM;
    return brk_jobs_room(b) ? 0 : -ENOMEM;
}

static void close_one(brk_t *b, brk_job_t *j) {
    base_list_unlink(&j->link);
    base_list_unlink(&j->clink);
    if (j->inv) brk_inv_on_free(b, j); /* most queries are no invocation's */
    job_release(b, j, job_size(j));
}

void brk_jobs_close(brk_t *b) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->job_map, NULL))) {
        brk_map_del(&b->job_map, n);
        close_one(b, base_container_of(n, brk_job_t, by_job));
    }
    brk_slot_t *sl;
    size_t cursor = 0;
    while ((sl = brk_slots_take(&b->job_slots, &cursor)))
        close_one(b, base_container_of(sl, brk_job_t, slot));
    brk_slots_close(&b->job_slots);
    brk_invs_close(b);
    brk_jobindex_close(b);
    while (b->job_cache) {
        void *p = b->job_cache;
        memcpy(&b->job_cache, p, sizeof p);
        free(p);
    }
    b->job_cache_n = 0;
    brk_map_close(&b->job_map);
    brk_map_close(&b->cid_map);
    base_heap_free(&b->deadlines);
    b->n_jobs = b->n_live = b->n_queued = b->n_waiting = 0;
}

/* The hash of a (client, id) key from the id's keyed hash: the id is hashed once per query
 * for both maps. Still unpredictable to a peer (its part of the key goes through SipHash),
 * and a bijection of idh for one client. */
static uint64_t cid_hash(const brk_client_t *c, uint64_t idh) {
    uint64_t h = (idh ^ (uint64_t)(uintptr_t)c) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

brk_job_t *brk_job_find_cid(brk_t *b, brk_client_t *c, proto_raw_t id, uint64_t idh) {
    uint8_t key[CKEY_MAX];
    if (id.n > CKEY_MAX - sizeof c) return NULL;
    memcpy(key, &c, sizeof c);
    brk_copy(key + sizeof c, id.p, id.n);
    brk_node_t *n = brk_map_get_h(&b->cid_map, key, sizeof c + id.n, cid_hash(c, idh));
    return n ? base_container_of(n, brk_job_t, by_cid) : NULL;
}

/* The broker's own ids are found by their slot; adopted ones (rare, after a takeover) in the
 * map, which is empty otherwise. */
static brk_job_t *job_find(brk_t *b, uint64_t job_id) {
    brk_slot_t *sl = brk_slots_get(&b->job_slots, job_id);
    if (sl) return base_container_of(sl, brk_job_t, slot);
    brk_node_t *n = b->job_map.n ? brk_map_get(&b->job_map, &job_id, sizeof job_id) : NULL;
    return n ? base_container_of(n, brk_job_t, by_job) : NULL;
}

/* brk_slots_add's veto: an id an adopted job holds is never given to a new job. */
static bool foreign_taken(void *arg, uint64_t id) {
    brk_t *b = arg;
    return b->job_map.n && brk_map_get(&b->job_map, &id, sizeof id);
}

static void id_unlink(brk_t *b, brk_job_t *j) {
    if (j->foreign)
        brk_map_del(&b->job_map, &j->by_job);
    else
        brk_slots_del(&b->job_slots, &j->slot);
    j->foreign = false;
}

static void id_link_foreign(brk_t *b, brk_job_t *j, uint64_t job_id) {
    j->job_id = job_id;
    j->foreign = true;
    j->by_job = (brk_node_t){.key = &j->job_id, .klen = sizeof j->job_id};
    brk_map_put(&b->job_map, &j->by_job);
}

brk_job_t *brk_job_find(brk_t *b, uint64_t job_id) { return job_find(b, job_id); }

static void queue_push(brk_t *b, brk_agent_t *a, brk_job_t *j, bool front) {
    j->state = JOB_QUEUED;
    j->agent = a;
    brk_client_pending(b, j, true);
    if (front)
        base_list_push_front(&a->queue, &j->link);
    else
        base_list_push(&a->queue, &j->link);
    b->n_queued++;
}

static void queue_remove(brk_t *b, brk_job_t *j) {
    BRK_ASSERT(j->state == JOB_QUEUED && j->agent);
    base_list_unlink(&j->link);
    j->agent = NULL;
    b->n_queued--;
    brk_client_pending(b, j, false);
}

static brk_qmsg_t job_qmsg(const brk_job_t *j, proto_type_t type) {
    brk_qmsg_t q = {.type = type, .id = j->id, .agent = j->agent_name, .session = j->session,
                    .job = j};
    return q;
}

static proto_str_t cstr(const char *s) {
    proto_str_t r = {s, strlen(s)};
    return r;
}

static brk_term_t term_error(const char *code, const char *message) {
    brk_term_t t = {.ok = false, .code = cstr(code), .message = cstr(message)};
    return t;
}

/* Sends the query's one terminal message, to its client and the bus, and detaches the job
 * from its client. Every way a query ends comes here; a second answer is a bug. */
static void job_answer(brk_t *b, brk_job_t *j, const brk_term_t *t) {
    BRK_ASSERT(!j->answered && j->client);
    j->answered = true;
    b->n_live--;
    brk_mx_answer(b, j, t);
    brk_qmsg_t q = job_qmsg(j, t->ok ? PROTO_RESULT : PROTO_ERROR);
    q.payload = t->output;
    q.code = t->code;
    q.message = t->message;
    brk_client_t *c = j->client;
    brk_qenc_t e; /* encoded once, for the client and the bus */
    if (brk_query_enc(b, &q, &e) == 0) {
        /* Remembered before it is sent: a broker killed between the two must still know,
         * after its restart, that the client may have this answer (else a resend runs the
         * query again and the client gets two terminal replies). */
        if (c->sock == BRK_SOCK_CLIENTS && brk_rid_explicit(c->key + 1, c->keylen - 1))
            brk_dedup_remember(b, c, j->id, b->out.p, e.n);
        int rc = j->quiet ? 0 /* adopted, no resend yet: remembered for it (adopt.c) */
                 : brk_client_reachable(b, c) ? brk_send(b, c->sock, c->key + 1, c->keylen - 1,
                                                        j->req, b->out.p, e.n)
                                              : -ENOTCONN; /* detached: its resend gets it */
        if (rc < 0) /* gone (EHOSTUNREACH, ENOTCONN) is routine; full (EAGAIN) loses one */
            base_log(rc == -EHOSTUNREACH || rc == -ENOTCONN ? BASE_LOG_DEBUG : BASE_LOG_WARN,
                     "answer_undelivered",
                    "job=%llu errno=%d", (unsigned long long)j->job_id, -rc);
        brk_query_publish(b, &e);
    }
    char code[48];
    if (base_log_on(BASE_LOG_DEBUG)) /* once per query: not even the call when off */
        base_log(BASE_LOG_DEBUG, "query_answered", "job=%llu type=%s code=%s attempt=%llu",
                 (unsigned long long)j->job_id, t->ok ? "result" : "error",
                 t->ok ? "-" : base_log_str(code, sizeof code, t->code.p, t->code.n),
                 (unsigned long long)j->attempt);
    brk_map_del(&b->cid_map, &j->by_cid);
    brk_jobindex_del(b, j);
    brk_client_pending(b, j, false);
    brk_client_on_answer(b, j);
    if (j->inv) brk_inv_on_answer(b, j); /* a session's next invocation may start */
}

/* Frees an answered job; a job on a worker gives its credit back. */
static void job_free(brk_t *b, brk_job_t *j) {
    BRK_ASSERT(j->answered);
    heap_remove(b, j);
    if (j->state == JOB_WAITING) b->n_waiting--;
    if (j->agent) queue_remove(b, j);
    if (j->worker) {
        base_list_unlink(&j->link);
        j->worker->in_flight--;
        brk_worker_want_pump(b, j->worker);
        j->worker = NULL;
    }
    id_unlink(b, j);
    b->n_jobs--;
    if (j->inv) brk_inv_on_free(b, j); /* most queries are no invocation's */
    job_release(b, j, job_size(j));
}

static void job_finish(brk_t *b, brk_job_t *j, brk_term_t t) {
    job_answer(b, j, &t);
    job_free(b, j);
}

/* Sends a queued job to w, which has credit. A job past its deadline is answered instead;
 * a send that fails puts it back at the head of its queue and w is no longer picked. */
static void dispatch(brk_t *b, brk_job_t *j, brk_worker_t *w) {
    brk_agent_t *a = j->agent;
    queue_remove(b, j);
    if (j->timeout_at >= 0 && j->timeout_at <= b->now) {
        job_finish(b, j, term_error("timeout", "timeout_ms passed before the agent answered"));
        return;
    }
    int64_t left = j->timeout_at >= 0 ? j->timeout_at - b->now : -1;
    brk_inv_err_t ierr;
    if (j->inv && brk_inv_enc_work(b, j, a->n_history > 0, left, &ierr) != 0) {
        job_finish(b, j, term_error(ierr.code, ierr.message));
        return;
    }
    if (!j->inv && proto_enc_work(&b->out, j->job_id, j->agent_name, j->input, j->session,
                                  left, j->attempt + 1) != 0) {
        job_finish(b, j, term_error("internal", "out of memory"));
        return;
    }
    if (b->adopt) brk_adopt_stamp(b, j); /* a pair: who asked, for a takeover (adopt.c) */
    /* Before it leaves: a broker lost from here on must not run it again (resend.c). A query
     * still queued when its broker is lost never ran, and a resend runs it. */
    const brk_client_t *c = j->client; /* a worker's call is marked only in a pair */
    if (!j->idempotent && j->attempt == 0 && j->id.n &&
        (c->sock == BRK_SOCK_WORKERS ? b->adopt != NULL
                                     : brk_rid_explicit(c->key + 1, c->keylen - 1)))
        brk_dedup_mark_running(b, c, j->id, w);
    int rc = brk_worker_send(b, w, b->out.p, b->out.n);
    if (rc < 0) {
        brk_worker_mark_dead(b, w, rc == -EAGAIN ? "send queue full" : "send failed");
        queue_push(b, a, j, true);
        return;
    }
    w->works_sent++; /* the marker above named it by this count (adopt.c) */
    j->attempt++;
    j->state = JOB_RUNNING;
    j->worker = w;
    w->in_flight++;
    base_list_push(&w->jobs, &j->link);
}

void brk_jobs_pump_agent(brk_t *b, brk_agent_t *a) {
    brk_worker_t *w;
    while (!base_list_empty(&a->queue) && (w = brk_agent_pick(a)))
        dispatch(b, base_container_of(a->queue.next, brk_job_t, link), w);
}

void brk_jobs_pump_worker(brk_t *b, brk_worker_t *w) {
    while (brk_worker_has_credit(w)) {
        brk_job_t *best = NULL;
        for (uint32_t i = 0; i < w->n_agents; i++) {
            base_list_t *q = &w->agents[i]->queue;
            if (base_list_empty(q)) continue;
            brk_job_t *head = base_container_of(q->next, brk_job_t, link);
            if (!best || head->qseq < best->qseq) best = head;
        }
        if (!best) break;
        dispatch(b, best, w);
    }
}

int brk_job_accept(brk_t *b, brk_client_t *c, const brk_in_t *in, const proto_msg_t *m,
                   uint64_t idh, brk_agent_t *a, brk_inv_t *inv) {
    if (m->id.n > CKEY_MAX - sizeof c) return -ENOMEM;
    size_t need = sizeof c + m->id.n + m->agent.n + m->session.n + m->input.n;
    brk_job_t *j = job_alloc(b, sizeof *j + need);
    if (!j) return -ENOMEM;
    /* Its id and slot (reserved by brk_jobs_room, so this does not fail there) */
    if (brk_slots_add(&b->job_slots, &j->slot, &b->next_job_id, foreign_taken, b) != 0) {
        job_release(b, j, sizeof *j + need);
        return -ENOMEM;
    }
    j->job_id = j->slot.id;
    j->idh = idh;
    uint8_t *p = j->buf;
    j->ckey = p;
    j->ckey_len = sizeof c + m->id.n;
    memcpy(p, &c, sizeof c);
    brk_copy(p + sizeof c, m->id.p, m->id.n);
    j->id.p = p + sizeof c;
    j->id.n = m->id.n;
    if (brk_jobindex_add(b, j) != 0) {
        brk_slots_del(&b->job_slots, &j->slot);
        job_release(b, j, sizeof *j + need);
        return -ENOMEM;
    }
    p += j->ckey_len;
    brk_copy(p, m->agent.p, m->agent.n);
    j->agent_name.p = (const char *)p;
    j->agent_name.n = m->agent.n;
    p += m->agent.n;
    if (m->session.n) memcpy(p, m->session.p, m->session.n);
    j->session.p = (const char *)p;
    j->session.n = m->session.n;
    p += m->session.n;
    if (m->input.n) memcpy(p, m->input.p, m->input.n);
    j->input.p = p;
    j->input.n = m->input.n;
    j->qseq = b->next_qseq++;
    j->idempotent = m->idempotent;
    j->req = in->req;
    j->client = c;
    base_heap_node_init(&j->deadline_node);
    j->timeout_at = m->timeout_ms >= 0 ? brk_after(b->now, (uint64_t)m->timeout_ms) : -1;
    j->by_cid.key = j->ckey;
    j->by_cid.klen = j->ckey_len;
    base_list_init(&j->link);
    brk_map_put_h(&b->cid_map, &j->by_cid, cid_hash(c, idh));
    base_list_push(&c->jobs, &j->clink);
    c->in_flight++;
    b->n_jobs++;
    b->n_live++;
    if (j->timeout_at >= 0) heap_set(b, j, j->timeout_at);
    brk_mx_accept(b, j, a);
    if (base_log_on(BASE_LOG_DEBUG)) {
        char name[80];
        base_log(BASE_LOG_DEBUG, "query_accepted", "job=%llu agent=%s idempotent=%d "
                 "timeout_ms=%lld", (unsigned long long)j->job_id,
                 base_log_str(name, sizeof name, j->agent_name.p, j->agent_name.n),
                 j->idempotent, (long long)m->timeout_ms);
    }
    if (inv && brk_inv_bind(b, inv, j)) {
        j->state = JOB_WAITING; /* its session is busy: queued when the lock comes to it */
        b->n_waiting++;
        brk_client_pending(b, j, true);
        return 0;
    }
    queue_push(b, a, j, false);
    brk_jobs_pump_agent(b, a); /* may answer it at once (timeout_ms 0): j is not used after */
    return 0;
}

int brk_job_enqueue(brk_t *b, brk_job_t *j) {
    BRK_ASSERT(j->state == JOB_WAITING);
    brk_agent_t *a = brk_agent_find(b, j->agent_name);
    if (!a) return -ENOENT;
    b->n_waiting--;
    queue_push(b, a, j, false);
    /* Not dispatched here: this runs inside another job's answer, so the hosts are only
     * marked, and settle() offers them the work. */
    for (uint32_t i = 0; i < a->n_hosts; i++) brk_worker_want_pump(b, a->hosts[i]);
    return 0;
}

void brk_job_abort(brk_t *b, brk_job_t *j, const char *code, const char *message) {
    if (j->answered) return; /* already CANCELLING */
    brk_term_t t = term_error(code, message);
    job_answer(b, j, &t);
    if (j->state == JOB_QUEUED || j->state == JOB_WAITING) {
        job_free(b, j);
        return;
    }
    /* RUNNING: the worker must stop and give the credit back; until it does (or the grace
     * ends) the job stays, so that its events still reach the bus. */
    j->state = JOB_CANCELLING;
    heap_set(b, j, brk_after(b->now, b->cfg.drain_ms));
    if (proto_enc_cancel_job(&b->out, j->job_id) == 0)
        brk_worker_send(b, j->worker, b->out.p, b->out.n);
}

static void job_event(brk_t *b, brk_job_t *j, const proto_msg_t *m, size_t body_len) {
    if (body_len > b->cfg.max_msg) {
        base_log(BASE_LOG_WARN, "event_dropped", "job=%llu bytes=%zu why=too_large",
                 (unsigned long long)j->job_id, body_len);
        return;
    }
    brk_job_send_event(b, j, m->event, true);
    brk_inv_on_event(b, j, m->event); /* the root's client, the session */
}

void brk_job_send_event(brk_t *b, brk_job_t *j, proto_raw_t event, bool publish) {
    brk_qmsg_t q = job_qmsg(j, PROTO_EVENT);
    q.seq = ++j->seq;
    q.payload = event;
    brk_client_t *c = j->client;
    /* A REQ-style client takes exactly one reply: it gets the terminal message only. */
    if (!c || j->req || !brk_client_reachable(b, c)) {
        if (publish) brk_bus_query(b, &q);
        return;
    }
    brk_qenc_t e; /* encoded once, for the client and the bus */
    if (brk_query_enc(b, &q, &e) != 0) return;
    e.bus = e.bus && publish;
    brk_send(b, c->sock, c->key + 1, c->keylen - 1, false, b->out.p, e.n);
    brk_query_publish(b, &e);
}

void brk_job_from_worker(brk_t *b, brk_worker_t *w, const proto_msg_t *m, size_t body_len) {
    brk_job_t *j = job_find(b, m->job);
    if (!j && b->adopt && brk_adopt_child_answer(b, w, m)) return; /* parked (adopt.c) */
    if (!j || j->worker != w) {
        base_log(BASE_LOG_DEBUG, "stale_job_message", "job=%llu type=%s",
                 (unsigned long long)m->job, proto_type_name(m->type));
        return;
    }
    if (m->type == PROTO_EVENT) {
        job_event(b, j, m, body_len);
        return;
    }
    if (j->answered) { /* CANCELLING: the worker stopped; its answer was already given */
        job_free(b, j);
        return;
    }
    brk_term_t t = {.ok = m->type == PROTO_RESULT, .output = m->output, .code = m->code,
                    .message = m->message};
    /* A worker's (a plugin's) code and message go to clients whose decoders may refuse a
     * str that is not UTF-8: such a one is passed on cleaned, and cut. */
    char code[64], message[1024];
    if (!t.ok && !base_utf8_valid(t.code.p, t.code.n)) {
        t.code.n = base_utf8_clean(code, sizeof code, t.code.p, t.code.n);
        t.code.p = code;
    }
    if (!t.ok && !base_utf8_valid(t.message.p, t.message.n)) {
        t.message.n = base_utf8_clean(message, sizeof message, t.message.p, t.message.n);
        t.message.p = message;
    }
    if (body_len > b->cfg.max_msg)
        t = term_error("too_large", "the agent's answer exceeds the broker's max-msg");
    job_finish(b, j, t);
}

/* Whether a has a host that is not being removed. */
static bool has_live_host(const brk_agent_t *a) {
    for (uint32_t i = 0; i < a->n_hosts; i++)
        if (!a->hosts[i]->dead) return true;
    return false;
}

void brk_job_worker_lost(brk_t *b, brk_job_t *j) {
    if (j->answered) {
        job_free(b, j);
        return;
    }
    base_list_unlink(&j->link);
    j->worker->in_flight--;
    j->worker = NULL;
    brk_agent_t *a = brk_agent_find(b, j->agent_name);
    if (j->lost < UINT32_MAX) j->lost++;
    if (j->idempotent && b->cfg.poison_after && j->lost >= b->cfg.poison_after) {
        /* The query itself is the likeliest cause (a hang the watchdog ended, a crash):
         * retrying it would take down every worker in turn. */
        char msg[128];
        snprintf(msg, sizeof msg, "the query's worker was lost %u times (poison-after): it "
                 "is not retried", j->lost);
        base_log(BASE_LOG_WARN, "query_poisoned", "job=%llu lost=%u",
                 (unsigned long long)j->job_id, j->lost);
        job_finish(b, j, term_error("poisoned", msg));
        return;
    }
    if (j->idempotent && j->attempt <= b->cfg.max_retries && a && has_live_host(a)) {
        brk_mx_retry(b);
        base_log(BASE_LOG_INFO, "query_retry", "job=%llu attempt=%llu",
                 (unsigned long long)j->job_id, (unsigned long long)j->attempt + 1);
        queue_push(b, a, j, true);
        brk_jobs_pump_agent(b, a);
        return;
    }
    job_finish(b, j, term_error("worker_lost", "the worker running the query was lost"));
}

void brk_job_unhosted(brk_t *b, brk_job_t *j) {
    char msg[BRK_MAX_NAME + 96], name[BRK_MAX_NAME + 8];
    if (j->attempt > 0) {
        job_finish(b, j, term_error("worker_lost", "the worker running the query was lost "
                                                   "and no other worker hosts its agent"));
        return;
    }
    snprintf(msg, sizeof msg, "no worker hosts agent %s",
             base_log_str(name, sizeof name, j->agent_name.p, j->agent_name.n));
    job_finish(b, j, term_error("unknown_agent", msg));
}

int64_t brk_jobs_tick(brk_t *b) {
    base_heap_node_t *top;
    while ((top = base_heap_top(&b->deadlines)) && top->key <= b->now) {
        brk_job_t *j = HEAP_JOB(top);
        heap_remove(b, j);
        if (!j->answered) {
            brk_job_abort(b, j, "timeout", "timeout_ms passed before the agent answered");
            continue;
        }
        base_log(BASE_LOG_WARN, "cancel_grace_over", "job=%llu", (unsigned long long)j->job_id);
        job_free(b, j); /* the worker never confirmed: take the credit back anyway */
    }
    return (top = base_heap_top(&b->deadlines)) ? top->key : -1;
}

void brk_jobs_abort_all(brk_t *b, const char *code, const char *message) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->client_map, NULL)))
        brk_client_drop(b, base_container_of(n, brk_client_t, node), code, message);
}

/* ---- adoption (adopt.c): a job a worker kept running across a takeover ---- */

/* The resend of r that came first (queued: the agent had no free host, or the grace held
 * it) becomes the reported job: re-keyed to the worker's job id, bound to w. */
static int adopt_into(brk_t *b, brk_job_t *j, const brk_adopted_t *r) {
    if (j->state != JOB_QUEUED) return -EEXIST; /* running elsewhere: the copy on w goes */
    queue_remove(b, j);
    id_unlink(b, j);
    id_link_foreign(b, j, r->job_id);
    j->req = r->req;
    return 0;
}

int brk_job_adopt(brk_t *b, brk_client_t *c, brk_worker_t *w, brk_agent_t *a,
                  const brk_adopted_t *r, brk_job_t **out) {
    if (job_find(b, r->job_id)) return -EEXIST;
    uint64_t idh = brk_map_hash(r->id.p, r->id.n);
    brk_job_t *j = brk_job_find_cid(b, c, r->id, idh);
    bool resent = j != NULL;
    if (j) {
        int rc = adopt_into(b, j, r);
        if (rc) return rc;
    } else {
        if (!brk_jobs_room(b)) return -ENOSPC;
        if (r->id.n > CKEY_MAX - sizeof c) return -ENOMEM;
        size_t need = sizeof c + r->id.n + r->agent_name.n + r->session.n + r->input.n;
        if (!(j = job_alloc(b, sizeof *j + need))) return -ENOMEM;
        uint8_t *p = j->buf;
        j->ckey = p;
        j->ckey_len = sizeof c + r->id.n;
        memcpy(p, &c, sizeof c);
        memcpy(p + sizeof c, r->id.p, r->id.n);
        j->id = (proto_raw_t){p + sizeof c, r->id.n};
        j->idh = idh;
        if (brk_jobindex_add(b, j) != 0) {
            job_release(b, j, sizeof *j + need);
            return -ENOMEM;
        }
        p += j->ckey_len;
        if (r->agent_name.n) memcpy(p, r->agent_name.p, r->agent_name.n);
        j->agent_name = (proto_str_t){(const char *)p, r->agent_name.n};
        p += r->agent_name.n;
        if (r->session.n) memcpy(p, r->session.p, r->session.n);
        j->session = (proto_str_t){(const char *)p, r->session.n};
        p += r->session.n;
        if (r->input.n) memcpy(p, r->input.p, r->input.n);
        j->input = (proto_raw_t){p, r->input.n};
        id_link_foreign(b, j, r->job_id);
        j->qseq = b->next_qseq++;
        j->idempotent = r->idempotent;
        j->req = r->req;
        j->client = c;
        base_heap_node_init(&j->deadline_node);
        j->timeout_at = r->timeout_ms >= 0 ? brk_after(b->now, (uint64_t)r->timeout_ms) : -1;
        j->by_cid = (brk_node_t){.key = j->ckey, .klen = j->ckey_len};
        base_list_init(&j->link);
        brk_map_put_h(&b->cid_map, &j->by_cid, cid_hash(c, idh));
        base_list_push(&c->jobs, &j->clink);
        brk_client_adopted(c);
        b->n_jobs++;
        b->n_live++;
        if (j->timeout_at >= 0) heap_set(b, j, j->timeout_at);
        brk_mx_accept(b, j, a);
    }
    /* Without its input a retry could not be sent: one attempt past --max-retries. */
    j->attempt = r->input.n ? 1 : b->cfg.max_retries + 1;
    j->state = JOB_RUNNING;
    j->worker = w;
    w->in_flight++;
    base_list_push(&w->jobs, &j->link);
    /* The client resends what it has no answer for (PROTOCOL.md, "Broker pairs"): the answer
     * waits for that resend (remembered) unless it came first, so it is sent once. */
    j->quiet = !(resent || r->resent);
    *out = j;
    return 0;
}
