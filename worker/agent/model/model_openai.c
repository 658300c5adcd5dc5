/* model_openai.c: the OpenAI-compatible chat-completions backend (see model.h). The request
 * is packed as msgpack and written out as JSON with proto's converter; the reply is read
 * incrementally as it arrives (http.c hands body bytes to the calling task): a stream as
 * server-sent events (`data:` lines, `[DONE]`), with tool calls assembled from their
 * deltas by index, or a plain JSON body. Every size is bounded (body, event, tool calls). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "model.h"
#include "proto/proto.h"

#define DEFAULT_MAX_RESPONSE (8u << 20)
#define DEFAULT_MAX_EVENT (1u << 20)
#define DEFAULT_MAX_TOOL_CALLS 64
#define ERROR_BODY_KEEP 4096 /* bytes of an error reply kept for the message */

typedef struct oa {
    agt_model_t base;
    char *url; /* <base_url>/chat/completions */
    char *model;
    char *auth; /* "Authorization: Bearer ..." or NULL */
    size_t max_response, max_event, max_tool_calls;
    int64_t connect_timeout_ms;
    bool stream_usage;
    agt_http_t *http;
} oa_t;

typedef struct sbuf {
    char *p; /* NUL-terminated once anything was added */
    size_t n, cap;
} sbuf_t;

typedef struct tc_acc {
    sbuf_t id, name, args;
    bool used;
} tc_acc_t;

enum { MODE_UNSET, MODE_SSE, MODE_JSON, MODE_ERROR };

/* One call's parse state. */
typedef struct call {
    oa_t *b;
    const agt_model_request_t *req;
    agt_model_response_t *out;
    int mode;
    sbuf_t body;   /* JSON or error reply */
    sbuf_t line;   /* SSE: the line being read */
    sbuf_t data;   /* SSE: the current event's data */
    bool has_data; /* a data: line was seen for the current event */
    bool done;     /* [DONE] came */
    sbuf_t text;
    tc_acc_t *tc;
    size_t ntc;
    char *finish, *model;
    agt_usage_t usage;
} call_t;

