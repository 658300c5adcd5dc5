/* actorctl.c: the actorbus command line: query an agent and watch its events, publish and
 * subscribe on the bus, show the broker's status, cancel a query, read and delete sessions.
 * Plain C on libzmq and the proto codec (a DEALER to the client endpoint, a SUB to the bus);
 * no libactor.
 * Exit: 0 on success, 1 when the broker answered an error or did not answer, 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "base/clock.h"
#include "base/connect.h"
#include "fields.h"
#include "observe.h"
#include "proto/proto.h"

#include "curve.h"

static const char usage[] =
    "usage: actorctl [options] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  query AGENT [INPUT]   send INPUT to AGENT; print its events as they come, then the\n"
    "                        result. INPUT is JSON, or else taken as a plain string.\n"
    "                        Ctrl-C cancels the query.\n"
    "  publish TOPIC [DATA]  publish DATA (JSON, or a plain string) on the bus under TOPIC\n"
    "  subscribe [PREFIX]    print every bus message whose topic starts with PREFIX\n"
    "  status                show the broker's workers, capacity, in flight, queue, answers\n"
    "                        and rates at a glance\n"
    "  top                   status, redrawn every --interval ms until Ctrl-C (or --count N)\n"
    "  tasks WORKER          a running worker's tasks: name, state, what each waits on and\n"
    "                        for how long (the worker does not stop)\n"
    "  cancel ID             cancel the query in flight with id ID, sent by any client (give\n"
    "                        `query` an --id to know it; an id two clients use is refused)\n"
    "  session get ID        show a session: app, user, state and its newest events\n"
    "                        (--events N, default 100; --app/--user must match if given)\n"
    "  session list          list sessions in id order, a page at a time (--app, --user,\n"
    "                        --after CURSOR, --limit N; --all follows the pages to the end)\n"
    "  session delete ID     delete a session with its events and its own state\n"
    "  keygen                make a CURVE key pair: print it, or with --out PREFIX write\n"
    "                        PREFIX.key (secret, mode 0600) and PREFIX.pub (public key)\n"
    "\n"
    "Options:\n"
    "  --broker ENDPOINT     the broker's client endpoint (default tcp://127.0.0.1:5555);\n"
    "                        A,B for a broker pair: whichever is active answers\n"
    "  --pub ENDPOINT        the broker's bus endpoint (default tcp://127.0.0.1:5557)\n"
    "  --timeout MS          query: the query's timeout_ms; every command: how long to wait\n"
    "                        for the broker (default 30000; subscribe: forever)\n"
    "  --json                print each message as one line of JSON\n"
    "  --count N             subscribe: stop after N messages; top: after N frames\n"
    "  --interval MS         top: time between frames (default 1000)\n"
    "  --id ID               query, publish: the request id (default actorctl-<pid>)\n"
    "  --session ID          query: the session\n"
    "  --cancel-after MS     query: cancel the query after MS\n"
    "  --app APP, --user U   session get, list: only this app / user\n"
    "  --events N            session get: how many of the newest events (0: none)\n"
    "  --after CURSOR        session list: start after this session id (a page's `next`)\n"
    "  --limit N             session list: sessions per page (default 100, at most 1000)\n"
    "  --all                 session list: every page\n"
    "  --curve-server-key K  the broker's public key (FILE or Z85): talk CURVE to it\n"
    "  --curve-key FILE      own key pair file (default: a new ephemeral pair)\n"
    "  --out PREFIX          keygen: write PREFIX.key and PREFIX.pub\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 success, 1 an error reply or no answer, 2 bad usage.\n";

typedef struct ctl {
    const char *broker, *pub;  /* endpoints */
    int64_t timeout_ms;        /* -1: not given */
    bool json;                 /* one JSON line per message */
    int64_t count;             /* subscribe: stop after; -1 none */
    const char *id, *session;  /* query options */
    int64_t cancel_after;      /* query: -1 never */
    const char *app, *user, *after; /* session options */
    int64_t events, limit;     /* session get, list: -1 not given */
    bool all;                  /* session list: every page */
    int64_t interval;          /* top: ms between frames */
    char default_id[64];
    void *zctx;
    proto_limits_t lim;
    ctl_curve_t curve;         /* --curve-server-key, --curve-key */
    const char *out;           /* keygen --out */
} ctl_t;

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ---- small helpers ---- */

