/* test_model_guard.c: the model guard (worker/agent/model/model_guard.c) around scripted in-process
 * models, on the virtual clock, so backoff, Retry-After, the requests-per-second spacing and
 * breaker timeouts are checked to the millisecond: the retry schedule, what is never retried
 * (cancellation, timeouts, streamed text, refused requests), breakers, fallback, the
 * concurrency semaphore and the budget hook. Also the model entry point's argument checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model.h"

/* ---- a scripted model ---- */

typedef struct step {
    int rc;              /* what the call returns */
    int64_t retry_after; /* > 0: the reply's Retry-After, ms */
    int64_t sleep_ms;    /* how long the call takes */
    const char *delta;   /* streamed before the outcome */
} step_t;

typedef struct mock {
    agt_model_t base;
    const step_t *steps; /* the last one repeats */
    size_t n;
    int calls;
    int64_t at[32]; /* act_now() at each call */
    int in_flight, max_in_flight;
    int *destroyed; /* counts destroy calls */
} mock_t;

static int mock_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                         int64_t deadline) {
    (void)deadline;
    mock_t *k = (mock_t *)m;
    int i = k->calls++;
    k->at[i < 32 ? i : 31] = act_now();
    const step_t *s = &k->steps[(size_t)i < k->n ? (size_t)i : k->n - 1];
    out->attempts = 1;
    if (++k->in_flight > k->max_in_flight) k->max_in_flight = k->in_flight;
    int rc = s->sleep_ms ? act_sleep(s->sleep_ms) : 0;
    k->in_flight--;
    if (rc) return rc;
    if (s->delta && req->on_delta) {
        out->deltas++;
        if ((rc = req->on_delta(req->ctx, s->delta, strlen(s->delta)))) return rc;
    }
    out->retry_after_ms = s->retry_after > 0 ? s->retry_after : -1;
    if (s->rc) {
        snprintf(out->error, sizeof(out->error), "scripted %s", agt_model_err_code(s->rc));
        return s->rc;
    }
    out->text = strdup("ok");
    out->text_len = 2;
    out->usage = (agt_usage_t){5, 3, 8};
    return out->text ? 0 : ACT_ENOMEM;
}

static void mock_destroy(agt_model_t *m) {
    mock_t *k = (mock_t *)m;
    if (k->destroyed) ++*k->destroyed;
    free(k);
}

static const agt_model_ops_t mock_ops = {"mock", mock_generate, mock_destroy};

static mock_t *new_mock(const char *name, const step_t *steps, size_t n) {
    mock_t *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    k->base.ops = &mock_ops;
    snprintf(k->base.name, sizeof(k->base.name), "%s", name);
    k->steps = steps;
    k->n = n;
    return k;
}

#define MOCK(name, ...)                                                                            \
    new_mock(name, (const step_t[]){__VA_ARGS__},                                                  \
             sizeof((const step_t[]){__VA_ARGS__}) / sizeof(step_t))

static const step_t OK = {0};
static const step_t DOWN = {.rc = AGT_EMODEL_UNAVAILABLE};

typedef struct retries {
    int n;
    int code[16];
    int64_t wait[16];
} retries_t;

static void note_retry(void *ctx, const char *backend, int attempt, int code, int64_t wait) {
    (void)backend;
    retries_t *r = ctx;
    assert_int_equal(attempt, r->n + 1);
    r->code[r->n] = code;
    r->wait[r->n++] = wait;
}

static agt_guard_opts_t opts(retries_t *seen) {
    agt_guard_opts_t o;
    agt_guard_opts_init(&o);
    o.base_delay_ms = 100;
    o.jitter = 0;
    o.on_retry = seen ? note_retry : NULL;
    o.ctx = seen;
    return o;
}

static const agt_message_t msgs[] = {{.role = AGT_ROLE_USER, .content = "hi"}};

static int call(agt_model_t *g, int64_t deadline, agt_model_response_t *r) {
    agt_model_request_t q;
    agt_model_request_init(&q);
    q.messages = msgs;
    q.n_messages = 1;
    return agt_model_generate(g, &q, r, deadline);
}

static agt_model_t *guard(mock_t *primary, mock_t *fallback, const agt_guard_opts_t *o) {
    agt_model_t *g = NULL;
    assert_int_equal(agt_guard_new(&g, &primary->base, fallback ? &fallback->base : NULL, o), 0);
    return g;
}

