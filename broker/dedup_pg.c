/* broker/dedup_pg.c: the table `dedup` in PostgreSQL for dedup.c (see dedup_pg.h). Loading is
 * done once, at open, waiting; every write after that is posted on the pipeline. */
#include "dedup_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define OID_BYTEA 17
#define OID_INT8 20

static const char SETUP[] =
    "CREATE TABLE IF NOT EXISTS dedup (key bytea PRIMARY KEY, reply bytea NOT NULL,"
    " expires_ms bigint NOT NULL)";
static const char PUT[] =
    "INSERT INTO dedup (key, reply, expires_ms) VALUES ($1, $2, $3) ON CONFLICT (key)"
    " DO UPDATE SET reply = excluded.reply, expires_ms = excluded.expires_ms";
static const char DEL[] = "DELETE FROM dedup WHERE key = $1";
static const char EXPIRE[] = "DELETE FROM dedup WHERE expires_ms <= $1";
static const char LOAD[] = "SELECT key, reply, expires_ms FROM dedup ORDER BY expires_ms";

static int load(brk_pg_t *pg, int64_t now_unix, brk_dedup_pg_row_fn fn, void *ctx, char *why,
                size_t cap) {
    static const Oid t_int[] = {OID_INT8};
    brk_pg_arg_t a[1];
    brk_pg_int(&a[0], now_unix);
    if (brk_pg_send_sql(pg, EXPIRE, 1, t_int, a) || brk_pg_send_sql(pg, LOAD, 0, NULL, NULL)) {
        snprintf(why, cap, "%s", pg->last_error);
        return -EIO;
    }
    PGresult *r[2];
    int rc = brk_pg_wait(pg, r, 2, why, cap);
    if (rc == 1) {
        brk_pg_result_error(r, 2, why, cap);
        rc = -EIO;
    }
    for (int i = 0; rc == 0 && i < PQntuples(r[1]); i++)
        fn(ctx, (const uint8_t *)PQgetvalue(r[1], i, 0), (size_t)PQgetlength(r[1], i, 0),
           (const uint8_t *)PQgetvalue(r[1], i, 1), (size_t)PQgetlength(r[1], i, 1),
           brk_pg_get_int(r[1], i, 2));
    brk_pg_clear(r, 2);
    return rc;
}

int brk_dedup_pg_open(brk_pg_t **out, const char *url, int64_t now_unix, brk_dedup_pg_row_fn fn,
                      void *ctx, char *why, size_t cap) {
    *out = NULL;
    brk_pg_t *pg = calloc(1, sizeof *pg);
    if (!pg) return -ENOMEM;
    int rc = brk_pg_open(pg, url, BRK_PG_TIMEOUT_MS, why, cap);
    if (rc == 0) rc = brk_pg_exec(pg, SETUP, why, cap);
    if (rc == 0) rc = load(pg, now_unix, fn, ctx, why, cap);
    if (rc) {
        brk_dedup_pg_close(&pg);
        return rc == -ENOMEM ? rc : -EIO;
    }
    *out = pg;
    return 0;
}

void brk_dedup_pg_close(brk_pg_t **pg) {
    if (!*pg) return;
    if (brk_pg_ok(*pg) && (*pg)->pending) brk_pg_wait(*pg, NULL, 0, NULL, 0); /* posted writes */
    brk_pg_free(*pg);
    free(*pg);
    *pg = NULL;
}

/* Reads what posted writes answered; a lost connection is opened again (rate limited). */
static int ready(brk_pg_t *pg) {
    brk_pg_poll(pg);
    unsigned failed = pg->failed;
    pg->failed = 0;
    if (!brk_pg_ok(pg) && brk_pg_reopen(pg, BRK_DEDUP_PG_RETRY_MS, NULL, 0)) return -EIO;
    return failed ? -EIO : 0;
}

int brk_dedup_pg_put(brk_pg_t *pg, const uint8_t *key, size_t klen, const uint8_t *reply,
                     size_t n, int64_t expires_unix) {
    static const Oid types[] = {OID_BYTEA, OID_BYTEA, OID_INT8};
    int was = ready(pg);
    if (!brk_pg_ok(pg)) return -EIO;
    brk_pg_arg_t a[3];
    brk_pg_text(&a[0], key, klen);
    brk_pg_text(&a[1], reply, n);
    brk_pg_int(&a[2], expires_unix);
    if (brk_pg_send_sql(pg, PUT, 3, types, a) || brk_pg_post(pg, 1)) return -EIO;
    return was;
}

void brk_dedup_pg_del(brk_pg_t *pg, const uint8_t *key, size_t klen) {
    static const Oid types[] = {OID_BYTEA};
    ready(pg);
    brk_pg_arg_t a[1];
    brk_pg_text(&a[0], key, klen);
    if (brk_pg_ok(pg) && brk_pg_send_sql(pg, DEL, 1, types, a) == 0) brk_pg_post(pg, 1);
}