static int usage_error(const char *fmt, const char *a) {
    fprintf(stderr, "actorctl: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\nTry 'actorctl --help'.\n");
    return 2;
}

/* Checks the argument count of a command: between lo and hi after the command word. */
static int args(const char *cmd, int n, int lo, int hi, const char *shape) {
    if (n >= lo && n <= hi) return 0;
    fprintf(stderr, "actorctl: %s %s: usage: actorctl %s %s\nTry 'actorctl --help'.\n", cmd,
            n < lo ? "needs more arguments" : "has too many arguments", cmd, shape);
    return 2;
}

static int number(const char *flag, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo) {
        fprintf(stderr, "actorctl: %s wants an integer >= %lld, got '%s'\n", flag,
                (long long)lo, s);
        return 2;
    }
    *out = v;
    return 0;
}

/* JSON text, or else the text as a msgpack string. */
static void value_of(const char *text, proto_buf_t *out) {
    if (proto_json_to_msgpack(text, strlen(text), out, NULL) != 0) proto_pack_cstr(out, text);
}

/* Prints a msgpack value as JSON (with a prefix) on f. */
static void print_json(FILE *f, const char *prefix, proto_raw_t v) {
    proto_buf_t j;
    proto_buf_init(&j);
    if (v.n && proto_raw_to_json(v, &j) == 0 && !j.failed) {
        fprintf(f, "%s%.*s\n", prefix, (int)j.n, (const char *)j.p);
    } else {
        fprintf(f, "%s\"<%zu bytes that are not msgpack>\"\n", prefix, v.n);
    }
    proto_buf_free(&j);
    fflush(f);
}

/* Connects s to each endpoint of the comma-separated list (a broker pair). With more than
 * one, ZMQ_IMMEDIATE sends only on connections that are up: to the active broker, since the
 * standby binds nothing. Returns: 0, or -1 with errno. */
