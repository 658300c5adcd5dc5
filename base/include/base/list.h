/* base/list.h: the intrusive circular doubly-linked list (the broker's tables use it for queues,
 * per-worker and per-client job lists). A node links to itself when unlinked, so unlinking
 * twice is harmless and "is it linked" is one comparison. */
#ifndef BASE_LIST_H
#define BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct base_list {
    struct base_list *prev, *next;
} base_list_t;

#define base_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void base_list_init(base_list_t *h) { h->prev = h->next = h; }
static inline bool base_list_empty(const base_list_t *h) { return h->next == h; }
static inline bool base_list_linked(const base_list_t *n) { return n->next != n; }

static inline void base_list_push(base_list_t *h, base_list_t *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void base_list_push_front(base_list_t *h, base_list_t *n) {
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

static inline void base_list_unlink(base_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
