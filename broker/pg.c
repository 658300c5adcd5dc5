/* broker/pg.c: the libpq connection of pg.h. Pipeline mode with a non-blocking socket: a batch
 * is queued, closed by a Sync and flushed at once; its results are read with poll() against
 * one deadline. A timeout closes the connection: the server may still be running the batch,
 * and a connection whose state is unknown is never used again. */
#include "pg.h"

#include "base/clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool brk_pg_is_url(const char *path) {
    return path && (strncmp(path, "postgresql://", 13) == 0 ||
                    strncmp(path, "postgres://", 11) == 0);
}

/* libpq's message without its trailing newline. */
static void say(char *why, size_t cap, const char *what, const char *msg) {
    if (!why || !cap) return;
    snprintf(why, cap, "postgresql: %s: %s", what, msg && *msg ? msg : "failed");
    size_t n = strlen(why);
    while (n && (why[n - 1] == '\n' || why[n - 1] == ' ')) why[--n] = '\0';
}

static int down(brk_pg_t *pg, const char *what, char *why, size_t cap) {
    say(pg->last_error, sizeof pg->last_error, what,
        pg->conn ? PQerrorMessage(pg->conn) : "not connected");
    if (why && cap) snprintf(why, cap, "%s", pg->last_error);
    brk_pg_close(pg);
    return -EIO;
}

/* Leaves pipeline mode (setup statements run one by one) or enters it again. */
static int pipeline(brk_pg_t *pg, bool on) {
    if (on == (PQpipelineStatus(pg->conn) != PQ_PIPELINE_OFF)) return 0;
    if (on) return PQenterPipelineMode(pg->conn) && PQsetnonblocking(pg->conn, 1) == 0 ? 0 : -1;
    return PQsetnonblocking(pg->conn, 0) == 0 && PQexitPipelineMode(pg->conn) ? 0 : -1;
}

static int connect_to(brk_pg_t *pg, char *why, size_t cap);

static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

int brk_pg_open(brk_pg_t *pg, const char *url, int64_t timeout_ms, char *why, size_t cap) {
    memset(pg, 0, sizeof *pg);
    pg->timeout_ms = timeout_ms > 0 ? timeout_ms : BRK_PG_TIMEOUT_MS;
    if (!(pg->url = strdup(url))) {
        say(why, cap, "connect", "out of memory");
        return -ENOMEM;
    }
    return connect_to(pg, why, cap);
}

static int connect_to(brk_pg_t *pg, char *why, size_t cap) {
    char ct[24];
    snprintf(ct, sizeof ct, "%lld", (long long)((pg->timeout_ms + 999) / 1000));
    /* In order: the URL comes last, so its own connect_timeout wins over ours. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {ct, "actor-broker", pg->url, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn) {
        say(why, cap, "connect", "out of memory");
        return -ENOMEM;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK) return down(pg, "connect", why, cap);
    PQsetNoticeProcessor(pg->conn, quiet, NULL); /* "already exists, skipping" and the like */
    if (pipeline(pg, true)) return down(pg, "enter pipeline", why, cap);
    return 0;
}

void brk_pg_free(brk_pg_t *pg) {
    brk_pg_close(pg);
    free(pg->url);
    pg->url = NULL;
}

int brk_pg_reopen(brk_pg_t *pg, int64_t retry_ms, char *why, size_t cap) {
    if (brk_pg_ok(pg)) return 0;
    int64_t now = base_mono_ms();
    if (!pg->url || now < pg->retry_at) {
        if (why && cap) snprintf(why, cap, "%s", pg->last_error);
        return -EIO;
    }
    pg->retry_at = now + retry_ms;
    brk_pg_close(pg);
    return connect_to(pg, why, cap);
}

void brk_pg_close(brk_pg_t *pg) {
    if (pg->conn) PQfinish(pg->conn);
    pg->conn = NULL;
    pg->pending = 0;
}

bool brk_pg_ok(const brk_pg_t *pg) {
    return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

int brk_pg_exec(brk_pg_t *pg, const char *sql, char *why, size_t cap) {
    if (!brk_pg_ok(pg)) return down(pg, "exec", why, cap);
    if (pipeline(pg, false)) return down(pg, "leave pipeline", why, cap);
    PGresult *r = PQexec(pg->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        say(why, cap, "setup", r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn));
        rc = -EIO;
    }
    PQclear(r);
    if (pipeline(pg, true)) return down(pg, "enter pipeline", why, cap);
    return rc;
}

