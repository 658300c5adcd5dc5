/* agent/runtime.h: the ADK-style agent runtime inside actor-worker (agt_ names): agent
 * definitions and their types, the runner that runs one job's invocation, events, state,
 * callbacks, tools, models and MCP toolsets. The parts meet here; plugins see only
 * actorbus/plugin.h (version 2), and the wire form of events is in proto/PROTOCOL.md.
 *
 * Who does what
 * - runner.c, agents.c, events.c, config.c (the runner side): a job's invocation (its frame
 *   stack, state view, history), emit_event, run_agent, transfer_to_agent, escalate, the
 *   sequential / parallel / loop types, callbacks, and the --agents JSON file.
 * - llm.c, tools.c, models.c, mcp_toolsets.c (the model side): the LLM agent, the tool
 *   registry and concurrent tool calls with per-tool timeouts, the named models of the config
 *   (agentrt: OpenAI-compatible backend behind a guard), MCP servers as toolsets (agentmcp).
 * - model/budget_client.c: the client of the broker's cross-worker model budget
 *   (agt_rt_t.budget). */
#ifndef AGT_RUNTIME_H
#define AGT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actorbus/plugin.h"
#include "host.h"
#include "model.h"
#include "proto/proto.h"

/* ---- the plugin table's msgpack helpers (runner/value.c), for the host to hand out ---- */
int agt_value(const uint8_t *mp, size_t n, abp_value_t *out);
int agt_map_get(const abp_value_t *map, const char *key, abp_value_t *out);
int agt_array_get(const abp_value_t *array, size_t i, abp_value_t *out);
/* True when mp[0..n) is exactly one msgpack value. */
bool agt_is_one_value(const uint8_t *mp, size_t n);
struct abp_pack {
    proto_buf_t buf; /* the bytes and a msgpack-c packer */
};
abp_pack_t *agt_pack_new(void);
void agt_pack_free(abp_pack_t **p);
void agt_pack_reset(abp_pack_t *p);
int agt_pack_nil(abp_pack_t *p);
int agt_pack_bool(abp_pack_t *p, bool v);
int agt_pack_int(abp_pack_t *p, int64_t v);
int agt_pack_uint(abp_pack_t *p, uint64_t v);
int agt_pack_double(abp_pack_t *p, double v);
int agt_pack_str(abp_pack_t *p, const char *s, size_t n);
int agt_pack_cstr(abp_pack_t *p, const char *s);
int agt_pack_bin(abp_pack_t *p, const void *b, size_t n);
int agt_pack_array(abp_pack_t *p, uint32_t n);
int agt_pack_map(abp_pack_t *p, uint32_t n);
int agt_pack_raw(abp_pack_t *p, const uint8_t *mp, size_t n);
int agt_pack_json(abp_pack_t *p, const char *json);
int agt_pack_data(const abp_pack_t *p, const uint8_t **bytes, size_t *n);

/* ---- agent definitions ---- */

typedef enum agt_kind {
    AGT_CUSTOM,     /* a C function (register_agent) */
    AGT_SEQUENTIAL, /* sub-agents in order, in this job */
    AGT_PARALLEL,   /* sub-agents at once, each a sub-invocation through the broker */
    AGT_LOOP,       /* sub-agents in order, again, until escalate or max_iterations */
    AGT_LLM,        /* a model with instruction, tools and sub-agents to transfer to */
} agt_kind_t;

#define AGT_DEFAULT_TOOL_TIMEOUT_MS 30000
#define AGT_DEFAULT_MAX_STEPS 10      /* model calls in one LLM agent run */
#define AGT_DEFAULT_MAX_ITERATIONS 10 /* loop agents */
#define AGT_MAX_TRANSFERS 10          /* transfer_to_agent hops in one job */
#define AGT_MAX_SUB_AGENTS 64

typedef struct agt_llm_conf {
    char *model;            /* a model of the config's "models"; NULL: "default" */
    char *instruction;      /* system prompt template: {key} from state, {key?} optional */
    char **tools;           /* "name": a registered tool; "agent:NAME": an agent as a tool;
                               "mcp:SERVER": every tool of that MCP server */
    size_t n_tools;
    char *output_key;       /* the final text is also written to state[output_key] */
    int64_t tool_timeout_ms; /* default timeout of its tool calls (0: a tool's own, 30 s) */
    int max_steps;          /* model calls per run (0: AGT_DEFAULT_MAX_STEPS) */
    bool no_stream;         /* true: no partial events */
    bool no_history;        /* true: the model sees only this query, not the session's past */
} agt_llm_conf_t;

typedef struct agt_def {
    char *name, *description;
    agt_kind_t kind;
    char **sub_agents;      /* names; for LLM agents: those it may transfer to */
    size_t n_sub;
    int max_iterations;     /* loop (0: AGT_DEFAULT_MAX_ITERATIONS) */
    agt_llm_conf_t llm;     /* AGT_LLM */
    abp_agent_fn fn;        /* AGT_CUSTOM */
    void *udata;
} agt_def_t;

