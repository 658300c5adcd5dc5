/* agent/runner.c: the runner. For each job it keeps the invocation (id, branch, state view,
 * history) and a stack of frames, one per agent running in the job; it runs the job's agent
 * through its callbacks and type, follows transfer_to_agent, and runs child agents either in
 * the job (hosted here) or as sub-invocations through the broker. Also the callback registry
 * and the runtime's registries as a whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/asan.h"
#include "runner.h"

/* ---- callbacks ---- */

typedef struct cb_entry {
    char *agent; /* NULL: every agent */
    abp_cb_kind_t kind;
    abp_callback_fn fn;
    void *udata;
} cb_entry;

struct agt_callbacks {
    cb_entry *v;
    size_t n, cap;
};

#define AGT_MAX_CALLBACKS 1024

int agt_callback_register(abp_host_t *h, const char *agent, abp_cb_kind_t kind,
                          abp_callback_fn fn, void *udata) {
    agt_rt_t *rt = h && agt__host->registering(h) ? agt__host->rt(h) : NULL;
    if (!rt || !fn || kind < ABP_CB_BEFORE_AGENT ||
        kind > ABP_CB_AFTER_TOOL || (agent && (!*agent || strlen(agent) > PROTO_MAX_NAME))) {
        return ABP_EINVAL;
    }
    agt_callbacks_t *cbs = rt->callbacks;
    if (cbs->n == AGT_MAX_CALLBACKS) return ABP_EINVAL;
    if (cbs->n == cbs->cap) {
        size_t cap = cbs->cap ? 2 * cbs->cap : 8;
        cb_entry *v = realloc(cbs->v, cap * sizeof(*v));
        if (!v) return ABP_ENOMEM;
        cbs->v = v;
        cbs->cap = cap;
    }
    char *a = agent ? strdup(agent) : NULL;
    if (agent && !a) return ABP_ENOMEM;
    cbs->v[cbs->n++] = (cb_entry){a, kind, fn, udata};
    return 0;
}

int agt_callbacks_run(abp_ctx_t *ctx, abp_cb_kind_t kind, const char *tool,
                      const uint8_t *data, size_t n, abp_pack_t *out) {
    agt_rt_t *rt = agt_rt_of(ctx);
    agt_callbacks_t *cbs = rt ? rt->callbacks : NULL;
    const agt_def_t *cur = agt_current(ctx);
    const char *agent = cur ? cur->name : agt__host->job_agent(ctx)->name;
    abp_cb_args_t args = {kind, agent, tool, data, n};
    for (size_t i = 0; cbs && i < cbs->n; i++) {
        cb_entry *e = &cbs->v[i];
        if (e->kind != kind || (e->agent && strcmp(e->agent, agent) != 0)) continue;
        agt_pack_reset(out);
        int rc = e->fn(ctx, &args, out, e->udata);
        if (rc == 0) continue;
        if (rc > 0 && !agt_is_one_value(out->buf.p, out->buf.n)) {
            act_log(ACT_LOG_WARN, "callback_bad_output", "job=%llu agent=%s kind=%d",
                    (unsigned long long)agt__host->api->job_id(ctx), agent, (int)kind);
            return ABP_EINVAL;
        }
        return rc;
    }
    return 0;
}

/* ---- the registries ---- */

const agt_host_t *agt__host;

int agt_rt_new(const agt_host_t *host, agt_rt_t **out) {
    agt__host = host;
    agt_rt_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return ABP_ENOMEM;
    int rc = (rt->callbacks = calloc(1, sizeof(*rt->callbacks))) ? 0 : ABP_ENOMEM;
    if (rc == 0) rc = agt_tools_new(&rt->tools);
    if (rc == 0) rc = agt_models_new(&rt->models);
    if (rc == 0) rc = agt_toolsets_new(&rt->mcp);
    if (rc) {
        agt_rt_destroy(&rt);
        return rc;
    }
    *out = rt;
    return 0;
}

