/* bench/proto/decodebench.c: proto's codec alone, on the messages of one echo query through
 * the broker. Decodes: the client's 106-byte query (bench/broker's, byte for byte), the
 * broker's `work` to the worker and the worker's `result` with a 64-byte output. Encodes: that
 * `work` and `result` (proto_enc_work, proto_enc_job_result) and the broker's answer to the
 * client (proto_enc_reply). Prints one line per row: the message's size and the best of 5
 * timed runs in ns per call. Instructions per call come from bench/proto/run.sh (callgrind
 * over two run lengths; this VM has no hardware counters).
 * Usage: decodebench [--iters N] [--msg ROW] (repeat --msg; default: all rows; ROW: query,
 * work, result, enc_work, enc_result, enc_reply) */
#include <time.h>

#include "../broker/benchutil.h"
#include "proto/proto.h"

typedef struct msg {
    const char *name;
    uint8_t bytes[256];
    size_t n;
} msg_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Builds the three messages with the same encoders the broker and the worker use. */
static void build(msg_t m[3]) {
    uint8_t input[2 + BENCH_INPUT];
    input[0] = 0xd9, input[1] = BENCH_INPUT; /* str8, as bench_query carries it */
    for (int i = 0; i < BENCH_INPUT; i++) input[2 + i] = (uint8_t)('a' + (7 + i) % 26);
    proto_raw_t in = {input, sizeof input};
    proto_buf_t b;
    proto_buf_init(&b);
    m[0].name = "query";
    m[0].n = bench_query(m[0].bytes, 0x01020304);
    m[1].name = "work";
    if (proto_enc_work(&b, 123456, (proto_str_t){"echo", 4}, in, (proto_str_t){NULL, 0}, -1, 1))
        bench_die("proto_enc_work failed");
    memcpy(m[1].bytes, b.p, b.n), m[1].n = b.n;
    m[2].name = "result";
    if (proto_enc_job_result(&b, 123456, in)) bench_die("proto_enc_job_result failed");
    memcpy(m[2].bytes, b.p, b.n), m[2].n = b.n;
    proto_buf_free(&b);
}

int main(int argc, char **argv) {
    long iters = 2000000;
    const char *only[6];
    int n_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = bench_long(argv[++i], 1, 1000000000L);
        } else if (strcmp(argv[i], "--msg") == 0 && i + 1 < argc && n_only < 6) {
            only[n_only++] = argv[++i];
        } else {
            bench_die("usage: decodebench [--iters N] [--msg query|work|result|enc_work|"
                      "enc_result|enc_reply]...");
        }
    }
    msg_t m[3];
    build(m);
    uint8_t input[2 + BENCH_INPUT];
    input[0] = 0xd9, input[1] = BENCH_INPUT;
    memset(input + 2, 'x', BENCH_INPUT);
    const proto_raw_t in = {input, sizeof input};
    const uint8_t id[] = {0xce, 1, 2, 3, 4};
    proto_limits_t lim;
    proto_limits_default(&lim);
    for (int k = 0; k < 3; k++) {
        bool want = n_only == 0; /* decodes */
        for (int j = 0; j < n_only; j++) want |= strcmp(only[j], m[k].name) == 0;
        if (!want) continue;
        proto_msg_t out;
        proto_error_t err;
        if (proto_decode(m[k].bytes, m[k].n, &lim, &out, &err))
            bench_die("%s does not decode: %s", m[k].name, err.message);
        double best = 1e30;
        for (int run = 0; run < 5; run++) {
            double t0 = now_s();
            for (long i = 0; i < iters; i++) {
                /* the asm keeps the decode from being hoisted out of the loop */
                __asm__ volatile("" ::"r"(m[k].bytes) : "memory");
                if (proto_decode(m[k].bytes, m[k].n, &lim, &out, &err)) bench_die("decode failed");
            }
            double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        printf("%-10s %3zu bytes  %6.1f ns/decode  (best of 5 x %ld)\n", m[k].name, m[k].n,
               best * 1e9 / (double)iters, iters);
    }
    static const char *const enc[] = {"enc_work", "enc_result", "enc_reply"};
    proto_buf_t b;
    proto_buf_init(&b);
    for (int k = 0; k < 3; k++) {
        bool want = n_only == 0;
        for (int j = 0; j < n_only; j++) want |= strcmp(only[j], enc[k]) == 0;
        if (!want) continue;
        proto_reply_t r = {.type = PROTO_RESULT, .id = {id, sizeof id}, .payload = in};
        double best = 1e30;
        for (int run = 0; run < 5; run++) {
            double t0 = now_s();
            for (long i = 0; i < iters; i++) {
                int rc = k == 0   ? proto_enc_work(&b, 123456 + (uint64_t)i, (proto_str_t){"echo", 4},
                                                   in, (proto_str_t){NULL, 0}, -1, 1)
                         : k == 1 ? proto_enc_job_result(&b, 123456 + (uint64_t)i, in)
                                  : proto_enc_reply(&b, &r, 0);
                if (rc) bench_die("%s failed", enc[k]);
                __asm__ volatile("" ::"r"(b.p) : "memory");
            }
            double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        printf("%-10s %3zu bytes  %6.1f ns/encode  (best of 5 x %ld)\n", enc[k], b.n,
               best * 1e9 / (double)iters, iters);
    }
    proto_buf_free(&b);
    return 0;
}