static void *dealer(ctl_t *c) {
    void *s = zmq_socket(c->zctx, ZMQ_DEALER);
    int linger = 200;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    /* With ZMQ_IMMEDIATE a send waits for a connection: no longer than a reply would. */
    int sndtimeo = c->timeout_ms < 0 ? 30000 : c->timeout_ms < INT32_MAX ? (int)c->timeout_ms
                                                                         : -1;
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    ctl_curve_watch(&c->curve, c->zctx, s);
    char failed[512] = "";
    errno = 0;
    int rc = ctl_curve_apply(&c->curve, s) != 0 ? (errno ? -errno : -EINVAL)
                                                : base_connect_all(s, c->broker, failed,
                                                                   sizeof failed);
    if (rc != 0) {
        fprintf(stderr, "actorctl: cannot connect to --broker '%s': %s\n",
                *failed ? failed : c->broker, zmq_strerror(-rc));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int send_buf(void *s, const proto_buf_t *b) {
    if (b->failed) return -1;
    return zmq_send(s, b->p, b->n, 0) < 0 ? -1 : 0;
}

/* Waits for one frame until the deadline (-1 never). Returns its size, -1 on timeout, -2 when
 * interrupted by a signal. The frame is in *m (initialised here) when >= 0. */
static int recv_until(void *s, zmq_msg_t *m, int64_t deadline) {
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    for (;;) {
        long wait = deadline < 0 ? -1 : (long)(deadline - base_mono_ms());
        if (deadline >= 0 && wait < 0) wait = 0;
        int n = zmq_poll(&it, 1, wait);
        if (n < 0 && errno == EINTR) return -2;
        if (n <= 0) return -1;
        zmq_msg_init(m);
        int rc = zmq_msg_recv(m, s, ZMQ_DONTWAIT);
        if (rc >= 0) return rc;
        zmq_msg_close(m);
        if (errno == EINTR) return -2;
    }
}

static int no_answer(ctl_t *c, const char *what) {
    fprintf(stderr, "actorctl: no %s from the broker at %s within %lld ms\n", what, c->broker,
            (long long)c->timeout_ms);
    ctl_curve_explain(&c->curve);
    return 1;
}

static int64_t wait_deadline(const ctl_t *c, int64_t grace) {
    return base_mono_ms() + (c->timeout_ms < 0 ? 30000 : c->timeout_ms + grace);
}

/* Prints an error reply on stderr. */
static int print_error(const proto_msg_t *m) {
    fprintf(stderr, "actorctl: error %.*s: %.*s\n", (int)m->code.n, m->code.p, (int)m->message.n,
            m->message.p);
    return 1;
}

/* Receives one reply message and decodes it. Returns 0, -1 (timeout), -2 (signal) or 1 (a
 * bad reply, reported here). */
static int next_reply(ctl_t *c, void *s, int64_t deadline, zmq_msg_t *frame, proto_msg_t *m) {
    int n = recv_until(s, frame, deadline);
    if (n < 0) return n;
    proto_error_t err;
    if (proto_decode(zmq_msg_data(frame), zmq_msg_size(frame), &c->lim, m, &err) != 0) {
        fprintf(stderr, "actorctl: the broker sent a bad reply (%s: %s)\n", err.code,
                err.message);
        zmq_msg_close(frame);
        return 1;
    }
    return 0;
}

static bool same_id(proto_raw_t a, const proto_buf_t *id) {
    return a.n == id->n && memcmp(a.p, id->p, a.n) == 0;
}

static int send_cancel(void *s, const proto_buf_t *id) {
    proto_buf_t b;
    proto_buf_init(&b);
    int rc = proto_enc_cancel_id(&b, (proto_raw_t){id->p, id->n}) == 0 ? send_buf(s, &b) : -1;
    proto_buf_free(&b);
    return rc;
}

/* ---- query ---- */

/* Acts on one reply to our query. Returns -1 to go on, else the exit status. */
static int on_query_reply(ctl_t *c, const proto_msg_t *m, const proto_buf_t *id) {
    if (!same_id(m->id, id)) return -1;
    if (c->json && (m->type == PROTO_EVENT || m->type == PROTO_RESULT ||
                    m->type == PROTO_ERROR)) {
        print_json(stdout, "", m->body);
    }
    switch (m->type) {
    case PROTO_EVENT:
        if (!c->json) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "event %llu: ", (unsigned long long)m->seq);
            print_json(stdout, prefix, m->event);
        }
        return -1;
    case PROTO_RESULT:
        if (!c->json) print_json(stdout, "", m->output);
        return 0;
    case PROTO_ERROR: return print_error(m);
    default: return -1;
    }
}

/* Waits for the query's events and its one terminal reply; a signal or --cancel-after sends
 * a cancel, and the broker's `cancelled` error then ends the wait. */
static int query_wait(ctl_t *c, void *s, const proto_buf_t *id) {
    int64_t deadline = wait_deadline(c, 2000); /* the broker's own timeout error comes first */
    int64_t cancel_at = c->cancel_after >= 0 ? base_mono_ms() + c->cancel_after : -1;
    bool cancel_sent = false;
    for (;;) {
        int64_t until = (cancel_at >= 0 && !cancel_sent && cancel_at < deadline) ? cancel_at
                                                                                 : deadline;
        zmq_msg_t f;
        proto_msg_t m;
        int r = next_reply(c, s, until, &f, &m);
        bool cancel_due = cancel_at >= 0 && base_mono_ms() >= cancel_at;
        if (r == -2 || (r == -1 && cancel_due && !cancel_sent)) {
            if (cancel_sent) return 1; /* a second Ctrl-C: stop waiting */
            interrupted = 0;
            cancel_sent = true;
            if (send_cancel(s, id) != 0) return 1;
            deadline = base_mono_ms() + 5000;
            continue;
        }
        if (r == -1) return no_answer(c, "answer");
        if (r == 1) return 1;
        int rc = on_query_reply(c, &m, id);
        zmq_msg_close(&f);
        if (rc >= 0) return rc;
    }
}

