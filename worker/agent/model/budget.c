/* agent/budget.c: the worker's client of the broker's model budget (budget.h). Waiting
 * acquires are on a list with their request numbers; a grant or deny from the broker wakes
 * the one it names. Permits held are remembered with the connection (epoch) they came on and
 * the task that took them, so release goes back on that connection only: after a reconnect
 * the broker has already taken them back. A cancelled request is remembered until the broker
 * answers it, so that a grant crossing the cancel is given back. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "budget.h"

typedef struct waiter {
    struct waiter *next, *prev;
    uint64_t req;
    act_event_t done;
    int rc; /* the answer, once done is set */
} waiter_t;

/* A permit held, or a cancelled request whose answer has not come yet. */
typedef struct rec {
    struct rec *next;
    act_task_t *task; /* held: the task that took it */
    uint64_t req;     /* cancelled: its number */
    uint64_t epoch;   /* the connection it belongs to */
    char backend[];
} rec_t;

struct agt_budget {
    agt_model_budget_t hook;
    agt_budget_send_fn send;
    void *ctx;
    bool active;
    uint64_t epoch, next_req;
    uint64_t concurrency, burst;
    double rps;
    waiter_t *waiters; /* a ring: waiters->prev is the newest */
    size_t n_waiting, n_held, n_gone;
    rec_t *held, *gone;
    proto_buf_t enc;
};

static int acquire(void *ctx, const char *backend, int64_t deadline);
static void release(void *ctx, const char *backend, int64_t tokens);

int agt_budget_new(agt_budget_t **out, agt_budget_send_fn send, void *ctx) {
    if (!out || !send) return ACT_EINVAL;
    agt_budget_t *b = calloc(1, sizeof *b);
    if (!b) return ACT_ENOMEM;
    b->hook = (agt_model_budget_t){acquire, release, b};
    b->send = send;
    b->ctx = ctx;
    b->epoch = 1;
    proto_buf_init(&b->enc);
    *out = b;
    return 0;
}

static void recs_free(rec_t **list) {
    while (*list) {
        rec_t *r = *list;
        *list = r->next;
        free(r);
    }
}

void agt_budget_destroy(agt_budget_t **pb) {
    if (!pb || !*pb) return;
    agt_budget_t *b = *pb;
    assert(b->n_waiting == 0); /* agt_budget_reset first, and let them run */
    recs_free(&b->held);
    recs_free(&b->gone);
    proto_buf_free(&b->enc);
    free(b);
    *pb = NULL;
}

const agt_model_budget_t *agt_budget_hook(agt_budget_t *b) { return b ? &b->hook : NULL; }
bool agt_budget_active(const agt_budget_t *b) { return b && b->active; }
size_t agt_budget_waiting(const agt_budget_t *b) { return b ? b->n_waiting : 0; }
size_t agt_budget_held(const agt_budget_t *b) { return b ? b->n_held : 0; }

static void out(agt_budget_t *b, int rc) {
    if (rc == 0 && !b->enc.failed) b->send(b->ctx, &b->enc);
}

static rec_t *rec_new(const char *backend, uint64_t epoch) {
    size_t n = strlen(backend);
    rec_t *r = calloc(1, sizeof *r + n + 1);
    if (!r) return NULL;
    memcpy(r->backend, backend, n + 1);
    r->epoch = epoch;
    return r;
}

static void waiter_link(agt_budget_t *b, waiter_t *w) {
    if (!b->waiters) {
        w->next = w->prev = w;
        b->waiters = w;
    } else {
        w->prev = b->waiters->prev;
        w->next = b->waiters;
        w->prev->next = w;
        b->waiters->prev = w;
    }
    b->n_waiting++;
}

static void waiter_unlink(agt_budget_t *b, waiter_t *w) {
    if (w->next == w) {
        b->waiters = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (b->waiters == w) b->waiters = w->next;
    }
    w->next = w->prev = NULL;
    b->n_waiting--;
}

static waiter_t *waiter_find(agt_budget_t *b, uint64_t req) {
    waiter_t *w = b->waiters;
    for (size_t i = 0; w && i < b->n_waiting; i++, w = w->next)
        if (w->req == req) return w;
    return NULL;
}

/* ---- acquire and release (the hook) ---- */

/* Forgets a request that stopped waiting before its answer: the broker's answer still comes
 * (a deny, or a grant to give back), so it is kept until then. */
static void forget(agt_budget_t *b, uint64_t req, const char *backend) {
    if (proto_enc_budget_cancel(&b->enc, req) == 0) out(b, 0);
    rec_t *r = b->n_gone < AGT_BUDGET_MAX_WAITERS ? rec_new(backend, b->epoch) : NULL;
    if (!r) {
        /* A grant that crosses now holds a permit until the connection ends. */
        act_log(ACT_LOG_WARN, "budget_cancel_untracked", "req=%llu backend=%s",
                (unsigned long long)req, backend);
        return;
    }
    r->req = req;
    r->next = b->gone;
    b->gone = r;
    b->n_gone++;
}

static int wait_answer(agt_budget_t *b, waiter_t *w, const char *backend, int64_t deadline) {
    int rc = act_event_wait(&w->done, deadline);
    if (rc == 0) return w->rc;
    if (!act_event_is_set(&w->done)) { /* timed out or cancelled while waiting */
        waiter_unlink(b, w);
        forget(b, w->req, backend);
        return rc;
    }
    if (w->rc == 0 && proto_enc_budget_release(&b->enc, proto_str_of(backend), 0) == 0)
        out(b, 0); /* granted as we gave up: give it back */
    return rc;
}

