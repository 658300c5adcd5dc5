/* proto/src/validate.c: the first thing untrusted bytes meet. A bounds-checked reader of
 * msgpack headers, and the validator's walk (proto__walk: lengths, depth, counts; no
 * recursion, no allocation), shared by proto_validate (a whole value) and proto_decode (which
 * walks a message's top-level map itself and validates each value as it steps over it), so
 * the rules exist once. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void proto_limits_default(proto_limits_t *l) {
    l->max_size = 1u << 20;
    l->max_depth = 32;
    l->max_elems = 65536;
    l->max_id = 256;
}

int proto__fail(proto_error_t *err, int rc, const char *fmt, ...) {
    if (!err) return rc;
    err->code = rc == PROTO_ETOOBIG     ? "too_large"
                : rc == PROTO_EVERSION ? "unsupported_version"
                : rc == PROTO_ENOMEM   ? "internal"
                                       : "bad_request";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

const char *proto__fmt_name(uint8_t b) {
    static const char *const named[] = {
        "nil", "(never used)", "false", "true", "bin8", "bin16", "bin32", "ext8", "ext16",
        "ext32", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
        "int32", "int64", "fixext1", "fixext2", "fixext4", "fixext8", "fixext16", "str8",
        "str16", "str32", "array16", "array32", "map16", "map32",
    };
    if (b <= 0x7f) return "positive fixint";
    if (b <= 0x8f) return "fixmap";
    if (b <= 0x9f) return "fixarray";
    if (b <= 0xbf) return "fixstr";
    if (b >= 0xe0) return "negative fixint";
    return named[b - 0xc0];
}

/* A big-endian header value of n (0, 1, 2, 4 or 8) bytes: a load each, not a byte loop (it
 * runs for every id, length and integer that is not a fix form). */
static uint64_t be(const uint8_t *p, unsigned n) {
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PROTO__BE(bits, v) __builtin_bswap##bits(v)
#else
#define PROTO__BE(bits, v) (v)
#endif
    switch (n) {
    case 1: return p[0];
    case 2: memcpy(&v16, p, 2); return PROTO__BE(16, v16);
    case 4: memcpy(&v32, p, 4); return PROTO__BE(32, v32);
    case 8: memcpy(&v64, p, 8); return PROTO__BE(64, v64);
    default: return 0;
    }
#undef PROTO__BE
}

/* Splits a format byte into: bytes of the header after it (hdr), and how to read them. */
typedef struct fmt {
    uint8_t kind, hdr; /* hdr: bytes after the format byte holding a value or a length */
    uint8_t fixed;     /* fixext: payload bytes (besides the type byte) */
} fmt_t;

static int classify(uint8_t b, fmt_t *f) {
    static const fmt_t tab[32] = {
        {PROTO__NIL, 0, 0},   {0, 0, 0},            {PROTO__BOOL, 0, 0},  {PROTO__BOOL, 0, 0},
        {PROTO__BIN, 1, 0},   {PROTO__BIN, 2, 0},   {PROTO__BIN, 4, 0},   {PROTO__EXT, 1, 0},
        {PROTO__EXT, 2, 0},   {PROTO__EXT, 4, 0},   {PROTO__FLOAT, 4, 0}, {PROTO__FLOAT, 8, 0},
        {PROTO__UINT, 1, 0},  {PROTO__UINT, 2, 0},  {PROTO__UINT, 4, 0},  {PROTO__UINT, 8, 0},
        {PROTO__INT, 1, 0},   {PROTO__INT, 2, 0},   {PROTO__INT, 4, 0},   {PROTO__INT, 8, 0},
        {PROTO__EXT, 0, 1},   {PROTO__EXT, 0, 2},   {PROTO__EXT, 0, 4},   {PROTO__EXT, 0, 8},
        {PROTO__EXT, 0, 16},  {PROTO__STR, 1, 0},   {PROTO__STR, 2, 0},   {PROTO__STR, 4, 0},
        {PROTO__ARRAY, 2, 0}, {PROTO__ARRAY, 4, 0}, {PROTO__MAP, 2, 0},   {PROTO__MAP, 4, 0},
    };
    if (b == 0xc1) return -1;
    if (b >= 0xc0 && b < 0xe0) {
        *f = tab[b - 0xc0];
    } else {
        f->hdr = f->fixed = 0;
        f->kind = b <= 0x7f   ? PROTO__UINT
                  : b <= 0x8f ? PROTO__MAP
                  : b <= 0x9f ? PROTO__ARRAY
                  : b <= 0xbf ? PROTO__STR
                              : PROTO__INT;
    }
    return 0;
}

