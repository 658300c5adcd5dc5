/* broker/model_budget.c: the cross-worker model budget. Per backend name: permits in use against
 * --model-concurrency, a GCRA token bucket against --model-rps with --model-burst, and a
 * FIFO of waiting acquires (bounded by --model-max-waiters). Each worker's share (its
 * waiters and the permits it holds) hangs off brk_worker.budget, so a lost worker gives
 * everything back. Backends are created on first use and freed when idle. */
#include "broker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bk {
    brk_node_t node;    /* key: name */
    base_list_t link;    /* in budget->all */
    base_list_t queue;   /* waiters, oldest first */
    base_list_t timed;   /* in budget->timed while something waits for the clock */
    int64_t wake;       /* when (timed) */
    uint64_t in_use, n_waiting;
    double tat;         /* GCRA: the theoretical arrival time of the next grant, ms */
    double tokens;      /* --model-tpm: tokens left in the minute's bucket (< 0: in debt) */
    int64_t tokens_at;  /* when tokens was last refilled, ms */
    size_t len;
    char name[];
} bk_t;

typedef struct waiter {
    brk_node_t node;    /* key: the worker's address + req */
    base_list_t link;    /* in its backend's queue */
    base_list_t wlink;   /* in its worker's share */
    bk_t *bk;
    brk_worker_t *w;
    uint64_t req;
    uint8_t key[sizeof(void *) + sizeof(uint64_t)];
} waiter_t;

typedef struct hold {
    bk_t *bk;
    uint64_t n;         /* permits this worker holds on bk */
} hold_t;

struct brk_budget_peer {
    base_list_t waiters;
    hold_t *holds;
    size_t n_holds, cap_holds;
};

typedef struct brk_budget {
    brk_map_t backends, waiters;
    base_list_t all, timed;
    uint64_t n_backends;
    bool on;
    double step, tolerance; /* ms between grants, and the burst's allowance (0: no rate) */
    double tpm;             /* tokens per minute (0: no token limit) */
} brk_budget_t;

static void waiter_key(uint8_t *key, const brk_worker_t *w, uint64_t req) {
    memcpy(key, &w, sizeof(void *));
    memcpy(key + sizeof(void *), &req, sizeof req);
}

int brk_budget_open(brk_t *b) {
    brk_budget_t *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    if (brk_map_init(&g->backends) || brk_map_init(&g->waiters)) {
        brk_map_close(&g->backends);
        free(g);
        return -ENOMEM;
    }
    base_list_init(&g->all);
    base_list_init(&g->timed);
    const brk_config_t *c = &b->cfg;
    g->on = c->model_concurrency > 0 || c->model_rps > 0 || c->model_tpm > 0;
    g->tpm = (double)c->model_tpm;
    if (c->model_rps > 0) {
        g->step = 1000.0 / c->model_rps;
        g->tolerance = (double)(c->model_burst ? c->model_burst - 1 : 0) * g->step;
    }
    b->budget = g;
    return 0;
}

bool brk_budget_on(const brk_t *b) { return b->budget && b->budget->on; }

static void waiter_free(brk_budget_t *g, waiter_t *x) {
    base_list_unlink(&x->link);
    base_list_unlink(&x->wlink);
    brk_map_del(&g->waiters, &x->node);
    x->bk->n_waiting--;
    free(x);
}

static void bk_free(brk_budget_t *g, bk_t *k) {
    while (!base_list_empty(&k->queue))
        waiter_free(g, base_container_of(k->queue.next, waiter_t, link));
    base_list_unlink(&k->link);
    base_list_unlink(&k->timed);
    brk_map_del(&g->backends, &k->node);
    g->n_backends--;
    free(k);
}

static void peer_free(brk_worker_t *w) {
    if (!w->budget) return;
    free(w->budget->holds);
    free(w->budget);
    w->budget = NULL;
}

void brk_budget_close(brk_t *b) {
    brk_budget_t *g = b->budget;
    if (!g) return;
    while (!base_list_empty(&g->all)) bk_free(g, base_container_of(g->all.next, bk_t, link));
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next)
        peer_free(base_container_of(l, brk_worker_t, link));
    brk_map_close(&g->backends);
    brk_map_close(&g->waiters);
    free(g);
    b->budget = NULL;
}

void brk_budget_worker_ready(brk_t *b, brk_worker_t *w) {
    if (!brk_budget_on(b)) return;
    const brk_config_t *c = &b->cfg;
    if (proto_enc_budget(&b->out, c->model_concurrency, c->model_rps, c->model_burst,
                         c->model_tpm) == 0)
        brk_worker_send(b, w, b->out.p, b->out.n);
}

