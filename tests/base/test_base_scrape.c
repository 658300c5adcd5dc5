/* test_base_scrape.c: base/scrape.h, the one /metrics endpoint: a request split over
 * messages is answered once whole and the connection closed; a full table evicts the
 * connection waiting longest, not the newcomer; idle connections are closed by the tick;
 * answers are counted by status. The socket is faked: sends are recorded. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/scrape.h"

typedef struct sent {
    char id[8];
    char data[512];
    size_t n;
} sent_t;

static sent_t sent[32];
static int n_sent, renders;

static void render(void *ctx, base_buf_t *body) {
    (void)ctx;
    renders++;
    base_buf_printf(body, "up 1\n");
}

static void send_cb(void *ctx, const uint8_t *id, size_t idlen, const uint8_t *p, size_t n) {
    (void)ctx;
    if (n_sent >= 32) return;
    sent_t *s = &sent[n_sent++];
    snprintf(s->id, sizeof s->id, "%.*s", (int)idlen, (const char *)id);
    s->n = n < sizeof s->data - 1 ? n : sizeof s->data - 1;
    memcpy(s->data, p ? (const char *)p : "", s->n);
    s->data[s->n] = '\0';
}

static base_scrape_t *make(size_t max_conns) {
    base_scrape_opts_t o = {.max_conns = max_conns, .max_request = 128, .idle_ms = 100,
                            .path = "/metrics", .content_type = "text/plain",
                            .render = render, .send = send_cb};
    base_scrape_t *s = NULL;
    assert_int_equal(base_scrape_new(&s, &o), 0);
    n_sent = renders = 0;
    return s;
}

static void msg(base_scrape_t *s, const char *id, const char *data, int64_t now) {
    base_scrape_on_message(s, (const uint8_t *)id, strlen(id), (const uint8_t *)data,
                           strlen(data), now);
}

static void test_scrape_answers_a_split_request_once_and_closes(void **state) {
    (void)state;
    base_scrape_t *s = make(4);
    msg(s, "a", "", 0); /* connect */
    msg(s, "a", "GET /metrics HTTP/1.1\r\n", 1);
    assert_int_equal(n_sent, 0);
    msg(s, "a", "Host: x\r\n\r\n", 2);
    assert_int_equal(renders, 1);
    assert_int_equal(n_sent, 2); /* the answer, then the close */
    assert_non_null(strstr(sent[0].data, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(sent[0].data, "\r\n\r\nup 1\n"));
    assert_int_equal(sent[1].n, 0);
    msg(s, "a", "GET /metrics HTTP/1.1\r\n\r\n", 3); /* after the answer: ignored */
    assert_int_equal(n_sent, 2);
    assert_int_equal(base_scrape_count(s, 200), 1);
    base_scrape_destroy(&s);
    assert_null(s);
    base_scrape_destroy(&s);
}

static void test_scrape_full_table_evicts_the_longest_waiting(void **state) {
    (void)state;
    base_scrape_t *s = make(2);
    msg(s, "x", "", 0);
    msg(s, "y", "", 5);
    msg(s, "z", "", 10); /* full: x, waiting longest, goes */
    assert_int_equal(n_sent, 1);
    assert_string_equal(sent[0].id, "x");
    assert_int_equal(sent[0].n, 0);
    assert_int_equal(base_scrape_count(s, 0), 1);
    msg(s, "z", "GET /nope HTTP/1.1\r\n\r\n", 11);
    assert_int_equal(n_sent, 3);
    assert_non_null(strstr(sent[1].data, "404"));
    assert_int_equal(renders, 0);
    base_buf_t o;
    base_buf_init(&o);
    base_scrape_render_requests(s, &o, "actorbus_test");
    const char *text = base_buf_cstr(&o);
    assert_non_null(strstr(text, "actorbus_test_metrics_requests_total{status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "actorbus_test_metrics_requests_total{status=\"refused\"} 1\n"));
    base_buf_free(&o);
    base_scrape_destroy(&s);
}

static void test_scrape_tick_closes_idle_connections(void **state) {
    (void)state;
    base_scrape_t *s = make(4);
    assert_int_equal(base_scrape_tick(s, 0), 100);
    msg(s, "a", "", 0);
    msg(s, "b", "", 50);
    msg(s, "a", "GET /met", 60); /* bytes, but no whole head */
    assert_int_equal(base_scrape_tick(s, 99), 100);
    assert_int_equal(n_sent, 0);
    assert_int_equal(base_scrape_tick(s, 100), 150); /* a goes; b is next */
    assert_int_equal(n_sent, 1);
    assert_string_equal(sent[0].id, "a");
    msg(s, "b", "", 120); /* b's scraper went away: nothing to close any more */
    assert_int_equal(base_scrape_tick(s, 200), 300);
    assert_int_equal(n_sent, 1);
    base_scrape_destroy(&s);
}

static void test_scrape_refuses_bad_options_and_oversized_heads(void **state) {
    (void)state;
    base_scrape_opts_t o = {.max_conns = 0, .max_request = 128, .idle_ms = 100,
                            .path = "/metrics", .content_type = "text/plain",
                            .render = render, .send = send_cb};
    base_scrape_t *s = NULL;
    assert_int_equal(base_scrape_new(&s, &o), -EINVAL);
    assert_null(s);
    s = make(1);
    msg(s, "a", "", 0);
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    msg(s, "a", "GET /metrics HTTP/1.1\r\nX: ", 1);
    msg(s, "a", big, 2);
    assert_int_equal(n_sent, 2);
    assert_non_null(strstr(sent[0].data, "431"));
    assert_int_equal(base_scrape_count(s, 431), 1);
    base_scrape_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_answers_a_split_request_once_and_closes),
        cmocka_unit_test(test_scrape_full_table_evicts_the_longest_waiting),
        cmocka_unit_test(test_scrape_tick_closes_idle_connections),
        cmocka_unit_test(test_scrape_refuses_bad_options_and_oversized_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