/* ---- the retry schedule ---- */

static int schedule_body(void *arg, void **result) {
    (void)arg, (void)result;
    retries_t seen = {0};
    agt_guard_opts_t o = opts(&seen);
    o.max_attempts = 4;
    mock_t *k = MOCK("m", DOWN, DOWN, {.rc = AGT_EMODEL_RATE_LIMITED, .retry_after = 5000}, OK);
    agt_model_t *g = guard(k, NULL, &o);
    int64_t t0 = act_now();
    agt_model_response_t r;
    harness_log_capture();
    assert_int_equal(call(g, -1, &r), 0);
    assert_int_equal(harness_log_count("event=model_retry backend=m attempt="), 3);
    assert_int_equal(harness_log_count("code=model_rate_limited status=0 wait_ms=5000"), 1);
    harness_log_release();
    assert_string_equal(r.text, "ok");
    assert_int_equal(r.attempts, 4);
    assert_string_equal(r.backend, "m");
    assert_int_equal(k->calls, 4);
    /* 100, then 200 (doubling), then Retry-After's 5000 beats the 400 backoff. */
    assert_int_equal(k->at[0] - t0, 0);
    assert_int_equal(k->at[1] - t0, 100);
    assert_int_equal(k->at[2] - t0, 300);
    assert_int_equal(k->at[3] - t0, 5300);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.wait[0], 100);
    assert_int_equal(seen.wait[1], 200);
    assert_int_equal(seen.wait[2], 5000);
    assert_int_equal(seen.code[2], AGT_EMODEL_RATE_LIMITED);
    agt_model_response_free(&r);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_backoff_doubles_and_retry_after_stretches_it(void **state) {
    (void)state;
    assert_int_equal(harness_run(schedule_body, NULL, VCLOCK), 0);
}

static int cap_body(void *arg, void **result) {
    (void)arg, (void)result;
    retries_t seen = {0};
    agt_guard_opts_t o = opts(&seen);
    o.max_attempts = 5;
    o.max_delay_ms = 250;
    o.breaker_threshold = 100;
    agt_model_t *g = guard(MOCK("m", DOWN), NULL, &o);
    agt_model_response_t r;
    assert_int_equal(call(g, -1, &r), AGT_EMODEL_UNAVAILABLE);
    assert_int_equal(r.attempts, 5);
    assert_string_equal(r.error, "scripted model_unavailable");
    int64_t want[] = {100, 200, 250, 250};
    assert_int_equal(seen.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen.wait[i], want[i]);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_backoff_is_capped_and_attempts_are_bounded(void **state) {
    (void)state;
    assert_int_equal(harness_run(cap_body, NULL, VCLOCK), 0);
}

static int jitter_body(void *arg, void **result) {
    (void)result;
    retries_t *seen = arg;
    agt_guard_opts_t o = opts(seen);
    o.max_attempts = 6;
    o.jitter = 1.0;
    o.breaker_threshold = 100;
    agt_model_t *g = guard(MOCK("m", DOWN), NULL, &o);
    agt_model_response_t r;
    assert_int_equal(call(g, -1, &r), AGT_EMODEL_UNAVAILABLE);
    int64_t d = 100;
    for (int i = 0; i < seen->n; i++, d *= 2)
        assert_true(seen->wait[i] >= 0 && seen->wait[i] <= d);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_jitter_stays_within_the_backoff_and_repeats(void **state) {
    (void)state;
    retries_t a = {0}, b = {0};
    assert_int_equal(harness_run(jitter_body, &a, VCLOCK), 0);
    assert_int_equal(harness_run(jitter_body, &b, VCLOCK), 0);
    assert_int_equal(a.n, 5);
    assert_memory_equal(a.wait, b.wait, sizeof(a.wait)); /* the loop's seeded generator */
    bool varied = false;
    for (int i = 0; i < a.n; i++)
        varied |= a.wait[i] != (100 << i);
    assert_true(varied);
}

static int retry_after_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_guard_opts_t o = opts(NULL);
    o.max_retry_after_ms = 2000;
    mock_t *k = MOCK("m", {.rc = AGT_EMODEL_RATE_LIMITED, .retry_after = 1500}, OK);
    agt_model_t *g = guard(k, NULL, &o);
    int64_t t0 = act_now();
    agt_model_response_t r;
    /* Retry-After past the deadline: fail now rather than sleep into it. */
    assert_int_equal(call(g, act_deadline_in(1000), &r), AGT_EMODEL_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 1500);
    assert_int_equal(k->calls, 1);
    assert_int_equal(act_now(), t0);
    /* Within the deadline: waited. */
    k->calls = 0;
    assert_int_equal(call(g, act_deadline_in(3000), &r), 0);
    assert_int_equal(act_now() - t0, 1500);
    agt_model_response_free(&r);
    agt_model_destroy(&g);
    /* Longer than max_retry_after_ms: not waited for. */
    k = MOCK("m", {.rc = AGT_EMODEL_RATE_LIMITED, .retry_after = 5000}, OK);
    g = guard(k, NULL, &o);
    assert_int_equal(call(g, -1, &r), AGT_EMODEL_RATE_LIMITED);
    assert_int_equal(k->calls, 1);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_does_not_wait_a_retry_after_past_the_deadline_or_cap(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_after_body, NULL, VCLOCK), 0);
}

