/* mcp_tools.c: the tool calls of the MCP client: tools/list across pages into mcp_tool_t,
 * tools/call with its arguments and result as JSON, and the text of a result. Built on
 * mcp__request (mcp.c); every reply is validated before anything is taken from it. */
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "mcp_internal.h"

void mcp_tools_free(mcp_tool_t **tools, size_t n) {
    if (!tools || !*tools) return;
    for (size_t i = 0; i < n; i++) {
        free((*tools)[i].name);
        free((*tools)[i].description);
        free((*tools)[i].input_schema);
    }
    free(*tools);
    *tools = NULL;
}

typedef struct toolvec {
    mcp_tool_t *v;
    size_t n, cap;
} toolvec;

/* Appends one tools/list entry. Returns 0 (also for a skipped entry) or ACT_ENOMEM. */
static int add_tool(mcp_client_t *c, toolvec *tv, const mcp__val_t *t) {
    mcp__val_t name, desc, schema;
    mcp__map_get(t, "name", &name);
    if (name.type != MCP__STR || name.len == 0 || memchr(name.s, 0, name.len)) {
        act_log(ACT_LOG_WARN, "mcp_bad_tool", "server=%s reason=no_name", mcp__name(c));
        return 0;
    }
    for (size_t i = 0; i < tv->n; i++) {
        if (strlen(tv->v[i].name) == name.len && memcmp(tv->v[i].name, name.s, name.len) == 0) {
            act_log(ACT_LOG_WARN, "mcp_bad_tool", "server=%s reason=duplicate", mcp__name(c));
            return 0; /* the first of a name wins: calls by name must be unambiguous */
        }
    }
    mcp__map_get(t, "description", &desc);
    mcp__map_get(t, "inputSchema", &schema);
    if (tv->n == tv->cap) {
        size_t cap = tv->cap ? 2 * tv->cap : 16;
        mcp_tool_t *nv = realloc(tv->v, cap * sizeof(*nv));
        if (!nv) return ACT_ENOMEM;
        tv->v = nv;
        tv->cap = cap;
    }
    mcp_tool_t *out = &tv->v[tv->n];
    out->name = mcp__strdup(&name);
    out->description = desc.type == MCP__STR ? mcp__strdup(&desc) : strdup("");
    out->input_schema =
        schema.type == MCP__MAP ? mcp__to_json(&schema) : strdup("{\"type\":\"object\"}");
    tv->n++; /* counted even when a copy failed, so mcp_tools_free frees the rest */
    if (!out->name || !out->description || !out->input_schema) return ACT_ENOMEM;
    return 0;
}

/* Reads one page: its tools into tv, its nextCursor into *next (malloc'd, NULL at the end). */
static int take_page(mcp_client_t *c, const uint8_t *d, size_t n, toolvec *tv, char **next) {
    mcp__val_t r, tools, cur, t;
    *next = NULL;
    if (!mcp__read(d, d + n, &r) || r.type != MCP__MAP) return MCP_EBAD_RESPONSE;
    mcp__map_get(&r, "tools", &tools);
    mcp__map_get(&r, "nextCursor", &cur);
    if (tools.type != MCP__ARRAY) return MCP_EBAD_RESPONSE;
    if (tools.len > mcp__max_tools(c) - tv->n) {
        act_log(ACT_LOG_WARN, "mcp_too_many_tools", "server=%s max=%zu", mcp__name(c),
                mcp__max_tools(c));
        return MCP_EBAD_RESPONSE;
    }
    const uint8_t *it = NULL;
    while (mcp__array_next(&tools, &it, &t)) {
        int rc = add_tool(c, tv, &t);
        if (rc) return rc;
    }
    if (cur.type == MCP__STR && cur.len > 0) {
        *next = mcp__strdup(&cur);
        return *next ? 0 : ACT_ENOMEM;
    }
    return (cur.type == MCP__NONE || cur.type == MCP__NIL || cur.type == MCP__STR)
               ? 0
               : MCP_EBAD_RESPONSE;
}

/* One tools/list request, with {"cursor": cursor} when cursor is not NULL. */
static int list_page(mcp_client_t *c, const char *cursor, int64_t deadline, uint8_t **d,
                     size_t *n) {
    proto_buf_t p;
    proto_buf_init(&p);
    if (cursor) {
        msgpack_pack_map(&p.pk, 1);
        proto_pack_cstr(&p, "cursor");
        proto_pack_cstr(&p, cursor);
    }
    int rc = p.failed ? ACT_ENOMEM
                      : mcp__request(c, "tools/list", (proto_raw_t){p.p, p.n},
                                     mcp__call_deadline(c, deadline), d, n);
    proto_buf_free(&p);
    return rc;
}