static int sb_add(sbuf_t *b, const char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return ACT_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static char *sb_take(sbuf_t *b) {
    char *p = b->p ? b->p : calloc(1, 1);
    *b = (sbuf_t){0};
    return p;
}

__attribute__((format(printf, 3, 4))) static int fail(call_t *c, int code, const char *fmt, ...) {
    if (!c->out->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->out->error, sizeof(c->out->error), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- reading JSON (as msgpack objects) ---- */

static const msgpack_object *get(const msgpack_object *m, const char *key) {
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool is_str(const msgpack_object *o) { return o && o->type == MSGPACK_OBJECT_STR; }

static char *dup_str(const msgpack_object *o) {
    char *s = malloc(o->via.str.size + 1);
    if (s) {
        memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = 0;
    }
    return s;
}

static bool get_int(const msgpack_object *o, int64_t *v) {
    if (!o) return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

/* Parses JSON text into *u; the objects point into *mp, so both live until freed. */
static int parse_json(call_t *c, const char *s, size_t n, proto_buf_t *mp, msgpack_unpacked *u) {
    proto_error_t perr;
    int rc = proto_json_to_msgpack(s, n, mp, &perr);
    if (rc == PROTO_ENOMEM) return ACT_ENOMEM;
    if (rc) return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply is not JSON: %s", perr.message);
    size_t off = 0;
    if (msgpack_unpack_next(u, (const char *)mp->p, mp->n, &off) != MSGPACK_UNPACK_SUCCESS)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply nested too deeply");
    if (u->data.type != MSGPACK_OBJECT_MAP)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply is not a JSON object");
    return 0;
}

/* Writes a JSON value held as a msgpack object back as JSON text (tool arguments that a
 * server sent as an object instead of a string). */
static int obj_to_json(const msgpack_object *o, sbuf_t *out) {
    proto_buf_t mp, js;
    proto_buf_init(&mp);
    proto_buf_init(&js);
    msgpack_pack_object(&mp.pk, *o);
    int rc = mp.failed ? PROTO_ENOMEM : proto_raw_to_json((proto_raw_t){mp.p, mp.n}, &js);
    if (rc == 0) rc = sb_add(out, (const char *)js.p, js.n);
    proto_buf_free(&mp);
    proto_buf_free(&js);
    return rc == PROTO_ENOMEM ? ACT_ENOMEM : rc ? ACT_EINVAL : 0;
}

/* ---- applying what the server said ---- */

/* The accumulator of tool call `index` (already checked against max_tool_calls). */
static tc_acc_t *tool_slot(call_t *c, size_t index) {
    if (index >= c->ntc) {
        tc_acc_t *n = realloc(c->tc, (index + 1) * sizeof(*n));
        if (!n) return NULL;
        memset(n + c->ntc, 0, (index + 1 - c->ntc) * sizeof(*n));
        c->tc = n;
        c->ntc = index + 1;
    }
    c->tc[index].used = true;
    return &c->tc[index];
}

/* One tool call, whole (a reply's message) or a delta of one (a stream's chunk): id and
 * name are set once, arguments append. */
static int apply_tool_call(call_t *c, const msgpack_object *o, int64_t index) {
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "tool call is not an object");
    int64_t i = index;
    get_int(get(o, "index"), &i);
    if (i < 0 || (uint64_t)i >= c->b->max_tool_calls)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "tool call index %lld out of range (max %zu)",
                    (long long)i, c->b->max_tool_calls);
    tc_acc_t *t = tool_slot(c, (size_t)i);
    if (!t) return ACT_ENOMEM;
    const msgpack_object *id = get(o, "id"), *fn = get(o, "function");
    const msgpack_object *name = get(fn, "name"), *args = get(fn, "arguments");
    int rc = 0;
    if (is_str(id) && id->via.str.size && t->id.n == 0)
        rc = sb_add(&t->id, id->via.str.ptr, id->via.str.size);
    if (!rc && is_str(name) && name->via.str.size && t->name.n == 0)
        rc = sb_add(&t->name, name->via.str.ptr, name->via.str.size);
    if (!rc && is_str(args))
        rc = sb_add(&t->args, args->via.str.ptr, args->via.str.size);
    else if (!rc && args && args->type != MSGPACK_OBJECT_NIL)
        rc = obj_to_json(args, &t->args);
    return rc == ACT_EINVAL ? fail(c, AGT_EMODEL_BAD_RESPONSE, "bad tool call arguments") : rc;
}

static int apply_tool_calls(call_t *c, const msgpack_object *arr) {
    if (!arr || arr->type == MSGPACK_OBJECT_NIL) return 0;
    if (arr->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "tool_calls is not an array");
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        int rc = apply_tool_call(c, &arr->via.array.ptr[i], (int64_t)i);
        if (rc) return rc;
    }
    return 0;
}

static int add_text(call_t *c, const msgpack_object *content, bool stream) {
    if (!is_str(content) || content->via.str.size == 0) return 0;
    if (sb_add(&c->text, content->via.str.ptr, content->via.str.size)) return ACT_ENOMEM;
    if (!stream || !c->req->on_delta) return 0;
    c->out->deltas++;
    int rc = c->req->on_delta(c->req->ctx, content->via.str.ptr, content->via.str.size);
    return rc ? fail(c, rc, "streaming callback stopped the call (%s)", act_err_name(rc)) : 0;
}

/* An error object in a stream or a 200 reply ({"error": {"message", "type", "code"}}):
 * coded by its type and code as its HTTP status would be (agt_model_error_kind), so a rate
 * limit mid-stream is retried like a 429 and a refused key is not retried at all. */
static int error_object(call_t *c, const msgpack_object *err) {
    const msgpack_object *msg = get(err, "message"), *type = get(err, "type");
    const msgpack_object *code = get(err, "code");
    int64_t num = -1;
    if (!get_int(code, &num)) num = -1;
    if (!is_str(type) && !is_str(code) && num < 0) get_int(get(err, "status"), &num);
    int kind = agt_model_error_kind(is_str(type) ? type->via.str.ptr : NULL,
                                    is_str(type) ? type->via.str.size : 0,
                                    is_str(code) ? code->via.str.ptr : NULL,
                                    is_str(code) ? code->via.str.size : 0, num);
    if (is_str(err)) /* {"error": "text"}: some servers */
        return fail(c, AGT_EMODEL_UNAVAILABLE, "model server error: %.*s",
                    (int)err->via.str.size, err->via.str.ptr);
    return fail(c, kind, "model server error (%.*s): %.*s",
                is_str(type) ? (int)type->via.str.size : 7,
                is_str(type) ? type->via.str.ptr : "no type",
                is_str(msg) ? (int)msg->via.str.size : 7,
                is_str(msg) ? msg->via.str.ptr : "unknown");
}

/* Fields any reply or chunk may carry: the model's name, usage, an error. */
static int apply_common(call_t *c, const msgpack_object *root) {
    const msgpack_object *err = get(root, "error");
    if (err && err->type != MSGPACK_OBJECT_NIL) return error_object(c, err);
    const msgpack_object *model = get(root, "model");
    if (is_str(model) && !c->model && !(c->model = dup_str(model))) return ACT_ENOMEM;
    const msgpack_object *u = get(root, "usage");
    if (u && u->type == MSGPACK_OBJECT_MAP) {
        get_int(get(u, "prompt_tokens"), &c->usage.prompt_tokens);
        get_int(get(u, "completion_tokens"), &c->usage.completion_tokens);
        get_int(get(u, "total_tokens"), &c->usage.total_tokens);
    }
    return 0;
}

/* The choice we read: index 0, else the first. */
static const msgpack_object *first_choice(const msgpack_object *root) {
    const msgpack_object *ch = get(root, "choices");
    if (!ch || ch->type != MSGPACK_OBJECT_ARRAY) return NULL;
    for (uint32_t i = 0; i < ch->via.array.size; i++) {
        int64_t idx = 0;
        if (!get_int(get(&ch->via.array.ptr[i], "index"), &idx) || idx == 0)
            return &ch->via.array.ptr[i];
    }
    return NULL;
}

static int set_finish(call_t *c, const msgpack_object *choice) {
    const msgpack_object *fr = get(choice, "finish_reason");
    if (!is_str(fr)) return 0;
    free(c->finish);
    return (c->finish = dup_str(fr)) ? 0 : ACT_ENOMEM;
}

/* One streamed chunk (chat.completion.chunk). */
static int apply_chunk(call_t *c, const msgpack_object *root) {
    int rc = apply_common(c, root);
    if (rc) return rc;
    const msgpack_object *choice = first_choice(root);
    if (!choice) return 0; /* e.g. the usage-only chunk at the end */
    const msgpack_object *delta = get(choice, "delta");
    if ((rc = add_text(c, get(delta, "content"), true))) return rc;
    if ((rc = apply_tool_calls(c, get(delta, "tool_calls")))) return rc;
    return set_finish(c, choice);
}

/* A whole reply (chat.completion). */
static int apply_reply(call_t *c, const msgpack_object *root) {
    int rc = apply_common(c, root);
    if (rc) return rc;
    const msgpack_object *choice = first_choice(root);
    const msgpack_object *msg = get(choice, "message");
    if (!msg || msg->type != MSGPACK_OBJECT_MAP)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply has no choices[0].message");
    if ((rc = add_text(c, get(msg, "content"), false))) return rc;
    if ((rc = apply_tool_calls(c, get(msg, "tool_calls")))) return rc;
    return set_finish(c, choice);
}

typedef int (*apply_fn)(call_t *c, const msgpack_object *root);

static int apply_json(call_t *c, const char *s, size_t n, apply_fn fn) {
    proto_buf_t mp;
    msgpack_unpacked u;
    proto_buf_init(&mp);
    msgpack_unpacked_init(&u);
    int rc = parse_json(c, s, n, &mp, &u);
    if (rc == 0) rc = fn(c, &u.data);
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&mp);
    return rc;
}

/* ---- server-sent events ---- */

static int sse_dispatch(call_t *c) {
    if (!c->has_data) return 0;
    c->has_data = false;
    sbuf_t *d = &c->data;
    int rc = 0;
    if (c->done) {
        /* after [DONE]: ignored */
    } else if (d->n == 6 && memcmp(d->p, "[DONE]", 6) == 0) {
        c->done = true;
    } else {
        rc = apply_json(c, d->p, d->n, apply_chunk);
    }
    d->n = 0;
    return rc;
}

static int sse_line(call_t *c, const char *l, size_t n) {
    if (n && l[n - 1] == '\r') n--;
    if (n == 0) return sse_dispatch(c);
    if (l[0] == ':') return 0; /* comment (keep-alive) */
    const char *colon = memchr(l, ':', n);
    size_t name_n = colon ? (size_t)(colon - l) : n;
    if (name_n != 4 || memcmp(l, "data", 4) != 0) return 0; /* event:, id:, retry: */
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ') v++;
    size_t vn = (size_t)(l + n - v);
    if (c->data.n + vn + 1 > c->b->max_event)
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "streamed event over %zu bytes", c->b->max_event);
    if (c->has_data && sb_add(&c->data, "\n", 1)) return ACT_ENOMEM;
    c->has_data = true;
    return sb_add(&c->data, v, vn);
}

