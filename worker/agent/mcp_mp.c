/* mcp_mp.c: the in-place msgpack reader and JSON helpers of mcp_mp.h. The MCP client turns
 * every line the server writes into msgpack with proto's strict JSON parser and reads it
 * here, so nothing the server sends is trusted: each header is checked against the bytes
 * that remain before it is followed. */
#include <stdlib.h>
#include <string.h>

#include "mcp_internal.h"

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The first byte: the type, what the byte holds itself, the width (*w) of the length or
 * scalar that follows, and for fixed forms the payload bytes or child count. */
/* clang-format off: one line per byte range reads as the msgpack spec's table */
static bool lead(uint8_t c, mcp__val_t *v, int *w, uint64_t *bytes, uint64_t *kids) {
    if (c <= 0x7f)
        v->type = MCP__INT, v->i = c;
    else if (c >= 0xe0)
        v->type = MCP__INT, v->i = (int8_t)c;
    else if (c <= 0x8f)
        v->type = MCP__MAP, v->len = c & 0x0f, *kids = 2 * (uint64_t)v->len;
    else if (c <= 0x9f)
        v->type = MCP__ARRAY, v->len = c & 0x0f, *kids = v->len;
    else if (c <= 0xbf)
        v->type = MCP__STR, *bytes = c & 0x1f;
    else if (c == 0xc0)
        v->type = MCP__NIL;
    else if (c == 0xc1)
        return false;
    else if (c <= 0xc3)
        v->type = MCP__BOOL, v->b = c == 0xc3;
    else if (c <= 0xc6)
        v->type = MCP__BIN, *w = 1 << (c - 0xc4);
    else if (c <= 0xc9)
        v->type = MCP__EXT, *w = 1 << (c - 0xc7);
    else if (c <= 0xcb)
        v->type = MCP__FLOAT, *w = c == 0xca ? 4 : 8;
    else if (c <= 0xcf)
        v->type = MCP__INT, *w = 1 << (c - 0xcc);
    else if (c <= 0xd3)
        v->type = MCP__INT, *w = -(1 << (c - 0xd0)); /* signed: negative */
    else if (c <= 0xd8)
        v->type = MCP__EXT, *bytes = 1 + ((uint64_t)1 << (c - 0xd4));
    else if (c <= 0xdb)
        v->type = MCP__STR, *w = 1 << (c - 0xd9);
    else if (c <= 0xdd)
        v->type = MCP__ARRAY, *w = c == 0xdc ? 2 : 4;
    else
        v->type = MCP__MAP, *w = c == 0xde ? 2 : 4;
    return true;
}
/* clang-format on */

/* Applies the w-byte field x that followed the lead byte. */
static void follow(mcp__val_t *v, uint64_t x, int w, uint64_t *bytes, uint64_t *kids) {
    switch (v->type) {
    case MCP__INT:
        if (w < 0) { /* sign-extend a w-byte two's complement value */
            int n = -w;
            v->i = n == 8 ? (int64_t)x : (int64_t)(x << (64 - 8 * n)) >> (64 - 8 * n);
        } else if (x > (uint64_t)INT64_MAX) {
            v->big = true;
        } else {
            v->i = (int64_t)x;
        }
        break;
    case MCP__FLOAT:
        if (w == 4) {
            uint32_t u = (uint32_t)x;
            float f;
            memcpy(&f, &u, 4);
            v->f = f;
        } else {
            memcpy(&v->f, &x, 8);
        }
        break;
    case MCP__STR:
    case MCP__BIN:
        *bytes = x;
        break;
    case MCP__EXT:
        *bytes = x + 1;
        break; /* the type byte, then the data */
    case MCP__ARRAY:
        v->len = (size_t)x, *kids = x;
        break;
    case MCP__MAP:
        v->len = (size_t)x, *kids = 2 * x;
        break;
    default:
        break;
    }
}

/* Decodes the header at p: type and scalars, where the payload starts (*body), how many
 * payload bytes follow (*bytes) and how many child values (*kids). */
