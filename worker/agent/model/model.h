/* agent/model.h: the model layer of the agent runtime (agt_ names). One interface for every
 * chat model (a request of messages and tools in, text and tool calls out, partial text
 * streamed to a callback), an OpenAI-compatible HTTP backend, and a guard that wraps backends
 * in a rate limit, retries, a circuit breaker per backend and a fallback model. */
#ifndef AGT_MODEL_H
#define AGT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/actor.h"
#include "proto/errors.h"

/* ---- errors ----
 * Model calls return 0 or a negative code: libactor's (ACT_ECANCELED, ACT_ETIMEDOUT,
 * ACT_ECIRCUIT, ACT_EINVAL, ACT_ENOMEM) or one of these. agt_model_err_code gives each a
 * stable snake_case name for error events and the wire. */
#define AGT_MODEL_ERRORS(X) PROTO_MODEL_ERRORS(X) /* the project's one table, proto/errors.h */

enum {
#define AGT_ERR_ENUM(name, val, code, msg) AGT_##name = (val),
    AGT_MODEL_ERRORS(AGT_ERR_ENUM)
#undef AGT_ERR_ENUM
};

/* The stable code of a model call's result: the names above ("model_timeout" is
 * AGT_EMODEL_TIMEOUT: a named model's own timeout_ms passed), and "timeout" (ACT_ETIMEDOUT:
 * the caller's deadline passed, its scope's or the call's), "cancelled" (ACT_ECANCELED),
 * "model_circuit_open" (ACT_ECIRCUIT), "bad_request" (ACT_EINVAL), "internal" (anything
 * else). 0 gives "ok". */
const char *agt_model_err_code(int rc);

/* Human text for a code: ours, else act_strerror's. */
const char *agt_model_strerror(int rc);

/* Maps an OpenAI-style error object's "type" and "code" (a string, or an HTTP status as a
 * number: code_num >= 0) to the code the same failure gets as an HTTP status: rate limits
 * give model_rate_limited, credentials model_unauthorized, refused requests
 * model_bad_request, server trouble and anything unknown model_unavailable. type and code
 * may be NULL (code_num -1: none). Returns: one of AGT_EMODEL_*. */
int agt_model_error_kind(const char *type, size_t type_len, const char *code, size_t code_len,
                         int64_t code_num);

/* ---- the request ----
 * Structured values (a tool's JSON-schema parameters, a tool call's arguments) travel as ONE
 * msgpack value in (pointer, length) pairs, the runtime's own representation (proto's
 * proto_json_to_msgpack / proto_raw_to_json convert). Where a JSON text is the natural form
 * (an OpenAI tool call's arguments are a JSON string on the wire) both are offered. Requests
 * only borrow: nothing in them is freed or kept after the call returns. */

typedef enum agt_role {
    AGT_ROLE_SYSTEM,
    AGT_ROLE_USER,
    AGT_ROLE_ASSISTANT,
    AGT_ROLE_TOOL, /* a tool's result, answering tool_call_id */
} agt_role_t;

/* A tool call: in a response (owned by it) or in an assistant message of a request. */
typedef struct agt_tool_call {
    const char *id;        /* the model's id for this call ("call_0"); never NULL in a response */
    const char *name;      /* the tool to call */
    const char *arguments; /* its arguments as the model wrote them: JSON text, NUL-terminated */
    const uint8_t *args;   /* the same arguments as one msgpack value; NULL when `arguments` is
                              not valid JSON. In a request: used when arguments is NULL */
    size_t args_len;
} agt_tool_call_t;

typedef struct agt_message {
    agt_role_t role;
    const char *content;               /* text; NULL: none (an assistant's tool calls only) */
    const agt_tool_call_t *tool_calls; /* assistant: the calls it made */
    size_t n_tool_calls;
    const char *tool_call_id; /* tool: the call this message answers */
    const char *name;         /* optional author name */
} agt_message_t;

/* A tool offered to the model. */
typedef struct agt_tool {
    const char *name;
    const char *description;   /* NULL: none */
    const uint8_t *parameters; /* JSON schema of its arguments: one msgpack map... */
    size_t parameters_len;
    const char *parameters_json; /* ...or as JSON text (used when parameters is NULL; both
                                    NULL: {"type":"object","properties":{}}) */
} agt_tool_t;

/* Receives each piece of streamed text in order, in the calling task (it may block: emit an
 * event, send on a socket). text is UTF-8 as the server sent it, not NUL-terminated, and
 * valid only during the call. Returns 0, or a negative code that aborts the call with it. */
typedef int (*agt_delta_fn)(void *ctx, const char *text, size_t len);

typedef struct agt_model_request {
    const agt_message_t *messages;
    size_t n_messages;
    const agt_tool_t *tools;
    size_t n_tools;
    const char *tool_choice; /* "auto", "none", "required" or NULL (not sent) */
    double temperature;      /* < 0: not sent (use agt_model_request_init) */
    double top_p;            /* < 0: not sent */
    int64_t max_tokens;      /* <= 0: not sent */
    const uint8_t *extra;    /* one msgpack map merged into the request body ({"seed": 1}) */
    size_t extra_len;
    agt_delta_fn on_delta; /* non-NULL: stream the answer, calling it per text delta */
    void *ctx;             /* for on_delta */
} agt_model_request_t;

