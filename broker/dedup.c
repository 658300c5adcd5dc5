/* broker/dedup.c: the answered-query memory of dedup.h. Entries live in a hash index by
 * (client key, query id) and in one list oldest first: the window is the same for every entry,
 * so the oldest is also the first to expire, and eviction under the bounds takes it too.
 * With a SQLite file each entry is also a row of the table `dedup`, read back at start so that
 * answers outlive a broker restart. A row holds its expiry on both clocks: the monotonic one
 * (CLOCK_MONOTONIC counts from boot, so it holds across restarts of the process on one boot,
 * whose id the table dedup_boot keeps) and the wall one, for after a reboot. */
#include "dedup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dedup_pg.h"
#include "base/clock.h"
#include "base/list.h"
#include "hashmap.h"

#define DD_KEY_MAX (2 + 1 + 255 + 40 + 1024) /* its length, the client's key (socket byte,
                                                  routing id, CURVE key), the query id */

typedef struct dd_entry {
    brk_node_t node;  /* key: data[0..klen) */
    base_list_t link;  /* in d->fifo, oldest first */
    int64_t expires;  /* monotonic ms */
    size_t klen, n;   /* key bytes, answer bytes */
    uint8_t data[];   /* key, then the answer */
} dd_entry_t;

enum { ST_PUT, ST_DEL, N_ST };

static const char *const SQL[N_ST] = {
    [ST_PUT] = "INSERT OR REPLACE INTO dedup (key, reply, expires_ms, expires_mono) "
               "VALUES (?1, ?2, ?3, ?4)",
    [ST_DEL] = "DELETE FROM dedup WHERE key = ?1",
};

struct brk_dedup {
    brk_dedup_limits_t lim;
    brk_map_t map;
    base_list_t fifo;
    size_t count, bytes;
    sqlite3 *db;           /* NULL: memory only */
    char boot[64];         /* this boot's id; "" unknown (then the wall clock counts) */
    sqlite3_stmt *st[N_ST];
    brk_pg_t *pg;          /* --sessions postgresql://: the table in PostgreSQL instead */
    int64_t now_mono, now_unix; /* the clocks of the open, while the rows load */
};

static size_t entry_cost(const dd_entry_t *e) { return sizeof *e + e->klen + e->n; }

/* Writes key = len(ckey) ++ ckey ++ id into buf (DD_KEY_MAX bytes); 0 when it does not fit.
 * The length keeps keys apart that would otherwise concatenate alike (routing id "a\xa1"
 * with the id 98, 0x62, and routing id "a" with the id "b", 0xa1 0x62). */
static size_t make_key(uint8_t *buf, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                       size_t idlen) {
    if (2 + cklen + idlen > DD_KEY_MAX || idlen == 0) return 0;
    buf[0] = (uint8_t)(cklen >> 8);
    buf[1] = (uint8_t)cklen;
    memcpy(buf + 2, ckey, cklen);
    memcpy(buf + 2 + cklen, id, idlen);
    return 2 + cklen + idlen;
}

