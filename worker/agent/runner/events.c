/* agent/events.c: ADK events and the invocation's state view. agt_emit builds the wire form
 * of proto/PROTOCOL.md ("Agent events") around what an agent gives (abp_event_t), sends it as
 * a job event, and applies its state_delta to the job's view at once, so a later step of the
 * same job sees the write before the broker has stored it. Sub-invocations' events come back
 * through agt_call_event and merge the same way, in the order they arrive. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "runner.h"

/* ---- ids ---- */

/* splitmix64 over a random start: unique within the process, unguessable enough across. */
static uint64_t id_state;

void agt__make_id(char prefix, char *buf) {
    if (!id_state) {
        if (getrandom(&id_state, sizeof id_state, GRND_NONBLOCK) != sizeof id_state) {
            id_state = (uint64_t)agt__host->api->unix_ms() * 0x9e3779b97f4a7c15ull;
        }
        id_state |= 1;
    }
    uint64_t z = (id_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    /* "%c-%016llx" by hand: several ids an invocation, and snprintf was ~1% of the worker */
    static const char hex[] = "0123456789abcdef";
    buf[0] = prefix;
    buf[1] = '-';
    for (int i = 17; i >= 2; i--, z >>= 4) buf[i] = hex[z & 15];
    buf[18] = '\0';
}

/* ---- the state view ---- */

static bool is_map(proto_raw_t raw, proto_val_t *v) {
    return raw.n && proto_val_read(raw.p, raw.n, v) == 0 && v->raw_n == raw.n &&
           v->type == PROTO_V_MAP;
}

/* Reads delta into *m when it is a map with string keys. */
static bool delta_read(proto_raw_t delta, proto_val_t *m) {
    proto_val_t k, v;
    if (!is_map(delta, m)) return false;
    size_t cur = 0;
    int rc;
    while ((rc = proto_val_next(m, &cur, &k)) == 1) {
        if (k.type != PROTO_V_STR || proto_val_next(m, &cur, &v) != 1) return false;
    }
    return rc == 0;
}

bool agt__delta_ok(proto_raw_t delta) {
    proto_val_t m;
    return delta_read(delta, &m);
}

/* Whether the map holds key (a str value) at an entry after index skip (-1: anywhere). */
static bool map_has_key(const proto_val_t *m, const proto_val_t *key, long skip) {
    proto_val_t k, v;
    size_t cur = 0;
    for (long i = 0; proto_val_next(m, &cur, &k) == 1 && proto_val_next(m, &cur, &v) == 1;
         i++) {
        if (i > skip && k.len == key->len && memcmp(k.data, key->data, k.len) == 0) return true;
    }
    return false;
}

/* Packs the entries of m to keep: every key not in drop (when given) and, with last_wins,
 * only the last of equal keys, and no nil values when no_nil. Returns how many (count). */
static uint32_t pack_entries(proto_buf_t *b, const proto_val_t *m, const proto_val_t *drop,
                             bool no_nil, bool write) {
    proto_val_t k, v;
    size_t cur = 0;
    uint32_t count = 0;
    for (long i = 0; proto_val_next(m, &cur, &k) == 1 && proto_val_next(m, &cur, &v) == 1;
         i++) {
        if (drop && map_has_key(drop, &k, -1)) continue;
        if (map_has_key(m, &k, i)) continue; /* a later entry of m wins */
        if (no_nil && v.type == PROTO_V_NIL) continue;
        count++;
        if (write) {
            proto_buf_raw(b, (proto_raw_t){k.raw, k.raw_n});
            proto_buf_raw(b, (proto_raw_t){v.raw, v.raw_n});
        }
    }
    return count;
}

int agt__state_apply(struct agt_job *jb, proto_raw_t delta) {
    proto_val_t old, d;
    if (!delta_read(delta, &d)) return ABP_EINVAL;
    static const uint8_t empty = 0x80;
    proto_buf_t *from = &jb->st[jb->cur], *to = &jb->st[1 - jb->cur];
    if (proto_val_read(from->n ? from->p : &empty, from->n ? from->n : 1, &old) != 0)
        return ABP_EINVAL; /* n == 0: no state came, the empty map */
    uint32_t n = pack_entries(NULL, &old, &d, false, false) +
                 pack_entries(NULL, &d, NULL, true, false);
    proto_buf_reset(to);
    msgpack_pack_map(&to->pk, n);
    pack_entries(to, &old, &d, false, true);
    pack_entries(to, &d, NULL, true, true);
    if (to->failed) return ABP_ENOMEM;
    jb->cur = 1 - jb->cur;
    return 0;
}

proto_raw_t agt_state(abp_ctx_t *ctx) {
    static const uint8_t empty = 0x80;
    if (!agt__job(ctx)) return (proto_raw_t){&empty, 1};
    proto_buf_t *b = &agt__job(ctx)->st[agt__job(ctx)->cur];
    if (!b->n) return (proto_raw_t){&empty, 1}; /* no state came and none was set */
    return (proto_raw_t){b->p, b->n};
}

int agt_state_get(abp_ctx_t *ctx, const char *key, const uint8_t **value, size_t *n) {
    proto_raw_t st = agt_state(ctx);
    proto_val_t m, v;
    if (!key || !value || !n) return ABP_EINVAL;
    if (proto_val_read(st.p, st.n, &m) != 0 || proto_val_map_get(&m, key, &v) != 1) {
        return ABP_ENOENT;
    }
    *value = v.raw;
    *n = v.raw_n;
    return 0;
}

/* ---- building an event ---- */

static bool one_value(const uint8_t *p, size_t n) { return !n || agt_is_one_value(p, n); }

static bool event_ok(const abp_event_t *ev) {
    proto_val_t v;
    if (!one_value(ev->data, ev->data_n) || !one_value(ev->parts, ev->parts_n)) return false;
    if (ev->parts_n && (proto_val_read(ev->parts, ev->parts_n, &v) || v.type != PROTO_V_ARRAY)) {
        return false;
    }
    return !ev->state_delta_n || agt__delta_ok((proto_raw_t){ev->state_delta, ev->state_delta_n});
}

static bool has_content(const abp_event_t *ev) {
    return ev->text || ev->data_n || ev->parts_n;
}

static void pack_content(proto_buf_t *b, const abp_event_t *ev) {
    proto_val_t parts = {0}, part;
    if (ev->parts_n) proto_val_read(ev->parts, ev->parts_n, &parts);
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "role");
    proto_pack_cstr(b, ev->role ? ev->role : "model");
    proto_pack_cstr(b, "parts");
    msgpack_pack_array(&b->pk, (ev->text ? 1 : 0) + (ev->data_n ? 1 : 0) + (uint32_t)parts.len);
    if (ev->text) {
        msgpack_pack_map(&b->pk, 1);
        proto_pack_cstr(b, "text");
        proto_pack_cstr(b, ev->text);
    }
    if (ev->data_n) {
        msgpack_pack_map(&b->pk, 1);
        proto_pack_cstr(b, "data");
        proto_buf_raw(b, (proto_raw_t){ev->data, ev->data_n});
    }
    size_t cur = 0;
    while (ev->parts_n && proto_val_next(&parts, &cur, &part) == 1) {
        proto_buf_raw(b, (proto_raw_t){part.raw, part.raw_n});
    }
}

