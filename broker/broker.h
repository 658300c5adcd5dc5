/* broker/broker.h: the broker's shared state and the functions its files call on each other.
 * One process, one thread, one zmq_poll loop (broker.c). Tables: clients (clients.c), workers
 * and the agents they host (workers.c, broker_agents.c), jobs with their queue and deadlines
 * (broker_jobs.c); the bus in broker_bus.c; flags and the config file in main.c. Nothing here
 * is public. */
#ifndef BRK_BROKER_H
#define BRK_BROKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "proto/proto.h"

#include "base/clock.h"
#include "base/heap.h"
#include "base/list.h"
#include "base/log.h"
#include "broker_metrics.h"
#include "hashmap.h"
#include "jobslots.h"
#include "invocations.h"
#include "dedup.h"
#include "session.h"
#include "base/utf8.h"
#include "zap.h"
#include "model_budget.h"

#define BRK_MAX_NAME 256          /* agent, worker and session names, bytes */
#define BRK_MAX_AGENTS 1024       /* agents one worker may host */
#define BRK_MAX_IDENTITY 255      /* a ZeroMQ routing id */
#define BRK_WORKER_CACHE 16       /* workers found by their routing id's last byte */
#define BRK_MSG_SLACK 65536       /* ZMQ_MAXMSGSIZE = max_msg + this: answer, not disconnect */
#define BRK_ENDPOINT_MAX 256
#define BRK_PATH_MAX 4096         /* --sessions FILE */

#define BRK_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) brk_panic(__FILE__, __LINE__, #cond);                               \
    } while (0)
void brk_panic(const char *file, int line, const char *what) __attribute__((noreturn));

typedef struct brk_config {
    char clients_ep[BRK_ENDPOINT_MAX], workers_ep[BRK_ENDPOINT_MAX];
    char pub_ep[BRK_ENDPOINT_MAX], sub_ep[BRK_ENDPOINT_MAX];
    uint64_t max_msg;             /* bytes of one message */
    uint64_t max_queue;           /* queued queries, all agents, and those waiting for a
                                     session */
    uint64_t fair_share_from;     /* percent of max_queue past which fair shares hold */
    uint64_t max_client_inflight; /* unanswered queries of one client */
    uint64_t max_clients;         /* clients with queries in flight */
    uint64_t max_workers;
    uint64_t max_agent_hosts;     /* agents announced, summed over workers */
    uint64_t max_jobs;            /* jobs of every state, cancelling ones included */
    uint64_t heartbeat_ms, liveness, max_retries, drain_ms;
    uint64_t poison_after;        /* workers a query may lose before it ends `poisoned` */
    uint64_t cancel_gone;         /* 1: a client's disconnect cancels its queries (gone.c) */
    uint64_t loop_slice_ms;       /* one socket's reads per loop pass stop after this */
    uint64_t client_queue_bytes;  /* bytes queued to one client connection (outq.c) */
    uint64_t clients_queue_bytes; /* bytes queued to all client connections */
    uint64_t max_reply;           /* bytes of one reply the broker makes (session.get,
                                     status): bigger ones are paged */
    int log_level;
    uint64_t log_bad_input;       /* bad-input log lines a second, at most */
    char sessions[BRK_PATH_MAX];  /* the SQLite session file; "" or ":memory:": in memory */
    uint64_t max_sessions;
    uint64_t sessions_reserve;    /* bytes kept free beside the session file (reserve.c) */
    uint64_t session_max_events, session_max_bytes; /* one session's log: past either bound
                                                       its oldest events are dropped */
    char curve_secret[BRK_PATH_MAX]; /* the broker's key pair file; "" no CURVE (zap.c) */
    char client_keys[BRK_PATH_MAX], worker_keys[BRK_PATH_MAX]; /* allowlists */
    bool insecure;                /* allow non-loopback binds without CURVE */
    uint64_t max_keys;            /* keys in one allowlist */
    uint64_t io_threads;          /* libzmq I/O threads (CURVE's crypto runs on them) */
    uint64_t max_session_waiters; /* queries waiting for one session's lock */
    uint64_t history_events, history_bytes; /* the history an invocation's work carries */
    uint64_t dedup_window_ms, dedup_max, dedup_max_bytes; /* dedup.c: resent query ids */
    uint64_t startup_grace_ms;    /* broker_agents.c: after start, queries for agents no worker has
                                     announced yet wait this long; UINT64_MAX: liveness x
                                     heartbeat_ms, the time workers take to come back */
    char metrics_ep[BRK_ENDPOINT_MAX]; /* --metrics: the /metrics endpoint; "" off */
    uint64_t max_sub_bytes;       /* bytes of one bus subscription prefix */
    uint64_t max_subs_per_peer;   /* bus subscriptions one connection holds (subs.c) */
    uint64_t max_subs;            /* bus subscriptions all connections hold together */
    uint64_t metrics_max_conns;   /* scrapers connected at once; past it the oldest goes */
    uint64_t metrics_idle_ms;     /* a scraper without a whole request by then is closed */
    uint64_t metrics_max_request; /* bytes of one HTTP request head */
    uint64_t metrics_max_labels;  /* agents, and error codes, with series of their own */
    uint64_t max_tasks_requests;  /* `tasks` requests waiting for their worker */
    char log_format[8];           /* --log-format: kv or json */
    uint64_t model_concurrency;   /* model budget (model_budget.c): permits per backend, 0 none */
    double model_rps;             /* grants per second per backend, 0 none */
    uint64_t model_burst;         /* grants at once after a pause */
    uint64_t model_tpm;           /* tokens per minute per backend, 0 none (model_budget.c) */
    uint64_t model_max_waiters;   /* waiting acquires per backend */
    uint64_t model_max_backends;  /* backend names the budget tracks at once */
    bool pair;                    /* --pair: active/standby on the PostgreSQL store (lease.c) */
    uint64_t lease_poll_ms;       /* how often a standby tries for the lease */
    uint64_t fence_ms;            /* an active whose lease check is unanswered this long exits */
    uint64_t adopt_window_ms;     /* after a takeover: how long a resend of a query that may
                                     still run on a worker waits for that worker (adopt.c);
                                     UINT64_MAX: 2 x liveness x heartbeat_ms */
} brk_config_t;

