/* test_queue.c: act_queue: FIFO/LIFO/priority order, bounded puts that block and resume,
 * the _nowait calls, task_done/join, shutdown (graceful and immediate), many producers and
 * consumers, and the edge cases: getters and putters cancelled or timed out while parked
 * must neither lose nor duplicate an item. */
#include <string.h>

#include "harness.h"

#define ITEM(i) ((void *)(intptr_t)(i))
#define VAL(p) ((int)(intptr_t)(p))

static act_queue_t *new_queue(act_queue_kind_t kind, size_t maxsize) {
    act_queue_t *q = NULL;
    assert_int_equal(act_queue_new(&q, kind, maxsize), 0);
    assert_non_null(q);
    return q;
}

static void destroy_queue(act_queue_t **q) {
    assert_int_equal(act_queue_destroy(q), 0);
    assert_null(*q);
}

static int drain_order(act_queue_kind_t kind, const int *in, const int64_t *prio, size_t n,
                       int *out) {
    act_queue_t *q = new_queue(kind, 8);
    for (size_t i = 0; i < n; i++) {
        int rc = prio ? act_queue_put_prio(q, ITEM(in[i]), prio[i], 0)
                      : act_queue_put(q, ITEM(in[i]), 0);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(act_queue_size(q), n);
    for (size_t i = 0; i < n; i++) {
        void *item;
        assert_int_equal(act_queue_get(q, &item, 0), 0);
        out[i] = VAL(item);
    }
    destroy_queue(&q);
    return 0;
}

static int fifo_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    int in[] = {1, 2, 3, 4, 5}, out[5], want[] = {1, 2, 3, 4, 5};
    drain_order(ACT_QUEUE_FIFO, in, NULL, 5, out);
    assert_memory_equal(out, want, sizeof want);
    return 0;
}

static void test_fifo_gives_items_in_put_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(fifo_order, NULL, VCLOCK), 0);
}

static int lifo_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    int in[] = {1, 2, 3, 4, 5}, out[5], want[] = {5, 4, 3, 2, 1};
    drain_order(ACT_QUEUE_LIFO, in, NULL, 5, out);
    assert_memory_equal(out, want, sizeof want);
    return 0;
}

static void test_lifo_gives_items_in_reverse_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(lifo_order, NULL, VCLOCK), 0);
}

static int priority_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    int in[] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t prio[] = {5, 1, 5, -3, 1, 5, 0, 1};
    int out[8], want[] = {4, 7, 2, 5, 8, 1, 3, 6};
    drain_order(ACT_QUEUE_PRIORITY, in, prio, 8, out);
    assert_memory_equal(out, want, sizeof want);
    /* get_prio reports the priority the item was put with */
    act_queue_t *q = new_queue(ACT_QUEUE_PRIORITY, 4);
    assert_int_equal(act_queue_put_prio(q, ITEM(9), 42, -1), 0);
    void *item;
    int64_t p = 0;
    assert_int_equal(act_queue_get_prio(q, &item, &p, -1), 0);
    assert_int_equal(VAL(item), 9);
    assert_int_equal(p, 42);
    destroy_queue(&q);
    return 0;
}

static void test_priority_lowest_first_and_equal_prios_keep_insertion_order(void **state) {
    (void)state;
    assert_int_equal(harness_run(priority_order, NULL, VCLOCK), 0);
}

/* A larger priority run against a reference: a stable sort of (prio, insertion index). */
static int priority_many(void *arg, void **result) {
    (void)arg;
    (void)result;
    enum { N = 2000 };
    act_queue_t *q = new_queue(ACT_QUEUE_PRIORITY, N);
    static int64_t prio[N];
    for (int i = 0; i < N; i++) {
        prio[i] = (int64_t)((i * 7919) % 13);
        assert_int_equal(act_queue_put_prio(q, ITEM(i), prio[i], 0), 0);
    }
    int64_t last_p = INT64_MIN;
    int last_i = -1;
    for (int i = 0; i < N; i++) {
        void *item;
        int64_t p;
        assert_int_equal(act_queue_get_prio(q, &item, &p, 0), 0);
        assert_int_equal(p, prio[VAL(item)]);
        assert_true(p > last_p || (p == last_p && VAL(item) > last_i));
        last_p = p;
        last_i = VAL(item);
    }
    destroy_queue(&q);
    return 0;
}

