/* test_debug.c: debug mode reports a task that holds the loop too long (naming it), tasks
 * never joined, errors nobody retrieved; the snapshot shows every task with its state and
 * what it waits on. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int hog(void *arg, void **result) {
    (void)arg;
    (void)result;
    usleep(300 * 1000); /* blocks the loop without yielding */
    return 0;
}

static int runs_hog(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_spawn_opts_t o = {.name = "hog-task"};
    act_task_t *t;
    act_spawn(hog, NULL, &o, &t);
    act_join(t, NULL, -1);
    act_task_release(&t);
    return 0;
}

static void test_debug_reports_slow_task_by_name(void **state) {
    (void)state;
    harness_log_capture();
    act_loop_opts_t o = {.flags = ACT_LOOP_DEBUG, .slow_ms = 150};
    assert_int_equal(harness_run_opts(runs_hog, NULL, &o), 0);
    /* Only the hog is named: under valgrind on a busy machine other slices may be slow too,
     * so the total is not asserted. */
    assert_int_equal(harness_log_count("event=slow_task kind=\"task\" task=hog-task"), 1);
    harness_log_release();
}

static void test_slow_task_not_reported_without_debug(void **state) {
    (void)state;
    harness_log_capture();
    act_loop_opts_t o = {.slow_ms = 150};
    unsetenv("ACTOR_DEBUG");
    assert_int_equal(harness_run_opts(runs_hog, NULL, &o), 0);
    assert_int_equal(harness_log_count("event=slow_task"), 0);
    harness_log_release();
}

static int quick(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 0;
}

static int forgets(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_spawn_opts_t o1 = {.name = "forgotten"}, o2 = {.name = "failed-alone"};
    act_task_t *a, *b, *c;
    act_spawn(quick, NULL, &o1, &a);
    act_spawn(harness_failer, (void *)(intptr_t)ACT_EIO, &o2, &b);
    act_spawn(quick, NULL, NULL, &c);
    act_sleep(1);
    act_join(c, NULL, -1); /* joined: no report */
    act_task_release(&a);
    act_task_release(&b);
    act_task_release(&c);
    return 0;
}

static void test_debug_reports_never_joined_and_unretrieved_errors(void **state) {
    (void)state;
    harness_log_capture();
    assert_int_equal(harness_run(forgets, NULL, VCLOCK | ACT_LOOP_DEBUG), 0);
    assert_int_equal(harness_log_count("event=never_joined task=forgotten"), 1);
    assert_int_equal(harness_log_count("event=unretrieved_error task=failed-alone"), 1);
    assert_int_equal(harness_log_count("code=EIO"), 1);
    assert_int_equal(harness_log_count("event=never_joined"), 1);
    harness_log_release();
}

static void test_env_variable_turns_debug_on(void **state) {
    (void)state;
    harness_log_capture();
    setenv("ACTOR_DEBUG", "1", 1);
    assert_int_equal(harness_run(forgets, NULL, VCLOCK), 0);
    unsetenv("ACTOR_DEBUG");
    assert_int_equal(harness_log_count("event=never_joined"), 1);
    harness_log_release();
}

static int lock_holder(void *arg, void **result) {
    (void)result;
    act_lock_t *l = arg;
    act_lock_acquire(l, -1);
    act_sleep(100);
    act_lock_release(l);
    return 0;
}

static int lock_waiter(void *arg, void **result) {
    (void)result;
    act_lock_t *l = arg;
    int rc = act_lock_acquire(l, act_deadline_in(500));
    if (rc == 0) act_lock_release(l);
    return rc;
}

static int snapshot(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_lock_init(&l);
    act_task_t *a, *b;
    act_spawn_opts_t oa = {.name = "holder"}, ob = {.name = "waiter"};
    act_spawn(lock_holder, &l, &oa, &a);
    act_spawn(lock_waiter, &l, &ob, &b);
    act_sleep(10);
    act_task_info_t *v;
    int n = act_debug_snapshot(&v);
    assert_int_equal(n, 3);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(v[i].name, "holder")) {
            assert_int_equal(v[i].state, ACT_TASK_WAITING);
            assert_string_equal(v[i].waits_on, "sleep");
            assert_int_equal(v[i].waiting_ms, 10);
            seen++;
        } else if (!strcmp(v[i].name, "waiter")) {
            assert_string_equal(v[i].waits_on, "lock");
            assert_ptr_equal(v[i].object, &l);
            assert_int_equal(v[i].deadline, 500);
            seen++;
        } else {
            assert_string_equal(v[i].name, "main");
            assert_int_equal(v[i].state, ACT_TASK_RUNNING);
        }
    }
    free(v);
    assert_int_equal(seen, 2);
    FILE *f = tmpfile();
    assert_int_equal(act_debug_dump(f), 3);
    rewind(f);
    char buf[1024] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_true(got > 0);
    assert_non_null(strstr(buf, "waiter"));
    assert_non_null(strstr(buf, "lock"));
    act_join(a, NULL, -1);
    act_join(b, NULL, -1);
    act_task_release(&a);
    act_task_release(&b);
    return 0;
}

static void test_snapshot_shows_state_and_what_each_waits_on(void **state) {
    (void)state;
    assert_int_equal(harness_run(snapshot, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debug_reports_slow_task_by_name),
        cmocka_unit_test(test_slow_task_not_reported_without_debug),
        cmocka_unit_test(test_debug_reports_never_joined_and_unretrieved_errors),
        cmocka_unit_test(test_env_variable_turns_debug_on),
        cmocka_unit_test(test_snapshot_shows_state_and_what_each_waits_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