static bk_t *bk_find(brk_budget_t *g, proto_str_t name) {
    brk_node_t *n = brk_map_get(&g->backends, name.p, name.n);
    return n ? base_container_of(n, bk_t, node) : NULL;
}

static bk_t *bk_new(brk_budget_t *g, proto_str_t name) {
    bk_t *k = calloc(1, sizeof *k + name.n + 1);
    if (!k) return NULL;
    memcpy(k->name, name.p, name.n);
    k->len = name.n;
    k->node.key = k->name;
    k->node.klen = k->len;
    base_list_init(&k->queue);
    base_list_init(&k->timed);
    k->tokens = g->tpm; /* a new backend starts with a full minute */
    base_list_push(&g->all, &k->link);
    brk_map_put(&g->backends, &k->node);
    g->n_backends++;
    return k;
}

/* ---- granting ---- */

/* GCRA: a grant may go now when the bucket allows; else *when says when it will. */
static bool rate_allows(brk_budget_t *g, bk_t *k, int64_t now, int64_t *when) {
    if (g->step <= 0) return true;
    double t = (double)now, tat = k->tat > t ? k->tat : t;
    double at = tat - g->tolerance;
    if (at <= t) return true;
    *when = (int64_t)ceil(at);
    return false;
}

/* --model-tpm: a bucket of one minute's tokens, refilled continuously. Tokens are known only
 * when a request ends (budget.release's tokens), so they are charged then and may put the
 * bucket in debt; grants wait while it is empty or in debt. */
static void refill_tokens(brk_budget_t *g, bk_t *k, int64_t now) {
    if (g->tpm <= 0) return;
    if (now > k->tokens_at) k->tokens += (double)(now - k->tokens_at) * g->tpm / 60000.0;
    if (k->tokens > g->tpm) k->tokens = g->tpm;
    k->tokens_at = now;
}

static bool tokens_allow(brk_budget_t *g, bk_t *k, int64_t now, int64_t *when) {
    if (g->tpm <= 0) return true;
    refill_tokens(g, k, now);
    if (k->tokens > 0) return true;
    int64_t w = now + (int64_t)ceil((1.0 - k->tokens) * 60000.0 / g->tpm);
    if (*when < 0 || w > *when) *when = w;
    return false;
}

static void take_rate(brk_budget_t *g, bk_t *k, int64_t now) {
    if (g->step <= 0) return;
    double t = (double)now;
    k->tat = (k->tat > t ? k->tat : t) + g->step;
}

static struct brk_budget_peer *peer_of(brk_worker_t *w) {
    if (!w->budget && (w->budget = calloc(1, sizeof *w->budget)) != NULL)
        base_list_init(&w->budget->waiters);
    return w->budget;
}

static hold_t *hold_find(struct brk_budget_peer *p, bk_t *k) {
    for (size_t i = 0; p && i < p->n_holds; i++)
        if (p->holds[i].bk == k) return &p->holds[i];
    return NULL;
}

/* Counts one more permit of k held by w. Returns: 0. Errors: -ENOMEM. */
static int hold_add(brk_worker_t *w, bk_t *k) {
    struct brk_budget_peer *p = peer_of(w);
    if (!p) return -ENOMEM;
    hold_t *h = hold_find(p, k);
    if (!h) {
        if (p->n_holds == p->cap_holds) {
            size_t cap = p->cap_holds ? 2 * p->cap_holds : 4;
            hold_t *nh = realloc(p->holds, cap * sizeof *nh);
            if (!nh) return -ENOMEM;
            p->holds = nh;
            p->cap_holds = cap;
        }
        h = &p->holds[p->n_holds++];
        *h = (hold_t){k, 0};
    }
    h->n++;
    k->in_use++;
    return 0;
}

/* Gives one permit of h back; h goes with its last. */
static void hold_put(struct brk_budget_peer *p, hold_t *h) {
    h->bk->in_use--;
    if (--h->n == 0) *h = p->holds[--p->n_holds];
}

static void hold_drop(struct brk_budget_peer *p, hold_t *h) {
    h->bk->in_use -= h->n;
    *h = p->holds[--p->n_holds];
}

static void send_deny(brk_t *b, brk_worker_t *w, uint64_t req, const char *code,
                      const char *message) {
    char clean[192]; /* a message may quote a backend name, cut at 64 bytes */
    base_utf8_clean(clean, sizeof clean, message, strlen(message));
    if (proto_enc_budget_deny(&b->out, req, code, clean) == 0)
        brk_worker_send(b, w, b->out.p, b->out.n);
}

