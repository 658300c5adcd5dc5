/* queue.c: bounded FIFO (ring), LIFO (stack) and PRIORITY (binary heap with an insertion
 * sequence for stability) queues. A put hands its item straight to the first parked getter; a
 * get moves the first parked putter's item in before waking it. Getters park only on an empty
 * queue and putters only on a full one, so a cancelled or timed-out waiter simply leaves the
 * list: no item is lost or duplicated. Storage grows by doubling up to maxsize. */
#include <string.h>

#include "queue_internal.h"

#define INITIAL_SLOTS 16

typedef struct pent {
    void *item;   /* the caller's pointer */
    int64_t prio; /* lower first */
    uint64_t seq; /* insertion order among equal prios */
} pent;

struct act_queue {
    act_queue_kind_t kind; /* FIFO, LIFO or PRIORITY */
    size_t maxsize;        /* the bound */
    size_t n;              /* items queued */
    size_t cap;            /* slots allocated (<= maxsize) */
    size_t head;           /* FIFO: index of the oldest item in the ring */
    void **items;          /* FIFO and LIFO slots */
    pent *heap;            /* PRIORITY slots */
    uint64_t seq;          /* next insertion sequence */
    size_t outstanding;    /* items got and not yet task_done */
    bool shutdown;         /* puts refused, gets drain */
    size_t nwoken;         /* LIFO/PRIORITY getters woken to take an item, not yet run */
    act__list getters;     /* parked getters (queue empty) */
    act__list putters;     /* parked putters (queue full), clause data/prio: their item */
    act__list joiners;     /* parked in join */
};

int act_queue_new(act_queue_t **out, act_queue_kind_t kind, size_t maxsize) {
    if (!out) return ACT_EINVAL;
    *out = NULL;
    if (maxsize == 0 ||
        (kind != ACT_QUEUE_FIFO && kind != ACT_QUEUE_LIFO && kind != ACT_QUEUE_PRIORITY)) {
        return ACT_EINVAL;
    }
    act_queue_t *q = calloc(1, sizeof(*q));
    if (!q) return ACT_ENOMEM;
    q->kind = kind;
    q->maxsize = maxsize;
    act__list_init(&q->getters);
    act__list_init(&q->putters);
    act__list_init(&q->joiners);
    *out = q;
    return 0;
}

int act_queue_destroy(act_queue_t **qp) {
    if (!qp || !*qp) return 0;
    act_queue_t *q = *qp;
    if (!act__list_empty(&q->getters) || !act__list_empty(&q->putters) ||
        !act__list_empty(&q->joiners) || q->nwoken) {
        return ACT_EBUSY;
    }
    free(q->items);
    free(q->heap);
    free(q);
    *qp = NULL;
    return 0;
}

/* ---- storage ---- */

