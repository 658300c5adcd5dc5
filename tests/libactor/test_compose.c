/* test_compose.c: gather (spawn order, fail-fast, collect), wait (FIRST_COMPLETED,
 * FIRST_EXCEPTION, ALL_COMPLETED), as_completed (completion order) and task groups (a failing
 * child cancels its siblings; every failure comes back in one error group). */
#include "harness.h"

static int sleep_then_fail(void *arg, void **result) {
    (void)result;
    intptr_t v = (intptr_t)arg; /* ms * 1000 + (negated) code */
    int rc = act_sleep(v / 1000);
    if (rc) return rc;
    return (int)-(v % 1000) ? act_fail((int)-(v % 1000), "failed after %ld ms", (long)(v / 1000))
                            : 0;
}

#define FAIL_AFTER(ms, code) ((void *)(intptr_t)((ms) * 1000 + (-(code))))

static void spawn_sleepers(act_task_t **t, const intptr_t *ms, int n) {
    for (int i = 0; i < n; i++) act_spawn(harness_sleeper, (void *)ms[i], NULL, &t[i]);
}

static void release_all(act_task_t **t, int n) {
    for (int i = 0; i < n; i++) act_task_release(&t[i]);
}

static int gather_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[4];
    intptr_t ms[4] = {40, 10, 30, 20};
    spawn_sleepers(t, ms, 4);
    void *res[4];
    int codes[4];
    assert_int_equal(act_gather(t, 4, res, codes, 0, -1), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal((intptr_t)res[i], ms[i]); /* spawn order, not completion order */
        assert_int_equal(codes[i], 0);
    }
    release_all(t, 4);
    return 0;
}

static void test_gather_returns_results_in_spawn_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(gather_order, NULL, VCLOCK), 0);
}

static int gather_fail_fast(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[3];
    act_spawn(harness_sleeper, (void *)100, NULL, &t[0]);
    act_spawn(sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, &t[1]);
    act_spawn(harness_sleeper, (void *)5, NULL, &t[2]);
    int64_t t0 = act_now();
    int codes[3];
    assert_int_equal(act_gather(t, 3, NULL, codes, 0, -1), ACT_EIO);
    assert_int_equal(act_now() - t0, 10);        /* did not wait for the 100 ms one */
    assert_int_equal(codes[0], ACT_ECANCELED);   /* it was cancelled and awaited */
    assert_int_equal(codes[1], ACT_EIO);
    assert_int_equal(codes[2], 0);
    release_all(t, 3);
    return 0;
}

static void test_gather_fails_fast_and_cancels_the_rest(void **state) {
    (void)state;
    assert_int_equal(harness_run(gather_fail_fast, NULL, VCLOCK), 0);
}

static int gather_collect(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[3];
    act_spawn(harness_sleeper, (void *)100, NULL, &t[0]);
    act_spawn(sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, &t[1]);
    act_spawn(sleep_then_fail, FAIL_AFTER(20, ACT_ENOENT), NULL, &t[2]);
    int codes[3];
    void *res[3];
    assert_int_equal(act_gather(t, 3, res, codes, ACT_GATHER_COLLECT, -1), 0);
    assert_int_equal(codes[0], 0);
    assert_int_equal((intptr_t)res[0], 100);
    assert_int_equal(codes[1], ACT_EIO);
    assert_int_equal(codes[2], ACT_ENOENT);
    release_all(t, 3);
    return 0;
}

static void test_gather_collect_returns_every_outcome(void **state) {
    (void)state;
    assert_int_equal(harness_run(gather_collect, NULL, VCLOCK), 0);
}

static int gather_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[2];
    intptr_t ms[2] = {10, 500};
    spawn_sleepers(t, ms, 2);
    int codes[2];
    assert_int_equal(act_gather(t, 2, NULL, codes, 0, act_deadline_in(50)), ACT_ETIMEDOUT);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], ACT_ECANCELED);
    release_all(t, 2);
    return 0;
}

static void test_gather_deadline_cancels_unfinished(void **state) {
    (void)state;
    assert_int_equal(harness_run(gather_deadline, NULL, VCLOCK), 0);
}

