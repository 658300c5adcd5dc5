/* broker/outq.c: bytes the broker has handed to libzmq for each client connection and not yet
 * seen written out, so that a peer that never reads cannot pin unbounded memory (issue 11:
 * 40 session.get of a peer that never read pinned +296 MiB). Each client message goes out
 * as a zero-copy zmq_msg whose free callback, run on a libzmq I/O thread once the bytes are
 * written to the connection (or dropped), gives them back: hence the atomics. Past
 * --client-queue-bytes for one routing id, or --clients-queue-bytes for all, a send is
 * refused (-ENOBUFS) instead of queued. brk_send (broker.c) is the one caller. */
#include "broker.h"

#include "base/asan.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

struct brk_outq {
    brk_node_t node;          /* key: socket byte + routing id, in b->outq_map */
    atomic_size_t bytes;      /* handed to libzmq, not yet freed by it */
    atomic_uint refs;         /* the map's (while in it) and one per message in flight */
    atomic_size_t *total;     /* b->outq_total (outlives every queue: freed after ctx term) */
    _Atomic(void *) *back;    /* b->outq_back, likewise */
    size_t klen;
    uint8_t key[];
};

/* One message block: its queue, its size, then the body. */
typedef struct out_block {
    struct brk_outq *q;
    size_t n;
    struct out_block *next; /* in b->outq_back or b->outq_cache */
    bool small;             /* OUT_SMALL bytes in all: goes back to the cache, not free() */
} out_block_t;

/* Most client messages (results, events) are small: their blocks are recycled instead of
 * allocated on the loop and freed on libzmq's I/O thread, which cost a malloc and a free that
 * contends for the loop's arena on every answer (bench/broker, perf: 5-6% of the broker's CPU
 * in malloc and its lock). The I/O thread pushes a written block on b->outq_back (a lock-free
 * stack; only the loop takes from it, all at once); the loop keeps up to OUT_CACHE_MAX.
 * Sanitizer builds keep no cache, so a use after free is still caught. */
#define OUT_SMALL 512
#ifdef BASE_ASAN
#define OUT_CACHE_MAX 0
#else
#define OUT_CACHE_MAX 4096
#endif
static const size_t out_cache_max = OUT_CACHE_MAX; /* a variable: no always-true warning */

static void outq_unref(struct brk_outq *q) {
    if (atomic_fetch_sub(&q->refs, 1) == 1) free(q);
}

/* Runs on libzmq's I/O thread (or in zmq_msg_close on the loop). */
static void on_written(void *data, void *hint) {
    (void)data;
    out_block_t *blk = hint;
    struct brk_outq *q = blk->q;
    atomic_fetch_sub(&q->bytes, blk->n);
    atomic_fetch_sub(q->total, blk->n);
    if (blk->small) {
        _Atomic(void *) *back = q->back;
        void *head = atomic_load_explicit(back, memory_order_relaxed);
        do {
            blk->next = head;
        } while (!atomic_compare_exchange_weak_explicit(back, &head, blk, memory_order_release,
                                                        memory_order_relaxed));
    } else {
        free(blk);
    }
    outq_unref(q);
}

/* A block for n body bytes: a small one from the cache (refilled from what the I/O thread gave
 * back) when it fits and caching is on, else a fresh one. NULL without memory. */
static out_block_t *block_get(brk_t *b, size_t n) {
    bool small = out_cache_max && sizeof(out_block_t) + n <= OUT_SMALL;
    if (small && !b->outq_cache)
        b->outq_cache = atomic_exchange_explicit(&b->outq_back, NULL, memory_order_acquire);
    out_block_t *blk = small ? b->outq_cache : NULL;
    if (blk) {
        b->outq_cache = blk->next;
    } else {
        blk = malloc(small ? OUT_SMALL : sizeof *blk + n);
        if (!blk) return NULL;
    }
    blk->small = small;
    return blk;
}

static void free_chain(void *p);

/* Frees the cached blocks past OUT_CACHE_MAX; from the once-a-second sweep. (The cache grows
 * only by what was in flight, itself bounded by --clients-queue-bytes.) */
static void cache_trim(brk_t *b) {
    out_block_t *last = NULL;
    size_t n = 0;
    for (out_block_t *blk = b->outq_cache; blk && n < out_cache_max; blk = blk->next) {
        last = blk;
        n++;
    }
    out_block_t *rest = last ? last->next : b->outq_cache;
    if (last)
        last->next = NULL;
    else
        b->outq_cache = NULL;
    free_chain(rest);
}

