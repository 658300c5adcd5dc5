/* broker/store_pg.c: the PostgreSQL session store (brk_store_pg), picked by --sessions
 * postgresql://... The tables mirror store_sqlite.c's (names in COLLATE "C", so ids sort by
 * their bytes as session.h's paging wants). Every call is one batch of pg.h: its statements
 * are pipelined and closed by one Sync, so a create, an append with its whole delta, a get
 * with its three state scopes and its events, each cost ONE round trip and run as one
 * transaction. Writes that meet a missing session change nothing (they select from sessions),
 * so an append to an unknown session is a clean "not found", not a rolled-back error. */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define SCHEMA_VERSION 1
#define OID_TEXT 25
#define OID_BYTEA 17
#define OID_INT8 20
#define SCHEMA_LOCK "4242000001" /* pg_advisory_xact_lock: two brokers set up one at a time */

static const char SCHEMA[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ");"
    "CREATE TABLE IF NOT EXISTS actorbus_schema (version int NOT NULL);"
    "INSERT INTO actorbus_schema SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM actorbus_schema);"
    "CREATE TABLE IF NOT EXISTS sessions ("
    " id text COLLATE \"C\" PRIMARY KEY, app_name text COLLATE \"C\" NOT NULL,"
    " user_id text COLLATE \"C\" NOT NULL, created_ms bigint NOT NULL,"
    " updated_ms bigint NOT NULL, n_events bigint NOT NULL DEFAULT 0,"
    " last_seq bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS sessions_app ON sessions (app_name, id);"
    "CREATE INDEX IF NOT EXISTS sessions_app_user ON sessions (app_name, user_id, id);"
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id, id);"
    "CREATE TABLE IF NOT EXISTS events ("
    " session text COLLATE \"C\" NOT NULL, seq bigint NOT NULL, id text NOT NULL,"
    " invocation text NOT NULL, author text NOT NULL, ts_ms bigint NOT NULL,"
    " body bytea NOT NULL, PRIMARY KEY (session, seq));"
    "CREATE TABLE IF NOT EXISTS session_state ("
    " session text COLLATE \"C\" NOT NULL, key text COLLATE \"C\" NOT NULL,"
    " value bytea NOT NULL, PRIMARY KEY (session, key));"
    "CREATE TABLE IF NOT EXISTS user_state ("
    " app_name text COLLATE \"C\" NOT NULL, user_id text COLLATE \"C\" NOT NULL,"
    " key text COLLATE \"C\" NOT NULL, value bytea NOT NULL,"
    " PRIMARY KEY (app_name, user_id, key));"
    "CREATE TABLE IF NOT EXISTS app_state ("
    " app_name text COLLATE \"C\" NOT NULL, key text COLLATE \"C\" NOT NULL,"
    " value bytea NOT NULL, PRIMARY KEY (app_name, key));"
    "COMMIT;";

enum {
    S_COUNT, S_INS_SESS, S_SEL_SESS, S_DEL_SESS, S_DEL_EVENTS, S_DEL_SSTATE, S_TOUCH,
    S_INS_EVENT, S_SET_S, S_DEL_S, S_SET_U, S_DEL_U, S_SET_A, S_DEL_A,
    S_SEL_SSTATE, S_SEL_USTATE, S_SEL_ASTATE, S_SEL_EVENTS,
    S_LIST, S_LIST_APP, S_LIST_USER, S_LIST_APP_USER, S_TRIM, N_STMT
};

#define T OID_TEXT
#define B OID_BYTEA
#define I OID_INT8
#define LIST_COLS "SELECT id, app_name, user_id, created_ms, updated_ms, n_events FROM sessions"
#define FROM_SESS " FROM sessions WHERE id = $1 ON CONFLICT"