void brk_config_default(brk_config_t *c);

/* a + b, held at UINT64_MAX: sums of what workers declare (capacity) must not wrap. */
static inline uint64_t brk_add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* now + ms, for every deadline the broker computes: ms is held to PROTO_TIMEOUT_MAX_MS and
 * the sum saturates, so no timeout, flag or grace can wrap a deadline into the past. */
static inline int64_t brk_after(int64_t now, uint64_t ms) {
    int64_t d = ms > (uint64_t)PROTO_TIMEOUT_MAX_MS ? PROTO_TIMEOUT_MAX_MS : (int64_t)ms;
    return now > INT64_MAX - d ? INT64_MAX : now + d;
}


typedef struct brk_worker brk_worker_t;
typedef struct brk_lease brk_lease_t;
typedef struct brk_agent brk_agent_t;
typedef struct brk_client brk_client_t;
typedef struct brk_job brk_job_t;

/* Which ROUTER a peer talks on; the first byte of a client's key. */
typedef enum { BRK_SOCK_CLIENTS = 0, BRK_SOCK_WORKERS = 1 } brk_sock_t;

/* One received request: who sent it, how to answer, and its body. */
typedef struct brk_in {
    brk_sock_t sock;
    uint8_t id[BRK_MAX_IDENTITY];
    size_t idlen;
    bool req;               /* REQ-style envelope: the reply carries the empty delimiter */
    const uint8_t *body;    /* the one body frame (NULL when the frames were wrong) */
    size_t n;
    char frame_err[96];     /* what was wrong with the frames; "" when nothing */
    brk_key_t *key;         /* the sender's allowed CURVE key; NULL without CURVE */
    int fd;                 /* the connection's fd (gone.c); -1 unknown */
} brk_in_t;

/* A query's terminal message: a result, or an error with a code. */
typedef struct brk_term {
    bool ok;
    proto_raw_t output;
    proto_str_t code, message;
} brk_term_t;

/* JOB_WAITING: an invocation waiting for its session's lock (invocations.c), in no queue. */
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_CANCELLING, JOB_WAITING } brk_job_state_t;

struct brk_job {
    brk_slot_t slot;         /* in b->job_slots under job_id (ids this broker gave) */
    brk_node_t by_job;       /* key: job_id; only adopted jobs (foreign ids), in b->job_map */
    brk_node_t by_cid;       /* key: ckey (client pointer + id bytes); linked until answered */
    uint64_t idh;            /* brk_map_hash of the id's bytes: jobindex.c and by_cid */
    base_list_t link;         /* in its agent's queue (QUEUED) or its worker's jobs */
    base_list_t clink;        /* in its client's jobs, until answered */
    base_heap_node_t deadline_node; /* in b->deadlines; key: timeout_at, or the cancel grace */
    int64_t timeout_at;      /* the query's deadline (ms, monotonic); -1 none */
    uint64_t job_id, qseq, seq, attempt;
    uint32_t lost;           /* workers lost while running it (poison_after) */
    brk_job_state_t state;
    bool answered, idempotent, req;
    bool foreign;            /* job_id came from a worker at a takeover: in job_map */
    bool pending;            /* counted in its client's n_pending (queued or waiting) */
    bool quiet;              /* adopted, its client has not resent the id yet: the answer is
                                remembered for the resend, not sent (adopt.c) */
    brk_client_t *client;    /* NULL once answered */
    brk_worker_t *worker;    /* RUNNING and CANCELLING */
    brk_agent_t *agent;      /* QUEUED only: whose queue */
    proto_raw_t id, input;   /* point into buf */
    proto_str_t agent_name, session;
    uint8_t *ckey;
    size_t ckey_len;
    brk_inv_t *inv;          /* its invocation record (invocations.c); NULL: none */
    base_list_t ilink;        /* in its id's bucket (jobindex.c), until answered */
    struct brk_idb *idb;     /* that bucket; NULL once answered */
    int64_t t0_us;           /* when it was accepted, for the latency histogram */
    uint32_t mx_slot;        /* its agent's series in broker_metrics.c */
    uint8_t buf[];
};

struct brk_client {
    brk_node_t node;         /* key: key[0..keylen) = socket byte + routing id */
    base_list_t jobs;         /* unanswered jobs */
    uint64_t in_flight;
    uint64_t n_pending;      /* of those, queued or waiting for a session (fair shares) */
    brk_sock_t sock;
    size_t keylen;
    uint8_t key[1 + BRK_MAX_IDENTITY];
    brk_key_t *curve_key;    /* its CURVE key (a reference), for the per-key limits */
    int fd;                  /* its connection's fd while gone.c watches it, else -1 */
    bool detached;           /* CURVE, explicit id: that connection closed; answers are
                                remembered, not sent, until the same key is back (gone.c) */
    base_list_t fdlink;       /* in gone.c's list of the clients on that fd */
};

