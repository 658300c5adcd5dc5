/* broker/hashmap.c: the broker's hash index (hashmap.h): chained buckets that double when the load
 * passes one, keyed with SipHash-1-3 under a random key so that ids chosen by clients cannot
 * be aimed at one bucket. 1-3 (one round per 8 bytes, three to finish) rather than 2-4: the
 * keys are short and the hash only has to be unpredictable to a peer that never sees it (a
 * hash table, not a MAC), which is what 1-3 is meant for; it took ~40% off the broker's
 * hashing per query (bench/broker/broker_cg.sh). */
#include "hashmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t sip_k0 = 0x736f6d6570736575ULL, sip_k1 = 0x646f72616e646f6dULL;

void brk_map_seed(void) {
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* No entropy source: a weaker but still per-process key. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL;
    }
    sip_k0 ^= k[0];
    sip_k1 ^= k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                          \
    do {                                                                                  \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                         \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                            \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                            \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                         \
    } while (0)

static uint64_t siphash13(const uint8_t *in, size_t len) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0, v1 = 0x646f72616e646f6dULL ^ sip_k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0, v3 = 0x7465646279746573ULL ^ sip_k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, tail = len & 7;
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8); /* little-endian hosts only need no swap; any order is fine */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    /* the tail's bytes where a byte loop would put them (on a little-endian host; the order
     * only has to be the same every time), from at most two loads */
    if (tail >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, in + i, 4);
        memcpy(&hi, in + i + tail - 4, 4);
        b |= (uint64_t)lo | (uint64_t)hi << (8 * (tail - 4));
    } else if (tail) {
        b |= (uint64_t)in[i] | (uint64_t)in[i + tail / 2] << (8 * (tail / 2)) |
             (uint64_t)in[i + tail - 1] << (8 * (tail - 1));
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int brk_map_init(brk_map_t *m) {
    m->nbuckets = 16;
    m->n = 0;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    return m->buckets ? 0 : -ENOMEM;
}

void brk_map_close(brk_map_t *m) {
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->n = 0;
}

uint64_t brk_map_hash(const void *key, size_t klen) { return siphash13(key, klen); }

brk_node_t *brk_map_get(const brk_map_t *m, const void *key, size_t klen) {
    return brk_map_get_h(m, key, klen, siphash13(key, klen));
}

brk_node_t *brk_map_get_h(const brk_map_t *m, const void *key, size_t klen, uint64_t h) {
    for (brk_node_t *n = m->buckets[h & (m->nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && n->klen == klen && brk_eq(n->key, key, klen)) return n;
    return NULL;
}

static void grow(brk_map_t *m) {
    size_t nb = m->nbuckets * 2;
    brk_node_t **b = calloc(nb, sizeof *b);
    if (!b) return; /* keep the old array: longer chains, still correct */
    for (size_t i = 0; i < m->nbuckets; i++) {
        brk_node_t *n = m->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void brk_map_put(brk_map_t *m, brk_node_t *node) {
    brk_map_put_h(m, node, siphash13(node->key, node->klen));
}

void brk_map_put_h(brk_map_t *m, brk_node_t *node, uint64_t h) {
    if (m->n >= m->nbuckets) grow(m);
    node->hash = h;
    brk_node_t **slot = &m->buckets[node->hash & (m->nbuckets - 1)];
    node->next = *slot;
    *slot = node;
    m->n++;
}

void brk_map_del(brk_map_t *m, brk_node_t *node) {
    brk_node_t **p = &m->buckets[node->hash & (m->nbuckets - 1)];
    while (*p && *p != node) p = &(*p)->next;
    if (*p) {
        *p = node->next;
        node->next = NULL;
        m->n--;
    }
}

brk_node_t *brk_map_next(const brk_map_t *m, const brk_node_t *prev) {
    size_t i = 0;
    if (prev) {
        if (prev->next) return prev->next;
        i = (prev->hash & (m->nbuckets - 1)) + 1;
    }
    for (; i < m->nbuckets; i++)
        if (m->buckets[i]) return m->buckets[i];
    return NULL;
}
