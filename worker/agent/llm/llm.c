/* llm.c: the LLM agent. One run: the instruction (with {state} filled in), the session's
 * history and the input become a conversation; the model answers (streamed as partial
 * events); its tool calls run at once (tools.c) and their responses go back to it, until it
 * answers with text (the final event and the output) or transfers to a sub-agent. Model and
 * tool callbacks run through the runner (agt_callbacks_run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelside.h"

/* ---- the conversation: messages and the memory they point into ---- */

typedef struct conv {
    agt_message_t *m;
    size_t n, cap;
    void **owned; /* freed with the conversation */
    size_t n_owned, cap_owned;
    bool failed;
} conv_t;

/* Room for n more owned pointers, so that a run of conv_keep calls cannot fail half-way. */
static int conv_reserve(conv_t *c, size_t n) {
    if (c->n_owned + n <= c->cap_owned) return 0;
    size_t cap = c->cap_owned ? 2 * c->cap_owned : 16;
    while (cap < c->n_owned + n)
        cap *= 2;
    void **v = realloc(c->owned, cap * sizeof(*v));
    if (!v) {
        c->failed = true;
        return ACT_ENOMEM;
    }
    c->owned = v;
    c->cap_owned = cap;
    return 0;
}

static void *conv_keep(conv_t *c, void *p) {
    if (!p) {
        c->failed = true;
        return NULL;
    }
    if (conv_reserve(c, 1)) {
        free(p);
        return NULL;
    }
    return c->owned[c->n_owned++] = p;
}

static char *conv_strndup(conv_t *c, const char *s, size_t n) {
    return conv_keep(c, strndup(s, n));
}

static agt_message_t *conv_add(conv_t *c, agt_role_t role, const char *content) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        agt_message_t *v = realloc(c->m, cap * sizeof(*v));
        if (!v) {
            c->failed = true;
            return NULL;
        }
        c->m = v;
        c->cap = cap;
    }
    agt_message_t *m = &c->m[c->n++];
    memset(m, 0, sizeof(*m));
    m->role = role;
    m->content = content;
    return m;
}

static void conv_free(conv_t *c) {
    for (size_t i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->m);
    memset(c, 0, sizeof(*c));
}

/* A msgpack value as text for the model: strings as they are, anything else as JSON. */
static char *value_text(conv_t *c, const proto_val_t *v) {
    if (v->type == PROTO_V_STR) return conv_strndup(c, (const char *)v->data, v->len);
    proto_buf_t j;
    proto_buf_init(&j);
    char *s = NULL;
    if (proto_raw_to_json((proto_raw_t){v->raw, v->raw_n}, &j) == 0 && !j.failed)
        s = conv_strndup(c, (const char *)j.p, j.n);
    else
        c->failed = true;
    proto_buf_free(&j);
    return s;
}

/* ---- the instruction: {key} and {key?} from the state ---- */

static size_t key_len(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                  (n && ((ch >= '0' && ch <= '9') || ch == ':'));
        if (!ok) break;
    }
    return n;
}

static int fill_instruction(abp_ctx_t *ctx, const char *tmpl, conv_t *c, const char **out,
                            char *err, size_t cap) {
    proto_buf_t b; /* used as a byte buffer */
    proto_buf_init(&b);
    proto_raw_t st = agt_state(ctx);
    proto_val_t state = {0};
    bool have_state = st.n && proto_val_read(st.p, st.n, &state) == 0;
    int rc = 0;
    for (const char *p = tmpl; *p && !rc;) {
        size_t k = p[0] == '{' ? key_len(p + 1) : 0;
        bool opt = k && p[1 + k] == '?';
        if (!k || p[1 + k + opt] != '}') { /* not a placeholder: copied as it is */
            proto_buf_raw(&b, (proto_raw_t){(const uint8_t *)p, 1});
            p++;
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)k, p + 1);
        proto_val_t v;
        if (have_state && proto_val_map_get(&state, key, &v) == 1) {
            char *t = value_text(c, &v);
            if (t) proto_buf_raw(&b, (proto_raw_t){(const uint8_t *)t, strlen(t)});
        } else if (!opt) {
            snprintf(err, cap, "the instruction names state key %s, which is not set", key);
            rc = ACT_ENOENT;
        }
        p += 2 + k + opt;
    }
    proto_buf_raw(&b, (proto_raw_t){(const uint8_t *)"", 1});
    if (!rc) *out = b.failed ? NULL : conv_strndup(c, (const char *)b.p, b.n);
    if (!rc && !*out) rc = ACT_ENOMEM;
    proto_buf_free(&b);
    return rc;
}

/* ---- history: the session's earlier turns, as messages ---- */

