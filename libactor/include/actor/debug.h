/* actor/debug.h: debug mode and introspection. With ACT_LOOP_DEBUG (or ACTOR_DEBUG=1) the
 * loop logs, through actor/log.h: a task slice or callback that held the loop longer than
 * slow_ms (event=slow_task), a task freed without anyone joining it (event=never_joined), and
 * an error nobody retrieved (event=unretrieved_error). The snapshot works in any mode. */
#ifndef ACTOR_DEBUG_H
#define ACTOR_DEBUG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "actor/task.h"

typedef struct act_task_info {
    uint64_t id;              /* task id */
    char name[48];            /* task name, truncated */
    act_task_state_t state;   /* state */
    const char *waits_on;     /* "lock", "sleep", "queue.get"...; NULL unless waiting */
    const void *object;       /* the object waited on */
    int64_t waiting_ms;       /* how long it has waited */
    int64_t deadline;         /* its wait's deadline, -1 none */
    bool cancel_requested;    /* cancellation pending */
    bool small_stack;         /* small-stack class */
} act_task_info_t;

/* Turns debug mode on or off for a loop. */
void act_loop_set_debug(act_loop_t *loop, bool on, int64_t slow_ms);

/* Every live task of the calling thread's loop, as data.
 * Returns: the count (>= 0). Errors: ACT_EINVAL (no loop on this thread), ACT_ENOMEM.
 * Ownership: *out is malloc'd for the caller, who frees it. */
int act_debug_snapshot(act_task_info_t **out);

/* Writes the snapshot as text, one task a line. Returns: the count, or a negative code. */
int act_debug_dump(FILE *f);

/* A task state's name ("waiting"). */
const char *act_task_state_name(act_task_state_t s);

#endif