static void pack_actions(proto_buf_t *b, const abp_event_t *ev) {
    msgpack_pack_map(&b->pk, (ev->state_delta_n ? 1 : 0) + (ev->transfer_to_agent ? 1 : 0) +
                                 (ev->escalate ? 1 : 0));
    if (ev->state_delta_n) {
        proto_pack_cstr(b, "state_delta");
        proto_buf_raw(b, (proto_raw_t){ev->state_delta, ev->state_delta_n});
    }
    if (ev->transfer_to_agent) {
        proto_pack_cstr(b, "transfer_to_agent");
        proto_pack_cstr(b, ev->transfer_to_agent);
    }
    if (ev->escalate) {
        proto_pack_cstr(b, "escalate");
        msgpack_pack_true(&b->pk);
    }
}

static void pack_kv(proto_buf_t *b, const char *k, const char *v) {
    proto_pack_cstr(b, k);
    proto_pack_cstr(b, v);
}

/* ADK's usage_metadata names; a count the server did not report is left out. */
static void pack_usage(proto_buf_t *b, const char *key, const agt_usage_t *u) {
    const int64_t v[3] = {u->prompt_tokens, u->completion_tokens, u->total_tokens};
    static const char *const names[3] = {"prompt_token_count", "candidates_token_count",
                                         "total_token_count"};
    proto_pack_cstr(b, key);
    msgpack_pack_map(&b->pk, (v[0] >= 0) + (v[1] >= 0) + (v[2] >= 0));
    for (int i = 0; i < 3; i++)
        if (v[i] >= 0) proto_pack_cstr(b, names[i]), msgpack_pack_int64(&b->pk, v[i]);
}

