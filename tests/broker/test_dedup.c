/* test_dedup.c: the broker's memory of answered queries (broker/dedup.h): find what was put,
 * per client and id; the window, the entry and byte bounds evict oldest first; an answer too
 * big is not kept; anonymous routing ids take no part; with a SQLite file the answers come
 * back after close and reopen, expired rows do not, and the reopened window stays bounded;
 * on the boot that wrote them the monotonic clock counts, so a wall clock that jumps while
 * the broker is down neither drops answers nor stretches their window; with PostgreSQL (a
 * server tests/lib/pg_server.sh starts; skipped, saying why, without) the answers come back too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pgserver.h"
#include "dedup.h"
#include "hashmap.h"

static const uint8_t CK_A[] = {0, 'a'}, CK_B[] = {0, 'b'};
static char why[256];

static brk_dedup_t *open_mem(uint64_t window, uint64_t max, uint64_t bytes) {
    brk_dedup_limits_t lim = {window, max, bytes, NULL};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, NULL, 0, 0, why, sizeof why), 0);
    return d;
}

static int put(brk_dedup_t *d, const uint8_t *ck, const char *id, const char *body,
               int64_t now) {
    return brk_dedup_put(d, ck, 2, (const uint8_t *)id, strlen(id), (const uint8_t *)body,
                         strlen(body), now, 1000000 + now);
}

/* The remembered answer as a string ("" when none). */
static const char *get(brk_dedup_t *d, const uint8_t *ck, const char *id, int64_t now) {
    static char out[1024];
    size_t n = 0;
    const uint8_t *p = brk_dedup_find(d, ck, 2, (const uint8_t *)id, strlen(id), now, &n);
    if (!p) return "";
    snprintf(out, sizeof out, "%.*s", (int)n, (const char *)p);
    return out;
}

static void test_find_returns_the_answer_put_for_that_client_and_id(void **state) {
    (void)state;
    brk_dedup_t *d = open_mem(1000, 10, 1 << 20);
    assert_int_equal(put(d, CK_A, "q1", "answer-a", 0), 0);
    assert_int_equal(put(d, CK_B, "q1", "answer-b", 0), 0);
    assert_string_equal(get(d, CK_A, "q1", 1), "answer-a");
    assert_string_equal(get(d, CK_B, "q1", 1), "answer-b");
    assert_string_equal(get(d, CK_A, "q2", 1), "");
    assert_int_equal(put(d, CK_A, "q1", "newer", 2), 0); /* replaces, does not add */
    assert_string_equal(get(d, CK_A, "q1", 3), "newer");
    assert_int_equal(brk_dedup_count(d), 2);
    brk_dedup_close(&d);
    assert_null(d);
    brk_dedup_close(&d); /* safe to repeat */
}

static void test_client_and_id_that_concatenate_alike_stay_apart(void **state) {
    (void)state;
    brk_dedup_t *d = open_mem(1000, 10, 1 << 20);
    static const uint8_t ck_long[] = {0, 'a', 0xa1}, ck_short[] = {0, 'a'};
    static const uint8_t id_int[] = {0x62}, id_str[] = {0xa1, 0x62}; /* 98, "b" */
    assert_int_equal(brk_dedup_put(d, ck_long, 3, id_int, 1, (const uint8_t *)"x", 1, 0, 0), 0);
    size_t n = 0;
    assert_null(brk_dedup_find(d, ck_short, 2, id_str, 2, 1, &n)); /* not ck_long's answer */
    assert_non_null(brk_dedup_find(d, ck_long, 3, id_int, 1, 1, &n));
    brk_dedup_close(&d);
}

static void test_answers_expire_after_the_window(void **state) {
    (void)state;
    brk_dedup_t *d = open_mem(100, 10, 1 << 20);
    put(d, CK_A, "old", "1", 0);
    put(d, CK_A, "new", "2", 50);
    assert_string_equal(get(d, CK_A, "old", 99), "1");
    assert_string_equal(get(d, CK_A, "old", 100), "");
    assert_string_equal(get(d, CK_A, "new", 100), "2");
    assert_int_equal(brk_dedup_count(d), 1);
    assert_string_equal(get(d, CK_A, "new", 150), "");
    assert_int_equal(brk_dedup_count(d), 0);
    assert_int_equal(brk_dedup_bytes(d), 0);
    brk_dedup_close(&d);
}

