/* model_guard.c: the guard around model backends (see model.h). Each backend gets a slot
 * with its circuit breaker, a concurrency semaphore and a GCRA token bucket; a call tries the
 * primary's slot with libactor's act_retry (Retry-After stretches the backoff), then the
 * fallback's. The whole call runs inside a scope with its deadline, so backoff sleeps and
 * queueing for a permit end with it too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct slot {
    agt_model_t *m; /* owned */
    act_breaker_t breaker;
    act_sem_t sem; /* concurrency; unused when max_concurrency is 0 */
    double tat;    /* GCRA theoretical arrival time, act_now() ms */
} slot_t;

typedef struct guard {
    agt_model_t base;
    agt_guard_opts_t o;
    slot_t slots[2];
    int n;
} guard_t;

/* One call's attempts on one slot, shared with act_retry's callbacks. */
typedef struct attempt {
    guard_t *g;
    slot_t *s;
    const agt_model_request_t *req;
    agt_model_response_t *out; /* the guard's response: counters accumulate here */
    agt_model_response_t cur;  /* the last attempt's response */
    int64_t extra_wait;        /* Retry-After beyond the backoff, slept before the next try */
    int tried;                 /* requests this slot made */
    int last_rc;               /* the last real outcome, for a breaker that opens mid-way */
} attempt_t;

void agt_guard_opts_init(agt_guard_opts_t *o) {
    *o = (agt_guard_opts_t){
        .max_concurrency = 16,
        .burst = 1,
        .max_attempts = 3,
        .base_delay_ms = 200,
        .max_delay_ms = 10000,
        .jitter = 0.2,
        .max_retry_after_ms = 60000,
        .breaker_threshold = 5,
        .breaker_reset_ms = 30000,
    };
}

static bool opts_ok(const agt_guard_opts_t *o) {
    return o->max_concurrency >= 0 && o->rps >= 0 && o->burst >= 1 && o->max_attempts >= 1 &&
           o->base_delay_ms >= 0 && o->jitter >= 0 && o->jitter <= 1 &&
           o->max_retry_after_ms >= 0 && o->breaker_threshold >= 1 && o->breaker_reset_ms >= 0;
}

/* ---- admission: rate, concurrency, budget ---- */

/* GCRA: requests are spaced 1000/rps ms apart, with `burst` allowed at once after a pause.
 * A waiter reserves its slot before sleeping, so later callers queue behind it; one that
 * cannot start before the deadline fails at once instead of sleeping into it. */
static int bucket_take(guard_t *g, slot_t *s) {
    if (g->o.rps <= 0) return 0;
    double step = 1000.0 / g->o.rps, tolerance = (g->o.burst - 1) * step;
    double now = (double)act_now();
    double tat = s->tat > now ? s->tat : now;
    double at = tat - tolerance;
    if (at <= now) {
        s->tat = tat + step;
        return 0;
    }
    int64_t when = (int64_t)at + (at > (double)(int64_t)at);
    int64_t dl = act_effective_deadline();
    if (dl >= 0 && when > dl) return ACT_ETIMEDOUT;
    s->tat = tat + step;
    return act_sleep_until(when);
}

static int admit(guard_t *g, slot_t *s) {
    int rc = g->o.max_concurrency ? act_sem_acquire(&s->sem, -1) : 0;
    if (rc) return rc;
    rc = bucket_take(g, s);
    const agt_model_budget_t *b = g->o.budget;
    if (!rc && b && b->acquire) rc = b->acquire(b->ctx, s->m->name, -1);
    if (rc && g->o.max_concurrency) act_sem_release(&s->sem);
    return rc;
}

/* Ends a request's admission; tokens: what it used (-1 unknown), for a token budget. */
static void dismiss(guard_t *g, slot_t *s, int64_t tokens) {
    const agt_model_budget_t *b = g->o.budget;
    if (b && b->release) b->release(b->ctx, s->m->name, tokens);
    if (g->o.max_concurrency) act_sem_release(&s->sem);
}

/* What an outcome tells the breaker: a broken or garbled server is a failure; any other
 * answer proves it is up; our own deadline, cancellation or local errors say nothing. */
