/* test_time.c: sleep, wait_for, timeout scopes and deadlines (timeout / timeout_at), nesting
 * where the nearer deadline wins, rescheduling, and the virtual clock that makes all of this
 * instant and repeatable. */
#include "harness.h"

static int sleeps_in_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    int64_t t0 = act_now();
    act_task_t *t[3];
    intptr_t ms[3] = {30, 10, 20};
    for (int i = 0; i < 3; i++) act_spawn(harness_sleeper, (void *)ms[i], NULL, &t[i]);
    act_as_completed_t it;
    assert_int_equal(act_as_completed_init(&it, t, 3), 0);
    intptr_t got[3];
    for (int i = 0; i < 3; i++) {
        act_task_t *d;
        assert_int_equal(act_as_completed_next(&it, &d, -1), 0);
        got[i] = (intptr_t)act_task_result(d);
        /* the virtual clock jumped exactly to each deadline */
        assert_int_equal(act_now() - t0, got[i]);
    }
    act_as_completed_close(&it);
    assert_int_equal(got[0], 10);
    assert_int_equal(got[1], 20);
    assert_int_equal(got[2], 30);
    for (int i = 0; i < 3; i++) act_task_release(&t[i]);
    return 0;
}

static void test_virtual_clock_jumps_to_each_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(sleeps_in_order, NULL, VCLOCK), 0);
}

static int cleanup_ran;
static int slow_with_cleanup(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = act_sleep(1000);
    if (rc == ACT_ECANCELED) cleanup_ran = 1;
    return rc;
}

static int wait_for_times_out(void *arg, void **result) {
    (void)arg;
    (void)result;
    cleanup_ran = 0;
    act_task_t *t;
    act_spawn(slow_with_cleanup, NULL, NULL, &t);
    int64_t t0 = act_now();
    assert_int_equal(act_wait_for(t, NULL, act_deadline_in(50)), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 50);
    assert_true(act_task_done(t));      /* the inner work was cancelled and awaited */
    assert_true(act_task_cancelled(t));
    assert_int_equal(cleanup_ran, 1);   /* and its cleanup ran before wait_for returned */
    act_task_release(&t);
    act_spawn(harness_sleeper, (void *)10, NULL, &t);
    void *r;
    assert_int_equal(act_wait_for(t, &r, act_deadline_in(50)), 0);
    assert_int_equal((intptr_t)r, 10);
    act_task_release(&t);
    return 0;
}

static void test_wait_for_cancels_inner_work_on_timeout(void **state) {
    (void)state;
    assert_int_equal(harness_run(wait_for_times_out, NULL, VCLOCK), 0);
}

static int scope_bounds_every_call(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t s;
    int64_t t0 = act_now();
    act_scope_enter(&s, act_deadline_in(100), 0); /* asyncio.timeout(0.1) */
    assert_int_equal(act_sleep(60), 0);
    assert_int_equal(act_sleep(60), ACT_ETIMEDOUT); /* 40 ms left */
    assert_int_equal(act_now() - t0, 100);
    /* level-triggered: still expired, every call fails at once */
    assert_int_equal(act_yield(), ACT_ETIMEDOUT);
    act_event_t e;
    act_event_init(&e);
    assert_int_equal(act_event_wait(&e, -1), ACT_ETIMEDOUT);
    assert_int_equal(act_scope_leave(&s), ACT_ETIMEDOUT);
    assert_int_equal(act_yield(), 0); /* outside the scope all is well again */
    return 0;
}

static void test_timeout_scope_bounds_every_blocking_call(void **state) {
    (void)state;
    assert_int_equal(harness_run(scope_bounds_every_call, NULL, VCLOCK), 0);
}

static int nested_nearer_wins(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t outer, inner;
    int64_t t0 = act_now();
    /* timeout_at with an absolute deadline; the inner, later one does not extend it */
    act_scope_enter(&outer, t0 + 50, 0);
    act_scope_enter(&inner, t0 + 500, 0);
    assert_int_equal(act_sleep(1000), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 50);
    assert_int_equal(act_scope_leave(&inner), 0);       /* not its deadline */
    assert_int_equal(act_scope_leave(&outer), ACT_ETIMEDOUT);
    /* now the inner one is nearer */
    t0 = act_now();
    act_scope_enter(&outer, t0 + 500, 0);
    act_scope_enter(&inner, t0 + 20, 0);
    assert_int_equal(act_sleep(1000), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 20);
    assert_int_equal(act_scope_leave(&inner), ACT_ETIMEDOUT);
    assert_int_equal(act_sleep(10), 0); /* the outer one still has time */
    assert_int_equal(act_scope_leave(&outer), 0);
    return 0;
}

