/* broker/broker.c: the broker's sockets and its one zmq_poll loop. Reads each ROUTER message
 * whole (bounded: extra frames are counted and dropped), works out its envelope, checks size
 * and decodes it, and hands it to clients.c or workers.c; runs deadlines, heartbeats and the
 * SIGTERM drain between passes. Also the one place that sends to a ROUTER peer. */
#include "broker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define RECV_BATCH 256  /* messages per socket per pass, so no socket starves the others */
#define KEEP_FRAMES 4   /* identity, delimiter, body and one extra to report */

void brk_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "level=error event=panic file=%s line=%d assert=\"%s\"\n", file, line, what);
    abort();
}

int brk_send(brk_t *b, brk_sock_t s, const uint8_t *id, size_t idlen, bool req,
             const uint8_t *body, size_t n) {
    void *sock = brk_sock(b, s);
    int err = 0;
    /* A client's bytes not yet written out are bounded (outq.c): checked before the first
     * frame, since a message once begun must be finished. */
    struct brk_outq *q = s == BRK_SOCK_CLIENTS ? brk_outq_admit(b, id, idlen, n, &err) : NULL;
    if (err) return err;
    /* With ROUTER_MANDATORY the identity frame fails (EHOSTUNREACH, EAGAIN) when the peer is
     * gone or full; once it is taken the rest of the message always is. */
    if (zmq_send(sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -errno;
    if (req && zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -errno;
    if (q)
        err = brk_outq_send(b, q, sock, body, n);
    else if (zmq_send(sock, body, n, ZMQ_DONTWAIT) < 0)
        err = -errno;
    if (err) return err;
    brk_mx_out(b, s, n);
    return 0;
}

static bool is_input_error(const char *code) {
    return strcmp(code, "bad_request") == 0 || strcmp(code, "too_large") == 0 ||
           strcmp(code, "unsupported_version") == 0;
}

/* Whether one more bad-input line may be logged now: at most --log-bad-input per second, so
 * that a flood of bad frames is not a flood of log. The lines left out are counted and
 * reported, in one line, with the first line of the next second. */
bool brk_bad_input_log_ok(brk_t *b) {
    if (b->now - b->bad_log_start >= 1000) {
        if (b->bad_log_dropped)
            base_log(BASE_LOG_WARN, "reply_error_suppressed", "lines=%llu window_ms=%lld "
                     "why=\"more than log-bad-input a second\"",
                     (unsigned long long)b->bad_log_dropped,
                     (long long)(b->now - b->bad_log_start));
        b->bad_log_start = b->now;
        b->bad_log_n = b->bad_log_dropped = 0;
    }
    if (b->bad_log_n < b->cfg.log_bad_input) {
        b->bad_log_n++;
        return true;
    }
    b->bad_log_dropped++;
    return false;
}

void brk_reply_error(brk_t *b, const brk_in_t *in, proto_raw_t id, const char *code,
                     const char *fmt, ...) {
    char raw[256], msg[256], peer[2 * BRK_MAX_IDENTITY + 1], q[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* It may quote what the peer sent, and the cut above may split a character. */
    base_utf8_clean(msg, sizeof msg, raw, strlen(raw));
    brk_mx_error(b, code); /* counted in /metrics whether logged or not */
    int level = is_input_error(code) ? BASE_LOG_WARN : BASE_LOG_DEBUG;
    base_log_hex(peer, sizeof peer, in->id, in->idlen);
    if (base_log_on(level) && (level < BASE_LOG_WARN || brk_bad_input_log_ok(b)))
        base_log(level, "reply_error", "sock=%s peer=%s code=%s message=%s",
                in->sock == BRK_SOCK_CLIENTS ? "clients" : "workers", peer, code,
                base_log_str(q, sizeof q, msg, strlen(msg)));
    if (proto_enc_error(&b->out, id, code, msg) != 0) return;
    int rc = brk_send(b, in->sock, in->id, in->idlen, in->req, b->out.p, b->out.n);
    if (rc < 0) base_log(BASE_LOG_DEBUG, "send_failed", "peer=%s errno=%d", peer, -rc);
}

/* Works out the envelope: [id][body] (DEALER) or [id][""][body...] (REQ-style). */
static void parse_envelope(brk_in_t *in, zmq_msg_t *f, size_t nf, size_t total) {
    size_t first = 1;
    size_t idlen = zmq_msg_size(&f[0]);
    in->idlen = idlen <= BRK_MAX_IDENTITY ? idlen : 0;
    brk_copy(in->id, zmq_msg_data(&f[0]), in->idlen);
    in->req = total >= 3 && zmq_msg_size(&f[1]) == 0;
    if (in->req) first = 2;
    size_t nbody = total - first;
    in->frame_err[0] = '\0';
    in->body = NULL;
    in->n = 0;
    if (nbody == 0) {
        snprintf(in->frame_err, sizeof in->frame_err, "missing body frame");
    } else if (nbody > 1) {
        snprintf(in->frame_err, sizeof in->frame_err,
                 "expected 1 body frame, got %zu frames", nbody);
    } else if (first < nf) {
        in->body = zmq_msg_data(&f[first]);
        in->n = zmq_msg_size(&f[first]);
        if (in->n == 0) snprintf(in->frame_err, sizeof in->frame_err, "empty body frame");
    }
}

static void client_message(brk_t *b, const brk_in_t *in) {
    proto_raw_t nil = {NULL, 0};
    if (in->frame_err[0]) {
        brk_reply_error(b, in, nil, "bad_request", "%s", in->frame_err);
        return;
    }
    if (in->n > b->cfg.max_msg) {
        brk_reply_error(b, in, nil, "too_large", "message of %zu bytes exceeds max-msg %llu",
                        in->n, (unsigned long long)b->cfg.max_msg);
        return;
    }
    if (in->key && in->key->max_msg && in->n > in->key->max_msg) {
        brk_reply_error(b, in, nil, "too_large", "message of %zu bytes exceeds its key's "
                        "max_msg %llu", in->n, (unsigned long long)in->key->max_msg);
        return;
    }
    proto_msg_t m;
    proto_error_t err;
    err.code = NULL; /* what the error path reads: set only on failure */
    err.message[0] = '\0';
    int rc = proto_decode(in->body, in->n, &b->lim, &m, &err);
    if (rc != 0) { /* m.id: the request's id when it could be read */
        brk_reply_error(b, in, m.id, err.code ? err.code : "bad_request", "%s",
                        err.message[0] ? err.message : "undecodable message");
        return;
    }
    brk_client_request(b, in, &m);
}

size_t brk_recv_frames(void *sock, zmq_msg_t *f, size_t keep, size_t *nf) {
    zmq_msg_t junk;
    size_t total = 0;
    bool more = true;
    *nf = 0;
    while (more) {
        zmq_msg_t *m = *nf < keep ? &f[*nf] : &junk;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        total++;
        if (m == &junk)
            zmq_msg_close(m);
        else
            (*nf)++;
    }
    return total;
}

/* A message under a key the allowlist no longer has (removed by SIGHUP since the peer
 * connected): a worker is dropped and told to disconnect (its reconnect then fails the
 * handshake); anyone else gets `unauthorized`. ZeroMQ cannot close one peer of a ROUTER. */
static void refuse_removed_key(brk_t *b, const brk_in_t *in) {
    brk_zap_count_refused(b);
    brk_node_t *n = in->sock == BRK_SOCK_WORKERS ? brk_map_get(&b->worker_map, in->id, in->idlen)
                                                 : NULL;
    proto_raw_t nil = {NULL, 0};
    if (!n) {
        brk_reply_error(b, in, nil, "unauthorized", "this connection's key is not allowed "
                        "any more");
        return;
    }
    brk_worker_t *w = base_container_of(n, brk_worker_t, node);
    if (!w->dead && proto_enc_simple(&b->out, PROTO_DISCONNECT) == 0)
        brk_send(b, BRK_SOCK_WORKERS, w->id, w->idlen, false, b->out.p, b->out.n);
    brk_worker_mark_dead(b, w, "key removed");
}

/* Reads one message from a ROUTER; returns false when there was none. */
static bool recv_router(brk_t *b, brk_sock_t s) {
    zmq_msg_t f[KEEP_FRAMES];
    size_t nf, total = brk_recv_frames(brk_sock(b, s), f, KEEP_FRAMES, &nf);
    if (total == 0) return false;
    brk_in_t in;
    in.sock = s;
    parse_envelope(&in, f, nf, total);
    /* Before acting on it: a disconnect of the connection that had this fd is seen first. */
    in.fd = s == BRK_SOCK_CLIENTS && nf > 1 ? brk_gone_fd(b, &f[nf - 1], in.id, in.idlen) : -1;
    brk_mx_in(b, s, in.n);
    /* The identity frame is the ROUTER's own; the peer's metadata is on the frames after it */
    /* without CURVE (b->zap NULL) there is no key to look up: not even the call */
    in.key = nf > 1 && b->zap ? brk_zap_key(b, s, &f[nf - 1]) : NULL;
    if (b->zap && !in.key)
        refuse_removed_key(b, &in);
    else if (s == BRK_SOCK_CLIENTS)
        client_message(b, &in);
    else
        brk_worker_message(b, &in);
    for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    return true;
}

/* Settles what a message may have left to do: workers whose send failed are removed (their
 * jobs retried or answered) and workers with fresh credit are offered queued work. */
static void settle(brk_t *b) {
    while (b->have_dead || !base_list_empty(&b->pump)) {
        if (b->have_dead) brk_workers_reap(b);
        while (!base_list_empty(&b->pump) && !b->have_dead) {
            brk_worker_t *w = base_container_of(b->pump.next, brk_worker_t, pump_link);
            base_list_unlink(&w->pump_link);
            if (!w->dead) brk_jobs_pump_worker(b, w);
        }
    }
}

static void on_one_signal(brk_t *b) {
    if (!b->draining) {
        b->draining = true;
        b->drain_until = brk_after(b->now, b->cfg.drain_ms);
        base_log(BASE_LOG_INFO, "draining", "in_flight=%llu queued=%llu drain_ms=%llu",
                 (unsigned long long)b->n_live, (unsigned long long)b->n_queued,
                 (unsigned long long)b->cfg.drain_ms);
    } else {
        b->drain_until = b->now; /* a second signal: stop now */
    }
}

static void on_signal(brk_t *b) {
    char buf[64];
    ssize_t n = read(b->sig_fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == SIGHUP)
            brk_zap_reload(b); /* the allowlists; logs what changed */
        else
            on_one_signal(b);
    }
}

static void finish_drain(brk_t *b) {
    if (b->n_live)
        base_log(BASE_LOG_WARN, "drain_timeout", "unanswered=%llu",
                 (unsigned long long)b->n_live);
    brk_jobs_abort_all(b, "shutting_down", "the broker stopped before the query finished");
    brk_tasks_abort_all(b, "shutting_down", "the broker stopped before the worker answered");
    brk_workers_disconnect_all(b);
    b->stop = true;
    base_log(BASE_LOG_INFO, "stopped", "workers=%llu", (unsigned long long)b->n_workers);
}

static long poll_timeout(brk_t *b) {
    int64_t next = b->now + 1000;
    int64_t bt = brk_budget_tick(b); /* grants the rate lets go now (model_budget.c) */
    if (bt >= 0 && bt < next) next = bt;
    int64_t t = brk_jobs_tick(b);
    settle(b);
    if (t >= 0 && t < next) next = t;
    /* What brk_workers_tick returned holds until a worker registers (which clears it):
     * heartbeats and liveness deadlines only move later as messages come and go. */
    if (b->now >= b->workers_due) {
        b->workers_due = brk_workers_tick(b);
        settle(b);
    }
    if (b->workers_due < next) next = b->workers_due;
    if (b->draining && b->drain_until < next) next = b->drain_until;
    t = brk_metrics_tick(b);
    if (t < next) next = t;
    t = brk_agents_tick(b);
    settle(b);
    if (t >= 0 && t < next) next = t;
    t = brk_gone_tick(b); /* disconnects: not in the poll set, where each socket costs */
    settle(b);
    if (t >= 0 && t < next) next = t;
    t = brk_adopt_tick(b); /* after a takeover: resends nobody reported */
    if (t >= 0 && t < next) next = t;
    t = brk_subs_tick(b); /* the bus subscribers' disconnects */
    if (t >= 0 && t < next) next = t;
    if (b->now >= b->next_maint) { /* once a second: client queues that emptied */
        brk_outq_sweep(b);
        b->next_maint = b->now + 1000;
    }
    return next <= b->now ? 0 : (long)(next - b->now);
}

/* Reads up to RECV_BATCH messages from socket i, within --loop-slice-ms (looked at every 16
 * messages: each is handled in bounded time), so that deadlines, heartbeats and the other
 * sockets get their turn whatever one peer sends; false once it has none left. The worker
 * socket read empty is what lets liveness call a worker silent. */
static bool drain_one(brk_t *b, int i) {
    /* The slice counts from the pass's start (b->now, read after zmq_poll or at the top of
     * the pass): no clock read per socket, and a later socket only gets a shorter slice. */
    int64_t t0 = b->now;
    for (int k = 0; k < RECV_BATCH; k++) {
        bool got = i == 0   ? recv_router(b, BRK_SOCK_CLIENTS)
                   : i == 1 ? recv_router(b, BRK_SOCK_WORKERS)
                   : i == 2 ? brk_bus_forward(b)
                            : brk_subs_read(b);
        if (!got) {
            if (i == 1) b->wdrained_at = base_mono_ms();
            return false;
        }
        if (i < 2) settle(b);
        if (k % 16 == 15 && base_mono_ms() - t0 >= (int64_t)b->cfg.loop_slice_ms) break;
    }
    return true;
}

int brk_run(brk_t *b) {
    zmq_pollitem_t items[7] = {
        {b->clients, 0, ZMQ_POLLIN, 0}, {b->workers, 0, ZMQ_POLLIN, 0},
        {b->sub, 0, ZMQ_POLLIN, 0},     {b->pub, 0, ZMQ_POLLIN, 0}, /* XPUB: subscriptions */
        {NULL, b->sig_fd, ZMQ_POLLIN, 0},
    };
    /* The optional sockets after the fixed five: --metrics, then ZAP (with CURVE) */
    int n_items = 5, mx_i = -1, zap_i = -1;
    if (brk_metrics_socket(b)) {
        mx_i = n_items++;
        items[mx_i] = (zmq_pollitem_t){brk_metrics_socket(b), 0, ZMQ_POLLIN, 0};
    }
    if (brk_zap_on(b)) {
        zap_i = n_items++;
        items[zap_i] = (zmq_pollitem_t){brk_zap_socket(b), 0, ZMQ_POLLIN, 0};
    }
    /* Edge-triggered reading: a socket zmq_poll reported stays `ready` until a read finds it
     * empty. Probing an empty socket costs a poll(2) and a getpid(2) inside libzmq, and so
     * does each socket in zmq_poll, so the loop polls only when nothing is ready (and every
     * 64th busy pass, without waiting, so that signals still land). */
    bool ready[4] = {false, false, false, false};
    unsigned turns = 0;
    while (!b->stop) {
        b->now = base_mono_ms();
        brk_lease_tick(b); /* fencing (--pair): exits when the lease is lost */
        long timeout = poll_timeout(b);
        if (b->draining && (b->n_live == 0 || b->now >= b->drain_until)) {
            finish_drain(b);
            break;
        }
        bool any = ready[0] || ready[1] || ready[2] || ready[3];
        if (!any || ++turns % 64 == 0) {
            int rc = zmq_poll(items, n_items, any ? 0 : timeout);
            if (rc < 0) {
                if (errno == EINTR) continue;
                base_log(BASE_LOG_ERROR, "poll_failed", "error=\"%s\"", zmq_strerror(errno));
                return 1;
            }
            b->now = base_mono_ms();
            if (!ready[1] && !(items[1].revents & ZMQ_POLLIN)) b->wdrained_at = b->now;
            for (int i = 0; i < 4; i++) ready[i] |= (items[i].revents & ZMQ_POLLIN) != 0;
            if (items[4].revents & ZMQ_POLLIN) on_signal(b);
            for (int k = 0; mx_i > 0 && (items[mx_i].revents & ZMQ_POLLIN) && k < RECV_BATCH &&
                            brk_metrics_read(b);
                 k++) {
            }
            /* One batch a poll: what is left is reported again by the next zmq_poll */
            if (zap_i > 0 && (items[zap_i].revents & ZMQ_POLLIN)) brk_zap_serve(b);
        }
        for (int i = 0; i < 4; i++) {
            if (ready[i]) ready[i] = drain_one(b, i);
        }
    }
    return 0;
}

static void *open_socket(brk_t *b, int type, const char *ep, const char *what,
                         const char *domain) {
    void *s = zmq_socket(b->ctx, type);
    if (!s) return NULL;
    if (brk_zap_secure(b, s, domain) != 0) {
        base_log(BASE_LOG_ERROR, "curve_failed", "socket=%s error=\"%s\"", what,
                 zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    int one = 1, hwm = 100000;
    /* A bit above max-msg, so that a message just over the limit is answered with too_large
     * rather than silently costing the sender its connection. */
    int64_t maxmsg = b->cfg.max_msg > (uint64_t)INT64_MAX - BRK_MSG_SLACK
                         ? -1
                         : (int64_t)(b->cfg.max_msg + BRK_MSG_SLACK);
    /* On the XPUB the messages in are subscriptions: a long one costs libzmq a trie node per
     * byte (20 of 1 MB took 631 MiB), so they get a bound of their own; a subscriber past it
     * is disconnected by libzmq. */
    if (type == ZMQ_XPUB) maxmsg = (int64_t)b->cfg.max_sub_bytes + 1;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (type == ZMQ_ROUTER) zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* A client that reconnects under its explicit routing id (to resend a query, dedup.h)
     * takes the id over from its old connection instead of being refused. Not under CURVE:
     * there a connection of another key could take the id and receive the answers still in
     * flight for the first key; a live connection keeps its id (issue 11). */
    if (type == ZMQ_ROUTER && strcmp(what, "clients") == 0 && !brk_zap_on(b))
        zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (type == ZMQ_SUB) zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_bind(s, ep) != 0) {
        base_log(BASE_LOG_ERROR, "bind_failed", "socket=%s endpoint=%s error=\"%s\"", what, ep,
                 zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    base_log(BASE_LOG_INFO, "listening", "socket=%s endpoint=%s curve=%s", what, ep,
             brk_zap_on(b) ? domain : "off");
    return s;
}

int brk_open(brk_t *b, const brk_config_t *cfg, int sig_fd) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->sig_fd = sig_fd;
    b->now = base_mono_ms();
    b->wdrained_at = b->now;
    /* Job ids start from the wall clock, not 1: a worker still running a job of the broker
     * before a restart must not have its late answer taken for a new job with that id. */
    b->next_job_id = ((uint64_t)base_unix_ms() << 16) + 1;
    proto_limits_default(&b->lim);
    b->lim.max_size = cfg->max_msg;
    b->wlim = b->lim;
    b->wlim.max_size = cfg->max_msg + BRK_MSG_SLACK;
    proto_buf_init(&b->out);
    proto_buf_init(&b->busbuf);
    base_list_init(&b->worker_list);
    base_list_init(&b->pump);
    base_list_init(&b->held);
    /* Workers of a broker that restarts come back within liveness heartbeats: until then a
     * query for one of their agents waits instead of failing with unknown_agent. */
    uint64_t grace = cfg->startup_grace_ms != UINT64_MAX ? cfg->startup_grace_ms
                                                         : cfg->liveness * cfg->heartbeat_ms;
    b->grace_until = brk_after(b->now, grace);
    if (brk_budget_open(b) != 0) return -ENOMEM; /* the model budget (model_budget.c) */
    if (brk_outq_init(b) || brk_clients_init(b) || brk_workers_init(b) || brk_agents_init(b) ||
        brk_jobs_init(b)) {
        base_log(BASE_LOG_ERROR, "init_failed", "error=\"out of memory\"");
        return -ENOMEM;
    }
    if (cfg->pair) { /* the standby waits here, bound to nothing */
        int lrc = brk_lease_acquire(b);
        if (lrc) return lrc;
    }
    if (brk_sessions_open(b) != 0) return -EIO;
    if (brk_dedup_start(b) != 0) return -EIO;
    if (cfg->pair && brk_adopt_open(b) != 0) return -ENOMEM;
    b->ctx = zmq_ctx_new();
    if (!b->ctx) return -ENOMEM;
    zmq_ctx_set(b->ctx, ZMQ_IO_THREADS, (int)cfg->io_threads); /* before the first socket */
    int mrc = brk_metrics_open(b);
    if (mrc != 0) return mrc;
    int rc = brk_zap_open(b); /* the ZAP handler is bound before any CURVE socket */
    if (rc != 0) return rc;
    b->clients = open_socket(b, ZMQ_ROUTER, cfg->clients_ep, "clients", "clients");
    b->workers = open_socket(b, ZMQ_ROUTER, cfg->workers_ep, "workers", "workers");
    b->pub = open_socket(b, ZMQ_XPUB, cfg->pub_ep, "pub", "clients");
    b->sub = open_socket(b, ZMQ_SUB, cfg->sub_ep, "sub", "clients");
    if (!b->clients || !b->workers || !b->pub || !b->sub) return -EADDRINUSE;
    int src = brk_subs_open(b);
    if (src != 0) return src;
    return brk_gone_open(b);
}

typedef struct ctx_term {
    void *ctx;        /* the context to terminate */
    atomic_bool done; /* zmq_ctx_term returned */
} ctx_term_t;

static void *run_ctx_term(void *arg) {
    ctx_term_t *t = arg;
    zmq_ctx_term(t->ctx);
    atomic_store(&t->done, true);
    return NULL;
}

/* zmq_ctx_term flushes what the sockets' linger allows, but it has been seen to hang after
 * that (a peer gone mid-message, under ASan): the exit must stay bounded, so it runs on a
 * thread given limit_ms, and past that the process leaves without it (logged). */
static void term_context(void *ctx, int limit_ms) {
    static ctx_term_t t; /* static: a thread left behind may still use it at exit */
    t.ctx = ctx;
    atomic_store(&t.done, false);
    pthread_t th;
    if (pthread_create(&th, NULL, run_ctx_term, &t) != 0) {
        zmq_ctx_term(ctx);
        return;
    }
    for (int waited = 0; waited < limit_ms && !atomic_load(&t.done); waited += 10)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    if (atomic_load(&t.done)) {
        pthread_join(th, NULL);
    } else {
        base_log(BASE_LOG_WARN, "context_term_timeout", "limit_ms=%d", limit_ms);
        pthread_detach(th);
    }
}

void brk_close(brk_t *b) {
    brk_budget_close(b);
    brk_jobs_close(b);
    brk_clients_close(b);
    brk_workers_close(b);
    brk_agents_close(b);
    int linger = 2000; /* long enough to flush the last answers and disconnects */
    void *socks[4] = {b->clients, b->workers, b->pub, b->sub};
    brk_gone_stop(b); /* before the client socket closes and lingers */
    brk_subs_stop(b);
    for (int i = 0; i < 4; i++) {
        if (!socks[i]) continue;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(socks[i]);
    }
    brk_gone_close(b); /* after the clients: it frees only its own records */
    brk_subs_close(b);
    brk_metrics_close_socket(b);
    brk_zap_close(b); /* after the clients that held key references */
    if (b->ctx) term_context(b->ctx, linger + 1000);
    brk_outq_close(b); /* after the context: its I/O threads give the last bytes back */
    proto_buf_free(&b->out);
    proto_buf_free(&b->busbuf);
    brk_sessions_close(b);
    brk_dedup_close(&b->dedup);
    brk_adopt_close(b);
    brk_lease_close(b); /* last: the standby takes over once the store is written */
    brk_tasks_close(b);
    brk_metrics_close(b);
}
