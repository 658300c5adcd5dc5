/* value.c: the plugin table's msgpack helpers. Reading works in place on the bytes (a value's
 * header is decoded, its elements found by skipping, nothing allocated), with every length
 * checked against the bytes that remain. Building wraps proto's buffer and msgpack-c's packer. */
#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* Big-endian loads. */
static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The first byte: the type, what it holds itself, and the width (*w) of the length or scalar
 * that follows it. Returns false for the one byte msgpack never uses. */
static bool lead(uint8_t c, abp_value_t *v, int *w, uint64_t *bytes, uint64_t *kids) {
    if (c <= 0x7f) v->type = ABP_INT, v->i = c, v->u = c;
    else if (c >= 0xe0) v->type = ABP_INT, v->i = (int8_t)c;
    else if (c <= 0x8f) v->type = ABP_MAP, v->len = c & 0x0f, *kids = 2 * (uint64_t)v->len;
    else if (c <= 0x9f) v->type = ABP_ARRAY, v->len = c & 0x0f, *kids = v->len;
    else if (c <= 0xbf) v->type = ABP_STR, *bytes = c & 0x1f;
    else if (c == 0xc0) v->type = ABP_NIL;
    else if (c == 0xc1) return false;
    else if (c <= 0xc3) v->type = ABP_BOOL, v->b = c == 0xc3;
    else if (c <= 0xc6) v->type = ABP_BIN, *w = 1 << (c - 0xc4);
    else if (c <= 0xc9) v->type = ABP_EXT, *w = 1 << (c - 0xc7);
    else if (c <= 0xcb) v->type = ABP_FLOAT, *w = c == 0xca ? 4 : 8;
    else if (c <= 0xcf) v->type = ABP_UINT, *w = 1 << (c - 0xcc);
    else if (c <= 0xd3) v->type = ABP_INT, *w = 1 << (c - 0xd0);
    else if (c <= 0xd8) v->type = ABP_EXT, *bytes = 1 + ((uint64_t)1 << (c - 0xd4));
    else if (c <= 0xdb) v->type = ABP_STR, *w = 1 << (c - 0xd9);
    else if (c <= 0xdd) v->type = ABP_ARRAY, *w = c == 0xdc ? 2 : 4;
    else v->type = ABP_MAP, *w = c == 0xde ? 2 : 4;
    return true;
}

/* Applies x, the w bytes after the first: a length or a scalar. */
static void follow(abp_value_t *v, uint64_t x, int w, uint64_t *bytes, uint64_t *kids) {
    switch (v->type) {
    case ABP_BIN: case ABP_STR: *bytes = x; break;
    case ABP_EXT: *bytes = x + 1; break; /* the type byte */
    case ABP_ARRAY: v->len = x, *kids = x; break;
    case ABP_MAP: v->len = x, *kids = 2 * x; break;
    case ABP_UINT:
        v->u = x;
        if (x <= INT64_MAX) v->type = ABP_INT, v->i = (int64_t)x;
        break;
    case ABP_INT:
        v->i = w == 1 ? (int8_t)x : w == 2 ? (int16_t)x : w == 4 ? (int32_t)x : (int64_t)x;
        if (v->i >= 0) v->u = (uint64_t)v->i;
        break;
    case ABP_FLOAT:
        if (w == 4) {
            uint32_t u32 = (uint32_t)x;
            float f;
            memcpy(&f, &u32, 4);
            v->f = f;
        } else {
            memcpy(&v->f, &x, 8);
        }
        break;
    default: break;
    }
}

/* Decodes the header at p: the type, scalars, and for the rest where the payload starts
 * (*body), how many payload bytes follow (*bytes) and how many child values (*kids).
 * Returns false when the header does not fit in [p, end) or is not msgpack. */
static bool head(const uint8_t *p, const uint8_t *end, abp_value_t *v, const uint8_t **body,
                 uint64_t *bytes, uint64_t *kids) {
    memset(v, 0, sizeof(*v));
    *bytes = *kids = 0;
    int w = 0;
    if (p >= end || !lead(*p++, v, &w, bytes, kids)) return false;
    if ((size_t)w > (size_t)(end - p)) return false;
    bool scalar = v->type == ABP_FLOAT || v->type == ABP_INT || v->type == ABP_UINT;
    if (w) follow(v, be(p, w), w, bytes, kids);
    if (scalar) *bytes = (uint64_t)w; /* the scalar is the payload */
    else p += w;
    *body = p;
    return *bytes <= (uint64_t)(end - p);
}

/* Skips one whole value at p. Returns its end, or NULL when malformed. Iterative: a count of
 * values still to skip, so deep nesting cannot overflow the stack. */
static const uint8_t *skip(const uint8_t *p, const uint8_t *end) {
    uint64_t pending = 1;
    while (pending) {
        abp_value_t v;
        const uint8_t *body;
        uint64_t bytes, kids;
        if (!head(p, end, &v, &body, &bytes, &kids)) return NULL;
        p = body + bytes;
        pending = pending - 1 + kids;
        if (pending > (uint64_t)(end - p)) return NULL; /* every value takes a byte */
    }
    return p;
}

