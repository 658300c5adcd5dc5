/* test_proto_decode.c: proto_decode's one walk. Validation and decoding share one pass over
 * the bytes (proto/src/decode.c collect(), with validate.c's walker), so these pin down what
 * that pass must keep from "validate the whole message, then decode it": a field read early
 * does not let a message through whose later bytes are bad; a value nested deep, or in a
 * field nobody reads, is still checked; the limits apply at the same depths; a validation
 * error anywhere wins over what the fields say; and every field and type name is found. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "proto/proto.h"

#include "kvpack.h"

static proto_msg_t msg;
static proto_error_t err;

static int decode_lim(const proto_limits_t *lim) {
    memset(&err, 0, sizeof err);
    memset(&msg, 0x5a, sizeof msg); /* whatever was there must not survive a decode */
    return proto_decode(tb.p, tb.n, lim, &msg, &err);
}

#define DECODE(...) (PACK(__VA_ARGS__), decode_lim(NULL))

/* A failed decode leaves nothing of what it read: a zeroed message but for timeout_ms. */
static void assert_msg_cleared(void) {
    assert_int_equal(msg.type, PROTO_UNKNOWN);
    assert_int_equal(msg.id.n, 0);
    assert_int_equal(msg.agent.n, 0);
    assert_int_equal(msg.input.n, 0);
    assert_int_equal(msg.body.n, 0);
    assert_int_equal(msg.timeout_ms, -1);
}

static void assert_err(int rc, int want_rc, const char *code, const char *message) {
    assert_int_equal(rc, want_rc);
    assert_string_equal(err.code, code);
    assert_string_equal(err.message, message);
}

/* The fields before the bad one were read and were fine; the message is still refused whole,
 * with the validator's error, and nothing read survives (not even the id: the bytes are not
 * one well-formed map). */
static void test_a_later_invalid_field_rejects_the_message(void **state) {
    (void)state;
    char want[120];
    /* the byte 0xc1 (never used) as the value of the last field */
    int rc = DECODE(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("session", 0xc1));
    snprintf(want, sizeof want, "invalid msgpack byte 0xc1 at offset %zu", tb.n - 1);
    assert_err(rc, PROTO_EBAD, "bad_request", want);
    assert_msg_cleared();
    /* a string whose length runs past the end, after every REQUIRED field */
    rc = DECODE(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("input", 0xd9, 10, 'a', 'b'));
    snprintf(want, sizeof want, "str8 at offset %zu declares 10 bytes, more than the 4 that "
             "remain", tb.n - 4);
    assert_err(rc, PROTO_EBAD, "bad_request", want);
    assert_msg_cleared();
    /* a value over a limit, after a field that was stored */
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_elems = 2;
    PACK(V1, TQUERY, KV("id", 7), KV("agent", 0xa4, 'e', 'c', 'h', 'o'));
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large",
               "fixmap at offset 0 has 4 elements (limit 2)");
    PACK(KV("v", 1), KV("input", 0x93, 1, 2, 3));
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large",
               "fixarray at offset 10 has 3 elements (limit 2)");
    /* the map declares more entries than there are: the walk runs off the end */
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0x83, 0xa1, 'v', 1, 0xa2, 'i', 'd', 7), 8});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", "msgpack ends early at offset 8");
    assert_msg_cleared();
    /* trailing bytes after a good message */
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO);
    size_t n = tb.n;
    proto_buf_raw(&tb, (proto_raw_t){B(0xc0), 1});
    snprintf(want, sizeof want, "1 trailing bytes after the object, at offset %zu", n);
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", want);
    assert_msg_cleared();
}

/* `input` is kept verbatim, never decoded: its inside is still validated, limits included,
 * at the depth it has in the message (the top-level map is depth 1). */