static const struct {
    const char *sql;
    int n;
    Oid types[7];
} STMT[N_STMT] = {
    [S_COUNT] = {"SELECT count(*)::bigint FROM sessions", 0, {0}},
    [S_INS_SESS] = {"INSERT INTO sessions (id, app_name, user_id, created_ms, updated_ms) "
                    "VALUES ($1, $2, $3, $4, $4)", 4, {T, T, T, I}},
    [S_SEL_SESS] = {"SELECT app_name, user_id, created_ms, updated_ms, n_events, last_seq "
                    "FROM sessions WHERE id = $1", 1, {T}},
    [S_DEL_SESS] = {"DELETE FROM sessions WHERE id = $1", 1, {T}},
    [S_DEL_EVENTS] = {"DELETE FROM events WHERE session = $1", 1, {T}},
    [S_DEL_SSTATE] = {"DELETE FROM session_state WHERE session = $1", 1, {T}},
    /* a wall clock set back does not make updated_ms go back */
    [S_TOUCH] = {"UPDATE sessions SET updated_ms = GREATEST(updated_ms, $2),"
                 " n_events = n_events + 1,"
                 " last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq", 2, {T, I}},
    /* after S_TOUCH in the same batch: its seq is the session's new last_seq */
    [S_INS_EVENT] = {"INSERT INTO events (session, seq, id, invocation, author, ts_ms, body) "
                     "SELECT id, last_seq, $2, $3, $4, $5, $6 FROM sessions WHERE id = $1",
                     6, {T, T, T, T, I, B}},
    [S_SET_S] = {"INSERT INTO session_state (session, key, value) SELECT id, $2, $3"
                 FROM_SESS " (session, key) DO UPDATE SET value = excluded.value", 3, {T, T, B}},
    [S_DEL_S] = {"DELETE FROM session_state WHERE session = $1 AND key = $2", 2, {T, T}},
    [S_SET_U] = {"INSERT INTO user_state (app_name, user_id, key, value) SELECT app_name,"
                 " user_id, $2, $3" FROM_SESS " (app_name, user_id, key) DO UPDATE SET"
                 " value = excluded.value", 3, {T, T, B}},
    [S_DEL_U] = {"DELETE FROM user_state u USING sessions s WHERE s.id = $1 AND"
                 " u.app_name = s.app_name AND u.user_id = s.user_id AND u.key = $2", 2, {T, T}},
    [S_SET_A] = {"INSERT INTO app_state (app_name, key, value) SELECT app_name, $2, $3"
                 FROM_SESS " (app_name, key) DO UPDATE SET value = excluded.value", 3,
                 {T, T, B}},
    [S_DEL_A] = {"DELETE FROM app_state a USING sessions s WHERE s.id = $1 AND"
                 " a.app_name = s.app_name AND a.key = $2", 2, {T, T}},
    [S_SEL_SSTATE] = {"SELECT key, value FROM session_state WHERE session = $1", 1, {T}},
    [S_SEL_USTATE] = {"SELECT u.key, u.value FROM user_state u JOIN sessions s ON"
                      " s.app_name = u.app_name AND s.user_id = u.user_id WHERE s.id = $1", 1,
                      {T}},
    [S_SEL_ASTATE] = {"SELECT a.key, a.value FROM app_state a JOIN sessions s ON"
                      " s.app_name = a.app_name WHERE s.id = $1", 1, {T}},
    /* The newest $2 events, newest first, leaving out those that begin past $3 bytes of
     * bodies: the builder stops at max_get_bytes, so they would be read for nothing. */
    [S_SEL_EVENTS] = {"SELECT seq, id, invocation, author, ts_ms, body FROM ("
                      "SELECT *, sum(octet_length(body)) OVER (ORDER BY seq DESC) AS upto"
                      " FROM events WHERE session = $1 ORDER BY seq DESC LIMIT $2) e"
                      " WHERE upto - octet_length(body) <= $3 ORDER BY seq DESC", 3, {T, I, I}},
    [S_LIST] = {LIST_COLS " WHERE id > $1 ORDER BY id LIMIT $2", 2, {T, I}},
    [S_LIST_APP] = {LIST_COLS " WHERE id > $1 AND app_name = $3 ORDER BY id LIMIT $2", 3,
                    {T, I, T}},
    [S_LIST_USER] = {LIST_COLS " WHERE id > $1 AND user_id = $3 ORDER BY id LIMIT $2", 3,
                     {T, I, T}},
    [S_LIST_APP_USER] = {LIST_COLS " WHERE id > $1 AND app_name = $3 AND user_id = $4"
                         " ORDER BY id LIMIT $2", 4, {T, I, T, T}},
    /* A full log drops its oldest events, as store_sqlite.c's S_TRIM: those older than the
     * newest $2 events whose bodies fit $3 bytes (the newest one always stays); the count
     * follows in the same statement. After S_INS_EVENT in the append's batch. */
    [S_TRIM] = {"WITH keep AS (SELECT coalesce(min(seq), 0) AS seq FROM ("
                "SELECT seq, count(*) OVER w AS k, sum(octet_length(body)) OVER w AS cum"
                " FROM events WHERE session = $1"
                " WINDOW w AS (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)) x"
                " WHERE k = 1 OR (k <= $2 AND cum <= $3)),"
                " gone AS (DELETE FROM events WHERE session = $1 AND seq < (SELECT seq FROM keep)"
                " RETURNING 1)"
                " UPDATE sessions SET n_events = n_events - (SELECT count(*) FROM gone)"
                " WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)", 3, {T, I, I}},
};

