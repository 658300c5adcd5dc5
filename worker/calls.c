/* calls.c: sub-queries. An agent calls another agent through the broker: the worker sends a
 * `query` with an integer id of its own on its worker socket, and the broker's replies come
 * back with that id. Each call belongs to its job; await, gather and next_done wait on the
 * job's `changed` event, which fires whenever one of its calls ends. A job that ends frees
 * its calls and cancels those still running, so no sub-query outlives its parent. The agent
 * runtime's sub-invocations are calls too, sent with parent, session and branch; their ADK
 * events come back here and update the job's state view. */
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "agent/runtime.h"

/* ---- bookkeeping ---- */

static void pending_unlink(wrk_t *w, abp_call_t *c) {
    if (!c->wprev && w->calls != c) return; /* not pending */
    if (c->wprev) c->wprev->wnext = c->wnext;
    else w->calls = c->wnext;
    if (c->wnext) c->wnext->wprev = c->wprev;
    c->wnext = c->wprev = NULL;
}

static abp_call_t *pending_find(wrk_t *w, uint64_t id) {
    for (abp_call_t *c = w->calls; c; c = c->wnext) {
        if (c->id == id) return c;
    }
    return NULL;
}

/* Reads a reply's id: ours are unsigned integers. Returns false for anything else. */
static bool id_of(proto_raw_t id, uint64_t *out) {
    abp_value_t v;
    if (!id.n || agt_value(id.p, id.n, &v) != 0) return false;
    if (v.type == ABP_UINT || (v.type == ABP_INT && v.i >= 0)) {
        *out = v.u;
        return true;
    }
    return false;
}

static char *dup_str(proto_str_t s) {
    char *p = malloc(s.n + 1);
    if (!p) return NULL;
    memcpy(p, s.p, s.n);
    p[s.n] = 0;
    return p;
}

static void finish(abp_call_t *c, bool ok) {
    c->done = true;
    c->ok = ok;
    c->done_seq = ++c->job->done_seq;
    wrk_mx_call_end(c->job->w, ok);
    pending_unlink(c->job->w, c);
    act_event_set(&c->job->changed);
}

/* An error that could not be stored still ends the call, with a fixed code. */
static void finish_error(abp_call_t *c, proto_str_t code, proto_str_t message) {
    c->code = dup_str(code);
    c->message = dup_str(message);
    finish(c, false);
}

void wrk_calls_deliver(wrk_t *w, const proto_msg_t *m) {
    uint64_t id;
    abp_call_t *c = id_of(m->id, &id) ? pending_find(w, id) : NULL;
    if (!c) return; /* cancelled or freed: the reply is not wanted */
    if (m->type == PROTO_EVENT) { /* a plain call's events reach the bus, not the parent */
        if (c->sub) agt_call_event(c->job, m->event);
        return;
    }
    if (m->type == PROTO_ERROR) {
        finish_error(c, m->code, m->message);
        return;
    }
    c->output = malloc(m->output.n ? m->output.n : 1);
    if (!c->output) {
        finish_error(c, proto_str_of("internal"), proto_str_of("the worker is out of memory"));
        return;
    }
    memcpy(c->output, m->output.p, m->output.n);
    c->output_n = m->output.n;
    finish(c, true);
}

void wrk_calls_fail_all(wrk_t *w, const char *code, const char *message) {
    while (w->calls) finish_error(w->calls, proto_str_of(code), proto_str_of(message));
}

void wrk_calls_fail_unheld(wrk_t *w, const char *code, const char *message) {
    abp_call_t *c = w->calls;
    while (c) {
        abp_call_t *next = c->wnext; /* finish unlinks c */
        if (!c->job->held) finish_error(c, proto_str_of(code), proto_str_of(message));
        c = next;
    }
}

/* Tells the broker we no longer want a call's answer. */
static void send_cancel(abp_call_t *c) {
    proto_buf_t id, msg;
    proto_buf_init(&id);
    proto_buf_init(&msg);
    msgpack_pack_uint64(&id.pk, c->id);
    if (!id.failed && proto_enc_cancel_id(&msg, (proto_raw_t){id.p, id.n}) == 0) {
        wrk_send(c->job->w, c->job->gen, &msg);
    }
    proto_buf_free(&id);
    proto_buf_free(&msg);
}

static void call_destroy(abp_call_t *c) {
    abp_ctx_t *j = c->job;
    if (!c->done) send_cancel(c);
    pending_unlink(j->w, c);
    if (c->prev) c->prev->next = c->next;
    else j->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->output);
    free(c->code);
    free(c->message);
    free(c->query);
    free(c);
}

void wrk_calls_release(abp_ctx_t *job) {
    while (job->calls) call_destroy(job->calls);
}

/* ---- the table's call functions ---- */

static int send_query(abp_ctx_t *ctx, abp_call_t *c, const proto_query_t *q) {
    proto_buf_t id, msg;
    proto_buf_init(&id);
    proto_buf_init(&msg);
    msgpack_pack_uint64(&id.pk, c->id);
    proto_query_t qq = *q;
    qq.id = (proto_raw_t){id.p, id.n};
    int rc = id.failed ? PROTO_ENOMEM : proto_enc_query_msg(&msg, &qq);
    if (rc == 0) wrk_send(ctx->w, ctx->gen, &msg);
    /* A job a broker pair may hand over (origin) keeps its calls' queries: if the broker that
     * takes over finds that its predecessor never sent one on, it runs it (held.c). */
    if (rc == 0 && ctx->origin && (c->query = malloc(msg.n))) {
        memcpy(c->query, msg.p, msg.n);
        c->query_n = msg.n;
    }
    proto_buf_free(&id);
    proto_buf_free(&msg);
    return rc ? ABP_ENOMEM : 0;
}

