/* test_proto.c: the 1/ABP codec (proto/). Every msgpack format through the validator, each
 * MUST of proto/PROTOCOL.md about bad input and versions, the REQUIRED fields of each type,
 * every encoder decoded back, and JSON both ways. Tests named *_must check a MUST. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "proto/proto.h"

#include "kvpack.h"

#define VALIDATE(...) validate_bytes(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}))

static proto_error_t last_err;

static int validate_bytes(const uint8_t *p, size_t n) {
    memset(&last_err, 0, sizeof last_err);
    return proto_validate(p, n, NULL, &last_err);
}

static void assert_msg_has(const char *needle) {
    if (!strstr(last_err.message, needle)) {
        print_error("message '%s' lacks '%s'\n", last_err.message, needle);
        fail();
    }
}

/* ---- validate: every format ---- */

static void test_validate_accepts_every_scalar_format(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0xc0), 0);                   /* nil */
    assert_int_equal(VALIDATE(0xc2), 0);                   /* false */
    assert_int_equal(VALIDATE(0xc3), 0);                   /* true */
    assert_int_equal(VALIDATE(0x7f), 0);                   /* positive fixint */
    assert_int_equal(VALIDATE(0xe0), 0);                   /* negative fixint */
    assert_int_equal(VALIDATE(0xcc, 1), 0);                /* uint8 */
    assert_int_equal(VALIDATE(0xcd, 1, 2), 0);             /* uint16 */
    assert_int_equal(VALIDATE(0xce, 1, 2, 3, 4), 0);       /* uint32 */
    assert_int_equal(VALIDATE(0xcf, 1, 2, 3, 4, 5, 6, 7, 8), 0); /* uint64 */
    assert_int_equal(VALIDATE(0xd0, 0x80), 0);             /* int8 */
    assert_int_equal(VALIDATE(0xd1, 1, 2), 0);             /* int16 */
    assert_int_equal(VALIDATE(0xd2, 1, 2, 3, 4), 0);       /* int32 */
    assert_int_equal(VALIDATE(0xd3, 1, 2, 3, 4, 5, 6, 7, 8), 0); /* int64 */
    assert_int_equal(VALIDATE(0xca, 0x3f, 0x80, 0, 0), 0); /* float32 */
    assert_int_equal(VALIDATE(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), 0); /* float64 */
}

static void test_validate_accepts_every_string_and_binary_format(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0xa2, 'h', 'i'), 0);          /* fixstr */
    assert_int_equal(VALIDATE(0xa0), 0);                    /* empty fixstr */
    assert_int_equal(VALIDATE(0xd9, 2, 'h', 'i'), 0);       /* str8 */
    assert_int_equal(VALIDATE(0xda, 0, 2, 'h', 'i'), 0);    /* str16 */
    assert_int_equal(VALIDATE(0xdb, 0, 0, 0, 2, 'h', 'i'), 0); /* str32 */
    assert_int_equal(VALIDATE(0xc4, 1, 0xff), 0);           /* bin8 */
    assert_int_equal(VALIDATE(0xc5, 0, 1, 0xff), 0);        /* bin16 */
    assert_int_equal(VALIDATE(0xc6, 0, 0, 0, 1, 0xff), 0);  /* bin32 */
    assert_int_equal(VALIDATE(0xd4, 1, 9), 0);              /* fixext1 */
    assert_int_equal(VALIDATE(0xd5, 1, 9, 9), 0);           /* fixext2 */
    assert_int_equal(VALIDATE(0xd6, 1, 9, 9, 9, 9), 0);     /* fixext4 */
    assert_int_equal(VALIDATE(0xd7, 1, 1, 2, 3, 4, 5, 6, 7, 8), 0); /* fixext8 */
    assert_int_equal(VALIDATE(0xd8, 1, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8), 0);
    assert_int_equal(VALIDATE(0xc7, 2, 5, 9, 9), 0);        /* ext8 */
    assert_int_equal(VALIDATE(0xc8, 0, 2, 5, 9, 9), 0);     /* ext16 */
    assert_int_equal(VALIDATE(0xc9, 0, 0, 0, 2, 5, 9, 9), 0); /* ext32 */
}

static void test_validate_accepts_every_container_format(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0x92, 1, 2), 0);                   /* fixarray */
    assert_int_equal(VALIDATE(0xdc, 0, 2, 1, 2), 0);             /* array16 */
    assert_int_equal(VALIDATE(0xdd, 0, 0, 0, 2, 1, 2), 0);       /* array32 */
    assert_int_equal(VALIDATE(0x81, 0xa1, 'a', 1), 0);           /* fixmap */
    assert_int_equal(VALIDATE(0xde, 0, 1, 0xa1, 'a', 1), 0);     /* map16 */
    assert_int_equal(VALIDATE(0xdf, 0, 0, 0, 1, 0xa1, 'a', 1), 0); /* map32 */
    assert_int_equal(VALIDATE(0x90), 0);                         /* empty array */
    assert_int_equal(VALIDATE(0x80), 0);                         /* empty map */
    assert_int_equal(VALIDATE(0x81, 0x92, 1, 2, 0x80), 0);       /* container as key */
}

static void test_validate_rejects_length_past_end(void **state) {
    (void)state;
    /* every length-carrying format, declaring one byte more than is there */
    assert_int_equal(VALIDATE(0xa3, 'h', 'i'), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xd9, 3, 'h', 'i'), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xda, 0, 3, 'h', 'i'), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xdb, 0xff, 0xff, 0xff, 0xff, 'h', 'i'), PROTO_EBAD);
    assert_msg_has("str32 at offset 0 declares 4294967295 bytes");
    assert_int_equal(VALIDATE(0xc4, 2, 0xff), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xc5, 0, 2, 0xff), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xc6, 0, 0, 0, 2, 0xff), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xc7, 2, 5, 9), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xc8, 0, 2, 5, 9), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xc9, 0, 0, 0, 2, 5, 9), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xd4, 1), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xd8, 1, 1, 2, 3), PROTO_EBAD);
    assert_msg_has("fixext16");
    /* a string nested in a map, cut short: the offset names where it starts */
    assert_int_equal(VALIDATE(0x81, 0xa1, 'a', 0xa5, 'x'), PROTO_EBAD);
    assert_msg_has("offset 3");
}

static void test_validate_rejects_truncated_headers(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0xcd, 1), PROTO_EBAD);
    assert_msg_has("uint16 header at offset 0 is cut short");
    assert_int_equal(VALIDATE(0xcf, 1, 2, 3), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xd3, 1), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xcb, 0, 0), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xca), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xdb, 0, 0), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xdc, 0), PROTO_EBAD);
    assert_int_equal(VALIDATE(0xdf, 0, 0, 0), PROTO_EBAD);
    assert_int_equal(validate_bytes(B(0), 0), PROTO_EBAD); /* no bytes at all */
    assert_msg_has("ends early at offset 0");
    assert_int_equal(VALIDATE(0x92, 1), PROTO_EBAD); /* one element missing */
    assert_msg_has("more than the 1 bytes");
}

static void test_validate_rejects_never_used_byte(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0x91, 0xc1), PROTO_EBAD);
    assert_msg_has("0xc1 at offset 1");
}

static void test_validate_rejects_huge_array_count_without_allocating(void **state) {
    (void)state;
    /* the count is refused from the header alone: nothing could allocate 2^32 slots */
    assert_int_equal(VALIDATE(0xdd, 0xff, 0xff, 0xff, 0xff), PROTO_ETOOBIG);
    assert_string_equal(last_err.code, "too_large");
    assert_msg_has("array32 at offset 0 has 4294967295 elements");
    assert_int_equal(VALIDATE(0xdf, 0xff, 0xff, 0xff, 0xff), PROTO_ETOOBIG);
    /* under the element limit but more than the bytes left: each element needs a byte */
    assert_int_equal(VALIDATE(0xdc, 0x10, 0x00, 1, 2, 3), PROTO_EBAD);
    assert_msg_has("declares 4096 elements");
    assert_int_equal(VALIDATE(0xde, 0, 2, 1, 2, 3), PROTO_EBAD); /* a map needs 2 per entry */
}

