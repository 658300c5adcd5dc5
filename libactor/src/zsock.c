/* zsock.c: ZeroMQ sockets on the loop. ZMQ_FD is edge-triggered: it signals that libzmq has
 * commands to process, not that a message is ready, and any libzmq call on the socket may
 * consume that signal. So every recv and send tries the socket first, re-reads ZMQ_EVENTS
 * afterwards, and hands the turn to the next parked task while the socket stays ready; the
 * uv_poll callback (running only while some task waits) does the same when the fd fires. */
#include <string.h>

#include "actor/zsock.h"
#include "internal.h"

/* Calls that completed one after the other without parking before one yields to the other
 * tasks: a task draining a busy socket must not hold the loop (the per-pass cap). */
#define STREAK_CAP 64

struct act_zsock {
    void *sock;         /* the caller's zmq socket */
    uv_poll_t poll;     /* on ZMQ_FD, started only while someone waits */
    uv_prepare_t prep;  /* the deferred kick, just before the loop polls */
    act__list readers;  /* parked act_zsock_recv calls, FIFO */
    act__list writers;  /* parked act_zsock_send calls, FIFO */
    bool polling;       /* poll started */
    bool closed;        /* act_zsock_destroy was called */
    bool stale;         /* an op may have consumed the fd's signal: kick before polling */
    unsigned handles;   /* libuv handles not yet closed */
    unsigned users;     /* tasks inside a call */
    unsigned streak;    /* calls done without parking, since the last yield */
};

static int zmq_code(int e) {
    switch (e) {
    case EAGAIN: return ACT_EAGAIN;
    case ETERM:
    case ENOTSOCK: return ACT_ECLOSED;
    case EHOSTUNREACH: return ACT_EHOSTUNREACH;
    case ENOMEM: return ACT_ENOMEM;
    case EFSM:
    case ENOTSUP:
    case EINVAL: return ACT_EINVAL;
    default: return ACT_EIO;
    }
}

static void maybe_free(act_zsock_t *z) {
    if (z->closed && z->handles == 0 && z->users == 0) free(z);
}

static void on_handle_closed(uv_handle_t *h) {
    act_zsock_t *z = h->data;
    z->handles--;
    maybe_free(z);
}

static void on_poll(uv_poll_t *h, int status, int events);
static void fail_all(act_zsock_t *z, int code);

/* Polls the fd only while a task waits: an idle socket costs no wakeups. */
/* The poll starts when a task first waits and then stays on until the socket is closed:
 * starting and stopping it around every wait cost two epoll_ctl(2) per message on a busy
 * socket. A signal nobody waits for only costs one ZMQ_EVENTS read in kick(). */
static void update_poll(act_zsock_t *z) {
    bool want = !z->closed &&
                (z->polling || !act__list_empty(&z->readers) || !act__list_empty(&z->writers));
    if (want == z->polling) return;
    if (want) {
        if (uv_poll_start(&z->poll, UV_READABLE, on_poll) != 0) {
            fail_all(z, ACT_EIO); /* nothing would ever wake them */
            return;
        }
    } else {
        uv_poll_stop(&z->poll);
    }
    z->polling = want;
}

static void fail_all(act_zsock_t *z, int code) {
    act__list_fire_all(&z->readers, code);
    act__list_fire_all(&z->writers, code);
    update_poll(z);
}

/* Re-reads ZMQ_EVENTS (which also clears the fd's signal) and wakes the first parked reader
 * and writer if the socket is ready for them. Each woken task tries once and passes the turn
 * on, so one edge of the fd serves every waiter it can. */
static void kick(act_zsock_t *z) {
    if (z->closed) return;
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &ev, &len) != 0) {
        fail_all(z, zmq_code(errno));
        return;
    }
    if (ev & ZMQ_POLLIN) act__list_fire_first(&z->readers, 0);
    if (ev & ZMQ_POLLOUT) act__list_fire_first(&z->writers, 0);
    update_poll(z);
}

/* Runs before the loop polls for I/O. The ops since the last look may have consumed the fd's
 * signal while tasks were parked: one ZMQ_EVENTS read now covers all of them (each read
 * costs a poll(2) and a getpid(2) inside libzmq). If it woke a task the poll must not block. */