/* ---- the runtime's registries, one per worker (host->rt) ---- */

typedef struct agt_tools agt_tools_t;       /* tools.c */
typedef struct agt_models agt_models_t;     /* models.c */
typedef struct agt_toolsets agt_toolsets_t; /* mcp_toolsets.c */
typedef struct agt_callbacks agt_callbacks_t; /* runner side */

typedef struct agt_rt {
    agt_tools_t *tools;
    agt_models_t *models;
    agt_toolsets_t *mcp;
    agt_callbacks_t *callbacks;
    /* The broker's model budget (model/budget_client.c), set by worker.c while it runs; it
     * asks nothing until the broker announces a budget. NULL: none. models.c's guards reach
     * it through a shim, so guards built before it was set use it too. */
    const agt_model_budget_t *budget;
} agt_rt_t;

/* ---- the runner side (for the model side to call) ----
 * Inside a job, ctx is the running agent's job; the agent running now (the author of what
 * it emits, its branch) is the runner's business: these calls use it. */

/* The runtime of the host a job runs on. */
agt_rt_t *agt_rt_of(abp_ctx_t *ctx);
/* The definition of the agent running now in ctx. */
const agt_def_t *agt_current(abp_ctx_t *ctx);
/* Emits an event as the current agent (as api->emit_event). */
int agt_emit(abp_ctx_t *ctx, const abp_event_t *ev);
/* What the LLM agent's events carry beyond a plugin's (proto/PROTOCOL.md "Agent events"). */
typedef struct agt_event_extra {
    const agt_usage_t *usage;   /* "usage_metadata": one model call's tokens (-1: unknown);
                                   also added to the invocation's sum. NULL: none */
    bool with_sum;              /* "invocation_usage": the invocation's sum so far */
} agt_event_extra_t;
/* agt_emit with x (NULL: as agt_emit). Errors: as agt_emit. */
int agt_emit_ex(abp_ctx_t *ctx, const abp_event_t *ev, const agt_event_extra_t *x);
/* The state as this invocation sees it: one msgpack map (empty map when no session).
 * Ownership: valid until the next agt_emit or wait (agt_call_event applies sub-invocations'
 * deltas while the job waits). */
proto_raw_t agt_state(abp_ctx_t *ctx);
/* The session's recent events as the broker sent them with the work (an array of stored
 * events {"seq","id","invocation","author","ts_ms","event"}; n == 0 when none), oldest
 * first, for an LLM agent's conversation history. */
proto_raw_t agt_history(abp_ctx_t *ctx);
/* The invocation id and the current branch ("" at the root). */
const char *agt_invocation_id(abp_ctx_t *ctx);
const char *agt_branch(abp_ctx_t *ctx);
/* Runs the callbacks of kind for the current agent (tool: the tool's name for tool kinds),
 * in registration order, until one returns non-zero; data is the value they are given.
 * Returns: 0 (none replaced), 1 or 2 with out holding the replacement (see abp_cb_kind_t),
 * or a callback's negative code. */
int agt_callbacks_run(abp_ctx_t *ctx, abp_cb_kind_t kind, const char *tool,
                      const uint8_t *data, size_t n, abp_pack_t *out);
/* As api->run_agent: runs agent as a sub-agent of this invocation (here when hosted here,
 * else through the broker). */
int agt_run_agent(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                  const uint8_t **output, size_t *output_n);

/* ---- the model side (for the runner side to call) ---- */

/* Runs an LLM agent (def->kind == AGT_LLM) as the current agent of ctx: builds the request
 * from the instruction, the history and input, calls the model, runs its tool calls
 * concurrently (each with its timeout; a failure or timeout is a tool_error event and the
 * run goes on), emits partial, function call, function response and final events, follows
 * a transfer_to_agent call by emitting the action (the runner then runs that agent), and sets
 * the job's output to the final text. Returns: 0, or a negative code (the model failed). */
int agt_llm_run(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *input, size_t n);

/* Tools (tools.c). */
int agt_tools_new(agt_tools_t **out);
void agt_tools_destroy(agt_tools_t **t);
/* register_tool of the plugin table. */
int agt_tool_register(abp_host_t *host, const abp_tool_def_t *def);
/* The config's "tools" section: per-tool settings, {"NAME": {"timeout_ms": N}}.
 * Returns: 0. Errors: ABP_EINVAL with err filled. */
int agt_tools_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap);

/* Models (models.c): the config's "models" section, {"NAME": {"base_url","model",
 * "api_key_env","fallback","max_concurrency","rps","max_attempts","timeout_ms"}}; a model
 * named "default" comes from the environment (ACTORBUS_MODEL_BASE_URL, ACTORBUS_MODEL) when
 * the config has none. */
