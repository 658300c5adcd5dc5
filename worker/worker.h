/* worker.h: what actor-worker's files share (wrk_ names): the worker and its connection, the
 * jobs it runs (struct abp_ctx), the sub-queries they make (struct abp_call), the agents
 * plugins registered, and the function table they get. Not seen by plugins. */
#ifndef WRK_WORKER_H
#define WRK_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/actor.h"
#include "actor/zsock.h"
#include "actorbus/plugin.h"
#include "base/clock.h"
#include "base/keys.h"
#include "proto/proto.h"
#include "agent/runtime.h"
#include "budget_client.h"
#include "jobtab.h"

typedef struct wrk wrk_t;

typedef struct wrk_config {
    const char *broker;    /* worker endpoint of the broker */
    const char *name;      /* announced in ready */
    uint64_t capacity;     /* jobs at once */
    int64_t heartbeat_ms;  /* heartbeat interval */
    int64_t liveness;      /* heartbeats of silence before the broker counts as lost */
    int64_t drain_ms;      /* SIGTERM: how long running jobs may take to finish */
    const char *metrics;   /* --metrics endpoint; NULL or "" off (worker_metrics.c) */
    uint64_t metrics_max_conns, metrics_max_request, metrics_max_labels;
    uint64_t metrics_idle_ms; /* a scraper without a whole request by then is closed */
    uint64_t max_lent;     /* credit lent by jobs waiting on sub-queries, at most (calls.c) */
    int64_t watchdog_ms;   /* a task holding the loop this long ends the process; 0 off */
    uint64_t max_held;     /* jobs kept across a broker takeover, running or answered (held.c) */
    uint64_t max_held_bytes; /* bytes of the answers kept while no broker is connected */
    uint64_t max_held_report; /* bytes of ready's held list (inputs: at most half): within
                                 the broker's --max-msg, or the ready is refused */
    bool curve;            /* CURVE to the broker: its public key and our key pair below */
    char curve_server[BASE_Z85_KEY_LEN + 1];
    base_keypair_t curve_kp;
} wrk_config_t;

/* ---- agents (plugin.c) ---- */
typedef struct wrk_agent {
    char *name;          /* registered name (def->name) */
    size_t name_n;       /* strlen(name): wrk_agent_find compares lengths first, per job */
    struct agt_def *def; /* its definition (agent/runtime.h), owned: what the runner runs */
} wrk_agent_t;

struct abp_host {
    wrk_agent_t *agents; /* every registered agent */
    size_t n_agents, cap;
    bool open;           /* inside an init: register_agent allowed */
    size_t n_registered; /* agents, tools, callbacks and configs registered so far */
    struct agt_rt *rt;   /* the agent runtime's registries (agent/runtime.h) */
    void **handles;      /* dlopen handles, closed at exit */
    size_t n_handles;
};

extern const abp_api_t wrk_api;
extern const agt_host_t wrk_agent_host; /* the runtime's view of the worker (host.c) */
int wrk_builtin_init(const abp_api_t *api, abp_host_t *host, uint32_t version);
/* Runs init with registration open. Returns: init's code, or ACT_EINVAL if no agent came. */
int wrk_plugin_register(abp_host_t *host, int (*init)(const abp_api_t *, abp_host_t *, uint32_t),
                        const char *what);
/* dlopens path and runs its actorbus_plugin_init. Returns: 0 or a negative code (logged). */
int wrk_plugin_load(abp_host_t *host, const char *path);
/* Adds an agent of any type (register_agent and the --agents file come here); takes def on
 * success. Returns: 0. Errors: ABP_EEXIST, ABP_EINVAL (bad name, registration closed),
 * ABP_ENOMEM. */
int wrk_agent_add(abp_host_t *host, struct agt_def *def);
const wrk_agent_t *wrk_agent_find(const abp_host_t *host, proto_str_t name);
void wrk_host_close(abp_host_t *host);

int wrk_pack_emit(abp_ctx_t *ctx, const abp_pack_t *p);
int wrk_pack_set_output(abp_ctx_t *ctx, const abp_pack_t *p);

