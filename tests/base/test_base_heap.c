/* test_base_heap.c: base/heap.h, the intrusive deadline heap under libactor's timers and the
 * broker's job deadlines: nodes come out by key and, for equal keys, in push order; any node
 * can be removed from the middle; reserve makes later pushes unable to fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/heap.h"

typedef struct item {
    int id;
    base_heap_node_t node;
} item_t;

static int pop(base_heap_t *h) {
    base_heap_node_t *top = base_heap_top(h);
    if (!top) return -1;
    base_heap_remove(h, top);
    return ((item_t *)((char *)top - offsetof(item_t, node)))->id;
}

static void test_heap_orders_by_key_then_push_order(void **state) {
    (void)state;
    base_heap_t h = BASE_HEAP_INIT;
    item_t it[6];
    const int64_t keys[6] = {50, 10, 30, 10, 70, 30};
    for (int i = 0; i < 6; i++) {
        it[i].id = i;
        base_heap_node_init(&it[i].node);
        assert_false(base_heap_in(&it[i].node));
        assert_int_equal(base_heap_push(&h, &it[i].node, keys[i]), 0);
        assert_true(base_heap_in(&it[i].node));
    }
    const int want[6] = {1, 3, 2, 5, 0, 4};
    for (int i = 0; i < 6; i++) assert_int_equal(pop(&h), want[i]);
    assert_int_equal(pop(&h), -1);
    base_heap_free(&h);
}

static void test_heap_removes_from_the_middle(void **state) {
    (void)state;
    base_heap_t h = BASE_HEAP_INIT;
    item_t it[100];
    for (int i = 0; i < 100; i++) {
        it[i].id = i;
        base_heap_node_init(&it[i].node);
        base_heap_push(&h, &it[i].node, (i * 37) % 100); /* keys 0..99, shuffled */
    }
    for (int i = 0; i < 100; i += 3) base_heap_remove(&h, &it[i].node);
    base_heap_remove(&h, &it[0].node); /* twice: nothing */
    int64_t last = -1;
    size_t n = 0;
    for (base_heap_node_t *top; (top = base_heap_top(&h)); n++) {
        assert_true(top->key > last);
        last = top->key;
        base_heap_remove(&h, top);
    }
    assert_int_equal(n, 100 - 34);
    base_heap_free(&h);
}

static void test_heap_reserve_keeps_room(void **state) {
    (void)state;
    base_heap_t h = BASE_HEAP_INIT;
    assert_int_equal(base_heap_reserve(&h, 100), 0);
    assert_true(h.cap >= 100);
    void *v = h.v;
    item_t it[100];
    for (int i = 0; i < 100; i++) {
        base_heap_node_init(&it[i].node);
        assert_int_equal(base_heap_push(&h, &it[i].node, 1), 0);
    }
    assert_ptr_equal(h.v, v); /* no reallocation */
    base_heap_free(&h);
    assert_null(h.v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_orders_by_key_then_push_order),
        cmocka_unit_test(test_heap_removes_from_the_middle),
        cmocka_unit_test(test_heap_reserve_keeps_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
