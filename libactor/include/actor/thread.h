/* actor/thread.h: running blocking or CPU-heavy code off the loop thread. act_to_thread uses
 * libuv's shared thread pool (asyncio.to_thread); an executor owns its own threads and a
 * bounded queue (run_in_executor with a custom pool). The calling task parks while the job
 * runs and the loop keeps running every other task. */
#ifndef ACTOR_THREAD_H
#define ACTOR_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include "actor/task.h"

/* Both calls share these rules.
 * - The job fn(arg, &r) runs on another thread: it must not call libactor's task functions
 *   (it is in no task and on no loop); act_loop_call_threadsafe is allowed.
 * - Cancellation and deadlines: a job that has not started yet is withdrawn and never runs,
 *   and the call returns ACT_ECANCELED or ACT_ETIMEDOUT at once. A thread cannot be
 *   interrupted, so if the job is already running the call waits for it to finish (shielded:
 *   further cancellation is ignored) and then returns ACT_ECANCELED or ACT_ETIMEDOUT; the
 *   job's code and result are dropped. This is Trio's to_thread with cancellable=False: when
 *   the call returns, the job is no longer touching arg. asyncio returns at once instead:
 *   act_to_thread_detached does that.
 * - Under ACT_LOOP_VIRTUAL_CLOCK the clock does not move while a job is in flight, so a
 *   deadline cannot pass "before" real work that is still running. */

/* Runs fn(arg, &r) on libuv's thread pool (its size is UV_THREADPOOL_SIZE, default 4, shared
 * with libuv's file and DNS work) and parks the calling task until it ends.
 * Returns: fn's code (0 or negative); *result (may be NULL) gets r.
 * Errors: fn's own error; ACT_ECANCELED, ACT_ETIMEDOUT (see above: deadline 0 never queues
 * the job); ACT_EINVAL (outside a task, fn NULL); ACT_ENOMEM.
 * Ownership: arg stays the caller's and must live until the call returns. When the result
 * is dropped (cancelled while running) nothing frees r: a job that allocates should hand
 * results over through arg, where the caller finds them either way. */
int act_to_thread(act_task_fn fn, void *arg, void **result, int64_t deadline);

/* Receives a detached job's argument and outcome once nobody waits for them any more:
 * free arg and result here. Called on the loop thread, exactly once. */
typedef void (*act_discard_fn)(void *arg, void *result, int code);

/* asyncio.to_thread as asyncio behaves: a deadline or a cancellation returns at once, even
 * while the job runs; the thread finishes on its own and its outcome is discarded. Because
 * C has no garbage collector, arg (and whatever the job allocates as its result) then
 * belongs to discard, which runs on the loop thread when the job is over (act_run waits for
 * such jobs before it returns, as asyncio.run waits for the default executor).
 * The rule is by return code: ACT_ECANCELED or ACT_ETIMEDOUT (from the wait, or returned by
 * fn itself) means discard has, or will get, arg and the result (NULL if the job never ran),
 * exactly once; any other return means arg is the caller's and *result gets the job's r.
 * So arg must be heap memory the job may use after this returns; it must not point into the
 * calling task's stack.
 * Returns: fn's code. Errors: fn's own error; ACT_ECANCELED, ACT_ETIMEDOUT (see above);
 * ACT_EINVAL (outside a task, fn or discard NULL: discard is not called); ACT_ENOMEM. */
int act_to_thread_detached(act_task_fn fn, void *arg, act_discard_fn discard, void **result,
                           int64_t deadline);

/* ---- executors: a pool of own threads with a bounded queue ---- */
typedef struct act_executor act_executor_t;

/* Starts nthreads threads. max_queue bounds the jobs waiting for a free thread (running ones
 * are not counted); 0 means no bound. Any loop's tasks may use one executor.
 * Returns: 0. Errors: ACT_EINVAL (nthreads 0), ACT_ENOMEM, ACT_EAGAIN (a thread could not be
 * created; the ones started are joined again).
 * Ownership: *out is the caller's; free it with act_executor_destroy. */
int act_executor_new(act_executor_t **out, size_t nthreads, size_t max_queue);

/* Stops and joins the threads, frees the executor and sets *ex to NULL. Safe on NULL.
 * Returns: 0. Errors: ACT_EBUSY while jobs are queued or running (nothing is changed). */
int act_executor_destroy(act_executor_t **ex);

/* Runs fn(arg, &r) on one of ex's threads and parks the calling task until it ends. The job
 * is refused at once, not queued, when max_queue jobs are already waiting: back-pressure is
 * the caller's decision (retry later, shed load, or wait on its own semaphore).
 * Returns: fn's code; *result (may be NULL) gets r.
 * Errors: fn's own error; ACT_EBUSY (queue full); ACT_ECANCELED, ACT_ETIMEDOUT (rules above);
 * ACT_EINVAL (outside a task, ex or fn NULL); ACT_ENOMEM.
 * Ownership: as act_to_thread. */
int act_executor_run(act_executor_t *ex, act_task_fn fn, void *arg, void **result,
                     int64_t deadline);

/* Jobs accepted by ex and not yet handed back (queued, running, or being delivered). */
size_t act_executor_pending(act_executor_t *ex);

#endif
