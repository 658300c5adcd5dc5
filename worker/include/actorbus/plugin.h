/* actorbus/plugin.h: THE plugin API of actor-worker, the one header a plugin author includes.
 * A plugin is a shared object that exports one entry point, actorbus_plugin_init; the worker
 * hands it a table of functions (abp_api_t) and the plugin reaches the host only through that
 * table (like a Redis module), so it links against nothing of ours. Values cross the API as
 * msgpack bytes; the table has helpers to read and build them (a plugin may also link
 * msgpack-c, or any msgpack library, itself).
 *
 * Agents run as cooperative tasks on the worker's single loop thread: an agent must never
 * block the thread (no sleep(3), no blocking I/O); it waits only through the table's calls
 * (sleep, await, gather, next_done), which let every other job run meanwhile. A job's
 * timeout_ms bounds every one of those waits, and when the job is cancelled they return
 * ABP_ECANCELED: that is the agent's cue to clean up (emit, free) and return.
 *
 * A minimal plugin:
 *
 *     #include <actorbus/plugin.h>
 *     static const abp_api_t *api;
 *
 *     static int hello(abp_ctx_t *ctx, void *udata) {
 *         abp_pack_t *p = api->pack_new();
 *         api->pack_cstr(p, "hello");
 *         int rc = api->set_output_pack(ctx, p);
 *         api->pack_free(&p);
 *         return rc;
 *     }
 *
 *     int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
 *         if (version < ABP_API_VERSION) return ABP_EVERSION;
 *         api = a;
 *         return api->register_agent(host, "hello", hello, NULL);
 *     }
 *
 * Build it with `cc -shared -fPIC -I<actorbus>/worker/include hello.c -o hello.so` and load it
 * with `actor-worker --plugin ./hello.so`. See examples/plugin/hello.c. */
#ifndef ACTORBUS_PLUGIN_H
#define ACTORBUS_PLUGIN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. The host passes its own to actorbus_plugin_init; later
 * versions only append to abp_api_t, so a plugin built for version N runs on hosts >= N. */
#define ABP_API_VERSION 2 /* 2: ADK agents, tools and callbacks (the block at the end) */

/* Codes returned by the table's functions and by agents (0 is success). They equal the
 * worker's own codes (negative errno values, ours above 4000). */
enum {
    ABP_OK = 0,
    ABP_EINVAL = -EINVAL,       /* a bad argument, or not valid msgpack */
    ABP_ENOMEM = -ENOMEM,       /* out of memory */
    ABP_EAGAIN = -EAGAIN,       /* emit: the worker's outgoing queue is full, event dropped */
    ABP_ENOENT = -ENOENT,       /* no such map key or array index */
    ABP_EEXIST = -EEXIST,       /* an agent of that name is already registered */
    ABP_ECANCELED = -ECANCELED, /* the job was cancelled: clean up and return */
    ABP_ETIMEDOUT = -ETIMEDOUT, /* the job's timeout_ms passed */
    ABP_EVERSION = -EPROTO,     /* (plugins) the host's API is older than the plugin needs */
    ABP_ECALL = -4100,          /* a sub-query ended with an error: see call_error */
    ABP_EEOF = -4101,           /* next_done: every call has been handed out */
};

enum { ABP_LOG_DEBUG, ABP_LOG_INFO, ABP_LOG_WARN, ABP_LOG_ERROR };

typedef struct abp_host abp_host_t; /* the worker, during actorbus_plugin_init */
typedef struct abp_ctx abp_ctx_t;   /* one job (one query to one agent) */
typedef struct abp_call abp_call_t; /* one sub-query sent through the broker */
typedef struct abp_pack abp_pack_t; /* a msgpack builder */
typedef struct abp_tool_ctx abp_tool_ctx_t; /* one run of a tool */

/* An agent: runs one job. Returns 0 for success: the job's result is what set_output gave
 * (nil if nothing). Any other return is an error: the code and message given to fail, or
 * else `timeout` (ABP_ETIMEDOUT), `cancelled` (ABP_ECANCELED) or `internal`. A job the client
 * cancelled is answered `cancelled` whatever the agent returns. udata is register_agent's. */
