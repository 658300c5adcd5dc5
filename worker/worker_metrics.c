/* worker/worker_metrics.c: the worker's counters (jobs by agent and outcome with a latency histogram,
 * calls, messages and bytes, reconnects, libactor's loop stats), its /metrics endpoint
 * (base's, base/scrape.h, on a ZMQ_STREAM socket read by one task on the worker's loop), and
 * the answer to the broker's `tasks` (act_debug_snapshot, taken without stopping anything). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/debug.h"
#include "base/prom.h"
#include "base/scrape.h"
#include "worker.h"

#define SEND_MS 1000    /* how long an answer may wait for the socket */
#define OTHER "_other"
#define TASKS_MAX 10000 /* tasks listed in one tasks_reply; `more` counts the rest */

typedef struct agent_mx {
    base_hist_t hist;
    uint64_t *by_code;  /* max_labels + 1 outcomes; [0] ok, the last _other */
} agent_mx_t;

/* Tokens of model calls, by agent and model (both bounded: a registered agent, a configured
 * model; past max_labels pairs they count under _other). */
typedef struct tok_mx {
    char *agent, *model;
    uint64_t prompt, completion;
} tok_mx_t;

struct wrk_metrics {
    agent_mx_t *agents;         /* one per registered agent, same order */
    char **codes;               /* max_labels + 1 */
    size_t n_codes, max_labels;
    uint64_t calls[2];          /* sub-queries ended: ok, error */
    tok_mx_t *tok;              /* max_labels + 1; the last is _other */
    size_t n_tok;
    uint64_t in_msgs, in_bytes, out_msgs, out_bytes;
    void *sock;
    act_zsock_t *z;
    act_task_t *task;
    base_scrape_t *scrape;      /* the endpoint's connections; NULL without --metrics */
};

static size_t code_slot(wrk_metrics_t *mx, const char *code) {
    if (!code) return 0; /* "ok", the most frequent by far: no string compare per job */
    for (size_t i = 0; i < mx->n_codes; i++)
        if (strcmp(mx->codes[i], code) == 0) return i;
    if (mx->n_codes >= mx->max_labels || !(mx->codes[mx->n_codes] = strdup(code)))
        return mx->max_labels;
    return mx->n_codes++;
}

void wrk_mx_job_end(wrk_t *w, const abp_ctx_t *j, const char *outcome) {
    wrk_metrics_t *mx = w->mx;
    if (!mx) return;
    agent_mx_t *a = &mx->agents[j->agent - w->host->agents];
    int64_t us = base_mono_us() - j->t0_us;
    base_hist_observe(&a->hist, us > 0 ? (uint64_t)us : 0);
    a->by_code[code_slot(mx, outcome)]++;
}

void wrk_mx_tokens(wrk_t *w, const char *agent, const char *model, uint64_t prompt,
                   uint64_t completion) {
    wrk_metrics_t *mx = w->mx;
    if (!mx || !mx->tok || !agent || !model) return;
    size_t i = 0;
    while (i < mx->n_tok && (strcmp(mx->tok[i].agent, agent) || strcmp(mx->tok[i].model, model)))
        i++;
    if (i == mx->n_tok) {
        char *a = mx->n_tok < mx->max_labels ? strdup(agent) : NULL;
        char *m = a ? strdup(model) : NULL;
        if (m) {
            mx->tok[mx->n_tok++] = (tok_mx_t){.agent = a, .model = m};
        } else {
            free(a);
            i = mx->max_labels; /* _other */
        }
    }
    mx->tok[i].prompt += prompt;
    mx->tok[i].completion += completion;
}

void wrk_mx_call_end(wrk_t *w, bool ok) {
    if (w->mx) w->mx->calls[ok ? 0 : 1]++;
}

void wrk_mx_in(wrk_t *w, size_t n) {
    if (!w->mx) return;
    w->mx->in_msgs++;
    w->mx->in_bytes += n;
}

void wrk_mx_out(wrk_t *w, size_t n) {
    if (!w->mx) return;
    w->mx->out_msgs++;
    w->mx->out_bytes += n;
}

/* ---- the text ---- */

static const char *label(base_buf_t *tmp, const char *k1, const char *v1, const char *k2,
                         const char *v2) {
    base_buf_reset(tmp);
    base_buf_printf(tmp, "%s=\"", k1);
    base_prom_label(tmp, v1, strlen(v1));
    if (k2) {
        base_buf_printf(tmp, "\",%s=\"", k2);
        base_prom_label(tmp, v2, strlen(v2));
    }
    base_buf_put(tmp, "\"", 1);
    return base_buf_cstr(tmp);
}

