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

typedef struct toolset {
    char *name;
    char **argv, **env; /* NULL-terminated; env: "K=V" added to the worker's */
    int64_t timeout_ms, start_timeout_ms;
    mcp_client_t *client; /* NULL: not running */
    mcp_tool_t *tools;
    agt_mcp_tool_t *view;
    size_t n_tools;
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
        if (!(s->name = strndup((const char *)k.data, k.len))) return ACT_ENOMEM;
        int rc = parse_server(s, &v, err, errcap);
        if (rc) return rc;
    }
    return 0;
}

/* ---- start and stop ---- */

static int start_one(toolset_t *s) {
    mcp_opts_t o = {.name = s->name,
                    .argv = (const char *const *)s->argv,
                    .env_add = (const char *const *)s->env,
                    .start_timeout_ms = s->start_timeout_ms,
                    .call_timeout_ms = s->timeout_ms};
    int rc = mcp_client_start(&s->client, &o);
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
    if (!s->client) return ACT_ECLOSED;
    *tools = s->view;
    *n = s->n_tools;
    *timeout_ms = s->timeout_ms;
    return 0;
}

/* A result whose content is text only becomes that text (what a model reads best); any
 * other result (images, structured content) is passed on whole. */
static int result_value(const char *json, proto_buf_t *out) {
    proto_buf_t mp;
    proto_buf_init(&mp);
    int rc = proto_json_to_msgpack(json, strlen(json), &mp, NULL);
    proto_val_t r, content, item, type;
    bool text_only = rc == 0 && proto_val_read(mp.p, mp.n, &r) == 0 &&
                     proto_val_map_get(&r, "content", &content) == 1 &&
                     content.type == PROTO_V_ARRAY && proto_val_map_get(&r, "structuredContent",
                                                                        &item) == 0;
    size_t cur = 0;
    while (text_only && proto_val_next(&content, &cur, &item) == 1)
        text_only = proto_val_map_get(&item, "type", &type) == 1 &&
                    proto_val_str_eq(&type, "text");
    char *text = NULL;
    if (text_only && mcp_result_text(json, &text) == 0) {
        proto_pack_cstr(out, text);
        free(text);
    } else if (rc == 0) {
        proto_buf_raw(out, (proto_raw_t){mp.p, mp.n});
    }
    proto_buf_free(&mp);
    return rc ? MCP_EBAD_RESPONSE : out->failed ? ACT_ENOMEM : 0;
}

int agt_toolset_call(agt_rt_t *rt, const char *server, const char *tool, const uint8_t *args,
                     size_t args_n, proto_buf_t *result, bool *is_error, char *err,
                     size_t errcap, int64_t deadline) {
    toolset_t *s = find(rt, server);
    if (!s || !s->client) {
        snprintf(err, errcap, "MCP server %s is not running", server);
        return ACT_ECLOSED;
    }
    proto_buf_t json;
    proto_buf_init(&json);
    int rc = args && args_n ? proto_raw_to_json((proto_raw_t){args, args_n}, &json) : 0;
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