/* Zeroes r and sets temperature and top_p to -1 (not sent). */
void agt_model_request_init(agt_model_request_t *r);

/* ---- the response ---- */

typedef struct agt_usage {
    int64_t prompt_tokens, completion_tokens, total_tokens; /* -1: not reported */
} agt_usage_t;

typedef struct agt_model_response {
    char *text; /* the answer's text, NUL-terminated ("" when none) */
    size_t text_len;
    agt_tool_call_t *tool_calls; /* in the model's order (streamed calls: by index) */
    size_t n_tool_calls;
    char *finish_reason; /* "stop", "tool_calls", "length"...; NULL: not given */
    char *model;         /* the model name the server reported; NULL: not given */
    /* Filled on success and failure alike: */
    agt_usage_t usage;      /* tokens the server reported (kept on failure: they were spent) */
    const char *backend;    /* name of the backend that answered (or failed last) */
    int http_status;        /* the last HTTP status seen, 0 for none */
    int64_t retry_after_ms; /* the server's Retry-After on the last reply, -1 none */
    int attempts;           /* requests made for this call (retries and fallback) */
    size_t deltas;          /* on_delta calls made (a call that streamed is never
                               retried or handed to a fallback: text was shown) */
    char error[256];        /* on failure: what went wrong, for logs and error events */
} agt_model_response_t;

/* Frees what the response owns and zeroes it (error text included). Safe to repeat. */
void agt_model_response_free(agt_model_response_t *r);

/* Whether an answer is whole. A call that returned 0 may still hold a cut answer: the
 * server stopped at its token limit (finish_reason "length") or a content filter
 * ("content_filter"). Its text is partial and its tool calls may be cut mid-arguments, so a
 * caller must not treat it as a result nor run its calls (the text is there to be shown or
 * logged). Returns: 0 (whole: "stop", "tool_calls", "function_call", none given or another
 * reason), AGT_EMODEL_TRUNCATED ("length"), AGT_EMODEL_FILTERED ("content_filter"). */
int agt_model_finish_check(const agt_model_response_t *r);

/* ---- the interface ----
 * A model is an object with an ops table; backends and the guard are models, so the runner
 * sees one kind of thing. A model belongs to the loop of the tasks that call it. */

typedef struct agt_model agt_model_t;

typedef struct agt_model_ops {
    const char *kind; /* "openai", "guard", ... */
    /* Makes one call (agt_model_generate checked the arguments). out arrives zeroed with
     * backend set to m->name; on failure it must own nothing. */
    int (*generate)(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                    int64_t deadline);
    void (*destroy)(agt_model_t *m);
} agt_model_ops_t;

struct agt_model {
    const agt_model_ops_t *ops;
    char name[64]; /* for logs and agt_model_response_t.backend */
};

/* Asks the model for the next message, in the calling task, bounded by deadline (absolute
 * act_now() ms, -1 none) and by the task's timeout scopes (act_effective_deadline: the
 * query's deadline). With req->on_delta set the answer streams: the callback gets each text
 * piece as it arrives and out->text is their concatenation.
 * Returns: 0 with out filled. Errors: AGT_EMODEL_* (see AGT_MODEL_ERRORS; AGT_EMODEL_TIMEOUT
 * from a named model, agt_model_get, whose own timeout_ms was the nearer bound), ACT_ETIMEDOUT
 * (the caller's deadline, or it could not start before it: the request is aborted),
 * ACT_ECANCELED (the task was cancelled: the request is
 * aborted), ACT_ECIRCUIT (guard: every backend's breaker is open), on_delta's code,
 * ACT_EINVAL (outside a task, NULL arguments, a malformed request), ACT_ENOMEM.
 * Ownership: out's strings and arrays belong to the caller: agt_model_response_free. On
 * failure out owns nothing, but out->error, http_status, attempts... say what happened. */
int agt_model_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                       int64_t deadline);

/* Destroys the model (and for a guard, the backends it owns) and sets *m to NULL. Safe on
 * NULL. No call may be in flight. Call it before the loop is destroyed (HTTP backends close
 * libuv handles). */
void agt_model_destroy(agt_model_t **m);

/* ---- the OpenAI-compatible chat-completions backend (model_openai.c) ----
 * POSTs to <base_url>/chat/completions (base_url includes the version: ".../v1"), as
 * llama.cpp's server, vLLM, Ollama and hosted services accept it. libcurl's multi interface
 * runs on the loop's libuv: nothing blocks the loop thread. */

