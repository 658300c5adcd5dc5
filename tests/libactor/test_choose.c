/* test_choose.c: act_choose over queues (get and put clauses), events and tasks: the first
 * ready choice in array order wins, the first to become ready wins otherwise, and a choose that
 * times out or is cancelled leaves no clause behind for a later put or get to be lost to. */
#include "harness.h"

#define ITEM(i) ((void *)(intptr_t)(i))
#define VAL(p) ((int)(intptr_t)(p))

static act_queue_t *new_queue(act_queue_kind_t kind, size_t maxsize) {
    act_queue_t *q = NULL;
    assert_int_equal(act_queue_new(&q, kind, maxsize), 0);
    return q;
}

static void destroy_queue(act_queue_t **q) {
    assert_int_equal(act_queue_destroy(q), 0); /* EBUSY would mean a clause was left linked */
    assert_null(*q);
}

static act_choice_t get_from(act_queue_t *q) {
    return (act_choice_t){.kind = ACT_CHOICE_GET, .obj = q};
}

static act_choice_t put_into(act_queue_t *q, int v) {
    return (act_choice_t){.kind = ACT_CHOICE_PUT, .obj = q, .item = ITEM(v)};
}

static int first_in_order(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 4), *b = new_queue(ACT_QUEUE_FIFO, 4);
    act_event_t e;
    act_event_init(&e);
    act_event_set(&e);
    assert_int_equal(act_queue_put(a, ITEM(1), -1), 0);
    assert_int_equal(act_queue_put(b, ITEM(2), -1), 0);
    act_choice_t ch[3] = {get_from(a), get_from(b), {.kind = ACT_CHOICE_EVENT, .obj = &e}};
    assert_int_equal(act_choose(ch, 3, 0), 0);
    assert_int_equal(VAL(ch[0].item), 1);
    assert_null(ch[1].item);
    assert_int_equal(act_queue_size(b), 1); /* the losers are untouched */
    act_choice_t rev[3] = {{.kind = ACT_CHOICE_EVENT, .obj = &e}, get_from(b), get_from(a)};
    assert_int_equal(act_choose(rev, 3, 0), 0);
    assert_int_equal(act_queue_size(b), 1);
    act_choice_t ba[2] = {get_from(b), get_from(a)};
    assert_int_equal(act_choose(ba, 2, -1), 0);
    assert_int_equal(VAL(ba[0].item), 2);
    assert_int_equal(act_queue_size(a), 0);
    assert_int_equal(act_queue_size(b), 0);
    /* a put that fits beats a later get that would also be ready */
    assert_int_equal(act_queue_put(b, ITEM(3), -1), 0);
    act_choice_t pg[2] = {put_into(a, 4), get_from(b)};
    assert_int_equal(act_choose(pg, 2, 0), 0);
    assert_int_equal(act_queue_size(a), 1);
    assert_int_equal(act_queue_size(b), 1);
    void *item;
    assert_int_equal(act_queue_get_nowait(a, &item), 0);
    assert_int_equal(act_queue_get_nowait(b, &item), 0);
    destroy_queue(&a);
    destroy_queue(&b);
    assert_int_equal(act_event_close(&e), 0);
    return 0;
}

static void test_choose_first_ready_in_array_order_wins(void **state) {
    (void)state;
    assert_int_equal(harness_run(first_in_order, NULL, VCLOCK), 0);
}

typedef struct later_put {
    act_queue_t *q;
    int64_t ms;
    int value;
} later_put;

static int put_later(void *arg, void **result) {
    (void)result;
    later_put *a = arg;
    act_sleep(a->ms);
    return act_queue_put(a->q, ITEM(a->value), -1);
}

static int whichever_first(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 4), *b = new_queue(ACT_QUEUE_PRIORITY, 4);
    later_put la = {a, 20, 1}, lb = {b, 10, 2};
    act_task_t *ta, *tb;
    assert_int_equal(act_spawn(put_later, &la, NULL, &ta), 0);
    assert_int_equal(act_spawn(put_later, &lb, NULL, &tb), 0);
    act_choice_t ch[2] = {get_from(a), get_from(b)};
    assert_int_equal(act_choose(ch, 2, -1), 1);
    assert_int_equal(VAL(ch[1].item), 2);
    assert_int_equal(act_now(), 10);
    assert_int_equal(act_queue_size(b), 0); /* handed straight to the choose */
    /* the clause on a was unlinked: the later put stays in a */
    assert_int_equal(act_join(ta, NULL, -1), 0);
    assert_int_equal(act_queue_size(a), 1);
    assert_int_equal(act_join(tb, NULL, -1), 0);
    act_task_release(&ta);
    act_task_release(&tb);
    void *item;
    assert_int_equal(act_queue_get_nowait(a, &item), 0);
    assert_int_equal(VAL(item), 1);
    /* priority queues report the priority through the choice */
    assert_int_equal(act_queue_put_prio(b, ITEM(5), 17, -1), 0);
    act_choice_t one = get_from(b);
    assert_int_equal(act_choose(&one, 1, -1), 0);
    assert_int_equal(VAL(one.item), 5);
    assert_int_equal(one.prio, 17);
    destroy_queue(&a);
    destroy_queue(&b);
    return 0;
}

