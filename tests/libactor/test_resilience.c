/* test_resilience.c: retry (backoff sequence, give-up, never retrying cancellation), circuit
 * breaker (open, half-open probe limit, close, re-open), timeout with fallback, bounded map
 * and batches, and the one_for_one supervisor. All on the virtual clock. */
#include <string.h>

#include "harness.h"

/* ---- retry ---- */

typedef struct flaky {
    int fail_times;     /* fail this many times first (-1: always) */
    int codes[8];       /* code per failing attempt (0 entries: ACT_EIO) */
    int attempts;       /* calls so far */
    int64_t at[16];     /* act_now() at each call */
    int64_t delays[16]; /* delays reported to on_retry */
    int nretries;       /* on_retry calls */
} flaky;

static int flaky_fn(void *arg, void **result) {
    flaky *f = arg;
    int k = f->attempts++;
    f->at[k] = act_now();
    if (f->fail_times >= 0 && k >= f->fail_times) {
        *result = (void *)(intptr_t)77;
        return 0;
    }
    return f->codes[k % 8] ? f->codes[k % 8] : ACT_EIO;
}

static void note_retry(int attempt, int code, int64_t delay_ms, void *ctx) {
    flaky *f = ctx;
    assert_int_equal(attempt, f->nretries + 1);
    assert_true(code < 0);
    f->delays[f->nretries++] = delay_ms;
}

static act_retry_policy_t policy(flaky *f, int max_attempts, int64_t base, int64_t max) {
    act_retry_policy_t p;
    act_retry_policy_init(&p);
    p.max_attempts = max_attempts;
    p.base_delay_ms = base;
    p.max_delay_ms = max;
    p.on_retry = note_retry;
    p.ctx = f;
    return p;
}

static int retry_third_time(void *arg, void **result) {
    (void)arg;
    (void)result;
    flaky f = {.fail_times = 2};
    act_retry_policy_t p = policy(&f, 5, 10, 0);
    void *r = NULL;
    assert_int_equal(act_retry(&p, flaky_fn, &f, &r), 0);
    assert_int_equal(f.attempts, 3);
    assert_int_equal((intptr_t)r, 77);
    assert_int_equal(f.nretries, 2);
    return 0;
}

static void test_retry_succeeds_on_third_attempt(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_third_time, NULL, VCLOCK), 0);
}

static int retry_backoff(void *arg, void **result) {
    (void)arg;
    (void)result;
    flaky f = {.fail_times = -1};
    act_retry_policy_t p = policy(&f, 6, 100, 700);
    int64_t t0 = act_now();
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_EIO);
    assert_int_equal(f.attempts, 6);
    int64_t want[] = {100, 200, 400, 700, 700}; /* base * 2^k, capped at 700 */
    assert_int_equal(f.at[0], t0);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(f.at[k + 1] - f.at[k], want[k]);
        assert_int_equal(f.delays[k], want[k]);
    }
    assert_int_equal(act_now() - t0, 2100); /* no sleep after the last attempt */
    return 0;
}

static void test_retry_delays_grow_exponentially_up_to_cap(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_backoff, NULL, VCLOCK), 0);
}

static int retry_last_error(void *arg, void **result) {
    (void)arg;
    (void)result;
    flaky f = {.fail_times = -1, .codes = {ACT_EIO, ACT_EIO, ACT_ECONNREFUSED}};
    act_retry_policy_t p = policy(&f, 3, 1, 0);
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_ECONNREFUSED);
    assert_int_equal(f.attempts, 3);
    return 0;
}

static void test_retry_gives_up_with_last_error(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_last_error, NULL, VCLOCK), 0);
}

static bool only_io(int code, void *ctx) {
    (void)ctx;
    return code == ACT_EIO;
}

static int retry_not_retryable(void *arg, void **result) {
    (void)arg;
    (void)result;
    flaky f = {.fail_times = -1, .codes = {ACT_ECANCELED}};
    act_retry_policy_t p = policy(&f, 5, 10, 0);
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_ECANCELED);
    assert_int_equal(f.attempts, 1);
    f = (flaky){.fail_times = -1, .codes = {ACT_EINVAL}}; /* default test rejects it too */
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_EINVAL);
    assert_int_equal(f.attempts, 1);
    f = (flaky){.fail_times = -1, .codes = {ACT_ECONNREFUSED}};
    p.retryable = only_io;
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_ECONNREFUSED);
    assert_int_equal(f.attempts, 1);
    assert_int_equal(f.nretries, 0);
    p.max_attempts = 0;
    assert_int_equal(act_retry(&p, flaky_fn, &f, NULL), ACT_EINVAL);
    return 0;
}

static void test_retry_never_retries_cancellation_or_rejected_codes(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_not_retryable, NULL, VCLOCK), 0);
}

