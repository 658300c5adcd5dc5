/* test_session.c: the broker's session store (broker/session.h). Every behaviour test runs
 * against EVERY implementation through the one interface ("memory: test_x", "sqlite: test_x",
 * "postgresql: test_x"; the last on a server tests/lib/pg_server.sh starts for this run in a
 * temp directory, and skipped, saying why, where none can start):
 * create/get/list/delete, state deltas (set, nil deletes, app:/user:/temp: scopes, the merge
 * of parallel branches), bounds and bad input. SQLite alone: close and reopen keeps every
 * session, WAL is on, foreign files are refused. The scale test creates 10k sessions and one
 * with 3k events and prints how long listing and loading took (printed, not asserted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"
#include "pgserver.h"
#include "session.h"

typedef struct fx {
    const brk_store_ops_t *ops;
    char dir[64], path[256];
    brk_store_t *st;
} fx_t;

static brk_sess_err_t err;
static proto_buf_t pool[64]; /* msgpack values made from JSON, reused round-robin */
static size_t pool_next;
static proto_buf_t json_out; /* state_of's answer */

static const proto_str_t none = {NULL, 0};
static const proto_raw_t no_raw = {NULL, 0};
#define S(x) proto_str_of(x)

/* A msgpack value from JSON text (valid for the next 63 calls). */
static proto_raw_t J(const char *json) {
    proto_buf_t *b = &pool[pool_next++ % 64];
    proto_buf_reset(b);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), b, NULL), 0);
    return (proto_raw_t){b->p, b->n};
}

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void open_store(fx_t *f, const brk_sess_limits_t *lim) {
    brk_store_close(&f->st);
    int rc = brk_store_open(&f->st, f->ops, f->path, lim, &err);
    if (rc) print_error("open: %s\n", err.message);
    assert_int_equal(rc, 0);
}

static void remove_files(const fx_t *f) {
    char p[300];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
}

static int setup_with(void **state, const brk_store_ops_t *ops) {
    fx_t *f = calloc(1, sizeof *f);
    f->ops = ops;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_session.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/sessions.db", f->dir);
    for (int i = 0; i < 64; i++) proto_buf_init(&pool[i]);
    open_store(f, NULL);
    *state = f;
    return 0;
}

static int setup_mem(void **state) { return setup_with(state, &brk_store_mem); }
static int setup_sql(void **state) { return setup_with(state, &brk_store_sqlite); }

static int setup_pg(void **state) {
    if (!pg_url[0]) {
        print_message("skipped: %s\n", pg_skip);
        *state = NULL;
        return 0;
    }
    pg_admin("DROP TABLE IF EXISTS actorbus_schema, sessions, events, session_state,"
             " user_state, app_state, dedup");
    fx_t *f = calloc(1, sizeof *f);
    f->ops = &brk_store_pg;
    snprintf(f->dir, sizeof f->dir, "%s", pg_dir);
    snprintf(f->path, sizeof f->path, "%s", pg_url);
    for (int i = 0; i < 64; i++) proto_buf_init(&pool[i]);
    open_store(f, NULL);
    *state = f;
    return 0;
}