static int verdict(int rc) {
    switch (rc) {
    case 0:
    case AGT_EMODEL_RATE_LIMITED:
    case AGT_EMODEL_BAD_REQUEST:
    case AGT_EMODEL_UNAUTHORIZED:
        return 0;
    case AGT_EMODEL_UNAVAILABLE:
    case AGT_EMODEL_BAD_RESPONSE:
        return rc;
    default:
        return ACT_ECANCELED; /* no verdict */
    }
}

/* ---- one slot, with retries ---- */

static int attempt_once(void *arg, void **result) {
    (void)result;
    attempt_t *a = arg;
    if (a->extra_wait > 0) {
        int rc = act_sleep(a->extra_wait);
        a->extra_wait = 0;
        if (rc) return rc;
    }
    act_breaker_permit_t permit;
    if (act_breaker_enter(&a->s->breaker, &permit)) return ACT_ECIRCUIT;
    int rc = admit(a->g, a->s);
    if (rc) {
        act_breaker_leave(&a->s->breaker, &permit, ACT_ECANCELED);
        return rc;
    }
    agt_model_response_free(&a->cur);
    rc = agt_model_generate(a->s->m, a->req, &a->cur, -1);
    const agt_usage_t *u = &a->cur.usage;
    int64_t used = u->total_tokens > 0 ? u->total_tokens
                   : (u->prompt_tokens > 0 ? u->prompt_tokens : 0) +
                         (u->completion_tokens > 0 ? u->completion_tokens : 0);
    dismiss(a->g, a->s, used ? used : -1);
    act_breaker_leave(&a->s->breaker, &permit, verdict(rc));
    a->tried += a->cur.attempts;
    a->out->attempts += a->cur.attempts;
    a->out->deltas += a->cur.deltas;
    a->last_rc = rc;
    return rc;
}

static bool retryable(int code, void *ctx) {
    attempt_t *a = ctx;
    if (code != AGT_EMODEL_RATE_LIMITED && code != AGT_EMODEL_UNAVAILABLE) return false;
    if (a->cur.deltas) return false; /* text was shown: a retry would repeat it */
    int64_t ra = a->cur.retry_after_ms;
    if (ra > a->g->o.max_retry_after_ms) return false;
    int64_t dl = act_effective_deadline();
    return !(ra > 0 && dl >= 0 && act_now() + ra > dl); /* would only sleep into the deadline */
}

static void on_retry(int attempt, int code, int64_t delay_ms, void *ctx) {
    attempt_t *a = ctx;
    int64_t ra = a->cur.retry_after_ms;
    a->extra_wait = ra > delay_ms ? ra - delay_ms : 0;
    int64_t wait = delay_ms + a->extra_wait;
    act_log(ACT_LOG_WARN, "model_retry", "backend=%s attempt=%d code=%s status=%d wait_ms=%lld",
            a->s->m->name, attempt, agt_model_err_code(code), a->cur.http_status, (long long)wait);
    if (a->g->o.on_retry) a->g->o.on_retry(a->g->o.ctx, a->s->m->name, attempt, code, wait);
}

/* vsnprintf: the message may be cut to fit, and that is fine. */
__attribute__((format(printf, 2, 3))) static void set_error(agt_model_response_t *out,
                                                            const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
}

/* Moves the last attempt's outcome into the guard's response. */
static void settle(attempt_t *a, int rc) {
    agt_model_response_t *out = a->out;
    int attempts = out->attempts;
    size_t deltas = out->deltas;
    if (rc == 0) {
        *out = a->cur; /* ownership moves */
        a->cur = (agt_model_response_t){0};
    } else {
        out->http_status = a->cur.http_status;
        out->retry_after_ms = a->cur.retry_after_ms;
        out->usage = a->cur.usage; /* the last attempt's: a failed call may be billed */
        memcpy(out->error, a->cur.error, sizeof(out->error));
    }
    out->attempts = attempts;
    out->deltas = deltas;
    out->backend = a->s->m->name;
}

