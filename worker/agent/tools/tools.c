/* tools.c: the tool registry of the agent runtime (register_tool, the config's "tools"),
 * the tools an LLM agent offers its model, and one round of tool calls: every call in its own
 * task with its own timeout, C tools in the agent's loop or (ABP_TOOL_BLOCKING) on the
 * thread pool, agents as tools through the runner, MCP tools through mcp_toolsets.c. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelside.h"

typedef struct tool {
    char *name, *description, *params_json;
    abp_tool_fn fn;
    void *udata;
    unsigned flags;
    int64_t timeout_ms;
} tool_t;

typedef struct tool_conf {
    char *name;
    int64_t timeout_ms;
} tool_conf_t;

struct agt_tools {
    tool_t **v; /* pointers: a blocking tool's thread holds one while the array may grow */
    size_t n, cap;
    tool_conf_t *conf;
    size_t n_conf;
};

struct abp_tool_ctx {
    abp_ctx_t *job;     /* NULL on a pool thread */
    char fail[200];     /* tool_fail's message */
    proto_buf_t *delta; /* tool_state_set's entries */
    uint32_t *n_delta;
};

/* Threads of blocking tools alive at once (a stuck one counts until it returns). */
#define AGT_MAX_BLOCKING_THREADS 64

static const char DEFAULT_PARAMS[] = "{\"type\":\"object\",\"properties\":{}}";

agt_rt_t *agt_rt_of(abp_ctx_t *ctx) { return agt__host->rt(agt__host->host_of(ctx)); }

int64_t agt_deadline_min(int64_t a, int64_t b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

void agt_pack_error(proto_buf_t *b, const char *code, const char *message) {
    msgpack_pack_map(&b->pk, 1);
    proto_pack_cstr(b, "error");
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "code");
    proto_pack_cstr(b, code);
    proto_pack_cstr(b, "message");
    proto_pack_cstr(b, message);
}

/* ---- the registry ---- */

int agt_tools_new(agt_tools_t **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : ACT_ENOMEM;
}

static void tool_free(tool_t *t) {
    if (!t) return;
    free(t->name);
    free(t->description);
    free(t->params_json);
    free(t);
}

void agt_tools_destroy(agt_tools_t **tp) {
    if (!tp || !*tp) return;
    agt_tools_t *t = *tp;
    for (size_t i = 0; i < t->n; i++) tool_free(t->v[i]);
    for (size_t i = 0; i < t->n_conf; i++) free(t->conf[i].name);
    free(t->v);
    free(t->conf);
    free(t);
    *tp = NULL;
}

/* What OpenAI-style servers accept as a function name. */
static bool tool_name_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static const tool_t *tool_find(const agt_tools_t *t, const char *name) {
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->v[i]->name, name) == 0) return t->v[i];
    return NULL;
}

/* A schema must be a JSON object: models reject anything else. */
static bool schema_ok(const char *json) {
    proto_buf_t b;
    proto_buf_init(&b);
    bool ok = proto_json_to_msgpack(json, strlen(json), &b, NULL) == 0 && b.n && !b.failed &&
              ((b.p[0] & 0xf0) == 0x80 || b.p[0] == 0xde || b.p[0] == 0xdf);
    proto_buf_free(&b);
    return ok;
}

int agt_tool_register(abp_host_t *host, const abp_tool_def_t *def) {
    agt_rt_t *rt = host && agt__host->registering(host) ? agt__host->rt(host) : NULL;
    if (!rt || !rt->tools || !def || !def->fn)
        return ABP_EINVAL;
    if (!tool_name_ok(def->name) || strcmp(def->name, "transfer_to_agent") == 0)
        return ABP_EINVAL;
    if (def->parameters_json && !schema_ok(def->parameters_json)) return ABP_EINVAL;
    if (def->timeout_ms < 0) return ABP_EINVAL;
    agt_tools_t *t = rt->tools;
    if (tool_find(t, def->name)) return ABP_EEXIST;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        tool_t **v = realloc(t->v, cap * sizeof(*v));
        if (!v) return ABP_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    tool_t *e = calloc(1, sizeof(*e));
    if (!e) return ABP_ENOMEM;
    e->name = strdup(def->name);
    e->description = strdup(def->description ? def->description : "");
    e->params_json = strdup(def->parameters_json ? def->parameters_json : DEFAULT_PARAMS);
    e->fn = def->fn;
    e->udata = def->udata;
    e->flags = def->flags;
    e->timeout_ms = def->timeout_ms;
    if (!e->name || !e->description || !e->params_json) {
        tool_free(e);
        return ABP_ENOMEM;
    }
    t->v[t->n++] = e;
    act_log(ACT_LOG_INFO, "tool", "name=%s blocking=%d", e->name,
            !!(e->flags & ABP_TOOL_BLOCKING));
    return 0;
}