static int teardown_pg(void **state) {
    fx_t *f = *state;
    if (!f) return 0;
    brk_store_close(&f->st);
    for (int i = 0; i < 64; i++) proto_buf_free(&pool[i]);
    proto_buf_free(&json_out);
    free(f);
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    brk_store_close(&f->st);
    brk_store_close(&f->st); /* safe to repeat */
    remove_files(f);
    rmdir(f->dir);
    for (int i = 0; i < 64; i++) proto_buf_free(&pool[i]);
    proto_buf_free(&json_out);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* The test's fixture; skips the test when its store cannot run here (no PostgreSQL). */
static fx_t *fixture(void **state) {
    if (!*state) skip();
    return *state;
}

static void create(fx_t *f, const char *id, const char *app, const char *user, const char *st) {
    int rc = brk_store_create(f->st, S(id), S(app), S(user), st ? J(st) : no_raw, 1000, &err);
    if (rc) print_error("create %s: %s\n", id, err.message);
    assert_int_equal(rc, 0);
}

static brk_sess_event_t event(const char *id, const char *author, const char *body) {
    brk_sess_event_t ev = {.id = S(id), .invocation = S("inv-1"), .author = S(author),
                           .ts_ms = 1700000000000LL, .body = J(body)};
    return ev;
}

static uint64_t append(fx_t *f, const char *sid, const char *author, const char *delta) {
    uint64_t seq = 0;
    brk_sess_event_t ev = event("e", author, "{\"text\":\"hi\"}");
    int rc = brk_store_append(f->st, S(sid), &ev, delta ? J(delta) : no_raw, 2000, &seq, &err);
    if (rc) print_error("append %s: %s\n", sid, err.message);
    assert_int_equal(rc, 0);
    return seq;
}

static brk_session_t *get(fx_t *f, const char *id, uint32_t n) {
    brk_session_t *s = NULL;
    int rc = brk_store_get(f->st, S(id), none, none, n, &s, &err);
    if (rc) print_error("get %s: %s\n", id, err.message);
    assert_int_equal(rc, 0);
    return s;
}

/* The value of key in a session's state as JSON, or NULL. Valid until the next call. */
static const char *state_of(const brk_session_t *s, const char *key) {
    size_t cur = 0;
    proto_raw_t k, v;
    proto_str_t ks;
    while (proto_map_next(s->state, &cur, &k, &v) == 1) {
        assert_true(proto_raw_str(k, &ks));
        if (!proto_str_eq(ks, key)) continue;
        proto_buf_reset(&json_out);
        assert_int_equal(proto_raw_to_json(v, &json_out), 0);
        return (const char *)json_out.p;
    }
    return NULL;
}

static size_t state_len(const brk_session_t *s) {
    size_t cur = 0, n = 0;
    proto_raw_t k, v;
    while (proto_map_next(s->state, &cur, &k, &v) == 1) n++;
    return n;
}

#define assert_state(s, key, json) assert_string_equal(state_of(s, key) ?: "<absent>", json)
#define assert_no_key(s, key) assert_null(state_of(s, key))

/* ---- create, get, delete ---- */

static void test_create_then_get_returns_the_session(void **state) {
    fx_t *f = fixture(state);
    create(f, "s1", "app", "alice", "{\"k\":1,\"user:lang\":\"en\",\"app:v\":[1,2]}");
    assert_int_equal(brk_store_count(f->st), 1);
    brk_session_t *s = get(f, "s1", 10);
    assert_string_equal(s->id, "s1");
    assert_string_equal(s->app, "app");
    assert_string_equal(s->user, "alice");
    assert_int_equal(s->created_ms, 1000);
    assert_int_equal(s->updated_ms, 1000);
    assert_int_equal(s->n_events, 0);
    assert_int_equal(s->last_seq, 0);
    assert_int_equal(s->n_got, 0);
    assert_int_equal(state_len(s), 3);
    assert_state(s, "k", "1");
    assert_state(s, "user:lang", "\"en\"");
    assert_state(s, "app:v", "[1,2]");
    brk_session_free(&s);
    assert_null(s);
    brk_session_free(&s); /* safe to repeat */
    assert_int_equal(brk_store_create(f->st, S("s1"), S("a2"), S("u"), no_raw, 5, &err),
                     BRK_SESS_EEXIST);
    assert_string_equal(err.code, "already_exists");
    assert_int_equal(brk_store_count(f->st), 1);
}

static void test_merged_state_is_sorted_by_key(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"zeta\":1,\"app:b\":2,\"alpha\":3,\"user:c\":4}");
    brk_session_t *s = get(f, "s", 0);
    const char *want[] = {"alpha", "app:b", "user:c", "zeta"};
    size_t cur = 0, i = 0;
    proto_raw_t k, v;
    proto_str_t ks;
    while (proto_map_next(s->state, &cur, &k, &v) == 1) {
        assert_true(proto_raw_str(k, &ks));
        assert_true(proto_str_eq(ks, want[i++]));
    }
    assert_int_equal(i, 4);
    brk_session_free(&s);
}

static void test_get_unknown_or_foreign_session_is_not_found(void **state) {
    fx_t *f = fixture(state);
    brk_session_t *s = (brk_session_t *)1;
    assert_int_equal(brk_store_get(f->st, S("nope"), none, none, 5, &s, &err), BRK_SESS_ENOENT);
    assert_null(s);
    assert_string_equal(err.code, "not_found");
    assert_string_equal(err.message, "no session 'nope'");
    create(f, "s1", "app", "alice", NULL);
    assert_int_equal(brk_store_get(f->st, S("s1"), S("other"), none, 5, &s, &err),
                     BRK_SESS_ENOENT);
    assert_int_equal(brk_store_get(f->st, S("s1"), S("app"), S("bob"), 5, &s, &err),
                     BRK_SESS_ENOENT);
    assert_int_equal(brk_store_get(f->st, S("s1"), S("app"), S("alice"), 5, &s, &err), 0);
    brk_session_free(&s);
}

static void test_delete_removes_session_events_and_own_state(void **state) {
    fx_t *f = fixture(state);
    create(f, "s1", "a", "u", "{\"own\":1,\"user:u\":2,\"app:a\":3}");
    create(f, "s2", "a", "u", NULL);
    append(f, "s1", "user", "{\"x\":1}");
    assert_int_equal(brk_store_delete(f->st, S("s1"), &err), 1);
    assert_int_equal(brk_store_delete(f->st, S("s1"), &err), 0);
    assert_int_equal(brk_store_count(f->st), 1);
    brk_session_t *s = NULL;
    assert_int_equal(brk_store_get(f->st, S("s1"), none, none, 5, &s, &err), BRK_SESS_ENOENT);
    /* the shared scopes stay: s2 still sees them; a new s1 starts with an empty log */
    s = get(f, "s2", 0);
    assert_state(s, "user:u", "2");
    assert_state(s, "app:a", "3");
    assert_no_key(s, "own");
    brk_session_free(&s);
    create(f, "s1", "a", "u", NULL);
    s = get(f, "s1", 5);
    assert_no_key(s, "own");
    assert_no_key(s, "x");
    assert_int_equal(s->n_events, 0);
    brk_session_free(&s);
    assert_int_equal(append(f, "s1", "user", NULL), 1);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.limit = 10};
    assert_int_equal(brk_store_list(f->st, &q, &p, &err), 0);
    assert_int_equal(p.n, 2);
    brk_sess_page_free(&p);
}

