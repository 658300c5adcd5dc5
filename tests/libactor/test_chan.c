/* test_chan.c: the unbuffered channel (a send waits for its receive, nothing is buffered,
 * nothing lost when a call is cut short, close wakes everyone) and the pull-based stream
 * built on it (an async generator: the producer runs only when asked, ends with EOF or its
 * error, is cancelled by close). Issue 12 point 7. */
#include "harness.h"

#define ITEM(i) ((void *)(intptr_t)(i))
#define VAL(p) ((int)(intptr_t)(p))

typedef struct sender {
    act_chan_t *c;
    int value;
    int64_t deadline;
    int rc;
    int returned; /* set once send returned */
} sender;

static int send_task(void *arg, void **result) {
    (void)result;
    sender *s = arg;
    s->rc = act_chan_send(s->c, ITEM(s->value), s->deadline);
    s->returned = 1;
    return 0;
}

static int send_waits_for_recv(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_chan_t *c;
    assert_int_equal(act_chan_new(&c), 0);
    sender s = {.c = c, .value = 7, .deadline = -1};
    act_task_t *t;
    act_spawn(send_task, &s, NULL, &t);
    for (int i = 0; i < 5; i++) act_yield();
    assert_int_equal(s.returned, 0); /* no receiver yet: it waits */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    void *item;
    assert_int_equal(act_chan_recv(c, &item, -1), 0);
    assert_int_equal(VAL(item), 7);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(s.rc, 0);
    act_task_release(&t);
    /* A sender cut short leaves nothing behind: nothing is buffered. */
    assert_int_equal(act_chan_send(c, ITEM(1), act_deadline_in(10)), ACT_ETIMEDOUT);
    assert_int_equal(act_chan_recv(c, &item, 0), ACT_ETIMEDOUT);
    assert_int_equal(act_chan_destroy(&c), 0);
    assert_null(c);
    return 0;
}

static void test_chan_send_waits_for_its_recv(void **state) {
    (void)state;
    assert_int_equal(harness_run(send_waits_for_recv, NULL, VCLOCK), 0);
}

typedef struct receiver {
    act_chan_t *c;
    void *item;
    int rc;
} receiver;

static int recv_task(void *arg, void **result) {
    (void)result;
    receiver *r = arg;
    r->rc = act_chan_recv(r->c, &r->item, -1);
    return 0;
}

static int close_wakes_all(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_chan_t *c;
    assert_int_equal(act_chan_new(&c), 0);
    receiver r = {.c = c};
    act_task_t *tr;
    act_spawn(recv_task, &r, NULL, &tr);
    act_yield();
    assert_int_equal(act_chan_send(c, ITEM(3), 0), 0); /* handed to the parked receiver */
    assert_int_equal(act_join(tr, NULL, -1), 0);
    assert_int_equal(VAL(r.item), 3);
    act_task_release(&tr);
    sender s = {.c = c, .value = 1, .deadline = -1};
    r = (receiver){.c = c, .rc = 1};
    act_task_t *ts;
    act_spawn(send_task, &s, NULL, &ts);
    act_yield();
    assert_int_equal(act_chan_destroy(&c), ACT_EBUSY);
    assert_int_equal(act_chan_close(c), 0);
    assert_int_equal(act_join(ts, NULL, -1), 0);
    assert_int_equal(s.rc, ACT_ECLOSED);
    void *item;
    assert_int_equal(act_chan_recv(c, &item, -1), ACT_ECLOSED);
    assert_int_equal(act_chan_send(c, ITEM(2), -1), ACT_ECLOSED);
    act_task_release(&ts);
    assert_int_equal(act_chan_destroy(&c), 0);
    return 0;
}

static void test_chan_close_wakes_senders_and_receivers(void **state) {
    (void)state;
    assert_int_equal(harness_run(close_wakes_all, NULL, VCLOCK), 0);
}

/* ---- stream ---- */

typedef struct gen {
    int n;        /* items to yield: 1..n */
    int produced; /* items made so far */
    int fail;     /* code to end with after the items */
    int64_t ms;   /* work before each item */
    int cleanup;  /* set when a yield failed (the consumer closed it) */
} gen;