/* ---- jobs (worker_jobs.c): one per `work`, inline until it waits (worker/README.md) ---- */
struct abp_ctx {
    struct abp_ctx *next, *prev; /* in the worker's job list */
    wrk_jobtab_node_t node;      /* in w->jobtab, by id */
    wrk_t *w;                    /* owner */
    uint64_t id;                 /* broker's job id */
    uint64_t gen;                /* connection it came on */
    const wrk_agent_t *agent;    /* what runs */
    uint8_t *input;              /* copy of the input (msgpack), in the job's allocation */
    size_t room;                 /* bytes for it there: WRK_JOB_ROOM in a pooled block */
    char *session;               /* the query's session, NULL if none */
    size_t input_n;
    int64_t deadline;            /* from timeout_ms, -1 none */
    act_task_t *task;            /* the agent's own task (our handle); NULL while it runs
                                    inline on the connection's task, which it takes over
                                    if it waits (wrk_conn_handoff) */
    act_task_t *on;              /* the task running its agent, either way */
    bool ran;                    /* the agent started */
    bool inlined;                /* running inline and has not waited yet */
    bool cancelled;              /* the broker cancelled it */
    bool orphaned;               /* its connection is gone: answer nobody */
    bool stopping;               /* the worker is stopping: answer shutting_down */
    proto_buf_t output;          /* set_output's copy */
    const uint8_t *out_p;        /* the output: in `output`, or the job's own input */
    size_t out_n;
    bool has_output;
    char *err_code, *err_msg;    /* fail */
    struct abp_call *calls;      /* its sub-queries, not yet freed */
    act_event_t changed;         /* set when one of its calls ends */
    uint64_t done_seq;           /* completion order of its calls */
    struct agt_job *agt;         /* the runner's view of it (agent/runner.h) */
    const uint8_t *in;           /* the running agent's input: the job's, or an in-job
                                    sub-agent's (the runner switches it) */
    size_t in_n;
    const char *agent_now;       /* the running agent's name (the runner switches it) */
    int64_t t0_us;               /* when it arrived, for the latency histogram (worker_metrics.c) */
    uint8_t *origin;             /* work's origin (a broker pair: who asked), NULL if none */
    size_t origin_n;
    char *invocation;            /* work's invocation id, NULL if none */
    bool held;                   /* kept running across a reconnect, not yet reported */
};

void wrk_jobs_start(wrk_t *w, const proto_msg_t *m);
void wrk_jobs_cancel(wrk_t *w, uint64_t job);
/* Sizes the job table for the capacity (in wrk_run). Returns: 0. Errors: ACT_ENOMEM. */
int wrk_jobs_init(wrk_t *w);
/* Frees the kept output buffers and job blocks, and the job table (at exit). */
void wrk_jobs_free_spares(wrk_t *w);
/* Cancels every job; orphan: their answers go nowhere (connection lost), else they answer
 * shutting_down. */
void wrk_jobs_cancel_all(wrk_t *w, bool orphan);
/* Waits (shielded) until no job runs or the deadline passes. Returns: 0 or ACT_ETIMEDOUT. */
int wrk_jobs_wait_idle(wrk_t *w, int64_t deadline);
size_t wrk_jobs_running(const wrk_t *w);

/* The table's job functions. */
int wrk_ctx_input(abp_ctx_t *ctx, const uint8_t **bytes, size_t *n);
int wrk_ctx_emit(abp_ctx_t *ctx, const uint8_t *event, size_t n);
/* wrk_ctx_emit for an event the worker built itself from checked parts (the agent runtime's
 * events): one msgpack value by construction, so it is not walked again. */
