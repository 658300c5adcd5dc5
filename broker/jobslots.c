/* broker/jobslots.c: the broker's job ids and their slot table (jobslots.h). */
#include "jobslots.h"

#include <errno.h>
#include <stdlib.h>

void brk_slots_init(brk_slots_t *t, size_t max) {
    t->v = NULL;
    t->cap = t->n = 0;
    t->max = max;
}

void brk_slots_close(brk_slots_t *t) {
    free(t->v);
    t->v = NULL;
    t->cap = t->n = 0;
}

/* Doubling keeps every entry collision-free: two ids that differ modulo cap differ modulo
 * 2 * cap too. */
static int grow(brk_slots_t *t) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    if (nc < t->cap || nc > SIZE_MAX / sizeof *t->v) return -ENOMEM;
    brk_slot_t **v = calloc(nc, sizeof *v);
    if (!v) return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->v[i]) v[t->v[i]->id & (nc - 1)] = t->v[i];
    free(t->v);
    t->v = v;
    t->cap = nc;
    return 0;
}

int brk_slots_reserve(brk_slots_t *t) {
    if (t->n >= t->max) return -ENOSPC;
    /* At most half full: a new id finds a free slot within a few steps on average. */
    return (t->n + 1) * 2 > t->cap ? grow(t) : 0;
}

int brk_slots_add(brk_slots_t *t, brk_slot_t *e, uint64_t *next,
                  bool (*taken)(void *arg, uint64_t id), void *arg) {
    int rc = brk_slots_reserve(t);
    if (rc) return rc;
    /* Bounded: more than half the slots are free, so a free one comes within cap steps;
     * taken() may refuse ids too, at most as many as the caller holds outside the table. */
    uint64_t id = *next, mask = t->cap - 1;
    while (t->v[id & mask] || (taken && taken(arg, id))) id++;
    e->id = id;
    t->v[id & mask] = e;
    t->n++;
    *next = id + 1;
    return 0;
}

void brk_slots_del(brk_slots_t *t, brk_slot_t *e) {
    if (!t->cap || t->v[e->id & (t->cap - 1)] != e) return;
    t->v[e->id & (t->cap - 1)] = NULL;
    t->n--;
}

brk_slot_t *brk_slots_take(brk_slots_t *t, size_t *cursor) {
    for (; *cursor < t->cap; (*cursor)++) {
        brk_slot_t *e = t->v[*cursor];
        if (!e) continue;
        t->v[(*cursor)++] = NULL;
        t->n--;
        return e;
    }
    return NULL;
}

brk_slot_t *brk_slots_next(const brk_slots_t *t, const brk_slot_t *prev) {
    size_t i = prev ? (prev->id & (t->cap - 1)) + 1 : 0;
    for (; i < t->cap; i++)
        if (t->v[i]) return t->v[i];
    return NULL;
}
