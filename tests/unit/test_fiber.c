/* test_fiber.c: stacks. A task that has not started holds no stack; stacks are pooled and
 * reused; stack size is per task, with a small-stack class; overflow is caught and reported
 * (guard page for default stacks, canary for small ones), checked in a forked child. */
#include <alloca.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int nothing(void *arg, void **result) {
    (void)arg;
    (void)result;
    return act_yield();
}

static int no_stack_before_start(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[50];
    for (int i = 0; i < 50; i++) act_spawn(nothing, NULL, NULL, &t[i]);
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    assert_int_equal(st.tasks_live, 51);
    assert_int_equal(st.tasks_started, 1); /* only main */
    assert_int_equal(st.stacks_in_use, 1);
    assert_int_equal(act_gather(t, 50, NULL, NULL, 0, -1), 0);
    for (int i = 0; i < 50; i++) act_task_release(&t[i]);
    return 0;
}

static void test_unstarted_task_holds_no_stack(void **state) {
    (void)state;
    assert_int_equal(harness_run(no_stack_before_start, NULL, VCLOCK), 0);
}

static int pooled(void *arg, void **result) {
    (void)arg;
    (void)result;
    for (int i = 0; i < 200; i++) {
        act_task_t *t;
        act_spawn(nothing, NULL, NULL, &t);
        act_join(t, NULL, -1);
        act_task_release(&t);
    }
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    assert_int_equal(st.stacks_peak, 2); /* main + one reused stack */
    assert_true(st.stacks_cached >= 1);
    return 0;
}

static void test_stacks_are_pooled_and_reused(void **state) {
    (void)state;
    assert_int_equal(harness_run(pooled, NULL, VCLOCK), 0);
}

static int big_frame(void *arg, void **result) {
    (void)result;
    volatile char buf[600 * 1024];
    memset((char *)buf, 7, sizeof buf);
    *(int *)arg = buf[12345] + buf[sizeof buf - 1];
    return act_yield();
}

static int light(void *arg, void **result) {
    (void)result;
    (*(int *)arg)++;
    return act_yield();
}

static int sizes(void *arg, void **result) {
    (void)arg;
    (void)result;
    int v = 0, n = 0;
    act_task_t *t;
    act_spawn_opts_t big = {.name = "big", .stack_size = 8 * 1024 * 1024};
    assert_int_equal(act_spawn(big_frame, &v, &big, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(v, 14);
    act_task_release(&t);
    act_task_t *s[1000];
    act_spawn_opts_t small = {.flags = ACT_SPAWN_SMALL_STACK};
    for (int i = 0; i < 1000; i++) assert_int_equal(act_spawn(light, &n, &small, &s[i]), 0);
    assert_int_equal(act_gather(s, 1000, NULL, NULL, 0, -1), 0);
    assert_int_equal(n, 1000);
    for (int i = 0; i < 1000; i++) act_task_release(&s[i]);
    return 0;
}

static void test_stack_size_per_task_and_small_class(void **state) {
    (void)state;
    assert_int_equal(harness_run(sizes, NULL, VCLOCK), 0);
}

/* ---- overflow, in a child process ---- */

static int recurse(int depth) {
    volatile char pad[512];
    pad[0] = (char)depth;
    pad[511] = (char)depth;
    if (depth < 0) return pad[0];
    return recurse(depth + 1) + pad[511];
}

static int deep(void *arg, void **result) {
    (void)arg;
    (void)result;
    return recurse(0);
}

static int small_overrun(void *arg, void **result) {
    (void)arg;
    (void)result;
    /* A frame far larger than the small stack (8 KiB here), fully written,
     * as a too-deep call chain would. The next switch checks the canary. */
    volatile char *frame = alloca(20 * 1024);
    for (size_t i = 0; i < 20 * 1024; i++) frame[i] = 0;
    return act_yield();
}

static int overflow_main(void *arg, void **result) {
    (void)result;
    act_spawn_opts_t o = {.name = "deep-one", .stack_size = 64 * 1024};
    if (arg) o.flags = ACT_SPAWN_SMALL_STACK;
    act_task_t *t;
    act_spawn(arg ? small_overrun : deep, NULL, &o, &t);
    act_join(t, NULL, -1);
    act_task_release(&t);
    return 0;
}

/* Runs an overflowing task in a child; returns what it printed and how it ended. */
static void run_child(int small, char *out, size_t cap, int *status) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        act_loop_t *loop;
        act_loop_opts_t o = {.small_stack_size = 8192}; /* the same in every build */
        act_loop_new(&loop, &o);
        act_run(loop, overflow_main, small ? (void *)1 : NULL, NULL);
        _exit(0); /* not reached when the overflow is caught */
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fds[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = 0;
    close(fds[0]);
    waitpid(pid, status, 0);
}

static void test_default_stack_overflow_is_caught_and_named(void **state) {
    (void)state;
    char out[4096];
    int status;
    run_child(0, out, sizeof out, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "stack overflow in task 'deep-one'"));
}

static void test_small_stack_overflow_is_caught_by_canary(void **state) {
    (void)state;
    char out[4096];
    int status;
    run_child(1, out, sizeof out, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "stack overflow in task 'deep-one'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unstarted_task_holds_no_stack),
        cmocka_unit_test(test_stacks_are_pooled_and_reused),
        cmocka_unit_test(test_stack_size_per_task_and_small_class),
        cmocka_unit_test(test_default_stack_overflow_is_caught_and_named),
        cmocka_unit_test(test_small_stack_overflow_is_caught_by_canary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