#undef T
#undef B
#undef I

typedef struct pg_store {
    brk_pg_t pg;
    uint64_t count;          /* sessions, counted at open and kept up to date */
} pg_store_t;

#define PS(st) ((pg_store_t *)(st)->impl)

static const char *name_of(int i) {
    static char names[N_STMT][16];
    if (!names[i][0]) snprintf(names[i], sizeof names[i], "brk_s%d", i);
    return names[i];
}

/* BRK_SESS_EIO naming the operation and PostgreSQL's reason. */
static int db_fail(brk_sess_err_t *err, const char *what, const char *why) {
    return brk_sess_fail(err, BRK_SESS_EIO, "%s: %s", what, why);
}

static int res_fail(PGresult **res, int n, brk_sess_err_t *err, const char *what) {
    char why[200];
    return db_fail(err, what, brk_pg_result_error(res, n, why, sizeof why));
}

/* Reconnects a connection that went down (a timeout, a restarted server) before a call. */
static int ready(pg_store_t *q, brk_sess_err_t *err) {
    if (brk_pg_ok(&q->pg)) return 0;
    char why[200];
    int rc = brk_pg_reopen(&q->pg, 0, why, sizeof why);
    for (int i = 0; rc == 0 && i < N_STMT; i++)
        rc = brk_pg_prepare(&q->pg, name_of(i), STMT[i].sql, STMT[i].n, STMT[i].types, why,
                            sizeof why);
    return rc ? db_fail(err, "reconnect", why) : 0;
}

static int q_send(pg_store_t *q, int i, const brk_pg_arg_t *a) {
    return brk_pg_send(&q->pg, name_of(i), STMT[i].n, a);
}

/* Waits for the batch. Returns: 0, 1 (a statement failed: res says why). Errors: EIO. */
static int wait_batch(pg_store_t *q, PGresult **res, int n, const char *what,
                      brk_sess_err_t *err) {
    char why[200];
    int rc = brk_pg_wait(&q->pg, res, n, why, sizeof why);
    return rc < 0 ? db_fail(err, what, why) : rc;
}

static proto_str_t col_str(const PGresult *r, int row, int col) {
    return (proto_str_t){PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col)};
}

static proto_raw_t col_raw(const PGresult *r, int row, int col) {
    return (proto_raw_t){(const uint8_t *)PQgetvalue(r, row, col),
                         (size_t)PQgetlength(r, row, col)};
}

/* ---- open and close ---- */

static int read_count(pg_store_t *q, brk_sess_err_t *err) {
    PGresult *r[1];
    int rc = q_send(q, S_COUNT, NULL) ? -EIO : 0;
    if (rc == 0) rc = wait_batch(q, r, 1, "count", err);
    if (rc == 1) rc = res_fail(r, 1, err, "count");
    else if (rc == 0) q->count = (uint64_t)brk_pg_get_int(r[0], 0, 0);
    else if (rc == -EIO) rc = db_fail(err, "count", q->pg.last_error);
    brk_pg_clear(r, 1);
    return rc;
}

