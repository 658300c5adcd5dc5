/* bench/broker/loadgen.c: the request/reply load generator of bench/broker. Keeps --inflight
 * echo queries outstanding, over ZeroMQ (one DEALER to a broker or a proxy) or NATS (requests
 * to the queue group of bench/broker/natsecho.c), and prints one JSON line: queries done, q/s
 * and the round-trip p50/p99 (meaningful with --inflight 1). Bounded by --count and
 * --seconds; 5 s without a reply fails the run. */
#include <errno.h>
#include <unistd.h>

#include <zmq.h>
#ifdef HAVE_NATS
#include <nats/nats.h>
#endif

#include "benchutil.h"

#define SILENCE_MS 5000

typedef struct conn {
    const char *want_type; /* "result" from a broker, "query" from a plain echo */
    void *ctx, *sock;      /* ZeroMQ */
#ifdef HAVE_NATS
    natsConnection *nc;
    natsSubscription *sub;
    char inbox[64];
#endif
    uint8_t buf[4096];
} conn;

typedef struct opts {
    const char *transport, *endpoint, *mode;
    long inflight, count, warmup;
    double seconds;
    bool sync, asap;
    const char *routing_id; /* --routing-id: explicit, so the broker remembers each answer */
} opts;

static void zmq_open(conn *c, const opts *o) {
    c->ctx = zmq_ctx_new();
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (o->routing_id) zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, o->routing_id,
                                      strlen(o->routing_id));
    if (!c->sock || zmq_connect(c->sock, o->endpoint) != 0)
        bench_die("connect %s: %s", o->endpoint, zmq_strerror(errno));
}

#ifdef HAVE_NATS
static void nats_open(conn *c, const opts *o) {
    natsOptions *no;
    if (natsOptions_Create(&no) != NATS_OK || natsOptions_SetURL(no, o->endpoint) != NATS_OK)
        bench_die("nats options");
    /* --asap: write each request at once instead of through libnats' flusher thread. */
    if (o->asap) natsOptions_SetSendAsap(no, true);
    if (natsConnection_Connect(&c->nc, no) != NATS_OK) bench_die("connect %s", o->endpoint);
    natsOptions_Destroy(no);
    snprintf(c->inbox, sizeof c->inbox, "bench.reply.%d", (int)getpid());
    if (natsConnection_SubscribeSync(&c->sub, c->nc, c->inbox) != NATS_OK ||
        natsSubscription_SetPendingLimits(c->sub, -1, -1) != NATS_OK ||
        natsConnection_Flush(c->nc) != NATS_OK)
        bench_die("subscribe %s", c->inbox);
}
#endif

static void conn_send(conn *c, uint32_t id) {
    uint8_t q[BENCH_QUERY_MAX];
    size_t n = bench_query(q, id);
#ifdef HAVE_NATS
    if (c->nc) {
        if (natsConnection_PublishRequest(c->nc, "bench.echo", c->inbox, q, (int)n) != NATS_OK)
            bench_die("nats publish");
        return;
    }
#endif
    if (zmq_send(c->sock, q, n, 0) != (int)n) bench_die("send: %s", zmq_strerror(errno));
}

/* Receives one reply and returns its id; fails after SILENCE_MS or on a wrong reply. */
static uint64_t conn_recv(conn *c) {
    const uint8_t *p = c->buf;
    size_t n = 0;
#ifdef HAVE_NATS
    natsMsg *m = NULL;
    if (c->nc) {
        if (natsSubscription_NextMsg(&m, c->sub, SILENCE_MS) != NATS_OK)
            bench_die("no reply within %d ms", SILENCE_MS);
        p = (const uint8_t *)natsMsg_GetData(m);
        n = (size_t)natsMsg_GetDataLength(m);
    }
#endif
    if (c->sock) {
        int r = zmq_recv(c->sock, c->buf, sizeof c->buf, ZMQ_DONTWAIT);
        if (r < 0 && errno == EAGAIN) { /* poll only when nothing is waiting */
            zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, SILENCE_MS) != 1) bench_die("no reply within %d ms", SILENCE_MS);
            r = zmq_recv(c->sock, c->buf, sizeof c->buf, 0);
        }
        if (r < 0 || (size_t)r > sizeof c->buf) bench_die("recv: bad frame (%d)", r);
        n = (size_t)r;
    }
    uint64_t id = 0;
    bool ok = bench_check_reply(p, n, c->want_type, &id);
#ifdef HAVE_NATS
    if (m) natsMsg_Destroy(m);