struct brk_agent {
    brk_node_t node;         /* key: name */
    base_list_t queue;        /* QUEUED jobs, oldest first */
    brk_worker_t **hosts;
    uint32_t n_hosts, cap_hosts;
    size_t len;
    uint32_t mx_slot;        /* its series in broker_metrics.c, plus one; 0 not looked up yet */
    base_list_t held_link;    /* in brk.held while it has no host (startup grace) */
    uint32_t n_history;      /* hosts that asked for history in its work (ready's
                                history_agents): none, and its work carries no history */
    char name[];
};

#define BRK_RECV_KEPT 16 /* [connection, works] pairs kept of a ready's `received` */

struct brk_worker {
    brk_node_t node;         /* key: id */
    base_list_t link;         /* in brk.workers */
    base_list_t jobs;         /* RUNNING and CANCELLING jobs it holds credit for */
    base_list_t pump_link;    /* in brk.pump while it may have credit for queued work */
    uint8_t id[BRK_MAX_IDENTITY];
    size_t idlen;
    char name[BRK_MAX_NAME + 1];
    size_t name_len;
    uint64_t capacity, in_flight, done;
    uint64_t seq;            /* registration number: status pages by it */
    uint64_t hb_ms;          /* its heartbeat interval (its own, or ours) */
    int64_t last_seen, last_sent;
    bool dead;               /* a send failed or it said goodbye: reaped at a safe point */
    uint64_t incarnation;    /* its process, from ready (0: not said); adopt.c */
    uint64_t conn;           /* its ready's `connection` (adopt.c) */
    uint64_t works_sent;     /* works sent to this registration (the marker names the k-th) */
    uint64_t recv_conn[BRK_RECV_KEPT], recv_n[BRK_RECV_KEPT]; /* its ready's `received`:
                                works its process got on each of its last connections */
    size_t n_recv;
    const char *dead_why;
    brk_agent_t **agents;
    uint8_t *agent_history;  /* agent_history[i]: it asked for history for agents[i] */
    uint32_t n_agents;
    struct brk_budget_peer *budget; /* model_budget.c: its waiters and permits, NULL when none */
    brk_key_t *key;          /* its CURVE key (a reference; NULL without CURVE): the key its
                                calls' client entry has, for calls adopted after a takeover */
};

typedef struct brk {
    brk_config_t cfg;
    proto_limits_t lim;       /* client messages */
    proto_limits_t wlim;      /* worker messages: up to the socket's limit (see workers.c) */
    void *ctx, *clients, *workers, *pub, *sub;
    struct brk_subs *subs;    /* who subscribes to what on the bus (subs.c) */
    int sig_fd;
    int64_t now;              /* ms, monotonic, refreshed each loop pass */
    proto_buf_t out, busbuf;  /* scratch encoders */
    brk_map_t client_map, worker_map, agent_map, cid_map;
    brk_slots_t job_slots;    /* jobs by the id this broker gave them (jobslots.h) */
    brk_map_t job_map;        /* adopted jobs, whose ids another broker gave (adopt.c) */
    brk_map_t id_map;         /* unanswered jobs by query id, any client (jobindex.c) */
    brk_map_t outq_map;       /* client connections with bytes in libzmq's queue (outq.c) */
    /* The last peer each table found: messages come in runs from one peer, and comparing
     * its key costs less than hashing it. Cleared when that entry is freed. */
    struct brk_outq *outq_last;
    brk_client_t *client_last;
    brk_worker_t *worker_cache[BRK_WORKER_CACHE]; /* by the id's last byte: libzmq's
                                                   * generated ids count up there */
    brk_agent_t *agent_last;
    atomic_size_t outq_total; /* those bytes, all clients */
    uint64_t outq_refused;    /* messages not sent: their peer's bytes were over the bound */
    _Atomic(void *) outq_back; /* small message blocks libzmq's I/O thread gave back (outq.c) */
    void *outq_cache;         /* the loop's free small message blocks, chained */
    int64_t wdrained_at;      /* when the worker socket was last read empty: liveness judges
                                 a worker silent only on what was read (broker.c) */
    base_list_t worker_list, pump;
    base_list_t held;          /* agents with queries and no host yet (startup grace) */
    uint64_t n_held;          /* how many */
    int64_t grace_until;      /* b->now before which unknown agents are held, not refused */
    uint64_t n_clients, n_workers, n_jobs, n_live, n_queued;
    uint64_t n_waiting;       /* JOB_WAITING jobs: they count against --max-queue too */
    uint64_t n_pend_clients, n_pend_keys; /* clients and CURVE keys with queries queued or
                                             waiting (fair shares, brk_client_pending) */
    uint64_t next_job_id, next_qseq;
    uint64_t next_worker_seq; /* brk_worker_t.seq */
    uint64_t n_hostings;      /* agents hosted, summed over workers (--max-agent-hosts) */
    base_heap_t deadlines;    /* jobs' deadlines (broker_jobs.c), a slot reserved per job */
    void *job_cache;          /* free BRK_JOB_BLOCK-byte job blocks, chained (broker_jobs.c) */
    size_t job_cache_n;       /* how many */
    void *idb_cache;          /* free small id buckets, chained (jobindex.c) */
    size_t idb_cache_n;       /* how many */
    bool have_dead, draining, stop;
    int64_t drain_until, next_maint;
    int64_t workers_due;      /* b->now of the next brk_workers_tick that can have work: it
                                 walks every worker, so it is not run every loop pass */
    int64_t bad_log_start;    /* broker.c: the second bad-input log lines are counted in */
    uint64_t bad_log_n, bad_log_dropped; /* lines logged and left out in it */
    brk_store_t *store;       /* sessions (session_requests.c) */
    brk_lease_t *lease;       /* --pair: the active's lease (lease.c); NULL without --pair */
    brk_zap_t *zap;           /* CURVE keys and the ZAP handler (zap.c); NULL without CURVE */
    brk_invs_t *invs;         /* session locks (invocations.c) */
    brk_dedup_t *dedup;       /* answered queries by (client, id) (dedup.h) */
    struct brk_metrics *mx;   /* counters and the /metrics endpoint (broker_metrics.c) */
    struct brk_tasks *tasks;  /* `tasks` requests waiting for their worker (tasks.c) */
    struct brk_budget *budget; /* the model budget (model_budget.c) */
    struct brk_reserve *reserve; /* room for session.delete on a full disk (reserve.c) */
    struct brk_gone *gone;    /* clients' connections, to cancel what a gone one sent (gone.c) */
    struct brk_adopt *adopt;  /* --pair: jobs workers report in ready (adopt.c); else NULL */
} brk_t;