void agt_rt_destroy(agt_rt_t **prt) {
    agt_rt_t *rt = prt ? *prt : NULL;
    if (!rt) return;
    agt_toolsets_destroy(&rt->mcp);
    agt_models_destroy(&rt->models);
    agt_tools_destroy(&rt->tools);
    if (rt->callbacks) {
        for (size_t i = 0; i < rt->callbacks->n; i++) free(rt->callbacks->v[i].agent);
        free(rt->callbacks->v);
        free(rt->callbacks);
    }
    free(rt);
    *prt = NULL;
    agt__job_spares_free();
}

int agt_rt_start(agt_rt_t *rt) { return rt ? agt_toolsets_start(rt) : 0; }

void agt_rt_stop(agt_rt_t *rt) {
    if (!rt) return;
    agt_toolsets_stop(rt);
    agt_models_destroy(&rt->models); /* its HTTP handles live on the loop */
}

/* ---- a job's runner state ---- */

/* Copies s.n bytes of p and a NUL to dst; returns the byte after the NUL. */
static char *put_str(char *dst, const char *p, size_t n) {
    if (n) memcpy(dst, p, n); /* an absent field has p == NULL */
    dst[n] = 0;
    return dst + n + 1;
}

static void job_state_init(struct agt_job *jb, proto_raw_t state) {
    if (agt__delta_ok(state) && !(state.n == 1 && state.p[0] == 0x80))
        proto_buf_raw(&jb->st[0], state); /* a map with string keys, like a delta */
    /* else the empty map, left unpacked (n == 0) */
}

/* Ended jobs' blocks, kept for the next jobs with their state buffers: a job then begins
 * without a malloc (bench/broker/worker_cg.sh). Bounded in count, in the room each keeps
 * for its strings and in the state buffers' size. The loop's thread only. Sanitizer builds
 * keep none (base/asan.h), so a use after the end of a job is still caught. */
#define JOB_SPARE 64
#ifdef BASE_ASAN
static const size_t job_spare_max = 0;
#else
static const size_t job_spare_max = JOB_SPARE; /* a variable: no always-false warning */
#endif
#define JOB_ROOM 96 /* invocation id + branch: a made id is 19, most branches short */
#define JOB_SPARE_ST_MAX 4096
static struct agt_job *spare_job[JOB_SPARE];
static size_t n_spare_job;

static struct agt_job *job_block(size_t room) {
    struct agt_job *jb = NULL;
    if (room <= JOB_ROOM && n_spare_job) {
        jb = spare_job[--n_spare_job];
        proto_buf_t st[2] = {jb->st[0], jb->st[1]};
        memset(jb, 0, sizeof(*jb)); /* not the room: written before it is read */
        for (int i = 0; i < 2; i++) {
            proto_buf_init(&jb->st[i]); /* its packer points at it: init, then lend */
            jb->st[i].p = st[i].p, jb->st[i].cap = st[i].cap;
        }
        jb->room = JOB_ROOM;
        return jb;
    }
    if (room <= JOB_ROOM) room = JOB_ROOM;
    if (!(jb = malloc(sizeof(*jb) + room))) return NULL;
    memset(jb, 0, sizeof(*jb));
    for (int i = 0; i < 2; i++) proto_buf_init(&jb->st[i]);
    jb->room = room;
    return jb;
}

int agt_job_begin(const proto_msg_t *m, struct agt_job **out) {
    /* The invocation id and the branch live in the job's own block, room for an id made
     * here kept (made on first use). */
    size_t inv_n = m->invocation.n ? m->invocation.n : 18;
    struct agt_job *jb = job_block(inv_n + 1 + m->branch.n + 1);
    if (!jb) return ABP_ENOMEM;
    jb->invocation = (char *)(jb + 1);
    jb->inv_later = !m->invocation.n;
    jb->invocation[0] = 0;
    jb->branch = jb->invocation + inv_n + 1;
    if (m->invocation.n) put_str(jb->invocation, m->invocation.p, m->invocation.n);
    put_str(jb->branch, m->branch.p, m->branch.n);
    job_state_init(jb, m->state);
    if (m->history.n && (jb->history = malloc(m->history.n))) {
        memcpy(jb->history, m->history.p, m->history.n);
        jb->history_n = m->history.n;
    }
    if (jb->st[0].failed ||
        (m->history.n && !jb->history)) {
        agt_job_end(&jb);
        return ABP_ENOMEM;
    }
    *out = jb;
    return 0;
}