static void test_get_or_create_creates_once(void **state) {
    fx_t *f = fixture(state);
    brk_session_t *s = NULL;
    bool created = false;
    assert_int_equal(brk_store_get_or_create(f->st, S("s"), S("a"), S("u"), 5, 7, &s, &created,
                                             &err), 0);
    assert_true(created);
    assert_int_equal(s->created_ms, 7);
    brk_session_free(&s);
    append(f, "s", "user", "{\"k\":1}");
    assert_int_equal(brk_store_get_or_create(f->st, S("s"), S("a"), S("u"), 5, 8, &s, &created,
                                             &err), 0);
    assert_false(created);
    assert_int_equal(s->n_got, 1);
    assert_state(s, "k", "1");
    brk_session_free(&s);
    assert_int_equal(brk_store_get_or_create(f->st, S("s"), S("b"), S("u"), 5, 9, &s, &created,
                                             &err), BRK_SESS_ENOENT);
    assert_string_equal(err.message, "session 's' belongs to another app or user");
    assert_int_equal(brk_store_count(f->st), 1);
}

/* ---- events ---- */

static void test_append_numbers_events_and_get_returns_the_newest(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", NULL);
    for (int i = 1; i <= 5; i++) {
        char id[16], body[32];
        snprintf(id, sizeof id, "ev%d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        brk_sess_event_t ev = event(id, i % 2 ? "user" : "agent", body);
        ev.ts_ms = 100 + i;
        uint64_t seq = 0;
        assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 3000 + i, &seq, &err), 0);
        assert_int_equal(seq, i);
    }
    brk_session_t *s = get(f, "s", 3);
    assert_int_equal(s->n_events, 5);
    assert_int_equal(s->last_seq, 5);
    assert_int_equal(s->updated_ms, 3005);
    assert_int_equal(s->n_got, 3);
    for (int i = 0; i < 3; i++) { /* 3, 4, 5: oldest first */
        brk_sess_event_t *e = &s->events[i];
        char id[16], body[32];
        snprintf(id, sizeof id, "ev%d", i + 3);
        snprintf(body, sizeof body, "{\"n\":%d}", i + 3);
        assert_int_equal(e->seq, i + 3);
        assert_true(proto_str_eq(e->id, id));
        assert_true(proto_str_eq(e->invocation, "inv-1"));
        assert_true(proto_str_eq(e->author, (i + 3) % 2 ? "user" : "agent"));
        assert_int_equal(e->ts_ms, 103 + i);
        proto_raw_t want = J(body);
        assert_int_equal(e->body.n, want.n);
        assert_memory_equal(e->body.p, want.p, want.n);
    }
    brk_session_free(&s);
    s = get(f, "s", 0);
    assert_int_equal(s->n_got, 0);
    assert_int_equal(s->n_events, 5);
    brk_session_free(&s);
    s = get(f, "s", 100);
    assert_int_equal(s->n_got, 5);
    assert_int_equal(s->events[0].seq, 1);
    brk_session_free(&s);
}

static void test_updated_ms_never_goes_before_created_ms(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "app", "u", NULL); /* at 1000 */
    brk_sess_event_t ev = event("e", "agent", "{}");
    /* The wall clock set back two hours: the session was not updated before it was made. */
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1000 - 7200000, NULL, &err),
                     0);
    brk_session_t *s = get(f, "s", 1);
    assert_int_equal(s->created_ms, 1000);
    assert_int_equal(s->updated_ms, 1000);
    brk_session_free(&s);
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 4000, NULL, &err), 0);
    s = get(f, "s", 1);
    assert_int_equal(s->updated_ms, 4000);
    brk_session_free(&s);
}

static void test_append_to_unknown_session_is_not_found(void **state) {
    fx_t *f = fixture(state);
    brk_sess_event_t ev = event("e", "user", "1");
    assert_int_equal(brk_store_append(f->st, S("ghost"), &ev, J("{\"k\":1}"), 1, NULL, &err),
                     BRK_SESS_ENOENT);
    assert_string_equal(err.code, "not_found");
    assert_int_equal(brk_store_count(f->st), 0);
}

static void test_get_stops_at_max_get_bytes_keeping_the_newest(void **state) {
    fx_t *f = fixture(state);
    brk_sess_limits_t lim;
    brk_sess_limits_default(&lim);
    lim.max_get_bytes = 100; /* each event below is 1 + 5 + 4 + 21 = 31 bytes */
    open_store(f, &lim);
    create(f, "s", "a", "u", NULL);
    for (int i = 0; i < 6; i++) {
        brk_sess_event_t ev = event("e", "user", "\"0123456789abcdefghij\"");
        assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err), 0);
    }
    brk_session_t *s = get(f, "s", 6);
    assert_int_equal(s->n_got, 3);
    assert_int_equal(s->events[0].seq, 4);
    assert_int_equal(s->events[2].seq, 6);
    assert_int_equal(s->n_events, 6);
    brk_session_free(&s);
}

/* A full log drops its oldest events: by count, then by bytes; the newest always stays, the
 * state stays whole, and seq goes on counting (issue 11 point 7). */
static void test_full_session_drops_its_oldest_events(void **state) {
    fx_t *f = *state;
    brk_sess_limits_t lim;
    brk_sess_limits_default(&lim);
    lim.max_log_events = 4;
    lim.max_log_bytes = 70; /* bodies of 21 bytes: three fit */
    open_store(f, &lim);
    create(f, "s", "a", "u", NULL);
    append(f, "s", "agent", "{\"k\":1}");
    for (int i = 0; i < 9; i++) {
        brk_sess_event_t ev = event("e", "user", "\"0123456789abcdefghij\"");
        assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err), 0);
    }
    brk_session_t *s = get(f, "s", 100);
    assert_int_equal(s->n_events, 3);
    assert_int_equal(s->n_got, 3);
    assert_int_equal(s->events[0].seq, 8);
    assert_int_equal(s->events[2].seq, 10);
    assert_string_equal(state_of(s, "k"), "1");
    brk_session_free(&s);
    lim.max_log_bytes = 1; /* smaller than any event: the newest still stays */
    open_store(f, &lim);   /* (the memory store starts empty again) */
    create(f, "t", "a", "u", NULL);
    append(f, "t", "agent", NULL);
    append(f, "t", "agent", NULL);
    s = get(f, "t", 100);
    assert_int_equal(s->n_events, 1);
    assert_int_equal(s->events[0].seq, 2);
    brk_session_free(&s);
}

