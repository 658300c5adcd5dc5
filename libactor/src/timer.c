/* timer.c: the loop's deadlines, base's intrusive min-heap (base/heap.h) of timers ordered by
 * (deadline, arming order), so equal deadlines fire in the order they were set.
 * Only parked tasks arm timers; libuv's own timer is set to the earliest one. */
#include "internal.h"

#define TIMER(n) act__container_of(n, act__timer, node)

void act__timer_init(act__timer *t, act__timer_fn *fire) {
    base_heap_node_init(&t->node);
    t->fire = fire;
}

int act__timer_arm(act_loop_t *L, act__timer *t, int64_t deadline) {
    if (act__timer_armed(t)) act__timer_disarm(L, t);
    /* A deadline before the clock's start (a past time computed on a virtual clock that
     * starts at 0) is due at once; the heap reads negative as "none". */
    return base_heap_push(&L->timers, &t->node, deadline < 0 ? 0 : deadline) ? ACT_ENOMEM : 0;
}

void act__timer_disarm(act_loop_t *L, act__timer *t) { base_heap_remove(&L->timers, &t->node); }

size_t act__timers_run(act_loop_t *L, int64_t now) {
    size_t fired = 0;
    base_heap_node_t *top;
    while ((top = base_heap_top(&L->timers)) && top->key <= now) {
        act__timer *t = TIMER(top);
        act__timer_disarm(L, t);
        t->fire(t);
        fired++;
    }
    return fired;
}

int64_t act__timers_next(const act_loop_t *L) {
    const base_heap_node_t *top = base_heap_top(&L->timers);
    return top ? top->key : -1;
}

void act__heap_free(act__heap *h) { base_heap_free(h); }