static int sse_feed(call_t *c, const char *p, size_t n) {
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (c->line.n + k > c->b->max_event)
            return fail(c, AGT_EMODEL_BAD_RESPONSE, "streamed line over %zu bytes",
                        c->b->max_event);
        if (sb_add(&c->line, p, k)) return ACT_ENOMEM;
        if (!nl) break;
        int rc = sse_line(c, c->line.p, c->line.n);
        c->line.n = 0;
        if (rc) return rc;
        p += k + 1;
        n -= k + 1;
    }
    return 0;
}

/* ---- the reply as it arrives, and its conclusion ---- */

static int on_body(void *ctx, const agt_http_resp_t *r, const char *p, size_t n) {
    call_t *c = ctx;
    if (c->mode == MODE_UNSET) {
        if (r->status < 200 || r->status > 299)
            c->mode = MODE_ERROR;
        else if (strncasecmp(r->content_type, "text/event-stream", 17) == 0)
            c->mode = MODE_SSE;
        else
            c->mode = MODE_JSON; /* also a server that ignored "stream": true */
    }
    if (c->mode == MODE_SSE) return sse_feed(c, p, n);
    if (c->mode == MODE_ERROR && c->body.n + n > ERROR_BODY_KEEP) {
        n = c->body.n < ERROR_BODY_KEEP ? ERROR_BODY_KEEP - c->body.n : 0;
    }
    return sb_add(&c->body, p, n);
}