/* The text parts of an event's content, joined; NULL when there are none. */
static char *event_text(conv_t *c, const proto_val_t *ev) {
    proto_val_t content, parts, part, t;
    if (proto_val_map_get(ev, "content", &content) != 1 ||
        proto_val_map_get(&content, "parts", &parts) != 1 || parts.type != PROTO_V_ARRAY)
        return NULL;
    proto_buf_t b;
    proto_buf_init(&b);
    size_t cur = 0;
    while (proto_val_next(&parts, &cur, &part) == 1) {
        char *s = NULL;
        if (proto_val_map_get(&part, "text", &t) == 1 && t.type == PROTO_V_STR)
            s = conv_strndup(c, (const char *)t.data, t.len);
        else if (proto_val_map_get(&part, "data", &t) == 1)
            s = value_text(c, &t);
        if (!s) continue;
        if (b.n) proto_buf_raw(&b, (proto_raw_t){(const uint8_t *)"\n", 1});
        proto_buf_raw(&b, (proto_raw_t){(const uint8_t *)s, strlen(s)});
    }
    char *s = b.n && !b.failed ? conv_strndup(c, (const char *)b.p, b.n) : NULL;
    proto_buf_free(&b);
    return s;
}

/* The i-th part of an event's content that holds key (function_call, function_response);
 * returns 1 with *out = that part's value, 0 when there is none. */
static int nth_part(const proto_val_t *ev, const char *key, size_t i, proto_val_t *out) {
    proto_val_t content, parts, part;
    if (proto_val_map_get(ev, "content", &content) != 1 ||
        proto_val_map_get(&content, "parts", &parts) != 1 || parts.type != PROTO_V_ARRAY)
        return 0;
    size_t cur = 0, k = 0;
    while (proto_val_next(&parts, &cur, &part) == 1)
        if (proto_val_map_get(&part, key, out) == 1 && out->type == PROTO_V_MAP && k++ == i)
            return 1;
    return 0;
}

/* A stored event as history reads it: NULL-free fields, or ok false (partial, the current
 * invocation's, no author: not history). */
typedef struct hist {
    proto_val_t ev, inv, author;
    bool ok;
} hist_t;

static void hist_read(hist_t *h, const char *inv, const proto_val_t *e) {
    proto_val_t v;
    memset(h, 0, sizeof(*h));
    if (e->type != PROTO_V_MAP || proto_val_map_get(e, "event", &h->ev) != 1 ||
        h->ev.type != PROTO_V_MAP)
        return;
    if (proto_val_map_get(e, "invocation", &h->inv) == 1 && proto_val_str_eq(&h->inv, inv))
        return;
    if (proto_val_map_get(&h->ev, "partial", &v) == 1 && v.type == PROTO_V_BOOL && v.b) return;
    h->ok = proto_val_map_get(&h->ev, "author", &h->author) == 1 &&
            h->author.type == PROTO_V_STR;
}

static bool same_str(const proto_val_t *a, const proto_val_t *b) {
    return a->type == PROTO_V_STR && b->type == PROTO_V_STR && a->len == b->len &&
           memcmp(a->data, b->data, a->len) == 0;
}

/* The response to call id among the events after h[i] of its invocation, before that agent's
 * next model turn (ids repeat from turn to turn). Returns 1 with *resp, 0 when none. */
static int find_response(const hist_t *h, size_t n, size_t i, const proto_val_t *id,
                         proto_val_t *resp) {
    proto_val_t fr, rid, tmp;
    for (size_t j = i + 1; j < n; j++) {
        if (!h[j].ok || !same_str(&h[j].inv, &h[i].inv) || !same_str(&h[j].author, &h[i].author))
            continue;
        if (nth_part(&h[j].ev, "function_call", 0, &tmp)) return 0; /* the next turn */
        for (size_t k = 0; nth_part(&h[j].ev, "function_response", k, &fr); k++)
            if (proto_val_map_get(&fr, "id", &rid) == 1 && same_str(&rid, id) &&
                proto_val_map_get(&fr, "response", resp) == 1)
                return 1;
    }
    return 0;
}

/* One of this agent's past model turns with function calls: the assistant message with the
 * calls that have a response in the window, then one tool message per call, as pairs (a
 * call without its response, or a response without its call, is a request servers refuse:
 * a window cut through a pair drops its half). */
static void history_calls(conv_t *c, const hist_t *h, size_t n, size_t i) {
    proto_val_t fc, id, name, args, resp;
    size_t total = 0;
    while (nth_part(&h[i].ev, "function_call", total, &fc)) total++;
    agt_tool_call_t *calls = conv_keep(c, calloc(total, sizeof(*calls)));
    proto_val_t *resps = calloc(total, sizeof(*resps));
    size_t kept = 0;
    for (size_t k = 0; calls && resps && k < total; k++) {
        nth_part(&h[i].ev, "function_call", k, &fc);
        if (proto_val_map_get(&fc, "id", &id) != 1 || id.type != PROTO_V_STR ||
            proto_val_map_get(&fc, "name", &name) != 1 || name.type != PROTO_V_STR ||
            !find_response(h, n, i, &id, &resps[kept]))
            continue;
        agt_tool_call_t *t = &calls[kept++];
        t->id = conv_strndup(c, (const char *)id.data, id.len);
        t->name = conv_strndup(c, (const char *)name.data, name.len);
        if (proto_val_map_get(&fc, "args", &args) == 1 && args.type == PROTO_V_MAP) {
            uint8_t *a = conv_keep(c, malloc(args.raw_n));
            if (a) memcpy(a, args.raw, args.raw_n);
            t->args = a, t->args_len = args.raw_n;
        } else {
            t->arguments = "{}";
        }
    }
    if (!resps) c->failed = true;
    char *text = event_text(c, &h[i].ev);
    if (kept || text) {
        agt_message_t *m = conv_add(c, AGT_ROLE_ASSISTANT, text);
        if (m && kept) m->tool_calls = calls, m->n_tool_calls = kept;
    }
    for (size_t k = 0; k < kept; k++) {
        resp = resps[k];
        const char *rt = value_text(c, &resp);
        agt_message_t *m = conv_add(c, AGT_ROLE_TOOL, rt ? rt : "null");
        if (m) m->tool_call_id = calls[k].id;
    }
    free(resps);
}

