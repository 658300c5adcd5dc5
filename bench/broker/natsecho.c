/* bench/broker/natsecho.c: the responder of the NATS system of bench/broker. Joins queue
 * group "echo" on subject bench.echo and publishes each request's payload, unchanged, to
 * its reply subject. Prints "ready" once the subscription is on the server; runs until
 * SIGTERM or SIGINT. */
#include <signal.h>

#include <nats/nats.h>

#include "benchutil.h"

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(m);
    if (reply) natsConnection_Publish(nc, reply, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) bench_die("usage: natsecho URL [--asap]");
    natsOptions *no;
    natsConnection *nc;
    natsSubscription *sub;
    sigset_t set;
    int sig;
    sigemptyset(&set); /* blocked before libnats starts its threads: sigwait gets them */
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (natsOptions_Create(&no) != NATS_OK || natsOptions_SetURL(no, argv[1]) != NATS_OK)
        bench_die("nats options");
    if (argc == 3) natsOptions_SetSendAsap(no, true);
    if (natsConnection_Connect(&nc, no) != NATS_OK) bench_die("connect %s", argv[1]);
    if (natsConnection_QueueSubscribe(&sub, nc, "bench.echo", "echo", on_request, NULL) !=
            NATS_OK ||
        natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK)
        bench_die("subscribe bench.echo");
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(no);
    nats_Close();
    return 0;
}
