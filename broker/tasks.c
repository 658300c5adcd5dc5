/* broker/tasks.c: the `tasks` request (proto/PROTOCOL.md, "Observing workers"). A client
 * names a worker; the broker forwards `tasks` with a reference of its own and keeps the
 * request in a bounded table (--max-tasks-requests) until the worker's `tasks_reply`, the
 * worker's loss, or its liveness time passes. Each request ends in exactly one reply. */
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RID_MAX 1024 /* bytes of a request id kept (the codec allows 256) */

typedef struct pending {
    bool used;
    uint64_t ref;                  /* the `job` the worker echoes */
    brk_worker_t *worker;
    int64_t deadline;
    brk_sock_t sock;               /* the requester */
    uint8_t peer[BRK_MAX_IDENTITY];
    size_t peerlen;
    bool req;
    uint8_t rid[RID_MAX];          /* its request id, verbatim msgpack */
    size_t rid_n;
} pending_t;

struct brk_tasks {
    pending_t *p;
    size_t max;
    uint64_t next_ref;
};

static struct brk_tasks *tasks_get(brk_t *b) {
    if (b->tasks) return b->tasks;
    struct brk_tasks *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->max = b->cfg.max_tasks_requests;
    t->next_ref = 1;
    if (!(t->p = calloc(t->max, sizeof *t->p))) {
        free(t);
        return NULL;
    }
    b->tasks = t;
    return t;
}

void brk_tasks_close(brk_t *b) {
    if (!b->tasks) return;
    free(b->tasks->p);
    free(b->tasks);
    b->tasks = NULL;
}

static void reply(brk_t *b, pending_t *p) {
    int rc = brk_send(b, p->sock, p->peer, p->peerlen, p->req, b->out.p, b->out.n);
    if (rc < 0) base_log(BASE_LOG_DEBUG, "send_failed", "what=tasks errno=%d", -rc);
    p->used = false;
}

static void finish_error(brk_t *b, pending_t *p, const char *code, const char *message) {
    brk_mx_error(b, code);
    if (proto_enc_error(&b->out, (proto_raw_t){p->rid, p->rid_n}, code, message) == 0)
        reply(b, p);
    p->used = false;
}

static brk_worker_t *worker_by_name(brk_t *b, proto_str_t name) {
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if (!w->dead && w->name_len == name.n && memcmp(w->name, name.p, name.n) == 0)
            return w;
    }
    return NULL;
}

static pending_t *slot(struct brk_tasks *t) {
    for (size_t i = 0; i < t->max; i++)
        if (!t->p[i].used) return &t->p[i];
    return NULL;
}

void brk_tasks_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    char name[80];
    if (m->worker.n == 0) {
        brk_reply_error(b, in, m->id, "bad_request", "field 'worker' is missing in tasks");
        return;
    }
    brk_worker_t *w = worker_by_name(b, m->worker);
    if (!w) {
        brk_reply_error(b, in, m->id, "not_found", "no worker named %s",
                        base_log_str(name, sizeof name, m->worker.p, m->worker.n));
        return;
    }
    struct brk_tasks *t = tasks_get(b);
    pending_t *p = t ? slot(t) : NULL;
    if (!p || m->id.n > RID_MAX) {
        brk_reply_error(b, in, m->id, "overloaded", "too many tasks requests in flight "
                        "(max-tasks-requests %llu)",
                        (unsigned long long)b->cfg.max_tasks_requests);
        return;
    }
    memset(p, 0, sizeof *p);
    p->used = true;
    p->ref = t->next_ref++;
    p->worker = w;
    p->deadline = brk_after(b->now, w->hb_ms * b->cfg.liveness);
    p->sock = in->sock;
    memcpy(p->peer, in->id, in->idlen);
    p->peerlen = in->idlen;
    p->req = in->req;
    memcpy(p->rid, m->id.p, m->id.n);
    p->rid_n = m->id.n;
    if (proto_enc_tasks_job(&b->out, p->ref) != 0 ||
        brk_worker_send(b, w, b->out.p, b->out.n) != 0)
        finish_error(b, p, "worker_lost", "the worker could not be reached");
}

void brk_tasks_reply(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    struct brk_tasks *t = b->tasks;
    for (size_t i = 0; t && i < t->max; i++) {
        pending_t *p = &t->p[i];
        if (!p->used || p->ref != m->job || p->worker != w) continue;
        if (m->body.n > b->cfg.max_msg) {
            finish_error(b, p, "too_large", "the worker's task list exceeds max-msg");
            return;
        }
        if (proto_enc_result(&b->out, (proto_raw_t){p->rid, p->rid_n}, m->output) == 0)
            reply(b, p);
        else
            finish_error(b, p, "internal", "out of memory");
        return;
    }
    base_log(BASE_LOG_DEBUG, "stale_tasks_reply", "ref=%llu", (unsigned long long)m->job);
}

void brk_tasks_worker_gone(brk_t *b, brk_worker_t *w) {
    struct brk_tasks *t = b->tasks;
    for (size_t i = 0; t && i < t->max; i++)
        if (t->p[i].used && t->p[i].worker == w)
            finish_error(b, &t->p[i], "worker_lost", "the worker was lost before it answered");
}

void brk_tasks_abort_all(brk_t *b, const char *code, const char *message) {
    struct brk_tasks *t = b->tasks;
    for (size_t i = 0; t && i < t->max; i++)
        if (t->p[i].used) finish_error(b, &t->p[i], code, message);
}

int64_t brk_tasks_tick(brk_t *b) {
    struct brk_tasks *t = b->tasks;
    int64_t next = -1;
    for (size_t i = 0; t && i < t->max; i++) {
        pending_t *p = &t->p[i];
        if (!p->used) continue;
        if (p->deadline <= b->now)
            finish_error(b, p, "timeout", "the worker did not answer within its liveness");
        else if (next < 0 || p->deadline < next)
            next = p->deadline;
    }
    return next;
}