/* One stored event: the user's words, this agent's answers and its function calls with
 * their responses (paired, as ADK keeps them), and what other agents said (as context, the
 * way ADK shows them). */
static void history_one(conv_t *c, const agt_def_t *def, const hist_t *h, size_t n, size_t i) {
    proto_val_t tmp;
    const proto_val_t *author = &h[i].author;
    if (!h[i].ok || nth_part(&h[i].ev, "function_response", 0, &tmp)) return; /* with its call */
    if (proto_val_str_eq(author, def->name) && nth_part(&h[i].ev, "function_call", 0, &tmp)) {
        history_calls(c, h, n, i);
        return;
    }
    char *text = event_text(c, &h[i].ev);
    if (!text) return;
    if (proto_val_str_eq(author, "user")) {
        conv_add(c, AGT_ROLE_USER, text);
    } else if (proto_val_str_eq(author, def->name)) {
        conv_add(c, AGT_ROLE_ASSISTANT, text);
    } else {
        size_t len = author->len + strlen(text) + 32;
        char *s = conv_keep(c, malloc(len));
        if (s) snprintf(s, len, "For context: [%.*s] said: %s", (int)author->len,
                        (const char *)author->data, text);
        if (s) conv_add(c, AGT_ROLE_USER, s);
    }
}

static void add_history(abp_ctx_t *ctx, conv_t *c, const agt_def_t *def) {
    proto_raw_t raw = agt_history(ctx);
    proto_val_t arr, e;
    if (!raw.n || proto_val_read(raw.p, raw.n, &arr) || arr.type != PROTO_V_ARRAY || !arr.len)
        return;
    const char *inv = agt_invocation_id(ctx);
    hist_t *h = calloc(arr.len, sizeof(*h));
    if (!h) {
        c->failed = true;
        return;
    }
    size_t cur = 0, n = 0;
    while (n < arr.len && proto_val_next(&arr, &cur, &e) == 1)
        hist_read(&h[n++], inv ? inv : "", &e);
    for (size_t i = 0; i < n; i++) history_one(c, def, h, n, i);
    free(h);
}


/* ---- the model's answer ---- */

typedef struct answer {
    char *text;
    agt_tool_call_t *calls; /* every string and args malloc'd (as a response owns them) */
    size_t n;
    int cut;           /* agt_model_finish_check: the model was stopped mid-answer */
    bool has_usage;    /* usage is the model's (a callback's answer has none) */
    agt_usage_t usage; /* this call's tokens */
} answer_t;

static void answer_free(answer_t *a) {
    agt_model_response_t r = {.text = a->text, .tool_calls = a->calls, .n_tool_calls = a->n};
    agt_model_response_free(&r);
    memset(a, 0, sizeof(*a));
}

static void answer_take(answer_t *a, agt_model_response_t *r) {
    a->cut = agt_model_finish_check(r);
    a->has_usage = true;
    a->usage = r->usage;
    a->text = r->text;
    a->calls = r->tool_calls;
    a->n = r->n_tool_calls;
    r->text = NULL;
    r->tool_calls = NULL;
    r->n_tool_calls = 0;
}

static void pack_call(proto_buf_t *b, const agt_tool_call_t *t) {
    msgpack_pack_map(&b->pk, 3);
    proto_pack_cstr(b, "id");
    proto_pack_cstr(b, t->id);
    proto_pack_cstr(b, "name");
    proto_pack_cstr(b, t->name);
    proto_pack_cstr(b, "args");
    if (t->args)
        proto_buf_raw(b, (proto_raw_t){t->args, t->args_len});
    else
        msgpack_pack_map(&b->pk, 0); /* the model's JSON did not parse */
}

/* {"text": ..., "tool_calls": [{"id","name","args"}]}: what model callbacks see. */
static void pack_answer(proto_buf_t *b, const answer_t *a) {
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "text");
    proto_pack_cstr(b, a->text ? a->text : "");
    proto_pack_cstr(b, "tool_calls");
    msgpack_pack_array(&b->pk, (uint32_t)a->n);
    for (size_t i = 0; i < a->n; i++) pack_call(b, &a->calls[i]);
}

