/* broker/model_budget.h: the cross-worker model budget (proto/PROTOCOL.md, "Model budget"). The
 * broker holds, per model backend name, a concurrency limit and a requests-per-second token
 * bucket that every worker's model calls share: workers ask for a permit (budget.acquire),
 * wait in FIFO order, and give it back (budget.release). Off unless a --model-* flag is set. */
#ifndef BRK_BUDGET_H
#define BRK_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

struct brk;
struct brk_budget;
struct brk_budget_peer;
struct brk_worker;
struct brk_in;

/* Builds the budget from b->cfg (model_concurrency, model_rps, model_burst,
 * model_max_waiters, model_max_backends). Returns: 0. Errors: -ENOMEM. */
int brk_budget_open(struct brk *b);
/* Frees every backend, waiter and worker share (workers are still in b->worker_list). */
void brk_budget_close(struct brk *b);
/* Whether a limit is set (then workers are told after their `ready`). */
bool brk_budget_on(const struct brk *b);
/* Sends w the `budget` announcement when the budget is on. */
void brk_budget_worker_ready(struct brk *b, struct brk_worker *w);
/* A budget.acquire, budget.release or budget.cancel from a registered worker. */
void brk_budget_message(struct brk *b, struct brk_worker *w, const struct brk_in *in,
                        const proto_msg_t *m);
/* w is gone: its waiters are dropped and its permits return to their backends (which may
 * grant them to other workers at once). */
void brk_budget_worker_lost(struct brk *b, struct brk_worker *w);
/* Grants what the rate allows now; returns the next time (ms, b->now's clock) it wants to
 * run, or -1 when nothing waits for the clock. */
int64_t brk_budget_tick(struct brk *b);

/* Counts for tests and logs: permits held and requests waiting on a backend (0 when the
 * backend is unknown). */
uint64_t brk_budget_in_use(struct brk *b, proto_str_t backend);
uint64_t brk_budget_waiting(struct brk *b, proto_str_t backend);

#endif
