/* broker/dedup_pg.h: the PostgreSQL side of dedup.h, used when --sessions is a postgresql://
 * URL: the table `dedup` (key, reply, expires_ms: wall clock) beside the session tables, so
 * that a broker that takes over from another (or restarts) replays the answers it sent.
 * Writes are posted (pg.h): pipelined, never waited for, so remembering an answer costs the
 * broker's loop no round trip; their failures are counted and logged by the caller. */
#ifndef BRK_DEDUP_PG_H
#define BRK_DEDUP_PG_H

#include <stddef.h>
#include <stdint.h>

#include "pg.h"

/* Called for each row still inside its window, oldest first. */
typedef void (*brk_dedup_pg_row_fn)(void *ctx, const uint8_t *key, size_t klen,
                                    const uint8_t *reply, size_t n, int64_t expires_unix);

/* Connects to url, creates the table when missing, deletes expired rows and hands the others
 * to fn. Returns: 0 with *out set. Errors: -ENOMEM, -EIO (why says why). Ownership: *out is
 * the caller's (brk_dedup_pg_close). */
int brk_dedup_pg_open(brk_pg_t **out, const char *url, int64_t now_unix, brk_dedup_pg_row_fn fn,
                      void *ctx, char *why, size_t cap);
/* Closes and frees *pg, NULLing it; safe on NULL. Waits (bounded) for posted writes first. */
void brk_dedup_pg_close(brk_pg_t **pg);
/* Posts an upsert of (key, reply, expires_unix). Returns: 0. Errors: -EIO (the connection is
 * down, or posted writes failed since the last call; a lost connection is opened again, at
 * most once every BRK_DEDUP_PG_RETRY_MS). */
int brk_dedup_pg_put(brk_pg_t *pg, const uint8_t *key, size_t klen, const uint8_t *reply,
                     size_t n, int64_t expires_unix);
/* Posts a delete of key (a failure leaves a row that expires anyway). */
void brk_dedup_pg_del(brk_pg_t *pg, const uint8_t *key, size_t klen);

#define BRK_DEDUP_PG_RETRY_MS 5000

#endif
