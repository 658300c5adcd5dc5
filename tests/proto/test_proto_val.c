/* test_proto_val.c: proto_val_*, the in-place msgpack reader the worker's plugin API and the
 * MCP client share: every type, truncated and invalid bytes refused, nested lookups, and depth
 * that costs no stack. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "proto/proto.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__})

/* ---- proto_val: the in-place reader ---- */

#define VREAD(v, ...) proto_val_read(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}), (v))

/* Reads one scalar and checks its type and that it spans all n bytes. */
static proto_val_t val_of(const uint8_t *p, size_t n, int type) {
    proto_val_t v;
    assert_int_equal(proto_val_read(p, n, &v), 0);
    assert_int_equal(v.type, type);
    assert_ptr_equal(v.raw, p);
    assert_int_equal(v.raw_n, n);
    return v;
}
#define VAL(type, ...) val_of(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}), (type))

static void test_val_reads_every_scalar(void **state) {
    (void)state;
    VAL(PROTO_V_NIL, 0xc0);
    assert_false(VAL(PROTO_V_BOOL, 0xc2).b);
    assert_true(VAL(PROTO_V_BOOL, 0xc3).b);
    proto_val_t v = VAL(PROTO_V_INT, 0x7f);
    assert_int_equal(v.i, 127);
    assert_int_equal(v.u, 127);
    v = VAL(PROTO_V_INT, 0xe0);
    assert_int_equal(v.i, -32);
    assert_int_equal(v.u, 0);
    assert_int_equal(VAL(PROTO_V_INT, 0xcc, 0xff).i, 255);
    assert_int_equal(VAL(PROTO_V_INT, 0xcd, 1, 2).i, 0x102);
    assert_int_equal(VAL(PROTO_V_INT, 0xce, 0xff, 0xff, 0xff, 0xff).i, 0xffffffffLL);
    v = VAL(PROTO_V_INT, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    assert_int_equal(v.i, INT64_MAX);
    assert_int_equal(v.u, (uint64_t)INT64_MAX);
    v = VAL(PROTO_V_UINT, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 1); /* above INT64_MAX */
    assert_int_equal(v.u, 0x8000000000000001ULL);
    assert_int_equal(v.i, 0);
    assert_int_equal(VAL(PROTO_V_INT, 0xd0, 0x80).i, -128);
    assert_int_equal(VAL(PROTO_V_INT, 0xd1, 0xff, 0xfe).i, -2);
    assert_int_equal(VAL(PROTO_V_INT, 0xd2, 0x80, 0, 0, 0).i, INT32_MIN);
    v = VAL(PROTO_V_INT, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
    assert_int_equal(v.i, INT64_MIN);
    assert_int_equal(v.u, 0);
    assert_int_equal(VAL(PROTO_V_INT, 0xd0, 5).u, 5); /* signed format, non-negative */
    assert_true(VAL(PROTO_V_FLOAT, 0xca, 0x3f, 0xc0, 0, 0).f == 1.5);
    assert_true(VAL(PROTO_V_FLOAT, 0xcb, 0xc0, 0x04, 0, 0, 0, 0, 0, 0).f == -2.5);
    const uint8_t one[] = {0x01, 0xc0};
    v = val_of(one, 1, PROTO_V_INT); /* trailing bytes are left alone */
    assert_ptr_equal(v.body, one + 1);
}

/* Reads a str/bin/ext and checks its payload: len bytes at offset off of the value. */
static void check_bytes(const uint8_t *p, size_t n, int type, size_t off, size_t len) {
    proto_val_t v = val_of(p, n, type);
    assert_ptr_equal(v.data, p + off);
    assert_int_equal(v.len, len);
}
#define BYTES(type, off, len, ...)                                                           \
    check_bytes(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}), (type), (off), (len))