static void test_priority_heap_is_stable_over_many_items(void **state) {
    (void)state;
    assert_int_equal(harness_run(priority_many, NULL, VCLOCK), 0);
}

/* ---- bounded puts ---- */

typedef struct putter_arg {
    act_queue_t *q;
    int first, count; /* puts ITEM(first) .. ITEM(first + count - 1) */
    int64_t deadline;
    int done; /* puts completed */
    int rc;   /* the last put's code */
} putter_arg;

static int putter(void *arg, void **result) {
    (void)result;
    putter_arg *a = arg;
    for (int i = 0; i < a->count; i++) {
        a->rc = act_queue_put(a->q, ITEM(a->first + i), a->deadline);
        if (a->rc) return a->rc;
        a->done++;
    }
    return 0;
}

static int put_blocks(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 2);
    putter_arg pa = {.q = q, .first = 1, .count = 4, .deadline = -1};
    act_task_t *t;
    assert_int_equal(act_spawn(putter, &pa, NULL, &t), 0);
    assert_int_equal(act_sleep(5), 0);
    assert_int_equal(pa.done, 2); /* parked on the third */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_queue_size(q), 2);
    assert_int_equal(act_queue_destroy(&q), ACT_EBUSY); /* a putter waits on it */
    assert_non_null(q);
    void *item;
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    assert_int_equal(VAL(item), 1);
    assert_int_equal(act_queue_size(q), 2); /* the parked item moved straight in */
    assert_int_equal(act_sleep(5), 0);
    assert_int_equal(pa.done, 3);
    for (int want = 2; want <= 4; want++) {
        assert_int_equal(act_queue_get(q, &item, -1), 0);
        assert_int_equal(VAL(item), want);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(pa.done, 4);
    act_task_release(&t);
    destroy_queue(&q);
    return 0;
}

static void test_bounded_put_blocks_when_full_and_resumes(void **state) {
    (void)state;
    assert_int_equal(harness_run(put_blocks, NULL, VCLOCK), 0);
}

static int nowait(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_LIFO, 2);
    void *item = ITEM(99);
    assert_int_equal(act_queue_get_nowait(q, &item), ACT_EAGAIN);
    assert_int_equal(VAL(item), 99); /* untouched */
    assert_int_equal(act_queue_put_nowait(q, ITEM(1)), 0);
    assert_int_equal(act_queue_put_nowait(q, ITEM(2)), 0);
    assert_int_equal(act_queue_put_nowait(q, ITEM(3)), ACT_EAGAIN);
    assert_int_equal(act_queue_size(q), 2);
    assert_int_equal(act_queue_maxsize(q), 2);
    assert_int_equal(act_queue_put(q, ITEM(3), 0), ACT_ETIMEDOUT); /* deadline 0: poll */
    assert_int_equal(act_queue_get_nowait(q, &item), 0);
    assert_int_equal(VAL(item), 2);
    assert_int_equal(act_queue_get_nowait(q, &item), 0);
    assert_int_equal(VAL(item), 1);
    assert_int_equal(act_queue_get(q, &item, 0), ACT_ETIMEDOUT);
    destroy_queue(&q);
    return 0;
}

static void test_nowait_calls_return_eagain(void **state) {
    (void)state;
    assert_int_equal(harness_run(nowait, NULL, VCLOCK), 0);
}

static void test_new_rejects_zero_maxsize_and_bad_kind(void **state) {
    (void)state;
    act_queue_t *q = ITEM(1);
    assert_int_equal(act_queue_new(&q, ACT_QUEUE_FIFO, 0), ACT_EINVAL);
    assert_null(q);
    assert_int_equal(act_queue_new(&q, (act_queue_kind_t)7, 4), ACT_EINVAL);
    assert_int_equal(act_queue_new(NULL, ACT_QUEUE_FIFO, 4), ACT_EINVAL);
    assert_int_equal(act_queue_destroy(&q), 0); /* NULL: nothing to do */
    assert_int_equal(act_queue_destroy(NULL), 0);
    /* outside a task the _nowait calls work and the blocking ones are refused */
    q = new_queue(ACT_QUEUE_FIFO, 1);
    void *item;
    assert_int_equal(act_queue_put_nowait(q, ITEM(1)), 0);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), ACT_EINVAL);
    assert_int_equal(act_queue_get_nowait(q, &item), 0);
    assert_int_equal(act_queue_get(q, &item, -1), ACT_EINVAL);
    destroy_queue(&q);
}