static void free_chain(void *p) {
    out_block_t *next;
    for (out_block_t *blk = p; blk; blk = next) {
        next = blk->next;
        free(blk);
    }
}

static struct brk_outq *outq_get(brk_t *b, const uint8_t *key, size_t klen) {
    struct brk_outq *last = b->outq_last;
    if (last && last->klen == klen && memcmp(last->key, key, klen) == 0) return last;
    brk_node_t *n = brk_map_get(&b->outq_map, key, klen);
    if (n) return b->outq_last = base_container_of(n, struct brk_outq, node);
    struct brk_outq *q = malloc(sizeof *q + klen);
    if (!q) return NULL;
    atomic_init(&q->bytes, 0);
    atomic_init(&q->refs, 1);
    q->total = &b->outq_total;
    q->back = &b->outq_back;
    memcpy(q->key, key, klen);
    q->klen = klen;
    q->node.key = q->key;
    q->node.klen = klen;
    brk_map_put(&b->outq_map, &q->node);
    return b->outq_last = q;
}

size_t brk_outq_bytes(brk_t *b, const uint8_t *id, size_t idlen) {
    uint8_t key[1 + BRK_MAX_IDENTITY];
    key[0] = BRK_SOCK_CLIENTS;
    memcpy(key + 1, id, idlen);
    brk_node_t *n = brk_map_get(&b->outq_map, key, idlen + 1);
    return n ? atomic_load(&base_container_of(n, struct brk_outq, node)->bytes) : 0;
}

struct brk_outq *brk_outq_admit(brk_t *b, const uint8_t *id, size_t idlen, size_t n,
                                int *err) {
    uint8_t key[1 + BRK_MAX_IDENTITY];
    key[0] = BRK_SOCK_CLIENTS;
    memcpy(key + 1, id, idlen);
    struct brk_outq *q = outq_get(b, key, idlen + 1);
    *err = q ? 0 : -ENOMEM;
    if (!q) return NULL;
    /* One message may always go to a peer with nothing queued, whatever its size (a reply
     * as big as max-msg); after that the bounds hold. */
    size_t mine = atomic_load(&q->bytes), all = atomic_load(&b->outq_total);
    if (mine && (mine + n > b->cfg.client_queue_bytes || all + n > b->cfg.clients_queue_bytes)) {
        *err = -ENOBUFS;
        b->outq_refused++;
        return NULL;
    }
    return q;
}

int brk_outq_send(brk_t *b, struct brk_outq *q, void *sock, const uint8_t *body, size_t n) {
    out_block_t *blk = block_get(b, n);
    zmq_msg_t m;
    if (blk && zmq_msg_init_data(&m, blk + 1, n, on_written, blk) == 0) {
        blk->q = q;
        blk->n = n;
        memcpy(blk + 1, body, n);
        atomic_fetch_add(&q->refs, 1);
        atomic_fetch_add(&q->bytes, n);
        atomic_fetch_add(&b->outq_total, n);
    } else {
        /* The identity frame is out: the body must follow. Without memory for the block it
         * goes as an ordinary copy, unaccounted. */
        free(blk);
        return zmq_send(sock, body, n, ZMQ_DONTWAIT) < 0 ? -errno : 0;
    }
    if (zmq_msg_send(&m, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&m); /* gives the bytes back through on_written */
        return -e;
    }
    return 0;
}

/* Queues with nothing in flight leave the map (their memory goes with the last message). */
void brk_outq_sweep(brk_t *b) {
    cache_trim(b);
    brk_node_t *n, *next;
    for (n = brk_map_next(&b->outq_map, NULL); n; n = next) {
        next = brk_map_next(&b->outq_map, n);
        struct brk_outq *q = base_container_of(n, struct brk_outq, node);
        if (atomic_load(&q->bytes)) continue;
        if (q == b->outq_last) b->outq_last = NULL;
        brk_map_del(&b->outq_map, n);
        outq_unref(q);
    }
}

int brk_outq_init(brk_t *b) {
    atomic_init(&b->outq_total, 0);
    atomic_init(&b->outq_back, NULL);
    b->outq_cache = NULL;
    return brk_map_init(&b->outq_map);
}

/* After the context is gone: no callback can run any more. */
void brk_outq_close(brk_t *b) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->outq_map, NULL))) {
        brk_map_del(&b->outq_map, n);
        outq_unref(base_container_of(n, struct brk_outq, node));
    }
    brk_map_close(&b->outq_map);
    b->outq_last = NULL;
    free_chain(b->outq_cache);
    free_chain(atomic_exchange(&b->outq_back, NULL));
    b->outq_cache = NULL;
}