static void test_input_is_validated_at_depth(void **state) {
    (void)state;
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_depth = 4;
    /* map(1) > input [ (2) { (3) "k": [ (4) 1 ] } ]: exactly at the limit */
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO,
         KV("input", 0x91, 0x81, 0xa1, 'k', 0x91, 1));
    assert_int_equal(decode_lim(&lim), 0);
    assert_int_equal(msg.input.n, 6);
    assert_memory_equal(msg.input.p, B(0x91, 0x81, 0xa1, 'k', 0x91, 1), 6);
    /* one level more: refused, naming the container and where it is */
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO,
         KV("input", 0x91, 0x81, 0xa1, 'k', 0x91, 0x90));
    size_t at = tb.n - 1;
    char want[120];
    snprintf(want, sizeof want, "fixarray at offset %zu nests deeper than 4", at);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large", want);
    assert_msg_cleared();
    /* a bad byte three levels down, with a field after it */
    int rc = DECODE(V1, TQUERY, KV("id", 7), KV("input", 0x91, 0x81, 0xa1, 'k', 0x92, 1, 0xc1),
                    AGENT_ECHO);
    snprintf(want, sizeof want, "invalid msgpack byte 0xc1 at offset %zu",
             tb.n - 11 /* "agent" "echo" */ - 1);
    assert_err(rc, PROTO_EBAD, "bad_request", want);
    /* max_depth 1: the top-level map is all there may be */
    lim.max_depth = 1;
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("input", 5));
    assert_int_equal(decode_lim(&lim), 0);
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("input", 0x90));
    snprintf(want, sizeof want, "fixarray at offset %zu nests deeper than 1", tb.n - 1);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large", want);
    lim.max_depth = 0;
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large",
               "fixmap at offset 0 nests deeper than 0");
}

/* Unknown fields are skipped (forward compatibility) but validated like any other value. */
static void test_unknown_fields_are_skipped_but_validated(void **state) {
    (void)state;
    /* every kind of value under unknown names, before, between and after the known ones */
    assert_int_equal(DECODE(KV("x-map", 0x82, 0xa1, 'a', 0x91, 0xc0, 0x92, 1, 2, 0xc3),
                            V1, KV("x-bin", 0xc4, 2, 0, 1), TQUERY,
                            KV("x-ext", 0xd4, 5, 9), KV("id", 7),
                            KV("x-str16", 0xda, 0, 1, 'z'), AGENT_ECHO,
                            KV("x-float", 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
                            KV("x-deep", 0x91, 0x91, 0x91, 0x90)),
                     0);
    assert_int_equal(msg.type, PROTO_QUERY);
    assert_true(proto_str_eq(msg.agent, "echo"));
    assert_int_equal(msg.id.p[0], 7);
    assert_int_equal(msg.input.n, 1); /* absent: nil */
    /* an unknown field with a bad value, even after all known fields decoded */
    char want[120];
    int rc = DECODE(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("x-later", 0x92, 1, 0xc1));
    snprintf(want, sizeof want, "invalid msgpack byte 0xc1 at offset %zu", tb.n - 1);
    assert_err(rc, PROTO_EBAD, "bad_request", want);
    assert_msg_cleared();
    /* and over a limit */
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_depth = 2;
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("x-deep", 0x91, 0x91, 1));
    snprintf(want, sizeof want, "fixarray at offset %zu nests deeper than 2", tb.n - 2);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large", want);
    /* unknown names may repeat: only a known field given twice is an error */
    assert_int_equal(DECODE(V1, TQUERY, KV("x", 1), KV("id", 7), KV("x", 2), AGENT_ECHO), 0);
}

/* Keys need not be fixstrs: a str8 key names its field like a fixstr, and a container key
 * is no field but is validated like a value. */
static void test_keys_of_every_form(void **state) {
    (void)state;
    proto_buf_reset(&tb);
    msgpack_pack_map(&tb.pk, 5);
    proto_buf_raw(&tb, (proto_raw_t){B(0xa1, 'v', 1), 3});
    proto_buf_raw(&tb, (proto_raw_t){B(0xd9, 4, 't', 'y', 'p', 'e', 0xa5, 'q', 'u', 'e', 'r',
                                       'y'), 12});
    proto_buf_raw(&tb, (proto_raw_t){B(0xda, 0, 2, 'i', 'd', 9), 6});
    proto_buf_raw(&tb, (proto_raw_t){B(0x92, 0xa1, 'k', 0x81, 1, 2, 0xc0), 7}); /* [..]: nil */
    proto_buf_raw(&tb, (proto_raw_t){B(0xa5, 'a', 'g', 'e', 'n', 't', 0xa1, 'e'), 8});
    assert_int_equal(decode_lim(NULL), 0);
    assert_int_equal(msg.type, PROTO_QUERY);
    assert_int_equal(msg.id.n, 1);
    assert_int_equal(msg.id.p[0], 9);
    assert_true(proto_str_eq(msg.agent, "e"));
    /* a str8 key is a field like any other: twice is twice */
    proto_buf_raw(&tb, (proto_raw_t){B(0xd9, 5, 'a', 'g', 'e', 'n', 't', 0xa1, 'f'), 9});
    tb.p[0] = 0x86;
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", "field 'agent' appears twice");
    /* a container key with a bad byte inside */
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0x82, 0xa1, 'v', 1, 0x91, 0xc1, 0xc0), 7});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request",
               "invalid msgpack byte 0xc1 at offset 5");
    /* a key cut short */
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0x82, 0xa1, 'v', 1, 0xa5, 'a', 'g'), 7});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request",
               "fixstr at offset 4 declares 5 bytes, more than the 3 that remain");
}

