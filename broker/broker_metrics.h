/* broker/broker_metrics.h: the broker's counters (queries by agent and outcome, latency, errors by
 * code, bytes and messages per socket, lost workers, retries), the hooks the other files
 * call to feed them (one line each), the /metrics endpoint that serves them as Prometheus
 * text over a ZMQ_STREAM socket in the broker's own poll loop (--metrics), and the `tasks`
 * request that asks a worker for its task list (tasks.c). */
#ifndef BRK_METRICS_H
#define BRK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct brk brk_t;
typedef struct brk_job brk_job_t;
typedef struct brk_agent brk_agent_t;
typedef struct brk_worker brk_worker_t;
typedef struct brk_in brk_in_t;
typedef struct brk_term brk_term_t;
typedef struct brk_metrics brk_metrics_t;

/* Creates b->mx and binds the endpoint when --metrics names one.
 * Returns: 0. Errors: -ENOMEM, -EADDRINUSE (the bind failed; logged). */
int brk_metrics_open(brk_t *b);
/* Closes the socket (before the context ends) and frees b->mx; safe to repeat. */
void brk_metrics_close_socket(brk_t *b);
void brk_metrics_close(brk_t *b);
/* The ZMQ_STREAM socket for zmq_poll, or NULL when --metrics is off. */
void *brk_metrics_socket(brk_t *b);
/* Reads one message from the endpoint and answers a request once its head is whole.
 * Returns: false when there was none. */
bool brk_metrics_read(brk_t *b);
/* Closes scrapers idle past their limit, answers `tasks` requests whose worker did not
 * reply in time. Returns: the next time it wants to run (ms, monotonic). */
int64_t brk_metrics_tick(brk_t *b);

/* ---- hooks ---- */
/* A query was accepted for agent a: starts its clock. */
void brk_mx_accept(brk_t *b, brk_job_t *j, brk_agent_t *a);
/* An accepted query got its terminal message t. */
void brk_mx_answer(brk_t *b, const brk_job_t *j, const brk_term_t *t);
/* A decoded query was refused with code before it was accepted. */
void brk_mx_reject(brk_t *b, proto_str_t agent, const char *code);
/* An error reply went to a peer (a refused query, a bad request...). */
void brk_mx_error(brk_t *b, const char *code);
/* A message of n body bytes came in on, or went out on, socket s (BRK_SOCK_*). */
void brk_mx_in(brk_t *b, int s, size_t n);
void brk_mx_out(brk_t *b, int s, size_t n);
void brk_mx_worker_lost(brk_t *b);
void brk_mx_retry(brk_t *b);
void brk_mx_bus_refused(brk_t *b); /* a publication into the broker's topics */
/* Packs the fields metrics adds to the `status` reply (BRK_MX_STATUS_FIELDS key/value pairs):
 * answered (queries that got their terminal message), errors (of those, errors), uptime_ms,
 * draining. */
#define BRK_MX_STATUS_FIELDS (6 + 5) /* and lease.c's role, pair, active_since_ms, takeovers,
                                        active_broker */
void brk_mx_status(brk_t *b, proto_buf_t *o);

/* ---- tasks.c: `tasks` requests forwarded to a worker ---- */
/* A client's `tasks` {"worker": name}: forwarded, or answered not_found / overloaded. */
void brk_tasks_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m);
/* A worker's `tasks_reply`: the pending request gets its result. */
void brk_tasks_reply(brk_t *b, brk_worker_t *w, const proto_msg_t *m);
/* w is being removed: its pending requests end with worker_lost. */
void brk_tasks_worker_gone(brk_t *b, brk_worker_t *w);
/* Ends every pending request with code (shutdown). */
void brk_tasks_abort_all(brk_t *b, const char *code, const char *message);
void brk_tasks_close(brk_t *b);
/* Answers requests past their deadline with `timeout`; returns the next deadline or -1. */
int64_t brk_tasks_tick(brk_t *b);

#endif
