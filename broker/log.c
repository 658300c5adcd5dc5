/* broker/log.c: the logger behind log.h. Each line is formatted whole and written with one
 * fputs, so lines from one process never interleave. The JSON form is the key=value line
 * rewritten, so every call site serves both formats. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = BRK_LOG_INFO;
static int log_format = BRK_LOG_KV;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int brk_log_level_parse(const char *s) {
    for (int i = 0; i <= BRK_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

void brk_log_set_level(int level) { log_level = level; }

int brk_log_format_parse(const char *s) {
    if (strcmp(s, "kv") == 0) return BRK_LOG_KV;
    if (strcmp(s, "json") == 0) return BRK_LOG_JSON;
    return -1;
}

void brk_log_set_format(int format) { log_format = format; }

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

/* Reads a value at *s: "quoted" (brk_log_str's escapes undone) or bare up to a space, into
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
        size_t d = v[0] == '-' ? 1 : 0;
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

size_t brk_log_kv_to_json(const char *kv, char *out, size_t cap) {
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

static void log_json(int level, const char *ts, const char *event, const char *fields) {
    char line[2048];
    jbuf_t o = {line, 0, sizeof line - 2};
    jput(&o, "{\"ts\":\"", 7);
    jstr(&o, ts, strlen(ts));
    jput(&o, "\",\"level\":\"", 11);
    jstr(&o, level_names[level], strlen(level_names[level]));
    jput(&o, "\",\"event\":\"", 11);
    jstr(&o, event, strlen(event));
    jput(&o, "\"", 1);
    o.n += brk_log_kv_to_json(fields, line + o.n, o.cap - o.n);
    line[o.n++] = '}';
    line[o.n++] = '\n';
    line[o.n] = '\0';
    fputs(line, stderr);
}
bool brk_log_on(int level) { return level >= log_level && level < BRK_LOG_OFF; }

void brk_log(int level, const char *event, const char *fmt, ...) {
    if (!brk_log_on(level)) return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    int n = log_format == BRK_LOG_JSON
                ? 0
                : snprintf(line, sizeof line, "ts=%s level=%s event=%s ", stamp,
                           level_names[level], event);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(line, sizeof line - 2);
    while (len > 0 && line[len - 1] == ' ') len--;
    line[len] = '\n';
    line[len + 1] = '\0';
    if (log_format == BRK_LOG_JSON) {
        line[len] = '\0';
        log_json(level, stamp, event, line);
        return;
    }
    fputs(line, stderr);
}

const char *brk_log_str(char *dst, size_t cap, const void *p, size_t n) {
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

const char *brk_log_hex(char *dst, size_t cap, const void *p, size_t n) {
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
