/* actor/chan.h: an unbuffered channel (a put waits for its get: Go's `make(chan T)`, Trio's
 * open_memory_channel(0)) and, built on it, a pull-based stream: the C form of an async
 * generator, whose producer runs only while its consumer asks for the next item. */
#ifndef ACTOR_CHAN_H
#define ACTOR_CHAN_H

#include <stdint.h>

#include "actor/task.h"

/* ---- unbuffered channel ---- */
typedef struct act_chan act_chan_t;

/* Creates an open channel with nobody waiting.
 * Returns: 0. Errors: ACT_EINVAL (out NULL), ACT_ENOMEM.
 * Ownership: *out is the caller's; free it with act_chan_destroy. */
int act_chan_new(act_chan_t **out);

/* Frees the channel and sets *c to NULL. Safe on NULL.
 * Returns: 0. Errors: ACT_EBUSY while a task is parked on it (the channel is left intact). */
int act_chan_destroy(act_chan_t **c);

/* Hands item to a receiver: at once if one is parked, else parks until one comes. Nothing is
 * ever buffered, so when this returns 0 a receiver has the item; when it fails none has.
 * Returns: 0. Errors: ACT_ECLOSED (closed, now or while parked), ACT_ETIMEDOUT,
 * ACT_ECANCELED, ACT_EINVAL (c NULL, outside a task).
 * Ownership: on success the item is the receiver's; on error the caller keeps it. */
int act_chan_send(act_chan_t *c, void *item, int64_t deadline);

/* Takes an item from a sender: at once if one is parked, else parks until one comes.
 * Returns: 0 with *item set. Errors: ACT_ECLOSED (closed: nothing is left, since nothing is
 * buffered), ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL (c or item NULL, outside a task). */
int act_chan_recv(act_chan_t *c, void **item, int64_t deadline);

/* Closes the channel: every parked sender and receiver, and every later call, fails with
 * ACT_ECLOSED. Idempotent; callable outside tasks. Returns: 0. Errors: ACT_EINVAL (c NULL). */
int act_chan_close(act_chan_t *c);

/* ---- pull-based stream (async generator) ---- */
typedef struct act_stream act_stream_t;

/* The producer's body: calls act_stream_yield(s, item) for each item and returns 0 at the
 * end, or an error code, which the consumer's next act_stream_next returns. */
typedef int (*act_stream_fn)(act_stream_t *s, void *arg);

/* Creates a stream whose producer fn(s, arg) runs as a task (spawned with opts, which may be
 * NULL) that starts at the first act_stream_next, like an async generator's first __anext__.
 * Must be called in a task. Returns: 0. Errors: ACT_EINVAL (fn or out NULL, outside a task),
 * ACT_ENOMEM. Ownership: *out is the caller's; free it with act_stream_close. */
int act_stream_new(act_stream_t **out, act_stream_fn fn, void *arg, const act_spawn_opts_t *opts);

/* Consumer: asks for the next item (`await anext(gen)`): lets the producer run until it
 * yields one or ends. A next cut short (deadline, cancellation) leaves the request standing:
 * the following next gets the item the producer was making, so none is lost or skipped.
 * Returns: 0 with *item set. Errors: ACT_EEOF (the producer returned 0:
 * StopAsyncIteration), the producer's own error code (then ACT_EEOF on later calls),
 * ACT_ETIMEDOUT, ACT_ECANCELED, ACT_EINVAL (s or item NULL, outside a task, or called from
 * the producer), ACT_ENOMEM (the producer could not be spawned). */
int act_stream_next(act_stream_t *s, void **item, int64_t deadline);

/* Producer: hands item to the consumer (`yield item`) and stays paused until the consumer
 * asks for the next one. Returns: 0 when asked for more.
 * Errors: ACT_ECANCELED (the consumer closed the stream, like GeneratorExit: return at once,
 * cleaning up with a shield if that must block), ACT_EINVAL (not the stream's producer). */
int act_stream_yield(act_stream_t *s, void *item);

/* aclose(): cancels a producer that has not ended (at its current yield or blocking call),
 * waits for it to clean up, frees the stream and sets *s to NULL. Safe on NULL. Must be
 * called in a task other than the producer.
 * Returns: 0, or the producer's error code if it ended with one that no next returned
 * (ACT_ECANCELED from the close itself is not an error). Errors: ACT_EINVAL (outside a
 * task, or from the producer: nothing is freed). */
int act_stream_close(act_stream_t **s);

#endif
