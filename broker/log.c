/* broker/log.c: the logger behind log.h. Each line is formatted whole and written with one
 * fputs, so lines from one process never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = BRK_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int brk_log_level_parse(const char *s) {
    for (int i = 0; i <= BRK_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

void brk_log_set_level(int level) { log_level = level; }
bool brk_log_on(int level) { return level >= log_level && level < BRK_LOG_OFF; }

void brk_log(int level, const char *event, const char *fmt, ...) {
    if (!brk_log_on(level)) return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s "
                     "event=%s ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], event);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(line, sizeof line - 2);
    while (len > 0 && line[len - 1] == ' ') len--;
    line[len] = '\n';
    line[len + 1] = '\0';
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
