/* runner/value.c: the plugin table's msgpack helpers. Reading adapts proto's in-place reader
 * (proto_val_*: every length checked against the bytes that remain, nothing allocated) to
 * abp_value_t. Building wraps proto's buffer and msgpack-c's packer. */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

/* abp_value_t is proto_val_t in the plugin ABI's shape; EXT keeps the ABI's view of the
 * bytes: the type byte, then the data. */
static void to_abp(const proto_val_t *v, abp_value_t *out) {
    static const abp_type_t type_of[] = {
        [PROTO_V_NIL] = ABP_NIL,     [PROTO_V_BOOL] = ABP_BOOL,   [PROTO_V_INT] = ABP_INT,
        [PROTO_V_UINT] = ABP_UINT,   [PROTO_V_FLOAT] = ABP_FLOAT, [PROTO_V_STR] = ABP_STR,
        [PROTO_V_BIN] = ABP_BIN,     [PROTO_V_ARRAY] = ABP_ARRAY, [PROTO_V_MAP] = ABP_MAP,
        [PROTO_V_EXT] = ABP_EXT,
    };
    memset(out, 0, sizeof(*out));
    out->type = type_of[v->type];
    out->b = v->b;
    out->i = v->i;
    out->u = v->u;
    out->f = v->f;
    out->len = v->len;
    if (v->type == PROTO_V_STR || v->type == PROTO_V_BIN) out->str = (const char *)v->data;
    if (v->type == PROTO_V_EXT) out->str = (const char *)v->data - 1, out->len = v->len + 1;
    out->raw = v->raw;
    out->raw_n = v->raw_n;
}

/* The container a value came from; proto's lookups read only raw and raw_n. */
static proto_val_t from_abp(const abp_value_t *v) {
    return (proto_val_t){.raw = v->raw, .raw_n = v->raw_n};
}

int agt_value(const uint8_t *mp, size_t n, abp_value_t *out) {
    proto_val_t v;
    if (!mp || !out) return ABP_EINVAL;
    if (proto_val_read(mp, n, &v)) {
        memset(out, 0, sizeof(*out));
        return ABP_EINVAL;
    }
    to_abp(&v, out);
    return 0;
}

bool agt_is_one_value(const uint8_t *mp, size_t n) {
    proto_val_t v;
    return mp && n && proto_val_read(mp, n, &v) == 0 && v.raw_n == n;
}

/* Maps proto's 1 (found) / 0 (absent) / error onto the plugin ABI's codes. */
static int lookup_rc(int rc, const proto_val_t *v, abp_value_t *out) {
    if (rc < 0) return ABP_EINVAL;
    if (rc == 0) return ABP_ENOENT;
    to_abp(v, out);
    return 0;
}

int agt_map_get(const abp_value_t *map, const char *key, abp_value_t *out) {
    if (!map || !key || !out || map->type != ABP_MAP) return ABP_EINVAL;
    proto_val_t m = from_abp(map), v;
    return lookup_rc(proto_val_map_get(&m, key, &v), &v, out);
}

int agt_array_get(const abp_value_t *array, size_t i, abp_value_t *out) {
    if (!array || !out || array->type != ABP_ARRAY) return ABP_EINVAL;
    if (i >= array->len) return ABP_ENOENT;
    proto_val_t a = from_abp(array), v;
    return lookup_rc(proto_val_array_get(&a, i, &v), &v, out);
}

/* ---- building ---- */

abp_pack_t *agt_pack_new(void) {
    abp_pack_t *p = malloc(sizeof(*p));
    if (p) proto_buf_init(&p->buf);
    return p;
}

void agt_pack_free(abp_pack_t **p) {
    if (!p || !*p) return;
    proto_buf_free(&(*p)->buf);
    free(*p);
    *p = NULL;
}

void agt_pack_reset(abp_pack_t *p) { proto_buf_reset(&p->buf); }
static int st(abp_pack_t *p) { return p->buf.failed ? ABP_ENOMEM : 0; }
int agt_pack_nil(abp_pack_t *p) { return msgpack_pack_nil(&p->buf.pk), st(p); }
int agt_pack_bool(abp_pack_t *p, bool v) {
    return (v ? msgpack_pack_true(&p->buf.pk) : msgpack_pack_false(&p->buf.pk)), st(p);
}
int agt_pack_int(abp_pack_t *p, int64_t v) { return msgpack_pack_int64(&p->buf.pk, v), st(p); }
int agt_pack_uint(abp_pack_t *p, uint64_t v) {
    return msgpack_pack_uint64(&p->buf.pk, v), st(p);
}
int agt_pack_double(abp_pack_t *p, double v) {
    return msgpack_pack_double(&p->buf.pk, v), st(p);
}
int agt_pack_str(abp_pack_t *p, const char *s, size_t n) {
    if (!s && n) return ABP_EINVAL;
    return proto_pack_str(&p->buf, s ? s : "", n), st(p);
}
int agt_pack_cstr(abp_pack_t *p, const char *s) { return agt_pack_str(p, s, s ? strlen(s) : 0); }
int agt_pack_bin(abp_pack_t *p, const void *b, size_t n) {
    if ((!b && n) || n > UINT32_MAX) return ABP_EINVAL;
    msgpack_pack_bin(&p->buf.pk, n);
    if (n) msgpack_pack_bin_body(&p->buf.pk, b, n);
    return st(p);
}
int agt_pack_array(abp_pack_t *p, uint32_t n) { return msgpack_pack_array(&p->buf.pk, n), st(p); }
int agt_pack_map(abp_pack_t *p, uint32_t n) { return msgpack_pack_map(&p->buf.pk, n), st(p); }

int agt_pack_raw(abp_pack_t *p, const uint8_t *mp, size_t n) {
    if (!agt_is_one_value(mp, n)) return ABP_EINVAL;
    return proto_buf_raw(&p->buf, (proto_raw_t){mp, n}), st(p);
}

int agt_pack_json(abp_pack_t *p, const char *json) {
    if (!json) return ABP_EINVAL;
    int rc = proto_json_to_msgpack(json, strlen(json), &p->buf, NULL);
    if (rc == PROTO_ENOMEM) return ABP_ENOMEM;
    return rc ? ABP_EINVAL : 0;
}

int agt_pack_data(const abp_pack_t *p, const uint8_t **bytes, size_t *n) {
    if (p->buf.failed) return ABP_ENOMEM;
    *bytes = p->buf.p;
    *n = p->buf.n;
    return 0;
}
