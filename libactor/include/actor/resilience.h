/* actor/resilience.h: patterns for calling things that fail: retry with exponential backoff,
 * a circuit breaker, a timeout with fallback, bounded-concurrency map and batches, and an
 * Erlang/OTP-style supervisor (one_for_one, one_for_all, rest_for_one). None of them ever
 * turns a cancellation into a
 * retry, a fallback or a restart: a cancelled caller gets ACT_ECANCELED promptly. */
#ifndef ACTOR_RESILIENCE_H
#define ACTOR_RESILIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/task.h"

/* ---- retry with exponential backoff ---- */

typedef struct act_retry_policy {
    int max_attempts;      /* calls in all, >= 1 (1: no retry) */
    int64_t base_delay_ms; /* delay after the first failure, >= 0 */
    int64_t max_delay_ms;  /* cap on any delay; <= 0: no cap */
    double multiplier;     /* growth per retry, >= 0 (0 selects 2.0; 1.0: constant delay) */
    double jitter;         /* 0..1: the fraction of each delay drawn at random ("full jitter"
                              at 1: uniform in [0, d]; 0: exactly d). Drawn from the loop's
                              seeded generator, so runs repeat. */
    bool (*retryable)(int code, void *ctx); /* NULL: act_retry_default_retryable */
    void *ctx;                              /* for retryable and on_retry */
    /* Called before each backoff sleep: the attempt that failed (1-based), its code and the
     * delay about to be slept. May be NULL. */
    void (*on_retry)(int attempt, int code, int64_t delay_ms, void *ctx);
} act_retry_policy_t;

/* Fills p with defaults: 3 attempts, 100 ms base, 10 s cap, multiplier 2, no jitter, the
 * default retryable test, no callbacks. */
void act_retry_policy_init(act_retry_policy_t *p);

/* The default test: every error except ACT_ECANCELED and ACT_EINVAL is worth retrying. */
bool act_retry_default_retryable(int code, void *ctx);

/* Calls fn(arg, result) in the calling task until it returns 0 or gives up. After failed
 * attempt k (1-based) it sleeps min(base * multiplier^(k-1), max) less the jitter, then tries
 * again. Never retried: ACT_ECANCELED, any code the policy's retryable test rejects, and any
 * failure once the calling task has been cancelled. A cancellation or an expired scope during
 * a backoff sleep ends the retries with that sleep's code.
 * Returns: 0 once fn succeeds (*result as fn left it).
 * Errors: fn's last error; ACT_ECANCELED, ACT_ETIMEDOUT (from a backoff sleep);
 * ACT_EINVAL (outside a task, p or fn NULL, a field out of range). */
int act_retry(const act_retry_policy_t *p, act_task_fn fn, void *arg, void **result);

/* ---- circuit breaker ---- */

typedef enum act_breaker_state {
    ACT_BREAKER_CLOSED,    /* calls pass; failures are counted (see act_breaker_counting_t) */
    ACT_BREAKER_OPEN,      /* calls are refused until reset_timeout_ms has passed */
    ACT_BREAKER_HALF_OPEN, /* up to half_open_max probe calls pass; their outcome decides */
} act_breaker_state_t;

/* How a closed breaker counts failures towards its threshold. */
typedef enum act_breaker_counting {
    ACT_BREAKER_CONSECUTIVE, /* failures in a row: a success starts the count again */
    ACT_BREAKER_WINDOWED,    /* failures within window_ms of the first one counted, successes
                                or not; a failure after the window starts a new one. With
                                window_ms ACT_FOREVER: every failure since it last closed */
} act_breaker_counting_t;

/* Shared by any number of tasks of one loop (not by threads: it takes no lock). Holds no
 * resources: there is no close. Fields are for reading. */
typedef struct act_breaker {
    act_breaker_state_t state; /* stored state (act_breaker_state also sees the timeout) */
    int failures;              /* failures counted while closed (see counting) */
    act_breaker_counting_t counting; /* consecutive (act_breaker_init) or windowed */
    int64_t window_ms;         /* windowed: the window's length */
    int64_t window_start;      /* windowed: act_now() of the window's first failure */
    int threshold;             /* failures that open it */
    int64_t reset_timeout_ms;  /* how long it stays open */
    int half_open_max;         /* probes allowed in flight while half-open */
    int probes;                /* probes in flight */
    int64_t opened_at;         /* act_now() when it last opened */
    uint64_t epoch;            /* bumped on every state change: stale outcomes are ignored */
    uint64_t rejected;         /* calls refused so far */
} act_breaker_t;

/* What act_breaker_enter admitted; hand it back to act_breaker_leave. */
typedef struct act_breaker_permit {
    uint64_t epoch; /* the breaker's epoch at admission */
    bool probe;     /* admitted as a half-open probe */
} act_breaker_permit_t;

