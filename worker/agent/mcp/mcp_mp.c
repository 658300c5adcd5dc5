/* mcp_mp.c: the msgpack reading and JSON helpers of mcp_internal.h. The MCP client turns
 * every line the server writes into msgpack with proto's strict JSON parser and reads it
 * through proto's in-place reader (proto_val_*), so nothing the server sends is trusted: each
 * header is checked against the bytes that remain before it is followed. */
#include <stdlib.h>
#include <string.h>

#include "mcp_internal.h"

/* mcp__val_t is proto_val_t with MCP__NONE for "absent" in front of the types, one integer
 * type (big marks those above INT64_MAX) and EXT's bytes seen from its type byte. */
static void to_mcp(const proto_val_t *v, const uint8_t *end, mcp__val_t *out) {
    static const mcp__type_t type_of[] = {
        [PROTO_V_NIL] = MCP__NIL,     [PROTO_V_BOOL] = MCP__BOOL,   [PROTO_V_INT] = MCP__INT,
        [PROTO_V_UINT] = MCP__INT,    [PROTO_V_FLOAT] = MCP__FLOAT, [PROTO_V_STR] = MCP__STR,
        [PROTO_V_BIN] = MCP__BIN,     [PROTO_V_ARRAY] = MCP__ARRAY, [PROTO_V_MAP] = MCP__MAP,
        [PROTO_V_EXT] = MCP__EXT,
    };
    memset(out, 0, sizeof(*out));
    out->type = type_of[v->type];
    out->big = v->type == PROTO_V_UINT;
    out->b = v->b;
    out->i = v->i;
    out->f = v->f;
    out->len = v->len;
    if (v->type == PROTO_V_STR || v->type == PROTO_V_BIN) out->s = (const char *)v->data;
    if (v->type == PROTO_V_EXT) out->s = (const char *)v->data - 1, out->len = v->len + 1;
    out->body = v->body;
    out->raw = v->raw;
    out->raw_n = v->raw_n;
    out->end = end;
}

/* The container a value came from; proto's lookups read only raw and raw_n. */
static proto_val_t from_mcp(const mcp__val_t *v) {
    return (proto_val_t){.raw = v->raw, .raw_n = v->raw_n};
}

bool mcp__read(const uint8_t *p, const uint8_t *end, mcp__val_t *out) {
    proto_val_t v;
    if (!p || end < p || proto_val_read(p, (size_t)(end - p), &v)) {
        memset(out, 0, sizeof(*out));
        return false;
    }
    to_mcp(&v, end, out);
    return true;
}

bool mcp__str_eq(const mcp__val_t *v, const char *s) {
    size_t n = strlen(s);
    return v->type == MCP__STR && v->len == n && (n == 0 || memcmp(v->s, s, n) == 0);
}

void mcp__map_get(const mcp__val_t *m, const char *key, mcp__val_t *out) {
    memset(out, 0, sizeof(*out));
    if (m->type != MCP__MAP) return;
    proto_val_t map = from_mcp(m), v;
    if (proto_val_map_get(&map, key, &v) == 1) to_mcp(&v, m->end, out);
}

bool mcp__array_next(const mcp__val_t *a, const uint8_t **cursor, mcp__val_t *out) {
    if (a->type != MCP__ARRAY || a->len == 0) return false;
    proto_val_t arr = from_mcp(a), v;
    size_t off = *cursor ? (size_t)(*cursor - a->raw) : 0;
    if (proto_val_next(&arr, &off, &v) != 1) return false;
    to_mcp(&v, a->raw + a->raw_n, out);
    *cursor = a->raw + off;
    return true;
}

char *mcp__strdup(const mcp__val_t *v) {
    if (v->type != MCP__STR) return NULL;
    char *s = malloc(v->len + 1);
    if (!s) return NULL;
    memcpy(s, v->s, v->len);
    s[v->len] = 0;
    return s;
}

char *mcp__to_json(const mcp__val_t *v) {
    proto_buf_t b;
    proto_buf_init(&b);
    proto_raw_t raw = {v->raw, v->raw_n};
    if (proto_raw_to_json(raw, &b) != 0) {
        proto_buf_free(&b);
        return NULL;
    }
    return (char *)b.p; /* NUL-terminated by proto_raw_to_json; the caller frees it */
}

int mcp__from_json(const char *json, size_t n, proto_buf_t *out) {
    return proto_json_to_msgpack(json, n, out, NULL);
}