static void on_prepare(uv_prepare_t *h) {
    act_zsock_t *z = h->data;
    if (!z->stale) return;
    z->stale = false;
    size_t before = act__tls_loop->runq_len;
    kick(z);
    if (act__tls_loop->runq_len != before) uv_stop(h->loop);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)events;
    act_zsock_t *z = h->data;
    if (status < 0) fail_all(z, ACT_EIO);
    else kick(z);
}

int act_zsock_new(act_zsock_t **out, void *zmq_socket) {
    act_loop_t *L = act__tls_loop;
    if (!L || !zmq_socket || !out) return ACT_EINVAL;
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(zmq_socket, ZMQ_FD, &fd, &len) != 0) return ACT_EINVAL;
    act_zsock_t *z = calloc(1, sizeof(*z));
    if (!z) return ACT_ENOMEM;
    if (uv_poll_init(act_loop_uv(L), &z->poll, fd) != 0) {
        free(z);
        return ACT_EINVAL;
    }
    uv_prepare_init(act_loop_uv(L), &z->prep);
    uv_prepare_start(&z->prep, on_prepare);
    uv_unref((uv_handle_t *)&z->prep);
    z->handles = 2;
    z->sock = zmq_socket;
    z->poll.data = z;
    z->prep.data = z;
    act__list_init(&z->readers);
    act__list_init(&z->writers);
    *out = z;
    return 0;
}

void act_zsock_destroy(act_zsock_t **zp) {
    if (!zp || !*zp) return;
    act_zsock_t *z = *zp;
    *zp = NULL;
    z->closed = true;
    act__list_fire_all(&z->readers, ACT_ECLOSED);
    act__list_fire_all(&z->writers, ACT_ECLOSED);
    uv_close((uv_handle_t *)&z->poll, on_handle_closed);
    uv_close((uv_handle_t *)&z->prep, on_handle_closed);
}

void *act_zsock_socket(const act_zsock_t *z) { return z->sock; }

void act_zsock_close_parts(zmq_msg_t *parts, size_t n) {
    for (size_t i = 0; i < n; i++) zmq_msg_close(&parts[i]);
}

/* ---- one attempt without waiting ---- */

/* Reads every part of the next message; parts beyond max are read and dropped so the next
 * message starts clean. Returns 0, ACT_EAGAIN (nothing ready) or an error. */
static int try_recv(act_zsock_t *z, zmq_msg_t *parts, size_t max, size_t *n_out) {
    size_t n = 0;
    int more = 1;
    zmq_msg_t extra;
    while (more) {
        zmq_msg_t *m = n < max ? &parts[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, z->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(m);
            act_zsock_close_parts(parts, n < max ? n : max);
            if (e == EAGAIN && n > 0) return ACT_EIO; /* a message arrives whole or not */
            errno = e;
            return zmq_code(e);
        }
        more = zmq_msg_more(m);
        if (n >= max) zmq_msg_close(m);
        n++;
    }
    if (n > max) {
        act_zsock_close_parts(parts, max);
        return ACT_EMSGSIZE;
    }
    *n_out = n;
    return 0;
}

/* Sends every part; only the first can meet a full high-water mark (libzmq counts whole
 * messages), so EAGAIN later means the message was dropped. */
static int try_send(act_zsock_t *z, zmq_msg_t *parts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&parts[i], z->sock, flags) < 0) {
            int e = errno;
            if (e == EAGAIN && i > 0) return ACT_EIO;
            return zmq_code(e);
        }
    }
    return 0;
}

/* ---- the blocking calls ---- */

typedef struct op {
    bool is_send;     /* which list it waits in */
    zmq_msg_t *parts; /* the caller's parts */
    size_t n;         /* send: parts to send; recv: room */
    size_t *n_out;    /* recv: parts received */
} op;

static int attempt(act_zsock_t *z, op *o) {
    return o->is_send ? try_send(z, o->parts, o->n) : try_recv(z, o->parts, o->n, o->n_out);
}

