/* worker.c: the worker's connection to the broker. A DEALER on the loop (act_zsock) sends
 * `ready`, keeps heartbeats going both ways, dispatches what the broker sends (work, cancel,
 * replies to sub-queries) and reconnects with a fresh socket when the broker says `disconnect`
 * or falls silent. An outgoing message leaves at once when the socket takes it and nothing is
 * queued before it; otherwise it waits in one queue for one writer task, so nothing that
 * answers a job ever waits. SIGTERM drains: stop taking work (credit 0), let
 * the running jobs finish up to --drain-ms, say `disconnect`, leave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "base/connect.h"
#include "agent/runtime.h"

#define LINGER_MS 1000   /* how long a final message may take to leave on exit */
#define IDLE_WAIT_MS 1000 /* how long cancelled jobs get to end */
#define RECONNECT_MS 100 /* pause before a new connection after `disconnect` */

typedef struct wrk_out {
    struct wrk_out *next;
    wrk_held_t *held;  /* an adoptable job's answer (sent from there), else NULL */
    size_t n;
    uint8_t data[];
} wrk_out;

enum { SERVE_RECONNECT = 1, SERVE_HANDED_OFF = 2 };

static int conn_task(void *arg, void **result);

static void out_push(wrk_t *w, wrk_out *o);

/* ---- the outgoing queue and its writer ---- */

void wrk_send(wrk_t *w, uint64_t gen, const proto_buf_t *msg) {
    if (gen != w->gen || !w->sock) return; /* a job of a lost connection: nobody to tell */
    if (msg->failed) {
        act_log(ACT_LOG_ERROR, "send_dropped", "reason=encode_failed");
        return;
    }
    if (!w->out_head && !w->out_busy && w->z) { /* nothing ahead of it: try it now */
        int rc = act_zsock_try_send_frame(w->z, msg->p, msg->n);
        if (rc == 0) {
            wrk_mx_out(w, msg->n);
            w->last_sent = act_now();
            return;
        }
        if (rc != ACT_EAGAIN) { /* as the writer would have found it */
            if (rc != ACT_ECLOSED)
                act_log(ACT_LOG_WARN, "send_failed", "error=%s", act_err_name(rc));
            return;
        }
    }
    wrk_out *o = malloc(sizeof(*o) + msg->n);
    if (!o) {
        act_log(ACT_LOG_ERROR, "send_dropped", "reason=out_of_memory bytes=%zu", msg->n);
        return;
    }
    o->next = NULL;
    o->held = NULL;
    o->n = msg->n;
    memcpy(o->data, msg->p, msg->n);
    out_push(w, o);
}

void wrk_send_held(wrk_t *w, wrk_held_t *h) {
    wrk_out *o = w->sock ? malloc(sizeof(*o)) : NULL;
    if (!o) { /* no connection (or no memory): kept for the next ready */
        wrk_held_keep(w, h);
        return;
    }
    o->next = NULL;
    o->held = h;
    o->n = 0;
    out_push(w, o);
}

static void out_push(wrk_t *w, wrk_out *o) {
    if (w->out_tail) w->out_tail->next = o;
    else w->out_head = o;
    w->out_tail = o;
    w->out_len++;
    act_event_clear(&w->flushed);
    act_event_set(&w->out_ready);
}

static wrk_out *out_pop(wrk_t *w) {
    wrk_out *o = w->out_head;
    if (!o) return NULL;
    w->out_head = o->next;
    if (!w->out_head) w->out_tail = NULL;
    w->out_len--;
    return o;
}

/* Drops what was not sent; an adoptable job's answer is kept for the next ready. */
static void out_purge(wrk_t *w) {
    wrk_out *o;
    while ((o = out_pop(w)) != NULL) {
        if (o->held) wrk_held_keep(w, o->held);
        free(o);
    }
    act_event_set(&w->flushed);
}

/* The capacity to announce: ours, plus the slots lent by jobs waiting on sub-queries; none
 * while draining (the drain said 0). */
static uint64_t credit_now(const wrk_t *w) {
    if (w->draining) return 0;
    uint64_t lent = w->lent < w->cfg.max_lent ? w->lent : w->cfg.max_lent;
    return w->cfg.capacity + lent;
}

