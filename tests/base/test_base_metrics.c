/* test_base_metrics.c: base/http_head.h and base/prom.h, which both /metrics endpoints
 * share: the bounded HTTP request-head reader (complete, partial, malformed, over the limit),
 * the status a scraper gets, the responses, label escaping, and the histogram (bucket edges,
 * cumulative text). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "base/http_head.h"
#include "base/prom.h"

static int parse(const char *s, size_t max, base_http_req_t *r) {
    return base_http_parse(s, strlen(s), max, r);
}

static void test_http_reads_a_whole_get(void **state) {
    (void)state;
    base_http_req_t r;
    const char *req = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: */*\r\n\r\n";
    assert_int_equal(parse(req, 8192, &r), (int)strlen(req));
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.minor, 1);
    assert_int_equal(base_http_status(parse(req, 8192, &r), &r, "/metrics"), 200);
    /* bare LF line ends and HTTP/1.0 are read too */
    assert_int_equal(parse("GET /metrics HTTP/1.0\n\n", 8192, &r), 23);
    assert_int_equal(r.minor, 0);
}

static void test_http_partial_head_asks_for_more(void **state) {
    (void)state;
    base_http_req_t r;
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(req); n++)
        assert_int_equal(base_http_parse(req, n, 8192, &r), 0);
}

static void test_http_rejects_malformed_heads(void **state) {
    (void)state;
    static const char *const bad[] = {
        "garbage\r\n\r\n",                       /* no target, no version */
        "GET metrics HTTP/1.1\r\n\r\n",          /* target not origin-form */
        "GET /metrics HTTP/2.0\r\n\r\n",         /* not HTTP/1.x */
        "GET /metrics HTTP/1.1 extra\r\n\r\n",   /* extra words */
        "GET  /metrics HTTP/1.1\r\n\r\n",        /* two spaces */
        "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET /met\x01rics HTTP/1.1\r\n\r\n",     /* control byte */
        "GET /metrics HTTP/1.1\rX: y\r\n\r\n",   /* a CR inside a line */
        "\r\n\r\n",                              /* empty request line */
    };
    base_http_req_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i], 8192, &r);
        assert_int_equal(rc, BASE_HTTP_EBAD);
        assert_int_equal(base_http_status(rc, &r, "/metrics"), 400);
    }
    /* a NUL byte is refused as well (strlen would stop at it) */
    static const char nul[] = "GET /m\0 HTTP/1.1\r\n\r\n";
    assert_int_equal(base_http_parse(nul, sizeof nul - 1, 8192, &r), BASE_HTTP_EBAD);
    /* a target longer than the path field: its own code, answered 400 too */
    char longpath[600];
    snprintf(longpath, sizeof longpath, "GET /%0400d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(parse(longpath, 8192, &r), BASE_HTTP_ELONG);
    assert_int_equal(base_http_status(BASE_HTTP_ELONG, &r, "/metrics"), 400);
}

static void test_http_head_over_the_limit_is_too_big(void **state) {
    (void)state;
    base_http_req_t r;
    char big[300];
    snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nX: %0200d\r\n", 0);
    /* no end within 64 bytes: too big, whatever comes after */
    assert_int_equal(parse(big, 64, &r), BASE_HTTP_ETOOBIG);
    assert_int_equal(base_http_status(BASE_HTTP_ETOOBIG, &r, "/metrics"), 431);
    /* under the limit and incomplete: read more */
    assert_int_equal(parse(big, 4096, &r), 0);
}