typedef int (*abp_agent_fn)(abp_ctx_t *ctx, void *udata);

/* A msgpack value, read in place: pointers point into the bytes it was read from. */
typedef enum abp_type {
    ABP_NIL, ABP_BOOL, ABP_INT, ABP_UINT, ABP_FLOAT, ABP_STR, ABP_BIN, ABP_ARRAY, ABP_MAP,
    ABP_EXT,
} abp_type_t;

typedef struct abp_value {
    abp_type_t type;
    bool b;             /* ABP_BOOL */
    int64_t i;          /* ABP_INT: every integer that fits int64 */
    uint64_t u;         /* ABP_UINT: integers above INT64_MAX; also set for ABP_INT >= 0 */
    double f;           /* ABP_FLOAT (float 32 or 64) */
    const char *str;    /* ABP_STR, ABP_BIN, ABP_EXT: the bytes, NOT NUL-terminated */
    size_t len;         /* ABP_STR, ABP_BIN, ABP_EXT: bytes; ABP_ARRAY: elements;
                           ABP_MAP: pairs */
    const uint8_t *raw; /* the whole value as msgpack (pass it on: emit, call, pack_raw) */
    size_t raw_n;       /* its size */
} abp_value_t;

/* ---- ADK agents (API version 2) ----
 * An event of the agent runtime, as emit_event takes it. The host fills in id, invocation_id,
 * author (the running agent), branch and ts_ms, sends it to the client and the bus, and (when
 * the query has a session) the broker appends it to the session and applies its state_delta.
 * proto/PROTOCOL.md ("Agent events") has the wire form. Every field may be left zero. */
typedef struct abp_event {
    const char *text;              /* a text part */
    const uint8_t *data;           /* a structured part {"data": value}: one msgpack value */
    size_t data_n;
    const uint8_t *parts;          /* more parts, verbatim: a msgpack array of part maps */
    size_t parts_n;
    const char *role;              /* content role: NULL gives "model" */
    const uint8_t *state_delta;    /* a msgpack map key -> value; nil deletes the key */
    size_t state_delta_n;
    const char *transfer_to_agent; /* hand the rest of the invocation to this agent */
    bool escalate;                 /* end the enclosing loop agent */
    bool partial;                  /* a streamed piece (not stored in the session) */
    bool final;                    /* the agent's final response */
    const char *error_code;        /* snake_case, e.g. "tool_error" */
    const char *error_message;
} abp_event_t;

/* A tool: runs once per call with its arguments (a msgpack map) and writes its result (one
 * msgpack value) into out. Returns 0, or a negative code (with tool_fail's message) that
 * becomes a tool_error event; the invocation goes on either way. A tool registered with
 * ABP_TOOL_BLOCKING runs on a thread of the worker's pool: it may block, but it may use only
 * the pack_*, value, map_get, array_get, tool_fail and tool_state_set functions. */
typedef int (*abp_tool_fn)(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                           void *udata);

enum { ABP_TOOL_BLOCKING = 1 };

typedef struct abp_tool_def {
    const char *name;            /* at most 64 bytes of [A-Za-z0-9_-] (what models accept) */
    const char *description;     /* for the model */
    const char *parameters_json; /* JSON schema of the arguments; NULL: an object, any keys */
    abp_tool_fn fn;
    void *udata;
    unsigned flags;              /* ABP_TOOL_BLOCKING */
    int64_t timeout_ms;          /* per call; 0: the default (30 s, or the agent's) */
} abp_tool_def_t;

/* Callbacks, after ADK's: which point of a run they hook. */
typedef enum abp_cb_kind {
    ABP_CB_BEFORE_AGENT, /* data: the input. Return 1 with out = the agent's output: the agent
                            is skipped and a final event with that content is emitted */
    ABP_CB_AFTER_AGENT,  /* data: the output. Return 1 with out = a replacement output */
    ABP_CB_BEFORE_MODEL, /* data: the request {"messages":[...],"tools":[...]} (OpenAI shape).
                            Return 1 with out = a response {"text":..,"tool_calls":[..]}: the
                            model is not called (a cache); return 2 with out = a replacement
                            request */
    ABP_CB_AFTER_MODEL,  /* data: the response. Return 1 with out = a replacement response */
    ABP_CB_BEFORE_TOOL,  /* data: the arguments. Return 1 with out = the tool's result: the
                            tool is not run; return 2 with out = replacement arguments */
    ABP_CB_AFTER_TOOL,   /* data: the result. Return 1 with out = a replacement result */
} abp_cb_kind_t;

