/* test_loop.c: calling into a running loop from other threads (call_soon_threadsafe and
 * run_coroutine_threadsafe), loop lifecycle rules, and stats. */
#include <pthread.h>
#include <stdlib.h>

#include "harness.h"

typedef struct shared {
    act_loop_t *loop;
    act_event_t ev;
    int calls;
    act_tsfuture_t *fut;
    int fut_code;
    void *fut_result;
} shared;

static void set_event(void *arg) {
    shared *s = arg;
    s->calls++;
    act_event_set(&s->ev);
}

static void *poke_loop(void *arg) {
    shared *s = arg;
    act_loop_call_threadsafe(s->loop, set_event, s);
    return NULL;
}

static int waits_for_thread(void *arg, void **result) {
    (void)result;
    shared *s = arg;
    act_event_init(&s->ev);
    pthread_t th;
    pthread_create(&th, NULL, poke_loop, s);
    int rc = act_event_wait(&s->ev, -1);
    pthread_join(th, NULL);
    return rc;
}

static void test_call_threadsafe_wakes_the_loop(void **state) {
    (void)state;
    shared s = {0};
    assert_int_equal(act_loop_new(&s.loop, NULL), 0);
    assert_int_equal(act_run(s.loop, waits_for_thread, &s, NULL), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(act_loop_destroy(&s.loop), 0);
}

static int doubled(void *arg, void **result) {
    act_sleep(1);
    *result = (void *)((intptr_t)arg * 2);
    return 0;
}

static void *submit_from_thread(void *arg) {
    shared *s = arg;
    if (act_spawn_threadsafe(s->loop, doubled, (void *)21, &s->fut) == 0) {
        s->fut_code = act_tsfuture_wait(s->fut, &s->fut_result, -1);
        act_tsfuture_destroy(&s->fut);
    }
    return NULL;
}

static int hosts_threadsafe_task(void *arg, void **result) {
    (void)result;
    shared *s = arg;
    pthread_t th;
    pthread_create(&th, NULL, submit_from_thread, s);
    /* keep the loop alive until the foreign thread has its answer */
    while (s->fut_result == NULL) act_sleep(1);
    pthread_join(th, NULL);
    return 0;
}

static void test_spawn_threadsafe_returns_result_to_other_thread(void **state) {
    (void)state;
    shared s = {0};
    assert_int_equal(act_loop_new(&s.loop, NULL), 0);
    assert_int_equal(act_run(s.loop, hosts_threadsafe_task, &s, NULL), 0);
    assert_int_equal(s.fut_code, 0);
    assert_int_equal((intptr_t)s.fut_result, 42);
    assert_int_equal(act_loop_destroy(&s.loop), 0);
}

static void count_call(void *arg) { (*(int *)arg)++; }

static void test_threadsafe_call_after_destroy_is_refused_and_pending_ones_run(void **state) {
    (void)state;
    act_loop_t *loop;
    int n = 0;
    assert_int_equal(act_loop_new(&loop, NULL), 0);
    assert_int_equal(act_loop_call_threadsafe(loop, count_call, &n), 0);
    act_loop_t *keep = loop;
    (void)keep;
    assert_int_equal(act_loop_destroy(&loop), 0);
    assert_int_equal(n, 1); /* accepted before closing: ran exactly once */
}

static int nested_run(void *arg, void **result) {
    (void)result;
    return act_run(arg, doubled, NULL, NULL);
}

static void test_run_refuses_nesting(void **state) {
    (void)state;
    act_loop_t *a, *b;
    act_loop_new(&a, NULL);
    act_loop_new(&b, NULL);
    assert_int_equal(act_run(a, nested_run, b, NULL), ACT_EBUSY);
    act_loop_destroy(&a);
    act_loop_destroy(&b);
}

static void test_bad_options_are_refused(void **state) {
    (void)state;
    act_loop_t *l = NULL;
    act_loop_opts_t o = {.small_stack_size = 16};
    assert_int_equal(act_loop_new(&l, &o), ACT_EINVAL);
    assert_null(l);
    assert_int_equal(act_loop_destroy(&l), 0); /* NULL is fine */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_threadsafe_wakes_the_loop),
        cmocka_unit_test(test_spawn_threadsafe_returns_result_to_other_thread),
        cmocka_unit_test(test_threadsafe_call_after_destroy_is_refused_and_pending_ones_run),
        cmocka_unit_test(test_run_refuses_nesting),
        cmocka_unit_test(test_bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
