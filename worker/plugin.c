/* plugin.c: plugins and the agents they register. A plugin is a shared object loaded with
 * dlopen (RTLD_LOCAL: nothing of its leaks into the next one) whose actorbus_plugin_init
 * gets the function table below, the only way it reaches the worker. The built-in plugin
 * goes through the same door, compiled in. Every agent is a definition of the agent runtime
 * (agent/runtime.h): plugins' C functions are custom agents, the --agents file adds the
 * composite and LLM types. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "agent/runtime.h"

/* ---- agents ---- */

int wrk_agent_add(abp_host_t *h, agt_def_t *def) {
    if (!h || !h->open || !def || !agt_name_ok(def->name)) return ABP_EINVAL;
    if (wrk_agent_find(h, proto_str_of(def->name))) return ABP_EEXIST;
    if (h->n_agents == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        wrk_agent_t *a = realloc(h->agents, cap * sizeof(*a));
        if (!a) return ABP_ENOMEM;
        h->agents = a;
        h->cap = cap;
    }
    h->agents[h->n_agents++] = (wrk_agent_t){def->name, strlen(def->name), def};
    h->n_registered++;
    return 0;
}

static int register_agent(abp_host_t *h, const char *name, abp_agent_fn fn, void *udata) {
    if (!h || !h->open || !fn || !agt_name_ok(name)) return ABP_EINVAL;
    if (wrk_agent_find(h, proto_str_of(name))) return ABP_EEXIST;
    agt_def_t *def = agt_def_custom(name, fn, udata);
    if (!def) return ABP_ENOMEM;
    int rc = wrk_agent_add(h, def);
    if (rc) agt_def_free(&def);
    return rc;
}

/* Tools and callbacks count as something registered, like agents: a plugin may bring only
 * tools. */
static int register_tool(abp_host_t *h, const abp_tool_def_t *def) {
    if (!h || !h->open) return ABP_EINVAL;
    int rc = agt_tool_register(h, def);
    if (rc == 0) h->n_registered++;
    return rc;
}

static int register_callback(abp_host_t *h, const char *agent, abp_cb_kind_t kind,
                             abp_callback_fn fn, void *udata) {
    int rc = agt_callback_register(h, agent, kind, fn, udata);
    if (rc == 0) h->n_registered++;
    return rc;
}

static int define_agents_json(abp_host_t *h, const char *json) {
    if (!h || !h->open || !json) return ABP_EINVAL;
    int rc = agt_define_agents_json(h, json);
    if (rc == 0) h->n_registered++;
    return rc;
}

const wrk_agent_t *wrk_agent_find(const abp_host_t *h, proto_str_t name) {
    for (size_t i = 0; i < h->n_agents; i++) {
        const wrk_agent_t *a = &h->agents[i];
        if (a->name_n == name.n && memcmp(a->name, name.p, name.n) == 0) return a;
    }
    return NULL;
}

/* ---- the table ---- */

const abp_api_t wrk_api = {
    .version = ABP_API_VERSION,
    .size = sizeof(abp_api_t),
    .register_agent = register_agent,
    .input = wrk_ctx_input,
    .emit = wrk_ctx_emit,
    .set_output = wrk_ctx_set_output,
    .fail = wrk_ctx_fail,
    .sleep = wrk_ctx_sleep,
    .worker_name = wrk_ctx_worker_name,
    .agent_name = wrk_ctx_agent_name,
    .job_id = wrk_ctx_job_id,
    .session = wrk_ctx_session,
    .time_left_ms = wrk_ctx_time_left,
    .cancelled = wrk_ctx_cancelled,
    .unix_ms = wrk_unix_ms,
    .call = wrk_call,
    .await = wrk_await,
    .gather = wrk_gather,
    .next_done = wrk_next_done,
    .call_done = wrk_call_done,
    .call_output = wrk_call_output,
    .call_error = wrk_call_error,
    .call_free = wrk_call_free,
    .log = wrk_ctx_log,
    .value = agt_value,
    .map_get = agt_map_get,
    .array_get = agt_array_get,
    .pack_new = agt_pack_new,
    .pack_free = agt_pack_free,
    .pack_reset = agt_pack_reset,
    .pack_nil = agt_pack_nil,
    .pack_bool = agt_pack_bool,
    .pack_int = agt_pack_int,
    .pack_uint = agt_pack_uint,
    .pack_double = agt_pack_double,
    .pack_str = agt_pack_str,
    .pack_cstr = agt_pack_cstr,
    .pack_bin = agt_pack_bin,
    .pack_array = agt_pack_array,
    .pack_map = agt_pack_map,
    .pack_raw = agt_pack_raw,
    .pack_json = agt_pack_json,
    .pack_data = agt_pack_data,
    .emit_pack = wrk_pack_emit,
    .set_output_pack = wrk_pack_set_output,
    /* version 2 */
    .register_tool = register_tool,
    .register_callback = register_callback,
    .define_agents_json = define_agents_json,
    .emit_event = agt_emit,
    .state_get = agt_state_get,
    .run_agent = agt_run_agent,
    .tool_fail = agt_tool_fail,
    .tool_state_set = agt_tool_state_set,
    .tool_job = agt_tool_job,
};

/* ---- loading ---- */

int wrk_plugin_register(abp_host_t *h, int (*init)(const abp_api_t *, abp_host_t *, uint32_t),
                        const char *what) {
    size_t before = h->n_agents, registered = h->n_registered;
    h->open = true;
    int rc = init(&wrk_api, h, ABP_API_VERSION);
    h->open = false;
    if (rc == 0 && h->n_registered == registered) rc = ABP_EINVAL;
    if (rc) {
        act_log(ACT_LOG_ERROR, "plugin_failed", "plugin=%s error=%s%s", what, act_err_name(rc),
                h->n_registered == registered ? " reason=nothing_registered" : "");
        return rc;
    }
    for (size_t i = before; i < h->n_agents; i++) {
        act_log(ACT_LOG_INFO, "agent", "name=%s type=%s plugin=%s", h->agents[i].name,
                agt_kind_name(h->agents[i].def->kind), what);
    }
    return 0;
}

int wrk_plugin_load(abp_host_t *h, const char *path) {
    void **handles = realloc(h->handles, (h->n_handles + 1) * sizeof(*handles));
    if (!handles) return ACT_ENOMEM;
    h->handles = handles;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        act_log(ACT_LOG_ERROR, "plugin_failed", "plugin=%s reason=\"%s\"", path, dlerror());
        return ACT_ENOENT;
    }
    int (*init)(const abp_api_t *, abp_host_t *, uint32_t);
    *(void **)&init = dlsym(dl, "actorbus_plugin_init");
    if (!init) {
        act_log(ACT_LOG_ERROR, "plugin_failed",
                "plugin=%s reason=\"no actorbus_plugin_init symbol\"", path);
        dlclose(dl);
        return ACT_EINVAL;
    }
    h->handles[h->n_handles++] = dl; /* kept even if init fails: it may have left state */
    return wrk_plugin_register(h, init, path);
}

void wrk_host_close(abp_host_t *h) {
    for (size_t i = 0; i < h->n_agents; i++) agt_def_free(&h->agents[i].def);
    free(h->agents);
    h->agents = NULL;
    h->n_agents = h->cap = 0;
    for (size_t i = 0; i < h->n_handles; i++) dlclose(h->handles[i]);
    free(h->handles);
    h->handles = NULL;
    h->n_handles = 0;
}
