/* broker/jobslots.h: the broker's own job ids and the table that finds a job by one without
 * hashing. An id is a 64-bit counter; the job sits in slot (id & mask) of a power-of-two array
 * kept at most half full, and the entry stores its whole id, so a lookup is one index and one
 * compare: the id's bits above the mask are the slot's generation, and an id whose slot was
 * reused (a stale answer from a worker) finds the new entry's id differ and gets NULL. A new id
 * is the next counter value whose slot is free (ids stay unique and increasing; the few
 * skipped are never used). Ids are chosen by the broker, never by a peer, so there is nothing
 * to aim at a slot. Standalone (no brk_t) so that its unit test links it alone. */
#ifndef BRK_JOBSLOTS_H
#define BRK_JOBSLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embedded in the entry (the job): its id, set by brk_slots_add. */
typedef struct brk_slot {
    uint64_t id;
} brk_slot_t;

typedef struct brk_slots {
    brk_slot_t **v;  /* cap entries, NULL: free */
    size_t cap;      /* a power of two, or 0 before the first reserve */
    size_t n;        /* entries in use */
    size_t max;      /* the bound (--max-jobs) */
} brk_slots_t;

/* An empty table of at most max entries; allocates nothing until brk_slots_reserve. */
void brk_slots_init(brk_slots_t *t, size_t max);
void brk_slots_close(brk_slots_t *t); /* frees the array, not the entries */
/* Makes room for one more entry, so that the next brk_slots_add cannot fail for memory.
 * Returns: 0. Errors: -ENOSPC (max entries in use), -ENOMEM (growing failed; the table is
 * unchanged and still correct). */
int brk_slots_reserve(brk_slots_t *t);
/* Gives e the first id >= *next whose slot is free and for which taken(arg, id) is false
 * (taken may be NULL: the caller's ids from elsewhere, e.g. adopted jobs, are never reused),
 * puts e there and sets *next past it. Returns: 0. Errors: -ENOSPC (max entries in use),
 * -ENOMEM (no room reserved and growing failed). Ownership: e stays the caller's; the table
 * holds a pointer until brk_slots_del. */
int brk_slots_add(brk_slots_t *t, brk_slot_t *e, uint64_t *next,
                  bool (*taken)(void *arg, uint64_t id), void *arg);
/* The entry with exactly this id, or NULL (never added, deleted, or its slot reused). */
static inline brk_slot_t *brk_slots_get(const brk_slots_t *t, uint64_t id) {
    if (!t->cap) return NULL;
    brk_slot_t *e = t->v[id & (t->cap - 1)];
    return e && e->id == id ? e : NULL;
}
/* Removes e if it is in the table (safe to call for an entry that is not). */
void brk_slots_del(brk_slots_t *t, brk_slot_t *e);
/* Iteration in slot order: pass NULL first; NULL after the last. Do not add or delete while
 * iterating. */
brk_slot_t *brk_slots_next(const brk_slots_t *t, const brk_slot_t *prev);
/* Removes and returns the first entry at or after slot *cursor (start with 0), advancing
 * *cursor past it; NULL when none is left. Emptying the table this way is one pass. */
brk_slot_t *brk_slots_take(brk_slots_t *t, size_t *cursor);

#endif