static void test_entry_and_byte_bounds_evict_the_oldest(void **state) {
    (void)state;
    brk_dedup_t *d = open_mem(1000, 2, 1 << 20);
    put(d, CK_A, "a", "1", 0);
    put(d, CK_A, "b", "2", 1);
    put(d, CK_A, "c", "3", 2);
    assert_string_equal(get(d, CK_A, "a", 3), "");
    assert_string_equal(get(d, CK_A, "b", 3), "2");
    assert_int_equal(brk_dedup_count(d), 2);
    brk_dedup_close(&d);
    /* Bytes: room for about two 400-byte answers. */
    d = open_mem(1000, 100, 1100);
    char big[401];
    memset(big, 'x', 400);
    big[400] = '\0';
    put(d, CK_A, "a", big, 0);
    put(d, CK_A, "b", big, 1);
    put(d, CK_A, "c", big, 2);
    assert_true(brk_dedup_bytes(d) <= 1100);
    assert_string_equal(get(d, CK_A, "a", 3), "");
    assert_int_equal(strlen(get(d, CK_A, "c", 3)), 400);
    /* An answer bigger than every byte allowed is not kept, and evicts nothing. */
    size_t before = brk_dedup_count(d);
    char huge[2000];
    memset(huge, 'y', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(put(d, CK_A, "h", huge, 4), 1);
    assert_string_equal(get(d, CK_A, "h", 5), "");
    assert_int_equal(brk_dedup_count(d), before);
    brk_dedup_close(&d);
}

static void test_only_explicit_routing_ids_take_part(void **state) {
    (void)state;
    brk_dedup_t *d = open_mem(1000, 10, 1 << 20);
    const uint8_t generated[] = {0, 0x6b, 0x8b, 0x45, 0x67}, explicit_id[] = {'c', '1'};
    assert_false(brk_dedup_eligible(d, generated, sizeof generated));
    assert_true(brk_dedup_eligible(d, explicit_id, sizeof explicit_id));
    assert_false(brk_dedup_eligible(d, explicit_id, 0));
    brk_dedup_close(&d);
    d = open_mem(0, 10, 1 << 20); /* window 0: off */
    assert_false(brk_dedup_eligible(d, explicit_id, sizeof explicit_id));
    brk_dedup_close(&d);
    assert_false(brk_dedup_eligible(NULL, explicit_id, sizeof explicit_id));
}

static void test_sqlite_file_keeps_answers_across_reopen(void **state) {
    (void)state;
    char dir[] = "/tmp/test_dedup.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/d.db", dir);
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, "boot-1"};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, path, 0, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"k", 1,
                                   (const uint8_t *)"kept", 4, 0, 5000), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"e", 1,
                                   (const uint8_t *)"expires", 7, 0, 4000), 0);
    brk_dedup_close(&d);
    /* After a reboot: another monotonic clock; the wall clock says 600 ms passed. */
    lim.boot_id = "boot-2";
    assert_int_equal(brk_dedup_open(&d, &lim, path, 77, 5600, why, sizeof why), 0);
    assert_int_equal(brk_dedup_count(d), 1);
    assert_string_equal(get(d, CK_A, "k", 78), "kept");
    assert_string_equal(get(d, CK_A, "e", 78), "");
    assert_string_equal(get(d, CK_A, "k", 77 + 400), ""); /* the rest of its window */
    brk_dedup_close(&d);
    /* A shorter window on reopen caps what the file promised. */
    assert_int_equal(brk_dedup_open(&d, &lim, path, 0, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"k", 1,
                                   (const uint8_t *)"kept", 4, 0, 5000), 0);
    brk_dedup_close(&d);
    brk_dedup_limits_t shorter = {10, 10, 1 << 20, "boot-2"};
    assert_int_equal(brk_dedup_open(&d, &shorter, path, 0, 5000, why, sizeof why), 0);
    assert_string_equal(get(d, CK_A, "k", 9), "kept");
    assert_string_equal(get(d, CK_A, "k", 10), "");
    brk_dedup_close(&d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Adoption (broker/adopt.c) forgets the provisional answer in memory only: a broker that
 * opens the file after this one still finds it. */
static void test_forget_drops_from_memory_and_keeps_the_row(void **state) {
    (void)state;
    char dir[] = "/tmp/test_dedup.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/d.db", dir);
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, "boot-1"};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, path, 0, 5000, why, sizeof why), 0);
    assert_int_equal(put(d, CK_A, "q", "provisional", 0), 0);
    assert_true(brk_dedup_forget(d, CK_A, 2, (const uint8_t *)"q", 1));
    assert_string_equal(get(d, CK_A, "q", 1), "");
    assert_int_equal(brk_dedup_count(d), 0);
    assert_false(brk_dedup_forget(d, CK_A, 2, (const uint8_t *)"q", 1)); /* once */
    brk_dedup_close(&d);
    assert_int_equal(brk_dedup_open(&d, &lim, path, 1, 5001, why, sizeof why), 0);
    assert_string_equal(get(d, CK_A, "q", 2), "provisional");
    brk_dedup_close(&d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* One answer put at monotonic 1000 (window 1000) on boot-a, wall 5000, and the file closed. */
static void put_on_boot_a(const char *path) {
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, "boot-a"};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, path, 1000, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"k", 1,
                                   (const uint8_t *)"kept", 4, 1000, 5000), 0);
    brk_dedup_close(&d);
}