void wrk_lend(wrk_t *w, int delta) {
    if (delta < 0 && w->lent == 0) return; /* unbalanced: a bug, but never wrap */
    w->lent += delta > 0 ? 1 : (uint64_t)-1;
    if (w->cfg.max_lent == 0) return;
    w->credit_dirty = true;
    act_event_set(&w->out_ready);
}

/* Queues a `credit` when what the broker knows differs from credit_now. Runs in the writer,
 * after the task that changed `lent` yielded: a wait that ends at once costs nothing. */
static void credit_flush(wrk_t *w) {
    w->credit_dirty = false;
    uint64_t cap = credit_now(w);
    if (cap == w->credit_sent || !w->sock || w->draining) return;
    proto_buf_t b;
    proto_buf_init(&b);
    if (proto_enc_credit(&b, cap) == 0) {
        wrk_send(w, w->gen, &b);
        w->credit_sent = cap;
    }
    proto_buf_free(&b);
}

static int writer_task(void *arg, void **result) {
    (void)result;
    wrk_t *w = arg;
    for (;;) {
        while ((!w->out_head && !w->credit_dirty) || !w->z) {
            act_event_clear(&w->out_ready);
            int rc = act_event_wait(&w->out_ready, -1);
            if (rc) return rc;
        }
        if (w->credit_dirty) credit_flush(w);
        if (!w->out_head) continue;
        wrk_out *o = out_pop(w);
        wrk_held_t *h = o->held;
        act_zframe_t f = {h ? h->data + h->entry_n : o->data, h ? h->msg_n : o->n};
        w->out_busy = true; /* wrk_send must not pass it while it waits */
        int rc = act_zsock_send_frames(w->z, &f, 1, -1);
        w->out_busy = false;
        if (rc == 0) wrk_mx_out(w, f.n);
        if (h && rc == 0) wrk_held_sent(w, h); /* kept a while: the broker may die unread */
        else if (h) wrk_held_keep(w, h); /* its connection went: for the next ready */
        free(o);
        if (!w->out_head) act_event_set(&w->flushed);
        if (rc == 0) w->last_sent = act_now();
        else if (rc == ACT_ECANCELED) return rc;
        else if (rc != ACT_ECLOSED) act_log(ACT_LOG_WARN, "send_failed", "error=%s",
                                            act_err_name(rc));
    }
}

static void send_simple(wrk_t *w, proto_type_t type) {
    if (proto_enc_simple(&w->enc, type) == 0) wrk_send(w, w->gen, &w->enc);
}

static void send_ready(wrk_t *w) {
    abp_host_t *h = w->host;
    size_t n = h->n_agents ? h->n_agents : 1;
    const char **names = calloc(n, sizeof(*names));
    bool *history = calloc(n, sizeof(*history));
    for (size_t i = 0; names && history && i < h->n_agents; i++) {
        names[i] = h->agents[i].name;
        history[i] = agt_wants_history(h, h->agents[i].def);
    }
    if (names && history &&
        proto_enc_ready_history(&w->enc, proto_str_of(w->cfg.name), w->cfg.capacity, names,
                                history, h->n_agents, (uint64_t)w->cfg.heartbeat_ms) == 0) {
        wrk_held_ready(w, &w->enc); /* the jobs it kept across a takeover */
        wrk_send(w, w->gen, &w->enc);
        wrk_held_flush(w);
    }
    free(names);
    free(history);
}

/* ---- one connection ---- */

/* Watches s for failed handshakes: a broker that refuses our CURVE key (or wants CURVE) is
 * otherwise just silent, and the log should say why. Failing to watch loses only that. */