/* Adds u's reported counts to the sum (a total not reported is prompt + completion). */
static void usage_add(agt_usage_t *sum, const agt_usage_t *u) {
    int64_t p = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    int64_t c = u->completion_tokens > 0 ? u->completion_tokens : 0;
    int64_t t = u->total_tokens >= 0 ? u->total_tokens : p + c;
    sum->prompt_tokens += p, sum->completion_tokens += c, sum->total_tokens += t;
}

static void pack_event(proto_buf_t *b, abp_ctx_t *ctx, const abp_event_t *ev,
                       const agt_event_extra_t *x) {
    char id[24];
    const char *branch = agt_branch(ctx);
    bool actions = ev->state_delta_n || ev->transfer_to_agent || ev->escalate;
    struct agt_job *jb = agt__job(ctx);
    bool usage = x && x->usage, sum = x && x->with_sum && jb;
    agt__make_id('e', id);
    msgpack_pack_map(&b->pk, 4 + (*branch ? 1 : 0) + (has_content(ev) ? 1 : 0) +
                                 (ev->partial ? 1 : 0) + (ev->final ? 1 : 0) +
                                 (actions ? 1 : 0) + (ev->error_code ? 1 : 0) +
                                 (ev->error_message ? 1 : 0) + usage + sum);
    pack_kv(b, "id", id);
    pack_kv(b, "invocation_id", agt_invocation_id(ctx));
    pack_kv(b, "author", agt__host->api->agent_name(ctx));
    if (*branch) pack_kv(b, "branch", branch);
    proto_pack_cstr(b, "ts_ms");
    msgpack_pack_int64(&b->pk, agt__host->api->unix_ms());
    if (has_content(ev)) {
        proto_pack_cstr(b, "content");
        pack_content(b, ev);
    }
    if (ev->partial) proto_pack_cstr(b, "partial"), msgpack_pack_true(&b->pk);
    if (ev->final) proto_pack_cstr(b, "final"), msgpack_pack_true(&b->pk);
    if (actions) {
        proto_pack_cstr(b, "actions");
        pack_actions(b, ev);
    }
    if (ev->error_code) pack_kv(b, "error_code", ev->error_code);
    if (ev->error_message) pack_kv(b, "error_message", ev->error_message);
    if (usage) pack_usage(b, "usage_metadata", x->usage);
    if (sum) pack_usage(b, "invocation_usage", &jb->usage);
}

/* What the event asks of the runner: the delta now, transfer and escalate when the agent
 * that emitted it returns. */
static int record_actions(abp_ctx_t *ctx, const abp_event_t *ev) {
    struct agt_job *jb = agt__job(ctx);
    if (!jb) return 0;
    if (ev->state_delta_n && !ev->partial) {
        int rc = agt__state_apply(jb, (proto_raw_t){ev->state_delta, ev->state_delta_n});
        if (rc) return rc;
    }
    if (!jb->top) return 0;
    if (ev->escalate) jb->top->escalated = true;
    if (ev->transfer_to_agent) {
        char *t = strdup(ev->transfer_to_agent);
        if (!t) return ABP_ENOMEM;
        free(jb->top->transfer);
        jb->top->transfer = t;
    }
    return 0;
}