static void test_validate_rejects_deep_nesting(void **state) {
    (void)state;
    uint8_t deep[40];
    memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
    deep[32] = 0xc0;
    assert_int_equal(validate_bytes(deep, 33), 0); /* 32 levels: the limit */
    memset(deep, 0x81, sizeof deep);               /* {nil: {nil: ...}} is as deep */
    for (int i = 0; i < 33; i++) deep[i] = 0x91;
    deep[33] = 0xc0;
    assert_int_equal(validate_bytes(deep, 34), PROTO_ETOOBIG);
    assert_msg_has("fixarray at offset 32 nests deeper than 32");
    /* a hard cap holds whatever the caller asks for */
    uint8_t deeper[PROTO_MAX_DEPTH + 2];
    memset(deeper, 0x91, sizeof deeper);
    deeper[PROTO_MAX_DEPTH + 1] = 0xc0;
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_depth = 100000;
    assert_int_equal(proto_validate(deeper, sizeof deeper, &lim, &last_err), PROTO_ETOOBIG);
    assert_int_equal(proto_validate(deeper + 1, sizeof deeper - 1, &lim, &last_err), 0);
}

static void test_validate_rejects_trailing_bytes(void **state) {
    (void)state;
    assert_int_equal(VALIDATE(0xc0, 0xc0), PROTO_EBAD);
    assert_msg_has("1 trailing bytes after the object, at offset 1");
    assert_int_equal(VALIDATE(0x80, 0, 0, 0), PROTO_EBAD);
}

static void test_validate_enforces_size_and_element_limits(void **state) {
    (void)state;
    proto_limits_t lim;
    proto_limits_default(&lim);
    assert_int_equal(lim.max_size, 1u << 20);
    assert_int_equal(lim.max_depth, 32);
    assert_int_equal(lim.max_elems, 65536);
    assert_int_equal(lim.max_id, 256);
    lim.max_elems = 2;
    assert_int_equal(proto_validate(B(0x92, 1, 2), 3, &lim, &last_err), 0);
    assert_int_equal(proto_validate(B(0x93, 1, 2, 3), 4, &lim, &last_err), PROTO_ETOOBIG);
    lim.max_size = 3;
    assert_int_equal(proto_validate(B(0xa3, 'a', 'b', 'c'), 4, &lim, &last_err), PROTO_ETOOBIG);
    assert_string_equal(last_err.code, "too_large");
    assert_int_equal(proto_validate(B(0xa2, 'a', 'b'), 3, &lim, NULL), 0); /* err optional */
}

/* ---- decode ---- */

static proto_msg_t msg;

static int decode_tb(void) {
    memset(&last_err, 0, sizeof last_err);
    return proto_decode(tb.p, tb.n, NULL, &msg, &last_err);
}
#define DECODE(...) (PACK(__VA_ARGS__), decode_tb())

static void test_decode_reads_a_query(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("input", 0x91, 1),
                            KV("session", 0xa1, 's'), KV("timeout_ms", 0xcd, 0x03, 0xe8),
                            KV("idempotent", 0xc3)), 0);
    assert_int_equal(msg.type, PROTO_QUERY);
    assert_int_equal(msg.id.n, 1);
    assert_int_equal(msg.id.p[0], 7);
    assert_true(proto_str_eq(msg.agent, "echo"));
    assert_int_equal(msg.input.n, 2);
    assert_memory_equal(msg.input.p, B(0x91, 1), 2);
    assert_true(proto_str_eq(msg.session, "s"));
    assert_int_equal(msg.timeout_ms, 1000);
    assert_true(msg.idempotent);
    assert_ptr_equal(msg.body.p, tb.p); /* zero-copy: spans point into the buffer */
    assert_int_equal(msg.body.n, tb.n);
    assert_true(msg.agent.p > (const char *)tb.p && msg.agent.p < (const char *)tb.p + tb.n);
}

static void test_decode_gives_defaults_for_absent_optional_fields(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 0xa1, 'x'), AGENT_ECHO,
                            KV("session", 0xc0), KV("timeout_ms", 0xc0)), 0);
    assert_int_equal(msg.input.n, 1);
    assert_int_equal(msg.input.p[0], 0xc0); /* nil */
    assert_int_equal(msg.session.n, 0);
    assert_int_equal(msg.timeout_ms, -1);
    assert_false(msg.idempotent);
}

static void test_decode_rejects_unknown_version_must(void **state) {
    (void)state;
    assert_int_equal(DECODE(KV("v", 2), TQUERY, KV("id", 1), AGENT_ECHO), PROTO_EVERSION);
    assert_string_equal(last_err.code, "unsupported_version");
    assert_int_equal(DECODE(KV("v", 0xff), TQUERY), PROTO_EVERSION); /* -1 */
    assert_int_equal(DECODE(KV("v", 0xcf, 0, 0, 0, 1, 0, 0, 0, 1), TQUERY), PROTO_EVERSION);
    /* v is checked before anything else: an unknown version may carry any type */
    assert_int_equal(DECODE(T(3, 'n', 'e', 'w'), KV("v", 9)), PROTO_EVERSION);
}

/* An error must name the request it answers: a readable id survives a failed decode. */
static void test_decode_keeps_a_readable_id_when_it_fails(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 0xa1, 'x'), KV("agent", 5)), PROTO_EBAD);
    assert_int_equal(msg.id.n, 2);
    assert_int_equal(msg.id.p[0], 0xa1);
    assert_int_equal(msg.id.p[1], 'x');
    assert_int_equal(DECODE(KV("v", 2), TQUERY, KV("id", 7), AGENT_ECHO), PROTO_EVERSION);
    assert_int_equal(msg.id.n, 1);
    assert_int_equal(msg.id.p[0], 7);
    /* an id that is not one is not kept */
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 0x91, 1), AGENT_ECHO), PROTO_EBAD);
    assert_int_equal(msg.id.n, 0);
    assert_int_equal(DECODE(V1, TQUERY, AGENT_ECHO), PROTO_EBAD);
    assert_int_equal(msg.id.n, 0);
}

static void test_decode_requires_integer_version(void **state) {
    (void)state;
    assert_int_equal(DECODE(TQUERY, KV("id", 1), AGENT_ECHO), PROTO_EBAD);
    assert_string_equal(last_err.code, "bad_request");
    assert_string_equal(last_err.message, "field 'v' is missing");
    assert_int_equal(DECODE(KV("v", 0xa1, '1'), TQUERY), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'v' must be an integer");
    assert_int_equal(DECODE(KV("v", 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), TQUERY), PROTO_EBAD);
}

static void test_decode_requires_known_type(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'type' is missing");
    assert_int_equal(DECODE(V1, KV("type", 5)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'type' must be a string");
    assert_int_equal(DECODE(V1, T(3, 'f', 'o', 'o')), PROTO_EBAD);
    assert_string_equal(last_err.message, "unknown type 'foo'");
}

static void test_decode_rejects_non_map_message(void **state) {
    (void)state;
    assert_int_equal(proto_decode(B(0x91, 1), 2, NULL, &msg, &last_err), PROTO_EBAD);
    assert_string_equal(last_err.message, "message is a fixarray, not a map");
    assert_int_equal(proto_decode(B(0xa1, 'x', 0), 3, NULL, &msg, &last_err), PROTO_EBAD);
    assert_string_equal(last_err.code, "bad_request"); /* trailing byte: validation first */
}

static void test_decode_requires_agent_for_query(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1)), PROTO_EBAD);
    assert_string_equal(last_err.code, "bad_request");
    assert_string_equal(last_err.message, "field 'agent' is missing");
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), KV("agent", 3)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'agent' must be a string");
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), KV("agent", 0xa0)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'agent' must be 1 to 128 bytes long");
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), KV("agent", 0xc0)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'agent' must be a string");
}