/* ---- broker.c: sockets, the loop, sending ---- */
int brk_open(brk_t *b, const brk_config_t *cfg, int sig_fd);
int brk_run(brk_t *b);   /* until drained; returns the exit status */
void brk_close(brk_t *b);
/* The ROUTER socket s names (in line: every message received and sent asks). */
static inline void *brk_sock(brk_t *b, brk_sock_t s) {
    return s == BRK_SOCK_CLIENTS ? b->clients : b->workers;
}
/* Sends body to a ROUTER peer, with the delimiter frame when req. Returns: 0.
 * Errors: -EHOSTUNREACH (the peer is gone), -EAGAIN (its queue is full), other -errno. */
int brk_send(brk_t *b, brk_sock_t s, const uint8_t *id, size_t idlen, bool req,
             const uint8_t *body, size_t n);
/* Answers a request with an `error` (id may be absent) and logs why. */
void brk_reply_error(brk_t *b, const brk_in_t *in, proto_raw_t id, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- outq.c: bytes queued to each client connection, bounded ---- */
struct brk_outq;
int brk_outq_init(brk_t *b);  /* Returns: 0. Errors: -ENOMEM. */
void brk_outq_close(brk_t *b); /* after the context is terminated */
/* Whether n more bytes may be queued to client id: its queue (held by the caller for one
 * brk_outq_send), or NULL with *err -ENOBUFS (over --client-queue-bytes or
 * --clients-queue-bytes; counted) or -ENOMEM. */
struct brk_outq *brk_outq_admit(brk_t *b, const uint8_t *id, size_t idlen, size_t n,
                                int *err);
/* Sends body as the last frame of a message begun on sock, counted in q until libzmq has
 * written it. Returns: 0. Errors: -errno of zmq_msg_send. */
int brk_outq_send(brk_t *b, struct brk_outq *q, void *sock, const uint8_t *body, size_t n);
/* Bytes queued to client id and not yet written out. */
size_t brk_outq_bytes(brk_t *b, const uint8_t *id, size_t idlen);
void brk_outq_sweep(brk_t *b); /* drops idle entries; from a tick */

/* ---- clients.c: client requests and the client table ---- */
int brk_clients_init(brk_t *b);
void brk_clients_close(brk_t *b);
/* Handles a decoded client-side request (query, cancel, publish, status) from either
 * socket: a worker's own queries come through here too. */
void brk_client_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m);
void brk_client_on_answer(brk_t *b, brk_job_t *j);
/* Counts j in (on) or out of its client's and key's queued-or-waiting queries, once each way;
 * an answered job (no client) is not counted in. */
void brk_client_pending(brk_t *b, brk_job_t *j, bool on);
brk_client_t *brk_client_find(brk_t *b, brk_sock_t s, const uint8_t *id, size_t idlen);
/* Ends every unanswered query of c with an error (a lost worker's calls, shutdown); the
 * last answer frees c. */
void brk_client_drop(brk_t *b, brk_client_t *c, const char *code, const char *why);

/* ---- reserve.c: room on the session file's disk for session.delete ---- */
/* Allocates FILE-reserve (--sessions-reserve-bytes) beside a --sessions file; a failure is
 * logged, not fatal. */
void brk_reserve_open(brk_t *b);
void brk_reserve_close(brk_t *b);
/* Frees the reserve (the disk is full), logged; false when there was none to free. */
bool brk_reserve_release(brk_t *b);
/* Allocates the reserve again when it was freed and the disk has room. */
void brk_reserve_refill(brk_t *b);

/* ---- gone.c: clients whose connection closed ---- */
/* Watches the client socket's disconnects (--cancel-gone). Returns: 0. Errors: -ENOMEM, -EIO
 * (the monitor could not be set up; logged). */
int brk_gone_open(brk_t *b);
/* Stops the monitor; call before closing the client socket. libzmq sends monitor events with
 * a blocking send: one for a peer leaving while the closed socket lingers, with the reader
 * closed, would hold a libzmq thread until the context ends. */