static void test_http_status_for_paths_and_methods(void **state) {
    (void)state;
    base_http_req_t r;
    int rc = parse("GET /other HTTP/1.1\r\n\r\n", 8192, &r);
    assert_int_equal(base_http_status(rc, &r, "/metrics"), 404);
    rc = parse("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 8192, &r);
    assert_int_equal(base_http_status(rc, &r, "/metrics"), 405);
    rc = parse("HEAD /metrics HTTP/1.1\r\n\r\n", 8192, &r);
    assert_int_equal(base_http_status(rc, &r, "/metrics"), 200);
}

static void test_http_response_has_length_and_close(void **state) {
    (void)state;
    base_buf_t o;
    base_buf_init(&o);
    base_http_response(&o, 200, "text/plain", (const uint8_t *)"abc\n", 4, false);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                       "Connection: close\r\n\r\nabc\n";
    assert_int_equal(o.n, strlen(want));
    assert_memory_equal(o.p, want, o.n);
    base_buf_reset(&o);
    base_http_response(&o, 405, "text/plain", NULL, 0, false);
    assert_non_null(memmem(o.p, o.n, "Allow: GET, HEAD\r\n", 18));
    assert_non_null(memmem(o.p, o.n, "\r\n\r\n405 Method Not Allowed\n", 27));
    base_buf_reset(&o);
    base_http_response(&o, 200, "text/plain", (const uint8_t *)"abc\n", 4, true);
    assert_null(memmem(o.p, o.n, "abc", 3)); /* HEAD: the length, no body */
    base_buf_free(&o);
}

static void test_prom_label_escapes_quotes_backslashes_newlines(void **state) {
    (void)state;
    base_buf_t o;
    base_buf_init(&o);
    base_prom_label(&o, "a\"b\\c\nd", 7);
    assert_int_equal(o.n, 10);
    assert_memory_equal(o.p, "a\\\"b\\\\c\\nd", 10);
    base_buf_free(&o);
}

static void test_prom_label_replaces_nul_and_bytes_that_are_not_utf8(void **state) {
    (void)state;
    base_buf_t o;
    base_buf_init(&o);
    base_prom_label(&o, "a\0b\xff\xc3\xa9\xe2\x82", 8); /* NUL, a bad byte, é, a cut one */
    static const char want[] = "a\xef\xbf\xbd" "b\xef\xbf\xbd" "\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd";
    assert_int_equal(o.n, sizeof want - 1);
    assert_memory_equal(o.p, want, sizeof want - 1);
    assert_null(memchr(o.p, 0, o.n));
    base_buf_free(&o);
}

static void test_text_printf_grows_past_its_stack_buffer(void **state) {
    (void)state;
    base_buf_t o;
    base_buf_init(&o);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    base_buf_printf(&o, "<%s>", big);
    assert_int_equal(o.n, sizeof big + 1);
    assert_int_equal(o.p[0], '<');
    assert_int_equal(o.p[o.n - 1], '>');
    base_buf_free(&o);
}

static void test_hist_buckets_take_their_upper_bound(void **state) {
    (void)state;
    base_hist_t h;
    memset(&h, 0, sizeof h);
    base_hist_observe(&h, 0);           /* le 0.0001 */
    base_hist_observe(&h, 100);         /* le 0.0001: bounds are inclusive */
    base_hist_observe(&h, 101);         /* le 0.00025 */
    base_hist_observe(&h, 1000000);     /* le 1 */
    base_hist_observe(&h, 3600000000u); /* +Inf */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[12], 1);
    assert_int_equal(h.counts[BASE_HIST_BUCKETS], 1);
    assert_int_equal(h.count, 5);
    assert_int_equal(h.sum_us, 3601000201u);
}

/* Each bound and the value just past it, for every bucket: the bucket lookup (a halving
 * search) puts each in the bucket whose upper bound is the first at or past it. */
static void test_hist_every_bound_is_its_buckets(void **state) {
    (void)state;
    for (size_t k = 0; k < BASE_HIST_BUCKETS; k++) {
        base_hist_t h;
        memset(&h, 0, sizeof h);
        base_hist_observe(&h, base_hist_bounds_us[k]);
        base_hist_observe(&h, base_hist_bounds_us[k] - 1);
        base_hist_observe(&h, base_hist_bounds_us[k] + 1);
        assert_int_equal(h.counts[k], 2);
        assert_int_equal(h.counts[k + 1], 1);
    }
}

