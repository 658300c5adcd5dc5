/* broker/pg.h: one libpq connection in pipeline mode, shared by the PostgreSQL session store
 * (store_pg.c), the answered-query memory (dedup_pg.c) and the broker pair's lease (lease.c).
 * A "batch" is a few prepared statements sent back to back and closed by one Sync: PostgreSQL
 * runs them as one implicit transaction (all or nothing) and the whole batch costs one network
 * round trip, however many statements it holds. Every wait has a deadline (timeout_ms): a
 * store that does not answer in time is a failed call, never a stalled broker. */
#ifndef BRK_PG_H
#define BRK_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define BRK_PG_TIMEOUT_MS 5000 /* the default bound on one batch, and on connecting */
#define BRK_PG_MAX_ARGS 8

/* Whether path names PostgreSQL: a postgresql:// or postgres:// URL. */
bool brk_pg_is_url(const char *path);

typedef struct brk_pg {
    PGconn *conn;
    int64_t timeout_ms;
    unsigned pending;    /* fire-and-forget batches whose Sync has not come back (brk_pg_post) */
    unsigned failed;     /* of those, how many failed (read and reset by the caller) */
    char last_error[200];
    char *url;           /* kept to connect again (brk_pg_reopen) */
    int64_t retry_at;    /* monotonic ms: brk_pg_reopen tries no earlier */
} brk_pg_t;

/* Connects to url (connect_timeout defaults to timeout_ms, the URL's own wins) and enters
 * pipeline mode. Returns: 0. Errors: -EIO (why says libpq's reason), -ENOMEM. */
int brk_pg_open(brk_pg_t *pg, const char *url, int64_t timeout_ms, char *why, size_t cap);
/* Closes the connection (the URL is kept for brk_pg_reopen); safe to repeat. */
void brk_pg_close(brk_pg_t *pg);
/* Closes the connection and frees the URL; safe to repeat. */
void brk_pg_free(brk_pg_t *pg);
/* Connects again when the connection is down, at most once every retry_ms (0: now).
 * Returns: 0 (up). Errors: -EIO (down: not yet time, or the connect failed; why). */
int brk_pg_reopen(brk_pg_t *pg, int64_t retry_ms, char *why, size_t cap);
/* Whether the connection is up (it goes down on a timeout or a lost server). */
bool brk_pg_ok(const brk_pg_t *pg);

/* Runs sql (no parameters, possibly several statements) outside pipeline mode, waiting: for
 * setup only. Returns: 0. Errors: -EIO (why). */
int brk_pg_exec(brk_pg_t *pg, const char *sql, char *why, size_t cap);
/* Prepares a statement under name; types are parameter type OIDs (n of them).
 * Returns: 0. Errors: -EIO (why). */
int brk_pg_prepare(brk_pg_t *pg, const char *name, const char *sql, int n, const Oid *types,
                   char *why, size_t cap);

/* One parameter in binary form: text as its bytes, bytea as its bytes, int8 big-endian. */
typedef struct brk_pg_arg {
    const void *p;
    int n;
    uint8_t i8[8]; /* storage for brk_pg_int */
} brk_pg_arg_t;

void brk_pg_text(brk_pg_arg_t *a, const void *p, size_t n);
void brk_pg_int(brk_pg_arg_t *a, int64_t v);

/* Queues one statement given as SQL (unnamed: parsed each time, so it needs no prepare after
 * a reconnect); types as brk_pg_prepare's. Returns and errors: as brk_pg_send. */
int brk_pg_send_sql(brk_pg_t *pg, const char *sql, int n, const Oid *types,
                    const brk_pg_arg_t *args);
/* Queues one prepared statement of the next batch (binary results).
 * Returns: 0. Errors: -EIO (the connection is down or the queue failed). */
int brk_pg_send(brk_pg_t *pg, const char *name, int n, const brk_pg_arg_t *args);
/* Ends the batch with a Sync and waits for its n results (res[i]: the i-th statement's;
 * PGRES_PIPELINE_ABORTED for those skipped after a failure). Earlier brk_pg_post batches are
 * drained first. Returns: 0 when every statement succeeded; 1 when one failed (its result says
 * why; the transaction was rolled back). Errors: -EIO (timeout or connection lost: the
 * connection is closed, res is all NULL; why says so). Ownership: the caller PQclear()s each
 * non-NULL res[i] (brk_pg_clear). */
int brk_pg_wait(brk_pg_t *pg, PGresult **res, int n, char *why, size_t cap);
/* Ends the batch with a Sync without waiting: its results are read and dropped later, by
 * brk_pg_poll or the next brk_pg_wait (a failure counts in pg->failed). n: statements in it.
 * Returns: 0. Errors: -EIO. */
int brk_pg_post(brk_pg_t *pg, int n);
/* Reads whatever results of posted batches have arrived, never waiting. Returns: 0.
 * Errors: -EIO (the connection went down). */
int brk_pg_poll(brk_pg_t *pg);
void brk_pg_clear(PGresult **res, int n);

/* Readers of binary result columns. */
int64_t brk_pg_get_int(const PGresult *r, int row, int col);
/* The first failed result's message (SQLSTATE and text), or "" */
const char *brk_pg_result_error(PGresult *const *res, int n, char *buf, size_t cap);
/* The SQLSTATE of the first failed result, or "" */
const char *brk_pg_sqlstate(PGresult *const *res, int n);

#endif