static int retrier(void *arg, void **result) {
    (void)result;
    flaky *f = arg;
    act_retry_policy_t p = policy(f, 5, 1000, 0);
    return act_retry(&p, flaky_fn, f, NULL);
}

static int retry_cancelled_in_backoff(void *arg, void **result) {
    (void)arg;
    (void)result;
    flaky f = {.fail_times = -1};
    act_task_t *t;
    assert_int_equal(act_spawn(retrier, &f, NULL, &t), 0);
    assert_int_equal(act_sleep(500), 0); /* inside the first 1000 ms backoff */
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(f.attempts, 1);
    assert_int_equal(act_now(), 500);
    return 0;
}

static void test_retry_stops_when_cancelled_during_backoff(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_cancelled_in_backoff, NULL, VCLOCK), 0);
}

static int retry_jitter(void *arg, void **result) {
    (void)result;
    flaky *f = arg;
    act_retry_policy_t p = policy(f, 6, 100, 0);
    p.jitter = 1.0;
    assert_int_equal(act_retry(&p, flaky_fn, f, NULL), ACT_EIO);
    int64_t full = 100;
    for (int k = 0; k < 5; k++, full *= 2) {
        assert_true(f->delays[k] >= 0 && f->delays[k] <= full);
        assert_int_equal(f->at[k + 1] - f->at[k], f->delays[k]);
    }
    return 0;
}

static void test_retry_jitter_is_bounded_and_repeatable(void **state) {
    (void)state;
    flaky a = {.fail_times = -1}, b = {.fail_times = -1};
    act_loop_opts_t o = {.flags = VCLOCK, .seed = 1234};
    assert_int_equal(harness_run_opts(retry_jitter, &a, &o), 0);
    assert_int_equal(harness_run_opts(retry_jitter, &b, &o), 0);
    assert_memory_equal(a.delays, b.delays, sizeof a.delays); /* same seed, same delays */
}

/* ---- circuit breaker ---- */

typedef struct svc {
    int calls;     /* calls that reached the service */
    int in_flight; /* calls inside it now */
    int code;      /* what it returns */
    int64_t ms;    /* how long it takes */
} svc;

static int svc_fn(void *arg, void **result) {
    (void)result;
    svc *s = arg;
    s->calls++;
    s->in_flight++;
    int rc = s->ms ? act_sleep(s->ms) : 0;
    s->in_flight--;
    return rc ? rc : s->code;
}

static int breaker_opens(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_breaker_t b;
    svc s = {.code = ACT_EIO};
    assert_int_equal(act_breaker_init(&b, 3, 1000, 1), 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_EIO);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_EIO);
    s.code = 0; /* a success resets the count */
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), 0);
    s.code = ACT_ECANCELED; /* not a failure */
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_ECANCELED);
    s.code = ACT_EIO;
    for (int i = 0; i < 2; i++)
        assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_EIO);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_EIO);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_OPEN);
    int calls = s.calls;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_ECIRCUIT);
    }
    assert_int_equal(s.calls, calls); /* refused without reaching the service */
    assert_int_equal(b.rejected, 5);
    assert_int_equal(act_sleep(999), 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_ECIRCUIT);
    return 0;
}

static void test_breaker_opens_after_threshold_and_rejects(void **state) {
    (void)state;
    assert_int_equal(harness_run(breaker_opens, NULL, VCLOCK), 0);
}

typedef struct prober {
    act_breaker_t *b;
    svc *s;
} prober;

static int probe_task(void *arg, void **result) {
    prober *p = arg;
    return act_breaker_call(p->b, svc_fn, p->s, result);
}

/* Opens b (threshold 1) and lets the reset timeout pass. */
static void open_and_wait(act_breaker_t *b, int64_t reset_ms) {
    svc bad = {.code = ACT_EIO};
    assert_int_equal(act_breaker_call(b, svc_fn, &bad, NULL), ACT_EIO);
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_OPEN);
    assert_int_equal(act_sleep(reset_ms), 0);
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_HALF_OPEN);
}

static int half_open_probes(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_breaker_t b;
    assert_int_equal(act_breaker_init(&b, 1, 1000, 2), 0);
    open_and_wait(&b, 1000);
    svc s = {.ms = 100};
    prober p = {&b, &s};
    act_task_t *t[5];
    int codes[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(act_spawn(probe_task, &p, NULL, &t[i]), 0);
    assert_int_equal(act_gather(t, 5, NULL, codes, ACT_GATHER_COLLECT, -1), 0);
    int ok = 0, refused = 0;
    for (int i = 0; i < 5; i++) {
        ok += codes[i] == 0;
        refused += codes[i] == ACT_ECIRCUIT;
        act_task_release(&t[i]);
    }
    assert_int_equal(ok, 2); /* exactly half_open_max probes got through */
    assert_int_equal(refused, 3);
    assert_int_equal(s.calls, 2);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), 0);
    return 0;
}

