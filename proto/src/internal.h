/* proto/src/internal.h: what the codec's files share: a bounds-checked reader of msgpack
 * headers (used by the validator, the decoder and the JSON writer), buffer growth and error
 * formatting. Not installed. */
#ifndef PROTO_INTERNAL_H
#define PROTO_INTERNAL_H

#include "proto/proto.h"

/* A read position in a byte range. */
typedef struct proto__rd {
    const uint8_t *p;
    size_t n, off;
} proto__rd_t;

enum proto__kind {
    PROTO__NIL, PROTO__BOOL, PROTO__UINT, PROTO__INT, PROTO__FLOAT, PROTO__STR, PROTO__BIN,
    PROTO__EXT, PROTO__ARRAY, PROTO__MAP,
};

/* One msgpack header, as read by proto__rd_next. */
typedef struct proto__item {
    int kind;            /* enum proto__kind */
    uint8_t byte;        /* the format byte */
    bool b;              /* BOOL */
    uint64_t u;          /* UINT */
    int64_t i;           /* INT (d0..d3 and negative fixint, whatever the sign) */
    double f;            /* FLOAT (float32 widened) */
    uint32_t len;        /* STR/BIN/EXT payload bytes; ARRAY/MAP element (entry) count */
    int8_t ext_type;     /* EXT */
    const uint8_t *data; /* STR/BIN/EXT payload */
} proto__item_t;

/* proto__rd_next failures: the header is cut short, the payload runs past the end, or the
 * byte 0xc1 (never used) was found. */
enum { PROTO__RD_EHEADER = -1, PROTO__RD_EPAYLOAD = -2, PROTO__RD_EINVALID = -3 };

/* Reads one header at r->off and moves past it and past any str/bin/ext payload (not past
 * the elements of an array or map). Checks every length against the bytes that remain.
 * Returns: 0. Errors: PROTO__RD_E* (r->off unchanged; it->byte and it->len set if known). */
int proto__rd_next(proto__rd_t *r, proto__item_t *it);
/* Moves past one whole object. Safe on unvalidated bytes: every step consumes a byte.
 * Returns: 0. Errors: -1 when the bytes end first or are invalid. */
int proto__rd_skip(proto__rd_t *r);
/* The msgpack name of a format byte ("str32", "fixmap", ...). */
const char *proto__fmt_name(uint8_t byte);

/* The validator, in the pieces proto_validate and proto_decode share (validate.c). Every
 * check and error message lives there once: proto_validate walks a whole value with them,
 * proto_decode walks a message's top-level map itself and hands each key and value to them.
 * "depth" is the number of containers open around the object (0 for a whole message, 1 for
 * a value of its top-level map). All return 0 or fill err and return PROTO_EBAD/ETOOBIG. */
/* The size limit of a whole message. */
int proto__check_size(size_t len, const proto_limits_t *lim, proto_error_t *err);
/* Turns a proto__rd_next failure rc (it as that call left it) into an error naming the
 * offset. Returns: PROTO_EBAD. */
int proto__read_error(const proto__rd_t *r, const proto__item_t *it, int rc,
                      proto_error_t *err);
/* Checks a container header just read (at: its offset; r past the header): the depth limit,
 * the element limit and the bytes left for its elements. Does not read the elements. */
int proto__open(const proto__rd_t *r, const proto__item_t *it, size_t at, unsigned depth,
                const proto_limits_t *lim, proto_error_t *err);
/* Validates the next n whole objects at r->off and moves r past them. */
int proto__walk(proto__rd_t *r, uint64_t n, unsigned depth, const proto_limits_t *lim,
                proto_error_t *err);
/* After a header it read at `at` (r past it): for a container, proto__open and the walk of
 * its elements, so r ends after the whole value; for anything else, nothing. */
int proto__walk_in(proto__rd_t *r, const proto__item_t *it, size_t at, unsigned depth,
                   const proto_limits_t *lim, proto_error_t *err);
/* Nothing may follow the object: r must be at its end. */
int proto__check_end(const proto__rd_t *r, proto_error_t *err);

/* Makes room for extra more bytes by growing b; on failure sets b->failed.
 * Returns: 0 or -1. */
int proto__buf_grow(proto_buf_t *b, size_t extra);
/* Room for extra more bytes. Inline: the JSON and msgpack writers call these per token, and
 * the buffer nearly always has room. Returns: 0, or -1 (b->failed set). */
static inline int proto__buf_reserve(proto_buf_t *b, size_t extra) {
    if (!b->failed && extra <= b->cap - b->n) return 0;
    return proto__buf_grow(b, extra);
}
static inline void proto__buf_put(proto_buf_t *b, const void *p, size_t n) {
    if (n == 0 || proto__buf_reserve(b, n)) return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* A type's name as a row of PROTO__TYPE_ROW bytes (the name, then NULs) and its length in
 * *n: the header writer copies the whole row. Unknown types read as "unknown". */
#define PROTO__TYPE_ROW 16
const char *proto__type_row(proto_type_t t, size_t *n);

/* The encoders' pieces (encode.c, enc_budget.c): a key and its value; the end of a message. */
static inline void pack_key_str(proto_buf_t *b, const char *key, proto_str_t s) {
    proto_pack_cstr(b, key);
    proto_pack_str(b, s.p, s.n);
}
/* An unsigned integer in its shortest form (as msgpack_pack_uint64 writes it), written in
 * line: msgpack-c's packer goes through a callback per token, which cost more than the bytes. */
static inline void proto__pack_u64(proto_buf_t *b, uint64_t v) {
    if (proto__buf_reserve(b, 9)) return;
    uint8_t *p = b->p + b->n;
    if (v < 0x80) {
        p[0] = (uint8_t)v;
        b->n += 1;
    } else if (v <= 0xff) {
        p[0] = 0xcc;
        p[1] = (uint8_t)v;
        b->n += 2;
    } else if (v <= 0xffff) {
        p[0] = 0xcd;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
        b->n += 3;
    } else if (v <= 0xffffffff) {
        p[0] = 0xce;
        for (unsigned i = 0; i < 4; i++) p[1 + i] = (uint8_t)(v >> (24 - 8 * i));
        b->n += 5;
    } else {
        p[0] = 0xcf;
        for (unsigned i = 0; i < 8; i++) p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        b->n += 9;
    }
}
static inline void proto__pack_nil(proto_buf_t *b) {
    static const uint8_t nil = 0xc0;
    proto__buf_put(b, &nil, 1);
}
static inline void pack_key_u64(proto_buf_t *b, const char *key, uint64_t v) {
    proto_pack_cstr(b, key);
    proto__pack_u64(b, v);
}
static inline int done(proto_buf_t *b) { return b->failed ? PROTO_ENOMEM : 0; }

/* Fills err (if not NULL) with the wire code for rc and a formatted message; returns rc. */
int proto__fail(proto_error_t *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
