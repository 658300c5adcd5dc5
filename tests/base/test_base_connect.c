/* test_base_connect.c: base/connect.h: a broker pair's endpoint list connects one socket to
 * each endpoint (empty items skipped), sets ZMQ_IMMEDIATE only for a list, and a bad endpoint
 * stops it with an error naming that endpoint. No peer is needed: zmq_connect does not wait. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zmq.h>
#include <cmocka.h>

#include "base/connect.h"

static int immediate(void *s) {
    int v = -1;
    size_t n = sizeof v;
    assert_int_equal(zmq_getsockopt(s, ZMQ_IMMEDIATE, &v, &n), 0);
    return v;
}

static void test_connect_one_endpoint_leaves_immediate_off(void **state) {
    (void)state;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    char failed[64] = "untouched";
    assert_int_equal(base_connect_all(s, "tcp://127.0.0.1:1", failed, sizeof failed), 0);
    assert_int_equal(immediate(s), 0);
    assert_string_equal(failed, "untouched");
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void test_connect_a_pair_sets_immediate_and_skips_empty_items(void **state) {
    (void)state;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(base_connect_all(s, "tcp://127.0.0.1:1,,tcp://127.0.0.1:2,", NULL, 0), 0);
    assert_int_equal(immediate(s), 1);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void test_connect_names_the_endpoint_that_failed(void **state) {
    (void)state;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    char failed[64] = "";
    int rc = base_connect_all(s, "tcp://127.0.0.1:1,nope://x", failed, sizeof failed);
    assert_true(rc < 0);
    assert_string_equal(failed, "nope://x");
    char big[700];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "tcp://", 6);
    assert_int_equal(base_connect_all(s, big, failed, sizeof failed), -ENAMETOOLONG);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_one_endpoint_leaves_immediate_off),
        cmocka_unit_test(test_connect_a_pair_sets_immediate_and_skips_empty_items),
        cmocka_unit_test(test_connect_names_the_endpoint_that_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
