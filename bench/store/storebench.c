/* bench/store/storebench.c: what one session-store call costs the broker's loop, SQLite
 * against PostgreSQL in the same run (bench/store/run.sh). For each store: N creates, N
 * appends (an event and a two-key delta), N gets (state and the newest 10 events), N list
 * pages of 100; prints one JSON line per store and operation with p50, p99 and mean in us.
 *   storebench SQLITE_FILE POSTGRESQL_URL [N]   (N defaults to 2000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void report(const char *store, const char *op, int64_t *ns, int n) {
    qsort(ns, (size_t)n, sizeof *ns, cmp);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)ns[i];
    printf("{\"store\":\"%s\",\"op\":\"%s\",\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"mean_us\":%.1f}\n", store, op, n, ns[n / 2] / 1e3, ns[n * 99 / 100] / 1e3,
           sum / n / 1e3);
    fflush(stdout);
}

static void die(const char *what, const brk_sess_err_t *err) {
    fprintf(stderr, "storebench: %s: %s\n", what, err->message);
    exit(1);
}

static void run(const brk_store_ops_t *ops, const char *path, int n) {
    brk_store_t *st = NULL;
    brk_sess_err_t err = {0};
    if (brk_store_open(&st, ops, path, NULL, &err)) die("open", &err);
    int64_t *ns = calloc((size_t)n, sizeof *ns);
    /* msgpack: {"text": "hello"} as the body; {"turn": 1, "user:last": 1} as the delta */
    static const uint8_t body[] = {0x81, 0xa4, 't', 'e', 'x', 't', 0xa5, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t delta[] = {0x82, 0xa4, 't', 'u', 'r', 'n', 0x01, 0xa9, 'u', 's', 'e',
                                    'r', ':', 'l', 'a', 's', 't', 0x01};
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "bench-%06d", i);
        int64_t t0 = now_ns();
        if (brk_store_create(st, proto_str_of(id), proto_str_of("bench"), proto_str_of("u"),
                             (proto_raw_t){NULL, 0}, 1000, &err))
            die("create", &err);
        ns[i] = now_ns() - t0;
    }
    report(brk_store_name(st), "create", ns, n);
    brk_sess_event_t ev = {.id = proto_str_of("e"), .invocation = proto_str_of("inv"),
                           .author = proto_str_of("user"), .ts_ms = 1,
                           .body = {body, sizeof body}};
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "bench-%06d", i % 100); /* 100 sessions, n/100 events each */
        int64_t t0 = now_ns();
        if (brk_store_append(st, proto_str_of(id), &ev, (proto_raw_t){delta, sizeof delta}, 2,
                             NULL, &err))
            die("append", &err);
        ns[i] = now_ns() - t0;
    }
    report(brk_store_name(st), "append", ns, n);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "bench-%06d", i % 100);
        brk_session_t *s = NULL;
        int64_t t0 = now_ns();
        if (brk_store_get(st, proto_str_of(id), (proto_str_t){NULL, 0}, (proto_str_t){NULL, 0},
                          10, &s, &err))
            die("get", &err);
        ns[i] = now_ns() - t0;
        brk_session_free(&s);
    }
    report(brk_store_name(st), "get (10 events)", ns, n);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    for (int i = 0; i < n; i++) {
        brk_sess_filter_t f = {.limit = 100};
        int64_t t0 = now_ns();
        if (brk_store_list(st, &f, &p, &err)) die("list", &err);
        ns[i] = now_ns() - t0;
    }
    brk_sess_page_free(&p);
    report(brk_store_name(st), "list (page of 100)", ns, n);
    free(ns);
    brk_store_close(&st);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: storebench SQLITE_FILE POSTGRESQL_URL [N]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    if (n < 100 || n > 1000000) n = 2000;
    run(&brk_store_sqlite, argv[1], n);
    run(&brk_store_pg, argv[2], n);
    return 0;
}
