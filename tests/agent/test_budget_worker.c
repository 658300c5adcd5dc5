/* test_budget_worker.c: the worker's client of the broker's model budget (worker/agent/
 * budget.c) against a fake broker in the test: what it sends (budget.acquire, .release,
 * .cancel, decoded back with the real codec), waiting for a grant, deadlines and cancellation
 * (a grant that crosses the cancel is given back), denies, a lost connection, and the model
 * guard on top of it never running more requests than the broker grants. Virtual clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_client.h"
#include "harness.h"

/* ---- the fake broker: records what is sent, answers through the real codec ---- */

#define MAX_SENT 64
typedef struct sent {
    proto_type_t type;
    uint64_t req;
    char backend[64];
    uint64_t tokens; /* budget.release: tokens reported (0: none) */
} sent_t;

typedef struct fake {
    sent_t sent[MAX_SENT];
    size_t n;
    act_event_t got; /* set when something was sent */
} fake_t;

static void fake_send(void *ctx, const proto_buf_t *msg) {
    fake_t *f = ctx;
    proto_msg_t m;
    assert_int_equal(proto_decode(msg->p, msg->n, NULL, &m, NULL), 0);
    assert_true(f->n < MAX_SENT);
    sent_t *s = &f->sent[f->n++];
    s->type = m.type;
    s->req = m.req;
    s->tokens = m.tokens;
    snprintf(s->backend, sizeof s->backend, "%.*s", (int)m.backend.n, m.backend.p);
    act_event_set(&f->got);
}

static proto_buf_t enc;

/* Delivers what proto_enc_* just wrote in enc to the client, as the worker's dispatch does. */
static void deliver(agt_budget_t *b) {
    proto_msg_t m;
    assert_int_equal(proto_decode(enc.p, enc.n, NULL, &m, NULL), 0);
    assert_int_equal(agt_budget_on_message(b, &m), 0);
}

static void announce(agt_budget_t *b, uint64_t concurrency, double rps) {
    assert_int_equal(proto_enc_budget(&enc, concurrency, rps, 1, 0), 0);
    deliver(b);
}

static void grant(agt_budget_t *b, uint64_t req) {
    assert_int_equal(proto_enc_budget_grant(&enc, req), 0);
    deliver(b);
}

static void deny(agt_budget_t *b, uint64_t req, const char *code) {
    assert_int_equal(proto_enc_budget_deny(&enc, req, code, "scripted"), 0);
    deliver(b);
}

static agt_budget_t *new_budget(fake_t *f) {
    memset(f, 0, sizeof *f);
    act_event_init(&f->got);
    proto_buf_init(&enc);
    agt_budget_t *b = NULL;
    assert_int_equal(agt_budget_new(&b, fake_send, f), 0);
    return b;
}

static void done_budget(agt_budget_t **b) {
    agt_budget_destroy(b);
    assert_null(*b);
    proto_buf_free(&enc);
}

/* ---- one acquire in a task of its own ---- */

typedef struct call {
    agt_budget_t *b;
    const char *backend;
    int64_t deadline;
    int rc;
    bool done;
    bool hold;          /* after a grant, wait for `release` and give the permit back */
    act_event_t release;
    int64_t tokens;     /* what the release reports (-1: unknown) */
} call_t;

/* Acquires; with hold, keeps the permit until told, then releases it on this task (acquire
 * and release pair up per task, as in the model guard). */
static int acquire_task(void *arg, void **result) {
    (void)result;
    call_t *c = arg;
    const agt_model_budget_t *h = agt_budget_hook(c->b);
    c->rc = h->acquire(h->ctx, c->backend, c->deadline);
    c->done = true;
    if (c->hold && c->rc == 0) {
        act_event_wait(&c->release, -1);
        h->release(h->ctx, c->backend, c->tokens ? c->tokens : -1);
    }
    return 0;
}

static void let_go(call_t *c) {
    act_event_set(&c->release);
    act_sleep(0);
}

static act_task_t *start_acquire(call_t *c) {
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(acquire_task, c, NULL, &t), 0);
    act_sleep(0); /* let it send and park */
    return t;
}

