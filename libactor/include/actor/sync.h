/* actor/sync.h: locks, semaphores and events for tasks of one loop. All are caller-allocated
 * (act_x_init / act_x_close), FIFO-fair, and hand ownership straight to the first waiter, so a
 * cancelled or timed-out waiter never leaves a permit or the lock behind. */
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
    long bound;          /* BoundedSemaphore: the most permits there can be; 0 unbounded */
    act_waitq_t waiters; /* parked acquirers, FIFO */
    act_waitq_t gated;   /* spawned tasks waiting for a permit to start (no stack yet) */
};

/* Returns: 0. Errors: ACT_EINVAL (value < 0). */
int act_sem_init(act_sem_t *s, long value);
/* A semaphore whose release past `value` permits fails with ACT_EOVERRELEASE. */
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

#endif
