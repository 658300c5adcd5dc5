/* test_invocations.c: the broker's invocation helpers that need no broker (broker/inv_event.c):
 * which events go into a session and what the broker reads from them, garbage included, and
 * the events the broker writes itself (the user's input, state_rejected). The lock, the
 * waiters and sub-invocations run in a real broker: tests/broker/test_invocations.py. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "invocations.h"
#include "proto/proto.h"

/* JSON text to msgpack in buf; returns the bytes. */
static proto_raw_t J(proto_buf_t *buf, const char *json) {
    proto_buf_reset(buf);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), buf, NULL), 0);
    return (proto_raw_t){buf->p, buf->n};
}

/* msgpack to JSON text, into a static buffer (one at a time). */
static const char *to_json(proto_raw_t raw) {
    static proto_buf_t out;
    static bool init;
    if (!init) {
        proto_buf_init(&out);
        init = true;
    }
    proto_buf_reset(&out);
    assert_int_equal(proto_raw_to_json(raw, &out), 0);
    return (const char *)out.p;
}

static bool str_is(proto_str_t s, const char *want) { return proto_str_eq(s, want); }

static void test_event_parse_reads_author_id_time_and_delta(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    brk_inv_event_t e;
    brk_inv_event_parse(J(&b, "{\"id\":\"e-1\",\"author\":\"bot\",\"ts_ms\":1700,\"final\":true,"
                              "\"actions\":{\"escalate\":true,\"state_delta\":{\"k\":null}}}"),
                        &e);
    assert_true(e.store);
    assert_true(str_is(e.id, "e-1"));
    assert_true(str_is(e.author, "bot"));
    assert_int_equal(e.ts_ms, 1700);
    assert_string_equal(to_json(e.delta), "{\"k\":null}");
    /* no id, no time, no actions: still stored; the broker fills what is missing */
    brk_inv_event_parse(J(&b, "{\"author\":\"user\",\"partial\":false,\"ts_ms\":\"x\","
                              "\"actions\":{\"state_delta\":[1]}}"), &e);
    assert_true(e.store);
    assert_int_equal(e.id.n, 0);
    assert_int_equal(e.ts_ms, -1);
    assert_int_equal(e.delta.n, 0);
    proto_buf_free(&b);
}

static void test_event_parse_skips_partial_plain_and_authorless(void **state) {
    (void)state;
    proto_buf_t b;
    proto_buf_init(&b);
    const char *skipped[] = {
        "{\"author\":\"bot\",\"partial\":true}", /* streamed, not stored */
        "{\"progress\":50}",                    /* an older agent's plain event */
        "{\"author\":7}",                       /* author not a string */
        "\"text\"", "[1,2]", "null", "12",
    };
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++) {
        brk_inv_event_t e;
        brk_inv_event_parse(J(&b, skipped[i]), &e);
        assert_false(e.store);
    }
    proto_buf_free(&b);
}

static void test_event_parse_survives_garbage(void **state) {
    (void)state;
    static const uint8_t cut[] = {0x82, 0xa6, 'a', 'u', 't', 'h', 'o', 'r', 0xa3, 'b'};
    static const uint8_t bad[] = {0xc1};
    brk_inv_event_t e;
    brk_inv_event_parse((proto_raw_t){cut, sizeof cut}, &e);
    assert_false(e.store);
    brk_inv_event_parse((proto_raw_t){bad, sizeof bad}, &e);
    assert_false(e.store);
    brk_inv_event_parse((proto_raw_t){NULL, 0}, &e);
    assert_false(e.store);
}

static void test_user_event_is_text_for_a_string_and_data_otherwise(void **state) {
    (void)state;
    proto_buf_t in, out;
    proto_buf_init(&in);
    proto_buf_init(&out);
    assert_int_equal(brk_inv_enc_user_event(&out, "e-1", "i-2", 5, J(&in, "\"hi\"")), 0);
    assert_string_equal(to_json((proto_raw_t){out.p, out.n}),
                        "{\"id\":\"e-1\",\"invocation_id\":\"i-2\",\"author\":\"user\","
                        "\"ts_ms\":5,\"content\":{\"role\":\"user\",\"parts\":[{\"text\":"
                        "\"hi\"}]}}");
    assert_int_equal(brk_inv_enc_user_event(&out, "e-1", "i-2", 5, J(&in, "{\"x\":[1]}")), 0);
    assert_non_null(strstr(to_json((proto_raw_t){out.p, out.n}),
                           "\"parts\":[{\"data\":{\"x\":[1]}}]"));
    assert_int_equal(brk_inv_enc_user_event(&out, "e-1", "i-2", 5, (proto_raw_t){NULL, 0}), 0);
    assert_non_null(strstr(to_json((proto_raw_t){out.p, out.n}), "\"parts\":[{\"data\":null}]"));
    /* what the broker writes is an event it would store itself */
    brk_inv_event_t e;
    brk_inv_event_parse((proto_raw_t){out.p, out.n}, &e);
    assert_true(e.store);
    assert_true(str_is(e.author, "user"));
    proto_buf_free(&in);
    proto_buf_free(&out);
}

static void test_broker_event_names_the_code_and_message(void **state) {
    (void)state;
    proto_buf_t out;
    proto_buf_init(&out);
    assert_int_equal(brk_inv_enc_broker_event(&out, "e-9", "i-2", 7, "state_rejected",
                                              "state_delta key 1 is empty"), 0);
    assert_string_equal(to_json((proto_raw_t){out.p, out.n}),
                        "{\"id\":\"e-9\",\"invocation_id\":\"i-2\",\"author\":\"broker\","
                        "\"ts_ms\":7,\"error_code\":\"state_rejected\",\"error_message\":"
                        "\"state_delta key 1 is empty\"}");
    proto_buf_free(&out);
}

static void test_ids_have_a_prefix_and_16_hex_digits(void **state) {
    (void)state;
    char id[BRK_INV_ID_LEN + 1];
    brk_inv_id_format(id, 'i', 0xabcULL);
    assert_string_equal(id, "i-0000000000000abc");
    brk_inv_id_format(id, 'e', UINT64_MAX);
    assert_string_equal(id, "e-ffffffffffffffff");
    assert_int_equal(strlen(id), BRK_INV_ID_LEN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_parse_reads_author_id_time_and_delta),
        cmocka_unit_test(test_event_parse_skips_partial_plain_and_authorless),
        cmocka_unit_test(test_event_parse_survives_garbage),
        cmocka_unit_test(test_user_event_is_text_for_a_string_and_data_otherwise),
        cmocka_unit_test(test_broker_event_names_the_code_and_message),
        cmocka_unit_test(test_ids_have_a_prefix_and_16_hex_digits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