/* The ring grows while its head is in the middle: order must survive every copy. */
static int ring_grows(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, (size_t)1 << 20);
    int next_put = 0, next_get = 0;
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 3000; i++)
            assert_int_equal(act_queue_put_nowait(q, ITEM(next_put++)), 0);
        for (int i = 0; i < 1700; i++) {
            void *item;
            assert_int_equal(act_queue_get_nowait(q, &item), 0);
            assert_int_equal(VAL(item), next_get++);
        }
    }
    assert_int_equal(act_queue_size(q), (size_t)(next_put - next_get));
    void *item;
    while (act_queue_get_nowait(q, &item) == 0)
        assert_int_equal(VAL(item), next_get++);
    assert_int_equal(next_get, next_put);
    destroy_queue(&q);
    /* a small odd bound: growth stops exactly at maxsize */
    q = new_queue(ACT_QUEUE_FIFO, 37);
    for (int i = 0; i < 37; i++)
        assert_int_equal(act_queue_put_nowait(q, ITEM(i)), 0);
    assert_int_equal(act_queue_put_nowait(q, ITEM(37)), ACT_EAGAIN);
    for (int i = 0; i < 37; i++) {
        assert_int_equal(act_queue_get_nowait(q, &item), 0);
        assert_int_equal(VAL(item), i);
    }
    destroy_queue(&q);
    return 0;
}

static void test_fifo_ring_keeps_order_while_growing_to_a_large_bound(void **state) {
    (void)state;
    assert_int_equal(harness_run(ring_grows, NULL, VCLOCK), 0);
}

/* ---- task_done and join ---- */

typedef struct worker_arg {
    act_queue_t *q;
    int processed;
} worker_arg;

static int worker(void *arg, void **result) {
    (void)result;
    worker_arg *a = arg;
    void *item;
    int rc;
    while ((rc = act_queue_get(a->q, &item, -1)) == 0) {
        act_sleep(VAL(item)); /* "process" it */
        a->processed++;
        assert_int_equal(act_queue_task_done(a->q), 0);
    }
    return rc == ACT_ECLOSED ? 0 : rc;
}

static int join_all(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 16);
    assert_int_equal(act_queue_join(q, 0), 0); /* nothing put: done at once */
    worker_arg wa = {.q = q};
    act_task_t *t;
    for (int i = 1; i <= 5; i++)
        assert_int_equal(act_queue_put(q, ITEM(i), -1), 0);
    assert_int_equal(act_queue_join(q, act_deadline_in(3)), ACT_ETIMEDOUT); /* nobody works */
    assert_int_equal(act_spawn(worker, &wa, NULL, &t), 0);
    assert_int_equal(act_queue_join(q, -1), 0);
    assert_int_equal(wa.processed, 5);
    assert_int_equal(act_now(), 3 + 1 + 2 + 3 + 4 + 5);
    assert_int_equal(act_queue_shutdown(q, false), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    destroy_queue(&q);
    return 0;
}

static void test_join_returns_once_every_item_is_done(void **state) {
    (void)state;
    assert_int_equal(harness_run(join_all, NULL, VCLOCK), 0);
}

static int over_release(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 4);
    assert_int_equal(act_queue_task_done(q), ACT_EOVERRELEASE);
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), 0);
    assert_int_equal(act_queue_task_done(q), ACT_EOVERRELEASE); /* put but not yet got */
    void *item;
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    assert_int_equal(act_queue_task_done(q), 0);
    assert_int_equal(act_queue_task_done(q), ACT_EOVERRELEASE);
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    assert_int_equal(act_queue_task_done(q), 0);
    assert_int_equal(act_queue_join(q, 0), 0);
    destroy_queue(&q);
    return 0;
}

static void test_task_done_more_often_than_got_is_overrelease(void **state) {
    (void)state;
    assert_int_equal(harness_run(over_release, NULL, VCLOCK), 0);
}

/* ---- shutdown ---- */