static void test_breaker_half_open_admits_limited_probes_then_closes(void **state) {
    (void)state;
    assert_int_equal(harness_run(half_open_probes, NULL, VCLOCK), 0);
}

static int probe_fails(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_breaker_t b;
    assert_int_equal(act_breaker_init(&b, 1, 1000, 1), 0);
    open_and_wait(&b, 1000);
    svc s = {.code = ACT_EIO, .ms = 50};
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_EIO);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_OPEN);
    assert_int_equal(b.opened_at, act_now()); /* the timer restarted at the probe's failure */
    assert_int_equal(act_sleep(999), 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), ACT_ECIRCUIT);
    assert_int_equal(act_sleep(1), 0);
    s.code = 0;
    assert_int_equal(act_breaker_call(&b, svc_fn, &s, NULL), 0);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    return 0;
}

static void test_breaker_probe_failure_reopens(void **state) {
    (void)state;
    assert_int_equal(harness_run(probe_fails, NULL, VCLOCK), 0);
}

static int stale_outcome(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_breaker_t b;
    act_breaker_permit_t slow, probe;
    assert_int_equal(act_breaker_init(&b, 1, 100, 1), 0);
    assert_int_equal(act_breaker_enter(&b, &slow), 0); /* admitted while closed */
    open_and_wait(&b, 100);
    assert_int_equal(act_breaker_enter(&b, &probe), 0);
    assert_true(probe.probe);
    act_breaker_leave(&b, &slow, 0); /* the old call's success decides nothing */
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_HALF_OPEN);
    act_breaker_leave(&b, &probe, ACT_ECANCELED); /* no verdict: the slot is free again */
    assert_int_equal(b.probes, 0);
    assert_int_equal(act_breaker_enter(&b, &probe), 0);
    act_breaker_leave(&b, &probe, 0);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    assert_int_equal(act_breaker_init(&b, 0, 100, 1), ACT_EINVAL);
    return 0;
}

static void test_breaker_ignores_stale_and_cancelled_outcomes(void **state) {
    (void)state;
    assert_int_equal(harness_run(stale_outcome, NULL, VCLOCK), 0);
}

/* ---- timeout with fallback ---- */

typedef struct fb {
    int64_t primary_ms; /* how long the primary takes */
    int primary_code;   /* what it returns when it finishes */
    int cleanup;        /* the primary saw its cancellation */
    int fallbacks;      /* fallback calls */
    int cleanup_before; /* cleanup had run when the fallback started */
} fb;

static int primary_fn(void *arg, void **result) {
    fb *f = arg;
    int rc = act_sleep(f->primary_ms);
    if (rc == ACT_ECANCELED) f->cleanup++;
    *result = (void *)(intptr_t)1;
    return rc ? rc : f->primary_code;
}

static int fallback_fn(void *arg, void **result) {
    fb *f = arg;
    f->fallbacks++;
    f->cleanup_before = f->cleanup;
    *result = (void *)(intptr_t)2;
    return 0;
}

static int fallback_cases(void *arg, void **result) {
    (void)arg;
    (void)result;
    void *r = NULL;
    fb slow = {.primary_ms = 1000};
    assert_int_equal(act_with_fallback(primary_fn, &slow, fallback_fn, &slow, 100, 0, &r), 0);
    assert_int_equal((intptr_t)r, 2);
    assert_int_equal(act_now(), 100);
    assert_int_equal(slow.cleanup, 1);
    assert_int_equal(slow.cleanup_before, 1); /* the primary was cancelled and awaited first */
    fb fast = {.primary_ms = 10};
    assert_int_equal(act_with_fallback(primary_fn, &fast, fallback_fn, &fast, 100, 0, &r), 0);
    assert_int_equal((intptr_t)r, 1);
    assert_int_equal(fast.fallbacks, 0);
    fb bad = {.primary_ms = 10, .primary_code = ACT_EIO};
    assert_int_equal(act_with_fallback(primary_fn, &bad, fallback_fn, &bad, 100, 0, &r), ACT_EIO);
    assert_int_equal(bad.fallbacks, 0);
    assert_int_equal(
        act_with_fallback(primary_fn, &bad, fallback_fn, &bad, 100, ACT_FALLBACK_ON_ERROR, &r), 0);
    assert_int_equal((intptr_t)r, 2);
    assert_int_equal(bad.fallbacks, 1);
    return 0;
}

static void test_fallback_on_timeout_only_unless_asked(void **state) {
    (void)state;
    assert_int_equal(harness_run(fallback_cases, NULL, VCLOCK), 0);
}

static int fallback_caller(void *arg, void **result) {
    fb *f = arg;
    return act_with_fallback(primary_fn, f, fallback_fn, f, 500, ACT_FALLBACK_ON_ERROR, result);
}

