/* test_web.c: what actor-web (tools/web/http.h) reads from browsers: request heads (complete,
 * partial, too large, malformed, smuggling attempts), query-string parameters and their
 * escapes, the Host and token checks that keep other sites out, and the JSON escaping of the
 * strings the server writes itself. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "http.h"

static int parse(const char *s, size_t max_head, size_t max_body, web_req_t *r) {
    return web_req_parse(s, strlen(s), max_head, max_body, r);
}

static void test_web_reads_a_whole_head_with_its_fields(void **state) {
    (void)state;
    web_req_t r;
    const char *s = "POST /api/query?a=1&b=x HTTP/1.1\r\nHost: 127.0.0.1:8088\r\n"
                    "content-length:  12 \r\nX-Actor-Web: 1\r\nX-Actor-Token: t0k\r\n"
                    "Content-Type: application/json\r\n\r\n{\"agent\":1}";
    assert_int_equal(parse(s, 4096, 4096, &r), 1);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/api/query");
    assert_string_equal(r.query, "a=1&b=x");
    assert_string_equal(r.host, "127.0.0.1:8088");
    assert_string_equal(r.token, "t0k");
    assert_string_equal(r.content_type, "application/json");
    assert_true(r.has_xweb);
    assert_int_equal(r.content_length, 12);
    assert_int_equal(r.head_len, strstr(s, "{") - s);
}

static void test_web_waits_for_the_rest_of_a_head(void **state) {
    (void)state;
    web_req_t r;
    const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(s); n++) /* every prefix: not yet */
        assert_int_equal(web_req_parse(s, n, 4096, 0, &r), 0);
    assert_int_equal(parse(s, 4096, 0, &r), 1);
    assert_string_equal(r.query, "");
    assert_false(r.has_xweb);
}

static void test_web_refuses_heads_and_bodies_over_their_bounds(void **state) {
    (void)state;
    web_req_t r;
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    /* no end in max_head bytes: too large, not "wait for more" */
    assert_int_equal(parse(big, 512, 0, &r), -E2BIG);
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 512, 4096, &r),
                     -EFBIG);
    char path[400];
    snprintf(path, sizeof path, "GET /%0300d HTTP/1.1\r\n\r\n", 0); /* path over 256 bytes */
    assert_int_equal(parse(path, 4096, 0, &r), -E2BIG);
}

static void test_web_refuses_malformed_and_smuggling_heads(void **state) {
    (void)state;
    web_req_t r;
    const char *bad[] = {
        "\r\n\r\n",                                     /* no request line */
        "GET\r\n\r\n",                                  /* no target */
        "get / HTTP/1.1\r\n\r\n",                       /* method not upper case */
        "GET index HTTP/1.1\r\n\r\n",                   /* not an origin path */
        "GET / HTTP/2.0\r\n\r\n",                       /* not HTTP/1.x */
        "GET / HTTP/1.1 x\r\n\r\n",                     /* trailing junk */
        "GET /\x01 HTTP/1.1\r\n\r\n",                   /* a control byte in the target */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",            /* header without ':' */
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",        /* space in a name */
        "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",          /* control byte in a value */
        "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",      /* a bare LF */
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", /* twice */
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", /* not supported */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i], 4096, 4096, &r);
        if (rc != -EINVAL) fail_msg("case %zu: rc %d for %s", i, rc, bad[i]);
    }
}

