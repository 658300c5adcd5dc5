/* broker/store_sqlite.c: the embedded SQLite session store (brk_store_sqlite), the one the
 * broker runs with --sessions FILE. WAL journal with synchronous=NORMAL: a commit survives a
 * crash of the broker (not of the machine, until the next checkpoint). Every statement is
 * prepared once at open; each create, append and delete is one transaction. The indexes
 * answer a page of a list and the newest N events of a session without reading the rest:
 * see SCHEMA (user_version 1; a file with another version is refused). */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define SCHEMA_VERSION 1

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS sessions ("
    " id TEXT PRIMARY KEY NOT NULL, app_name TEXT NOT NULL, user_id TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " n_events INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS sessions_app ON sessions (app_name, id);"
    "CREATE INDEX IF NOT EXISTS sessions_app_user ON sessions (app_name, user_id, id);"
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id, id);"
    /* a rowid table: bodies may be large, and WITHOUT ROWID suits small rows only */
    "CREATE TABLE IF NOT EXISTS events ("
    " session TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,"
    " invocation TEXT NOT NULL, author TEXT NOT NULL, ts_ms INTEGER NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (session, seq));"
    "CREATE TABLE IF NOT EXISTS session_state ("
    " session TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (session, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS user_state ("
    " app_name TEXT NOT NULL, user_id TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (app_name, user_id, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS app_state ("
    " app_name TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (app_name, key)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

enum {
    S_BEGIN_WRITE, S_BEGIN_READ, S_COMMIT, S_ROLLBACK, S_COUNT,
    S_INS_SESS, S_SEL_SESS, S_DEL_SESS, S_DEL_EVENTS, S_DEL_SSTATE, S_TOUCH, S_INS_EVENT,
    S_SET_S, S_DEL_S, S_SET_U, S_DEL_U, S_SET_A, S_DEL_A,
    S_SEL_SSTATE, S_SEL_USTATE, S_SEL_ASTATE, S_SEL_EVENTS,
    S_LIST, S_LIST_APP, S_LIST_USER, S_LIST_APP_USER, N_STMT
};

#define LIST_COLS "SELECT id, app_name, user_id, created_ms, updated_ms, n_events FROM sessions"
#define UPSERT(t, cols, vals, pk) \
    "INSERT INTO " t " (" cols ", key, value) VALUES (" vals ") ON CONFLICT (" pk \
    ") DO UPDATE SET value = excluded.value"

static const char *const SQL[N_STMT] = {
    [S_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_COUNT] = "SELECT count(*) FROM sessions",
    [S_INS_SESS] = "INSERT INTO sessions (id, app_name, user_id, created_ms, updated_ms) "
                   "VALUES (?1, ?2, ?3, ?4, ?4)",
    [S_SEL_SESS] = "SELECT app_name, user_id, created_ms, updated_ms, n_events, last_seq "
                   "FROM sessions WHERE id = ?1",
    [S_DEL_SESS] = "DELETE FROM sessions WHERE id = ?1",
    [S_DEL_EVENTS] = "DELETE FROM events WHERE session = ?1",
    [S_DEL_SSTATE] = "DELETE FROM session_state WHERE session = ?1",
    /* MAX: a wall clock set back must not put updated_ms before created_ms */
    [S_TOUCH] = "UPDATE sessions SET updated_ms = MAX(updated_ms, ?2), n_events = n_events + 1,"
                " last_seq = ?3 WHERE id = ?1",
    [S_INS_EVENT] = "INSERT INTO events (session, seq, id, invocation, author, ts_ms, body) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_SET_S] = UPSERT("session_state", "session", "?1, ?4, ?5", "session, key"),
    [S_DEL_S] = "DELETE FROM session_state WHERE session = ?1 AND key = ?4",
    [S_SET_U] = UPSERT("user_state", "app_name, user_id", "?2, ?3, ?4, ?5",
                       "app_name, user_id, key"),
    [S_DEL_U] = "DELETE FROM user_state WHERE app_name = ?2 AND user_id = ?3 AND key = ?4",
    [S_SET_A] = UPSERT("app_state", "app_name", "?2, ?4, ?5", "app_name, key"),
    [S_DEL_A] = "DELETE FROM app_state WHERE app_name = ?2 AND key = ?4",
    [S_SEL_SSTATE] = "SELECT key, value FROM session_state WHERE session = ?1",
    [S_SEL_USTATE] = "SELECT key, value FROM user_state WHERE app_name = ?1 AND user_id = ?2",
    [S_SEL_ASTATE] = "SELECT key, value FROM app_state WHERE app_name = ?1",
    [S_SEL_EVENTS] = "SELECT seq, id, invocation, author, ts_ms, body FROM events "
                     "WHERE session = ?1 ORDER BY seq DESC LIMIT ?2",
    [S_LIST] = LIST_COLS " WHERE id > ?1 ORDER BY id LIMIT ?4",
    [S_LIST_APP] = LIST_COLS " WHERE app_name = ?2 AND id > ?1 ORDER BY id LIMIT ?4",
    [S_LIST_USER] = LIST_COLS " WHERE user_id = ?3 AND id > ?1 ORDER BY id LIMIT ?4",
    [S_LIST_APP_USER] = LIST_COLS " WHERE app_name = ?2 AND user_id = ?3 AND id > ?1 "
                        "ORDER BY id LIMIT ?4",
};

