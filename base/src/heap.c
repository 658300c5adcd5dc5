/* base/src/heap.c: the intrusive min-heap of base/heap.h. */
#include "base/heap.h"

#include <errno.h>
#include <stdlib.h>

static bool before(const base_heap_node_t *a, const base_heap_node_t *b) {
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void place(base_heap_t *h, size_t i, base_heap_node_t *x) {
    h->v[i] = x;
    x->idx = i;
}

static void sift_up(base_heap_t *h, size_t i) {
    base_heap_node_t *x = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(x, h->v[parent])) break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, x);
}

static void sift_down(base_heap_t *h, size_t i) {
    base_heap_node_t *x = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c])) c++;
        if (!before(h->v[c], x)) break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, x);
}

int base_heap_reserve(base_heap_t *h, size_t n) {
    if (n <= h->cap) return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n) {
        if (cap > SIZE_MAX / 2 / sizeof *h->v) return -ENOMEM;
        cap *= 2;
    }
    base_heap_node_t **v = realloc(h->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

int base_heap_push(base_heap_t *h, base_heap_node_t *x, int64_t key) {
    if (h->n == h->cap && base_heap_reserve(h, h->n + 1)) return -ENOMEM;
    x->key = key;
    x->seq = h->seq++;
    place(h, h->n++, x);
    sift_up(h, x->idx);
    return 0;
}

void base_heap_remove(base_heap_t *h, base_heap_node_t *x) {
    if (!base_heap_in(x)) return;
    size_t i = x->idx;
    base_heap_node_t *last = h->v[--h->n];
    x->idx = SIZE_MAX;
    if (last == x) return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, last->idx);
}

void base_heap_free(base_heap_t *h) {
    free(h->v);
    *h = (base_heap_t)BASE_HEAP_INIT;
}