/* ---- state deltas ---- */

static void test_delta_sets_keys_and_nil_deletes(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"keep\":true}");
    append(f, "s", "agent", "{\"a\":1,\"b\":{\"deep\":[1,2]}}");
    append(f, "s", "agent", "{\"a\":null,\"c\":\"three\",\"never\":null}");
    brk_session_t *s = get(f, "s", 0);
    assert_int_equal(state_len(s), 3);
    assert_no_key(s, "a");
    assert_state(s, "b", "{\"deep\":[1,2]}");
    assert_state(s, "c", "\"three\"");
    assert_state(s, "keep", "true");
    assert_int_equal(s->updated_ms, 2000);
    brk_session_free(&s);
}

static void test_delta_applies_keys_in_map_order(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", NULL);
    /* {"x": 1, "x": 2, "y": 1, "y": nil}: a map may name a key twice; the later entry wins */
    static const uint8_t dup[] = {0x84, 0xa1, 'x', 1, 0xa1, 'x', 2, 0xa1, 'y', 1, 0xa1, 'y', 0xc0};
    brk_sess_event_t ev = event("e", "agent", "1");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, (proto_raw_t){dup, sizeof dup}, 1,
                                      NULL, &err), 0);
    brk_session_t *s = get(f, "s", 0);
    assert_state(s, "x", "2");
    assert_no_key(s, "y");
    brk_session_free(&s);
}

static void test_app_and_user_keys_are_shared_by_their_sessions(void **state) {
    fx_t *f = fixture(state);
    create(f, "s1", "shop", "alice", NULL);
    create(f, "s2", "shop", "alice", NULL);
    create(f, "s3", "shop", "bob", NULL);
    create(f, "s4", "bank", "alice", NULL);
    append(f, "s1", "agent", "{\"app:color\":\"red\",\"user:lang\":\"en\",\"own\":1}");
    brk_session_t *s = get(f, "s2", 0);
    assert_state(s, "app:color", "\"red\"");
    assert_state(s, "user:lang", "\"en\"");
    assert_no_key(s, "own");
    brk_session_free(&s);
    s = get(f, "s3", 0);
    assert_state(s, "app:color", "\"red\"");
    assert_no_key(s, "user:lang");
    brk_session_free(&s);
    s = get(f, "s4", 0);
    assert_int_equal(state_len(s), 0);
    brk_session_free(&s);
    /* bob's session deletes the app key for everyone; alice's user key stays */
    append(f, "s3", "agent", "{\"app:color\":null,\"user:lang\":\"de\"}");
    s = get(f, "s1", 0);
    assert_no_key(s, "app:color");
    assert_state(s, "user:lang", "\"en\"");
    assert_state(s, "own", "1");
    brk_session_free(&s);
    s = get(f, "s3", 0);
    assert_state(s, "user:lang", "\"de\"");
    brk_session_free(&s);
}

static void test_temp_keys_are_never_stored(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"temp:init\":1,\"k\":0}");
    append(f, "s", "agent", "{\"temp:scratch\":[1,2,3],\"k\":2,\"temp:\":1}");
    brk_session_t *s = get(f, "s", 5);
    assert_int_equal(state_len(s), 1);
    assert_state(s, "k", "2");
    assert_int_equal(s->n_got, 1); /* the event itself is kept */
    brk_session_free(&s);
}

/* ADK's most reported failure: parallel branches writing state lose each other's writes.
 * Here each delta names only its keys, applied in the order the events are appended. */
static void test_parallel_branch_deltas_merge_key_by_key_in_event_order(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"before\":0}");
    append(f, "s", "branch_a", "{\"a1\":1,\"shared\":\"A1\"}");
    append(f, "s", "branch_b", "{\"b1\":1,\"shared\":\"B1\",\"user:seen\":[\"b\"]}");
    append(f, "s", "branch_a", "{\"a2\":2,\"app:hits\":1}");
    append(f, "s", "branch_b", "{\"shared\":\"B2\",\"b2\":2}");
    brk_session_t *s = get(f, "s", 10);
    assert_state(s, "before", "0");
    assert_state(s, "a1", "1");
    assert_state(s, "a2", "2");
    assert_state(s, "b1", "1");
    assert_state(s, "b2", "2");
    assert_state(s, "shared", "\"B2\"");
    assert_state(s, "user:seen", "[\"b\"]");
    assert_state(s, "app:hits", "1");
    assert_int_equal(s->n_got, 4);
    const char *authors[] = {"branch_a", "branch_b", "branch_a", "branch_b"};
    for (int i = 0; i < 4; i++) assert_true(proto_str_eq(s->events[i].author, authors[i]));
    brk_session_free(&s);
    append(f, "s", "branch_a", "{\"shared\":\"A3\"}"); /* the last appended wins */
    s = get(f, "s", 0);
    assert_state(s, "shared", "\"A3\"");
    assert_state(s, "b2", "2");
    brk_session_free(&s);
}

/* ---- listing ---- */