int brk_pg_prepare(brk_pg_t *pg, const char *name, const char *sql, int n, const Oid *types,
                   char *why, size_t cap) {
    if (!brk_pg_ok(pg)) return down(pg, "prepare", why, cap);
    if (pipeline(pg, false)) return down(pg, "leave pipeline", why, cap);
    PGresult *r = PQprepare(pg->conn, name, sql, n, types);
    int rc = 0;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        char what[80];
        snprintf(what, sizeof what, "prepare %s", name);
        say(why, cap, what, r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn));
        rc = -EIO;
    }
    PQclear(r);
    if (pipeline(pg, true)) return down(pg, "enter pipeline", why, cap);
    return rc;
}

void brk_pg_text(brk_pg_arg_t *a, const void *p, size_t n) {
    a->p = n ? p : "";
    a->n = (int)n;
}

void brk_pg_int(brk_pg_arg_t *a, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8) a->i8[i] = (uint8_t)u;
    a->p = a->i8;
    a->n = 8;
}

/* Sends a prepared statement (name) or, with sql, an unnamed one. */
static int send_any(brk_pg_t *pg, const char *name, const char *sql, int n, const Oid *types,
                    const brk_pg_arg_t *args) {
    if (!brk_pg_ok(pg)) return down(pg, "send", NULL, 0);
    const char *v[BRK_PG_MAX_ARGS];
    int len[BRK_PG_MAX_ARGS], fmt[BRK_PG_MAX_ARGS];
    if (n > BRK_PG_MAX_ARGS) n = BRK_PG_MAX_ARGS;
    for (int i = 0; i < n; i++) {
        v[i] = args[i].p;
        len[i] = args[i].n;
        fmt[i] = 1;
    }
    int ok = sql ? PQsendQueryParams(pg->conn, sql, n, types, v, len, fmt, 1)
                 : PQsendQueryPrepared(pg->conn, name, n, v, len, fmt, 1);
    return ok ? 0 : down(pg, sql ? "send" : name, NULL, 0);
}

int brk_pg_send(brk_pg_t *pg, const char *name, int n, const brk_pg_arg_t *args) {
    return send_any(pg, name, NULL, n, NULL, args);
}

int brk_pg_send_sql(brk_pg_t *pg, const char *sql, int n, const Oid *types,
                    const brk_pg_arg_t *args) {
    return send_any(pg, NULL, sql, n, types, args);
}

/* Waits until the socket is ready for ev (POLLIN, POLLOUT) or the deadline passes.
 * Returns: 0. Errors: -ETIMEDOUT, -EIO. */
static int wait_socket(brk_pg_t *pg, short ev, int64_t deadline) {
    int64_t left = deadline - base_mono_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {.fd = PQsocket(pg->conn), .events = ev};
    int n = poll(&p, 1, (int)left);
    if (n == 0) return -ETIMEDOUT;
    if (n < 0 && errno != EINTR) return -EIO;
    return 0;
}

/* Sends what libpq buffered. */
static int flush(brk_pg_t *pg, int64_t deadline) {
    int r;
    while ((r = PQflush(pg->conn)) == 1) {
        int rc = wait_socket(pg, POLLIN | POLLOUT, deadline);
        if (rc) return rc;
        if (!PQconsumeInput(pg->conn)) return -EIO; /* read what blocks the server's writes */
    }
    return r == 0 ? 0 : -EIO;
}

/* The next result (NULL: the end of one statement's results), waiting up to deadline. */
static int next(brk_pg_t *pg, int64_t deadline, PGresult **out) {
    while (PQisBusy(pg->conn)) {
        int rc = flush(pg, deadline);
        if (rc == 0) rc = wait_socket(pg, POLLIN, deadline);
        if (rc) return rc;
        if (!PQconsumeInput(pg->conn)) return -EIO;
    }
    *out = PQgetResult(pg->conn);
    return 0;
}

static bool failed(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_SYNC;
}