/* Fills the value or length of a header whose bytes are all present. */
static void decode_header(uint8_t b, const fmt_t *f, const uint8_t *h, proto__item_t *it) {
    uint64_t v = be(h, f->hdr);
    switch (f->kind) {
    case PROTO__BOOL: it->b = b == 0xc3; break;
    case PROTO__UINT: it->u = b <= 0x7f ? b : v; break;
    case PROTO__INT:
        if (b >= 0xe0) it->i = (int8_t)b;
        else if (f->hdr == 1) it->i = (int8_t)v;
        else if (f->hdr == 2) it->i = (int16_t)v;
        else if (f->hdr == 4) it->i = (int32_t)v;
        else it->i = (int64_t)v;
        break;
    case PROTO__FLOAT:
        if (f->hdr == 4) {
            uint32_t u32 = (uint32_t)v;
            float x;
            memcpy(&x, &u32, 4);
            it->f = x;
        } else {
            memcpy(&it->f, &v, 8);
        }
        break;
    case PROTO__EXT: it->len = f->fixed ? f->fixed : (uint32_t)v; break;
    default: /* str, bin, array, map: fix forms carry the length in the byte */
        it->len = f->hdr ? (uint32_t)v
                  : f->kind == PROTO__STR ? (uint32_t)(b & 0x1f) : (uint32_t)(b & 0x0f);
    }
}

int proto__rd_next(proto__rd_t *r, proto__item_t *it) {
    memset(it, 0, sizeof *it);
    if (r->off >= r->n) return PROTO__RD_EHEADER;
    uint8_t b = r->p[r->off];
    fmt_t f;
    it->byte = b;
    /* The fix forms (small ints, short strings, small maps and arrays) are most of every
     * message: read them without the table and the header loop. Same results as below. */
    if (b <= 0x7f || b >= 0xe0) {
        it->kind = b <= 0x7f ? PROTO__UINT : PROTO__INT;
        it->u = b <= 0x7f ? b : 0;
        it->i = b >= 0xe0 ? (int8_t)b : 0;
        r->off++;
        return 0;
    }
    if (b <= 0x9f) {
        it->kind = b <= 0x8f ? PROTO__MAP : PROTO__ARRAY;
        it->len = b & 0x0f;
        r->off++;
        return 0;
    }
    if (b <= 0xbf) {
        it->kind = PROTO__STR;
        it->len = b & 0x1f;
        if (r->n - r->off - 1 < it->len) return PROTO__RD_EPAYLOAD;
        it->data = r->p + r->off + 1;
        r->off += 1 + (size_t)it->len;
        return 0;
    }
    if (classify(b, &f)) return PROTO__RD_EINVALID;
    it->kind = f.kind;
    size_t left = r->n - r->off - 1;
    if (left < f.hdr) return PROTO__RD_EHEADER;
    decode_header(b, &f, r->p + r->off + 1, it);
    size_t used = 1 + (size_t)f.hdr;
    if (f.kind == PROTO__STR || f.kind == PROTO__BIN || f.kind == PROTO__EXT) {
        size_t need = (size_t)it->len + (f.kind == PROTO__EXT); /* ext: the type byte */
        if (left - f.hdr < need) return PROTO__RD_EPAYLOAD;
        if (f.kind == PROTO__EXT) it->ext_type = (int8_t)r->p[r->off + used++];
        it->data = r->p + r->off + used;
        used += it->len;
    }
    r->off += used;
    return 0;
}

int proto__rd_skip(proto__rd_t *r) {
    uint64_t pending = 1;
    proto__item_t it;
    while (pending > 0) {
        /* fix forms (most items) without filling an item: the broker skips ~400 items per
         * invocation in bench/agents, mostly inside events it passes on verbatim */
        if (r->off >= r->n) return -1;
        uint8_t b = r->p[r->off];
        if (b <= 0x7f || b >= 0xe0 || (b >= 0x80 && b <= 0x9f)) {
            r->off++;
            pending--;
            if (b >= 0x80 && b <= 0x8f) pending += 2u * (b & 0x0fu);
            else if (b >= 0x90 && b <= 0x9f) pending += b & 0x0fu;
            continue;
        }
        if (b >= 0xa0 && b <= 0xbf) {
            if (r->n - r->off - 1 < (size_t)(b & 0x1f)) return -1;
            r->off += 1 + (size_t)(b & 0x1f);
            pending--;
            continue;
        }
        if (proto__rd_next(r, &it)) return -1;
        pending--;
        if (it.kind == PROTO__ARRAY) pending += it.len;
        if (it.kind == PROTO__MAP) pending += 2 * (uint64_t)it.len;
    }
    return 0;
}

int proto__read_error(const proto__rd_t *r, const proto__item_t *it, int rc,
                      proto_error_t *err) {
    size_t off = r->off;
    if (rc == PROTO__RD_EINVALID)
        return proto__fail(err, PROTO_EBAD, "invalid msgpack byte 0xc1 at offset %zu", off);
    if (rc == PROTO__RD_EHEADER && off >= r->n)
        return proto__fail(err, PROTO_EBAD, "msgpack ends early at offset %zu", off);
    if (rc == PROTO__RD_EHEADER)
        return proto__fail(err, PROTO_EBAD, "%s header at offset %zu is cut short",
                           proto__fmt_name(it->byte), off);
    return proto__fail(err, PROTO_EBAD,
                       "%s at offset %zu declares %u bytes, more than the %zu that remain",
                       proto__fmt_name(it->byte), off, (unsigned)it->len, r->n - off);
}

