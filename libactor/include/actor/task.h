/* actor/task.h: tasks (stackful fibers), joining, cancellation, sleep, and timeout scopes.
 * Every blocking call takes an absolute deadline last (-1 none, 0 poll) and returns
 * ACT_ECANCELED once its task is cancelled (level-triggered: every later blocking call fails
 * too, until the task ends or enters a shielded scope) and ACT_ETIMEDOUT when a deadline
 * passes, be it the call's own or an enclosing scope's. */
#ifndef ACTOR_TASK_H
#define ACTOR_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/loop.h"

typedef struct act_sem act_sem_t;

enum {
    ACT_SPAWN_SMALL_STACK = 1 << 0, /* small-stack class: for very many light tasks */
    ACT_SPAWN_SHIELD = 1 << 1,      /* a task group's cancellation does not reach it */
};

typedef struct act_spawn_opts {
    const char *name;   /* not copied: must outlive the task (a literal is ideal) */
    size_t stack_size;  /* 0: the loop's default */
    unsigned flags;     /* ACT_SPAWN_* */
    act_sem_t *limit;   /* start only once a permit is held; released when the task ends.
                           Until then the task holds no stack. */
} act_spawn_opts_t;

typedef enum act_task_state {
    ACT_TASK_NEW,     /* spawned, not started: holds no stack */
    ACT_TASK_READY,   /* runnable, in the run queue */
    ACT_TASK_RUNNING, /* the current task */
    ACT_TASK_WAITING, /* parked in a blocking call */
    ACT_TASK_DONE,    /* ended: result, error or cancelled */
} act_task_state_t;

/* Spawns fn(arg) as a task on the calling thread's loop; it runs when the caller next blocks.
 * opts may be NULL. Must be called on a loop thread (inside act_run).
 * Returns: 0. Errors: ACT_EINVAL (no loop on this thread, fn NULL), ACT_ENOMEM.
 * Ownership: with out non-NULL the caller holds a handle and must act_task_release it;
 * with out NULL the task is detached and frees itself when it ends. */
int act_spawn(act_task_fn fn, void *arg, const act_spawn_opts_t *opts, act_task_t **out);

/* Drops the caller's handle and sets *t to NULL; the task keeps running. Safe on NULL. */
void act_task_release(act_task_t **t);

/* Waits for t to end without affecting it (joining never cancels t).
 * Returns: t's code, 0 or negative; *result gets t's result when not NULL.
 * Errors: t's own error; ACT_ECANCELED/ACT_ETIMEDOUT if the wait itself is cut short (then
 * act_task_done(t) is false). */
int act_join(act_task_t *t, void **result, int64_t deadline);

/* asyncio.wait_for: waits for t; if the deadline passes or the caller is cancelled, t is
 * cancelled and waited for (its cleanup runs) before this returns.
 * Returns: t's code; *result gets t's result. Errors: t's error, ACT_ETIMEDOUT, ACT_ECANCELED. */
int act_wait_for(act_task_t *t, void **result, int64_t deadline);

/* Requests cancellation. A task that has not started ends at once without running; a running
 * one sees ACT_ECANCELED from its current and every later blocking call.
 * Returns: 0. Idempotent; a no-op on a task that has ended. */
int act_task_cancel(act_task_t *t);

/* The calling task, or NULL outside tasks. */
act_task_t *act_current(void);

/* Renames t, as act_spawn_opts_t's name would have (borrowed: it must outlive the task; NULL
 * gives "task-<id>"). For a task whose role changed (actor-worker's connection task that a job
 * took over is named after the job's agent from then on). */
void act_task_set_name(act_task_t *t, const char *name);

act_task_state_t act_task_state(const act_task_t *t);
bool act_task_done(const act_task_t *t);
bool act_task_cancelled(const act_task_t *t);      /* ended by cancellation */
bool act_task_cancel_requested(const act_task_t *t);
uint64_t act_task_id(const act_task_t *t);
const char *act_task_name(const act_task_t *t);    /* "task-<id>" when unnamed */
/* The ended task's code (0 when still running) and optional message; marks it retrieved. */
int act_task_error(act_task_t *t, const char **message);
void *act_task_result(const act_task_t *t);

/* Calls fn for every live task of the calling thread's loop (all_tasks). Stops early when fn
 * returns non-zero. Returns: the number of tasks visited. */
size_t act_task_foreach(int (*fn)(act_task_t *t, void *ctx), void *ctx);

/* Records a message on the calling task's error and returns code, for
 * `return act_fail(ACT_EIO, "connect %s failed", host);`. */
int act_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Calls fn(arg) once, on the calling task, just before that task next parks (a blocking call
 * that really waits, or act_yield; not one that fails or completes at once), then forgets
 * it. For work run inline on a task that has another role: the work hands the role to a new
 * task before it first waits (actor-worker runs a job on its connection's task this way and
 * spawns a new connection task only when the job waits). One hook per loop: a second call
 * replaces it; fn NULL forgets it unfired, as does the task's end. fn must not block.
 * Returns: 0. Errors: ACT_EINVAL (not called from a task). */
int act_on_park(void (*fn)(void *arg), void *arg);

/* Lets every other ready task run once. Returns: 0. Errors: ACT_ECANCELED, ACT_ETIMEDOUT
 * (an enclosing scope expired). */
int act_yield(void);

/* Sleeps until the deadline (asyncio.sleep). A deadline already passed (and act_sleep with
 * ms <= 0, negative included) yields once, like asyncio.sleep(0); ACT_NO_DEADLINE (and
 * act_sleep(ACT_FOREVER)) sleeps until cancelled.
 * Returns: 0 when it passes. Errors: ACT_ECANCELED, ACT_ETIMEDOUT (an enclosing scope ended
 * earlier). */
int act_sleep_until(int64_t deadline);
int act_sleep(int64_t ms);

/* Timeout scopes: a deadline (and cancel point) that bounds every blocking call inside.
 * Nested scopes: the nearer deadline wins. A shielded scope hides every outer scope and the
 * task's cancellation from the calls inside it (for cleanup that must block; give it its own
 * deadline). The scope lives on the task's stack, between enter and leave. */
enum { ACT_SCOPE_SHIELD = 1 << 0 };

typedef struct act_scope {
    struct act_scope *parent; /* enclosing scope of the same task */
    act_task_t *task;         /* owner */
    int64_t deadline;         /* absolute, ACT_NO_DEADLINE none; a past one expires at once */
    unsigned flags;           /* ACT_SCOPE_* */
    int state;                /* 0 active, ACT_ETIMEDOUT expired, ACT_ECANCELED cancelled */
} act_scope_t;

/* Enters a scope with an absolute deadline (-1: none) in the calling task.
 * Returns: 0. Errors: ACT_EINVAL outside a task. */
int act_scope_enter(act_scope_t *s, int64_t deadline, unsigned flags);

/* Leaves the scope (scopes nest strictly).
 * Returns: 0; ACT_ETIMEDOUT if its deadline passed; ACT_ECANCELED if it was cancelled. */
int act_scope_leave(act_scope_t *s);

/* Moves the deadline (earlier or later). A scope that already expired stays expired. */
void act_scope_reschedule(act_scope_t *s, int64_t deadline);

/* Cancels the scope: the calls inside return ACT_ECANCELED until it is left. */
void act_scope_cancel(act_scope_t *s);

/* The deadline that bounds the calling task's next blocking call (-1 none). Once a scope in
 * effect has expired, its passed deadline (at most act_now()): a caller that computes the time
 * left reads 0 there, never "no limit". */
int64_t act_effective_deadline(void);

#endif