typedef struct getter_arg {
    act_queue_t *q;
    int64_t deadline;
    int rc;
    void *item;
} getter_arg;

static int getter(void *arg, void **result) {
    (void)result;
    getter_arg *a = arg;
    a->rc = act_queue_get(a->q, &a->item, a->deadline);
    return 0;
}

static int graceful(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 2);
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), 0);
    putter_arg pa = {.q = q, .first = 3, .count = 1, .deadline = -1};
    act_task_t *p;
    assert_int_equal(act_spawn(putter, &pa, NULL, &p), 0);
    assert_int_equal(act_sleep(1), 0); /* the putter parks: full */
    assert_int_equal(act_queue_shutdown(q, false), 0);
    assert_int_equal(act_join(p, NULL, -1), ACT_ECLOSED); /* parked putters are refused */
    assert_int_equal(pa.rc, ACT_ECLOSED);
    assert_int_equal(act_queue_put(q, ITEM(4), -1), ACT_ECLOSED);
    assert_int_equal(act_queue_put_nowait(q, ITEM(4)), ACT_ECLOSED);
    void *item;
    assert_int_equal(act_queue_get(q, &item, -1), 0); /* what is left still drains */
    assert_int_equal(VAL(item), 1);
    assert_int_equal(act_queue_get_nowait(q, &item), 0);
    assert_int_equal(VAL(item), 2);
    assert_int_equal(act_queue_get(q, &item, -1), ACT_ECLOSED);
    assert_int_equal(act_queue_get_nowait(q, &item), ACT_ECLOSED);
    act_task_release(&p);
    destroy_queue(&q);
    /* a getter parked on an empty queue wakes with ACT_ECLOSED on a graceful shutdown too */
    q = new_queue(ACT_QUEUE_FIFO, 2);
    getter_arg ga = {.q = q, .deadline = -1};
    act_task_t *g;
    assert_int_equal(act_spawn(getter, &ga, NULL, &g), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_shutdown(q, false), 0);
    assert_int_equal(act_join(g, NULL, -1), 0);
    assert_int_equal(ga.rc, ACT_ECLOSED);
    act_task_release(&g);
    destroy_queue(&q);
    return 0;
}

static void test_graceful_shutdown_drains_then_closes(void **state) {
    (void)state;
    assert_int_equal(harness_run(graceful, NULL, VCLOCK), 0);
}

typedef struct joiner_arg {
    act_queue_t *q;
    int rc;
    int64_t when;
} joiner_arg;

static int joiner(void *arg, void **result) {
    (void)result;
    joiner_arg *a = arg;
    a->rc = act_queue_join(a->q, -1);
    a->when = act_now();
    return 0;
}

