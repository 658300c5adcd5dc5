/* bench/broker/rawecho.c: the worker of the raw-proxy system of bench/broker. A DEALER
 * connected to rawproxy's DEALER side that sends every message back as it came, envelope
 * included: no parsing, no msgpack. Runs until killed. */
#include <errno.h>
#include <zmq.h>

#include "benchutil.h"

int main(int argc, char **argv) {
    if (argc != 2) bench_die("usage: rawecho ENDPOINT");
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (!s || zmq_connect(s, argv[1]) != 0) bench_die("connect: %s", zmq_strerror(errno));
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) bench_die("recv: %s", zmq_strerror(errno));
        int more = zmq_msg_more(&m);
        if (zmq_msg_send(&m, s, more ? ZMQ_SNDMORE : 0) < 0)
            bench_die("send: %s", zmq_strerror(errno));
    }
}
