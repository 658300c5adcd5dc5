/* test_fair.c: fair shares of the broker's queue (broker/fair.h, issue 11 point 10): the hard
 * bound holds; below the threshold anyone is admitted; past it a hog is refused while a
 * newcomer still gets in; simulated owners filling the queue, interleaved or one after
 * another, leave room for one more. */
#include "harness.h"
#include "fair.h"

static void test_queue_bound_refuses_everyone(void **state) {
    (void)state;
    assert_false(brk_fair_admit(100, 100, 50, 0, 0));
    assert_false(brk_fair_admit(150, 100, 100, 0, 5));
}

static void test_below_threshold_anyone_is_admitted(void **state) {
    (void)state;
    assert_true(brk_fair_admit(49, 100, 50, 49, 1));
    assert_true(brk_fair_admit(99, 100, 100, 99, 1)); /* 100: fair shares off */
}

static void test_past_threshold_a_hog_is_refused_and_a_newcomer_admitted(void **state) {
    (void)state;
    assert_false(brk_fair_admit(60, 100, 50, 60, 1)); /* share 100/2 = 50 */
    assert_true(brk_fair_admit(60, 100, 50, 0, 1));   /* newcomer: share 100/3 = 33 */
    assert_true(brk_fair_admit(60, 100, 50, 20, 2));
    assert_false(brk_fair_admit(60, 100, 50, 33, 2));
    assert_false(brk_fair_admit(75, 100, 50, 1, 9)); /* the last quarter: newcomers only */
    assert_true(brk_fair_admit(99, 100, 50, 0, 9));
}

/* 100 hogs take turns queueing as much as they may (the 100 connections x 1000
 * invocations): the queue never fills, so a 101st client is still admitted. */
static void test_many_hogs_leave_room_for_a_newcomer(void **state) {
    (void)state;
    enum { HOGS = 100, MAX = 10000 };
    static uint64_t mine[HOGS];
    uint64_t pending = 0, owners = 0;
    for (int round = 0; round < 1000; round++) {
        for (int h = 0; h < HOGS; h++) {
            if (!brk_fair_admit(pending, MAX, 50, mine[h], owners)) continue;
            if (mine[h]++ == 0) owners++;
            pending++;
        }
    }
    assert_true(pending < MAX);
    assert_true(brk_fair_admit(pending, MAX, 50, 0, owners));
}

/* The same hogs arriving one after another (each sends all it has before the next starts),
 * the order that let early ones take large shares: the queue still never fills. */
static void test_hogs_in_turn_leave_room_for_a_newcomer(void **state) {
    (void)state;
    enum { HOGS = 100, MAX = 10000 };
    uint64_t pending = 0, owners = 0;
    for (int h = 0; h < HOGS; h++) {
        uint64_t mine = 0;
        for (int i = 0; i < 1000; i++) {
            if (!brk_fair_admit(pending, MAX, 50, mine, owners)) continue;
            if (mine++ == 0) owners++;
            pending++;
        }
    }
    assert_true(pending < MAX);
    assert_true(brk_fair_admit(pending, MAX, 50, 0, owners));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_bound_refuses_everyone),
        cmocka_unit_test(test_below_threshold_anyone_is_admitted),
        cmocka_unit_test(test_past_threshold_a_hog_is_refused_and_a_newcomer_admitted),
        cmocka_unit_test(test_many_hogs_leave_room_for_a_newcomer),
        cmocka_unit_test(test_hogs_in_turn_leave_room_for_a_newcomer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
