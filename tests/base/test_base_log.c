/* test_base_log.c: base/log.h, the one logger: levels filter stderr but not a sink, the
 * key=value line with and without its time stamp, values from the network quoted so they
 * cannot forge fields, and the JSON form undoing that quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/log.h"

static char last[4096];
static int lines;

static void sink(int level, const char *line, void *ctx) {
    (void)level;
    (void)ctx;
    snprintf(last, sizeof last, "%s", line);
    lines++;
}

static void test_base_log_parses_levels_and_formats(void **state) {
    (void)state;
    assert_int_equal(base_log_level_parse("debug"), BASE_LOG_DEBUG);
    assert_int_equal(base_log_level_parse("off"), BASE_LOG_OFF);
    assert_int_equal(base_log_level_parse("loud"), -1);
    assert_int_equal(base_log_format_parse("json"), BASE_LOG_JSON);
    assert_int_equal(base_log_format_parse("xml"), -1);
}

static void test_base_log_level_filters_stderr_not_a_sink(void **state) {
    (void)state;
    base_log_set_level(BASE_LOG_WARN);
    assert_false(base_log_on(BASE_LOG_INFO));
    assert_true(base_log_on(BASE_LOG_ERROR));
    base_log_set_sink(sink, NULL);
    assert_true(base_log_on(BASE_LOG_DEBUG));
    assert_false(base_log_on(BASE_LOG_OFF));
    lines = 0;
    base_log(BASE_LOG_DEBUG, "seen", "n=%d", 1);
    assert_int_equal(lines, 1);
    assert_string_equal(last, "level=debug event=seen n=1");
    base_log_set_sink(NULL, NULL);
    base_log_set_level(BASE_LOG_INFO);
}

static void test_base_log_stamp_leads_the_kv_line(void **state) {
    (void)state;
    base_log_set_sink(sink, NULL);
    base_log_set_stamp(true);
    base_log(BASE_LOG_INFO, "start", "pid=%d ", 7); /* trailing blanks are cut */
    assert_memory_equal(last, "ts=", 3);
    const char *rest = strstr(last, " level=");
    assert_non_null(rest);
    assert_int_equal(rest - last, 3 + 24); /* 2026-12-06T01:02:03.456Z */
    assert_string_equal(rest, " level=info event=start pid=7");
    base_log_set_stamp(false);
    base_log_set_sink(NULL, NULL);
}

static void test_base_log_str_quotes_what_could_forge_fields(void **state) {
    (void)state;
    char v[64], line[256];
    base_log_str(v, sizeof v, "a\" b=1\n\xff", 8);
    assert_string_equal(v, "\"a\\\" b=1\\x0a\\xff\"");
    char big[200];
    memset(big, 'x', sizeof big);
    base_log_str(v, sizeof v, big, sizeof big);
    assert_true(strlen(v) < sizeof v);
    assert_non_null(strstr(v, "...\""));
    base_log_str(v, 8, "abc", 3);
    assert_string_equal(v, "");
    base_log_hex(v, sizeof v, "\x01\xab", 2);
    assert_string_equal(v, "01ab");
    base_log_hex(v, 4, "\x01\xab\xcd", 3);
    assert_string_equal(v, "01"); /* whole bytes only */
    /* what base_log_str wrote, base_log_kv_to_json reads back */
    base_log_str(v, sizeof v, "x=\"1\"\t\xc3\xa9", 8);
    char kv[128];
    snprintf(kv, sizeof kv, "name=%s n=-12 lead=012 stray", v);
    base_log_kv_to_json(kv, line, sizeof line);
    assert_string_equal(line, ",\"name\":\"x=\\\"1\\\"\\u0009\\u00c3\\u00a9\",\"n\":-12,"
                              "\"lead\":\"012\",\"msg\":\"stray\"");
}

static void test_base_log_json_keeps_whole_members_when_cut(void **state) {
    (void)state;
    char out[24];
    size_t n = base_log_kv_to_json("a=1 bb=\"long value\"", out, sizeof out);
    assert_string_equal(out, ",\"a\":1");
    assert_int_equal(n, 6);
    base_log_set_sink(sink, NULL);
    base_log_set_format(BASE_LOG_JSON);
    base_log(BASE_LOG_WARN, "ev", "k=v");
    assert_memory_equal(last, "{\"ts\":\"", 7);
    assert_non_null(strstr(last, "\",\"level\":\"warn\",\"event\":\"ev\",\"k\":\"v\"}"));
    base_log_set_format(BASE_LOG_KV);
    base_log_set_sink(NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_log_parses_levels_and_formats),
        cmocka_unit_test(test_base_log_level_filters_stderr_not_a_sink),
        cmocka_unit_test(test_base_log_stamp_leads_the_kv_line),
        cmocka_unit_test(test_base_log_str_quotes_what_could_forge_fields),
        cmocka_unit_test(test_base_log_json_keeps_whole_members_when_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
