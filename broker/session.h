/* broker/session.h: the broker's session store, after Google ADK's sessions. A session has an
 * id, an app, a user, a state (a msgpack map) and an append-only log of events; the broker owns
 * it so that workers stay stateless. One interface (brk_store_ops_t), three implementations:
 * embedded SQLite (store_sqlite.c, the one to deploy on one machine), PostgreSQL (store_pg.c,
 * the one a broker pair shares) and memory (store_mem.c, tests and the broker's default). Everything crossing this interface is validated in session.c first.
 *
 * State and its deltas (ADK semantics)
 * - Writes to state happen only through deltas: a msgpack map of key -> value, applied key by
 *   key in map order when an event is appended (or once, as the initial state, at create).
 *   A nil value deletes the key; deleting a key that is not there is not an error.
 * - Keys starting "app:" are shared by every session of the same app; "user:" keys by every
 *   session of the same (app, user); "temp:" keys belong to the running invocation only and are
 *   never stored (the store drops them from every delta); other keys belong to the session.
 *   The prefix stays part of the key everywhere, so the three scopes never collide.
 * - get returns the merged view: the session's keys, its (app, user)'s and its app's, in one
 *   map sorted by key bytes.
 * - Concurrency: appends to one store are serialised (one broker thread; one SQLite
 *   transaction each), and a delta names only the keys it writes. So deltas from parallel
 *   branches of one invocation merge key by key in the order their events are appended: a key
 *   written by one branch only keeps that branch's value, and a key two branches write ends
 *   with the value of the event appended last. No branch's write is lost, and there is no
 *   whole-session "stale session" conflict as in ADK's database service.
 *
 * Order and paging: sessions are listed in ascending order of id bytes (memcmp, shorter
 * first); a page's cursor is the last id it holds, and the next page holds ids after it. The
 * order is stable under updates, so paging never repeats or skips a session that lives.
 * Session ids are unique in the whole store (not per app and user); app and user are
 * attributes a get may check. Events are numbered 1, 2, ... per session (seq). */
#ifndef BRK_SESSION_H
#define BRK_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define BRK_SESS_DEFAULT_EVENTS 100 /* a get that names no count (the protocol's default) */
#define BRK_SESS_DEFAULT_PAGE 100   /* a list that names no limit */

/* Codes returned by the store (negative, errno-style); brk_sess_err_t.code is the wire code. */
enum {
    BRK_SESS_EINVAL = -22,  /* bad input: a name, key, value, delta or event ("bad_request") */
    BRK_SESS_ENOENT = -2,   /* no such session ("not_found") */
    BRK_SESS_EEXIST = -17,  /* create: the id is taken ("already_exists") */
    BRK_SESS_ETOOBIG = -90, /* over a size limit ("too_large") */
    BRK_SESS_EFULL = -28,   /* create: max_sessions reached ("overloaded") */
    BRK_SESS_ENOMEM = -12,  /* out of memory ("internal") */
    BRK_SESS_EIO = -5,      /* the database failed; the message has SQLite's ("internal") */
};

/* What went wrong, for the broker to send on: the wire code and a message for people that
 * names the field or key ("state_delta key 'app:' is ...", "field 'limit' ..."). */
typedef struct brk_sess_err {
    const char *code;
    char message[200];
} brk_sess_err_t;

/* Bounds on everything the store takes in or hands out. */
typedef struct brk_sess_limits {
    size_t max_name;         /* session id, app, user, event id, invocation, author (256) */
    size_t max_key;          /* one state key, bytes (256) */
    size_t max_value;        /* one state value, msgpack bytes (256 KiB) */
    size_t max_event;        /* one event, or one delta, msgpack bytes (1 MiB) */
    uint32_t max_delta_keys; /* entries in one delta or initial state (1024) */
    uint32_t max_events;     /* events one get may ask for (10000) */
    size_t max_get_bytes;    /* event bytes one get returns: older ones are left out (32 MiB) */
    uint32_t max_page;       /* sessions one list page may ask for (1000) */
    uint64_t max_sessions;   /* sessions in the store (100000) */
    uint32_t max_log_events; /* events one session keeps: past it the oldest go (10000) */
    size_t max_log_bytes;    /* bytes of those events' bodies: past it the oldest go (64 MiB) */
} brk_sess_limits_t;

/* Not bounded here: the events in one session's log and the keys in one state (each write
 * is bounded; the runner decides how long a log may grow). */
void brk_sess_limits_default(brk_sess_limits_t *l);

/* One event of a session's log. In: the caller's (seq is ignored). Out (a get): seq set, and
 * every pointer points into the brk_session_t that holds it. */
typedef struct brk_sess_event {
    uint64_t seq;           /* 1, 2, ... per session, set by the store */
    proto_str_t id;         /* the event's id (ADK Event.id), 1 to max_name bytes */
    proto_str_t invocation; /* its invocation id, 0 to max_name bytes */
    proto_str_t author;     /* "user" or the agent's name, 0 to max_name bytes */
    int64_t ts_ms;          /* unix ms, the caller's clock */
    proto_raw_t body;       /* the event: one msgpack value, at most max_event bytes */
} brk_sess_event_t;

