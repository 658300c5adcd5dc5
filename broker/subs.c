/* broker/subs.c: who subscribes to what on the bus, and how much. libzmq keeps a trie node per
 * byte of each subscription (20 of 1 MB from one peer took 631 MiB), so the count is bounded:
 * --max-subs-per-peer for one connection, --max-subs for all (the length is --max-sub-bytes,
 * the XPUB's ZMQ_MAXMSGSIZE). The XPUB runs ZMQ_XPUB_VERBOSER, so every subscribe and
 * unsubscribe reaches the broker with the fd of its connection (ZMQ_SRCFD). A subscriber past
 * a bound is refused: its connection is shut down, and libzmq, seeing it close, drops every
 * subscription it held (the trie's memory goes with it; libzmq has no way to refuse one
 * subscription of a live peer: in ZMQ_XPUB_MANUAL it still stores each one for its own
 * unsubscribe-on-disconnect). The XPUB's monitor says when a connection closed: its records
 * go; libzmq's unsubscriptions for a closed connection carry no fd and are not needed.
 * The distinct prefixes held also say which query topics are worth encoding (brk_subs_wanted). */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/prom.h"
#if defined(ACTOR_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define ARENAS_ALL_(n) #n
#define ARENAS_ALL(n) ARENAS_ALL_(n)
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

#define WANTED_SCAN 1024 /* distinct prefixes scanned per topic; past it all is published */
#define TRIM_BYTES (64 * 1024) /* leavers that held this much: give freed memory back */
#define TRIM_AFTER_MS 200      /* after their disconnect, once libzmq has freed their trie */

typedef struct pfx {
    uint64_t refs; /* peers holding it */
    size_t n;
    char p[];
} pfx_t;

typedef struct peer {
    int fd;          /* its connection; -1: subscriptions that came without one (not tcp) */
    bool cut;        /* refused: shut down, waiting for the monitor to report it closed */
    size_t n, cap;
    size_t bytes;    /* prefix bytes it holds */
    pfx_t **held;
} peer_t;

struct brk_subs {
    void *mon;          /* PAIR: the XPUB's monitor (disconnects) */
    pfx_t **pfx;        /* distinct prefixes held by anyone */
    size_t n_pfx, cap_pfx;
    peer_t **peers;     /* connections holding subscriptions */
    size_t n_peers, cap_peers;
    uint64_t total;     /* (peer, prefix) pairs held: --max-subs counts these */
    uint64_t refused;   /* subscriptions refused (their peer was cut) */
    uint64_t cut;       /* connections shut down for going past a bound */
    bool overflow;      /* a prefix could not be recorded (memory): publish everything */
    int last_fd;        /* the fd of the last subscription read */
    int64_t next_read;  /* b->now of the next periodic monitor read */
    size_t freed;       /* prefix bytes of connections gone since the last trim */
    int64_t trim_at;    /* b->now when the heap is trimmed; 0 none due */
};