/* The code for an HTTP error status. */
static int status_code(long s) {
    if (s == 429) return AGT_EMODEL_RATE_LIMITED;
    if (s == 401 || s == 403) return AGT_EMODEL_UNAUTHORIZED;
    if (s == 408 || s >= 500) return AGT_EMODEL_UNAVAILABLE;
    if (s >= 400) return AGT_EMODEL_BAD_REQUEST;
    return AGT_EMODEL_BAD_RESPONSE;
}

/* The error's own message when the body is OpenAI's {"error": {"message": ...}}. */
static int http_error(call_t *c, long status) {
    int code = status_code(status);
    char msg[200] = "";
    proto_buf_t mp;
    msgpack_unpacked u;
    proto_buf_init(&mp);
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (c->body.n && proto_json_to_msgpack(c->body.p, c->body.n, &mp, NULL) == 0 &&
        msgpack_unpack_next(&u, (const char *)mp.p, mp.n, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *m = get(get(&u.data, "error"), "message");
        if (is_str(m)) snprintf(msg, sizeof(msg), "%.*s", (int)m->via.str.size, m->via.str.ptr);
    }
    if (!msg[0] && c->body.n) {
        size_t i, n = c->body.n < sizeof(msg) - 1 ? c->body.n : sizeof(msg) - 1;
        for (i = 0; i < n; i++)
            msg[i] = (c->body.p[i] >= 0x20 && c->body.p[i] < 0x7f) ? c->body.p[i] : ' ';
        msg[i] = 0;
    }
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&mp);
    return fail(c, code, "HTTP %ld from model server: %s", status, msg[0] ? msg : "(no body)");
}

