/* actor/sync.h: locks, semaphores, events, conditions and barriers for tasks of one loop. All
 * are caller-allocated (act_x_init / act_x_close), FIFO-fair, and hand ownership straight to the
 * first waiter, so a cancelled or timed-out waiter never leaves a permit or the lock behind. */
#ifndef ACTOR_SYNC_H
#define ACTOR_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/task.h"

/* ---- Lock: mutual exclusion, FIFO fair, not reentrant ---- */
typedef struct act_lock {
    act_task_t *owner;   /* holder, NULL when free */
    act_waitq_t waiters; /* parked acquirers, FIFO */
} act_lock_t;

int act_lock_init(act_lock_t *l);
/* Returns: 0. Errors: ACT_EBUSY while held or waited on. */
int act_lock_close(act_lock_t *l);
/* Returns: 0 once held. Errors: ACT_ECANCELED, ACT_ETIMEDOUT, ACT_EINVAL (outside a task, or
 * the caller already holds it). */
int act_lock_acquire(act_lock_t *l, int64_t deadline);
/* Returns: 0 when taken without waiting. Errors: ACT_EAGAIN (held), ACT_EINVAL. */
int act_lock_try(act_lock_t *l);
/* Hands the lock to the first waiter, if any. Returns: 0. Errors: ACT_EPERM (not the holder). */
int act_lock_release(act_lock_t *l);
bool act_lock_locked(const act_lock_t *l);

/* ---- Semaphore and BoundedSemaphore ---- */
struct act_sem {
    long value;          /* permits free */
    long bound;          /* BoundedSemaphore: the most permits there can be; -1 unbounded */
    act_waitq_t waiters; /* parked acquirers, FIFO */
    act_waitq_t gated;   /* spawned tasks waiting for a permit to start (no stack yet) */
};

/* Returns: 0. Errors: ACT_EINVAL (value < 0). */
int act_sem_init(act_sem_t *s, long value);
/* asyncio.BoundedSemaphore: a release past `value` permits fails with ACT_EOVERRELEASE
 * (asyncio raises ValueError). A bound of 0 is a bound: every release fails until a permit
 * is taken, and none can be. Returns: 0. Errors: ACT_EINVAL (value < 0). */
int act_sem_init_bounded(act_sem_t *s, long value);
/* Returns: 0. Errors: ACT_EBUSY while tasks wait on it. */
int act_sem_close(act_sem_t *s);
/* Returns: 0 with a permit. Errors: ACT_ECANCELED, ACT_ETIMEDOUT, ACT_EINVAL. */
int act_sem_acquire(act_sem_t *s, int64_t deadline);
/* Returns: 0 with a permit. Errors: ACT_EAGAIN (none free without waiting). */
int act_sem_try(act_sem_t *s);
/* Returns a permit; parked acquirers first, then gated tasks. Returns: 0.
 * Errors: ACT_EOVERRELEASE (bounded, and every permit is already free). */
int act_sem_release(act_sem_t *s);
long act_sem_value(const act_sem_t *s);

/* ---- Event: a flag that tasks wait for ---- */
typedef struct act_event {
    bool set;            /* the flag */
    act_waitq_t waiters; /* parked waiters */
} act_event_t;

int act_event_init(act_event_t *e);
/* Returns: 0. Errors: ACT_EBUSY while tasks wait on it. */
int act_event_close(act_event_t *e);
/* Sets the flag and wakes every waiter. Returns: the number woken. */
int act_event_set(act_event_t *e);
void act_event_clear(act_event_t *e);
bool act_event_is_set(const act_event_t *e);
/* Returns: 0 once set. Errors: ACT_ECANCELED, ACT_ETIMEDOUT, ACT_EINVAL. */
int act_event_wait(act_event_t *e, int64_t deadline);

/* ---- Condition: waits for a state guarded by a lock (asyncio.Condition) ---- */
typedef struct act_cond {
    act_lock_t *lock;    /* the lock it is bound to; not owned */
    act_waitq_t waiters; /* parked waiters, FIFO */
} act_cond_t;

/* Binds the condition to lock, which must outlive it and may be shared by several conditions.
 * Returns: 0. Errors: ACT_EINVAL (lock NULL). */
