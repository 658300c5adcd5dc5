/* test_jobslots.c: the broker's job ids and their slot table (broker/jobslots.c), and the
 * hash map's precomputed-hash calls it sits beside (broker/hashmap.c): ids are unique and
 * increasing; a lookup finds exactly the entry with that id; a slot reused by a later id
 * does not answer for the old one (the generation check: a worker's late answer for a job
 * long gone); the bound refuses with -ENOSPC; growing keeps every entry findable; ids the
 * caller holds elsewhere (adopted jobs) are skipped. */
#include "harness.h"
#include "hashmap.h"
#include "jobslots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_ids_are_unique_increasing_and_found(void **state) {
    (void)state;
    brk_slots_t t;
    brk_slots_init(&t, 1000);
    static brk_slot_t e[500];
    uint64_t next = 12345;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(brk_slots_add(&t, &e[i], &next, NULL, NULL), 0);
        if (i) assert_true(e[i].id > e[i - 1].id);
        assert_true(next == e[i].id + 1);
    }
    assert_int_equal(t.n, 500);
    for (int i = 0; i < 500; i++) assert_ptr_equal(brk_slots_get(&t, e[i].id), &e[i]);
    assert_null(brk_slots_get(&t, 12344));
    assert_null(brk_slots_get(&t, next));
    brk_slots_close(&t);
}

/* An entry deleted and its slot taken by a later id: the old id finds nothing, though it
 * indexes the very slot the new entry sits in. */
static void test_reused_slot_does_not_find_the_old_entry(void **state) {
    (void)state;
    brk_slots_t t;
    brk_slots_init(&t, 100);
    brk_slot_t old, keep, fresh[200];
    uint64_t next = 1;
    assert_int_equal(brk_slots_add(&t, &keep, &next, NULL, NULL), 0);
    assert_int_equal(brk_slots_add(&t, &old, &next, NULL, NULL), 0);
    uint64_t old_id = old.id;
    size_t cap = t.cap;
    brk_slots_del(&t, &old);
    assert_null(brk_slots_get(&t, old_id));
    /* Short-lived entries until one lands in old's slot (the counter wraps the table). */
    int landed = -1;
    for (int i = 0; i < 200 && landed < 0; i++) {
        assert_int_equal(brk_slots_add(&t, &fresh[i], &next, NULL, NULL), 0);
        assert_int_equal(t.cap, cap); /* no growth: the slot is the same one */
        if ((fresh[i].id & (cap - 1)) == (old_id & (cap - 1)))
            landed = i;
        else
            brk_slots_del(&t, &fresh[i]);
    }
    assert_true(landed >= 0);
    assert_true(fresh[landed].id != old_id);
    assert_null(brk_slots_get(&t, old_id)); /* the generation differs */
    assert_ptr_equal(brk_slots_get(&t, fresh[landed].id), &fresh[landed]);
    assert_ptr_equal(brk_slots_get(&t, keep.id), &keep);
    brk_slots_del(&t, &old); /* not in the table: a no-op, the new entry stays */
    assert_ptr_equal(brk_slots_get(&t, fresh[landed].id), &fresh[landed]);
    assert_int_equal(t.n, 2);
    brk_slots_close(&t);
}

static void test_full_table_refuses_with_enospc(void **state) {
    (void)state;
    brk_slots_t t;
    brk_slots_init(&t, 3);
    brk_slot_t e[4];
    uint64_t next = 7;
    for (int i = 0; i < 3; i++) assert_int_equal(brk_slots_add(&t, &e[i], &next, NULL, NULL), 0);
    uint64_t before = next;
    assert_int_equal(brk_slots_reserve(&t), -ENOSPC);
    assert_int_equal(brk_slots_add(&t, &e[3], &next, NULL, NULL), -ENOSPC);
    assert_true(next == before); /* no id spent */
    assert_int_equal(t.n, 3);
    brk_slots_del(&t, &e[1]);
    assert_int_equal(brk_slots_add(&t, &e[3], &next, NULL, NULL), 0);
    assert_ptr_equal(brk_slots_get(&t, e[3].id), &e[3]);
    brk_slots_close(&t);
}

/* Long-lived entries scattered while the table doubles several times: all stay findable,
 * and at most half the slots are ever in use. */
static void test_growth_keeps_every_entry(void **state) {
    (void)state;
    enum { N = 5000 };
    brk_slots_t t;
    brk_slots_init(&t, N);
    brk_slot_t *e = calloc(N, sizeof *e);
    assert_non_null(e);
    uint64_t next = UINT64_C(1) << 40;
    for (int i = 0; i < N; i++) {
        assert_int_equal(brk_slots_add(&t, &e[i], &next, NULL, NULL), 0);
        assert_true(t.n * 2 <= t.cap);
        if (i % 3 == 0) brk_slots_del(&t, &e[i]);
    }
    size_t seen = 0;
    for (brk_slot_t *s = brk_slots_next(&t, NULL); s; s = brk_slots_next(&t, s)) seen++;
    assert_int_equal(seen, t.n);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            assert_null(brk_slots_get(&t, e[i].id));
        else
            assert_ptr_equal(brk_slots_get(&t, e[i].id), &e[i]);
    }
    /* Emptied in one pass, as the broker does at exit */
    size_t cursor = 0, taken = 0;
    for (brk_slot_t *s; (s = brk_slots_take(&t, &cursor));) {
        assert_null(brk_slots_get(&t, s->id));
        taken++;
    }
    assert_int_equal(taken, seen);
    assert_int_equal(t.n, 0);
    brk_slots_close(&t);
    free(e);
}

