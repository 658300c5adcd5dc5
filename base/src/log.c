/* base/src/log.c: the logger behind base/log.h. Each line is formatted whole and written with
 * one fputs, so lines from one process never interleave. The JSON form is the key=value line
 * rewritten, so every call site serves both formats. */
#include "base/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = BASE_LOG_INFO;
static int log_format = BASE_LOG_KV;
static bool log_stamp;
static base_log_sink_fn log_sink;
static void *log_sink_ctx;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int base_log_level_parse(const char *s) {
    for (int i = 0; i <= BASE_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

int base_log_format_parse(const char *s) {
    if (strcmp(s, "kv") == 0) return BASE_LOG_KV;
    if (strcmp(s, "json") == 0) return BASE_LOG_JSON;
    return -1;
}

void base_log_set_level(int level) { log_level = level; }
void base_log_set_format(int format) { log_format = format; }
void base_log_set_stamp(bool on) { log_stamp = on; }

void base_log_set_sink(base_log_sink_fn sink, void *ctx) {
    log_sink = sink;
    log_sink_ctx = ctx;
}

bool base_log_on(int level) {
    if (level < BASE_LOG_DEBUG || level >= BASE_LOG_OFF) return false;
    return log_sink || level >= log_level;
}

/* ---- key=value to JSON ---- */

typedef struct jbuf {
    char *p;
    size_t n, cap;  /* cap counts the NUL */
} jbuf_t;

static bool jput(jbuf_t *o, const char *s, size_t n) {
    if (o->n + n >= o->cap) return false;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    return true;
}

/* Appends bytes as the inside of a JSON string: non-ASCII and controls as \u00XX, so the
 * line is valid UTF-8 whatever the bytes were. */
static bool jstr(jbuf_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        size_t k = 1;
        e[0] = (char)c;
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            k = (size_t)snprintf(e, sizeof e, "\\u%04x", c);
        }
        if (!jput(o, e, k)) return false;
    }
    return true;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads a value at *s: "quoted" (base_log_str's escapes undone) or bare up to a space, into
 * v (at most cap bytes). Returns its length; *num tells whether it is a bare integer. */
static size_t read_value(const char **s, char *v, size_t cap, bool *num) {
    const char *p = *s;
    size_t n = 0;
    *num = false;
    if (*p != '"') {
        while (*p && *p != ' ') {
            if (n < cap) v[n++] = *p;
            p++;
        }
        size_t d = n && v[0] == '-' ? 1 : 0;
        *num = n > d && n - d <= 18 && (v[d] != '0' || n - d == 1);
        for (size_t i = d; *num && i < n; i++) *num = v[i] >= '0' && v[i] <= '9';
        *s = p;
        return n;
    }
    for (p++; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
            c = (char)(hexval(p[2]) * 16 + hexval(p[3]));
            p += 3;
        } else if (c == '\\' && p[1]) {
            c = *++p;
        }
        if (n < cap) v[n++] = c;
    }
    *s = *p ? p + 1 : p;
    return n;
}

size_t base_log_kv_to_json(const char *kv, char *out, size_t cap) {
    jbuf_t o = {out, 0, cap};
    char val[1024];
    while (*kv) {
        while (*kv == ' ') kv++;
        const char *k = kv;
        while (*kv && *kv != ' ' && *kv != '=') kv++;
        size_t kn = (size_t)(kv - k);
        bool num = false, bare = *kv != '=' || kn == 0;
        if (bare) kv = k; /* not key=value: the token goes under "msg" */
        else kv++;
        size_t vn = read_value(&kv, val, sizeof val, &num);
        if (bare && vn == 0) {
            if (*kv) kv++;
            continue;
        }
        size_t mark = o.n; /* a member goes in whole or not at all */
        bool ok = jput(&o, ",\"", 2) && jstr(&o, bare ? "msg" : k, bare ? 3 : kn) &&
                  jput(&o, "\":", 2) &&
                  (num ? jput(&o, val, vn)
                       : jput(&o, "\"", 1) && jstr(&o, val, vn) && jput(&o, "\"", 1));
        if (!ok) o.n = mark;
    }
    if (cap) out[o.n] = '\0';
    return o.n;
}

static void stamp_now(char *out, size_t cap) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* The JSON object of one event into out (cap bytes), always closed. */
static void to_json(char *out, size_t cap, int level, const char *event, const char *fields) {
    char stamp[96];
    stamp_now(stamp, sizeof stamp);
    jbuf_t o = {out, 0, cap - 1}; /* room for the closing brace */
    jput(&o, "{\"ts\":\"", 7);
    jstr(&o, stamp, strlen(stamp));
    jput(&o, "\",\"level\":\"", 11);
    jstr(&o, level_names[level], strlen(level_names[level]));
    jput(&o, "\",\"event\":\"", 11);
    jstr(&o, event, strlen(event));
    jput(&o, "\"", 1);
    o.n += base_log_kv_to_json(fields, out + o.n, o.cap - o.n);
    out[o.n++] = '}';
    out[o.n] = '\0';
}

static void emit(int level, const char *line) {
    if (log_sink) {
        log_sink(level, line, log_sink_ctx);
        return;
    }
    char out[2100];
    /* strlen, not strnlen: every caller's line is NUL-terminated and shorter than out, and
     * GCC -O3 (the Release build) rejects a strnlen bound larger than the caller's array. */
    size_t n = strlen(line);
    if (n > sizeof out - 2) n = sizeof out - 2;
    memcpy(out, line, n);
    out[n] = '\n';
    out[n + 1] = '\0';
    fputs(out, stderr);
}

void base_logv(int level, const char *event, const char *fmt, va_list ap) {
    if (!base_log_on(level)) return;
    char line[1024];
    int n = 0;
    if (log_format == BASE_LOG_KV) {
        char stamp[96] = "";
        if (log_stamp) stamp_now(stamp, sizeof stamp);
        n = snprintf(line, sizeof line, "%s%s%slevel=%s event=%s ", log_stamp ? "ts=" : "",
                     stamp, log_stamp ? " " : "", level_names[level], event);
        if (n < 0) return;
    }
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strnlen(line, sizeof line - 1);
    while (len > 0 && line[len - 1] == ' ') len--;
    line[len] = '\0';
    if (log_format == BASE_LOG_JSON) {
        char json[2048];
        to_json(json, sizeof json, level, event, line);
        emit(level, json);
        return;
    }
    emit(level, line);
}

void base_log(int level, const char *event, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    base_logv(level, event, fmt, ap);
    va_end(ap);
}

const char *base_log_str(char *dst, size_t cap, const void *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t o = 0, i;
    if (cap < 16) {
        if (cap) dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (i = 0; i < n && o + 9 < cap; i++) { /* room for 4 + ..."\0 */
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        } else {
            dst[o++] = (char)c;
        }
    }
    if (i < n) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}

const char *base_log_hex(char *dst, size_t cap, const void *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 <= cap; i++) {
        dst[o++] = hex[s[i] >> 4];
        dst[o++] = hex[s[i] & 15];
    }
    if (cap) dst[o < cap ? o : cap - 1] = '\0';
    return dst;
}