int mcp_list_tools(mcp_client_t *c, mcp_tool_t **tools, size_t *n, int64_t deadline) {
    toolvec tv = {0};
    char *cursor = NULL, *next = NULL;
    int rc = 0;
    *tools = NULL;
    *n = 0;
    mcp__enter(c);
    mcp__tools_listed(c);
    /* A page may be empty, but pages without end are a broken server. */
    for (size_t page = 0; rc == 0; page++) {
        uint8_t *d = NULL;
        size_t dn = 0;
        rc = page > mcp__max_tools(c) + 16 ? MCP_EBAD_RESPONSE
                                           : list_page(c, cursor, deadline, &d, &dn);
        if (rc == MCP_ERPC) mcp__log_rpc_error(c, "tools/list", d, dn);
        if (rc == 0) rc = take_page(c, d, dn, &tv, &next);
        free(d);
        if (rc == 0 && next && cursor && strcmp(next, cursor) == 0) rc = MCP_EBAD_RESPONSE;
        free(cursor);
        cursor = next;
        next = NULL;
        if (!cursor) break;
    }
    free(cursor);
    mcp__leave(c);
    if (rc) {
        mcp_tools_free(&tv.v, tv.n);
        return rc;
    }
    *tools = tv.v;
    *n = tv.n;
    return 0;
}

/* The arguments object as msgpack: {} for NULL or blank text, else a JSON object. */
static int pack_args(const char *args_json, proto_buf_t *out) {
    size_t n = args_json ? strlen(args_json) : 0;
    size_t i = 0;
    while (i < n && strchr(" \t\r\n", args_json[i]))
        i++;
    if (i == n) {
        msgpack_pack_map(&out->pk, 0);
        return out->failed ? ACT_ENOMEM : 0;
    }
    size_t start = out->n;
    int rc = mcp__from_json(args_json, n, out);
    if (rc) return rc == PROTO_ENOMEM ? ACT_ENOMEM : ACT_EINVAL;
    mcp__val_t v;
    if (!mcp__read(out->p + start, out->p + out->n, &v) || v.type != MCP__MAP) return ACT_EINVAL;
    return 0;
}

/* The result of tools/call: an object, handed back as JSON with its isError flag. */
static int take_call_result(const uint8_t *d, size_t n, char **json, bool *is_error) {
    mcp__val_t r, err;
    if (!mcp__read(d, d + n, &r) || r.type != MCP__MAP) return MCP_EBAD_RESPONSE;
    mcp__map_get(&r, "isError", &err);
    if (is_error) *is_error = err.type == MCP__BOOL && err.b;
    *json = mcp__to_json(&r);
    return *json ? 0 : ACT_ENOMEM;
}

int mcp_call_tool(mcp_client_t *c, const char *name, const char *args_json, char **result_json,
                  bool *is_error, int64_t deadline) {
    *result_json = NULL;
    if (is_error) *is_error = false;
    if (!name || !*name) return ACT_EINVAL;
    proto_buf_t p;
    proto_buf_init(&p);
    msgpack_pack_map(&p.pk, 2);
    proto_pack_cstr(&p, "name");
    proto_pack_cstr(&p, name);
    proto_pack_cstr(&p, "arguments");
    int rc = pack_args(args_json, &p);
    if (rc) goto out_free_params;
    uint8_t *d = NULL;
    size_t n = 0;
    mcp__enter(c);
    int64_t dl = mcp__call_deadline(c, deadline);
    rc = mcp__request(c, "tools/call", (proto_raw_t){p.p, p.n}, dl, &d, &n);
    if (rc == 0) {
        rc = take_call_result(d, n, result_json, is_error);
        if (rc == MCP_EBAD_RESPONSE)
            act_log(ACT_LOG_WARN, "mcp_bad_response", "server=%s method=tools/call tool=%s",
                    mcp__name(c), name);
    } else if (rc == MCP_ERPC) {
        mcp__val_t e;
        mcp__log_rpc_error(c, "tools/call", d, n);
        *result_json = mcp__read(d, d + n, &e) ? mcp__to_json(&e) : NULL;
        if (!*result_json) rc = ACT_ENOMEM;
    }
    mcp__leave(c);
    free(d);
out_free_params:
    proto_buf_free(&p);
    return rc;
}

int mcp_result_text(const char *result_json, char **text) {
    proto_buf_t mp, out;
    proto_buf_init(&mp);
    proto_buf_init(&out);
    *text = NULL;
    mcp__val_t r, content, item, type, t;
    int rc = ACT_EINVAL;
    if (!result_json || mcp__from_json(result_json, strlen(result_json), &mp) != 0 ||
        !mcp__read(mp.p, mp.p + mp.n, &r) || r.type != MCP__MAP)
        goto out_free;
    mcp__map_get(&r, "content", &content);
    const uint8_t *it = NULL;
    bool first = true;
    while (mcp__array_next(&content, &it, &item)) {
        mcp__map_get(&item, "type", &type);
        mcp__map_get(&item, "text", &t);
        if (!mcp__str_eq(&type, "text") || t.type != MCP__STR) continue;
        if (!first) proto_buf_raw(&out, (proto_raw_t){(const uint8_t *)"\n", 1});
        proto_buf_raw(&out, (proto_raw_t){(const uint8_t *)t.s, t.len});
        first = false;
    }
    proto_buf_raw(&out, (proto_raw_t){(const uint8_t *)"", 1}); /* the NUL */
    rc = out.failed ? ACT_ENOMEM : 0;
    if (rc == 0) {
        *text = (char *)out.p;
        proto_buf_init(&out); /* ownership moved to *text */
    }
out_free:
    proto_buf_free(&mp);
    proto_buf_free(&out);
    return rc;
}