/* One tool call of a callback's answer; args (a map) or arguments (JSON text). */
static int call_from(agt_tool_call_t *t, const proto_val_t *c, size_t i) {
    proto_val_t id, name, args;
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "call_%zu", i);
    if (proto_val_map_get(c, "name", &name) != 1 || name.type != PROTO_V_STR) return ACT_EINVAL;
    bool has_id = proto_val_map_get(c, "id", &id) == 1 && id.type == PROTO_V_STR;
    t->id = has_id ? strndup((const char *)id.data, id.len) : strdup(idbuf);
    t->name = strndup((const char *)name.data, name.len);
    proto_buf_t mp, j;
    proto_buf_init(&mp);
    proto_buf_init(&j);
    if (proto_val_map_get(c, "args", &args) == 1 && args.type == PROTO_V_MAP)
        proto_buf_raw(&mp, (proto_raw_t){args.raw, args.raw_n});
    else if (proto_val_map_get(c, "arguments", &args) == 1 && args.type == PROTO_V_STR)
        proto_json_to_msgpack((const char *)args.data, args.len, &mp, NULL);
    if (!mp.n) msgpack_pack_map(&mp.pk, 0);
    proto_raw_to_json((proto_raw_t){mp.p, mp.n}, &j);
    t->args = mp.failed ? NULL : mp.p;
    t->args_len = mp.n;
    t->arguments = j.failed || !j.p ? NULL : strdup((const char *)j.p);
    proto_buf_free(&j);
    if (!t->args) proto_buf_free(&mp); /* else t->args owns mp's bytes */
    return t->id && t->name && t->args && t->arguments ? 0 : ACT_ENOMEM;
}

/* A callback's answer in place of the model's. */
static int answer_from(answer_t *a, const uint8_t *mp, size_t n) {
    proto_val_t r, text, calls, c;
    memset(a, 0, sizeof(*a));
    if (proto_val_read(mp, n, &r) || r.type != PROTO_V_MAP) return ACT_EINVAL;
    bool has_text = proto_val_map_get(&r, "text", &text) == 1 && text.type == PROTO_V_STR;
    a->text = has_text ? strndup((const char *)text.data, text.len) : strdup("");
    if (!a->text) return ACT_ENOMEM;
    if (proto_val_map_get(&r, "tool_calls", &calls) != 1 || calls.type != PROTO_V_ARRAY ||
        calls.len == 0)
        return 0;
    if (calls.len > 64 || !(a->calls = calloc(calls.len, sizeof(*a->calls)))) {
        answer_free(a);
        return ACT_EINVAL;
    }
    size_t cur = 0;
    while (proto_val_next(&calls, &cur, &c) == 1) {
        int rc = call_from(&a->calls[a->n], &c, a->n);
        a->n++;
        if (rc) {
            answer_free(a);
            return rc;
        }
    }
    return 0;
}

/* ---- the request, as callbacks see it (OpenAI's shape) and take it back ---- */

static const char *const ROLE_NAMES[] = {"system", "user", "assistant", "tool"};

static void pack_message(proto_buf_t *b, const agt_message_t *m) {
    uint32_t n = 2 + (m->n_tool_calls > 0) + (m->tool_call_id != NULL);
    msgpack_pack_map(&b->pk, n);
    proto_pack_cstr(b, "role");
    proto_pack_cstr(b, ROLE_NAMES[m->role]);
    proto_pack_cstr(b, "content");
    if (m->content)
        proto_pack_cstr(b, m->content);
    else
        msgpack_pack_nil(&b->pk);
    if (m->n_tool_calls) {
        proto_pack_cstr(b, "tool_calls");
        msgpack_pack_array(&b->pk, (uint32_t)m->n_tool_calls);
        for (size_t i = 0; i < m->n_tool_calls; i++) pack_call(b, &m->tool_calls[i]);
    }
    if (m->tool_call_id) {
        proto_pack_cstr(b, "tool_call_id");
        proto_pack_cstr(b, m->tool_call_id);
    }
}

static void pack_request(proto_buf_t *b, const conv_t *c, const agt_offers_t *o) {
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "messages");
    msgpack_pack_array(&b->pk, (uint32_t)c->n);
    for (size_t i = 0; i < c->n; i++) pack_message(b, &c->m[i]);
    proto_pack_cstr(b, "tools");
    msgpack_pack_array(&b->pk, (uint32_t)o->n);
    for (size_t i = 0; i < o->n; i++) {
        msgpack_pack_map(&b->pk, 2);
        proto_pack_cstr(b, "name");
        proto_pack_cstr(b, o->v[i].name);
        proto_pack_cstr(b, "description");
        proto_pack_cstr(b, o->v[i].description);
    }
}

/* A replacement request's messages, by role and content. Tool messages are dropped and
 * assistant messages keep only their text (a tool result needs its call): a callback that
 * rewrites the request rewrites what the model reads. */
static int conv_from(conv_t *c, const uint8_t *mp, size_t n) {
    proto_val_t r, msgs, m, role, content;
    if (proto_val_read(mp, n, &r) || proto_val_map_get(&r, "messages", &msgs) != 1 ||
        msgs.type != PROTO_V_ARRAY || msgs.len == 0)
        return ACT_EINVAL;
    size_t cur = 0;
    while (proto_val_next(&msgs, &cur, &m) == 1) {
        if (proto_val_map_get(&m, "role", &role) != 1) return ACT_EINVAL;
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (proto_val_str_eq(&role, ROLE_NAMES[i])) k = i;
        if (k < 0 || k == AGT_ROLE_TOOL) continue; /* tool results need their calls: dropped */
        const char *text = "";
        if (proto_val_map_get(&m, "content", &content) == 1 && content.type != PROTO_V_NIL)
            text = value_text(c, &content);
        conv_add(c, (agt_role_t)k, text ? text : "");
    }
    return c->failed ? ACT_ENOMEM : c->n ? 0 : ACT_EINVAL;
}