/* Makes room for one more item (n < maxsize holds): doubles the slots, up to maxsize. */
static int grow(act_queue_t *q) {
    if (q->n < q->cap) return 0;
    size_t cap = q->cap ? q->cap * 2 : INITIAL_SLOTS;
    if (cap > q->maxsize || cap < q->cap) cap = q->maxsize;
    if (q->kind == ACT_QUEUE_PRIORITY) {
        pent *h = realloc(q->heap, cap * sizeof(*h));
        if (!h) return ACT_ENOMEM;
        q->heap = h;
    } else if (q->kind == ACT_QUEUE_LIFO) {
        void **v = realloc(q->items, cap * sizeof(*v));
        if (!v) return ACT_ENOMEM;
        q->items = v;
    } else { /* the ring is full: copy it out in order so the oldest sits at 0 */
        void **v = malloc(cap * sizeof(*v));
        if (!v) return ACT_ENOMEM;
        for (size_t i = 0; i < q->n; i++)
            v[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = v;
        q->head = 0;
    }
    q->cap = cap;
    return 0;
}

static bool pent_less(const pent *a, const pent *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void heap_push(act_queue_t *q, void *item, int64_t prio) {
    pent e = {item, prio, q->seq++};
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pent_less(&e, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

static pent heap_pop(act_queue_t *q) {
    pent top = q->heap[0];
    pent last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= q->n) break;
        if (kid + 1 < q->n && pent_less(&q->heap[kid + 1], &q->heap[kid])) kid++;
        if (!pent_less(&q->heap[kid], &last)) break;
        q->heap[i] = q->heap[kid];
        i = kid;
    }
    if (q->n) q->heap[i] = last;
    return top;
}

/* Stores an item; the caller made sure a slot is allocated. */
static void store(act_queue_t *q, void *item, int64_t prio) {
    switch (q->kind) {
    case ACT_QUEUE_PRIORITY:
        heap_push(q, item, prio);
        break;
    case ACT_QUEUE_LIFO:
        q->items[q->n++] = item;
        break;
    default:
        q->items[(q->head + q->n++) % q->cap] = item;
        break;
    }
}

static void take(act_queue_t *q, void **item, int64_t *prio) {
    *prio = 0;
    if (q->kind == ACT_QUEUE_PRIORITY) {
        pent e = heap_pop(q);
        *item = e.item;
        *prio = e.prio;
    } else if (q->kind == ACT_QUEUE_LIFO) {
        *item = q->items[--q->n];
    } else {
        *item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
}

/* ---- the helpers shared with choose.c ---- */

static bool live(const act__clause *c) { return c->notify || !c->w->fired; }

static void wake_joiners_if_done(act_queue_t *q) {
    if (q->n + q->outstanding == 0) act__list_fire_all(&q->joiners, 0);
}

/* LIFO and PRIORITY: an item was stored; wake the first live getter to take one. It takes
 * what is best when it runs (asyncio's getter does the same), not this item. */
static void wake_getter(act_queue_t *q) {
    act__list *n;
    while ((n = act__list_pop(&q->getters)) != NULL) {
        if (act__clause_fire(act__container_of(n, act__clause, link), 0)) {
            q->nwoken++;
            return;
        }
    }
}

int act__queue_try_put(act_queue_t *q, void *item, int64_t prio) {
    if (q->shutdown) return ACT_ECLOSED;
    if (q->kind != ACT_QUEUE_PRIORITY) prio = 0;
    act__list *n;
    /* FIFO: the first parked getter would take this very item anyway: hand it over. */
    while (q->kind == ACT_QUEUE_FIFO && (n = act__list_pop(&q->getters)) != NULL) {
        act__clause *c = act__container_of(n, act__clause, link);
        c->data = item;
        c->prio = prio;
        if (act__clause_fire(c, 0)) {
            q->outstanding++;
            return 0;
        }
    }
    if (q->n == q->maxsize) return ACT_EAGAIN;
    int rc = grow(q);
    if (rc) return rc;
    store(q, item, prio);
    if (q->kind != ACT_QUEUE_FIFO) wake_getter(q);
    return 0;
}

int act__queue_woken_get(void **item, int64_t *prio, const act__clause *c) {
    act_queue_t *q = c->ctx;
    if (!q) { /* FIFO: handed over with the wake-up; the queue may be gone by now */
        *item = c->data;
        *prio = c->prio;
        return 0;
    }
    q->nwoken--;
    return act__queue_try_get(q, item, prio); /* ACT_EAGAIN: someone took it first */
}

/* A slot just came free: move the first parked putter's item in and wake it. */
static void refill(act_queue_t *q) {
    act__list *n;
    while (q->n < q->maxsize && (n = act__list_pop(&q->putters)) != NULL) {
        act__clause *c = act__container_of(n, act__clause, link);
        if (!live(c)) continue;
        store(q, c->data, c->prio);
        act__clause_fire(c, 0);
        return;
    }
}

int act__queue_try_get(act_queue_t *q, void **item, int64_t *prio) {
    if (q->n == 0) return q->shutdown ? ACT_ECLOSED : ACT_EAGAIN;
    take(q, item, prio);
    q->outstanding++;
    refill(q);
    return 0;
}

void act__queue_link_get(act_queue_t *q, act__clause *c) {
    /* LIFO/PRIORITY getters take their item from the queue when they run, so they need it
     * (it stays: it counts them as woken); a FIFO getter never touches it again. */
    c->ctx = q->kind == ACT_QUEUE_FIFO ? NULL : q;
    act__list_push(&q->getters, &c->link);
}

void act__queue_link_put(act_queue_t *q, act__clause *c, void *item, int64_t prio) {
    c->data = item;
    c->prio = q->kind == ACT_QUEUE_PRIORITY ? prio : 0;
    act__list_push(&q->putters, &c->link);
}

/* ---- public calls ---- */

int act_queue_put_prio(act_queue_t *q, void *item, int64_t prio, int64_t deadline) {
    act__waiter w;
    act__clause c;
    if (!q) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "queue put", q);
    if (rc) return rc;
    rc = act__queue_try_put(q, item, prio);
    if (rc != ACT_EAGAIN) return rc;
    act__clause_init(&c, &w, 0);
    act__queue_link_put(q, &c, item, prio);
    rc = act__wait(&w, &c, 1, deadline); /* q may be gone once woken: do not touch it */
    return rc < 0 ? rc : 0;
}

int act_queue_put(act_queue_t *q, void *item, int64_t deadline) {
    return act_queue_put_prio(q, item, 0, deadline);
}

int act_queue_put_nowait(act_queue_t *q, void *item) {
    if (!q) return ACT_EINVAL;
    return act__queue_try_put(q, item, 0);
}

int act_queue_get_prio(act_queue_t *q, void **item, int64_t *prio, int64_t deadline) {
    act__waiter w;
    act__clause c;
    int64_t p;
    if (!q || !item) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "queue get", q);
    if (rc) return rc;
    while ((rc = act__queue_try_get(q, item, &p)) == ACT_EAGAIN) {
        act__clause_init(&c, &w, 0);
        act__queue_link_get(q, &c);
        /* FIFO: q may be gone once woken (the item came with the wake-up): do not touch it.
         * LIFO/PRIORITY: the queue counts this getter as woken, so it stays. */
        rc = act__wait(&w, &c, 1, deadline);
        if (rc < 0) break;
        if ((rc = act__queue_woken_get(item, &p, &c)) != ACT_EAGAIN) break;
        if ((rc = act__wait_enter(&w, "queue get", q)) != 0) break;
    }
    if (rc == 0 && prio) *prio = p;
    return rc;
}

int act_queue_get(act_queue_t *q, void **item, int64_t deadline) {
    return act_queue_get_prio(q, item, NULL, deadline);
}

int act_queue_get_nowait(act_queue_t *q, void **item) {
    int64_t prio;
    if (!q || !item) return ACT_EINVAL;
    return act__queue_try_get(q, item, &prio);
}

int act_queue_task_done(act_queue_t *q) {
    if (!q) return ACT_EINVAL;
    if (q->outstanding == 0) return ACT_EOVERRELEASE;
    q->outstanding--;
    wake_joiners_if_done(q);
    return 0;
}

int act_queue_join(act_queue_t *q, int64_t deadline) {
    act__waiter w;
    act__clause c;
    if (!q) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "queue join", q);
    if (rc) return rc;
    if (q->n + q->outstanding == 0) return 0;
    act__clause_init(&c, &w, 0);
    act__list_push(&q->joiners, &c.link);
    rc = act__wait(&w, &c, 1, deadline);
    return rc < 0 ? rc : 0;
}

int act_queue_shutdown(act_queue_t *q, bool immediate) {
    if (!q) return ACT_EINVAL;
    q->shutdown = true;
    if (immediate) { /* discarded items count as done: they leave the unfinished total */
        q->n = 0;
        q->head = 0;
    }
    act__list_fire_all(&q->getters, ACT_ECLOSED);
    act__list_fire_all(&q->putters, ACT_ECLOSED);
    wake_joiners_if_done(q);
    return 0;
}

size_t act_queue_size(const act_queue_t *q) { return q ? q->n : 0; }
size_t act_queue_maxsize(const act_queue_t *q) { return q ? q->maxsize : 0; }