static void mon_open(wrk_t *w, void *s) {
    char addr[64];
    int zero = 0;
    snprintf(addr, sizeof addr, "inproc://actor-worker-monitor-%llu",
             (unsigned long long)w->gen + 1);
    if (zmq_socket_monitor(s, addr, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(w->mon = zmq_socket(w->zctx, ZMQ_PAIR)))
        return;
    zmq_setsockopt(w->mon, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(w->mon, addr) != 0) {
        zmq_close(w->mon);
        w->mon = NULL;
    }
}

static void mon_close(wrk_t *w) {
    if (w->mon) zmq_close(w->mon);
    w->mon = NULL;
}

/* Logs the last failed handshake, if any (read without waiting, bounded). */
static void mon_explain(wrk_t *w) {
    uint16_t event = 0;
    for (int i = 0; w->mon && i < 64; i++) {
        uint8_t head[6];
        char ep[256];
        int n = zmq_recv(w->mon, head, sizeof head, ZMQ_DONTWAIT);
        if (n < 0) break;
        if (n == (int)sizeof head) memcpy(&event, head, sizeof event);
        zmq_recv(w->mon, ep, sizeof ep, ZMQ_DONTWAIT); /* the endpoint frame */
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        act_log(ACT_LOG_ERROR, "handshake_refused", "broker=%s why=\"the broker refused "
                "this worker's CURVE key (not in its --worker-keys)\"", w->cfg.broker);
    else if (event)
        act_log(ACT_LOG_ERROR, "handshake_failed", "broker=%s curve=%d why=\"%s\"",
                w->cfg.broker, w->cfg.curve, w->cfg.curve ? "check --curve-server-key"
                                                          : "the broker may want CURVE");
}

/* Connects s to every endpoint of the comma-separated list (a broker pair: only the active
 * one is bound). With more than one, ZMQ_IMMEDIATE keeps messages off connections that are
 * not up, so everything goes to the broker that answers; when it changes, the new one says
 * `disconnect` to the stranger and the worker starts over with `ready`.
 * Returns: 0, or -1 with errno (the endpoint that failed is logged). */
static int conn_open(wrk_t *w) {
    void *s = zmq_socket(w->zctx, ZMQ_DEALER);
    if (!s) return ACT_ENOMEM;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (w->cfg.curve && /* a CURVE client of the broker (keys checked at start) */
        (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, w->cfg.curve_server, BASE_Z85_KEY_LEN + 1) ||
         zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, w->cfg.curve_kp.public_, BASE_Z85_KEY_LEN + 1) ||
         zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, w->cfg.curve_kp.secret, BASE_Z85_KEY_LEN + 1))) {
        act_log(ACT_LOG_ERROR, "curve_failed", "error=\"%s\"", zmq_strerror(errno));
        zmq_close(s);
        return ACT_EINVAL;
    }
    mon_open(w, s);
    char failed[512] = "";
    int crc = base_connect_all(s, w->cfg.broker, failed, sizeof failed);
    if (crc != 0) {
        act_log(ACT_LOG_ERROR, "connect_failed", "broker=%s error=\"%s\"", failed,
                zmq_strerror(-crc));
        mon_close(w);
        zmq_close(s);
        return ACT_EINVAL;
    }
    int rc = act_zsock_new(&w->z, s);
    if (rc) {
        mon_close(w);
        zmq_close(s);
        return rc;
    }
    w->sock = s;
    w->gen++;
    w->last_heard = w->last_sent = act_now();
    send_ready(w);
    w->credit_sent = w->cfg.capacity; /* what ready declared: jobs lend from here on */
    w->credit_dirty = w->lent > 0;     /* jobs of the last connection still ending */
    act_log(ACT_LOG_INFO, "connect", "broker=%s connection=%llu name=%s capacity=%llu",
            w->cfg.broker, (unsigned long long)w->gen, w->cfg.name,
            (unsigned long long)w->cfg.capacity);
    return 0;
}

/* Ends the connection: its jobs and sub-queries can no longer be answered, so they are
 * cancelled (and waited for, so the next `ready` declares capacity that is really free). */