/* ---- events ---- */

typedef struct run {
    abp_ctx_t *ctx;
    const agt_def_t *def;
    agt_model_t *model;
    agt_offers_t offers;
    conv_t conv;
    agt_tool_t *tools; /* the offers as the model sees them */
    char err[256];
    bool cb_failed; /* err is a callback's */
} run_t;

static int emit_text_delta(void *arg, const char *text, size_t len) {
    run_t *r = arg;
    char *s = strndup(text, len);
    if (!s) return ACT_ENOMEM;
    abp_event_t ev = {.text = s, .partial = true};
    int rc = agt_emit(r->ctx, &ev);
    free(s);
    return rc == ABP_EAGAIN ? 0 : rc; /* a dropped piece is no reason to fail the answer */
}

static int emit_error(run_t *r, const char *code, const char *message) {
    abp_event_t ev = {.error_code = code, .error_message = message};
    agt_emit(r->ctx, &ev);
    return agt__host->api->fail(r->ctx, code, message);
}

/* The model's tool calls, as one event of function_call parts (with its text, if any). */
static int emit_calls(run_t *r, const answer_t *a) {
    proto_buf_t b;
    proto_buf_init(&b);
    msgpack_pack_array(&b.pk, (uint32_t)a->n);
    for (size_t i = 0; i < a->n; i++) {
        msgpack_pack_map(&b.pk, 1);
        proto_pack_cstr(&b, "function_call");
        pack_call(&b, &a->calls[i]);
    }
    abp_event_t ev = {.text = a->text && a->text[0] ? a->text : NULL, .parts = b.p,
                      .parts_n = b.n};
    agt_event_extra_t x = {.usage = a->has_usage ? &a->usage : NULL};
    int rc = b.failed ? ACT_ENOMEM : agt_emit_ex(r->ctx, &ev, &x);
    proto_buf_free(&b);
    return rc;
}

/* One call's response: a function_response part, its state delta, and tool_error when it
 * failed (the response then carries {"error": ...}, so the model sees what happened). */
static int emit_response(run_t *r, const agt_tool_call_t *t, const agt_call_out_t *o,
                         const char *transfer) {
    proto_buf_t parts, delta;
    proto_buf_init(&parts);
    proto_buf_init(&delta);
    msgpack_pack_array(&parts.pk, 1);
    msgpack_pack_map(&parts.pk, 1);
    proto_pack_cstr(&parts, "function_response");
    msgpack_pack_map(&parts.pk, 3);
    proto_pack_cstr(&parts, "id");
    proto_pack_cstr(&parts, t->id);
    proto_pack_cstr(&parts, "name");
    proto_pack_cstr(&parts, t->name);
    proto_pack_cstr(&parts, "response");
    proto_buf_raw(&parts, (proto_raw_t){o->response.p, o->response.n});
    if (o->n_delta) {
        msgpack_pack_map(&delta.pk, o->n_delta);
        proto_buf_raw(&delta, (proto_raw_t){o->delta.p, o->delta.n});
    }
    abp_event_t ev = {.parts = parts.p, .parts_n = parts.n, .role = "tool",
                      .state_delta = delta.n ? delta.p : NULL, .state_delta_n = delta.n,
                      .transfer_to_agent = transfer,
                      .error_code = o->error_code ? "tool_error" : NULL,
                      .error_message = o->error_code ? o->error_message : NULL};
    int rc = parts.failed || delta.failed ? ACT_ENOMEM : agt_emit(r->ctx, &ev);
    proto_buf_free(&parts);
    proto_buf_free(&delta);
    return rc;
}


/* ---- one model call, between its callbacks ---- */

/* The host's token counters (its /metrics), by agent and configured model. */
static void count_tokens(run_t *r, const agt_usage_t *u) {
    uint64_t p = u->prompt_tokens > 0 ? (uint64_t)u->prompt_tokens : 0;
    uint64_t c = u->completion_tokens > 0 ? (uint64_t)u->completion_tokens : 0;
    if (agt__host->tokens && (p || c))
        agt__host->tokens(r->ctx, r->def->llm.model ? r->def->llm.model : "default", p, c);
}

