/* test_proto_origin.c: a work's `origin` (proto/src/origin.c, PROTOCOL.md "Broker pairs"), as
 * the active broker of a pair writes it and the one that takes over reads it back from a
 * worker's held report: a client's query and a worker's call (plain, or a sub-invocation with
 * its parent) round-trip; what is not an origin is refused with the reason. */
#include <string.h>

#include "harness.h"
#include "proto/proto.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__})

static const char key40[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

/* Encodes o, reads it back into *out (pointing into b). */
static void round_trip(proto_buf_t *b, const proto_origin_t *o, proto_origin_t *out) {
    proto_buf_reset(b);
    assert_int_equal(proto_enc_origin(b, o), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b->p, b->n, &v), 0);
    assert_int_equal(v.raw_n, b->n);
    const char *why = NULL;
    assert_int_equal(proto_origin_read(&v, 256, out, &why), 0);
    assert_null(why);
}

static void test_client_origin_round_trips_with_and_without_key(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_origin_t o = {.id = {B(0xa2, 'q', '1'), 3}, .client = B('c', 'l', 'i'),
                        .client_n = 3, .idempotent = true}, r;
    round_trip(&b, &o, &r);
    assert_int_equal(r.id.n, 3);
    assert_memory_equal(r.id.p, o.id.p, 3);
    assert_int_equal(r.client_n, 3);
    assert_memory_equal(r.client, "cli", 3);
    assert_null(r.key);
    assert_int_equal(r.caller, 0);
    assert_int_equal(r.parent, 0);
    assert_true(r.idempotent);
    o.key = key40;
    o.idempotent = false;
    round_trip(&b, &o, &r);
    assert_non_null(r.key);
    assert_memory_equal(r.key, key40, 40);
    assert_false(r.idempotent);
    proto_buf_free(&b);
}

static void test_call_origin_names_caller_call_and_parent(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    /* a plain call (a fanout's): caller and call id, no parent */
    proto_origin_t o = {.id = {B(0xcd, 0x01, 0x00), 3}, .caller = 0x8000000000000001ULL}, r;
    round_trip(&b, &o, &r);
    assert_int_equal(r.caller, 0x8000000000000001ULL);
    assert_int_equal(r.call, 256);
    assert_int_equal(r.parent, 0);
    assert_null(r.client);
    assert_int_equal(r.client_n, 0);
    /* a sub-invocation: its parent job too */
    o.id = (proto_raw_t){B(7), 1};
    o.parent = 1234567890123ULL;
    o.idempotent = true;
    round_trip(&b, &o, &r);
    assert_int_equal(r.call, 7);
    assert_int_equal(r.parent, 1234567890123ULL);
    assert_true(r.idempotent);
    proto_buf_free(&b);
}

static void test_encoder_refuses_what_is_not_an_origin(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_origin_t none = {.id = {B(1), 1}};
    assert_int_equal(proto_enc_origin(&b, &none), PROTO_EBAD); /* neither client nor caller */
    proto_origin_t both = {.id = {B(1), 1}, .client = B('c'), .client_n = 1, .caller = 9};
    assert_int_equal(proto_enc_origin(&b, &both), PROTO_EBAD);
    proto_origin_t noid = {.caller = 9};
    assert_int_equal(proto_enc_origin(&b, &noid), PROTO_EBAD);
    proto_origin_t shortkey = {.id = {B(1), 1}, .client = B('c'), .client_n = 1, .key = "k"};
    assert_int_equal(proto_enc_origin(&b, &shortkey), PROTO_EBAD);
    assert_int_equal(b.n, 0); /* nothing written */
    proto_buf_free(&b);
}

/* Reads the msgpack bytes as an origin: the return code, and why when refused. */
static int read_origin(const uint8_t *p, size_t n, size_t max_id, const char **why) {
    proto_val_t v;
    proto_origin_t o;
    *why = NULL;
    assert_int_equal(proto_val_read(p, n, &v), 0);
    return proto_origin_read(&v, max_id, &o, why);
}
#define READ(max_id, why, ...) \
    read_origin(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}), (max_id), (why))