static void test_decode_requires_id_for_query(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, AGENT_ECHO), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'id' is missing");
    assert_int_equal(DECODE(V1, TQUERY, AGENT_ECHO, KV("id", 0x90)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'id' must be a string or an integer");
    assert_int_equal(DECODE(V1, TQUERY, AGENT_ECHO, KV("id", 0xc0)), PROTO_EBAD);
    assert_int_equal(DECODE(V1, TQUERY, AGENT_ECHO, KV("id", 0xd0, 0xfe)), 0); /* -2 */
}

static void test_decode_checks_query_field_types(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("timeout_ms", 0xff)),
                     PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'timeout_ms' must be a non-negative integer");
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("timeout_ms", 0xa1, '1')),
                     PROTO_EBAD);
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("idempotent", 1)),
                     PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'idempotent' must be a boolean");
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("session", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'session' must be a string");
    /* a signed encoding of a non-negative number is still a non-negative integer */
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("timeout_ms", 0xd1, 0, 9)),
                     0);
    assert_int_equal(msg.timeout_ms, 9);
}

static void test_decode_rejects_oversized_id(void **state) {
    (void)state;
    char id[300];
    memset(id, 'i', sizeof id);
    proto_buf_t q;
    proto_buf_init(&q);
    for (size_t n = 254; n <= 255; n++) { /* str8: 2 + n bytes as msgpack */
        proto_buf_t idb;
        proto_buf_init(&idb);
        proto_pack_str(&idb, id, n);
        assert_int_equal(proto_enc_query(&q, (proto_raw_t){idb.p, idb.n}, proto_str_of("a"),
                                         (proto_raw_t){0}, (proto_str_t){0}, -1, false), 0);
        int rc = proto_decode(q.p, q.n, NULL, &msg, &last_err);
        assert_int_equal(rc, n == 254 ? 0 : PROTO_ETOOBIG);
        proto_buf_free(&idb);
    }
    assert_string_equal(last_err.message, "field 'id' is longer than 256 bytes");
    proto_buf_free(&q);
}

static void test_decode_rejects_long_agent_name(void **state) {
    (void)state;
    char name[PROTO_MAX_NAME + 2];
    memset(name, 'a', sizeof name);
    name[PROTO_MAX_NAME + 1] = 0;
    proto_buf_t q;
    proto_buf_init(&q);
    assert_int_equal(proto_enc_query(&q, (proto_raw_t){B(1), 1}, proto_str_of(name),
                                     (proto_raw_t){0}, (proto_str_t){0}, -1, false), 0);
    assert_int_equal(proto_decode(q.p, q.n, NULL, &msg, &last_err), PROTO_EBAD);
    name[PROTO_MAX_NAME] = 0;
    assert_int_equal(proto_enc_query(&q, (proto_raw_t){B(1), 1}, proto_str_of(name),
                                     (proto_raw_t){0}, (proto_str_t){0}, -1, false), 0);
    assert_int_equal(proto_decode(q.p, q.n, NULL, &msg, &last_err), 0);
    proto_buf_free(&q);
}

static void test_decode_ignores_unknown_fields_must(void **state) {
    (void)state;
    assert_int_equal(DECODE(KV("zz", 0x92, 0x80, 0xc0), V1, TQUERY, KV("id", 1), AGENT_ECHO,
                            KV("future", 0xa1, 'x'), KV("priority", 5)), 0);
    assert_int_equal(msg.type, PROTO_QUERY);
    assert_true(proto_str_eq(msg.agent, "echo"));
    /* non-string keys are unknown fields too */
    proto_buf_reset(&tb);
    msgpack_pack_map(&tb.pk, 4);
    msgpack_pack_int(&tb.pk, 1);
    msgpack_pack_int(&tb.pk, 2);
    msgpack_pack_array(&tb.pk, 1);
    msgpack_pack_nil(&tb.pk);
    msgpack_pack_nil(&tb.pk);
    proto_pack_cstr(&tb, "v");
    msgpack_pack_int(&tb.pk, 1);
    proto_pack_cstr(&tb, "type");
    proto_pack_cstr(&tb, "heartbeat");
    assert_int_equal(proto_decode(tb.p, tb.n, NULL, &msg, &last_err), 0);
    assert_int_equal(msg.type, PROTO_HEARTBEAT);
}

/* Broker pairs: work's origin (a map) and ready's held (an array) are kept verbatim. */
static void test_decode_keeps_origin_and_held_for_adoption(void **state) {
    (void)state;
#define TREADY T(5, 'r', 'e', 'a', 'd', 'y')
#define TWORK T(4, 'w', 'o', 'r', 'k')
#define READY_FIELDS KV("name", 0xa1, 'w'), KV("capacity", 1), KV("agents", 0x91, 0xa1, 'e')
    assert_int_equal(DECODE(V1, TREADY, READY_FIELDS, KV("held", 0x91, 0x81, 0xa1, 'j', 7)), 0);
    assert_int_equal(msg.held.n, 5);
    assert_int_equal(msg.held.p[0], 0x91);
    assert_int_equal(DECODE(V1, TREADY, READY_FIELDS), 0);
    assert_int_equal(msg.held.n, 0);
    assert_int_equal(DECODE(V1, TREADY, READY_FIELDS, KV("held", 5)), PROTO_EBAD);
    assert_int_equal(DECODE(V1, TWORK, KV("job", 1), AGENT_ECHO, KV("attempt", 1),
                            KV("origin", 0x81, 0xa2, 'i', 'd', 3)), 0);
    assert_int_equal(msg.origin.n, 5);
    assert_int_equal(DECODE(V1, TWORK, KV("job", 1), AGENT_ECHO, KV("attempt", 1),
                            KV("origin", 0x91, 3)), PROTO_EBAD);
#undef TREADY
#undef TWORK
#undef READY_FIELDS
}

/* Fields appended to an encoded message: the header counts all k of them, or is left as it
 * was when it cannot (a fixmap stops at 15, a map16 at 65535, anything else is no map). */
static void test_map_grow_counts_all_fields_or_none(void **state) {
    (void)state;
    proto_buf_reset(&tb);
    assert_false(proto_buf_map_grow(&tb, 1)); /* empty */
    msgpack_pack_map(&tb.pk, 13);
    assert_false(proto_buf_map_grow(&tb, 3)); /* 16 would not fit a fixmap */
    assert_int_equal(tb.p[0], 0x8d);
    assert_true(proto_buf_map_grow(&tb, 2));
    assert_int_equal(tb.p[0], 0x8f);
    assert_false(proto_buf_map_grow(&tb, 1));
    proto_buf_reset(&tb);
    msgpack_pack_map(&tb.pk, 0xfffe);
    assert_true(proto_buf_map_grow(&tb, 1));
    assert_int_equal(tb.p[1], 0xff);
    assert_int_equal(tb.p[2], 0xff);
    assert_false(proto_buf_map_grow(&tb, 1));
    proto_buf_reset(&tb);
    msgpack_pack_array(&tb.pk, 1);
    assert_false(proto_buf_map_grow(&tb, 1));
}

/* A field is named by exactly its bytes: a key that only starts like one, a longer one, one
 * with a NUL after the name, and one past every name's length are unknown fields. A container
 * value is skipped whole, and the field after it still read. */