static int ask_model(run_t *r, answer_t *a) {
    abp_pack_t *cb = agt_pack_new();
    proto_buf_t req;
    proto_buf_init(&req);
    conv_t repl = {0};
    const conv_t *use = &r->conv;
    int rc = cb ? 0 : ACT_ENOMEM;
    if (!rc) {
        pack_request(&req, &r->conv, &r->offers);
        rc = req.failed ? ACT_ENOMEM
                        : agt_callbacks_run(r->ctx, ABP_CB_BEFORE_MODEL, NULL, req.p, req.n, cb);
    }
    if (rc == 1) { /* answered from a cache: the model is not called */
        rc = answer_from(a, cb->buf.p, cb->buf.n);
        if (rc) {
            snprintf(r->err, sizeof r->err, "a before_model callback gave a bad answer");
            r->cb_failed = true;
        }
        goto done;
    }
    if (rc == 2 && (rc = conv_from(&repl, cb->buf.p, cb->buf.n)) == 0) use = &repl;
    if (rc < 0) {
        snprintf(r->err, sizeof r->err, "a before_model callback failed: %s", act_strerror(rc));
        r->cb_failed = true;
        goto done;
    }
    agt_model_request_t q;
    agt_model_request_init(&q);
    q.messages = use->m;
    q.n_messages = use->n;
    q.tools = r->tools;
    q.n_tools = r->offers.n;
    if (!r->def->llm.no_stream) q.on_delta = emit_text_delta, q.ctx = r;
    agt_model_response_t resp;
    rc = agt_model_generate(r->model, &q, &resp, -1);
    count_tokens(r, &resp.usage); /* a failed call may have been billed too */
    if (rc) snprintf(r->err, sizeof r->err, "%s", resp.error);
    else answer_take(a, &resp);
    agt_model_response_free(&resp);
done:
    conv_free(&repl);
    proto_buf_free(&req);
    agt_pack_free(&cb);
    return rc;
}

static int after_model(run_t *r, answer_t *a) {
    abp_pack_t *cb = agt_pack_new();
    proto_buf_t b;
    proto_buf_init(&b);
    pack_answer(&b, a);
    int rc = !cb || b.failed ? ACT_ENOMEM
                             : agt_callbacks_run(r->ctx, ABP_CB_AFTER_MODEL, NULL, b.p, b.n, cb);
    if (rc == 1) {
        answer_t repl;
        rc = answer_from(&repl, cb->buf.p, cb->buf.n);
        if (!rc) {
            answer_free(a);
            *a = repl;
        }
    }
    if (rc < 0) {
        snprintf(r->err, sizeof r->err, "an after_model callback failed: %s", act_strerror(rc));
        r->cb_failed = true;
    }
    proto_buf_free(&b);
    agt_pack_free(&cb);
    return rc < 0 ? rc : 0;
}

/* ---- tool calls ---- */

/* The assistant's turn joins the conversation; the conversation takes over its memory (room
 * is made first: a keep that failed half-way would free what the message still points to).
 * Returns: 0. Errors: ACT_ENOMEM (a is left as it was). */
static int keep_turn(run_t *r, answer_t *a) {
    conv_t *c = &r->conv;
    if (conv_reserve(c, 2 + 4 * a->n)) return ACT_ENOMEM;
    agt_message_t *m = conv_add(c, AGT_ROLE_ASSISTANT, a->text && a->text[0] ? a->text : NULL);
    if (!m) return ACT_ENOMEM;
    if (a->text) conv_keep(c, a->text);
    if (a->n) conv_keep(c, a->calls);
    for (size_t i = 0; i < a->n; i++) {
        void *call[] = {(void *)a->calls[i].id, (void *)a->calls[i].name,
                        (void *)a->calls[i].arguments, (void *)a->calls[i].args};
        for (size_t k = 0; k < 4; k++)
            if (call[k]) conv_keep(c, call[k]);
    }
    m->tool_calls = a->calls, m->n_tool_calls = a->n;
    memset(a, 0, sizeof(*a));
    return 0;
}

static void add_tool_message(run_t *r, const agt_tool_call_t *t, const agt_call_out_t *o) {
    proto_val_t v;
    const char *text = "null";
    if (proto_val_read(o->response.p, o->response.n, &v) == 0) text = value_text(&r->conv, &v);
    agt_message_t *m = conv_add(&r->conv, AGT_ROLE_TOOL, text ? text : "null");
    if (m) m->tool_call_id = t->id;
}

static bool is_sub_agent(const agt_def_t *def, const char *name) {
    for (size_t i = 0; i < def->n_sub; i++)
        if (strcmp(def->sub_agents[i], name) == 0) return true;
    return false;
}

/* transfer_to_agent: 1 when it names a sub-agent (the action is emitted: the turn ends),
 * 0 when it does not (the model is told so). */
static int do_transfer(run_t *r, const agt_tool_call_t *t, agt_call_out_t *o) {
    proto_val_t args, name;
    char target[PROTO_MAX_NAME + 1] = "";
    if (t->args && proto_val_read(t->args, t->args_len, &args) == 0 &&
        proto_val_map_get(&args, "agent_name", &name) == 1 && name.type == PROTO_V_STR &&
        name.len <= PROTO_MAX_NAME)
        snprintf(target, sizeof target, "%.*s", (int)name.len, (const char *)name.data);
    proto_buf_reset(&o->response);
    if (!is_sub_agent(r->def, target)) {
        o->error_code = "bad_arguments";
        snprintf(o->error_message, sizeof o->error_message,
                 "transfer_to_agent: %s is not a sub-agent of %s", target, r->def->name);
        agt_pack_error(&o->response, o->error_code, o->error_message);
        emit_response(r, t, o, NULL);
        return 0;
    }
    msgpack_pack_map(&o->response.pk, 1);
    proto_pack_cstr(&o->response, "transferred_to");
    proto_pack_cstr(&o->response, target);
    emit_response(r, t, o, target);
    return 1;
}