int agt_emit(abp_ctx_t *ctx, const abp_event_t *ev) { return agt_emit_ex(ctx, ev, NULL); }

int agt_emit_ex(abp_ctx_t *ctx, const abp_event_t *ev, const agt_event_extra_t *x) {
    if (!ctx || !ev || !event_ok(ev)) return ABP_EINVAL;
    if (ev->transfer_to_agent && (!*ev->transfer_to_agent ||
                                  strlen(ev->transfer_to_agent) > PROTO_MAX_NAME)) {
        return ABP_EINVAL;
    }
    if (x && x->usage && agt__job(ctx)) usage_add(&agt__job(ctx)->usage, x->usage);
    proto_buf_t b;
    proto_buf_init(&b);
    pack_event(&b, ctx, ev, x);
    int rc = b.failed ? ABP_ENOMEM : agt__host->emit_built(ctx, b.p, b.n); /* parts checked */
    proto_buf_free(&b);
    return rc ? rc : record_actions(ctx, ev);
}

int agt__emit_value(abp_ctx_t *ctx, const uint8_t *value, size_t n, bool final) {
    proto_val_t v;
    abp_event_t ev = {.final = final};
    char *text = NULL;
    if (proto_val_read(value, n, &v) == 0 && v.type == PROTO_V_STR) {
        text = strndup((const char *)v.data, v.len);
        if (!text) return ABP_ENOMEM;
        ev.text = text;
    } else {
        ev.data = value;
        ev.data_n = n;
    }
    int rc = agt_emit(ctx, &ev);
    free(text);
    return rc;
}

/* ---- sub-invocations' events ---- */

/* A sub-invocation's model call counts toward this invocation's sum. */
static void call_usage(struct agt_job *jb, const proto_val_t *ev) {
    proto_val_t um, v;
    if (proto_val_map_get(ev, "usage_metadata", &um) != 1 || um.type != PROTO_V_MAP) return;
    agt_usage_t u = {-1, -1, -1};
    static const char *const names[3] = {"prompt_token_count", "candidates_token_count",
                                         "total_token_count"};
    int64_t *dst[3] = {&u.prompt_tokens, &u.completion_tokens, &u.total_tokens};
    for (int i = 0; i < 3; i++)
        if (proto_val_map_get(&um, names[i], &v) == 1 &&
            v.type == PROTO_V_INT && v.i >= 0)
            *dst[i] = v.i;
    usage_add(&jb->usage, &u);
}

void agt_call_event(abp_ctx_t *ctx, proto_raw_t event) {
    proto_val_t ev, author, partial, actions, delta, esc;
    if (!agt__job(ctx) || proto_val_read(event.p, event.n, &ev) || ev.type != PROTO_V_MAP) return;
    if (proto_val_map_get(&ev, "author", &author) != 1) return; /* not an ADK event */
    if (proto_val_map_get(&ev, "partial", &partial) == 1 && partial.type == PROTO_V_BOOL &&
        partial.b) {
        return;
    }
    call_usage(agt__job(ctx), &ev);
    if (proto_val_map_get(&ev, "actions", &actions) != 1 || actions.type != PROTO_V_MAP) return;
    if (proto_val_map_get(&actions, "state_delta", &delta) == 1) {
        int rc = agt__state_apply(agt__job(ctx), (proto_raw_t){delta.raw, delta.raw_n});
        if (rc) {
            act_log(ACT_LOG_WARN, "state_delta_ignored", "job=%llu error=%s",
                    (unsigned long long)agt__host->api->job_id(ctx), act_err_name(rc));
        }
    }
    if (proto_val_map_get(&actions, "escalate", &esc) == 1 && esc.type == PROTO_V_BOOL &&
        esc.b && agt__job(ctx)->top) {
        agt__job(ctx)->top->escalated = true;
    }
}
