/* timer.c: the loop's deadlines, a binary min-heap of intrusive timers ordered by
 * (deadline, arming order), so equal deadlines fire in the order they were set.
 * Only parked tasks arm timers; libuv's own timer is set to the earliest one. */
#include "internal.h"

void act__timer_init(act__timer *t, act__timer_fn *fire) {
    t->deadline = -1;
    t->seq = 0;
    t->idx = SIZE_MAX;
    t->fire = fire;
}

static bool before(const act__timer *a, const act__timer *b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(act__heap *h, size_t i, act__timer *t) {
    h->v[i] = t;
    t->idx = i;
}

static void sift_up(act__heap *h, size_t i) {
    act__timer *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, h->v[parent])) break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(act__heap *h, size_t i) {
    act__timer *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c])) c++;
        if (!before(h->v[c], t)) break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

int act__timer_arm(act_loop_t *L, act__timer *t, int64_t deadline) {
    act__heap *h = &L->timers;
    if (act__timer_armed(t)) act__timer_disarm(L, t);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        act__timer **v = realloc(h->v, cap * sizeof(*v));
        if (!v) return ACT_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    /* A deadline before the clock's start (a past time computed on a virtual clock that
     * starts at 0) is due at once; the heap reads negative as "none". */
    t->deadline = deadline < 0 ? 0 : deadline;
    t->seq = h->seq++;
    place(h, h->n++, t);
    sift_up(h, t->idx);
    return 0;
}

void act__timer_disarm(act_loop_t *L, act__timer *t) {
    act__heap *h = &L->timers;
    if (!act__timer_armed(t)) return;
    size_t i = t->idx;
    act__timer *last = h->v[--h->n];
    t->idx = SIZE_MAX;
    if (last == t) return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, last->idx);
}

size_t act__timers_run(act_loop_t *L, int64_t now) {
    act__heap *h = &L->timers;
    size_t fired = 0;
    while (h->n && h->v[0]->deadline <= now) {
        act__timer *t = h->v[0];
        act__timer_disarm(L, t);
        t->fire(t);
        fired++;
    }
    return fired;
}

int64_t act__timers_next(const act_loop_t *L) {
    return L->timers.n ? L->timers.v[0]->deadline : -1;
}

void act__heap_free(act__heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