/* Moves the assembled tool calls into the response. */
static int take_tool_calls(call_t *c) {
    agt_model_response_t *out = c->out;
    size_t n = 0;
    for (size_t i = 0; i < c->ntc; i++)
        n += c->tc[i].used;
    if (!n) return 0;
    out->tool_calls = calloc(n, sizeof(*out->tool_calls));
    if (!out->tool_calls) return ACT_ENOMEM;
    for (size_t i = 0; i < c->ntc; i++) {
        tc_acc_t *t = &c->tc[i];
        if (!t->used) continue;
        if (t->name.n == 0) return fail(c, AGT_EMODEL_BAD_RESPONSE, "tool call without a name");
        agt_tool_call_t *o = &out->tool_calls[out->n_tool_calls++];
        if (t->id.n == 0) {
            char id[32];
            snprintf(id, sizeof(id), "call_%zu", i);
            if (sb_add(&t->id, id, strlen(id))) return ACT_ENOMEM;
        }
        if (t->args.n == 0 && sb_add(&t->args, "{}", 2)) return ACT_ENOMEM;
        o->id = sb_take(&t->id);
        o->name = sb_take(&t->name);
        o->arguments = sb_take(&t->args);
        if (!o->id || !o->name || !o->arguments) return ACT_ENOMEM;
        proto_buf_t mp;
        proto_buf_init(&mp);
        if (proto_json_to_msgpack(o->arguments, strlen(o->arguments), &mp, NULL) == 0) {
            o->args = mp.p; /* the buffer becomes the response's */
            o->args_len = mp.n;
        } else {
            proto_buf_free(&mp); /* not JSON: the tool sees the text and decides */
        }
    }
    return 0;
}

static int conclude(call_t *c, const agt_http_resp_t *r) {
    int rc;
    if (c->mode == MODE_UNSET)
        c->mode = r->status >= 200 && r->status <= 299 ? MODE_JSON : MODE_ERROR;
    if (c->mode == MODE_ERROR) return http_error(c, r->status);
    if (c->mode == MODE_JSON) {
        if (c->body.n == 0) return fail(c, AGT_EMODEL_BAD_RESPONSE, "empty model reply");
        if ((rc = apply_json(c, c->body.p, c->body.n, apply_reply))) return rc;
    } else {
        if (c->line.n && (rc = sse_line(c, c->line.p, c->line.n))) return rc;
        if ((rc = sse_dispatch(c))) return rc;
        if (!c->done && !c->finish)
            return fail(c, AGT_EMODEL_BAD_RESPONSE, "stream ended before [DONE]");
    }
    agt_model_response_t *out = c->out;
    if ((rc = take_tool_calls(c))) return rc;
    out->text_len = c->text.n;
    out->text = sb_take(&c->text);
    out->finish_reason = c->finish;
    out->model = c->model;
    c->finish = c->model = NULL;
    out->usage = c->usage;
    return out->text ? 0 : ACT_ENOMEM;
}

static void call_free(call_t *c) {
    free(c->body.p);
    free(c->line.p);
    free(c->data.p);
    free(c->text.p);
    for (size_t i = 0; i < c->ntc; i++) {
        free(c->tc[i].id.p);
        free(c->tc[i].name.p);
        free(c->tc[i].args.p);
    }
    free(c->tc);
    free(c->finish);
    free(c->model);
}

/* ---- the request body ---- */

static void pack_kv_str(proto_buf_t *b, const char *k, const char *v) {
    proto_pack_cstr(b, k);
    if (v)
        proto_pack_cstr(b, v);
    else
        msgpack_pack_nil(&b->pk);
}

/* Tool call arguments go out as a JSON string: the model's text, or the msgpack form. */
static int pack_arguments(proto_buf_t *b, const agt_tool_call_t *c) {
    if (c->arguments) {
        proto_pack_cstr(b, c->arguments);
        return 0;
    }
    proto_buf_t js;
    proto_buf_init(&js);
    int rc = proto_raw_to_json((proto_raw_t){c->args, c->args_len}, &js);
    if (rc == 0) proto_pack_str(b, (const char *)js.p, js.n);
    proto_buf_free(&js);
    return rc == PROTO_ENOMEM ? ACT_ENOMEM : rc ? ACT_EINVAL : 0;
}