/* Yields once every STREAK_CAP calls that did not park. */
static int take_turn(act_zsock_t *z) {
    if (++z->streak < STREAK_CAP) return 0;
    z->streak = 0;
    return act_yield();
}

/* Tries when no earlier caller waits (or when handed the turn), else parks in FIFO order.
 * A task woken with the turn that still finds nothing goes back to the front. */
static int run_op(act_zsock_t *z, op *o, int64_t deadline) {
    act__list *list = o->is_send ? &z->writers : &z->readers;
    bool front = false;
    for (;;) {
        if (z->closed) return ACT_ECLOSED;
        if (front || act__list_empty(list)) {
            int rc = attempt(z, o);
            if (rc != ACT_EAGAIN) {
                /* The call may have consumed the fd's signal: parked tasks need a fresh look
                 * at ZMQ_EVENTS, taken once before the loop next polls (on_prepare). With
                 * none parked it is skipped: a task that parks later tries first anyway. */
                if (!act__list_empty(&z->readers) || !act__list_empty(&z->writers))
                    z->stale = true;
                return rc;
            }
        }
        act__waiter w;
        act__clause c;
        int rc = act__wait_enter(&w, o->is_send ? "zsock send" : "zsock recv", z);
        if (rc) return rc;
        act__clause_init(&c, &w, 0);
        if (front) act__list_push_front(list, &c.link);
        else act__list_push(list, &c.link);
        update_poll(z);
        z->streak = 0;
        rc = act__wait(&w, &c, 1, deadline);
        if (!z->closed) update_poll(z);
        if (rc < 0) return z->closed ? ACT_ECLOSED : rc;
        front = true;
    }
}

static int enter(act_zsock_t *z, op *o, int64_t deadline) {
    /* Only the check: a waiter is set up (and zeroed) in run_op if the call parks. */
    int rc = act__wait_check();
    if (rc) return rc;
    if (z->closed) return ACT_ECLOSED;
    z->users++;
    rc = take_turn(z);
    if (rc == 0) rc = run_op(z, o, deadline);
    z->users--;
    maybe_free(z);
    return rc;
}

int act_zsock_recv(act_zsock_t *z, zmq_msg_t *parts, size_t max_parts, size_t *n_parts,
                   int64_t deadline) {
    if (!z || !parts || !max_parts || !n_parts) return ACT_EINVAL;
    *n_parts = 0;
    op o = {.is_send = false, .parts = parts, .n = max_parts, .n_out = n_parts};
    return enter(z, &o, deadline);
}

int act_zsock_send(act_zsock_t *z, zmq_msg_t *parts, size_t n, int64_t deadline) {
    if (!z || !parts || !n) return ACT_EINVAL;
    op o = {.is_send = true, .parts = parts, .n = n};
    return enter(z, &o, deadline);
}

int act_zsock_send_frames(act_zsock_t *z, const act_zframe_t *frames, size_t n,
                          int64_t deadline) {
    if (!z || !frames || !n || n > 64) return ACT_EINVAL;
    zmq_msg_t parts[64];
    for (size_t i = 0; i < n; i++) {
        if (zmq_msg_init_size(&parts[i], frames[i].n) != 0) {
            act_zsock_close_parts(parts, i);
            return ACT_ENOMEM;
        }
        if (frames[i].n) memcpy(zmq_msg_data(&parts[i]), frames[i].p, frames[i].n);
    }
    int rc = act_zsock_send(z, parts, n, deadline);
    act_zsock_close_parts(parts, n);
    return rc;
}

int act_zsock_try_send_frame(act_zsock_t *z, const void *p, size_t n) {
    if (!z || (!p && n)) return ACT_EINVAL;
    if (z->closed) return ACT_ECLOSED;
    if (!act__list_empty(&z->writers)) return ACT_EAGAIN; /* keep arrival order */
    int rc = zmq_send(z->sock, p, n, ZMQ_DONTWAIT) < 0 ? zmq_code(errno) : 0;
    /* As in run_op: the call may have consumed the fd's signal a parked reader waits for. */
    if (!act__list_empty(&z->readers)) z->stale = true;
    return rc;
}