static void test_val_reads_every_string_binary_and_ext(void **state) {
    (void)state;
    BYTES(PROTO_V_STR, 1, 2, 0xa2, 'h', 'i');
    BYTES(PROTO_V_STR, 1, 0, 0xa0);
    BYTES(PROTO_V_STR, 2, 2, 0xd9, 2, 'h', 'i');
    BYTES(PROTO_V_STR, 3, 2, 0xda, 0, 2, 'h', 'i');
    BYTES(PROTO_V_STR, 5, 2, 0xdb, 0, 0, 0, 2, 'h', 'i');
    BYTES(PROTO_V_BIN, 2, 1, 0xc4, 1, 0xff);
    BYTES(PROTO_V_BIN, 3, 1, 0xc5, 0, 1, 0xff);
    BYTES(PROTO_V_BIN, 5, 1, 0xc6, 0, 0, 0, 1, 0xff);
    BYTES(PROTO_V_EXT, 2, 1, 0xd4, 7, 9);
    BYTES(PROTO_V_EXT, 2, 2, 0xd5, 7, 9, 9);
    BYTES(PROTO_V_EXT, 2, 4, 0xd6, 7, 9, 9, 9, 9);
    BYTES(PROTO_V_EXT, 2, 8, 0xd7, 7, 1, 2, 3, 4, 5, 6, 7, 8);
    BYTES(PROTO_V_EXT, 2, 16, 0xd8, 7, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8);
    BYTES(PROTO_V_EXT, 3, 1, 0xc7, 1, 7, 9);
    BYTES(PROTO_V_EXT, 4, 1, 0xc8, 0, 1, 7, 9);
    BYTES(PROTO_V_EXT, 6, 1, 0xc9, 0, 0, 0, 1, 7, 9);
    proto_val_t v;
    assert_int_equal(VREAD(&v, 0xd4, 0xfe, 9), 0);
    assert_int_equal(v.ext_type, -2);
    v = VAL(PROTO_V_STR, 0xa2, 'h', 'i');
    assert_true(proto_val_str_eq(&v, "hi"));
    assert_false(proto_val_str_eq(&v, "h"));
    v = VAL(PROTO_V_BIN, 0xc4, 2, 'h', 'i');
    assert_false(proto_val_str_eq(&v, "hi"));
}

static void test_val_reads_every_container(void **state) {
    (void)state;
    proto_val_t v = VAL(PROTO_V_ARRAY, 0x92, 0x01, 0xc0);
    assert_int_equal(v.len, 2);
    assert_ptr_equal(v.body, v.raw + 1);
    assert_int_equal(VAL(PROTO_V_ARRAY, 0x90).len, 0);
    v = VAL(PROTO_V_ARRAY, 0xdc, 0, 1, 0xc3);
    assert_int_equal(v.len, 1);
    assert_ptr_equal(v.body, v.raw + 3);
    v = VAL(PROTO_V_ARRAY, 0xdd, 0, 0, 0, 1, 0xc3);
    assert_ptr_equal(v.body, v.raw + 5);
    assert_int_equal(VAL(PROTO_V_MAP, 0x81, 0xa1, 'k', 0x02).len, 1);
    assert_int_equal(VAL(PROTO_V_MAP, 0xde, 0, 1, 0xa1, 'k', 0x02).len, 1);
    assert_int_equal(VAL(PROTO_V_MAP, 0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x02).len, 1);
    assert_int_equal(VAL(PROTO_V_MAP, 0x80).len, 0);
}

