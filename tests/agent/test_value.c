/* test_value.c: the plugin table's msgpack helpers (worker/agent/runner/value.c): every msgpack type
 * read in place, map and array lookups, and malformed or truncated bytes refused with
 * ABP_EINVAL at every cut, never read past the end; the builder round-trips through the
 * reader, and pack_raw / pack_json refuse what is not one value. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "runtime.h"

/* Packs with msgpack-c into a proto buffer. */
static proto_buf_t buf;

static void setup_buf(void) { proto_buf_init(&buf); }

static void test_value_reads_every_scalar_type(void **state) {
    (void)state;
    setup_buf();
    msgpack_packer *pk = &buf.pk;
    msgpack_pack_array(pk, 12);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_int(pk, -5);          /* negative fixint */
    msgpack_pack_int64(pk, -100000);   /* int32 */
    msgpack_pack_uint64(pk, 300);      /* uint16 */
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_double(pk, -2.25);
    proto_pack_cstr(&buf, "héllo");
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\0\1\2", 3);
    msgpack_pack_ext(pk, 2, 7);
    msgpack_pack_ext_body(pk, "ab", 2);
    abp_value_t a, v;
    assert_int_equal(agt_value(buf.p, buf.n, &a), 0);
    assert_int_equal(a.type, ABP_ARRAY);
    assert_int_equal(a.len, 12);
    assert_int_equal(a.raw_n, buf.n);
    abp_type_t types[] = {ABP_NIL, ABP_BOOL, ABP_INT, ABP_INT, ABP_INT, ABP_UINT,
                          ABP_INT, ABP_FLOAT, ABP_FLOAT, ABP_STR, ABP_BIN, ABP_EXT};
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(agt_array_get(&a, i, &v), 0);
        assert_int_equal(v.type, types[i]);
    }
    agt_array_get(&a, 1, &v), assert_true(v.b);
    agt_array_get(&a, 2, &v), assert_int_equal(v.i, -5);
    agt_array_get(&a, 3, &v), assert_int_equal(v.i, -100000);
    agt_array_get(&a, 4, &v), assert_int_equal(v.i, 300), assert_int_equal(v.u, 300);
    agt_array_get(&a, 5, &v), assert_true(v.u == UINT64_MAX);
    agt_array_get(&a, 6, &v), assert_true(v.i == INT64_MIN);
    agt_array_get(&a, 7, &v), assert_true(v.f == 1.5);
    agt_array_get(&a, 8, &v), assert_true(v.f == -2.25);
    agt_array_get(&a, 9, &v);
    assert_int_equal(v.len, strlen("héllo"));
    assert_memory_equal(v.str, "héllo", v.len);
    agt_array_get(&a, 10, &v);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.str, "\0\1\2", 3);
    assert_int_equal(agt_array_get(&a, 12, &v), ABP_ENOENT);
    assert_int_equal(agt_map_get(&a, "x", &v), ABP_EINVAL); /* not a map */
    proto_buf_free(&buf);
}

static void test_value_map_get_finds_keys_past_nested_values(void **state) {
    (void)state;
    setup_buf();
    const char *json = "{\"skip\": {\"deep\": [1, [2, {\"k\": \"v\"}], \"x\"]}, \"ms\": 250, "
                       "\"name\": \"Ada\", \"list\": [10, 20, 30]}";
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &buf, NULL), 0);
    abp_value_t m, v, e;
    assert_int_equal(agt_value(buf.p, buf.n, &m), 0);
    assert_int_equal(m.type, ABP_MAP);
    assert_int_equal(m.len, 4);
    assert_int_equal(agt_map_get(&m, "ms", &v), 0);
    assert_int_equal(v.i, 250);
    assert_int_equal(agt_map_get(&m, "name", &v), 0);
    assert_int_equal(v.len, 3);
    assert_int_equal(agt_map_get(&m, "list", &v), 0);
    assert_int_equal(agt_array_get(&v, 2, &e), 0);
    assert_int_equal(e.i, 30);
    assert_int_equal(agt_map_get(&m, "nam", &v), ABP_ENOENT);
    assert_int_equal(agt_map_get(&m, "skip", &v), 0);
    assert_true(agt_is_one_value(v.raw, v.raw_n)); /* raw is the whole nested value */
    proto_buf_free(&buf);
}