/* One entry of the config's "tools": {"timeout_ms": N}. */
static int tool_conf_one(agt_tools_t *t, const proto_val_t *k, const proto_val_t *v, char *err,
                         size_t cap) {
    int kn = (int)k->len;
    const char *ks = (const char *)k->data;
    if (v->type != PROTO_V_MAP) {
        snprintf(err, cap, "tools.%.*s must be an object", kn, ks);
        return ACT_EINVAL;
    }
    int64_t timeout = 0;
    size_t cur = 0;
    proto_val_t fk, fv;
    while (proto_val_next(v, &cur, &fk) == 1 && proto_val_next(v, &cur, &fv) == 1) {
        if (!proto_val_str_eq(&fk, "timeout_ms")) {
            snprintf(err, cap, "tools.%.*s.%.*s is not a known key", kn, ks,
                     fk.type == PROTO_V_STR ? (int)fk.len : 1,
                     fk.type == PROTO_V_STR ? (const char *)fk.data : "?");
            return ACT_EINVAL;
        }
        if ((fv.type != PROTO_V_INT && fv.type != PROTO_V_UINT) || fv.i <= 0) {
            snprintf(err, cap, "tools.%.*s.timeout_ms must be a positive integer", kn, ks);
            return ACT_EINVAL;
        }
        timeout = fv.i;
    }
    for (size_t i = 0; i < t->n_conf; i++) {
        if (strlen(t->conf[i].name) == k->len && memcmp(t->conf[i].name, ks, k->len) == 0) {
            snprintf(err, cap, "tools.%.*s is given twice", kn, ks); /* as models and mcp */
            return ACT_EINVAL;
        }
    }
    tool_conf_t *c = realloc(t->conf, (t->n_conf + 1) * sizeof(*c));
    if (!c) return ACT_ENOMEM;
    t->conf = c;
    char *name = strndup(ks, k->len);
    if (!name) return ACT_ENOMEM;
    t->conf[t->n_conf++] = (tool_conf_t){name, timeout};
    return 0;
}

int agt_tools_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap) {
    if (section->type != PROTO_V_MAP) {
        snprintf(err, errcap, "tools must be an object");
        return ACT_EINVAL;
    }
    size_t cur = 0;
    proto_val_t k, v;
    while (proto_val_next(section, &cur, &k) == 1 && proto_val_next(section, &cur, &v) == 1) {
        if (k.type != PROTO_V_STR || k.len == 0) {
            snprintf(err, errcap, "tools: a key is not a tool name");
            return ACT_EINVAL;
        }
        int rc = tool_conf_one(rt->tools, &k, &v, err, errcap);
        if (rc) return rc;
    }
    return 0;
}

static int64_t conf_timeout(const agt_tools_t *t, const char *name) {
    for (size_t i = 0; t && i < t->n_conf; i++)
        if (strcmp(t->conf[i].name, name) == 0) return t->conf[i].timeout_ms;
    return 0;
}

/* ---- inside a tool (the plugin table) ---- */

int agt_tool_fail(abp_tool_ctx_t *tc, const char *message) {
    if (!tc) return ABP_EINVAL;
    snprintf(tc->fail, sizeof(tc->fail), "%s", message ? message : "");
    return 0;
}

int agt_tool_state_set(abp_tool_ctx_t *tc, const char *key, const uint8_t *value, size_t n) {
    if (!tc || !key || !key[0] || !agt_is_one_value(value, n)) return ABP_EINVAL;
    proto_pack_cstr(tc->delta, key);
    proto_buf_raw(tc->delta, (proto_raw_t){value, n});
    if (tc->delta->failed) return ABP_ENOMEM;
    (*tc->n_delta)++;
    return 0;
}

