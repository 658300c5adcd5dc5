/* bench/broker/benchutil.h: what the C programs of bench/broker share: a monotonic clock,
 * failing loudly, argument parsing, the 1/ABP echo query every system carries and the check
 * of its reply. Header-only: each program is one .c file plus this. */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_INPUT 64   /* bytes of the echo input */
#define BENCH_QUERY_MAX 160

static inline int64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* "--name value" options: returns the value of argv[*i] if it is `name`, else NULL. */
static inline const char *bench_opt(int argc, char **argv, int *i, const char *name) {
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) bench_die("%s needs a value", name);
    return argv[++*i];
}

static inline long bench_long(const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) bench_die("bad number '%s'", s);
    return v;
}

/* The 1/ABP query every system carries, byte for byte:
 * {"v":1,"type":"query","id":<uint32>,"agent":"echo","input":<64-byte string>}.
 * The id is a fixed-width uint32 so every message has the same size. Returns its length. */
static inline size_t bench_query(uint8_t *out, uint32_t id) {
    static const uint8_t head[] = {0x85, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                   0xa5, 'q', 'u', 'e', 'r', 'y', 0xa2, 'i', 'd', 0xce};
    static const uint8_t mid[] = {0xa5, 'a', 'g', 'e', 'n', 't', 0xa4, 'e', 'c', 'h', 'o',
                                  0xa5, 'i', 'n', 'p', 'u', 't', 0xd9, BENCH_INPUT};
    size_t n = 0;
    memcpy(out, head, sizeof head);
    n += sizeof head;
    out[n++] = (uint8_t)(id >> 24);
    out[n++] = (uint8_t)(id >> 16);
    out[n++] = (uint8_t)(id >> 8);
    out[n++] = (uint8_t)id;
    memcpy(out + n, mid, sizeof mid);
    n += sizeof mid;
    for (int i = 0; i < BENCH_INPUT; i++) out[n++] = (uint8_t)('a' + (id + i) % 26);
    return n;
}

/* Reads a msgpack string at p (fixstr, str8, str16); returns its length or -1. */
static inline long mp_str(const uint8_t *p, const uint8_t *end, const uint8_t **s) {
    if (p >= end) return -1;
    long n = -1;
    if ((*p & 0xe0) == 0xa0) n = *p & 0x1f, p += 1;
    else if (*p == 0xd9 && end - p >= 2) n = p[1], p += 2;
    else if (*p == 0xda && end - p >= 3) n = (p[1] << 8) | p[2], p += 3;
    if (n < 0 || end - p < n) return -1;
    *s = p;
    return n;
}

/* Reads a msgpack unsigned integer at p; returns the bytes it took, 0 if it is not one. */
static inline int mp_uint(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    if (p >= end) return 0;
    int w = *p <= 0x7f ? 0 : *p == 0xcc ? 1 : *p == 0xcd ? 2 : *p == 0xce ? 4
            : *p == 0xcf ? 8 : -1;
    if (w < 0 || end - p < 1 + w) return 0;
    if (w == 0) {
        *v = *p;
        return 1;
    }
    *v = 0;
    for (int i = 1; i <= w; i++) *v = (*v << 8) | p[i];
    return 1 + w;
}

/* Checks a reply: a map whose "type" is `want_type` ("result" from a broker, "query" from a
 * plain echo) and which holds our id and, as "output" or "input", the 64-byte string.
 * Only the shapes our encoders and msgpack-python produce are understood (str keys, uint
 * id, str values for type/agent/output): enough for the replies of the benchmark. */
static inline bool bench_check_reply(const uint8_t *p, size_t len, const char *want_type,
                                     uint64_t *id) {
    const uint8_t *end = p + len, *s;
    if (len == 0 || (*p & 0xf0) != 0x80) return false;
    unsigned fields = *p++ & 0x0f;
    bool type_ok = false, have_id = false, have_data = false;
    for (unsigned f = 0; f < fields; f++) {
        long kn = mp_str(p, end, &s);
        if (kn < 0) return false;
        const uint8_t *key = s;
        p = s + kn;
        if (kn == 1 && key[0] == 'v') {
            uint64_t v;
            int w = mp_uint(p, end, &v);
            if (!w || v != 1) return false;
            p += w;
        } else if (kn == 2 && memcmp(key, "id", 2) == 0) {
            int w = mp_uint(p, end, id);
            if (!w) return false;
            p += w;
            have_id = true;
        } else {
            long vn = mp_str(p, end, &s);
            if (vn < 0) return false; /* every other value here is a string */
            p = s + vn;
            if (kn == 4 && memcmp(key, "type", 4) == 0)
                type_ok = (size_t)vn == strlen(want_type) && memcmp(s, want_type, vn) == 0;
            if ((kn == 6 && memcmp(key, "output", 6) == 0) ||
                (kn == 5 && memcmp(key, "input", 5) == 0))
                have_data = vn == BENCH_INPUT;
        }
    }
    return type_ok && have_id && have_data && p == end;
}

#endif