static int immediate(void *arg, void **result) {
    (void)arg;
    (void)result;
    /* getters parked on one queue, items and a joiner on another */
    act_queue_t *empty = new_queue(ACT_QUEUE_FIFO, 4), *full = new_queue(ACT_QUEUE_PRIORITY, 3);
    getter_arg ga[3];
    act_task_t *g[3], *j, *p;
    for (int i = 0; i < 3; i++) {
        ga[i] = (getter_arg){.q = empty, .deadline = -1};
        assert_int_equal(act_spawn(getter, &ga[i], NULL, &g[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(act_queue_put_prio(full, ITEM(i), i, -1), 0);
    joiner_arg ja = {.q = full, .rc = 1};
    putter_arg pa = {.q = full, .first = 7, .count = 1, .deadline = -1};
    assert_int_equal(act_spawn(joiner, &ja, NULL, &j), 0);
    assert_int_equal(act_spawn(putter, &pa, NULL, &p), 0);
    assert_int_equal(act_sleep(10), 0);
    assert_int_equal(ja.rc, 1); /* still waiting */
    assert_int_equal(act_queue_shutdown(empty, true), 0);
    assert_int_equal(act_queue_shutdown(full, true), 0);
    assert_int_equal(act_queue_size(full), 0); /* discarded */
    void *item;
    assert_int_equal(act_queue_get_nowait(full, &item), ACT_ECLOSED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(act_join(g[i], NULL, -1), 0);
        assert_int_equal(ga[i].rc, ACT_ECLOSED);
        act_task_release(&g[i]);
    }
    assert_int_equal(act_join(j, NULL, -1), 0);
    assert_int_equal(ja.rc, 0); /* discarded items count as done */
    assert_int_equal(ja.when, 10);
    assert_int_equal(act_join(p, NULL, -1), ACT_ECLOSED);
    assert_int_equal(act_queue_task_done(full), ACT_EOVERRELEASE);
    act_task_release(&j);
    act_task_release(&p);
    destroy_queue(&empty);
    destroy_queue(&full);
    return 0;
}

static void test_immediate_shutdown_discards_and_wakes_getters_and_joiners(void **state) {
    (void)state;
    assert_int_equal(harness_run(immediate, NULL, VCLOCK), 0);
}

static int immediate_waits_for_outstanding(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 4);
    void *item;
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), 0);
    assert_int_equal(act_queue_get(q, &item, -1), 0); /* one is being processed */
    joiner_arg ja = {.q = q, .rc = 1};
    act_task_t *j;
    assert_int_equal(act_spawn(joiner, &ja, NULL, &j), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_shutdown(q, true), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(ja.rc, 1); /* the item got is not done yet */
    assert_int_equal(act_queue_task_done(q), 0);
    assert_int_equal(act_join(j, NULL, -1), 0);
    assert_int_equal(ja.rc, 0);
    assert_int_equal(ja.when, 2);
    act_task_release(&j);
    destroy_queue(&q);
    return 0;
}

static void test_immediate_shutdown_join_still_waits_for_items_got(void **state) {
    (void)state;
    assert_int_equal(harness_run(immediate_waits_for_outstanding, NULL, VCLOCK), 0);
}

/* ---- many producers and consumers ---- */

enum { NITEMS = 1000 };

typedef struct mpmc {
    act_queue_t *q;
    int seen[NITEMS + 1];
    int got_by[3];
} mpmc;

typedef struct consumer_arg {
    mpmc *m;
    int id;
} consumer_arg;

static int consumer(void *arg, void **result) {
    (void)result;
    consumer_arg *a = arg;
    void *item;
    int rc, n = 0;
    while ((rc = act_queue_get(a->m->q, &item, -1)) == 0) {
        a->m->seen[VAL(item)]++;
        a->m->got_by[a->id]++;
        if (++n % (a->id + 2) == 0) act_yield(); /* vary the interleaving */
        assert_int_equal(act_queue_task_done(a->m->q), 0);
    }
    return rc == ACT_ECLOSED ? 0 : rc;
}

static int producer(void *arg, void **result) {
    (void)result;
    putter_arg *a = arg;
    for (int i = 0; i < a->count; i++) {
        int rc = act_queue_put(a->q, ITEM(a->first + i), -1);
        if (rc) return rc;
        if (i % 7 == a->first % 3) act_sleep(1);
    }
    return 0;
}

static int many(void *arg, void **result) {
    (void)arg;
    (void)result;
    static mpmc m;
    memset(&m, 0, sizeof m);
    m.q = new_queue(ACT_QUEUE_FIFO, 10);
    act_task_t *t[6];
    putter_arg pa[3] = {{.q = m.q, .first = 1, .count = 333},
                        {.q = m.q, .first = 334, .count = 333},
                        {.q = m.q, .first = 667, .count = 334}};
    consumer_arg ca[3];
    for (int i = 0; i < 3; i++) {
        ca[i] = (consumer_arg){.m = &m, .id = i};
        assert_int_equal(act_spawn(consumer, &ca[i], NULL, &t[i]), 0);
        assert_int_equal(act_spawn(producer, &pa[i], NULL, &t[3 + i]), 0);
    }
    for (int i = 3; i < 6; i++)
        assert_int_equal(act_join(t[i], NULL, -1), 0);
    assert_int_equal(act_queue_join(m.q, -1), 0);
    assert_int_equal(act_queue_shutdown(m.q, false), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(act_join(t[i], NULL, -1), 0);
    for (int i = 1; i <= NITEMS; i++)
        assert_int_equal(m.seen[i], 1);
    assert_int_equal(m.got_by[0] + m.got_by[1] + m.got_by[2], NITEMS);
    for (int i = 0; i < 3; i++)
        assert_true(m.got_by[i] > 0); /* all three took part */
    for (int i = 0; i < 6; i++)
        act_task_release(&t[i]);
    destroy_queue(&m.q);
    return 0;
}

static void test_three_producers_three_consumers_see_each_item_once(void **state) {
    (void)state;
    assert_int_equal(harness_run(many, NULL, VCLOCK), 0);
}

/* ---- edge cases: parked getters and putters that are cancelled or time out ---- */

static int getter_cut_short(void *arg, void **result) {
    (void)result;
    bool cancel = arg != NULL;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 4);
    int seen[4] = {0};
    getter_arg a = {.q = q, .deadline = cancel ? -1 : act_deadline_in(5)};
    act_task_t *g;
    assert_int_equal(act_spawn(getter, &a, NULL, &g), 0);
    assert_int_equal(act_sleep(1), 0);
    if (cancel)
        act_task_cancel(g);
    else
        assert_int_equal(act_sleep(10), 0);
    assert_int_equal(act_join(g, NULL, -1), 0);
    assert_int_equal(a.rc, cancel ? ACT_ECANCELED : ACT_ETIMEDOUT);
    act_task_release(&g);
    /* the dead getter's clause is gone: the put is kept, not handed to it */
    assert_int_equal(act_queue_put_nowait(q, ITEM(1)), 0);
    assert_int_equal(act_queue_size(q), 1);
    /* cut short after the hand-off: the getter already owns the item and returns it */
    getter_arg b = {.q = q, .deadline = act_deadline_in(5)};
    void *item;
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    seen[VAL(item)]++;
    assert_int_equal(act_spawn(getter, &b, NULL, &g), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), 0); /* handed to the parked getter */
    assert_int_equal(act_queue_size(q), 0);
    if (cancel)
        act_task_cancel(g); /* too late: the hand-off completed the get */
    else
        assert_int_equal(act_sleep(10), 0); /* the hand-off disarmed its deadline */
    assert_int_equal(act_join(g, NULL, -1), 0);
    assert_int_equal(b.rc, 0);
    seen[VAL(b.item)]++;
    act_task_release(&g);
    /* the deadline and a put fall due at the same instant: either way, exactly once */
    getter_arg c = {.q = q, .deadline = act_deadline_in(5)};
    assert_int_equal(act_spawn(getter, &c, NULL, &g), 0);
    assert_int_equal(act_sleep_until(c.deadline), 0);
    if (cancel) act_task_cancel(g);
    assert_int_equal(act_queue_put(q, ITEM(3), -1), 0);
    assert_int_equal(act_join(g, NULL, -1), 0);
    if (c.rc == 0)
        seen[VAL(c.item)]++;
    else
        assert_true(c.rc == ACT_ETIMEDOUT || (cancel && c.rc == ACT_ECANCELED));
    while (act_queue_get_nowait(q, &item) == 0)
        seen[VAL(item)]++;
    for (int i = 1; i <= 3; i++)
        assert_int_equal(seen[i], 1);
    act_task_release(&g);
    destroy_queue(&q);
    return 0;
}

static void test_cancelled_getter_loses_no_item(void **state) {
    (void)state;
    assert_int_equal(harness_run(getter_cut_short, ITEM(1), VCLOCK), 0);
}

static void test_timed_out_getter_loses_no_item(void **state) {
    (void)state;
    assert_int_equal(harness_run(getter_cut_short, NULL, VCLOCK), 0);
}

static int putter_cut_short(void *arg, void **result) {
    (void)result;
    bool cancel = arg != NULL;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 1);
    int seen[5] = {0};
    void *item;
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    putter_arg a = {.q = q, .first = 2, .count = 1, .deadline = cancel ? -1 : act_deadline_in(5)};
    act_task_t *p;
    assert_int_equal(act_spawn(putter, &a, NULL, &p), 0);
    assert_int_equal(act_sleep(1), 0);
    if (cancel)
        act_task_cancel(p);
    else
        assert_int_equal(act_sleep(10), 0);
    assert_int_equal(act_join(p, NULL, -1), cancel ? ACT_ECANCELED : ACT_ETIMEDOUT);
    assert_int_equal(a.done, 0); /* item 2 stays the putter's: it is not in the queue */
    act_task_release(&p);
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    seen[VAL(item)]++;
    assert_int_equal(act_queue_get_nowait(q, &item), ACT_EAGAIN);
    /* cut short after its item moved in: the put succeeded, the item is there exactly once */
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    putter_arg b = {.q = q, .first = 3, .count = 1, .deadline = act_deadline_in(5)};
    assert_int_equal(act_spawn(putter, &b, NULL, &p), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_get(q, &item, -1), 0); /* moves item 3 in, wakes the putter */
    seen[VAL(item)]++;
    assert_int_equal(act_queue_size(q), 1);
    if (cancel)
        act_task_cancel(p);
    else
        assert_int_equal(act_sleep(10), 0);
    assert_int_equal(act_join(p, NULL, -1), 0);
    assert_int_equal(b.done, 1);
    act_task_release(&p);
    /* the deadline and a get fall due at the same instant: either way, exactly once */
    putter_arg c = {.q = q, .first = 4, .count = 1, .deadline = act_deadline_in(5)};
    assert_int_equal(act_spawn(putter, &c, NULL, &p), 0);
    assert_int_equal(act_sleep_until(c.deadline), 0);
    if (cancel) act_task_cancel(p);
    assert_int_equal(act_queue_get(q, &item, -1), 0);
    seen[VAL(item)]++;
    int rc = act_join(p, NULL, -1);
    assert_true(rc == 0 ? c.done == 1 : rc == ACT_ETIMEDOUT || (cancel && rc == ACT_ECANCELED));
    while (act_queue_get_nowait(q, &item) == 0)
        seen[VAL(item)]++;
    assert_int_equal(seen[1], 2); /* put twice on purpose */
    assert_int_equal(seen[2], 0); /* never went in */
    assert_int_equal(seen[3], 1);
    assert_int_equal(seen[4], c.done); /* in the queue exactly when the put succeeded */
    act_task_release(&p);
    destroy_queue(&q);
    return 0;
}