static int wait_modes(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[3];
    intptr_t ms[3] = {30, 10, 20};
    spawn_sleepers(t, ms, 3);
    assert_int_equal(act_wait(t, 3, ACT_FIRST_COMPLETED, -1), 1);
    assert_true(act_task_done(t[1]));
    assert_false(act_task_done(t[0]));
    assert_int_equal(act_wait(t, 3, ACT_ALL_COMPLETED, -1), 3);
    release_all(t, 3);

    act_spawn(harness_sleeper, (void *)50, NULL, &t[0]);
    act_spawn(sleep_then_fail, FAIL_AFTER(20, ACT_EIO), NULL, &t[1]);
    act_spawn(harness_sleeper, (void *)10, NULL, &t[2]);
    assert_int_equal(act_wait(t, 3, ACT_FIRST_EXCEPTION, -1), 2);
    assert_int_equal(act_task_error(t[1], NULL), ACT_EIO);
    assert_false(act_task_done(t[0])); /* wait leaves the rest running */
    /* a deadline returns what is done, without error */
    assert_int_equal(act_wait(t, 3, ACT_ALL_COMPLETED, act_deadline_in(5)), 2);
    assert_int_equal(act_wait(t, 3, ACT_ALL_COMPLETED, -1), 3);
    release_all(t, 3);
    return 0;
}

static void test_wait_modes(void **state) {
    (void)state;
    assert_int_equal(harness_run(wait_modes, NULL, VCLOCK), 0);
}

static int as_completed_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[4];
    intptr_t ms[4] = {40, 10, 30, 20};
    spawn_sleepers(t, ms, 4);
    act_as_completed_t it;
    act_as_completed_init(&it, t, 4);
    intptr_t want[4] = {10, 20, 30, 40};
    act_task_t *d;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(act_as_completed_next(&it, &d, -1), 0);
        assert_int_equal((intptr_t)act_task_result(d), want[i]);
    }
    assert_int_equal(act_as_completed_next(&it, &d, -1), ACT_EEOF);
    act_as_completed_close(&it);
    release_all(t, 4);
    return 0;
}

static void test_as_completed_yields_in_completion_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(as_completed_order, NULL, VCLOCK), 0);
}

static int sibling_cleanup;
static int long_sibling(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = act_sleep(10000);
    if (rc == ACT_ECANCELED) sibling_cleanup++;
    return rc;
}

static int group_fail_cancels(void *arg, void **result) {
    (void)arg;
    (void)result;
    sibling_cleanup = 0;
    act_group_t g;
    act_group_init(&g);
    act_spawn_opts_t bad = {.name = "bad"};
    assert_int_equal(act_group_spawn(&g, long_sibling, NULL, NULL, NULL), 0);
    assert_int_equal(act_group_spawn(&g, long_sibling, NULL, NULL, NULL), 0);
    assert_int_equal(act_group_spawn(&g, sleep_then_fail, FAIL_AFTER(10, ACT_EIO), &bad, NULL), 0);
    int64_t t0 = act_now();
    assert_int_equal(act_group_wait(&g, -1), ACT_EGROUP);
    assert_int_equal(act_now() - t0, 10);
    assert_int_equal(sibling_cleanup, 2);
    assert_int_equal(act_group_error_count(&g), 1);
    act_group_error_t e;
    assert_int_equal(act_group_error(&g, 0, &e), 0);
    assert_string_equal(e.task, "bad");
    assert_int_equal(e.code, ACT_EIO);
    assert_string_equal(e.message, "failed after 10 ms");
    assert_int_equal(act_group_spawn(&g, long_sibling, NULL, NULL, NULL), ACT_ECLOSED);
    assert_int_equal(act_group_close(&g), 0);
    return 0;
}

static void test_group_failure_cancels_siblings(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_fail_cancels, NULL, VCLOCK), 0);
}

static int group_many_errors(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_group_t g;
    act_group_init(&g);
    /* three fail at the same instant: every one is reported (except*-style by code) */
    act_group_spawn(&g, sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, NULL);
    act_group_spawn(&g, sleep_then_fail, FAIL_AFTER(10, ACT_ENOENT), NULL, NULL);
    act_group_spawn(&g, sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, NULL);
    act_group_spawn(&g, harness_sleeper, (void *)5, NULL, NULL);
    assert_int_equal(act_group_wait(&g, -1), ACT_EGROUP);
    assert_int_equal(act_group_error_count(&g), 3);
    assert_int_equal(act_group_count(&g, ACT_EIO), 2);
    assert_int_equal(act_group_count(&g, ACT_ENOENT), 1);
    assert_int_equal(act_group_count(&g, ACT_ECANCELED), 0);
    act_group_error_t e;
    assert_int_equal(act_group_error(&g, 3, &e), ACT_EINVAL);
    act_group_close(&g);
    return 0;
}

static void test_group_reports_every_failure(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_many_errors, NULL, VCLOCK), 0);
}

static int group_parent(void *arg, void **result) {
    (void)result;
    act_group_t g;
    act_group_init(&g);
    act_group_spawn(&g, long_sibling, NULL, NULL, NULL);
    act_group_spawn(&g, long_sibling, NULL, NULL, NULL);
    act_spawn_opts_t sh = {.flags = ACT_SPAWN_SHIELD};
    act_group_spawn(&g, harness_sleeper, (void *)30, &sh, NULL);
    int rc = act_group_wait(&g, -1);
    *(int64_t *)arg = act_now(); /* the shielded child was waited for */
    act_group_close(&g);
    return rc;
}

