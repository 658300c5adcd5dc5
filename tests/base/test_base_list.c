/* test_base_list.c: base/list.h, the intrusive list: order kept from both ends, a node is
 * linked or not in one comparison, and unlinking twice is harmless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/list.h"

typedef struct item {
    int v;
    base_list_t link;
} item_t;

static void test_list_keeps_order_from_both_ends(void **state) {
    (void)state;
    base_list_t h;
    item_t a = {1, {0}}, b = {2, {0}}, c = {3, {0}};
    base_list_init(&h);
    assert_true(base_list_empty(&h));
    base_list_push(&h, &b.link);
    base_list_push(&h, &c.link);
    base_list_push_front(&h, &a.link);
    int want = 1;
    for (base_list_t *l = h.next; l != &h; l = l->next)
        assert_int_equal(base_container_of(l, item_t, link)->v, want++);
    assert_int_equal(want, 4);
}

static void test_list_unlink_twice_is_harmless(void **state) {
    (void)state;
    base_list_t h;
    item_t a = {1, {0}};
    base_list_init(&h);
    base_list_push(&h, &a.link);
    assert_true(base_list_linked(&a.link));
    base_list_unlink(&a.link);
    assert_false(base_list_linked(&a.link));
    base_list_unlink(&a.link);
    assert_true(base_list_empty(&h));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_keeps_order_from_both_ends),
        cmocka_unit_test(test_list_unlink_twice_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