static void render_jobs(wrk_t *w, base_buf_t *o, base_buf_t *tmp) {
    wrk_metrics_t *mx = w->mx;
    const char *jt = "actorbus_worker_jobs_total", *hd = "actorbus_worker_job_duration_seconds";
    base_prom_family(o, jt, "counter", "Jobs ended, by agent and outcome (ok or error code).");
    for (size_t i = 0; i < w->host->n_agents; i++)
        for (size_t c = 0; c <= mx->max_labels; c++)
            if (mx->agents[i].by_code[c])
                base_prom_u64(o, jt, label(tmp, "agent", w->host->agents[i].name, "outcome",
                                            mx->codes[c]), mx->agents[i].by_code[c]);
    base_prom_family(o, hd, "histogram", "Time from a job's arrival to its end, by agent.");
    for (size_t i = 0; i < w->host->n_agents; i++)
        if (mx->agents[i].hist.count)
            base_prom_hist(o, hd, label(tmp, "agent", w->host->agents[i].name, NULL, NULL),
                            &mx->agents[i].hist);
    base_prom_one(o, "actorbus_worker_jobs_running", "gauge", "Jobs running now.", w->n_jobs);
    base_prom_one(o, "actorbus_worker_capacity", "gauge",
                  "Jobs it takes at once.", w->cfg.capacity);
    base_prom_family(o, "actorbus_worker_calls_total", "counter",
                      "Calls to other agents through the broker, by outcome.");
    base_prom_u64(o, "actorbus_worker_calls_total", "outcome=\"ok\"", mx->calls[0]);
    base_prom_u64(o, "actorbus_worker_calls_total", "outcome=\"error\"", mx->calls[1]);
    static const char tk[] = "actorbus_worker_model_tokens_total";
    base_prom_family(o, tk, "counter",
                      "Tokens of model calls as the model server reported them, by agent, "
                      "model and kind (prompt or completion).");
    for (size_t i = 0; i <= mx->max_labels; i++) {
        const tok_mx_t *t = &mx->tok[i];
        if (!t->prompt && !t->completion) continue;
        for (int k = 0; k < 2; k++) {
            base_buf_reset(tmp);
            base_buf_printf(tmp, "agent=\"");
            base_prom_label(tmp, t->agent, strlen(t->agent));
            base_buf_printf(tmp, "\",model=\"");
            base_prom_label(tmp, t->model, strlen(t->model));
            base_buf_printf(tmp, "\",kind=\"%s\"", k ? "completion" : "prompt");
            base_prom_u64(o, tk, base_buf_cstr(tmp), k ? t->completion : t->prompt);
        }
    }
}

/* base_scrape's render callback: every worker family into o. */
static void render(void *ctx, base_buf_t *o) {
    wrk_t *w = ctx;
    wrk_metrics_t *mx = w->mx;
    base_buf_t tmp;
    base_buf_init(&tmp);
    render_jobs(w, o, &tmp);
    base_prom_one(o, "actorbus_worker_connected", "gauge", "1 while connected to the broker.",
                  w->sock ? 1 : 0);
    base_prom_one(o, "actorbus_worker_connections_total", "counter",
                  "Connections made to the broker.", w->gen);
    base_prom_one(o, "actorbus_worker_send_queue", "gauge", "Messages waiting for the writer.",
                  w->out_len);
    base_prom_one(o, "actorbus_worker_received_messages_total", "counter",
                  "Messages from the broker.", mx->in_msgs);
    base_prom_one(o, "actorbus_worker_received_bytes_total", "counter", "Bytes from the broker.",
                  mx->in_bytes);
    base_prom_one(o, "actorbus_worker_sent_messages_total", "counter", "Messages to the broker.",
                  mx->out_msgs);
    base_prom_one(o, "actorbus_worker_sent_bytes_total", "counter", "Bytes to the broker.",
                  mx->out_bytes);
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    base_prom_one(o, "actorbus_worker_loop_tasks", "gauge",
                  "Live tasks on the loop.", st.tasks_live);
    base_prom_one(o, "actorbus_worker_loop_stacks_in_use", "gauge", "Task stacks in use.",
                  st.stacks_in_use);
    base_prom_one(o, "actorbus_worker_loop_stacks_peak", "gauge", "Most stacks in use at once.",
                  st.stacks_peak);
    base_prom_one(o, "actorbus_worker_loop_switches_total", "counter",
                  "Context switches.", st.switches);
    base_prom_one(o, "actorbus_worker_loop_tasks_spawned_total", "counter",
                  "Tasks spawned.", st.spawned);
    base_scrape_render_requests(mx->scrape, o, "actorbus_worker");
    base_buf_free(&tmp);
}