static int fallback_not_on_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    fb f = {.primary_ms = 1000};
    act_task_t *t;
    assert_int_equal(act_spawn(fallback_caller, &f, NULL, &t), 0);
    assert_int_equal(act_sleep(100), 0);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(f.fallbacks, 0);
    assert_int_equal(f.cleanup, 1);
    /* An enclosing scope that expires is not our timeout either. */
    act_scope_t s;
    fb g = {.primary_ms = 1000};
    act_scope_enter(&s, act_deadline_in(50), 0);
    int rc = act_with_fallback(primary_fn, &g, fallback_fn, &g, 500, ACT_FALLBACK_ON_ERROR, NULL);
    act_scope_leave(&s);
    assert_int_equal(rc, ACT_ETIMEDOUT);
    assert_int_equal(g.fallbacks, 0);
    assert_int_equal(g.cleanup, 1);
    return 0;
}

static void test_no_fallback_when_caller_cancelled_or_outer_scope_expires(void **state) {
    (void)state;
    assert_int_equal(harness_run(fallback_not_on_cancel, NULL, VCLOCK), 0);
}

/* ---- map and batch ---- */

typedef struct items {
    size_t n;
    int in_flight, max_in_flight;
    int started, cancelled;
    size_t fail_at;        /* index that fails (SIZE_MAX: none) */
    bool fail_odd;         /* every odd index fails */
    size_t done_order[64]; /* indices in completion order */
    int ndone;
    int seq; /* event counter */
    int start_seq[64], end_seq[64];
    size_t max_live;    /* most live tasks seen */
    bool cancel_as_eio; /* an item reports its cancellation as ACT_EIO */
} items;

static int item_fn(void *ctx, size_t i, void **result) {
    items *it = ctx;
    it->started++;
    it->start_seq[i % 64] = it->seq++;
    if (++it->in_flight > it->max_in_flight) it->max_in_flight = it->in_flight;
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    if (st.tasks_live > it->max_live) it->max_live = st.tasks_live;
    int rc = act_sleep((int64_t)((it->n - i) % 7 + 1) * 10); /* completion order != input */
    it->in_flight--;
    it->end_seq[i % 64] = it->seq++;
    if (rc == ACT_ECANCELED) it->cancelled++;
    if (rc == ACT_ECANCELED && it->cancel_as_eio) return ACT_EIO;
    if (rc) return rc;
    it->done_order[it->ndone++ % 64] = i;
    *result = (void *)(intptr_t)(i * 10);
    if (i == it->fail_at || (it->fail_odd && i % 2)) return ACT_EIO;
    return 0;
}

static int map_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 20, .fail_at = SIZE_MAX};
    void *res[20];
    int codes[20];
    assert_int_equal(act_map(item_fn, &it, 20, 4, res, codes, 0), 0);
    assert_int_equal(it.max_in_flight, 4);
    assert_int_equal(it.started, 20);
    bool reordered = false;
    for (size_t i = 0; i < 20; i++) {
        assert_int_equal((intptr_t)res[i], (intptr_t)(i * 10));
        assert_int_equal(codes[i], 0);
        reordered |= it.done_order[i] != i;
    }
    assert_true(reordered); /* they did finish out of order */
    assert_int_equal(act_map(item_fn, &it, 20, 0, res, codes, 0), ACT_EINVAL);
    return 0;
}

static void test_map_bounds_concurrency_and_keeps_input_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(map_order, NULL, VCLOCK), 0);
}

static int map_memory(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 5000, .fail_at = SIZE_MAX};
    assert_int_equal(act_map(item_fn, &it, 5000, 8, NULL, NULL, 0), 0);
    assert_int_equal(it.started, 5000);
    assert_int_equal(it.max_in_flight, 8);
    assert_true(it.max_live <= 8 + 1); /* the workers and main: O(limit) tasks */
    return 0;
}

static void test_map_uses_limit_tasks_not_n(void **state) {
    (void)state;
    assert_int_equal(harness_run(map_memory, NULL, VCLOCK), 0);
}

static int map_fail_fast(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 10, .fail_at = 2};
    void *res[10];
    int codes[10];
    /* Sleeps: items 0..4 take 40, 30, 20, 10, 70 ms. Item 3 ends at 10 and item 4 takes its
     * place; item 2 fails at 20 while 0, 1 and 4 are in flight. */
    assert_int_equal(act_map(item_fn, &it, 10, 4, res, codes, 0), ACT_EIO);
    assert_int_equal(codes[2], ACT_EIO);
    assert_int_equal(codes[3], 0);
    assert_int_equal((intptr_t)res[3], 30);
    for (size_t i = 0; i < 5; i++) {
        if (i != 2 && i != 3) assert_int_equal(codes[i], ACT_ECANCELED);
    }
    assert_int_equal(it.cancelled, 3); /* items 0, 1 and 4 were cancelled in flight */
    assert_int_equal(it.started, 5);   /* the rest never started */
    for (size_t i = 5; i < 10; i++) {
        assert_int_equal(codes[i], ACT_ECANCELED);
        assert_null(res[i]);
    }
    assert_int_equal(act_now(), 20);
    return 0;
}

