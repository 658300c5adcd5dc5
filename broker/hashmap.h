/* broker/hashmap.h: an intrusive hash index from byte keys to table entries (clients, workers,
 * agents, jobs). Entries embed a brk_node_t that points at their own key bytes, so the index
 * allocates only its bucket array. Keys come from the network, so the hash is SipHash with a
 * random per-process key: nobody can aim many keys at one bucket. */
#ifndef BRK_MAP_H
#define BRK_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Whether the n bytes at a and b are equal. In line, with overlapping loads from both ends,
 * for the short keys compared per message (routing ids, query ids, agent names: mostly 4-16
 * bytes), where a call to memcmp cost more than the compare; longer ones go to memcmp. */
static inline bool brk_eq(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    if (n > 16) return memcmp(x, y, n) == 0;
    if (n >= 8) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, x, 8), memcpy(&y0, y, 8), memcpy(&x1, x + n - 8, 8), memcpy(&y1, y + n - 8, 8);
        return x0 == y0 && x1 == y1;
    }
    if (n >= 4) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, x, 4), memcpy(&y0, y, 4), memcpy(&x1, x + n - 4, 4), memcpy(&y1, y + n - 4, 4);
        return x0 == y0 && x1 == y1;
    }
    if (n >= 2) return x[0] == y[0] && x[n - 1] == y[n - 1] && x[n / 2] == y[n / 2];
    return n == 0 || x[0] == y[0];
}

/* Copies n bytes from src to dst (not overlapping), in line for the same short keys: loads
 * and stores from both ends instead of a call to memcpy; longer ones go to memcpy. */
static inline void brk_copy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        uint64_t a, z;
        memcpy(&a, s, 8), memcpy(&z, s + n - 8, 8);
        memcpy(d, &a, 8), memcpy(d + n - 8, &z, 8);
    } else if (n >= 4) {
        uint32_t a, z;
        memcpy(&a, s, 4), memcpy(&z, s + n - 4, 4);
        memcpy(d, &a, 4), memcpy(d + n - 4, &z, 4);
    } else if (n) {
        uint8_t a = s[0], m = s[n / 2], z = s[n - 1];
        d[0] = a, d[n / 2] = m, d[n - 1] = z;
    }
}

typedef struct brk_node {
    struct brk_node *next;
    uint64_t hash;
    const void *key; /* owned by the entry; must not change while the node is in a map */
    size_t klen;
} brk_node_t;

typedef struct brk_map {
    brk_node_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t n;
} brk_map_t;

/* Seeds the hash from the system's random source (once per process). */
void brk_map_seed(void);

/* Returns: 0. Errors: -ENOMEM. */
int brk_map_init(brk_map_t *m);
void brk_map_close(brk_map_t *m);

brk_node_t *brk_map_get(const brk_map_t *m, const void *key, size_t klen);
/* Links node, whose key and klen are set and not yet in m. Never fails: when growing the
 * bucket array fails, the chains just get longer. */
void brk_map_put(brk_map_t *m, brk_node_t *node);
/* Unlinks node, which must be in m. */
void brk_map_del(brk_map_t *m, brk_node_t *node);
/* The same with the key's hash given: h is brk_map_hash(key, klen), or for a composite key
 * a mix of such hashes (still keyed, so still unpredictable to a peer), computed once by a
 * caller that looks one key up in several maps. The same key must always get the same h. */
uint64_t brk_map_hash(const void *key, size_t klen);
brk_node_t *brk_map_get_h(const brk_map_t *m, const void *key, size_t klen, uint64_t h);
void brk_map_put_h(brk_map_t *m, brk_node_t *node, uint64_t h);
/* Iteration: pass NULL for the first node; returns NULL after the last. Do not put or delete
 * while iterating (collect first). */
brk_node_t *brk_map_next(const brk_map_t *m, const brk_node_t *prev);

#endif