static void test_decode_matches_field_names_exactly(void **state) {
    (void)state;
    proto_buf_reset(&tb);
    msgpack_pack_map(&tb.pk, 9);
    proto_pack_cstr(&tb, "v");
    msgpack_pack_int(&tb.pk, 1);
    proto_pack_cstr(&tb, "type");
    proto_pack_cstr(&tb, "query");
    proto_pack_str(&tb, "id\0", 3); /* not "id": its value would fail the id check */
    msgpack_pack_map(&tb.pk, 0);
    proto_pack_cstr(&tb, "agen");
    msgpack_pack_int(&tb.pk, 5);
    proto_pack_cstr(&tb, "agentx");
    msgpack_pack_int(&tb.pk, 5);
    proto_pack_cstr(&tb, "model_concurrency_and_more");
    msgpack_pack_int(&tb.pk, 5);
    proto_pack_cstr(&tb, "input");
    msgpack_pack_array(&tb.pk, 2);
    msgpack_pack_map(&tb.pk, 1);
    proto_pack_cstr(&tb, "agent");
    msgpack_pack_int(&tb.pk, 9);
    msgpack_pack_int(&tb.pk, 2);
    proto_pack_cstr(&tb, "id");
    msgpack_pack_int(&tb.pk, 4);
    proto_pack_cstr(&tb, "agent");
    proto_pack_cstr(&tb, "echo");
    assert_int_equal(proto_decode(tb.p, tb.n, NULL, &msg, &last_err), 0);
    assert_int_equal(msg.id.n, 1);
    assert_int_equal(msg.id.p[0], 4);
    assert_true(proto_str_eq(msg.agent, "echo"));
    assert_int_equal(msg.input.n, 1 + 1 + 6 + 1 + 1); /* [ {"agent": 9}, 2 ] */
    assert_int_equal(msg.input.p[0], 0x92);
}

static void test_decode_rejects_duplicate_fields(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, KV("id", 1), AGENT_ECHO, KV("agent", 0xa1, 'x')),
                     PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'agent' appears twice");
}