/* ---- what is never retried nor handed to the fallback ---- */

typedef struct caller {
    agt_model_t *g;
    agt_model_response_t r;
} caller_t;

static int call_task(void *arg, void **result) {
    (void)result;
    caller_t *c = arg;
    return call(c->g, -1, &c->r);
}

static int cancel_body(void *arg, void **result) {
    (void)arg, (void)result;
    mock_t *p = MOCK("p", {.sleep_ms = 1000}), *f = MOCK("f", OK);
    agt_guard_opts_t o = opts(NULL);
    caller_t c = {.g = guard(p, f, &o)};
    act_task_t *t;
    assert_int_equal(act_spawn(call_task, &c, NULL, &t), 0);
    act_sleep(100);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(p->calls, 1);
    assert_int_equal(f->calls, 0);
    assert_int_equal(agt_guard_breaker(c.g, 0)->failures, 0); /* no verdict */
    agt_model_destroy(&c.g);
    return 0;
}

static void test_guard_never_retries_or_falls_back_on_cancellation(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_body, NULL, VCLOCK), 0);
}

static int timeout_body(void *arg, void **result) {
    (void)arg, (void)result;
    mock_t *p = MOCK("p", {.sleep_ms = 1000}), *f = MOCK("f", OK);
    agt_guard_opts_t o = opts(NULL);
    agt_model_t *g = guard(p, f, &o);
    int64_t t0 = act_now();
    agt_model_response_t r;
    assert_int_equal(call(g, act_deadline_in(200), &r), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 200);
    assert_int_equal(p->calls, 1);
    assert_int_equal(f->calls, 0);
    /* A deadline that passes in a backoff sleep ends the call too. */
    agt_model_destroy(&g);
    p = MOCK("p", DOWN);
    g = guard(p, NULL, &o);
    assert_int_equal(call(g, act_deadline_in(150), &r), ACT_ETIMEDOUT);
    assert_int_equal(p->calls, 2); /* at 0 and 100; the 200 ms backoff passes 150 */
    assert_non_null(strstr(r.error, "deadline passed while calling p after: scripted"));
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_deadline_is_not_handed_to_the_fallback(void **state) {
    (void)state;
    assert_int_equal(harness_run(timeout_body, NULL, VCLOCK), 0);
}

static int count_delta(void *ctx, const char *text, size_t len) {
    (void)text, (void)len;
    ++*(int *)ctx;
    return 0;
}

static int streamed_body(void *arg, void **result) {
    (void)arg, (void)result;
    mock_t *p = MOCK("p", {.rc = AGT_EMODEL_UNAVAILABLE, .delta = "par"}), *f = MOCK("f", OK);
    agt_guard_opts_t o = opts(NULL);
    agt_model_t *g = guard(p, f, &o);
    int n = 0;
    agt_model_request_t q;
    agt_model_request_init(&q);
    q.messages = msgs;
    q.n_messages = 1;
    q.on_delta = count_delta;
    q.ctx = &n;
    agt_model_response_t r;
    assert_int_equal(agt_model_generate(g, &q, &r, -1), AGT_EMODEL_UNAVAILABLE);
    assert_int_equal(n, 1);
    assert_int_equal(r.deltas, 1);
    assert_int_equal(p->calls, 1);
    assert_int_equal(f->calls, 0);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_never_repeats_streamed_text(void **state) {
    (void)state;
    assert_int_equal(harness_run(streamed_body, NULL, VCLOCK), 0);
}

static int which_fallback_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_guard_opts_t o = opts(NULL);
    struct {
        int rc;
        bool falls, retried;
    } cases[] = {
        {AGT_EMODEL_BAD_REQUEST, false, false}, {AGT_EMODEL_UNAUTHORIZED, false, false},
        {AGT_EMODEL_BAD_RESPONSE, true, false}, {AGT_EMODEL_RATE_LIMITED, true, true},
        {AGT_EMODEL_UNAVAILABLE, true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        step_t s = {.rc = cases[i].rc};
        mock_t *p = new_mock("p", &s, 1), *f = MOCK("f", OK);
        agt_model_t *g = guard(p, f, &o);
        agt_model_response_t r;
        int rc = call(g, -1, &r);
        assert_int_equal(rc, cases[i].falls ? 0 : cases[i].rc);
        assert_int_equal(f->calls, cases[i].falls);
        assert_int_equal(p->calls, cases[i].retried ? 3 : 1);
        if (rc == 0) assert_string_equal(r.backend, "f");
        agt_model_response_free(&r);
        agt_model_destroy(&g);
    }
    return 0;
}

static void test_guard_falls_back_only_on_server_trouble(void **state) {
    (void)state;
    assert_int_equal(harness_run(which_fallback_body, NULL, VCLOCK), 0);
}

/* ---- breaker ---- */

static int breaker_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_guard_opts_t o = opts(NULL);
    o.max_attempts = 1;
    o.breaker_threshold = 2;
    o.breaker_reset_ms = 1000;
    mock_t *k = MOCK("m", DOWN, DOWN, OK);
    agt_model_t *g = guard(k, NULL, &o);
    const act_breaker_t *b = agt_guard_breaker(g, 0);
    agt_model_response_t r;
    assert_int_equal(call(g, -1, &r), AGT_EMODEL_UNAVAILABLE);
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_CLOSED);
    assert_int_equal(call(g, -1, &r), AGT_EMODEL_UNAVAILABLE);
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_OPEN);
    assert_int_equal(call(g, -1, &r), ACT_ECIRCUIT);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(k->calls, 2);
    act_sleep(1000);
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_HALF_OPEN);
    assert_int_equal(call(g, -1, &r), 0); /* the probe succeeds: closed again */
    assert_int_equal(act_breaker_state(b), ACT_BREAKER_CLOSED);
    agt_model_response_free(&r);
    agt_model_destroy(&g);
    /* Rate limits and refusals prove the server is up: they never open it. */
    k = MOCK("m", {.rc = AGT_EMODEL_RATE_LIMITED}, {.rc = AGT_EMODEL_BAD_REQUEST});
    g = guard(k, NULL, &o);
    for (int i = 0; i < 4; i++)
        assert_true(call(g, -1, &r) < 0);
    assert_int_equal(act_breaker_state(agt_guard_breaker(g, 0)), ACT_BREAKER_CLOSED);
    assert_int_equal(k->calls, 4);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_breaker_opens_then_a_probe_closes_it(void **state) {
    (void)state;
    assert_int_equal(harness_run(breaker_body, NULL, VCLOCK), 0);
}