static void create_many(fx_t *f, int n) {
    for (int i = 0; i < n; i++) {
        int k = (i * 7) % n; /* not in id order */
        char id[16], user[8];
        snprintf(id, sizeof id, "s%02d", k);
        snprintf(user, sizeof user, "u%d", k % 3);
        create(f, id, k < 20 ? "a" : "b", user, NULL);
    }
}

/* Lists one page; returns its size and checks its ids are first..first+n-1. */
static size_t page_of(fx_t *f, brk_sess_filter_t *q, brk_sess_page_t *p, int first) {
    int rc = brk_store_list(f->st, q, p, &err);
    if (rc) print_error("list: %s\n", err.message);
    assert_int_equal(rc, 0);
    for (size_t i = 0; first >= 0 && i < p->n; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%02d", first + (int)i);
        assert_string_equal(p->items[i].id, id);
    }
    return p->n;
}

static void test_list_pages_through_sessions_in_id_order(void **state) {
    fx_t *f = fixture(state);
    create_many(f, 25);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.limit = 10};
    assert_int_equal(page_of(f, &q, &p, 0), 10);
    assert_string_equal(p.next, "s09");
    assert_string_equal(p.items[3].app, "a");
    assert_string_equal(p.items[4].user, "u1");
    q.after = S("s09");
    assert_int_equal(page_of(f, &q, &p, 10), 10);
    assert_string_equal(p.next, "s19");
    q.after = S("s19");
    assert_int_equal(page_of(f, &q, &p, 20), 5);
    assert_null(p.next);
    q.after = S("s105"); /* a cursor need not name a session: "s11" sorts after "s105" */
    assert_int_equal(page_of(f, &q, &p, 11), 10);
    q.after = S("s24");
    assert_int_equal(page_of(f, &q, &p, -1), 0);
    assert_null(p.next);
    q = (brk_sess_filter_t){.limit = 0}; /* the default page */
    assert_int_equal(page_of(f, &q, &p, 0), 25);
    assert_null(p.next);
    brk_sess_page_free(&p);
    brk_sess_page_free(&p);
}

static void test_list_exact_page_has_no_next_and_filters_apply(void **state) {
    fx_t *f = fixture(state);
    create_many(f, 25);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.app = S("a"), .limit = 10};
    assert_int_equal(page_of(f, &q, &p, 0), 10);
    assert_string_equal(p.next, "s09");
    q.after = S("s09");
    assert_int_equal(page_of(f, &q, &p, 10), 10); /* s10..s19: exactly the rest of app a */
    assert_null(p.next);
    q = (brk_sess_filter_t){.app = S("b"), .limit = 100};
    assert_int_equal(page_of(f, &q, &p, 20), 5);
    q = (brk_sess_filter_t){.user = S("u1"), .limit = 100};
    assert_int_equal(page_of(f, &q, &p, -1), 8); /* 1, 4, ..., 22 */
    for (size_t i = 0; i < p.n; i++) assert_string_equal(p.items[i].user, "u1");
    q = (brk_sess_filter_t){.app = S("a"), .user = S("u2"), .limit = 100};
    assert_int_equal(page_of(f, &q, &p, -1), 6); /* 2, 5, ..., 17 */
    assert_string_equal(p.items[5].id, "s17");
    q = (brk_sess_filter_t){.app = S("nobody"), .limit = 100};
    assert_int_equal(page_of(f, &q, &p, -1), 0);
    brk_sess_page_free(&p);
}

static void test_list_reports_event_counts_and_survives_deletes(void **state) {
    fx_t *f = fixture(state);
    create_many(f, 25);
    append(f, "s03", "user", NULL);
    append(f, "s03", "agent", NULL);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.limit = 5};
    assert_int_equal(page_of(f, &q, &p, 0), 5);
    assert_int_equal(p.items[3].n_events, 2);
    assert_int_equal(p.items[3].updated_ms, 2000);
    assert_int_equal(p.items[2].n_events, 0);
    assert_int_equal(brk_store_delete(f->st, S("s05"), &err), 1);
    assert_int_equal(brk_store_delete(f->st, S("s00"), &err), 1);
    create(f, "s055", "a", "u", NULL);
    char cursor[16];
    snprintf(cursor, sizeof cursor, "%s", p.next); /* the next list empties the page */
    q.after = S(cursor);
    assert_int_equal(page_of(f, &q, &p, -1), 5);
    const char *want[] = {"s055", "s06", "s07", "s08", "s09"};
    for (int i = 0; i < 5; i++) assert_string_equal(p.items[i].id, want[i]);
    brk_sess_page_free(&p);
}

/* ---- bounds and bad input ---- */