static void test_map_fail_fast_cancels_the_rest(void **state) {
    (void)state;
    assert_int_equal(harness_run(map_fail_fast, NULL, VCLOCK), 0);
}

static int map_collect(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 9, .fail_at = SIZE_MAX, .fail_odd = true};
    int codes[9];
    assert_int_equal(act_map(item_fn, &it, 9, 2, NULL, codes, ACT_MAP_COLLECT), 0);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(codes[i], i % 2 ? ACT_EIO : 0);
    assert_int_equal(it.started, 9);
    return 0;
}

static void test_map_collect_gives_code_per_item(void **state) {
    (void)state;
    assert_int_equal(harness_run(map_collect, NULL, VCLOCK), 0);
}

static int mapper_task(void *arg, void **result) {
    (void)result;
    items *it = arg;
    return act_map(item_fn, it, it->n, 3, NULL, NULL, 0);
}

static int map_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 10, .fail_at = SIZE_MAX, .cancel_as_eio = true};
    act_task_t *t;
    assert_int_equal(act_spawn(mapper_task, &it, NULL, &t), 0);
    assert_int_equal(act_sleep(15), 0); /* items 0..2 (40, 30, 20 ms) are all in flight */
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED); /* not the items' ACT_EIO */
    act_task_release(&t);
    assert_int_equal(it.cancelled, 3);
    assert_int_equal(it.started, 3);
    return 0;
}

static void test_map_caller_cancel_is_reported_as_cancel(void **state) {
    (void)state;
    assert_int_equal(harness_run(map_cancelled, NULL, VCLOCK), 0);
}

static int batch_bounds(void *arg, void **result) {
    (void)arg;
    (void)result;
    items it = {.n = 10, .fail_at = SIZE_MAX};
    void *res[10];
    assert_int_equal(act_batch(item_fn, &it, 10, 4, res, NULL, 0), 0);
    assert_int_equal(it.max_in_flight, 4);
    for (size_t b = 0; b + 4 < 10; b += 4) {
        int last_end = -1;
        for (size_t i = b; i < b + 4; i++) {
            if (it.end_seq[i] > last_end) last_end = it.end_seq[i];
        }
        for (size_t j = b + 4; j < b + 8 && j < 10; j++)
            assert_true(it.start_seq[j] > last_end);
    }
    for (size_t i = 0; i < 10; i++)
        assert_int_equal((intptr_t)res[i], (intptr_t)(i * 10));
    /* Fail-fast stops after the failing batch. */
    items bad = {.n = 10, .fail_at = 5};
    int codes[10];
    assert_int_equal(act_batch(item_fn, &bad, 10, 4, NULL, codes, 0), ACT_EIO);
    assert_int_equal(bad.started, 8);
    assert_int_equal(codes[5], ACT_EIO);
    assert_int_equal(codes[8], ACT_ECANCELED);
    return 0;
}

static void test_batch_runs_batches_one_after_another(void **state) {
    (void)state;
    assert_int_equal(harness_run(batch_bounds, NULL, VCLOCK), 0);
}

/* ---- supervisor ---- */

typedef struct child {
    int runs;       /* times started */
    int fail_runs;  /* the first this many runs fail (-1: all) */
    int64_t run_ms; /* how long a run lasts (ACT_FOREVER: until cancelled) */
    int ok_code;    /* code of a run that does not fail */
    int cleanup;    /* runs that saw their cancellation */
} child;

static int child_fn(void *arg, void **result) {
    (void)result;
    child *c = arg;
    c->runs++;
    int rc = act_sleep(c->run_ms);
    if (rc == ACT_ECANCELED) c->cleanup++;
    if (rc) return rc;
    return (c->fail_runs < 0 || c->runs <= c->fail_runs) ? ACT_EIO : c->ok_code;
}

typedef struct evlog {
    int counts[4]; /* per act_sup_event_t */
    char last[64]; /* the last event's child */
    int gave_up_code;
} evlog;

static void on_event(act_supervisor_t *sup, const char *name, act_sup_event_t ev, int code,
                     void *ctx) {
    (void)sup;
    evlog *l = ctx;
    l->counts[ev]++;
    snprintf(l->last, sizeof l->last, "%s", name);
    if (ev == ACT_SUP_GAVE_UP) l->gave_up_code = code;
}

