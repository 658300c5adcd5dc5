/* test_task.c: loop and tasks: run a main task, spawn named tasks, join with result or
 * error, current task, list all tasks, yield order. */
#include "harness.h"

static int returns_42(void *arg, void **result) {
    (void)arg;
    *result = (void *)(intptr_t)42;
    return 0;
}

static void test_run_returns_main_result(void **state) {
    (void)state;
    act_loop_t *loop;
    assert_int_equal(act_loop_new(&loop, NULL), 0);
    void *res = NULL;
    assert_int_equal(act_run(loop, returns_42, NULL, &res), 0);
    assert_int_equal((intptr_t)res, 42);
    assert_int_equal(act_loop_destroy(&loop), 0);
}

static int fails_with_message(void *arg, void **result) {
    (void)arg;
    (void)result;
    return act_fail(ACT_EIO, "disk %d is gone", 3);
}

static int join_result_and_error(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *ok, *bad;
    act_spawn_opts_t o = {.name = "worker-ok"};
    assert_int_equal(act_spawn(returns_42, NULL, &o, &ok), 0);
    assert_int_equal(act_spawn(fails_with_message, NULL, NULL, &bad), 0);
    assert_string_equal(act_task_name(ok), "worker-ok");
    assert_int_equal(act_task_state(ok), ACT_TASK_READY);
    void *r = NULL;
    assert_int_equal(act_join(ok, &r, -1), 0);
    assert_int_equal((intptr_t)r, 42);
    assert_int_equal(act_join(bad, NULL, -1), ACT_EIO);
    const char *msg = NULL;
    assert_int_equal(act_task_error(bad, &msg), ACT_EIO);
    assert_string_equal(msg, "disk 3 is gone");
    assert_true(act_task_done(ok));
    act_task_release(&ok);
    act_task_release(&bad);
    assert_null(ok);
    return 0;
}

static void test_join_gives_result_and_error(void **state) {
    (void)state;
    assert_int_equal(harness_run(join_result_and_error, NULL, VCLOCK), 0);
}

static act_task_t *seen_current;
static int record_current(void *arg, void **result) {
    (void)result;
    seen_current = act_current();
    *(int *)arg += 1;
    return 0;
}

static int count_task(act_task_t *t, void *ctx) {
    (void)t;
    (*(int *)ctx)++;
    return 0;
}

static int current_and_list(void *arg, void **result) {
    (void)arg;
    (void)result;
    int ran = 0;
    act_task_t *t[3];
    for (int i = 0; i < 3; i++) assert_int_equal(act_spawn(record_current, &ran, NULL, &t[i]), 0);
    int listed = 0;
    assert_int_equal(act_task_foreach(count_task, &listed), 4); /* main + 3 */
    assert_int_equal(listed, 4);
    assert_non_null(act_current());
    assert_string_equal(act_task_name(act_current()), "main");
    assert_int_equal(act_join(t[2], NULL, -1), 0);
    assert_ptr_equal(seen_current, t[2]);
    assert_int_equal(ran, 3);
    for (int i = 0; i < 3; i++) act_task_release(&t[i]);
    return 0;
}

static void test_current_task_and_all_tasks(void **state) {
    (void)state;
    assert_int_equal(harness_run(current_and_list, NULL, VCLOCK), 0);
}

static int order[16];
static int norder;
static int yielder(void *arg, void **result) {
    (void)result;
    for (int i = 0; i < 2; i++) {
        order[norder++] = (int)(intptr_t)arg;
        act_yield();
    }
    return 0;
}

static int yields_round_robin(void *arg, void **result) {
    (void)arg;
    (void)result;
    norder = 0;
    act_task_t *a, *b;
    act_spawn(yielder, (void *)1, NULL, &a);
    act_spawn(yielder, (void *)2, NULL, &b);
    act_join(a, NULL, -1);
    act_join(b, NULL, -1);
    act_task_release(&a);
    act_task_release(&b);
    return 0;
}

static void test_yield_is_round_robin(void **state) {
    (void)state;
    assert_int_equal(harness_run(yields_round_robin, NULL, VCLOCK), 0);
    int want[] = {1, 2, 1, 2};
    assert_int_equal(norder, 4);
    assert_memory_equal(order, want, sizeof want);
}

static int detached_child(void *arg, void **result) {
    (void)result;
    act_sleep(10);
    (*(int *)arg)++;
    return 0;
}

static int spawns_detached(void *arg, void **result) {
    (void)result;
    assert_int_equal(act_spawn(detached_child, arg, NULL, NULL), 0);
    return act_sleep(20);
}

static void test_detached_task_runs_and_frees_itself(void **state) {
    (void)state;
    int n = 0;
    assert_int_equal(harness_run(spawns_detached, &n, VCLOCK), 0);
    assert_int_equal(n, 1);
}

static int leftover(void *arg, void **result) {
    (void)result;
    int rc = act_sleep(1000000);
    *(int *)arg = rc; /* cleanup sees the cancellation */
    return rc;
}

static int leaves_a_task_behind(void *arg, void **result) {
    (void)result;
    act_spawn(leftover, arg, NULL, NULL);
    return act_yield();
}

static void test_run_cancels_leftover_tasks(void **state) {
    (void)state;
    int seen = 0;
    assert_int_equal(harness_run(leaves_a_task_behind, &seen, VCLOCK), 0);
    assert_int_equal(seen, ACT_ECANCELED);
}

static int join_self(void *arg, void **result) {
    (void)arg;
    (void)result;
    return act_join(act_current(), NULL, -1);
}

static void test_join_self_is_refused(void **state) {
    (void)state;
    assert_int_equal(harness_run(join_self, NULL, VCLOCK), ACT_EINVAL);
}

static void test_spawn_outside_loop_is_refused(void **state) {
    (void)state;
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(returns_42, NULL, NULL, &t), ACT_EINVAL);
    assert_null(t);
}

static void test_error_table_names_every_code(void **state) {
    (void)state;
    int codes[] = {
#define X(name, val, msg) val,
        ACT_ERRNO_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_not_equal(act_strerror(codes[i]), "unknown error");
        assert_string_not_equal(act_err_name(codes[i]), "UNKNOWN");
    }
    assert_string_equal(act_err_name(ACT_ECANCELED), "ECANCELED");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_returns_main_result),
        cmocka_unit_test(test_join_gives_result_and_error),
        cmocka_unit_test(test_current_task_and_all_tasks),
        cmocka_unit_test(test_yield_is_round_robin),
        cmocka_unit_test(test_detached_task_runs_and_frees_itself),
        cmocka_unit_test(test_run_cancels_leftover_tasks),
        cmocka_unit_test(test_join_self_is_refused),
        cmocka_unit_test(test_spawn_outside_loop_is_refused),
        cmocka_unit_test(test_error_table_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
