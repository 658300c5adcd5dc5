/* worker/worker_jobs.c: a job per `work` message, run inline on the connection's task until
 * it first waits, then on that task while a new one serves the connection (most end without
 * waiting: no task of their own). The job's timeout_ms becomes a scope deadline
 * around the agent; `cancel` cancels its task (the agent sees ABP_ECANCELED and cleans up);
 * when the agent returns, exactly one `result` or `error` goes back. The agent runs through
 * the agent runtime's runner (agent/runner.c: callbacks, agent types, transfers). Also the
 * part of the plugin table that acts on the job itself (input, emit, set_output, fail...). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/asan.h"
#include "worker.h"
#include "agent/runtime.h"

/* ---- the job list ---- */

static void job_link(wrk_t *w, abp_ctx_t *j) {
    j->node.id = j->id;
    wrk_jobtab_add(&w->jobtab, &j->node);
    j->prev = NULL;
    j->next = w->jobs;
    if (w->jobs) w->jobs->prev = j;
    w->jobs = j;
    w->n_jobs++;
    act_event_clear(&w->jobs_idle);
}

/* The job's block: kept for the next job when it has the pooled room, else freed. */
static void job_block_free(wrk_t *w, abp_ctx_t *j) {
    if (j->room != WRK_JOB_ROOM || !wrk_pool_put(&w->spare_jobs, j)) free(j);
}

static void job_free(abp_ctx_t *j) {
    wrk_t *w = j->w;
    wrk_jobtab_del(&w->jobtab, &j->node);
    if (j->prev) j->prev->next = j->next;
    else w->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    if (--w->n_jobs == 0) act_event_set(&w->jobs_idle);
    act_task_release(&j->task);
    agt_job_end(&j->agt);
    if (j->output.cap && j->output.cap <= WRK_SPARE_OUT_MAX_BYTES &&
        w->n_spare_out < WRK_SPARE_OUT) /* kept for the next job's output */
        w->spare_out[w->n_spare_out++] = j->output;
    else
        proto_buf_free(&j->output);
    free(j->session);
    free(j->err_code);
    free(j->err_msg);
    free(j->origin);
    free(j->invocation);
    job_block_free(w, j);
}

/* The newest running job with id (as the list, newest first, found it). */
static abp_ctx_t *job_find(wrk_t *w, uint64_t id) {
    wrk_jobtab_node_t *x = wrk_jobtab_find(&w->jobtab, id);
    return x ? (abp_ctx_t *)((char *)x - offsetof(abp_ctx_t, node)) : NULL;
}

int wrk_jobs_init(wrk_t *w) {
#ifdef BASE_ASAN /* no recycled blocks: a use after a job's end is still caught */
    wrk_pool_init(&w->spare_jobs, 0);
#else
    wrk_pool_init(&w->spare_jobs, WRK_SPARE_JOBS);
#endif
    return wrk_jobtab_init(&w->jobtab, w->cfg.capacity);
}

size_t wrk_jobs_running(const wrk_t *w) { return w->n_jobs; }

void wrk_jobs_free_spares(wrk_t *w) {
    while (w->n_spare_out) proto_buf_free(&w->spare_out[--w->n_spare_out]);
    wrk_pool_free(&w->spare_jobs);
    wrk_jobtab_free(&w->jobtab);
}

/* ---- answering ---- */

/* Answers are encoded into the worker's scratch encoder, which wrk_send copies from at once
 * (nothing yields in between), instead of a buffer allocated and freed per job. */
static void send_error(wrk_t *w, uint64_t gen, uint64_t job, const char *code, const char *msg) {
    if (proto_enc_job_error(&w->enc, job, code, msg) == 0) wrk_send(w, gen, &w->enc);
}

/* The one terminal message of a job, from how it ended. */
static void job_answer(abp_ctx_t *j, int rc, int scope_rc) {
    wrk_t *w = j->w;
    char msg[160];
    const char *code = NULL, *text = msg; /* code NULL: a result */
    if (j->cancelled) {
        code = "cancelled", text = "the query was cancelled";
    } else if (j->stopping) {
        code = "shutting_down", text = "the worker stopped before the job ended";
    } else if (j->err_code) {
        code = j->err_code, text = j->err_msg ? j->err_msg : "";
    } else if (rc == 0) {
    } else if (rc == ABP_ETIMEDOUT || scope_rc == ACT_ETIMEDOUT) {
        code = "timeout", text = "the job's timeout_ms passed";
    } else if (rc == ABP_ECANCELED) {
        code = "cancelled", text = "the agent was cancelled";
    } else {
        snprintf(msg, sizeof msg, "agent '%s' returned %s", j->agent->name, act_err_name(rc));
        code = "internal";
    }
    wrk_mx_job_end(w, j, j->orphaned ? "orphaned" : code); /* NULL: ok */
    if (j->orphaned) return;
    static const uint8_t nil = 0xc0;
    proto_raw_t out = {j->has_output ? j->out_p : &nil, j->has_output ? j->out_n : 1};
    if (j->origin) { /* adoptable: kept if its broker is gone (held.c) */
        proto_buf_t b;
        proto_buf_init(&b);
        int rc = code ? proto_enc_job_error(&b, j->id, code, text)
                      : proto_enc_job_result(&b, j->id, out);
        if (rc == 0) wrk_held_answer(w, j, &b);
        proto_buf_free(&b);
        return;
    }
    if (code) {
        send_error(w, j->gen, j->id, code, text);
        return;
    }
    if (proto_enc_job_result(&w->enc, j->id, out) == 0) wrk_send(w, j->gen, &w->enc);
}