int brk_subs_open(brk_t *b) {
    struct brk_subs *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    char addr[64];
    int zero = 0, on = 1;
    s->last_fd = -1;
    snprintf(addr, sizeof addr, "inproc://actor-broker-pub-monitor-%p", (void *)b);
    if (zmq_setsockopt(b->pub, ZMQ_XPUB_VERBOSER, &on, sizeof on) != 0 ||
        zmq_socket_monitor(b->pub, addr, ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(s->mon = zmq_socket(b->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(s->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s->mon, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_connect(s->mon, addr) != 0) {
        base_log(BASE_LOG_ERROR, "monitor_failed", "socket=pub error=\"%s\"", zmq_strerror(errno));
        if (s->mon) zmq_close(s->mon);
        free(s);
        return -EIO;
    }
    b->subs = s;
    return 0;
}

void brk_subs_stop(brk_t *b) {
    if (b->subs && b->pub) zmq_socket_monitor(b->pub, NULL, 0);
}

static void peer_free(peer_t *p) {
    free(p->held);
    free(p);
}

void brk_subs_close(brk_t *b) {
    struct brk_subs *s = b->subs;
    if (!s) return;
    for (size_t i = 0; i < s->n_peers; i++) peer_free(s->peers[i]);
    for (size_t i = 0; i < s->n_pfx; i++) free(s->pfx[i]);
    free(s->peers);
    free(s->pfx);
    if (s->mon) zmq_close(s->mon);
    free(s);
    b->subs = NULL;
}

/* Grows the array *v of *cap elements of sz bytes to hold need. Returns: false on ENOMEM. */
static bool grow_ok(void **v, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 8;
    void *nv = realloc(*v, nc * sz);
    if (!nv) return false;
    *v = nv;
    *cap = nc;
    return true;
}

static peer_t *peer_find(struct brk_subs *s, int fd, size_t *at) {
    for (size_t i = 0; i < s->n_peers; i++) {
        if (s->peers[i]->fd == fd) {
            if (at) *at = i;
            return s->peers[i];
        }
    }
    return NULL;
}

static pfx_t *pfx_find(struct brk_subs *s, const char *p, size_t n, size_t *at) {
    for (size_t i = 0; i < s->n_pfx; i++) {
        if (s->pfx[i]->n == n && memcmp(s->pfx[i]->p, p, n) == 0) {
            if (at) *at = i;
            return s->pfx[i];
        }
    }
    return NULL;
}

static void pfx_unref(struct brk_subs *s, pfx_t *x) {
    if (--x->refs) return;
    size_t at;
    if (pfx_find(s, x->p, x->n, &at)) s->pfx[at] = s->pfx[--s->n_pfx];
    free(x);
}

/* The connection on fd closed: whatever it held is no longer anyone's. */
static void peer_gone(brk_t *b, int fd) {
    struct brk_subs *s = b->subs;
    size_t at;
    peer_t *p = peer_find(s, fd, &at);
    if (fd == s->last_fd) s->last_fd = -1;
    if (!p) return;
    s->peers[at] = s->peers[--s->n_peers];
    for (size_t i = 0; i < p->n; i++) pfx_unref(s, p->held[i]);
    s->total -= p->n;
    s->freed += p->bytes;
    peer_free(p);
    /* libzmq frees the peer's trie nodes on this thread once it has taken the connection's
     * end, a little after the event; the heap keeps them unless trimmed */
    if (s->freed >= TRIM_BYTES && !s->trim_at) s->trim_at = b->now + TRIM_AFTER_MS;
}

/* Returns the heap's free pages to the system: jemalloc's arenas when the broker is linked
 * with it (CMakeLists.txt, ACTOR_JEMALLOC), else glibc's. */
static void give_back_freed(void) {
#if defined(ACTOR_JEMALLOC)
    mallctl("arena." ARENAS_ALL(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
#elif defined(__GLIBC__)
    malloc_trim(0);
#endif
}

static void read_monitor(brk_t *b) {
    struct brk_subs *s = b->subs;
    for (;;) {
        zmq_msg_t f[2];
        size_t nf, total = brk_recv_frames(s->mon, f, 2, &nf);
        if (total == 0) return;
        if (nf >= 1 && zmq_msg_size(&f[0]) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&f[0]), sizeof event);
            memcpy(&value, (uint8_t *)zmq_msg_data(&f[0]) + 2, sizeof value);
            if (event == ZMQ_EVENT_DISCONNECTED) peer_gone(b, (int)value);
        }
        for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    }
}

int64_t brk_subs_tick(brk_t *b) {
    struct brk_subs *s = b->subs;
    if (!s) return -1;
    if (b->now >= s->next_read) {
        read_monitor(b);
        s->next_read = b->now + BRK_GONE_EVERY_MS;
    }
    if (s->trim_at && b->now >= s->trim_at) {
        give_back_freed();
        s->trim_at = 0;
        s->freed = 0;
    }
    return s->trim_at && s->trim_at < s->next_read ? s->trim_at : s->next_read;
}

/* Past a bound: the connection is shut down (libzmq then drops all it subscribed to). Its
 * fd is still that connection: libzmq reports a disconnect before it closes the fd, and the
 * monitor is read just before. */
static void refuse(brk_t *b, peer_t *p, size_t n, const char *why) {
    struct brk_subs *s = b->subs;
    s->refused++;
    if (brk_bad_input_log_ok(b))
        base_log(BASE_LOG_WARN, "subscription_refused", "fd=%d bytes=%zu held=%zu why=\"%s\"",
                p->fd, n, p->n, why);
    if (p->cut || p->fd < 0) return;
    int fd = p->fd;
    read_monitor(b); /* may free p */
    if (!(p = peer_find(s, fd, NULL))) return; /* it closed meanwhile */
    p->cut = true;
    s->cut++;
    shutdown(fd, SHUT_RDWR);
}

static peer_t *peer_get(struct brk_subs *s, int fd) {
    peer_t *p = peer_find(s, fd, NULL);
    if (p) return p;
    if (!grow_ok((void **)&s->peers, &s->cap_peers, s->n_peers + 1, sizeof *s->peers))
        return NULL;
    if (!(p = calloc(1, sizeof *p))) return NULL;
    p->fd = fd;
    s->peers[s->n_peers++] = p;
    return p;
}

static void subscribe(brk_t *b, int fd, const char *d, size_t n) {
    struct brk_subs *s = b->subs;
    peer_t *p = peer_get(s, fd);
    if (!p) {
        s->overflow = true;
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->held[i]->n == n && memcmp(p->held[i]->p, d, n) == 0) return; /* again */
    if (p->cut) return;
    /* Without an fd (not tcp) nobody can be cut: such subscriptions count in the total only */
    if (fd >= 0 && p->n >= b->cfg.max_subs_per_peer) {
        refuse(b, p, n, "more than max-subs-per-peer subscriptions");
        return;
    }
    if (s->total >= b->cfg.max_subs) {
        refuse(b, p, n, "more than max-subs subscriptions in all");
        if (fd < 0) s->overflow = true; /* applied by libzmq all the same */
        return;
    }
    pfx_t *x = pfx_find(s, d, n, NULL);
    bool fresh = !x;
    if (fresh && (!grow_ok((void **)&s->pfx, &s->cap_pfx, s->n_pfx + 1, sizeof *s->pfx) ||
                  !(x = malloc(sizeof *x + n)))) {
        s->overflow = true;
        return;
    }
    if (!grow_ok((void **)&p->held, &p->cap, p->n + 1, sizeof *p->held)) {
        if (fresh) free(x);
        s->overflow = true;
        return;
    }
    if (fresh) {
        x->refs = 0;
        x->n = n;
        memcpy(x->p, d, n);
        s->pfx[s->n_pfx++] = x;
    }
    x->refs++;
    p->held[p->n++] = x;
    p->bytes += n;
    s->total++;
}

static void unsubscribe(brk_t *b, int fd, const char *d, size_t n) {
    struct brk_subs *s = b->subs;
    size_t at;
    peer_t *p = peer_find(s, fd, &at);
    if (!p) return; /* fd -1: libzmq's own for a closed connection; the monitor does those */
    for (size_t i = 0; i < p->n; i++) {
        pfx_t *x = p->held[i];
        if (x->n != n || memcmp(x->p, d, n) != 0) continue;
        p->held[i] = p->held[--p->n];
        p->bytes -= n;
        s->total--;
        pfx_unref(s, x);
        break;
    }
    if (p->n == 0 && !p->cut) {
        s->peers[at] = s->peers[--s->n_peers];
        peer_free(p);
    }
}

bool brk_subs_read(brk_t *b) {
    struct brk_subs *s = b->subs;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, b->pub, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return false;
    }
    const char *d = zmq_msg_data(&m);
    size_t n = zmq_msg_size(&m);
    int fd = zmq_msg_get(&m, ZMQ_SRCFD);
    /* Another connection than the last: a disconnect of this fd's last user comes first. */
    if (fd != s->last_fd) {
        read_monitor(b);
        s->last_fd = fd;
    }
    if (n >= 1 && d[0] == 1)
        subscribe(b, fd, d + 1, n - 1);
    else if (n >= 1 && d[0] == 0 && fd >= 0)
        unsubscribe(b, fd, d + 1, n - 1);
    zmq_msg_close(&m);
    return true;
}

bool brk_subs_any(const brk_t *b) {
    const struct brk_subs *s = b->subs;
    return !s || s->overflow || s->n_pfx > 0;
}

bool brk_subs_wanted(const brk_t *b, const char *topic, size_t n) {
    const struct brk_subs *s = b->subs;
    if (!s || s->overflow || s->n_pfx > WANTED_SCAN) return true;
    for (size_t i = 0; i < s->n_pfx; i++) {
        const pfx_t *x = s->pfx[i];
        if (x->n <= n && memcmp(x->p, topic, x->n) == 0) return true;
    }
    return false;
}

void brk_subs_metrics(brk_t *b, base_buf_t *o) {
    struct brk_subs *s = b->subs;
    if (!s) return;
    static const char *const fam[4][3] = {
        {"actorbus_broker_bus_subscriptions", "gauge",
         "Bus subscriptions held, summed over subscriber connections."},
        {"actorbus_broker_bus_subscribers", "gauge", "Bus connections holding subscriptions."},
        {"actorbus_broker_bus_subscriptions_refused_total", "counter",
         "Bus subscriptions refused: past --max-subs-per-peer or --max-subs."},
        {"actorbus_broker_bus_subscribers_cut_total", "counter",
         "Bus connections shut down for subscribing past a bound."}};
    uint64_t v[4] = {s->total, s->n_peers, s->refused, s->cut};
    for (int k = 0; k < 4; k++) {
        base_prom_family(o, fam[k][0], fam[k][1], fam[k][2]);
        base_prom_u64(o, fam[k][0], "", v[k]);
    }
}
