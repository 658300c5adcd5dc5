/* mcp_toolsets.c: MCP servers as toolsets of the agent runtime. The config's "mcp" section
 * names servers (command, env, timeouts); they start with the worker (agt_toolsets_start, in
 * a task: spawn, initialize, tools/list) and stop with it. An LLM agent that lists
 * "mcp:NAME" offers every tool the server listed; calls go through agentmcp (mcp.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"
#include "modelside.h"

#define DEFAULT_MCP_TIMEOUT_MS 30000
#define DEFAULT_MCP_START_MS 60000
#define DEFAULT_RESTART_MAX 5        /* crashes in a row before a server is given up */
#define DEFAULT_RESTART_BACKOFF 1000 /* wait before the first restart, doubling */
#define MAX_RESTART_BACKOFF 60000    /* cap on one wait */
#define STABLE_MS 60000              /* a server that ran this long starts a new series */

typedef struct toolset {
    char *name;
    char **argv, **env; /* NULL-terminated; env: "K=V" added to the worker's */
    int64_t timeout_ms, start_timeout_ms;
    mcp_client_t *client; /* NULL: not running */
    mcp_tool_t *tools;
    agt_mcp_tool_t *view;
    size_t n_tools;
    bool started; /* it started once: its tools are known, so it may be restarted */
    /* Restarts (see ensure_running): bounded by restart_max crashes or failed starts in a
     * row, spaced by restart_backoff_ms doubling up to 60 s. */
    int64_t restart_max, restart_backoff_ms;
    int failures;       /* crashes and failed restarts in this series */
    bool down_seen;     /* the current crash was counted */
    bool restarting;    /* a task is restarting it now */
    int64_t started_at; /* act_now() of the last (re)start */
    int64_t next_start; /* no restart before this act_now() */
    uint64_t restarts;  /* successful restarts */
} toolset_t;

struct agt_toolsets {
    toolset_t *v;
    size_t n;
};

int agt_toolsets_new(agt_toolsets_t **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : ACT_ENOMEM;
}