static void test_choose_gets_from_whichever_queue_gets_an_item_first(void **state) {
    (void)state;
    assert_int_equal(harness_run(whichever_first, NULL, VCLOCK), 0);
}

typedef struct later_get {
    act_queue_t *q;
    int64_t ms;
    int value; /* what it got */
} later_get;

static int get_later(void *arg, void **result) {
    (void)result;
    later_get *a = arg;
    void *item = NULL;
    act_sleep(a->ms);
    int rc = act_queue_get(a->q, &item, -1);
    a->value = VAL(item);
    return rc;
}

static int put_clause(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 1), *b = new_queue(ACT_QUEUE_FIFO, 1);
    assert_int_equal(act_queue_put(a, ITEM(1), -1), 0);
    act_choice_t ch[2] = {put_into(a, 10), put_into(b, 20)};
    assert_int_equal(act_choose(ch, 2, -1), 1); /* a is full, b has room */
    assert_int_equal(act_queue_size(b), 1);
    /* both full: the first to make room takes its item; the other never gets one */
    later_get gb = {b, 5, 0}, ga = {a, 10, 0};
    act_task_t *tb, *ta;
    assert_int_equal(act_spawn(get_later, &gb, NULL, &tb), 0);
    assert_int_equal(act_spawn(get_later, &ga, NULL, &ta), 0);
    act_choice_t again[2] = {put_into(a, 11), put_into(b, 21)};
    assert_int_equal(act_choose(again, 2, -1), 1);
    assert_int_equal(act_now(), 5);
    assert_int_equal(act_join(tb, NULL, -1), 0);
    assert_int_equal(gb.value, 20);
    assert_int_equal(act_join(ta, NULL, -1), 0);
    assert_int_equal(ga.value, 1);
    assert_int_equal(act_queue_size(a), 0); /* 11 never went in */
    void *item;
    assert_int_equal(act_queue_get_nowait(b, &item), 0);
    assert_int_equal(VAL(item), 21); /* moved in from the choose's clause */
    /* a put clause hands straight to a parked plain getter */
    later_get gp = {a, 0, 0};
    act_task_t *tp;
    assert_int_equal(act_spawn(get_later, &gp, NULL, &tp), 0);
    assert_int_equal(act_sleep(1), 0);
    act_choice_t p = put_into(a, 30);
    assert_int_equal(act_choose(&p, 1, 0), 0);
    assert_int_equal(act_queue_size(a), 0);
    assert_int_equal(act_join(tp, NULL, -1), 0);
    assert_int_equal(gp.value, 30);
    act_task_release(&ta);
    act_task_release(&tb);
    act_task_release(&tp);
    destroy_queue(&a);
    destroy_queue(&b);
    return 0;
}

static void test_choose_put_clause(void **state) {
    (void)state;
    assert_int_equal(harness_run(put_clause, NULL, VCLOCK), 0);
}

static int set_later(void *arg, void **result) {
    (void)result;
    act_sleep(5);
    return act_event_set(arg) == 1 ? 0 : ACT_EINVAL; /* exactly one waiter: the choose */
}

static int event_clause(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 1);
    act_event_t e;
    act_event_init(&e);
    act_task_t *t;
    assert_int_equal(act_spawn(set_later, &e, NULL, &t), 0);
    act_choice_t ch[2] = {get_from(q), {.kind = ACT_CHOICE_EVENT, .obj = &e}};
    assert_int_equal(act_choose(ch, 2, -1), 1);
    assert_int_equal(act_now(), 5);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(act_queue_put_nowait(q, ITEM(1)), 0);
    assert_int_equal(act_queue_size(q), 1);
    act_task_release(&t);
    destroy_queue(&q);
    assert_int_equal(act_event_close(&e), 0);
    return 0;
}