static void test_a_wall_clock_jump_between_restarts_on_one_boot_changes_nothing(void **state) {
    (void)state;
    char dir[] = "/tmp/test_dedup.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/d.db", dir);
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, "boot-a"};
    brk_dedup_t *d = NULL;
    /* Two hours forward while the broker was down: the answer still has 500 ms. */
    put_on_boot_a(path);
    assert_int_equal(brk_dedup_open(&d, &lim, path, 1500, 5000 + 7200000, why, sizeof why), 0);
    assert_string_equal(get(d, CK_A, "k", 1999), "kept");
    assert_string_equal(get(d, CK_A, "k", 2000), "");
    brk_dedup_close(&d);
    /* Two hours back: no longer than its window either. */
    put_on_boot_a(path);
    assert_int_equal(brk_dedup_open(&d, &lim, path, 1500, 5000 - 7200000, why, sizeof why), 0);
    assert_string_equal(get(d, CK_A, "k", 1999), "kept");
    assert_string_equal(get(d, CK_A, "k", 2000), "");
    brk_dedup_close(&d);
    /* And a row past its monotonic expiry is gone from the file at the next open. */
    put_on_boot_a(path);
    assert_int_equal(brk_dedup_open(&d, &lim, path, 2500, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_count(d), 0);
    brk_dedup_close(&d);
    assert_int_equal(brk_dedup_open(&d, &lim, path, 1000, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_count(d), 0);
    brk_dedup_close(&d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_unopenable_file_is_an_error_naming_it(void **state) {
    (void)state;
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, NULL};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, "/nonexistent-dir/x/d.db", 0, 0, why,
                                    sizeof why), -EIO);
    assert_null(d);
    assert_non_null(strstr(why, "/nonexistent-dir/x/d.db"));
}

/* What test_sqlite_file_keeps_answers_across_reopen proves, in PostgreSQL's table: what a
 * broker that takes over from another finds there. */
static void test_postgresql_keeps_answers_across_reopen(void **state) {
    (void)state;
    if (!pg_url[0]) {
        print_message("skipped: %s\n", pg_skip);
        skip();
    }
    pg_admin("DROP TABLE IF EXISTS dedup");
    brk_dedup_limits_t lim = {1000, 10, 1 << 20, NULL};
    brk_dedup_t *d = NULL;
    assert_int_equal(brk_dedup_open(&d, &lim, pg_url, 0, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"k", 1,
                                   (const uint8_t *)"kept", 4, 0, 5000), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"e", 1,
                                   (const uint8_t *)"expires", 7, 0, 4000), 0);
    brk_dedup_close(&d);
    assert_int_equal(brk_dedup_open(&d, &lim, pg_url, 77, 5600, why, sizeof why), 0);
    assert_int_equal(brk_dedup_count(d), 1);
    assert_string_equal(get(d, CK_A, "k", 78), "kept");
    assert_string_equal(get(d, CK_A, "e", 78), "");
    assert_string_equal(get(d, CK_A, "k", 77 + 400), "");
    brk_dedup_close(&d);
    brk_dedup_limits_t shorter = {10, 10, 1 << 20, NULL};
    assert_int_equal(brk_dedup_open(&d, &lim, pg_url, 0, 5000, why, sizeof why), 0);
    assert_int_equal(brk_dedup_put(d, CK_A, 2, (const uint8_t *)"k", 1,
                                   (const uint8_t *)"kept", 4, 0, 5000), 0);
    brk_dedup_close(&d);
    assert_int_equal(brk_dedup_open(&d, &shorter, pg_url, 0, 5000, why, sizeof why), 0);
    assert_string_equal(get(d, CK_A, "k", 9), "kept");
    assert_string_equal(get(d, CK_A, "k", 10), "");
    brk_dedup_close(&d);
    char bad[300];
    snprintf(bad, sizeof bad, "postgresql://actorbus@/postgres?host=%s/none", pg_dir);
    assert_int_equal(brk_dedup_open(&d, &lim, bad, 0, 0, why, sizeof why), -EIO);
    assert_null(d);
    assert_non_null(strstr(why, "connect"));
}

int main(void) {
    brk_map_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_returns_the_answer_put_for_that_client_and_id),
        cmocka_unit_test(test_client_and_id_that_concatenate_alike_stay_apart),
        cmocka_unit_test(test_answers_expire_after_the_window),
        cmocka_unit_test(test_entry_and_byte_bounds_evict_the_oldest),
        cmocka_unit_test(test_only_explicit_routing_ids_take_part),
        cmocka_unit_test(test_sqlite_file_keeps_answers_across_reopen),
        cmocka_unit_test(test_forget_drops_from_memory_and_keeps_the_row),
        cmocka_unit_test(test_a_wall_clock_jump_between_restarts_on_one_boot_changes_nothing),
        cmocka_unit_test(test_unopenable_file_is_an_error_naming_it),
        cmocka_unit_test(test_postgresql_keeps_answers_across_reopen),
    };
    return cmocka_run_group_tests(tests, pg_server_start, pg_server_stop);
}