static bool head(const uint8_t *p, const uint8_t *end, mcp__val_t *v, const uint8_t **body,
                 uint64_t *bytes, uint64_t *kids) {
    memset(v, 0, sizeof(*v));
    *bytes = *kids = 0;
    int w = 0;
    if (p >= end || !lead(*p++, v, &w, bytes, kids)) return false;
    int width = w < 0 ? -w : w;
    if ((size_t)width > (size_t)(end - p)) return false;
    if (width) {
        follow(v, be(p, width), w, bytes, kids);
        p += width;
    }
    *body = p;
    return *bytes <= (uint64_t)(end - p);
}

/* Skips one whole value: a count of values still to skip, so depth costs no stack. */
static const uint8_t *skip(const uint8_t *p, const uint8_t *end) {
    uint64_t pending = 1;
    while (pending) {
        mcp__val_t v;
        const uint8_t *body;
        uint64_t bytes, kids;
        if (!head(p, end, &v, &body, &bytes, &kids)) return NULL;
        p = body + bytes;
        pending = pending - 1 + kids;
        if (pending > (uint64_t)(end - p)) return NULL; /* every value takes a byte */
    }
    return p;
}

bool mcp__read(const uint8_t *p, const uint8_t *end, mcp__val_t *out) {
    const uint8_t *body;
    uint64_t bytes, kids;
    if (!p || !head(p, end, out, &body, &bytes, &kids)) return false;
    const uint8_t *stop = skip(p, end);
    if (!stop) return false;
    if (out->type == MCP__STR || out->type == MCP__BIN || out->type == MCP__EXT) {
        out->s = (const char *)body;
        out->len = (size_t)bytes;
    }
    out->body = body;
    out->raw = p;
    out->raw_n = (size_t)(stop - p);
    out->end = end;
    return true;
}

bool mcp__str_eq(const mcp__val_t *v, const char *s) {
    size_t n = strlen(s);
    return v->type == MCP__STR && v->len == n && (n == 0 || memcmp(v->s, s, n) == 0);
}

void mcp__map_get(const mcp__val_t *m, const char *key, mcp__val_t *out) {
    memset(out, 0, sizeof(*out));
    if (m->type != MCP__MAP) return;
    const uint8_t *p = m->body, *end = m->raw + m->raw_n;
    for (size_t i = 0; i < m->len; i++) {
        mcp__val_t k, v;
        if (!mcp__read(p, end, &k) || !mcp__read(k.raw + k.raw_n, end, &v)) return;
        if (mcp__str_eq(&k, key)) {
            *out = v;
            out->end = m->end;
            return;
        }
        p = v.raw + v.raw_n;
    }
}

bool mcp__array_next(const mcp__val_t *a, const uint8_t **cursor, mcp__val_t *out) {
    if (a->type != MCP__ARRAY || a->len == 0) return false;
    const uint8_t *end = a->raw + a->raw_n;
    const uint8_t *p = *cursor ? *cursor : a->body;
    if (p >= end || !mcp__read(p, end, out)) return false;
    *cursor = out->raw + out->raw_n;
    return true;
}

char *mcp__strdup(const mcp__val_t *v) {
    if (v->type != MCP__STR) return NULL;
    char *s = malloc(v->len + 1);
    if (!s) return NULL;
    memcpy(s, v->s, v->len);
    s[v->len] = 0;
    return s;
}

char *mcp__to_json(const mcp__val_t *v) {
    proto_buf_t b;
    proto_buf_init(&b);
    proto_raw_t raw = {v->raw, v->raw_n};
    if (proto_raw_to_json(raw, &b) != 0) {
        proto_buf_free(&b);
        return NULL;
    }
    return (char *)b.p; /* NUL-terminated by proto_raw_to_json; the caller frees it */
}

int mcp__from_json(const char *json, size_t n, proto_buf_t *out) {
    return proto_json_to_msgpack(json, n, out, NULL);
}