abp_ctx_t *agt_tool_job(abp_tool_ctx_t *tc) { return tc ? tc->job : NULL; }

/* ---- offers: what one agent's model may call ---- */

static void offer_clear(agt_offer_t *e) {
    free(e->name), free(e->description), free(e->params_json), free(e->target);
}

/* Whether every string the offer's kind needs was allocated. */
static bool offer_complete(const agt_offer_t *e) {
    bool target = e->kind == AGT_OFFER_AGENT || e->kind == AGT_OFFER_MCP;
    return e->name && e->description && e->params_json && (!target || e->target);
}

/* Takes e's strings: into o, or freed (a duplicate name, no memory). */
static int offer_add(agt_offers_t *o, agt_offer_t *e) {
    if (!offer_complete(e)) {
        offer_clear(e);
        return ACT_ENOMEM;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->v[i].name, e->name) == 0) { /* first wins: models need unique names */
            act_log(ACT_LOG_WARN, "tool_duplicate", "name=%s", e->name);
            offer_clear(e);
            return 0;
        }
    }
    agt_offer_t *v = realloc(o->v, (o->n + 1) * sizeof(*v));
    if (!v) {
        offer_clear(e);
        return ACT_ENOMEM;
    }
    o->v = v;
    o->v[o->n++] = *e;
    return 0;
}

static char *dupf(const char *fmt, const char *a) {
    size_t n = strlen(fmt) + strlen(a) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a);
    return s;
}

static int64_t pick_timeout(int64_t conf, int64_t own, int64_t agent) {
    if (conf > 0) return conf;
    if (own > 0) return own;
    if (agent > 0) return agent;
    return AGT_DEFAULT_TOOL_TIMEOUT_MS;
}

static int offer_mcp(agt_rt_t *rt, const agt_def_t *def, const char *server, agt_offers_t *o,
                     char *err, size_t cap) {
    const agt_mcp_tool_t *tools;
    size_t n;
    int64_t server_timeout = 0;
    int rc = agt_toolset_tools(rt, server, &tools, &n, &server_timeout);
    if (rc) {
        snprintf(err, cap, "agent %s: MCP server %s %s", def->name, server,
                 rc == ACT_ENOENT ? "is not in the config" : "is not running");
        return ACT_ENOENT;
    }
    for (size_t i = 0; i < n; i++) {
        agt_offer_t e = {.kind = AGT_OFFER_MCP,
                         .name = strdup(tools[i].name),
                         .description = strdup(tools[i].description),
                         .params_json = strdup(tools[i].schema_json),
                         .target = strdup(server),
                         .timeout_ms = pick_timeout(conf_timeout(rt->tools, tools[i].name),
                                                    server_timeout, def->llm.tool_timeout_ms)};
        if ((rc = offer_add(o, &e))) return rc;
    }
    return 0;
}

static int offer_one(agt_rt_t *rt, const agt_def_t *def, const char *spec, agt_offers_t *o,
                     char *err, size_t cap) {
    if (strncmp(spec, "mcp:", 4) == 0) return offer_mcp(rt, def, spec + 4, o, err, cap);
    agt_offer_t e = {0};
    if (strncmp(spec, "agent:", 6) == 0) {
        const char *agent = spec + 6;
        e.kind = AGT_OFFER_AGENT;
        e.name = strdup(agent);
        e.description = dupf("Asks the agent %s; request says what to do.", agent);
        e.params_json = strdup("{\"type\":\"object\",\"properties\":{\"request\":"
                               "{\"type\":\"string\"}},\"required\":[\"request\"]}");
        e.target = strdup(agent);
        e.timeout_ms = pick_timeout(conf_timeout(rt->tools, agent), 0, def->llm.tool_timeout_ms);
    } else {
        const tool_t *t = tool_find(rt->tools, spec);
        if (!t) {
            snprintf(err, cap, "agent %s: no tool named %s is registered", def->name, spec);
            return ACT_ENOENT;
        }
        e.kind = AGT_OFFER_C;
        e.tool = t;
        e.name = strdup(t->name);
        e.description = strdup(t->description);
        e.params_json = strdup(t->params_json);
        e.timeout_ms = pick_timeout(conf_timeout(rt->tools, spec), t->timeout_ms,
                                    def->llm.tool_timeout_ms);
    }
    return offer_add(o, &e);
}