static void strv_free(char **v) {
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

void agt_toolsets_destroy(agt_toolsets_t **tp) {
    if (!tp || !*tp) return;
    agt_toolsets_t *t = *tp;
    for (size_t i = 0; i < t->n; i++) {
        toolset_t *s = &t->v[i];
        /* Servers are stopped in a task by agt_toolsets_stop; here only memory is left. */
        mcp_tools_free(&s->tools, s->n_tools);
        free(s->view);
        free(s->name);
        strv_free(s->argv);
        strv_free(s->env);
    }
    free(t->v);
    free(t);
    *tp = NULL;
}

/* ---- the config ---- */

static int bad(char *err, size_t cap, const char *server, const char *what) {
    snprintf(err, cap, "mcp.%s%s", server, what);
    return ACT_EINVAL;
}

static int parse_argv(toolset_t *s, const proto_val_t *v, char *err, size_t cap) {
    if (v->type != PROTO_V_ARRAY || v->len == 0 || v->len > 256)
        return bad(err, cap, s->name, ".command must be a non-empty array of strings");
    s->argv = calloc(v->len + 1, sizeof(char *));
    if (!s->argv) return ACT_ENOMEM;
    size_t cur = 0, i = 0;
    proto_val_t e;
    while (proto_val_next(v, &cur, &e) == 1) {
        if (e.type != PROTO_V_STR || e.len == 0)
            return bad(err, cap, s->name, ".command must be a non-empty array of strings");
        if (!(s->argv[i++] = strndup((const char *)e.data, e.len))) return ACT_ENOMEM;
    }
    return 0;
}

static int parse_env(toolset_t *s, const proto_val_t *v, char *err, size_t cap) {
    if (v->type != PROTO_V_MAP || v->len > 256)
        return bad(err, cap, s->name, ".env must be an object of strings");
    s->env = calloc(v->len + 1, sizeof(char *));
    if (!s->env) return ACT_ENOMEM;
    size_t cur = 0, i = 0;
    proto_val_t k, e;
    while (proto_val_next(v, &cur, &k) == 1 && proto_val_next(v, &cur, &e) == 1) {
        if (k.type != PROTO_V_STR || e.type != PROTO_V_STR || k.len == 0 ||
            memchr(k.data, '=', k.len))
            return bad(err, cap, s->name, ".env must be an object of strings");
        size_t n = k.len + e.len + 2;
        if (!(s->env[i] = malloc(n))) return ACT_ENOMEM;
        snprintf(s->env[i++], n, "%.*s=%.*s", (int)k.len, (const char *)k.data, (int)e.len,
                 (const char *)e.data);
    }
    return 0;
}

static int parse_ms(const toolset_t *s, const proto_val_t *v, const char *key, int64_t *out,
                    char *err, size_t cap) {
    if ((v->type != PROTO_V_INT && v->type != PROTO_V_UINT) || v->i <= 0) {
        snprintf(err, cap, "mcp.%s.%s must be a positive integer", s->name, key);
        return ACT_EINVAL;
    }
    *out = v->i;
    return 0;
}

/* A count or duration that may be 0, up to max. */
static int parse_uint(const toolset_t *s, const proto_val_t *v, const char *key, int64_t max,
                      int64_t *out, char *err, size_t cap) {
    if ((v->type != PROTO_V_INT && v->type != PROTO_V_UINT) || v->i < 0 || v->i > max) {
        snprintf(err, cap, "mcp.%s.%s must be an integer from 0 to %lld", s->name, key,
                 (long long)max);
        return ACT_EINVAL;
    }
    *out = v->i;
    return 0;
}

static int parse_server(toolset_t *s, const proto_val_t *v, char *err, size_t cap) {
    if (v->type != PROTO_V_MAP) return bad(err, cap, s->name, " must be an object");
    size_t cur = 0;
    proto_val_t k, e;
    int rc = 0;
    while (!rc && proto_val_next(v, &cur, &k) == 1 && proto_val_next(v, &cur, &e) == 1) {
        if (proto_val_str_eq(&k, "command"))
            rc = parse_argv(s, &e, err, cap);
        else if (proto_val_str_eq(&k, "env"))
            rc = parse_env(s, &e, err, cap);
        else if (proto_val_str_eq(&k, "timeout_ms"))
            rc = parse_ms(s, &e, "timeout_ms", &s->timeout_ms, err, cap);
        else if (proto_val_str_eq(&k, "start_timeout_ms"))
            rc = parse_ms(s, &e, "start_timeout_ms", &s->start_timeout_ms, err, cap);
        else if (proto_val_str_eq(&k, "restart_max"))
            rc = parse_uint(s, &e, "restart_max", 1000, &s->restart_max, err, cap);
        else if (proto_val_str_eq(&k, "restart_backoff_ms"))
            rc = parse_uint(s, &e, "restart_backoff_ms", MAX_RESTART_BACKOFF,
                            &s->restart_backoff_ms, err, cap);
        else {
            snprintf(err, cap, "mcp.%s.%.*s is not a known key", s->name,
                     k.type == PROTO_V_STR ? (int)k.len : 1,
                     k.type == PROTO_V_STR ? (const char *)k.data : "?");
            rc = ACT_EINVAL;
        }
    }
    if (!rc && !s->argv) rc = bad(err, cap, s->name, ".command is required");
    return rc;
}

int agt_toolsets_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap) {
    agt_toolsets_t *t = rt->mcp;
    if (section->type != PROTO_V_MAP) {
        snprintf(err, errcap, "mcp must be an object");
        return ACT_EINVAL;
    }
    size_t cur = 0;
    proto_val_t k, v;
    while (proto_val_next(section, &cur, &k) == 1 && proto_val_next(section, &cur, &v) == 1) {
        if (k.type != PROTO_V_STR || k.len == 0 || k.len > 64) {
            snprintf(err, errcap, "mcp: a key is not a server name");
            return ACT_EINVAL;
        }
        for (size_t i = 0; i < t->n; i++) {
            if (strlen(t->v[i].name) == k.len && !memcmp(t->v[i].name, k.data, k.len)) {
                snprintf(err, errcap, "mcp.%.*s is defined twice", (int)k.len, (char *)k.data);
                return ACT_EINVAL;
            }
        }
        toolset_t *v2 = realloc(t->v, (t->n + 1) * sizeof(*v2));
        if (!v2) return ACT_ENOMEM;
        t->v = v2;
        toolset_t *s = &t->v[t->n++];
        memset(s, 0, sizeof(*s));
        s->timeout_ms = DEFAULT_MCP_TIMEOUT_MS;
        s->start_timeout_ms = DEFAULT_MCP_START_MS;
        s->restart_max = DEFAULT_RESTART_MAX;
        s->restart_backoff_ms = DEFAULT_RESTART_BACKOFF;
        if (!(s->name = strndup((const char *)k.data, k.len))) return ACT_ENOMEM;
        int rc = parse_server(s, &v, err, errcap);
        if (rc) return rc;
    }
    return 0;
}