int act_cond_init(act_cond_t *c, act_lock_t *lock);
/* Returns: 0. Errors: ACT_EBUSY while tasks wait on it. The lock is left as it is. */
int act_cond_close(act_cond_t *c);
/* Releases the lock, parks until notified, and takes the lock again before returning. The
 * lock is held again on EVERY return, errors included: the re-acquire is shielded from
 * cancellation and timeouts, so it may wait past the deadline for the lock's holder. A waiter
 * that was notified and then cancelled still returns 0 (the notification is not lost; its next
 * blocking call fails). Spurious wake-ups do not happen, but notify_all wakes everyone: check
 * the state in a loop, or use act_cond_wait_for.
 * Returns: 0 once notified. Errors: ACT_EPERM (the caller does not hold the lock: nothing
 * happens), ACT_ECANCELED, ACT_ETIMEDOUT (deadline 0 polls and fails at once without releasing
 * the lock), ACT_EINVAL (outside a task). */
int act_cond_wait(act_cond_t *c, int64_t deadline);
/* Waits until pred(ctx) is true, checking it first and after every wake-up, with the lock held.
 * The deadline bounds the whole call.
 * Returns: 0 with pred true and the lock held. Errors: those of act_cond_wait, and ACT_EINVAL
 * (pred NULL). After ACT_ECANCELED or ACT_ETIMEDOUT the lock is held and pred may be false. */
int act_cond_wait_for(act_cond_t *c, bool (*pred)(void *ctx), void *ctx, int64_t deadline);
/* Wakes up to n waiters, oldest first; each takes the lock once the caller releases it.
 * Like asyncio, the caller must hold the lock.
 * Returns: the number woken (0..n). Errors: ACT_EPERM (lock not held), ACT_EINVAL (n < 0, or
 * outside a task). */
int act_cond_notify(act_cond_t *c, int n);
/* Wakes every waiter. Returns: the number woken.
 * Errors: ACT_EPERM (lock not held), ACT_EINVAL (outside a task). */
int act_cond_notify_all(act_cond_t *c);

/* ---- Barrier: parties tasks meet, then all go on (asyncio.Barrier) ---- */
typedef struct act_barrier {
    int parties;         /* tasks needed to trip it */
    int count;           /* arrivals parked this cycle, incl. timed-out ones not yet resumed */
    unsigned cycle;      /* bumped at each trip, abort and reset */
    bool broken;         /* aborted: every wait fails until reset */
    act_waitq_t waiters; /* parked arrivals, in arrival order */
} act_barrier_t;

/* Returns: 0. Errors: ACT_EINVAL (parties < 1). */
int act_barrier_init(act_barrier_t *b, int parties);
/* Returns: 0. Errors: ACT_EBUSY while tasks wait on it. */
int act_barrier_close(act_barrier_t *b);
/* Arrives and waits until parties tasks have arrived in this cycle. The arrival that completes
 * the cycle releases every waiter at once and the barrier is filling again for the next cycle
 * straight away (the draining phase is instantaneous: a woken waiter has already got its
 * index, so calling wait again joins the next cycle). A waiter that is cancelled or times out
 * while the barrier fills leaves it: the count drops and the next arrival takes its place,
 * as in asyncio; the tasks that do pass still get 0..parties-1. A released waiter keeps its
 * index even if the barrier is aborted before it runs. Deadline 0 succeeds only for the
 * arrival that trips the barrier.
 * Returns: the arrival index, 0 (first) .. parties-1 (the one that tripped it).
 * Errors: ACT_EBROKEN (aborted, or reset while waiting), ACT_ECANCELED, ACT_ETIMEDOUT,
 * ACT_EINVAL (outside a task). */
int act_barrier_wait(act_barrier_t *b, int64_t deadline);
/* Breaks the barrier: current waiters and every later wait fail with ACT_EBROKEN until
 * act_barrier_reset. Returns: the number of waiters woken. */
int act_barrier_abort(act_barrier_t *b);
/* Back to an empty, unbroken barrier; tasks still waiting fail with ACT_EBROKEN (as in
 * asyncio). Returns: the number of waiters woken. */
int act_barrier_reset(act_barrier_t *b);
/* Returns: the number of tasks parked in the current cycle (walks them: O(n)). */
int act_barrier_n_waiting(const act_barrier_t *b);
/* Returns: true between act_barrier_abort and act_barrier_reset. */
bool act_barrier_broken(const act_barrier_t *b);

#endif