static void test_decode_requires_fields_of_every_type(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, T(6, 'c', 'a', 'n', 'c', 'e', 'l')), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'id' is missing");
    assert_int_equal(DECODE(V1, T(7, 'p', 'u', 'b', 'l', 'i', 's', 'h')), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'topic' is missing");
    assert_int_equal(DECODE(V1, T(5, 'e', 'v', 'e', 'n', 't'), KV("id", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'event' is missing");
    assert_int_equal(DECODE(V1, T(5, 'e', 'v', 'e', 'n', 't'), KV("event", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'id' is missing");
    assert_int_equal(DECODE(V1, T(6, 'r', 'e', 's', 'u', 'l', 't'), KV("job", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'output' is missing");
    assert_int_equal(DECODE(V1, T(5, 'e', 'r', 'r', 'o', 'r'), KV("id", 0xc0),
                            KV("code", 0xa1, 'x')), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'message' is missing");
    assert_int_equal(DECODE(V1, T(5, 'r', 'e', 'a', 'd', 'y'), KV("name", 0xa1, 'w'),
                            KV("agents", 0x90)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'capacity' is missing");
    assert_int_equal(DECODE(V1, T(5, 'r', 'e', 'a', 'd', 'y'), KV("name", 0xa1, 'w'),
                            KV("capacity", 0), KV("agents", 0x90)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'capacity' must be a positive integer");
    assert_int_equal(DECODE(V1, T(5, 'r', 'e', 'a', 'd', 'y'), KV("name", 0xa1, 'w'),
                            KV("capacity", 1), KV("agents", 0x91, 1)), PROTO_EBAD);
    assert_string_equal(last_err.message,
                        "field 'agents' element 0 must be a non-empty string of at most 128 "
                        "bytes");
    assert_int_equal(DECODE(V1, T(4, 'w', 'o', 'r', 'k'), KV("job", 1), AGENT_ECHO),
                     PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'attempt' is missing");
    assert_int_equal(DECODE(V1, T(6, 'c', 'r', 'e', 'd', 'i', 't')), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'capacity' is missing");
    assert_int_equal(DECODE(V1, T(6, 'c', 'r', 'e', 'd', 'i', 't'), KV("capacity", 0)), 0);
    assert_int_equal(DECODE(V1, T(6, 's', 't', 'a', 't', 'u', 's')), 0);
    assert_int_equal(msg.id.n, 0);
}

static void test_decode_keeps_nil_reply_id(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, T(5, 'e', 'r', 'r', 'o', 'r'), KV("id", 0xc0),
                            KV("code", 0xa1, 'x'), KV("message", 0xa0)), 0);
    assert_int_equal(msg.id.n, 1);
    assert_int_equal(msg.id.p[0], 0xc0);
    assert_false(msg.has_job);
}

/* ---- encoders ---- */

static void decode_ok(proto_buf_t *b, proto_type_t type) {
    int rc = proto_decode(b->p, b->n, NULL, &msg, &last_err);
    if (rc) print_error("%s: %s\n", proto_type_name(type), last_err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(msg.type, type);
}

static void test_every_encoder_round_trips(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_raw_t id = {B(0xa2, 'q', '1'), 3}, in = {B(0x81, 0xa1, 'x', 1), 4};
    proto_str_t echo = proto_str_of("echo"), sess = proto_str_of("s1");

    assert_int_equal(proto_enc_query(&b, id, echo, in, sess, 250, true), 0);
    decode_ok(&b, PROTO_QUERY);
    assert_memory_equal(msg.id.p, id.p, 3);
    assert_true(proto_str_eq(msg.agent, "echo"));
    assert_memory_equal(msg.input.p, in.p, in.n);
    assert_true(proto_str_eq(msg.session, "s1"));
    assert_int_equal(msg.timeout_ms, 250);
    assert_true(msg.idempotent);
    assert_int_equal(proto_enc_query(&b, id, echo, (proto_raw_t){0}, (proto_str_t){0}, -1,
                                     false), 0);
    decode_ok(&b, PROTO_QUERY);
    assert_int_equal(msg.timeout_ms, -1);
    assert_int_equal(msg.session.n, 0);

    assert_int_equal(proto_enc_cancel_id(&b, id), 0);
    decode_ok(&b, PROTO_CANCEL);
    assert_memory_equal(msg.id.p, id.p, 3);
    assert_false(msg.has_job);

    assert_int_equal(proto_enc_publish(&b, proto_str_of("t.x"), in, id), 0);
    decode_ok(&b, PROTO_PUBLISH);
    assert_true(proto_str_eq(msg.topic, "t.x"));
    assert_memory_equal(msg.data.p, in.p, in.n);
    assert_int_equal(msg.id.n, 3);
    assert_int_equal(proto_enc_publish(&b, proto_str_of("t"), (proto_raw_t){0},
                                       (proto_raw_t){0}), 0);
    decode_ok(&b, PROTO_PUBLISH);
    assert_int_equal(msg.id.n, 0);
    assert_int_equal(msg.data.p[0], 0xc0);

    assert_int_equal(proto_enc_status_request(&b, id), 0);
    decode_ok(&b, PROTO_STATUS);
    assert_int_equal(msg.id.n, 3);
    assert_int_equal(proto_enc_status_request(&b, (proto_raw_t){0}), 0);
    decode_ok(&b, PROTO_STATUS);

    assert_int_equal(proto_enc_event(&b, id, 3, in), 0);
    decode_ok(&b, PROTO_EVENT);
    assert_int_equal(msg.seq, 3);
    assert_memory_equal(msg.event.p, in.p, in.n);

    assert_int_equal(proto_enc_result(&b, id, in), 0);
    decode_ok(&b, PROTO_RESULT);
    assert_memory_equal(msg.output.p, in.p, in.n);
    assert_int_equal(proto_enc_result(&b, (proto_raw_t){0}, (proto_raw_t){0}), 0);
    decode_ok(&b, PROTO_RESULT);
    assert_int_equal(msg.output.p[0], 0xc0);
    assert_int_equal(msg.id.p[0], 0xc0);

    assert_int_equal(proto_enc_error(&b, (proto_raw_t){0}, "timeout", "too slow"), 0);
    decode_ok(&b, PROTO_ERROR);
    assert_true(proto_str_eq(msg.code, "timeout"));
    assert_true(proto_str_eq(msg.message, "too slow"));
    assert_int_equal(msg.id.p[0], 0xc0);

    /* The bus copy: the same reply with more entries packed after it by the caller. */
    proto_reply_t r = {.type = PROTO_EVENT, .id = id, .seq = 4, .payload = in};
    assert_int_equal(proto_enc_reply(&b, &r, 1), 0);
    proto_pack_cstr(&b, "agent");
    proto_pack_cstr(&b, "echo");
    decode_ok(&b, PROTO_EVENT);
    assert_int_equal(msg.seq, 4);
    assert_int_equal(msg.body.n, b.n); /* one map of 4 entries, all read */
    /* a publish on the bus is an event without `event`: one valid map, {v, type, topic, data} */
    assert_int_equal(proto_enc_bus_publish(&b, proto_str_of("news"), (proto_raw_t){0}), 0);
    assert_int_equal(proto_validate(b.p, b.n, NULL, NULL), 0);
    assert_int_equal(b.p[0], 0x84);
    assert_int_equal(b.p[b.n - 1], 0xc0); /* data: nil */

    proto_buf_free(&b);
}

static void test_every_worker_encoder_round_trips(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_raw_t in = {B(0x92, 1, 0xa1, 'z'), 4};
    const char *agents[] = {"echo", "sleep", "fanout"};

    assert_int_equal(proto_enc_ready(&b, proto_str_of("w1"), 16, agents, 3, 1000), 0);
    decode_ok(&b, PROTO_READY);
    assert_true(proto_str_eq(msg.name, "w1"));
    assert_int_equal(msg.capacity, 16);
    assert_int_equal(msg.heartbeat_ms, 1000);
    size_t cur = 0;
    proto_str_t name;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proto_agents_next(msg.agents, &cur, &name), 1);
        assert_true(proto_str_eq(name, agents[i]));
    }
    assert_int_equal(proto_agents_next(msg.agents, &cur, &name), 0);
    assert_int_equal(proto_enc_ready(&b, proto_str_of("w2"), 1, NULL, 0, 0), 0);
    decode_ok(&b, PROTO_READY);
    assert_int_equal(msg.heartbeat_ms, 0);
    cur = 0;
    assert_int_equal(proto_agents_next(msg.agents, &cur, &name), 0);

    assert_int_equal(proto_enc_work(&b, 1ull << 40, proto_str_of("sleep"), in,
                                    proto_str_of("s"), 5, 2), 0);
    decode_ok(&b, PROTO_WORK);
    assert_true(msg.has_job);
    assert_int_equal(msg.job, 1ull << 40);
    assert_true(proto_str_eq(msg.agent, "sleep"));
    assert_memory_equal(msg.input.p, in.p, in.n);
    assert_true(proto_str_eq(msg.session, "s"));
    assert_int_equal(msg.timeout_ms, 5);
    assert_int_equal(msg.attempt, 2);
    assert_int_equal(proto_enc_work(&b, 9, proto_str_of("echo"), (proto_raw_t){0},
                                    (proto_str_t){0}, -1, 1), 0);
    decode_ok(&b, PROTO_WORK);
    assert_int_equal(msg.input.p[0], 0xc0);
    assert_int_equal(msg.timeout_ms, -1);

    assert_int_equal(proto_enc_job_event(&b, 9, in), 0);
    decode_ok(&b, PROTO_EVENT);
    assert_true(msg.has_job);
    assert_int_equal(msg.job, 9);
    assert_int_equal(msg.id.n, 0);
    assert_int_equal(proto_enc_job_result(&b, 9, in), 0);
    decode_ok(&b, PROTO_RESULT);
    assert_int_equal(msg.job, 9);
    assert_memory_equal(msg.output.p, in.p, in.n);
    assert_int_equal(proto_enc_job_error(&b, 9, "cancelled", "by client"), 0);
    decode_ok(&b, PROTO_ERROR);
    assert_true(proto_str_eq(msg.code, "cancelled"));
    assert_int_equal(proto_enc_cancel_job(&b, 9), 0);
    decode_ok(&b, PROTO_CANCEL);
    assert_true(msg.has_job);
    assert_int_equal(msg.job, 9);
    assert_int_equal(proto_enc_credit(&b, 4), 0);
    decode_ok(&b, PROTO_CREDIT);
    assert_int_equal(msg.capacity, 4);
    assert_int_equal(proto_enc_simple(&b, PROTO_HEARTBEAT), 0);
    decode_ok(&b, PROTO_HEARTBEAT);
    assert_int_equal(proto_enc_simple(&b, PROTO_DISCONNECT), 0);
    decode_ok(&b, PROTO_DISCONNECT);
    proto_buf_free(&b);
}

/* ---- session requests (PROTOCOL.md, "Sessions") ---- */

static void test_session_encoders_round_trip(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    proto_raw_t id = {B(0xa2, 'g', '1'), 3};
    assert_int_equal(proto_enc_session_get(&b, id, proto_str_of("s1"), proto_str_of("app"),
                                           proto_str_of("bob"), 30), 0);
    decode_ok(&b, PROTO_SESSION_GET);
    assert_memory_equal(msg.id.p, id.p, 3);
    assert_true(proto_str_eq(msg.session, "s1"));
    assert_true(proto_str_eq(msg.app, "app"));
    assert_true(proto_str_eq(msg.user, "bob"));
    assert_true(msg.has_events);
    assert_int_equal(msg.events, 30);
    assert_int_equal(proto_enc_session_get(&b, id, proto_str_of("s1"), (proto_str_t){0},
                                           (proto_str_t){0}, -1), 0);
    decode_ok(&b, PROTO_SESSION_GET);
    assert_false(msg.has_events);
    assert_int_equal(msg.app.n, 0);
    assert_int_equal(msg.user.n, 0);
    assert_int_equal(proto_enc_session_get(&b, id, proto_str_of("s1"), (proto_str_t){0},
                                           (proto_str_t){0}, 0), 0);
    decode_ok(&b, PROTO_SESSION_GET);
    assert_true(msg.has_events);
    assert_int_equal(msg.events, 0);

    assert_int_equal(proto_enc_session_list(&b, id, proto_str_of("app"), proto_str_of("bob"),
                                            proto_str_of("s1"), 50), 0);
    decode_ok(&b, PROTO_SESSION_LIST);
    assert_true(proto_str_eq(msg.app, "app"));
    assert_true(proto_str_eq(msg.user, "bob"));
    assert_true(proto_str_eq(msg.after, "s1"));
    assert_int_equal(msg.limit, 50);
    assert_int_equal(proto_enc_session_list(&b, id, (proto_str_t){0}, (proto_str_t){0},
                                            (proto_str_t){0}, 0), 0);
    decode_ok(&b, PROTO_SESSION_LIST);
    assert_int_equal(msg.limit, 0);
    assert_int_equal(msg.after.n, 0);

    assert_int_equal(proto_enc_session_delete(&b, id, proto_str_of("s9")), 0);
    decode_ok(&b, PROTO_SESSION_DELETE);
    assert_true(proto_str_eq(msg.session, "s9"));
    assert_string_equal(proto_type_name(PROTO_SESSION_LIST), "session.list");
    proto_buf_free(&b);
}

#define TGET T(11, 's', 'e', 's', 's', 'i', 'o', 'n', '.', 'g', 'e', 't')
#define TLIST T(12, 's', 'e', 's', 's', 'i', 'o', 'n', '.', 'l', 'i', 's', 't')
#define TDEL T(14, 's', 'e', 's', 's', 'i', 'o', 'n', '.', 'd', 'e', 'l', 'e', 't', 'e')

static void test_decode_checks_session_request_fields(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TGET, KV("id", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'session' is missing");
    assert_int_equal(DECODE(V1, TGET, KV("session", 0xa1, 's')), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'id' is missing");
    assert_int_equal(DECODE(V1, TGET, KV("id", 1), KV("session", 7)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'session' must be a string");
    assert_int_equal(DECODE(V1, TGET, KV("id", 1), KV("session", 0xa1, 's'),
                            KV("events", 0xff)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'events' must be a non-negative integer");
    assert_int_equal(DECODE(V1, TGET, KV("id", 1), KV("session", 0xa1, 's'),
                            KV("app", 0xc0), KV("events", 0xc0)), 0); /* nil: absent */
    assert_false(msg.has_events);
    assert_int_equal(DECODE(V1, TLIST, KV("id", 1), KV("limit", 0)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'limit' must be a positive integer");
    assert_int_equal(DECODE(V1, TLIST, KV("id", 1), KV("after", 0x90)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'after' must be a string");
    assert_int_equal(DECODE(V1, TLIST, KV("id", 1), KV("user", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'user' must be a string");
    assert_int_equal(DECODE(V1, TLIST, KV("id", 1)), 0);
    assert_int_equal(msg.type, PROTO_SESSION_LIST);
    assert_int_equal(DECODE(V1, TDEL, KV("id", 1)), PROTO_EBAD);
    assert_string_equal(last_err.message, "field 'session' is missing");
    assert_int_equal(DECODE(V1, TDEL, KV("id", 1), KV("session", 0xa1, 'x'),
                            KV("app", 0xa1, 'y')), 0); /* not a field of delete: ignored */
    assert_int_equal(msg.app.n, 0);
}

static void test_map_next_walks_entries_verbatim(void **state) {
    (void)state;
    /* {"a": [1, 2], 3: nil, "b": {"c": true}} */
    static const uint8_t m[] = {0x83, 0xa1, 'a', 0x92, 1, 2, 3, 0xc0, 0xa1, 'b', 0x81, 0xa1, 'c',
                                0xc3};
    proto_raw_t map = {m, sizeof m}, k, v;
    size_t cur = 0;
    proto_str_t s;
    assert_int_equal(proto_map_next(map, &cur, &k, &v), 1);
    assert_true(proto_raw_str(k, &s) && proto_str_eq(s, "a"));
    assert_int_equal(v.n, 3);
    assert_memory_equal(v.p, B(0x92, 1, 2), 3);
    assert_int_equal(proto_map_next(map, &cur, &k, &v), 1);
    assert_false(proto_raw_str(k, &s));
    assert_true(proto_raw_is_nil(v));
    assert_int_equal(proto_map_next(map, &cur, &k, &v), 1);
    assert_int_equal(v.n, 4);
    assert_int_equal(proto_map_next(map, &cur, &k, &v), 0);
    assert_int_equal(proto_map_next(map, &cur, &k, &v), 0);
    cur = 0;
    assert_int_equal(proto_map_next((proto_raw_t){B(0x80), 1}, &cur, &k, &v), 0);
    cur = 0;
    assert_int_equal(proto_map_next((proto_raw_t){B(0x91, 1), 2}, &cur, &k, &v), PROTO_EBAD);
    cur = 0; /* a key without its value */
    assert_int_equal(proto_map_next((proto_raw_t){B(0x81, 0xa1, 'k'), 3}, &cur, &k, &v),
                     PROTO_EBAD);
    assert_false(proto_raw_str((proto_raw_t){NULL, 0}, &s));
    assert_false(proto_raw_is_nil((proto_raw_t){B(0xc2), 1}));
}

static void test_result_begin_takes_the_output_packed_after(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    assert_int_equal(proto_enc_result_begin(&b, (proto_raw_t){B(5), 1}), 0);
    msgpack_pack_map(&b.pk, 1);
    proto_pack_cstr(&b, "deleted");
    msgpack_pack_true(&b.pk);
    decode_ok(&b, PROTO_RESULT);
    assert_int_equal(msg.id.p[0], 5);
    assert_int_equal(msg.output.n, 10);
    assert_memory_equal(msg.output.p, B(0x81, 0xa7, 'd', 'e', 'l', 'e', 't', 'e', 'd', 0xc3), 10);
    proto_buf_free(&b);
}

static void test_agents_next_rejects_non_strings(void **state) {
    (void)state;
    size_t cur = 0;
    proto_str_t name;
    proto_raw_t bad = {B(0x92, 0xa1, 'a', 1), 4};
    assert_int_equal(proto_agents_next(bad, &cur, &name), 1);
    assert_int_equal(proto_agents_next(bad, &cur, &name), PROTO_EBAD);
    cur = 0;
    assert_int_equal(proto_agents_next((proto_raw_t){B(0xa1, 'a'), 2}, &cur, &name), PROTO_EBAD);
}

static void test_type_names(void **state) {
    (void)state;
    assert_string_equal(proto_type_name(PROTO_QUERY), "query");
    assert_string_equal(proto_type_name(PROTO_DISCONNECT), "disconnect");
    assert_string_equal(proto_type_name(PROTO_UNKNOWN), "unknown");
    assert_string_equal(proto_type_name((proto_type_t)99), "unknown");
}

static void test_buf_grows_and_resets(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    char big[5000];
    memset(big, 'x', sizeof big);
    proto_pack_str(&b, big, sizeof big);
    assert_int_equal(b.n, 3 + sizeof big);
    assert_false(b.failed);
    size_t cap = b.cap;
    proto_buf_reset(&b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.cap, cap);
    proto_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);
}

/* ---- JSON ---- */

static proto_buf_t jb;

/* JSON text -> msgpack into tb (reset first); returns the code. */
static int j2m(const char *json) {
    proto_buf_reset(&tb);
    memset(&last_err, 0, sizeof last_err);
    return proto_json_to_msgpack(json, strlen(json), &tb, &last_err);
}

/* msgpack -> JSON into jb (reset first); returns jb's text. */
static const char *m2j(const uint8_t *p, size_t n) {
    proto_buf_reset(&jb);
    assert_int_equal(proto_raw_to_json((proto_raw_t){p, n}, &jb), 0);
    assert_int_equal(strlen((const char *)jb.p), jb.n);
    return (const char *)jb.p;
}
#define M2J(...) m2j(B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}))

static void assert_packs(const char *json, const uint8_t *want, size_t n) {
    assert_int_equal(j2m(json), 0);
    assert_int_equal(tb.n, n);
    assert_memory_equal(tb.p, want, n);
}
#define PACKS(json, ...) assert_packs(json, B(__VA_ARGS__), sizeof((const uint8_t[]){__VA_ARGS__}))

static void test_json_round_trip(void **state) {
    (void)state;
    const char *texts[] = {
        "{\"a\":[1,-2,true,false,null,\"x\\\"y\\\\z\\n\"],\"b\":{\"c\":1.5,\"d\":[]},\"e\":{}}",
        "[18446744073709551615,-9223372036854775808,0,-1,127,128,255,256,65536]",
        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
        "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
        "0.25",
        "-1.5e-07",
        "[0.1,3.141592653589793,1e+300]",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_int_equal(j2m(texts[i]), 0);
        assert_int_equal(proto_validate(tb.p, tb.n, NULL, &last_err), 0);
        assert_string_equal(m2j(tb.p, tb.n), texts[i]);
    }
    /* and msgpack -> JSON -> msgpack gives the same bytes back */
    proto_buf_t orig;
    proto_buf_init(&orig);
    msgpack_pack_map(&orig.pk, 2);
    proto_pack_cstr(&orig, "list");
    msgpack_pack_array(&orig.pk, 20);
    for (int i = 0; i < 20; i++) msgpack_pack_int(&orig.pk, i * 1000 - 5000);
    proto_pack_cstr(&orig, "s");
    proto_pack_cstr(&orig, "tab\there");
    m2j(orig.p, orig.n);
    assert_int_equal(j2m((const char *)jb.p), 0);
    assert_int_equal(tb.n, orig.n);
    assert_memory_equal(tb.p, orig.p, orig.n);
    proto_buf_free(&orig);
}

static void test_json_packs_shortest_msgpack(void **state) {
    (void)state;
    PACKS("[]", 0x90);
    PACKS("{}", 0x80);
    PACKS("{\"a\":null}", 0x81, 0xa1, 'a', 0xc0);
    PACKS("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", 0x9f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
          13, 14, 15);
    PACKS("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]", 0xdc, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          0, 0, 0, 0);
    PACKS("[[1],{\"k\":[]}]", 0x92, 0x91, 1, 0x81, 0xa1, 'k', 0x90);
    PACKS("-1", 0xff);
    PACKS("300", 0xcd, 0x01, 0x2c);
    PACKS("18446744073709551615", 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    PACKS("-9223372036854775808", 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
    PACKS("1.5", 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
    PACKS("1e2", 100);        /* integral values become integers */
    PACKS("2.0", 2);
    PACKS("18446744073709551616", 0xcb, 0x43, 0xf0, 0, 0, 0, 0, 0, 0); /* 2^64: a double */
    PACKS(" \t\r\n true \n", 0xc3);
    PACKS("false", 0xc2);
}

static void test_json_decodes_escapes_and_surrogate_pairs(void **state) {
    (void)state;
    PACKS("\"\\u00e9\\ud83d\\ude00\"", 0xa6, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80);
    PACKS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0xa8, '"', '\\', '/', '\b', '\f', '\n', '\r', '\t');
    PACKS("\"\\u0041\\u20AC\"", 0xa4, 'A', 0xe2, 0x82, 0xac);
    assert_int_equal(j2m("\"\\ud83d\""), PROTO_EBAD);
    assert_string_equal(last_err.message,
                        "JSON: high surrogate without a low one at offset 7 ('\"')");
    assert_int_equal(j2m("\"\\ude00\""), PROTO_EBAD);
    assert_int_equal(j2m("\"\\u12g4\""), PROTO_EBAD);
    assert_int_equal(j2m("\"\\x\""), PROTO_EBAD);
}

static void test_json_rejects_malformed_text_naming_offset(void **state) {
    (void)state;
    assert_int_equal(j2m("{\"a\":}"), PROTO_EBAD);
    assert_string_equal(last_err.code, "bad_request");
    assert_string_equal(last_err.message, "JSON: unexpected character at offset 5 ('}')");
    assert_int_equal(j2m("[1,2,]"), PROTO_EBAD);
    assert_int_equal(j2m("[1 2]"), PROTO_EBAD);
    assert_string_equal(last_err.message, "JSON: expected ',' or ']' at offset 3 ('2')");
    assert_int_equal(j2m("{1:2}"), PROTO_EBAD);
    assert_int_equal(j2m("{\"a\" 2}"), PROTO_EBAD);
    assert_int_equal(j2m("01"), PROTO_EBAD);
    assert_string_equal(last_err.message, "JSON: trailing text after the value at offset 1 ('1')");
    assert_int_equal(j2m("1."), PROTO_EBAD);
    assert_int_equal(j2m("-"), PROTO_EBAD);
    assert_int_equal(j2m("1e"), PROTO_EBAD);
    assert_int_equal(j2m("1e400"), PROTO_EBAD);
    assert_string_equal(last_err.message, "JSON: number out of range at offset 0 ('1')");
    assert_int_equal(j2m("\"abc"), PROTO_EBAD);
    assert_string_equal(last_err.message, "JSON: unterminated string at offset 4 (end of text)");
    assert_int_equal(j2m("\"a\nb\""), PROTO_EBAD);
    assert_int_equal(j2m("\"\xff\""), PROTO_EBAD);
    assert_string_equal(last_err.message, "JSON: invalid UTF-8 at offset 1 (byte 0xff)");
    assert_int_equal(j2m("\"\xc0\x80\""), PROTO_EBAD); /* overlong NUL */
    assert_int_equal(j2m(""), PROTO_EBAD);
    assert_int_equal(j2m("   "), PROTO_EBAD);
    assert_int_equal(j2m("nul"), PROTO_EBAD);
    assert_int_equal(j2m("truex"), PROTO_EBAD);
    assert_int_equal(j2m("1 2"), PROTO_EBAD);
    assert_int_equal(j2m("NaN"), PROTO_EBAD);
    assert_int_equal(tb.n, 0); /* a failed parse leaves nothing behind */
}

static void test_json_nesting_is_bounded(void **state) {
    (void)state;
    char deep[2 * PROTO_MAX_DEPTH + 3];
    size_t d = PROTO_MAX_DEPTH;
    memset(deep, '[', d);
    memset(deep + d, ']', d);
    deep[2 * d] = 0;
    assert_int_equal(j2m(deep), 0);
    memset(deep, '[', d + 1);
    memset(deep + d + 1, ']', d + 1);
    deep[2 * d + 2] = 0;
    assert_int_equal(j2m(deep), PROTO_EBAD);
    assert_non_null(strstr(last_err.message, "nesting too deep at offset 128"));
}

static void test_json_appends_to_the_buffer(void **state) {
    (void)state;
    proto_buf_reset(&tb);
    proto_pack_header(&tb, PROTO_QUERY, 3);
    proto_pack_cstr(&tb, "id");
    msgpack_pack_int(&tb.pk, 1);
    proto_pack_cstr(&tb, "agent");
    proto_pack_cstr(&tb, "echo");
    proto_pack_cstr(&tb, "input");
    const char *in = "{\"x\":[1,\"two\"]}";
    assert_int_equal(proto_json_to_msgpack(in, strlen(in), &tb, NULL), 0);
    assert_int_equal(proto_decode(tb.p, tb.n, NULL, &msg, &last_err), 0);
    assert_string_equal(M2J(0x91, 0xc0), "[null]");
    assert_string_equal(m2j(msg.input.p, msg.input.n), in);
    proto_buf_reset(&jb);
    proto_buf_raw(&jb, (proto_raw_t){(const uint8_t *)"x=", 2});
    assert_int_equal(proto_raw_to_json(msg.id, &jb), 0);
    assert_string_equal((const char *)jb.p, "x=1");
}

static void test_raw_to_json_renders_every_kind(void **state) {
    (void)state;
    assert_string_equal(M2J(0xc4, 3, 1, 2, 3), "\"AQID\"");        /* bin as base64 */
    assert_string_equal(M2J(0xc4, 1, 0xff), "\"/w==\"");
    assert_string_equal(M2J(0xc4, 0), "\"\"");
    assert_string_equal(M2J(0xd5, 0xff, 0xfb, 0xf0), "{\"ext\":-1,\"base64\":\"+/A=\"}");
    assert_string_equal(M2J(0x82, 1, 2, 0x92, 1, 2, 3), "{\"1\":2,\"[1,2]\":3}");
    assert_string_equal(M2J(0x81, 0xa1, '"', 0xc0), "{\"\\\"\":null}");
    assert_string_equal(M2J(0x81, 0xa1, '"', 0xc0), "{\"\\\"\":null}");
    assert_string_equal(M2J(0x81, 0x81, 0xa1, 'k', 1, 0), "{\"{\\\"k\\\":1}\":0}");
    assert_string_equal(M2J(0xa3, 1, 0x7f, '\n'), "\"\\u0001\x7f\\n\"");
    assert_string_equal(M2J(0xa3, 'a', 0xff, 'b'), "\"a\\ufffdb\"");   /* not UTF-8 */
    assert_string_equal(M2J(0xa2, 0xed, 0xa0), "\"\\ufffd\\ufffd\"");  /* cut / surrogate */
    assert_string_equal(M2J(0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), "null"); /* NaN */
    assert_string_equal(M2J(0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), "null"); /* infinity */
    assert_string_equal(M2J(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), "1.0");
    assert_string_equal(M2J(0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a),
                        "0.1"); /* shortest text that reads back the same double */
    assert_string_equal(M2J(0xcb, 0x3f, 0xd5, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55),
                        "0.3333333333333333");
    assert_string_equal(M2J(0xca, 0x3f, 0xc0, 0, 0), "1.5");
    assert_string_equal(M2J(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), "-9223372036854775808");
    assert_string_equal(M2J(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
                        "18446744073709551615");
    assert_string_equal(M2J(0xd0, 0x05), "5");
}

static void test_raw_to_json_rejects_invalid_msgpack(void **state) {
    (void)state;
    proto_buf_reset(&jb);
    proto_buf_raw(&jb, (proto_raw_t){(const uint8_t *)"keep", 4});
    assert_int_equal(proto_raw_to_json((proto_raw_t){B(0x92, 1), 2}, &jb), PROTO_EBAD);
    assert_int_equal(proto_raw_to_json((proto_raw_t){B(0xc0, 0xc0), 2}, &jb), PROTO_EBAD);
    assert_int_equal(proto_raw_to_json((proto_raw_t){B(0xdd, 0xff, 0xff, 0xff, 0xff), 5}, &jb),
                     PROTO_EBAD);
    assert_int_equal(proto_raw_to_json((proto_raw_t){NULL, 0}, &jb), PROTO_EBAD);
    assert_int_equal(jb.n, 4);
    uint8_t deep[PROTO_MAX_DEPTH + 2];
    memset(deep, 0x91, sizeof deep);
    deep[PROTO_MAX_DEPTH + 1] = 0xc0;
    assert_int_equal(proto_raw_to_json((proto_raw_t){deep, sizeof deep}, &jb), PROTO_EBAD);
    assert_int_equal(proto_raw_to_json((proto_raw_t){deep + 1, sizeof deep - 1}, &jb), 0);
}

/* Each non-string key holding a non-string key escapes the inner text again (doubling its
 * backslashes): the nesting is capped so a small input cannot blow up the output. */
static void test_raw_to_json_caps_keys_nested_in_keys(void **state) {
    (void)state;
    uint8_t keys[16];
    for (size_t depth = 1; depth <= 6; depth++) {
        size_t n = 0;
        for (size_t i = 0; i < depth; i++) keys[n++] = 0x81; /* {{{...: 0}: 0}: 0} */
        keys[n++] = 0xa1, keys[n++] = '"';
        for (size_t i = 0; i < depth; i++) keys[n++] = 0;
        proto_buf_reset(&jb);
        int rc = proto_raw_to_json((proto_raw_t){keys, n}, &jb);
        assert_int_equal(rc, depth <= 5 ? 0 : PROTO_EBAD);
    }
    assert_string_equal(M2J(0x81, 0x81, 0xa1, '"', 1, 2), "{\"{\\\"\\\\\\\"\\\":1}\":2}");
}

static int setup_json(void **state) {
    proto_buf_init(&jb);
    return setup_buf(state);
}

static int teardown_json(void **state) {
    proto_buf_free(&jb);
    return teardown_buf(state);
}

/* A length no allocator can give stands in for a failing malloc: the buffer marks itself
 * failed, drops later writes, and the encoder or parser reports PROTO_ENOMEM. */
static void test_allocation_failure_is_reported(void **state) {
    (void)state;
    static const uint8_t byte = 0xc0;
    proto_raw_t huge = {&byte, SIZE_MAX - 8};
    proto_buf_t b;
    proto_buf_init(&b);
    proto_buf_raw(&b, huge);
    assert_true(b.failed);
    assert_int_equal(b.n, 0);
    msgpack_pack_nil(&b.pk); /* dropped */
    assert_int_equal(b.n, 0);
    assert_int_equal(proto_enc_query(&b, (proto_raw_t){B(1), 1}, proto_str_of("echo"), huge,
                                     (proto_str_t){0}, -1, false), PROTO_ENOMEM);
    assert_int_equal(proto_enc_result(&b, (proto_raw_t){B(1), 1}, huge), PROTO_ENOMEM);
    assert_int_equal(proto_enc_result(&b, (proto_raw_t){B(1), 1}, (proto_raw_t){B(2), 1}), 0);
    assert_false(b.failed); /* every encoder starts afresh */
    proto_buf_raw(&b, huge);
    assert_int_equal(proto_json_to_msgpack("[1]", 3, &b, &last_err), PROTO_ENOMEM);
    assert_int_equal(proto_raw_to_json((proto_raw_t){B(1), 1}, &b), PROTO_ENOMEM);
    proto_buf_free(&b);
}

#define PT(t) cmocka_unit_test_setup_teardown(t, setup_buf, teardown_buf)
#define JT(t) cmocka_unit_test_setup_teardown(t, setup_json, teardown_json)

int main(void) {
    const struct CMUnitTest tests[] = {
        PT(test_validate_accepts_every_scalar_format),
        PT(test_validate_accepts_every_string_and_binary_format),
        PT(test_validate_accepts_every_container_format),
        PT(test_validate_rejects_length_past_end),
        PT(test_validate_rejects_truncated_headers),
        PT(test_validate_rejects_never_used_byte),
        PT(test_validate_rejects_huge_array_count_without_allocating),
        PT(test_validate_rejects_deep_nesting),
        PT(test_validate_rejects_trailing_bytes),
        PT(test_validate_enforces_size_and_element_limits),
        PT(test_decode_reads_a_query),
        PT(test_decode_gives_defaults_for_absent_optional_fields),
        PT(test_decode_rejects_unknown_version_must),
        PT(test_decode_keeps_a_readable_id_when_it_fails),
        PT(test_decode_requires_integer_version),
        PT(test_decode_requires_known_type),
        PT(test_decode_rejects_non_map_message),
        PT(test_decode_requires_agent_for_query),
        PT(test_decode_requires_id_for_query),
        PT(test_decode_checks_query_field_types),
        PT(test_decode_rejects_oversized_id),
        PT(test_decode_rejects_long_agent_name),
        PT(test_decode_ignores_unknown_fields_must),
        PT(test_decode_keeps_origin_and_held_for_adoption),
        PT(test_decode_matches_field_names_exactly),
        PT(test_map_grow_counts_all_fields_or_none),
        PT(test_decode_rejects_duplicate_fields),
        PT(test_decode_requires_fields_of_every_type),
        PT(test_decode_keeps_nil_reply_id),
        PT(test_every_encoder_round_trips),
        PT(test_every_worker_encoder_round_trips),
        PT(test_session_encoders_round_trip),
        PT(test_decode_checks_session_request_fields),
        PT(test_map_next_walks_entries_verbatim),
        PT(test_result_begin_takes_the_output_packed_after),
        PT(test_agents_next_rejects_non_strings),
        PT(test_type_names),
        PT(test_buf_grows_and_resets),
        PT(test_allocation_failure_is_reported),
        JT(test_json_round_trip),
        JT(test_json_packs_shortest_msgpack),
        JT(test_json_decodes_escapes_and_surrogate_pairs),
        JT(test_json_rejects_malformed_text_naming_offset),
        JT(test_json_nesting_is_bounded),
        JT(test_json_appends_to_the_buffer),
        JT(test_raw_to_json_renders_every_kind),
        JT(test_raw_to_json_rejects_invalid_msgpack),
        JT(test_raw_to_json_caps_keys_nested_in_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