typedef struct sql_store {
    sqlite3 *db;
    sqlite3_stmt *st[N_STMT];
    uint64_t count;          /* sessions, counted at open and kept up to date */
} sql_store_t;

#define SS(st) ((sql_store_t *)(st)->impl)

/* BRK_SESS_EIO naming the operation and SQLite's own message. */
static int db_fail(sql_store_t *q, brk_sess_err_t *err, const char *what) {
    return brk_sess_fail(err, BRK_SESS_EIO, "sqlite: %s: %s", what, sqlite3_errmsg(q->db));
}

static void bind_str(sqlite3_stmt *s, int i, proto_str_t v) {
    sqlite3_bind_text(s, i, v.n ? v.p : "", (int)v.n, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *s, int i, proto_raw_t v) {
    sqlite3_bind_blob(s, i, v.n ? (const void *)v.p : "", (int)v.n, SQLITE_STATIC);
}

static proto_str_t col_str(sqlite3_stmt *s, int i) {
    const char *p = (const char *)sqlite3_column_text(s, i);
    return (proto_str_t){p ? p : "", (size_t)sqlite3_column_bytes(s, i)};
}

static proto_raw_t col_blob(sqlite3_stmt *s, int i) {
    const uint8_t *p = sqlite3_column_blob(s, i);
    return (proto_raw_t){p, (size_t)sqlite3_column_bytes(s, i)};
}

/* Steps a statement that returns no rows, then resets it. Returns: 0 or BRK_SESS_EIO. */
static int run(sql_store_t *q, int i, const char *what, brk_sess_err_t *err) {
    int rc = sqlite3_step(q->st[i]);
    rc = rc == SQLITE_DONE ? 0 : db_fail(q, err, what);
    sqlite3_reset(q->st[i]);
    return rc;
}

static int begin(sql_store_t *q, bool write, brk_sess_err_t *err) {
    return run(q, write ? S_BEGIN_WRITE : S_BEGIN_READ, "begin", err);
}

/* Commits when rc is 0, else rolls back; returns rc or the commit's failure. */
static int end(sql_store_t *q, int rc, brk_sess_err_t *err) {
    if (rc == 0 && (rc = run(q, S_COMMIT, "commit", err)) == 0) return 0;
    if (!sqlite3_get_autocommit(q->db)) run(q, S_ROLLBACK, "rollback", NULL);
    return rc;
}

/* ---- open and close ---- */

static void sql_free(sql_store_t *q) {
    for (int i = 0; i < N_STMT; i++) sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    free(q);
}

static int read_int(sql_store_t *q, const char *sql, int64_t *out, brk_sess_err_t *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK) return db_fail(q, err, sql);
    int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : db_fail(q, err, sql);
    if (rc == 0) *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc;
}