int wrk_ctx_emit_built(abp_ctx_t *ctx, const uint8_t *event, size_t n);
int wrk_ctx_set_output(abp_ctx_t *ctx, const uint8_t *output, size_t n);
int wrk_ctx_fail(abp_ctx_t *ctx, const char *code, const char *message);
int wrk_ctx_sleep(abp_ctx_t *ctx, int64_t ms);
const char *wrk_ctx_worker_name(abp_ctx_t *ctx);
const char *wrk_ctx_agent_name(abp_ctx_t *ctx);
uint64_t wrk_ctx_job_id(abp_ctx_t *ctx);
const char *wrk_ctx_session(abp_ctx_t *ctx);
int64_t wrk_ctx_time_left(abp_ctx_t *ctx);
bool wrk_ctx_cancelled(abp_ctx_t *ctx);
int64_t wrk_unix_ms(void);
void wrk_ctx_log(abp_ctx_t *ctx, int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- sub-queries (calls.c) ---- */
struct abp_call {
    struct abp_call *next, *prev;   /* in its job's list */
    struct abp_call *wnext, *wprev; /* in the worker's list of pending calls */
    abp_ctx_t *job;                 /* owner */
    uint64_t id;                    /* our query id */
    bool done, ok, reported;        /* ended; succeeded; handed out by next_done */
    uint64_t done_seq;              /* when it ended, among its job's calls */
    uint8_t *output;                /* result output */
    size_t output_n;
    char *code, *message;           /* error */
    bool sub;                       /* a sub-invocation of the runner: its events count */
    uint8_t *query;                 /* its query message, kept for a job with origin (a broker
                                       pair may need it after a takeover, held.c); or NULL */
    size_t query_n;
};

/* A reply (event/result/error with an integer id) for one of our sub-queries. */
void wrk_calls_deliver(wrk_t *w, const proto_msg_t *m);
/* Ends every pending call with code (the connection was reset). */
void wrk_calls_fail_all(wrk_t *w, const char *code, const char *message);
/* At a reconnect of a broker pair: ends the pending calls of the jobs that are not held; a
 * held job's calls wait on, listed in the next ready (`calls`), for the broker that takes
 * over to link the jobs that answer them (or to end them worker_lost). */
void wrk_calls_fail_unheld(wrk_t *w, const char *code, const char *message);
/* Frees a job's calls, cancelling those still pending. */
void wrk_calls_release(abp_ctx_t *job);
int wrk_call(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
             int64_t timeout_ms, abp_call_t **out);
int wrk_await(abp_call_t *call, const uint8_t **output, size_t *n);
int wrk_gather(abp_call_t *const *calls, size_t n);
int wrk_next_done(abp_call_t *const *calls, size_t n, size_t *index);
bool wrk_call_done(const abp_call_t *call);
int wrk_call_output(const abp_call_t *call, const uint8_t **output, size_t *n);
int wrk_call_error(const abp_call_t *call, const char **code, const char **message);
void wrk_call_free(abp_call_t **call);
/* A sub-invocation (the agent runtime): a query with parent = this job, its session and
 * branch; the ADK events that come back apply their state_delta to the job's state view. */
int wrk_call_sub(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                 const char *branch, int64_t timeout_ms, abp_call_t **out);

/* ---- jobs kept across a broker takeover (held.c) ---- */
/* The answer of a job that can be adopted (its work had `origin`), with its entry in a
 * `ready`'s held list: queued for the broker, or kept while no broker is connected. */
#define WRK_RECV_KEPT 16 /* connections whose received-work counts a ready reports */

typedef struct wrk_held {
    struct wrk_held *next;
    int64_t sent_at;             /* act_now() when handed to libzmq (the recent list) */
    bool recalled;               /* sent lately, reported again: maybe read already */
    size_t entry_n, msg_n;
    uint8_t data[];              /* the held entry, then the answer message */
} wrk_held_t;


/* Answers job j (which has an origin) with the encoded message msg: queued as usual on j's
 * connection, or kept for the next `ready` when that connection is gone (bounded by
 * --max-held and --max-held-bytes: past them it is dropped, logged and counted). */
void wrk_held_answer(wrk_t *w, abp_ctx_t *j, const proto_buf_t *msg);
/* Keeps an answer that did not reach a broker (its connection went); frees it past the
 * bounds. Ownership: takes h. */
void wrk_held_keep(wrk_t *w, wrk_held_t *h);
/* h's answer was handed to libzmq: kept a while (the worker's liveness), within the bounds,
 * because a broker that dies may never have read it; a reconnect reports those again
 * (wrk_held_recall) and the next broker adopts what its store does not show answered.
 * Ownership: takes h. */
void wrk_held_sent(wrk_t *w, wrk_held_t *h);
/* At a reconnect: the answers sent within the liveness are kept for the next ready. */
void wrk_held_recall(wrk_t *w);
/* Adds the `held` field (running jobs kept by wrk_jobs_hold, then kept answers) to the ready
 * just encoded in o, within --max-held-report bytes: running jobs past it are cancelled,
 * answers past it dropped (logged held_cut, counted); then `incarnation`, `connection`
 * and `received` (the works each of the last connections got). Returns: 0. Errors:
 * ACT_ENOMEM (what could not be added is left out; without `incarnation` the broker takes
 * nothing as proof). */
int wrk_held_ready(wrk_t *w, proto_buf_t *o);
/* Makes w->incarnation (random; a clock-based one if the kernel has no entropy yet). */
void wrk_held_incarnation(wrk_t *w);
/* A connection ends: its count of works received is kept for the next readies. */
void wrk_held_conn_end(wrk_t *w);
/* After the ready went into the queue: the held jobs belong to the new connection, the kept
 * answers follow the ready. */
void wrk_held_flush(wrk_t *w);
void wrk_held_free_all(wrk_t *w);
/* At a reconnect: jobs with an origin keep running (held, up to --max-held); the others are
 * cancelled as orphans. Returns: how many were held. */
size_t wrk_jobs_hold(wrk_t *w);
/* Queues h's answer on the current connection, tagged so that it is kept again if that
 * connection goes before it is written. Ownership: takes h. */
void wrk_send_held(wrk_t *w, wrk_held_t *h);

/* Output buffers kept from ended jobs (worker_jobs.c): a malloc and a free per job fewer.
 * Bounded in count and in each buffer's size. */
#define WRK_SPARE_OUT 64
#define WRK_SPARE_OUT_MAX_BYTES 4096
/* Ended jobs' blocks kept for the next jobs (w->spare_jobs): at most this many, each with
 * room for an input of WRK_JOB_ROOM bytes (a larger input gets a block of its own size,
 * freed when its job ends). */
#define WRK_SPARE_JOBS 64
#define WRK_JOB_ROOM 512

/* ---- the worker and its connection (worker.c) ---- */
struct wrk {
    wrk_config_t cfg;
    abp_host_t *host;          /* agents */
    void *zctx;                /* zmq context */
    void *sock;                /* DEALER to the broker, NULL between connections */
    act_zsock_t *z;            /* sock on the loop */
    uint64_t gen;              /* connection generation: 1, 2, ... */
    int64_t last_heard;        /* act_now() of the last message from the broker */
    int64_t last_sent;         /* act_now() of the last message sent */
    struct wrk_out *out_head, *out_tail; /* messages waiting for the writer */
    size_t out_len;
    bool out_busy;             /* the writer holds a message it is sending */
    proto_buf_t spare_out[WRK_SPARE_OUT]; /* ended jobs' output buffers, for the next jobs */
    size_t n_spare_out;
    act_event_t out_ready;     /* the writer has something to do */
    act_event_t flushed;       /* set while out_head is NULL */
    abp_ctx_t *jobs;           /* running jobs */
    size_t n_jobs;
    wrk_jobtab_t jobtab;       /* the same jobs by id */
    wrk_pool_t spare_jobs;     /* ended jobs' blocks (WRK_SPARE_JOBS, WRK_JOB_ROOM) */
    act_event_t jobs_idle;     /* set while n_jobs == 0 */
    abp_call_t *calls;         /* pending sub-queries (for replies) */
    uint64_t next_call_id;
    agt_budget_t *budget;      /* the broker's model budget (agent/model/budget_client.h) */
    bool draining;             /* SIGTERM seen: finishing up */
    act_event_t stop;          /* set by a signal: main starts the drain */
    act_task_t *server;        /* the task serving the connection now (our handle) */
    zmq_msg_t *msg_parts;      /* the message being dispatched, on the server's stack: a */
    size_t *msg_n;             /* handoff closes it (a job that waits holds no buffer) */
    act_event_t conn_gone;     /* set when the connection task gave up (conn_rc says why) */
    int conn_rc;
    int signals;               /* signals seen */
    int64_t drain_deadline;    /* act_now() by which jobs must be done */
    proto_limits_t limits;     /* for decoding broker messages */
    proto_buf_t enc;           /* scratch encoder */
    struct wrk_metrics *mx;    /* counters and /metrics (worker_metrics.c) */
    void *mon;                 /* PAIR: this connection's failed handshakes, or NULL */
    uint64_t lent;             /* jobs now waiting on their sub-queries (wrk_lend) */
    uint64_t credit_sent;      /* the capacity the broker last heard from us */
    bool credit_dirty;         /* lent changed: the writer sends `credit` if it must */
    struct wrk_watchdog *wd;   /* watchdog.c; NULL when off */
    wrk_held_t *held_head, *held_tail; /* answers kept for the next ready (held.c) */
    size_t n_held, held_bytes;
    wrk_held_t *recent_head, *recent_tail; /* answers sent lately, oldest first (held.c) */
    size_t n_recent, recent_bytes;
    uint64_t held_dropped;     /* answers dropped past --max-held / --max-held-bytes */
    uint64_t incarnation;      /* random, made at start: this process in `ready` (held.c) */
    uint64_t test_drop_work;   /* tests only (env ACTOR_WORKER_TEST_DROP_WORK=N): the first
                                  N works are dropped unread, as if lost on the way */
    uint64_t works_in;         /* works received on this connection (held.c) */
    uint64_t recv_conn[WRK_RECV_KEPT], recv_n[WRK_RECV_KEPT]; /* the last connections' counts,
                                  ring by connection number, for `received` in ready */
};

/* A job starts (+1) or stops (-1) waiting on its own sub-queries. While it waits it lends
 * its slot: the capacity announced to the broker is --capacity plus the jobs waiting (at most
 * --max-lent more), so that the sub-queries of nested agents always find a slot (a fanout of
 * fanouts on one worker would otherwise hold every credit while its children queue). The
 * writer sends one `credit` per change that survives to its next turn. */
void wrk_lend(wrk_t *w, int delta);

/* Events beyond this many queued messages are refused (ABP_EAGAIN): a broker that stops
 * reading must not make the worker grow without bound. Answers are always queued. */
#define WRK_OUT_MAX 10000

/* Called on the connection's task by a job running inline on it, just before the job first
 * waits: a new task takes over serving the connection and the caller's task becomes the
 * job's (*mine gets its handle; it keeps the agent's name it was given for the job). The
 * old task returns from its serving loop once the job ends. Returns: 0. Errors: ACT_ENOMEM
 * (then the connection waits for the job), ACT_ECANCELED (the connection's task is being
 * stopped). */
int wrk_conn_handoff(wrk_t *w, act_task_t **mine);

/* Queues one encoded message for the writer; dropped when gen is not the current connection
 * (a job of a lost connection). Never waits; callable from any task or loop callback. */
void wrk_send(wrk_t *w, uint64_t gen, const proto_buf_t *msg);
/* Runs the worker (call inside act_run) until a signal's drain ends.
 * Returns: 0, or a negative code when it could not start. */
int wrk_run(wrk_t *w);
/* SIGTERM/SIGINT: the first starts the drain, the next cancels the jobs still running. */
void wrk_signal(wrk_t *w, int signum);

/* ---- the watchdog and service-manager liveness (watchdog.c) ---- */
#define WRK_WATCHDOG_EXIT 70 /* the exit status when the watchdog ends the process */
/* Starts the ticker task and, with --watchdog-ms, the thread that watches it; with systemd's
 * NOTIFY_SOCKET, sends READY=1 and then WATCHDOG=1 from the ticker. Call in a task on the
 * loop's thread. Returns: 0. Errors: ACT_ENOMEM, or act_spawn's / pthread_create's (as
 * ACT_EINVAL); nothing is left running on failure. */
int wrk_watchdog_start(wrk_t *w);
void wrk_watchdog_stop(wrk_t *w); /* stops both; safe when never started */

/* ---- metrics and tasks (worker_metrics.c) ---- */
typedef struct wrk_metrics wrk_metrics_t;
/* Creates w->mx and, with --metrics, binds the endpoint and spawns the task serving it (in a
 * task, after the zmq context exists). Returns: 0. Errors: ACT_ENOMEM, ACT_EINVAL (the bind
 * failed; logged), or act_spawn's. */
int wrk_metrics_start(wrk_t *w);
void wrk_metrics_stop(wrk_t *w); /* stops the task, closes the socket, frees w->mx */
/* A model call's tokens, by agent and model (agt_host_t.tokens), for /metrics. */
void wrk_mx_tokens(wrk_t *w, const char *agent, const char *model, uint64_t prompt,
                   uint64_t completion);
/* Hooks: a job ended with outcome (NULL: "ok", or its error code); a call ended; a message of n
 * bytes came from or went to the broker. Each does nothing before wrk_metrics_start. */
void wrk_mx_job_end(wrk_t *w, const abp_ctx_t *j, const char *outcome);
void wrk_mx_call_end(wrk_t *w, bool ok);
void wrk_mx_in(wrk_t *w, size_t n);
void wrk_mx_out(wrk_t *w, size_t n);
/* Answers the broker's `tasks` (reference ref) with the loop's task list. */
void wrk_tasks_answer(wrk_t *w, uint64_t ref);

#endif