void agt_job_end(struct agt_job **jbp) {
    struct agt_job *jb = jbp ? *jbp : NULL;
    if (!jb) return;
    while (jb->keep) {
        agt_keep_t *k = jb->keep;
        jb->keep = k->next;
        free(k);
    }
    free(jb->history);
    *jbp = NULL;
    if (jb->room == JOB_ROOM && n_spare_job < job_spare_max) {
        for (int i = 0; i < 2; i++) {
            if (jb->st[i].cap > JOB_SPARE_ST_MAX) proto_buf_free(&jb->st[i]);
        }
        spare_job[n_spare_job++] = jb;
        return;
    }
    for (int i = 0; i < 2; i++) proto_buf_free(&jb->st[i]);
    free(jb); /* invocation and branch with it */
}

void agt__job_spares_free(void) {
    while (n_spare_job) {
        struct agt_job *jb = spare_job[--n_spare_job];
        for (int i = 0; i < 2; i++) proto_buf_free(&jb->st[i]);
        free(jb);
    }
}

size_t agt__job_spares(void) { return n_spare_job; }

/* ---- the runner-side calls of runtime.h ---- */

const agt_def_t *agt_current(abp_ctx_t *ctx) {
    return ctx && agt__job(ctx) && agt__job(ctx)->top ? agt__job(ctx)->top->def : NULL;
}

proto_raw_t agt_history(abp_ctx_t *ctx) {
    struct agt_job *jb = ctx ? agt__job(ctx) : NULL;
    return jb && jb->history_n ? (proto_raw_t){jb->history, jb->history_n} : (proto_raw_t){0};
}

const char *agt_invocation_id(abp_ctx_t *ctx) {
    struct agt_job *jb = ctx ? agt__job(ctx) : NULL;
    if (!jb) return "";
    if (jb->inv_later) agt__make_id('i', jb->invocation), jb->inv_later = false;
    return jb->invocation;
}

const char *agt_branch(abp_ctx_t *ctx) {
    if (!ctx || !agt__job(ctx)) return "";
    return agt__job(ctx)->top ? agt__job(ctx)->top->branch : agt__job(ctx)->branch;
}

/* ---- running one agent in the job ---- */

static int fail_rc(abp_ctx_t *ctx, const char *code, const char *fmt, const char *a) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a);
    agt__host->api->fail(ctx, code, msg);
    return ABP_EINVAL;
}

static int frame_push(abp_ctx_t *ctx, const agt_def_t *def, const char *branch) {
    struct agt_job *jb = agt__job(ctx);
    if (jb->depth >= AGT_MAX_DEPTH) {
        return fail_rc(ctx, "too_deep", "agent '%s' is nested too deep (AGT_MAX_DEPTH)",
                       def->name);
    }
    agt_frame_t *f;
    if (jb->depth == 0 && branch == jb->branch) { /* the job's own agent: its own frame */
        f = &jb->root;
        memset(f, 0, sizeof(*f));
        f->branch = jb->branch;
    } else {
        size_t n = strlen(branch);
        f = calloc(1, sizeof(*f) + n + 1); /* the branch inside: one malloc */
        if (!f) return ABP_ENOMEM;
        f->branch = (char *)(f + 1);
        put_str(f->branch, branch, n);
    }
    f->def = def;
    f->up = jb->top;
    jb->top = f;
    jb->depth++;
    return 0;
}

/* Pops the top frame; hands back its transfer; passes escalate up unless a loop took it. */
static char *frame_pop(abp_ctx_t *ctx) {
    struct agt_job *jb = agt__job(ctx);
    agt_frame_t *f = jb->top;
    char *transfer = f->transfer;
    jb->top = f->up;
    jb->depth--;
    if (f->escalated && jb->top && f->def->kind != AGT_LOOP) jb->top->escalated = true;
    if (f != &jb->root) free(f); /* the branch with it */
    return transfer;
}