static void test_val_refuses_truncated_and_invalid_bytes(void **state) {
    (void)state;
    /* {"a": [1, "xy", 1.5f], "b": bin(1)}: every proper prefix is refused */
    const uint8_t whole[] = {0x82, 0xa1, 'a', 0x93, 0x01, 0xa2, 'x', 'y', 0xca, 0x3f, 0xc0,
                             0, 0, 0xa1, 'b', 0xc4, 1, 0xff};
    proto_val_t v;
    assert_int_equal(proto_val_read(whole, sizeof whole, &v), 0);
    assert_int_equal(v.raw_n, sizeof whole);
    for (size_t n = 0; n < sizeof whole; n++) {
        assert_int_equal(proto_val_read(whole, n, &v), PROTO_EBAD);
        assert_int_equal(v.type, 0);
        assert_null(v.raw);
    }
    assert_int_equal(VREAD(&v, 0xc1), PROTO_EBAD);             /* never used */
    assert_int_equal(VREAD(&v, 0x91, 0xc1), PROTO_EBAD);       /* inside a container */
    assert_int_equal(VREAD(&v, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'), PROTO_EBAD);
    assert_int_equal(VREAD(&v, 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2), PROTO_EBAD);
    assert_int_equal(VREAD(&v, 0xcf, 1, 2, 3), PROTO_EBAD);    /* scalar cut short */
    assert_int_equal(VREAD(&v, 0xd8, 1, 2), PROTO_EBAD);       /* fixext16 cut short */
    assert_int_equal(proto_val_read(NULL, 4, &v), PROTO_EBAD);
}

static void test_val_nested_lookups(void **state) {
    (void)state;
    /* {1: "int key", "a": [7, {"b": "x"}], "c": nil} */
    const uint8_t mp[] = {0x83, 0x01, 0xa7, 'i', 'n', 't', ' ', 'k', 'e', 'y', 0xa1, 'a', 0x92,
                          0x07, 0x81, 0xa1, 'b', 0xa1, 'x', 0xa1, 'c', 0xc0};
    proto_val_t m, a, e, x;
    assert_int_equal(proto_val_read(mp, sizeof mp, &m), 0);
    assert_int_equal(proto_val_map_get(&m, "a", &a), 1);
    assert_int_equal(a.type, PROTO_V_ARRAY);
    assert_int_equal(a.len, 2);
    assert_int_equal(proto_val_array_get(&a, 1, &e), 1);
    assert_int_equal(e.type, PROTO_V_MAP);
    assert_int_equal(proto_val_map_get(&e, "b", &x), 1);
    assert_true(proto_val_str_eq(&x, "x"));
    assert_ptr_equal(x.raw, mp + 17);
    assert_int_equal(proto_val_array_get(&a, 0, &e), 1);
    assert_int_equal(e.i, 7);
    assert_int_equal(proto_val_array_get(&a, 2, &e), 0);                   /* past the end */
    assert_int_equal(proto_val_array_get(&a, SIZE_MAX, &e), 0);
    assert_int_equal(proto_val_map_get(&m, "c", &x), 1);
    assert_int_equal(x.type, PROTO_V_NIL);
    assert_int_equal(proto_val_map_get(&m, "zz", &x), 0);                  /* absent */
    assert_int_equal(proto_val_map_get(&m, "", &x), 0);
    assert_int_equal(proto_val_map_get(&a, "a", &x), PROTO_EBAD);         /* not a map */
    assert_int_equal(proto_val_array_get(&m, 0, &x), PROTO_EBAD);         /* not an array */
    /* the iterator: map keys and values in turn, then 0, and 0 again */
    size_t cur = 0;
    int types[6], n = 0;
    while (n < 6 && proto_val_next(&m, &cur, &x) == 1) types[n++] = x.type;
    assert_int_equal(n, 6);
    assert_int_equal(types[0], PROTO_V_INT);
    assert_int_equal(types[3], PROTO_V_ARRAY);
    assert_int_equal(types[5], PROTO_V_NIL);
    assert_int_equal(proto_val_next(&m, &cur, &x), 0);
    assert_int_equal(proto_val_next(&m, &cur, &x), 0);
    cur = 0;
    assert_int_equal(proto_val_next(&x, &cur, &e), PROTO_EBAD);           /* nil */
    /* a value rebuilt from raw and raw_n alone (what adapters hand over) works */
    proto_val_t bare = {.raw = a.raw, .raw_n = a.raw_n};
    assert_int_equal(proto_val_array_get(&bare, 1, &e), 1);
    assert_int_equal(e.type, PROTO_V_MAP);
    /* forged bytes: a map whose last key lacks its value is refused, not overread */
    proto_val_t forged = {.raw = B(0x81, 0xa1, 'k'), .raw_n = 3};
    assert_int_equal(proto_val_map_get(&forged, "k", &x), PROTO_EBAD);
    assert_int_equal(proto_val_map_get(&forged, "z", &x), PROTO_EBAD);
}

static void test_val_deep_nesting_costs_no_stack(void **state) {
    (void)state;
    enum { DEPTH = 1000000 };
    uint8_t *mp = malloc(DEPTH + 1);
    assert_non_null(mp);
    memset(mp, 0x91, DEPTH); /* [[[...[nil]...]]] */
    mp[DEPTH] = 0xc0;
    proto_val_t v, in;
    assert_int_equal(proto_val_read(mp, DEPTH + 1, &v), 0);
    assert_int_equal(v.raw_n, DEPTH + 1);
    for (int i = 0; i < 3; i++) { /* each step skips what is inside, iteratively */
        assert_int_equal(proto_val_array_get(&v, 0, &in), 1);
        assert_int_equal(in.raw_n, v.raw_n - 1);
        v = in;
    }
    size_t cur = 0;
    assert_int_equal(proto_val_next(&v, &cur, &in), 1);
    assert_int_equal(in.raw_n, v.raw_n - 1);
    assert_int_equal(proto_val_read(mp, DEPTH, &v), PROTO_EBAD); /* the nil cut off */
    free(mp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_val_reads_every_scalar),
        cmocka_unit_test(test_val_reads_every_string_binary_and_ext),
        cmocka_unit_test(test_val_reads_every_container),
        cmocka_unit_test(test_val_refuses_truncated_and_invalid_bytes),
        cmocka_unit_test(test_val_nested_lookups),
        cmocka_unit_test(test_val_deep_nesting_costs_no_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
