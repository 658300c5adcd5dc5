/* broker/dedup.h: the broker's memory of answered queries, so that a client that resends a
 * query with the same id (a lost reply, a broker restart) gets it answered once. Only clients
 * with an explicit ZeroMQ routing id take part: an id libzmq generated (first byte 0) changes
 * on every connection, so nothing could recognise the client again. */
#ifndef BRK_DEDUP_H
#define BRK_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct brk_dedup brk_dedup_t;

typedef struct brk_dedup_limits {
    uint64_t window_ms;  /* how long an answer is remembered; 0 turns dedup off */
    uint64_t max;        /* entries */
    uint64_t max_bytes;  /* keys and answers together */
    const char *boot_id; /* the boot now_mono counts from; NULL: the kernel's boot_id */
} brk_dedup_limits_t;

/* Opens the memory, and with path (a SQLite file, or a postgresql:// URL: dedup_pg.h; NULL,
 * "" or ":memory:" for none) the table
 * `dedup` in it, loading the answers whose window has not passed. now_mono and now_unix are
 * the monotonic and wall clocks in ms. The file keeps both expiries: on the boot that wrote
 * them (same boot_id) the monotonic one counts, so a wall clock that jumped while the broker
 * was down neither drops answers nor keeps them longer; after a reboot the wall one does,
 * never for longer than the window.
 * Returns: 0. Errors: -ENOMEM; -EIO (the file could not be opened or read; *why says why).
 * Ownership: *out is the caller's, freed with brk_dedup_close. */
int brk_dedup_open(brk_dedup_t **out, const brk_dedup_limits_t *lim, const char *path,
                   int64_t now_mono, int64_t now_unix, char *why, size_t why_cap);
/* Frees d and NULLs *d; safe on NULL. */
void brk_dedup_close(brk_dedup_t **d);

/* Whether a client with this routing id takes part (explicit id, dedup on). */
bool brk_dedup_eligible(const brk_dedup_t *d, const uint8_t *rid, size_t ridlen);

/* The remembered answer for (client key, query id) or NULL; expired entries are dropped on
 * the way. Ownership: the bytes are d's, valid until the next call on d. */
const uint8_t *brk_dedup_find(brk_dedup_t *d, const uint8_t *ckey, size_t cklen,
                              const uint8_t *id, size_t idlen, int64_t now_mono, size_t *n);

/* Remembers body as the answer of (client key, query id), replacing an older one; the oldest
 * entries go when a bound is reached. An answer bigger than max_bytes is not kept.
 * Returns: 0 or 1 (not kept: too big). Errors: -ENOMEM, -EIO (the file write failed; the
 * answer is still remembered in memory). */
int brk_dedup_put(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                  size_t idlen, const uint8_t *body, size_t n, int64_t now_mono,
                  int64_t now_unix);

/* Drops the remembered answer of (client key, query id) from memory only: its row stays in
 * the file or PostgreSQL (a broker adopting a running query forgets the provisional answer
 * that a broker taking over after it must still find). Returns: true when there was one. */
bool brk_dedup_forget(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                      size_t idlen);

/* Writes body as the answer of (client key, query id) to PostgreSQL only, not to the memory:
 * what a broker that starts (or takes over) after this one will replay, unless brk_dedup_put
 * replaces it first. Without PostgreSQL (memory, a SQLite file) it does nothing.
 * Returns: 0 or 1 (not kept: no PostgreSQL, dedup off, too big). Errors: -EIO. */
int brk_dedup_put_durable(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                          size_t idlen, const uint8_t *body, size_t n, int64_t now_unix);

/* Counts, for status and tests. */
size_t brk_dedup_count(const brk_dedup_t *d);
/* What the file said about its last failure ("" when there is no file). Ownership: d's. */
const char *brk_dedup_error(const brk_dedup_t *d);
size_t brk_dedup_bytes(const brk_dedup_t *d);

#endif
