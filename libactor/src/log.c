/* log.c: formats one key=value line per event and hands it to the sink (stderr by default);
 * in JSON mode the same line is rewritten as one JSON object, so every caller serves both. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "actor/log.h"

static act_log_sink_fn sink;
static void *sink_ctx;
static act_log_level_t min_level = ACT_LOG_INFO;
static act_log_format_t format = ACT_LOG_FORMAT_KV;
static const char *const names[] = {"debug", "info", "warn", "error"};

void act_log_set_sink(act_log_sink_fn fn, void *ctx) {
    sink = fn;
    sink_ctx = ctx;
}

void act_log_set_level(act_log_level_t level) { min_level = level; }
void act_log_set_format(act_log_format_t f) { format = f; }

/* ---- key=value to JSON ---- */

typedef struct jbuf {
    char *p;
    size_t n, cap; /* cap counts the NUL */
} jbuf_t;

static bool jput(jbuf_t *o, const char *s, size_t n) {
    if (o->n + n >= o->cap) return false;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    return true;
}

/* The inside of a JSON string; non-ASCII and controls as \u00XX, so any bytes give UTF-8. */
static bool jstr(jbuf_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8] = {(char)c};
        size_t k = 1;
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

/* Reads a value at *s, "quoted" (\" and \\ undone) or bare up to a space, into v. Returns its
 * length; *num tells whether it is a bare integer. */
static size_t read_value(const char **s, char *v, size_t cap, bool *num) {
    const char *p = *s;
    size_t n = 0;
    *num = false;
    if (*p != '"') {
        for (; *p && *p != ' '; p++)
            if (n < cap) v[n++] = *p;
        size_t d = n && v[0] == '-' ? 1 : 0;
        *num = n > d && n - d <= 18 && (v[d] != '0' || n - d == 1);
        for (size_t i = d; *num && i < n; i++) *num = v[i] >= '0' && v[i] <= '9';
        *s = p;
        return n;
    }
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) p++;
        if (n < cap) v[n++] = *p;
    }
    *s = *p ? p + 1 : p;
    return n;
}

/* Appends the fields of a key=value line as `,"key":value` members, each whole or not at all. */
static void kv_members(jbuf_t *o, const char *kv) {
    char val[1024];
    while (*kv) {
        while (*kv == ' ') kv++;
        const char *k = kv;
        while (*kv && *kv != ' ' && *kv != '=') kv++;
        size_t kn = (size_t)(kv - k);
        bool num = false, bare = *kv != '=' || kn == 0;
        if (bare) kv = k;
        else kv++;
        size_t vn = read_value(&kv, val, sizeof val, &num);
        if (bare && vn == 0) {
            if (*kv) kv++;
            continue;
        }
        size_t mark = o->n;
        bool ok = jput(o, ",\"", 2) && jstr(o, bare ? "msg" : k, bare ? 3 : kn) &&
                  jput(o, "\":", 2) &&
                  (num ? jput(o, val, vn)
                       : jput(o, "\"", 1) && jstr(o, val, vn) && jput(o, "\"", 1));
        if (!ok) o->n = mark;
    }
}

static void to_json(char *out, size_t cap, act_log_level_t level, const char *event,
                    const char *fields) {
    struct timespec ts;
    struct tm tm;
    char stamp[96];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    jbuf_t o = {out, 0, cap - 1}; /* room for the closing brace */
    jput(&o, "{\"ts\":\"", 7);
    jstr(&o, stamp, strlen(stamp));
    jput(&o, "\",\"level\":\"", 11);
    jput(&o, names[level & 3], strlen(names[level & 3]));
    jput(&o, "\",\"event\":\"", 11);
    jstr(&o, event, strlen(event));
    jput(&o, "\"", 1);
    kv_members(&o, fields);
    out[o.n++] = '}';
    out[o.n] = '\0';
}

void act_log(act_log_level_t level, const char *event, const char *fmt, ...) {
    if (level < min_level && !sink) return;
    char line[1024];
    int n = format == ACT_LOG_FORMAT_JSON
                ? 0
                : snprintf(line, sizeof line, "level=%s event=%s ", names[level & 3], event);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    char json[2048];
    const char *out = line;
    if (format == ACT_LOG_FORMAT_JSON) {
        to_json(json, sizeof json, level, event, line);
        out = json;
    }
    if (sink) sink(level, out, sink_ctx);
    else fprintf(stderr, "%s\n", out);
}
