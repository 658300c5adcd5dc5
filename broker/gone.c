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
 * that reuses it.
 * Under CURVE a client with an explicit routing id is watched too, but not cancelled: when its
 * connection closes it is marked detached, its answers are remembered (dedup.h) and not sent,
 * since another key's connection may take the routing id next (libzmq 4.3 has no
 * ROUTER_NOTIFY); a message from that id under the client's own key attaches it again. */
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
    int *later;         /* closed fds whose clients' queries are still to be cancelled */
    size_t n_later, cap_later;
};

int brk_gone_open(brk_t *b) {
    if (!b->cfg.cancel_gone && !brk_zap_on(b)) return 0;
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
    free(g->later);
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

/* A client on a closed connection whose routing id it chose (under CURVE): detached. */
static bool explicit_id(const brk_client_t *c) { return c->keylen > 1 && c->key[1] != 0; }

static void unlink_fd(struct brk_gone *g, fdb_t *f, brk_client_t *c) {
    base_list_unlink(&c->fdlink);
    c->fd = -1;
    if (base_list_empty(&f->clients)) {
        brk_map_del(&g->by_fd, &f->node);
        free(f);
    }
}

/* The connection on fd closed: its clients with explicit ids are detached at once; the others'
 * queries end, now (drop) or at the next safe point (the caller is sending an answer). */
static void on_disconnected(brk_t *b, int fd, bool drop) {
    struct brk_gone *g = b->gone;
    if (fd == g->last_fd) g->last_fd = -1;
    fdb_t *f = fdb_find(g, fd);
    for (base_list_t *l = f ? f->clients.next : NULL; f && l != &f->clients;) {
        brk_client_t *c = base_container_of(l, brk_client_t, fdlink);
        l = l->next;
        if (!explicit_id(c)) continue;
        c->detached = true;
        base_log(BASE_LOG_DEBUG, "client_detached", "fd=%d in_flight=%llu", fd,
                (unsigned long long)c->in_flight);
        unlink_fd(g, f, c);
        if (!(f = fdb_find(g, fd))) break; /* that was the last */
    }
    if (!f) return;
    if (!drop) {
        if (g->n_later == g->cap_later) {
            size_t cap = g->cap_later ? 2 * g->cap_later : 16;
            int *v = realloc(g->later, cap * sizeof *v);
            if (!v) { /* untracked from here: they run to their end, as before */
                while ((f = fdb_find(g, fd)))
                    unlink_fd(g, f, base_container_of(f->clients.next, brk_client_t, fdlink));
                return;
            }
            g->later = v;
            g->cap_later = cap;
        }
        g->later[g->n_later++] = fd;
        return;
    }
    uint64_t n = 0;
    /* Looked up again each time: dropping one client's queries may touch the others. */
    while ((f = fdb_find(g, fd))) {
        brk_client_t *c = base_container_of(f->clients.next, brk_client_t, fdlink);
        unlink_fd(g, f, c);
        n += c->in_flight;
        brk_client_drop(b, c, "cancelled", "the client disconnected"); /* may free c */
    }
    if (!n) return;
    g->cancelled += n;
    base_log(BASE_LOG_INFO, "client_gone", "fd=%d cancelled=%llu", fd, (unsigned long long)n);
}

/* Reads the pending events; drop: act on every disconnect in full (a safe point). */
static void read_events(brk_t *b, bool drop) {
    struct brk_gone *g = b->gone;
    while (drop && g->n_later) on_disconnected(b, g->later[--g->n_later], true);
    for (;;) {
        zmq_msg_t f[2];
        size_t nf, total = brk_recv_frames(g->mon, f, 2, &nf);
        if (total == 0) return;
        if (nf >= 1 && zmq_msg_size(&f[0]) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&f[0]), sizeof event);
            memcpy(&value, (uint8_t *)zmq_msg_data(&f[0]) + 2, sizeof value);
            if (event == ZMQ_EVENT_DISCONNECTED) on_disconnected(b, (int)value, drop);
        }
        for (size_t i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
    }
}

void brk_gone_read(brk_t *b) {
    if (b->gone) read_events(b, true);
}

bool brk_client_reachable(brk_t *b, brk_client_t *c) {
    if (c->detached) return false;
    if (c->fd < 0 || !explicit_id(c)) return true;
    /* Its routing id may be another connection's by now: libzmq reports the disconnect
     * before it lets another connection take the id, so reading the events tells. */
    read_events(b, false);
    return !c->detached;
}

void brk_client_attach(brk_t *b, brk_client_t *c, const brk_in_t *in) {
    if (!c->detached || c->curve_key != in->key) return;
    c->detached = false;
    brk_gone_track(b, c, in);
    char peer[2 * BRK_MAX_IDENTITY + 1];
    base_log(BASE_LOG_DEBUG, "client_attached", "peer=%s fd=%d",
            base_log_hex(peer, sizeof peer, in->id, in->idlen), in->fd);
}

int brk_gone_fd(brk_t *b, zmq_msg_t *frame, const uint8_t *id, size_t idlen) {
    struct brk_gone *g = b->gone;
    if (!g) return -1;
    /* The same generated routing id as the last message: the same connection (libzmq never
     * gives one id to two connections of a socket), so the same fd, and nothing to read.
     * Saves zmq_msg_get, which finds the fd as a metadata string and parses it (~470
     * instructions, a quarter of the broker's own per query under one client's load). */
    if (idlen && id[0] == 0 && g->last_fd >= 0 && idlen == g->last_idlen &&
        brk_eq(id, g->last_id, idlen))
        return g->last_fd;
    int fd = zmq_msg_get(frame, ZMQ_SRCFD);
    if (fd < 0) return -1;
    /* Another peer than the last: a disconnect of this fd's last user comes first. So for
     * every message of a routing id gone.c may detach (CURVE, explicit): its owner may come
     * back on the fd it had, and the old connection's disconnect must not then detach it. */
    bool watched = idlen && id[0] != 0 && brk_zap_on(b);
    if (watched || fd != g->last_fd || idlen != g->last_idlen ||
        !brk_eq(id, g->last_id, idlen)) {
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
    /* Generated routing ids (they start with a 0 byte) die with their connection (with
     * --cancel-gone); explicit ones are watched under CURVE, to be detached. */
    if (!g || in->sock != BRK_SOCK_CLIENTS || in->fd < 0 || !in->idlen) return;
    if (in->id[0] == 0 ? !b->cfg.cancel_gone : !in->key) return;
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