/* Runs j's agent on the calling task, answers and frees j. */
static void job_run(abp_ctx_t *j) {
    j->ran = true;
    j->on = act_current();
    /* A scope without a deadline would bound nothing (nobody else can cancel it): none. */
    act_scope_t s;
    if (j->deadline >= 0) act_scope_enter(&s, j->deadline, 0);
    int rc = agt_job_run(j);
    int scope_rc = j->deadline >= 0 ? act_scope_leave(&s) : 0;
    if (j->inlined) act_on_park(NULL, NULL); /* it never waited: nothing to hand over */
    wrk_calls_release(j);
    job_answer(j, rc, scope_rc);
    /* Two debug lines per job: asked first, as both are off by default. */
    if (act_log_on(rc ? ACT_LOG_INFO : ACT_LOG_DEBUG))
        act_log(rc ? ACT_LOG_INFO : ACT_LOG_DEBUG, "job_end", "job=%llu agent=%s rc=%s%s",
                (unsigned long long)j->id, j->agent->name, rc ? act_err_name(rc) : "0",
                j->cancelled ? " cancelled=1" : "");
    job_free(j);
}

static int job_body(void *arg, void **result) {
    (void)result;
    job_run(arg);
    return 0;
}

/* Called just before an inline job first waits: its task (the connection's) becomes the
 * job's own, and a new one serves the connection. Until then the job is reached only by
 * itself: nothing else runs while it runs, so no cancel can find it without a task. */
static void job_promote(void *arg) {
    abp_ctx_t *j = arg;
    j->inlined = false;
    int rc = wrk_conn_handoff(j->w, &j->task);
    if (rc && rc != ACT_ECANCELED) /* ACT_ECANCELED: the connection is stopping anyway */
        act_log(ACT_LOG_ERROR, "job_promote_failed", "job=%llu error=%s why=\"the "
                "connection waits for the job\"", (unsigned long long)j->id, act_err_name(rc));
}

/* ---- from the broker ---- */

/* A broker pair's work says who asked (origin): kept, so that the job can be reported to the
 * broker that takes over and adopted there. Returns: 0 or ACT_ENOMEM. */
static int job_new_origin(wrk_t *w, abp_ctx_t *j, const proto_msg_t *m) {
    if (!m->origin.n || w->cfg.max_held == 0) return 0;
    if (!(j->origin = malloc(m->origin.n))) return ACT_ENOMEM;
    memcpy(j->origin, m->origin.p, m->origin.n);
    j->origin_n = m->origin.n;
    if (m->invocation.n && !(j->invocation = strndup(m->invocation.p, m->invocation.n)))
        return ACT_ENOMEM;
    return 0;
}

static abp_ctx_t *job_new(wrk_t *w, const proto_msg_t *m, const wrk_agent_t *a) {
    /* The input's copy lives in the job's own block: an ended job's when it fits (only the
     * struct is zeroed, not the room), else one malloc. */
    size_t room = m->input.n <= WRK_JOB_ROOM ? WRK_JOB_ROOM : m->input.n;
    abp_ctx_t *j = room == WRK_JOB_ROOM ? wrk_pool_get(&w->spare_jobs) : NULL;
    if (!j && !(j = malloc(sizeof(*j) + room))) return NULL;
    memset(j, 0, sizeof(*j));
    j->room = room;
    j->input = (uint8_t *)(j + 1);
    if (m->input.n) memcpy(j->input, m->input.p, m->input.n);
    j->input_n = m->input.n;
    if (m->session.n && !(j->session = strndup(m->session.p, m->session.n))) {
        job_block_free(w, j);
        return NULL;
    }
    j->w = w;
    j->t0_us = base_mono_us();
    j->id = m->job;
    j->gen = w->gen;
    j->agent = a;
    j->deadline = m->timeout_ms >= 0 ? act_deadline_in(proto_timeout_clamp(m->timeout_ms)) : -1;
    j->in = j->input, j->in_n = j->input_n, j->agent_now = a->name;
    proto_buf_init(&j->output); /* its packer points at it: init, then lend the memory */
    if (w->n_spare_out) { /* an ended job's buffer: set_output fills it without a malloc */
        const proto_buf_t *sp = &w->spare_out[--w->n_spare_out];
        j->output.p = sp->p, j->output.cap = sp->cap;
    }
    act_event_init(&j->changed);
    if (job_new_origin(w, j, m) != 0 || agt_job_begin(m, &j->agt) != 0) {
        proto_buf_free(&j->output), free(j->session);
        free(j->origin), free(j->invocation), job_block_free(w, j);
        return NULL;
    }
    return j;
}

