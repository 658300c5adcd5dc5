/* test_sync.c: lock, semaphore (plain, bounded, spawn limits), event, condition and barrier:
 * FIFO order, exact counts and error codes, and that cancelling or timing out a task blocked
 * on any of them leaves the primitive consistent (no lost or duplicated permit, no deadlock). */
#include <string.h>

#include "harness.h"

/* ---- helpers shared by the tests ---- */

/* One helper task: what it blocks on, how long it may wait, and what it saw. */
typedef struct probe {
    void *obj;         /* the primitive (lock, sem, event, cond, barrier) */
    int64_t timeout;   /* relative ms for the blocking call, -1: none */
    int64_t pre_sleep; /* ms to sleep before arriving, to set the arrival order */
    int id;            /* written to the passage log */
    int rc;            /* what the blocking call returned */
    bool held;         /* condition: the lock was held on return and could be released */
} probe;

/* The "no deadline" of helper waits: far past any test's virtual time, so a deadlock fails
 * the test with ACT_ETIMEDOUT at once instead of hanging it. */
#define NEVER 1000000

static int passage[128]; /* ids in the order tasks got through */
static int npassage;

static void log_pass(int id) { passage[npassage++] = id; }

/* A helper that waits on o with no (practical) deadline. */
#define PROBE(o, i) ((probe){.obj = (o), .timeout = NEVER, .id = (i)})

static int64_t deadline_of(const probe *p) {
    return p->timeout < 0 ? -1 : act_deadline_in(p->timeout);
}

static act_task_t *spawn_probe(act_task_fn fn, probe *p) {
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(fn, p, NULL, &t), 0);
    return t;
}

/* Spawns fn and lets it run until it blocks, so spawn order is arrival order. */
static act_task_t *arrive(act_task_fn fn, probe *p) {
    act_task_t *t = spawn_probe(fn, p);
    act_yield();
    return t;
}

/* A test that runs body(arg) as the main task on a virtual-clock loop and expects 0. */
#define RUN_TEST(name, body, arg)                                                          \
    static void name(void **state) {                                                       \
        (void)state;                                                                       \
        assert_int_equal(harness_run(body, (void *)(intptr_t)(arg), VCLOCK), 0);           \
    }

static void join_release(act_task_t **t) {
    act_join(*t, NULL, -1);
    act_task_release(t);
}

/* Joins n tasks that must all end with 0. */
static void join_all(act_task_t **t, int n) {
    for (int i = 0; i < n; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), 0);
        act_task_release(&t[i]);
    }
}

/* n probes with ids 0..n-1 arrive on obj one after the other. */
static void arrive_all(act_task_fn fn, void *obj, probe *p, act_task_t **t, int n) {
    for (int i = 0; i < n; i++) {
        p[i] = PROBE(obj, i);
        t[i] = arrive(fn, &p[i]);
    }
}

static void expect_passage(const int *want, int n) {
    assert_int_equal(npassage, n);
    assert_memory_equal(passage, want, (size_t)n * sizeof *want);
}

/* Lets woken tasks run to their next block. */
static void settle(void) {
    for (int i = 0; i < 4; i++) act_yield();
}

/* How the edge-case tests get a blocked waiter out: act_task_cancel, or its own 10 ms deadline
 * passing (the virtual clock jumps there while main sleeps). */
enum { BY_CANCEL, BY_TIMEOUT, BOUNDED = 2 /* semaphore tests: a bounded one */ };

static int64_t victim_timeout(int mode) { return mode == BY_TIMEOUT ? 10 : -1; }
static int victim_code(int mode) { return mode == BY_TIMEOUT ? ACT_ETIMEDOUT : ACT_ECANCELED; }

static void interrupt(act_task_t *victim, int mode) {
    if (mode == BY_CANCEL) {
        assert_int_equal(act_task_cancel(victim), 0);
    } else {
        assert_int_equal(act_sleep(20), 0);
    }
    settle();
}

static int lock_waiter(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    if (p->pre_sleep) act_sleep(p->pre_sleep);
    p->rc = act_lock_acquire(p->obj, deadline_of(p));
    if (p->rc == 0) {
        log_pass(p->id);
        act_yield(); /* hold it across a switch */
        assert_int_equal(act_lock_release(p->obj), 0);
    }
    return 0;
}

static int sem_waiter(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    p->rc = act_sem_acquire(p->obj, deadline_of(p));
    if (p->rc == 0) {
        log_pass(p->id);
        act_yield();
        assert_int_equal(act_sem_release(p->obj), 0);
    }
    return 0;
}

static int event_waiter(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    p->rc = act_event_wait(p->obj, deadline_of(p));
    if (p->rc == 0) log_pass(p->id);
    return 0;
}

static int cond_waiter(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    act_cond_t *c = p->obj;
    assert_int_equal(act_lock_acquire(c->lock, -1), 0);
    p->rc = act_cond_wait(c, deadline_of(p));
    p->held = act_lock_locked(c->lock) && act_lock_release(c->lock) == 0;
    if (p->rc == 0) log_pass(p->id);
    return 0;
}

static int barrier_waiter(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    p->rc = act_barrier_wait(p->obj, deadline_of(p));
    if (p->rc >= 0) log_pass(p->id);
    return 0;
}

/* ---- lock ---- */

