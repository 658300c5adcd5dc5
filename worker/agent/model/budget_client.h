/* agent/model/budget_client.h: the worker's side of the broker's cross-worker model budget (agt_ names;
 * proto/PROTOCOL.md, "Model budget"). An agt_model_budget_t whose acquire asks the broker for
 * a permit (budget.acquire) and waits for its grant on the loop, bounded by the deadline and
 * the task's scopes and cancellable (then budget.cancel); release gives it back. Until the
 * broker announces a budget (and after the connection is lost) permits are granted at once. */
#ifndef AGT_BUDGET_CLIENT_H
#define AGT_BUDGET_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "proto/proto.h"

typedef struct agt_budget agt_budget_t;

/* Hands one encoded message to the broker connection; never waits (the worker's queue). */
typedef void (*agt_budget_send_fn)(void *ctx, const proto_buf_t *msg);

#define AGT_BUDGET_MAX_WAITERS 4096 /* acquires waiting at once in this worker */

/* Creates the budget client. Returns: 0. Errors: ACT_EINVAL (send NULL), ACT_ENOMEM.
 * Ownership: *out is the caller's (agt_budget_destroy). */
int agt_budget_new(agt_budget_t **out, agt_budget_send_fn send, void *ctx);
/* Frees it and sets *b to NULL; safe on NULL. No acquire may be waiting (agt_budget_reset
 * wakes them first). */
void agt_budget_destroy(agt_budget_t **b);

/* The hook to hand to model guards (agt_rt_t.budget); lives as long as b. */
const agt_model_budget_t *agt_budget_hook(agt_budget_t *b);

/* A message from the broker: `budget` (the announcement: limits on from now), budget.grant
 * or budget.deny. A grant for a request no longer waiting (it crossed our cancel) is given
 * back at once. Returns: 0. Errors: ACT_EINVAL (another type). */
int agt_budget_on_message(agt_budget_t *b, const proto_msg_t *m);

/* The broker connection is gone (it took back our permits): every waiting acquire fails
 * with ACT_ECLOSED, permits held now are not released to the next connection, and acquire
 * grants at once until a new announcement. */
void agt_budget_reset(agt_budget_t *b);

/* Whether the broker announced a budget on this connection. */
bool agt_budget_active(const agt_budget_t *b);
/* Acquires waiting for the broker, and permits held from it (for status and tests). */
size_t agt_budget_waiting(const agt_budget_t *b);
size_t agt_budget_held(const agt_budget_t *b);

#endif