static void test_web_decodes_parameters_and_refuses_bad_escapes(void **state) {
    (void)state;
    char out[16];
    const char *q = "id=a%20b+c&empty=&flag&worker=w%2F1&x=%zz&nul=%00&long=0123456789abcdefgh";
    assert_int_equal(web_query_get(q, "id", out, sizeof out), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(web_query_get(q, "empty", out, sizeof out), 0);
    assert_int_equal(web_query_get(q, "flag", out, sizeof out), 0);
    assert_int_equal(web_query_get(q, "worker", out, sizeof out), 3);
    assert_string_equal(out, "w/1");
    assert_int_equal(web_query_get(q, "i", out, sizeof out), -ENOENT); /* not a prefix match */
    assert_int_equal(web_query_get(q, "missing", out, sizeof out), -ENOENT);
    assert_int_equal(web_query_get(q, "x", out, sizeof out), -EINVAL);
    assert_int_equal(web_query_get(q, "nul", out, sizeof out), -EINVAL);
    assert_int_equal(web_query_get(q, "long", out, sizeof out), -E2BIG);
    assert_int_equal(web_url_decode("%4", 2, out, sizeof out), -EINVAL); /* cut escape */
    assert_int_equal(web_url_decode("%", 1, out, sizeof out), -EINVAL);
}

static void test_web_host_must_name_this_console_on_loopback(void **state) {
    (void)state;
    assert_true(web_host_ok("127.0.0.1:8088", 8088));
    assert_true(web_host_ok("localhost:8088", 8088));
    assert_true(web_host_ok("LOCALHOST:8088", 8088));
    assert_true(web_host_ok("[::1]:8088", 8088));
    assert_true(web_host_ok("127.1.2.3:8088", 8088));
    assert_false(web_host_ok("127.0.0.1:8089", 8088));    /* another port */
    assert_false(web_host_ok("127.0.0.1", 8088));         /* no port */
    assert_false(web_host_ok("evil.example:8088", 8088)); /* a rebound name */
    assert_false(web_host_ok("127.0.0.1.evil.example:8088", 8088));
    assert_false(web_host_ok("128.0.0.1:8088", 8088));
    assert_false(web_host_ok("127.0.0.256:8088", 8088));
    assert_false(web_host_ok("::1:8088", 8088));
    assert_false(web_host_ok("", 8088));
    assert_true(web_is_loopback("127.0.0.1"));
    assert_true(web_is_loopback("::1"));
    assert_false(web_is_loopback("0.0.0.0"));
    assert_false(web_is_loopback("10.0.0.1"));
}

static void test_web_token_compares_whole_tokens(void **state) {
    (void)state;
    assert_true(web_token_eq("s3cret", "s3cret"));
    assert_false(web_token_eq("s3cre", "s3cret"));
    assert_false(web_token_eq("s3cretX", "s3cret"));
    assert_false(web_token_eq("S3cret", "s3cret"));
    assert_false(web_token_eq("", "s3cret"));
    assert_false(web_token_eq("", "")); /* no token configured never matches */
}

static void test_web_json_strings_are_escaped_and_inert_in_html(void **state) {
    (void)state;
    char out[128];
    const char in[] = "a\"b\\c\n</script><&>\x01";
    int n = web_json_str(in, sizeof in - 1, out, sizeof out);
    const char want[] = "\"a\\\"b\\\\c\\u000a\\u003c/script\\u003e\\u003c\\u0026\\u003e"
                        "\\u0001\"";
    assert_string_equal(out, want);
    assert_int_equal(n, (int)strlen(want));
    assert_int_equal(web_json_str("<<<<", 4, out, 20), -E2BIG);
    assert_int_equal(web_json_str("", 0, out, 3), 2);
    assert_string_equal(out, "\"\"");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_web_reads_a_whole_head_with_its_fields),
        cmocka_unit_test(test_web_waits_for_the_rest_of_a_head),
        cmocka_unit_test(test_web_refuses_heads_and_bodies_over_their_bounds),
        cmocka_unit_test(test_web_refuses_malformed_and_smuggling_heads),
        cmocka_unit_test(test_web_decodes_parameters_and_refuses_bad_escapes),
        cmocka_unit_test(test_web_host_must_name_this_console_on_loopback),
        cmocka_unit_test(test_web_token_compares_whole_tokens),
        cmocka_unit_test(test_web_json_strings_are_escaped_and_inert_in_html),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