void brk_gone_stop(brk_t *b);
void brk_gone_close(brk_t *b);
/* Acts on pending disconnects: the queries of the clients on a closed connection end
 * `cancelled`. */
void brk_gone_read(brk_t *b);
/* Reads pending disconnects every BRK_GONE_EVERY_MS (the monitor is not in the poll set: each
 * socket there costs every poll). Returns: when it wants to run again, or -1 (off). */
int64_t brk_gone_tick(brk_t *b);
#define BRK_GONE_EVERY_MS 100
/* The fd a client message came on (its last frame), -1 unknown; reads pending disconnects
 * first when the message comes from another peer (fd or routing id) than the last one. */
int brk_gone_fd(brk_t *b, zmq_msg_t *frame, const uint8_t *id, size_t idlen);
/* Links a client to its connection (anonymous routing ids; explicit ones under CURVE);
 * untrack before free. */
void brk_gone_track(brk_t *b, brk_client_t *c, const brk_in_t *in);
/* Whether c's answers may be sent: not when it is detached (checked against pending
 * disconnects; never acts on more than detaching, so it is safe while answering). */
bool brk_client_reachable(brk_t *b, brk_client_t *c);
/* A message from c's routing id under c's own key: a detached c is attached again. */
void brk_client_attach(brk_t *b, brk_client_t *c, const brk_in_t *in);
void brk_gone_untrack(brk_t *b, brk_client_t *c);

/* ---- session_requests.c: the session store and the session.* requests ---- */
/* Opens the store --sessions names (memory when none). Returns: 0. Errors: as
 * brk_store_open (logged). */
int brk_sessions_open(brk_t *b);
void brk_sessions_close(brk_t *b);
/* Answers session.get, session.list and session.delete. */
void brk_session_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m);
/* Appends an event (and applies its state delta) to a session, stamped with the broker's
 * clock: for the runner. Returns and errors: as brk_store_append. */
int brk_session_append(brk_t *b, proto_str_t session, const brk_sess_event_t *ev,
                       proto_raw_t delta, uint64_t *seq, brk_sess_err_t *err);
/* Packs one stored event as session.get shows it: {seq, id, invocation, author, ts_ms,
 * event}. */
void brk_session_pack_event(proto_buf_t *o, const brk_sess_event_t *e);

/* ---- lease.c: the broker pair (--pair): one active, one standby, on one PostgreSQL store ---- */
/* Waits (the standby) until this broker holds the lease, polling every lease_poll_ms; opens
 * nothing else meanwhile. Returns: 0 (active). Errors: -EINTR (a signal came: exit),
 * -EINVAL (--sessions is not a URL), -ENOMEM. */
int brk_lease_acquire(brk_t *b);
/* Fencing, called every loop turn: checks the lease's connection every min(heartbeat_ms,
 * fence_ms / 4) and exits the process (code 3) when it is lost or a check stays unanswered
 * past fence_ms. Returns only while the lease is held. */
void brk_lease_tick(brk_t *b);
void brk_lease_close(brk_t *b);
/* Packs status's role, pair, active_since_ms (start_unix without --pair), takeovers and
 * active_broker (host, pid and clients endpoint of the lease holder). */
void brk_lease_status(brk_t *b, proto_buf_t *o, int64_t start_unix);
uint64_t brk_lease_takeovers(const brk_t *b);

/* ---- resend.c: dedup.h in the broker: resent queries of clients with an explicit routing id ---- */
/* Opens b->dedup (with the --sessions file when there is one). Returns: 0. Errors: as
 * brk_dedup_open (logged). */
int brk_dedup_start(brk_t *b);
/* Whether a routing id is one its peer chose (ZMQ_ROUTING_ID); libzmq's generated ones begin
 * with a 0 byte. Only such clients have answers kept (brk_dedup_eligible), so callers check
 * this first and skip the calls below for every other query. */
static inline bool brk_rid_explicit(const uint8_t *rid, size_t n) { return n && rid[0] != 0; }
/* Answers a query whose answer is remembered (the same reply again); true when it did. */
bool brk_dedup_replay(brk_t *b, const brk_in_t *in, proto_raw_t id);
/* A query that is not idempotent is sent to its first worker: its durable answer, until the
 * real one replaces it, is `worker_lost`, so that a broker that takes over (or restarts) answers its
 * resend with that instead of running it twice. Only with --sessions postgresql://. A
 * worker's call (a pair only) is marked too, under its caller's process (brk_adopt_call_key):
 * the broker that takes over runs a call whose query was never sent on (adopt.c). */
void brk_dedup_mark_running(brk_t *b, const brk_client_t *c, proto_raw_t id,
                            const brk_worker_t *w);
/* Whether body is the provisional answer brk_dedup_mark_running stores for query id. */
bool brk_dedup_is_marker(proto_raw_t id, const uint8_t *body, size_t n);
/* Where a provisional answer says its query went. */
typedef struct brk_sent_to {
    uint64_t conn, nth, inc; /* the worker's connection and incarnation (from its ready), and
                                the work's place among those sent on that connection (1...) */
    char name[BRK_MAX_NAME + 1];
    size_t name_len;
} brk_sent_to_t;
/* Reads where the marker body says its query went. Returns: true when body is a marker that
 * names it; false otherwise (not a marker, or one of a broker or worker before this). */
bool brk_dedup_marker_worker(proto_raw_t id, const uint8_t *body, size_t n, brk_sent_to_t *to);
/* Remembers the terminal message body just sent to c for query id. */
void brk_dedup_remember(brk_t *b, const brk_client_t *c, proto_raw_t id, const uint8_t *body,
                        size_t n);