static int cmd_query(ctl_t *c, const char *agent, const char *input) {
    void *s = dealer(c);
    if (!s) return 1;
    proto_buf_t id, in, msg;
    proto_buf_init(&id);
    proto_buf_init(&in);
    proto_buf_init(&msg);
    value_of(c->id, &id);
    if (input) value_of(input, &in);
    else msgpack_pack_nil(&in.pk);
    int rc = 1;
    if (proto_enc_query(&msg, (proto_raw_t){id.p, id.n}, proto_str_of(agent),
                        (proto_raw_t){in.p, in.n}, proto_str_of(c->session), c->timeout_ms,
                        false) != 0 || send_buf(s, &msg) != 0) {
        fprintf(stderr, "actorctl: could not send the query: %s\n", zmq_strerror(errno));
    } else {
        rc = query_wait(c, s, &id);
    }
    proto_buf_free(&id);
    proto_buf_free(&in);
    proto_buf_free(&msg);
    zmq_close(s);
    return rc;
}

/* ---- one request, one reply: publish, cancel, status ---- */

static bool unpack(msgpack_unpacked *u, proto_raw_t raw) {
    return raw.n && msgpack_unpack_next(u, (const char *)raw.p, raw.n, NULL) ==
                        MSGPACK_UNPACK_SUCCESS;
}

/* Sends msg and waits for the reply to it (any type but event). Returns 0 with *f holding the
 * reply, or the exit status. */
static int request(ctl_t *c, void *s, const proto_buf_t *msg, zmq_msg_t *f, proto_msg_t *m) {
    if (send_buf(s, msg) != 0) {
        fprintf(stderr, "actorctl: could not send the request: %s\n", zmq_strerror(errno));
        return 1;
    }
    int64_t deadline = wait_deadline(c, 0);
    for (;;) {
        int r = next_reply(c, s, deadline, f, m);
        if (r == -1) return no_answer(c, "reply");
        if (r != 0) return 1;
        if (c->json) print_json(stdout, "", m->body);
        if (m->type == PROTO_ERROR) {
            zmq_msg_close(f);
            return print_error(m);
        }
        if (m->type != PROTO_EVENT) return 0;
        zmq_msg_close(f);
    }
}

static int cmd_publish(ctl_t *c, const char *topic, const char *data) {
    void *s = dealer(c);
    if (!s) return 1;
    proto_buf_t id, d, msg;
    proto_buf_init(&id);
    proto_buf_init(&d);
    proto_buf_init(&msg);
    value_of(c->id, &id);
    if (data) value_of(data, &d);
    else msgpack_pack_nil(&d.pk);
    zmq_msg_t f;
    proto_msg_t m;
    int rc = proto_enc_publish(&msg, proto_str_of(topic), (proto_raw_t){d.p, d.n},
                               (proto_raw_t){id.p, id.n});
    rc = rc ? 1 : request(c, s, &msg, &f, &m);
    if (rc == 0) zmq_msg_close(&f);
    proto_buf_free(&id);
    proto_buf_free(&d);
    proto_buf_free(&msg);
    zmq_close(s);
    return rc;
}

static int cmd_cancel(ctl_t *c, const char *qid) {
    void *s = dealer(c);
    if (!s) return 1;
    proto_buf_t id, msg;
    proto_buf_init(&id);
    proto_buf_init(&msg);
    value_of(qid, &id);
    zmq_msg_t f;
    proto_msg_t m;
    int rc = proto_enc_cancel_id(&msg, (proto_raw_t){id.p, id.n});
    rc = rc ? 1 : request(c, s, &msg, &f, &m);
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *v = unpack(&u, m.output) ? ctl_get(&u.data, "cancelled") : NULL;
        bool yes = v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
        msgpack_unpacked_destroy(&u);
        if (!c->json) printf(yes ? "cancelled %s\n" : "%s was not in flight\n", qid);
        if (!yes) {
            fprintf(stderr, "actorctl: no query '%s' is in flight\n", qid);
            rc = 1;
        }
        zmq_msg_close(&f);
    }
    proto_buf_free(&id);
    proto_buf_free(&msg);
    zmq_close(s);
    return rc;
}

/* ---- subscribe ---- */