static int supervise(act_child_spec_t *specs, size_t n, int max_restarts, int64_t period,
                     evlog *log, int64_t deadline, act_supervisor_t **keep) {
    act_supervisor_opts_t o = {max_restarts, period, on_event, log, ACT_SUP_ONE_FOR_ONE};
    act_supervisor_t *sup;
    assert_int_equal(act_supervisor_new(&sup, specs, n, &o), 0);
    int rc = act_supervisor_run(sup, deadline);
    if (keep)
        *keep = sup;
    else
        assert_int_equal(act_supervisor_destroy(&sup), 0);
    return rc;
}

static int sup_restarts(void *arg, void **result) {
    (void)arg;
    (void)result;
    child c = {.fail_runs = 2, .run_ms = 10};
    act_child_spec_t spec = {"worker", child_fn, &c, ACT_RESTART_TRANSIENT};
    evlog log = {0};
    act_supervisor_t *sup;
    assert_int_equal(supervise(&spec, 1, 5, 1000, &log, -1, &sup), 0);
    assert_int_equal(c.runs, 3);
    assert_int_equal(act_supervisor_restarts(sup), 2);
    const char *who = NULL;
    assert_int_equal(act_supervisor_last_error(sup, &who), ACT_EIO);
    assert_string_equal(who, "worker");
    assert_int_equal(act_supervisor_destroy(&sup), 0);
    assert_int_equal(log.counts[ACT_SUP_STARTED], 1);
    assert_int_equal(log.counts[ACT_SUP_RESTARTED], 2);
    assert_int_equal(log.counts[ACT_SUP_EXITED], 3);
    assert_int_equal(log.counts[ACT_SUP_GAVE_UP], 0);
    return 0;
}

static void test_supervisor_restarts_crashing_child(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_restarts, NULL, VCLOCK), 0);
}

static int sup_policies(void *arg, void **result) {
    (void)arg;
    (void)result;
    child perm = {.fail_runs = 0, .run_ms = 100}; /* ends fine every 100 ms */
    child trans_ok = {.fail_runs = 0, .run_ms = 10};
    child trans_bad = {.fail_runs = 1, .run_ms = 10};
    child temp = {.fail_runs = -1, .run_ms = 10};
    act_child_spec_t specs[] = {
        {"perm", child_fn, &perm, ACT_RESTART_PERMANENT},
        {"trans-ok", child_fn, &trans_ok, ACT_RESTART_TRANSIENT},
        {"trans-bad", child_fn, &trans_bad, ACT_RESTART_TRANSIENT},
        {"temp", child_fn, &temp, ACT_RESTART_TEMPORARY},
    };
    evlog log = {0};
    int rc = supervise(specs, 4, 100, 1000, &log, act_deadline_in(350), NULL);
    assert_int_equal(rc, ACT_ETIMEDOUT);
    assert_int_equal(perm.runs, 4); /* at 0, 100, 200, 300; cancelled at 350 */
    assert_int_equal(perm.cleanup, 1);
    assert_int_equal(trans_ok.runs, 1);
    assert_int_equal(trans_bad.runs, 2);
    assert_int_equal(temp.runs, 1);
    assert_int_equal(log.counts[ACT_SUP_RESTARTED], 3 + 1);
    assert_int_equal(act_now(), 350);
    return 0;
}

static void test_supervisor_permanent_transient_temporary(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_policies, NULL, VCLOCK), 0);
}

static int sup_gives_up(void *arg, void **result) {
    (void)arg;
    (void)result;
    child bad = {.fail_runs = -1, .run_ms = 10};
    child steady = {.run_ms = ACT_FOREVER};
    act_child_spec_t specs[] = {
        {"bad", child_fn, &bad, ACT_RESTART_PERMANENT},
        {"steady", child_fn, &steady, ACT_RESTART_PERMANENT},
    };
    evlog log = {0};
    act_supervisor_t *sup;
    assert_int_equal(supervise(specs, 2, 3, 1000, &log, -1, &sup), ACT_EGAVEUP);
    assert_int_equal(bad.runs, 4); /* the first run and 3 restarts */
    assert_int_equal(act_now(), 40);
    assert_int_equal(steady.cleanup, 1); /* the sibling was cancelled and awaited */
    assert_int_equal(log.counts[ACT_SUP_GAVE_UP], 1);
    assert_int_equal(log.gave_up_code, ACT_EIO);
    const char *who;
    assert_int_equal(act_supervisor_last_error(sup, &who), ACT_EIO);
    assert_string_equal(who, "bad");
    assert_int_equal(act_supervisor_destroy(&sup), 0);
    return 0;
}

static void test_supervisor_gives_up_past_restart_intensity(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_gives_up, NULL, VCLOCK), 0);
}