/* Sends q as a new call of ctx (the id is filled in here). */
static int call_start(abp_ctx_t *ctx, proto_query_t *q, bool sub, abp_call_t **out) {
    static const uint8_t nil = 0xc0;
    if (!q->agent.n || q->agent.n > PROTO_MAX_NAME || !out) return ABP_EINVAL;
    if (!q->input.p || !q->input.n) q->input = (proto_raw_t){&nil, 1};
    if (!agt_is_one_value(q->input.p, q->input.n)) return ABP_EINVAL;
    if (act_task_cancel_requested(act_current()) || ctx->orphaned) return ABP_ECANCELED;
    /* What is left of the calling task's deadline (the job's, or a tool's narrower one) goes
     * with the query, so the callee stops when the caller would stop waiting. */
    int64_t deadline = act_effective_deadline();
    int64_t left = deadline < 0 ? -1 : deadline - act_now();
    if (left >= 0 && (q->timeout_ms < 0 || q->timeout_ms > left)) {
        q->timeout_ms = left > 0 ? left : 1;
    }
    abp_call_t *c = calloc(1, sizeof(*c));
    if (!c) return ABP_ENOMEM;
    c->job = ctx;
    c->sub = sub;
    c->id = ++ctx->w->next_call_id;
    int rc = send_query(ctx, c, q);
    if (rc) {
        free(c->query);
        free(c);
        return rc;
    }
    c->next = ctx->calls;
    if (ctx->calls) ctx->calls->prev = c;
    ctx->calls = c;
    c->wnext = ctx->w->calls;
    if (ctx->w->calls) ctx->w->calls->wprev = c;
    ctx->w->calls = c;
    if (!ctx->w->sock) finish_error(c, proto_str_of("worker_lost"),
                                    proto_str_of("the worker is not connected to the broker"));
    *out = c;
    return 0;
}

int wrk_call(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
             int64_t timeout_ms, abp_call_t **out) {
    proto_query_t q = {.agent = proto_str_of(agent), .input = {input, n},
                       .timeout_ms = timeout_ms};
    return agent ? call_start(ctx, &q, false, out) : ABP_EINVAL;
}

int wrk_call_sub(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                 const char *branch, int64_t timeout_ms, abp_call_t **out) {
    proto_query_t q = {.agent = proto_str_of(agent), .input = {input, n},
                       .session = proto_str_of(ctx->session), .timeout_ms = timeout_ms,
                       .branch = proto_str_of(branch), .parent = ctx->id, .has_parent = true};
    return agent ? call_start(ctx, &q, true, out) : ABP_EINVAL;
}

/* Waits until pred holds for the calls; each pass re-checks after the job's event fired. */
typedef bool calls_pred(abp_call_t *const *calls, size_t n);

static int wait_calls(abp_ctx_t *job, calls_pred *pred, abp_call_t *const *calls, size_t n) {
    if (pred(calls, n)) return 0;
    /* Blocked on sub-queries: the job lends its slot while it waits (wrk_lend); however the
     * wait ends (answers, a cancel, the deadline) the slot comes back. */
    wrk_lend(job->w, +1);
    int rc = 0;
    while (rc == 0 && !pred(calls, n)) {
        act_event_clear(&job->changed);
        rc = act_event_wait(&job->changed, -1);
    }
    wrk_lend(job->w, -1);
    return rc;
}

static bool all_done(abp_call_t *const *calls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!calls[i]->done) return false;
    }
    return true;
}

static bool one_unreported(abp_call_t *const *calls, size_t n) {
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        if (calls[i]->done && !calls[i]->reported) return true;
        pending |= !calls[i]->done;
    }
    return !pending; /* nothing left to wait for */
}

int wrk_await(abp_call_t *call, const uint8_t **output, size_t *n) {
    if (!call) return ABP_EINVAL;
    int rc = wait_calls(call->job, all_done, &call, 1);
    if (rc) return rc;
    if (!call->ok) return ABP_ECALL;
    if (output) *output = call->output;
    if (n) *n = call->output_n;
    return 0;
}

int wrk_gather(abp_call_t *const *calls, size_t n) {
    if (!n) return 0;
    if (!calls || !calls[0]) return ABP_EINVAL;
    int rc = wait_calls(calls[0]->job, all_done, calls, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!calls[i]->ok) return ABP_ECALL;
    }
    return 0;
}

int wrk_next_done(abp_call_t *const *calls, size_t n, size_t *index) {
    if (!n) return ABP_EEOF;
    if (!calls || !calls[0] || !index) return ABP_EINVAL;
    int rc = wait_calls(calls[0]->job, one_unreported, calls, n);
    if (rc) return rc;
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (calls[i]->done && !calls[i]->reported &&
            (best == n || calls[i]->done_seq < calls[best]->done_seq)) {
            best = i;
        }
    }
    if (best == n) return ABP_EEOF;
    calls[best]->reported = true;
    *index = best;
    return 0;
}

bool wrk_call_done(const abp_call_t *call) { return call && call->done; }

int wrk_call_output(const abp_call_t *call, const uint8_t **output, size_t *n) {
    if (!call || !call->done || !call->ok) return ABP_EINVAL;
    *output = call->output;
    *n = call->output_n;
    return 0;
}

int wrk_call_error(const abp_call_t *call, const char **code, const char **message) {
    if (!call || !call->done || call->ok) return ABP_EINVAL;
    if (code) *code = call->code ? call->code : "internal";
    if (message) *message = call->message ? call->message : "";
    return 0;
}

void wrk_call_free(abp_call_t **call) {
    if (!call || !*call) return;
    call_destroy(*call);
    *call = NULL;
}