static void print_bus(const ctl_t *c, const zmq_msg_t *topic, const zmq_msg_t *body) {
    proto_raw_t b = {zmq_msg_data((zmq_msg_t *)body), zmq_msg_size((zmq_msg_t *)body)};
    const char *t = zmq_msg_data((zmq_msg_t *)topic);
    int tn = (int)zmq_msg_size((zmq_msg_t *)topic);
    if (!c->json) {
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%.*s ", tn > 256 ? 256 : tn, t);
        print_json(stdout, prefix, b);
        return;
    }
    proto_buf_t j;
    proto_buf_init(&j);
    proto_pack_str(&j, t, (size_t)tn); /* the topic as a JSON string, escaped by proto */
    proto_buf_t tj;
    proto_buf_init(&tj);
    proto_raw_to_json((proto_raw_t){j.p, j.n}, &tj);
    char prefix[400];
    snprintf(prefix, sizeof prefix, "{\"topic\":%.*s,\"message\":", (int)tj.n, (const char *)tj.p);
    proto_buf_reset(&j);
    if (b.n && proto_raw_to_json(b, &j) == 0 && !j.failed) {
        printf("%s%.*s}\n", prefix, (int)j.n, (const char *)j.p);
    } else {
        printf("%snull,\"bytes\":%zu}\n", prefix, b.n);
    }
    fflush(stdout);
    proto_buf_free(&j);
    proto_buf_free(&tj);
}

/* Receives one bus message (two frames). Returns 1 when printed, 0 when skipped, -1 timeout,
 * -2 signal. */
static int bus_next(const ctl_t *c, void *s, int64_t deadline) {
    zmq_msg_t topic, body;
    int n = recv_until(s, &topic, deadline);
    if (n < 0) return n;
    if (!zmq_msg_more(&topic)) {
        zmq_msg_close(&topic);
        return 0;
    }
    zmq_msg_init(&body);
    zmq_msg_recv(&body, s, 0);
    bool more = zmq_msg_more(&body);
    if (!more) print_bus(c, &topic, &body);
    while (more) { /* not [topic][body]: drop the rest */
        zmq_msg_close(&body);
        zmq_msg_init(&body);
        zmq_msg_recv(&body, s, 0);
        more = zmq_msg_more(&body);
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    return 1;
}

static int cmd_subscribe(ctl_t *c, const char *prefix) {
    void *s = zmq_socket(c->zctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    if (ctl_curve_apply(&c->curve, s) != 0 || zmq_connect(s, c->pub) != 0) {
        fprintf(stderr, "actorctl: cannot connect to --pub '%s': %s\n", c->pub,
                zmq_strerror(errno));
        zmq_close(s);
        return 1;
    }
    fprintf(stderr, "actorctl: subscribed to '%s' on %s\n", prefix, c->pub);
    int64_t deadline = c->timeout_ms < 0 ? -1 : base_mono_ms() + c->timeout_ms;
    int64_t got = 0;
    int r = 0;
    while (c->count < 0 || got < c->count) {
        if ((r = bus_next(c, s, deadline)) < 0) break;
        got += r;
    }
    zmq_close(s);
    if (r == -1 && c->count >= 0) {
        fprintf(stderr, "actorctl: %lld of %lld messages within %lld ms\n", (long long)got,
                (long long)c->count, (long long)c->timeout_ms);
        return 1;
    }
    return 0;
}

/* ---- session get, list, delete ---- */

/* Unix ms as ISO 8601 UTC. Returns: buf. */
static const char *iso(char *buf, size_t cap, long long ms) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(buf, cap, "%lld", ms);
        return buf;
    }
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, ".%03lldZ", ms % 1000);
    return buf;
}

/* Prints a msgpack object as JSON (with a prefix), through the codec's JSON writer. */
static void print_object(const char *prefix, const msgpack_object *o) {
    proto_buf_t b;
    proto_buf_init(&b);
    if (o) msgpack_pack_object(&b.pk, *o);
    else msgpack_pack_nil(&b.pk);
    print_json(stdout, prefix, (proto_raw_t){b.p, b.n});
    proto_buf_free(&b);
}