int agt_models_new(agt_models_t **out);
void agt_models_destroy(agt_models_t **m); /* before the loop is destroyed */
int agt_models_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap);
/* The guarded model of that name, built on first use. Its calls are bounded by its timeout_ms
 * too: when that is nearer than the caller's deadline (the call's and the task's scopes) and
 * the call times out, they fail with AGT_EMODEL_TIMEOUT ("model_timeout"); ACT_ETIMEDOUT
 * always means the caller's own deadline. Errors: ACT_ENOENT (no such model; "default" when
 * no server is configured), ACT_EINVAL, ACT_ENOMEM. */
int agt_model_get(agt_rt_t *rt, const char *name, agt_model_t **out);

/* MCP toolsets (mcp_toolsets.c): the config's "mcp" section, {"NAME": {"command": [argv...],
 * "env": {...}, "timeout_ms": N}}; the servers start with the worker (agt_toolsets_start,
 * inside the loop) and stop with it. */
int agt_toolsets_new(agt_toolsets_t **out);
void agt_toolsets_destroy(agt_toolsets_t **t);
int agt_toolsets_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap);
int agt_toolsets_start(agt_rt_t *rt);
void agt_toolsets_stop(agt_rt_t *rt);

/* ---- the runner side, for the worker (worker/) and the plugin table ---- */

#define AGT_MAX_DEPTH 16 /* agents nested in one job (sub-agents run in the job, transfers) */

struct abp_call;

/* The registries (tools, models, MCP, callbacks), made before any plugin loads.
 * Returns: 0. Errors: ABP_ENOMEM. agt_rt_destroy is safe on NULL and NULLs *rt. */
int agt_rt_new(const agt_host_t *host, agt_rt_t **out);
void agt_rt_destroy(agt_rt_t **rt);
/* Inside the loop, around the worker's run: MCP servers start; models and servers stop. */
int agt_rt_start(agt_rt_t *rt);
void agt_rt_stop(agt_rt_t *rt);

/* Agent definitions (agents.c). agt_def_custom makes a custom agent's definition (NULL when
 * out of memory); agt_def_free frees any definition and NULLs *def. */
agt_def_t *agt_def_custom(const char *name, abp_agent_fn fn, void *udata);
void agt_def_free(agt_def_t **def);
const char *agt_kind_name(agt_kind_t kind);
/* Whether name may name an agent: 1 to PROTO_MAX_NAME bytes, no spaces or control
 * characters (names show up in logs and bus topics). */
bool agt_name_ok(const char *name);

/* A job's runner state: made when the work arrives (invocation id, branch, state, history
 * copied from it), freed with the job. Errors: ABP_ENOMEM. */
int agt_job_begin(const proto_msg_t *work, struct agt_job **out);
void agt_job_end(struct agt_job **jb); /* safe on NULL; NULLs *jb */
/* Runs the job's agent: callbacks, its type, transfers. Returns what the agent returned. */
int agt_job_run(abp_ctx_t *ctx);
/* An event of one of the job's sub-invocations (a call made with wrk_call_sub): an ADK event
 * that is not partial applies its state_delta to the job's state view; escalate marks the
 * agent running now. Anything else is ignored. */
void agt_call_event(abp_ctx_t *ctx, proto_raw_t event);
/* Whether def reads the session's history when it runs here: an LLM agent with history, or
 * an agent whose sub-agents hosted here (run in the job, or transferred to) do. The worker's
 * ready names these, and the broker sends history only with their work. */
bool agt_wants_history(abp_host_t *host, const agt_def_t *def);

/* The table's version 2 functions of the runner side. */
int agt_callback_register(abp_host_t *host, const char *agent, abp_cb_kind_t kind,
                          abp_callback_fn fn, void *udata);
int agt_state_get(abp_ctx_t *ctx, const char *key, const uint8_t **value, size_t *n);
/* define_agents_json, and the worker's --agents file (config.c): the JSON of
 * worker/agent/README.md. Registration must be open (plugin init, or the worker's start).
 * Returns: 0. Errors: ABP_EINVAL (err says where: "agents[2].max_iterations must be a
 * positive integer"), ABP_EEXIST, ABP_ENOMEM. */
int agt_config_load(abp_host_t *host, const char *json, size_t n, char *err, size_t errcap);
int agt_define_agents_json(abp_host_t *host, const char *json);
/* Reads the file and loads it. Errors: as agt_config_load, ACT_ENOENT (unreadable file). */
int agt_config_load_file(abp_host_t *host, const char *path, char *err, size_t errcap);

/* Packs {"error": {"code": code, "message": message}} into b: how a failed tool call or
 * sub-agent shows in a function response or a parallel agent's output (tools.c). */
void agt_pack_error(proto_buf_t *b, const char *code, const char *message);

/* The table's tool functions (tools.c, the model side). */
int agt_tool_fail(abp_tool_ctx_t *tc, const char *message);
int agt_tool_state_set(abp_tool_ctx_t *tc, const char *key, const uint8_t *value, size_t n);
abp_ctx_t *agt_tool_job(abp_tool_ctx_t *tc);

#endif