static void test_bad_names_are_refused_naming_the_field(void **state) {
    fx_t *f = fixture(state);
    char long_id[300];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(brk_store_create(f->st, S(""), S("a"), S("u"), no_raw, 1, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.code, "bad_request");
    assert_string_equal(err.message, "field 'session' must not be empty");
    assert_int_equal(brk_store_create(f->st, S(long_id), S("a"), S("u"), no_raw, 1, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'session' is longer than 256 bytes");
    assert_int_equal(brk_store_create(f->st, S("s"), S("a\xff"), S("u"), no_raw, 1, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'app' is not valid UTF-8");
    assert_int_equal(brk_store_create(f->st, S("s"), S("a"), (proto_str_t){"u\0v", 3}, no_raw,
                                      1, &err), BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'user' holds a NUL byte");
    assert_int_equal(brk_store_create(f->st, S("s"), S(""), S("u"), no_raw, 1, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'app' must not be empty");
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.after = S("\xc0\x80")};
    assert_int_equal(brk_store_list(f->st, &q, &p, &err), BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'after' is not valid UTF-8");
    assert_int_equal(brk_store_delete(f->st, S(long_id), &err), BRK_SESS_EINVAL);
    assert_int_equal(brk_store_count(f->st), 0);
}

static void test_bad_deltas_are_refused_and_change_nothing(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"k\":1}");
    brk_sess_event_t ev = event("e", "agent", "1");
    struct { proto_raw_t delta; int rc; const char *msg; } cases[] = {
        {J("[1,2]"), BRK_SESS_EINVAL, "state_delta must be a map"},
        {{(const uint8_t *)"\x81\xa1k", 3}, BRK_SESS_EINVAL, NULL}, /* cut short */
        {J("{\"ok\":1,\"\":2}"), BRK_SESS_EINVAL, "state_delta key 1 is empty"},
        {{(const uint8_t *)"\x81\x01\x02", 3}, BRK_SESS_EINVAL, "state_delta key 0 is not a "
                                                                 "string"},
        {{(const uint8_t *)"\x81\xa2\xff\xfe\x01", 5}, BRK_SESS_EINVAL,
         "state_delta key 0 is not UTF-8 without NUL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = brk_store_append(f->st, S("s"), &ev, cases[i].delta, 9, NULL, &err);
        assert_int_equal(rc, cases[i].rc);
        assert_string_equal(err.code, "bad_request");
        if (cases[i].msg) assert_string_equal(err.message, cases[i].msg);
    }
    assert_non_null(strstr(err.message, "state_delta key"));
    char key[300] = "{\"";
    memset(key + 2, 'k', 257);
    strcpy(key + 259, "\":1}");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, J(key), 9, NULL, &err),
                     BRK_SESS_EINVAL);
    assert_non_null(strstr(err.message, "is longer than 256 bytes"));
    assert_int_equal(brk_store_create(f->st, S("t"), S("a"), S("u"), J("\"str\""), 1, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "state must be a map");
    brk_session_t *s = get(f, "s", 10); /* nothing changed */
    assert_int_equal(s->n_events, 0);
    assert_int_equal(state_len(s), 1);
    assert_int_equal(s->updated_ms, 1000);
    brk_session_free(&s);
    assert_int_equal(brk_store_count(f->st), 1);
}

static void test_bad_events_are_refused(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", NULL);
    brk_sess_event_t ev = event("e", "agent", "1");
    ev.body = (proto_raw_t){(const uint8_t *)"\x92\x01", 2};
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_EINVAL);
    assert_non_null(strstr(err.message, "the event is not valid msgpack"));
    ev.body = (proto_raw_t){(const uint8_t *)"\x01\x02", 2}; /* two values */
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_EINVAL);
    ev.body = no_raw;
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "the event has no body");
    ev = event("", "agent", "1");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'event.id' must not be empty");
    ev = event("e", "\xed\xa0\x80", "1"); /* a surrogate */
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'event.author' is not valid UTF-8");
    brk_session_t *s = get(f, "s", 10);
    assert_int_equal(s->n_events, 0);
    brk_session_free(&s);
}

static void test_limits_are_enforced_with_errors(void **state) {
    fx_t *f = fixture(state);
    brk_sess_limits_t lim;
    brk_sess_limits_default(&lim);
    lim.max_value = 8;
    lim.max_event = 64;
    lim.max_delta_keys = 3;
    lim.max_events = 10;
    lim.max_page = 5;
    lim.max_sessions = 2;
    open_store(f, &lim);
    create(f, "s", "a", "u", NULL);
    brk_sess_event_t ev = event("e", "agent", "1");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, J("{\"k\":\"0123456789\"}"), 1, NULL,
                                      &err), BRK_SESS_ETOOBIG);
    assert_string_equal(err.code, "too_large");
    assert_string_equal(err.message, "state_delta value of 'k' is 11 bytes, over the limit of 8");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, J("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}"),
                                      1, NULL, &err), BRK_SESS_EINVAL);
    assert_string_equal(err.message, "state_delta has 4 keys, over the limit of 3");
    ev.body = J("\"0123456789012345678901234567890123456789012345678901234567890123\"");
    assert_int_equal(brk_store_append(f->st, S("s"), &ev, no_raw, 1, NULL, &err),
                     BRK_SESS_ETOOBIG);
    assert_string_equal(err.message, "the event is 66 bytes, over the limit of 64");
    brk_session_t *s = NULL;
    assert_int_equal(brk_store_get(f->st, S("s"), none, none, 11, &s, &err), BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'events' is 11, over the limit of 10");
    assert_null(s);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.limit = 6};
    assert_int_equal(brk_store_list(f->st, &q, &p, &err), BRK_SESS_EINVAL);
    assert_string_equal(err.message, "field 'limit' is 6, over the limit of 5");
    create(f, "t", "a", "u", NULL);
    assert_int_equal(brk_store_create(f->st, S("v"), S("a"), S("u"), no_raw, 1, &err),
                     BRK_SESS_EFULL);
    assert_string_equal(err.code, "overloaded");
    assert_string_equal(err.message, "the session store is full (max-sessions 2)");
    assert_int_equal(brk_store_delete(f->st, S("t"), &err), 1);
    create(f, "v", "a", "u", NULL); /* room again */
}

/* ---- the stores kept in a database ---- */

