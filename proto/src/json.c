/* proto/src/json.c: JSON for people and command-line tools. proto_raw_to_json writes a
 * (validated) msgpack value as one line of JSON; proto_json_to_msgpack is a small strict
 * RFC 8259 parser that packs as it goes, patching container counts when they close. Both
 * recurse at most PROTO_MAX_DEPTH deep. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/utf8.h"
#include "internal.h"

/* ---- msgpack -> JSON ---- */

static void put_str(proto_buf_t *b, const char *s) {
    proto__buf_put(b, s, strlen(s));
}

/* Bytes that can stand in a JSON string as they are, and that both directions copy in runs:
 * printable ASCII but '"' and '\\'. */
static inline bool plain_byte(uint8_t c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

/* The length of the run of plain bytes at s. Eight at a time: model requests and replies are
 * mostly long plain strings, and a byte at a time this scan was a tenth of the worker's
 * instructions. A word has a byte that is not plain iff one of these holds for some byte:
 * < 0x20, >= 0x80, == '"', == '\\' (the classic "has a zero byte" test on w ^ pattern). */
static size_t plain_run(const uint8_t *s, size_t n) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, bs;
        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        uint64_t bad = ((w - ones * 0x20) | w | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & high;
        if (bad) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* borrows only run upward from a byte that is really not plain, so the lowest
             * flagged byte is the first one */
            return i + (size_t)__builtin_ctzll(bad) / 8;
#else
            break;
#endif
        }
    }
    while (i < n && plain_byte(s[i])) i++;
    return i;
}

static void put_json_string(proto_buf_t *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    proto__buf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t plain = i + plain_run(s + i, n - i); /* no escape needed: one piece */
        if (plain > i) {
            proto__buf_put(b, s + i, plain - i);
            i = plain;
            continue;
        }
        uint8_t c = s[i];
        size_t run = base_utf8_len(s + i, n - i);
        if (run == 0) { /* not UTF-8: say so rather than pass it on */
            put_str(b, "\\ufffd");
            i++;
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            proto__buf_put(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                                : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            put_str(b, named ? named : u);
            i++;
        } else {
            proto__buf_put(b, s + i, run);
            i += run;
        }
    }
    proto__buf_put(b, "\"", 1);
}

static void put_base64(proto_buf_t *b, const uint8_t *p, size_t n) {
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    proto__buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        proto__buf_put(b, q, 4);
    }
    proto__buf_put(b, "\"", 1);
}

static void put_fmt(proto_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(proto_buf_t *b, const char *fmt, ...) {
    char tmp[48];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) proto__buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Decimal text of v (a minus sign first when neg): by hand, printf was ~2% of the worker. */
static void put_uint(proto_buf_t *b, uint64_t v, bool neg) {
    char tmp[21];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) tmp[--i] = '-';
    proto__buf_put(b, tmp + i, sizeof tmp - i);
}

