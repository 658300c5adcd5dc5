/* cond.c: Condition (bound to an act_lock_t) and Barrier, built like sync.c's primitives: the
 * waker hands the outcome over (a notification, an arrival index) before firing the waiter's
 * clause, so a waiter that was cancelled or timed out is simply no longer in the list. */
#include "internal.h"

/* ---- condition ---- */

int act_cond_init(act_cond_t *c, act_lock_t *lock) {
    if (!lock) return ACT_EINVAL;
    c->lock = lock;
    act__list_init(&c->waiters);
    return 0;
}

int act_cond_close(act_cond_t *c) { return act__list_empty(&c->waiters) ? 0 : ACT_EBUSY; }

/* Checks that the calling task holds the condition's lock. */
static int held(const act_cond_t *c) {
    act_task_t *t = act_current();
    if (!t) return ACT_EINVAL;
    return c->lock->owner == t ? 0 : ACT_EPERM;
}

/* Takes the lock back after a wait. Shielded: the caller's lock discipline (it holds the lock
 * on return, whatever happened) must survive cancellation and expired scopes. */
static void reacquire(act_lock_t *l) {
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    int rc = act_lock_acquire(l, -1);
    act_scope_leave(&shield);
    ACT_ASSERT(rc == 0); /* shielded, no deadline, not held by us: it cannot fail */
}

int act_cond_wait(act_cond_t *c, int64_t deadline) {
    act__waiter w;
    act__clause cl;
    int rc = held(c);
    if (rc) return rc;
    rc = act__wait_enter(&w, "condition", c);
    if (rc) return rc; /* the lock was never released */
    if (deadline == 0) return ACT_ETIMEDOUT; /* a poll can never be notified */
    act__clause_init(&cl, &w, 0);
    act__list_push(&c->waiters, &cl.link);
    act_lock_release(c->lock); /* hands it to the next acquirer; nothing runs until we park */
    rc = act__wait(&w, &cl, 1, deadline);
    reacquire(c->lock);
    return rc < 0 ? rc : 0;
}

int act_cond_wait_for(act_cond_t *c, bool (*pred)(void *ctx), void *ctx, int64_t deadline) {
    int rc = held(c);
    if (rc) return rc;
    if (!pred) return ACT_EINVAL;
    while (!pred(ctx)) {
        rc = act_cond_wait(c, deadline);
        if (rc) return rc;
    }
    return 0;
}

int act_cond_notify(act_cond_t *c, int n) {
    int rc = held(c);
    if (rc) return rc;
    if (n < 0) return ACT_EINVAL;
    int woken = 0;
    while (woken < n && act__list_fire_first(&c->waiters, 0)) woken++;
    return woken;
}

int act_cond_notify_all(act_cond_t *c) {
    int rc = held(c);
    if (rc) return rc;
    return (int)act__list_fire_all(&c->waiters, 0);
}

/* ---- barrier ---- */

/* A parked arrival's clause carries its outcome: data points at the barrier once the barrier
 * itself fired it (trip, abort, reset), prio holds the arrival index. A clause fired by
 * cancellation or a deadline has data NULL: its task still counts in b->count until it
 * resumes and leaves (see barrier_leave). */

int act_barrier_init(act_barrier_t *b, int parties) {
    if (parties < 1) return ACT_EINVAL;
    b->parties = parties;
    b->count = 0;
    b->cycle = 0;
    b->broken = false;
    act__list_init(&b->waiters);
    return 0;
}

int act_barrier_close(act_barrier_t *b) { return act__list_empty(&b->waiters) ? 0 : ACT_EBUSY; }

int act_barrier_n_waiting(const act_barrier_t *b) {
    int n = 0;
    for (const act__list *p = b->waiters.next; p != &b->waiters; p = p->next) n++;
    return n;
}

bool act_barrier_broken(const act_barrier_t *b) { return b->broken; }

/* Fires every parked arrival with code; on success each gets its index in arrival order.
 * Ends the cycle: count restarts and late leavers of this cycle no longer touch it. */
static int release_all(act_barrier_t *b, int code) {
    act__list *n;
    int i = 0;
    while ((n = act__list_pop(&b->waiters)) != NULL) {
        act__clause *c = act__container_of(n, act__clause, link);
        c->data = b;
        c->prio = i;
        if (act__clause_fire(c, code)) i++;
    }
    b->count = 0;
    b->cycle++;
    return i;
}

/* True when this arrival completes the cycle. b->count over-counts while a timed-out or
 * cancelled arrival has not resumed yet, so the list (always exact) decides near the end. */
static bool trips(const act_barrier_t *b) {
    if (b->count + 1 < b->parties) return false;
    return act_barrier_n_waiting(b) + 1 == b->parties;
}

/* A parked arrival left without passing: it no longer counts in its own cycle. */
static void barrier_leave(act_barrier_t *b, unsigned cycle) {
    if (b->cycle == cycle) b->count--;
}

int act_barrier_wait(act_barrier_t *b, int64_t deadline) {
    act__waiter w;
    act__clause c;
    int rc = act__wait_enter(&w, "barrier", b);
    if (rc) return rc;
    if (b->broken) return ACT_EBROKEN;
    if (trips(b)) {
        release_all(b, 0);
        return b->parties - 1;
    }
    act__clause_init(&c, &w, 0);
    act__list_push(&b->waiters, &c.link);
    b->count++;
    unsigned cycle = b->cycle;
    rc = act__wait(&w, &c, 1, deadline);
    if (c.data) return rc < 0 ? rc : (int)c.prio; /* the barrier decided */
    barrier_leave(b, cycle);
    return rc;
}

int act_barrier_abort(act_barrier_t *b) {
    b->broken = true;
    return release_all(b, ACT_EBROKEN);
}

int act_barrier_reset(act_barrier_t *b) {
    b->broken = false;
    return release_all(b, ACT_EBROKEN);
}