/* Runs the answer's calls. Returns: 1 when the agent transferred, 0 to ask the model again,
 * or a negative code (cancelled, out of memory). */
static int run_calls(run_t *r, answer_t *a) {
    size_t total = a->n, n = 0, transfer = total;
    agt_call_in_t *in = calloc(total, sizeof(*in));
    agt_call_out_t *out = calloc(total + 1, sizeof(*out)); /* [total]: the transfer's */
    size_t *slot = calloc(total, sizeof(*slot));           /* call i's entry in out */
    int rc = in && out && slot ? 0 : ACT_ENOMEM;
    for (size_t i = 0; !rc && i < total; i++) {
        const agt_tool_call_t *t = &a->calls[i];
        if (strcmp(t->name, "transfer_to_agent") == 0 && r->def->n_sub && transfer == total) {
            transfer = i;
            slot[i] = total;
            continue;
        }
        slot[i] = n;
        in[n++] = (agt_call_in_t){t->id, t->name, t->args, t->args_len};
    }
    if (out) {
        proto_buf_init(&out[total].response);
        proto_buf_init(&out[total].delta);
    }
    if (!rc) rc = agt_tools_run(r->ctx, &r->offers, in, n, out);
    for (size_t i = 0; !rc && i < total; i++) /* responses in the model's order */
        if (i != transfer) emit_response(r, &a->calls[i], &out[slot[i]], NULL);
    bool transferred = !rc && transfer < total && do_transfer(r, &a->calls[transfer],
                                                              &out[total]);
    if (!rc && !transferred) {
        agt_tool_call_t *calls = a->calls;
        rc = keep_turn(r, a); /* the assistant's turn, then one tool message per call */
        for (size_t i = 0; !rc && i < total; i++) add_tool_message(r, &calls[i], &out[slot[i]]);
        if (!rc && r->conv.failed) rc = ACT_ENOMEM; /* a message missing: no request to send */
    }
    for (size_t i = 0; out && i < n; i++) agt_call_out_free(&out[i]);
    if (out) agt_call_out_free(&out[total]);
    free(in);
    free(out);
    free(slot);
    return rc ? rc : transferred;
}

/* ---- the run ---- */

static int final_answer(run_t *r, const answer_t *a) {
    const char *text = a->text ? a->text : "";
    proto_buf_t delta, out;
    proto_buf_init(&delta);
    proto_buf_init(&out);
    if (r->def->llm.output_key) {
        msgpack_pack_map(&delta.pk, 1);
        proto_pack_cstr(&delta, r->def->llm.output_key);
        proto_pack_cstr(&delta, text);
    }
    abp_event_t ev = {.text = text, .final = true, .state_delta = delta.n ? delta.p : NULL,
                      .state_delta_n = delta.n};
    agt_event_extra_t x = {.usage = a->has_usage ? &a->usage : NULL, .with_sum = true};
    proto_pack_cstr(&out, text);
    int rc = delta.failed || out.failed ? ACT_ENOMEM : agt_emit_ex(r->ctx, &ev, &x);
    if (rc == ABP_EAGAIN) rc = 0; /* the output still answers the query */
    if (!rc) rc = agt__host->api->set_output(r->ctx, out.p, out.n);
    proto_buf_free(&delta);
    proto_buf_free(&out);
    return rc;
}

/* The conversation so far: instruction, history, this input. */
static int start_conv(run_t *r, const uint8_t *input, size_t n) {
    const agt_def_t *def = r->def;
    conv_t *c = &r->conv;
    if (def->llm.instruction && def->llm.instruction[0]) {
        const char *sys = NULL;
        int rc = fill_instruction(r->ctx, def->llm.instruction, c, &sys, r->err, sizeof r->err);
        if (rc) return rc;
        conv_add(c, AGT_ROLE_SYSTEM, sys);
    }
    if (!def->llm.no_history) add_history(r->ctx, c, def);
    proto_val_t v;
    if (input && n && proto_val_read(input, n, &v) == 0 && v.type != PROTO_V_NIL) {
        const char *text = value_text(c, &v);
        conv_add(c, AGT_ROLE_USER, text ? text : "");
    }
    if (!c->n) conv_add(c, AGT_ROLE_USER, ""); /* a model needs something to answer */
    return c->failed ? ACT_ENOMEM : 0;
}