static void test_hist_text_is_cumulative_and_counts_add_up(void **state) {
    (void)state;
    base_hist_t h;
    memset(&h, 0, sizeof h);
    for (uint64_t us = 50; us < 20000000; us *= 3) base_hist_observe(&h, us);
    base_buf_t o;
    base_buf_init(&o);
    base_prom_hist(&o, "x_seconds", "agent=\"echo\"", &h);
    char *text = strndup((const char *)o.p, o.n);
    assert_non_null(strstr(text, "le=\"+Inf\""));
    assert_non_null(strstr(text, "le=\"0.0001\""));
    assert_non_null(strstr(text, "x_seconds_sum{agent=\"echo\"} "));
    unsigned long long last = 0, v;
    size_t buckets = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "x_seconds_bucket{agent=\"echo\",le=", 33) == 0) {
            assert_int_equal(sscanf(strrchr(line, ' '), " %llu", &v), 1);
            assert_true(v >= last);
            last = v;
            buckets++;
        } else if (strncmp(line, "x_seconds_count{agent=\"echo\"} ", 30) == 0) {
            assert_int_equal(sscanf(line + 30, "%llu", &v), 1);
            assert_int_equal(v, h.count);
        }
    }
    assert_int_equal(buckets, BASE_HIST_BUCKETS + 1);
    assert_int_equal(last, h.count); /* +Inf holds every observation */
    free(text);
    base_buf_free(&o);
}

typedef struct seen {
    char names[128];
    int calls;
} seen_t;

static int on_header(void *ctx, const char *name, size_t nn, const char *value, size_t vn) {
    seen_t *s = ctx;
    s->calls++;
    size_t at = strlen(s->names);
    snprintf(s->names + at, sizeof s->names - at, "%.*s=%.*s;", (int)nn, name, (int)vn, value);
    return nn == 4 && memcmp(name, "Stop", 4) == 0 ? -EPERM : 0;
}

static void test_http_read_head_strict_hands_fields_to_the_callback(void **state) {
    (void)state;
    base_http_req_t r;
    seen_t s = {"", 0};
    base_http_head_opts_t o = {.max = 8192, .strict = true, .on_header = on_header, .ctx = &s};
    const char *req = "POST /api/q?a=1&b=2#frag HTTP/1.1\r\nHost:  x:1 \r\nX-A:\t\r\n\r\n";
    assert_int_equal(base_http_read_head(req, strlen(req), &o, &r), (int)strlen(req));
    assert_string_equal(r.path, "/api/q");
    assert_string_equal(r.query, "a=1&b=2");
    assert_string_equal(s.names, "Host=x:1;X-A=;"); /* values trimmed */
    /* a callback's code ends the read with it */
    const char *stop = "GET / HTTP/1.1\r\nStop: now\r\nNever: seen\r\n\r\n";
    s = (seen_t){"", 0};
    assert_int_equal(base_http_read_head(stop, strlen(stop), &o, &r), -EPERM);
    assert_int_equal(s.calls, 1);
    /* strict: CRLF only and an upper-case method; the lenient reader takes both */
    const char *lf = "GET / HTTP/1.1\nHost: x\n\n", *lower = "get / HTTP/1.1\r\n\r\n";
    assert_int_equal(base_http_read_head(lf, strlen(lf), &o, &r), BASE_HTTP_EBAD);
    assert_int_equal(base_http_read_head(lower, strlen(lower), &o, &r), BASE_HTTP_EBAD);
    assert_int_equal(base_http_parse(lf, strlen(lf), 8192, &r), (int)strlen(lf));
    assert_int_equal(base_http_parse(lower, strlen(lower), 8192, &r), (int)strlen(lower));
    /* a query longer than its field */
    char longq[2200] = "GET /?";
    memset(longq + 6, 'q', 2100);
    strcpy(longq + 2106, " HTTP/1.1\r\n\r\n");
    assert_int_equal(base_http_parse(longq, strlen(longq), 8192, &r), BASE_HTTP_ELONG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_read_head_strict_hands_fields_to_the_callback),
        cmocka_unit_test(test_http_reads_a_whole_get),
        cmocka_unit_test(test_http_partial_head_asks_for_more),
        cmocka_unit_test(test_http_rejects_malformed_heads),
        cmocka_unit_test(test_http_head_over_the_limit_is_too_big),
        cmocka_unit_test(test_http_status_for_paths_and_methods),
        cmocka_unit_test(test_http_response_has_length_and_close),
        cmocka_unit_test(test_prom_label_escapes_quotes_backslashes_newlines),
        cmocka_unit_test(test_prom_label_replaces_nul_and_bytes_that_are_not_utf8),
        cmocka_unit_test(test_text_printf_grows_past_its_stack_buffer),
        cmocka_unit_test(test_hist_buckets_take_their_upper_bound),
        cmocka_unit_test(test_hist_every_bound_is_its_buckets),
        cmocka_unit_test(test_hist_text_is_cumulative_and_counts_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
