/* test_bus.c: the in-process event bus: prefix matching, fan-out of one shared refcounted
 * message, the three full-queue policies with exact drop counts, BLOCK backpressure and its
 * deadline, and unsubscribing while a receiver or a publisher is parked. */
#include <string.h>

#include "harness.h"

static act_bus_t *new_bus(size_t max) {
    act_bus_t *b = NULL;
    assert_int_equal(act_bus_new(&b, max), 0);
    return b;
}

static act_bus_sub_t *sub(act_bus_t *b, const char *prefix, size_t cap, act_bus_policy_t p) {
    act_bus_sub_t *s = NULL;
    assert_int_equal(act_bus_subscribe(b, prefix, cap, p, &s), 0);
    assert_non_null(s);
    return s;
}

static int pub(act_bus_t *b, const char *topic, const char *text) {
    return act_bus_publish(b, topic, text, strlen(text) + 1, 0);
}

/* Receives one message without waiting and checks its topic and text. */
static void expect(act_bus_sub_t *s, const char *topic, const char *text) {
    act_bus_msg_t *m = NULL;
    assert_int_equal(act_bus_recv(s, &m, 0), 0);
    assert_string_equal(m->topic, topic);
    assert_string_equal((const char *)m->data, text);
    assert_int_equal(m->len, strlen(text) + 1);
    act_bus_msg_release(&m);
    assert_null(m);
}

static void expect_empty(act_bus_sub_t *s) {
    act_bus_msg_t *m = NULL;
    assert_int_equal(act_bus_recv(s, &m, 0), ACT_ETIMEDOUT);
    assert_null(m);
}

static int prefixes(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(8);
    act_bus_sub_t *ab = sub(b, "a.b", 8, ACT_BUS_DROP_NEWEST);
    act_bus_sub_t *a = sub(b, "a.", 8, ACT_BUS_DROP_NEWEST);
    act_bus_sub_t *all = sub(b, "", 8, ACT_BUS_DROP_NEWEST);
    assert_int_equal(pub(b, "a.b.c", "1"), 3);
    assert_int_equal(pub(b, "a.x", "2"), 2);
    assert_int_equal(pub(b, "b", "3"), 1);
    assert_int_equal(pub(b, "a", "4"), 1);    /* "a" does not start with "a." */
    assert_int_equal(pub(b, "a.bc", "5"), 3); /* plain prefixes, not topic segments */
    assert_int_equal(act_bus_sub_pending(ab), 2);
    assert_int_equal(act_bus_sub_pending(a), 3);
    assert_int_equal(act_bus_sub_pending(all), 5);
    expect(ab, "a.b.c", "1");
    expect(ab, "a.bc", "5");
    expect_empty(ab);
    expect(a, "a.b.c", "1");
    expect(a, "a.x", "2");
    expect(a, "a.bc", "5");
    const char *want[] = {"a.b.c", "a.x", "b", "a", "a.bc"};
    for (int i = 0; i < 5; i++) {
        char text[2] = {(char)('1' + i), 0};
        expect(all, want[i], text);
    }
    /* a subscription sees only what is published after it */
    act_bus_sub_t *late = sub(b, "", 8, ACT_BUS_DROP_NEWEST);
    expect_empty(late);
    assert_int_equal(pub(b, "z", "6"), 2);
    expect(late, "z", "6");
    assert_int_equal(act_bus_destroy(&b), ACT_EBUSY);
    assert_non_null(b);
    act_bus_unsubscribe(&ab);
    act_bus_unsubscribe(&a);
    act_bus_unsubscribe(&all); /* still holds "z": released here */
    act_bus_unsubscribe(&late);
    assert_null(all);
    assert_int_equal(pub(b, "z", "7"), 0);
    assert_int_equal(act_bus_destroy(&b), 0);
    assert_null(b);
    return 0;
}

static void test_bus_subscriptions_match_by_prefix(void **state) {
    (void)state;
    assert_int_equal(harness_run(prefixes, NULL, VCLOCK), 0);
}

