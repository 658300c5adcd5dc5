/* proto/src/decode.c: proto_decode. One walk over the bytes validates them and collects the
 * top-level map's known fields as zero-copy spans; then "v" and "type" are checked, and each
 * type's fields against a table (proto/PROTOCOL.md, "Field types"): what is REQUIRED and of
 * which type. */
#include <stdio.h>

#include "internal.h"

/* The fields any message may carry; a name not listed here is ignored. */
enum field {
    F_V, F_TYPE, F_ID, F_AGENT, F_INPUT, F_SESSION, F_TIMEOUT_MS, F_IDEMPOTENT, F_JOB, F_SEQ,
    F_EVENT, F_OUTPUT, F_CODE, F_MESSAGE, F_TOPIC, F_DATA, F_NAME, F_CAPACITY, F_AGENTS,
    F_HEARTBEAT_MS, F_ATTEMPT, F_APP, F_USER, F_EVENTS, F_AFTER, F_LIMIT, F_PARENT, F_BRANCH,
    F_INVOCATION, F_STATE, F_HISTORY, F_WORKER, F_HISTORY_AGENTS,
    F_REQ, F_BACKEND, F_MODEL_CONCURRENCY, F_MODEL_RPS, F_MODEL_BURST, /* the model budget */
    F_MODEL_TPM, F_TOKENS,
    F_ORIGIN, F_HELD, /* broker pairs: a job's origin in work, the jobs a worker holds in ready */
    F_COUNT
};
_Static_assert(F_COUNT <= 64, "collect() keeps the fields seen in a uint64_t");

/* Fixed-size rows: find_field compares a key's bytes without a strlen per name. */
static const char field_names[F_COUNT][20] = {
    "v", "type", "id", "agent", "input", "session", "timeout_ms", "idempotent", "job", "seq",
    "event", "output", "code", "message", "topic", "data", "name", "capacity", "agents",
    "heartbeat_ms", "attempt", "app", "user", "events", "after", "limit", "parent", "branch",
    "invocation", "state", "history", "worker", "history_agents",
    "req", "backend", "model_concurrency", "model_rps", "model_burst",
    "model_tpm", "tokens",
    "origin", "held",
};

/* Fixed-size rows, like field_names: check_type needs no strlen per name. */
static const char type_names[][16] = {
    "unknown", "query", "cancel", "publish", "status", "event", "result", "error", "ready",
    "work", "credit", "heartbeat", "disconnect", "session.get", "session.list",
    "session.delete", "tasks", "tasks_reply", "budget", "budget.acquire", "budget.grant",
    "budget.deny", "budget.release", "budget.cancel",
};

/* What a field must hold. */
enum kind {
    K_ANY,      /* any value */
    K_ID,       /* string or integer, at most max_id bytes */
    K_REPLY_ID, /* K_ID or nil (replies to requests that carried none) */
    K_NAME,     /* non-empty string of at most PROTO_MAX_NAME bytes */
    K_STR,      /* string */
    K_UINT,     /* non-negative integer */
    K_POS,      /* positive integer */
    K_TIMEOUT,  /* non-negative integer, kept as int64 */
    K_BOOL,
    K_NAMES,    /* array of K_NAME */
    K_MAP,      /* any map */
    K_ARRAY,    /* any array */
    K_NUM,      /* non-negative finite number, integer or float, kept as a double */
};

typedef struct rule {
    uint8_t field, kind;
    bool required;
} rule_t;

#define MAX_RULES 11
typedef struct spec {
    rule_t rules[MAX_RULES];
    uint8_t n;
    bool id_or_job; /* one of "id" and "job" is REQUIRED */
} spec_t;