static void test_reader_refuses_bad_origins_with_a_reason(void **state) {
    (void)state;
    const char *why;
    assert_int_equal(READ(0, &why, 0x91, 1), PROTO_EBAD); /* an array */
    assert_string_equal(why, "'origin' is not a map");
    assert_int_equal(READ(0, &why, 0x81, 0xa6, 'c', 'a', 'l', 'l', 'e', 'r', 1), PROTO_EBAD);
    assert_string_equal(why, "origin 'id' is not a query id");
    /* an id over max_id */
    assert_int_equal(READ(2, &why, 0x82, 0xa2, 'i', 'd', 0xa2, 'a', 'b',
                          0xa6, 'c', 'a', 'l', 'l', 'e', 'r', 1), PROTO_EBAD);
    assert_string_equal(why, "origin 'id' is not a query id");
    /* a call's id must be an integer */
    assert_int_equal(READ(0, &why, 0x82, 0xa2, 'i', 'd', 0xa1, 'a',
                          0xa6, 'c', 'a', 'l', 'l', 'e', 'r', 1), PROTO_EBAD);
    assert_string_equal(why, "origin 'id' of a call is not a non-negative integer");
    /* caller 0: no incarnation */
    assert_int_equal(READ(0, &why, 0x82, 0xa2, 'i', 'd', 1,
                          0xa6, 'c', 'a', 'l', 'l', 'e', 'r', 0), PROTO_EBAD);
    assert_string_equal(why, "origin 'caller' is not a worker incarnation");
    assert_int_equal(READ(0, &why, 0x83, 0xa2, 'i', 'd', 1, 0xa6, 'c', 'a', 'l', 'l', 'e', 'r',
                          5, 0xa6, 'p', 'a', 'r', 'e', 'n', 't', 0xa1, 'x'), PROTO_EBAD);
    assert_string_equal(why, "origin 'parent' is not a job id");
    /* client: bin only */
    assert_int_equal(READ(0, &why, 0x82, 0xa2, 'i', 'd', 1,
                          0xa6, 'c', 'l', 'i', 'e', 'n', 't', 0xa1, 'c'), PROTO_EBAD);
    assert_string_equal(why, "origin 'client' is not a routing id");
    assert_int_equal(READ(0, &why, 0x83, 0xa2, 'i', 'd', 1, 0xa6, 'c', 'l', 'i', 'e', 'n', 't',
                          0xc4, 1, 'c', 0xa6, 'c', 'a', 'l', 'l', 'e', 'r', 5), PROTO_EBAD);
    assert_string_equal(why, "origin has both 'client' and 'caller'");
    assert_int_equal(READ(0, &why, 0x81, 0xa2, 'i', 'd', 1), PROTO_EBAD);
    assert_string_equal(why, "origin names neither 'client' nor 'caller'");
    assert_int_equal(READ(0, &why, 0x83, 0xa2, 'i', 'd', 1, 0xa6, 'c', 'l', 'i', 'e', 'n', 't',
                          0xc4, 1, 'c', 0xa3, 'k', 'e', 'y', 0xa1, 'k'), PROTO_EBAD);
    assert_string_equal(why, "origin 'key' is not a CURVE key");
    /* what an older broker wrote (no caller): still a client's origin */
    assert_int_equal(READ(0, &why, 0x83, 0xa2, 'i', 'd', 1, 0xa6, 'c', 'l', 'i', 'e', 'n', 't',
                          0xc4, 1, 'c', 0xaa, 'i', 'd', 'e', 'm', 'p', 'o', 't', 'e', 'n', 't',
                          0xc3), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_origin_round_trips_with_and_without_key),
        cmocka_unit_test(test_call_origin_names_caller_call_and_parent),
        cmocka_unit_test(test_encoder_refuses_what_is_not_an_origin),
        cmocka_unit_test(test_reader_refuses_bad_origins_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