static void test_value_refuses_every_truncation_and_bad_byte(void **state) {
    (void)state;
    setup_buf();
    const char *json = "{\"a\": [1, 2.5, \"three\", {\"b\": null}], \"c\": 4294967296}";
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &buf, NULL), 0);
    abp_value_t v;
    for (size_t cut = 0; cut < buf.n; cut++) {
        /* a copy of exactly cut bytes, so ASan catches any read past the end */
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf.p, cut);
        assert_int_equal(agt_value(p, cut, &v), ABP_EINVAL);
        assert_false(agt_is_one_value(p, cut));
        free(p);
    }
    assert_true(agt_is_one_value(buf.p, buf.n));
    uint8_t bad[] = {0xc1};
    assert_int_equal(agt_value(bad, 1, &v), ABP_EINVAL);
    uint8_t two[] = {0x01, 0x02}; /* one value and a trailing byte */
    assert_int_equal(agt_value(two, 2, &v), 0);
    assert_false(agt_is_one_value(two, 2));
    uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}; /* 4G elements in 1 byte */
    assert_int_equal(agt_value(huge, sizeof huge, &v), ABP_EINVAL);
    uint8_t longstr[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'};
    assert_int_equal(agt_value(longstr, sizeof longstr, &v), ABP_EINVAL);
    proto_buf_free(&buf);
}

static void test_value_deep_nesting_does_not_recurse(void **state) {
    (void)state;
    size_t depth = 100000;
    uint8_t *p = malloc(depth + 1);
    memset(p, 0x91, depth); /* [[[[...]]]] */
    p[depth] = 0xc0;
    abp_value_t v;
    assert_int_equal(agt_value(p, depth + 1, &v), 0);
    assert_int_equal(v.raw_n, depth + 1);
    free(p);
}

static void test_pack_builds_what_the_reader_reads(void **state) {
    (void)state;
    abp_pack_t *p = agt_pack_new();
    assert_non_null(p);
    assert_int_equal(agt_pack_map(p, 3), 0);
    agt_pack_cstr(p, "n");
    agt_pack_int(p, -7);
    agt_pack_cstr(p, "j");
    assert_int_equal(agt_pack_json(p, "{\"x\": [true, 1.25]}"), 0);
    agt_pack_cstr(p, "raw");
    uint8_t one[] = {0x2a};
    assert_int_equal(agt_pack_raw(p, one, 1), 0);
    const uint8_t *bytes;
    size_t n;
    assert_int_equal(agt_pack_data(p, &bytes, &n), 0);
    abp_value_t m, v, x;
    assert_int_equal(agt_value(bytes, n, &m), 0);
    assert_true(agt_is_one_value(bytes, n));
    agt_map_get(&m, "n", &v), assert_int_equal(v.i, -7);
    agt_map_get(&m, "raw", &v), assert_int_equal(v.i, 42);
    assert_int_equal(agt_map_get(&m, "j", &v), 0);
    assert_int_equal(agt_map_get(&v, "x", &x), 0);
    assert_int_equal(x.len, 2);
    /* Refusals leave nothing behind. */
    uint8_t two[] = {0x01, 0x02};
    size_t before = n;
    assert_int_equal(agt_pack_raw(p, two, 2), ABP_EINVAL);
    assert_int_equal(agt_pack_json(p, "{nope"), ABP_EINVAL);
    assert_int_equal(agt_pack_data(p, &bytes, &n), 0);
    assert_int_equal(n, before);
    agt_pack_reset(p);
    agt_pack_data(p, &bytes, &n);
    assert_int_equal(n, 0);
    agt_pack_free(&p);
    assert_null(p);
    agt_pack_free(&p); /* repeatable */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_reads_every_scalar_type),
        cmocka_unit_test(test_value_map_get_finds_keys_past_nested_values),
        cmocka_unit_test(test_value_refuses_every_truncation_and_bad_byte),
        cmocka_unit_test(test_value_deep_nesting_does_not_recurse),
        cmocka_unit_test(test_pack_builds_what_the_reader_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