/* transfer_to_agent {"agent_name": one of the sub-agents}. */
static int offer_transfer(const agt_def_t *def, agt_offers_t *o) {
    proto_buf_t j;
    proto_buf_init(&j);
    const char *head = "{\"type\":\"object\",\"properties\":{\"agent_name\":{\"type\":\"string\","
                       "\"enum\":[";
    proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)head, strlen(head)});
    for (size_t i = 0; i < def->n_sub; i++) {
        if (i) proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)",", 1});
        proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)"\"", 1});
        proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)def->sub_agents[i],
                                        strlen(def->sub_agents[i])});
        proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)"\"", 1});
    }
    const char *tail = "]}},\"required\":[\"agent_name\"]}";
    proto_buf_raw(&j, (proto_raw_t){(const uint8_t *)tail, strlen(tail) + 1});
    agt_offer_t e = {
        .kind = AGT_OFFER_TRANSFER,
        .name = strdup("transfer_to_agent"),
        .description = strdup("Hands the conversation to another agent better suited to it."),
        .params_json = j.failed ? NULL : strdup((const char *)j.p),
        .timeout_ms = AGT_DEFAULT_TOOL_TIMEOUT_MS};
    proto_buf_free(&j);
    return offer_add(o, &e);
}

int agt_offers_build(agt_rt_t *rt, const agt_def_t *def, agt_offers_t *out, char *err,
                     size_t errcap) {
    memset(out, 0, sizeof(*out));
    int rc = 0;
    for (size_t i = 0; !rc && i < def->llm.n_tools; i++)
        rc = offer_one(rt, def, def->llm.tools[i], out, err, errcap);
    if (!rc && def->n_sub) rc = offer_transfer(def, out);
    if (rc) agt_offers_free(out);
    return rc;
}

void agt_offers_free(agt_offers_t *o) {
    for (size_t i = 0; i < o->n; i++) offer_clear(&o->v[i]);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

const agt_offer_t *agt_offer_find(const agt_offers_t *o, const char *name) {
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->v[i].name, name) == 0) return &o->v[i];
    return NULL;
}


/* ---- one round of tool calls ---- */

typedef struct call_run {
    abp_ctx_t *ctx;
    const agt_offer_t *offer;
    const agt_call_in_t *in;
    agt_call_out_t *out;
    int64_t deadline;  /* the caller's: the job's deadline */
    abp_pack_t *res;   /* the tool's result */
    abp_pack_t *cb;    /* a callback's replacement */
    char failmsg[200]; /* tool_fail's */
} call_run_t;

/* A blocking tool's run on a thread of its own (detached). The calling task may stop
 * waiting (timeout, cancellation) while the thread still runs: from then on the thread must
 * not touch the loop, and the last of the two to let go frees the run. Own threads rather
 * than libuv's pool (act_to_thread): a tool stuck in read(2) would otherwise hold a pool
 * thread for good, and the worker could not exit (the pool is joined at exit). */
typedef struct bjob {
    pthread_mutex_t mu;
    int refs;          /* under mu: the waiter, the thread, a posted wake-up */
    bool abandoned;    /* under mu: the waiter left */
    act_loop_t *loop;
    const tool_t *tool;
    uint8_t *args;
    size_t args_n;
    abp_pack_t *res;
    proto_buf_t delta;
    uint32_t n_delta;
    abp_tool_ctx_t tc;
    int rc;
    act_event_t done; /* loop side only */
} bjob_t;

static atomic_int blocking_threads; /* live, abandoned ones included */

static void bjob_unref(bjob_t *b) {
    pthread_mutex_lock(&b->mu);
    int left = --b->refs;
    pthread_mutex_unlock(&b->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&b->mu);
    agt_pack_free(&b->res);
    proto_buf_free(&b->delta);
    free(b->args);
    free(b);
}

/* On the loop thread: the tool has returned. */
static void bjob_wake(void *arg) {
    bjob_t *b = arg;
    pthread_mutex_lock(&b->mu);
    bool waiting = !b->abandoned;
    pthread_mutex_unlock(&b->mu);
    if (waiting) act_event_set(&b->done);
    bjob_unref(b);
}