typedef struct abp_cb_args {
    abp_cb_kind_t kind;
    const char *agent;    /* the agent running */
    const char *tool;     /* tool callbacks: the tool; else NULL */
    const uint8_t *data;  /* see abp_cb_kind_t: one msgpack value */
    size_t n;
} abp_cb_args_t;

/* Returns 0 to go on unchanged, 1 or 2 (see abp_cb_kind_t) when out holds a replacement, or a
 * negative code that fails the agent (agent and model callbacks) or the tool call. Runs in the
 * agent's task: it may wait (call, sleep). */
typedef int (*abp_callback_fn)(abp_ctx_t *ctx, const abp_cb_args_t *args, abp_pack_t *out,
                               void *udata);

typedef struct abp_api {
    uint32_t version; /* ABP_API_VERSION of the host */
    uint32_t size;    /* sizeof(abp_api_t) in the host */

    /* ---- during actorbus_plugin_init only ---- */

    /* Registers an agent under name (at most 128 bytes, copied). fn runs once per job.
     * Returns: 0. Errors: ABP_EEXIST, ABP_EINVAL (bad name, or called after init). */
    int (*register_agent)(abp_host_t *host, const char *name, abp_agent_fn fn, void *udata);

    /* ---- inside an agent: the job ---- */

    /* The job's input as msgpack (nil when the query had none).
     * Ownership: valid until the agent returns. Returns: 0. */
    int (*input)(abp_ctx_t *ctx, const uint8_t **bytes, size_t *n);
    /* Streams an event (one msgpack value, copied) to the client and the bus. Never waits:
     * it may be called while cleaning up after ABP_ECANCELED.
     * Returns: 0. Errors: ABP_EINVAL (not one msgpack value), ABP_ENOMEM, ABP_EAGAIN (the
     * broker is not taking messages and the worker's queue is full: the event is dropped). */
    int (*emit)(abp_ctx_t *ctx, const uint8_t *event, size_t n);
    /* Sets the job's output (one msgpack value, copied; a later call replaces it).
     * Returns: 0. Errors: ABP_EINVAL, ABP_ENOMEM. */
    int (*set_output)(abp_ctx_t *ctx, const uint8_t *output, size_t n);
    /* Makes the job end with error code (snake_case, e.g. "tool_error") and message, whatever
     * the agent returns afterwards. Returns: 0. Errors: ABP_EINVAL, ABP_ENOMEM. */
    int (*fail)(abp_ctx_t *ctx, const char *code, const char *message);
    /* Sleeps cooperatively (ms < 0 counts as 0).
     * Returns: 0. Errors: ABP_ECANCELED, ABP_ETIMEDOUT. */
    int (*sleep)(abp_ctx_t *ctx, int64_t ms);
    const char *(*worker_name)(abp_ctx_t *ctx); /* this worker's --name */
    const char *(*agent_name)(abp_ctx_t *ctx);  /* the agent the job is for */
    uint64_t (*job_id)(abp_ctx_t *ctx);         /* the broker's job id */
    const char *(*session)(abp_ctx_t *ctx);     /* the query's session, NULL if none */
    int64_t (*time_left_ms)(abp_ctx_t *ctx);    /* until the job's timeout (0: passed); -1 none */
    bool (*cancelled)(abp_ctx_t *ctx);          /* cancellation was requested */
    int64_t (*unix_ms)(void);                   /* wall clock, ms since 1970 */

    /* ---- inside an agent: sub-queries through the broker (they may run on any worker) ---- */

    /* Sends a query to agent with input (one msgpack value; NULL/0 for nil). timeout_ms < 0:
     * the job's time left, if any. Does not wait.
     * Returns: 0. Errors: ABP_EINVAL, ABP_ENOMEM, ABP_ECANCELED.
     * Ownership: *out is the agent's; free it with call_free (the host frees what is left
     * when the agent returns). */
    int (*call)(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                int64_t timeout_ms, abp_call_t **out);
    /* Waits for the call to end. On 0, *output (may be NULL) gets its output.
     * Returns: 0. Errors: ABP_ECALL (it ended with an error: call_error says which),
     * ABP_ECANCELED, ABP_ETIMEDOUT. Ownership: *output lives as long as the call. */
    int (*await)(abp_call_t *call, const uint8_t **output, size_t *n);
    /* Waits for every call to end. Returns: 0 when all succeeded. Errors: ABP_ECALL (one or
     * more failed: check each), ABP_ECANCELED, ABP_ETIMEDOUT. */
    int (*gather)(abp_call_t *const *calls, size_t n);
    /* as_completed: sets *index to the next call of calls[0..n) to end, in the order they
     * end, each once. Returns: 0. Errors: ABP_EEOF (all handed out), ABP_ECANCELED,
     * ABP_ETIMEDOUT. */
    int (*next_done)(abp_call_t *const *calls, size_t n, size_t *index);
    bool (*call_done)(const abp_call_t *call);
    /* The output of a call that succeeded. Returns: 0. Errors: ABP_EINVAL (not done or failed). */
    int (*call_output)(const abp_call_t *call, const uint8_t **output, size_t *n);
    /* The error of a call that failed. Returns: 0. Errors: ABP_EINVAL (not done, or ok). */
    int (*call_error)(const abp_call_t *call, const char **code, const char **message);
    /* Frees the call and sets *call to NULL; a call still running is cancelled at the broker. */
    void (*call_free)(abp_call_t **call);

    /* ---- logging: one key=value line per event; ctx may be NULL (e.g. in init) ---- */
    void (*log)(abp_ctx_t *ctx, int level, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

    /* ---- msgpack: reading in place ---- */

    /* Reads the value at the start of mp[0..n). Returns: 0. Errors: ABP_EINVAL (malformed). */
    int (*value)(const uint8_t *mp, size_t n, abp_value_t *out);
    /* The value under string key in a map. Returns: 0. Errors: ABP_ENOENT, ABP_EINVAL. */
    int (*map_get)(const abp_value_t *map, const char *key, abp_value_t *out);
    /* The i-th element of an array. Returns: 0. Errors: ABP_ENOENT, ABP_EINVAL. */
    int (*array_get)(const abp_value_t *array, size_t i, abp_value_t *out);

    /* ---- msgpack: building. A builder appends values; each pack_* returns 0 or ABP_ENOMEM
     * (then the builder is failed for good and pack_data reports it). Containers take their
     * element count first: pack_map(p, 2) then key, value, key, value. ---- */
    abp_pack_t *(*pack_new)(void); /* NULL when out of memory */
    void (*pack_free)(abp_pack_t **p);
    void (*pack_reset)(abp_pack_t *p);
    int (*pack_nil)(abp_pack_t *p);
    int (*pack_bool)(abp_pack_t *p, bool v);
    int (*pack_int)(abp_pack_t *p, int64_t v);
    int (*pack_uint)(abp_pack_t *p, uint64_t v);
    int (*pack_double)(abp_pack_t *p, double v);
    int (*pack_str)(abp_pack_t *p, const char *s, size_t n);
    int (*pack_cstr)(abp_pack_t *p, const char *s);
    int (*pack_bin)(abp_pack_t *p, const void *b, size_t n);
    int (*pack_array)(abp_pack_t *p, uint32_t n);
    int (*pack_map)(abp_pack_t *p, uint32_t n);
    /* Appends one msgpack value verbatim. Errors: ABP_EINVAL (not one value), ABP_ENOMEM. */
    int (*pack_raw)(abp_pack_t *p, const uint8_t *mp, size_t n);
    /* Appends JSON text as one msgpack value. Errors: ABP_EINVAL (bad JSON), ABP_ENOMEM. */
    int (*pack_json)(abp_pack_t *p, const char *json);
    /* The bytes built so far. Returns: 0. Errors: ABP_ENOMEM (a pack failed).
     * Ownership: valid until the builder's next change. */
    int (*pack_data)(const abp_pack_t *p, const uint8_t **bytes, size_t *n);
    /* emit / set_output / call straight from a builder (what it holds must be one value). */
    int (*emit_pack)(abp_ctx_t *ctx, const abp_pack_t *p);
    int (*set_output_pack)(abp_ctx_t *ctx, const abp_pack_t *p);

    /* ==== version 2: ADK agents, tools and callbacks ==== */

    /* ---- during actorbus_plugin_init only ---- */

    /* Registers a tool (def and its strings are copied). Returns: 0.
     * Errors: ABP_EEXIST, ABP_EINVAL (bad name or schema JSON, no fn, after init). */
    int (*register_tool)(abp_host_t *host, const abp_tool_def_t *def);
    /* Registers a callback for agent (NULL: every agent). Callbacks of one kind run in the
     * order registered; the first that returns non-zero wins. Returns: 0. Errors: ABP_EINVAL. */
    int (*register_callback)(abp_host_t *host, const char *agent, abp_cb_kind_t kind,
                             abp_callback_fn fn, void *udata);
    /* Declares agents, models and MCP servers in the JSON of a worker's --agents file (see
     * worker/agent/README.md), so a plugin can compose its C agents and tools.
     * Returns: 0. Errors: ABP_EINVAL (the JSON or a definition is wrong: logged with where),
     * ABP_EEXIST, ABP_ENOMEM. */
    int (*define_agents_json)(abp_host_t *host, const char *json);

    /* ---- inside an agent ---- */

    /* Emits an ADK event (see abp_event_t). Never waits. Its state_delta is applied to the
     * invocation's state at once (state_get sees it).
     * Returns: 0. Errors: ABP_EINVAL (a field is not valid msgpack), ABP_ENOMEM, ABP_EAGAIN. */
    int (*emit_event)(abp_ctx_t *ctx, const abp_event_t *ev);
    /* The value of key in the session state as this invocation sees it (the broker's state
     * when the job started, plus the deltas of this invocation's events since).
     * Returns: 0. Errors: ABP_ENOENT (no such key, or no session). Ownership: valid until the
     * next emit_event, the next wait (a sub-agent's events change the state too) or the agent
     * returns. */
    int (*state_get)(abp_ctx_t *ctx, const char *key, const uint8_t **value, size_t *n);
    /* Runs agent (hosted here or anywhere: through the broker) as a sub-agent of this
     * invocation, on this one's session and branch, and waits for it; its events reach the
     * client and the session like this agent's own. On 0, *output gets its output (valid until
     * the agent returns). Returns: 0. Errors: ABP_ECALL (it failed: the message is logged and
     * in *output as {"code","message"}), ABP_ECANCELED, ABP_ETIMEDOUT, ABP_EINVAL. */
    int (*run_agent)(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                     const uint8_t **output, size_t *output_n);

    /* ---- inside a tool ---- */

    /* Makes the call's tool_error message say what went wrong. Returns: 0 or ABP_ENOMEM. */
    int (*tool_fail)(abp_tool_ctx_t *tc, const char *message);
    /* Adds key = value (one msgpack value; nil deletes) to the state delta of the event that
     * carries this call's response (ADK's tool_context.state). Returns: 0. Errors: ABP_EINVAL,
     * ABP_ENOMEM. */
    int (*tool_state_set)(abp_tool_ctx_t *tc, const char *key, const uint8_t *value, size_t n);
    /* The job of the agent that called the tool; NULL in a blocking tool (another thread). */
    abp_ctx_t *(*tool_job)(abp_tool_ctx_t *tc);
} abp_api_t;

/* The entry point every plugin exports. api stays valid while the plugin is loaded; host is
 * only valid during this call. version is the host's ABP_API_VERSION. Return 0 when the
 * plugin registered its agents, a negative code to refuse loading (the worker then exits). */
int actorbus_plugin_init(const abp_api_t *api, abp_host_t *host, uint32_t version);

#ifdef __cplusplus
}
#endif

#endif
