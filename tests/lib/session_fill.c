/* session_fill.c: a test helper that fills a SQLite session file (or a postgresql:// URL) through the store's own API
 * (broker/session.h), so tests/broker/test_sessions.py can start a broker on sessions it
 * knows without a runner. Reads commands from stdin, one per line, fields separated by tabs:
 *   create ID APP USER [STATE-JSON]      a session (the state applied as a delta)
 *   append ID AUTHOR EVENT-JSON [DELTA-JSON]
 *   bulk PREFIX N APP USERS              N sessions PREFIX000000.., users u0..u(USERS-1)
 *   events ID N                          N events, each with the delta {"turn": i}
 * Usage: session_fill FILE < commands. Exit 0, or 1 naming the line that failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"
#include "session.h"

#define MAX_FIELDS 6

static int64_t unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* JSON into b (reset first); an absent or empty text gives n == 0. */
static int json(proto_buf_t *b, const char *text, proto_raw_t *out) {
    proto_buf_reset(b);
    *out = (proto_raw_t){NULL, 0};
    if (!text || !*text) return 0;
    proto_error_t e;
    if (proto_json_to_msgpack(text, strlen(text), b, &e) != 0) {
        fprintf(stderr, "session_fill: bad JSON '%s': %s\n", text, e.message);
        return -1;
    }
    *out = (proto_raw_t){b->p, b->n};
    return 0;
}

static int append_one(brk_store_t *st, const char *id, const char *author, proto_raw_t body,
                      proto_raw_t delta, const char *ev_id, brk_sess_err_t *err) {
    brk_sess_event_t ev = {.id = proto_str_of(ev_id), .invocation = proto_str_of("inv-fill"),
                           .author = proto_str_of(author), .ts_ms = unix_ms(), .body = body};
    return brk_store_append(st, proto_str_of(id), &ev, delta, unix_ms(), NULL, err);
}

static int cmd_bulk(brk_store_t *st, char **f, brk_sess_err_t *err) {
    long n = atol(f[2]), users = atol(f[4]);
    if (users < 1) users = 1;
    for (long i = 0; i < n; i++) {
        char id[300], user[32];
        snprintf(id, sizeof id, "%s%06ld", f[1], i);
        snprintf(user, sizeof user, "u%ld", i % users);
        int rc = brk_store_create(st, proto_str_of(id), proto_str_of(f[3]), proto_str_of(user),
                                  (proto_raw_t){NULL, 0}, unix_ms(), err);
        if (rc) return rc;
    }
    return 0;
}

static int cmd_events(brk_store_t *st, char **f, proto_buf_t *b1, proto_buf_t *b2,
                      brk_sess_err_t *err) {
    long n = atol(f[2]);
    proto_raw_t body, delta;
    if (json(b1, "{\"content\":{\"parts\":[{\"text\":\"a reply of some length\"}]}}", &body))
        return -1;
    for (long i = 0; i < n; i++) {
        char d[64], ev_id[32];
        snprintf(d, sizeof d, "{\"turn\":%ld}", i);
        snprintf(ev_id, sizeof ev_id, "ev-%ld", i);
        if (json(b2, d, &delta)) return -1;
        int rc = append_one(st, f[1], i % 2 ? "agent" : "user", body, delta, ev_id, err);
        if (rc) return rc;
    }
    return 0;
}

/* Runs one command line split into fields. Returns: 0, or non-zero (err says why when the
 * store refused). */
static int run(brk_store_t *st, char **f, int n, proto_buf_t *b1, proto_buf_t *b2,
               brk_sess_err_t *err) {
    proto_raw_t a, c;
    if (n == 0) return 0;
    if (!strcmp(f[0], "create") && n >= 4) {
        if (json(b1, n > 4 ? f[4] : NULL, &a)) return -1;
        return brk_store_create(st, proto_str_of(f[1]), proto_str_of(f[2]), proto_str_of(f[3]),
                                a, unix_ms(), err);
    }
    if (!strcmp(f[0], "append") && n >= 4) {
        if (json(b1, f[3], &a) || json(b2, n > 4 ? f[4] : NULL, &c)) return -1;
        return append_one(st, f[1], f[2], a, c, "ev", err);
    }
    if (!strcmp(f[0], "bulk") && n == 5) return cmd_bulk(st, f, err);
    if (!strcmp(f[0], "events") && n == 3) return cmd_events(st, f, b1, b2, err);
    snprintf(err->message, sizeof err->message, "unknown command or wrong field count");
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: session_fill FILE < commands\n");
        return 2;
    }
    brk_store_t *st;
    brk_sess_err_t err = {0};
    const brk_store_ops_t *ops = brk_pg_is_url(argv[1]) ? &brk_store_pg : &brk_store_sqlite;
    if (brk_store_open(&st, ops, argv[1], NULL, &err) != 0) {
        fprintf(stderr, "session_fill: %s\n", err.message);
        return 1;
    }
    proto_buf_t b1, b2;
    proto_buf_init(&b1);
    proto_buf_init(&b2);
    static char line[1 << 20];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, stdin); no++) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        char *f[MAX_FIELDS] = {0}, *save = NULL;
        int n = 0;
        for (char *t = strtok_r(line, "\t", &save); t && n < MAX_FIELDS;
             t = strtok_r(NULL, "\t", &save))
            f[n++] = t;
        err.message[0] = '\0';
        if ((rc = run(st, f, n, &b1, &b2, &err)) != 0)
            fprintf(stderr, "session_fill: line %u: %s\n", no, err.message);
    }
    proto_buf_free(&b1);
    proto_buf_free(&b2);
    brk_store_close(&st);
    return rc ? 1 : 0;
}