static void test_store_survives_close_and_reopen(void **state) {
    fx_t *f = fixture(state);
    create(f, "s1", "a", "u", "{\"k\":1}");
    create(f, "s2", "a", "v", NULL);
    append(f, "s1", "user", "{\"user:lang\":\"fr\",\"app:n\":2,\"k\":null,\"j\":3}");
    append(f, "s1", "agent", NULL);
    assert_int_equal(brk_store_delete(f->st, S("s2"), &err), 1);
    create(f, "s3", "b", "u", NULL);
    brk_store_close(&f->st);
    open_store(f, NULL);
    assert_int_equal(brk_store_count(f->st), 2);
    brk_session_t *s = get(f, "s1", 10);
    assert_int_equal(s->n_events, 2);
    assert_int_equal(s->last_seq, 2);
    assert_int_equal(s->n_got, 2);
    assert_true(proto_str_eq(s->events[1].author, "agent"));
    assert_no_key(s, "k");
    assert_state(s, "j", "3");
    assert_state(s, "user:lang", "\"fr\"");
    assert_state(s, "app:n", "2");
    assert_int_equal(s->created_ms, 1000);
    assert_int_equal(s->updated_ms, 2000);
    brk_session_free(&s);
    assert_int_equal(append(f, "s1", "user", NULL), 3); /* numbering goes on */
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    brk_sess_filter_t q = {.limit = 10};
    assert_int_equal(brk_store_list(f->st, &q, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.items[0].id, "s1");
    assert_string_equal(p.items[1].id, "s3");
    brk_sess_page_free(&p);
}

static void test_sqlite_uses_wal_and_refuses_foreign_files(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", NULL);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    brk_store_close(&f->st);
    remove_files(f);
    FILE *junk = fopen(f->path, "w");
    fputs("this is not a database, just some text that is long enough to have a header......."
          "...............................................................................",
          junk);
    fclose(junk);
    assert_int_equal(brk_store_open(&f->st, f->ops, f->path, NULL, &err), BRK_SESS_EIO);
    assert_null(f->st);
    assert_string_equal(err.code, "internal");
    assert_non_null(strstr(err.message, "not a database"));
    remove_files(f);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(brk_store_open(&f->st, f->ops, f->path, NULL, &err), BRK_SESS_EIO);
    assert_non_null(strstr(err.message, "session schema version 99 is not supported"));
    char nowhere[160];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/x.db", f->dir);
    assert_int_equal(brk_store_open(&f->st, f->ops, nowhere, NULL, &err), BRK_SESS_EIO);
}

/* ---- scale ---- */

#define N_SESSIONS 10000
#define N_EVENTS 3000

static void fill_for_scale(fx_t *f) {
    brk_sess_limits_t lim;
    brk_sess_limits_default(&lim);
    open_store(f, &lim);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N_SESSIONS; i++) {
        char id[32], user[16];
        snprintf(id, sizeof id, "sess-%06d", (i * 7919) % N_SESSIONS);
        snprintf(user, sizeof user, "user%d", i % 10);
        create(f, id, "bench", user, NULL);
    }
    double create_ms = ms_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N_EVENTS; i++) {
        char delta[64];
        snprintf(delta, sizeof delta, "{\"turn\":%d,\"user:last\":%d}", i, i);
        brk_sess_event_t ev = event("ev", i % 2 ? "agent" : "user",
                                    "{\"content\":{\"parts\":[{\"text\":\"a reply of some length, "
                                    "as a model would give it\"}]},\"partial\":false}");
        assert_int_equal(brk_store_append(f->st, S("sess-004242"), &ev, J(delta), ms_now(),
                                          NULL, &err), 0);
    }
    printf("# %s: created %d sessions in %.1f ms; appended %d events in %.1f ms\n",
           brk_store_name(f->st), N_SESSIONS, create_ms, N_EVENTS, ms_since(&t0));
    fflush(stdout);
}

static size_t list_all(fx_t *f, uint32_t limit, brk_sess_filter_t q, size_t *pages) {
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    char after[64] = "";
    size_t total = 0;
    *pages = 0;
    q.limit = limit;
    for (;;) {
        q.after = S(after);
        assert_int_equal(brk_store_list(f->st, &q, &p, &err), 0);
        total += p.n;
        ++*pages;
        if (!p.next) break;
        snprintf(after, sizeof after, "%s", p.next);
    }
    brk_sess_page_free(&p);
    return total;
}

