/* actor/compose.h: waiting on several tasks: gather, wait, as_completed, and task groups
 * (structured concurrency: a failing child cancels its siblings, every failure is kept in one
 * error group the caller inspects by code, like except*). */
#ifndef ACTOR_COMPOSE_H
#define ACTOR_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/task.h"

enum {
    ACT_GATHER_COLLECT = 1 << 0,       /* return_exceptions=True: wait for all, codes per task */
    ACT_GATHER_LEAVE_RUNNING = 1 << 1, /* asyncio's fail-fast: the others keep running */
};

/* asyncio.gather: waits for every task; results[i] and codes[i] (either may be NULL) are in
 * spawn order. A task that was cancelled counts as failed with ACT_ECANCELED (as in asyncio).
 * Default fail-fast, as Trio's nursery and asyncio's TaskGroup do: the first failure cancels
 * the others, waits for their cleanup, and is returned. With ACT_GATHER_LEAVE_RUNNING, as
 * asyncio.gather does, the first failure is returned at once and the other tasks are left
 * running (codes[i] reads 0 and results[i] NULL for those not done: check act_task_done;
 * join or cancel them later). With ACT_GATHER_COLLECT every task runs to its end and this
 * returns 0. If the deadline passes or the caller is cancelled, the unfinished tasks are
 * cancelled and waited for, whatever the flags (asyncio cancels a cancelled gather's
 * children too). Returns: 0. Errors: the first task error (fail-fast), ACT_ETIMEDOUT,
 * ACT_ECANCELED, ACT_ENOMEM, ACT_EINVAL. Ownership: the tasks stay the caller's. */
int act_gather(act_task_t **tasks, size_t n, void **results, int *codes, unsigned flags,
               int64_t deadline);

typedef enum act_wait_mode {
    ACT_FIRST_COMPLETED, /* any task ended */
    ACT_FIRST_EXCEPTION, /* any task failed with an error (ACT_ECANCELED is not one, as in
                            asyncio), or all ended */
    ACT_ALL_COMPLETED,   /* all ended */
} act_wait_mode_t;

/* asyncio.wait: returns when the mode's condition holds or the deadline passes, leaving the
 * tasks running. Returns: how many tasks have ended (check each with act_task_done).
 * Errors: ACT_ECANCELED, ACT_ETIMEDOUT (an enclosing scope expired), ACT_ENOMEM. */
int act_wait(act_task_t **tasks, size_t n, act_wait_mode_t mode, int64_t deadline);

/* as_completed: hands out tasks in the order they end. */
typedef struct act_as_completed {
    void *impl; /* internal state */
} act_as_completed_t;

/* Returns: 0. Errors: ACT_ENOMEM. Ownership: close it with act_as_completed_close. */
int act_as_completed_init(act_as_completed_t *it, act_task_t **tasks, size_t n);
/* Returns: 0 with *done the next task to end. Errors: ACT_EEOF (all handed out),
 * ACT_ETIMEDOUT, ACT_ECANCELED. */
int act_as_completed_next(act_as_completed_t *it, act_task_t **done, int64_t deadline);
void act_as_completed_close(act_as_completed_t *it);

/* ---- task groups ---- */
struct act_group {
    act_waitq_t children; /* running children */
    act_waitq_t failed;   /* children that failed, in order of failure */
    act_waitq_t waiters;  /* parked in act_group_wait */
    size_t live;          /* children not yet ended */
    size_t nfailed;       /* failures recorded */
    bool cancelling;      /* a failure or cancel is tearing the group down */
    act_task_t *owner;    /* the task that called act_group_init (holds a reference) */
    bool owner_interrupted; /* a failure cancelled the owner's body: undone by the wait */
    bool owner_waiting;   /* the owner is inside act_group_wait */
    act_waitq_t due;      /* in the loop's list of groups with a failure to react to */
};
typedef struct act_group act_group_t;

typedef struct act_group_error {
    const char *task;    /* the child's name (valid until act_group_close) */
    uint64_t task_id;    /* its id */
    int code;            /* its code */
    const char *message; /* its act_fail message, or the code's text */
} act_group_error_t;

/* asyncio.TaskGroup. The calling task (if any) becomes the group's owner. When a child fails
 * with an error other than ACT_ECANCELED, at the end of the scheduler pass (asyncio reacts in
 * a done callback, so tasks already scheduled, siblings that have not started included, run
 * one step first and may fail too: every failure is reported) the other children are
 * cancelled and the owner's body is interrupted: its current or next blocking call fails with
 * ACT_ECANCELED, and so does every later one (libactor's cancellation is level-triggered,
 * asyncio's is one-shot) until it calls act_group_wait, which undoes this (asyncio's
 * uncancel) and reports the failures. A shielded scope hides the interruption, as it hides
 * a cancellation. Returns: 0. Ownership: the group holds a reference to its owner until
 * act_group_close, which must be called. */
int act_group_init(act_group_t *g);
/* Spawns a child. Returns: 0. Errors: ACT_ECLOSED (the group is shutting down), as act_spawn.
 * Ownership: as act_spawn; the group keeps its own reference until the child ends. */
int act_group_spawn(act_group_t *g, act_task_fn fn, void *arg, const act_spawn_opts_t *opts,
                    act_task_t **out);
/* Waits for every child. If the deadline passes or the caller is cancelled, the children are
 * cancelled and waited for. Returns: 0 when none failed.
 * Errors: ACT_EGROUP (inspect with act_group_error*), ACT_ETIMEDOUT, ACT_ECANCELED. */
int act_group_wait(act_group_t *g, int64_t deadline);
/* Cancels every child that is not shielded. */
void act_group_cancel(act_group_t *g);
size_t act_group_error_count(const act_group_t *g);
/* The i-th failure. Returns: 0. Errors: ACT_EINVAL (no such index). */
int act_group_error(const act_group_t *g, size_t i, act_group_error_t *out);
/* How many failures carry code (except* matching). */
size_t act_group_count(const act_group_t *g, int code);
/* Frees the recorded failures. Returns: 0. Errors: ACT_EBUSY while children run. */
int act_group_close(act_group_t *g);

#endif