static const char *const role_names[] = {"system", "user", "assistant", "tool"};

static int pack_message(proto_buf_t *b, const agt_message_t *m) {
    uint32_t n = 2 + (m->name != NULL) + (m->n_tool_calls > 0) + (m->tool_call_id != NULL);
    msgpack_pack_map(&b->pk, n);
    pack_kv_str(b, "role", role_names[m->role]);
    pack_kv_str(b, "content", m->content);
    if (m->name) pack_kv_str(b, "name", m->name);
    if (m->tool_call_id) pack_kv_str(b, "tool_call_id", m->tool_call_id);
    if (!m->n_tool_calls) return 0;
    proto_pack_cstr(b, "tool_calls");
    msgpack_pack_array(&b->pk, (uint32_t)m->n_tool_calls);
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const agt_tool_call_t *c = &m->tool_calls[i];
        msgpack_pack_map(&b->pk, 3);
        pack_kv_str(b, "id", c->id);
        pack_kv_str(b, "type", "function");
        proto_pack_cstr(b, "function");
        msgpack_pack_map(&b->pk, 2);
        pack_kv_str(b, "name", c->name);
        proto_pack_cstr(b, "arguments");
        int rc = pack_arguments(b, c);
        if (rc) return rc;
    }
    return 0;
}

static int pack_tool(proto_buf_t *b, const agt_tool_t *t) {
    msgpack_pack_map(&b->pk, 2);
    pack_kv_str(b, "type", "function");
    proto_pack_cstr(b, "function");
    msgpack_pack_map(&b->pk, 2 + (t->description != NULL));
    pack_kv_str(b, "name", t->name);
    if (t->description) pack_kv_str(b, "description", t->description);
    proto_pack_cstr(b, "parameters");
    if (t->parameters) {
        proto_buf_raw(b, (proto_raw_t){t->parameters, t->parameters_len}); /* checked below */
        return 0;
    }
    const char *js =
        t->parameters_json ? t->parameters_json : "{\"type\":\"object\",\"properties\":{}}";
    int rc = proto_json_to_msgpack(js, strlen(js), b, NULL);
    return rc == PROTO_ENOMEM ? ACT_ENOMEM : rc ? ACT_EINVAL : 0;
}

enum { K_TOOLS = 1, K_CHOICE = 2, K_TEMP = 4, K_TOP_P = 8, K_MAX = 16, K_OPTS = 32 };
static const char *const own_keys[] = {"model", "messages",    "stream",
                                       "tools", "tool_choice", "temperature",
                                       "top_p", "max_tokens",  "stream_options"};

static bool own_key(const msgpack_object *k) {
    for (size_t i = 0; i < sizeof(own_keys) / sizeof(own_keys[0]); i++)
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(own_keys[i]) &&
            memcmp(k->via.str.ptr, own_keys[i], k->via.str.size) == 0)
            return true;
    return false;
}

