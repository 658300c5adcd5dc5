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
    /* qemu-user accepts MADV_GUARD_INSTALL without installing a guard (tests/run.sh sets
     * this when it runs the aarch64 build under qemu): nothing would catch the overflow. */
    if (getenv("ACTOR_UNDER_QEMU")) skip();
    char out[4096];
    int status;
    run_child(0, out, sizeof out, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "stack overflow in task 'deep-one'"));
}

static void test_small_stack_overflow_is_caught_by_canary(void **state) {
    (void)state;
    /* Under qemu-user the overrun runs into memory qemu itself uses: it hangs, not aborts. */
    if (getenv("ACTOR_UNDER_QEMU")) skip();
    char out[4096];
    int status;
    run_child(1, out, sizeof out, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "stack overflow in task 'deep-one'"));
}

/* ---- the context switch itself (each architecture's assembly, or ucontext) ---- */

typedef struct pinger {
    long n;      /* switches to make */
    long done;   /* made */
    long *trail; /* shared: who ran last */
    long id;
    int bad;     /* the other task did not run in between */
} pinger;

static int ping(void *arg, void **result) {
    (void)result;
    pinger *p = arg;
    for (long i = 0; i < p->n; i++) {
        *p->trail = p->id;
        if (act_yield()) return ACT_EIO;
        if (*p->trail == p->id) p->bad++; /* the other one must have run */
        p->done++;
    }
    return 0;
}

static int many_switches(void *arg, void **result) {
    (void)arg;
    (void)result;
    long trail = 0;
    pinger a = {.n = 100000, .trail = &trail, .id = 1}, b = {.n = 100000, .trail = &trail, .id = 2};
    act_task_t *t[2];
    act_loop_stats_t before, after;
    act_loop_stats(act_loop_current(), &before);
    act_spawn(ping, &a, NULL, &t[0]);
    act_spawn(ping, &b, NULL, &t[1]);
    assert_int_equal(act_gather(t, 2, NULL, NULL, 0, -1), 0);
    act_loop_stats(act_loop_current(), &after);
    assert_int_equal(a.done, 100000);
    assert_int_equal(b.done, 100000);
    assert_true(a.bad <= 1 && b.bad <= 1); /* only at the ends, when one runs alone */
    assert_true(after.switches - before.switches >= 200000);
    act_task_release(&t[0]);
    act_task_release(&t[1]);
    return 0;
}

static void test_many_switches_alternate_tasks(void **state) {
    (void)state;
    assert_int_equal(harness_run(many_switches, NULL, VCLOCK), 0);
}

/* Doubles live across switches: the callee-saved vector registers (d8-d15 on aarch64) or the
 * stack slots they spill to must come back intact while other tasks compute other values. */
static int float_worker(void *arg, void **result) {
    (void)result;
    double seed = (double)(intptr_t)arg;
    double a = seed * 1.5, b = seed + 0.25, c = seed / 3.0, d = -seed, e = seed * seed;
    double f = a + b, g = c - d, h = e * 0.5;
    for (int i = 0; i < 1000; i++) {
        if (act_yield()) return ACT_EIO;
        a = a * 1.0000001 + b;
        b = b * 0.9999999 + c;
        c = c + d * 1e-9;
        d = d - e * 1e-12;
        e = e * 1.0000000001;
        f = f + g * 1e-6;
        g = g - h * 1e-9;
        h = h * 0.999999999 + a * 1e-12;
    }
    double want_a = seed * 1.5, want_b = seed + 0.25, want_c = seed / 3.0, want_d = -seed;
    double want_e = seed * seed, want_f = want_a + want_b, want_g = want_c - want_d;
    double want_h = want_e * 0.5;
    for (int i = 0; i < 1000; i++) {
        want_a = want_a * 1.0000001 + want_b;
        want_b = want_b * 0.9999999 + want_c;
        want_c = want_c + want_d * 1e-9;
        want_d = want_d - want_e * 1e-12;
        want_e = want_e * 1.0000000001;
        want_f = want_f + want_g * 1e-6;
        want_g = want_g - want_h * 1e-9;
        want_h = want_h * 0.999999999 + want_a * 1e-12;
    }
    return (a == want_a && b == want_b && c == want_c && d == want_d && e == want_e &&
            f == want_f && g == want_g && h == want_h) ? 0 : ACT_EIO;
}

#if defined(__aarch64__)
/* Loads d8-d15 with this task's values, switches, and reads them back: exactly the
 * registers fiber_aarch64.S must save. */