/* ---- admission: rps, concurrency, budget ---- */

static int rps_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_guard_opts_t o = opts(NULL);
    o.rps = 10;
    o.burst = 2;
    mock_t *k = MOCK("m", OK);
    agt_model_t *g = guard(k, NULL, &o);
    int64_t t0 = act_now();
    agt_model_response_t r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(call(g, -1, &r), 0);
        agt_model_response_free(&r);
    }
    int64_t want[] = {0, 0, 100, 200, 300};
    for (int i = 0; i < 5; i++)
        assert_int_equal(k->at[i] - t0, want[i]);
    /* Idle long enough and the burst is back; a start past the deadline fails at once. */
    act_sleep(1000);
    int64_t t1 = act_now();
    assert_int_equal(call(g, -1, &r), 0), agt_model_response_free(&r);
    assert_int_equal(call(g, -1, &r), 0), agt_model_response_free(&r);
    assert_int_equal(call(g, act_deadline_in(50), &r), ACT_ETIMEDOUT);
    assert_int_equal(act_now(), t1);
    assert_int_equal(k->calls, 7);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_spaces_requests_to_the_rate_limit(void **state) {
    (void)state;
    assert_int_equal(harness_run(rps_body, NULL, VCLOCK), 0);
}

static int concurrency_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_guard_opts_t o = opts(NULL);
    o.max_concurrency = 2;
    mock_t *k = MOCK("m", {.sleep_ms = 100});
    caller_t c[5];
    act_task_t *t[5];
    agt_model_t *g = guard(k, NULL, &o);
    int64_t t0 = act_now();
    for (int i = 0; i < 5; i++) {
        c[i] = (caller_t){.g = g};
        assert_int_equal(act_spawn(call_task, &c[i], NULL, &t[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), 0);
        act_task_release(&t[i]);
        agt_model_response_free(&c[i].r);
    }
    assert_int_equal(k->max_in_flight, 2);
    assert_int_equal(act_now() - t0, 300); /* 2 + 2 + 1 */
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_holds_the_concurrency_limit(void **state) {
    (void)state;
    assert_int_equal(harness_run(concurrency_body, NULL, VCLOCK), 0);
}

typedef struct budget {
    int acquired, released;
    int refuse;      /* code acquire returns, 0 grants */
    int64_t tokens;  /* reported with the releases */
    int unknown;     /* releases without tokens */
} budget_t;

static int budget_acquire(void *ctx, const char *backend, int64_t deadline) {
    (void)deadline;
    budget_t *b = ctx;
    assert_string_equal(backend, "m");
    if (b->refuse) return b->refuse;
    b->acquired++;
    return 0;
}

static void budget_release(void *ctx, const char *backend, int64_t tokens) {
    (void)backend;
    budget_t *b = ctx;
    b->released++;
    if (tokens > 0)
        b->tokens += tokens;
    else
        b->unknown++;
}

static int budget_body(void *arg, void **result) {
    (void)arg, (void)result;
    budget_t b = {0};
    agt_model_budget_t hook = {budget_acquire, budget_release, &b};
    agt_guard_opts_t o = opts(NULL);
    o.budget = &hook;
    mock_t *k = MOCK("m", DOWN, DOWN, OK);
    agt_model_t *g = guard(k, NULL, &o);
    agt_model_response_t r;
    assert_int_equal(call(g, -1, &r), 0);
    agt_model_response_free(&r);
    assert_int_equal(b.acquired, 3); /* once per request, retries included */
    assert_int_equal(b.released, 3);
    assert_int_equal(b.tokens, 8); /* the answer's usage goes back with its permit... */
    assert_int_equal(b.unknown, 2); /* ...the failures reported none */
    b.refuse = ACT_ETIMEDOUT;
    assert_int_equal(call(g, -1, &r), ACT_ETIMEDOUT);
    assert_int_equal(k->calls, 3); /* refused: no request */
    assert_int_equal(b.released, 3);
    assert_int_equal(agt_guard_breaker(g, 0)->failures, 0);
    agt_model_destroy(&g);
    return 0;
}

static void test_guard_budget_hook_wraps_every_request(void **state) {
    (void)state;
    assert_int_equal(harness_run(budget_body, NULL, VCLOCK), 0);
}

/* ---- construction and the entry point ---- */

static void test_guard_owns_its_backends_even_when_refused(void **state) {
    (void)state;
    int destroyed = 0;
    mock_t *p = MOCK("p", OK), *f = MOCK("f", OK);
    p->destroyed = f->destroyed = &destroyed;
    agt_guard_opts_t o = opts(NULL);
    o.burst = 0;
    agt_model_t *g = NULL;
    assert_int_equal(agt_guard_new(&g, &p->base, &f->base, &o), ACT_EINVAL);
    assert_null(g);
    assert_int_equal(destroyed, 2);
    f = MOCK("f", OK);
    f->destroyed = &destroyed;
    assert_int_equal(agt_guard_new(&g, NULL, &f->base, NULL), ACT_EINVAL);
    assert_int_equal(destroyed, 3);
    p = MOCK("p", OK), f = MOCK("f", OK);
    p->destroyed = f->destroyed = &destroyed;
    assert_int_equal(agt_guard_new(&g, &p->base, &f->base, NULL), 0);
    assert_string_equal(g->name, "guard");
    assert_null(agt_guard_breaker(&p->base, 0)); /* not a guard */
    agt_model_destroy(&g);
    agt_model_destroy(&g); /* NULL-safe */
    assert_int_equal(destroyed, 5);
}

static int args_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_model_t *m = &MOCK("m", OK)->base;
    agt_model_request_t q;
    agt_model_request_init(&q);
    agt_model_response_t r;
    assert_int_equal(agt_model_generate(m, &q, &r, -1), ACT_EINVAL); /* no messages */
    assert_int_equal(agt_model_generate(m, NULL, &r, -1), ACT_EINVAL);
    assert_int_equal(agt_model_generate(m, &q, NULL, -1), ACT_EINVAL);
    agt_tool_call_t bad_call = {.id = "c", .name = "t"}; /* no arguments in either form */
    agt_message_t bad[] = {
        {.role = AGT_ROLE_ASSISTANT, .tool_calls = &bad_call, .n_tool_calls = 1}};
    q.messages = bad;
    q.n_messages = 1;
    assert_int_equal(agt_model_generate(m, &q, &r, -1), ACT_EINVAL);
    assert_string_equal(r.error, "malformed model request");
    assert_int_equal(((mock_t *)m)->calls, 0);
    agt_model_destroy(&m);
    return 0;
}