typedef struct agt_openai_config {
    const char *name;           /* label (NULL: "openai") */
    const char *base_url;       /* NULL: $ACTORBUS_MODEL_BASE_URL */
    const char *model;          /* NULL: $ACTORBUS_MODEL */
    const char *api_key;        /* NULL: $ACTORBUS_MODEL_API_KEY, else $OPENAI_API_KEY; none:
                                   no Authorization header (local servers) */
    size_t max_response;        /* bytes of one response body (0: 8 MiB) */
    size_t max_event;           /* bytes of one streamed event (0: 1 MiB) */
    size_t max_tool_calls;      /* tool calls in one answer (0: 64) */
    int64_t connect_timeout_ms; /* 0: 10 s (the call's deadline bounds it too) */
    bool no_stream_usage;       /* do not ask for usage in streams (stream_options), for servers
                                   that refuse unknown fields */
} agt_openai_config_t;

/* Creates a backend. The strings are copied. It binds to a loop on its first call.
 * Returns: 0. Errors: ACT_EINVAL (no base URL or model, from config or environment),
 * ACT_ENOMEM, ACT_EIO (libcurl would not start).
 * Ownership: *out is the caller's (agt_model_destroy). */
int agt_openai_new(agt_model_t **out, const agt_openai_config_t *cfg);

/* True when the environment names a model server (ACTORBUS_MODEL_BASE_URL and
 * ACTORBUS_MODEL are set), so callers can say how to configure one when it does not. */
bool agt_openai_env_configured(void);

/* ---- the guard (model_guard.c) ----
 * Around every call of each backend: a concurrency semaphore and a requests-per-second
 * token bucket (local to this process; a budget hook lets a cross-worker budget from the
 * broker hold across workers), retries with exponential backoff and jitter on
 * model_rate_limited / model_unavailable (honouring Retry-After; never on cancellation or
 * once text has streamed), a circuit breaker per backend, and a fallback backend used when
 * the primary fails or its breaker is open. */

/* A budget shared with other processes (the broker's, later). acquire blocks the calling
 * task until a request may start (0) or fails with a code (ACT_ETIMEDOUT by the deadline,
 * ACT_ECANCELED); release is called once per successful acquire when the request ends. */
typedef struct agt_model_budget {
    int (*acquire)(void *ctx, const char *backend, int64_t deadline);
    void (*release)(void *ctx, const char *backend, int64_t tokens); /* tokens: the request's
                                    total the server reported (-1: unknown), for a token budget */
    void *ctx;
} agt_model_budget_t;

typedef struct agt_guard_opts {
    const char *name;           /* label (NULL: "guard") */
    long max_concurrency;       /* requests in flight per backend (0: unlimited) */
    double rps;                 /* requests started per second per backend (0: unlimited) */
    int burst;                  /* requests that may start at once after a pause (>= 1) */
    int max_attempts;           /* requests per backend per call (>= 1) */
    int64_t base_delay_ms;      /* backoff after the first failure, doubling after each (>= 0) */
    int64_t max_delay_ms;       /* cap on one backoff (<= 0: none) */
    double jitter;              /* 0..1: fraction of each backoff drawn at random (libactor's
                                   seeded generator, so runs repeat) */
    int64_t max_retry_after_ms; /* a longer Retry-After is not waited for: the call fails */
    int breaker_threshold;      /* consecutive failures that open a breaker (>= 1) */
    int64_t breaker_reset_ms;   /* how long it stays open before one probe may pass (>= 0) */
    const agt_model_budget_t *budget; /* NULL: none (the hook for the broker's budget) */
    /* Called before each backoff sleep: backend, failed attempt (1-based), its code and the
     * wait about to start (the backoff, or the Retry-After when longer). May be NULL. */
    void (*on_retry)(void *ctx, const char *backend, int attempt, int code, int64_t wait_ms);
    void *ctx;
} agt_guard_opts_t;

/* Defaults: 16 in flight, no rps limit (burst 1), 3 attempts, 200 ms backoff doubling to at
 * most 10 s with 20% jitter, Retry-After waited up to 60 s, breaker opening after 5
 * consecutive failures for 30 s. */
void agt_guard_opts_init(agt_guard_opts_t *o);

/* Wraps primary and (may be NULL) fallback. The guard owns them from now on, also when this
 * fails. The fallback is tried when the primary fails with model_unavailable,
 * model_rate_limited, model_bad_response or its breaker is open (never after a timeout, a
 * cancellation, a refused request or streamed text).
 * Breakers count model_unavailable and model_bad_response as failures; a reply of any other
 * kind (429, 4xx) proves the server is up; timeouts and cancellations give no verdict.
 * Returns: 0. Errors: ACT_EINVAL (primary NULL, an option out of range), ACT_ENOMEM.
 * Ownership: *out is the caller's (agt_model_destroy frees the backends too). */
int agt_guard_new(agt_model_t **out, agt_model_t *primary, agt_model_t *fallback,
                  const agt_guard_opts_t *opts); /* opts NULL: defaults */

/* The breaker of the guard's backend i (0 primary, 1 fallback), for status and tests; NULL
 * when out of range or m is not a guard. */
const act_breaker_t *agt_guard_breaker(const agt_model_t *m, int i);

#endif