static int set_output_from(abp_ctx_t *ctx, const abp_pack_t *out) {
    return agt__host->api->set_output(ctx, out->buf.p, out->buf.n);
}

/* before_agent: 1 means the agent is skipped and out is its output (and a final event). */
static int before_agent(abp_ctx_t *ctx, const uint8_t *in, size_t n, abp_pack_t *out) {
    int rc = agt_callbacks_run(ctx, ABP_CB_BEFORE_AGENT, NULL, in, n, out);
    if (rc == 1) {
        agt__emit_value(ctx, out->buf.p, out->buf.n, true);
        return set_output_from(ctx, out) ? ABP_ENOMEM : 1;
    }
    if (rc < 0 && !agt__host->failed(ctx)) {
        fail_rc(ctx, "callback_error", "a before_agent callback of '%s' failed",
                agt_current(ctx)->name);
    }
    return rc < 0 ? rc : 0;
}

static int after_agent(abp_ctx_t *ctx, abp_pack_t *out) {
    static const uint8_t nil = 0xc0;
    const uint8_t *o = &nil;
    size_t on = 1;
    agt__host->output(ctx, &o, &on);
    int rc = agt_callbacks_run(ctx, ABP_CB_AFTER_AGENT, NULL, o, on, out);
    if (rc == 1) return set_output_from(ctx, out);
    if (rc < 0 && !agt__host->failed(ctx)) {
        fail_rc(ctx, "callback_error", "an after_agent callback of '%s' failed",
                agt_current(ctx)->name);
    }
    return rc < 0 ? rc : 0;
}

static int run_body(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n) {
    switch (def->kind) {
    case AGT_CUSTOM: return def->fn(ctx, def->udata);
    case AGT_SEQUENTIAL: return agt__run_sequential(ctx, def, in, n);
    case AGT_LOOP: return agt__run_loop(ctx, def, in, n);
    case AGT_PARALLEL: return agt__run_parallel(ctx, def, in, n);
    case AGT_LLM: return agt_llm_run(ctx, def, in, n);
    }
    return ABP_EINVAL;
}

/* One agent as a frame: callbacks around its body, with the job's input and agent name
 * switched to its own meanwhile. *transfer: the agent it handed over to, if any. */
static int run_frame(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n,
                     const char *branch, char **transfer) {
    *transfer = NULL;
    int rc = frame_push(ctx, def, branch);
    if (rc) return rc;
    agt_frame_t *f = agt__job(ctx)->top;
    f->in = in, f->in_n = n;
    agt__host->set_current(ctx, def->name, in, n);
    /* No callback registered (most workers): nothing runs around the body, so no packer. */
    agt_rt_t *rt = agt_rt_of(ctx);
    bool cbs = rt && rt->callbacks && rt->callbacks->n;
    abp_pack_t *out = cbs ? agt_pack_new() : NULL;
    rc = !cbs ? 0 : out ? before_agent(ctx, in, n, out) : ABP_ENOMEM;
    if (rc == 0) rc = run_body(ctx, def, in, n);
    else if (rc == 1) rc = 0;
    if (rc == 0 && !agt__host->failed(ctx) && out) rc = after_agent(ctx, out);
    agt_pack_free(&out);
    if (f->up) agt__host->set_current(ctx, f->up->def->name, f->up->in, f->up->in_n);
    else agt__host->set_current(ctx, NULL, NULL, 0); /* the job's own agent again */
    *transfer = frame_pop(ctx);
    return rc;
}

static const agt_def_t *local_def(abp_ctx_t *ctx, const char *name) {
    return agt__host->agent_find(agt__host->host_of(ctx), proto_str_of(name));
}

static bool wants_history(abp_host_t *h, const agt_def_t *def, int depth) {
    if (!def || depth > AGT_MAX_DEPTH) return false;
    if (def->kind == AGT_LLM && !def->llm.no_history) return true;
    if (def->kind == AGT_PARALLEL) return false; /* its children are sub-invocations */
    for (size_t i = 0; i < def->n_sub; i++) {
        const agt_def_t *a = agt__host->agent_find(h, proto_str_of(def->sub_agents[i]));
        if (a && wants_history(h, a, depth + 1)) return true;
    }
    return false;
}