static int print_session(proto_raw_t output) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (!unpack(&u, output) || u.data.type != MSGPACK_OBJECT_MAP) {
        fprintf(stderr, "actorctl: the broker sent a session that is not a map\n");
        msgpack_unpacked_destroy(&u);
        return 1;
    }
    const msgpack_object *s = &u.data, *evs = ctl_get(s, "events");
    uint32_t n = evs && evs->type == MSGPACK_OBJECT_ARRAY ? evs->via.array.size : 0;
    char t1[40], t2[40];
    printf("session %.*s  app %.*s  user %.*s  events %lld (showing %u)\n"
           "created %s  updated %s\n",
           ctl_slen(ctl_get(s, "session"), INT_MAX), ctl_sptr(ctl_get(s, "session")),
           ctl_slen(ctl_get(s, "app"), INT_MAX), ctl_sptr(ctl_get(s, "app")),
           ctl_slen(ctl_get(s, "user"), INT_MAX), ctl_sptr(ctl_get(s, "user")),
           ctl_num(s, "events_total"), n, iso(t1, sizeof t1, ctl_num(s, "created_ms")),
           iso(t2, sizeof t2, ctl_num(s, "updated_ms")));
    print_object("state ", ctl_get(s, "state"));
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &evs->via.array.ptr[i], *author = ctl_get(e, "author");
        char prefix[200];
        snprintf(prefix, sizeof prefix, "#%lld %s %.*s: ", ctl_num(e, "seq"),
                 iso(t1, sizeof t1, ctl_num(e, "ts_ms")), ctl_slen(author, 64),
                 ctl_sptr(author));
        print_object(prefix, ctl_get(e, "event"));
    }
    msgpack_unpacked_destroy(&u);
    return 0;
}

/* Prints one page as table rows (the header first when first) unless quiet; sets next (the
 * cursor) or clears it. Returns: the exit status. */
static int print_page(proto_raw_t output, bool first, bool quiet, char *next, size_t cap) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    next[0] = '\0';
    const msgpack_object *rows = unpack(&u, output) ? ctl_get(&u.data, "sessions") : NULL;
    if (!rows || rows->type != MSGPACK_OBJECT_ARRAY) {
        fprintf(stderr, "actorctl: the broker sent a session list without 'sessions'\n");
        msgpack_unpacked_destroy(&u);
        return 1;
    }
    if (first && !quiet)
        printf("%-32s %-16s %-16s %8s  %s\n", "SESSION", "APP", "USER", "EVENTS", "UPDATED");
    for (uint32_t i = 0; i < rows->via.array.size && !quiet; i++) {
        const msgpack_object *r = &rows->via.array.ptr[i];
        char t[40];
        printf("%-32.*s %-16.*s %-16.*s %8lld  %s\n", ctl_slen(ctl_get(r, "session"), INT_MAX),
               ctl_sptr(ctl_get(r, "session")), ctl_slen(ctl_get(r, "app"), INT_MAX),
               ctl_sptr(ctl_get(r, "app")), ctl_slen(ctl_get(r, "user"), INT_MAX),
               ctl_sptr(ctl_get(r, "user")), ctl_num(r, "events"),
               iso(t, sizeof t, ctl_num(r, "updated_ms")));
    }
    const msgpack_object *nx = ctl_get(&u.data, "next");
    if (nx && nx->type == MSGPACK_OBJECT_STR && nx->via.str.size < cap)
        snprintf(next, cap, "%.*s", (int)nx->via.str.size, nx->via.str.ptr);
    msgpack_unpacked_destroy(&u);
    return 0;
}

/* Sends one session request (already encoded in msg) and checks the answer is a result.
 * Returns: 0 with *f holding it, or the exit status. */
static int session_request(ctl_t *c, void *s, const proto_buf_t *msg, zmq_msg_t *f,
                           proto_msg_t *m) {
    int rc = request(c, s, msg, f, m);
    if (rc == 0 && m->type != PROTO_RESULT) {
        fprintf(stderr, "actorctl: the broker answered with '%s'\n", proto_type_name(m->type));
        zmq_msg_close(f);
        rc = 1;
    }
    return rc;
}

