/* base/heap.h: an intrusive binary min-heap of deadlines: the node lives inside the owner's
 * object (a libactor timer, a broker job) and knows its position, so removing any node is
 * O(log n) without a search. Nodes are ordered by (key, push order): equal keys come out in
 * the order they went in. */
#ifndef BASE_HEAP_H
#define BASE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct base_heap_node {
    int64_t key;  /* the deadline */
    uint64_t seq; /* push order, for ties */
    size_t idx;   /* position in the heap, SIZE_MAX when not in one */
} base_heap_node_t;

typedef struct base_heap {
    base_heap_node_t **v;
    size_t n, cap;
    uint64_t seq;
} base_heap_t;

#define BASE_HEAP_INIT {NULL, 0, 0, 0}

static inline void base_heap_node_init(base_heap_node_t *x) {
    x->key = -1;
    x->seq = 0;
    x->idx = SIZE_MAX;
}
static inline bool base_heap_in(const base_heap_node_t *x) { return x->idx != SIZE_MAX; }
/* The node with the smallest key, or NULL when empty. */
static inline base_heap_node_t *base_heap_top(const base_heap_t *h) {
    return h->n ? h->v[0] : NULL;
}

/* Makes room for n nodes in all, so that pushes up to n cannot fail. Returns: 0.
 * Errors: -ENOMEM. */
int base_heap_reserve(base_heap_t *h, size_t n);
/* Puts x (not in a heap) in with key; grows the array when full. Returns: 0.
 * Errors: -ENOMEM (x is left out). */
int base_heap_push(base_heap_t *h, base_heap_node_t *x, int64_t key);
/* Takes x out; nothing when it is not in. */
void base_heap_remove(base_heap_t *h, base_heap_node_t *x);
/* Frees the array (the nodes are the owner's); h is empty and usable again. */
void base_heap_free(base_heap_t *h);

#endif