static int sup_spread(void *arg, void **result) {
    (void)arg;
    (void)result;
    /* Restarts at 600, 1200, 1800...: never 3 within 1000 ms, so never give up. */
    child slow = {.fail_runs = 6, .run_ms = 600};
    act_child_spec_t spec = {"slow", child_fn, &slow, ACT_RESTART_TRANSIENT};
    evlog log = {0};
    assert_int_equal(supervise(&spec, 1, 2, 1000, &log, -1, NULL), 0);
    assert_int_equal(slow.runs, 7);
    assert_int_equal(log.counts[ACT_SUP_GAVE_UP], 0);
    /* The same child failing every 400 ms hits 3 restarts within 1000 ms. */
    child fast = {.fail_runs = -1, .run_ms = 400};
    spec.arg = &fast;
    assert_int_equal(supervise(&spec, 1, 2, 1000, &log, -1, NULL), ACT_EGAVEUP);
    assert_int_equal(fast.runs, 3);
    return 0;
}

static void test_supervisor_restarts_spread_over_time_do_not_give_up(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_spread, NULL, VCLOCK), 0);
}

static int sup_task(void *arg, void **result) {
    (void)result;
    act_child_spec_t *spec = arg;
    act_supervisor_opts_t o = {3, 1000, NULL, NULL, ACT_SUP_ONE_FOR_ONE};
    act_supervisor_t *sup;
    assert_int_equal(act_supervisor_new(&sup, spec, 1, &o), 0);
    int rc = act_supervisor_run(sup, -1);
    assert_int_equal(act_supervisor_destroy(&sup), 0);
    return rc;
}

static int sup_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    child c = {.run_ms = ACT_FOREVER};
    act_child_spec_t spec = {"forever", child_fn, &c, ACT_RESTART_PERMANENT};
    act_task_t *t;
    assert_int_equal(act_spawn(sup_task, &spec, NULL, &t), 0);
    assert_int_equal(act_sleep(100), 0);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(c.runs, 1); /* cancelled children are not restarted */
    assert_int_equal(c.cleanup, 1);
    return 0;
}

static void test_supervisor_caller_cancel_stops_children(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_cancelled, NULL, VCLOCK), 0);
}

/* Issue 12.7: one_for_all restarts every child with the failing one; rest_for_one the
 * failing one and those after it. b fails once at 10 ms, then ends fine at 20 ms. */
static int sup_strategy(act_sup_strategy_t strategy, child *a, child *b, child *c) {
    act_child_spec_t specs[] = {
        {"a", child_fn, a, ACT_RESTART_PERMANENT},
        {"b", child_fn, b, ACT_RESTART_TRANSIENT},
        {"c", child_fn, c, ACT_RESTART_PERMANENT},
    };
    evlog log = {0};
    act_supervisor_opts_t o = {5, 1000, on_event, &log, strategy};
    act_supervisor_t *sup;
    assert_int_equal(act_supervisor_new(&sup, specs, 3, &o), 0);
    assert_int_equal(act_supervisor_run(sup, act_deadline_in(50)), ACT_ETIMEDOUT);
    size_t restarts = act_supervisor_restarts(sup);
    assert_int_equal(log.counts[ACT_SUP_RESTARTED], (int)restarts);
    assert_int_equal(act_supervisor_destroy(&sup), 0);
    return (int)restarts;
}

static int sup_strategies(void *arg, void **result) {
    (void)arg;
    (void)result;
    child a = {.run_ms = ACT_FOREVER}, b = {.fail_runs = 1, .run_ms = 10},
          c = {.run_ms = ACT_FOREVER};
    assert_int_equal(sup_strategy(ACT_SUP_ONE_FOR_ALL, &a, &b, &c), 3);
    assert_int_equal(a.runs, 2);
    assert_int_equal(a.cleanup, 2); /* stopped by b's failure, then by the deadline */
    assert_int_equal(b.runs, 2);    /* its clean end at 20 ms restarts nobody */
    assert_int_equal(c.runs, 2);
    a = (child){.run_ms = ACT_FOREVER};
    b = (child){.fail_runs = 1, .run_ms = 10};
    c = (child){.run_ms = ACT_FOREVER};
    assert_int_equal(sup_strategy(ACT_SUP_REST_FOR_ONE, &a, &b, &c), 2);
    assert_int_equal(a.runs, 1); /* before b: untouched */
    assert_int_equal(b.runs, 2);
    assert_int_equal(c.runs, 2);
    assert_int_equal(c.cleanup, 2);
    a = (child){.run_ms = ACT_FOREVER};
    b = (child){.fail_runs = 1, .run_ms = 10};
    c = (child){.run_ms = ACT_FOREVER};
    assert_int_equal(sup_strategy(ACT_SUP_ONE_FOR_ONE, &a, &b, &c), 1);
    assert_int_equal(a.runs, 1);
    assert_int_equal(c.runs, 1);
    act_child_spec_t spec = {"a", child_fn, &a, ACT_RESTART_PERMANENT};
    act_supervisor_opts_t bad = {1, 1000, NULL, NULL, (act_sup_strategy_t)7};
    act_supervisor_t *sup;
    assert_int_equal(act_supervisor_new(&sup, &spec, 1, &bad), ACT_EINVAL);
    return 0;
}

