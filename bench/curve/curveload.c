/* bench/curve/curveload.c: the load generator of bench/curve. One DEALER to actor-broker's
 * client endpoint, plaintext or CURVE (--server-key, --public, --secret as Z85 text), keeps
 * --inflight echo queries outstanding for --seconds and prints one JSON line: queries done,
 * q/s and the round-trip p50/p99 (exact with --inflight 1). 5 s without a reply fails it. */
#include <errno.h>
#include <zmq.h>

#include "../broker/benchutil.h"

#define SILENCE_MS 5000
#define MAX_QUERIES 4000000L /* round trips kept for the percentiles (32 MB) */

typedef struct opts {
    const char *endpoint, *server, *public_, *secret;
    long inflight, warmup;
    double seconds;
} opts;

static void *open_dealer(void *ctx, const opts *o) {
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    if (!s) bench_die("socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (o->server && (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, o->server, 41) ||
                      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, o->public_, 41) ||
                      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, o->secret, 41)))
        bench_die("CURVE keys: %s", zmq_strerror(errno));
    if (zmq_connect(s, o->endpoint) != 0) bench_die("connect %s: %s", o->endpoint,
                                                    zmq_strerror(errno));
    return s;
}

static void send_query(void *s, uint32_t id) {
    uint8_t q[BENCH_QUERY_MAX];
    size_t n = bench_query(q, id);
    if (zmq_send(s, q, n, 0) != (int)n) bench_die("send: %s", zmq_strerror(errno));
}

static uint64_t recv_reply(void *s) {
    uint8_t buf[4096];
    int r = zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT);
    if (r < 0 && errno == EAGAIN) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, SILENCE_MS) != 1) bench_die("no reply within %d ms", SILENCE_MS);
        r = zmq_recv(s, buf, sizeof buf, 0);
    }
    if (r < 0 || (size_t)r > sizeof buf) bench_die("recv: bad frame (%d)", r);
    uint64_t id = 0;
    if (!bench_check_reply(buf, (size_t)r, "result", &id))
        bench_die("unexpected reply (%d bytes): not a result with our id and input", r);
    return id;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Keeps inflight outstanding until count are done or seconds passed, then drains. rtt (if
 * given) gets each round trip in ns. Returns the number done. */
static long run_pass(void *s, long inflight, long count, double seconds, uint32_t *next,
                     int64_t *rtt) {
    int64_t stop = bench_now_ns() + (int64_t)(seconds * 1e9), sent_at = 0;
    long sent = 0, done = 0;
    for (; sent < inflight && sent < count; sent++) {
        sent_at = bench_now_ns();
        send_query(s, (*next)++);
    }
    while (done < sent) {
        if (recv_reply(s) >= *next) bench_die("a reply for an id never sent");
        int64_t now = bench_now_ns();
        if (rtt) rtt[done] = now - sent_at;
        done++;
        if (sent < count && now < stop) {
            sent_at = now;
            send_query(s, (*next)++);
            sent++;
        }
    }
    return done;
}

static void parse(int argc, char **argv, opts *o) {
    *o = (opts){"tcp://127.0.0.1:5555", NULL, NULL, NULL, 64, 2000, 3.0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = bench_opt(argc, argv, &i, "--endpoint"))) o->endpoint = v;
        else if ((v = bench_opt(argc, argv, &i, "--server-key"))) o->server = v;
        else if ((v = bench_opt(argc, argv, &i, "--public"))) o->public_ = v;
        else if ((v = bench_opt(argc, argv, &i, "--secret"))) o->secret = v;
        else if ((v = bench_opt(argc, argv, &i, "--inflight")))
            o->inflight = bench_long(v, 1, 100000);
        else if ((v = bench_opt(argc, argv, &i, "--warmup")))
            o->warmup = bench_long(v, 0, 10000000);
        else if ((v = bench_opt(argc, argv, &i, "--seconds"))) o->seconds = atof(v);
        else bench_die("usage: curveload [--endpoint EP] [--server-key Z85 --public Z85 "
                       "--secret Z85] [--inflight N] [--seconds S] [--warmup N]");
    }
    if (o->seconds <= 0 || o->seconds > 600) bench_die("--seconds must be in (0, 600]");
    if (o->server && (!o->public_ || !o->secret || strlen(o->server) != 40 ||
                      strlen(o->public_) != 40 || strlen(o->secret) != 40))
        bench_die("--server-key needs --public and --secret, each 40 Z85 characters");
}

int main(int argc, char **argv) {
    opts o;
    parse(argc, argv, &o);
    void *ctx = zmq_ctx_new(), *s = open_dealer(ctx, &o);
    uint32_t next = 1;
    if (o.warmup) run_pass(s, o.inflight, o.warmup, 30, &next, NULL);
    int64_t *rtt = malloc(sizeof *rtt * (size_t)MAX_QUERIES);
    if (!rtt) bench_die("out of memory");
    int64_t t0 = bench_now_ns();
    long done = run_pass(s, o.inflight, MAX_QUERIES, o.seconds, &next, rtt);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    qsort(rtt, (size_t)done, sizeof *rtt, cmp_i64);
    printf("{\"queries\": %ld, \"seconds\": %.4f, \"qps\": %.1f, \"inflight\": %ld, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"curve\": %s}\n", done, secs, done / secs,
           o.inflight, rtt[done / 2] / 1e3, rtt[done * 99 / 100] / 1e3,
           o.server ? "true" : "false");
    free(rtt);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}