static void db_delete(brk_dedup_t *d, const uint8_t *key, size_t klen) {
    if (d->pg) brk_dedup_pg_del(d->pg, key, klen);
    if (!d->db) return;
    sqlite3_stmt *s = d->st[ST_DEL];
    sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
    sqlite3_step(s); /* a failed delete leaves a row that expires anyway */
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static int db_put(brk_dedup_t *d, const dd_entry_t *e, int64_t expires_unix) {
    if (d->pg)
        return brk_dedup_pg_put(d->pg, e->data, e->klen, e->data + e->klen, e->n, expires_unix);
    if (!d->db) return 0;
    sqlite3_stmt *s = d->st[ST_PUT];
    sqlite3_bind_blob(s, 1, e->data, (int)e->klen, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, e->data + e->klen, (int)e->n, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires_unix);
    sqlite3_bind_int64(s, 4, e->expires);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

/* Drops e from memory (and from the file when forget_row). */
static void entry_drop(brk_dedup_t *d, dd_entry_t *e, bool forget_row) {
    if (forget_row) db_delete(d, e->data, e->klen);
    brk_map_del(&d->map, &e->node);
    base_list_unlink(&e->link);
    d->count--;
    d->bytes -= entry_cost(e);
    free(e);
}

static dd_entry_t *oldest(brk_dedup_t *d) {
    return base_list_empty(&d->fifo) ? NULL : base_container_of(d->fifo.next, dd_entry_t, link);
}

static void expire(brk_dedup_t *d, int64_t now_mono) {
    dd_entry_t *e;
    while ((e = oldest(d)) && e->expires <= now_mono) entry_drop(d, e, true);
}

/* Links a new entry, evicting the oldest until it fits. Returns: the entry, or NULL. */
static dd_entry_t *entry_add(brk_dedup_t *d, const uint8_t *key, size_t klen,
                             const uint8_t *body, size_t n, int64_t expires) {
    size_t cost = sizeof(dd_entry_t) + klen + n;
    if (cost > d->lim.max_bytes || d->lim.max == 0) return NULL;
    brk_node_t *old = brk_map_get(&d->map, key, klen);
    if (old) entry_drop(d, base_container_of(old, dd_entry_t, node), false);
    dd_entry_t *e;
    while ((d->count >= d->lim.max || d->bytes + cost > d->lim.max_bytes) && (e = oldest(d)))
        entry_drop(d, e, true);
    e = malloc(cost);
    if (!e) return NULL;
    e->klen = klen;
    e->n = n;
    e->expires = expires;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, body, n);
    e->node.key = e->data;
    e->node.klen = klen;
    brk_map_put(&d->map, &e->node);
    base_list_push(&d->fifo, &e->link);
    d->count++;
    d->bytes += cost;
    return e;
}

/* ---- the file ---- */

static int db_fail(brk_dedup_t *d, const char *what, char *why, size_t cap) {
    snprintf(why, cap, "%s: %s", what, d->db ? sqlite3_errmsg(d->db) : "out of memory");
    return -EIO;
}

/* This boot's id into d->boot (lim.boot_id, else the kernel's); "" when unknown. */
static void boot_read(brk_dedup_t *d) {
    d->boot[0] = 0;
    if (d->lim.boot_id) {
        snprintf(d->boot, sizeof d->boot, "%s", d->lim.boot_id);
        return;
    }
    base_boot_id(d->boot, sizeof d->boot); /* "" when unknown */
}

/* Whether the file's monotonic expiries were written on this boot; then records this boot as
 * the one they count from, clearing them when it was another. Returns: 0/1, or -EIO. */
static int boot_same(brk_dedup_t *d, char *why, size_t cap) {
    sqlite3_stmt *s;
    int same = 0;
    if (sqlite3_prepare_v2(d->db, "SELECT boot_id FROM dedup_boot", -1, &s, NULL) != SQLITE_OK)
        return db_fail(d, "dedup boot", why, cap);
    if (sqlite3_step(s) == SQLITE_ROW && d->boot[0]) {
        const unsigned char *id = sqlite3_column_text(s, 0);
        same = id && strcmp((const char *)id, d->boot) == 0;
    }
    sqlite3_finalize(s);
    if (same) return 1;
    /* Another boot (or none recorded): its monotonic expiries mean nothing now. */
    if (sqlite3_exec(d->db, "UPDATE dedup SET expires_mono = NULL; DELETE FROM dedup_boot;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, "INSERT INTO dedup_boot (boot_id) VALUES (?1)", -1, &s,
                           NULL) != SQLITE_OK)
        return db_fail(d, "dedup boot", why, cap);
    sqlite3_bind_text(s, 1, d->boot, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_fail(d, "dedup boot", why, cap);
}

/* How long a row has left: by the monotonic clock when it was written on this boot, else by
 * the wall clock. */
static int64_t row_left(sqlite3_stmt *s, bool same_boot, int64_t now_mono, int64_t now_unix) {
    if (same_boot && sqlite3_column_type(s, 3) == SQLITE_INTEGER)
        return sqlite3_column_int64(s, 3) - now_mono;
    return sqlite3_column_int64(s, 2) - now_unix;
}

/* Loads the rows still inside their window, oldest first, so the bounds keep the newest, and
 * deletes the others. */
static int db_load(brk_dedup_t *d, int64_t now_mono, int64_t now_unix, char *why,
                   size_t cap) {
    int same = boot_same(d, why, cap);
    if (same < 0) return same;
    sqlite3_stmt *s;
    const char *sql = "SELECT key, reply, expires_ms, expires_mono FROM dedup "
                      "ORDER BY expires_ms";
    if (sqlite3_prepare_v2(d->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_fail(d, "dedup load", why, cap);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *k = sqlite3_column_blob(s, 0), *r = sqlite3_column_blob(s, 1);
        int kn = sqlite3_column_bytes(s, 0), rn = sqlite3_column_bytes(s, 1);
        int64_t left = row_left(s, same, now_mono, now_unix);
        /* A row is only trusted as far as this process's own bounds go: a file edited by
         * hand or written with a longer window cannot stretch them. */
        if (left > (int64_t)d->lim.window_ms) left = (int64_t)d->lim.window_ms;
        if (!k || !r || kn <= 0 || kn > DD_KEY_MAX || rn <= 0 || left <= 0) continue;
        entry_add(d, k, (size_t)kn, r, (size_t)rn, now_mono + left);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db_fail(d, "dedup load", why, cap);
    /* The rows not loaded: expired by the clock that counts for them. */
    const char *del = same ? "DELETE FROM dedup WHERE CASE WHEN expires_mono IS NULL"
                             " THEN expires_ms <= ?2 ELSE expires_mono <= ?1 END"
                           : "DELETE FROM dedup WHERE expires_ms <= ?2";
    if (sqlite3_prepare_v2(d->db, del, -1, &s, NULL) != SQLITE_OK)
        return db_fail(d, "dedup expire", why, cap);
    sqlite3_bind_int64(s, 1, now_mono);
    sqlite3_bind_int64(s, 2, now_unix);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_fail(d, "dedup expire", why, cap);
}

static int db_open(brk_dedup_t *d, const char *path, int64_t now_mono, int64_t now_unix,
                   char *why, size_t cap) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &d->db, flags, NULL) != SQLITE_OK)
        return db_fail(d, path, why, cap);
    sqlite3_busy_timeout(d->db, 5000);
    const char *setup = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                        "CREATE TABLE IF NOT EXISTS dedup (key BLOB PRIMARY KEY,"
                        " reply BLOB NOT NULL, expires_ms INTEGER NOT NULL,"
                        " expires_mono INTEGER);"
                        "CREATE TABLE IF NOT EXISTS dedup_boot (boot_id TEXT NOT NULL);";
    if (sqlite3_exec(d->db, setup, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(d, "dedup table", why, cap);
    /* A file of an older broker has no expires_mono: add it (an error says it is there). */
    sqlite3_exec(d->db, "ALTER TABLE dedup ADD COLUMN expires_mono INTEGER", NULL, NULL, NULL);
    boot_read(d);
    for (int i = 0; i < N_ST; i++) {
        if (sqlite3_prepare_v3(d->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK)
            return db_fail(d, SQL[i], why, cap);
    }
    return db_load(d, now_mono, now_unix, why, cap);
}

/* One row of PostgreSQL's table, as db_load takes SQLite's. */
static void pg_row(void *ctx, const uint8_t *k, size_t kn, const uint8_t *r, size_t rn,
                   int64_t expires_unix) {
    brk_dedup_t *d = ctx;
    int64_t left = expires_unix - d->now_unix;
    if (left > (int64_t)d->lim.window_ms) left = (int64_t)d->lim.window_ms;
    if (kn == 0 || kn > DD_KEY_MAX || rn == 0 || left <= 0) return;
    entry_add(d, k, kn, r, rn, d->now_mono + left);
}

/* ---- the API ---- */

int brk_dedup_open(brk_dedup_t **out, const brk_dedup_limits_t *lim, const char *path,
                   int64_t now_mono, int64_t now_unix, char *why, size_t why_cap) {
    *out = NULL;
    brk_dedup_t *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->lim = *lim;
    base_list_init(&d->fifo);
    if (brk_map_init(&d->map) != 0) {
        free(d);
        return -ENOMEM;
    }
    bool file = path && path[0] && strcmp(path, ":memory:") != 0 && lim->window_ms > 0;
    if (file) {
        d->now_mono = now_mono;
        d->now_unix = now_unix;
        int rc = brk_pg_is_url(path)
                     ? brk_dedup_pg_open(&d->pg, path, now_unix, pg_row, d, why, why_cap)
                     : db_open(d, path, now_mono, now_unix, why, why_cap);
        if (rc) {
            brk_dedup_close(&d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

void brk_dedup_close(brk_dedup_t **pd) {
    brk_dedup_t *d = *pd;
    if (!d) return;
    dd_entry_t *e;
    while ((e = oldest(d))) entry_drop(d, e, false);
    brk_map_close(&d->map);
    for (int i = 0; i < N_ST; i++) sqlite3_finalize(d->st[i]);
    if (d->db) sqlite3_close(d->db);
    brk_dedup_pg_close(&d->pg);
    free(d);
    *pd = NULL;
}

bool brk_dedup_eligible(const brk_dedup_t *d, const uint8_t *rid, size_t ridlen) {
    return d && d->lim.window_ms > 0 && ridlen > 0 && rid[0] != 0;
}

const uint8_t *brk_dedup_find(brk_dedup_t *d, const uint8_t *ckey, size_t cklen,
                              const uint8_t *id, size_t idlen, int64_t now_mono, size_t *n) {
    uint8_t key[DD_KEY_MAX];
    size_t klen = make_key(key, ckey, cklen, id, idlen);
    expire(d, now_mono);
    if (!klen) return NULL;
    brk_node_t *node = brk_map_get(&d->map, key, klen);
    if (!node) return NULL;
    dd_entry_t *e = base_container_of(node, dd_entry_t, node);
    *n = e->n;
    return e->data + e->klen;
}

bool brk_dedup_forget(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                      size_t idlen) {
    uint8_t key[DD_KEY_MAX];
    size_t klen = make_key(key, ckey, cklen, id, idlen);
    brk_node_t *node = klen ? brk_map_get(&d->map, key, klen) : NULL;
    if (!node) return false;
    entry_drop(d, base_container_of(node, dd_entry_t, node), false);
    return true;
}

int brk_dedup_put(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                  size_t idlen, const uint8_t *body, size_t n, int64_t now_mono,
                  int64_t now_unix) {
    uint8_t key[DD_KEY_MAX];
    size_t klen = make_key(key, ckey, cklen, id, idlen);
    expire(d, now_mono);
    if (!klen || d->lim.max == 0 || sizeof(dd_entry_t) + klen + n > d->lim.max_bytes) return 1;
    dd_entry_t *e = entry_add(d, key, klen, body, n, now_mono + (int64_t)d->lim.window_ms);
    if (!e) return -ENOMEM;
    return db_put(d, e, now_unix + (int64_t)d->lim.window_ms);
}

int brk_dedup_put_durable(brk_dedup_t *d, const uint8_t *ckey, size_t cklen, const uint8_t *id,
                          size_t idlen, const uint8_t *body, size_t n, int64_t now_unix) {
    uint8_t key[DD_KEY_MAX];
    size_t klen = make_key(key, ckey, cklen, id, idlen);
    /* PostgreSQL only: posted, it costs the loop nothing; a SQLite row per query would halve
     * the broker's throughput for clients that resend (measured: 17k -> 7.6k q/s). */
    if (!klen || !d->pg || d->lim.max == 0 ||
        sizeof(dd_entry_t) + klen + n > d->lim.max_bytes)
        return 1;
    dd_entry_t *e = malloc(sizeof *e + klen + n); /* the row's bytes, never linked */
    if (!e) return -ENOMEM;
    e->expires = 0; /* PostgreSQL keeps the wall clock only: the pair's hosts share no other */
    e->klen = klen;
    e->n = n;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, body, n);
    int rc = db_put(d, e, now_unix + (int64_t)d->lim.window_ms);
    free(e);
    return rc;
}

size_t brk_dedup_count(const brk_dedup_t *d) { return d ? d->count : 0; }

const char *brk_dedup_error(const brk_dedup_t *d) {
    return d && d->db ? sqlite3_errmsg(d->db) : "";
}

size_t brk_dedup_bytes(const brk_dedup_t *d) { return d ? d->bytes : 0; }