void wrk_jobs_start(wrk_t *w, const proto_msg_t *m) {
    const wrk_agent_t *a = wrk_agent_find(w->host, m->agent);
    if (!a) {
        send_error(w, w->gen, m->job, "unknown_agent", "this worker does not host the agent");
        return;
    }
    if (job_find(w, m->job)) {
        send_error(w, w->gen, m->job, "duplicate_id", "this worker already runs that job");
        return;
    }
    abp_ctx_t *j = job_new(w, m, a);
    /* Inline on the connection's task when it is the caller (always, but for a test's or a
     * future caller's sake): most agents (echo) end without waiting, and then the job costs
     * no task, no stack and no switch. One that waits takes the task over (job_promote). */
    bool here = act_current() == w->server;
    act_spawn_opts_t o = {.name = a->name};
    if (!j || (!here && act_spawn(job_body, j, &o, &j->task) != 0)) {
        if (j) agt_job_end(&j->agt), proto_buf_free(&j->output), free(j->session);
        if (j) free(j->origin), free(j->invocation), job_block_free(w, j);
        send_error(w, w->gen, m->job, "internal", "the worker is out of memory");
        return;
    }
    job_link(w, j);
    if (act_log_on(ACT_LOG_DEBUG))
        act_log(ACT_LOG_DEBUG, "job_start", "job=%llu agent=%s attempt=%llu timeout_ms=%lld",
                (unsigned long long)j->id, a->name, (unsigned long long)m->attempt,
                (long long)m->timeout_ms);
    if (!here) return;
    j->inlined = true;
    act_on_park(job_promote, j);
    /* Named after its agent while the job runs on it, so that the watchdog names the agent
     * that holds the loop, not "connection". */
    act_task_set_name(w->server, a->name);
    job_run(j);
    if (act_current() == w->server) act_task_set_name(w->server, "connection");
}

/* Cancels j's task. A task that never started ends at once without running job_body, so
 * its answer and cleanup happen here. */
static void job_cancel(abp_ctx_t *j) {
    if (!j->task) return; /* inline, and its own caller: it sees the flags when it ends */
    act_task_cancel(j->task);
    if (!j->ran && act_task_done(j->task)) {
        job_answer(j, ABP_ECANCELED, 0);
        job_free(j);
    }
}

void wrk_jobs_cancel(wrk_t *w, uint64_t id) {
    abp_ctx_t *j = job_find(w, id);
    if (!j) return; /* it ended already: its answer is on its way */
    act_log(ACT_LOG_INFO, "job_cancel", "job=%llu agent=%s", (unsigned long long)id,
            j->agent->name);
    j->cancelled = true;
    job_cancel(j);
}

void wrk_jobs_cancel_all(wrk_t *w, bool orphan) {
    abp_ctx_t *j = w->jobs;
    while (j) {
        abp_ctx_t *next = j->next; /* job_cancel may free j */
        if (orphan) j->orphaned = true;
        else j->stopping = true;
        job_cancel(j);
        j = next;
    }
}

size_t wrk_jobs_hold(wrk_t *w) {
    size_t held = 0, kept = w->n_held; /* answers kept already count against --max-held */
    abp_ctx_t *j = w->jobs;
    while (j) {
        abp_ctx_t *next = j->next; /* job_cancel may free j */
        if (j->origin && !j->cancelled && !j->stopping && held + kept < w->cfg.max_held) {
            j->held = true;
            held++;
        } else {
            if (j->origin && !j->cancelled && !j->stopping)
                act_log(ACT_LOG_WARN, "job_not_held", "job=%llu why=max_held max_held=%llu",
                        (unsigned long long)j->id, (unsigned long long)w->cfg.max_held);
            j->orphaned = true;
            job_cancel(j);
        }
        j = next;
    }
    return held;
}

int wrk_jobs_wait_idle(wrk_t *w, int64_t deadline) {
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    int rc = act_event_wait(&w->jobs_idle, deadline);
    act_scope_leave(&shield);
    return rc;
}

/* ---- the table's job functions ---- */