/* ---- the endpoint ---- */

/* base_scrape's send callback: [id][bytes] writes to the TCP connection, [id][""] closes it. */
static void stream_send(void *ctx, const uint8_t *id, size_t idlen, const uint8_t *p,
                        size_t n) {
    wrk_t *w = ctx;
    act_zframe_t f[2] = {{id, idlen}, {p, n}};
    act_zsock_send_frames(w->mx->z, f, 2, act_deadline_in(SEND_MS));
}

static int metrics_task(void *arg, void **result) {
    (void)result;
    wrk_t *w = arg;
    for (;;) {
        zmq_msg_t parts[2];
        size_t n = 0;
        int64_t next = base_scrape_tick(w->mx->scrape, act_now()); /* closes idle ones */
        int rc = act_zsock_recv(w->mx->z, parts, 2, &n, next);
        if (rc == ACT_ETIMEDOUT || rc == ACT_EMSGSIZE) continue;
        if (rc) return rc == ACT_ECANCELED || rc == ACT_ECLOSED ? 0 : rc;
        if (n == 2)
            base_scrape_on_message(w->mx->scrape, zmq_msg_data(&parts[0]),
                                   zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]),
                                   zmq_msg_size(&parts[1]), act_now());
        act_zsock_close_parts(parts, n);
    }
}

static int bind_endpoint(wrk_t *w) {
    wrk_metrics_t *mx = w->mx;
    base_scrape_opts_t o = {.max_conns = w->cfg.metrics_max_conns,
                            .max_request = w->cfg.metrics_max_request,
                            .idle_ms = (int64_t)w->cfg.metrics_idle_ms,
                            .path = "/metrics",
                            .content_type = "text/plain; version=0.0.4; charset=utf-8",
                            .render = render,
                            .send = stream_send,
                            .ctx = w};
    if (base_scrape_new(&mx->scrape, &o)) return ACT_ENOMEM;
    mx->sock = zmq_socket(w->zctx, ZMQ_STREAM);
    if (!mx->sock) return ACT_ENOMEM;
    int zero = 0;
    zmq_setsockopt(mx->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(mx->sock, w->cfg.metrics) != 0) {
        act_log(ACT_LOG_ERROR, "bind_failed", "socket=metrics endpoint=%s error=\"%s\"",
                w->cfg.metrics, zmq_strerror(errno));
        return ACT_EINVAL;
    }
    int rc = act_zsock_new(&mx->z, mx->sock);
    act_spawn_opts_t so = {.name = "metrics"};
    if (rc == 0) rc = act_spawn(metrics_task, w, &so, &mx->task);
    if (rc == 0) act_log(ACT_LOG_INFO, "listening", "socket=metrics endpoint=%s", w->cfg.metrics);
    return rc;
}

int wrk_metrics_start(wrk_t *w) {
    wrk_metrics_t *mx = calloc(1, sizeof *mx);
    if (!mx) return ACT_ENOMEM;
    w->mx = mx;
    mx->max_labels = w->cfg.metrics_max_labels;
    mx->agents = calloc(w->host->n_agents ? w->host->n_agents : 1, sizeof *mx->agents);
    mx->codes = calloc(mx->max_labels + 1, sizeof *mx->codes);
    mx->tok = calloc(mx->max_labels + 1, sizeof *mx->tok);
    if (!mx->agents || !mx->codes || !mx->tok) return ACT_ENOMEM;
    if (!(mx->tok[mx->max_labels].agent = strdup(OTHER)) ||
        !(mx->tok[mx->max_labels].model = strdup(OTHER)))
        return ACT_ENOMEM;
    for (size_t i = 0; i < w->host->n_agents; i++)
        if (!(mx->agents[i].by_code = calloc(mx->max_labels + 1, sizeof(uint64_t))))
            return ACT_ENOMEM;
    if (!(mx->codes[0] = strdup("ok")) || !(mx->codes[mx->max_labels] = strdup(OTHER)))
        return ACT_ENOMEM;
    mx->n_codes = 1;
    return w->cfg.metrics && *w->cfg.metrics ? bind_endpoint(w) : 0;
}