static int setup(run_t *r) {
    const agt_def_t *def = r->def;
    agt_rt_t *rt = agt_rt_of(r->ctx);
    int rc = agt_model_get(rt, def->llm.model, &r->model);
    if (rc == ACT_ENOENT && (!def->llm.model || !strcmp(def->llm.model, "default"))) {
        snprintf(r->err, sizeof r->err, "no model server is configured: set "
                 "ACTORBUS_MODEL_BASE_URL and ACTORBUS_MODEL, or \"models\" in --agents");
        return rc;
    }
    if (rc) {
        snprintf(r->err, sizeof r->err, "model %s: %s", def->llm.model ? def->llm.model : "?",
                 rc == ACT_ENOENT ? "not in the config's \"models\"" : agt_model_strerror(rc));
        return rc;
    }
    if ((rc = agt_offers_build(rt, def, &r->offers, r->err, sizeof r->err))) return rc;
    r->tools = calloc(r->offers.n ? r->offers.n : 1, sizeof(*r->tools));
    if (!r->tools) return ACT_ENOMEM;
    for (size_t i = 0; i < r->offers.n; i++)
        r->tools[i] = (agt_tool_t){.name = r->offers.v[i].name,
                                   .description = r->offers.v[i].description,
                                   .parameters_json = r->offers.v[i].params_json};
    return 0;
}

/* A failed run: the job ends with the query's own timeout or cancellation when that is what
 * happened, else with the model's code and an error event that says it. */
static int run_failed(run_t *r, int rc, const char *code) {
    if (rc == ACT_ECANCELED || agt__host->api->cancelled(r->ctx)) return ABP_ECANCELED;
    /* ACT_ETIMEDOUT is the invocation's own deadline (the job's timeout_ms, or a tool's around
     * an agent used as one): a model's timeout_ms comes back as AGT_EMODEL_TIMEOUT and a tool's
     * as its result. Only a callback's may be its own: there the deadline must have passed. */
    if (rc == ACT_ETIMEDOUT && (!r->cb_failed || agt__host->api->time_left_ms(r->ctx) == 0))
        return ABP_ETIMEDOUT;
    char msg[384];
    snprintf(msg, sizeof msg, "agent %s: %s", r->def->name, r->err[0] ? r->err : act_strerror(rc));
    act_log(ACT_LOG_WARN, "llm_failed", "agent=%s code=%s reason=\"%s\"", r->def->name, code,
            msg);
    emit_error(r, code, msg);
    return rc < 0 ? rc : ACT_EINVAL;
}

/* The model stopped mid-answer (its token limit, a content filter): the invocation ends with
 * model_truncated / model_filtered, after an error event that keeps the partial text (it was
 * streamed already, or is raw markup of a cut tool call) and the call's usage. */
static int cut_answer(run_t *r, const answer_t *a) {
    const char *code = agt_model_err_code(a->cut);
    char msg[384];
    snprintf(msg, sizeof msg, "agent %s: %s (finish_reason %s)%s", r->def->name,
             agt_model_strerror(a->cut), a->cut == AGT_EMODEL_TRUNCATED ? "length" :
             "content_filter", a->n ? "; its tool calls were not run" : "");
    act_log(ACT_LOG_WARN, "llm_cut", "agent=%s code=%s calls=%zu text_bytes=%zu", r->def->name,
            code, a->n, a->text ? strlen(a->text) : 0);
    abp_event_t ev = {.text = a->text && a->text[0] ? a->text : NULL, .error_code = code,
                      .error_message = msg};
    agt_event_extra_t x = {.usage = a->has_usage ? &a->usage : NULL, .with_sum = true};
    agt_emit_ex(r->ctx, &ev, &x);
    agt__host->api->fail(r->ctx, code, msg);
    return a->cut;
}

static int steps(run_t *r) {
    int max = r->def->llm.max_steps > 0 ? r->def->llm.max_steps : AGT_DEFAULT_MAX_STEPS;
    for (int step = 0; step < max; step++) {
        answer_t a = {0};
        int rc = ask_model(r, &a);
        if (!rc) rc = after_model(r, &a);
        if (rc) {
            answer_free(&a);
            return run_failed(r, rc, r->cb_failed ? "callback_failed" : agt_model_err_code(rc));
        }
        if (a.cut) { /* never a result, and its calls (maybe cut mid-arguments) never run */
            rc = cut_answer(r, &a);
            answer_free(&a);
            return rc;
        }
        if (!a.n) {
            rc = final_answer(r, &a);
            answer_free(&a);
            return rc;
        }
        rc = emit_calls(r, &a);
        if (rc == 0 || rc == ABP_EAGAIN) rc = run_calls(r, &a);
        answer_free(&a);
        if (rc == 1) return 0; /* transferred: the runner runs the named agent */
        if (rc) return run_failed(r, rc, "internal");
    }
    snprintf(r->err, sizeof r->err, "no final answer after %d model calls (max_steps)", max);
    return run_failed(r, ACT_EINVAL, "max_steps");
}

int agt_llm_run(abp_ctx_t *ctx, const agt_def_t *def, const uint8_t *input, size_t n) {
    if (!ctx || !def || def->kind != AGT_LLM) return ABP_EINVAL;
    run_t r = {.ctx = ctx, .def = def};
    int rc = setup(&r);
    if (rc) {
        rc = run_failed(&r, rc, rc == ACT_ENOMEM ? "internal" : "bad_config");
    } else if ((rc = start_conv(&r, input, n))) {
        rc = run_failed(&r, rc, rc == ACT_ENOMEM ? "internal" : "bad_instruction");
    } else {
        rc = steps(&r);
    }
    conv_free(&r.conv);
    agt_offers_free(&r.offers);
    free(r.tools);
    return rc;
}
