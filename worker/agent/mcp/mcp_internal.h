/* mcp_internal.h: what the MCP client's files share (mcp__ names, not part of mcp.h): the
 * request primitive of mcp.c that mcp_tools.c builds tools/list and tools/call on, and an
 * in-place msgpack reader (mcp_mp.c, an adapter over proto's proto_val_*: nothing allocated,
 * every length checked against the bytes that remain, no recursion) with JSON helpers. */
#ifndef ACTORBUS_AGENT_MCP_INTERNAL_H
#define ACTORBUS_AGENT_MCP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp.h"
#include "proto/proto.h"

typedef enum mcp__type {
    MCP__NONE, /* absent (a map key not found) */
    MCP__NIL,
    MCP__BOOL,
    MCP__INT,
    MCP__FLOAT,
    MCP__STR,
    MCP__BIN,
    MCP__ARRAY,
    MCP__MAP,
    MCP__EXT,
} mcp__type_t;

typedef struct mcp__val {
    mcp__type_t type;
    bool b;              /* MCP__BOOL */
    bool big;            /* MCP__INT above INT64_MAX (i is not valid) */
    int64_t i;           /* MCP__INT */
    double f;            /* MCP__FLOAT */
    const char *s;       /* MCP__STR, MCP__BIN, MCP__EXT: bytes, not NUL-terminated */
    size_t len;          /* bytes of s; elements of MCP__ARRAY; pairs of MCP__MAP */
    const uint8_t *body; /* MCP__ARRAY, MCP__MAP: the first element */
    const uint8_t *raw;  /* the whole value */
    size_t raw_n;
    const uint8_t *end; /* end of the bytes it was read from */
} mcp__val_t;

/* Reads the value at p (which must end before end). Returns false when malformed. */
bool mcp__read(const uint8_t *p, const uint8_t *end, mcp__val_t *out);
/* The value under a string key of a map; out->type is MCP__NONE when absent or m is no map. */
void mcp__map_get(const mcp__val_t *m, const char *key, mcp__val_t *out);
/* Iterates an array: *cursor starts at NULL. Returns false at the end or on bad bytes. */
bool mcp__array_next(const mcp__val_t *a, const uint8_t **cursor, mcp__val_t *out);
bool mcp__str_eq(const mcp__val_t *v, const char *s);
/* A NUL-terminated copy of an MCP__STR, or NULL (not a string, or out of memory). */
char *mcp__strdup(const mcp__val_t *v);
/* The value as one line of JSON, malloc'd; NULL when out of memory or unconvertible. */
char *mcp__to_json(const mcp__val_t *v);
/* JSON text -> one msgpack value appended to out. Returns 0 or a PROTO_E* code. */
int mcp__from_json(const char *json, size_t n, proto_buf_t *out);

/* ---- the client (mcp.c) ---- */

/* Sends method(params) and waits for its response until deadline (the caller applies
 * call_timeout_ms through mcp__call_deadline). Must run between mcp__enter and mcp__leave.
 * Returns: 0 or MCP_ERPC with *data (malloc'd msgpack of the result, or of the error object)
 * for the caller to free. Errors: as mcp_call_tool. */
int mcp__request(mcp_client_t *c, const char *method, proto_raw_t params, int64_t deadline,
                 uint8_t **data, size_t *n);
/* The earlier of deadline and the client's call_timeout_ms from now. */
int64_t mcp__call_deadline(const mcp_client_t *c, int64_t deadline);
/* Brackets a public call: mcp_client_stop waits until no task is inside one. */
void mcp__enter(mcp_client_t *c);
void mcp__leave(mcp_client_t *c);
/* Logs the JSON-RPC error object data[0..n) the server answered method with. */
void mcp__log_rpc_error(mcp_client_t *c, const char *method, const uint8_t *data, size_t n);
const char *mcp__name(const mcp_client_t *c);
size_t mcp__max_tools(const mcp_client_t *c);
void mcp__tools_listed(mcp_client_t *c); /* clears the tools_changed flag */
/* A log-safe copy of untrusted bytes (quotes, backslashes, control bytes replaced). */
void mcp__sanitize(char *dst, size_t cap, const char *p, size_t n);

#endif