#define R(f, k, req) {f, k, req}
static const spec_t specs[] = {
    [PROTO_QUERY] = {{R(F_ID, K_ID, 1), R(F_AGENT, K_NAME, 1), R(F_INPUT, K_ANY, 0),
                      R(F_SESSION, K_STR, 0), R(F_TIMEOUT_MS, K_TIMEOUT, 0),
                      R(F_IDEMPOTENT, K_BOOL, 0), R(F_APP, K_STR, 0), R(F_USER, K_STR, 0),
                      R(F_PARENT, K_UINT, 0), R(F_BRANCH, K_STR, 0)}, 10, false},
    [PROTO_CANCEL] = {{R(F_ID, K_ID, 0), R(F_JOB, K_UINT, 0)}, 2, true},
    [PROTO_PUBLISH] = {{R(F_TOPIC, K_STR, 1), R(F_DATA, K_ANY, 0), R(F_ID, K_ID, 0)}, 3, false},
    [PROTO_STATUS] = {{R(F_ID, K_REPLY_ID, 0), R(F_AFTER, K_STR, 0), R(F_LIMIT, K_POS, 0)}, 3,
                      false},
    [PROTO_EVENT] = {{R(F_ID, K_REPLY_ID, 0), R(F_JOB, K_UINT, 0), R(F_SEQ, K_UINT, 0),
                      R(F_EVENT, K_ANY, 1)}, 4, true},
    [PROTO_RESULT] = {{R(F_ID, K_REPLY_ID, 0), R(F_JOB, K_UINT, 0), R(F_OUTPUT, K_ANY, 1)}, 3,
                      true},
    [PROTO_ERROR] = {{R(F_ID, K_REPLY_ID, 0), R(F_JOB, K_UINT, 0), R(F_CODE, K_STR, 1),
                      R(F_MESSAGE, K_STR, 1)}, 4, true},
    [PROTO_READY] = {{R(F_NAME, K_NAME, 1), R(F_CAPACITY, K_POS, 1), R(F_AGENTS, K_NAMES, 1),
                      R(F_HEARTBEAT_MS, K_UINT, 0), R(F_HISTORY_AGENTS, K_NAMES, 0),
                      R(F_HELD, K_ARRAY, 0)}, 6, false},
    [PROTO_WORK] = {{R(F_JOB, K_UINT, 1), R(F_AGENT, K_NAME, 1), R(F_INPUT, K_ANY, 0),
                     R(F_SESSION, K_STR, 0), R(F_TIMEOUT_MS, K_TIMEOUT, 0),
                     R(F_ATTEMPT, K_POS, 1), R(F_INVOCATION, K_STR, 0), R(F_BRANCH, K_STR, 0),
                     R(F_STATE, K_MAP, 0), R(F_HISTORY, K_ARRAY, 0), R(F_ORIGIN, K_MAP, 0)}, 11,
                    false},
    [PROTO_CREDIT] = {{R(F_CAPACITY, K_UINT, 1)}, 1, false},
    [PROTO_HEARTBEAT] = {{{0, 0, 0}}, 0, false},
    [PROTO_DISCONNECT] = {{{0, 0, 0}}, 0, false},
    [PROTO_SESSION_GET] = {{R(F_ID, K_ID, 1), R(F_SESSION, K_STR, 1), R(F_APP, K_STR, 0),
                            R(F_USER, K_STR, 0), R(F_EVENTS, K_UINT, 0)}, 5, false},
    [PROTO_SESSION_LIST] = {{R(F_ID, K_ID, 1), R(F_APP, K_STR, 0), R(F_USER, K_STR, 0),
                             R(F_AFTER, K_STR, 0), R(F_LIMIT, K_POS, 0)}, 5, false},
    [PROTO_SESSION_DELETE] = {{R(F_ID, K_ID, 1), R(F_SESSION, K_STR, 1)}, 2, false},
    /* client -> broker: id and worker (checked by the broker); broker -> worker: job */
    [PROTO_TASKS] = {{R(F_ID, K_ID, 0), R(F_WORKER, K_NAME, 0), R(F_JOB, K_UINT, 0)}, 3, false},
    [PROTO_TASKS_REPLY] = {{R(F_JOB, K_UINT, 1), R(F_OUTPUT, K_ANY, 1)}, 2, false},
    [PROTO_BUDGET] = {{R(F_MODEL_CONCURRENCY, K_UINT, 0), R(F_MODEL_RPS, K_NUM, 0),
                       R(F_MODEL_BURST, K_UINT, 0), R(F_MODEL_TPM, K_UINT, 0)}, 4, false},
    [PROTO_BUDGET_ACQUIRE] = {{R(F_REQ, K_UINT, 1), R(F_BACKEND, K_NAME, 1)}, 2, false},
    [PROTO_BUDGET_GRANT] = {{R(F_REQ, K_UINT, 1)}, 1, false},
    [PROTO_BUDGET_DENY] = {{R(F_REQ, K_UINT, 1), R(F_CODE, K_STR, 1), R(F_MESSAGE, K_STR, 1)},
                           3, false},
    [PROTO_BUDGET_RELEASE] = {{R(F_BACKEND, K_NAME, 1), R(F_TOKENS, K_UINT, 0)}, 2, false},
    [PROTO_BUDGET_CANCEL] = {{R(F_REQ, K_UINT, 1)}, 1, false},
};

static const uint8_t nil_byte = 0xc0;
static const proto_raw_t raw_nil = {&nil_byte, 1};

_Static_assert(sizeof type_names[0] == PROTO__TYPE_ROW, "proto__type_row's rows");
static uint8_t type_len[sizeof type_names / sizeof type_names[0]]; /* derive_tables */

const char *proto__type_row(proto_type_t t, size_t *n) {
    if ((unsigned)t >= sizeof type_names / sizeof type_names[0]) t = PROTO_UNKNOWN;
    *n = type_len[t];
    return type_names[t];
}

const char *proto_type_name(proto_type_t t) {
    if ((unsigned)t >= sizeof type_names / sizeof type_names[0]) return "unknown";
    return type_names[t];
}

/* A value read back from its span: the header (and the span itself for K_ANY and ids). */
typedef struct val {
    proto_raw_t raw;
    proto__item_t it;
} val_t;