/* Reads the results up to the next Sync: the first n statements' into res (NULL: dropped).
 * Returns: 0, 1 (a statement failed). Errors: as next. */
static int read_batch(brk_pg_t *pg, PGresult **res, int n, int64_t deadline) {
    int i = 0, bad = 0;
    for (;;) {
        PGresult *r = NULL;
        int rc = next(pg, deadline, &r);
        if (rc) return rc;
        if (!r) {
            i++;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return bad;
        }
        if (failed(r)) bad = 1;
        if (res && i < n && !res[i]) res[i] = r;
        else {
            if (failed(r) && PQresultStatus(r) != PGRES_PIPELINE_ABORTED)
                say(pg->last_error, sizeof pg->last_error, "posted batch",
                    PQresultErrorMessage(r));
            PQclear(r);
        }
    }
}

int brk_pg_wait(brk_pg_t *pg, PGresult **res, int n, char *why, size_t cap) {
    for (int i = 0; i < n; i++) res[i] = NULL;
    if (!brk_pg_ok(pg)) return down(pg, "wait", why, cap);
    int64_t deadline = base_mono_ms() + pg->timeout_ms;
    int rc = PQpipelineSync(pg->conn) ? flush(pg, deadline) : -EIO;
    while (rc == 0 && pg->pending > 0) {
        int r = read_batch(pg, NULL, 0, deadline);
        if (r < 0) rc = r;
        else {
            pg->pending--;
            pg->failed += (unsigned)r;
        }
    }
    if (rc == 0) rc = read_batch(pg, res, n, deadline);
    if (rc >= 0) return rc;
    brk_pg_clear(res, n);
    if (rc == -ETIMEDOUT) {
        say(pg->last_error, sizeof pg->last_error, "timed out", "no answer within the bound");
        if (why && cap) snprintf(why, cap, "%s (%lld ms)", pg->last_error,
                                 (long long)pg->timeout_ms);
        brk_pg_close(pg);
        return -EIO;
    }
    return down(pg, "wait", why, cap);
}

int brk_pg_post(brk_pg_t *pg, int n) {
    (void)n;
    if (!brk_pg_ok(pg) || !PQpipelineSync(pg->conn)) return down(pg, "post", NULL, 0);
    pg->pending++;
    if (PQflush(pg->conn) < 0) return down(pg, "post", NULL, 0);
    return brk_pg_poll(pg);
}

int brk_pg_poll(brk_pg_t *pg) {
    if (!brk_pg_ok(pg)) return -EIO;
    if (PQflush(pg->conn) < 0 || !PQconsumeInput(pg->conn)) return down(pg, "poll", NULL, 0);
    while (pg->pending > 0 && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (!r) continue;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) pg->pending--;
        else if (failed(r)) {
            pg->failed++;
            if (st != PGRES_PIPELINE_ABORTED)
                say(pg->last_error, sizeof pg->last_error, "posted batch",
                    PQresultErrorMessage(r));
        }
        PQclear(r);
        if (!PQconsumeInput(pg->conn)) return down(pg, "poll", NULL, 0);
    }
    return 0;
}

void brk_pg_clear(PGresult **res, int n) {
    for (int i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
}

int64_t brk_pg_get_int(const PGresult *r, int row, int col) {
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    uint64_t u = 0;
    for (int i = 0; i < len && i < 8; i++) u = u << 8 | p[i];
    if (len == 4) return (int32_t)(uint32_t)u;
    return (int64_t)u;
}

const char *brk_pg_result_error(PGresult *const *res, int n, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (res[i] && failed(res[i]) && PQresultStatus(res[i]) != PGRES_PIPELINE_ABORTED) {
            say(buf, cap, PQresultErrorField(res[i], PG_DIAG_SQLSTATE) ?: "error",
                PQresultErrorField(res[i], PG_DIAG_MESSAGE_PRIMARY));
            break;
        }
    }
    return buf;
}

const char *brk_pg_sqlstate(PGresult *const *res, int n) {
    for (int i = 0; i < n; i++) {
        if (res[i] && failed(res[i]) && PQresultStatus(res[i]) != PGRES_PIPELINE_ABORTED) {
            const char *s = PQresultErrorField(res[i], PG_DIAG_SQLSTATE);
            return s ? s : "";
        }
    }
    return "";
}