static int read_at(const uint8_t *p, const uint8_t *end, abp_value_t *out, const uint8_t **body) {
    uint64_t bytes, kids;
    if (!head(p, end, out, body, &bytes, &kids)) return ABP_EINVAL;
    const uint8_t *stop = skip(p, end);
    if (!stop) return ABP_EINVAL;
    if (out->type == ABP_STR || out->type == ABP_BIN || out->type == ABP_EXT) {
        out->str = (const char *)*body;
        out->len = (size_t)bytes;
    }
    out->raw = p;
    out->raw_n = (size_t)(stop - p);
    return 0;
}

int wrk_value(const uint8_t *mp, size_t n, abp_value_t *out) {
    const uint8_t *body;
    if (!mp || !out) return ABP_EINVAL;
    return read_at(mp, mp + n, out, &body);
}

bool wrk_is_one_value(const uint8_t *mp, size_t n) {
    return mp && n && skip(mp, mp + n) == mp + n;
}

/* The first element of a container value. */
static const uint8_t *elements(const abp_value_t *c) {
    abp_value_t v;
    const uint8_t *body;
    uint64_t bytes, kids;
    head(c->raw, c->raw + c->raw_n, &v, &body, &bytes, &kids);
    return body;
}

int wrk_map_get(const abp_value_t *map, const char *key, abp_value_t *out) {
    if (!map || !key || !out || map->type != ABP_MAP) return ABP_EINVAL;
    const uint8_t *p = elements(map), *end = map->raw + map->raw_n;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->len; i++) {
        abp_value_t k;
        const uint8_t *body;
        if (read_at(p, end, &k, &body) != 0) return ABP_EINVAL;
        p += k.raw_n;
        if (k.type == ABP_STR && k.len == klen && memcmp(k.str, key, klen) == 0) {
            return read_at(p, end, out, &body);
        }
        const uint8_t *next = skip(p, end);
        if (!next) return ABP_EINVAL;
        p = next;
    }
    return ABP_ENOENT;
}

int wrk_array_get(const abp_value_t *array, size_t i, abp_value_t *out) {
    if (!array || !out || array->type != ABP_ARRAY) return ABP_EINVAL;
    if (i >= array->len) return ABP_ENOENT;
    const uint8_t *p = elements(array), *end = array->raw + array->raw_n, *body;
    for (size_t k = 0; k < i; k++) {
        if (!(p = skip(p, end))) return ABP_EINVAL;
    }
    return read_at(p, end, out, &body);
}

/* ---- building ---- */

abp_pack_t *wrk_pack_new(void) {
    abp_pack_t *p = malloc(sizeof(*p));
    if (p) proto_buf_init(&p->buf);
    return p;
}

void wrk_pack_free(abp_pack_t **p) {
    if (!p || !*p) return;
    proto_buf_free(&(*p)->buf);
    free(*p);
    *p = NULL;
}

void wrk_pack_reset(abp_pack_t *p) { proto_buf_reset(&p->buf); }
static int st(abp_pack_t *p) { return p->buf.failed ? ABP_ENOMEM : 0; }
int wrk_pack_nil(abp_pack_t *p) { return msgpack_pack_nil(&p->buf.pk), st(p); }
int wrk_pack_bool(abp_pack_t *p, bool v) {
    return (v ? msgpack_pack_true(&p->buf.pk) : msgpack_pack_false(&p->buf.pk)), st(p);
}
int wrk_pack_int(abp_pack_t *p, int64_t v) { return msgpack_pack_int64(&p->buf.pk, v), st(p); }
int wrk_pack_uint(abp_pack_t *p, uint64_t v) {
    return msgpack_pack_uint64(&p->buf.pk, v), st(p);
}
int wrk_pack_double(abp_pack_t *p, double v) {
    return msgpack_pack_double(&p->buf.pk, v), st(p);
}
int wrk_pack_str(abp_pack_t *p, const char *s, size_t n) {
    if (!s && n) return ABP_EINVAL;
    return proto_pack_str(&p->buf, s ? s : "", n), st(p);
}
int wrk_pack_cstr(abp_pack_t *p, const char *s) { return wrk_pack_str(p, s, s ? strlen(s) : 0); }
int wrk_pack_bin(abp_pack_t *p, const void *b, size_t n) {
    if ((!b && n) || n > UINT32_MAX) return ABP_EINVAL;
    msgpack_pack_bin(&p->buf.pk, n);
    if (n) msgpack_pack_bin_body(&p->buf.pk, b, n);
    return st(p);
}
int wrk_pack_array(abp_pack_t *p, uint32_t n) { return msgpack_pack_array(&p->buf.pk, n), st(p); }
int wrk_pack_map(abp_pack_t *p, uint32_t n) { return msgpack_pack_map(&p->buf.pk, n), st(p); }

int wrk_pack_raw(abp_pack_t *p, const uint8_t *mp, size_t n) {
    if (!wrk_is_one_value(mp, n)) return ABP_EINVAL;
    return proto_buf_raw(&p->buf, (proto_raw_t){mp, n}), st(p);
}

int wrk_pack_json(abp_pack_t *p, const char *json) {
    if (!json) return ABP_EINVAL;
    int rc = proto_json_to_msgpack(json, strlen(json), &p->buf, NULL);
    if (rc == PROTO_ENOMEM) return ABP_ENOMEM;
    return rc ? ABP_EINVAL : 0;
}

int wrk_pack_data(const abp_pack_t *p, const uint8_t **bytes, size_t *n) {
    if (p->buf.failed) return ABP_ENOMEM;
    *bytes = p->buf.p;
    *n = p->buf.n;
    return 0;
}