static int group_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    sibling_cleanup = 0;
    int64_t ended = 0, t0 = act_now();
    act_task_t *p;
    act_spawn(group_parent, &ended, NULL, &p);
    act_sleep(10);
    act_task_cancel(p);
    assert_int_equal(act_join(p, NULL, -1), ACT_ECANCELED);
    assert_int_equal(sibling_cleanup, 2);
    assert_int_equal(ended - t0, 30);
    act_task_release(&p);
    return 0;
}

static void test_cancelling_group_owner_cancels_children_but_not_shielded(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_cancelled, NULL, VCLOCK), 0);
}

static int group_ok(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_group_t g;
    act_group_init(&g);
    act_task_t *h;
    act_group_spawn(&g, harness_sleeper, (void *)7, NULL, &h);
    act_group_spawn(&g, harness_sleeper, (void *)3, NULL, NULL);
    assert_int_equal(act_group_wait(&g, -1), 0);
    assert_int_equal((intptr_t)act_task_result(h), 7); /* a handle outlives the group */
    assert_int_equal(act_group_close(&g), 0);
    act_task_release(&h);
    return 0;
}

static void test_group_all_succeed(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_ok, NULL, VCLOCK), 0);
}

/* Issue 12.4: wait(FIRST_EXCEPTION) counts errors, not cancellations (asyncio). */
static int canceller(void *arg, void **result) {
    (void)result;
    act_sleep(10);
    act_task_cancel(arg);
    return 0;
}

static int wait_first_exception_ignores_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[3], *c;
    act_spawn(harness_sleeper, (void *)100, NULL, &t[0]);
    act_spawn(sleep_then_fail, FAIL_AFTER(30, ACT_EIO), NULL, &t[1]);
    act_spawn(harness_sleeper, (void *)200, NULL, &t[2]);
    act_spawn(canceller, t[0], NULL, &c);
    int64_t t0 = act_now();
    assert_int_equal(act_wait(t, 3, ACT_FIRST_EXCEPTION, -1), 2);
    assert_int_equal(act_now() - t0, 30); /* not 10, when t[0] was cancelled */
    assert_true(act_task_cancelled(t[0]));
    assert_int_equal(act_task_error(t[1], NULL), ACT_EIO);
    assert_false(act_task_done(t[2]));
    act_task_cancel(t[2]); /* only cancellations left: it waits for all */
    assert_int_equal(act_wait(&t[2], 1, ACT_FIRST_EXCEPTION, -1), 1);
    act_task_t *pre[2];
    act_spawn(harness_sleeper, (void *)50, NULL, &pre[0]);
    act_spawn(harness_sleeper, (void *)50, NULL, &pre[1]);
    act_task_cancel(pre[0]); /* ended before the wait starts */
    t0 = act_now();
    assert_int_equal(act_wait(pre, 2, ACT_FIRST_EXCEPTION, -1), 2);
    assert_int_equal(act_now() - t0, 50);
    assert_int_equal(act_join(c, NULL, -1), 0);
    act_task_release(&c);
    release_all(pre, 2);
    release_all(t, 3);
    return 0;
}

static void test_wait_first_exception_ignores_cancellations(void **state) {
    (void)state;
    assert_int_equal(harness_run(wait_first_exception_ignores_cancel, NULL, VCLOCK), 0);
}

/* Issue 12.9: ACT_GATHER_LEAVE_RUNNING is asyncio.gather: the first error comes back at
 * once and the others keep running. */
static int gather_leave_running(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[3];
    act_spawn(harness_sleeper, (void *)100, NULL, &t[0]);
    act_spawn(sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, &t[1]);
    act_spawn(harness_sleeper, (void *)5, NULL, &t[2]);
    int64_t t0 = act_now();
    int codes[3];
    void *res[3];
    assert_int_equal(act_gather(t, 3, res, codes, ACT_GATHER_LEAVE_RUNNING, -1), ACT_EIO);
    assert_int_equal(act_now() - t0, 10);
    assert_false(act_task_done(t[0])); /* left running, not cancelled */
    assert_int_equal(codes[0], 0);
    assert_null(res[0]);
    assert_int_equal(codes[1], ACT_EIO);
    assert_int_equal((intptr_t)res[2], 5);
    void *r;
    assert_int_equal(act_join(t[0], &r, -1), 0);
    assert_int_equal((intptr_t)r, 100);
    assert_int_equal(act_now() - t0, 100);
    release_all(t, 3);
    /* A deadline still cancels the unfinished ones. */
    act_spawn(harness_sleeper, (void *)100, NULL, &t[0]);
    assert_int_equal(act_gather(t, 1, NULL, codes, ACT_GATHER_LEAVE_RUNNING,
                                act_deadline_in(10)), ACT_ETIMEDOUT);
    assert_int_equal(codes[0], ACT_ECANCELED);
    act_task_release(&t[0]);
    return 0;
}