static int session_list(ctl_t *c, void *s, proto_raw_t id) {
    proto_buf_t msg;
    proto_buf_init(&msg);
    char next[1024] = "";
    snprintf(next, sizeof next, "%s", c->after ? c->after : "");
    int rc = 0;
    for (bool first = true; rc == 0; first = false) {
        zmq_msg_t f;
        proto_msg_t m;
        rc = proto_enc_session_list(&msg, id, proto_str_of(c->app), proto_str_of(c->user),
                                    proto_str_of(next), c->limit > 0 ? (uint64_t)c->limit : 0);
        if (rc || (rc = session_request(c, s, &msg, &f, &m))) break;
        rc = print_page(m.output, first, c->json, next, sizeof next);
        zmq_msg_close(&f);
        if (!next[0]) break;
        if (!c->all) {
            if (!c->json) fprintf(stderr, "more: actorctl session list --after %s\n", next);
            break;
        }
    }
    proto_buf_free(&msg);
    return rc ? 1 : 0;
}

static int session_get_delete(ctl_t *c, void *s, proto_raw_t id, bool del, const char *sid) {
    proto_buf_t msg;
    proto_buf_init(&msg);
    zmq_msg_t f;
    proto_msg_t m;
    int rc = del ? proto_enc_session_delete(&msg, id, proto_str_of(sid))
                 : proto_enc_session_get(&msg, id, proto_str_of(sid), proto_str_of(c->app),
                                         proto_str_of(c->user), c->events);
    rc = rc ? 1 : session_request(c, s, &msg, &f, &m);
    bool have_reply = rc == 0;
    if (rc == 0 && !del && !c->json) rc = print_session(m.output);
    if (rc == 0 && del) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *v = unpack(&u, m.output) ? ctl_get(&u.data, "deleted") : NULL;
        bool yes = v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
        msgpack_unpacked_destroy(&u);
        if (yes && !c->json) printf("deleted %s\n", sid);
        if (!yes) {
            fprintf(stderr, "actorctl: no session '%s'\n", sid);
            rc = 1;
        }
    }
    if (have_reply) zmq_msg_close(&f);
    proto_buf_free(&msg);
    return rc;
}

static int cmd_session(ctl_t *c, int n, char **a) {
    int rc;
    if (n < 1) return usage_error("session needs get, list or delete%s", "");
    bool get_ = !strcmp(a[0], "get"), del = !strcmp(a[0], "delete"), list = !strcmp(a[0], "list");
    if (!get_ && !del && !list) return usage_error("unknown session command '%s'", a[0]);
    if ((rc = args(list ? "session list" : get_ ? "session get" : "session delete", n - 1,
                   list ? 0 : 1, list ? 0 : 1, list ? "" : "ID")))
        return rc;
    void *s = dealer(c);
    if (!s) return 1;
    proto_buf_t id;
    proto_buf_init(&id);
    value_of(c->id, &id);
    proto_raw_t rid = {id.p, id.n};
    rc = list ? session_list(c, s, rid) : session_get_delete(c, s, rid, del, a[1]);
    proto_buf_free(&id);
    zmq_close(s);
    return rc;
}

/* ---- main ---- */

