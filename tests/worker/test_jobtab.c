/* test_jobtab.c: the worker's job table and block pool (worker/jobtab.c): ids found after
 * adds and gone after deletes, in any order and past the bucket count (chains), the newest
 * of two jobs with one id found first and the older one after it leaves; the pool keeps at
 * most its bound, hands blocks back last in first out, refuses past the bound (the caller
 * frees) and frees what it keeps. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "jobtab.h"

static void test_jobtab_finds_added_ids_and_forgets_deleted(void **state) {
    (void)state;
    wrk_jobtab_t t;
    assert_int_equal(wrk_jobtab_init(&t, 8), 0);
    assert_int_equal(t.mask + 1, WRK_JOBTAB_MIN);
    /* Five times the buckets: every bucket holds a chain. */
    enum { N = WRK_JOBTAB_MIN * 5 };
    wrk_jobtab_node_t nodes[N];
    for (int i = 0; i < N; i++) {
        nodes[i].id = (uint64_t)i * 7 + 1;
        wrk_jobtab_add(&t, &nodes[i]);
    }
    assert_int_equal(t.n, N);
    for (int i = 0; i < N; i++) assert_ptr_equal(wrk_jobtab_find(&t, nodes[i].id), &nodes[i]);
    assert_null(wrk_jobtab_find(&t, 0));
    assert_null(wrk_jobtab_find(&t, 3));
    /* Every other one goes, heads and middles of chains alike. */
    for (int i = 0; i < N; i += 2) wrk_jobtab_del(&t, &nodes[i]);
    assert_int_equal(t.n, N / 2);
    for (int i = 0; i < N; i++) {
        if (i % 2) assert_ptr_equal(wrk_jobtab_find(&t, nodes[i].id), &nodes[i]);
        else assert_null(wrk_jobtab_find(&t, nodes[i].id));
    }
    for (int i = 1; i < N; i += 2) wrk_jobtab_del(&t, &nodes[i]);
    assert_int_equal(t.n, 0);
    for (size_t b = 0; b <= t.mask; b++) assert_null(t.b[b]);
    wrk_jobtab_free(&t);
    assert_null(t.b);
    assert_null(wrk_jobtab_find(&t, 1)); /* a freed table finds nothing */
}

static void test_jobtab_same_id_newest_first(void **state) {
    (void)state;
    wrk_jobtab_t t;
    assert_int_equal(wrk_jobtab_init(&t, 1), 0);
    wrk_jobtab_node_t old = {.id = 42}, other = {.id = 43}, young = {.id = 42};
    wrk_jobtab_add(&t, &old);
    wrk_jobtab_add(&t, &other);
    wrk_jobtab_add(&t, &young);
    assert_ptr_equal(wrk_jobtab_find(&t, 42), &young);
    wrk_jobtab_del(&t, &young);
    assert_ptr_equal(wrk_jobtab_find(&t, 42), &old);
    assert_ptr_equal(wrk_jobtab_find(&t, 43), &other);
    wrk_jobtab_del(&t, &old);
    assert_null(wrk_jobtab_find(&t, 42));
    wrk_jobtab_del(&t, &other);
    assert_int_equal(t.n, 0);
    wrk_jobtab_free(&t);
}

static void test_jobtab_buckets_follow_the_capacity_within_bounds(void **state) {
    (void)state;
    wrk_jobtab_t t;
    assert_int_equal(wrk_jobtab_init(&t, 0), 0);
    assert_int_equal(t.mask + 1, WRK_JOBTAB_MIN);
    wrk_jobtab_free(&t);
    assert_int_equal(wrk_jobtab_init(&t, 100), 0);
    assert_int_equal(t.mask + 1, 256);
    wrk_jobtab_free(&t);
    assert_int_equal(wrk_jobtab_init(&t, UINT64_MAX / 4), 0);
    assert_int_equal(t.mask + 1, WRK_JOBTAB_MAX);
    wrk_jobtab_free(&t);
}

static void test_pool_keeps_at_most_its_bound(void **state) {
    (void)state;
    wrk_pool_t p;
    wrk_pool_init(&p, 3);
    assert_null(wrk_pool_get(&p));
    void *b[4];
    for (int i = 0; i < 4; i++) assert_non_null(b[i] = malloc(16));
    for (int i = 0; i < 3; i++) assert_true(wrk_pool_put(&p, b[i]));
    assert_false(wrk_pool_put(&p, b[3])); /* full: still the caller's */
    assert_int_equal(p.n, 3);
    free(b[3]);
    assert_ptr_equal(wrk_pool_get(&p), b[2]); /* last in, first out */
    assert_true(wrk_pool_put(&p, b[2]));
    wrk_pool_free(&p);
    assert_int_equal(p.n, 0);
    assert_null(wrk_pool_get(&p));
}

static void test_pool_bound_zero_keeps_none_and_big_bounds_clamp(void **state) {
    (void)state;
    wrk_pool_t p;
    wrk_pool_init(&p, 0);
    int x;
    assert_false(wrk_pool_put(&p, &x));
    assert_null(wrk_pool_get(&p));
    wrk_pool_init(&p, (size_t)WRK_POOL_MAX * 10);
    assert_int_equal(p.max, WRK_POOL_MAX);
    for (int i = 0; i < WRK_POOL_MAX; i++) assert_true(wrk_pool_put(&p, &x));
    assert_false(wrk_pool_put(&p, &x));
    p.n = 0; /* &x is not the pool's to free */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobtab_finds_added_ids_and_forgets_deleted),
        cmocka_unit_test(test_jobtab_same_id_newest_first),
        cmocka_unit_test(test_jobtab_buckets_follow_the_capacity_within_bounds),
        cmocka_unit_test(test_pool_keeps_at_most_its_bound),
        cmocka_unit_test(test_pool_bound_zero_keeps_none_and_big_bounds_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
