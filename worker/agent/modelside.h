/* agent/modelside.h: what the model side's files (llm.c, tools.c, models.c, mcp_toolsets.c)
 * share and nobody else needs: the tools an LLM agent offers its model, one run of its tool
 * calls, and the MCP toolsets' tools. The runner side sees only runtime.h. */
#ifndef AGT_MODELSIDE_H
#define AGT_MODELSIDE_H

#include "runtime.h"


/* ---- the tools one LLM agent offers (tools.c) ---- */

typedef enum agt_offer_kind {
    AGT_OFFER_C,        /* a registered C tool */
    AGT_OFFER_AGENT,    /* "agent:NAME": runs NAME through agt_run_agent */
    AGT_OFFER_MCP,      /* a tool of an MCP server */
    AGT_OFFER_TRANSFER, /* transfer_to_agent, offered when the agent has sub-agents */
} agt_offer_kind_t;

typedef struct agt_offer {
    agt_offer_kind_t kind;
    char *name;            /* what the model calls it */
    char *description;
    char *params_json;     /* JSON schema of its arguments */
    const void *tool;      /* AGT_OFFER_C: tools.c's entry */
    char *target;          /* AGT_OFFER_AGENT: the agent; AGT_OFFER_MCP: the server */
    int64_t timeout_ms;    /* resolved: config override, tool's own, agent's, 30 s */
} agt_offer_t;

typedef struct agt_offers {
    agt_offer_t *v;
    size_t n;
} agt_offers_t;

/* Resolves def's "tools" (and sub-agents, as transfer_to_agent) into offers.
 * Returns: 0. Errors: ACT_ENOENT (a tool or MCP server that does not exist: err says which),
 * ACT_ENOMEM. Ownership: free *out with agt_offers_free. */
int agt_offers_build(agt_rt_t *rt, const agt_def_t *def, agt_offers_t *out, char *err,
                     size_t errcap);
void agt_offers_free(agt_offers_t *o);
const agt_offer_t *agt_offer_find(const agt_offers_t *o, const char *name);

/* One tool call of a model's answer, and what came of it. */
typedef struct agt_call_in {
    const char *id, *name;
    const uint8_t *args; /* one msgpack value; NULL when the model's JSON did not parse */
    size_t args_n;
} agt_call_in_t;

typedef struct agt_call_out {
    proto_buf_t response;   /* one msgpack value: the result, or {"error": {code, message}} */
    proto_buf_t delta;      /* tool_state_set's entries (n_delta key/value pairs) */
    uint32_t n_delta;
    const char *error_code; /* NULL: it succeeded; else "timeout", "tool_failed", ... */
    char error_message[256];
} agt_call_out_t;

/* Runs the calls at once, each in its own task with its offer's timeout (bounded by the
 * caller's deadline too), with the before/after tool callbacks, and waits for them all.
 * outs[i] (n of them, initialised here) always gets a response.
 * Returns: 0. Errors: ACT_ECANCELED (the job was cancelled), ACT_ENOMEM.
 * Ownership: free each out with agt_call_out_free. */
int agt_tools_run(abp_ctx_t *ctx, const agt_offers_t *offers, const agt_call_in_t *calls,
                  size_t n, agt_call_out_t *outs);
void agt_call_out_free(agt_call_out_t *o);

/* ---- MCP toolsets (mcp_toolsets.c) ---- */

typedef struct agt_mcp_tool {
    const char *name, *description, *schema_json;
} agt_mcp_tool_t;

/* The tools server listed when it started. Returns: 0 with *tools valid until the worker
 * stops. Errors: ACT_ENOENT (no such server in the config), ACT_ECLOSED (it is not running). */
int agt_toolset_tools(agt_rt_t *rt, const char *server, const agt_mcp_tool_t **tools,
                      size_t *n, int64_t *timeout_ms);
/* Calls a tool of server with args (one msgpack map, NULL: {}), until deadline; a server
 * that crashed is restarted first when its backoff has passed (mcp_toolsets.c). On 0,
 * *result is what the model reads, each thing once: the text of its content when that is
 * all it has; with structuredContent, that text when it is the structured content's JSON,
 * else the structured content; a result with other content, the whole result object.
 * *is_error says the tool reported failure. err gets a message on every failure.
 * Returns: 0. Errors: ACT_ECLOSED (the server is down: in its restart backoff, restarting,
 * given up, never started; at once, never waiting), ACT_ETIMEDOUT, ACT_ECANCELED,
 * ACT_EINVAL, ACT_ENOMEM, the MCP client's codes (mcp.h). */
int agt_toolset_call(agt_rt_t *rt, const char *server, const char *tool, const uint8_t *args,
                     size_t args_n, proto_buf_t *result, bool *is_error, char *err,
                     size_t errcap, int64_t deadline);
/* Successful restarts of server after crashes (0 for an unknown server), for tests. */
uint64_t agt_toolset_restarts(agt_rt_t *rt, const char *server);

/* ---- small helpers (tools.c) ---- */

/* min of two absolute deadlines where -1 means none. */
int64_t agt_deadline_min(int64_t a, int64_t b);

#endif
