/* bench/broker/pubsub.c: the pub/sub fan-out row of bench/broker. One publisher, --subscribers
 * subscriber threads (each with its own socket or connection), --count messages of 64 bytes
 * on topic "bench": over ZeroMQ (PUB -> a broker's SUB/PUB or an XSUB/XPUB proxy -> SUB) or
 * NATS (publish to subject bench). Prints one JSON line: messages delivered per second
 * (summed over subscribers, from the first publish to the last delivery) and the loss.
 * Each ZeroMQ subscriber has its own context (its own I/O thread), as a subscriber in its own
 * process would, and as each NATS subscriber has its own connection thread in libnats; with
 * --shared-context all of them and the publisher share one I/O thread, which on a 2-core
 * machine decodes every delivery of the run by itself (the row before 2026-12-06). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <zmq.h>
#ifdef HAVE_NATS
#include <nats/nats.h>
#endif

#include "benchutil.h"

#define MAX_SUBS 64
#define BODY 64
#define IDLE_NS 1000000000LL   /* a subscriber stops 1 s after the last message it saw... */
#define HARD_NS 20000000000LL  /* ...or 20 s after the publisher finished */

typedef struct opts {
    const char *transport, *pub_ep, *sub_ep;
    long subs, count;
    bool shared_ctx;
} opts;

typedef struct sub {
    pthread_t th;
    atomic_bool heard; /* got a warm-up message: its subscription is live */
    long got;          /* measured messages */
    int64_t last;      /* when the last one came */
} sub;

static opts o;
static void *zctx;
static atomic_int published; /* 1 once the publisher has sent everything */
static atomic_llong t_done;

/* What a subscriber does with one message; returns false when it should stop. */
static bool on_msg(sub *s, const uint8_t *body, size_t n) {
    if (n != BODY) return true;
    if (body[0] == 'W') {
        atomic_store(&s->heard, true);
    } else if (body[0] == 'M') {
        s->got++;
        s->last = bench_now_ns();
    }
    return s->got < o.count;
}

/* True when a subscriber should give up waiting (bounded after the publisher is done). */
static bool sub_idle(sub *s) {
    if (!atomic_load(&published)) return false;
    int64_t now = bench_now_ns(), done = atomic_load(&t_done);
    return now - (s->last > done ? s->last : done) > IDLE_NS || now - done > HARD_NS;
}

static void *zmq_sub_main(void *arg) {
    sub *s = arg;
    void *ctx = o.shared_ctx ? zctx : zmq_ctx_new();
    if (!ctx) bench_die("zmq_ctx_new: %s", zmq_strerror(errno));
    void *sock = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    uint8_t body[BODY + 1];
    zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero); /* no drops here: only upstream */
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "bench", 5);
    if (zmq_connect(sock, o.sub_ep) != 0) bench_die("connect %s", o.sub_ep);
    for (;;) {
        /* Drain without blocking; poll (50 ms) only when nothing is waiting. */
        char topic[16];
        if (zmq_recv(sock, topic, sizeof topic, ZMQ_DONTWAIT) < 0) {
            zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 50) == 0 && sub_idle(s)) break;
            continue;
        }
        int more = 0;
        size_t ms = sizeof more;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ms);
        if (!more) continue;
        int n = zmq_recv(sock, body, sizeof body, 0); /* the frames of a message come together */
        if (n >= 0 && !on_msg(s, body, (size_t)n)) break;
    }
    zmq_close(sock);
    if (ctx != zctx) zmq_ctx_term(ctx);
    return NULL;
}

#ifdef HAVE_NATS
static void *nats_sub_main(void *arg) {
    sub *s = arg;
    natsConnection *nc;
    natsSubscription *ns;
    if (natsConnection_ConnectTo(&nc, o.sub_ep) != NATS_OK) bench_die("connect %s", o.sub_ep);
    if (natsConnection_SubscribeSync(&ns, nc, "bench") != NATS_OK ||
        natsSubscription_SetPendingLimits(ns, -1, -1) != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK)
        bench_die("subscribe bench");
    for (;;) {
        natsMsg *m;
        if (natsSubscription_NextMsg(&m, ns, 50) == NATS_OK) {
            bool go = on_msg(s, (const uint8_t *)natsMsg_GetData(m),
                             (size_t)natsMsg_GetDataLength(m));
            natsMsg_Destroy(m);
            if (!go) break;
        } else if (sub_idle(s)) {
            break;
        }
    }
    natsSubscription_Destroy(ns);
    natsConnection_Destroy(nc);
    return NULL;
}
#endif

/* The publisher: a PUB socket or a NATS connection behind one send function. */
typedef struct pub {
    void *sock;
#ifdef HAVE_NATS
    natsConnection *nc;
#endif
} pub;

