/* broker/inv_event.c: the invocation helpers that need no broker state (invocations.h, last
 * section): reading an agent event's author, id, time and state delta in place, and writing
 * the events the broker itself adds to a session. Kept apart from invocations.c so that
 * tests/unit/test_invocations.c links them with the session store alone. */
#include "invocations.h"

#include <errno.h>
#include <stdio.h>

static proto_str_t val_str(const proto_val_t *v) {
    proto_str_t s = {(const char *)v->data, v->len};
    return s;
}

static bool map_str(const proto_val_t *map, const char *key, proto_str_t *out) {
    proto_val_t v;
    if (proto_val_map_get(map, key, &v) != 1 || v.type != PROTO_V_STR) return false;
    *out = val_str(&v);
    return true;
}

static bool map_true(const proto_val_t *map, const char *key) {
    proto_val_t v;
    return proto_val_map_get(map, key, &v) == 1 && v.type == PROTO_V_BOOL && v.b;
}

void brk_inv_event_parse(proto_raw_t event, brk_inv_event_t *out) {
    proto_val_t ev, v, actions;
    *out = (brk_inv_event_t){.ts_ms = -1};
    if (event.n == 0 || proto_val_read(event.p, event.n, &ev) != 0 || ev.type != PROTO_V_MAP)
        return;
    if (!map_str(&ev, "author", &out->author) || map_true(&ev, "partial")) return;
    out->store = true;
    map_str(&ev, "id", &out->id);
    if (proto_val_map_get(&ev, "ts_ms", &v) == 1 && v.type == PROTO_V_INT) out->ts_ms = v.i;
    if (proto_val_map_get(&ev, "actions", &actions) == 1 && actions.type == PROTO_V_MAP &&
        proto_val_map_get(&actions, "state_delta", &v) == 1 && v.type == PROTO_V_MAP)
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
