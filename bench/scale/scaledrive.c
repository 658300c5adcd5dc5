/* bench/scale/scaledrive.c: the load of the scaling benchmark. Keeps --inflight `sleep`
 * queries ({"ms": --ms}) outstanding on one DEALER to a broker and prints one JSON line:
 * results and errors inside the measured window, and results per second. Bounded by
 * --seconds (after --warmup seconds); 5 s without any reply fails the run. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#define SILENCE_MS 5000

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
    fprintf(stderr, "scaledrive: %s\n", what);
    exit(1);
}

/* {"v":1,"type":"query","id":<u32>,"agent":"sleep","input":{"ms":<u16>}} */
static size_t enc_query(uint8_t *o, uint32_t id, unsigned ms) {
    static const uint8_t head[] = {0x85, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'q',
                                   'u', 'e', 'r', 'y', 0xa2, 'i', 'd', 0xce};
    static const uint8_t mid[] = {0xa5, 'a', 'g', 'e', 'n', 't', 0xa5, 's', 'l', 'e', 'e', 'p',
                                  0xa5, 'i', 'n', 'p', 'u', 't', 0x81, 0xa2, 'm', 's', 0xcd};
    size_t n = 0;
    memcpy(o, head, sizeof head);
    n += sizeof head;
    for (int s = 24; s >= 0; s -= 8) o[n++] = (uint8_t)(id >> s);
    memcpy(o + n, mid, sizeof mid);
    n += sizeof mid;
    o[n++] = (uint8_t)(ms >> 8);
    o[n++] = (uint8_t)ms;
    return n;
}

static bool is_result(const uint8_t *p, size_t n) {
    static const char want[] = "\xa4type\xa6result";
    return n >= sizeof want - 1 && memmem(p, n, want, sizeof want - 1) != NULL;
}

static double arg(int argc, char **argv, const char *name, double dflt, double lo, double hi) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) != 0) continue;
        char *end;
        double v = strtod(argv[i + 1], &end);
        if (*end || v < lo || v > hi) die("bad value for an option");
        return v;
    }
    return dflt;
}

int main(int argc, char **argv) {
    const char *ep = "tcp://127.0.0.1:5555";
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--endpoint") == 0) ep = argv[i + 1];
    long inflight = (long)arg(argc, argv, "--inflight", 16, 1, 100000);
    unsigned ms = (unsigned)arg(argc, argv, "--ms", 10, 0, 60000);
    double seconds = arg(argc, argv, "--seconds", 5, 0.1, 600);
    double warmup = arg(argc, argv, "--warmup", 1, 0, 60);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(s, ep) != 0) die("connect failed");
    uint8_t buf[128], in[4096];
    uint32_t next = 1;
    for (long i = 0; i < inflight; i++)
        if (zmq_send(s, buf, enc_query(buf, next++, ms), 0) < 0) die("send failed");
    int64_t t0 = now_ms(), start = t0 + (int64_t)(warmup * 1000);
    int64_t end = start + (int64_t)(seconds * 1000), heard = t0;
    long done = 0, errors = 0;
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    for (int64_t now = t0; now < end; now = now_ms()) {
        if (now - heard > SILENCE_MS) die("no reply for 5 s");
        if (zmq_poll(&it, 1, 100) < 0 && errno != EINTR) die("poll failed");
        int n;
        while ((n = zmq_recv(s, in, sizeof in, ZMQ_DONTWAIT)) >= 0) {
            heard = now = now_ms();
            bool ok = is_result(in, (size_t)n < sizeof in ? (size_t)n : sizeof in);
            if (now >= start && now < end) ok ? done++ : errors++;
            if (zmq_send(s, buf, enc_query(buf, next++, ms), 0) < 0) die("send failed");
        }
    }
    printf("{\"done\": %ld, \"errors\": %ld, \"seconds\": %.3f, \"qps\": %.1f}\n", done, errors,
           seconds, done / seconds);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}