static void test_model_generate_checks_its_arguments(void **state) {
    (void)state;
    assert_int_equal(harness_run(args_body, NULL, VCLOCK), 0);
    agt_model_t *m = &MOCK("m", OK)->base;
    agt_model_request_t q;
    agt_model_request_init(&q);
    q.messages = msgs;
    q.n_messages = 1;
    agt_model_response_t r;
    assert_int_equal(agt_model_generate(m, &q, &r, -1), ACT_EINVAL); /* outside a task */
    agt_model_destroy(&m);
}

static void test_model_error_codes_are_stable(void **state) {
    (void)state;
    assert_string_equal(agt_model_err_code(0), "ok");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_RATE_LIMITED), "model_rate_limited");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_UNAVAILABLE), "model_unavailable");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_BAD_RESPONSE), "model_bad_response");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_BAD_REQUEST), "model_bad_request");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_UNAUTHORIZED), "model_unauthorized");
    assert_string_equal(agt_model_err_code(AGT_EMODEL_TIMEOUT), "model_timeout");
    assert_string_equal(agt_model_err_code(ACT_ETIMEDOUT), "timeout"); /* the caller's */
    assert_string_equal(agt_model_err_code(ACT_ECANCELED), "cancelled");
    assert_string_equal(agt_model_err_code(ACT_ECIRCUIT), "model_circuit_open");
    assert_string_equal(agt_model_err_code(ACT_ENOMEM), "internal");
    assert_string_equal(agt_model_strerror(AGT_EMODEL_UNAVAILABLE),
                        "model server failed or unreachable");
    assert_string_equal(agt_model_strerror(ACT_ECANCELED), act_strerror(ACT_ECANCELED));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_backoff_doubles_and_retry_after_stretches_it),
        cmocka_unit_test(test_guard_backoff_is_capped_and_attempts_are_bounded),
        cmocka_unit_test(test_guard_jitter_stays_within_the_backoff_and_repeats),
        cmocka_unit_test(test_guard_does_not_wait_a_retry_after_past_the_deadline_or_cap),
        cmocka_unit_test(test_guard_never_retries_or_falls_back_on_cancellation),
        cmocka_unit_test(test_guard_deadline_is_not_handed_to_the_fallback),
        cmocka_unit_test(test_guard_never_repeats_streamed_text),
        cmocka_unit_test(test_guard_falls_back_only_on_server_trouble),
        cmocka_unit_test(test_guard_breaker_opens_then_a_probe_closes_it),
        cmocka_unit_test(test_guard_spaces_requests_to_the_rate_limit),
        cmocka_unit_test(test_guard_holds_the_concurrency_limit),
        cmocka_unit_test(test_guard_budget_hook_wraps_every_request),
        cmocka_unit_test(test_guard_owns_its_backends_even_when_refused),
        cmocka_unit_test(test_model_generate_checks_its_arguments),
        cmocka_unit_test(test_model_error_codes_are_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