static void *bjob_thread(void *arg) {
    bjob_t *b = arg;
    b->rc = b->tool->fn(&b->tc, b->args, b->args_n, b->res, b->tool->udata);
    pthread_mutex_lock(&b->mu);
    if (!b->abandoned) {
        b->refs++; /* the wake-up's */
        if (act_loop_call_threadsafe(b->loop, bjob_wake, b)) b->refs--;
    }
    pthread_mutex_unlock(&b->mu);
    atomic_fetch_sub(&blocking_threads, 1);
    bjob_unref(b);
    return NULL;
}

static int bjob_start(bjob_t *b) {
    if (atomic_fetch_add(&blocking_threads, 1) >= AGT_MAX_BLOCKING_THREADS) {
        atomic_fetch_sub(&blocking_threads, 1);
        return ACT_EAGAIN;
    }
    pthread_attr_t at;
    pthread_t th;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, bjob_thread, b);
    pthread_attr_destroy(&at);
    if (rc) atomic_fetch_sub(&blocking_threads, 1);
    return rc ? ACT_EAGAIN : 0;
}

static int run_blocking(call_run_t *r, const tool_t *t, const uint8_t *args, size_t n,
                        int64_t deadline) {
    bjob_t *b = calloc(1, sizeof(*b));
    if (!b) return ACT_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    b->refs = 2;
    b->loop = act_loop_current();
    b->tool = t;
    b->args = malloc(n);
    b->args_n = n;
    b->res = agt_pack_new();
    proto_buf_init(&b->delta);
    act_event_init(&b->done);
    b->tc = (abp_tool_ctx_t){.job = NULL, .delta = &b->delta, .n_delta = &b->n_delta};
    int rc = b->args && b->res ? 0 : ACT_ENOMEM;
    if (!rc) {
        memcpy(b->args, args, n);
        rc = bjob_start(b);
        if (rc == ACT_EAGAIN)
            snprintf(r->failmsg, sizeof(r->failmsg), "%d blocking tools are running already",
                     AGT_MAX_BLOCKING_THREADS);
    }
    if (rc) b->refs = 1; /* no thread */
    else rc = act_event_wait(&b->done, deadline);
    pthread_mutex_lock(&b->mu);
    b->abandoned = true; /* a result that comes later is dropped */
    pthread_mutex_unlock(&b->mu);
    if (rc == 0) {
        rc = b->rc;
        snprintf(r->failmsg, sizeof(r->failmsg), "%s", b->tc.fail);
        if (!rc && b->res->buf.n) agt_pack_raw(r->res, b->res->buf.p, b->res->buf.n);
        proto_buf_raw(&r->out->delta, (proto_raw_t){b->delta.p, b->delta.n});
        r->out->n_delta += b->n_delta;
    }
    act_event_close(&b->done); /* nobody waits on it any more; a late wake-up skips it */
    bjob_unref(b);
    return rc;
}

static int run_c(call_run_t *r, const uint8_t *args, size_t n, int64_t deadline) {
    const tool_t *t = r->offer->tool;
    if (t->flags & ABP_TOOL_BLOCKING) return run_blocking(r, t, args, n, deadline);
    abp_tool_ctx_t tc = {.job = r->ctx, .delta = &r->out->delta, .n_delta = &r->out->n_delta};
    act_scope_t s;
    act_scope_enter(&s, deadline, 0);
    int rc = t->fn(&tc, args, n, r->res, t->udata);
    int src = act_scope_leave(&s);
    snprintf(r->failmsg, sizeof(r->failmsg), "%s", tc.fail);
    return src ? src : rc;
}

static int run_agent_tool(call_run_t *r, const uint8_t *args, size_t n, int64_t deadline) {
    proto_val_t a, req;
    const uint8_t *input = args;
    size_t input_n = n;
    if (proto_val_read(args, n, &a) == 0 && proto_val_map_get(&a, "request", &req) == 1)
        input = req.raw, input_n = req.raw_n;
    const uint8_t *out = NULL;
    size_t out_n = 0;
    act_scope_t s;
    act_scope_enter(&s, deadline, 0);
    int rc = agt_run_agent(r->ctx, r->offer->target, input, input_n, &out, &out_n);
    int src = act_scope_leave(&s);
    if (rc == ABP_ECALL && out) {
        proto_val_t e, m;
        if (proto_val_read(out, out_n, &e) == 0 && proto_val_map_get(&e, "message", &m) == 1 &&
            m.type == PROTO_V_STR)
            snprintf(r->failmsg, sizeof(r->failmsg), "%.*s", (int)m.len, (const char *)m.data);
    }
    if (!rc && out) agt_pack_raw(r->res, out, out_n);
    return src ? src : rc;
}