static int slot_call(guard_t *g, slot_t *s, const agt_model_request_t *req,
                     agt_model_response_t *out) {
    attempt_t a = {.g = g, .s = s, .req = req, .out = out};
    act_retry_policy_t p;
    act_retry_policy_init(&p);
    p.max_attempts = g->o.max_attempts;
    p.base_delay_ms = g->o.base_delay_ms;
    p.max_delay_ms = g->o.max_delay_ms;
    p.jitter = g->o.jitter;
    p.retryable = retryable;
    p.on_retry = on_retry;
    p.ctx = &a;
    int rc = act_retry(&p, attempt_once, &a, NULL);
    if (rc == ACT_ECIRCUIT && a.tried) rc = a.last_rc; /* it opened under this call */
    settle(&a, rc);
    if (rc == ACT_ECIRCUIT) {
        set_error(out, "circuit breaker of %s is open", s->m->name);
    } else if (rc && rc != a.last_rc) { /* ended in a backoff sleep or queueing */
        char why[sizeof(out->error)];
        memcpy(why, out->error, sizeof(why));
        set_error(out, "%s while calling %s%s%.200s",
                  rc == ACT_ETIMEDOUT ? "deadline passed" : agt_model_strerror(rc), s->m->name,
                  why[0] ? " after: " : "", why);
    }
    agt_model_response_free(&a.cur);
    return rc;
}

/* ---- the guard as a model ---- */

static bool fallback_worthy(int rc) {
    return rc == AGT_EMODEL_UNAVAILABLE || rc == AGT_EMODEL_RATE_LIMITED ||
           rc == AGT_EMODEL_BAD_RESPONSE || rc == ACT_ECIRCUIT;
}

static int guard_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                          int64_t deadline) {
    guard_t *g = (guard_t *)m;
    act_scope_t scope;
    act_scope_enter(&scope, deadline, 0); /* bounds the backoff sleeps and queueing too */
    int rc = 0;
    for (int i = 0; i < g->n; i++) {
        rc = slot_call(g, &g->slots[i], req, out);
        if (rc == 0 || i + 1 == g->n || !fallback_worthy(rc) || out->deltas ||
            act_task_cancel_requested(act_current()))
            break;
        act_log(ACT_LOG_WARN, "model_fallback", "from=%s to=%s code=%s", g->slots[i].m->name,
                g->slots[i + 1].m->name, agt_model_err_code(rc));
        out->error[0] = 0;
    }
    act_scope_leave(&scope);
    return rc;
}

static void guard_destroy(agt_model_t *m) {
    guard_t *g = (guard_t *)m;
    for (int i = 0; i < g->n; i++) {
        if (g->o.max_concurrency) act_sem_close(&g->slots[i].sem);
        agt_model_destroy(&g->slots[i].m);
    }
    free(g);
}

static const agt_model_ops_t guard_ops = {"guard", guard_generate, guard_destroy};

int agt_guard_new(agt_model_t **out, agt_model_t *primary, agt_model_t *fallback,
                  const agt_guard_opts_t *opts) {
    agt_guard_opts_t defaults;
    agt_guard_opts_init(&defaults);
    if (!opts) opts = &defaults;
    guard_t *g = NULL;
    int rc = ACT_EINVAL;
    if (!out || !primary || !opts_ok(opts)) goto fail_destroy_models;
    rc = ACT_ENOMEM;
    if (!(g = calloc(1, sizeof(*g)))) goto fail_destroy_models;
    g->base.ops = &guard_ops;
    snprintf(g->base.name, sizeof(g->base.name), "%s", opts->name ? opts->name : "guard");
    g->o = *opts;
    agt_model_t *ms[2] = {primary, fallback};
    for (int i = 0; i < 2 && ms[i]; i++, g->n++) {
        slot_t *s = &g->slots[i];
        s->m = ms[i];
        act_breaker_init(&s->breaker, opts->breaker_threshold, opts->breaker_reset_ms, 1);
        if (opts->max_concurrency) act_sem_init(&s->sem, opts->max_concurrency);
    }
    *out = &g->base;
    return 0;

fail_destroy_models: /* the guard owns the backends even when it fails */
    agt_model_destroy(&primary);
    agt_model_destroy(&fallback);
    return rc;
}

const act_breaker_t *agt_guard_breaker(const agt_model_t *m, int i) {
    if (!m || m->ops != &guard_ops) return NULL;
    const guard_t *g = (const guard_t *)m;
    return i >= 0 && i < g->n ? &g->slots[i].breaker : NULL;
}