/* The order of errors is that of validating first: a bad byte anywhere wins over a field
 * given twice before it, and over a message that is not a map. */
static void test_validation_errors_come_first(void **state) {
    (void)state;
    char want[120];
    int rc = DECODE(V1, TQUERY, AGENT_ECHO, KV("agent", 0xa1, 'x'), KV("x", 0xc1));
    snprintf(want, sizeof want, "invalid msgpack byte 0xc1 at offset %zu", tb.n - 1);
    assert_err(rc, PROTO_EBAD, "bad_request", want);
    rc = DECODE(V1, TQUERY, KV("id", 7), AGENT_ECHO, KV("agent", 0xa1, 'x'), KV("x", 1));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'agent' appears twice");
    assert_msg_cleared(); /* a duplicate: not one message, no id kept */
    /* not a map, and bad inside */
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0x92, 1, 0xc1), 3});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request",
               "invalid msgpack byte 0xc1 at offset 2");
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0x92, 1, 2), 3});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", "message is a fixarray, not a map");
    proto_buf_reset(&tb);
    proto_buf_raw(&tb, (proto_raw_t){B(0xa1, 'x'), 2});
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", "message is a fixstr, not a map");
    /* the size limit before anything */
    proto_limits_t lim;
    proto_limits_default(&lim);
    PACK(V1, TQUERY, KV("id", 7), AGENT_ECHO);
    lim.max_size = tb.n - 1;
    snprintf(want, sizeof want, "message of %zu bytes is over the %zu limit", tb.n, tb.n - 1);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large", want);
    assert_int_equal(decode_lim(NULL), 0);
}

/* The id survives an error about what the fields say (it is read, and it is an id), so the
 * error reply can name the request; it does not survive bytes that fail validation. */
static void test_id_kept_on_field_errors_only(void **state) {
    (void)state;
    int rc = DECODE(V1, TQUERY, KV("id", 0xa2, 'q', '1'), KV("agent", 7));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'agent' must be a string");
    assert_int_equal(msg.id.n, 3);
    assert_memory_equal(msg.id.p, B(0xa2, 'q', '1'), 3);
    assert_int_equal(msg.agent.n, 0);
    /* the id after the failing field: kept just the same */
    rc = DECODE(V1, TQUERY, KV("agent", 7), KV("id", 0xcd, 1, 2));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'agent' must be a string");
    assert_int_equal(msg.id.n, 3);
    assert_int_equal(msg.id.p[0], 0xcd);
    /* a later field that fails validation: the id goes with the rest */
    rc = DECODE(V1, TQUERY, KV("id", 0xa2, 'q', '1'), AGENT_ECHO, KV("x", 0xc1));
    assert_int_equal(rc, PROTO_EBAD);
    assert_int_equal(msg.id.n, 0);
}

static bool is_name(const char *const *names, size_t count, const char *s, size_t n) {
    for (size_t i = 0; i < count; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return true;
    return false;
}

/* Every field name is found, and only by its exact bytes. A known field given twice is an
 * error naming it; an unknown one is ignored: so a pair of the same key tells which. */
static void test_every_field_name_is_found_exactly(void **state) {
    (void)state;
    static const char *const names[] = {
        "v", "type", "id", "agent", "input", "session", "timeout_ms", "idempotent", "job",
        "seq", "event", "output", "code", "message", "topic", "data", "name", "capacity",
        "agents", "heartbeat_ms", "attempt", "app", "user", "events", "after", "limit",
        "parent", "branch", "invocation", "state", "history", "worker", "history_agents",
        "req", "backend", "model_concurrency", "model_rps", "model_burst", "model_tpm",
        "tokens", "origin", "held",
    };
    char want[80], near[40];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *k = names[i];
        size_t n = strlen(k);
        proto_buf_reset(&tb);
        msgpack_pack_map(&tb.pk, 2);
        for (int j = 0; j < 2; j++) {
            proto_pack_cstr(&tb, k);
            msgpack_pack_nil(&tb.pk);
        }
        snprintf(want, sizeof want, "field '%s' appears twice", k);
        assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", want);
        /* the same length with one byte changed (first, middle, last), one byte shorter and
         * one longer: not a field, so twice is no error ('v' is missing instead) */
        for (int change = 0; change < 5; change++) {
            memcpy(near, k, n + 1);
            size_t m = n;
            if (change < 3) near[change == 0 ? 0 : change == 1 ? n / 2 : n - 1] ^= 0x20;
            else if (change == 3) m = n - 1;
            else near[m++] = 's';
            if (m == 0) continue;
            proto_buf_reset(&tb);
            msgpack_pack_map(&tb.pk, 2);
            for (int j = 0; j < 2; j++) {
                proto_pack_str(&tb, near, m);
                msgpack_pack_nil(&tb.pk);
            }
            int rc = decode_lim(NULL);
            if (is_name(names, sizeof names / sizeof names[0], near, m)) continue; /* agents */
            assert_int_equal(rc, PROTO_EBAD);
            if (strcmp(err.message, "field 'v' is missing") != 0) {
                print_error("key '%.*s' (near '%s'): %s\n", (int)m, near, k, err.message);
                fail();
            }
        }
    }
}