/* ---- start and stop ---- */

static int spawn(toolset_t *s) {
    mcp_opts_t o = {.name = s->name,
                    .argv = (const char *const *)s->argv,
                    .env_add = (const char *const *)s->env,
                    .start_timeout_ms = s->start_timeout_ms,
                    .call_timeout_ms = s->timeout_ms};
    int rc = mcp_client_start(&s->client, &o);
    s->started_at = act_now();
    return rc;
}

static int start_one(toolset_t *s) {
    int rc = spawn(s);
    if (!rc) rc = mcp_list_tools(s->client, &s->tools, &s->n_tools,
                                 act_deadline_in(s->start_timeout_ms));
    if (!rc && s->n_tools && !(s->view = calloc(s->n_tools, sizeof(*s->view)))) rc = ACT_ENOMEM;
    if (rc) {
        act_log(ACT_LOG_ERROR, "mcp_start_failed", "server=%s error=%s reason=\"%s\"", s->name,
                mcp_err_code(rc), mcp_strerror(rc));
        mcp_tools_free(&s->tools, s->n_tools);
        s->n_tools = 0;
        if (s->client) mcp_client_stop(&s->client);
        return rc;
    }
    for (size_t i = 0; i < s->n_tools; i++)
        s->view[i] = (agt_mcp_tool_t){s->tools[i].name, s->tools[i].description,
                                      s->tools[i].input_schema};
    s->started = true;
    act_log(ACT_LOG_INFO, "mcp_started", "server=%s pid=%d tools=%zu protocol=%s", s->name,
            mcp_client_pid(s->client), s->n_tools, mcp_client_protocol(s->client));
    return 0;
}

int agt_toolsets_start(agt_rt_t *rt) {
    int first = 0;
    for (size_t i = 0; rt->mcp && i < rt->mcp->n; i++) {
        int rc = start_one(&rt->mcp->v[i]);
        if (rc && !first) first = rc;
    }
    return first;
}

void agt_toolsets_stop(agt_rt_t *rt) {
    for (size_t i = 0; rt->mcp && i < rt->mcp->n; i++) {
        toolset_t *s = &rt->mcp->v[i];
        if (!s->client) continue;
        int how = mcp_client_stop(&s->client);
        act_log(ACT_LOG_INFO, "mcp_stopped", "server=%s how=%s", s->name,
                how == 0 ? "exit" : how == 1 ? "sigterm" : "sigkill");
    }
}

/* ---- use ---- */

