/* test_log.c: actor/log.h's two formats: key=value lines as given, and the same lines
 * rewritten as JSON objects (numbers kept, quoted values unescaped, stray words under "msg",
 * non-ASCII and control bytes escaped so any input gives valid JSON), whole members only
 * when a line is cut. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "actor/log.h"

static char last[4096];

static void sink(act_log_level_t level, const char *line, void *ctx) {
    (void)level;
    (void)ctx;
    snprintf(last, sizeof last, "%s", line);
}

/* The JSON line with its "ts" member cut out (it changes with the clock). */
static const char *without_ts(void) {
    static char out[4096];
    const char *lvl = strstr(last, ",\"level\":");
    assert_non_null(lvl);
    assert_memory_equal(last, "{\"ts\":\"", 7);
    snprintf(out, sizeof out, "{%s", lvl + 1);
    return out;
}

static void test_log_kv_is_the_default(void **state) {
    (void)state;
    act_log_set_sink(sink, NULL);
    act_log(ACT_LOG_WARN, "disk", "free=%d path=%s", 12, "/tmp");
    assert_string_equal(last, "level=warn event=disk free=12 path=/tmp");
    act_log_set_sink(NULL, NULL);
}

static void test_log_json_keeps_numbers_and_unquotes_strings(void **state) {
    (void)state;
    act_log_set_sink(sink, NULL);
    act_log_set_format(ACT_LOG_FORMAT_JSON);
    act_log(ACT_LOG_INFO, "job_end", "job=%d agent=%s rc=%s delta=%d zero=0 lead=007",
            42, "echo", "0", -5);
    assert_string_equal(without_ts(), "{\"level\":\"info\",\"event\":\"job_end\",\"job\":42,"
                                      "\"agent\":\"echo\",\"rc\":0,\"delta\":-5,\"zero\":0,"
                                      "\"lead\":\"007\"}");
    act_log(ACT_LOG_ERROR, "bad", "reason=\"a \\\"quoted\\\" word\" tail");
    assert_string_equal(without_ts(), "{\"level\":\"error\",\"event\":\"bad\","
                                      "\"reason\":\"a \\\"quoted\\\" word\",\"msg\":\"tail\"}");
    act_log_set_format(ACT_LOG_FORMAT_KV);
    act_log_set_sink(NULL, NULL);
}

static void test_log_json_escapes_any_bytes(void **state) {
    (void)state;
    act_log_set_sink(sink, NULL);
    act_log_set_format(ACT_LOG_FORMAT_JSON);
    act_log(ACT_LOG_INFO, "ev\"il", "name=%s back=a\\b tab=\"x\ty\" open=\"never closed",
            "caf\xc3\xa9");
    assert_string_equal(without_ts(), "{\"level\":\"info\",\"event\":\"ev\\\"il\","
                                      "\"name\":\"caf\\u00c3\\u00a9\",\"back\":\"a\\\\b\","
                                      "\"tab\":\"x\\u0009y\",\"open\":\"never closed\"}");
    /* a line longer than the buffer keeps whole members and still closes the object */
    char big[3000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    act_log(ACT_LOG_INFO, "big", "a=1 b=%s", big);
    size_t n = strlen(last);
    assert_true(n < 2048);
    assert_int_equal(last[n - 1], '}');
    assert_non_null(strstr(last, "\"a\":1"));
    act_log_set_format(ACT_LOG_FORMAT_KV);
    act_log_set_sink(NULL, NULL);
}

/* act_log_on agrees with what act_log writes: the level decides without a sink, a sink takes
 * every level (so a caller that skips act_log when it is false loses nothing). */
static void test_log_on_follows_level_and_sink(void **state) {
    (void)state;
    act_log_set_level(ACT_LOG_INFO);
    assert_false(act_log_on(ACT_LOG_DEBUG));
    assert_true(act_log_on(ACT_LOG_INFO));
    assert_true(act_log_on(ACT_LOG_ERROR));
    act_log_set_level(ACT_LOG_ERROR);
    assert_false(act_log_on(ACT_LOG_WARN));
    act_log_set_sink(sink, NULL);
    assert_true(act_log_on(ACT_LOG_DEBUG));
    act_log_set_sink(NULL, NULL);
    act_log_set_level(ACT_LOG_INFO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_kv_is_the_default),
        cmocka_unit_test(test_log_json_keeps_numbers_and_unquotes_strings),
        cmocka_unit_test(test_log_json_escapes_any_bytes),
        cmocka_unit_test(test_log_on_follows_level_and_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
