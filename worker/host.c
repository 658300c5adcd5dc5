/* host.c: the worker's side of agent/host.h, the one interface through which the agent
 * runtime reaches its host: jobs, the agent registry, sub-invocations and the job's answer.
 * The runtime sees abp_ctx_t and abp_host_t as opaque; their fields are read only here. */
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "agent/runtime.h"

static agt_rt_t *host_rt(abp_host_t *h) { return h->rt; }
static abp_host_t *host_of(abp_ctx_t *ctx) { return ctx->w->host; }
static bool registering(abp_host_t *h) { return h->open; }

static const agt_def_t *agent_find(abp_host_t *h, proto_str_t name) {
    const wrk_agent_t *a = wrk_agent_find(h, name);
    return a ? a->def : NULL;
}

static struct agt_job *job(abp_ctx_t *ctx) { return ctx->agt; }
static const agt_def_t *job_agent(abp_ctx_t *ctx) { return ctx->agent->def; }
static act_task_t *job_task(abp_ctx_t *ctx) { return ctx->on; }

static void job_input(abp_ctx_t *ctx, const uint8_t **in, size_t *n) {
    *in = ctx->input;
    *n = ctx->input_n;
}

static void set_current(abp_ctx_t *ctx, const char *name, const uint8_t *in, size_t n) {
    if (!name) name = ctx->agent->name, in = ctx->input, n = ctx->input_n;
    ctx->agent_now = name, ctx->in = in, ctx->in_n = n;
}

static bool failed(abp_ctx_t *ctx) { return ctx->err_code != NULL; }

static bool output(abp_ctx_t *ctx, const uint8_t **out, size_t *n) {
    if (!ctx->has_output) return false;
    *out = ctx->out_p;
    *n = ctx->out_n;
    return true;
}

static int answer_take(abp_ctx_t *ctx, agt_answer_t *a) {
    memset(a, 0, sizeof(*a));
    if (ctx->has_output) {
        if (!(a->out = malloc(ctx->out_n))) return ABP_ENOMEM; /* the job keeps it */
        memcpy(a->out, ctx->out_p, ctx->out_n);
        a->out_n = ctx->out_n;
        a->has_out = true;
    }
    a->code = ctx->err_code, a->message = ctx->err_msg;
    ctx->err_code = ctx->err_msg = NULL;
    ctx->has_output = false;
    return 0;
}

static int answer_put(abp_ctx_t *ctx, agt_answer_t *a) {
    free(ctx->err_code);
    free(ctx->err_msg);
    ctx->err_code = a->code, ctx->err_msg = a->message; /* moved: a keeps no strings */
    a->code = a->message = NULL;
    ctx->has_output = false;
    return a->has_out ? wrk_ctx_set_output(ctx, a->out, a->out_n) : 0;
}

static void tokens(abp_ctx_t *ctx, const char *model, uint64_t prompt, uint64_t completion) {
    wrk_mx_tokens(ctx->w, wrk_ctx_agent_name(ctx), model, prompt, completion);
}

const agt_host_t wrk_agent_host = {
    .api = &wrk_api,
    .rt = host_rt,
    .host_of = host_of,
    .registering = registering,
    .agent_find = agent_find,
    .agent_add = wrk_agent_add,
    .job = job,
    .job_agent = job_agent,
    .job_input = job_input,
    .job_task = job_task,
    .set_current = set_current,
    .emit_built = wrk_ctx_emit_built,
    .call_sub = wrk_call_sub,
    .failed = failed,
    .output = output,
    .answer_take = answer_take,
    .answer_put = answer_put,
    .tokens = tokens,
};