/* ---- adopt.c: a new active broker adopts the jobs workers still run (--pair) ---- */
/* Sets up adoption after the lease is taken (a pair only): the adoption window and the
 * startup grace start now, not when the standby started waiting. Returns: 0. Errors: -ENOMEM. */
int brk_adopt_open(brk_t *b);
void brk_adopt_close(brk_t *b);
/* Adds `origin` (who asked: id, routing id, idempotent, and the CURVE key's Z85 text when
 * the client has one) to the work message just encoded in b->out for j, when j is a client's
 * query that can be adopted (explicit routing id). Leaves b->out as it was when it cannot. */
void brk_adopt_stamp(brk_t *b, const brk_job_t *j);
#define BRK_CALL_KEY_LEN 9 /* a call's dedup key: the byte 2, the caller's incarnation */
/* Writes into key the dedup key of c's calls (c: a worker's client entry): the byte 2 (no
 * socket's) and the calling worker's incarnation, big-endian. Returns: its length,
 * BRK_CALL_KEY_LEN, or 0 when the caller is unknown or said no incarnation. */
size_t brk_adopt_call_key(brk_t *b, const brk_client_t *c, uint8_t *key);
/* A worker's `ready` (in): its incarnation, connection and received are kept in w; the jobs it
 * listed as still running (held) are each adopted (a job bound to w, its session's lock, its
 * id attached for a resend) or cancelled on w (known, answered, or out of room), and logged.
 * Then the parked resends whose provisional answer names this worker process, which did not
 * list them in a complete report, run (their work never reached it). */
void brk_adopt_held(brk_t *b, brk_worker_t *w, const brk_in_t *in, proto_raw_t held);
/* What a resend whose remembered answer is body does (brk_adopt_resend). */
typedef enum {
    BRK_RESEND_ANSWER, /* gets body */
    BRK_RESEND_PARKED, /* waits for a worker to report its query (handled) */
    BRK_RESEND_RUN,    /* body is a provisional worker_lost, and the worker process it names
                          came back without the query: it never ran; the caller forgets body
                          and runs the query */
} brk_resend_t;
/* A resend found body remembered for its id (dkey: its dedup key, for the parked resend to
 * forget it later): within the adoption window, when body is the provisional worker_lost of
 * a query not yet reported, the resend waits for a worker to report it, or for the window to
 * end (then body is sent). */
brk_resend_t brk_adopt_resend(brk_t *b, const brk_in_t *in, proto_raw_t id,
                              const uint8_t *body, size_t n, const uint8_t *dkey, size_t dkn);
/* Ends the window: resends still waiting get their remembered answer, jobs reported for a
 * worker's call that its caller never listed are cancelled on their worker, and calls no
 * reported job answers end worker_lost on their caller. Returns the next time it wants to
 * run, or -1. */
int64_t brk_adopt_tick(brk_t *b);
/* A message from w about a job it is not bound to (stale, for brk_job_from_worker): true when
 * the job is one w reported for a worker's call and is parked until its caller lists the
 * call; a result or error is then kept for the call (events are dropped). */
bool brk_adopt_child_answer(brk_t *b, brk_worker_t *w, const proto_msg_t *m);

/* What a worker reported about a job it holds (adopt.c parses it, jobs.c makes the job). */
typedef struct brk_adopted {
    uint64_t job_id;         /* the id the job had on the broker that sent the work */
    proto_raw_t id, input;   /* the query's id; its input (n == 0: not reported) */
    proto_str_t agent_name, session;
    int64_t timeout_ms;      /* time left, -1 none */
    bool idempotent;
    bool req;                /* the client's resend came REQ-style */
    bool resent;             /* the client's resend is waiting for it (parked) */
} brk_adopted_t;
/* Makes the RUNNING job a worker reported, bound to w (one credit), for client c; when c has
 * the same id in flight already (its resend came first and is queued) that job becomes it.
 * Returns: 0 with *out set. Errors: -EEXIST (the job id, or the id running elsewhere:
 * nothing changed), -ENOSPC (job table full), -ENOMEM. */
int brk_job_adopt(brk_t *b, brk_client_t *c, brk_worker_t *w, brk_agent_t *a,
                  const brk_adopted_t *r, brk_job_t **out);
/* A client entry for an adopted query's routing id on socket sock (found, or made with CURVE
 * key key, NULL for none): a client's, or, for a worker's call, the calling worker's
 * connection now. Returns: the client (its key may differ: the caller checks), or NULL
 * (table full, out of memory). */
brk_client_t *brk_client_adopt(brk_t *b, brk_sock_t sock, const uint8_t *rid, size_t ridlen,
                               brk_key_t *key);
/* Counts an adopted job in c's in-flight queries (brk_job_adopt does, through this). */
void brk_client_adopted(brk_client_t *c);
/* Frees c when it has nothing in flight (an adoption refused after brk_client_adopt). */
void brk_client_unadopt(brk_t *b, brk_client_t *c);