static int counter(act_stream_t *s, void *arg) {
    gen *g = arg;
    for (int i = 1; i <= g->n; i++) {
        if (g->ms) {
            int rc = act_sleep(g->ms);
            if (rc) return rc;
        }
        g->produced++;
        int rc = act_stream_yield(s, ITEM(i));
        if (rc) {
            g->cleanup = rc;
            return rc;
        }
    }
    return g->fail;
}

static int stream_pulls(void *arg, void **result) {
    (void)arg;
    (void)result;
    gen g = {.n = 3};
    act_stream_t *s;
    assert_int_equal(act_stream_new(&s, counter, &g, NULL), 0);
    for (int i = 0; i < 3; i++) act_yield();
    assert_int_equal(g.produced, 0); /* an async generator starts at the first next */
    void *item;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(act_stream_next(s, &item, -1), 0);
        assert_int_equal(VAL(item), i);
        for (int k = 0; k < 3; k++) act_yield();
        assert_int_equal(g.produced, i); /* paused between items */
    }
    assert_int_equal(act_stream_next(s, &item, -1), ACT_EEOF);
    assert_int_equal(act_stream_next(s, &item, -1), ACT_EEOF);
    assert_int_equal(act_stream_close(&s), 0);
    assert_null(s);
    /* The producer's error comes out of next, once; then EOF. */
    g = (gen){.n = 1, .fail = ACT_EIO};
    assert_int_equal(act_stream_new(&s, counter, &g, NULL), 0);
    assert_int_equal(act_stream_next(s, &item, -1), 0);
    assert_int_equal(act_stream_next(s, &item, -1), ACT_EIO);
    assert_int_equal(act_stream_next(s, &item, -1), ACT_EEOF);
    assert_int_equal(act_stream_close(&s), 0);
    /* Never started: close frees it without running the producer. */
    g = (gen){.n = 1};
    assert_int_equal(act_stream_new(&s, counter, &g, NULL), 0);
    assert_int_equal(act_stream_close(&s), 0);
    assert_int_equal(g.produced, 0);
    return 0;
}

static void test_stream_producer_runs_only_when_asked(void **state) {
    (void)state;
    assert_int_equal(harness_run(stream_pulls, NULL, VCLOCK), 0);
}

static int stream_close_early(void *arg, void **result) {
    (void)arg;
    (void)result;
    gen g = {.n = 100};
    act_stream_t *s;
    assert_int_equal(act_stream_new(&s, counter, &g, NULL), 0);
    void *item;
    assert_int_equal(act_stream_next(s, &item, -1), 0);
    assert_int_equal(act_stream_next(s, &item, -1), 0);
    assert_int_equal(act_stream_close(&s), 0); /* aclose: GeneratorExit at its yield */
    assert_int_equal(g.cleanup, ACT_ECANCELED);
    assert_int_equal(g.produced, 2);
    /* A next cut short keeps its request: the following next gets that item. */
    g = (gen){.n = 2, .ms = 100};
    assert_int_equal(act_stream_new(&s, counter, &g, NULL), 0);
    int64_t t0 = act_now();
    assert_int_equal(act_stream_next(s, &item, act_deadline_in(10)), ACT_ETIMEDOUT);
    assert_int_equal(act_stream_next(s, &item, -1), 0);
    assert_int_equal(VAL(item), 1);
    assert_int_equal(act_now() - t0, 100);
    assert_int_equal(act_stream_next(s, &item, -1), 0);
    assert_int_equal(VAL(item), 2);
    assert_int_equal(act_stream_close(&s), 0);
    return 0;
}

static void test_stream_close_cancels_producer_and_cut_short_next_loses_nothing(void **state) {
    (void)state;
    assert_int_equal(harness_run(stream_close_early, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chan_send_waits_for_its_recv),
        cmocka_unit_test(test_chan_close_wakes_senders_and_receivers),
        cmocka_unit_test(test_stream_producer_runs_only_when_asked),
        cmocka_unit_test(test_stream_close_cancels_producer_and_cut_short_next_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