static int parse(int argc, char **argv, ctl_t *c) {
    static const struct option longs[] = {
        {"broker", 1, 0, 'b'}, {"pub", 1, 0, 'p'},     {"timeout", 1, 0, 't'},
        {"json", 0, 0, 'j'},   {"count", 1, 0, 'n'},   {"id", 1, 0, 'i'},
        {"session", 1, 0, 's'}, {"cancel-after", 1, 0, 'C'}, {"help", 0, 0, 'h'},
        {"app", 1, 0, 'A'},    {"user", 1, 0, 'U'},    {"events", 1, 0, 'E'},
        {"after", 1, 0, 'a'},  {"limit", 1, 0, 'L'},   {"all", 0, 0, 'l'},
        {"interval", 1, 0, 'I'},
        {"curve-server-key", 1, 0, 'K'}, {"curve-key", 1, 0, 'k'}, {"out", 1, 0, 'o'},
        {0, 0, 0, 0}};
    int ch, rc = 0;
    opterr = 0;
    while (rc == 0 && (ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'b': c->broker = optarg; break;
        case 'p': c->pub = optarg; break;
        case 't': rc = number("--timeout", optarg, 0, &c->timeout_ms); break;
        case 'j': c->json = true; break;
        case 'n': rc = number("--count", optarg, 1, &c->count); break;
        case 'i': c->id = optarg; break;
        case 's': c->session = optarg; break;
        case 'C': rc = number("--cancel-after", optarg, 0, &c->cancel_after); break;
        case 'A': c->app = optarg; break;
        case 'U': c->user = optarg; break;
        case 'E': rc = number("--events", optarg, 0, &c->events); break;
        case 'a': c->after = optarg; break;
        case 'L': rc = number("--limit", optarg, 1, &c->limit); break;
        case 'l': c->all = true; break;
        case 'I': rc = number("--interval", optarg, 10, &c->interval); break;
        case 'K': c->curve.server_arg = optarg; break;
        case 'k': c->curve.key_file = optarg; break;
        case 'o': c->out = optarg; break;
        case 'h': fputs(usage, stdout); return -1;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    return rc;
}

static void *open_dealer(void *c) { return dealer(c); }
static void explain(void *c) { ctl_curve_explain(&((ctl_t *)c)->curve); }

/* What observe.c needs of the options; its socket comes from dealer(), like every command's. */
static ctl_obs_t observer(ctl_t *c) {
    ctl_obs_t o = {.broker = c->broker, .json = c->json, .timeout_ms = c->timeout_ms,
                   .count = c->count, .interval_ms = c->interval, .id = c->id,
                   .open = open_dealer, .open_ctx = c, .interrupted = &interrupted,
                   .lim = c->lim, .no_answer = explain};
    return o;
}

static int dispatch(ctl_t *c, int n, char **a) {
    const char *cmd = a[0];
    int rc;
    if (strcmp(cmd, "query") == 0) {
        if ((rc = args(cmd, n - 1, 1, 2, "AGENT [INPUT]"))) return rc;
        return cmd_query(c, a[1], n > 2 ? a[2] : NULL);
    }
    if (strcmp(cmd, "publish") == 0) {
        if ((rc = args(cmd, n - 1, 1, 2, "TOPIC [DATA]"))) return rc;
        return cmd_publish(c, a[1], n > 2 ? a[2] : NULL);
    }
    if (strcmp(cmd, "subscribe") == 0) {
        if ((rc = args(cmd, n - 1, 0, 1, "[PREFIX]"))) return rc;
        return cmd_subscribe(c, n > 1 ? a[1] : "");
    }
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "top") == 0) {
        if ((rc = args(cmd, n - 1, 0, 0, ""))) return rc;
        ctl_obs_t o = observer(c);
        return cmd[0] == 's' ? ctl_status(&o) : ctl_top(&o);
    }
    if (strcmp(cmd, "tasks") == 0) {
        if ((rc = args(cmd, n - 1, 1, 1, "WORKER"))) return rc;
        ctl_obs_t o = observer(c);
        return ctl_tasks(&o, a[1]);
    }
    if (strcmp(cmd, "cancel") == 0) {
        if ((rc = args(cmd, n - 1, 1, 1, "ID"))) return rc;
        return cmd_cancel(c, a[1]);
    }
    if (strcmp(cmd, "session") == 0) return cmd_session(c, n - 1, a + 1);
    if (strcmp(cmd, "keygen") == 0) {
        if ((rc = args(cmd, n - 1, 0, 0, "[--out PREFIX]"))) return rc;
        return ctl_keygen(c->out);
    }
    return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv) {
    ctl_t c = {.broker = "tcp://127.0.0.1:5555", .pub = "tcp://127.0.0.1:5557",
               .timeout_ms = -1, .count = -1, .cancel_after = -1, .events = -1, .limit = -1,
               .interval = 1000};
    snprintf(c.default_id, sizeof c.default_id, "actorctl-%d", (int)getpid());
    c.id = c.default_id;
    int rc = parse(argc, argv, &c);
    if (rc) return rc < 0 ? 0 : rc;
    if (optind >= argc) return usage_error("no command given%s", "");
    if (strcmp(argv[optind], "keygen") != 0 && (rc = ctl_curve_setup(&c.curve)) != 0) return rc;
    proto_limits_default(&c.lim);
    c.lim.max_size = (size_t)256 << 20; /* the broker already enforced its limit */
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: zmq_poll sees EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    c.zctx = zmq_ctx_new();
    rc = dispatch(&c, argc - optind, argv + optind);
    ctl_curve_close(&c.curve);
    zmq_ctx_term(c.zctx);
    return rc;
}