/* Every type name is found, and only by its exact bytes. */
static void test_every_type_name_is_found_exactly(void **state) {
    (void)state;
    char near[40], want[80];
    for (int t = PROTO_QUERY; t <= PROTO_TYPE_LAST; t++) {
        const char *name = proto_type_name((proto_type_t)t);
        size_t n = strlen(name);
        proto_buf_reset(&tb);
        msgpack_pack_map(&tb.pk, 3);
        proto_pack_cstr(&tb, "v");
        msgpack_pack_int(&tb.pk, 1);
        proto_pack_cstr(&tb, "type");
        proto_pack_cstr(&tb, name);
        proto_pack_cstr(&tb, "nothing");
        msgpack_pack_nil(&tb.pk);
        int rc = decode_lim(NULL);
        /* a type found decodes, or fails on its own fields, never as an unknown type */
        if (rc == 0) assert_int_equal(msg.type, t);
        else assert_null(strstr(err.message, "unknown type"));
        for (int change = 0; change < 4; change++) {
            memcpy(near, name, n + 1);
            size_t m = n;
            if (change < 3) near[change == 0 ? 0 : change == 1 ? n / 2 : n - 1] ^= 0x20;
            else m = n - 1;
            proto_buf_reset(&tb);
            msgpack_pack_map(&tb.pk, 2);
            proto_pack_cstr(&tb, "v");
            msgpack_pack_int(&tb.pk, 1);
            proto_pack_cstr(&tb, "type");
            proto_pack_str(&tb, near, m);
            snprintf(want, sizeof want, "unknown type '%.*s'", (int)m, near);
            assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", want);
        }
    }
}

/* proto_validate is the same walker over a whole value: what decode refuses inside a field,
 * validate refuses in the same bytes, with the same message. */
static void test_validate_and_decode_agree(void **state) {
    (void)state;
    proto_error_t verr;
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_depth = 3;
    lim.max_elems = 5;
    const kv_t bad[] = {
        KV("input", 0x91, 0x91, 0x91, 1),             /* too deep */
        KV("input", 0x96, 1, 2, 3, 4, 5, 6),          /* too many elements */
        KV("input", 0x92, 0xd9, 200, 'x', 1),         /* a string past the end */
        KV("input", 0x81, 0xc1, 1),                   /* never-used byte */
        KV("input", 0x92, 0xcd, 1),                   /* a header cut short */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pack_kvs((const kv_t[]){V1, TQUERY, KV("id", 1), AGENT_ECHO, bad[i]}, 5);
        int rc = decode_lim(&lim);
        assert_int_not_equal(rc, 0);
        memset(&verr, 0, sizeof verr);
        assert_int_equal(proto_validate(tb.p, tb.n, &lim, &verr), rc);
        assert_string_equal(verr.message, err.message);
        assert_string_equal(verr.code, err.code);
    }
}

/* ---- the straight path (decode.c decode_fast): a message in the shape proto's encoders
 * write (fixmap, "v": 1 and "type" first, then the type's fields in the order of its rules)
 * is read without the general walk's tables. It must decode exactly as the general path
 * does, and refuse (by handing over to it) everything that path refuses. ---- */