static void put_double(proto_buf_t *b, double d) {
    if (!isfinite(d)) {
        put_str(b, "null"); /* JSON has no NaN or infinity */
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back exactly */
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    put_str(b, tmp);
    if (!strpbrk(tmp, ".eE")) put_str(b, ".0"); /* still reads as a float */
}

/* Non-string keys inside non-string keys: each level escapes the text of the one inside it
 * again, which doubles its backslashes, so the depth is capped to keep output linear. */
#define MAX_KEY_NESTING 4

static int value_to_json(proto__rd_t *r, proto_buf_t *b, unsigned keys);

/* A map key: strings as they are, anything else as a string holding its JSON text. */
static int key_to_json(proto__rd_t *r, proto_buf_t *b, unsigned keys) {
    proto__rd_t peek = *r;
    proto__item_t it;
    proto__rd_next(&peek, &it);
    if (it.kind == PROTO__STR) return value_to_json(r, b, keys);
    if (keys >= MAX_KEY_NESTING) return PROTO_EBAD;
    proto_buf_t tmp;
    proto_buf_init(&tmp);
    int rc = value_to_json(r, &tmp, keys + 1);
    if (tmp.failed) b->failed = true;
    else put_json_string(b, tmp.p, tmp.n);
    proto_buf_free(&tmp);
    return rc;
}

static int container_to_json(proto__rd_t *r, const proto__item_t *it, proto_buf_t *b,
                             unsigned keys) {
    bool map = it->kind == PROTO__MAP;
    proto__buf_put(b, map ? "{" : "[", 1);
    for (uint32_t i = 0; i < it->len; i++) {
        if (i) proto__buf_put(b, ",", 1);
        if (map) {
            if (key_to_json(r, b, keys)) return PROTO_EBAD;
            proto__buf_put(b, ":", 1);
        }
        if (value_to_json(r, b, keys)) return PROTO_EBAD;
    }
    proto__buf_put(b, map ? "}" : "]", 1);
    return 0;
}

/* Bytes are validated (depth at most PROTO_MAX_DEPTH) before this recursion starts; keys
 * counts the non-string keys being rendered around this value. */
static int value_to_json(proto__rd_t *r, proto_buf_t *b, unsigned keys) {
    proto__item_t it;
    if (proto__rd_next(r, &it)) return PROTO_EBAD;
    switch (it.kind) {
    case PROTO__NIL: put_str(b, "null"); break;
    case PROTO__BOOL: put_str(b, it.b ? "true" : "false"); break;
    case PROTO__UINT: put_uint(b, it.u, false); break;
    case PROTO__INT: /* the magnitude as unsigned: INT64_MIN has no positive twin */
        put_uint(b, it.i < 0 ? 0 - (uint64_t)it.i : (uint64_t)it.i, it.i < 0);
        break;
    case PROTO__FLOAT: put_double(b, it.f); break;
    case PROTO__STR: put_json_string(b, it.data, it.len); break;
    case PROTO__BIN: put_base64(b, it.data, it.len); break;
    case PROTO__EXT:
        put_fmt(b, "{\"ext\":%d,\"base64\":", it.ext_type);
        put_base64(b, it.data, it.len);
        put_str(b, "}");
        break;
    default: return container_to_json(r, &it, b, keys);
    }
    return 0;
}

int proto_raw_to_json(proto_raw_t raw, proto_buf_t *out) {
    proto_limits_t lim = {raw.n, PROTO_MAX_DEPTH, UINT32_MAX, 0};
    if (proto_validate(raw.p, raw.n, &lim, NULL)) return PROTO_EBAD;
    size_t start = out->n;
    proto__rd_t r = {raw.p, raw.n, 0};
    int rc = value_to_json(&r, out, 0);
    if (!rc && proto__buf_reserve(out, 1) == 0) out->p[out->n] = 0;
    if (out->failed) return PROTO_ENOMEM;
    if (rc) out->n = start;
    return rc;
}

/* ---- JSON -> msgpack ---- */

typedef struct parser {
    const char *s;
    size_t n, off;
    proto_buf_t *out;
    proto_error_t *err;
} parser_t;

static int perr(parser_t *ps, const char *what) {
    if (ps->off >= ps->n)
        return proto__fail(ps->err, PROTO_EBAD, "JSON: %s at offset %zu (end of text)", what,
                           ps->off);
    unsigned char c = (unsigned char)ps->s[ps->off];
    if (c >= 0x20 && c < 0x7f)
        return proto__fail(ps->err, PROTO_EBAD, "JSON: %s at offset %zu ('%c')", what, ps->off,
                           c);
    return proto__fail(ps->err, PROTO_EBAD, "JSON: %s at offset %zu (byte 0x%02x)", what,
                       ps->off, c);
}

static void skip_ws(parser_t *ps) {
    while (ps->off < ps->n) {
        char c = ps->s[ps->off];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->off++;
    }
}

static int peek(parser_t *ps) {
    skip_ws(ps);
    return ps->off < ps->n ? (unsigned char)ps->s[ps->off] : -1;
}

static int hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return o[0] = (uint8_t)(0xc0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        o[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
    o[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

/* Reads a \u escape at ps->off (pointing at the 'u'), pairing surrogates. */
static int unicode_escape(parser_t *ps, uint32_t *cp) {
    if (ps->n - ps->off < 5 || hex4(ps->s + ps->off + 1, cp)) return perr(ps, "bad \\u escape");
    ps->off += 5;
    if (*cp >= 0xdc00 && *cp <= 0xdfff) return perr(ps, "lone low surrogate");
    if (*cp < 0xd800 || *cp > 0xdbff) return 0;
    uint32_t lo;
    if (ps->n - ps->off < 6 || ps->s[ps->off] != '\\' || ps->s[ps->off + 1] != 'u' ||
        hex4(ps->s + ps->off + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
        return perr(ps, "high surrogate without a low one");
    ps->off += 6;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 0;
}

/* One pass over a string body (ps->off just after the opening quote): with dst NULL it only
 * checks and measures, else it writes the decoded UTF-8 to dst. */
static int scan_string(parser_t *ps, uint8_t *dst, size_t *len) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t n = 0;
    for (;;) {
        if (ps->off >= ps->n) return perr(ps, "unterminated string");
        /* a run of ASCII without escapes: one copy */
        size_t plain = ps->off + plain_run((const uint8_t *)ps->s + ps->off, ps->n - ps->off);
        if (plain > ps->off) {
            if (dst) memcpy(dst + n, ps->s + ps->off, plain - ps->off);
            n += plain - ps->off;
            ps->off = plain;
            continue;
        }
        uint8_t c = (uint8_t)ps->s[ps->off], o[4];
        size_t k;
        if (c == '"') break;
        if (c < 0x20) return perr(ps, "control character in string");
        if (c == '\\') {
            ps->off++;
            const char *e = ps->off < ps->n ? memchr(from, ps->s[ps->off], 8) : NULL;
            if (ps->off < ps->n && ps->s[ps->off] == 'u') {
                uint32_t cp = 0; /* set by unicode_escape; gcc -O3 cannot tell */
                int rc = unicode_escape(ps, &cp);
                if (rc) return rc;
                k = put_utf8(o, cp);
            } else if (e && *e) {
                o[0] = (uint8_t)to[e - from];
                k = 1;
                ps->off++;
            } else {
                return perr(ps, "bad escape");
            }
            if (dst) memcpy(dst + n, o, k);
        } else {
            k = base_utf8_len((const uint8_t *)ps->s + ps->off, ps->n - ps->off);
            if (k == 0) return perr(ps, "invalid UTF-8");
            if (dst) memcpy(dst + n, ps->s + ps->off, k);
            ps->off += k;
        }
        n += k;
    }
    ps->off++; /* the closing quote */
    *len = n;
    return 0;
}

static int parse_string(parser_t *ps) {
    size_t start = ++ps->off, len;
    size_t run = plain_run((const uint8_t *)ps->s + start, ps->n - start);
    if (start + run < ps->n && ps->s[start + run] == '"') { /* no escapes: one pass */
        proto_pack_str(ps->out, ps->s + start, run);
        ps->off = start + run + 1;
        return ps->out->failed ? PROTO_ENOMEM : 0;
    }
    int rc = scan_string(ps, NULL, &len);
    if (rc) return rc;
    msgpack_pack_str(&ps->out->pk, len);
    if (proto__buf_reserve(ps->out, len)) return PROTO_ENOMEM;
    ps->off = start;
    scan_string(ps, ps->out->p + ps->out->n, &len);
    ps->out->n += len;
    return 0;
}

static size_t digits(parser_t *ps) {
    size_t k = 0;
    while (ps->off < ps->n && ps->s[ps->off] >= '0' && ps->s[ps->off] <= '9') ps->off++, k++;
    return k;
}

/* Packs a JSON number: an integer when its value is integral and fits, else a double. */
static int pack_number(parser_t *ps, const char *text, bool integral_text, bool neg) {
    errno = 0;
    if (integral_text) {
        char *end;
        if (neg) {
            long long v = strtoll(text, &end, 10);
            if (errno == 0) return msgpack_pack_int64(&ps->out->pk, v), 0;
        } else {
            unsigned long long v = strtoull(text, &end, 10);
            if (errno == 0) return msgpack_pack_uint64(&ps->out->pk, v), 0;
        }
        errno = 0;
    }
    double d = strtod(text, NULL);
    if (errno == ERANGE && isinf(d)) return perr(ps, "number out of range");
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        msgpack_pack_int64(&ps->out->pk, (int64_t)d);
    else if (d == floor(d) && d >= 0 && d < 18446744073709551616.0)
        msgpack_pack_uint64(&ps->out->pk, (uint64_t)d);
    else
        msgpack_pack_double(&ps->out->pk, d);
    return 0;
}

static int parse_number(parser_t *ps) {
    size_t start = ps->off;
    bool neg = ps->s[ps->off] == '-', integral = true;
    if (neg) ps->off++;
    if (ps->off < ps->n && ps->s[ps->off] == '0') ps->off++;
    else if (digits(ps) == 0) return perr(ps, "bad number");
    if (ps->off < ps->n && ps->s[ps->off] == '.') {
        ps->off++;
        integral = false;
        if (digits(ps) == 0) return perr(ps, "bad number");
    }
    if (ps->off < ps->n && (ps->s[ps->off] == 'e' || ps->s[ps->off] == 'E')) {
        ps->off++;
        integral = false;
        if (ps->off < ps->n && (ps->s[ps->off] == '+' || ps->s[ps->off] == '-')) ps->off++;
        if (digits(ps) == 0) return perr(ps, "bad number");
    }
    char tmp[64], *text = tmp;
    size_t len = ps->off - start;
    if (len >= sizeof tmp && !(text = malloc(len + 1))) return PROTO_ENOMEM;
    memcpy(text, ps->s + start, len);
    text[len] = 0;
    size_t end = ps->off;
    ps->off = start; /* errors name where the number starts */
    int rc = pack_number(ps, text, integral, neg);
    ps->off = end;
    if (text != tmp) free(text);
    return rc;
}

static int parse_word(parser_t *ps, const char *word) {
    size_t n = strlen(word);
    if (ps->n - ps->off < n || memcmp(ps->s + ps->off, word, n) != 0)
        return perr(ps, "unexpected text");
    ps->off += n;
    return 0;
}

/* Replaces the 5-byte array32/map32 header at `at` by the shortest one for count. */
static void patch_header(proto_buf_t *b, size_t at, bool map, uint32_t count) {
    if (b->failed) return;
    uint8_t *h = b->p + at;
    size_t hn = count <= 15 ? 1 : count <= 0xffff ? 3 : 5;
    if (hn < 5) memmove(h + hn, h + 5, b->n - at - 5);
    b->n -= 5 - hn;
    if (hn == 1) {
        h[0] = (uint8_t)((map ? 0x80 : 0x90) | count);
    } else if (hn == 3) {
        h[0] = map ? 0xde : 0xdc;
        h[1] = (uint8_t)(count >> 8), h[2] = (uint8_t)count;
    } else {
        h[0] = map ? 0xdf : 0xdd;
        for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(count >> (24 - 8 * i));
    }
}

static int parse_value(parser_t *ps, unsigned depth);

static int parse_container(parser_t *ps, unsigned depth) {
    bool map = ps->s[ps->off] == '{';
    char close = map ? '}' : ']';
    if (depth >= PROTO_MAX_DEPTH) return perr(ps, "nesting too deep");
    ps->off++;
    size_t at = ps->out->n;
    uint8_t ph[5] = {map ? 0xdf : 0xdd, 0, 0, 0, 0};
    proto__buf_put(ps->out, ph, 5);
    uint32_t count = 0;
    if (peek(ps) == close) {
        ps->off++;
    } else {
        for (;;) {
            if (count == UINT32_MAX) return perr(ps, "too many elements");
            int rc;
            if (map) {
                if (peek(ps) != '"') return perr(ps, "expected a string key");
                if ((rc = parse_string(ps))) return rc;
                if (peek(ps) != ':') return perr(ps, "expected ':'");
                ps->off++;
            }
            if ((rc = parse_value(ps, depth + 1))) return rc;
            count++;
            int c = peek(ps);
            if (c == close) {
                ps->off++;
                break;
            }
            if (c != ',') return perr(ps, map ? "expected ',' or '}'" : "expected ',' or ']'");
            ps->off++;
        }
    }
    patch_header(ps->out, at, map, count);
    return 0;
}

static int parse_value(parser_t *ps, unsigned depth) {
    int c = peek(ps);
    switch (c) {
    case '{':
    case '[': return parse_container(ps, depth);
    case '"': return parse_string(ps);
    case 't': msgpack_pack_true(&ps->out->pk); return parse_word(ps, "true");
    case 'f': msgpack_pack_false(&ps->out->pk); return parse_word(ps, "false");
    case 'n': msgpack_pack_nil(&ps->out->pk); return parse_word(ps, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps);
        return perr(ps, c < 0 ? "expected a value" : "unexpected character");
    }
}

int proto_json_to_msgpack(const char *json, size_t n, proto_buf_t *out, proto_error_t *err) {
    parser_t ps = {json, n, 0, out, err};
    size_t start = out->n;
    int rc = parse_value(&ps, 0);
    if (!rc && peek(&ps) >= 0) rc = perr(&ps, "trailing text after the value");
    if (!rc && out->failed) rc = PROTO_ENOMEM;
    if (rc == PROTO_ENOMEM) proto__fail(err, rc, "out of memory");
    if (rc) out->n = start;
    return rc;
}