/* Creates the tables when there are none, and refuses another version's. */
static int check_version(pg_store_t *q, const char *url, brk_sess_err_t *err) {
    char why[200] = "";
    if (brk_pg_exec(&q->pg, SCHEMA, why, sizeof why) ||
        brk_pg_prepare(&q->pg, "brk_ver", "SELECT version::bigint FROM actorbus_schema", 0,
                       NULL, why, sizeof why) ||
        brk_pg_send(&q->pg, "brk_ver", 0, NULL))
        return db_fail(err, "schema", why[0] ? why : q->pg.last_error);
    PGresult *r[1];
    int rc = wait_batch(q, r, 1, "schema", err);
    if (rc == 1) rc = res_fail(r, 1, err, "schema");
    if (rc == 0 && (PQntuples(r[0]) != 1 || brk_pg_get_int(r[0], 0, 0) != SCHEMA_VERSION))
        rc = brk_sess_fail(err, BRK_SESS_EIO, "%s: session schema version %lld is not "
                           "supported (this broker knows %d)", url,
                           PQntuples(r[0]) ? (long long)brk_pg_get_int(r[0], 0, 0) : 0LL,
                           SCHEMA_VERSION);
    brk_pg_clear(r, 1);
    return rc;
}

static void pgs_free(pg_store_t *q) {
    brk_pg_free(&q->pg);
    free(q);
}

static int pgs_open(brk_store_t *st, const char *url, brk_sess_err_t *err) {
    if (!brk_pg_is_url(url))
        return brk_sess_fail(err, BRK_SESS_EIO, "not a postgresql:// URL");
    pg_store_t *q = calloc(1, sizeof *q);
    if (!q) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    char why[200];
    int rc = brk_pg_open(&q->pg, url, BRK_PG_TIMEOUT_MS, why, sizeof why);
    if (rc) rc = db_fail(err, "connect", why);
    if (rc == 0) rc = check_version(q, url, err);
    for (int i = 0; rc == 0 && i < N_STMT; i++)
        if (brk_pg_prepare(&q->pg, name_of(i), STMT[i].sql, STMT[i].n, STMT[i].types, why,
                           sizeof why))
            rc = db_fail(err, "prepare", why);
    if (rc == 0) rc = read_count(q, err);
    if (rc) {
        pgs_free(q);
        return rc < 0 ? rc : BRK_SESS_EIO;
    }
    st->impl = q;
    return 0;
}

static void pgs_close(brk_store_t *st) {
    pgs_free(PS(st));
    st->impl = NULL;
}

static uint64_t pgs_count(brk_store_t *st) { return PS(st)->count; }

/* ---- writes ---- */

/* Queues one delta, in order, after the statements that make the session exist. */
static int send_delta(pg_store_t *q, proto_str_t id, const brk_sess_kv_t *kv, size_t n) {
    static const int set[] = {S_SET_S, S_SET_U, S_SET_A}, del[] = {S_DEL_S, S_DEL_U, S_DEL_A};
    for (size_t i = 0; i < n; i++) {
        brk_pg_arg_t a[3];
        brk_pg_text(&a[0], id.p, id.n);
        brk_pg_text(&a[1], kv[i].key.p, kv[i].key.n);
        brk_pg_text(&a[2], kv[i].value.p, kv[i].value.n);
        if (q_send(q, kv[i].value.n ? set[kv[i].scope] : del[kv[i].scope], a)) return -EIO;
    }
    return 0;
}

/* Waits for a write batch of n statements; *first gets the first statement's result. */
static int write_batch(pg_store_t *q, int n, const char *what, PGresult **first,
                       brk_sess_err_t *err) {
    PGresult **res = calloc((size_t)n, sizeof *res);
    if (!res) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    int rc = wait_batch(q, res, n, what, err);
    if (rc == 1) {
        if (strcmp(brk_pg_sqlstate(res, n), "23505") == 0) rc = 2; /* unique_violation */
        else rc = res_fail(res, n, err, what);
    }
    if (first) {
        *first = res[0];
        res[0] = NULL;
    }
    brk_pg_clear(res, n);
    free(res);
    return rc;
}