/* The request's extra map, minus the keys the backend sets itself (those win). */
static int extra_entries(const agt_model_request_t *q, msgpack_unpacked *u, uint32_t *n) {
    *n = 0;
    if (!q->extra_len) return 0;
    size_t off = 0;
    if (msgpack_unpack_next(u, (const char *)q->extra, q->extra_len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != q->extra_len || u->data.type != MSGPACK_OBJECT_MAP)
        return ACT_EINVAL;
    for (uint32_t i = 0; i < u->data.via.map.size; i++)
        *n += !own_key(&u->data.via.map.ptr[i].key);
    return 0;
}

static int pack_body(oa_t *b, const agt_model_request_t *q, const msgpack_unpacked *extra,
                     uint32_t n_extra, proto_buf_t *mp) {
    bool stream = q->on_delta != NULL;
    unsigned k = (q->n_tools ? K_TOOLS : 0) | (q->tool_choice ? K_CHOICE : 0) |
                 (q->temperature >= 0 ? K_TEMP : 0) | (q->top_p >= 0 ? K_TOP_P : 0) |
                 (q->max_tokens > 0 ? K_MAX : 0) | (stream && b->stream_usage ? K_OPTS : 0);
    msgpack_pack_map(&mp->pk, 3 + (uint32_t)__builtin_popcount(k) + n_extra);
    pack_kv_str(mp, "model", b->model);
    proto_pack_cstr(mp, "stream");
    stream ? msgpack_pack_true(&mp->pk) : msgpack_pack_false(&mp->pk);
    proto_pack_cstr(mp, "messages");
    msgpack_pack_array(&mp->pk, (uint32_t)q->n_messages);
    int rc = 0;
    for (size_t i = 0; !rc && i < q->n_messages; i++)
        rc = pack_message(mp, &q->messages[i]);
    if (!rc && (k & K_TOOLS)) {
        proto_pack_cstr(mp, "tools");
        msgpack_pack_array(&mp->pk, (uint32_t)q->n_tools);
        for (size_t i = 0; !rc && i < q->n_tools; i++)
            rc = pack_tool(mp, &q->tools[i]);
    }
    if (rc) return rc;
    if (k & K_CHOICE) pack_kv_str(mp, "tool_choice", q->tool_choice);
    if (k & K_TEMP)
        proto_pack_cstr(mp, "temperature"), msgpack_pack_double(&mp->pk, q->temperature);
    if (k & K_TOP_P) proto_pack_cstr(mp, "top_p"), msgpack_pack_double(&mp->pk, q->top_p);
    if (k & K_MAX) proto_pack_cstr(mp, "max_tokens"), msgpack_pack_int64(&mp->pk, q->max_tokens);
    if (k & K_OPTS) {
        proto_pack_cstr(mp, "stream_options");
        msgpack_pack_map(&mp->pk, 1);
        proto_pack_cstr(mp, "include_usage");
        msgpack_pack_true(&mp->pk);
    }
    for (uint32_t i = 0; n_extra && i < extra->data.via.map.size; i++) {
        const msgpack_object_kv *kv = &extra->data.via.map.ptr[i];
        if (own_key(&kv->key)) continue;
        msgpack_pack_object(&mp->pk, kv->key);
        msgpack_pack_object(&mp->pk, kv->val);
    }
    return mp->failed ? ACT_ENOMEM : 0;
}

/* The JSON body: packed as msgpack, then written out (which also validates the caller's
 * msgpack parameters and arguments). */
static int build_body(oa_t *b, const agt_model_request_t *q, proto_buf_t *json) {
    proto_buf_t mp;
    msgpack_unpacked extra;
    proto_buf_init(&mp);
    msgpack_unpacked_init(&extra);
    uint32_t n_extra;
    int rc = extra_entries(q, &extra, &n_extra);
    if (!rc) rc = pack_body(b, q, &extra, n_extra, &mp);
    if (!rc) {
        rc = proto_raw_to_json((proto_raw_t){mp.p, mp.n}, json);
        rc = rc == PROTO_ENOMEM ? ACT_ENOMEM : rc ? ACT_EINVAL : 0;
    }
    msgpack_unpacked_destroy(&extra);
    proto_buf_free(&mp);
    return rc;
}

/* ---- the backend ---- */

static int map_transport(call_t *c, int rc, const agt_http_resp_t *r) {
    switch (rc) {
    case ACT_EIO:
        if (r->content_encoding[0]) /* a reply we cannot read: not worth a retry */
            return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply refused: %s", r->error);
        return fail(c, AGT_EMODEL_UNAVAILABLE, "model server unreachable: %s", r->error);
    case ACT_EMSGSIZE:
        return fail(c, AGT_EMODEL_BAD_RESPONSE, "model reply too large: %s", r->error);
    case ACT_ETIMEDOUT:
        return fail(c, rc, "model call passed its deadline (request aborted)");
    case ACT_ECANCELED:
        return fail(c, rc, "model call cancelled (request aborted)");
    default:
        return rc;
    }
}

static int oa_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                       int64_t deadline) {
    oa_t *b = (oa_t *)m;
    call_t c = {.b = b, .req = req, .out = out};
    c.usage = (agt_usage_t){-1, -1, -1};
    proto_buf_t body;
    proto_buf_init(&body);
    int rc = build_body(b, req, &body);
    if (rc) {
        fail(&c, rc, "cannot encode the model request (%s)", act_err_name(rc));
        goto done;
    }
    /* Accept-Encoding: identity: we decode no compression, and say so (a reply that comes
     * compressed anyway is refused by the HTTP layer with a clear error). */
    const char *hdrs[4] = {"Content-Type: application/json",
                           req->on_delta ? "Accept: text/event-stream" : "Accept: application/json",
                           "Accept-Encoding: identity", b->auth};
    agt_http_req_t hr = {
        .method = "POST",
        .url = b->url,
        .headers = hdrs,
        .n_headers = b->auth ? 4 : 3,
        .body = (const char *)body.p,
        .body_len = body.n,
        .max_body = b->max_response,
        .connect_timeout_ms = b->connect_timeout_ms,
        .on_body = on_body,
        .ctx = &c,
    };
    agt_http_resp_t r;
    out->attempts = 1;
    rc = agt_http_perform(b->http, &hr, &r, deadline);
    out->http_status = (int)r.status;
    out->retry_after_ms = r.retry_after_ms;
    rc = rc ? map_transport(&c, rc, &r) : conclude(&c, &r);
    if (rc) out->usage = c.usage; /* a failed call may still have been billed */
done:
    call_free(&c);
    proto_buf_free(&body);
    return rc;
}

