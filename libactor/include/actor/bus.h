/* actor/bus.h: the in-process event bus (the local half of actorbus's bus): publish/subscribe
 * by topic among the tasks of one loop. A subscription matches every topic that starts with its
 * prefix ("" matches all, as a ZeroMQ SUB socket). Each subscriber has its own bounded queue and
 * a policy for when it is full. A publish makes one refcounted copy of topic and data that all
 * matching subscribers share. */
#ifndef ACTOR_BUS_H
#define ACTOR_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "actor/task.h"

typedef struct act_bus act_bus_t;
typedef struct act_bus_sub act_bus_sub_t;

typedef enum act_bus_policy {
    ACT_BUS_DROP_NEWEST, /* full: the new message is dropped for this subscriber (counted) */
    ACT_BUS_DROP_OLDEST, /* full: the oldest queued message is evicted (counted) */
    ACT_BUS_BLOCK,       /* full: the publisher waits for room, up to its deadline */
} act_bus_policy_t;

/* A published message as a subscriber receives it. Read-only; shared by every subscriber it
 * was queued for, so never modify it. data is aligned for any type. */
typedef struct act_bus_msg {
    const char *topic; /* NUL-terminated copy of the topic */
    const void *data;  /* copy of the payload (len bytes; not NULL even when len is 0) */
    size_t len;        /* payload bytes */
    size_t refs;       /* private: holders (queues and receivers); read it in tests only */
} act_bus_msg_t;

/* Creates a bus for at most max_subscribers subscriptions at a time.
 * Returns: 0. Errors: ACT_EINVAL (out NULL, max_subscribers 0), ACT_ENOMEM.
 * Ownership: *out is the caller's; free it with act_bus_destroy. */
int act_bus_new(act_bus_t **out, size_t max_subscribers);

/* Frees the bus and sets *b to NULL. Safe on NULL and on *b NULL.
 * Returns: 0. Errors: ACT_EBUSY while subscriptions exist or a publish is in progress (the
 * bus is then left intact). */
int act_bus_destroy(act_bus_t **b);

/* Subscribes to every topic starting with prefix (copied). The subscription sees messages
 * published after this call, in publish order, through a queue of capacity messages.
 * Returns: 0. Errors: ACT_EINVAL (NULL argument, capacity 0, unknown policy), ACT_EBUSY
 * (max_subscribers reached), ACT_ENOMEM.
 * Ownership: *out is the caller's; end it with act_bus_unsubscribe before the bus goes. */
int act_bus_subscribe(act_bus_t *b, const char *prefix, size_t capacity, act_bus_policy_t policy,
                      act_bus_sub_t **out);

/* Ends the subscription and sets *sub to NULL (safe on NULL): releases its queued messages,
 * wakes its parked receiver with ACT_ECLOSED, and makes a publisher blocked on it (BLOCK)
 * move on without it. Returns: 0. */
int act_bus_unsubscribe(act_bus_sub_t **sub);

/* Publishes a copy of topic and data to every matching subscription, in subscription order.
 * A DROP_NEWEST or DROP_OLDEST subscriber that is full drops a message and counts it. A BLOCK
 * subscriber that is full makes the publisher wait (backpressure) until it has room or the
 * deadline passes. If the wait fails (deadline, cancellation) the publish returns that error,
 * though the subscribers served before have the message: the one it waited on and any later
 * BLOCK subscriber that is full do not get it, and count it as dropped; later subscribers
 * that have room still get it. Callable outside tasks as long as no BLOCK subscriber is full
 * (else ACT_EINVAL, handled like a deadline).
 * Returns: the number of subscribers it was queued for (>= 0).
 * Errors: ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL (b or topic NULL, data NULL with len > 0,
 * or blocking outside a task), ACT_ENOMEM (nothing was published). */
int act_bus_publish(act_bus_t *b, const char *topic, const void *data, size_t len,
                    int64_t deadline);

/* Takes the subscription's next message, waiting while there is none.
 * Returns: 0 with *msg set. Errors: ACT_ECLOSED (unsubscribed while waiting: s is gone),
 * ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL (NULL argument, outside a task).
 * Ownership: the caller holds a reference to *msg; drop it with act_bus_msg_release. */
int act_bus_recv(act_bus_sub_t *s, act_bus_msg_t **msg, int64_t deadline);

/* Takes another reference to msg (to keep it past a release elsewhere). Returns: msg. */
act_bus_msg_t *act_bus_msg_retain(act_bus_msg_t *msg);

/* Drops a reference and sets *msg to NULL; the last one frees it. Safe on NULL. */
void act_bus_msg_release(act_bus_msg_t **msg);

/* Messages this subscription lost: dropped or evicted when full, or given up by a BLOCK
 * publisher whose wait failed. */
uint64_t act_bus_sub_dropped(const act_bus_sub_t *s);

/* Messages queued for this subscription now. */
size_t act_bus_sub_pending(const act_bus_sub_t *s);

#endif
