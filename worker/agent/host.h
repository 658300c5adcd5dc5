/* agent/host.h: the one interface between the agent runtime and the process that hosts it.
 * The runtime includes no header of its host: the host (actor-worker, or a test without a
 * broker) fills this table and hands it to agt_rt_new, as Redis hands a module its API.
 * Jobs (abp_ctx_t) and the agent registry (abp_host_t) are the host's, opaque here. */
#ifndef AGT_HOST_H
#define AGT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/actor.h"
#include "actorbus/plugin.h"
#include "proto/proto.h"

struct agt_job;
struct agt_def;
struct agt_rt;

/* A job's answer as the runner moves it between the agents of one job: an output (has_out)
 * or an error (code != NULL), or neither yet. The strings and bytes are malloc'd. */
typedef struct agt_answer {
    bool has_out;
    uint8_t *out;
    size_t out_n;
    char *code, *message;
} agt_answer_t;

typedef struct agt_host {
    /* The plugin table: emit, set_output, fail, call, await, the msgpack helpers. */
    const abp_api_t *api;
    /* The runtime's registries of this host (agt_rt_new's), and the registry of a job. */
    struct agt_rt *(*rt)(abp_host_t *h);
    abp_host_t *(*host_of)(abp_ctx_t *ctx);
    /* Whether registration is open (inside a plugin's init or the worker's start). */
    bool (*registering)(abp_host_t *h);
    /* Agents: the definition registered under name (NULL: none), and adding one (takes def
     * on success; errors as wrk_agent_add: ABP_EEXIST, ABP_EINVAL, ABP_ENOMEM). */
    const struct agt_def *(*agent_find)(abp_host_t *h, proto_str_t name);
    int (*agent_add)(abp_host_t *h, struct agt_def *def);
    /* The job: the runtime's state of it (agt_job_begin's, NULL before), its own agent, its
     * input and its task. */
    struct agt_job *(*job)(abp_ctx_t *ctx);
    const struct agt_def *(*job_agent)(abp_ctx_t *ctx);
    void (*job_input)(abp_ctx_t *ctx, const uint8_t **in, size_t *n);
    act_task_t *(*job_task)(abp_ctx_t *ctx);
    /* The agent running now in the job (name and input: what api->input and agent_name
     * return to it); the runner switches it as it runs sub-agents in the job. */
    void (*set_current)(abp_ctx_t *ctx, const char *name, const uint8_t *in, size_t n);
    /* An event the runtime built from checked parts: sent as is, not walked again. */
    int (*emit_built)(abp_ctx_t *ctx, const uint8_t *event, size_t n);
    /* A sub-invocation: as api->call, with the job's session, parent and this branch; its
     * events come back to the runtime through agt_call_event. The job's deadline (its task's
     * scopes) bounds the call's timeout_ms (-1: that deadline alone). */
    int (*call_sub)(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                    const char *branch, int64_t timeout_ms, abp_call_t **out);
    /* The job's answer so far: whether it failed, and its output (false: none yet). */
    bool (*failed)(abp_ctx_t *ctx);
    bool (*output)(abp_ctx_t *ctx, const uint8_t **out, size_t *n);
    /* Moves the job's answer out (the job has none after) and back. Errors: ABP_ENOMEM
     * (answer_take: the job keeps its answer and a is empty; answer_put: the error part is
     * put, the output is not). */
    int (*answer_take)(abp_ctx_t *ctx, agt_answer_t *a);
    int (*answer_put)(abp_ctx_t *ctx, agt_answer_t *a);
    /* A model call of the agent running now used these tokens (for the host's metrics);
     * may be NULL. */
    void (*tokens)(abp_ctx_t *ctx, const char *model, uint64_t prompt, uint64_t completion);
} agt_host_t;

/* The host of this process's runtime, set by agt_rt_new (one runtime per process). */
extern const agt_host_t *agt__host;

#endif