static void conn_close(wrk_t *w, int linger_ms, bool hold) {
    if (!w->sock) return;
    /* A broker pair: jobs whose work said who asked keep running, for the next broker to
     * adopt (held.c); the others cannot be answered any more. */
    size_t held = 0;
    if (hold) held = wrk_jobs_hold(w);
    else wrk_jobs_cancel_all(w, true);
    /* A held job's calls wait for the next broker too: it links the jobs that answer them
     * (held.c lists them in the ready), or ends them itself. */
    if (hold) wrk_calls_fail_unheld(w, "worker_lost", "the worker's connection to the broker "
                                    "was reset");
    else wrk_calls_fail_all(w, "worker_lost", "the worker's connection to the broker was "
                            "reset");
    agt_budget_reset(w->budget); /* the broker took our permits back */
    if (linger_ms == 0) out_purge(w);
    act_zsock_destroy(&w->z);
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(w->sock);
    w->sock = NULL;
    wrk_held_conn_end(w); /* nothing more is read of it: its count of works is final */
    mon_close(w);
    out_purge(w);
    /* The answers sent lately (maybe never read by a broker that died): reported too, with
     * what room --max-held-report leaves after the unread ones. */
    if (hold) wrk_held_recall(w);
    if (held || w->n_held)
        act_log(ACT_LOG_INFO, "jobs_held", "running=%zu answered=%zu", held, w->n_held);
    if (!held) wrk_jobs_wait_idle(w, act_deadline_in(IDLE_WAIT_MS));
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Acts on one message from the broker (n frames, the first data[0, size)). Returns: 0, or
 * SERVE_RECONNECT. */
static int dispatch(wrk_t *w, const uint8_t *data, size_t size, size_t n) {
    if (n != 1) {
        act_log(ACT_LOG_WARN, "bad_message", "reason=frames frames=%zu", n);
        return 0;
    }
    proto_msg_t m;
    proto_error_t err;
    if (proto_decode(data, size, &w->limits, &m, &err) != 0) {
        act_log(ACT_LOG_WARN, "bad_message", "code=%s reason=\"%s\"", err.code, err.message);
        return 0;
    }
    switch (m.type) {
    case PROTO_WORK:
        if (w->test_drop_work) { /* a test's work lost on the way (tests/broker) */
            w->test_drop_work--;
            act_log(ACT_LOG_INFO, "test_work_dropped", "job=%llu", (unsigned long long)m.job);
            return 0;
        }
        w->works_in++; /* counted as received: reported in the next ready (held.c) */
        wrk_jobs_start(w, &m);
        return 0;
    case PROTO_CANCEL:
        if (m.has_job) wrk_jobs_cancel(w, m.job);
        return 0;
    case PROTO_BUDGET: /* the broker's model budget (agent/model/budget_client.h) */
    case PROTO_BUDGET_GRANT:
    case PROTO_BUDGET_DENY:
        agt_budget_on_message(w->budget, &m);
        return 0;
    case PROTO_EVENT:
    case PROTO_RESULT:
    case PROTO_ERROR:
        if (!m.has_job) wrk_calls_deliver(w, &m);
        return 0;
    case PROTO_HEARTBEAT: return 0;
    case PROTO_TASKS:
        if (m.has_job) wrk_tasks_answer(w, m.job);
        return 0;
    case PROTO_DISCONNECT:
        act_log(ACT_LOG_INFO, "broker_disconnect", "connection=%llu", (unsigned long long)w->gen);
        return SERVE_RECONNECT;
    default:
        act_log(ACT_LOG_WARN, "unexpected_message", "type=%s", proto_type_name(m.type));
        return 0;
    }
}

/* Serves the connection until the broker is lost or says disconnect (SERVE_RECONNECT), or
 * the task is cancelled (ACT_ECANCELED). */
static int conn_serve(wrk_t *w) {
    int64_t hb = w->cfg.heartbeat_ms, dead = hb * w->cfg.liveness;
    for (;;) {
        int64_t now = act_now();
        if (now - w->last_heard >= dead) {
            act_log(ACT_LOG_WARN, "broker_silent", "ms=%lld connection=%llu",
                    (long long)(now - w->last_heard), (unsigned long long)w->gen);
            mon_explain(w);
            return SERVE_RECONNECT;
        }
        if (now - w->last_sent >= hb && !w->out_head) {
            send_simple(w, PROTO_HEARTBEAT);
            w->last_sent = now; /* the writer moves it again when it goes out */
        }
        zmq_msg_t parts[2];
        size_t n = 0;
        int64_t wake = min64(w->last_sent + hb, w->last_heard + dead);
        int rc = act_zsock_recv(w->z, parts, 2, &n, wake);
        if (rc == ACT_ETIMEDOUT) continue;
        if (rc == ACT_EMSGSIZE) {
            w->last_heard = act_now();
            act_log(ACT_LOG_WARN, "bad_message", "reason=frames");
            continue;
        }
        if (rc) return rc;
        w->last_heard = act_now();
        size_t size = n ? zmq_msg_size(&parts[0]) : 0; /* each libzmq accessor costs ~20 */
        wrk_mx_in(w, size);
        w->msg_parts = parts, w->msg_n = &n;
        rc = dispatch(w, n ? zmq_msg_data(&parts[0]) : NULL, size, n);
        act_zsock_close_parts(parts, n);
        if (rc) return rc;
        /* A job that ran inline and waited took this task over: another one serves now. */
        if (act_current() != w->server) return SERVE_HANDED_OFF;
    }
}

int wrk_conn_handoff(wrk_t *w, act_task_t **mine) {
    /* Being stopped (run_tasks waits for this very task): no new one to stop as well. */
    if (act_task_cancel_requested(w->server)) return ACT_ECANCELED;
    act_task_t *next = NULL;
    act_spawn_opts_t o = {.name = "connection"};
    int rc = act_spawn(conn_task, w, &o, &next);
    if (rc) return rc;
    *mine = w->server; /* already named after the job's agent (wrk_jobs_start) */
    w->server = next;
    /* The work is decoded and copied into the job: its message (and the libzmq receive
     * buffer it may share) is not held for as long as the job waits. */
    act_zsock_close_parts(w->msg_parts, *w->msg_n);
    *w->msg_n = 0;
    return 0;
}

/* Connects, serves, and reconnects (on `disconnect`, silence or a socket error) until
 * cancelled or the drain began. Only a connect that cannot work (a bad endpoint) ends it.
 * A task that takes over (wrk_conn_handoff) finds the socket open and serves it. */
static int conn_loop(wrk_t *w) {
    for (;;) {
        int rc = w->sock ? 0 : conn_open(w);
        if (rc) return rc;
        rc = conn_serve(w);
        if (rc == SERVE_HANDED_OFF) return SERVE_HANDED_OFF;
        if (rc == ACT_ECANCELED) {
            conn_close(w, LINGER_MS, false); /* shutting down: let `disconnect` leave */
            return 0;
        }
        if (rc < 0) act_log(ACT_LOG_WARN, "connection_error", "error=%s", act_err_name(rc));
        conn_close(w, 0, !w->draining);
        if (w->draining) return 0;
        if ((rc = act_sleep(RECONNECT_MS)) != 0) return rc == ACT_ECANCELED ? 0 : rc;
    }
}

static int conn_task(void *arg, void **result) {
    (void)result;
    wrk_t *w = arg;
    int rc = conn_loop(w);
    if (rc == SERVE_HANDED_OFF) return 0; /* its job ended; the connection is served */
    w->conn_rc = rc;
    act_event_set(&w->conn_gone);
    return rc;
}

/* ---- the drain and the run ---- */

void wrk_signal(wrk_t *w, int signum) {
    act_log(ACT_LOG_INFO, "signal", "signal=%d running=%zu", signum, w->n_jobs);
    if (++w->signals == 1) {
        act_event_set(&w->stop);
    } else {
        w->drain_deadline = act_now(); /* again: stop waiting for the jobs */
        wrk_jobs_cancel_all(w, false);
    }
}

/* Stops taking work, waits for the running jobs up to the drain deadline, cancels the rest,
 * and says goodbye. Runs shielded: the drain itself must not be cut short. */
static void drain(wrk_t *w) {
    w->draining = true;
    if (!w->drain_deadline) w->drain_deadline = act_deadline_in(w->cfg.drain_ms);
    if (proto_enc_credit(&w->enc, 0) == 0) wrk_send(w, w->gen, &w->enc);
    w->credit_sent = 0;
    act_log(ACT_LOG_INFO, "drain", "running=%zu drain_ms=%lld", w->n_jobs,
            (long long)w->cfg.drain_ms);
    if (wrk_jobs_wait_idle(w, w->drain_deadline) != 0) {
        act_log(ACT_LOG_WARN, "drain_timeout", "cancelling=%zu", w->n_jobs);
        wrk_jobs_cancel_all(w, false);
        wrk_jobs_wait_idle(w, act_deadline_in(IDLE_WAIT_MS));
    }
    send_simple(w, PROTO_DISCONNECT);
    act_event_wait(&w->flushed, act_deadline_in(LINGER_MS));
}

static void stop_task(act_task_t **t) {
    if (!*t) return;
    act_task_cancel(*t);
    act_join(*t, NULL, -1);
    act_task_release(t);
}

static void budget_send(void *ctx, const proto_buf_t *msg) {
    wrk_t *w = ctx;
    wrk_send(w, w->gen, msg);
}

static int run_tasks(wrk_t *w) {
    act_task_t *writer = NULL;
    act_spawn_opts_t wo = {.name = "writer"}, co = {.name = "connection"};
    int rc = agt_budget_new(&w->budget, budget_send, w); /* the broker's model budget */
    if (rc == 0 && w->host->rt) w->host->rt->budget = agt_budget_hook(w->budget);
    if (rc == 0) rc = act_spawn(writer_task, w, &wo, &writer);
    if (rc == 0) rc = act_spawn(conn_task, w, &co, &w->server);
    if (rc == 0) {
        /* The connection's task may change (wrk_conn_handoff): its end is an event. */
        act_choice_t ch[2] = {{.kind = ACT_CHOICE_EVENT, .obj = &w->stop},
                              {.kind = ACT_CHOICE_EVENT, .obj = &w->conn_gone}};
        rc = act_choose(ch, 2, -1); /* a signal, or the connection gave up */
    }
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    if (rc == 0) drain(w); /* the signal came first */
    if (rc >= 0) rc = act_event_is_set(&w->conn_gone) ? w->conn_rc : 0;
    stop_task(&w->server); /* the one serving now: no job runs inline on it while we wait */
    stop_task(&writer);
    if (w->host->rt) w->host->rt->budget = NULL;
    agt_budget_destroy(&w->budget);
    act_scope_leave(&shield);
    return rc;
}

int wrk_run(wrk_t *w) {
    if (wrk_jobs_init(w) != 0) return ACT_ENOMEM;
    act_event_init(&w->out_ready);
    act_event_init(&w->flushed);
    act_event_init(&w->jobs_idle);
    act_event_init(&w->stop);
    act_event_init(&w->conn_gone);
    act_event_set(&w->flushed);
    act_event_set(&w->jobs_idle);
    proto_limits_default(&w->limits);
    w->limits.max_size = (size_t)256 << 20; /* the broker enforced its own --max-msg */
    proto_buf_init(&w->enc);
    wrk_held_incarnation(w); /* this process, in each ready (held.c) */
    const char *drop = getenv("ACTOR_WORKER_TEST_DROP_WORK");
    if (drop) w->test_drop_work = strtoull(drop, NULL, 10);
    w->zctx = zmq_ctx_new();
    if (!w->zctx) {
        wrk_jobs_free_spares(w);
        proto_buf_free(&w->enc);
        return ACT_ENOMEM;
    }
    int rc = wrk_metrics_start(w);
    if (rc == 0) rc = wrk_watchdog_start(w);
    if (rc == 0) {
        rc = agt_rt_start(w->host->rt); /* MCP servers: up before the first job */
        if (rc) act_log(ACT_LOG_ERROR, "runtime_start_failed", "error=%s", act_err_name(rc));
        if (rc == 0) rc = run_tasks(w);
        agt_rt_stop(w->host->rt);
    }
    wrk_watchdog_stop(w);
    wrk_metrics_stop(w);
    out_purge(w);
    wrk_held_free_all(w);
    wrk_jobs_free_spares(w);
    proto_buf_free(&w->enc);
    zmq_ctx_term(w->zctx);
    w->zctx = NULL;
    return rc;
}
