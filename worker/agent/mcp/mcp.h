/* mcp.h: a Model Context Protocol client over stdio, on libactor. It starts an MCP server as a
 * child process, speaks JSON-RPC 2.0 to it as newline-delimited JSON (the MCP stdio transport),
 * and lets any number of tasks list and call its tools at once, each waiting for its own
 * response with a deadline. The server's stderr goes to the log, line by line.
 * The server answers in real time: use it on a loop with the real clock (under
 * ACT_LOOP_VIRTUAL_CLOCK every deadline would pass while the server is still working). */
#ifndef ACTORBUS_AGENT_MCP_H
#define ACTORBUS_AGENT_MCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* Codes of this module, beside libactor's (actor/errors.h); all negative, from the project's
 * one table (proto/errors.h). MCP_ESERVER_EXITED: the server died or closed stdout;
 * MCP_EBAD_RESPONSE: a reply that breaks the protocol; MCP_ERPC: a JSON-RPC error answer;
 * MCP_EVERSION: no protocol version in common. mcp_err_code gives the snake_case code an
 * agent reports on the wire (proto/PROTOCOL.md, "Error codes"). */
enum {
#define MCP_ERR_ENUM(name, val, code, text) MCP_##name = (val),
    PROTO_MCP_ERRORS(MCP_ERR_ENUM)
#undef MCP_ERR_ENUM
};

/* The protocol versions this client speaks, newest first; it offers the first. */
#define MCP_PROTOCOL_VERSION "2025-06-18"
/* clang-format off */
#define MCP_PROTOCOL_VERSIONS {"2025-06-18", "2025-03-26", "2024-11-05"}
/* clang-format on */

typedef struct mcp_client mcp_client_t;

/* Called once, on the loop (not in a task), when the server exits or closes its stdout
 * without being asked to (never during mcp_client_stop). exit_status is -1 while unknown
 * (stdout closed first) and term_signal 0 when no signal killed it. It must not block; to
 * restart the server, wake a task that calls mcp_client_stop and mcp_client_start. */
typedef void (*mcp_exit_fn)(mcp_client_t *c, int64_t exit_status, int term_signal, void *ctx);

typedef struct mcp_opts {
    const char *name;             /* label in logs (default: argv[0]) */
    const char *const *argv;      /* REQUIRED, NULL-terminated; argv[0] is looked up in PATH */
    const char *const *env;       /* NULL-terminated "K=V" list; NULL inherits the worker's */
    const char *const *env_add;   /* "K=V" entries added to (or overriding) the above */
    const char *cwd;              /* working directory (NULL: the worker's) */
    const char *protocol_version; /* offered in initialize (default MCP_PROTOCOL_VERSION) */
    const char *client_name;      /* clientInfo.name (default "actorbus") */
    const char *client_version;   /* clientInfo.version (default "0.1") */
    int64_t start_timeout_ms;     /* spawn + initialize handshake (default 30000) */
    int64_t call_timeout_ms;      /* every request's own timeout (default 30000; -1 none) */
    int64_t stop_grace_ms;        /* stop: wait this after closing stdin, and again after
                                   * SIGTERM, before SIGKILL (default 2000) */
    size_t max_line;              /* longest line accepted from the server (default 4 MiB); a
                                   * longer one is skipped, and the call it answered times out */
    size_t max_pending;           /* requests in flight at once (default 256) */
    size_t max_tools;             /* tools accepted from tools/list (default 1024) */
    unsigned stderr_lines_per_s;  /* stderr lines logged per second, rest counted (default 50) */
    mcp_exit_fn on_exit;          /* optional: unexpected exit */
    void *on_exit_ctx;
} mcp_opts_t;

/* One tool as listed by the server. Strings are NUL-terminated copies. */
typedef struct mcp_tool {
    char *name;         /* unique name to call it by */
    char *description;  /* "" when the server gave none */
    char *input_schema; /* JSON Schema of the arguments, as one line of JSON text */
} mcp_tool_t;

/* Counters, for tests and monitoring. */
typedef struct mcp_stats {
    uint64_t requests;       /* requests sent */
    uint64_t responses;      /* responses matched to a waiting request */
    uint64_t late;           /* responses to no waiting request (after a timeout) */
    uint64_t bad_lines;      /* stdout lines skipped: not JSON, not a message, too long */
    uint64_t notifications;  /* notifications and requests received from the server */
    uint64_t cancelled;      /* notifications/cancelled sent */
    uint64_t stderr_lines;   /* stderr lines seen (logged or dropped) */
    uint64_t stderr_dropped; /* stderr lines over the rate, not logged */
} mcp_stats_t;

/* Starts the server (opts->argv with env and cwd), performs the initialize handshake (the
 * `initialize` request, then the `notifications/initialized` notification) and returns a
 * ready client. Must be called in a task; waits at most start_timeout_ms and the task's
 * deadline. Ignores SIGPIPE process-wide if it still has its default action (a server that
 * dies would otherwise kill the worker on the next write).
 * Returns: 0.
 * Errors: ACT_EINVAL (no argv, not in a task), ACT_ENOMEM, ACT_ENOENT / ACT_EPERM (the program
 * cannot be run; other spawn failures as -errno), ACT_ETIMEDOUT, ACT_ECANCELED,
 * MCP_ESERVER_EXITED, MCP_EBAD_RESPONSE, MCP_ERPC (the server refused initialize),
 * MCP_EVERSION. On an error the server, if it started, has been stopped.
 * Ownership: *out belongs to the caller; free it with mcp_client_stop. opts and the strings it
 * points to are copied. */