static int pgs_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms,
                      brk_sess_err_t *err) {
    pg_store_t *q = PS(st);
    int rc = ready(q, err);
    if (rc) return rc;
    brk_pg_arg_t a[4];
    brk_pg_text(&a[0], id.p, id.n);
    brk_pg_text(&a[1], app.p, app.n);
    brk_pg_text(&a[2], user.p, user.n);
    brk_pg_int(&a[3], now_ms);
    if (q_send(q, S_INS_SESS, a) || send_delta(q, id, kv, n_kv))
        return db_fail(err, "create", q->pg.last_error);
    rc = write_batch(q, 1 + (int)n_kv, "create", NULL, err);
    if (rc == 2)
        return brk_sess_fail(err, BRK_SESS_EEXIST, "session '%.*s' already exists",
                             (int)(id.n > 80 ? 80 : id.n), id.p);
    if (rc == 0) q->count++;
    return rc;
}

static int pgs_del(brk_store_t *st, proto_str_t id, brk_sess_err_t *err) {
    pg_store_t *q = PS(st);
    int rc = ready(q, err);
    if (rc) return rc;
    brk_pg_arg_t a[1];
    brk_pg_text(&a[0], id.p, id.n);
    if (q_send(q, S_DEL_SESS, a) || q_send(q, S_DEL_EVENTS, a) || q_send(q, S_DEL_SSTATE, a))
        return db_fail(err, "delete", q->pg.last_error);
    PGresult *first = NULL;
    rc = write_batch(q, 3, "delete", &first, err);
    int deleted = rc == 0 && first && atoi(PQcmdTuples(first)) > 0;
    PQclear(first);
    if (rc) return rc < 0 ? rc : BRK_SESS_EIO;
    if (deleted) q->count--;
    return deleted;
}

static int pgs_append(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, uint64_t *seq,
                      brk_sess_err_t *err) {
    pg_store_t *q = PS(st);
    int rc = ready(q, err);
    if (rc) return rc;
    brk_pg_arg_t t[2], e[6];
    brk_pg_text(&t[0], id.p, id.n);
    brk_pg_int(&t[1], now_ms);
    e[0] = t[0];
    brk_pg_text(&e[1], ev->id.p, ev->id.n);
    brk_pg_text(&e[2], ev->invocation.p, ev->invocation.n);
    brk_pg_text(&e[3], ev->author.p, ev->author.n);
    brk_pg_int(&e[4], ev->ts_ms);
    brk_pg_text(&e[5], ev->body.p, ev->body.n);
    const brk_sess_limits_t *lim = brk_store_limits(st);
    brk_pg_arg_t r[3];
    r[0] = t[0];
    brk_pg_int(&r[1], (int64_t)lim->max_log_events);
    brk_pg_int(&r[2], lim->max_log_bytes > INT64_MAX ? INT64_MAX : (int64_t)lim->max_log_bytes);
    if (q_send(q, S_TOUCH, t) || q_send(q, S_INS_EVENT, e) || q_send(q, S_TRIM, r) ||
        send_delta(q, id, kv, n_kv))
        return db_fail(err, "append", q->pg.last_error);
    PGresult *touch = NULL;
    rc = write_batch(q, 3 + (int)n_kv, "append", &touch, err);
    if (rc == 0 && PQntuples(touch) == 1) *seq = (uint64_t)brk_pg_get_int(touch, 0, 0);
    else if (rc == 0) rc = brk_sess_not_found(err, id); /* the batch changed nothing */
    else if (rc > 0) rc = BRK_SESS_EIO;
    PQclear(touch);
    return rc;
}

/* ---- reads ---- */

static int add_state(const PGresult *r, brk_sess_build_t *b, brk_sess_err_t *err) {
    for (int i = 0; i < PQntuples(r); i++)
        if (brk_sess_build_kv(b, col_str(r, i, 0), col_raw(r, i, 1)))
            return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    return 0;
}

static int add_events(const PGresult *r, brk_sess_build_t *b, brk_sess_err_t *err) {
    for (int i = 0; i < PQntuples(r); i++) {
        brk_sess_event_t ev = {
            .seq = (uint64_t)brk_pg_get_int(r, i, 0), .id = col_str(r, i, 1),
            .invocation = col_str(r, i, 2), .author = col_str(r, i, 3),
            .ts_ms = brk_pg_get_int(r, i, 4), .body = col_raw(r, i, 5)};
        int added = brk_sess_build_event(b, &ev);
        if (added < 0) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
        if (added) break; /* max_get_bytes reached */
    }
    return 0;
}