static bool odd_taken(void *arg, uint64_t id) {
    (void)arg;
    return id % 2 == 1;
}

static void test_ids_held_elsewhere_are_skipped(void **state) {
    (void)state;
    brk_slots_t t;
    brk_slots_init(&t, 100);
    brk_slot_t e[10];
    uint64_t next = 3;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(brk_slots_add(&t, &e[i], &next, odd_taken, NULL), 0);
        assert_true(e[i].id % 2 == 0);
    }
    brk_slots_close(&t);
}

typedef struct item {
    brk_node_t node;
    char key[16];
} item_t;

/* brk_map_get_h / brk_map_put_h with brk_map_hash find what brk_map_get / brk_map_put do. */
static void test_map_precomputed_hash_matches(void **state) {
    (void)state;
    brk_map_seed();
    brk_map_t m;
    assert_int_equal(brk_map_init(&m), 0);
    static item_t it[300];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(it[i].key, sizeof it[i].key, "k%d", i);
        it[i].node.key = it[i].key;
        it[i].node.klen = (size_t)n;
        if (i % 2)
            brk_map_put(&m, &it[i].node);
        else
            brk_map_put_h(&m, &it[i].node, brk_map_hash(it[i].key, (size_t)n));
    }
    for (int i = 0; i < 300; i++) {
        size_t n = it[i].node.klen;
        assert_ptr_equal(brk_map_get(&m, it[i].key, n), &it[i].node);
        assert_ptr_equal(brk_map_get_h(&m, it[i].key, n, brk_map_hash(it[i].key, n)),
                         &it[i].node);
    }
    assert_null(brk_map_get(&m, "k300", 4));
    assert_true(brk_map_hash("ab", 2) != brk_map_hash("ba", 2));
    for (int i = 0; i < 300; i++) brk_map_del(&m, &it[i].node);
    assert_int_equal(m.n, 0);
    brk_map_close(&m);
}

/* brk_eq (hashmap.h), the in-line compare of short keys: equal bytes of every length up to
 * past its 16-byte limit are equal, and a difference in any one byte is seen. */
static void test_eq_sees_every_byte(void **state) {
    (void)state;
    uint8_t a[40], b[40];
    for (size_t i = 0; i < sizeof a; i++) a[i] = b[i] = (uint8_t)(i * 7 + 1);
    for (size_t n = 0; n <= sizeof a; n++) {
        assert_true(brk_eq(a, b, n));
        for (size_t i = 0; i < n; i++) {
            b[i] ^= 0x20;
            assert_false(brk_eq(a, b, n));
            b[i] ^= 0x20;
        }
    }
}

/* brk_copy (hashmap.h): every length up to past its 16-byte limit copies exactly n bytes,
 * each to its place, and writes nothing past them. */
static void test_copy_moves_exactly_n_bytes(void **state) {
    (void)state;
    uint8_t src[40], dst[48];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 13 + 5);
    for (size_t n = 0; n <= sizeof src; n++) {
        memset(dst, 0xee, sizeof dst);
        brk_copy(dst, src, n);
        assert_memory_equal(dst, src, n);
        for (size_t i = n; i < sizeof dst; i++) assert_int_equal(dst[i], 0xee);
    }
}

/* The hash reads every byte of a key's tail (past its last 8-byte block) exactly where it
 * belongs: keys of every length that differ in one byte, or in two bytes swapped, hash
 * apart. */
static void test_hash_sees_every_tail_byte(void **state) {
    (void)state;
    uint8_t k[24];
    for (size_t i = 0; i < sizeof k; i++) k[i] = (uint8_t)(i + 1);
    for (size_t n = 1; n <= sizeof k; n++) {
        uint64_t h = brk_map_hash(k, n);
        for (size_t i = 0; i < n; i++) {
            k[i] ^= 0x80;
            assert_true(brk_map_hash(k, n) != h);
            k[i] ^= 0x80;
            if (i + 1 < n) {
                uint8_t t = k[i];
                k[i] = k[i + 1], k[i + 1] = t;
                assert_true(brk_map_hash(k, n) != h);
                k[i + 1] = k[i], k[i] = t;
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_unique_increasing_and_found),
        cmocka_unit_test(test_reused_slot_does_not_find_the_old_entry),
        cmocka_unit_test(test_full_table_refuses_with_enospc),
        cmocka_unit_test(test_growth_keeps_every_entry),
        cmocka_unit_test(test_ids_held_elsewhere_are_skipped),
        cmocka_unit_test(test_map_precomputed_hash_matches),
        cmocka_unit_test(test_eq_sees_every_byte),
        cmocka_unit_test(test_copy_moves_exactly_n_bytes),
        cmocka_unit_test(test_hash_sees_every_tail_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
