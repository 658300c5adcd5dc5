/* broker/inv_event.c: the invocation helpers that need no broker state (invocations.h, last
 * section): reading an agent event's author, id, time and state delta in place, and writing
 * the events the broker itself adds to a session. Kept apart from invocations.c so that
 * tests/broker/test_invocations.c links them with the session store alone. */
#include "invocations.h"

#include <errno.h>
#include <stdio.h>

static proto_str_t val_str(const proto_val_t *v) {
    proto_str_t s = {(const char *)v->data, v->len};
    return s;
}

/* The fields of an event the broker reads, found in one pass over its top-level map (the
 * first of a repeated key wins, as proto_val_map_get would give): events arrive by the
 * thousands per second, and a lookup per field walked the event once per field. */
typedef struct ev_fields {
    proto_val_t author, partial, id, ts_ms, actions;
    bool has_author, has_partial, has_id, has_ts, has_actions;
} ev_fields_t;

static void take(proto_val_t *dst, bool *has, const proto_val_t *v) {
    if (*has) return;
    *dst = *v;
    *has = true;
}

static void read_fields(const proto_val_t *ev, ev_fields_t *f) {
    proto_val_t k, v;
    size_t cur = 0;
    while (proto_val_next(ev, &cur, &k) == 1 && proto_val_next(ev, &cur, &v) == 1) {
        if (k.type != PROTO_V_STR) continue;
        if (proto_val_str_eq(&k, "author")) take(&f->author, &f->has_author, &v);
        else if (proto_val_str_eq(&k, "partial")) take(&f->partial, &f->has_partial, &v);
        else if (proto_val_str_eq(&k, "id")) take(&f->id, &f->has_id, &v);
        else if (proto_val_str_eq(&k, "ts_ms")) take(&f->ts_ms, &f->has_ts, &v);
        else if (proto_val_str_eq(&k, "actions")) take(&f->actions, &f->has_actions, &v);
    }
}

void brk_inv_event_parse(proto_raw_t event, brk_inv_event_t *out) {
    proto_val_t ev, v;
    ev_fields_t f = {0};
    *out = (brk_inv_event_t){.ts_ms = -1};
    if (event.n == 0 || proto_val_read(event.p, event.n, &ev) != 0 || ev.type != PROTO_V_MAP)
        return;
    read_fields(&ev, &f);
    if (!f.has_author || f.author.type != PROTO_V_STR) return;
    if (f.has_partial && f.partial.type == PROTO_V_BOOL && f.partial.b) return;
    out->author = val_str(&f.author);
    out->store = true;
    if (f.has_id && f.id.type == PROTO_V_STR) out->id = val_str(&f.id);
    if (f.has_ts && f.ts_ms.type == PROTO_V_INT) out->ts_ms = f.ts_ms.i;
    if (f.has_actions && f.actions.type == PROTO_V_MAP &&
        proto_val_map_get(&f.actions, "state_delta", &v) == 1 && v.type == PROTO_V_MAP)
        out->delta = (proto_raw_t){v.raw, v.raw_n};
}

void brk_inv_id_format(char *out, char prefix, uint64_t x) {
    snprintf(out, BRK_INV_ID_LEN + 1, "%c-%016llx", prefix, (unsigned long long)x);
}

static void key_cstr(proto_buf_t *o, const char *key, const char *value) {
    proto_pack_cstr(o, key);
    proto_pack_cstr(o, value);
}

/* The fields every broker-written event starts with. */
static void pack_head(proto_buf_t *o, uint32_t n_fields, const char *id, const char *invocation,
                      const char *author, int64_t ts_ms) {
    proto_buf_reset(o);
    msgpack_pack_map(&o->pk, n_fields);
    key_cstr(o, "id", id);
    key_cstr(o, "invocation_id", invocation);
    key_cstr(o, "author", author);
    proto_pack_cstr(o, "ts_ms");
    msgpack_pack_int64(&o->pk, ts_ms);
}

int brk_inv_enc_user_event(proto_buf_t *o, const char *id, const char *invocation,
                           int64_t ts_ms, proto_raw_t input) {
    static const uint8_t nil = 0xc0;
    proto_str_t text;
    pack_head(o, 5, id, invocation, "user", ts_ms);
    proto_pack_cstr(o, "content");
    msgpack_pack_map(&o->pk, 2);
    key_cstr(o, "role", "user");
    proto_pack_cstr(o, "parts");
    msgpack_pack_array(&o->pk, 1);
    msgpack_pack_map(&o->pk, 1);
    if (input.n && proto_raw_str(input, &text)) {
        proto_pack_cstr(o, "text");
        proto_pack_str(o, text.p, text.n);
    } else {
        proto_pack_cstr(o, "data");
        proto_buf_raw(o, input.n ? input : (proto_raw_t){&nil, 1});
    }
    return o->failed ? -ENOMEM : 0;
}

int brk_inv_enc_broker_event(proto_buf_t *o, const char *id, const char *invocation,
                             int64_t ts_ms, const char *code, const char *message) {
    pack_head(o, 6, id, invocation, "broker", ts_ms);
    key_cstr(o, "error_code", code);
    key_cstr(o, "error_message", message);
    return o->failed ? -ENOMEM : 0;
}