static void finish(act_task_t **t) {
    assert_int_equal(act_join(*t, NULL, -1), 0);
    act_task_release(t);
}

/* ---- tests ---- */

static int passthrough_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    const agt_model_budget_t *h = agt_budget_hook(b);
    assert_false(agt_budget_active(b));
    assert_int_equal(h->acquire(h->ctx, "m", -1), 0);
    h->release(h->ctx, "m", -1);
    assert_int_equal(f.n, 0); /* nothing asked, nothing given back */
    announce(b, 0, 0);        /* no limit in it: still nothing to ask */
    assert_false(agt_budget_active(b));
    assert_int_equal(h->acquire(h->ctx, "m", -1), 0);
    assert_int_equal(f.n, 0);
    done_budget(&b);
    return 0;
}

static void test_acquire_passes_through_until_a_budget_is_announced(void **state) {
    (void)state;
    assert_int_equal(harness_run(passthrough_body, NULL, VCLOCK), 0);
}

static int grant_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    announce(b, 2, 0);
    assert_true(agt_budget_active(b));
    call_t c1 = {.b = b, .backend = "m", .deadline = -1, .hold = true};
    call_t c2 = {.b = b, .backend = "other", .deadline = -1, .hold = true, .tokens = 412};
    act_event_init(&c1.release);
    act_event_init(&c2.release);
    act_task_t *t1 = start_acquire(&c1), *t2 = start_acquire(&c2);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.sent[0].type, PROTO_BUDGET_ACQUIRE);
    assert_string_equal(f.sent[0].backend, "m");
    assert_int_equal(f.sent[1].type, PROTO_BUDGET_ACQUIRE);
    assert_string_equal(f.sent[1].backend, "other");
    assert_true(f.sent[0].req != f.sent[1].req);
    assert_int_equal(agt_budget_waiting(b), 2);
    assert_false(c1.done || c2.done);
    grant(b, f.sent[1].req); /* the broker's order, not ours: the second goes first */
    act_sleep(0);
    assert_true(c2.done && !c1.done);
    assert_int_equal(c2.rc, 0);
    grant(b, f.sent[0].req);
    act_sleep(0);
    assert_int_equal(c1.rc, 0);
    assert_int_equal(agt_budget_held(b), 2);
    const agt_model_budget_t *h = agt_budget_hook(b);
    h->release(h->ctx, "m", -1); /* this task holds none: another task's permit stays held */
    assert_int_equal(f.n, 2);
    assert_int_equal(agt_budget_held(b), 2);
    let_go(&c2);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.sent[2].type, PROTO_BUDGET_RELEASE);
    assert_string_equal(f.sent[2].backend, "other");
    assert_int_equal(f.sent[2].tokens, 412); /* the tokens it used go back with the permit */
    let_go(&c1);
    finish(&t1);
    finish(&t2);
    assert_int_equal(f.n, 4);
    assert_int_equal(agt_budget_held(b), 0);
    act_event_close(&c1.release);
    act_event_close(&c2.release);
    done_budget(&b);
    return 0;
}

static void test_acquire_waits_for_its_grant_and_release_goes_back(void **state) {
    (void)state;
    assert_int_equal(harness_run(grant_body, NULL, VCLOCK), 0);
}

static int deadline_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    announce(b, 1, 0);
    call_t c = {.b = b, .backend = "m", .deadline = act_deadline_in(100)};
    act_task_t *t = start_acquire(&c);
    act_sleep(99);
    assert_false(c.done);
    finish(&t);
    assert_int_equal(c.rc, ACT_ETIMEDOUT);
    assert_int_equal(act_now(), 100);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.sent[1].type, PROTO_BUDGET_CANCEL);
    assert_int_equal(f.sent[1].req, f.sent[0].req);
    assert_int_equal(agt_budget_waiting(b), 0);
    grant(b, f.sent[0].req); /* crossed the cancel: given back at once */
    assert_int_equal(f.n, 3);
    assert_int_equal(f.sent[2].type, PROTO_BUDGET_RELEASE);
    assert_string_equal(f.sent[2].backend, "m");
    assert_int_equal(agt_budget_held(b), 0);
    grant(b, f.sent[0].req); /* answered already: logged, nothing sent */
    assert_int_equal(f.n, 3);
    done_budget(&b);
    return 0;
}