static void test_choose_event_clause(void **state) {
    (void)state;
    assert_int_equal(harness_run(event_clause, NULL, VCLOCK), 0);
}

static int task_clause(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 1);
    act_task_t *slow, *fast;
    assert_int_equal(act_spawn(harness_sleeper, ITEM(30), NULL, &slow), 0);
    assert_int_equal(act_spawn(harness_sleeper, ITEM(12), NULL, &fast), 0);
    act_choice_t ch[3] = {get_from(q),
                          {.kind = ACT_CHOICE_TASK, .obj = slow},
                          {.kind = ACT_CHOICE_TASK, .obj = fast}};
    assert_int_equal(act_choose(ch, 3, -1), 2);
    assert_int_equal(act_now(), 12);
    assert_true(act_task_done(fast));
    assert_false(act_task_done(slow));
    assert_int_equal(act_choose(ch, 2, -1), 1); /* without the ended one: wait for slow */
    assert_int_equal(act_now(), 30);
    assert_int_equal(act_choose(ch, 3, 0), 1); /* both ended: array order */
    void *r;
    assert_int_equal(act_join(fast, &r, -1), 0);
    assert_int_equal(VAL(r), 12);
    /* a task cannot wait for itself */
    act_choice_t self = {.kind = ACT_CHOICE_TASK, .obj = act_current()};
    assert_int_equal(act_choose(&self, 1, -1), ACT_EINVAL);
    act_task_release(&slow);
    act_task_release(&fast);
    destroy_queue(&q);
    return 0;
}

static void test_choose_task_clause(void **state) {
    (void)state;
    assert_int_equal(harness_run(task_clause, NULL, VCLOCK), 0);
}

static int times_out(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 2), *b = new_queue(ACT_QUEUE_LIFO, 1);
    assert_int_equal(act_queue_put(b, ITEM(9), -1), 0); /* b full: the put clause waits */
    act_event_t e;
    act_event_init(&e);
    act_task_t *t;
    assert_int_equal(act_spawn(harness_sleeper, ITEM(100), NULL, &t), 0);
    act_choice_t ch[4] = {get_from(a),
                          put_into(b, 7),
                          {.kind = ACT_CHOICE_EVENT, .obj = &e},
                          {.kind = ACT_CHOICE_TASK, .obj = t}};
    assert_int_equal(act_choose(ch, 4, act_deadline_in(10)), ACT_ETIMEDOUT);
    assert_int_equal(act_now(), 10);
    assert_int_equal(act_choose(ch, 4, 0), ACT_ETIMEDOUT); /* poll */
    /* no stale clause anywhere: every later operation sees plain objects */
    assert_int_equal(act_queue_put_nowait(a, ITEM(1)), 0);
    assert_int_equal(act_queue_size(a), 1);
    void *item;
    assert_int_equal(act_queue_get_nowait(b, &item), 0);
    assert_int_equal(VAL(item), 9); /* 7 was never moved in */
    assert_int_equal(act_queue_size(b), 0);
    assert_int_equal(act_event_set(&e), 0); /* nobody woken */
    assert_int_equal(act_event_close(&e), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(act_queue_get_nowait(a, &item), 0);
    act_task_release(&t);
    destroy_queue(&a);
    destroy_queue(&b);
    return 0;
}

static void test_choose_deadline_times_out_with_every_clause_unlinked(void **state) {
    (void)state;
    assert_int_equal(harness_run(times_out, NULL, VCLOCK), 0);
}

typedef struct chooser_arg {
    act_choice_t ch[2];
    int rc;
} chooser_arg;

static int chooser(void *arg, void **result) {
    (void)result;
    chooser_arg *a = arg;
    a->rc = act_choose(a->ch, 2, -1);
    return 0;
}

static int cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 2), *b = new_queue(ACT_QUEUE_FIFO, 2);
    chooser_arg c = {.ch = {get_from(a), get_from(b)}, .rc = 1};
    act_task_t *t;
    assert_int_equal(act_spawn(chooser, &c, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_destroy(&a), ACT_EBUSY); /* its clause is parked there */
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(c.rc, ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(act_queue_put_nowait(a, ITEM(1)), 0);
    assert_int_equal(act_queue_put_nowait(b, ITEM(2)), 0);
    assert_int_equal(act_queue_size(a) + act_queue_size(b), 2);
    /* cancelled after the hand-off: the choose returns the item it was given */
    void *item;
    act_queue_get_nowait(a, &item);
    act_queue_get_nowait(b, &item);
    c = (chooser_arg){.ch = {get_from(a), get_from(b)}, .rc = 1};
    assert_int_equal(act_spawn(chooser, &c, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_put_nowait(b, ITEM(3)), 0);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(c.rc, 1);
    assert_int_equal(VAL(c.ch[1].item), 3);
    assert_int_equal(act_queue_size(b), 0);
    act_task_release(&t);
    destroy_queue(&a);
    destroy_queue(&b);
    return 0;
}

static void test_choose_cancelled_leaves_no_clause_behind(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancelled, NULL, VCLOCK), 0);
}