static int run_mcp(call_run_t *r, const uint8_t *args, size_t n, int64_t deadline) {
    bool is_error = false;
    proto_buf_t res;
    proto_buf_init(&res);
    int rc = agt_toolset_call(agt_rt_of(r->ctx), r->offer->target, r->offer->name, args, n,
                              &res, &is_error, r->failmsg, sizeof(r->failmsg), deadline);
    if (rc == 0 && is_error) {
        proto_buf_t j;
        proto_buf_init(&j);
        if (proto_raw_to_json((proto_raw_t){res.p, res.n}, &j) == 0)
            snprintf(r->failmsg, sizeof(r->failmsg), "%s", (const char *)j.p);
        proto_buf_free(&j);
        rc = ACT_EIO;
    }
    if (rc == 0) agt_pack_raw(r->res, res.p, res.n);
    proto_buf_free(&res);
    return rc;
}

static void fail_call(call_run_t *r, const char *code, const char *fmt, const char *detail) {
    agt_call_out_t *o = r->out;
    o->error_code = code;
    snprintf(o->error_message, sizeof(o->error_message), fmt, r->in->name, detail);
    proto_buf_reset(&o->response);
    agt_pack_error(&o->response, code, o->error_message);
}

/* The tool's own run, between the callbacks. Returns: 0 with r->res holding the result. */
static int run_offer(call_run_t *r, const uint8_t *args, size_t n) {
    int64_t dl = agt_deadline_min(r->deadline, act_deadline_in(r->offer->timeout_ms));
    int rc;
    switch (r->offer->kind) {
    case AGT_OFFER_C:
        rc = run_c(r, args, n, dl);
        break;
    case AGT_OFFER_AGENT:
        rc = run_agent_tool(r, args, n, dl);
        break;
    case AGT_OFFER_MCP:
        rc = run_mcp(r, args, n, dl);
        break;
    default:
        rc = ACT_EINVAL;
    }
    if (rc == ACT_ETIMEDOUT || rc == ABP_ETIMEDOUT) {
        char d[64];
        snprintf(d, sizeof d, "%lld ms", (long long)r->offer->timeout_ms);
        if (r->deadline >= 0 && r->deadline <= dl)
            snprintf(d, sizeof d, "the query's deadline");
        fail_call(r, "timeout", "tool %s timed out after %s", d);
    } else if (rc == ACT_ECANCELED) {
        fail_call(r, "cancelled", "tool %s was cancelled%s", "");
    } else if (rc == ACT_ECLOSED && r->offer->kind == AGT_OFFER_MCP) { /* server down */
        fail_call(r, "tool_unavailable", "tool %s is unavailable: %s", r->failmsg);
    } else if (rc) {
        const char *why = r->failmsg[0] ? r->failmsg : act_strerror(rc);
        fail_call(r, "tool_failed", "tool %s failed: %s", why);
    }
    return rc;
}

/* Runs a tool callback; 1 or 2 leave the replacement in r->cb. */
static int tool_callback(call_run_t *r, abp_cb_kind_t kind, const uint8_t *data, size_t n) {
    agt_pack_reset(r->cb);
    int rc = agt_callbacks_run(r->ctx, kind, r->in->name, data, n, r->cb);
    if (rc > 0 && (r->cb->buf.failed || !agt_is_one_value(r->cb->buf.p, r->cb->buf.n))) {
        fail_call(r, "tool_failed", "a callback of tool %s gave no value%s", "");
        return -1;
    }
    if (rc < 0) {
        fail_call(r, "tool_failed", "a callback of tool %s failed: %s", act_strerror(rc));
        return -1;
    }
    return rc;
}