/* A session as get returns it. One heap object; free it with brk_session_free. */
typedef struct brk_session {
    char *id, *app, *user;     /* NUL-terminated (names never hold NUL) */
    int64_t created_ms, updated_ms;
    uint64_t n_events;         /* events in the log */
    uint64_t last_seq;         /* seq of the newest event, 0 when none */
    proto_raw_t state;         /* the merged state: one msgpack map, sorted by key */
    brk_sess_event_t *events;  /* the newest asked for, oldest first */
    size_t n_got;              /* how many: at most the count asked and max_get_bytes */
    uint8_t *mem;              /* private: what the names, state and events point into */
} brk_session_t;

void brk_session_free(brk_session_t **s);

/* One row of a list page. */
typedef struct brk_sess_info {
    char *id, *app, *user;
    int64_t created_ms, updated_ms;
    uint64_t n_events;
} brk_sess_info_t;

typedef struct brk_sess_page {
    brk_sess_info_t *items;
    size_t n, cap;
    char *next;                /* the cursor for the next page; NULL when this is the last */
} brk_sess_page_t;

void brk_sess_page_init(brk_sess_page_t *p);
void brk_sess_page_free(brk_sess_page_t *p); /* frees what the page holds; safe to repeat */

/* What to list. app and user: only sessions with that app / user (n == 0: any). after: ids
 * after this one (n == 0: from the start). limit: 0 for BRK_SESS_DEFAULT_PAGE. */
typedef struct brk_sess_filter {
    proto_str_t app, user, after;
    uint32_t limit;
} brk_sess_filter_t;

/* ---- the store ---- */

typedef struct brk_store brk_store_t;
typedef struct brk_store_ops brk_store_ops_t;

extern const brk_store_ops_t brk_store_mem;    /* store_mem.c: path ignored */
extern const brk_store_ops_t brk_store_sqlite; /* store_sqlite.c: path of the database file */
extern const brk_store_ops_t brk_store_pg;     /* store_pg.c: a postgresql:// URL */
/* PostgreSQL only: bounds each later call's wait at ms instead of 5 s (a broker pair keeps it
 * under its fence). No effect on another store. */
void brk_store_pg_set_timeout(brk_store_t *st, int64_t ms);

/* Opens a store with the given implementation. lim NULL: defaults. err may be NULL in every
 * call below.
 * Returns: 0 with *out set. Errors: BRK_SESS_ENOMEM, BRK_SESS_EIO (the file cannot be opened,
 * is not a database, or holds another schema version). Ownership: close with
 * brk_store_close. */
int brk_store_open(brk_store_t **out, const brk_store_ops_t *ops, const char *path,
                   const brk_sess_limits_t *lim, brk_sess_err_t *err);
/* Closes the store and NULLs *st; safe to repeat. */
void brk_store_close(brk_store_t **st);
const char *brk_store_name(const brk_store_t *st);     /* "memory" or "sqlite" */
const brk_sess_limits_t *brk_store_limits(const brk_store_t *st);
uint64_t brk_store_count(brk_store_t *st);             /* sessions in the store */

/* Creates an empty session; state (a msgpack map, n == 0 for none) is applied as a delta, so
 * its app:/user: keys land in the shared scopes and temp: keys are dropped.
 * app must not be empty; user may be (the runner's default for a query that names none).
 * Returns: 0. Errors: BRK_SESS_EINVAL (a name or the state; the message says which),
 * BRK_SESS_ETOOBIG, BRK_SESS_EEXIST, BRK_SESS_EFULL, BRK_SESS_ENOMEM, BRK_SESS_EIO. */
int brk_store_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                     proto_raw_t state, int64_t now_ms, brk_sess_err_t *err);
/* Loads a session with its newest last_n events (0: none). app and user, when n > 0, must
 * match the session's, or it counts as not found.
 * Returns: 0 with *out set. Errors: BRK_SESS_EINVAL (a name, or last_n over max_events),
 * BRK_SESS_ENOENT, BRK_SESS_ENOMEM, BRK_SESS_EIO. Ownership: *out is the caller's
 * (brk_session_free). */
int brk_store_get(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                  uint32_t last_n, brk_session_t **out, brk_sess_err_t *err);
/* Loads a session, creating it (empty) first when there is none: what the runner does at the
 * start of an invocation. *created says which. app must be given (n > 0); user may be
 * empty (a query that names no user).
 * Returns and errors: as brk_store_create and brk_store_get (BRK_SESS_ENOENT when the id
 * exists under another app or user). */
int brk_store_get_or_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                            uint32_t last_n, int64_t now_ms, brk_session_t **out,
                            bool *created, brk_sess_err_t *err);