static int d_regs_worker(void *arg, void **result) {
    (void)result;
    double in[8], out[8];
    for (int k = 0; k < 8; k++) in[k] = (double)(intptr_t)arg * 100.0 + k;
    for (int i = 0; i < 200; i++) {
        __asm__ volatile("ldp d8, d9, [%0]\n\tldp d10, d11, [%0, #16]\n\t"
                         "ldp d12, d13, [%0, #32]\n\tldp d14, d15, [%0, #48]"
                         : : "r"(in) : "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15",
                           "memory");
        if (act_yield()) return ACT_EIO;
        __asm__ volatile("stp d8, d9, [%0]\n\tstp d10, d11, [%0, #16]\n\t"
                         "stp d12, d13, [%0, #32]\n\tstp d14, d15, [%0, #48]"
                         : : "r"(out) : "memory");
        for (int k = 0; k < 8; k++)
            if (out[k] != in[k]) return ACT_EIO;
    }
    return 0;
}
#endif

static int floats_preserved(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[8];
    for (int i = 0; i < 4; i++) act_spawn(float_worker, (void *)(intptr_t)(i + 1), NULL, &t[i]);
#if defined(__aarch64__)
    for (int i = 4; i < 8; i++) act_spawn(d_regs_worker, (void *)(intptr_t)(i + 1), NULL, &t[i]);
#else
    for (int i = 4; i < 8; i++) act_spawn(float_worker, (void *)(intptr_t)(i * 7), NULL, &t[i]);
#endif
    int codes[8];
    assert_int_equal(act_gather(t, 8, NULL, codes, ACT_GATHER_COLLECT, -1), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(codes[i], 0);
        act_task_release(&t[i]);
    }
    return 0;
}

static void test_floating_point_registers_survive_switches(void **state) {
    (void)state;
    assert_int_equal(harness_run(floats_preserved, NULL, VCLOCK), 0);
}

/* Deep call chains on several default stacks at once, switching at the bottom of each: every
 * frame of every stack must be intact when its task resumes; then a cancellation reaches the
 * bottom of one and unwinds it through every frame. */
static long descend(int depth, long salt, int64_t sleep_ms) {
    volatile long frame[32];
    for (int i = 0; i < 32; i++) frame[i] = salt * 1000 + depth * 32 + i;
    long below;
    if (depth == 0) {
        int rc = sleep_ms ? act_sleep(sleep_ms) : act_yield();
        if (rc) return rc < 0 ? -1000000 + rc : rc;
        below = 0;
    } else {
        below = descend(depth - 1, salt, sleep_ms);
        if (below < 0) return below; /* a cancellation, unwinding */
    }
    long sum = below;
    for (int i = 0; i < 32; i++) {
        if (frame[i] != salt * 1000 + depth * 32 + i) return -1; /* corrupted */
        sum += (frame[i] - salt * 1000) & 0xff;
    }
    return sum;
}

static int deep_worker(void *arg, void **result) {
    intptr_t salt = (intptr_t)arg;
    long got = descend(400, salt, salt == 99 ? 1000 : 0); /* about 120 KiB of frames */
    *result = (void *)(intptr_t)got;
    if (got == -1000000 + ACT_ECANCELED) return ACT_ECANCELED;
    return got < 0 ? ACT_EIO : 0;
}

static int deep_stacks(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_task_t *t[5];
    for (int i = 0; i < 4; i++) act_spawn(deep_worker, (void *)(intptr_t)(i + 1), NULL, &t[i]);
    act_spawn(deep_worker, (void *)(intptr_t)99, NULL, &t[4]);
    void *res[4];
    assert_int_equal(act_gather(t, 4, res, NULL, 0, -1), 0);
    for (int i = 1; i < 4; i++) assert_int_equal((intptr_t)res[i], (intptr_t)res[0]);
    assert_true((intptr_t)res[0] > 0);
    assert_int_equal(act_sleep(10), 0);
    assert_int_equal(act_task_state(t[4]), ACT_TASK_WAITING); /* parked 400 frames down */
    act_task_cancel(t[4]);
    void *r;
    assert_int_equal(act_join(t[4], &r, -1), ACT_ECANCELED);
    assert_int_equal((intptr_t)r, -1000000 + ACT_ECANCELED);
    for (int i = 0; i < 5; i++) act_task_release(&t[i]);
    return 0;
}

static void test_deep_stacks_survive_switches_and_cancellation(void **state) {
    (void)state;
    assert_int_equal(harness_run(deep_stacks, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unstarted_task_holds_no_stack),
        cmocka_unit_test(test_stacks_are_pooled_and_reused),
        cmocka_unit_test(test_stack_size_per_task_and_small_class),
        cmocka_unit_test(test_default_stack_overflow_is_caught_and_named),
        cmocka_unit_test(test_small_stack_overflow_is_caught_by_canary),
        cmocka_unit_test(test_many_switches_alternate_tasks),
        cmocka_unit_test(test_floating_point_registers_survive_switches),
        cmocka_unit_test(test_deep_stacks_survive_switches_and_cancellation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
