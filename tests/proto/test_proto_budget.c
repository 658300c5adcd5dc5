/* test_proto_budget.c: the model budget's messages in the 1/ABP codec (proto/PROTOCOL.md,
 * "Model budget"): every encoder decoded back, the REQUIRED fields and their types, and the
 * rate as an integer or a float. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "proto/proto.h"

static proto_buf_t buf;
static proto_msg_t m;
static proto_error_t err;

static int decode_buf(void) {
    memset(&err, 0, sizeof err);
    return proto_decode(buf.p, buf.n, NULL, &m, &err);
}

static void test_budget_announcement_round_trips(void **state) {
    (void)state;
    proto_buf_init(&buf);
    assert_int_equal(proto_enc_budget(&buf, 4, 2.5, 3, 0), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET);
    assert_int_equal(m.model_concurrency, 4);
    assert_true(fabs(m.model_rps - 2.5) < 1e-12);
    assert_int_equal(m.model_burst, 3);
    /* An integral rate travels as an integer and reads back the same. */
    assert_int_equal(proto_enc_budget(&buf, 0, 20, 1, 0), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.model_concurrency, 0);
    assert_true(m.model_rps == 20.0);
    assert_int_equal(m.model_tpm, 0);
    /* A token budget: model_tpm, absent when 0. */
    assert_int_equal(proto_enc_budget(&buf, 0, 0, 1, 90000), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.model_tpm, 90000);
    proto_buf_free(&buf);
}

static void test_budget_dialog_encoders_round_trip(void **state) {
    (void)state;
    proto_buf_init(&buf);
    assert_int_equal(proto_enc_budget_acquire(&buf, 7, proto_str_of("default")), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET_ACQUIRE);
    assert_int_equal(m.req, 7);
    assert_true(proto_str_eq(m.backend, "default"));

    assert_int_equal(proto_enc_budget_grant(&buf, 8), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET_GRANT);
    assert_int_equal(m.req, 8);

    assert_int_equal(proto_enc_budget_deny(&buf, 9, "overloaded", "too many waiting"), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET_DENY);
    assert_int_equal(m.req, 9);
    assert_true(proto_str_eq(m.code, "overloaded"));
    assert_true(proto_str_eq(m.message, "too many waiting"));

    assert_int_equal(proto_enc_budget_release(&buf, proto_str_of("other"), 0), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET_RELEASE);
    assert_true(proto_str_eq(m.backend, "other"));
    assert_int_equal(m.tokens, 0);
    assert_int_equal(proto_enc_budget_release(&buf, proto_str_of("other"), 1234), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.tokens, 1234);

    assert_int_equal(proto_enc_budget_cancel(&buf, UINT64_MAX), 0);
    assert_int_equal(decode_buf(), 0);
    assert_int_equal(m.type, PROTO_BUDGET_CANCEL);
    assert_true(m.req == UINT64_MAX);
    proto_buf_free(&buf);
}

static void test_budget_type_names(void **state) {
    (void)state;
    assert_string_equal(proto_type_name(PROTO_BUDGET), "budget");
    assert_string_equal(proto_type_name(PROTO_BUDGET_ACQUIRE), "budget.acquire");
    assert_string_equal(proto_type_name(PROTO_BUDGET_GRANT), "budget.grant");
    assert_string_equal(proto_type_name(PROTO_BUDGET_DENY), "budget.deny");
    assert_string_equal(proto_type_name(PROTO_BUDGET_RELEASE), "budget.release");
    assert_string_equal(proto_type_name(PROTO_BUDGET_CANCEL), "budget.cancel");
}

/* Packs {v:1, type:t, <n more pairs the caller packs>}. */
static void start(const char *type, uint32_t n_more) {
    proto_buf_reset(&buf);
    msgpack_pack_map(&buf.pk, n_more + 2);
    proto_pack_cstr(&buf, "v");
    msgpack_pack_int(&buf.pk, 1);
    proto_pack_cstr(&buf, "type");
    proto_pack_cstr(&buf, type);
}

static void expect_bad(const char *needle) {
    assert_int_equal(decode_buf(), PROTO_EBAD);
    if (!strstr(err.message, needle)) {
        print_error("message '%s' lacks '%s'\n", err.message, needle);
        fail();
    }
}

static void test_budget_required_fields_are_checked(void **state) {
    (void)state;
    proto_buf_init(&buf);
    start("budget.acquire", 1);
    proto_pack_cstr(&buf, "backend");
    proto_pack_cstr(&buf, "default");
    expect_bad("field 'req' is missing");

    start("budget.acquire", 1);
    proto_pack_cstr(&buf, "req");
    msgpack_pack_int(&buf.pk, 1);
    expect_bad("field 'backend' is missing");

    start("budget.acquire", 2);
    proto_pack_cstr(&buf, "req");
    msgpack_pack_int(&buf.pk, -1);
    proto_pack_cstr(&buf, "backend");
    proto_pack_cstr(&buf, "default");
    expect_bad("field 'req' must be a non-negative integer");

    start("budget.acquire", 2);
    proto_pack_cstr(&buf, "req");
    msgpack_pack_int(&buf.pk, 1);
    proto_pack_cstr(&buf, "backend");
    proto_pack_cstr(&buf, "");
    expect_bad("field 'backend' must be 1 to 128 bytes long");

    start("budget.deny", 1);
    proto_pack_cstr(&buf, "req");
    msgpack_pack_int(&buf.pk, 1);
    expect_bad("field 'code' is missing");

    start("budget.release", 0);
    expect_bad("field 'backend' is missing");
    start("budget.cancel", 0);
    expect_bad("field 'req' is missing");
    start("budget.grant", 0);
    expect_bad("field 'req' is missing");
    proto_buf_free(&buf);
}

static void test_budget_rate_must_be_a_non_negative_number(void **state) {
    (void)state;
    proto_buf_init(&buf);
    start("budget", 1);
    proto_pack_cstr(&buf, "model_rps");
    msgpack_pack_double(&buf.pk, -1.0);
    expect_bad("field 'model_rps' must be a non-negative number");

    start("budget", 1);
    proto_pack_cstr(&buf, "model_rps");
    msgpack_pack_double(&buf.pk, NAN);
    expect_bad("field 'model_rps' must be a non-negative number");

    start("budget", 1);
    proto_pack_cstr(&buf, "model_rps");
    proto_pack_cstr(&buf, "fast");
    expect_bad("field 'model_rps' must be a non-negative number");

    start("budget", 1); /* everything OPTIONAL: absent fields read as 0 */
    proto_pack_cstr(&buf, "model_rps");
    msgpack_pack_float(&buf.pk, 0.5f);
    assert_int_equal(decode_buf(), 0);
    assert_true(m.model_rps == 0.5);
    assert_int_equal(m.model_concurrency, 0);
    assert_int_equal(m.model_burst, 0);
    proto_buf_free(&buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_announcement_round_trips),
        cmocka_unit_test(test_budget_dialog_encoders_round_trip),
        cmocka_unit_test(test_budget_type_names),
        cmocka_unit_test(test_budget_required_fields_are_checked),
        cmocka_unit_test(test_budget_rate_must_be_a_non_negative_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
