/* actor/queue.h: bounded queues between tasks of one loop (FIFO, LIFO, priority), with
 * task_done/join and asyncio 3.13 shutdown; and act_choose, which waits on several queues,
 * events and tasks at once (Go select, libdill choose). A cancelled or timed-out call never
 * loses or duplicates an item: it either completed (returns 0) or it did not (an error).
 * A getter parked on an empty queue takes its item when it runs, as in asyncio: on a LIFO
 * queue the last item put by then, on a PRIORITY queue the most urgent, even when several
 * were put in the same tick. (On a FIFO queue that is the first item put, so it is handed
 * over at the put; a parked putter's item is moved in when a slot frees.) Like asyncio, a
 * task that gets without parking may take an item before a woken getter runs; that getter
 * then parks again at the back. */
#ifndef ACTOR_QUEUE_H
#define ACTOR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/sync.h"
#include "actor/task.h"

typedef enum act_queue_kind {
    ACT_QUEUE_FIFO,     /* first in, first out (a ring buffer) */
    ACT_QUEUE_LIFO,     /* last in, first out (a stack) */
    ACT_QUEUE_PRIORITY, /* lowest prio first; equal prios in insertion order (a binary heap) */
} act_queue_kind_t;

typedef struct act_queue act_queue_t;

/* Creates an empty queue holding at most maxsize items. Storage starts small and doubles up
 * to maxsize as items arrive, so a large bound costs nothing until it is used.
 * Returns: 0. Errors: ACT_EINVAL (maxsize 0: every queue is bounded; unknown kind; out NULL),
 * ACT_ENOMEM. Ownership: *out is the caller's; free it with act_queue_destroy. */
int act_queue_new(act_queue_t **out, act_queue_kind_t kind, size_t maxsize);

/* Frees the queue and sets *q to NULL. Safe on NULL and on *q NULL. Items still queued are
 * the caller's concern: the queue never owns what the pointers point to.
 * Returns: 0. Errors: ACT_EBUSY while a task waits on it (get, put, join or a choose clause,
 * or a LIFO/PRIORITY getter woken and not yet run); the queue is then left intact. */
int act_queue_destroy(act_queue_t **q);

/* Puts item at the back (FIFO), on top (LIFO) or by priority 0 (PRIORITY). Waits while the
 * queue is full. Wakes the first parked getter (FIFO: with this item).
 * Returns: 0 once the item is in (or handed over). Errors: ACT_ECLOSED (shut down, now or
 * while waiting), ACT_ETIMEDOUT, ACT_ECANCELED, ACT_ENOMEM (growing the storage failed),
 * ACT_EINVAL (q NULL, outside a task).
 * Ownership: on success the item is the queue's (then its getter's); on error the caller keeps
 * it. */
int act_queue_put(act_queue_t *q, void *item, int64_t deadline);

/* As act_queue_put with a priority: lower prio comes out first; equal prios keep insertion
 * order. FIFO and LIFO queues ignore prio. Returns and Errors: as act_queue_put. */
int act_queue_put_prio(act_queue_t *q, void *item, int64_t prio, int64_t deadline);

/* Puts without waiting; callable outside tasks (from a loop callback).
 * Returns: 0. Errors: ACT_EAGAIN (full), ACT_ECLOSED (shut down), ACT_ENOMEM, ACT_EINVAL. */
int act_queue_put_nowait(act_queue_t *q, void *item);

/* Takes the next item, waiting while the queue is empty. After a shutdown the items left are
 * still handed out; once none remain, gets fail with ACT_ECLOSED.
 * Returns: 0 with *item set. Errors: ACT_ECLOSED, ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL
 * (q or item NULL, outside a task).
 * Ownership: the item becomes the caller's; call act_queue_task_done when done with it if
 * anyone joins the queue. */
int act_queue_get(act_queue_t *q, void **item, int64_t deadline);

/* As act_queue_get, also reporting the item's priority (0 on FIFO and LIFO queues) in *prio
 * when prio is not NULL. Returns and Errors: as act_queue_get. */
int act_queue_get_prio(act_queue_t *q, void **item, int64_t *prio, int64_t deadline);

/* Takes an item without waiting; callable outside tasks.
 * Returns: 0. Errors: ACT_EAGAIN (empty), ACT_ECLOSED (shut down and empty), ACT_EINVAL. */
int act_queue_get_nowait(act_queue_t *q, void **item);

/* Marks one item got earlier as processed; wakes joiners when none is left unfinished.
 * Returns: 0. Errors: ACT_EOVERRELEASE (called more often than items were got), ACT_EINVAL. */
int act_queue_task_done(act_queue_t *q);

/* Waits until every item ever put has been got and marked done (items discarded by an
 * immediate shutdown count as done). Shutdown alone does not end a join.
 * Returns: 0. Errors: ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL (q NULL, outside a task). */
int act_queue_join(act_queue_t *q, int64_t deadline);

/* Shuts the queue down (asyncio 3.13 Queue.shutdown): later puts fail with ACT_ECLOSED, and
 * so does every parked putter; parked getters wake with ACT_ECLOSED (they park only on an
 * empty queue); gets drain what is left, then fail with ACT_ECLOSED. immediate also discards
 * the items left (counting them done, which may wake joiners). Idempotent; a later immediate
 * call still discards. Returns: 0. Errors: ACT_EINVAL (q NULL). */
int act_queue_shutdown(act_queue_t *q, bool immediate);

size_t act_queue_size(const act_queue_t *q);    /* items queued now */
size_t act_queue_maxsize(const act_queue_t *q); /* the bound given at creation */

/* ---- choose: wait on several things at once, the first ready wins ---- */
typedef enum act_choice_kind {
    ACT_CHOICE_GET,   /* obj: act_queue_t *; ready when it has an item (fills item, prio) */
    ACT_CHOICE_PUT,   /* obj: act_queue_t *; ready when it has room (puts item, prio) */
    ACT_CHOICE_EVENT, /* obj: act_event_t *; ready when set */
    ACT_CHOICE_TASK,  /* obj: act_task_t *; ready when the task has ended */
} act_choice_kind_t;

typedef struct act_choice {
    act_choice_kind_t kind; /* what to wait for */
    void *obj;              /* act_queue_t *, act_event_t * or act_task_t * */
    void *item;             /* GET: the item got (out); PUT: the item to put (in) */
    int64_t prio;           /* GET: its priority (out); PUT: the priority to put with (in) */
} act_choice_t;

/* Completes exactly one of the choices: the first in array order that is ready now, else the
 * first to become ready before the deadline. Only that choice takes effect (one item got or
 * put); the others are untouched. A queue that is shut down counts as ready (a GET once it
 * is empty, a PUT at once) and makes the call fail with ACT_ECLOSED, without saying which
 * queue: check them with a _nowait call if it matters.
 * Returns: the index of the choice that completed (>= 0).
 * Errors: ACT_ECLOSED, ACT_ETIMEDOUT, ACT_ECANCELED, ACT_ENOMEM (n > 16 and no memory),
 * ACT_EINVAL (n 0, NULL obj, unknown kind, waiting on the calling task, outside a task).
 * Ownership: as act_queue_get / act_queue_put for the choice that completed. */
int act_choose(act_choice_t *choices, size_t n, int64_t deadline);

#endif