/* Grants the head waiter of k. Returns: false when it could not be told (and holds nothing). */
static bool grant_head(brk_t *b, bk_t *k) {
    brk_budget_t *g = b->budget;
    waiter_t *x = base_container_of(k->queue.next, waiter_t, link);
    brk_worker_t *w = x->w;
    uint64_t req = x->req;
    waiter_free(g, x);
    if (w->dead) return false; /* reaped soon: nobody to tell */
    if (hold_add(w, k) != 0) {
        send_deny(b, w, req, "internal", "out of memory");
        return false;
    }
    take_rate(g, k, b->now);
    if (proto_enc_budget_grant(&b->out, req) != 0 || brk_worker_send(b, w, b->out.p, b->out.n)) {
        hold_put(w->budget, hold_find(w->budget, k)); /* it never learns of it: take it back */
        return false;
    }
    return true;
}

/* Grants k's waiters in order while the limits allow; then frees k when idle, or puts it on
 * the timed list when the clock must move first. Returns: false when k was freed. */
static bool settle_bk(brk_t *b, bk_t *k) {
    brk_budget_t *g = b->budget;
    uint64_t cap = b->cfg.model_concurrency;
    int64_t when = -1;
    base_list_unlink(&k->timed);
    while (!base_list_empty(&k->queue)) {
        if (cap && k->in_use >= cap) break;
        if (!rate_allows(g, k, b->now, &when)) break;
        if (!tokens_allow(g, k, b->now, &when)) break;
        grant_head(b, k);
        when = -1;
    }
    bool idle = base_list_empty(&k->queue) && k->in_use == 0;
    refill_tokens(g, k, b->now);
    bool full = g->tpm <= 0 || k->tokens >= g->tpm;
    if (idle && k->tat <= (double)b->now && full) {
        bk_free(g, k);
        return false;
    }
    if (idle && k->tat > (double)b->now) when = (int64_t)ceil(k->tat); /* keep its buckets */
    if (idle && !full) { /* until the token bucket is full again (a debt is remembered) */
        int64_t w = b->now + (int64_t)ceil((g->tpm - k->tokens) * 60000.0 / g->tpm);
        if (when < 0 || w > when) when = w;
    }
    if (when >= 0) {
        k->wake = when;
        base_list_push(&g->timed, &k->timed);
    }
    return true;
}

int64_t brk_budget_tick(brk_t *b) {
    brk_budget_t *g = b->budget;
    if (!g) return -1;
    int64_t next = -1;
    for (base_list_t *l = g->timed.next, *nx; l != &g->timed; l = nx) {
        nx = l->next;
        bk_t *k = base_container_of(l, bk_t, timed);
        if (k->wake <= b->now) {
            settle_bk(b, k);
            nx = g->timed.next; /* settling may relink or free: start over (bounded: */
            continue;           /* a settled k is due in the future or gone) */
        }
        if (next < 0 || k->wake < next) next = k->wake;
    }
    return next;
}

/* ---- the worker's requests ---- */

/* Why an acquire cannot wait on k (NULL: a new backend), with the deny's code; NULL if it can. */
static const char *acquire_refused(brk_t *b, brk_worker_t *w, const proto_msg_t *m, bk_t *k,
                                   char *msg, size_t cap) {
    brk_budget_t *g = b->budget;
    uint8_t key[sizeof(void *) + sizeof(uint64_t)];
    if (!base_utf8_valid(m->backend.p, m->backend.n)) {
        snprintf(msg, cap, "field 'backend' is not valid UTF-8");
        return "bad_request";
    }
    waiter_key(key, w, m->req);
    if (brk_map_get(&g->waiters, key, sizeof key)) {
        snprintf(msg, cap, "req %llu is already waiting", (unsigned long long)m->req);
        return "bad_request";
    }
    if (!k && g->n_backends >= b->cfg.model_max_backends) {
        snprintf(msg, cap, "too many model backends (model-max-backends %llu)",
                 (unsigned long long)b->cfg.model_max_backends);
        return "overloaded";
    }
    if (k && k->n_waiting >= b->cfg.model_max_waiters) {
        snprintf(msg, cap, "too many requests wait for backend %.*s (model-max-waiters %llu)",
                 (int)(k->len > 64 ? 64 : k->len), k->name,
                 (unsigned long long)b->cfg.model_max_waiters);
        return "overloaded";
    }
    return NULL;
}