static void test_deadline_sends_cancel_and_a_crossing_grant_is_given_back(void **state) {
    (void)state;
    assert_int_equal(harness_run(deadline_body, NULL, VCLOCK), 0);
}

static int cancel_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    announce(b, 1, 0);
    call_t c = {.b = b, .backend = "m", .deadline = -1};
    act_task_t *t = start_acquire(&c);
    act_task_cancel(t);
    finish(&t);
    assert_int_equal(c.rc, ACT_ECANCELED);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.sent[1].type, PROTO_BUDGET_CANCEL);
    deny(b, f.sent[0].req, "cancelled"); /* the broker's answer to the cancel: quiet */
    assert_int_equal(f.n, 2);
    assert_int_equal(agt_budget_held(b), 0);
    done_budget(&b);
    return 0;
}

static void test_task_cancel_sends_cancel_and_its_deny_is_quiet(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_body, NULL, VCLOCK), 0);
}

static int deny_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    announce(b, 1, 0);
    call_t c = {.b = b, .backend = "m", .deadline = -1};
    call_t d = {.b = b, .backend = "m", .deadline = -1};
    act_task_t *t = start_acquire(&c), *u = start_acquire(&d);
    deny(b, f.sent[0].req, "overloaded");
    deny(b, f.sent[1].req, "bad_request");
    finish(&t);
    finish(&u);
    assert_int_equal(c.rc, AGT_EMODEL_RATE_LIMITED); /* the guard may retry it later */
    assert_int_equal(d.rc, ACT_EIO);
    assert_int_equal(agt_budget_held(b), 0);
    assert_int_equal(f.n, 2);
    const agt_model_budget_t *h = agt_budget_hook(b);
    assert_int_equal(h->acquire(h->ctx, "", -1), ACT_EINVAL);
    done_budget(&b);
    return 0;
}

static void test_denies_fail_the_acquire_with_their_code(void **state) {
    (void)state;
    assert_int_equal(harness_run(deny_body, NULL, VCLOCK), 0);
}

static int reset_body(void *arg, void **result) {
    (void)arg, (void)result;
    fake_t f;
    agt_budget_t *b = new_budget(&f);
    const agt_model_budget_t *h = agt_budget_hook(b);
    announce(b, 1, 0);
    call_t held = {.b = b, .backend = "m", .deadline = -1, .hold = true};
    call_t waiting = {.b = b, .backend = "m", .deadline = -1};
    act_event_init(&held.release);
    act_task_t *h_task = start_acquire(&held);
    grant(b, f.sent[0].req);
    act_sleep(0);
    assert_true(held.done && held.rc == 0);
    act_task_t *t = start_acquire(&waiting);
    assert_int_equal(f.n, 2);
    agt_budget_reset(b); /* the connection is gone */
    finish(&t);
    assert_int_equal(waiting.rc, ACT_ECLOSED);
    assert_false(agt_budget_active(b));
    announce(b, 1, 0); /* the next connection */
    let_go(&held);     /* the old connection's permit: the broker took it back */
    finish(&h_task);
    assert_int_equal(f.n, 2);
    assert_int_equal(agt_budget_held(b), 0);
    act_event_close(&held.release);
    agt_budget_reset(b);
    assert_int_equal(h->acquire(h->ctx, "m", -1), 0); /* no budget announced yet */
    assert_int_equal(f.n, 2);
    done_budget(&b);
    return 0;
}

static void test_reset_fails_waiters_and_forgets_old_permits(void **state) {
    (void)state;
    assert_int_equal(harness_run(reset_body, NULL, VCLOCK), 0);
}

/* ---- the guard on top, against a broker that grants at most N at once ---- */

typedef struct broker {
    fake_t f;
    agt_budget_t *b;
    size_t seen;     /* sent messages handled */
    uint64_t queue[MAX_SENT];
    size_t qh, qt;   /* FIFO of waiting reqs */
    int in_use, cap, max_in_use, grants;
} broker_t;

