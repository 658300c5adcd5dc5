/* actor/loop.h: the loop that runs tasks, its clock, and the ways into it from other threads.
 * One loop per thread, on libuv. Blocking calls made inside a task find their loop through the
 * thread, so only act_run and the *_threadsafe calls take a loop argument. */
#ifndef ACTOR_LOOP_H
#define ACTOR_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "actor/errors.h"

typedef struct act_loop act_loop_t;
typedef struct act_task act_task_t;

/* The list of parked waiters inside caller-allocated objects (locks, queues...). Opaque:
 * only libactor touches it. */
typedef struct act_waitq {
    struct act_waitq *prev, *next;
} act_waitq_t;

/* A task body: returns 0 and may set *result, or a negative code. */
typedef int (*act_task_fn)(void *arg, void **result);

enum {
    ACT_LOOP_DEBUG = 1 << 0,         /* debug mode (also: environment ACTOR_DEBUG=1) */
    ACT_LOOP_VIRTUAL_CLOCK = 1 << 1, /* time jumps to the next timer when all tasks wait */
};

typedef struct act_loop_opts {
    unsigned flags;            /* ACT_LOOP_* */
    int64_t slow_ms;           /* debug: report slices longer than this (default 100) */
    size_t stack_size;         /* default task stack (default 256 KiB, rounded to pages) */
    size_t small_stack_size;   /* small-stack class (default 896 B; more unoptimised/ASan) */
    size_t stack_cache;        /* free default stacks that keep their memory (default 1024);
                                  the pages of the others go back (MADV_FREE) at the loop's
                                  trim, at most once a second; their range stays pooled */
    uint64_t seed;             /* seed for jitter and other randomness (0: fixed default) */
} act_loop_opts_t;

typedef struct act_loop_stats {
    size_t tasks_live;         /* tasks allocated (running, waiting, done but referenced) */
    size_t tasks_started;      /* tasks holding a stack */
    size_t stacks_in_use;      /* stacks owned by tasks */
    size_t stacks_cached;      /* stacks in the pools */
    size_t stacks_peak;        /* most stacks in use at once */
    size_t timers;             /* armed timers */
    uint64_t switches;         /* context switches so far */
    uint64_t spawned;          /* tasks spawned so far */
} act_loop_stats_t;

/* Creates a loop with its own uv_loop_t. opts may be NULL for defaults.
 * Returns: 0. Errors: ACT_EINVAL (bad sizes), ACT_ENOMEM.
 * Ownership: *out belongs to the caller; free it with act_loop_destroy. */
int act_loop_new(act_loop_t **out, const act_loop_opts_t *opts);

/* Frees the loop, its stack pools and its handles, and sets *loop to NULL. Safe on NULL.
 * Returns: 0. Errors: ACT_EBUSY when tasks are still alive (the loop is left intact). */
int act_loop_destroy(act_loop_t **loop);

/* Runs fn as the main task and the loop until it ends (asyncio.run). Then cancels every task
 * still alive and runs the loop until they end too. Must be called outside any task.
 * Returns: the main task's code (0 or negative); *result gets its result when not NULL.
 * Errors: whatever the main task returns; ACT_EBUSY if the loop is already running. */
int act_run(act_loop_t *loop, act_task_fn fn, void *arg, void **result);

/* The libuv loop underneath, for handles that tasks wait on (e.g. uv_poll on a socket). */
uv_loop_t *act_loop_uv(act_loop_t *loop);

/* The loop of the calling thread while it runs tasks, else NULL. */
act_loop_t *act_loop_current(void);

/* Counters for tests and monitoring. */
void act_loop_stats(const act_loop_t *loop, act_loop_stats_t *out);

/* Milliseconds on the loop's clock (virtual under ACT_LOOP_VIRTUAL_CLOCK). Outside a loop
 * thread: the monotonic clock. Deadlines everywhere are absolute values of this clock. */
int64_t act_now(void);

/* Deadlines are absolute act_now() values. ACT_NO_DEADLINE (-1) is the one value that means
 * "none"; every other value, negative ones included, is a time: one in the past expires at
 * once (asyncio's timeout_at with a past `when`). Durations are milliseconds from now; a
 * negative duration has already passed (asyncio: sleep(-1) and wait_for(x, -1) act at once),
 * and ACT_FOREVER (or any duration past the clock's range) means none. */
#define ACT_NO_DEADLINE ((int64_t)-1)
#define ACT_FOREVER INT64_MAX

/* The deadline ms from now: act_now() + ms. A negative ms gives act_now() (already passed,
 * never "none"); a sum past INT64_MAX saturates to ACT_NO_DEADLINE (ACT_FOREVER included).
 * Returns: the deadline; never fails. */
int64_t act_deadline_in(int64_t ms);

/* Runs fn(arg) on the loop thread soon; callable from any thread (call_soon_threadsafe).
 * Returns: 0. Errors: ACT_ENOMEM, ACT_ECLOSED if the loop is shutting down.
 * fn is called exactly once when this returns 0, never when it fails. */
int act_loop_call_threadsafe(act_loop_t *loop, void (*fn)(void *arg), void *arg);

/* A result that another thread can block on (run_coroutine_threadsafe's future). */
typedef struct act_tsfuture act_tsfuture_t;

/* Spawns fn(arg) as a task on loop from any other thread.
 * Returns: 0. Errors: ACT_ENOMEM, ACT_ECLOSED.
 * Ownership: *out belongs to the caller; free it with act_tsfuture_destroy. */
int act_spawn_threadsafe(act_loop_t *loop, act_task_fn fn, void *arg, act_tsfuture_t **out);

/* Blocks the calling (non-loop) thread until the task ends or timeout_ms passes (-1 forever).
 * Returns: the task's code; *result gets its result. Errors: ACT_ETIMEDOUT, task errors. */
int act_tsfuture_wait(act_tsfuture_t *f, void **result, int64_t timeout_ms);

/* Frees the future; if the task still runs it is left to finish. Sets *f to NULL. */
void act_tsfuture_destroy(act_tsfuture_t **f);

#endif
