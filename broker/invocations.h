/* broker/invocations.h: the agent runtime's invocations, as the broker holds them
 * (proto/PROTOCOL.md, "Invocations and sessions"). A query with a session and no parent is an
 * invocation: it takes its session's lock (later ones wait in arrival order, bounded), and at
 * dispatch its work carries an invocation id, the session's state and recent history. A
 * worker's query with a parent is a sub-invocation of that job's: no lock, the same session
 * and invocation id, its events forwarded to the root query's client. Every agent event (a
 * map with "author", not partial) of a running invocation is appended to its session. */
#ifndef BRK_INVOCATIONS_H
#define BRK_INVOCATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct brk brk_t;
typedef struct brk_job brk_job_t;
typedef struct brk_in brk_in_t;
typedef struct brk_inv brk_inv_t;
typedef struct brk_invs brk_invs_t;

#define BRK_INV_DEFAULT_WAITERS 64          /* --max-session-waiters */
#define BRK_INV_DEFAULT_HISTORY_EVENTS 50   /* --history-events */
#define BRK_INV_DEFAULT_HISTORY_BYTES 262144 /* --history-bytes */
#define BRK_INV_MAX_BRANCH 1024             /* bytes of a query's `branch` */
#define BRK_INV_ID_LEN 18                   /* "i-" or "e-" and 16 hex digits */
#define BRK_INV_MAX_DEPTH 64                /* ancestors an event is passed up to */

/* Why a query was refused or a dispatch failed: the wire code and a message naming what. */
typedef struct brk_inv_err {
    const char *code;
    char message[240];
} brk_inv_err_t;

/* Sets up the lock table and scratch buffers (b->invs). Returns: 0. Errors: -ENOMEM. */
int brk_invs_init(brk_t *b);
/* Frees every lock and the table; jobs must be closed first. Safe to repeat. */
void brk_invs_close(brk_t *b);
/* Sessions locked or waited for (for tests and status). */
uint64_t brk_invs_locked(const brk_t *b);
/* Queries waiting for a busy session, all sessions (status and /metrics: a walk of the
 * locks, for the rare asker rather than a counter kept on the hot path). */
uint64_t brk_invs_waiting(const brk_t *b);

/* Looks at a decoded query before it is accepted: an invocation (session, no parent), a
 * sub-invocation (parent), or neither (*out NULL). A sub-invocation that names no session
 * gets its root's: m->session is set to it (pointing into the root's job).
 * Returns: 0 with *out set (to be passed to brk_job_accept, or to brk_inv_discard).
 * Errors: -EINVAL (bad_request: a bad app, user or branch, a parent that is not one of the
 * sender's running jobs, a different session), -ECANCELED (cancelled: the parent or its
 * invocation has ended), -EBUSY (overloaded: the session's waiters are full), -ENOMEM
 * (internal). err says which and why. */
int brk_inv_prepare(brk_t *b, const brk_in_t *in, proto_msg_t *m, brk_inv_t **out,
                    brk_inv_err_t *err);
/* Frees a prepared record whose query was not accepted after all; NULLs *inv. */
void brk_inv_discard(brk_t *b, brk_inv_t **inv);
/* Whether a prepared record would wait for its session's lock if bound now. */
bool brk_inv_will_wait(const brk_inv_t *v);
/* Ties a prepared record to its new job (j->inv). Returns: true when j must wait for its
 * session's lock (the caller keeps it JOB_WAITING), false when it may be queued now. */
bool brk_inv_bind(brk_t *b, brk_inv_t *inv, brk_job_t *j);
/* Encodes j's `work` into b->out with its invocation fields; at the first dispatch of an
 * invocation this gets or creates the session and appends the user's input as its first
 * event. history: a host of the agent asked for the session's history (ready's
 * history_agents), so a root invocation's work carries it. left: timeout_ms left (< 0 none).
 * Returns: 0. Errors: -EIO and others (err: the store's code, e.g. not_found, overloaded). */
int brk_inv_enc_work(brk_t *b, brk_job_t *j, bool history, int64_t left, brk_inv_err_t *err);
/* An event from j's worker, already sent to j's client and the bus: forwarded to the root
 * query's client when j is a sub-invocation, and stored in the session when it is an agent
 * event of a running invocation. */
void brk_inv_on_event(brk_t *b, brk_job_t *j, proto_raw_t event);
/* j was answered: a root releases its session's lock (the next waiter is queued), a waiter
 * leaves the line. */
void brk_inv_on_answer(brk_t *b, brk_job_t *j);
/* j is being freed: its record goes (a root's sub-invocations lose their root). */
void brk_inv_on_free(brk_t *b, brk_job_t *j);
/* Gives j, a job a worker reported after a takeover (adopt.c), the record of a root
 * invocation with that id, and its session's lock when free; two adopted jobs on one session
 * keep the lock with the older (lower job id), the other runs on without it (logged
 * adopt_lock_conflict), as does one that finds a query since the takeover holding it.
 * Returns: 0. Errors: -ENOMEM (j has no record: it runs as a query without session lock). */
int brk_inv_adopt(brk_t *b, brk_job_t *j, proto_str_t invocation, proto_str_t app,
                  proto_str_t user);
/* Makes j, a sub-invocation a worker reported after a takeover and linked to its call
 * (adopt.c), a sub-invocation of pj's invocation again: it runs under its root's session lock
 * and its events go up to its ancestors and the root's client, as before the takeover.
 * Returns: 0. Errors: -ECANCELED (the root has ended), -EINVAL (j's session is not the
 * root's), -ENOMEM; j then has no record. */
int brk_inv_adopt_child(brk_t *b, brk_job_t *j, brk_job_t *pj);
/* The job a sub-invocation was made for (its `parent`), or 0 when j is none. */
uint64_t brk_inv_parent_of(const brk_job_t *j);
/* The id of the invocation j runs in (its root's), or "" when none. */
const char *brk_inv_id_of(const brk_job_t *j);

/* ---- helpers without broker state (unit tested) ---- */

/* What the broker reads from an agent event. */
typedef struct brk_inv_event {
    bool store;             /* a map with a string "author", not partial */
    proto_str_t id;         /* "id" when a string (n == 0: none) */
    proto_str_t author;
    int64_t ts_ms;          /* "ts_ms" when an integer, else -1 */
    proto_raw_t delta;      /* actions.state_delta when a map (n == 0: none) */
} brk_inv_event_t;

/* Reads an event payload. Never fails: anything that is not an agent event gets store false.
 * Pointers point into event. */
void brk_inv_event_parse(proto_raw_t event, brk_inv_event_t *out);
/* Writes "<prefix>-" and 16 hex digits of x and a NUL into out (BRK_INV_ID_LEN + 1). */
void brk_inv_id_format(char *out, char prefix, uint64_t x);
/* Encodes the user's event {"id","invocation_id","author":"user","ts_ms","content":{"role":
 * "user","parts":[{"text": input}] or [{"data": input}]}} into o (reset first).
 * Returns: 0. Errors: -ENOMEM. */
int brk_inv_enc_user_event(proto_buf_t *o, const char *id, const char *invocation,
                           int64_t ts_ms, proto_raw_t input);
/* Encodes the broker's own event {"id","invocation_id","author":"broker","ts_ms",
 * "error_code","error_message"} into o (reset first). Returns: 0. Errors: -ENOMEM. */
int brk_inv_enc_broker_event(proto_buf_t *o, const char *id, const char *invocation,
                             int64_t ts_ms, const char *code, const char *message);

#endif