int mcp_client_start(mcp_client_t **out, const mcp_opts_t *opts);

/* Shuts the server down and frees the client: fails every request still waiting with
 * ACT_ECLOSED and waits for those callers to leave, closes the server's stdin, waits up to
 * stop_grace_ms for it to exit, then sends SIGTERM, waits again, then SIGKILL; reaps it (no
 * zombie) and closes the pipes. The server runs in its own process group (session), and the
 * signals go to the whole group, so the children of a wrapper such as npx end with it.
 * Must be called in a task; it is shielded from the task's cancellation and deadlines, so it
 * always completes. Sets *c to NULL; safe on NULL.
 * Returns: 0 when the server exited by itself after stdin closed (or had already exited),
 * 1 after SIGTERM, 2 after SIGKILL. Errors: ACT_EINVAL (not in a task). */
int mcp_client_stop(mcp_client_t **c);

/* Lists the server's tools (`tools/list`, following nextCursor across pages). Entries without
 * a string name, and later entries repeating a name, are skipped (and logged); inputSchema
 * defaults to {"type":"object"}. Like every call on a client, it may run in several tasks at
 * once, and must not start after mcp_client_stop returned (the client is freed then).
 * Returns: 0 with *tools (n entries, maybe 0).
 * Errors: ACT_EINVAL (not in a task), ACT_ETIMEDOUT (deadline or call_timeout_ms per page),
 * ACT_ECANCELED, ACT_ECLOSED
 * (the client is stopping), ACT_EAGAIN (max_pending requests in flight), ACT_ENOMEM,
 * MCP_ESERVER_EXITED, MCP_EBAD_RESPONSE (malformed page, more than max_tools tools or endless
 * pagination), MCP_ERPC.
 * Ownership: *tools belongs to the caller: free it with mcp_tools_free. NULL on an error. */
int mcp_list_tools(mcp_client_t *c, mcp_tool_t **tools, size_t *n, int64_t deadline);

/* Frees a list from mcp_list_tools and sets *tools to NULL. Safe on NULL. */
void mcp_tools_free(mcp_tool_t **tools, size_t n);

/* Calls a tool (`tools/call` {name, arguments}). args_json is a JSON object, or NULL / "" for
 * {}. Waits for the response until deadline (absolute act_now() ms; -1 none, 0 poll) or
 * call_timeout_ms, whichever is first; on a timeout or a cancellation it sends
 * `notifications/cancelled` for the request, and a response that arrives later is dropped.
 * Returns: 0 with *result_json = the result object as one line of JSON ({"content": [...],
 * "isError": ...}, plus structuredContent when the server sent it) and *is_error =
 * result.isError (a tool that failed is a successful call with is_error true).
 * Errors: ACT_EINVAL (name empty, args_json not a JSON object, not in a task), ACT_EMSGSIZE
 * (request longer than max_line), ACT_ETIMEDOUT, ACT_ECANCELED, ACT_ECLOSED, ACT_EAGAIN,
 * ACT_ENOMEM, MCP_ESERVER_EXITED, MCP_EBAD_RESPONSE (result is not an object), MCP_ERPC (then
 * *result_json is the JSON-RPC error object {"code": ..., "message": ...}).
 * Ownership: *result_json is malloc'd, the caller frees it; NULL on every other error. */
int mcp_call_tool(mcp_client_t *c, const char *name, const char *args_json, char **result_json,
                  bool *is_error, int64_t deadline);

/* Joins the text of every {"type":"text"} item of a tools/call result with newlines.
 * Returns: 0 with *text (malloc'd, maybe ""). Errors: ACT_EINVAL (not a result object),
 * ACT_ENOMEM. */
int mcp_result_text(const char *result_json, char **text);

/* The server's process id (0 once it has been reaped). */
int mcp_client_pid(const mcp_client_t *c);
/* False once the server has exited or closed its stdout. */
bool mcp_client_alive(const mcp_client_t *c);
/* The protocol version agreed in initialize, and the server's serverInfo as JSON ("{}"). */
const char *mcp_client_protocol(const mcp_client_t *c);
const char *mcp_client_server_info(const mcp_client_t *c);
/* True once the server sent notifications/tools/list_changed since the last mcp_list_tools. */
bool mcp_client_tools_changed(const mcp_client_t *c);
void mcp_client_stats(const mcp_client_t *c, mcp_stats_t *out);

/* The snake_case wire code for a code from this module or libactor ("timeout", "cancelled",
 * "mcp_server_exited", "mcp_bad_response", "mcp_error", ...), and a human text. */
const char *mcp_err_code(int code);
const char *mcp_strerror(int code);

#endif
