/* observe.h: actorctl's observing commands (observe.c): `status` (workers, capacity, in
 * flight, queued, answered and rates at a glance), `top` (the same, redrawn every interval
 * until Ctrl-C or --count frames) and `tasks WORKER` (a running worker's task list). */
#ifndef CTL_OBSERVE_H
#define CTL_OBSERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct ctl_obs {
    const char *broker;                  /* for messages */
    bool json;                           /* print replies as JSON lines */
    int64_t timeout_ms;                  /* wait for each reply; -1: 30 s */
    int64_t count;                       /* top: frames; -1 until interrupted */
    int64_t interval_ms;                 /* top: between frames */
    const char *id;                      /* request id text (JSON or a plain string) */
    void *(*open)(void *ctx);            /* a DEALER connected to the broker, or NULL */
    void *open_ctx;
    volatile sig_atomic_t *interrupted;  /* set by SIGINT/SIGTERM */
    proto_limits_t lim;
    void (*no_answer)(void *ctx);        /* after "no reply": says why if it can (open_ctx) */
} ctl_obs_t;

/* Each returns the exit status: 0, 1 (an error reply or no answer), 2 (bad usage). */
int ctl_status(const ctl_obs_t *o);
int ctl_top(const ctl_obs_t *o);
int ctl_tasks(const ctl_obs_t *o, const char *worker);

#endif