static void test_scale_lists_10k_sessions_and_loads_3k_events(void **state) {
    fx_t *f = fixture(state);
    fill_for_scale(f);
    brk_sess_page_t p;
    brk_sess_page_init(&p);
    struct timespec t0;
    brk_sess_filter_t q = {.limit = 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(brk_store_list(f->st, &q, &p, &err), 0);
    double page_ms = ms_since(&t0);
    assert_int_equal(p.n, 1000);
    assert_string_equal(p.items[0].id, "sess-000000");
    assert_string_equal(p.next, "sess-000999");
    brk_sess_page_free(&p);
    size_t pages;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(list_all(f, 1000, (brk_sess_filter_t){0}, &pages), N_SESSIONS);
    double all_ms = ms_since(&t0);
    assert_int_equal(pages, 10);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(list_all(f, 100, (brk_sess_filter_t){0}, &pages), N_SESSIONS);
    double all100_ms = ms_since(&t0);
    assert_int_equal(pages, 100);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    brk_sess_filter_t fu = {.app = S("bench"), .user = S("user3")};
    assert_int_equal(list_all(f, 1000, fu, &pages), N_SESSIONS / 10);
    double user_ms = ms_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    brk_session_t *s = get(f, "sess-004242", N_EVENTS);
    double get_ms = ms_since(&t0);
    assert_int_equal(s->n_got, N_EVENTS);
    assert_int_equal(s->n_events, N_EVENTS);
    assert_int_equal(s->events[0].seq, 1);
    assert_int_equal(s->events[N_EVENTS - 1].seq, N_EVENTS);
    assert_state(s, "turn", "2999");
    assert_state(s, "user:last", "2999");
    brk_session_free(&s);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s = get(f, "sess-004242", 100);
    double get100_ms = ms_since(&t0);
    assert_int_equal(s->n_got, 100);
    assert_int_equal(s->events[0].seq, N_EVENTS - 99);
    brk_session_free(&s);
    printf("# %s: list one page of 1000 of %d sessions: %.2f ms; all %d in pages of 1000: "
           "%.2f ms; in pages of 100: %.2f ms; one user's %d: %.2f ms\n",
           brk_store_name(f->st), N_SESSIONS, page_ms, N_SESSIONS, all_ms, all100_ms,
           N_SESSIONS / 10, user_ms);
    printf("# %s: get a session with all %d events: %.2f ms; with the newest 100: %.2f ms\n",
           brk_store_name(f->st), N_EVENTS, get_ms, get100_ms);
    fflush(stdout);
}

/* ---- PostgreSQL only ---- */

static void test_pg_refuses_other_schema_versions_and_bad_urls(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", NULL);
    brk_store_close(&f->st);
    pg_admin("UPDATE actorbus_schema SET version = 99");
    assert_int_equal(brk_store_open(&f->st, f->ops, f->path, NULL, &err), BRK_SESS_EIO);
    assert_null(f->st);
    assert_string_equal(err.code, "internal");
    assert_non_null(strstr(err.message, "session schema version 99 is not supported"));
    pg_admin("UPDATE actorbus_schema SET version = 1");
    char nowhere[300];
    snprintf(nowhere, sizeof nowhere, "postgresql://actorbus@/postgres?host=%s/none", f->dir);
    assert_int_equal(brk_store_open(&f->st, f->ops, nowhere, NULL, &err), BRK_SESS_EIO);
    assert_non_null(strstr(err.message, "connect"));
    assert_int_equal(brk_store_open(&f->st, f->ops, "/tmp/x.db", NULL, &err), BRK_SESS_EIO);
    open_store(f, NULL);
    assert_int_equal(brk_store_count(f->st), 1);
}

/* The server drops the store's connection (a restart, a failover of the database): the call
 * that meets it fails with EIO, and the next one connects again. */
static void test_pg_reconnects_after_the_server_drops_it(void **state) {
    fx_t *f = fixture(state);
    create(f, "s", "a", "u", "{\"k\":1}");
    pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE application_name = 'actor-broker'");
    brk_session_t *s = NULL;
    int rc = brk_store_get(f->st, S("s"), none, none, 0, &s, &err);
    if (rc == 0) brk_session_free(&s); /* raced: the drop came after the call */
    else assert_int_equal(rc, BRK_SESS_EIO);
    s = get(f, "s", 0);
    assert_state(s, "k", "1");
    brk_session_free(&s);
    assert_int_equal(append(f, "s", "user", NULL), 1);
}

#define T3(t) {"memory: " #t, t, setup_mem, teardown, NULL}, \
              {"sqlite: " #t, t, setup_sql, teardown, NULL}, \
              {"postgresql: " #t, t, setup_pg, teardown_pg, NULL}
#define SQL_ONLY(t) {"sqlite: " #t, t, setup_sql, teardown, NULL}
#define MEM_SQL(t) {"memory: " #t, t, setup_mem, teardown, NULL}, SQL_ONLY(t)
#define PG_ONLY(t) {"postgresql: " #t, t, setup_pg, teardown_pg, NULL}

int main(void) {
    const struct CMUnitTest tests[] = {
        T3(test_create_then_get_returns_the_session),
        T3(test_merged_state_is_sorted_by_key),
        T3(test_get_unknown_or_foreign_session_is_not_found),
        T3(test_delete_removes_session_events_and_own_state),
        T3(test_get_or_create_creates_once),
        T3(test_append_numbers_events_and_get_returns_the_newest),
        T3(test_append_to_unknown_session_is_not_found),
        T3(test_updated_ms_never_goes_before_created_ms),
        T3(test_get_stops_at_max_get_bytes_keeping_the_newest),
        T3(test_full_session_drops_its_oldest_events),
        T3(test_delta_sets_keys_and_nil_deletes),
        T3(test_delta_applies_keys_in_map_order),
        T3(test_app_and_user_keys_are_shared_by_their_sessions),
        T3(test_temp_keys_are_never_stored),
        T3(test_parallel_branch_deltas_merge_key_by_key_in_event_order),
        T3(test_list_pages_through_sessions_in_id_order),
        T3(test_list_exact_page_has_no_next_and_filters_apply),
        T3(test_list_reports_event_counts_and_survives_deletes),
        T3(test_bad_names_are_refused_naming_the_field),
        T3(test_bad_deltas_are_refused_and_change_nothing),
        T3(test_bad_events_are_refused),
        T3(test_limits_are_enforced_with_errors),
        SQL_ONLY(test_store_survives_close_and_reopen),
        PG_ONLY(test_store_survives_close_and_reopen),
        SQL_ONLY(test_sqlite_uses_wal_and_refuses_foreign_files),
        PG_ONLY(test_pg_refuses_other_schema_versions_and_bad_urls),
        PG_ONLY(test_pg_reconnects_after_the_server_drops_it),
        T3(test_scale_lists_10k_sessions_and_loads_3k_events),
    };
    return cmocka_run_group_tests(tests, pg_server_start, pg_server_stop);
}
