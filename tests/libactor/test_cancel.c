/* test_cancel.c: cancellation. A task blocked anywhere can be cancelled; its cleanup runs,
 * then the cancellation propagates; it is level-triggered (every later blocking call fails
 * too); shield scopes and shielded joins protect inner work; cleanup may block inside a
 * shielded scope with its own deadline. */
#include "harness.h"

typedef struct trace {
    int steps[8];
    int n;
} trace;

static int blocked_then_cleanup(void *arg, void **result) {
    (void)result;
    trace *tr = arg;
    int rc = act_sleep(10000);
    tr->steps[tr->n++] = rc;          /* first: the cancellation arrives */
    tr->steps[tr->n++] = act_yield(); /* level-triggered: still cancelled */
    tr->steps[tr->n++] = act_sleep(1);
    /* Cleanup that must block: a shielded scope with its own deadline. */
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(5), ACT_SCOPE_SHIELD);
    tr->steps[tr->n++] = act_sleep(2);   /* allowed: 0 */
    tr->steps[tr->n++] = act_sleep(100); /* bounded by the shield's own deadline */
    tr->steps[tr->n++] = act_scope_leave(&s);
    return rc; /* propagate */
}

static int cancel_blocked(void *arg, void **result) {
    (void)arg;
    (void)result;
    trace tr = {{0}, 0};
    act_task_t *t;
    act_spawn(blocked_then_cleanup, &tr, NULL, &t);
    act_sleep(5);
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_task_cancel(t), 0);
    assert_int_equal(act_task_cancel(t), 0); /* idempotent */
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    assert_true(act_task_cancelled(t));
    int want[] = {ACT_ECANCELED, ACT_ECANCELED, ACT_ECANCELED, 0, ACT_ETIMEDOUT, ACT_ETIMEDOUT};
    assert_int_equal(tr.n, 6);
    assert_memory_equal(tr.steps, want, sizeof want);
    act_task_release(&t);
    return 0;
}

static void test_cancel_is_level_triggered_and_cleanup_can_block_shielded(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_blocked, NULL, VCLOCK), 0);
}

static int never_runs_flag;
static int never_runs(void *arg, void **result) {
    (void)arg;
    (void)result;
    never_runs_flag = 1;
    return 0;
}

static int cancel_before_start(void *arg, void **result) {
    (void)arg;
    (void)result;
    never_runs_flag = 0;
    act_task_t *t;
    act_spawn(never_runs, NULL, NULL, &t);
    assert_int_equal(act_task_state(t), ACT_TASK_READY);
    act_task_cancel(t);
    assert_true(act_task_done(t)); /* ended at once, without a stack */
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    assert_int_equal(st.tasks_started, 1); /* only main holds a stack */
    act_yield();
    assert_int_equal(never_runs_flag, 0);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    return 0;
}

static void test_cancel_before_start_never_runs(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_before_start, NULL, VCLOCK), 0);
}

static int cancel_everywhere_target(void *arg, void **result) {
    (void)result;
    act_event_t *e = arg;
    return act_event_wait(e, -1);
}

static int parked_in_join(void *arg, void **result) {
    (void)result;
    return act_join(arg, NULL, -1);
}

static int cancel_in_every_wait(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_event_t e;
    act_event_init(&e);
    act_task_t *a, *b;
    act_spawn(cancel_everywhere_target, &e, NULL, &a);
    act_spawn(parked_in_join, a, NULL, &b);
    act_yield();
    act_task_cancel(b); /* cancelling the joiner does not cancel what it joins */
    assert_int_equal(act_join(b, NULL, -1), ACT_ECANCELED);
    assert_false(act_task_done(a));
    act_task_cancel(a);
    assert_int_equal(act_join(a, NULL, -1), ACT_ECANCELED);
    assert_int_equal(act_event_close(&e), 0); /* no waiter left behind */
    act_task_release(&a);
    act_task_release(&b);
    return 0;
}

static void test_join_is_a_shield_for_the_joined_task(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_in_every_wait, NULL, VCLOCK), 0);
}

static int critical_done;
static int critical(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = act_sleep(50);
    critical_done = rc == 0;
    return rc;
}

static int outer_awaits_shielded(void *arg, void **result) {
    (void)result;
    act_task_t **inner = arg;
    act_spawn(critical, NULL, NULL, inner);
    return act_join(*inner, NULL, -1); /* asyncio: await shield(critical()) */
}

static int shield_inner(void *arg, void **result) {
    (void)arg;
    (void)result;
    critical_done = 0;
    act_task_t *inner = NULL, *outer;
    act_spawn(outer_awaits_shielded, &inner, NULL, &outer);
    act_sleep(10);
    act_task_cancel(outer);
    assert_int_equal(act_join(outer, NULL, -1), ACT_ECANCELED); /* outer is cancelled... */
    assert_int_equal(act_join(inner, NULL, -1), 0);             /* ...inner completes */
    assert_int_equal(critical_done, 1);
    act_task_release(&inner);
    act_task_release(&outer);
    return 0;
}

static void test_shield_protects_inner_task_from_outer_cancel(void **state) {
    (void)state;
    assert_int_equal(harness_run(shield_inner, NULL, VCLOCK), 0);
}

static int shield_scope_body(void *arg, void **result) {
    (void)result;
    int *seen = arg;
    act_scope_t s;
    act_scope_enter(&s, -1, ACT_SCOPE_SHIELD);
    seen[0] = act_sleep(20); /* the cancel arrives meanwhile: not seen inside */
    act_scope_leave(&s);
    seen[1] = act_yield(); /* seen at the first call outside */
    return seen[1];
}

static int shield_scope(void *arg, void **result) {
    (void)arg;
    (void)result;
    int seen[2] = {-1, -1};
    act_task_t *t;
    act_spawn(shield_scope_body, seen, NULL, &t);
    act_sleep(5);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], ACT_ECANCELED);
    act_task_release(&t);
    return 0;
}

static void test_shield_scope_defers_cancellation_until_left(void **state) {
    (void)state;
    assert_int_equal(harness_run(shield_scope, NULL, VCLOCK), 0);
}

static int swallower(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_sleep(1000); /* ignores the code... */
    for (int i = 0; i < 3; i++) {
        if (act_sleep(1000) != ACT_ECANCELED) return ACT_EIO; /* ...but cannot block again */
    }
    return 0;
}

static int cannot_swallow(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t;
    act_spawn(swallower, NULL, NULL, &t);
    act_yield();
    int64_t t0 = act_now();
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(act_now(), t0); /* no sleep ever completed */
    act_task_release(&t);
    return 0;
}

static void test_ignoring_one_cancel_does_not_swallow_it(void **state) {
    (void)state;
    assert_int_equal(harness_run(cannot_swallow, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_is_level_triggered_and_cleanup_can_block_shielded),
        cmocka_unit_test(test_cancel_before_start_never_runs),
        cmocka_unit_test(test_join_is_a_shield_for_the_joined_task),
        cmocka_unit_test(test_shield_protects_inner_task_from_outer_cancel),
        cmocka_unit_test(test_shield_scope_defers_cancellation_until_left),
        cmocka_unit_test(test_ignoring_one_cancel_does_not_swallow_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