static toolset_t *find(agt_rt_t *rt, const char *server) {
    for (size_t i = 0; rt->mcp && i < rt->mcp->n; i++)
        if (strcmp(rt->mcp->v[i].name, server) == 0) return &rt->mcp->v[i];
    return NULL;
}

int agt_toolset_tools(agt_rt_t *rt, const char *server, const agt_mcp_tool_t **tools,
                      size_t *n, int64_t *timeout_ms) {
    toolset_t *s = find(rt, server);
    if (!s) return ACT_ENOENT;
    if (!s->started) return ACT_ECLOSED; /* a crashed one stays offered: it is restarted */
    *tools = s->view;
    *n = s->n_tools;
    *timeout_ms = s->timeout_ms;
    return 0;
}

/* Whether text is the JSON of the msgpack value v (both read by the same converter, so
 * one object written twice compares equal byte for byte). */
static bool text_is_json_of(const char *text, const proto_val_t *v) {
    proto_buf_t mp;
    proto_buf_init(&mp);
    bool same = proto_json_to_msgpack(text, strlen(text), &mp, NULL) == 0 &&
                mp.n == v->raw_n && memcmp(mp.p, v->raw, mp.n) == 0;
    proto_buf_free(&mp);
    return same;
}

/* What the model reads of a tools/call result, each thing once (servers often send the same
 * data twice: MCP asks a tool with structuredContent to repeat it as JSON text):
 * - content all text, no structuredContent: that text (what a model reads best);
 * - structuredContent, content all text (or none): the text when it is the JSON of the
 *   structured content, else the structured content alone (it is the tool's declared
 *   output; the text then is a rendering of it);
 * - any other content (images, resources): the result object as it came. */
static int result_value(const char *json, proto_buf_t *out) {
    proto_buf_t mp;
    proto_buf_init(&mp);
    int rc = proto_json_to_msgpack(json, strlen(json), &mp, NULL);
    proto_val_t r, content, item, type, sc;
    bool parsed = rc == 0 && proto_val_read(mp.p, mp.n, &r) == 0;
    bool has_sc = parsed && proto_val_map_get(&r, "structuredContent", &sc) == 1 &&
                  sc.type != PROTO_V_NIL;
    bool has_content = parsed && proto_val_map_get(&r, "content", &content) == 1 &&
                       content.type == PROTO_V_ARRAY;
    bool text_only = has_content || has_sc;
    size_t cur = 0;
    while (text_only && has_content && proto_val_next(&content, &cur, &item) == 1)
        text_only = proto_val_map_get(&item, "type", &type) == 1 &&
                    proto_val_str_eq(&type, "text");
    char *text = NULL;
    if (text_only && has_content && mcp_result_text(json, &text) != 0) text_only = false;
    if (text_only && has_sc && (!text || !text_is_json_of(text, &sc)))
        proto_buf_raw(out, (proto_raw_t){sc.raw, sc.raw_n});
    else if (text_only && text)
        proto_pack_cstr(out, text);
    else if (rc == 0)
        proto_buf_raw(out, (proto_raw_t){mp.p, mp.n});
    free(text);
    proto_buf_free(&mp);
    return rc ? MCP_EBAD_RESPONSE : out->failed ? ACT_ENOMEM : 0;
}

static int64_t backoff_ms(const toolset_t *s) {
    int64_t d = s->restart_backoff_ms;
    for (int i = 1; i < s->failures && d < MAX_RESTART_BACKOFF; i++)
        d *= 2;
    return d < MAX_RESTART_BACKOFF ? d : MAX_RESTART_BACKOFF;
}

/* A server that crashed is restarted when a call next needs it, once its backoff passed:
 * restart_backoff_ms after the first crash, doubling with each crash or failed restart in a
 * row (up to 60 s; a server that ran 60 s starts a new series); after restart_max of them
 * it is given up. Meanwhile calls fail at once (ACT_ECLOSED, err says why and when), never
 * wait for it. The tools it listed first stay the ones offered. */
