/* actor/zsock.h: ZeroMQ sockets that tasks wait on. A zsock puts one libzmq socket on the
 * loop (uv_poll on its ZMQ_FD) so that act_zsock_recv and act_zsock_send park the calling
 * task until the socket is ready, with deadlines and cancellation like every blocking call.
 * Not included by actor/actor.h, so that only programs that use ZeroMQ need <zmq.h>. */
#ifndef ACTOR_ZSOCK_H
#define ACTOR_ZSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "actor/errors.h"

typedef struct act_zsock act_zsock_t;

/* One frame to send by copy: p[0..n). */
typedef struct act_zframe {
    const void *p;
    size_t n;
} act_zframe_t;

/* Puts zmq_socket on the calling thread's loop. The socket stays the caller's: it must only be
 * used through this zsock (libzmq sockets are not thread-safe, and a recv or send made behind
 * its back can swallow the readiness signal), and it must be closed (zmq_close) only after
 * act_zsock_destroy. Must be called on a loop thread (inside act_run).
 * Returns: 0. Errors: ACT_EINVAL (no loop on this thread, zmq_socket NULL or not a socket),
 * ACT_ENOMEM. Ownership: *out belongs to the caller; free it with act_zsock_destroy. */
int act_zsock_new(act_zsock_t **out, void *zmq_socket);

/* Takes the zsock off the loop and sets *z to NULL; safe on NULL and on *z NULL. Tasks parked
 * in a call on it wake with ACT_ECLOSED. Does not close the zmq socket. The memory is
 * released once libuv has closed the poll handle (on the loop's next turn, or in
 * act_loop_destroy) and no task is inside a call on it. */
void act_zsock_destroy(act_zsock_t **z);

/* The zmq socket, for setsockopt and friends. */
void *act_zsock_socket(const act_zsock_t *z);

/* Receives one whole multipart message into parts[0..*n_parts), waiting while none is ready.
 * Several tasks may wait on one zsock: they are served in the order they arrived.
 * Returns: 0 with *n_parts >= 1.
 * Errors: ACT_EMSGSIZE (the message had more than max_parts parts; it was consumed and
 * dropped), ACT_ETIMEDOUT, ACT_ECANCELED, ACT_ECLOSED (the zsock was destroyed or the zmq
 * context terminated), ACT_EINVAL (bad arguments, not in a task), ACT_ENOMEM, ACT_EIO (any
 * other libzmq error; errno holds libzmq's code).
 * Ownership: on 0 the parts are initialised messages the caller must zmq_msg_close; on an
 * error none is left open. */
int act_zsock_recv(act_zsock_t *z, zmq_msg_t *parts, size_t max_parts, size_t *n_parts,
                   int64_t deadline);

/* Sends parts[0..n) as one multipart message, waiting while the socket cannot take it (for
 * example while the peer's high-water mark is full). Senders are served in arrival order.
 * Returns: 0.
 * Errors: ACT_EHOSTUNREACH (a ROUTER with ZMQ_ROUTER_MANDATORY has no such peer),
 * ACT_ETIMEDOUT, ACT_ECANCELED (nothing was sent), ACT_ECLOSED, ACT_EINVAL (bad arguments,
 * not in a task, wrong state for the socket type), ACT_ENOMEM, ACT_EIO (any other libzmq
 * error, errno holds its code).
 * Ownership: the parts stay the caller's array; whatever the outcome the caller
 * zmq_msg_closes all n (a part that was sent is left empty, closing it costs nothing). */
int act_zsock_send(act_zsock_t *z, zmq_msg_t *parts, size_t n, int64_t deadline);

/* As act_zsock_send with n (at most 64) frames copied from memory; they may be freed when it
 * returns. Returns: 0. Errors: as act_zsock_send. */
int act_zsock_send_frames(act_zsock_t *z, const act_zframe_t *frames, size_t n,
                          int64_t deadline);

/* Sends one frame of n bytes (copied; may be freed when it returns) if the socket takes it
 * now and no parked sender is ahead of it; never waits, never yields, so it may be called
 * outside a task too (on the loop thread). For a writer that queues only what the socket
 * refuses: a queue and a task wake per message cost more than the send.
 * Returns: 0 (sent).
 * Errors: ACT_EAGAIN (not sent: the socket is full or a sender is parked; queue it and send it
 * with act_zsock_send), ACT_ECLOSED, ACT_EINVAL (bad arguments), ACT_ENOMEM, ACT_EHOSTUNREACH,
 * ACT_EIO (errno holds libzmq's code). */
int act_zsock_try_send_frame(act_zsock_t *z, const void *p, size_t n);

/* Closes parts[0..n) (after a successful act_zsock_recv). */
void act_zsock_close_parts(zmq_msg_t *parts, size_t n);

#endif