/* One page of sessions (see "Order and paging"). page must be initialised
 * (brk_sess_page_init); it is emptied first.
 * Returns: 0. Errors: BRK_SESS_EINVAL (a name, or limit over max_page), BRK_SESS_ENOMEM,
 * BRK_SESS_EIO. Ownership: the page's contents are the caller's (brk_sess_page_free). */
int brk_store_list(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                   brk_sess_err_t *err);
/* Deletes a session with its events and its own state (app: and user: state stays).
 * Returns: 1 when deleted, 0 when there was no such session. Errors: BRK_SESS_EINVAL,
 * BRK_SESS_EIO. */
int brk_store_delete(brk_store_t *st, proto_str_t id, brk_sess_err_t *err);
/* Appends an event and applies its state delta (a msgpack map, n == 0 for none), atomically:
 * on any error nothing changed. The session's updated_ms becomes now_ms. seq may be NULL.
 * Returns: 0 with *seq the event's number. Errors: BRK_SESS_EINVAL (the event's names or
 * body, the delta), BRK_SESS_ETOOBIG, BRK_SESS_ENOENT, BRK_SESS_ENOMEM, BRK_SESS_EIO. */
int brk_store_append(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                     proto_raw_t delta, int64_t now_ms, uint64_t *seq, brk_sess_err_t *err);

/* ---- for implementations: what session.c hands them, checked ---- */

typedef enum { BRK_SCOPE_SESSION, BRK_SCOPE_USER, BRK_SCOPE_APP } brk_sess_scope_t;

/* One entry of a parsed delta (temp: keys are already gone). */
typedef struct brk_sess_kv {
    proto_str_t key;          /* the whole key, prefix included */
    proto_raw_t value;        /* n == 0: delete the key */
    brk_sess_scope_t scope;
} brk_sess_kv_t;

/* What a get builds: implementations add the session's state entries and its events (newest
 * first) to it; session.c makes the brk_session_t. */
typedef struct brk_sess_build brk_sess_build_t;

/* Adds one state entry (copied). Returns: 0. Errors: BRK_SESS_ENOMEM. */
int brk_sess_build_kv(brk_sess_build_t *b, proto_str_t key, proto_raw_t value);
/* Adds the next older event (copied). Returns: 0, or 1 when it does not fit max_get_bytes
 * (not added: stop adding). Errors: BRK_SESS_ENOMEM. */
int brk_sess_build_event(brk_sess_build_t *b, const brk_sess_event_t *ev);
/* Sets the session's own fields (copied). Returns: 0. Errors: BRK_SESS_ENOMEM. */
int brk_sess_build_head(brk_sess_build_t *b, proto_str_t id, proto_str_t app, proto_str_t user,
                        int64_t created_ms, int64_t updated_ms, uint64_t n_events,
                        uint64_t last_seq);
/* Adds one row to a list page (copied). Returns: 0. Errors: BRK_SESS_ENOMEM. */
int brk_sess_page_add(brk_sess_page_t *p, proto_str_t id, proto_str_t app, proto_str_t user,
                      int64_t created_ms, int64_t updated_ms, uint64_t n_events);
/* Sets the page's next cursor (copied). Returns: 0. Errors: BRK_SESS_ENOMEM. */
int brk_sess_page_set_next(brk_sess_page_t *p, proto_str_t next);
/* Fills err with the wire code of rc and a formatted message; returns rc. */
int brk_sess_fail(brk_sess_err_t *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* BRK_SESS_ENOENT with the message every implementation gives ("no session 'ID'"). */
int brk_sess_not_found(brk_sess_err_t *err, proto_str_t id);
/* The scope a key's prefix gives it; -1 for temp: keys. */
int brk_sess_scope_of(proto_str_t key);

/* The table every implementation fills. Inputs are validated by session.c; an
 * implementation checks only what it alone knows (existence, the session count).
 * Each returns what the brk_store_* function of the same name documents. */
struct brk_store_ops {
    const char *name;
    int (*open)(brk_store_t *st, const char *path, brk_sess_err_t *err);
    void (*close)(brk_store_t *st);
    int (*create)(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                  const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, brk_sess_err_t *err);
    /* Fills b with the head, every state entry of the three scopes and the newest last_n
     * events, newest first (stopping when brk_sess_build_event says 1). */
    int (*get)(brk_store_t *st, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
               brk_sess_err_t *err);
    /* limit is resolved (1..max_page). */
    int (*list)(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                brk_sess_err_t *err);
    int (*del)(brk_store_t *st, proto_str_t id, brk_sess_err_t *err);
    int (*append)(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                  const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, uint64_t *seq,
                  brk_sess_err_t *err);
    uint64_t (*count)(brk_store_t *st);
};

struct brk_store {
    const brk_store_ops_t *ops;
    brk_sess_limits_t lim;
    void *impl;                /* the implementation's own state */
};

#endif