static int lock_fifo(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    probe p[5];
    act_task_t *t[5];
    npassage = 0;
    act_lock_init(&l);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    /* Spawned 0..4, but they arrive 4, 3, 2, 1, 0 (shorter sleep first). */
    for (int i = 0; i < 5; i++) {
        p[i] = (probe){.obj = &l, .timeout = NEVER, .pre_sleep = 5 - i, .id = i};
        t[i] = spawn_probe(lock_waiter, &p[i]);
    }
    act_sleep(10);
    for (int i = 0; i < 5; i++) assert_int_equal(act_task_state(t[i]), ACT_TASK_WAITING);
    assert_int_equal(act_lock_release(&l), 0);
    join_all(t, 5);
    expect_passage((int[]){4, 3, 2, 1, 0}, 5);
    assert_false(act_lock_locked(&l));
    return act_lock_close(&l);
}

RUN_TEST(test_lock_is_fifo_fair, lock_fifo, NULL)

typedef struct counter {
    act_lock_t lock;
    int value, inside, max_inside;
} counter;

static int increment(void *arg, void **result) {
    (void)result;
    counter *c = arg;
    assert_int_equal(act_lock_acquire(&c->lock, -1), 0);
    if (++c->inside > c->max_inside) c->max_inside = c->inside;
    int v = c->value;
    act_yield(); /* every other task runs here: without the lock the update would be lost */
    c->value = v + 1;
    c->inside--;
    return act_lock_release(&c->lock);
}

static int lock_contention(void *arg, void **result) {
    (void)arg;
    (void)result;
    counter c = {0};
    act_task_t *t[100];
    act_lock_init(&c.lock);
    for (int i = 0; i < 100; i++) assert_int_equal(act_spawn(increment, &c, NULL, &t[i]), 0);
    join_all(t, 100);
    assert_int_equal(c.value, 100);
    assert_int_equal(c.max_inside, 1);
    return act_lock_close(&c.lock);
}

RUN_TEST(test_lock_counter_is_exact_under_contention, lock_contention, NULL)

static int release_foreign(void *arg, void **result) {
    (void)result;
    act_lock_t *l = arg;
    assert_int_equal(act_lock_release(l), ACT_EPERM);
    assert_int_equal(act_lock_try(l), ACT_EAGAIN);
    assert_int_equal(act_lock_acquire(l, 0), ACT_ETIMEDOUT); /* poll */
    return 0;
}