static void test_nested_scopes_nearer_deadline_wins(void **state) {
    (void)state;
    assert_int_equal(harness_run(nested_nearer_wins, NULL, VCLOCK), 0);
}

static act_scope_t *shared_scope;
static int sleeper_in_scope(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(100), 0);
    shared_scope = &s;
    int rc = act_sleep(1000);
    shared_scope = NULL;
    int left = act_scope_leave(&s);
    return rc == ACT_ETIMEDOUT ? left : rc;
}

static int reschedules(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t;
    int64_t t0 = act_now();
    act_spawn(sleeper_in_scope, NULL, NULL, &t);
    act_sleep(10);
    act_scope_reschedule(shared_scope, t0 + 300); /* later, while it is parked */
    assert_int_equal(act_join(t, NULL, -1), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 300);
    act_task_release(&t);
    t0 = act_now();
    act_spawn(sleeper_in_scope, NULL, NULL, &t);
    act_sleep(10);
    act_scope_reschedule(shared_scope, t0 + 30); /* earlier */
    assert_int_equal(act_join(t, NULL, -1), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 30);
    act_task_release(&t);
    return 0;
}

static void test_rescheduling_a_scope_moves_a_parked_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(reschedules, NULL, VCLOCK), 0);
}

static int scope_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t s;
    act_scope_enter(&s, -1, 0);
    act_scope_cancel(&s);
    assert_int_equal(act_sleep(5), ACT_ECANCELED);
    assert_int_equal(act_scope_leave(&s), ACT_ECANCELED);
    assert_int_equal(act_sleep(5), 0);
    return 0;
}

static void test_cancelled_scope_fails_calls_until_left(void **state) {
    (void)state;
    assert_int_equal(harness_run(scope_cancel, NULL, VCLOCK), 0);
}

static int poll_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_event_t e;
    act_event_init(&e);
    assert_int_equal(act_event_wait(&e, 0), ACT_ETIMEDOUT); /* 0 polls */
    act_event_set(&e);
    assert_int_equal(act_event_wait(&e, 0), 0);
    assert_int_equal(act_effective_deadline(), -1);
    act_scope_t s;
    act_scope_enter(&s, act_now() + 77, 0);
    assert_int_equal(act_effective_deadline(), act_now() + 77);
    act_scope_leave(&s);
    return 0;
}

static void test_zero_deadline_polls(void **state) {
    (void)state;
    assert_int_equal(harness_run(poll_deadline, NULL, VCLOCK), 0);
}

/* A scope whose timer fired still names its deadline, now passed: callers that compute the
 * time left (the worker's time_left_ms) read 0 there, not -1 ("no limit"). An inner scope
 * with a later deadline does not hide the expired outer one. */
static int expired_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t outer, inner;
    int64_t d = act_now() + 50;
    act_scope_enter(&outer, d, 0);
    assert_int_equal(act_sleep(100), ACT_ETIMEDOUT); /* the timer fired: the scope expired */
    assert_int_equal(act_effective_deadline(), d);
    assert_true(act_effective_deadline() <= act_now());
    act_scope_enter(&inner, act_now() + 1000, 0);
    assert_int_equal(act_effective_deadline(), d);
    assert_int_equal(act_sleep(1), ACT_ETIMEDOUT);
    act_scope_leave(&inner);
    act_scope_reschedule(&outer, act_now() + 1000); /* stays expired: its time is now */
    assert_int_equal(act_effective_deadline(), act_now());
    assert_int_equal(act_scope_leave(&outer), ACT_ETIMEDOUT);
    assert_int_equal(act_effective_deadline(), -1);
    /* Reached but not yet noticed by a wait: the same. */
    d = act_now() + 20;
    act_scope_enter(&outer, d, 0);
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    assert_int_equal(act_sleep(30), 0);
    act_scope_leave(&shield);
    assert_int_equal(act_effective_deadline(), d);
    assert_int_equal(act_scope_leave(&outer), ACT_ETIMEDOUT);
    return 0;
}

static void test_expired_scope_reports_its_passed_deadline_not_none(void **state) {
    (void)state;
    assert_int_equal(harness_run(expired_deadline, NULL, VCLOCK), 0);
}