static int fan_out(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(3);
    act_bus_sub_t *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = sub(b, "t", 4, ACT_BUS_DROP_NEWEST);
    act_bus_sub_t *extra = NULL;
    assert_int_equal(act_bus_subscribe(b, "", 4, ACT_BUS_DROP_NEWEST, &extra), ACT_EBUSY);
    assert_null(extra);
    uint64_t payload[4] = {1, 2, 3, 0xfeedface};
    assert_int_equal(act_bus_publish(b, "temp", payload, sizeof payload, -1), 3);
    act_bus_msg_t *m[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(act_bus_recv(s[i], &m[i], -1), 0);
    assert_ptr_equal(m[0], m[1]); /* one copy shared by all */
    assert_ptr_equal(m[1], m[2]);
    assert_ptr_not_equal(m[0]->data, payload);
    assert_memory_equal(m[0]->data, payload, sizeof payload);
    assert_int_equal((uintptr_t)m[0]->data % _Alignof(max_align_t), 0);
    assert_string_equal(m[0]->topic, "temp");
    assert_int_equal(m[0]->refs, 3); /* the publisher's own reference is gone */
    act_bus_msg_t *keep = act_bus_msg_retain(m[0]);
    assert_int_equal(keep->refs, 4);
    for (int i = 0; i < 3; i++)
        act_bus_msg_release(&m[i]);
    assert_int_equal(keep->refs, 1);
    assert_int_equal(((const uint64_t *)keep->data)[3], 0xfeedface);
    act_bus_msg_release(&keep); /* the last: freed (ASan checks) */
    act_bus_msg_release(&keep); /* NULL: nothing */
    /* an empty payload still gets a valid data pointer */
    assert_int_equal(act_bus_publish(b, "t0", NULL, 0, -1), 3);
    act_bus_msg_t *e;
    assert_int_equal(act_bus_recv(s[0], &e, -1), 0);
    assert_int_equal(e->len, 0);
    assert_non_null(e->data);
    act_bus_msg_release(&e);
    assert_int_equal(act_bus_publish(b, "t", NULL, 5, -1), ACT_EINVAL);
    for (int i = 0; i < 3; i++)
        act_bus_unsubscribe(&s[i]);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_fan_out_shares_one_refcounted_message(void **state) {
    (void)state;
    assert_int_equal(harness_run(fan_out, NULL, VCLOCK), 0);
}

static int drop_policies(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(4);
    act_bus_sub_t *newest = sub(b, "", 2, ACT_BUS_DROP_NEWEST);
    act_bus_sub_t *oldest = sub(b, "", 2, ACT_BUS_DROP_OLDEST);
    act_bus_sub_t *roomy = sub(b, "", 8, ACT_BUS_DROP_NEWEST);
    const char *text[] = {"1", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++) { /* DROP_NEWEST does not queue once full; the others do */
        assert_int_equal(pub(b, "m", text[i]), i < 2 ? 3 : 2);
    }
    assert_int_equal(act_bus_sub_dropped(newest), 3);
    assert_int_equal(act_bus_sub_dropped(oldest), 3);
    assert_int_equal(act_bus_sub_dropped(roomy), 0);
    assert_int_equal(act_bus_sub_pending(newest), 2);
    assert_int_equal(act_bus_sub_pending(oldest), 2);
    expect(newest, "m", "1"); /* kept the first two */
    expect(newest, "m", "2");
    expect_empty(newest);
    expect(oldest, "m", "4"); /* kept the last two */
    expect(oldest, "m", "5");
    expect_empty(oldest);
    for (int i = 0; i < 5; i++)
        expect(roomy, "m", text[i]);
    /* room again: nothing more is dropped */
    assert_int_equal(pub(b, "m", "6"), 3);
    assert_int_equal(act_bus_sub_dropped(newest), 3);
    assert_int_equal(act_bus_sub_dropped(oldest), 3);
    act_bus_unsubscribe(&newest); /* still holds "6": released */
    act_bus_unsubscribe(&oldest);
    act_bus_unsubscribe(&roomy);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_drop_policies_count_exactly(void **state) {
    (void)state;
    assert_int_equal(harness_run(drop_policies, NULL, VCLOCK), 0);
}

typedef struct publisher_arg {
    act_bus_t *b;
    int count; /* publishes "0", "1", ... */
    int64_t deadline;
    int done;  /* publishes returned */
    int rc[8]; /* their results */
} publisher_arg;

static int publisher(void *arg, void **result) {
    (void)result;
    publisher_arg *a = arg;
    for (int i = 0; i < a->count; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        a->rc[i] = act_bus_publish(a->b, "load", text, strlen(text) + 1, a->deadline);
        a->done++;
    }
    return 0;
}

static int backpressure(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(2);
    act_bus_sub_t *slow = sub(b, "load", 2, ACT_BUS_BLOCK);
    act_bus_sub_t *tap = sub(b, "", 8, ACT_BUS_DROP_NEWEST);
    publisher_arg pa = {.b = b, .count = 5, .deadline = -1};
    act_task_t *t;
    assert_int_equal(act_spawn(publisher, &pa, NULL, &t), 0);
    assert_int_equal(act_sleep(10), 0);
    assert_int_equal(pa.done, 2); /* the third waits for room */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_bus_destroy(&b), ACT_EBUSY);
    assert_int_equal(act_bus_sub_pending(tap), 2); /* tap comes after slow in order */
    for (int i = 0; i < 5; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        expect(slow, "load", text);
        assert_int_equal(act_sleep(1), 0); /* the publisher moves on by one */
        assert_int_equal(pa.done, i + 3 > 5 ? 5 : i + 3);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pa.rc[i], 2);
    assert_int_equal(act_bus_sub_dropped(slow), 0);
    assert_int_equal(act_bus_sub_pending(tap), 5);
    act_task_release(&t);
    act_bus_unsubscribe(&slow);
    act_bus_unsubscribe(&tap);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_block_backpressure_unblocks_when_the_subscriber_receives(void **state) {
    (void)state;
    assert_int_equal(harness_run(backpressure, NULL, VCLOCK), 0);
}

static int block_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(4);
    act_bus_sub_t *first = sub(b, "", 4, ACT_BUS_DROP_NEWEST);
    act_bus_sub_t *stuck = sub(b, "", 1, ACT_BUS_BLOCK);
    act_bus_sub_t *stuck2 = sub(b, "", 1, ACT_BUS_BLOCK);
    act_bus_sub_t *last = sub(b, "", 4, ACT_BUS_DROP_NEWEST);
    assert_int_equal(pub(b, "x", "a"), 4);
    assert_int_equal(act_bus_publish(b, "x", "b", 2, act_deadline_in(10)), ACT_ETIMEDOUT);
    assert_int_equal(act_now(), 10);
    /* served before the wait, and after it (room), but not the full BLOCK ones */
    assert_int_equal(act_bus_sub_pending(first), 2);
    assert_int_equal(act_bus_sub_pending(last), 2);
    assert_int_equal(act_bus_sub_dropped(stuck), 1);
    assert_int_equal(act_bus_sub_dropped(stuck2), 1); /* not waited on a second time */
    expect(stuck, "x", "a");
    expect_empty(stuck);
    expect(stuck2, "x", "a");
    expect(last, "x", "a");
    expect(last, "x", "b");
    /* a cancelled publisher cannot wait: full BLOCK subscribers lose the message */
    act_task_cancel(act_current());
    assert_int_equal(pub(b, "x", "c"), 4); /* room everywhere: cancellation does not matter */
    assert_int_equal(act_bus_publish(b, "x", "d", 2, -1), ACT_ECANCELED);
    assert_int_equal(act_bus_sub_dropped(stuck), 2);
    assert_int_equal(act_bus_sub_dropped(stuck2), 2);
    act_bus_unsubscribe(&first);
    act_bus_unsubscribe(&stuck);
    act_bus_unsubscribe(&stuck2);
    act_bus_unsubscribe(&last);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_block_publish_gives_up_at_its_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(block_deadline, NULL, VCLOCK), 0);
}

typedef struct receiver_arg {
    act_bus_sub_t *s;
    int rc;
    act_bus_msg_t *m;
} receiver_arg;

static int receiver(void *arg, void **result) {
    (void)result;
    receiver_arg *a = arg;
    a->rc = act_bus_recv(a->s, &a->m, -1);
    return 0;
}

static int unsubscribe_parked(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(2);
    act_bus_sub_t *s = sub(b, "", 2, ACT_BUS_DROP_NEWEST);
    receiver_arg ra = {.s = s, .rc = 1};
    act_task_t *t;
    assert_int_equal(act_spawn(receiver, &ra, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(act_bus_unsubscribe(&s), 0);
    assert_null(s);
    assert_int_equal(act_bus_destroy(&b), 0); /* nothing left pinned */
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(ra.rc, ACT_ECLOSED);
    assert_null(ra.m);
    act_task_release(&t);
    /* a message handed to the parked receiver stays its own after an unsubscribe */
    b = new_bus(2);
    s = sub(b, "", 2, ACT_BUS_DROP_NEWEST);
    ra = (receiver_arg){.s = s, .rc = 1};
    assert_int_equal(act_spawn(receiver, &ra, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(pub(b, "k", "v"), 1);
    assert_int_equal(act_bus_unsubscribe(&s), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(ra.rc, 0);
    assert_string_equal(ra.m->topic, "k");
    assert_int_equal(ra.m->refs, 1);
    act_bus_msg_release(&ra.m);
    act_task_release(&t);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_unsubscribe_wakes_a_parked_receiver(void **state) {
    (void)state;
    assert_int_equal(harness_run(unsubscribe_parked, NULL, VCLOCK), 0);
}

static int unsubscribe_blocked_target(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *b = new_bus(3);
    act_bus_sub_t *full = sub(b, "", 1, ACT_BUS_BLOCK);
    act_bus_sub_t *after = sub(b, "", 4, ACT_BUS_DROP_NEWEST);
    assert_int_equal(pub(b, "x", "0"), 2);
    publisher_arg pa = {.b = b, .count = 1, .deadline = -1};
    act_task_t *t;
    assert_int_equal(act_spawn(publisher, &pa, NULL, &t), 0);
    assert_int_equal(act_sleep(1), 0);
    assert_int_equal(pa.done, 0);                    /* waits on full */
    assert_int_equal(act_bus_unsubscribe(&full), 0); /* releases "0"; the publisher moves on */
    act_bus_sub_t *newer = sub(b, "", 4, ACT_BUS_DROP_NEWEST); /* subscribed after: skipped */
    assert_int_equal(act_bus_destroy(&b), ACT_EBUSY);          /* the publish is in flight */
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(pa.rc[0], 1); /* only `after` got it; not an error */
    expect(after, "x", "0");
    expect(after, "load", "0");
    expect_empty(newer);
    act_task_release(&t);
    act_bus_unsubscribe(&after);
    act_bus_unsubscribe(&newer);
    assert_int_equal(act_bus_destroy(&b), 0);
    return 0;
}

static void test_bus_unsubscribe_releases_a_blocked_publisher(void **state) {
    (void)state;
    assert_int_equal(harness_run(unsubscribe_blocked_target, NULL, VCLOCK), 0);
}

static void test_bus_rejects_bad_arguments(void **state) {
    (void)state;
    act_bus_t *b = NULL;
    assert_int_equal(act_bus_new(&b, 0), ACT_EINVAL);
    assert_null(b);
    assert_int_equal(act_bus_new(NULL, 1), ACT_EINVAL);
    b = new_bus(2);
    act_bus_sub_t *s = NULL;
    assert_int_equal(act_bus_subscribe(b, "", 0, ACT_BUS_BLOCK, &s), ACT_EINVAL);
    assert_int_equal(act_bus_subscribe(b, NULL, 1, ACT_BUS_BLOCK, &s), ACT_EINVAL);
    assert_int_equal(act_bus_subscribe(b, "", 1, (act_bus_policy_t)9, &s), ACT_EINVAL);
    assert_null(s);
    /* outside any task: publishing works until a BLOCK subscriber is full */
    s = sub(b, "", 1, ACT_BUS_BLOCK);
    assert_int_equal(act_bus_publish(b, "t", "x", 1, -1), 1);
    assert_int_equal(act_bus_publish(b, "t", "y", 1, -1), ACT_EINVAL);
    assert_int_equal(act_bus_sub_dropped(s), 1);
    assert_int_equal(act_bus_unsubscribe(&s), 0);
    assert_int_equal(act_bus_unsubscribe(&s), 0); /* NULL: nothing */
    assert_int_equal(act_bus_destroy(&b), 0);
    assert_int_equal(act_bus_destroy(&b), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_subscriptions_match_by_prefix),
        cmocka_unit_test(test_bus_fan_out_shares_one_refcounted_message),
        cmocka_unit_test(test_bus_drop_policies_count_exactly),
        cmocka_unit_test(test_bus_block_backpressure_unblocks_when_the_subscriber_receives),
        cmocka_unit_test(test_bus_block_publish_gives_up_at_its_deadline),
        cmocka_unit_test(test_bus_unsubscribe_wakes_a_parked_receiver),
        cmocka_unit_test(test_bus_unsubscribe_releases_a_blocked_publisher),
        cmocka_unit_test(test_bus_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