int wrk_ctx_input(abp_ctx_t *ctx, const uint8_t **bytes, size_t *n) {
    *bytes = ctx->in;
    *n = ctx->in_n;
    return 0;
}

int wrk_ctx_emit(abp_ctx_t *ctx, const uint8_t *event, size_t n) {
    if (!event || !agt_is_one_value(event, n)) return ABP_EINVAL;
    return wrk_ctx_emit_built(ctx, event, n);
}

int wrk_ctx_emit_built(abp_ctx_t *ctx, const uint8_t *event, size_t n) {
    if (ctx->w->out_len >= WRK_OUT_MAX) return ABP_EAGAIN;
    proto_buf_t b;
    proto_buf_init(&b);
    int rc = proto_enc_job_event(&b, ctx->id, (proto_raw_t){event, n});
    if (rc == 0) wrk_send(ctx->w, ctx->gen, &b);
    proto_buf_free(&b);
    return rc ? ABP_ENOMEM : 0;
}

int wrk_pack_emit(abp_ctx_t *ctx, const abp_pack_t *p) {
    return p->buf.failed ? ABP_ENOMEM : wrk_ctx_emit(ctx, p->buf.p, p->buf.n);
}

int wrk_ctx_set_output(abp_ctx_t *ctx, const uint8_t *output, size_t n) {
    /* The job's own input was checked as one value when its work was decoded: an agent that
     * answers with it (echo) is not walked again. */
    bool checked = output == ctx->input && n == ctx->input_n && n;
    if (!output || (!checked && !agt_is_one_value(output, n))) return ABP_EINVAL;
    if (checked) { /* the input lives as long as the job: pointed at, not copied */
        ctx->out_p = ctx->input, ctx->out_n = n;
        ctx->has_output = true;
        return 0;
    }
    proto_buf_reset(&ctx->output);
    proto_buf_raw(&ctx->output, (proto_raw_t){output, n});
    if (ctx->output.failed) return ABP_ENOMEM;
    ctx->out_p = ctx->output.p, ctx->out_n = ctx->output.n;
    ctx->has_output = true;
    return 0;
}

int wrk_pack_set_output(abp_ctx_t *ctx, const abp_pack_t *p) {
    return p->buf.failed ? ABP_ENOMEM : wrk_ctx_set_output(ctx, p->buf.p, p->buf.n);
}

int wrk_ctx_fail(abp_ctx_t *ctx, const char *code, const char *message) {
    if (!code || !*code) return ABP_EINVAL;
    char *c = strdup(code), *m = strdup(message ? message : "");
    if (!c || !m) {
        free(c);
        free(m);
        return ABP_ENOMEM;
    }
    free(ctx->err_code);
    free(ctx->err_msg);
    ctx->err_code = c;
    ctx->err_msg = m;
    return 0;
}

int wrk_ctx_sleep(abp_ctx_t *ctx, int64_t ms) {
    (void)ctx;
    /* act_sleep(-1) would never end; a huge ms must not overflow its deadline */
    return act_sleep(ms < 0 ? 0 : proto_timeout_clamp(ms));
}

const char *wrk_ctx_worker_name(abp_ctx_t *ctx) { return ctx->w->cfg.name; }
const char *wrk_ctx_agent_name(abp_ctx_t *ctx) {
    return ctx->agent_now ? ctx->agent_now : ctx->agent->name;
}
uint64_t wrk_ctx_job_id(abp_ctx_t *ctx) { return ctx->id; }
const char *wrk_ctx_session(abp_ctx_t *ctx) { return ctx->session; }

/* The one deadline is the calling task's: the job's scope, narrowed by a tool's timeout. */
int64_t wrk_ctx_time_left(abp_ctx_t *ctx) {
    (void)ctx;
    int64_t deadline = act_effective_deadline();
    if (deadline < 0) return -1;
    int64_t left = deadline - act_now();
    return left > 0 ? left : 0;
}

bool wrk_ctx_cancelled(abp_ctx_t *ctx) {
    return ctx->cancelled || ctx->stopping || ctx->orphaned ||
           (ctx->task && act_task_cancel_requested(ctx->task));
}

int64_t wrk_unix_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void wrk_ctx_log(abp_ctx_t *ctx, int level, const char *event, const char *fmt, ...) {
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt ? fmt : "", ap);
    va_end(ap);
    if (level < ABP_LOG_DEBUG || level > ABP_LOG_ERROR) level = ABP_LOG_INFO;
    if (ctx) {
        act_log((act_log_level_t)level, event ? event : "plugin", "job=%llu agent=%s %s",
                (unsigned long long)ctx->id, ctx->agent->name, line);
    } else {
        act_log((act_log_level_t)level, event ? event : "plugin", "%s", line);
    }
}