/* A breaker that opens after failure_threshold consecutive failures (pybreaker's and
 * resilience4j's count-based breaker with a window of 1 success).
 * Returns: 0. Errors: ACT_EINVAL (threshold < 1, reset_timeout_ms < 0, half_open_max < 1). */
int act_breaker_init(act_breaker_t *b, int failure_threshold, int64_t reset_timeout_ms,
                     int half_open_max);

/* A breaker that opens after failure_threshold failures within window_ms, successes in
 * between or not (a fixed window that opens at its first failure, not a sliding one: the
 * breaker holds no memory). window_ms ACT_FOREVER counts every failure since the breaker last
 * closed, as the seed's breaker does.
 * Returns: 0. Errors: ACT_EINVAL (window_ms <= 0, and as act_breaker_init). */
int act_breaker_init_windowed(act_breaker_t *b, int failure_threshold, int64_t window_ms,
                              int64_t reset_timeout_ms, int half_open_max);

/* Asks to make one call. Open: refused until reset_timeout_ms after it opened; then the
 * breaker turns half-open and admits up to half_open_max concurrent probes, refusing the
 * rest, so concurrent tasks cannot all rush a recovering service.
 * Returns: 0 with *permit filled. Errors: ACT_ECIRCUIT (refused). */
int act_breaker_enter(act_breaker_t *b, act_breaker_permit_t *permit);

/* Reports the outcome of an admitted call. code 0 is success; ACT_ECANCELED is no verdict
 * (a probe's slot is freed); any other code is a failure. Closed: threshold failures,
 * counted as the breaker's counting says, open it. Half-open: a probe's success closes it (failures reset to 0), a probe's
 * failure re-opens it (the reset timer restarts). Outcomes of calls admitted before the last
 * state change are ignored. */
void act_breaker_leave(act_breaker_t *b, const act_breaker_permit_t *permit, int code);

/* act_breaker_enter, fn(arg, result), act_breaker_leave with fn's code.
 * Returns: fn's code. Errors: ACT_ECIRCUIT (refused: fn was not called), fn's errors. */
int act_breaker_call(act_breaker_t *b, act_task_fn fn, void *arg, void **result);

/* The state a call made now would meet: an open breaker whose timeout passed reads
 * ACT_BREAKER_HALF_OPEN. */
act_breaker_state_t act_breaker_state(const act_breaker_t *b);

/* ---- timeout with fallback ---- */

enum {
    ACT_FALLBACK_ON_ERROR = 1 << 0, /* fall back on any primary error, not only the timeout */
};

/* Runs primary(parg) as a task with timeout_ms (< 0: none). If it times out (it is cancelled
 * and its cleanup awaited first), or with ACT_FALLBACK_ON_ERROR if it fails with any code
 * but ACT_ECANCELED, runs fallback(farg, result) in the calling task and returns its outcome.
 * A cancellation of the caller, or an enclosing scope that expires, is never turned into a
 * fallback: it is returned.
 * Returns: 0 with *result (may be NULL) from whichever ran last.
 * Errors: the fallback's error; the primary's error (without ACT_FALLBACK_ON_ERROR);
 * ACT_ECANCELED, ACT_ETIMEDOUT (an enclosing scope); ACT_EINVAL; ACT_ENOMEM. */
int act_with_fallback(act_task_fn primary, void *parg, act_task_fn fallback, void *farg,
                      int64_t timeout_ms, unsigned flags, void **result);

/* ---- bounded-concurrency map and batches ---- */

/* One item: index is its position in the input. Returns 0 or a negative code. */
typedef int (*act_map_fn)(void *ctx, size_t index, void **result);

enum {
    ACT_MAP_COLLECT = 1 << 0, /* run every item; codes[i] per item; the call returns 0 */
};

/* Runs fn(ctx, i, &results[i]) for i in [0, n) with at most `limit` items in flight: limit
 * worker tasks (in a task group) each pull the next index, so memory is O(limit), not O(n).
 * results[] and codes[] (either may be NULL) are in input order whatever the completion
 * order; items that never ran read NULL and ACT_ECANCELED. Default fail-fast: the first item
 * to fail stops new items, cancels the ones in flight, waits for them, and is returned.
 * With ACT_MAP_COLLECT every item runs and the call returns 0. A cancelled caller (or an
 * expired scope) cancels and awaits the workers and gets its code back.
 * Returns: 0. Errors: the first item error (fail-fast); ACT_ECANCELED; ACT_ETIMEDOUT;
 * ACT_EINVAL (outside a task, fn NULL, limit 0); ACT_ENOMEM. */
int act_map(act_map_fn fn, void *ctx, size_t n, size_t limit, void **results, int *codes,
            unsigned flags);