static void test_supervisor_one_for_all_and_rest_for_one(void **state) {
    (void)state;
    assert_int_equal(harness_run(sup_strategies, NULL, VCLOCK), 0);
}

/* Issue 12.8: a windowed breaker counts failures within its window, successes in between
 * or not (the seed's breaker counts every failure since it last closed). */
static int breaker_windowed(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_breaker_t b;
    svc ok = {.code = 0}, bad = {.code = ACT_EIO};
    assert_int_equal(act_breaker_init_windowed(&b, 3, 0, 1000, 1), ACT_EINVAL);
    assert_int_equal(act_breaker_init_windowed(&b, 3, 100, 1000, 1), 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &bad, NULL), ACT_EIO);
    assert_int_equal(act_breaker_call(&b, svc_fn, &ok, NULL), 0); /* does not reset */
    assert_int_equal(act_breaker_call(&b, svc_fn, &bad, NULL), ACT_EIO);
    assert_int_equal(act_breaker_call(&b, svc_fn, &ok, NULL), 0);
    assert_int_equal(act_breaker_call(&b, svc_fn, &bad, NULL), ACT_EIO);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_OPEN);
    /* Failures further apart than the window never add up. */
    assert_int_equal(act_breaker_init_windowed(&b, 2, 100, 1000, 1), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(act_breaker_call(&b, svc_fn, &bad, NULL), ACT_EIO);
        assert_int_equal(act_sleep(100), 0);
    }
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    /* ACT_FOREVER: every failure since it last closed, however far apart. */
    assert_int_equal(act_breaker_init_windowed(&b, 3, ACT_FOREVER, 1000, 1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
        assert_int_equal(act_breaker_call(&b, svc_fn, &bad, NULL), ACT_EIO);
        assert_int_equal(act_breaker_call(&b, svc_fn, &ok, NULL), i < 2 ? 0 : ACT_ECIRCUIT);
        assert_int_equal(act_sleep(10000), 0);
    }
    /* Half-open probe succeeds: closed again, the count starts from zero. */
    assert_int_equal(act_breaker_call(&b, svc_fn, &ok, NULL), 0);
    assert_int_equal(act_breaker_state(&b), ACT_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    return 0;
}

static void test_breaker_windowed_counts_failures_between_successes(void **state) {
    (void)state;
    assert_int_equal(harness_run(breaker_windowed, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_succeeds_on_third_attempt),
        cmocka_unit_test(test_retry_delays_grow_exponentially_up_to_cap),
        cmocka_unit_test(test_retry_gives_up_with_last_error),
        cmocka_unit_test(test_retry_never_retries_cancellation_or_rejected_codes),
        cmocka_unit_test(test_retry_stops_when_cancelled_during_backoff),
        cmocka_unit_test(test_retry_jitter_is_bounded_and_repeatable),
        cmocka_unit_test(test_breaker_opens_after_threshold_and_rejects),
        cmocka_unit_test(test_breaker_half_open_admits_limited_probes_then_closes),
        cmocka_unit_test(test_breaker_probe_failure_reopens),
        cmocka_unit_test(test_breaker_ignores_stale_and_cancelled_outcomes),
        cmocka_unit_test(test_breaker_windowed_counts_failures_between_successes),
        cmocka_unit_test(test_fallback_on_timeout_only_unless_asked),
        cmocka_unit_test(test_no_fallback_when_caller_cancelled_or_outer_scope_expires),
        cmocka_unit_test(test_map_bounds_concurrency_and_keeps_input_order),
        cmocka_unit_test(test_map_uses_limit_tasks_not_n),
        cmocka_unit_test(test_map_fail_fast_cancels_the_rest),
        cmocka_unit_test(test_map_collect_gives_code_per_item),
        cmocka_unit_test(test_map_caller_cancel_is_reported_as_cancel),
        cmocka_unit_test(test_batch_runs_batches_one_after_another),
        cmocka_unit_test(test_supervisor_restarts_crashing_child),
        cmocka_unit_test(test_supervisor_permanent_transient_temporary),
        cmocka_unit_test(test_supervisor_gives_up_past_restart_intensity),
        cmocka_unit_test(test_supervisor_restarts_spread_over_time_do_not_give_up),
        cmocka_unit_test(test_supervisor_caller_cancel_stops_children),
        cmocka_unit_test(test_supervisor_one_for_all_and_rest_for_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