#define ID_Q1 KV("id", 0xa2, 'q', '1')
#define INPUT_ARR KV("input", 0x92, 0x01, 0xa1, 'x')
#define SESSION_S1 KV("session", 0xa2, 's', '1')
#define TIMEOUT_300 KV("timeout_ms", 0xcd, 0x01, 0x2c)
#define APP_A KV("app", 0xa1, 'a')
#define USER_U KV("user", 0xa1, 'u')
#define PARENT_9 KV("parent", 0x09)
#define TRESULT KV("type", 0xa6, 'r', 'e', 's', 'u', 'l', 't')

static void assert_full_query(void) {
    assert_int_equal(msg.type, PROTO_QUERY);
    assert_int_equal(msg.id.n, 3);
    assert_memory_equal(msg.id.p, B(0xa2, 'q', '1'), 3);
    assert_int_equal(msg.agent.n, 4);
    assert_memory_equal(msg.agent.p, "echo", 4);
    assert_int_equal(msg.input.n, 4);
    assert_memory_equal(msg.input.p, B(0x92, 0x01, 0xa1, 'x'), 4);
    assert_int_equal(msg.session.n, 2);
    assert_memory_equal(msg.session.p, "s1", 2);
    assert_int_equal(msg.timeout_ms, 300);
    assert_true(msg.idempotent);
    assert_int_equal(msg.app.n, 1);
    assert_int_equal(msg.user.n, 1);
    assert_memory_equal(msg.user.p, "u", 1);
    assert_true(msg.has_parent);
    assert_int_equal(msg.parent, 9);
    assert_int_equal(msg.body.n, tb.n);
    assert_int_equal(msg.branch.n, 0);
    assert_false(msg.has_job);
}

/* Every field of a query, in the encoders' order (the straight path) and reversed (the
 * general path): the same message. */
static void test_straight_path_decodes_as_the_general_one(void **state) {
    (void)state;
    assert_int_equal(DECODE(V1, TQUERY, ID_Q1, AGENT_ECHO, INPUT_ARR, SESSION_S1, TIMEOUT_300,
                            KV("idempotent", 0xc3), APP_A, USER_U, PARENT_9), 0);
    assert_full_query();
    assert_int_equal(DECODE(PARENT_9, USER_U, APP_A, KV("idempotent", 0xc3), TIMEOUT_300,
                            SESSION_S1, INPUT_ARR, AGENT_ECHO, ID_Q1, TQUERY, V1), 0);
    assert_full_query();
    /* a worker's result: job numbers in every integer form, the output verbatim */
    static const uint8_t jobs[][9] = {{0x05}, {0xcc, 0xc8}, {0xcd, 0x30, 0x39},
                                      {0xce, 0x00, 0x01, 0xe2, 0x40},
                                      {0xcf, 0x01, 0x93, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x01}};
    static const size_t jlen[] = {1, 2, 3, 5, 9};
    static const uint64_t jval[] = {5, 200, 12345, 123456, 0x0193a1b2c3d40001ull};
    for (int i = 0; i < 5; i++) {
        kv_t kvs[] = {V1, TRESULT, {"job", jobs[i], jlen[i]}, KV("output", 0xa2, 'o', 'k')};
        pack_kvs(kvs, 4);
        assert_int_equal(decode_lim(NULL), 0);
        assert_int_equal(msg.type, PROTO_RESULT);
        assert_true(msg.has_job);
        assert_int_equal(msg.job, jval[i]);
        assert_int_equal(msg.output.n, 3);
        assert_memory_equal(msg.output.p, B(0xa2, 'o', 'k'), 3);
        assert_int_equal(msg.id.n, 0);
    }
    /* an absent input reads as nil; an OPTIONAL nil as absent; a reply id may be nil */
    assert_int_equal(DECODE(V1, TQUERY, ID_Q1, AGENT_ECHO, KV("session", 0xc0)), 0);
    assert_int_equal(msg.input.n, 1);
    assert_int_equal(msg.input.p[0], 0xc0);
    assert_int_equal(msg.session.n, 0);
    assert_int_equal(msg.timeout_ms, -1);
    assert_int_equal(DECODE(V1, TRESULT, KV("id", 0xc0), KV("output", 0x01)), 0);
    assert_int_equal(msg.id.n, 1);
    assert_false(msg.has_job);
    /* a heartbeat: no fields but v and type */
    assert_int_equal(DECODE(V1, KV("type", 0xa9, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't')),
                     0);
    assert_int_equal(msg.type, PROTO_HEARTBEAT);
}

