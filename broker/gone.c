/* broker/gone.c: clients that went away. A ROUTER says nothing when a peer disconnects, so the
 * broker reads its client socket's monitor (ZMQ_EVENT_DISCONNECTED names the connection's fd)
 * and remembers the fd each client's messages came on (ZMQ_SRCFD). When a connection closes,
 * the queries in flight of the clients on it end `cancelled` (their workers stop): nobody is
 * left to receive the answers. A client with an explicit routing id is left alone: it may
 * come back on a new connection and resend its queries (dedup.h).
 * The monitor is read every BRK_GONE_EVERY_MS and whenever a message comes from a new peer.
 * A closed fd may be reused at once by a new connection, so pending events are read before a
 * message from another peer (fd or routing id) than the last one is acted on: libzmq reports
 * the disconnect before it closes the fd, hence before anything can arrive on a connection
 * that reuses it. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fdb {
    brk_node_t node; /* key: fd */
    int fd;
    base_list_t clients; /* brk_client_t.fdlink */
} fdb_t;

struct brk_gone {
    void *mon; /* PAIR: the client socket's monitor events */
    brk_map_t by_fd;
    int last_fd;                       /* the fd of the last client message */
    uint8_t last_id[BRK_MAX_IDENTITY]; /* and its routing id */
    size_t last_idlen;
    uint64_t cancelled; /* queries ended because their client went away */
    int64_t next_read;  /* b->now of the next periodic read (brk_gone_tick) */
};

int brk_gone_open(brk_t *b) {
    if (!b->cfg.cancel_gone) return 0;
    struct brk_gone *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://actor-broker-clients-monitor-%p", (void *)b);
    int zero = 0;
    if (brk_map_init(&g->by_fd) != 0) {
        free(g);
        return -ENOMEM;
    }
    g->last_fd = -1;
    if (zmq_socket_monitor(b->clients, addr, ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(g->mon = zmq_socket(b->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(g->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(g->mon, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_connect(g->mon, addr) != 0) {
        base_log(BASE_LOG_ERROR, "monitor_failed", "socket=clients error=\"%s\"",
                 zmq_strerror(errno));
        if (g->mon) zmq_close(g->mon);
        brk_map_close(&g->by_fd);
        free(g);
        return -EIO;
    }
    b->gone = g;
    return 0;
}

void brk_gone_stop(brk_t *b) {
    if (b->gone && b->clients) zmq_socket_monitor(b->clients, NULL, 0);
}

void brk_gone_close(brk_t *b) {
    struct brk_gone *g = b->gone;
    if (!g) return;
    brk_node_t *n;
    while ((n = brk_map_next(&g->by_fd, NULL))) {
        fdb_t *f = base_container_of(n, fdb_t, node); /* its clients are freed already */
        brk_map_del(&g->by_fd, n);
        free(f);
    }
    brk_map_close(&g->by_fd);
    if (g->mon) zmq_close(g->mon);
    free(g);
    b->gone = NULL;
}

int64_t brk_gone_tick(brk_t *b) {
    struct brk_gone *g = b->gone;
    if (!g) return -1;
    if (b->now >= g->next_read) {
        brk_gone_read(b);
        g->next_read = b->now + BRK_GONE_EVERY_MS;
    }
    return g->next_read;
}

static fdb_t *fdb_find(struct brk_gone *g, int fd) {
    brk_node_t *n = brk_map_get(&g->by_fd, &fd, sizeof fd);
    return n ? base_container_of(n, fdb_t, node) : NULL;
}

/* The connection on fd closed: its clients' queries end. */
static void on_disconnected(brk_t *b, int fd) {
    struct brk_gone *g = b->gone;
    if (fd == g->last_fd) g->last_fd = -1;
    uint64_t n = 0;
    fdb_t *f;
    /* Looked up again each time: dropping one client's queries may touch the others. */
    while ((f = fdb_find(g, fd))) {
        brk_client_t *c = base_container_of(f->clients.next, brk_client_t, fdlink);
        base_list_unlink(&c->fdlink);
        c->fd = -1;
        if (base_list_empty(&f->clients)) {
            brk_map_del(&g->by_fd, &f->node);
            free(f);
        }
        n += c->in_flight;
        brk_client_drop(b, c, "cancelled", "the client disconnected"); /* may free c */
    }
    if (!n) return;
    g->cancelled += n;
    base_log(BASE_LOG_INFO, "client_gone", "fd=%d cancelled=%llu", fd, (unsigned long long)n);
}

void brk_gone_read(brk_t *b) {
    struct brk_gone *g = b->gone;
    if (!g) return;
    for (;;) {
        zmq_msg_t f[2];
        size_t nf, total = brk_recv_frames(g->mon, f, 2, &nf);
        if (total == 0) return;
        if (nf >= 1 && zmq_msg_size(&f[0]) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&f[0]), sizeof event);
            memcpy(&value, (uint8_t *)zmq_msg_data(&f[0]) + 2, sizeof value);
            if (event == ZMQ_EVENT_DISCONNECTED) on_disconnected(b, (int)value);
        }
        for (size_t i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
    }
}

int brk_gone_fd(brk_t *b, zmq_msg_t *frame, const uint8_t *id, size_t idlen) {
    struct brk_gone *g = b->gone;
    if (!g) return -1;
    int fd = zmq_msg_get(frame, ZMQ_SRCFD);
    if (fd < 0) return -1;
    /* Another peer than the last: a disconnect of this fd's last user comes first. */
    if (fd != g->last_fd || idlen != g->last_idlen || memcmp(id, g->last_id, idlen) != 0) {
        brk_gone_read(b);
        g->last_fd = fd;
        memcpy(g->last_id, id, idlen);
        g->last_idlen = idlen;
    }
    return fd;
}

void brk_gone_track(brk_t *b, brk_client_t *c, const brk_in_t *in) {
    struct brk_gone *g = b->gone;
    base_list_init(&c->fdlink);
    c->fd = -1;
    /* Only generated routing ids (they start with a 0 byte) die with their connection. */
    if (!g || in->sock != BRK_SOCK_CLIENTS || in->fd < 0 || !in->idlen || in->id[0] != 0) return;
    fdb_t *f = fdb_find(g, in->fd);
    if (!f) {
        if (!(f = calloc(1, sizeof *f))) return; /* untracked: runs to its end, as before */
        f->fd = in->fd;
        f->node.key = &f->fd;
        f->node.klen = sizeof f->fd;
        base_list_init(&f->clients);
        brk_map_put(&g->by_fd, &f->node);
    }
    c->fd = in->fd;
    base_list_push(&f->clients, &c->fdlink);
}

void brk_gone_untrack(brk_t *b, brk_client_t *c) {
    struct brk_gone *g = b->gone;
    if (!g || c->fd < 0) return;
    base_list_unlink(&c->fdlink);
    fdb_t *f = fdb_find(g, c->fd);
    c->fd = -1;
    if (f && base_list_empty(&f->clients)) {
        brk_map_del(&g->by_fd, &f->node);
        free(f);
    }
}