static int real_clock_sleep(void *arg, void **result) {
    (void)arg;
    (void)result;
    int64_t t0 = act_now();
    assert_int_equal(act_sleep(5), 0);
    assert_true(act_now() >= t0 + 5); /* ordering only: never earlier than asked */
    return 0;
}

static void test_real_clock_sleep_is_never_early(void **state) {
    (void)state;
    assert_int_equal(harness_run(real_clock_sleep, NULL, 0), 0);
}

/* Issue 12.1: a negative time is "now", never "no deadline" (asyncio: sleep(-1) returns at
 * once, timeout(-1) and wait_for(x, -1) time out at once). */
static int negative_times(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_scope_t guard; /* without the fix the calls below would park until this one */
    act_scope_enter(&guard, act_deadline_in(1000), 0);
    int64_t t0 = act_now();
    assert_int_equal(act_sleep(-5), 0);
    assert_int_equal(act_sleep(-1), 0);
    assert_int_equal(act_now(), t0);
    assert_int_equal(act_deadline_in(-10), t0);
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(-10), 0);
    assert_int_equal(act_sleep(100), ACT_ETIMEDOUT);
    assert_int_equal(act_scope_leave(&s), ACT_ETIMEDOUT);
    act_scope_enter(&s, t0 - 7, 0); /* an absolute time in the past, below 0 here */
    assert_int_equal(act_sleep(100), ACT_ETIMEDOUT);
    assert_int_equal(act_scope_leave(&s), ACT_ETIMEDOUT);
    act_task_t *t;
    act_spawn(harness_sleeper, (void *)100, NULL, &t);
    assert_int_equal(act_wait_for(t, NULL, act_deadline_in(-1)), ACT_ETIMEDOUT);
    assert_true(act_task_cancelled(t));
    act_task_release(&t);
    assert_int_equal(act_now(), t0);
    assert_int_equal(act_scope_leave(&guard), 0);
    return 0;
}

static void test_negative_times_are_now_not_forever(void **state) {
    (void)state;
    assert_int_equal(harness_run(negative_times, NULL, VCLOCK), 0);
}

static int forever_sleeper(void *arg, void **result) {
    (void)arg;
    (void)result;
    return act_sleep(ACT_FOREVER);
}

/* Issue 11.1 / 12.1: huge durations saturate to "no deadline" instead of overflowing. */
static int saturating_deadlines(void *arg, void **result) {
    (void)arg;
    (void)result;
    assert_int_equal(act_sleep(3), 0); /* the clock is past 0: now + INT64_MAX overflows */
    assert_int_equal(act_deadline_in(INT64_MAX), ACT_NO_DEADLINE);
    assert_int_equal(act_deadline_in(ACT_FOREVER), ACT_NO_DEADLINE);
    assert_int_equal(act_deadline_in(INT64_MAX - 2), ACT_NO_DEADLINE);
    assert_int_equal(act_deadline_in(5), act_now() + 5);
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(INT64_MAX - 1), 0);
    assert_int_equal(act_sleep(10), 0); /* not expired: the scope has no deadline */
    assert_int_equal(act_scope_leave(&s), 0);
    act_task_t *t;
    act_spawn(forever_sleeper, NULL, NULL, &t);
    assert_int_equal(act_sleep(1000), 0);
    assert_false(act_task_done(t)); /* ACT_FOREVER sleeps until cancelled */
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, ACT_NO_DEADLINE), ACT_ECANCELED);
    act_task_release(&t);
    return 0;
}

static void test_huge_durations_saturate_to_no_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(saturating_deadlines, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_virtual_clock_jumps_to_each_deadline),
        cmocka_unit_test(test_wait_for_cancels_inner_work_on_timeout),
        cmocka_unit_test(test_timeout_scope_bounds_every_blocking_call),
        cmocka_unit_test(test_nested_scopes_nearer_deadline_wins),
        cmocka_unit_test(test_rescheduling_a_scope_moves_a_parked_deadline),
        cmocka_unit_test(test_cancelled_scope_fails_calls_until_left),
        cmocka_unit_test(test_zero_deadline_polls),
        cmocka_unit_test(test_expired_scope_reports_its_passed_deadline_not_none),
        cmocka_unit_test(test_real_clock_sleep_is_never_early),
        cmocka_unit_test(test_negative_times_are_now_not_forever),
        cmocka_unit_test(test_huge_durations_saturate_to_no_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