/* Journal, schema (created or checked) and the prepared statements. */
static int sql_setup(sql_store_t *q, const char *path, brk_sess_err_t *err) {
    int64_t version = 0;
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, 5000);
    if (read_int(q, "PRAGMA user_version", &version, err)) return BRK_SESS_EIO;
    if (version != 0 && version != SCHEMA_VERSION)
        return brk_sess_fail(err, BRK_SESS_EIO, "%s: session schema version %lld is not "
                             "supported (this broker knows %d)", path, (long long)version,
                             SCHEMA_VERSION);
    if (sqlite3_exec(q->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;", NULL,
                     NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(q, err, "setup");
    if (sqlite3_exec(q->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        int rc = db_fail(q, err, "schema");
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(q, err, "schema");
    for (int i = 0; i < N_STMT; i++) {
        if (sqlite3_prepare_v3(q->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
                               NULL) != SQLITE_OK)
            return db_fail(q, err, SQL[i]);
    }
    int64_t n = 0;
    if (read_int(q, SQL[S_COUNT], &n, err)) return BRK_SESS_EIO;
    q->count = (uint64_t)n;
    return 0;
}

static int sql_open(brk_store_t *st, const char *path, brk_sess_err_t *err) {
    if (!path || !*path) return brk_sess_fail(err, BRK_SESS_EIO, "no database path given");
    sql_store_t *q = calloc(1, sizeof *q);
    if (!q) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &q->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = q->db ? brk_sess_fail(err, BRK_SESS_EIO, "%s: %s", path, sqlite3_errmsg(q->db))
                   : brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    } else {
        rc = sql_setup(q, path, err);
    }
    if (rc) {
        sql_free(q);
        return rc;
    }
    st->impl = q;
    return 0;
}

static void sql_close(brk_store_t *st) {
    sql_free(SS(st));
    st->impl = NULL;
}

static uint64_t sql_count(brk_store_t *st) { return SS(st)->count; }

/* ---- writes ---- */

/* Applies one delta in order, inside the caller's transaction. */
static int apply_delta(sql_store_t *q, proto_str_t id, proto_str_t app, proto_str_t user,
                       const brk_sess_kv_t *kv, size_t n, brk_sess_err_t *err) {
    static const int set[] = {S_SET_S, S_SET_U, S_SET_A}, del[] = {S_DEL_S, S_DEL_U, S_DEL_A};
    for (size_t i = 0; i < n; i++) {
        int which = kv[i].value.n ? set[kv[i].scope] : del[kv[i].scope];
        sqlite3_stmt *s = q->st[which];
        sqlite3_clear_bindings(s);
        if (kv[i].scope == BRK_SCOPE_SESSION) bind_str(s, 1, id);
        if (kv[i].scope != BRK_SCOPE_SESSION) bind_str(s, 2, app);
        if (kv[i].scope == BRK_SCOPE_USER) bind_str(s, 3, user);
        bind_str(s, 4, kv[i].key);
        if (kv[i].value.n) bind_blob(s, 5, kv[i].value);
        int rc = run(q, which, "state", err);
        if (rc) return rc;
    }
    return 0;
}

static int sql_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, brk_sess_err_t *err) {
    sql_store_t *q = SS(st);
    int rc = begin(q, true, err);
    if (rc) return rc;
    sqlite3_stmt *s = q->st[S_INS_SESS];
    bind_str(s, 1, id);
    bind_str(s, 2, app);
    bind_str(s, 3, user);
    sqlite3_bind_int64(s, 4, now_ms);
    int step = sqlite3_step(s);
    if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = brk_sess_fail(err, BRK_SESS_EEXIST, "session '%.*s' already exists",
                           (int)(id.n > 80 ? 80 : id.n), id.p);
    else if (step != SQLITE_DONE)
        rc = db_fail(q, err, "create");
    sqlite3_reset(s);
    if (rc == 0) rc = apply_delta(q, id, app, user, kv, n_kv, err);
    if ((rc = end(q, rc, err)) == 0) q->count++;
    return rc;
}

static int sql_del(brk_store_t *st, proto_str_t id, brk_sess_err_t *err) {
    sql_store_t *q = SS(st);
    int rc = begin(q, true, err);
    if (rc) return rc;
    static const int order[] = {S_DEL_EVENTS, S_DEL_SSTATE, S_DEL_SESS};
    for (int i = 0; i < 3 && rc == 0; i++) {
        bind_str(q->st[order[i]], 1, id);
        rc = run(q, order[i], "delete", err);
    }
    int deleted = rc == 0 && sqlite3_changes(q->db) > 0; /* of the last: the session row */
    if ((rc = end(q, rc, err))) return rc;
    if (deleted) q->count--;
    return deleted;
}

/* Reads the session's owner and last seq into owner (copied: the row goes away when the
 * statement is reset). Returns: 0. Errors: BRK_SESS_ENOENT, BRK_SESS_ENOMEM, BRK_SESS_EIO. */
static int read_owner(sql_store_t *q, proto_str_t id, char **owner, proto_str_t *app,
                      proto_str_t *user, uint64_t *last_seq, brk_sess_err_t *err) {
    sqlite3_stmt *s = q->st[S_SEL_SESS];
    bind_str(s, 1, id);
    int step = sqlite3_step(s), rc = 0;
    if (step == SQLITE_ROW) {
        proto_str_t a = col_str(s, 0), u = col_str(s, 1);
        *owner = malloc(a.n + u.n + 1);
        if (*owner) {
            memcpy(*owner, a.p, a.n);
            memcpy(*owner + a.n, u.p, u.n);
            *app = (proto_str_t){*owner, a.n};
            *user = (proto_str_t){*owner + a.n, u.n};
            *last_seq = (uint64_t)sqlite3_column_int64(s, 5);
        } else {
            rc = brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
        }
    } else {
        rc = step == SQLITE_DONE ? brk_sess_not_found(err, id) : db_fail(q, err, "append");
    }
    sqlite3_reset(s);
    return rc;
}

static int insert_event(sql_store_t *q, proto_str_t id, uint64_t seq, const brk_sess_event_t *ev,
                        int64_t now_ms, brk_sess_err_t *err) {
    sqlite3_stmt *s = q->st[S_INS_EVENT];
    bind_str(s, 1, id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
    bind_str(s, 3, ev->id);
    bind_str(s, 4, ev->invocation);
    bind_str(s, 5, ev->author);
    sqlite3_bind_int64(s, 6, ev->ts_ms);
    bind_blob(s, 7, ev->body);
    int rc = run(q, S_INS_EVENT, "append", err);
    if (rc) return rc;
    s = q->st[S_TOUCH];
    bind_str(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
    return run(q, S_TOUCH, "append", err);
}

static int sql_append(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, uint64_t *seq,
                      brk_sess_err_t *err) {
    sql_store_t *q = SS(st);
    char *owner = NULL;
    proto_str_t app, user;
    uint64_t last = 0;
    int rc = begin(q, true, err);
    if (rc) return rc;
    rc = read_owner(q, id, &owner, &app, &user, &last, err);
    if (rc == 0) rc = insert_event(q, id, last + 1, ev, now_ms, err);
    if (rc == 0) rc = apply_delta(q, id, app, user, kv, n_kv, err);
    rc = end(q, rc, err);
    free(owner);
    if (rc == 0) *seq = last + 1;
    return rc;
}

/* ---- reads ---- */

/* Adds every (key, value) row of statement i, bound by the caller, to b. */
static int add_state(sql_store_t *q, int i, brk_sess_build_t *b, brk_sess_err_t *err) {
    sqlite3_stmt *s = q->st[i];
    int step = SQLITE_DONE, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
        if (brk_sess_build_kv(b, col_str(s, 0), col_blob(s, 1)))
            rc = brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    if (rc == 0 && step != SQLITE_DONE) rc = db_fail(q, err, "get state");
    sqlite3_reset(s);
    return rc;
}

static int add_events(sql_store_t *q, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
                      brk_sess_err_t *err) {
    sqlite3_stmt *s = q->st[S_SEL_EVENTS];
    bind_str(s, 1, id);
    sqlite3_bind_int64(s, 2, last_n);
    int step = SQLITE_DONE, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        brk_sess_event_t ev = {
            .seq = (uint64_t)sqlite3_column_int64(s, 0), .id = col_str(s, 1),
            .invocation = col_str(s, 2), .author = col_str(s, 3),
            .ts_ms = sqlite3_column_int64(s, 4), .body = col_blob(s, 5)};
        int added = brk_sess_build_event(b, &ev);
        if (added < 0) rc = brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
        if (added != 0) break; /* out of memory, or max_get_bytes reached */
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW) rc = db_fail(q, err, "get events");
    sqlite3_reset(s);
    return rc;
}

/* Reads inside the caller's read transaction; the session row stays readable (and its
 * app and user bound to the state queries) until S_SEL_SESS is reset at the end. */
static int get_in_tx(sql_store_t *q, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
                     brk_sess_err_t *err) {
    sqlite3_stmt *s = q->st[S_SEL_SESS];
    bind_str(s, 1, id);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW)
        return step == SQLITE_DONE ? brk_sess_not_found(err, id) : db_fail(q, err, "get");
    proto_str_t app = col_str(s, 0), user = col_str(s, 1);
    int rc = brk_sess_build_head(b, id, app, user, sqlite3_column_int64(s, 2),
                                 sqlite3_column_int64(s, 3),
                                 (uint64_t)sqlite3_column_int64(s, 4),
                                 (uint64_t)sqlite3_column_int64(s, 5));
    if (rc) return brk_sess_fail(err, rc, "out of memory");
    bind_str(q->st[S_SEL_SSTATE], 1, id);
    bind_str(q->st[S_SEL_USTATE], 1, app);
    bind_str(q->st[S_SEL_USTATE], 2, user);
    bind_str(q->st[S_SEL_ASTATE], 1, app);
    if ((rc = add_state(q, S_SEL_SSTATE, b, err)) || (rc = add_state(q, S_SEL_USTATE, b, err)) ||
        (rc = add_state(q, S_SEL_ASTATE, b, err)))
        return rc;
    return last_n ? add_events(q, id, last_n, b, err) : 0;
}

static int sql_get(brk_store_t *st, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
                   brk_sess_err_t *err) {
    sql_store_t *q = SS(st);
    int rc = begin(q, false, err);
    if (rc) return rc;
    rc = get_in_tx(q, id, last_n, b, err);
    sqlite3_reset(q->st[S_SEL_SESS]);
    return end(q, rc, err);
}

static int sql_list(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                    brk_sess_err_t *err) {
    sql_store_t *q = SS(st);
    int i = f->app.n ? (f->user.n ? S_LIST_APP_USER : S_LIST_APP)
                     : (f->user.n ? S_LIST_USER : S_LIST);
    sqlite3_stmt *s = q->st[i];
    sqlite3_clear_bindings(s);
    bind_str(s, 1, f->after);
    if (f->app.n) bind_str(s, 2, f->app);
    if (f->user.n) bind_str(s, 3, f->user);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)f->limit + 1); /* one more: is there a next? */
    int step = SQLITE_DONE, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (page->n == f->limit) {
            const brk_sess_info_t *last = &page->items[page->n - 1];
            rc = brk_sess_page_set_next(page, proto_str_of(last->id));
            break;
        }
        rc = brk_sess_page_add(page, col_str(s, 0), col_str(s, 1), col_str(s, 2),
                               sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4),
                               (uint64_t)sqlite3_column_int64(s, 5));
    }
    if (rc) rc = brk_sess_fail(err, rc, "out of memory");
    else if (step != SQLITE_DONE && step != SQLITE_ROW) rc = db_fail(q, err, "list");
    sqlite3_reset(s);
    return rc;
}

const brk_store_ops_t brk_store_sqlite = {
    .name = "sqlite",
    .open = sql_open,
    .close = sql_close,
    .create = sql_create,
    .get = sql_get,
    .list = sql_list,
    .del = sql_del,
    .append = sql_append,
    .count = sql_count,
};