static void oa_destroy(agt_model_t *m) {
    oa_t *b = (oa_t *)m;
    agt_http_destroy(&b->http);
    free(b->url);
    free(b->model);
    free(b->auth);
    free(b);
}

static const agt_model_ops_t oa_ops = {"openai", oa_generate, oa_destroy};

static const char *pick(const char *v, const char *env1, const char *env2) {
    if (v && *v) return v;
    const char *e = getenv(env1);
    if (e && *e) return e;
    e = env2 ? getenv(env2) : NULL;
    return e && *e ? e : NULL;
}

bool agt_openai_env_configured(void) {
    return pick(NULL, "ACTORBUS_MODEL_BASE_URL", NULL) && pick(NULL, "ACTORBUS_MODEL", NULL);
}

static int oa_strings(oa_t *b, const char *base, const char *model, const char *key) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    static const char path[] = "/chat/completions";
    b->url = malloc(n + sizeof(path));
    b->model = strdup(model);
    if (!b->url || !b->model) return ACT_ENOMEM;
    memcpy(b->url, base, n);
    memcpy(b->url + n, path, sizeof(path));
    if (key && asprintf(&b->auth, "Authorization: Bearer %s", key) < 0) {
        b->auth = NULL;
        return ACT_ENOMEM;
    }
    return 0;
}

int agt_openai_new(agt_model_t **out, const agt_openai_config_t *cfg) {
    agt_openai_config_t none = {0};
    if (!out) return ACT_EINVAL;
    if (!cfg) cfg = &none;
    const char *base = pick(cfg->base_url, "ACTORBUS_MODEL_BASE_URL", NULL);
    const char *model = pick(cfg->model, "ACTORBUS_MODEL", NULL);
    const char *key = pick(cfg->api_key, "ACTORBUS_MODEL_API_KEY", "OPENAI_API_KEY");
    if (!base || !model || (key && strpbrk(key, "\r\n"))) return ACT_EINVAL;
    oa_t *b = calloc(1, sizeof(*b));
    if (!b) return ACT_ENOMEM;
    b->base.ops = &oa_ops;
    snprintf(b->base.name, sizeof(b->base.name), "%s", cfg->name ? cfg->name : "openai");
    b->max_response = cfg->max_response ? cfg->max_response : DEFAULT_MAX_RESPONSE;
    b->max_event = cfg->max_event ? cfg->max_event : DEFAULT_MAX_EVENT;
    b->max_tool_calls = cfg->max_tool_calls ? cfg->max_tool_calls : DEFAULT_MAX_TOOL_CALLS;
    b->connect_timeout_ms = cfg->connect_timeout_ms;
    b->stream_usage = !cfg->no_stream_usage;
    int rc = oa_strings(b, base, model, key);
    if (!rc) rc = agt_http_new(&b->http);
    if (rc) {
        oa_destroy(&b->base);
        return rc;
    }
    *out = &b->base;
    return 0;
}