/* act_map in consecutive batches of batch_size: every item of a batch runs concurrently and
 * the whole batch ends before the next one starts. Fail-fast stops after the failing batch
 * (later batches never start); ACT_MAP_COLLECT runs them all.
 * Returns and errors: as act_map (batch_size 0 is ACT_EINVAL). */
int act_batch(act_map_fn fn, void *ctx, size_t n, size_t batch_size, void **results, int *codes,
              unsigned flags);

/* ---- supervisor (one_for_one, one_for_all, rest_for_one) ---- */

/* Erlang/OTP restart strategies: which children restart when one must be restarted. */
typedef enum act_sup_strategy {
    ACT_SUP_ONE_FOR_ONE,  /* only the child that ended */
    ACT_SUP_ONE_FOR_ALL,  /* every child: the others are cancelled and awaited, then all start
                             again in spec order (children that depend on each other) */
    ACT_SUP_REST_FOR_ONE, /* the child that ended and those after it in spec order (each
                             depends on the ones before it) */
} act_sup_strategy_t;

typedef enum act_restart {
    ACT_RESTART_PERMANENT, /* always restarted, whatever its code */
    ACT_RESTART_TRANSIENT, /* restarted only when it fails (code other than 0, ACT_ECANCELED) */
    ACT_RESTART_TEMPORARY, /* never restarted */
} act_restart_t;

typedef struct act_child_spec {
    const char *name;      /* not copied: must outlive the supervisor (a literal is ideal) */
    act_task_fn fn;        /* the child's body; its result is ignored */
    void *arg;             /* its argument, the same for every restart */
    act_restart_t restart; /* restart policy */
} act_child_spec_t;

typedef enum act_sup_event {
    ACT_SUP_STARTED,   /* a child was started (code 0) */
    ACT_SUP_EXITED,    /* a child ended (code: its code) */
    ACT_SUP_RESTARTED, /* a child was started again (code: the code it had ended with) */
    ACT_SUP_GAVE_UP,   /* restart intensity exceeded (code: the last child's code) */
} act_sup_event_t;

typedef struct act_supervisor act_supervisor_t;

typedef void (*act_sup_event_fn)(act_supervisor_t *sup, const char *child, act_sup_event_t ev,
                                 int code, void *ctx);

typedef struct act_supervisor_opts {
    int max_restarts;          /* restart intensity: at most this many restarts (>= 0)... */
    int64_t period_ms;         /* ...within any window of this length (> 0), on act_now() */
    act_sup_event_fn on_event; /* may be NULL; called on the supervising task */
    void *ctx;                 /* for on_event */
    act_sup_strategy_t strategy; /* 0: ACT_SUP_ONE_FOR_ONE */
} act_supervisor_opts_t;

/* Creates a supervisor for n children (the specs are copied, their names are not).
 * Returns: 0. Errors: ACT_EINVAL (n 0, a spec without fn, bad intensity), ACT_ENOMEM.
 * Ownership: *out is the caller's; free it with act_supervisor_destroy. */
int act_supervisor_new(act_supervisor_t **out, const act_child_spec_t *children, size_t n,
                       const act_supervisor_opts_t *opts);

/* Frees it and sets *sup to NULL. Safe on NULL.
 * Returns: 0. Errors: ACT_EBUSY while act_supervisor_run is running it. */
int act_supervisor_destroy(act_supervisor_t **sup);

/* Starts every child as a task and supervises them in the calling task: a child that ends is
 * restarted according to its policy, with the siblings its strategy names, unless that
 * restart would be the (max_restarts+1)-th within period_ms (a sliding window over restart
 * times; a one_for_all or rest_for_one restart counts once): then every child is cancelled
 * and awaited and the supervisor gives up. Siblings stopped by a strategy report
 * ACT_SUP_EXITED (ACT_ECANCELED) and ACT_SUP_RESTARTED, except temporary ones, which are
 * not started again (as in Erlang). A child whose policy does not restart it (temporary, or
 * transient ending with 0) touches no sibling. Also on the deadline or the caller's cancellation the
 * children are cancelled and awaited before this returns.
 * Returns: 0 once every child has ended for good.
 * Errors: ACT_EGAVEUP (see act_supervisor_last_error), ACT_ETIMEDOUT, ACT_ECANCELED,
 * ACT_EBUSY (already running), ACT_EINVAL (outside a task), ACT_ENOMEM. */
int act_supervisor_run(act_supervisor_t *sup, int64_t deadline);

/* The last error a child ended with during the last run (0 if none); *child (may be NULL)
 * gets that child's name. */
int act_supervisor_last_error(const act_supervisor_t *sup, const char **child);

/* Restarts made during the last run. */
size_t act_supervisor_restarts(const act_supervisor_t *sup);

#endif