static void call_finish(call_run_t *r) {
    agt_call_out_t *o = r->out;
    if (o->error_code) return;
    proto_buf_reset(&o->response);
    if (r->res->buf.n && agt_is_one_value(r->res->buf.p, r->res->buf.n))
        proto_buf_raw(&o->response, (proto_raw_t){r->res->buf.p, r->res->buf.n});
    else
        msgpack_pack_nil(&o->response.pk); /* a tool that packed nothing returned nil */
    int rc = tool_callback(r, ABP_CB_AFTER_TOOL, o->response.p, o->response.n);
    if (rc == 1) {
        proto_buf_reset(&o->response);
        proto_buf_raw(&o->response, (proto_raw_t){r->cb->buf.p, r->cb->buf.n});
    }
}

static int call_task(void *arg, void **result) {
    (void)result;
    call_run_t *r = arg;
    const agt_call_in_t *in = r->in;
    if (!r->offer) {
        fail_call(r, "tool_not_found", "the model called %s, which this agent does not have%s",
                  "");
        return 0;
    }
    proto_val_t a;
    if (!in->args || proto_val_read(in->args, in->args_n, &a) || a.type != PROTO_V_MAP) {
        fail_call(r, "bad_arguments", "the arguments of %s are not a JSON object%s", "");
        return 0;
    }
    const uint8_t *args = in->args;
    size_t n = in->args_n;
    int rc = tool_callback(r, ABP_CB_BEFORE_TOOL, args, n);
    if (rc < 0) return 0;
    if (rc == 1) { /* answered by the callback: the tool does not run */
        agt_pack_raw(r->res, r->cb->buf.p, r->cb->buf.n);
    } else {
        proto_buf_t repl; /* replacement arguments outlive r->cb's reuse */
        proto_buf_init(&repl);
        if (rc == 2) {
            proto_buf_raw(&repl, (proto_raw_t){r->cb->buf.p, r->cb->buf.n});
            args = repl.p, n = repl.n;
        }
        rc = run_offer(r, args, n);
        proto_buf_free(&repl);
        if (rc) return 0;
    }
    call_finish(r);
    return 0;
}

static int runs_init(call_run_t *runs, abp_ctx_t *ctx, const agt_offers_t *offers,
                     const agt_call_in_t *calls, size_t n, agt_call_out_t *outs) {
    int64_t dl = act_effective_deadline();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        runs[i] = (call_run_t){.ctx = ctx, .offer = agt_offer_find(offers, calls[i].name),
                               .in = &calls[i], .out = &outs[i], .deadline = dl,
                               .res = agt_pack_new(), .cb = agt_pack_new()};
        if (!runs[i].res || !runs[i].cb) rc = ACT_ENOMEM;
    }
    return rc;
}

int agt_tools_run(abp_ctx_t *ctx, const agt_offers_t *offers, const agt_call_in_t *calls,
                  size_t n, agt_call_out_t *outs) {
    for (size_t i = 0; i < n; i++) { /* so that the caller may free them whatever happens */
        memset(&outs[i], 0, sizeof(outs[i]));
        proto_buf_init(&outs[i].response);
        proto_buf_init(&outs[i].delta);
    }
    call_run_t *runs = calloc(n ? n : 1, sizeof(*runs));
    act_task_t **tasks = calloc(n ? n : 1, sizeof(*tasks));
    int rc = runs && tasks ? 0 : ACT_ENOMEM;
    if (runs) { /* even without tasks: the loop below answers every call through runs */
        int irc = runs_init(runs, ctx, offers, calls, n, outs);
        if (!rc) rc = irc;
    }
    size_t spawned = 0;
    for (; !rc && spawned < n; spawned++) {
        act_spawn_opts_t o = {.name = "tool"};
        rc = act_spawn(call_task, &runs[spawned], &o, &tasks[spawned]);
        if (rc) break;
    }
    if (spawned) {
        int grc = act_gather(tasks, spawned, NULL, NULL, ACT_GATHER_COLLECT, -1);
        if (!rc) rc = grc;
    }
    for (size_t i = 0; i < spawned; i++) act_task_release(&tasks[i]);
    for (size_t i = 0; runs && i < n; i++) {
        if (!outs[i].error_code && !outs[i].response.n) /* never ran: say so */
            fail_call(&runs[i], "cancelled", "tool %s did not run%s", "");
        agt_pack_free(&runs[i].res);
        agt_pack_free(&runs[i].cb);
    }
    free(runs);
    free(tasks);
    return rc;
}

void agt_call_out_free(agt_call_out_t *o) {
    proto_buf_free(&o->response);
    proto_buf_free(&o->delta);
}
