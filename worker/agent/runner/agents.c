/* agent/agents.c: agent definitions and the composite agent types. Sequential and loop run
 * their sub-agents one after another (in this job when hosted here, else through the
 * broker), each with the same input, so later steps see earlier steps' state writes; loop
 * stops after a sub-agent escalates. Parallel always dispatches every sub-agent as a
 * sub-invocation through the broker, each on its own branch, so they spread across workers,
 * and gathers their outputs into one map. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

/* ---- definitions ---- */

agt_def_t *agt_def_custom(const char *name, abp_agent_fn fn, void *udata) {
    agt_def_t *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    if (!(d->name = strdup(name))) {
        free(d);
        return NULL;
    }
    d->kind = AGT_CUSTOM;
    d->fn = fn;
    d->udata = udata;
    return d;
}

static void free_strs(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void agt_def_free(agt_def_t **pd) {
    agt_def_t *d = pd ? *pd : NULL;
    if (!d) return;
    free(d->name);
    free(d->description);
    free_strs(d->sub_agents, d->n_sub);
    free(d->llm.model);
    free(d->llm.instruction);
    free_strs(d->llm.tools, d->llm.n_tools);
    free(d->llm.output_key);
    free(d);
    *pd = NULL;
}

bool agt_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > PROTO_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == 0x7f) return false; /* names show up in logs and topics */
    }
    return true;
}

const char *agt_kind_name(agt_kind_t kind) {
    switch (kind) {
    case AGT_CUSTOM: return "custom";
    case AGT_SEQUENTIAL: return "sequential";
    case AGT_PARALLEL: return "parallel";
    case AGT_LOOP: return "loop";
    case AGT_LLM: return "llm";
    }
    return "unknown";
}

/* ---- sequential and loop ---- */

/* Runs sub-agent i of def as a child on the current branch; its failure is def's. On 0,
 * *last holds its output (replacing what it held). */
static int step(abp_ctx_t *ctx, const agt_def_t *def, size_t i, const uint8_t *in, size_t n,
                agt_result_t *last) {
    agt_result_t r;
    int rc = agt__run_child(ctx, def->sub_agents[i], in, n, agt_branch(ctx), &r);
    if (rc) return rc;
    if (!r.ok) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s (in sub-agent '%s' of '%s')", r.message,
                 def->sub_agents[i], def->name);
        rc = agt__host->api->fail(ctx, r.code, msg) ? ABP_ENOMEM : ABP_ECALL;
        agt__result_free(&r);
        return rc;
    }
    agt__result_free(last);
    *last = r;
    return 0;
}

static int finish(abp_ctx_t *ctx, int rc, agt_result_t *last) {
    if (rc == 0 && last->ok) rc = agt__host->api->set_output(ctx, last->out, last->out_n);
    agt__result_free(last);
    return rc;
}

int agt__run_sequential(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n) {
    agt_result_t last = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < def->n_sub; i++) rc = step(ctx, def, i, in, n, &last);
    return finish(ctx, rc, &last);
}

int agt__run_loop(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n) {
    agt_frame_t *me = agt__job(ctx)->top;
    agt_result_t last = {0};
    int max = def->max_iterations > 0 ? def->max_iterations : AGT_DEFAULT_MAX_ITERATIONS;
    int rc = 0, it = 0;
    bool stop = false;
    for (; rc == 0 && !stop && it < max; it++) {
        for (size_t i = 0; rc == 0 && !stop && i < def->n_sub; i++) {
            me->escalated = false;
            rc = step(ctx, def, i, in, n, &last);
            stop = me->escalated;
        }
    }
    me->escalated = false; /* taken: it ends this loop, not the ones around it */
    act_log(ACT_LOG_DEBUG, "loop_end", "job=%llu agent=%s iterations=%d escalated=%d",
            (unsigned long long)agt__host->api->job_id(ctx), def->name, it, (int)stop);
    return finish(ctx, rc, &last);
}

/* ---- parallel ---- */

static int pack_child(proto_buf_t *b, abp_call_t *c) {
    const uint8_t *out;
    size_t n;
    const char *code, *message;
    if (agt__host->api->call_output(c, &out, &n) == 0) {
        proto_buf_raw(b, (proto_raw_t){out, n});
        return 0;
    }
    if (agt__host->api->call_error(c, &code, &message) != 0) code = "internal", message = "no answer";
    agt_pack_error(b, code, message);
    return 1;
}

static int gather_output(abp_ctx_t *ctx, const agt_def_t *def, abp_call_t **calls) {
    proto_buf_t b;
    proto_buf_init(&b);
    msgpack_pack_map(&b.pk, (uint32_t)def->n_sub);
    size_t failed = 0;
    for (size_t i = 0; i < def->n_sub; i++) {
        proto_pack_cstr(&b, def->sub_agents[i]);
        failed += (size_t)pack_child(&b, calls[i]);
    }
    int rc = b.failed ? ABP_ENOMEM : agt__host->api->set_output(ctx, b.p, b.n);
    proto_buf_free(&b);
    act_log(ACT_LOG_DEBUG, "parallel_end", "job=%llu agent=%s children=%zu failed=%zu",
            (unsigned long long)agt__host->api->job_id(ctx), def->name, def->n_sub, failed);
    return rc;
}

int agt__run_parallel(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n) {
    abp_call_t *calls[AGT_MAX_SUB_AGENTS] = {0};
    const char *base = *agt_branch(ctx) ? agt_branch(ctx) : def->name;
    int rc = def->n_sub <= AGT_MAX_SUB_AGENTS ? 0 : ABP_EINVAL;
    size_t sent = 0;
    for (; rc == 0 && sent < def->n_sub; sent++) {
        char branch[2 * PROTO_MAX_NAME + 512];
        snprintf(branch, sizeof branch, "%s.%s", base, def->sub_agents[sent]);
        rc = agt__host->call_sub(ctx, def->sub_agents[sent], in, n, branch, -1, &calls[sent]);
    }
    if (rc == 0) {
        rc = agt__host->api->gather(calls, sent);
        if (rc == ABP_ECALL) rc = 0; /* a failed child is an entry of the output */
    }
    if (rc == 0) rc = gather_output(ctx, def, calls);
    for (size_t i = 0; i < sent; i++) agt__host->api->call_free(&calls[i]);
    return rc;
}