static int acquire(void *ctx, const char *backend, int64_t deadline) {
    agt_budget_t *b = ctx;
    if (!b->active) return 0; /* no budget announced: nothing to ask */
    size_t n = backend ? strlen(backend) : 0;
    if (n == 0 || n > PROTO_MAX_NAME) return ACT_EINVAL;
    if (b->n_waiting >= AGT_BUDGET_MAX_WAITERS) return AGT_EMODEL_RATE_LIMITED;
    rec_t *hold = rec_new(backend, b->epoch);
    if (!hold) return ACT_ENOMEM;
    waiter_t w = {.req = ++b->next_req};
    act_event_init(&w.done);
    if (proto_enc_budget_acquire(&b->enc, w.req, proto_str_of(backend)) != 0) {
        free(hold);
        return ACT_ENOMEM;
    }
    waiter_link(b, &w); /* first: a send that answers at once must find it */
    out(b, 0);
    int rc = wait_answer(b, &w, backend, deadline);
    act_event_close(&w.done);
    if (rc) {
        free(hold);
        return rc;
    }
    hold->task = act_current();
    hold->next = b->held;
    b->held = hold;
    b->n_held++;
    return 0;
}

/* The permit this task took on backend, or NULL. Acquire and release come in pairs on one
 * task (the guard's); matching on the task also means that a task which acquired before the
 * broker announced a budget (it holds no permit) cannot give back another task's. */
static rec_t *hold_take(agt_budget_t *b, const char *backend) {
    act_task_t *me = act_current();
    for (rec_t **pr = &b->held; *pr; pr = &(*pr)->next) {
        if ((*pr)->task != me || strcmp((*pr)->backend, backend) != 0) continue;
        rec_t *r = *pr;
        *pr = r->next;
        b->n_held--;
        return r;
    }
    return NULL;
}

static void release(void *ctx, const char *backend, int64_t tokens) {
    agt_budget_t *b = ctx;
    rec_t *r = backend ? hold_take(b, backend) : NULL;
    if (!r) return; /* taken without a budget: nothing to give back */
    if (r->epoch == b->epoch && b->active &&
        proto_enc_budget_release(&b->enc, proto_str_of(backend),
                                 tokens > 0 ? (uint64_t)tokens : 0) == 0)
        out(b, 0);
    free(r);
}

/* ---- the broker's messages ---- */

static int deny_code(proto_str_t code) {
    if (proto_str_eq(code, "overloaded")) return AGT_EMODEL_RATE_LIMITED;
    if (proto_str_eq(code, "cancelled")) return ACT_ECANCELED;
    return ACT_EIO;
}

/* A grant or deny for a request that stopped waiting. */
static void answer_gone(agt_budget_t *b, const proto_msg_t *m) {
    for (rec_t **pr = &b->gone; *pr; pr = &(*pr)->next) {
        rec_t *r = *pr;
        if (r->req != m->req) continue;
        *pr = r->next;
        b->n_gone--;
        if (m->type == PROTO_BUDGET_GRANT && r->epoch == b->epoch &&
            proto_enc_budget_release(&b->enc, proto_str_of(r->backend), 0) == 0)
            out(b, 0);
        free(r);
        return;
    }
    act_log(ACT_LOG_WARN, "budget_unknown_req", "type=%s req=%llu", proto_type_name(m->type),
            (unsigned long long)m->req);
}

static void on_announce(agt_budget_t *b, const proto_msg_t *m) {
    b->concurrency = m->model_concurrency;
    b->rps = m->model_rps;
    b->burst = m->model_burst;
    b->active = m->model_concurrency > 0 || m->model_rps > 0 || m->model_tpm > 0;
    act_log(ACT_LOG_INFO, "model_budget", "concurrency=%llu rps=%g burst=%llu tpm=%llu",
            (unsigned long long)b->concurrency, b->rps, (unsigned long long)b->burst,
            (unsigned long long)m->model_tpm);
}

int agt_budget_on_message(agt_budget_t *b, const proto_msg_t *m) {
    if (m->type == PROTO_BUDGET) {
        on_announce(b, m);
        return 0;
    }
    if (m->type != PROTO_BUDGET_GRANT && m->type != PROTO_BUDGET_DENY) return ACT_EINVAL;
    waiter_t *w = waiter_find(b, m->req);
    if (!w) {
        answer_gone(b, m);
        return 0;
    }
    waiter_unlink(b, w);
    w->rc = m->type == PROTO_BUDGET_GRANT ? 0 : deny_code(m->code);
    if (w->rc)
        act_log(ACT_LOG_WARN, "model_budget_denied", "req=%llu code=%.*s message=\"%.*s\"",
                (unsigned long long)m->req, (int)m->code.n, m->code.p,
                (int)(m->message.n > 200 ? 200 : m->message.n), m->message.p);
    act_event_set(&w->done);
    return 0;
}

void agt_budget_reset(agt_budget_t *b) {
    if (!b) return;
    while (b->waiters) {
        waiter_t *w = b->waiters;
        waiter_unlink(b, w);
        w->rc = ACT_ECLOSED;
        act_event_set(&w->done);
    }
    recs_free(&b->gone);
    b->n_gone = 0;
    b->epoch++; /* permits held now were the old connection's */
    b->active = false;
}
