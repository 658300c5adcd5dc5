/* proto/src/val.c: proto_val_*, the public in-place reader of msgpack values (proto.h). Built
 * on proto__rd_next / proto__rd_skip: every header checked against the bytes that remain,
 * elements found by skipping (no recursion), nothing allocated. */
#include "internal.h"

/* Fills out from the header it (already read at base+at, reader now past it) and the end of
 * the whole value (stop). */
static void fill(const proto__item_t *it, const uint8_t *base, size_t at, size_t after,
                 size_t stop, proto_val_t *out) {
    static const int type_of[] = {
        [PROTO__NIL] = PROTO_V_NIL,     [PROTO__BOOL] = PROTO_V_BOOL,
        [PROTO__UINT] = PROTO_V_UINT,   [PROTO__INT] = PROTO_V_INT,
        [PROTO__FLOAT] = PROTO_V_FLOAT, [PROTO__STR] = PROTO_V_STR,
        [PROTO__BIN] = PROTO_V_BIN,     [PROTO__EXT] = PROTO_V_EXT,
        [PROTO__ARRAY] = PROTO_V_ARRAY, [PROTO__MAP] = PROTO_V_MAP,
    };
    out->type = type_of[it->kind];
    out->b = it->b;
    out->f = it->f;
    out->ext_type = it->ext_type;
    out->data = it->data;
    out->len = it->len;
    if (it->kind == PROTO__UINT) {
        out->u = it->u;
        /* one integer type for whatever fits int64, so callers test one case */
        if (it->u <= (uint64_t)INT64_MAX) out->type = PROTO_V_INT, out->i = (int64_t)it->u;
    } else if (it->kind == PROTO__INT) {
        out->i = it->i;
        if (it->i >= 0) out->u = (uint64_t)it->i;
    }
    bool container = it->kind == PROTO__ARRAY || it->kind == PROTO__MAP;
    out->body = base + (container ? after : stop);
    out->raw = base + at;
    out->raw_n = stop - at;
}

/* Reads the value at offset at of [base, base+n). */
static int read_at(const uint8_t *base, size_t n, size_t at, proto_val_t *out) {
    proto__rd_t r = {base, n, at};
    proto__item_t it;
    memset(out, 0, sizeof *out);
    if (proto__rd_next(&r, &it)) return PROTO_EBAD;
    size_t after = r.off;
    r.off = at;
    if (proto__rd_skip(&r)) return PROTO_EBAD;
    fill(&it, base, at, after, r.off, out);
    return 0;
}

int proto_val_read(const uint8_t *p, size_t n, proto_val_t *out) {
    if (!out) return PROTO_EBAD;
    if (!p) {
        memset(out, 0, sizeof *out);
        return PROTO_EBAD;
    }
    return read_at(p, n, 0, out);
}

/* The offset of c's first element within c->raw (its header re-read, so that only raw and
 * raw_n are trusted), or PROTO_EBAD when c is not a container. */
static int first_element(const proto_val_t *c, int kind, size_t *off) {
    proto__rd_t r = {c->raw, c->raw_n, 0};
    proto__item_t it;
    if (!c->raw || proto__rd_next(&r, &it)) return PROTO_EBAD;
    if (kind >= 0 ? it.kind != kind : it.kind != PROTO__ARRAY && it.kind != PROTO__MAP)
        return PROTO_EBAD;
    *off = r.off;
    return 0;
}

int proto_val_next(const proto_val_t *c, size_t *cursor, proto_val_t *out) {
    if (!c || !cursor || !out) return PROTO_EBAD;
    size_t off = *cursor;
    if (off == 0 && first_element(c, -1, &off)) return PROTO_EBAD;
    if (off >= c->raw_n) {
        *cursor = off;
        return 0;
    }
    if (read_at(c->raw, c->raw_n, off, out)) return PROTO_EBAD;
    *cursor = off + out->raw_n;
    return 1;
}

bool proto_val_str_eq(const proto_val_t *v, const char *s) {
    size_t n = strlen(s);
    return v->type == PROTO_V_STR && v->len == n && (n == 0 || memcmp(v->data, s, n) == 0);
}

int proto_val_map_get(const proto_val_t *map, const char *key, proto_val_t *out) {
    if (!map || !key || !out) return PROTO_EBAD;
    size_t off;
    if (first_element(map, PROTO__MAP, &off)) return PROTO_EBAD;
    proto__rd_t r = {map->raw, map->raw_n, off};
    while (r.off < r.n) {
        proto_val_t k;
        if (read_at(r.p, r.n, r.off, &k)) return PROTO_EBAD;
        r.off += k.raw_n;
        if (r.off >= r.n) return PROTO_EBAD; /* a key without its value */
        if (proto_val_str_eq(&k, key)) return read_at(r.p, r.n, r.off, out) ? PROTO_EBAD : 1;
        if (proto__rd_skip(&r)) return PROTO_EBAD;
    }
    return 0;
}

int proto_val_array_get(const proto_val_t *array, size_t i, proto_val_t *out) {
    if (!array || !out) return PROTO_EBAD;
    size_t off;
    if (first_element(array, PROTO__ARRAY, &off)) return PROTO_EBAD;
    proto__rd_t r = {array->raw, array->raw_n, off};
    for (size_t k = 0; k < i && r.off < r.n; k++) {
        if (proto__rd_skip(&r)) return PROTO_EBAD;
    }
    if (r.off >= r.n) return 0;
    return read_at(r.p, r.n, r.off, out) ? PROTO_EBAD : 1;
}