static void test_gather_leave_running_is_asyncio_gather(void **state) {
    (void)state;
    assert_int_equal(harness_run(gather_leave_running, NULL, VCLOCK), 0);
}

/* Issue 12.5: a child's failure interrupts the owner's body at its next wait (asyncio's
 * TaskGroup cancels the parent task), and act_group_wait undoes it. */
static int group_owner_interrupted(void *arg, void **result) {
    (void)arg;
    (void)result;
    sibling_cleanup = 0;
    act_group_t g;
    act_group_init(&g);
    act_group_spawn(&g, long_sibling, NULL, NULL, NULL);
    act_group_spawn(&g, sleep_then_fail, FAIL_AFTER(10, ACT_EIO), NULL, NULL);
    int64_t t0 = act_now();
    assert_int_equal(act_sleep(1000), ACT_ECANCELED); /* the owner's own work between */
    assert_int_equal(act_now() - t0, 10);
    assert_int_equal(act_yield(), ACT_ECANCELED); /* level-triggered until the wait */
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    assert_int_equal(act_yield(), 0); /* a shield hides it */
    act_scope_leave(&shield);
    assert_int_equal(act_group_wait(&g, -1), ACT_EGROUP);
    assert_int_equal(sibling_cleanup, 1);
    assert_int_equal(act_group_error_count(&g), 1);
    assert_int_equal(act_sleep(5), 0); /* uncancelled */
    assert_int_equal(act_group_close(&g), 0);
    return 0;
}

static void test_group_failure_interrupts_owner_at_next_wait(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_owner_interrupted, NULL, VCLOCK), 0);
}

static int fail_now(void *arg, void **result) {
    (void)result;
    return act_fail((int)(intptr_t)arg, "failed on its first step");
}

/* Two children that fail on their first step are both reported (asyncio runs both before
 * the group sees the first failure). */
static int group_two_fail_at_once(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_group_t g;
    act_group_init(&g);
    act_group_spawn(&g, fail_now, (void *)(intptr_t)ACT_EIO, NULL, NULL);
    act_group_spawn(&g, fail_now, (void *)(intptr_t)ACT_ENOENT, NULL, NULL);
    assert_int_equal(act_group_wait(&g, -1), ACT_EGROUP);
    assert_int_equal(act_group_error_count(&g), 2);
    assert_int_equal(act_group_count(&g, ACT_EIO), 1);
    assert_int_equal(act_group_count(&g, ACT_ENOENT), 1);
    assert_int_equal(act_group_close(&g), 0);
    /* The same when the owner yields instead of waiting: both run, it is interrupted. */
    act_group_init(&g);
    act_group_spawn(&g, fail_now, (void *)(intptr_t)ACT_EIO, NULL, NULL);
    act_group_spawn(&g, fail_now, (void *)(intptr_t)ACT_EIO, NULL, NULL);
    assert_int_equal(act_sleep(10), ACT_ECANCELED);
    assert_int_equal(act_group_wait(&g, -1), ACT_EGROUP);
    assert_int_equal(act_group_error_count(&g), 2);
    assert_int_equal(act_group_close(&g), 0);
    return 0;
}

static void test_group_reports_two_children_failing_on_first_step(void **state) {
    (void)state;
    assert_int_equal(harness_run(group_two_fail_at_once, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_returns_results_in_spawn_order),
        cmocka_unit_test(test_gather_fails_fast_and_cancels_the_rest),
        cmocka_unit_test(test_gather_collect_returns_every_outcome),
        cmocka_unit_test(test_gather_deadline_cancels_unfinished),
        cmocka_unit_test(test_wait_modes),
        cmocka_unit_test(test_as_completed_yields_in_completion_order),
        cmocka_unit_test(test_group_failure_cancels_siblings),
        cmocka_unit_test(test_group_reports_every_failure),
        cmocka_unit_test(test_cancelling_group_owner_cancels_children_but_not_shielded),
        cmocka_unit_test(test_group_all_succeed),
        cmocka_unit_test(test_wait_first_exception_ignores_cancellations),
        cmocka_unit_test(test_gather_leave_running_is_asyncio_gather),
        cmocka_unit_test(test_group_failure_interrupts_owner_at_next_wait),
        cmocka_unit_test(test_group_reports_two_children_failing_on_first_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