int proto__check_size(size_t len, const proto_limits_t *lim, proto_error_t *err) {
    if (len > lim->max_size)
        return proto__fail(err, PROTO_ETOOBIG, "message of %zu bytes is over the %zu limit",
                           len, lim->max_size);
    return 0;
}

int proto__check_end(const proto__rd_t *r, proto_error_t *err) {
    if (r->off != r->n)
        return proto__fail(err, PROTO_EBAD, "%zu trailing bytes after the object, at offset %zu",
                           r->n - r->off, r->off);
    return 0;
}

static unsigned depth_limit(const proto_limits_t *lim) {
    return lim->max_depth < PROTO_MAX_DEPTH ? lim->max_depth : PROTO_MAX_DEPTH;
}

int proto__open(const proto__rd_t *r, const proto__item_t *it, size_t at, unsigned depth,
                const proto_limits_t *lim, proto_error_t *err) {
    if (depth + 1 > depth_limit(lim))
        return proto__fail(err, PROTO_ETOOBIG, "%s at offset %zu nests deeper than %u",
                           proto__fmt_name(it->byte), at, depth_limit(lim));
    /* The count against the limit and against the bytes left (each element takes at least
     * one byte), so a huge declared count is refused before anyone allocates. */
    uint64_t elems = it->kind == PROTO__MAP ? 2 * (uint64_t)it->len : it->len;
    if (it->len > lim->max_elems)
        return proto__fail(err, PROTO_ETOOBIG, "%s at offset %zu has %u elements (limit %u)",
                           proto__fmt_name(it->byte), at, (unsigned)it->len,
                           (unsigned)lim->max_elems);
    if (elems > r->n - r->off)
        return proto__fail(err, PROTO_EBAD,
                           "%s at offset %zu declares %u elements, more than the %zu bytes "
                           "that remain", proto__fmt_name(it->byte), at, (unsigned)it->len,
                           r->n - r->off);
    return 0;
}

/* The validator itself: an iterative walk (a fixed stack of element counts, no recursion, no
 * allocation) over `n` objects that sit inside `depth` open containers, moving r past them.
 * left[] is indexed by absolute depth, so a walk that starts inside a message (the decoder's
 * values, depth 1) applies the same depth limit as one over the whole message. */
int proto__walk(proto__rd_t *r, uint64_t n, unsigned depth, const proto_limits_t *lim,
                proto_error_t *err) {
    uint64_t left[PROTO_MAX_DEPTH + 1]; /* objects still to read at each depth */
    const unsigned base = depth;
    left[depth] = n;
    for (;;) {
        while (depth > base && left[depth] == 0) depth--;
        if (left[depth] == 0) break;
        left[depth]--;
        /* Fixints and short strings that fit (most keys and values) need no item filled in;
         * anything else, a cut string included, takes the full reader and its errors. */
        if (r->off < r->n) {
            uint8_t b = r->p[r->off];
            if (b <= 0x7f || b >= 0xe0) {
                r->off++;
                continue;
            }
            if (b >= 0xa0 && b <= 0xbf && r->n - r->off - 1 >= (size_t)(b & 0x1f)) {
                r->off += 1 + (size_t)(b & 0x1f);
                continue;
            }
        }
        proto__item_t it;
        size_t at = r->off;
        int rc = proto__rd_next(r, &it);
        if (rc) return proto__read_error(r, &it, rc, err);
        if (it.kind != PROTO__ARRAY && it.kind != PROTO__MAP) continue;
        if ((rc = proto__open(r, &it, at, depth, lim, err))) return rc;
        left[++depth] = it.kind == PROTO__MAP ? 2 * (uint64_t)it.len : it.len;
    }
    return 0;
}

int proto__walk_in(proto__rd_t *r, const proto__item_t *it, size_t at, unsigned depth,
                   const proto_limits_t *lim, proto_error_t *err) {
    if (it->kind != PROTO__ARRAY && it->kind != PROTO__MAP) return 0;
    int rc = proto__open(r, it, at, depth, lim, err);
    if (rc) return rc;
    uint64_t elems = it->kind == PROTO__MAP ? 2 * (uint64_t)it->len : it->len;
    return elems ? proto__walk(r, elems, depth + 1, lim, err) : 0;
}

int proto_validate(const uint8_t *buf, size_t len, const proto_limits_t *lim,
                   proto_error_t *err) {
    proto_limits_t dl;
    if (!lim) {
        proto_limits_default(&dl);
        lim = &dl;
    }
    int rc = proto__check_size(len, lim, err);
    if (rc) return rc;
    proto__rd_t r = {buf, len, 0};
    if ((rc = proto__walk(&r, 1, 0, lim, err))) return rc;
    return proto__check_end(&r, err);
}