static int lock_non_owner(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_task_t *t;
    act_lock_init(&l);
    assert_int_equal(act_lock_release(&l), ACT_EPERM); /* free: nobody may release it */
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    assert_int_equal(act_spawn(release_foreign, &l, NULL, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    assert_true(act_lock_locked(&l)); /* still ours */
    assert_int_equal(act_lock_close(&l), ACT_EBUSY);
    assert_int_equal(act_lock_release(&l), 0);
    assert_int_equal(act_lock_release(&l), ACT_EPERM);
    return act_lock_close(&l);
}

RUN_TEST(test_lock_release_by_non_owner_is_eperm, lock_non_owner, NULL)

static int try_then_release(void *arg, void **result) {
    (void)result;
    act_lock_t *l = arg;
    int rc = act_lock_try(l);
    if (rc == 0) assert_int_equal(act_lock_release(l), 0);
    return rc;
}

static int lock_try(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_task_t *t;
    act_lock_init(&l);
    assert_int_equal(act_lock_try(&l), 0);
    assert_true(act_lock_locked(&l));
    assert_int_equal(act_lock_try(&l), ACT_EINVAL);         /* not reentrant */
    assert_int_equal(act_lock_acquire(&l, -1), ACT_EINVAL); /* would deadlock */
    assert_int_equal(act_spawn(try_then_release, &l, NULL, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), ACT_EAGAIN);
    act_task_release(&t);
    assert_int_equal(act_lock_release(&l), 0);
    assert_int_equal(act_spawn(try_then_release, &l, NULL, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    return act_lock_close(&l);
}

static void test_lock_try(void **state) {
    (void)state;
    act_lock_t l;
    act_lock_init(&l);
    assert_int_equal(act_lock_try(&l), ACT_EINVAL); /* outside any task */
    assert_int_equal(harness_run(lock_try, NULL, VCLOCK), 0);
}

/* main holds the lock; the victim and then `next` queue; the victim is interrupted; the
 * release must go to `next`, and the lock must end free. */
static int lock_interrupted(void *arg, void **result) {
    (void)result;
    int mode = (int)(intptr_t)arg;
    act_lock_t l;
    probe victim = {.obj = &l, .timeout = victim_timeout(mode), .id = 1};
    probe next = PROBE(&l, 2);
    npassage = 0;
    act_lock_init(&l);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    act_task_t *tv = arrive(lock_waiter, &victim);
    act_task_t *tn = arrive(lock_waiter, &next);
    interrupt(tv, mode);
    assert_true(act_task_done(tv));
    assert_int_equal(victim.rc, victim_code(mode));
    assert_int_equal(act_task_state(tn), ACT_TASK_WAITING);
    assert_int_equal(act_lock_release(&l), 0); /* handed to next, not to the gone victim */
    join_release(&tn);
    join_release(&tv);
    assert_int_equal(next.rc, 0);
    assert_int_equal(npassage, 1);
    assert_int_equal(passage[0], 2);
    assert_false(act_lock_locked(&l));
    assert_int_equal(act_lock_try(&l), 0); /* and usable */
    assert_int_equal(act_lock_release(&l), 0);
    return act_lock_close(&l);
}

RUN_TEST(test_lock_cancelled_waiter_leaves_lock_consistent, lock_interrupted, BY_CANCEL)
RUN_TEST(test_lock_timed_out_waiter_leaves_lock_consistent, lock_interrupted, BY_TIMEOUT)

/* The lock is handed over before the waiter runs; a cancel that arrives after that cannot
 * undo the hand-over, so the waiter returns 0 and owns the lock (it is not leaked). */
static int lock_handoff_then_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    probe p = PROBE(&l, 7);
    npassage = 0;
    act_lock_init(&l);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    act_task_t *t = arrive(lock_waiter, &p);
    assert_int_equal(act_lock_release(&l), 0);
    assert_true(act_lock_locked(&l)); /* already the waiter's */
    act_task_cancel(t);
    join_release(&t);
    assert_int_equal(p.rc, 0);
    assert_int_equal(npassage, 1);
    assert_false(act_lock_locked(&l)); /* it released it despite the cancellation */
    return act_lock_close(&l);
}

RUN_TEST(test_lock_waiter_cancelled_after_handoff_owns_the_lock, lock_handoff_then_cancel, NULL)

/* ---- semaphore ---- */

typedef struct gauge {
    act_sem_t sem;
    int inside, max_inside, done;
    size_t max_stacks; /* stacks_in_use seen from inside the tasks */
} gauge;

static void note_stacks(gauge *g) {
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    if (st.stacks_in_use > g->max_stacks) g->max_stacks = st.stacks_in_use;
}

static void gauge_enter(gauge *g) {
    if (++g->inside > g->max_inside) g->max_inside = g->inside;
    note_stacks(g);
}

static int limited(void *arg, void **result) {
    (void)result;
    gauge *g = arg;
    assert_int_equal(act_sem_acquire(&g->sem, -1), 0);
    gauge_enter(g);
    act_sleep(1 + g->done % 3);
    g->inside--;
    g->done++;
    return act_sem_release(&g->sem);
}

static int sem_concurrency(void *arg, void **result) {
    (void)arg;
    (void)result;
    gauge gauge = {0}, *g = &gauge;
    act_task_t *t[10];
    assert_int_equal(act_sem_init(&g->sem, 3), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(act_spawn(limited, g, NULL, &t[i]), 0);
    settle();
    assert_int_equal(act_sem_value(&g->sem), 0);
    assert_int_equal(act_sem_try(&g->sem), ACT_EAGAIN);
    join_all(t, 10);
    assert_int_equal(g->done, 10);
    assert_int_equal(g->max_inside, 3); /* exactly the permits: never more, and all used */
    assert_int_equal(act_sem_value(&g->sem), 3);
    return act_sem_close(&g->sem);
}

RUN_TEST(test_semaphore_limits_concurrency, sem_concurrency, NULL)

static int over_release(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_sem_t s;
    assert_int_equal(act_sem_init(&s, -1), ACT_EINVAL);
    assert_int_equal(act_sem_init_bounded(&s, 2), 0);
    assert_int_equal(act_sem_release(&s), ACT_EOVERRELEASE);
    assert_int_equal(act_sem_value(&s), 2);
    assert_int_equal(act_sem_acquire(&s, -1), 0);
    assert_int_equal(act_sem_try(&s), 0);
    assert_int_equal(act_sem_value(&s), 0);
    assert_int_equal(act_sem_release(&s), 0);
    assert_int_equal(act_sem_release(&s), 0);
    assert_int_equal(act_sem_release(&s), ACT_EOVERRELEASE);
    assert_int_equal(act_sem_value(&s), 2);
    assert_int_equal(act_sem_close(&s), 0);
    assert_int_equal(act_sem_init(&s, 2), 0); /* a plain semaphore may grow */
    assert_int_equal(act_sem_release(&s), 0);
    assert_int_equal(act_sem_value(&s), 3);
    return act_sem_close(&s);
}

RUN_TEST(test_bounded_semaphore_over_release_is_error, over_release, NULL)

static int gated(void *arg, void **result) {
    (void)result;
    gauge *g = arg;
    gauge_enter(g);
    act_sleep(10);
    note_stacks(g);
    g->inside--;
    g->done++;
    return 0;
}

static int spawn_limit(void *arg, void **result) {
    (void)arg;
    (void)result;
    gauge gauge = {0}, *g = &gauge;
    act_task_t *t[10];
    act_spawn_opts_t o = {.limit = &g->sem};
    assert_int_equal(act_sem_init(&g->sem, 2), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(act_spawn(gated, g, &o, &t[i]), 0);
    for (int i = 2; i < 10; i++) assert_int_equal(act_task_state(t[i]), ACT_TASK_NEW);
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    assert_int_equal(st.stacks_in_use, 1); /* only main: admitted tasks start lazily */
    act_sleep(5);
    for (int i = 2; i < 10; i++) assert_int_equal(act_task_state(t[i]), ACT_TASK_NEW);
    join_all(t, 10);
    assert_int_equal(g->done, 10);
    assert_int_equal(g->max_inside, 2);
    assert_true(g->max_stacks <= 3); /* two admitted tasks + main */
    assert_int_equal(act_sem_value(&g->sem), 2);
    return act_sem_close(&g->sem);
}

RUN_TEST(test_spawn_limit_admits_tasks_without_stacks, spawn_limit, NULL)

/* A gated task (no permit, no stack) that is cancelled ends at once and never takes a permit
 * or a stack; the permits all come back afterwards. */
static int spawn_limit_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    gauge gauge = {0}, *g = &gauge;
    act_task_t *t[3];
    act_spawn_opts_t o = {.limit = &g->sem};
    assert_int_equal(act_sem_init(&g->sem, 1), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(act_spawn(gated, g, &o, &t[i]), 0);
    assert_int_equal(act_task_cancel(t[1]), 0);
    assert_true(act_task_cancelled(t[1]));
    for (int i = 0; i < 3; i++) join_release(&t[i]);
    assert_int_equal(g->done, 2);
    assert_int_equal(act_sem_value(&g->sem), 1);
    return act_sem_close(&g->sem);
}

RUN_TEST(test_spawn_limit_cancelled_gated_task_never_starts, spawn_limit_cancel, NULL)

/* main holds the only permit; victim and next queue; victim is interrupted. The permit goes
 * to next, and after everyone released the value is back to 1 (bounded: exactly 1). */
static int sem_interrupted(void *arg, void **result) {
    (void)result;
    int mode = (int)(intptr_t)arg & 1;
    bool bounded = ((intptr_t)arg & BOUNDED) != 0;
    act_sem_t s;
    probe victim = {.obj = &s, .timeout = victim_timeout(mode), .id = 1};
    probe next = PROBE(&s, 2);
    npassage = 0;
    assert_int_equal(bounded ? act_sem_init_bounded(&s, 1) : act_sem_init(&s, 1), 0);
    assert_int_equal(act_sem_acquire(&s, -1), 0);
    act_task_t *tv = arrive(sem_waiter, &victim);
    act_task_t *tn = arrive(sem_waiter, &next);
    interrupt(tv, mode);
    assert_int_equal(victim.rc, victim_code(mode));
    assert_int_equal(act_sem_value(&s), 0); /* the victim took nothing */
    assert_int_equal(act_sem_release(&s), 0);
    join_release(&tn);
    join_release(&tv);
    assert_int_equal(next.rc, 0);
    assert_int_equal(npassage, 1);
    assert_int_equal(act_sem_value(&s), 1);
    if (bounded) assert_int_equal(act_sem_release(&s), ACT_EOVERRELEASE);
    return act_sem_close(&s);
}

RUN_TEST(test_semaphore_cancelled_waiter_returns_no_permit, sem_interrupted, BY_CANCEL)
RUN_TEST(test_semaphore_timed_out_waiter_returns_no_permit, sem_interrupted, BY_TIMEOUT)
RUN_TEST(test_bounded_semaphore_cancelled_waiter_keeps_count_exact,
         sem_interrupted, BY_CANCEL | BOUNDED)
RUN_TEST(test_bounded_semaphore_timed_out_waiter_keeps_count_exact,
         sem_interrupted, BY_TIMEOUT | BOUNDED)

/* ---- event ---- */

static int event_all(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_event_t e;
    probe p[5];
    act_task_t *t[5];
    npassage = 0;
    act_event_init(&e);
    arrive_all(event_waiter, &e, p, t, 5);
    assert_int_equal(npassage, 0);
    assert_int_equal(act_event_close(&e), ACT_EBUSY);
    assert_int_equal(act_event_set(&e), 5);
    join_all(t, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(p[i].rc, 0);
    expect_passage((int[]){0, 1, 2, 3, 4}, 5);
    assert_int_equal(act_event_wait(&e, -1), 0); /* already set: no wait */
    assert_int_equal(act_event_set(&e), 0);
    return act_event_close(&e);
}

RUN_TEST(test_event_wakes_all_waiters, event_all, NULL)

static int event_clear(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_event_t e;
    probe p = PROBE(&e, 1);
    npassage = 0;
    act_event_init(&e);
    act_event_set(&e);
    assert_true(act_event_is_set(&e));
    act_event_clear(&e);
    assert_false(act_event_is_set(&e));
    assert_int_equal(act_event_wait(&e, 0), ACT_ETIMEDOUT);
    assert_int_equal(act_event_wait(&e, act_deadline_in(5)), ACT_ETIMEDOUT);
    act_task_t *t = arrive(event_waiter, &p);
    act_sleep(100);
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING); /* cleared: it keeps waiting */
    assert_int_equal(act_event_set(&e), 1);
    join_release(&t);
    assert_int_equal(p.rc, 0);
    return act_event_close(&e);
}

RUN_TEST(test_event_clear, event_clear, NULL)

/* Three wait; the victim is interrupted; set wakes exactly the two others. */
static int event_interrupted(void *arg, void **result) {
    (void)result;
    int mode = (int)(intptr_t)arg;
    act_event_t e;
    probe victim = {.obj = &e, .timeout = victim_timeout(mode), .id = 0};
    probe a = PROBE(&e, 1), b = PROBE(&e, 2);
    npassage = 0;
    act_event_init(&e);
    act_task_t *ta = arrive(event_waiter, &a);
    act_task_t *tv = arrive(event_waiter, &victim);
    act_task_t *tb = arrive(event_waiter, &b);
    interrupt(tv, mode);
    assert_int_equal(victim.rc, victim_code(mode));
    assert_int_equal(act_event_set(&e), 2);
    join_release(&ta);
    join_release(&tb);
    join_release(&tv);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    expect_passage((int[]){1, 2}, 2);
    return act_event_close(&e);
}

RUN_TEST(test_event_cancelled_waiter_leaves_event_consistent, event_interrupted, BY_CANCEL)
RUN_TEST(test_event_timed_out_waiter_leaves_event_consistent, event_interrupted, BY_TIMEOUT)

/* ---- condition ---- */

/* Notifies n (or all, n < 0) under the lock, then lets the woken run. Returns the count. */
static int notify_and_settle(act_cond_t *c, int n) {
    assert_int_equal(act_lock_acquire(c->lock, -1), 0);
    int woken = n < 0 ? act_cond_notify_all(c) : act_cond_notify(c, n);
    assert_int_equal(act_lock_release(c->lock), 0);
    settle();
    return woken;
}

static int cond_notify(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_cond_t c;
    probe p[4];
    act_task_t *t[4];
    npassage = 0;
    act_lock_init(&l);
    assert_int_equal(act_cond_init(&c, &l), 0);
    arrive_all(cond_waiter, &c, p, t, 4);
    assert_false(act_lock_locked(&l)); /* every waiter released it while parked */
    assert_int_equal(act_cond_close(&c), ACT_EBUSY);
    assert_int_equal(notify_and_settle(&c, 1), 1);
    assert_int_equal(npassage, 1);
    assert_int_equal(notify_and_settle(&c, 2), 2);
    assert_int_equal(npassage, 3);
    assert_int_equal(notify_and_settle(&c, -1), 1);
    assert_int_equal(notify_and_settle(&c, 5), 0); /* nobody left */
    join_all(t, 4);
    expect_passage((int[]){0, 1, 2, 3}, 4);
    for (int i = 0; i < 4; i++) assert_true(p[i].held);
    assert_int_equal(act_cond_close(&c), 0);
    return act_lock_close(&l);
}

RUN_TEST(test_condition_notify_one_and_all, cond_notify, NULL)

typedef struct gated_value {
    act_lock_t lock;
    act_cond_t cond;
    int value;      /* guarded by lock */
    int pred_calls; /* times the predicate ran */
    int calls_seen; /* pred_calls when the consumer's wait_for returned */
    int seen;       /* value the consumer saw when the predicate held */
    bool held;      /* the consumer held the lock then */
} gated_value;

static bool at_least_3(void *ctx) {
    gated_value *g = ctx;
    g->pred_calls++;
    return g->value >= 3;
}

static bool never(void *ctx) {
    (void)ctx;
    return false;
}

static int consumer(void *arg, void **result) {
    (void)result;
    gated_value *g = arg;
    assert_int_equal(act_lock_acquire(&g->lock, -1), 0);
    int rc = act_cond_wait_for(&g->cond, at_least_3, g, -1);
    g->seen = g->value;
    g->calls_seen = g->pred_calls;
    g->held = act_lock_locked(&g->lock);
    assert_int_equal(act_lock_release(&g->lock), 0);
    return rc;
}

static int cond_predicate(void *arg, void **result) {
    (void)arg;
    (void)result;
    gated_value gv = {0}, *g = &gv;
    act_task_t *t;
    act_lock_init(&g->lock);
    act_cond_init(&g->cond, &g->lock);
    assert_int_equal(act_spawn(consumer, g, NULL, &t), 0);
    act_yield(); /* the consumer checks (value 0) and waits */
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(act_lock_acquire(&g->lock, -1), 0);
        g->value = i;
        act_cond_notify_all(&g->cond);
        assert_int_equal(act_lock_release(&g->lock), 0);
        act_yield();
    }
    join_all(&t, 1);
    assert_int_equal(g->seen, 3);       /* woke at the first value that satisfied it */
    assert_int_equal(g->calls_seen, 4); /* once up front, then after each of 3 wake-ups */
    assert_true(g->held);
    assert_int_equal(act_lock_acquire(&g->lock, -1), 0); /* already true: no wait at all */
    assert_int_equal(act_cond_wait_for(&g->cond, at_least_3, g, 0), 0);
    assert_int_equal(act_cond_wait_for(&g->cond, never, NULL, act_deadline_in(10)),
                     ACT_ETIMEDOUT);
    assert_true(act_lock_locked(&g->lock)); /* held again after the timeout */
    assert_int_equal(act_lock_release(&g->lock), 0);
    return act_cond_close(&g->cond);
}

RUN_TEST(test_condition_wait_for_predicate, cond_predicate, NULL)

static int hold_lock(void *arg, void **result) {
    (void)result;
    act_lock_t *l = arg;
    assert_int_equal(act_lock_acquire(l, -1), 0);
    act_sleep(10);
    return act_lock_release(l);
}

static int cond_requires_lock(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_cond_t c;
    act_task_t *t;
    act_lock_init(&l);
    assert_int_equal(act_cond_init(&c, NULL), ACT_EINVAL);
    assert_int_equal(act_cond_init(&c, &l), 0);
    assert_int_equal(act_cond_wait(&c, -1), ACT_EPERM);
    assert_int_equal(act_cond_wait_for(&c, never, NULL, -1), ACT_EPERM);
    assert_int_equal(act_cond_notify(&c, 1), ACT_EPERM);
    assert_int_equal(act_cond_notify_all(&c), ACT_EPERM);
    assert_int_equal(act_spawn(hold_lock, &l, NULL, &t), 0);
    act_yield();
    assert_int_equal(act_cond_wait(&c, -1), ACT_EPERM); /* held, but by someone else */
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    assert_int_equal(act_cond_notify(&c, -1), ACT_EINVAL);
    assert_int_equal(act_cond_wait(&c, 0), ACT_ETIMEDOUT); /* poll: lock never let go */
    assert_true(act_lock_locked(&l));
    assert_int_equal(act_lock_release(&l), 0);
    assert_int_equal(act_cond_close(&c), 0);
    return act_lock_close(&l);
}

static void test_condition_wait_requires_lock(void **state) {
    (void)state;
    act_lock_t l;
    act_cond_t c;
    act_lock_init(&l);
    act_cond_init(&c, &l);
    assert_int_equal(act_cond_wait(&c, -1), ACT_EINVAL); /* outside any task */
    assert_int_equal(harness_run(cond_requires_lock, NULL, VCLOCK), 0);
}

/* victim and other wait; main takes the lock and interrupts the victim while holding it: the
 * victim must stay parked (on the lock) until main lets go, then return its error WITH the
 * lock. A notify(1) meanwhile goes to other, not to the victim. */
static int cond_interrupted(void *arg, void **result) {
    (void)result;
    int mode = (int)(intptr_t)arg;
    act_lock_t l;
    act_cond_t c;
    probe victim = {.obj = &c, .timeout = victim_timeout(mode), .id = 1};
    probe other = PROBE(&c, 2);
    npassage = 0;
    act_lock_init(&l);
    act_cond_init(&c, &l);
    act_task_t *tv = arrive(cond_waiter, &victim);
    act_task_t *to = arrive(cond_waiter, &other);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    interrupt(tv, mode);
    assert_int_equal(act_task_state(tv), ACT_TASK_WAITING); /* for the lock, shielded */
    assert_int_equal(act_cond_notify(&c, 1), 1);             /* other, the only waiter */
    assert_int_equal(act_cond_notify(&c, 1), 0);
    assert_int_equal(act_lock_release(&l), 0);
    join_release(&tv);
    join_release(&to);
    assert_int_equal(victim.rc, victim_code(mode));
    assert_true(victim.held);
    assert_int_equal(other.rc, 0);
    assert_true(other.held);
    assert_int_equal(npassage, 1);
    assert_int_equal(passage[0], 2);
    assert_false(act_lock_locked(&l));
    assert_int_equal(act_cond_close(&c), 0);
    return act_lock_close(&l);
}

RUN_TEST(test_condition_cancelled_waiter_returns_holding_lock, cond_interrupted, BY_CANCEL)
RUN_TEST(test_condition_timed_out_waiter_returns_holding_lock, cond_interrupted, BY_TIMEOUT)

/* A waiter notified and then cancelled before it ran keeps the notification: it returns 0
 * with the lock (the cancellation shows at its next blocking call), so no wake-up is lost. */
static int cond_notified_then_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_lock_t l;
    act_cond_t c;
    probe a = PROBE(&c, 1), b = PROBE(&c, 2);
    npassage = 0;
    act_lock_init(&l);
    act_cond_init(&c, &l);
    act_task_t *ta = arrive(cond_waiter, &a);
    act_task_t *tb = arrive(cond_waiter, &b);
    assert_int_equal(act_lock_acquire(&l, -1), 0);
    assert_int_equal(act_cond_notify(&c, 1), 1);
    act_task_cancel(ta);
    assert_int_equal(act_lock_release(&l), 0);
    join_release(&ta);
    assert_int_equal(a.rc, 0);
    assert_true(a.held);
    assert_int_equal(act_task_state(tb), ACT_TASK_WAITING);
    assert_int_equal(notify_and_settle(&c, -1), 1);
    join_release(&tb);
    assert_int_equal(b.rc, 0);
    assert_int_equal(act_cond_close(&c), 0);
    return act_lock_close(&l);
}

RUN_TEST(test_condition_notified_then_cancelled_waiter_keeps_notification,
         cond_notified_then_cancelled, NULL)

/* ---- barrier ---- */

static int cycle_index[3][3]; /* [task][cycle] */

static int cycle_three_times(void *arg, void **result) {
    (void)result;
    probe *p = arg;
    for (int k = 0; k < 3; k++) {
        int rc = act_barrier_wait(p->obj, deadline_of(p));
        if (rc < 0) return rc;
        cycle_index[p->id][k] = rc;
    }
    return 0;
}

static int barrier_cycles(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_barrier_t b;
    probe p[3];
    act_task_t *t[3];
    assert_int_equal(act_barrier_init(&b, 0), ACT_EINVAL);
    assert_int_equal(act_barrier_init(&b, 1), 0);
    assert_int_equal(act_barrier_wait(&b, 0), 0); /* one party trips alone: never waits */
    assert_int_equal(act_barrier_init(&b, 3), 0);
    memset(cycle_index, 0xff, sizeof cycle_index);
    for (int i = 0; i < 3; i++) {
        p[i] = PROBE(&b, i);
        t[i] = arrive(cycle_three_times, &p[i]);
        if (i < 2) assert_int_equal(act_barrier_n_waiting(&b), i + 1);
    }
    join_all(t, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(cycle_index[i][0], i); /* arrival order */
    for (int k = 0; k < 3; k++) { /* each cycle hands out 0, 1, 2 once each */
        int seen = 0;
        for (int i = 0; i < 3; i++) seen |= 1 << (cycle_index[i][k] & 7);
        assert_int_equal(seen, 7);
    }
    assert_int_equal(act_barrier_n_waiting(&b), 0);
    return act_barrier_close(&b);
}

RUN_TEST(test_barrier_returns_arrival_indices_and_is_reusable, barrier_cycles, NULL)

/* Arrives three fresh tasks and checks they trip the barrier with indices 0, 1, 2. */
static void barrier_trips(act_barrier_t *b) {
    probe p[3];
    act_task_t *t[3];
    arrive_all(barrier_waiter, b, p, t, 3);
    join_all(t, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(p[i].rc, i);
    assert_int_equal(act_barrier_n_waiting(b), 0);
}

static int barrier_abort(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_barrier_t b;
    probe p[2];
    act_task_t *t[2];
    act_barrier_init(&b, 3);
    arrive_all(barrier_waiter, &b, p, t, 2);
    assert_int_equal(act_barrier_abort(&b), 2);
    assert_true(act_barrier_broken(&b));
    join_all(t, 2);
    for (int i = 0; i < 2; i++) assert_int_equal(p[i].rc, ACT_EBROKEN);
    assert_int_equal(act_barrier_wait(&b, -1), ACT_EBROKEN); /* later arrivals too */
    assert_int_equal(act_barrier_reset(&b), 0);
    assert_false(act_barrier_broken(&b));
    barrier_trips(&b);
    /* Reset while someone waits: that waiter is broken out, the barrier starts afresh. */
    arrive_all(barrier_waiter, &b, p, t, 1);
    assert_int_equal(act_barrier_reset(&b), 1);
    join_release(&t[0]);
    assert_int_equal(p[0].rc, ACT_EBROKEN);
    barrier_trips(&b);
    return act_barrier_close(&b);
}

RUN_TEST(test_barrier_abort_breaks_waiters, barrier_abort, NULL)

/* Parties 3: a and the victim arrive, the victim is interrupted and leaves; b and c arrive
 * and trip it with a (indices 0, 1, 2); the next cycle trips normally. */
static int barrier_interrupted(void *arg, void **result) {
    (void)result;
    int mode = (int)(intptr_t)arg;
    act_barrier_t bar;
    probe victim = {.obj = &bar, .timeout = victim_timeout(mode), .id = 9};
    probe p[3];
    act_task_t *t[3];
    npassage = 0;
    act_barrier_init(&bar, 3);
    p[0] = PROBE(&bar, 0);
    t[0] = arrive(barrier_waiter, &p[0]);
    act_task_t *tv = arrive(barrier_waiter, &victim);
    assert_int_equal(act_barrier_n_waiting(&bar), 2);
    interrupt(tv, mode);
    assert_int_equal(victim.rc, victim_code(mode));
    assert_int_equal(act_barrier_n_waiting(&bar), 1);
    for (int i = 1; i < 3; i++) {
        p[i] = PROBE(&bar, i);
        t[i] = arrive(barrier_waiter, &p[i]);
    }
    join_all(t, 3);
    join_release(&tv);
    for (int i = 0; i < 3; i++) assert_int_equal(p[i].rc, i);
    barrier_trips(&bar);
    return act_barrier_close(&bar);
}

RUN_TEST(test_barrier_cancelled_waiter_leaves_count_consistent, barrier_interrupted, BY_CANCEL)
RUN_TEST(test_barrier_timed_out_waiter_leaves_count_consistent, barrier_interrupted, BY_TIMEOUT)

/* The cancelled arrival has not even resumed when the replacements come: the barrier must
 * still trip on the third live arrival (its count may not wait for the victim to leave). */
static int barrier_replaced_early(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_barrier_t bar;
    probe a = PROBE(&bar, 0), v = PROBE(&bar, 9), d = PROBE(&bar, 2);
    act_barrier_init(&bar, 3);
    act_task_t *ta = arrive(barrier_waiter, &a);
    act_task_t *tv = arrive(barrier_waiter, &v);
    act_task_t *td = spawn_probe(barrier_waiter, &d); /* ready, runs before the victim */
    act_task_cancel(tv);
    /* main arrives while the cancelled victim is still queued to resume */
    int mine = act_barrier_wait(&bar, act_deadline_in(NEVER));
    join_release(&ta);
    join_release(&td);
    join_release(&tv);
    assert_int_equal(v.rc, ACT_ECANCELED);
    assert_int_equal(a.rc, 0);
    assert_int_equal(mine, 1);
    assert_int_equal(d.rc, 2);
    barrier_trips(&bar);
    return act_barrier_close(&bar);
}

RUN_TEST(test_barrier_cancelled_waiter_is_replaced_before_it_resumes, barrier_replaced_early, NULL)

/* ---- cancellation is level-triggered ---- */

typedef struct stubborn {
    act_lock_t busy, free_lock;
    act_sem_t sem;
    act_event_t ev;
    act_cond_t cond;
    act_barrier_t bar;
    int first, lock_again, sem_again, event_again, cond_again, barrier_again;
    bool cond_held;
} stubborn;

/* Ignores the first ACT_ECANCELED and tries every primitive, each one free or ready. */
static int ignores_cancellation(void *arg, void **result) {
    (void)result;
    stubborn *s = arg;
    s->first = act_lock_acquire(&s->busy, -1);
    s->lock_again = act_lock_acquire(&s->free_lock, -1);
    s->sem_again = act_sem_acquire(&s->sem, -1);
    s->event_again = act_event_wait(&s->ev, -1);
    assert_int_equal(act_lock_try(&s->free_lock), 0); /* non-blocking calls still work */
    s->cond_again = act_cond_wait(&s->cond, -1);
    s->cond_held = act_lock_locked(&s->free_lock);
    assert_int_equal(act_lock_release(&s->free_lock), 0);
    s->barrier_again = act_barrier_wait(&s->bar, -1);
    return 0;
}

static int level_triggered(void *arg, void **result) {
    (void)arg;
    (void)result;
    stubborn st = {0}, *s = &st;
    act_task_t *t;
    act_lock_init(&s->busy);
    act_lock_init(&s->free_lock);
    act_sem_init(&s->sem, 5);
    act_event_init(&s->ev);
    act_event_set(&s->ev);
    act_cond_init(&s->cond, &s->free_lock);
    act_barrier_init(&s->bar, 1); /* would trip at once */
    assert_int_equal(act_lock_acquire(&s->busy, -1), 0);
    assert_int_equal(act_spawn(ignores_cancellation, s, NULL, &t), 0);
    act_yield();
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    act_task_cancel(t);
    join_release(&t);
    assert_int_equal(act_lock_release(&s->busy), 0);
    assert_false(act_lock_locked(&s->free_lock)); /* nothing was taken */
    assert_int_equal(act_sem_value(&s->sem), 5);
    assert_int_equal(act_barrier_n_waiting(&s->bar), 0);
    assert_int_equal(s->first, ACT_ECANCELED);
    assert_int_equal(s->lock_again, ACT_ECANCELED);
    assert_int_equal(s->sem_again, ACT_ECANCELED);
    assert_int_equal(s->event_again, ACT_ECANCELED);
    assert_int_equal(s->cond_again, ACT_ECANCELED);
    assert_true(s->cond_held); /* the failed wait never let the lock go */
    assert_int_equal(s->barrier_again, ACT_ECANCELED);
    return 0;
}

RUN_TEST(test_cancelled_task_gets_ecanceled_again_from_every_primitive, level_triggered, NULL)

/* Issue 12.3: BoundedSemaphore(0) is bounded at 0 (bound 0 used to read as "none"). */
static int bounded_zero(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_sem_t s;
    assert_int_equal(act_sem_init_bounded(&s, 0), 0);
    assert_int_equal(act_sem_release(&s), ACT_EOVERRELEASE);
    assert_int_equal(act_sem_value(&s), 0);
    assert_int_equal(act_sem_try(&s), ACT_EAGAIN);
    assert_int_equal(act_sem_close(&s), 0);
    assert_int_equal(act_sem_init_bounded(&s, 1), 0);
    assert_int_equal(act_sem_release(&s), ACT_EOVERRELEASE);
    assert_int_equal(act_sem_init(&s, 0), 0); /* plain: unbounded */
    assert_int_equal(act_sem_release(&s), 0);
    assert_int_equal(act_sem_release(&s), 0);
    assert_int_equal(act_sem_value(&s), 2);
    return 0;
}

static void test_bounded_semaphore_of_zero_refuses_release(void **state) {
    (void)state;
    assert_int_equal(harness_run(bounded_zero, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_is_fifo_fair),
        cmocka_unit_test(test_lock_counter_is_exact_under_contention),
        cmocka_unit_test(test_lock_release_by_non_owner_is_eperm),
        cmocka_unit_test(test_lock_try),
        cmocka_unit_test(test_lock_cancelled_waiter_leaves_lock_consistent),
        cmocka_unit_test(test_lock_timed_out_waiter_leaves_lock_consistent),
        cmocka_unit_test(test_lock_waiter_cancelled_after_handoff_owns_the_lock),
        cmocka_unit_test(test_semaphore_limits_concurrency),
        cmocka_unit_test(test_bounded_semaphore_over_release_is_error),
        cmocka_unit_test(test_spawn_limit_admits_tasks_without_stacks),
        cmocka_unit_test(test_spawn_limit_cancelled_gated_task_never_starts),
        cmocka_unit_test(test_semaphore_cancelled_waiter_returns_no_permit),
        cmocka_unit_test(test_semaphore_timed_out_waiter_returns_no_permit),
        cmocka_unit_test(test_bounded_semaphore_cancelled_waiter_keeps_count_exact),
        cmocka_unit_test(test_bounded_semaphore_timed_out_waiter_keeps_count_exact),
        cmocka_unit_test(test_event_wakes_all_waiters),
        cmocka_unit_test(test_event_clear),
        cmocka_unit_test(test_event_cancelled_waiter_leaves_event_consistent),
        cmocka_unit_test(test_event_timed_out_waiter_leaves_event_consistent),
        cmocka_unit_test(test_condition_notify_one_and_all),
        cmocka_unit_test(test_condition_wait_for_predicate),
        cmocka_unit_test(test_condition_wait_requires_lock),
        cmocka_unit_test(test_condition_cancelled_waiter_returns_holding_lock),
        cmocka_unit_test(test_condition_timed_out_waiter_returns_holding_lock),
        cmocka_unit_test(test_condition_notified_then_cancelled_waiter_keeps_notification),
        cmocka_unit_test(test_barrier_returns_arrival_indices_and_is_reusable),
        cmocka_unit_test(test_barrier_abort_breaks_waiters),
        cmocka_unit_test(test_barrier_cancelled_waiter_leaves_count_consistent),
        cmocka_unit_test(test_barrier_timed_out_waiter_leaves_count_consistent),
        cmocka_unit_test(test_barrier_cancelled_waiter_is_replaced_before_it_resumes),
        cmocka_unit_test(test_cancelled_task_gets_ecanceled_again_from_every_primitive),
        cmocka_unit_test(test_bounded_semaphore_of_zero_refuses_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
