/* retry.c: retry with exponential backoff and timeout-with-fallback. Both run their work in
 * (or under) the calling task and share one rule: a cancellation is returned, never retried
 * or replaced by a fallback. Jitter comes from the loop's seeded generator. */
#include "internal.h"

void act_retry_policy_init(act_retry_policy_t *p) {
    *p = (act_retry_policy_t){
        .max_attempts = 3,
        .base_delay_ms = 100,
        .max_delay_ms = 10000,
        .multiplier = 2.0,
    };
}

bool act_retry_default_retryable(int code, void *ctx) {
    (void)ctx;
    return code != ACT_ECANCELED && code != ACT_EINVAL;
}

static bool policy_valid(const act_retry_policy_t *p) {
    return p->max_attempts >= 1 && p->base_delay_ms >= 0 && p->multiplier >= 0 && p->jitter >= 0 &&
           p->jitter <= 1;
}

/* The sleep after failed attempt k (1-based). Computed in double and stopped at the cap, so
 * a large k saturates instead of overflowing (and libm is not needed for pow). */
static int64_t backoff(const act_retry_policy_t *p, int k) {
    double mult = p->multiplier == 0 ? 2.0 : p->multiplier;
    double cap = p->max_delay_ms > 0 ? (double)p->max_delay_ms : 1e15;
    double d = (double)p->base_delay_ms;
    for (int i = 1; i < k && d < cap && d > 0 && mult != 1.0; i++)
        d *= mult;
    if (!(d < cap)) d = cap;
    if (p->jitter > 0) {
        double u = (double)(act__rand(act__tls_loop) >> 11) * 0x1.0p-53; /* [0, 1) */
        d -= d * p->jitter * u;
    }
    return (int64_t)d;
}

int act_retry(const act_retry_policy_t *p, act_task_fn fn, void *arg, void **result) {
    act_task_t *self = act_current();
    if (!self || !p || !fn || !policy_valid(p)) return ACT_EINVAL;
    bool (*retryable)(int, void *) = p->retryable ? p->retryable : act_retry_default_retryable;
    void *scratch = NULL;
    if (!result) result = &scratch;
    for (int attempt = 1;; attempt++) {
        int rc = fn(arg, result);
        if (rc == 0) return 0;
        if (rc == ACT_ECANCELED || act_task_cancel_requested(self)) return rc;
        if (attempt >= p->max_attempts || !retryable(rc, p->ctx)) return rc;
        int64_t delay = backoff(p, attempt);
        if (p->on_retry) p->on_retry(attempt, rc, delay, p->ctx);
        int slept = act_sleep(delay);
        if (slept) return slept;
    }
}

/* ---- timeout with fallback ---- */

enum { ENDED, OUR_TIMEOUT, CUT_SHORT }; /* how a join_within ended */

/* Joins t inside a scope with our own deadline. If the join is cut short, t is cancelled and
 * its cleanup awaited (shielded). *how says why it returned: only OUR_TIMEOUT (and, on
 * request, the primary's own errors) leads to the fallback, never an enclosing scope's expiry
 * or the caller's cancellation. */
static int join_within(act_task_t *t, int64_t timeout_ms, void **r, int *how) {
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(timeout_ms), 0);
    int rc = act_join(t, r, -1);
    bool cut = !act_task_done(t);
    bool expired = act_scope_leave(&s) == ACT_ETIMEDOUT;
    *how = !cut ? ENDED : expired ? OUR_TIMEOUT : CUT_SHORT;
    if (!cut) return rc;
    act_task_cancel(t);
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    int inner = act_join(t, r, -1);
    act_scope_leave(&shield);
    return inner == 0 ? 0 : rc; /* it may have finished after all: then use its result */
}

int act_with_fallback(act_task_fn primary, void *parg, act_task_fn fallback, void *farg,
                      int64_t timeout_ms, unsigned flags, void **result) {
    act_task_t *self = act_current();
    if (!self || !primary || !fallback) return ACT_EINVAL;
    act_task_t *t;
    act_spawn_opts_t o = {.name = "primary"};
    int rc = act_spawn(primary, parg, &o, &t);
    if (rc) return rc;
    void *r = NULL;
    int how;
    rc = join_within(t, timeout_ms, &r, &how);
    act_task_release(&t);
    if (rc == 0) {
        if (result) *result = r;
        return 0;
    }
    if (rc == ACT_ECANCELED || act_task_cancel_requested(self)) return rc;
    bool fall = how == OUR_TIMEOUT || (how == ENDED && (flags & ACT_FALLBACK_ON_ERROR));
    if (!fall) return rc;
    return fallback(farg, result ? result : &r);
}
