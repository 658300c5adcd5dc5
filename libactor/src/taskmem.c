/* taskmem.c: task records come from 64 KiB slabs of the loop instead of malloc. A burst of
 * 100k tasks freed at once made glibc trim its heap and fault it all in again on the next
 * burst (4-10x slower spawns); here a slab whose tasks have all ended keeps its pages, and
 * the loop's periodic trim (act__pools_trim, at most once a second) gives the pages of the
 * empty slabs beyond a few back with MADV_FREE, which the kernel takes only when it needs
 * memory. Not on the hot path: each madvise is a TLB shootdown, which a VM pays dearly for.
 * ASan builds use calloc, so a use after free of a task is still reported. */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define TSLAB_SIZE ((size_t)64 * 1024)
#define TSLAB_IDLE_MAX 8 /* empty slabs that keep their pages */

/* The slab header sits in the slab's first slot; the rest are task records. */
typedef struct act__tslab {
    act__list open;  /* in the loop's list of slabs with a free slot */
    act__list all;   /* in the loop's list of every slab */
    void *free;      /* freed slots, linked through their first word */
    size_t used;     /* slots handed out */
    size_t fresh;    /* slots [fresh, nslots) were never handed out since the last reset */
    bool idle;       /* empty and counted in L->tslab_idle */
} act__tslab;

#define SLOT ((sizeof(act_task_t) + 7) & ~(size_t)7)
#define FIRST ((sizeof(act__tslab) + SLOT - 1) / SLOT) /* slots the header takes */
#define NSLOTS (TSLAB_SIZE / SLOT)

#ifndef ACT_ASAN
static act__tslab *slab_of(const act_task_t *t) {
    return (act__tslab *)((uintptr_t)t & ~(uintptr_t)(TSLAB_SIZE - 1));
}

/* Maps a slab aligned to its size, so a task finds its slab by masking its address. */
static act__tslab *slab_new(act_loop_t *L) {
    size_t len = 2 * TSLAB_SIZE;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *at = (char *)(((uintptr_t)m + TSLAB_SIZE - 1) & ~(uintptr_t)(TSLAB_SIZE - 1));
    if (at > m) munmap(m, (size_t)(at - m));
    if (at + TSLAB_SIZE < m + len) munmap(at + TSLAB_SIZE, (size_t)(m + len - at - TSLAB_SIZE));
    act__tslab *s = (act__tslab *)at;
    s->free = NULL;
    s->used = 0;
    s->fresh = FIRST;
    s->idle = false;
    act__list_push(&L->tslabs, &s->all);
    act__list_push_front(&L->tslabs_open, &s->open);
    return s;
}
#endif

act_task_t *act__task_alloc(act_loop_t *L) {
#ifdef ACT_ASAN
    (void)L;
    return calloc(1, sizeof(act_task_t));
#else
    act__tslab *s;
    if (act__list_empty(&L->tslabs_open)) {
        if (!(s = slab_new(L))) return NULL;
    } else {
        s = act__container_of(L->tslabs_open.next, act__tslab, open);
    }
    void *p;
    if (s->free) {
        p = s->free;
        s->free = *(void **)p;
    } else {
        p = (char *)s + s->fresh++ * SLOT;
    }
    if (s->idle) {
        s->idle = false;
        L->tslab_idle--;
    }
    s->used++;
    if (!s->free && s->fresh == NSLOTS) act__list_remove(&s->open); /* full */
    memset(p, 0, sizeof(act_task_t));
    return p;
#endif
}

void act__task_free(act_loop_t *L, act_task_t *t) {
#ifdef ACT_ASAN
    (void)L;
    free(t);
#else
    act__tslab *s = slab_of(t);
    if (!act__list_linked(&s->open)) act__list_push_front(&L->tslabs_open, &s->open);
    *(void **)t = s->free;
    s->free = t;
    if (--s->used) return;
    s->idle = true;
    L->tslab_idle++;
#endif
}

void act__task_slabs_trim(act_loop_t *L) {
    if (L->tslab_idle <= TSLAB_IDLE_MAX) return;
    size_t page = L->stacks.page;
    for (act__list *n = L->tslabs.next; n != &L->tslabs && L->tslab_idle > TSLAB_IDLE_MAX;
         n = n->next) {
        act__tslab *s = act__container_of(n, act__tslab, all);
        if (!s->idle || (s->fresh == FIRST && !s->free)) continue; /* busy, or given back */
        /* The header's page stays; the free list, which lives in the pages given back,
         * starts over. */
        madvise((char *)s + page, TSLAB_SIZE - page, MADV_FREE);
        s->free = NULL;
        s->fresh = FIRST;
        s->idle = false; /* still empty, no longer holding pages */
        L->tslab_idle--;
    }
}

void act__task_slabs_close(act_loop_t *L) {
    act__list *n;
    while ((n = act__list_pop(&L->tslabs)) != NULL) {
        munmap(act__container_of(n, act__tslab, all), TSLAB_SIZE);
    }
    act__list_init(&L->tslabs_open);
    L->tslab_idle = 0;
}