static void test_cancelled_putter_neither_loses_nor_duplicates(void **state) {
    (void)state;
    assert_int_equal(harness_run(putter_cut_short, ITEM(1), VCLOCK), 0);
}

static void test_timed_out_putter_neither_loses_nor_duplicates(void **state) {
    (void)state;
    assert_int_equal(harness_run(putter_cut_short, NULL, VCLOCK), 0);
}

static int cancelled_caller(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 2);
    assert_int_equal(act_queue_put(q, ITEM(1), -1), 0);
    act_task_cancel(act_current());
    void *item;
    /* level-triggered: even a get that would not wait fails, and takes nothing */
    assert_int_equal(act_queue_get(q, &item, -1), ACT_ECANCELED);
    assert_int_equal(act_queue_put(q, ITEM(2), -1), ACT_ECANCELED);
    assert_int_equal(act_queue_size(q), 1);
    assert_int_equal(act_queue_get_nowait(q, &item), 0); /* the _nowait calls never wait */
    destroy_queue(&q);
    return 0;
}

static void test_cancelled_task_cannot_get_or_put(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancelled_caller, NULL, VCLOCK), 0);
}

/* Issue 12.2: a getter already parked takes its item when it runs, as asyncio's does: the
 * most urgent of the items put in the same tick (PRIORITY), the last one (LIFO). */