static int ensure_running(toolset_t *s, char *err, size_t errcap) {
    if (s->client && mcp_client_alive(s->client)) return 0;
    if (!s->started) {
        snprintf(err, errcap, "MCP server %s is not running (it failed to start)", s->name);
        return ACT_ECLOSED;
    }
    int64_t now = act_now();
    if (!s->down_seen) { /* the crash is new: count it */
        s->down_seen = true;
        s->failures = now - s->started_at >= STABLE_MS ? 1 : s->failures + 1;
        s->next_start = now + backoff_ms(s);
        act_log(ACT_LOG_WARN, "mcp_server_down", "server=%s failures=%d restart_in_ms=%lld",
                s->name, s->failures, (long long)(s->next_start - now));
    }
    if (s->failures > s->restart_max) {
        snprintf(err, errcap, "MCP server %s is down: given up after %d crashes or failed "
                 "restarts in a row (restart_max %lld)", s->name, s->failures,
                 (long long)s->restart_max);
        return ACT_ECLOSED;
    }
    if (s->restarting || now < s->next_start) {
        snprintf(err, errcap, "MCP server %s is down (crash %d of at most %lld in a row); "
                 "restart %s", s->name, s->failures, (long long)s->restart_max,
                 s->restarting ? "under way" : "after its backoff");
        return ACT_ECLOSED;
    }
    s->restarting = true;
    if (s->client) mcp_client_stop(&s->client); /* reaps it; shielded from cancellation */
    int rc = spawn(s);
    s->restarting = false;
    if (rc) {
        s->failures++;
        s->next_start = act_now() + backoff_ms(s);
        act_log(ACT_LOG_ERROR, "mcp_restart_failed", "server=%s error=%s failures=%d", s->name,
                mcp_err_code(rc), s->failures);
        snprintf(err, errcap, "MCP server %s is down: its restart failed (%s)", s->name,
                 mcp_strerror(rc));
        return ACT_ECLOSED;
    }
    s->down_seen = false;
    s->restarts++;
    act_log(ACT_LOG_INFO, "mcp_restarted", "server=%s pid=%d restarts=%llu", s->name,
            mcp_client_pid(s->client), (unsigned long long)s->restarts);
    return 0;
}

uint64_t agt_toolset_restarts(agt_rt_t *rt, const char *server) {
    for (size_t i = 0; rt->mcp && i < rt->mcp->n; i++)
        if (strcmp(rt->mcp->v[i].name, server) == 0) return rt->mcp->v[i].restarts;
    return 0;
}

int agt_toolset_call(agt_rt_t *rt, const char *server, const char *tool, const uint8_t *args,
                     size_t args_n, proto_buf_t *result, bool *is_error, char *err,
                     size_t errcap, int64_t deadline) {
    toolset_t *s = find(rt, server);
    if (!s) {
        snprintf(err, errcap, "MCP server %s is not configured", server);
        return ACT_ECLOSED;
    }
    int rc = ensure_running(s, err, errcap);
    if (rc) return rc;
    proto_buf_t json;
    proto_buf_init(&json);
    rc = args && args_n ? proto_raw_to_json((proto_raw_t){args, args_n}, &json) : 0;
    if (rc) {
        snprintf(err, errcap, "the arguments are not valid msgpack");
        proto_buf_free(&json);
        return ACT_EINVAL;
    }
    char *res = NULL;
    rc = mcp_call_tool(s->client, tool, json.n ? (const char *)json.p : NULL, &res, is_error,
                       deadline);
    proto_buf_free(&json);
    if (rc == 0) rc = result_value(res, result); /* a result that is not JSON fails here */
    if (rc == MCP_ERPC && res)
        snprintf(err, errcap, "MCP server %s refused the call: %s", server, res);
    else if (rc)
        snprintf(err, errcap, "MCP server %s: %s (%s)", server, mcp_strerror(rc),
                 mcp_err_code(rc));
    free(res);
    return rc;
}
