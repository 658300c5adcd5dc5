/* proto/src/origin.c: a work's `origin` (PROTOCOL.md "Broker pairs"), the one map a broker
 * pair's active stamps on work and a worker hands back untouched in its held report: a
 * client's query (who to answer: routing id, CURVE key) or a worker's call (the caller's
 * incarnation and call id, and the parent job of a sub-invocation), written and read here so
 * that the broker's two ends agree on it. */
#include "internal.h"

#include <string.h>

int proto_enc_origin(proto_buf_t *b, const proto_origin_t *o) {
    bool client = o->client_n > 0, caller = o->caller != 0;
    if (client == caller || !o->id.n || (o->key && strnlen(o->key, 41) != 40))
        return PROTO_EBAD;
    uint32_t n = 3 + (client && o->key) + (caller && o->parent);
    msgpack_pack_map(&b->pk, n);
    if (client && o->key) {
        proto_pack_cstr(b, "key");
        proto_pack_str(b, o->key, 40);
    }
    proto_pack_cstr(b, "id");
    proto_buf_raw(b, o->id);
    if (client) {
        proto_pack_cstr(b, "client");
        msgpack_pack_bin(&b->pk, o->client_n);
        msgpack_pack_bin_body(&b->pk, o->client, o->client_n);
    } else {
        proto_pack_cstr(b, "caller");
        msgpack_pack_uint64(&b->pk, o->caller);
        if (o->parent) {
            proto_pack_cstr(b, "parent");
            msgpack_pack_uint64(&b->pk, o->parent);
        }
    }
    proto_pack_cstr(b, "idempotent");
    if (o->idempotent) msgpack_pack_true(&b->pk);
    else msgpack_pack_false(&b->pk);
    return b->failed ? PROTO_ENOMEM : 0;
}

/* v as a non-negative integer. */
static bool val_u64(const proto_val_t *v, uint64_t *out) {
    if (v->type == PROTO_V_UINT) *out = v->u;
    else if (v->type == PROTO_V_INT && v->i >= 0) *out = (uint64_t)v->i;
    else return false;
    return true;
}

static int bad(const char **why, const char *what) {
    if (why) *why = what;
    return PROTO_EBAD;
}

int proto_origin_read(const proto_val_t *v, size_t max_id, proto_origin_t *o,
                      const char **why) {
    proto_val_t x;
    memset(o, 0, sizeof *o);
    if (v->type != PROTO_V_MAP) return bad(why, "'origin' is not a map");
    if (proto_val_map_get(v, "id", &x) != 1 ||
        (x.type != PROTO_V_STR && x.type != PROTO_V_UINT && x.type != PROTO_V_INT) ||
        (max_id && x.raw_n > max_id))
        return bad(why, "origin 'id' is not a query id");
    o->id = (proto_raw_t){x.raw, x.raw_n};
    bool has_client = proto_val_map_get(v, "client", &x) == 1;
    if (has_client) {
        if (x.type != PROTO_V_BIN || x.len == 0 || x.len > 255)
            return bad(why, "origin 'client' is not a routing id");
        o->client = x.data;
        o->client_n = x.len;
        if (proto_val_map_get(v, "key", &x) == 1) {
            if (x.type != PROTO_V_STR || x.len != 40)
                return bad(why, "origin 'key' is not a CURVE key");
            o->key = (const char *)x.data;
        }
    }
    if (proto_val_map_get(v, "caller", &x) == 1) {
        if (has_client) return bad(why, "origin has both 'client' and 'caller'");
        if (!val_u64(&x, &o->caller) || o->caller == 0)
            return bad(why, "origin 'caller' is not a worker incarnation");
        proto_val_t id;
        if (proto_val_read(o->id.p, o->id.n, &id) != 0 || !val_u64(&id, &o->call))
            return bad(why, "origin 'id' of a call is not a non-negative integer");
        if (proto_val_map_get(v, "parent", &x) == 1 && !val_u64(&x, &o->parent))
            return bad(why, "origin 'parent' is not a job id");
    } else if (!has_client) {
        return bad(why, "origin names neither 'client' nor 'caller'");
    }
    o->idempotent = proto_val_map_get(v, "idempotent", &x) == 1 && x.type == PROTO_V_BOOL &&
                    x.b;
    return 0;
}