typedef struct waiting_getter {
    act_queue_t *q;
    void *got;
    int64_t prio;
    int rc;
} waiting_getter;

static int parked_get(void *arg, void **result) {
    (void)result;
    waiting_getter *g = arg;
    g->rc = act_queue_get_prio(g->q, &g->got, &g->prio, -1);
    return 0;
}

static int choose_get(void *arg, void **result) {
    (void)result;
    waiting_getter *g = arg;
    act_choice_t ch = {.kind = ACT_CHOICE_GET, .obj = g->q};
    g->rc = act_choose(&ch, 1, -1);
    g->got = ch.item;
    g->prio = ch.prio;
    return 0;
}

static void waiter_takes_best(act_queue_kind_t kind, act_task_fn getter, int expect) {
    waiting_getter g = {.q = new_queue(kind, 8), .rc = -1};
    act_task_t *t;
    act_spawn(getter, &g, NULL, &t);
    assert_int_equal(act_yield(), 0); /* it parks on the empty queue */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_queue_put_prio(g.q, ITEM(1), 5, 0), 0);
    assert_int_equal(act_queue_put_prio(g.q, ITEM(2), 1, 0), 0);
    assert_int_equal(act_queue_put_prio(g.q, ITEM(3), 9, 0), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(g.rc, 0);
    assert_int_equal(VAL(g.got), expect);
    assert_int_equal(act_queue_size(g.q), 2);
    void *item;
    while (act_queue_get_nowait(g.q, &item) == 0) act_queue_task_done(g.q);
    act_task_release(&t);
    destroy_queue(&g.q);
}