bool agt_wants_history(abp_host_t *host, const agt_def_t *def) {
    return wants_history(host, def, 0);
}

static int output_from_result(abp_ctx_t *ctx, agt_result_t *r) {
    if (!r->ok) return agt__host->api->fail(ctx, r->code, r->message) ? ABP_ENOMEM : ABP_ECALL;
    return agt__host->api->set_output(ctx, r->out, r->out_n);
}

/* The agent handed over to: runs with the same input, its output is the job's. */
static int run_transfer(abp_ctx_t *ctx, const char *target, const uint8_t *in, size_t n,
                        const char *branch, char **next) {
    *next = NULL;
    if (++agt__job(ctx)->transfers > AGT_MAX_TRANSFERS) {
        return fail_rc(ctx, "too_many_transfers", "transfer to '%s' is past AGT_MAX_TRANSFERS",
                       target);
    }
    act_log(ACT_LOG_DEBUG, "transfer", "job=%llu to=%s", (unsigned long long)agt__host->api->job_id(ctx), target);
    agt_answer_t dropped;
    if (agt__host->answer_take(ctx, &dropped)) return ABP_ENOMEM; /* it answers afresh */
    agt__answer_free(&dropped);
    const agt_def_t *def = local_def(ctx, target);
    if (def) return run_frame(ctx, def, in, n, branch, next);
    agt_result_t r = {0};
    int rc = agt__run_child(ctx, target, in, n, branch, &r);
    if (rc == 0) rc = output_from_result(ctx, &r);
    agt__result_free(&r);
    return rc;
}

/* Runs def in the job as the current agent's child (or the job's own agent): its output
 * and error become the job's; transfers are followed. */
static int run_def(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n,
                   const char *branch) {
    char *transfer = NULL;
    int rc = run_frame(ctx, def, in, n, branch, &transfer);
    while (rc == 0 && transfer && !agt__host->failed(ctx)) {
        char *next = NULL;
        rc = run_transfer(ctx, transfer, in, n, branch, &next);
        free(transfer);
        transfer = next;
    }
    free(transfer);
    return rc;
}

int agt_job_run(abp_ctx_t *ctx) {
    const uint8_t *in;
    size_t n;
    agt__host->job_input(ctx, &in, &n);
    return run_def(ctx, agt__host->job_agent(ctx), in, n, agt__job(ctx)->branch);
}

/* ---- children ---- */

void agt__result_free(agt_result_t *r) {
    free(r->out);
    free(r->code);
    free(r->message);
    memset(r, 0, sizeof(*r));
}

static int result_error(agt_result_t *r, const char *code, const char *message) {
    r->ok = false;
    r->code = strdup(code ? code : "internal");
    r->message = strdup(message ? message : "");
    return r->code && r->message ? 0 : ABP_ENOMEM;
}

static int result_output(agt_result_t *r, const uint8_t *out, size_t n) {
    static const uint8_t nil = 0xc0;
    if (!out || !n) out = &nil, n = 1;
    if (!(r->out = malloc(n))) return ABP_ENOMEM;
    memcpy(r->out, out, n);
    r->out_n = n;
    r->ok = true;
    return 0;
}

void agt__answer_free(agt_answer_t *a) {
    free(a->out);
    free(a->code);
    free(a->message);
    memset(a, 0, sizeof(*a));
}