void wrk_metrics_stop(wrk_t *w) {
    wrk_metrics_t *mx = w->mx;
    if (!mx) return;
    if (mx->task) {
        act_task_cancel(mx->task);
        act_join(mx->task, NULL, -1);
        act_task_release(&mx->task);
    }
    act_zsock_destroy(&mx->z);
    if (mx->sock) zmq_close(mx->sock);
    base_scrape_destroy(&mx->scrape);
    for (size_t i = 0; mx->agents && i < w->host->n_agents; i++) free(mx->agents[i].by_code);
    for (size_t i = 0; mx->codes && i <= mx->max_labels; i++) free(mx->codes[i]);
    for (size_t i = 0; mx->tok && i <= mx->max_labels; i++)
        free(mx->tok[i].agent), free(mx->tok[i].model);
    free(mx->tok);
    free(mx->agents);
    free(mx->codes);
    free(mx);
    w->mx = NULL;
}

/* ---- tasks ---- */

typedef struct task_job {
    uint64_t task, job;
} task_job_t;

static int by_task(const void *a, const void *b) {
    uint64_t x = ((const task_job_t *)a)->task, y = ((const task_job_t *)b)->task;
    return x < y ? -1 : x > y;
}

/* The jobs' task ids, sorted, so that each task finds its job in log time. */
static task_job_t *job_index(const wrk_t *w, size_t *n) {
    task_job_t *v = malloc((w->n_jobs ? w->n_jobs : 1) * sizeof *v);
    *n = 0;
    for (const abp_ctx_t *j = w->jobs; v && j && *n < w->n_jobs; j = j->next)
        if (j->task) v[(*n)++] = (task_job_t){act_task_id(j->task), j->id};
    if (v) qsort(v, *n, sizeof *v, by_task);
    return v;
}

static void pack_task(proto_buf_t *o, const act_task_info_t *t, const task_job_t *idx,
                      size_t n_idx) {
    task_job_t key = {t->id, 0};
    const task_job_t *hit = idx ? bsearch(&key, idx, n_idx, sizeof key, by_task) : NULL;
    uint64_t job = hit ? hit->job : 0;
    msgpack_pack_map(&o->pk, 6 + (job != 0));
    proto_pack_cstr(o, "id");
    msgpack_pack_uint64(&o->pk, t->id);
    proto_pack_cstr(o, "name");
    proto_pack_cstr(o, t->name);
    proto_pack_cstr(o, "state");
    proto_pack_cstr(o, act_task_state_name(t->state));
    proto_pack_cstr(o, "waits_on");
    if (t->waits_on) proto_pack_cstr(o, t->waits_on);
    else msgpack_pack_nil(&o->pk);
    proto_pack_cstr(o, "waiting_ms");
    msgpack_pack_int64(&o->pk, t->waits_on ? t->waiting_ms : 0);
    proto_pack_cstr(o, "cancel_requested");
    if (t->cancel_requested) msgpack_pack_true(&o->pk);
    else msgpack_pack_false(&o->pk);
    if (job) {
        proto_pack_cstr(o, "job");
        msgpack_pack_uint64(&o->pk, job);
    }
}

void wrk_tasks_answer(wrk_t *w, uint64_t ref) {
    act_task_info_t *v = NULL;
    int n = act_debug_snapshot(&v);
    proto_buf_t o;
    proto_buf_init(&o);
    proto_enc_tasks_reply_begin(&o, ref);
    int shown = n > TASKS_MAX ? TASKS_MAX : n;
    msgpack_pack_map(&o.pk, 3 + (shown < n));
    if (shown < n) {
        proto_pack_cstr(&o, "more");
        msgpack_pack_int64(&o.pk, n - shown);
    }
    proto_pack_cstr(&o, "worker");
    proto_pack_cstr(&o, w->cfg.name);
    proto_pack_cstr(&o, "running_jobs");
    msgpack_pack_uint64(&o.pk, w->n_jobs);
    proto_pack_cstr(&o, "tasks");
    msgpack_pack_array(&o.pk, shown > 0 ? (uint32_t)shown : 0);
    size_t n_idx = 0;
    task_job_t *idx = job_index(w, &n_idx);
    for (int i = 0; i < shown; i++) pack_task(&o, &v[i], idx, n_idx);
    free(idx);
    free(v);
    wrk_send(w, w->gen, &o);
    proto_buf_free(&o);
    act_log(ACT_LOG_DEBUG, "tasks_answered", "ref=%llu tasks=%d", (unsigned long long)ref, n);
}