/* ---- workers.c: the worker table, heartbeats, liveness ---- */
int brk_workers_init(brk_t *b);
void brk_workers_close(brk_t *b);
void brk_worker_message(brk_t *b, const brk_in_t *in);
/* Heartbeats out, liveness in; returns the next time it wants to run. */
int64_t brk_workers_tick(brk_t *b);
void brk_workers_reap(brk_t *b);  /* removes workers marked dead */
void brk_worker_mark_dead(brk_t *b, brk_worker_t *w, const char *why);
/* Sends body to w. Returns: 0. Errors: as brk_send; -EHOSTUNREACH also marks w dead. */
int brk_worker_send(brk_t *b, brk_worker_t *w, const uint8_t *body, size_t n);
/* Whether w may take one more job (inline: the pickers ask it of every host per query). */
static inline bool brk_worker_has_credit(const brk_worker_t *w) {
    return !w->dead && w->in_flight < w->capacity;
}
/* Queues w to be offered queued work at the next pump (its credit may have grown). */
void brk_worker_want_pump(brk_t *b, brk_worker_t *w);
void brk_workers_disconnect_all(brk_t *b);
/* Answers `status`: one page of workers (after, limit; within --max-reply) and the totals. */
void brk_workers_status(brk_t *b, const brk_in_t *in, const proto_msg_t *m);

/* ---- broker_agents.c: which workers host which agent, and each agent's queue ---- */
int brk_agents_init(brk_t *b);
void brk_agents_close(brk_t *b);
brk_agent_t *brk_agent_find(brk_t *b, proto_str_t name);
/* Adds w as a host of name (creating the agent). Returns: 0. Errors: -ENOMEM. */
int brk_agent_add_host(brk_t *b, proto_str_t name, brk_worker_t *w, bool history,
                       brk_agent_t **out);
/* Removes w from a's hosts; a with no host left ends its queue and is freed. */
void brk_agent_remove_host(brk_t *b, brk_agent_t *a, brk_worker_t *w, bool history);
/* During the startup grace: the agent record for name with no host yet, made if needed,
 * whose queue holds queries until a worker announces it. NULL when the grace is over, too
 * many agents are held (BRK_MAX_AGENTS) or out of memory. */
brk_agent_t *brk_agent_hold(brk_t *b, proto_str_t name);
/* Ends the startup grace once it is over: held agents that no worker announced answer their
 * queries unknown_agent and go. Returns the time it wants to run again, or -1. */
int64_t brk_agents_tick(brk_t *b);
/* The least-loaded host of a with free credit, or NULL. */
brk_worker_t *brk_agent_pick(brk_agent_t *a);
/* Whether some host of a has credit: brk_agent_pick's answer is not NULL, without weighing
 * the hosts (a query's admission asks; its dispatch then picks). */
static inline bool brk_agent_has_free(const brk_agent_t *a) {
    for (uint32_t i = 0; i < a->n_hosts; i++)
        if (brk_worker_has_credit(a->hosts[i])) return true;
    return false;
}

/* ---- broker_jobs.c: the job table, its state machine, the queue and deadlines ---- */
int brk_jobs_init(brk_t *b);
void brk_jobs_close(brk_t *b);
/* Accepts a decoded query (admission checks done by the caller); inv: its prepared
 * invocation record (brk_inv_prepare) or NULL, the job's from here on. Returns: 0.
 * Errors: -ENOMEM (nothing was accepted; inv is still the caller's). */
int brk_job_accept(brk_t *b, brk_client_t *c, const brk_in_t *in, const proto_msg_t *m,
                   uint64_t idh, brk_agent_t *a, brk_inv_t *inv);
/* The job with this broker job id, in any state, or NULL. */
brk_job_t *brk_job_find(brk_t *b, uint64_t job_id);
/* Puts a JOB_WAITING job at the back of its agent's queue; its hosts are pumped at the next
 * settle. Returns: 0. Errors: -ENOENT (no worker hosts its agent; the job is unchanged). */
int brk_job_enqueue(brk_t *b, brk_job_t *j);
/* c's unanswered job with this id, or NULL. idh: brk_map_hash(id.p, id.n), computed once per
 * message for every map the id is looked up in (brk_job_accept, brk_job_find_any too). */
brk_job_t *brk_job_find_cid(brk_t *b, brk_client_t *c, proto_raw_t id, uint64_t idh);

/* ---- jobindex.c: unanswered jobs by query id, across clients ---- */
int brk_jobindex_init(brk_t *b);  /* Returns: 0. Errors: -ENOMEM. */
void brk_jobindex_close(brk_t *b);
/* Indexes j under j->id, hashed as j->idh (at accept). Returns: 0. Errors: -ENOMEM (j is not
 * indexed). */
int brk_jobindex_add(brk_t *b, brk_job_t *j);
void brk_jobindex_del(brk_t *b, brk_job_t *j); /* at its answer; safe to repeat */
/* The unanswered job with this id, whichever client sent it; with owner, only jobs whose
 * client has that CURVE key. *matches counts them, stopping at 2 (ambiguous). */
brk_job_t *brk_job_find_any(brk_t *b, proto_raw_t id, uint64_t idh, const brk_key_t *owner,
                            size_t *matches);
/* Ends the query with an error (cancelled, timeout, shutting_down, ...); a job on a worker
 * is cancelled there and kept CANCELLING until the worker answers or the grace ends. */
void brk_job_abort(brk_t *b, brk_job_t *j, const char *code, const char *message);
/* Sends event to j's client as the next of j's events (a REQ client takes only the terminal
 * message), and to the bus when publish. */