static int run_here(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *in, size_t n,
                    const char *branch, agt_result_t *r) {
    agt_answer_t saved, child;
    /* The job's answer is put aside while the child runs in the job. */
    if (agt__host->answer_take(ctx, &saved)) return ABP_ENOMEM;
    int rc = run_def(ctx, def, in, n, branch), erc = 0;
    char msg[192];
    if (agt__host->answer_take(ctx, &child)) {
        erc = ABP_ENOMEM;
    } else if (child.code) {
        erc = result_error(r, child.code, child.message);
    } else if (rc == 0) {
        erc = result_output(r, child.has_out ? child.out : NULL, child.out_n);
    } else if (rc != ABP_ECANCELED && rc != ABP_ETIMEDOUT) {
        snprintf(msg, sizeof msg, "agent '%s' returned %s", def->name, act_err_name(rc));
        erc = result_error(r, "internal", msg);
    }
    agt__answer_free(&child);
    if (agt__host->answer_put(ctx, &saved) && !erc) erc = ABP_ENOMEM;
    agt__answer_free(&saved);
    if (rc == ABP_ECANCELED || rc == ABP_ETIMEDOUT) return rc;
    return erc;
}

static int run_remote(abp_ctx_t *ctx, const char *name, const uint8_t *in, size_t n,
                      const char *branch, agt_result_t *r) {
    abp_call_t *c = NULL;
    const uint8_t *out;
    size_t out_n;
    const char *code, *message;
    int rc = agt__host->call_sub(ctx, name, in, n, branch, -1, &c);
    if (rc) return rc;
    rc = agt__host->api->await(c, &out, &out_n);
    if (rc == 0) rc = result_output(r, out, out_n);
    else if (rc == ABP_ECALL && agt__host->api->call_error(c, &code, &message) == 0) {
        rc = result_error(r, code, message);
    }
    agt__host->api->call_free(&c);
    return rc;
}

int agt__run_child(abp_ctx_t *ctx, const char *name, const uint8_t *in, size_t n,
                   const char *branch, agt_result_t *r) {
    memset(r, 0, sizeof(*r));
    const agt_def_t *def = local_def(ctx, name);
    /* The frame stack belongs to the job's task: children asked for from other tasks (tool
     * calls running concurrently) go through the broker. */
    int rc = def && agt__job(ctx) && act_current() == agt__host->job_task(ctx)
                 ? run_here(ctx, def, in, n, branch, r)
                 : run_remote(ctx, name, in, n, branch, r);
    if (rc) agt__result_free(r); /* the job stops: nothing of the child is wanted */
    return rc;
}

static int keep(abp_ctx_t *ctx, const uint8_t *p, size_t n, const uint8_t **out,
                size_t *out_n) {
    agt_keep_t *k = malloc(sizeof(*k) + n);
    if (!k) return ABP_ENOMEM;
    memcpy(k->data, p, n);
    k->n = n;
    k->next = agt__job(ctx)->keep;
    agt__job(ctx)->keep = k;
    if (out) *out = k->data;
    if (out_n) *out_n = n;
    return 0;
}

static int error_map(abp_ctx_t *ctx, const agt_result_t *r, const uint8_t **out,
                     size_t *out_n) {
    proto_buf_t b;
    proto_buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    proto_pack_cstr(&b, "code");
    proto_pack_cstr(&b, r->code);
    proto_pack_cstr(&b, "message");
    proto_pack_cstr(&b, r->message);
    int rc = b.failed ? ABP_ENOMEM : keep(ctx, b.p, b.n, out, out_n);
    proto_buf_free(&b);
    return rc;
}

int agt_run_agent(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                  const uint8_t **output, size_t *output_n) {
    static const uint8_t nil = 0xc0;
    if (!ctx || !agt__job(ctx) || !agent || !*agent || strlen(agent) > PROTO_MAX_NAME) {
        return ABP_EINVAL;
    }
    if (!input || !n) input = &nil, n = 1;
    if (!agt_is_one_value(input, n)) return ABP_EINVAL;
    agt_result_t r;
    int rc = agt__run_child(ctx, agent, input, n, agt_branch(ctx), &r);
    if (rc == 0 && r.ok) {
        rc = keep(ctx, r.out, r.out_n, output, output_n);
    } else if (rc == 0) {
        act_log(ACT_LOG_INFO, "run_agent_failed", "job=%llu agent=%s code=%s message=\"%s\"",
                (unsigned long long)agt__host->api->job_id(ctx), agent, r.code, r.message);
        rc = error_map(ctx, &r, output, output_n);
        if (rc == 0) rc = ABP_ECALL;
    }
    agt__result_free(&r);
    return rc;
}
