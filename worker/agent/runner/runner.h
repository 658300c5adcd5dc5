/* agent/runner.h: what the runner side's files share (runner.c, agents.c, events.c,
 * config.c): a job's runner state (its invocation, state view, history and the stack of
 * agents running in it) and the helpers that run one agent as a child of another. */
#ifndef AGT_RUNNER_H
#define AGT_RUNNER_H

#include "runtime.h"

/* One agent running in a job; the top one is the author of what the job emits. */
typedef struct agt_frame {
    struct agt_frame *up;
    const agt_def_t *def;
    const uint8_t *in;  /* its input, while it runs */
    size_t in_n;
    char *branch;    /* "" at the root; "a.b" under a parallel agent (in f's block) */
    char *transfer;  /* transfer_to_agent an event of this agent asked for */
    bool escalated;  /* an event of this agent (or of a child, passed up) escalated */
} agt_frame_t;

/* Outputs handed out by run_agent: they live until the job ends. */
typedef struct agt_keep {
    struct agt_keep *next;
    size_t n;
    uint8_t data[];
} agt_keep_t;

struct agt_job {
    char *invocation;    /* the broker's invocation id, or one made here (in jb's block) */
    bool inv_later;      /* none came: made on first use (agt_invocation_id), most jobs never ask */
    char *branch;        /* the work's branch ("" at the root; in jb's block) */
    size_t room;         /* bytes for invocation and branch after the struct */
    proto_buf_t st[2];   /* the state view (a map); cur is the live one; n == 0: the empty map
                            (no state came: nothing is packed until a delta applies) */
    int cur;
    uint8_t *history;    /* the work's history (an array), n == 0 when none */
    size_t history_n;
    agt_frame_t *top;
    agt_frame_t root;    /* the job's own agent's frame: no allocation for depth 0 */
    int depth, transfers;
    agt_keep_t *keep;
    agt_usage_t usage; /* tokens of every model call of the invocation seen here: this job's
                          and its sub-invocations' (their events' usage_metadata) */
};

/* Frees the job blocks kept for reuse (agt_rt_destroy does, at exit). */
void agt__job_spares_free(void);
/* How many job blocks are kept for reuse (for tests). */
size_t agt__job_spares(void);

/* How a child agent ended: ok with out (malloc'd), or an error code and message. */
typedef struct agt_result {
    bool ok;
    uint8_t *out;
    size_t out_n;
    char *code, *message;
} agt_result_t;

void agt__result_free(agt_result_t *r);
void agt__answer_free(agt_answer_t *a);
/* The runtime's state of the job running ctx (agt_job_begin's). */
static inline struct agt_job *agt__job(abp_ctx_t *ctx) { return ctx ? agt__host->job(ctx) : NULL; }
/* Runs agent name as a child of the agent running now, in this job when it is hosted here
 * and the caller is the job's own task, else as a sub-invocation on branch through the
 * broker. Returns: 0 (r says how it ended), or ABP_ECANCELED / ABP_ETIMEDOUT / ABP_ENOMEM
 * (the job itself must stop). */
int agt__run_child(abp_ctx_t *ctx, const char *name, const uint8_t *in, size_t n,
                   const char *branch, agt_result_t *r);
/* The agent types of agents.c, run as the current frame. */
int agt__run_sequential(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n);
int agt__run_loop(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n);
int agt__run_parallel(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n);
/* Applies a state delta (a map; nil deletes) to the job's view (events.c).
 * Errors: ABP_EINVAL (not a map with string keys), ABP_ENOMEM. */
int agt__state_apply(struct agt_job *jb, proto_raw_t delta);
/* Checks a delta's shape without applying it. */
bool agt__delta_ok(proto_raw_t delta);
/* "e-" or "i-" and 16 hex digits into buf (at least 19 bytes). */
void agt__make_id(char prefix, char *buf);
/* Emits a final event by the current agent whose content is value (text when a string). */
int agt__emit_value(abp_ctx_t *ctx, const uint8_t *value, size_t n, bool final);

#endif
