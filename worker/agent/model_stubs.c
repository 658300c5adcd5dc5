/* agent/model_stubs.c: weak stand-ins for the model side (llm.c, tools.c, models.c,
 * mcp_toolsets.c) so the runner side links and runs on its own: no LLM agents, no tools, no
 * models, no MCP servers. The model side's real definitions are strong symbols: when they
 * are linked in, the linker takes them and these are never used. */
#include <stdio.h>

#include "runner.h"

#define WEAK __attribute__((weak))

static int none(const proto_val_t *section, const char *what, char *err, size_t errcap) {
    if (section->len == 0) return 0;
    snprintf(err, errcap, "%s: this worker was built without the model side", what);
    return ABP_EINVAL;
}

WEAK int agt_llm_run(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *input, size_t n) {
    (void)input, (void)n;
    char msg[256];
    snprintf(msg, sizeof msg, "agent '%s' is an LLM agent: this worker has no model side",
             def->name);
    wrk_ctx_fail(ctx, "not_supported", msg);
    return ABP_EINVAL;
}

WEAK int agt_tools_new(agt_tools_t **out) { return *out = NULL, 0; }
WEAK void agt_tools_destroy(agt_tools_t **t) { *t = NULL; }
WEAK int agt_tool_register(abp_host_t *host, const abp_tool_def_t *def) {
    (void)host, (void)def;
    return ABP_EINVAL;
}
WEAK int agt_tools_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t cap) {
    (void)rt;
    return none(section, "tools", err, cap);
}
WEAK int agt_models_new(agt_models_t **out) { return *out = NULL, 0; }
WEAK void agt_models_destroy(agt_models_t **m) { *m = NULL; }
WEAK int agt_models_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t cap) {
    (void)rt;
    return none(section, "models", err, cap);
}
WEAK int agt_model_get(agt_rt_t *rt, const char *name, agt_model_t **out) {
    (void)rt, (void)name, (void)out;
    return ACT_ENOENT;
}
WEAK int agt_toolsets_new(agt_toolsets_t **out) { return *out = NULL, 0; }
WEAK void agt_toolsets_destroy(agt_toolsets_t **t) { *t = NULL; }
WEAK int agt_toolsets_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t cap) {
    (void)rt;
    return none(section, "mcp", err, cap);
}
WEAK int agt_toolsets_start(agt_rt_t *rt) { return (void)rt, 0; }
WEAK void agt_toolsets_stop(agt_rt_t *rt) { (void)rt; }
WEAK int agt_tool_fail(abp_tool_ctx_t *tc, const char *message) {
    (void)tc, (void)message;
    return ABP_EINVAL;
}
WEAK int agt_tool_state_set(abp_tool_ctx_t *tc, const char *key, const uint8_t *value,
                            size_t n) {
    (void)tc, (void)key, (void)value, (void)n;
    return ABP_EINVAL;
}
WEAK abp_ctx_t *agt_tool_job(abp_tool_ctx_t *tc) { return (void)tc, NULL; }
