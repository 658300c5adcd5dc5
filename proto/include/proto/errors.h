/* proto/errors.h: actorbus's own error codes in one table: each C value (negative, one
 * meaning per number) beside the snake_case code that names it on the wire
 * (proto/PROTOCOL.md, "Error codes"). Ranges: errno values and libactor's own codes
 * (-4001..-4099, actor/errors.h); the plugin ABI (-4100..-4199: actorbus/plugin.h repeats
 * them for plugins, and test_errors checks they agree); model calls (-4200..-4299); the MCP
 * client (-4300..-4399). proto_err_code puts every value in one switch, so two codes with one
 * number do not compile. */
#ifndef PROTO_ERRORS_H
#define PROTO_ERRORS_H

/* X(NAME, value, "wire_code", "human text") */
#define PROTO_ABP_ERRORS(X)                                                                   \
    X(ECALL, -4100, "call_failed", "a sub-query ended with an error")                        \
    X(EEOF, -4101, "no_more_calls", "every call has been handed out")

#define PROTO_MODEL_ERRORS(X)                                                                 \
    X(EMODEL_RATE_LIMITED, -4201, "model_rate_limited", "model server is rate limiting")     \
    X(EMODEL_UNAVAILABLE, -4202, "model_unavailable", "model server failed or unreachable")  \
    X(EMODEL_BAD_RESPONSE, -4203, "model_bad_response", "model server's answer not understood") \
    X(EMODEL_BAD_REQUEST, -4204, "model_bad_request", "model server refused the request")    \
    X(EMODEL_UNAUTHORIZED, -4205, "model_unauthorized", "model server refused the credentials") \
    X(EMODEL_TRUNCATED, -4206, "model_truncated", "model's answer was cut by its token limit") \
    X(EMODEL_FILTERED, -4207, "model_filtered", "model's answer was cut by a content filter") \
    X(EMODEL_TIMEOUT, -4208, "model_timeout", "the model call's timeout passed")

#define PROTO_MCP_ERRORS(X)                                                                   \
    X(ESERVER_EXITED, -4301, "mcp_server_exited", "MCP server exited")                       \
    X(EBAD_RESPONSE, -4302, "mcp_bad_response", "MCP server sent a malformed response")      \
    X(ERPC, -4303, "mcp_error", "MCP server returned an error")                              \
    X(EVERSION, -4304, "mcp_unsupported_version", "MCP server speaks no protocol version we know")

#define PROTO_ERRORS(X) PROTO_ABP_ERRORS(X) PROTO_MODEL_ERRORS(X) PROTO_MCP_ERRORS(X)

/* The codes that exist only on the wire (no C value of their own: the broker's, and those the
 * agent runtime derives from a libactor code). With the table above they are every code
 * PROTOCOL.md "Error codes" lists, and the ctest error_codes checks that the two agree.
 * W("wire_code", "human text") */
#define PROTO_WIRE_ERRORS(W)                                                                  \
    W("bad_request", "the message is not a valid request")                                   \
    W("unsupported_version", "the message's version is not 1")                               \
    W("too_large", "the message exceeds the size limit")                                     \
    W("unknown_agent", "no connected worker hosts the agent")                                \
    W("timeout", "the query's deadline passed")                                              \
    W("cancelled", "the query was cancelled")                                                \
    W("worker_lost", "the worker died or went quiet")                                        \
    W("poisoned", "the query's workers were lost too often")                                 \
    W("overloaded", "a queue or in-flight limit is full")                                    \
    W("duplicate_id", "the client has a query in flight with this id")                       \
    W("shutting_down", "the broker is draining")                                             \
    W("unauthorized", "the peer is not allowed to do this")                                  \
    W("not_found", "no such session or worker")                                              \
    W("internal", "a bug, or the session store failed")                                      \
    W("model_circuit_open", "every model backend's breaker is open")                         \
    W("state_rejected", "the session store refused an agent event")

/* The wire code of rc: a code of the table above; for errno values the generic ones
 * ("timeout", "cancelled", "bad_request", "too_large", "overloaded"); 0 gives "ok";
 * anything else "internal". */
const char *proto_err_code(int rc);
/* The human text of a code of the table; NULL for any other code. */
const char *proto_err_text(int rc);
/* Whether code (NUL-terminated) is one of actorbus's own wire codes, of either table.
 * Agents may send codes of their own (e.g. "tool_error"): those are not. */
int proto_err_known(const char *code);

#endif