static int broker_task(void *arg, void **result) {
    (void)result;
    broker_t *k = arg;
    for (;;) {
        act_event_clear(&k->f.got);
        for (; k->seen < k->f.n; k->seen++) {
            sent_t *s = &k->f.sent[k->seen];
            if (s->type == PROTO_BUDGET_ACQUIRE) k->queue[k->qt++] = s->req;
            if (s->type == PROTO_BUDGET_RELEASE) k->in_use--;
        }
        while (k->qh < k->qt && k->in_use < k->cap) {
            k->in_use++;
            k->grants++;
            if (k->in_use > k->max_in_use) k->max_in_use = k->in_use;
            grant(k->b, k->queue[k->qh++]);
        }
        int rc = act_event_wait(&k->f.got, -1);
        if (rc) return rc;
    }
}

typedef struct slow {
    agt_model_t base;
    int in_flight, max_in_flight, calls;
} slow_t;

static int slow_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                         int64_t deadline) {
    (void)req, (void)deadline;
    slow_t *s = (slow_t *)m;
    s->calls++;
    if (++s->in_flight > s->max_in_flight) s->max_in_flight = s->in_flight;
    int rc = act_sleep(10);
    s->in_flight--;
    out->attempts = 1;
    out->text = strdup("ok");
    return rc ? rc : out->text ? 0 : ACT_ENOMEM;
}

static void slow_destroy(agt_model_t *m) { (void)m; /* on the test's stack */ }
static const agt_model_ops_t slow_ops = {"slow", slow_generate, slow_destroy};

static int guard_call(void *arg, void **result) {
    (void)result;
    agt_model_t *g = arg;
    agt_message_t msg = {.role = AGT_ROLE_USER, .content = "hi"};
    agt_model_request_t req;
    agt_model_request_init(&req);
    req.messages = &msg;
    req.n_messages = 1;
    agt_model_response_t r = {0};
    int rc = agt_model_generate(g, &req, &r, -1);
    agt_model_response_free(&r);
    return rc;
}

static int guard_body(void *arg, void **result) {
    (void)arg, (void)result;
    broker_t k = {.cap = 2};
    k.b = new_budget(&k.f);
    announce(k.b, 2, 0);
    act_task_t *bt = NULL;
    assert_int_equal(act_spawn(broker_task, &k, NULL, &bt), 0);
    slow_t s = {.base = {.ops = &slow_ops, .name = "m"}};
    agt_guard_opts_t o;
    agt_guard_opts_init(&o);
    o.max_concurrency = 0; /* only the broker limits */
    o.budget = agt_budget_hook(k.b);
    agt_model_t *g = NULL;
    assert_int_equal(agt_guard_new(&g, &s.base, NULL, &o), 0);
    act_task_t *t[6];
    for (int i = 0; i < 6; i++) assert_int_equal(act_spawn(guard_call, g, NULL, &t[i]), 0);
    for (int i = 0; i < 6; i++) finish(&t[i]);
    assert_int_equal(s.calls, 6);
    assert_int_equal(s.max_in_flight, 2); /* never more than the broker granted */
    assert_int_equal(k.max_in_use, 2);
    assert_int_equal(k.grants, 6);
    act_sleep(0);
    assert_int_equal(k.in_use, 0); /* every permit came back */
    assert_int_equal(act_now(), 30); /* three rounds of two */
    act_task_cancel(bt);
    act_join(bt, NULL, -1);
    act_task_release(&bt);
    agt_model_destroy(&g);
    done_budget(&k.b);
    return 0;
}

static void test_guard_never_runs_more_than_the_broker_grants(void **state) {
    (void)state;
    assert_int_equal(harness_run(guard_body, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_passes_through_until_a_budget_is_announced),
        cmocka_unit_test(test_acquire_waits_for_its_grant_and_release_goes_back),
        cmocka_unit_test(test_deadline_sends_cancel_and_a_crossing_grant_is_given_back),
        cmocka_unit_test(test_task_cancel_sends_cancel_and_its_deny_is_quiet),
        cmocka_unit_test(test_denies_fail_the_acquire_with_their_code),
        cmocka_unit_test(test_reset_fails_waiters_and_forgets_old_permits),
        cmocka_unit_test(test_guard_never_runs_more_than_the_broker_grants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