static void pub_send(pub *p, const uint8_t *body) {
#ifdef HAVE_NATS
    if (p->nc) {
        if (natsConnection_Publish(p->nc, "bench", body, BODY) != NATS_OK)
            bench_die("nats publish");
        return;
    }
#endif
    if (zmq_send(p->sock, "bench", 5, ZMQ_SNDMORE) < 0 || zmq_send(p->sock, body, BODY, 0) < 0)
        bench_die("publish: %s", zmq_strerror(errno));
}

static void pub_open(pub *p) {
    if (strcmp(o.transport, "zmq") == 0) {
        int zero = 0;
        p->sock = zmq_socket(zctx, ZMQ_PUB);
        zmq_setsockopt(p->sock, ZMQ_SNDHWM, &zero, sizeof zero); /* queue, never drop here */
        zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(p->sock, o.pub_ep) != 0) bench_die("connect %s", o.pub_ep);
        return;
    }
#ifdef HAVE_NATS
    if (natsConnection_ConnectTo(&p->nc, o.pub_ep) != NATS_OK) bench_die("connect %s", o.pub_ep);
#endif
}

/* Sends warm-up messages until every subscriber has heard one (bounded: 10 s). */
static void warm_up(pub *p, sub *subs) {
    uint8_t body[BODY] = {'W'};
    int64_t give_up = bench_now_ns() + 10000000000LL;
    for (;;) {
        long heard = 0;
        for (long i = 0; i < o.subs; i++) heard += atomic_load(&subs[i].heard);
        if (heard == o.subs) break;
        if (bench_now_ns() > give_up)
            bench_die("only %ld of %ld subscribers joined", heard, o.subs);
        pub_send(p, body);
#ifdef HAVE_NATS
        if (p->nc) natsConnection_Flush(p->nc);
#endif
        usleep(2000);
    }
    usleep(200000); /* let the last warm-up messages drain */
}

static void parse(int argc, char **argv) {
    o = (opts){"zmq", NULL, NULL, 4, 200000, false};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = bench_opt(argc, argv, &i, "--transport"))) o.transport = v;
        else if ((v = bench_opt(argc, argv, &i, "--pub"))) o.pub_ep = v;
        else if ((v = bench_opt(argc, argv, &i, "--sub"))) o.sub_ep = v;
        else if ((v = bench_opt(argc, argv, &i, "--subscribers")))
            o.subs = bench_long(v, 1, MAX_SUBS);
        else if ((v = bench_opt(argc, argv, &i, "--count"))) o.count = bench_long(v, 1, 50000000);
        else if (strcmp(argv[i], "--shared-context") == 0) o.shared_ctx = true;
        else bench_die("usage: pubsub [--transport zmq|nats] --pub EP --sub EP "
                       "[--subscribers N] [--count N] [--shared-context]   (nats: both are the "
                       "server URL)");
    }
    if (!o.pub_ep || !o.sub_ep) bench_die("--pub and --sub are required");
    bool known = strcmp(o.transport, "zmq") == 0;
#ifdef HAVE_NATS
    known = known || strcmp(o.transport, "nats") == 0;
#endif
    if (!known) bench_die("transport '%s' is not built in", o.transport);
}

int main(int argc, char **argv) {
    static sub subs[MAX_SUBS];
    pub p = {0};
    parse(argc, argv);
    zctx = zmq_ctx_new();
    void *(*fn)(void *) = zmq_sub_main;
#ifdef HAVE_NATS
    if (strcmp(o.transport, "nats") == 0) fn = nats_sub_main;
#endif
    for (long i = 0; i < o.subs; i++)
        if (pthread_create(&subs[i].th, NULL, fn, &subs[i]) != 0) bench_die("pthread_create");
    pub_open(&p);
    warm_up(&p, subs);

    uint8_t body[BODY] = {'M'};
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < o.count; i++) {
        memcpy(body + 1, &i, sizeof i);
        pub_send(&p, body);
    }
#ifdef HAVE_NATS
    if (p.nc) natsConnection_Flush(p.nc);
#endif
    int64_t t_pub = bench_now_ns();
    atomic_store(&t_done, t_pub);
    atomic_store(&published, 1);

    long delivered = 0;
    int64_t last = t0;
    for (long i = 0; i < o.subs; i++) {
        pthread_join(subs[i].th, NULL);
        delivered += subs[i].got;
        if (subs[i].got && subs[i].last > last) last = subs[i].last;
    }
    double secs = (double)(last - t0) / 1e9, want = (double)o.count * (double)o.subs;
    printf("{\"delivered\": %ld, \"expected\": %.0f, \"loss_pct\": %.3f, \"seconds\": %.4f, "
           "\"msgs_per_s\": %.1f, \"publish_seconds\": %.4f}\n",
           delivered, want, 100.0 * (want - (double)delivered) / want, secs,
           secs > 0 ? (double)delivered / secs : 0.0, (double)(t_pub - t0) / 1e9);
    if (p.sock) zmq_close(p.sock);
#ifdef HAVE_NATS
    if (p.nc) {
        natsConnection_Destroy(p.nc);
        nats_Close();
    }
#endif
    zmq_ctx_term(zctx);
    return 0;
}
