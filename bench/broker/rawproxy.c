/* bench/broker/rawproxy.c: the limit of bench/broker: libzmq's own zmq_proxy, no parsing.
 *   rawproxy reqrep FRONT BACK   ROUTER (clients) on FRONT, DEALER (rawecho workers) on BACK
 *   rawproxy pubsub SUB PUB      XSUB (publishers) on SUB, XPUB (subscribers) on PUB
 * Same send HWM as actor-broker (100000). Runs until killed. */
#include <errno.h>
#include <zmq.h>

#include "benchutil.h"

static void *bound(void *ctx, int type, const char *ep) {
    void *s = zmq_socket(ctx, type);
    int hwm = 100000;
    if (!s) bench_die("socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_bind(s, ep) != 0) bench_die("bind %s: %s", ep, zmq_strerror(errno));
    return s;
}

int main(int argc, char **argv) {
    if (argc != 4) bench_die("usage: rawproxy reqrep|pubsub FRONT BACK");
    void *ctx = zmq_ctx_new();
    bool reqrep = strcmp(argv[1], "reqrep") == 0;
    if (!reqrep && strcmp(argv[1], "pubsub") != 0) bench_die("mode is reqrep or pubsub");
    void *front = bound(ctx, reqrep ? ZMQ_ROUTER : ZMQ_XSUB, argv[2]);
    void *back = bound(ctx, reqrep ? ZMQ_DEALER : ZMQ_XPUB, argv[3]);
    printf("ready\n");
    fflush(stdout);
    zmq_proxy(front, back, NULL); /* returns only when the context is terminated */
    return 0;
}
