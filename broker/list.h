/* broker/list.h: the intrusive circular doubly-linked list the broker's tables use for queues,
 * per-worker and per-client job lists. A node links to itself when unlinked, so unlinking
 * twice is harmless and "is it linked" is one comparison. */
#ifndef BRK_LIST_H
#define BRK_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct brk_list {
    struct brk_list *prev, *next;
} brk_list_t;

#define brk_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void brk_list_init(brk_list_t *h) { h->prev = h->next = h; }
static inline bool brk_list_empty(const brk_list_t *h) { return h->next == h; }
static inline bool brk_list_linked(const brk_list_t *n) { return n->next != n; }

static inline void brk_list_push(brk_list_t *h, brk_list_t *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void brk_list_push_front(brk_list_t *h, brk_list_t *n) {
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

static inline void brk_list_unlink(brk_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