static void on_acquire(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    brk_budget_t *g = b->budget;
    char msg[160];
    if (!base_utf8_valid(m->backend.p, m->backend.n)) { /* refused whether or not limited */
        send_deny(b, w, m->req, "bad_request", "field 'backend' is not valid UTF-8");
        return;
    }
    if (!g->on) { /* nothing to limit: every request may start */
        if (proto_enc_budget_grant(&b->out, m->req) == 0)
            brk_worker_send(b, w, b->out.p, b->out.n);
        return;
    }
    bk_t *k = bk_find(g, m->backend);
    const char *code = acquire_refused(b, w, m, k, msg, sizeof msg);
    if (code) {
        send_deny(b, w, m->req, code, msg);
        return;
    }
    waiter_t *x = calloc(1, sizeof *x);
    struct brk_budget_peer *p = peer_of(w);
    if (!x || !p || (!k && !(k = bk_new(g, m->backend)))) {
        free(x);
        send_deny(b, w, m->req, "internal", "out of memory");
        return;
    }
    x->bk = k;
    x->w = w;
    x->req = m->req;
    waiter_key(x->key, w, m->req);
    x->node.key = x->key;
    x->node.klen = sizeof x->key;
    brk_map_put(&g->waiters, &x->node);
    base_list_push(&k->queue, &x->link);
    base_list_push(&p->waiters, &x->wlink);
    k->n_waiting++;
    settle_bk(b, k);
}

static void on_release(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    brk_budget_t *g = b->budget;
    bk_t *k = g->on ? bk_find(g, m->backend) : NULL;
    hold_t *h = k ? hold_find(w->budget, k) : NULL;
    if (!h) {
        if (!g->on) return; /* grants without a budget are not counted */
        char name[80], be[80];
        base_log(BASE_LOG_WARN, "budget_release_unheld", "worker=%s backend=%s",
                 base_log_str(name, sizeof name, w->name, w->name_len),
                 base_log_str(be, sizeof be, m->backend.p, m->backend.n));
        return;
    }
    hold_put(w->budget, h);
    if (g->tpm > 0 && m->tokens) {
        refill_tokens(g, k, b->now);
        k->tokens -= (double)m->tokens;
    }
    settle_bk(b, k);
}

static void on_cancel(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    brk_budget_t *g = b->budget;
    uint8_t key[sizeof(void *) + sizeof(uint64_t)];
    waiter_key(key, w, m->req);
    brk_node_t *n = brk_map_get(&g->waiters, key, sizeof key);
    if (!n) return; /* granted already (the worker releases it) or never asked */
    waiter_t *x = base_container_of(n, waiter_t, node);
    bk_t *k = x->bk;
    waiter_free(g, x);
    send_deny(b, w, m->req, "cancelled", "the request was cancelled");
    settle_bk(b, k);
}

void brk_budget_message(brk_t *b, brk_worker_t *w, const brk_in_t *in, const proto_msg_t *m) {
    switch (m->type) {
    case PROTO_BUDGET_ACQUIRE: on_acquire(b, w, m); break;
    case PROTO_BUDGET_RELEASE: on_release(b, w, m); break;
    case PROTO_BUDGET_CANCEL: on_cancel(b, w, m); break;
    default:
        brk_reply_error(b, in, m->id, "bad_request", "type '%s' is not a worker message",
                        proto_type_name(m->type));
        break;
    }
}

void brk_budget_worker_lost(brk_t *b, brk_worker_t *w) {
    brk_budget_t *g = b->budget;
    struct brk_budget_peer *p = w->budget;
    if (!g || !p) return;
    uint64_t dropped = 0, released = 0;
    while (!base_list_empty(&p->waiters)) {
        waiter_free(g, base_container_of(p->waiters.next, waiter_t, wlink));
        dropped++;
    }
    while (p->n_holds) {
        released += p->holds[p->n_holds - 1].n;
        hold_drop(p, &p->holds[p->n_holds - 1]);
    }
    peer_free(w);
    if (dropped || released) {
        char name[80];
        base_log(BASE_LOG_INFO, "budget_worker_lost", "worker=%s released=%llu dropped=%llu",
                 base_log_str(name, sizeof name, w->name, w->name_len),
                 (unsigned long long)released, (unsigned long long)dropped);
    }
    /* Its permits may let others go, and its backends may now be idle. */
    for (base_list_t *l = g->all.next, *nx; l != &g->all; l = nx) {
        nx = l->next;
        settle_bk(b, base_container_of(l, bk_t, link));
    }
}

uint64_t brk_budget_in_use(brk_t *b, proto_str_t backend) {
    bk_t *k = b->budget ? bk_find(b->budget, backend) : NULL;
    return k ? k->in_use : 0;
}

uint64_t brk_budget_waiting(brk_t *b, proto_str_t backend) {
    bk_t *k = b->budget ? bk_find(b->budget, backend) : NULL;
    return k ? k->n_waiting : 0;
}