static inline uint16_t ld16(const char *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t ld32(const char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint64_t ld64(const char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Whether the n (at most 24) bytes at k are the first n of name. Overlapping loads of 2, 4 or
 * 8 bytes from both ends, none past n: names are short, and a call to memcmp cost more than
 * the compare itself. */
static inline bool same(const char *k, const char *name, size_t n) {
    if (n >= 8)
        return ld64(k) == ld64(name) && ld64(k + n - 8) == ld64(name + n - 8) &&
               (n <= 16 || ld64(k + 8) == ld64(name + 8));
    if (n >= 4) return ld32(k) == ld32(name) && ld32(k + n - 4) == ld32(name + n - 4);
    if (n >= 2) return ld16(k) == ld16(name) && ld16(k + n - 2) == ld16(name + n - 2);
    return n == 0 || k[0] == name[0];
}

/* The field a key names, or -1. The key's length and first byte (and, where two names share
 * those, one more byte where they differ) pick the one candidate; its name must then match
 * whole. This runs for every key of every message: a switch, not a search of the table.
 * test_every_field_name_is_found_exactly (tests/proto/test_proto_decode.c) holds it to the
 * table: a name added to field_names needs its case here. */
static int find_field(const char *k, size_t n) {
    int f = -1;
    switch (n) {
    case 1: f = k[0] == 'v' ? F_V : -1; break;
    case 2: f = k[0] == 'i' ? F_ID : -1; break;
    case 3:
        switch (k[0]) {
        case 'j': f = F_JOB; break;
        case 's': f = F_SEQ; break;
        case 'a': f = F_APP; break;
        case 'r': f = F_REQ; break;
        }
        break;
    case 4:
        switch (k[0]) {
        case 't': f = F_TYPE; break;
        case 'c': f = F_CODE; break;
        case 'd': f = F_DATA; break;
        case 'n': f = F_NAME; break;
        case 'u': f = F_USER; break;
        case 'h': f = F_HELD; break;
        }
        break;
    case 5:
        switch (k[0]) {
        case 'a': f = k[4] == 't' ? F_AGENT : F_AFTER; break;
        case 'i': f = F_INPUT; break;
        case 'e': f = F_EVENT; break;
        case 't': f = F_TOPIC; break;
        case 'l': f = F_LIMIT; break;
        case 's': f = F_STATE; break;
        }
        break;
    case 6:
        switch (k[0]) {
        case 'o': f = k[5] == 't' ? F_OUTPUT : F_ORIGIN; break;
        case 'a': f = F_AGENTS; break;
        case 'e': f = F_EVENTS; break;
        case 'p': f = F_PARENT; break;
        case 'b': f = F_BRANCH; break;
        case 'w': f = F_WORKER; break;
        case 't': f = F_TOKENS; break;
        }
        break;
    case 7:
        switch (k[0]) {
        case 's': f = F_SESSION; break;
        case 'm': f = F_MESSAGE; break;
        case 'a': f = F_ATTEMPT; break;
        case 'h': f = F_HISTORY; break;
        case 'b': f = F_BACKEND; break;
        }
        break;
    case 8: f = k[0] == 'c' ? F_CAPACITY : -1; break;
    case 9: f = k[6] == 'r' ? F_MODEL_RPS : F_MODEL_TPM; break;
    case 10:
        switch (k[0]) {
        case 't': f = F_TIMEOUT_MS; break;
        case 'i': f = k[9] == 't' ? F_IDEMPOTENT : F_INVOCATION; break;
        }
        break;
    case 11: f = F_MODEL_BURST; break;
    case 12: f = F_HEARTBEAT_MS; break;
    case 14: f = F_HISTORY_AGENTS; break;
    case 17: f = F_MODEL_CONCURRENCY; break;
    }
    if (f < 0 || field_names[f][n] != '\0' || !same(k, field_names[f], n)) return -1;
    return f;
}

/* The item of an unsigned integer or a string read in line. Only the fields its kind uses
 * are written (every reader here looks at kind first): filling the whole item cost more than
 * reading the value. */
static inline void item_uint(proto__item_t *it, uint8_t b, uint64_t u) {
    it->kind = PROTO__UINT;
    it->byte = b;
    it->u = u;
}
static inline void item_str(proto__item_t *it, uint8_t b, uint32_t len, const uint8_t *data) {
    it->kind = PROTO__STR;
    it->byte = b;
    it->len = len;
    it->data = data;
}

/* proto__rd_next with the forms most values take (fixints, strings that fit, uint8 to 64)
 * read in line: the same kind and value; anything else, errors included, goes to
 * proto__rd_next. Inlined by force, like check_kind, store and apply_rule: the straight path
 * runs them once per field, and a call each cost about as much as the work. */
#define INLINE static inline __attribute__((always_inline))
INLINE int read_head(proto__rd_t *r, proto__item_t *it) {
    if (r->off < r->n) {
        const uint8_t *p = r->p + r->off;
        size_t left = r->n - r->off;
        uint8_t b = p[0];
        if (b <= 0x7f) {
            item_uint(it, b, b);
            r->off++;
            return 0;
        }
        if (b >= 0xa0 && b <= 0xbf && left - 1 >= (size_t)(b & 0x1f)) {
            item_str(it, b, b & 0x1fu, p + 1);
            r->off += 1 + (size_t)(b & 0x1f);
            return 0;
        }
        /* str8 (inputs and outputs of 32-255 bytes), uint8 to 64 (ids, job numbers) */
        if (b == 0xd9 && left >= 2 && left - 2 >= p[1]) {
            item_str(it, b, p[1], p + 2);
            r->off += 2 + (size_t)p[1];
            return 0;
        }
        if (b == 0xcc && left >= 2) {
            item_uint(it, b, p[1]);
            r->off += 2;
            return 0;
        }
        if (b == 0xcd && left >= 3) {
            item_uint(it, b, (uint64_t)p[1] << 8 | p[2]);
            r->off += 3;
            return 0;
        }
        if (b == 0xce && left >= 5) {
            item_uint(it, b, (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 |
                                 (uint64_t)p[3] << 8 | p[4]);
            r->off += 5;
            return 0;
        }
        if (b == 0xcf && left >= 9) { /* the broker's job numbers (Unix ms << 16) */
            uint64_t u;
            memcpy(&u, p + 1, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            u = __builtin_bswap64(u);
#endif
            item_uint(it, b, u);
            r->off += 9;
            return 0;
        }
    }
    return proto__rd_next(r, it);
}

/* The one walk over a message: the top-level map's keys are read and looked up, a known
 * field's value is read into vals[] (a field is present when its bit is set in *seen; the
 * others are left unwritten: clearing all of vals cost more than the rest of a decode), and
 * every key and value is validated as it is stepped over, by the validator's own walk
 * (validate.c), which also gives where a container ends. Nothing is acted on before the walk
 * has reached the end: a validation error anywhere wins over what the fields say (a second
 * copy of a field, a message that is not a map), as if the whole message had been validated
 * first. */
static int collect(const uint8_t *buf, size_t len, const proto_limits_t *lim, val_t *vals,
                   uint64_t *seen, proto_error_t *err) {
    proto__rd_t r = {buf, len, 0};
    proto__item_t map;
    int rc = proto__rd_next(&r, &map);
    if (rc) return proto__read_error(&r, &map, rc, err);
    if (map.kind != PROTO__MAP) {
        if ((rc = proto__walk_in(&r, &map, 0, 0, lim, err)) || (rc = proto__check_end(&r, err)))
            return rc;
        return proto__fail(err, PROTO_EBAD, "message is a %s, not a map",
                           proto__fmt_name(map.byte));
    }
    if ((rc = proto__open(&r, &map, 0, 0, lim, err))) return rc;
    *seen = 0;
    int twice = -1; /* the first field given twice, reported once the walk is through */
    for (uint32_t i = 0; i < map.len; i++) {
        int f = -1;
        uint8_t b = r.off < r.n ? r.p[r.off] : 0;
        if (b >= 0xa0 && b <= 0xbf && r.n - r.off - 1 >= (size_t)(b & 0x1f)) {
            /* a fixstr key (every key a sender of ours writes), read in place */
            f = find_field((const char *)r.p + r.off + 1, b & 0x1f);
            r.off += 1 + (size_t)(b & 0x1f);
        } else {
            /* anything else (a str8 key, a cut string, a container: keys may be any value) */
            size_t key_at = r.off;
            proto__item_t key;
            if ((rc = proto__rd_next(&r, &key))) return proto__read_error(&r, &key, rc, err);
            if (key.kind == PROTO__STR) f = find_field((const char *)key.data, key.len);
            else if ((rc = proto__walk_in(&r, &key, key_at, 1, lim, err))) return rc;
        }
        if (f >= 0 && (*seen & (UINT64_C(1) << f))) {
            if (twice < 0) twice = f;
            f = -1;
        }
        if (f < 0) { /* an unknown field, or one given twice: validated, not kept */
            if ((rc = proto__walk(&r, 1, 1, lim, err))) return rc;
            continue;
        }
        size_t at = r.off;
        val_t *v = &vals[f];
        if ((rc = read_head(&r, &v->it))) return proto__read_error(&r, &v->it, rc, err);
        if ((v->it.kind == PROTO__ARRAY || v->it.kind == PROTO__MAP) &&
            (rc = proto__walk_in(&r, &v->it, at, 1, lim, err)))
            return rc;
        v->raw = (proto_raw_t){buf + at, r.off - at};
        *seen |= UINT64_C(1) << f;
    }
    if ((rc = proto__check_end(&r, err))) return rc;
    if (twice >= 0)
        return proto__fail(err, PROTO_EBAD, "field '%s' appears twice", field_names[twice]);
    return 0;
}

/* Field f of a collected message; an absent one reads as raw.n == 0. */
static const val_t *field_of(const val_t *vals, uint64_t seen, int f) {
    static const val_t absent;
    return seen & (UINT64_C(1) << f) ? &vals[f] : &absent;
}

static bool is_uint(const proto__item_t *it, uint64_t *out) {
    if (it->kind == PROTO__UINT) *out = it->u;
    else if (it->kind == PROTO__INT && it->i >= 0) *out = (uint64_t)it->i;
    else return false;
    return true;
}

static int check_version(const val_t *v, proto_error_t *err) {
    if (!v->raw.n) return proto__fail(err, PROTO_EBAD, "field 'v' is missing");
    uint64_t u;
    if (v->it.kind == PROTO__INT && v->it.i < 0)
        return proto__fail(err, PROTO_EVERSION, "version %lld is not supported (only %d)",
                           (long long)v->it.i, PROTO_VERSION);
    if (!is_uint(&v->it, &u)) return proto__fail(err, PROTO_EBAD, "field 'v' must be an integer");
    if (u != PROTO_VERSION)
        return proto__fail(err, PROTO_EVERSION, "version %llu is not supported (only %d)",
                           (unsigned long long)u, PROTO_VERSION);
    return 0;
}

/* The type a string names, or PROTO_UNKNOWN. Like find_field: the length and the first byte
 * (and where two names share those, one more byte) pick the candidate, which must then match
 * whole. */
static int type_of(const char *d, size_t n) {
    int t = PROTO_UNKNOWN;
    switch (n) {
    case 4: t = PROTO_WORK; break;
    case 5:
        switch (d[0]) {
        case 'q': t = PROTO_QUERY; break;
        case 'e': t = d[4] == 't' ? PROTO_EVENT : PROTO_ERROR; break;
        case 'r': t = PROTO_READY; break;
        case 't': t = PROTO_TASKS; break;
        }
        break;
    case 6:
        switch (d[0]) {
        case 'c': t = d[5] == 'l' ? PROTO_CANCEL : PROTO_CREDIT; break;
        case 's': t = PROTO_STATUS; break;
        case 'r': t = PROTO_RESULT; break;
        case 'b': t = PROTO_BUDGET; break;
        }
        break;
    case 7: t = PROTO_PUBLISH; break;
    case 9: t = PROTO_HEARTBEAT; break;
    case 10: t = PROTO_DISCONNECT; break;
    case 11:
        switch (d[0]) {
        case 's': t = PROTO_SESSION_GET; break;
        case 't': t = PROTO_TASKS_REPLY; break;
        case 'b': t = PROTO_BUDGET_DENY; break;
        }
        break;
    case 12: t = d[0] == 's' ? PROTO_SESSION_LIST : PROTO_BUDGET_GRANT; break;
    case 13: t = PROTO_BUDGET_CANCEL; break;
    case 14:
        switch (d[0]) {
        case 's': t = PROTO_SESSION_DELETE; break;
        case 'b': t = d[7] == 'a' ? PROTO_BUDGET_ACQUIRE : PROTO_BUDGET_RELEASE; break;
        }
        break;
    }
    if (t != PROTO_UNKNOWN && type_names[t][n] == '\0' && same(d, type_names[t], n)) return t;
    return PROTO_UNKNOWN;
}

static int check_type(const val_t *v, proto_type_t *type, proto_error_t *err) {
    if (!v->raw.n) return proto__fail(err, PROTO_EBAD, "field 'type' is missing");
    if (v->it.kind != PROTO__STR)
        return proto__fail(err, PROTO_EBAD, "field 'type' must be a string");
    int t = type_of((const char *)v->it.data, v->it.len);
    if (t != PROTO_UNKNOWN) {
        *type = (proto_type_t)t;
        return 0;
    }
    int shown = v->it.len > 40 ? 40 : (int)v->it.len;
    return proto__fail(err, PROTO_EBAD, "unknown type '%.*s'", shown,
                       (const char *)v->it.data);
}

static bool is_name(const proto__item_t *it) {
    return it->kind == PROTO__STR && it->len > 0 && it->len <= PROTO_MAX_NAME;
}

static int check_names(const val_t *v, const char *name, proto_error_t *err) {
    if (v->it.kind != PROTO__ARRAY)
        return proto__fail(err, PROTO_EBAD, "field '%s' must be an array of strings", name);
    proto__rd_t r = {v->raw.p, v->raw.n, 0};
    proto__item_t it;
    proto__rd_next(&r, &it);
    for (uint32_t i = 0; i < v->it.len; i++) {
        size_t at = r.off;
        proto__rd_next(&r, &it);
        if (!is_name(&it))
            return proto__fail(err, PROTO_EBAD, "field '%s' element %u must be a non-empty "
                               "string of at most %d bytes", name, (unsigned)i, PROTO_MAX_NAME);
        r.off = at;
        proto__rd_skip(&r);
    }
    return 0;
}

static int check_id(const val_t *v, const char *name, bool nil_ok, const proto_limits_t *lim,
                    proto_error_t *err) {
    int k = v->it.kind;
    if (!(k == PROTO__STR || k == PROTO__UINT || k == PROTO__INT || (nil_ok && k == PROTO__NIL)))
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a string or an integer", name);
    if (v->raw.n > lim->max_id)
        return proto__fail(err, PROTO_ETOOBIG, "field '%s' is longer than %zu bytes", name,
                           lim->max_id);
    return 0;
}

/* Checks one present value against its kind. */
INLINE int check_kind(const val_t *v, int kind, const char *name, const proto_limits_t *lim,
                      proto_error_t *err) {
    uint64_t u;
    switch (kind) {
    case K_ID: return check_id(v, name, false, lim, err);
    case K_REPLY_ID: return check_id(v, name, true, lim, err);
    case K_NAME:
        if (v->it.kind != PROTO__STR)
            return proto__fail(err, PROTO_EBAD, "field '%s' must be a string", name);
        if (!is_name(&v->it))
            return proto__fail(err, PROTO_EBAD, "field '%s' must be 1 to %d bytes long", name,
                               PROTO_MAX_NAME);
        return 0;
    case K_STR:
        if (v->it.kind == PROTO__STR) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a string", name);
    case K_UINT:
    case K_TIMEOUT:
        if (is_uint(&v->it, &u)) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a non-negative integer", name);
    case K_POS:
        if (is_uint(&v->it, &u) && u > 0) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a positive integer", name);
    case K_BOOL:
        if (v->it.kind == PROTO__BOOL) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a boolean", name);
    case K_NAMES: return check_names(v, name, err);
    case K_MAP:
        if (v->it.kind == PROTO__MAP) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a map", name);
    case K_ARRAY:
        if (v->it.kind == PROTO__ARRAY) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be an array", name);
    case K_NUM:
        if (is_uint(&v->it, &u)) return 0;
        if (v->it.kind == PROTO__FLOAT && v->it.f >= 0 && v->it.f <= 1e15) return 0;
        return proto__fail(err, PROTO_EBAD, "field '%s' must be a non-negative number", name);
    default: return 0;
    }
}

static proto_str_t str_of(const val_t *v) {
    return (proto_str_t){(const char *)v->it.data, v->it.len};
}

static uint64_t uint_of(const val_t *v) {
    uint64_t u = 0;
    is_uint(&v->it, &u);
    return u;
}

/* Stores a checked field into out. */
INLINE void store(proto_msg_t *out, int f, const val_t *v) {
    switch (f) {
    case F_ID: out->id = v->raw; break;
    case F_AGENT: out->agent = str_of(v); break;
    case F_INPUT: out->input = v->raw; break;
    case F_SESSION: out->session = str_of(v); break;
    case F_TIMEOUT_MS: {
        uint64_t u = uint_of(v);
        out->timeout_ms = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    }
    case F_IDEMPOTENT: out->idempotent = v->it.b; break;
    case F_JOB: out->job = uint_of(v); out->has_job = true; break;
    case F_SEQ: out->seq = uint_of(v); break;
    case F_EVENT: out->event = v->raw; break;
    case F_OUTPUT: out->output = v->raw; break;
    case F_CODE: out->code = str_of(v); break;
    case F_MESSAGE: out->message = str_of(v); break;
    case F_TOPIC: out->topic = str_of(v); break;
    case F_DATA: out->data = v->raw; break;
    case F_NAME: out->name = str_of(v); break;
    case F_CAPACITY: out->capacity = uint_of(v); break;
    case F_AGENTS: out->agents = v->raw; break;
    case F_HEARTBEAT_MS: out->heartbeat_ms = uint_of(v); break;
    case F_ATTEMPT: out->attempt = uint_of(v); break;
    case F_APP: out->app = str_of(v); break;
    case F_USER: out->user = str_of(v); break;
    case F_EVENTS: out->events = uint_of(v); out->has_events = true; break;
    case F_AFTER: out->after = str_of(v); break;
    case F_LIMIT: out->limit = uint_of(v); break;
    case F_PARENT: out->parent = uint_of(v); out->has_parent = true; break;
    case F_BRANCH: out->branch = str_of(v); break;
    case F_INVOCATION: out->invocation = str_of(v); break;
    case F_STATE: out->state = v->raw; break;
    case F_HISTORY: out->history = v->raw; break;
    case F_WORKER: out->worker = str_of(v); break;
    case F_HISTORY_AGENTS: out->history_agents = v->raw; break;
    case F_REQ: out->req = uint_of(v); break;
    case F_BACKEND: out->backend = str_of(v); break;
    case F_MODEL_CONCURRENCY: out->model_concurrency = uint_of(v); break;
    case F_MODEL_RPS:
        out->model_rps = v->it.kind == PROTO__FLOAT ? v->it.f : (double)uint_of(v);
        break;
    case F_MODEL_BURST: out->model_burst = uint_of(v); break;
    case F_MODEL_TPM: out->model_tpm = uint_of(v); break;
    case F_TOKENS: out->tokens = uint_of(v); break;
    case F_ORIGIN: out->origin = v->raw; break;
    case F_HELD: out->held = v->raw; break;
    default: break;
    }
}

/* One present field against its rule: checked and stored, or skipped (an OPTIONAL nil).
 * *id_or_job: set when it counts as the "id" or "job" that some types need one of. Both
 * paths below go through here, so a field means the same on each. */
INLINE int apply_rule(const rule_t *r, const val_t *v, const proto_limits_t *lim,
                             proto_msg_t *out, bool *id_or_job, proto_error_t *err) {
    /* nil is a value for K_ANY and reply ids; elsewhere an OPTIONAL nil means absent */
    if (!r->required && v->it.kind == PROTO__NIL && r->kind != K_ANY && r->kind != K_REPLY_ID)
        return 0;
    int rc = check_kind(v, r->kind, field_names[r->field], lim, err);
    if (rc) return rc;
    store(out, r->field, v);
    if (r->field == F_ID || r->field == F_JOB) *id_or_job = true;
    return 0;
}

static int apply_spec(const spec_t *s, const val_t *vals, uint64_t seen,
                      const proto_limits_t *lim, proto_msg_t *out, proto_error_t *err) {
    bool have_id_or_job = false;
    for (unsigned i = 0; i < s->n; i++) {
        const rule_t *r = &s->rules[i];
        /* most of a type's fields are OPTIONAL and absent: one bit test each */
        if (!(seen & (UINT64_C(1) << r->field))) {
            if (r->required)
                return proto__fail(err, PROTO_EBAD, "field '%s' is missing",
                                   field_names[r->field]);
            continue;
        }
        int rc = apply_rule(r, &vals[r->field], lim, out, &have_id_or_job, err);
        if (rc) return rc;
    }
    if (s->id_or_job && !have_id_or_job)
        return proto__fail(err, PROTO_EBAD, "field 'id' is missing");
    return 0;
}

/* What the straight path reads from the tables above, worked out once before main (a
 * constructor: the tables stay written once, in one place): each field name's length, and
 * for each type how many of its rules it takes to reach the last REQUIRED one (and each
 * type name's length, for the encoders' header). */
#define N_TYPES (sizeof specs / sizeof specs[0])
static uint8_t field_len[F_COUNT];
static uint8_t req_end[N_TYPES];

__attribute__((constructor)) static void derive_tables(void) {
    for (int f = 0; f < F_COUNT; f++) field_len[f] = (uint8_t)strlen(field_names[f]);
    for (size_t t = 0; t < sizeof type_names / sizeof type_names[0]; t++)
        type_len[t] = (uint8_t)strlen(type_names[t]);
    for (size_t t = 0; t < N_TYPES; t++)
        for (unsigned i = 0; i < specs[t].n; i++)
            if (specs[t].rules[i].required) req_end[t] = (uint8_t)(i + 1);
}

/* Whether the n bytes at k are field f's name, whole. */
static inline bool is_field(const char *k, size_t n, int f) {
    return n == field_len[f] && same(k, field_names[f], n);
}

/* What both paths do last, on success. */
static void finish(proto_msg_t *out, proto_type_t type, const uint8_t *buf, size_t len) {
    if ((type == PROTO_QUERY || type == PROTO_WORK) && !out->input.n) out->input = raw_nil;
    if (type == PROTO_PUBLISH && !out->data.n) out->data = raw_nil;
    out->type = type;
    out->body = (proto_raw_t){buf, len};
}

/* The straight path, for a message in the shape proto's encoders write: a fixmap that starts
 * with "v": 1 and "type", then only its type's fields, under fixstr keys, in the order of its
 * rules in specs[] (a subsequence of them). Each key is compared with the next rules' names
 * instead of being looked up, and each value is checked and stored as it is read: no table of
 * values, no second pass over the rules. It has no errors of its own: it returns true only for
 * a message the general path accepts (out filled as that path fills it: the same reads, the
 * same walk for containers and apply_rule), and false at the first thing that is not of that
 * shape or not valid, leaving out dirty; the general path then decides, and words the error.
 * The differential fuzz of the two paths and tests/proto/test_proto_decode.c hold them
 * together. */
static bool decode_fast(const uint8_t *buf, size_t len, const proto_limits_t *lim,
                        proto_msg_t *out) {
    static const char head[8] = {(char)0xa1, 'v', 0x01, (char)0xa4, 't', 'y', 'p', 'e'};
    if (len < 10 || (buf[0] & 0xf0) != 0x80 || ld64((const char *)buf + 1) != ld64(head))
        return false;
    uint32_t n = buf[0] & 0x0fu;
    /* what proto__check_size and proto__open would refuse (the count against the bytes
     * left holds once every entry has been read within len) */
    if (n < 2 || n > lim->max_elems || lim->max_depth < 1 || len > lim->max_size) return false;
    uint8_t tb = buf[9];
    if (tb < 0xa0 || tb > 0xbf || len - 10 < (size_t)(tb & 0x1f)) return false;
    int type = type_of((const char *)buf + 10, tb & 0x1fu);
    if (type == PROTO_UNKNOWN) return false;
    const spec_t *s = &specs[type];
    proto__rd_t r = {buf, len, 10 + (size_t)(tb & 0x1f)};
    unsigned ri = 0;
    bool id_or_job = false;
    for (uint32_t i = 2; i < n; i++) {
        uint8_t kb = r.off < len ? buf[r.off] : 0;
        size_t kn = kb & 0x1fu;
        if (kb < 0xa1 || kb > 0xbf || len - r.off - 1 < kn) return false;
        const char *k = (const char *)buf + r.off + 1;
        while (ri < s->n && !is_field(k, kn, s->rules[ri].field)) {
            if (s->rules[ri].required) return false;
            ri++;
        }
        if (ri == s->n) return false; /* unknown, out of order or twice */
        const rule_t *rule = &s->rules[ri++];
        r.off += 1 + kn;
        size_t at = r.off;
        val_t v;
        if (read_head(&r, &v.it)) return false;
        if ((v.it.kind == PROTO__ARRAY || v.it.kind == PROTO__MAP) &&
            proto__walk_in(&r, &v.it, at, 1, lim, NULL))
            return false;
        v.raw = (proto_raw_t){buf + at, r.off - at};
        if (apply_rule(rule, &v, lim, out, &id_or_job, NULL)) return false;
    }
    if (r.off != len || ri < req_end[type]) return false; /* a REQUIRED field is missing */
    if (s->id_or_job && !id_or_job) return false;
    finish(out, (proto_type_t)type, buf, len);
    return true;
}

static void clear(proto_msg_t *out) {
    /* The size is hidden from the compiler, so that it calls memset (a few vector stores)
     * instead of expanding `rep stos` in line (one step per 8 bytes): 560 bytes, twice per
     * query in the broker; about 80 instructions become about 45, in no more time. */
    size_t n = sizeof *out;
    __asm__("" : "+r"(n));
    memset(out, 0, n);
    out->timeout_ms = -1;
}

int proto_decode(const uint8_t *buf, size_t len, const proto_limits_t *lim, proto_msg_t *out,
                 proto_error_t *err) {
    proto_limits_t dl;
    if (!lim) {
        proto_limits_default(&dl);
        lim = &dl;
    }
    clear(out);
    if (decode_fast(buf, len, lim, out)) return 0;
    clear(out);
    int rc = proto__check_size(len, lim, err);
    if (rc) return rc;
    val_t vals[F_COUNT];
    uint64_t seen = 0;
    if ((rc = collect(buf, len, lim, vals, &seen, err))) return rc;
    proto_type_t type = PROTO_UNKNOWN;
    const val_t *id = field_of(vals, seen, F_ID);
    if ((rc = check_version(field_of(vals, seen, F_V), err)) ||
        (rc = check_type(field_of(vals, seen, F_TYPE), &type, err)) ||
        (rc = apply_spec(&specs[type], vals, seen, lim, out, err))) {
        clear(out);
        /* An id that reads as one is kept, so the error can name the request it answers. */
        if (id->raw.n && check_id(id, "id", false, lim, NULL) == 0) out->id = id->raw;
        return rc;
    }
    finish(out, type, buf, len);
    return 0;
}

int proto_agents_next(proto_raw_t agents, size_t *cursor, proto_str_t *name) {
    proto__rd_t r = {agents.p, agents.n, *cursor};
    proto__item_t it;
    if (agents.n == 0) return 0; /* absent: no names */
    if (*cursor == 0) {
        if (proto__rd_next(&r, &it) || it.kind != PROTO__ARRAY) return PROTO_EBAD;
    }
    if (r.off >= r.n) {
        *cursor = r.off;
        return 0;
    }
    if (proto__rd_next(&r, &it) || it.kind != PROTO__STR) return PROTO_EBAD;
    *name = (proto_str_t){(const char *)it.data, it.len};
    *cursor = r.off;
    return 1;
}

int proto_map_next(proto_raw_t map, size_t *cursor, proto_raw_t *key, proto_raw_t *val) {
    proto__rd_t r = {map.p, map.n, *cursor};
    proto__item_t it;
    if (*cursor == 0) {
        if (proto__rd_next(&r, &it) || it.kind != PROTO__MAP) return PROTO_EBAD;
    }
    if (r.off >= r.n) {
        *cursor = r.off;
        return 0;
    }
    size_t at = r.off;
    if (proto__rd_skip(&r)) return PROTO_EBAD;
    *key = (proto_raw_t){map.p + at, r.off - at};
    at = r.off;
    if (r.off >= r.n || proto__rd_skip(&r)) return PROTO_EBAD;
    *val = (proto_raw_t){map.p + at, r.off - at};
    *cursor = r.off;
    return 1;
}

bool proto_raw_str(proto_raw_t raw, proto_str_t *out) {
    proto__rd_t r = {raw.p, raw.n, 0};
    proto__item_t it;
    if (raw.n == 0 || proto__rd_next(&r, &it) || it.kind != PROTO__STR) return false;
    *out = (proto_str_t){(const char *)it.data, it.len};
    return true;
}