void brk_job_send_event(brk_t *b, brk_job_t *j, proto_raw_t event, bool publish);
/* A worker's event, result or error for one of its jobs. */
void brk_job_from_worker(brk_t *b, brk_worker_t *w, const proto_msg_t *m, size_t body_len);
/* Its worker is gone: retry (idempotent, attempts left, another host) or worker_lost. */
void brk_job_worker_lost(brk_t *b, brk_job_t *j);
/* Sends queued work to w while it has credit. */
void brk_jobs_pump_worker(brk_t *b, brk_worker_t *w);
/* Sends a's queued work to its hosts while any has credit. */
void brk_jobs_pump_agent(brk_t *b, brk_agent_t *a);
/* Ends a queued job whose agent lost its last host. */
void brk_job_unhosted(brk_t *b, brk_job_t *j);
/* Fires due deadlines; returns the next one, or -1. */
int64_t brk_jobs_tick(brk_t *b);
/* Room for one more job (table and deadline heap). */
bool brk_jobs_room(brk_t *b);
void brk_jobs_abort_all(brk_t *b, const char *code, const char *message);

/* ---- broker_bus.c: PUB/SUB forwarding and publications ---- */
/* One message about a query, as its client gets it (the bus copy adds agent and session). */
typedef struct brk_qmsg {
    proto_type_t type;       /* PROTO_EVENT, PROTO_RESULT or PROTO_ERROR */
    proto_raw_t id;          /* nil when n == 0 */
    uint64_t seq;            /* event */
    proto_raw_t payload;     /* event's event, result's output (nil when n == 0) */
    proto_str_t code, message; /* error */
    proto_str_t agent, session;
    const brk_job_t *job;    /* the bus copy adds its job, worker, invocation (NULL: none) */
} brk_qmsg_t;

/* Encodes q into o; with "agent" (and "session" when set) for the bus. Returns: 0.
 * Errors: PROTO_ENOMEM. */
int brk_enc_query_msg(proto_buf_t *o, const brk_qmsg_t *q, bool for_bus);
/* Publishes q under query.<agent>.<session or ->. */
void brk_bus_query(brk_t *b, const brk_qmsg_t *q);
#define BRK_BUS_TOPIC_MAX (16 + 2 * BRK_MAX_NAME)
/* q encoded once for its client and the bus (the bus copy is the client's map plus the
 * fields above): brk_query_enc leaves the client's copy in b->out.p[0..e->n); once it is
 * sent, brk_query_publish publishes the bus copy from the same bytes when anyone subscribes
 * to its topic. Nothing may use b->out in between. brk_query_enc returns: 0.
 * Errors: PROTO_ENOMEM (nothing to send or publish). */
typedef struct brk_qenc {
    size_t n;       /* the client's copy: b->out.p[0..n) */
    bool bus;       /* someone subscribes to topic: publish */
    bool twice;     /* the map header was not one byte: the bus copy is encoded from q */
    uint8_t hdr_bus; /* the bus copy's first byte (its map header) */
    brk_qmsg_t q;   /* with twice */
    size_t tlen;
    char topic[BRK_BUS_TOPIC_MAX];
} brk_qenc_t;
int brk_query_enc(brk_t *b, const brk_qmsg_t *q, brk_qenc_t *e);
void brk_query_publish(brk_t *b, const brk_qenc_t *e);
/* Reads one whole message without waiting, keeping its first `keep` frames in f (*nf of
 * them, to be closed by the caller) and dropping the rest. Returns its frame count, 0 if none. */
size_t brk_recv_frames(void *sock, zmq_msg_t *f, size_t keep, size_t *nf);
bool brk_bus_forward(brk_t *b);  /* one message from SUB to PUB; false when none */
void brk_bus_send(brk_t *b, const char *topic, size_t tlen, const uint8_t *body, size_t n);
/* The broker's own topics (query.<agent>.<session>): only the broker publishes under them;
 * a client `publish` there is refused and a publisher's message there dropped. */
#define BRK_BUS_RESERVED "query."
bool brk_bus_reserved(const char *topic, size_t n);
/* A client `publish`: [topic][{v, type:"event", topic, data}]. Returns: 0 or -ENOMEM. */
int brk_bus_publish(brk_t *b, proto_str_t topic, proto_raw_t data);

/* ---- subs.c: bus subscriptions, bounded per connection and in all ---- */
/* Turns on the XPUB's verboser mode and its monitor (after b->pub is bound).
 * Returns: 0. Errors: -ENOMEM, -EIO (the monitor could not start; logged). */
int brk_subs_open(brk_t *b);
void brk_subs_stop(brk_t *b);  /* ends the monitor, before the XPUB closes */
void brk_subs_close(brk_t *b); /* frees the records; safe to repeat */
/* Reads one (un)subscription from the XPUB and applies the bounds (a connection past one is
 * shut down). Returns: false when there was none. */
bool brk_subs_read(brk_t *b);
/* Reads the XPUB's disconnects now and then. Returns: when it wants to run again, or -1. */
int64_t brk_subs_tick(brk_t *b);
/* Whether anyone holds a prefix of topic (true when that cannot be told). */
bool brk_subs_wanted(const brk_t *b, const char *topic, size_t n);
/* Whether any topic may be wanted: false only when nobody holds a subscription, so a caller
 * need not even build the topic (each query's answer asks). */
bool brk_subs_any(const brk_t *b);
/* actorbus_broker_bus_subscriptions and the refused and cut counters. */
void brk_subs_metrics(brk_t *b, base_buf_t *o);
/* broker.c: whether one more bad-input log line may be written now (--log-bad-input). */
bool brk_bad_input_log_ok(brk_t *b);

#endif