static int build(PGresult **r, int n, proto_str_t id, brk_sess_build_t *b, brk_sess_err_t *err) {
    const PGresult *h = r[0];
    if (PQntuples(h) != 1) return brk_sess_not_found(err, id);
    int rc = brk_sess_build_head(b, id, col_str(h, 0, 0), col_str(h, 0, 1),
                                 brk_pg_get_int(h, 0, 2), brk_pg_get_int(h, 0, 3),
                                 (uint64_t)brk_pg_get_int(h, 0, 4),
                                 (uint64_t)brk_pg_get_int(h, 0, 5));
    if (rc) return brk_sess_fail(err, rc, "out of memory");
    for (int i = 1; i < 4; i++)
        if ((rc = add_state(r[i], b, err))) return rc;
    return n > 4 ? add_events(r[4], b, err) : 0;
}

static int pgs_get(brk_store_t *st, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
                   brk_sess_err_t *err) {
    pg_store_t *q = PS(st);
    int rc = ready(q, err);
    if (rc) return rc;
    brk_pg_arg_t a[3];
    brk_pg_text(&a[0], id.p, id.n);
    brk_pg_int(&a[1], last_n);
    brk_pg_int(&a[2], (int64_t)st->lim.max_get_bytes);
    int n = last_n ? 5 : 4;
    static const int order[] = {S_SEL_SESS, S_SEL_SSTATE, S_SEL_USTATE, S_SEL_ASTATE,
                                S_SEL_EVENTS};
    for (int i = 0; i < n; i++)
        if (q_send(q, order[i], a)) return db_fail(err, "get", q->pg.last_error);
    PGresult *r[5];
    rc = wait_batch(q, r, n, "get", err);
    if (rc == 1) rc = res_fail(r, n, err, "get");
    else if (rc == 0) rc = build(r, n, id, b, err);
    brk_pg_clear(r, n);
    return rc;
}

static int pgs_list(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                    brk_sess_err_t *err) {
    pg_store_t *q = PS(st);
    int rc = ready(q, err);
    if (rc) return rc;
    int i = f->app.n ? (f->user.n ? S_LIST_APP_USER : S_LIST_APP)
                     : (f->user.n ? S_LIST_USER : S_LIST);
    brk_pg_arg_t a[4];
    int n = 2;
    brk_pg_text(&a[0], f->after.p, f->after.n);
    brk_pg_int(&a[1], (int64_t)f->limit + 1); /* one more: is there a next? */
    if (f->app.n) brk_pg_text(&a[n++], f->app.p, f->app.n);
    if (f->user.n) brk_pg_text(&a[n++], f->user.p, f->user.n);
    if (q_send(q, i, a)) return db_fail(err, "list", q->pg.last_error);
    PGresult *r[1];
    rc = wait_batch(q, r, 1, "list", err);
    if (rc == 1) rc = res_fail(r, 1, err, "list");
    for (int row = 0; rc == 0 && row < PQntuples(r[0]); row++) {
        if (page->n == f->limit) {
            const brk_sess_info_t *last = &page->items[page->n - 1];
            rc = brk_sess_page_set_next(page, proto_str_of(last->id));
            break;
        }
        rc = brk_sess_page_add(page, col_str(r[0], row, 0), col_str(r[0], row, 1),
                               col_str(r[0], row, 2), brk_pg_get_int(r[0], row, 3),
                               brk_pg_get_int(r[0], row, 4),
                               (uint64_t)brk_pg_get_int(r[0], row, 5));
        if (rc) rc = brk_sess_fail(err, rc, "out of memory");
    }
    brk_pg_clear(r, 1);
    return rc;
}

void brk_store_pg_set_timeout(brk_store_t *st, int64_t ms) {
    if (st->ops == &brk_store_pg && ms > 0) PS(st)->pg.timeout_ms = ms;
}

const brk_store_ops_t brk_store_pg = {
    .name = "postgresql",
    .open = pgs_open,
    .close = pgs_close,
    .create = pgs_create,
    .get = pgs_get,
    .list = pgs_list,
    .del = pgs_del,
    .append = pgs_append,
    .count = pgs_count,
};
