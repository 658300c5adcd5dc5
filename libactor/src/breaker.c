/* breaker.c: the circuit breaker. Tasks of one loop share it without a lock (they only
 * switch in blocking calls). An epoch bumped on every state change lets late outcomes of
 * calls admitted under an older state be ignored, so a slow call that started before the
 * breaker opened cannot close it, and only admitted probes decide a half-open breaker. */
#include "internal.h"

int act_breaker_init(act_breaker_t *b, int failure_threshold, int64_t reset_timeout_ms,
                     int half_open_max) {
    if (failure_threshold < 1 || reset_timeout_ms < 0 || half_open_max < 1) return ACT_EINVAL;
    *b = (act_breaker_t){
        .state = ACT_BREAKER_CLOSED,
        .threshold = failure_threshold,
        .reset_timeout_ms = reset_timeout_ms,
        .half_open_max = half_open_max,
        .counting = ACT_BREAKER_CONSECUTIVE,
    };
    return 0;
}

int act_breaker_init_windowed(act_breaker_t *b, int failure_threshold, int64_t window_ms,
                              int64_t reset_timeout_ms, int half_open_max) {
    if (window_ms <= 0) return ACT_EINVAL;
    int rc = act_breaker_init(b, failure_threshold, reset_timeout_ms, half_open_max);
    if (rc) return rc;
    b->counting = ACT_BREAKER_WINDOWED;
    b->window_ms = window_ms;
    return 0;
}

/* Counts one failure while closed. Returns: true when it reaches the threshold. */
static bool count_failure(act_breaker_t *b) {
    if (b->counting == ACT_BREAKER_WINDOWED) {
        int64_t now = act_now();
        /* A new window opens at the first failure after the last one ended. */
        if (b->failures == 0 || now - b->window_start >= b->window_ms) {
            b->window_start = now;
            b->failures = 0;
        }
    }
    return ++b->failures >= b->threshold;
}

static void set_state(act_breaker_t *b, act_breaker_state_t s) {
    b->state = s;
    b->epoch++;
    b->probes = 0;
    if (s == ACT_BREAKER_OPEN) b->opened_at = act_now();
    if (s == ACT_BREAKER_CLOSED) b->failures = 0;
}

act_breaker_state_t act_breaker_state(const act_breaker_t *b) {
    if (b->state == ACT_BREAKER_OPEN && act_now() - b->opened_at >= b->reset_timeout_ms) {
        return ACT_BREAKER_HALF_OPEN;
    }
    return b->state;
}

int act_breaker_enter(act_breaker_t *b, act_breaker_permit_t *permit) {
    if (act_breaker_state(b) == ACT_BREAKER_HALF_OPEN && b->state == ACT_BREAKER_OPEN) {
        set_state(b, ACT_BREAKER_HALF_OPEN); /* the reset timeout passed */
    }
    permit->epoch = b->epoch;
    permit->probe = false;
    switch (b->state) {
    case ACT_BREAKER_CLOSED:
        return 0;
    case ACT_BREAKER_HALF_OPEN:
        if (b->probes < b->half_open_max) {
            b->probes++;
            permit->probe = true;
            return 0;
        }
        break;
    case ACT_BREAKER_OPEN:
        break;
    }
    b->rejected++;
    return ACT_ECIRCUIT;
}

void act_breaker_leave(act_breaker_t *b, const act_breaker_permit_t *permit, int code) {
    if (permit->epoch != b->epoch) return; /* admitted under an older state */
    if (permit->probe) {
        if (code == ACT_ECANCELED)
            b->probes--; /* no verdict: free the slot */
        else
            set_state(b, code == 0 ? ACT_BREAKER_CLOSED : ACT_BREAKER_OPEN);
        return;
    }
    if (b->state != ACT_BREAKER_CLOSED || code == ACT_ECANCELED) return;
    if (code == 0) {
        if (b->counting == ACT_BREAKER_CONSECUTIVE) b->failures = 0;
    } else if (count_failure(b)) {
        set_state(b, ACT_BREAKER_OPEN);
    }
}

int act_breaker_call(act_breaker_t *b, act_task_fn fn, void *arg, void **result) {
    act_breaker_permit_t permit;
    int rc = act_breaker_enter(b, &permit);
    if (rc) return rc;
    void *scratch = NULL;
    rc = fn(arg, result ? result : &scratch);
    act_breaker_leave(b, &permit, rc);
    return rc;
}