/* Messages in the straight path's shape that the general path refuses: each is refused
 * with the general path's error, and nothing read survives but an id. */
static void test_straight_path_refuses_what_the_general_one_does(void **state) {
    (void)state;
    /* a REQUIRED field skipped, between present ones and after the last */
    int rc = DECODE(V1, TQUERY, ID_Q1, INPUT_ARR);
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'agent' is missing");
    assert_int_equal(msg.input.n, 0);
    assert_int_equal(msg.id.n, 3);
    rc = DECODE(V1, KV("type", 0xa4, 'w', 'o', 'r', 'k'), KV("job", 1), AGENT_ECHO);
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'attempt' is missing");
    /* neither id nor job; an OPTIONAL nil id does not count as one */
    rc = DECODE(V1, TRESULT, KV("output", 0x01));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'id' is missing");
    rc = DECODE(V1, KV("type", 0xa6, 'c', 'a', 'n', 'c', 'e', 'l'), KV("id", 0xc0));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'id' is missing");
    /* a value of the wrong kind, an empty name */
    rc = DECODE(V1, TQUERY, ID_Q1, KV("agent", 0xa0));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'agent' must be 1 to 128 bytes long");
    assert_int_equal(msg.agent.n, 0);
    rc = DECODE(V1, TQUERY, ID_Q1, AGENT_ECHO, KV("timeout_ms", 0xff));
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'timeout_ms' must be a non-negative "
                                              "integer");
    /* a field twice, in order; a name with a NUL after it is another (unknown) field */
    rc = DECODE(V1, TQUERY, ID_Q1, ID_Q1, AGENT_ECHO);
    assert_err(rc, PROTO_EBAD, "bad_request", "field 'id' appears twice");
    PACK(V1, TQUERY, KV("idx", 0x01), AGENT_ECHO);
    assert_memory_equal(tb.p + 15, "\xa3idx", 4);
    tb.p[18] = '\0'; /* "id\0" */
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", "field 'id' is missing");
    /* bytes after the map; a map of no entries before v and type */
    PACK(V1, TQUERY, ID_Q1, AGENT_ECHO);
    size_t n = tb.n;
    proto_buf_raw(&tb, (proto_raw_t){B(0xc0), 1});
    char want[80];
    snprintf(want, sizeof want, "1 trailing bytes after the object, at offset %zu", n);
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request", want);
    assert_msg_cleared();
    PACK(V1, KV("type", 0xa9, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't'));
    tb.p[0] = 0x80;
    assert_err(decode_lim(NULL), PROTO_EBAD, "bad_request",
               "18 trailing bytes after the object, at offset 1");
    /* a version other than 1 and the limits: the map's count, the depth of a value */
    rc = DECODE(KV("v", 2), TQUERY, ID_Q1, AGENT_ECHO);
    assert_err(rc, PROTO_EVERSION, "unsupported_version", "version 2 is not supported (only 1)");
    proto_limits_t lim;
    proto_limits_default(&lim);
    lim.max_elems = 3;
    PACK(V1, TQUERY, ID_Q1, AGENT_ECHO);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large",
               "fixmap at offset 0 has 4 elements (limit 3)");
    proto_limits_default(&lim);
    lim.max_depth = 1;
    PACK(V1, TQUERY, ID_Q1, AGENT_ECHO, INPUT_ARR);
    assert_err(decode_lim(&lim), PROTO_ETOOBIG, "too_large",
               "fixarray at offset 38 nests deeper than 1");
    /* a value cut short: the message ends inside the output */
    PACK(V1, TRESULT, KV("job", 1), KV("output", 0xa2, 'o', 'k'));
    tb.n--;
    assert_int_equal(decode_lim(NULL), PROTO_EBAD);
    assert_int_equal(msg.output.n, 0);
}

#define PT(t) cmocka_unit_test_setup_teardown(t, setup_buf, teardown_buf)

int main(void) {
    const struct CMUnitTest tests[] = {
        PT(test_a_later_invalid_field_rejects_the_message),
        PT(test_input_is_validated_at_depth),
        PT(test_unknown_fields_are_skipped_but_validated),
        PT(test_keys_of_every_form),
        PT(test_validation_errors_come_first),
        PT(test_id_kept_on_field_errors_only),
        PT(test_every_field_name_is_found_exactly),
        PT(test_every_type_name_is_found_exactly),
        PT(test_validate_and_decode_agree),
        PT(test_straight_path_decodes_as_the_general_one),
        PT(test_straight_path_refuses_what_the_general_one_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