static int closed(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_queue_t *a = new_queue(ACT_QUEUE_FIFO, 2), *b = new_queue(ACT_QUEUE_FIFO, 2);
    chooser_arg c = {.ch = {get_from(a), get_from(b)}, .rc = 1};
    act_task_t *t;
    assert_int_equal(act_spawn(chooser, &c, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_queue_shutdown(b, false), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(c.rc, ACT_ECLOSED);
    act_task_release(&t);
    /* at call time a shut-down queue is ready (with ACT_ECLOSED) in its array place */
    assert_int_equal(act_queue_put_nowait(a, ITEM(1)), 0);
    act_choice_t ab[2] = {get_from(a), get_from(b)};
    assert_int_equal(act_choose(ab, 2, -1), 0);
    assert_int_equal(act_choose(ab, 2, -1), ACT_ECLOSED);
    act_choice_t p = put_into(b, 1);
    assert_int_equal(act_choose(&p, 1, -1), ACT_ECLOSED);
    destroy_queue(&a);
    destroy_queue(&b);
    return 0;
}

static void test_choose_on_a_shut_down_queue_returns_eclosed(void **state) {
    (void)state;
    assert_int_equal(harness_run(closed, NULL, VCLOCK), 0);
}

enum { MANY = 40 };

typedef struct many_arg {
    act_queue_t *q[MANY];
} many_arg;

static int put_into_37(void *arg, void **result) {
    (void)result;
    many_arg *m = arg;
    act_sleep(3);
    return act_queue_put(m->q[37], ITEM(37), -1);
}

static int many_clauses(void *arg, void **result) {
    (void)arg;
    (void)result;
    many_arg m;
    act_choice_t ch[MANY];
    for (int i = 0; i < MANY; i++) {
        m.q[i] = new_queue(ACT_QUEUE_FIFO, 1);
        ch[i] = get_from(m.q[i]);
    }
    act_task_t *t;
    assert_int_equal(act_spawn(put_into_37, &m, NULL, &t), 0);
    assert_int_equal(act_choose(ch, MANY, -1), 37); /* more than fit on the stack */
    assert_int_equal(VAL(ch[37].item), 37);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    for (int i = 0; i < MANY; i++)
        destroy_queue(&m.q[i]);
    return 0;
}

static void test_choose_with_many_clauses(void **state) {
    (void)state;
    assert_int_equal(harness_run(many_clauses, NULL, VCLOCK), 0);
}

static int bad_args(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_choice_t ch = {.kind = ACT_CHOICE_GET, .obj = NULL};
    assert_int_equal(act_choose(&ch, 1, -1), ACT_EINVAL);
    assert_int_equal(act_choose(NULL, 1, -1), ACT_EINVAL);
    act_queue_t *q = new_queue(ACT_QUEUE_FIFO, 1);
    act_choice_t ok = get_from(q);
    assert_int_equal(act_choose(&ok, 0, -1), ACT_EINVAL);
    act_choice_t bad = {.kind = (act_choice_kind_t)99, .obj = q};
    assert_int_equal(act_choose(&bad, 1, -1), ACT_EINVAL);
    destroy_queue(&q);
    return 0;
}

static void test_choose_rejects_bad_arguments(void **state) {
    (void)state;
    assert_int_equal(harness_run(bad_args, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_first_ready_in_array_order_wins),
        cmocka_unit_test(test_choose_gets_from_whichever_queue_gets_an_item_first),
        cmocka_unit_test(test_choose_put_clause),
        cmocka_unit_test(test_choose_event_clause),
        cmocka_unit_test(test_choose_task_clause),
        cmocka_unit_test(test_choose_deadline_times_out_with_every_clause_unlinked),
        cmocka_unit_test(test_choose_cancelled_leaves_no_clause_behind),
        cmocka_unit_test(test_choose_on_a_shut_down_queue_returns_eclosed),
        cmocka_unit_test(test_choose_with_many_clauses),
        cmocka_unit_test(test_choose_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
