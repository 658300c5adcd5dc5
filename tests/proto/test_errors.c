/* test_errors.c: the project's one error table (proto/errors.h): no code of it is also a
 * libactor code, the plugin ABI's copies agree with it, every code has a distinct wire name,
 * and the modules that report codes (model, MCP) name them from the table. */
#include <string.h>

#include "harness.h"
#include "actorbus/plugin.h"
#include "proto/errors.h"

typedef struct entry {
    int val;
    const char *code, *text;
} entry;

static const entry table[] = {
#define ENTRY(name, val, code, text) {val, code, text},
    PROTO_ERRORS(ENTRY)
#undef ENTRY
};
#define N_TABLE (sizeof table / sizeof table[0])

static void test_no_code_is_also_a_libactor_code(void **state) {
    (void)state;
    for (size_t i = 0; i < N_TABLE; i++) {
        assert_string_equal(act_err_name(table[i].val), "UNKNOWN");
        assert_true(table[i].val < -4000); /* above the errno range, as libactor's own */
    }
}

static void test_every_code_has_its_own_wire_name_and_text(void **state) {
    (void)state;
    for (size_t i = 0; i < N_TABLE; i++) {
        assert_string_equal(proto_err_code(table[i].val), table[i].code);
        assert_string_equal(proto_err_text(table[i].val), table[i].text);
        for (size_t j = i + 1; j < N_TABLE; j++) {
            assert_int_not_equal(table[i].val, table[j].val);
            assert_string_not_equal(table[i].code, table[j].code);
        }
    }
}

static void test_plugin_abi_copies_agree_with_the_table(void **state) {
    (void)state;
    assert_int_equal(ABP_ECALL, -4100);
    assert_string_equal(proto_err_code(ABP_ECALL), "call_failed");
    assert_int_equal(ABP_EEOF, -4101);
    assert_string_equal(proto_err_code(ABP_EEOF), "no_more_calls");
}

static void test_errno_codes_get_the_generic_wire_names(void **state) {
    (void)state;
    assert_string_equal(proto_err_code(0), "ok");
    assert_string_equal(proto_err_code(ACT_ETIMEDOUT), "timeout");
    assert_string_equal(proto_err_code(ACT_ECANCELED), "cancelled");
    assert_string_equal(proto_err_code(ACT_EINVAL), "bad_request");
    assert_string_equal(proto_err_code(ACT_EMSGSIZE), "too_large");
    assert_string_equal(proto_err_code(ACT_EAGAIN), "overloaded");
    assert_string_equal(proto_err_code(ACT_EIO), "internal");
    assert_null(proto_err_text(ACT_EIO));
}

/* Every code either table names is known, once; an agent's own code is not; and every code
 * proto_err_code gives for an errno value is a wire code of the table. */
static void test_wire_codes_are_known_once_and_cover_the_generic_ones(void **state) {
    (void)state;
    static const char *const wire[] = {
#define W(code, text) code,
        PROTO_WIRE_ERRORS(W)
#undef W
    };
    size_t n = sizeof wire / sizeof wire[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(proto_err_known(wire[i]));
        for (size_t j = 0; j < N_TABLE; j++) assert_string_not_equal(wire[i], table[j].code);
        for (size_t j = i + 1; j < n; j++) assert_string_not_equal(wire[i], wire[j]);
    }
    for (size_t i = 0; i < N_TABLE; i++) assert_true(proto_err_known(table[i].code));
    const int generic[] = {ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL, ACT_EMSGSIZE, ACT_EAGAIN,
                           ACT_EIO};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        assert_true(proto_err_known(proto_err_code(generic[i])));
    assert_false(proto_err_known("tool_error"));
    assert_false(proto_err_known(""));
    assert_false(proto_err_known(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_code_is_also_a_libactor_code),
        cmocka_unit_test(test_every_code_has_its_own_wire_name_and_text),
        cmocka_unit_test(test_plugin_abi_copies_agree_with_the_table),
        cmocka_unit_test(test_errno_codes_get_the_generic_wire_names),
        cmocka_unit_test(test_wire_codes_are_known_once_and_cover_the_generic_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