static int parked_getter_takes_best(void *arg, void **result) {
    (void)arg;
    (void)result;
    waiter_takes_best(ACT_QUEUE_PRIORITY, parked_get, 2);
    waiter_takes_best(ACT_QUEUE_LIFO, parked_get, 3);
    waiter_takes_best(ACT_QUEUE_FIFO, parked_get, 1);
    waiter_takes_best(ACT_QUEUE_PRIORITY, choose_get, 2);
    waiter_takes_best(ACT_QUEUE_LIFO, choose_get, 3);
    return 0;
}

static void test_parked_getter_takes_its_item_when_it_runs(void **state) {
    (void)state;
    assert_int_equal(harness_run(parked_getter_takes_best, NULL, VCLOCK), 0);
}

/* A woken getter whose item another task took first parks again: nothing is lost. */
static int barged_getter(void *arg, void **result) {
    (void)arg;
    (void)result;
    waiting_getter g = {.q = new_queue(ACT_QUEUE_PRIORITY, 4), .rc = -1};
    act_task_t *t;
    act_spawn(parked_get, &g, NULL, &t);
    assert_int_equal(act_yield(), 0);
    assert_int_equal(act_queue_put_prio(g.q, ITEM(7), 0, 0), 0);
    void *item;
    assert_int_equal(act_queue_get_nowait(g.q, &item), 0); /* barges in first */
    assert_int_equal(VAL(item), 7);
    assert_int_equal(act_queue_destroy(&g.q), ACT_EBUSY); /* the woken getter still counts */
    assert_int_equal(act_yield(), 0);
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING); /* parked again */
    assert_int_equal(act_queue_put_prio(g.q, ITEM(8), 0, 0), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(VAL(g.got), 8);
    act_task_release(&t);
    destroy_queue(&g.q);
    return 0;
}

static void test_woken_getter_parks_again_when_item_taken_first(void **state) {
    (void)state;
    assert_int_equal(harness_run(barged_getter, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_gives_items_in_put_order),
        cmocka_unit_test(test_lifo_gives_items_in_reverse_order),
        cmocka_unit_test(test_priority_lowest_first_and_equal_prios_keep_insertion_order),
        cmocka_unit_test(test_priority_heap_is_stable_over_many_items),
        cmocka_unit_test(test_bounded_put_blocks_when_full_and_resumes),
        cmocka_unit_test(test_nowait_calls_return_eagain),
        cmocka_unit_test(test_new_rejects_zero_maxsize_and_bad_kind),
        cmocka_unit_test(test_fifo_ring_keeps_order_while_growing_to_a_large_bound),
        cmocka_unit_test(test_join_returns_once_every_item_is_done),
        cmocka_unit_test(test_task_done_more_often_than_got_is_overrelease),
        cmocka_unit_test(test_graceful_shutdown_drains_then_closes),
        cmocka_unit_test(test_immediate_shutdown_discards_and_wakes_getters_and_joiners),
        cmocka_unit_test(test_immediate_shutdown_join_still_waits_for_items_got),
        cmocka_unit_test(test_three_producers_three_consumers_see_each_item_once),
        cmocka_unit_test(test_cancelled_getter_loses_no_item),
        cmocka_unit_test(test_timed_out_getter_loses_no_item),
        cmocka_unit_test(test_cancelled_putter_neither_loses_nor_duplicates),
        cmocka_unit_test(test_timed_out_putter_neither_loses_nor_duplicates),
        cmocka_unit_test(test_cancelled_task_cannot_get_or_put),
        cmocka_unit_test(test_parked_getter_takes_its_item_when_it_runs),
        cmocka_unit_test(test_woken_getter_parks_again_when_item_taken_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