#endif
    if (!ok) bench_die("unexpected reply (%zu bytes): not a %s with our id and input", n,
                       c->want_type);
    return id;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One pass: keeps `inflight` outstanding until `count` are done or `seconds` passed (then
 * only drains). Returns the number done; rtt (if given) gets each round trip in ns, which
 * is exact only with inflight 1. */
static long run_pass(conn *c, long inflight, long count, double seconds, uint32_t *next_id,
                     int64_t *rtt) {
    int64_t t0 = bench_now_ns(), stop = t0 + (int64_t)(seconds * 1e9), sent_at = 0;
    long sent = 0, done = 0;
    for (; sent < inflight && sent < count; sent++) {
        sent_at = bench_now_ns();
        conn_send(c, (*next_id)++);
    }
    while (done < sent) {
        uint64_t id = conn_recv(c);
        if (id >= *next_id) bench_die("reply for id %llu never sent", (unsigned long long)id);
        int64_t now = bench_now_ns();
        if (rtt) rtt[done] = now - sent_at;
        done++;
        if (sent < count && now < stop) {
            sent_at = now;
            conn_send(c, (*next_id)++);
            sent++;
        }
    }
    return done;
}

static void parse(int argc, char **argv, opts *o) {
    *o = (opts){"zmq", "tcp://127.0.0.1:5555", "broker", 128, 200000, 2000, 5.0, false, false,
                NULL};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = bench_opt(argc, argv, &i, "--transport"))) o->transport = v;
        else if ((v = bench_opt(argc, argv, &i, "--endpoint"))) o->endpoint = v;
        else if ((v = bench_opt(argc, argv, &i, "--mode"))) o->mode = v;
        else if ((v = bench_opt(argc, argv, &i, "--inflight")))
            o->inflight = bench_long(v, 1, 100000);
        else if ((v = bench_opt(argc, argv, &i, "--count")))
            o->count = bench_long(v, 1, 100000000);
        else if ((v = bench_opt(argc, argv, &i, "--warmup")))
            o->warmup = bench_long(v, 0, 10000000);
        else if ((v = bench_opt(argc, argv, &i, "--seconds"))) o->seconds = atof(v);
        else if (strcmp(argv[i], "--sync") == 0) o->sync = true;
        else if (strcmp(argv[i], "--asap") == 0) o->asap = true;
        else if ((v = bench_opt(argc, argv, &i, "--routing-id"))) o->routing_id = v;
        else bench_die("usage: loadgen [--transport zmq|nats] [--endpoint EP] [--mode broker|echo]"
                       " [--inflight N] [--count N] [--seconds S] [--warmup N] [--sync] [--asap]"
                       " [--routing-id ID]");
    }
    if (o->seconds <= 0 || o->seconds > 600) bench_die("--seconds must be in (0, 600]");
}

int main(int argc, char **argv) {
    static conn c;
    opts o;
    parse(argc, argv, &o);
    c.want_type = strcmp(o.mode, "echo") == 0 ? "query" : "result";
    if (strcmp(o.transport, "zmq") == 0) zmq_open(&c, &o);
#ifdef HAVE_NATS
    else if (strcmp(o.transport, "nats") == 0) nats_open(&c, &o);
#endif
    else bench_die("transport '%s' is not built in", o.transport);

    uint32_t next_id = 1;
    if (o.warmup) run_pass(&c, o.inflight, o.warmup, 30, &next_id, NULL);
    if (o.sync) { /* the driver reads the broker's CPU time now, then says go */
        printf("{\"warm\": true}\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) bench_die("no go from the driver");
    }
    int64_t *rtt = malloc(sizeof *rtt * (size_t)o.count);
    if (!rtt) bench_die("out of memory");
    int64_t t0 = bench_now_ns();
    long done = run_pass(&c, o.inflight, o.count, o.seconds, &next_id, rtt);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    qsort(rtt, (size_t)done, sizeof *rtt, cmp_i64);
    printf("{\"queries\": %ld, \"seconds\": %.4f, \"qps\": %.1f, \"inflight\": %ld, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f}\n",
           done, secs, done / secs, o.inflight, rtt[done / 2] / 1e3,
           rtt[done * 99 / 100] / 1e3);
    free(rtt);
#ifdef HAVE_NATS
    if (c.nc) {
        natsSubscription_Destroy(c.sub);
        natsConnection_Destroy(c.nc);
        nats_Close();
    }
#endif
    if (c.sock) {
        zmq_close(c.sock);
        zmq_ctx_term(c.ctx);
    }
    return 0;
}
