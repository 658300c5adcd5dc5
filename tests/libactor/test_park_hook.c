/* test_park_hook.c: act_on_park, the hook a task gets just before it first parks, and the
 * pattern actor-worker builds on it: work run inline on a serving task hands the serving on
 * to a new task when it first waits, so work that never waits costs no task, and work that
 * does wait behaves as if it had its own task (order, cancellation, deadlines). */
#include <string.h>

#include "harness.h"

static int fired;

static void count(void *arg) {
    (void)arg;
    fired++;
}

static int hook_fires_once_before_first_park(void *arg, void **result) {
    (void)arg;
    (void)result;
    fired = 0;
    act_event_t e;
    act_event_init(&e);
    act_event_set(&e);
    assert_int_equal(act_on_park(count, NULL), 0);
    assert_int_equal(act_event_wait(&e, -1), 0); /* set already: no park */
    assert_int_equal(fired, 0);
    assert_int_equal(act_sleep(5), 0);
    assert_int_equal(fired, 1);
    assert_int_equal(act_sleep(5), 0); /* forgotten once fired */
    assert_int_equal(act_yield(), 0);
    assert_int_equal(fired, 1);
    return 0;
}

static void test_hook_fires_once_before_first_park(void **state) {
    (void)state;
    assert_int_equal(harness_run(hook_fires_once_before_first_park, NULL, VCLOCK), 0);
}

static int hook_skipped_when_cleared_or_call_fails(void *arg, void **result) {
    (void)arg;
    (void)result;
    fired = 0;
    assert_int_equal(act_on_park(count, NULL), 0);
    assert_int_equal(act_on_park(NULL, NULL), 0);
    assert_int_equal(act_yield(), 0);
    assert_int_equal(fired, 0);
    /* A call that fails before parking (its scope has expired) does not fire it. */
    act_scope_t s;
    act_scope_enter(&s, act_now(), 0);
    assert_int_equal(act_on_park(count, NULL), 0);
    assert_int_equal(act_sleep(5), ACT_ETIMEDOUT);
    assert_int_equal(fired, 0);
    assert_int_equal(act_on_park(NULL, NULL), 0);
    act_scope_leave(&s);
    return 0;
}

static void test_hook_skipped_when_cleared_or_call_fails(void **state) {
    (void)state;
    assert_int_equal(harness_run(hook_skipped_when_cleared_or_call_fails, NULL, VCLOCK), 0);
}

static int sets_hook_and_ends(void *arg, void **result) {
    (void)arg;
    (void)result;
    return act_on_park(count, NULL);
}

static int hook_forgotten_when_task_ends(void *arg, void **result) {
    (void)arg;
    (void)result;
    fired = 0;
    act_task_t *t;
    assert_int_equal(act_spawn(sets_hook_and_ends, NULL, NULL, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    assert_int_equal(act_sleep(5), 0);
    assert_int_equal(fired, 0);
    return 0;
}

static void test_hook_forgotten_when_task_ends(void **state) {
    (void)state;
    assert_int_equal(harness_run(hook_forgotten_when_task_ends, NULL, VCLOCK), 0);
}

static int hook_outside_task_is_refused(void) { return act_on_park(count, NULL); }

static void test_hook_outside_task_is_refused(void **state) {
    (void)state;
    assert_int_equal(hook_outside_task_is_refused(), ACT_EINVAL);
}

/* ---- the worker's pattern: inline work that takes the serving task over ---- */

enum { QUICK, SLEEP, LONG, TIMED };

typedef struct server {
    const int *items;     /* what arrives, in order */
    int n, next;          /* how many, the next to serve */
    act_task_t *serving;  /* the task serving now (our handle) */
    act_task_t *owned[4]; /* tasks that took the serving over, in order */
    int n_owned;
    char log[64];         /* what happened, in order */
    int rc[8];            /* each item's result */
} server;

static void note(server *s, char c) { s->log[strlen(s->log)] = c; }

static int serve(void *arg, void **result);

/* The hook: a new task serves the rest; this one belongs to the item now. */
static void handoff(void *arg) {
    server *s = arg;
    act_task_t *next = NULL;
    assert_int_equal(act_spawn(serve, s, NULL, &next), 0);
    act_task_set_name(s->serving, "item"); /* its role now */
    s->owned[s->n_owned++] = s->serving;
    s->serving = next;
    note(s, 'h');
}

static int run_item(server *s, int i) {
    switch (s->items[i]) {
    case QUICK: return 0;
    case SLEEP: return act_sleep(10);
    case LONG: return act_sleep(1000000); /* until cancelled */
    default: { /* a deadline entered inline, passing after the handoff */
        act_scope_t sc;
        act_scope_enter(&sc, act_deadline_in(20), 0);
        int rc = act_sleep(1000000);
        act_scope_leave(&sc);
        return rc;
    }
    }
}

static int serve(void *arg, void **result) {
    (void)result;
    server *s = arg;
    act_task_t *me = act_current();
    while (s->next < s->n) {
        int i = s->next++;
        note(s, (char)('0' + i));
        act_on_park(handoff, s);
        s->rc[i] = run_item(s, i);
        act_on_park(NULL, NULL); /* it ended without waiting (or the hook fired) */
        note(s, (char)('a' + i));
        if (s->serving != me) return 0; /* item i took this task over */
    }
    return 0;
}

static int order_cancel_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    static const int items[] = {QUICK, SLEEP, QUICK, LONG, TIMED, QUICK};
    server s;
    memset(&s, 0, sizeof s);
    s.items = items;
    s.n = 6;
    assert_int_equal(act_spawn(serve, &s, NULL, &s.serving), 0);
    act_task_t *first = s.serving;
    assert_int_equal(act_sleep(5), 0);
    /* 0 ends inline; 1 waits: handed off, and item 2 is served meanwhile by the new task,
     * which 3 takes over, and so on; 5 ends inline on the last one. */
    assert_string_equal(s.log, "0a1h2c3h4h5f");
    assert_int_equal(s.n_owned, 3);
    assert_ptr_equal(s.owned[0], first);
    assert_string_equal(act_task_name(first), "item");
    assert_int_equal(strncmp(act_task_name(s.serving), "task-", 5), 0);
    assert_int_equal(act_sleep(10), 0);
    assert_string_equal(s.log, "0a1h2c3h4h5fb"); /* 1's sleep ended, on its task */
    assert_int_equal(s.rc[1], 0);
    assert_true(act_task_done(first));
    /* Cancelling the task item 3 took over reaches its wait. */
    act_task_cancel(s.owned[1]);
    assert_int_equal(act_join(s.owned[1], NULL, -1), 0);
    assert_int_equal(s.rc[3], ACT_ECANCELED);
    /* Item 4's deadline, entered before the handoff, still bounds its wait after it. */
    assert_int_equal(act_join(s.owned[2], NULL, -1), 0);
    assert_int_equal(s.rc[4], ACT_ETIMEDOUT);
    assert_string_equal(s.log, "0a1h2c3h4h5fbde");
    for (int i = 0; i < s.n_owned; i++) act_task_release(&s.owned[i]);
    assert_int_equal(act_join(s.serving, NULL, -1), 0);
    act_task_release(&s.serving);
    return 0;
}

static void test_inline_work_keeps_order_cancel_and_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(order_cancel_deadline, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_fires_once_before_first_park),
        cmocka_unit_test(test_hook_skipped_when_cleared_or_call_fails),
        cmocka_unit_test(test_hook_forgotten_when_task_ends),
        cmocka_unit_test(test_hook_outside_task_is_refused),
        cmocka_unit_test(test_inline_work_keeps_order_cancel_and_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
