/* queue_internal.h: the queue operations shared by queue.c and choose.c. A single get or put
 * and a choose clause go through the same helpers, so a hand-off to a parked getter (or from a
 * parked putter) works the same whichever kind of call parked it. */
#ifndef ACTOR_QUEUE_INTERNAL_H
#define ACTOR_QUEUE_INTERNAL_H

#include "internal.h"

/* Takes an item now. Returns: 0, ACT_EAGAIN (empty), ACT_ECLOSED (shut down and empty). */
int act__queue_try_get(act_queue_t *q, void **item, int64_t *prio);
/* Puts an item now. Returns: 0, ACT_EAGAIN (full), ACT_ECLOSED (shut down). */
int act__queue_try_put(act_queue_t *q, void *item, int64_t prio);
/* Parks c as a getter. When it fires with 0, call act__queue_woken_get. */
void act__queue_link_get(act_queue_t *q, act__clause *c);
/* After a getter clause c (linked by act__queue_link_get) fired with 0: on a FIFO queue
 * takes the item handed over in c, without touching the queue, which may be gone;
 * on LIFO and PRIORITY ones takes the best item now (the waker only stored it).
 * Returns: 0, ACT_EAGAIN (another task took it first: park again), ACT_ECLOSED. */
int act__queue_woken_get(void **item, int64_t *prio, const act__clause *c);
/* Parks c as a putter of item. When it fires with 0, the item is in the queue. */
void act__queue_link_put(act_queue_t *q, act__clause *c, void *item, int64_t prio);

#endif
