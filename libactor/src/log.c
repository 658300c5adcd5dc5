/* log.c: formats one key=value line per event and hands it to the sink (stderr by default). */
#include <stdarg.h>
#include <stdio.h>

#include "actor/log.h"

static act_log_sink_fn sink;
static void *sink_ctx;
static act_log_level_t min_level = ACT_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void act_log_set_sink(act_log_sink_fn fn, void *ctx) {
    sink = fn;
    sink_ctx = ctx;
}

void act_log_set_level(act_log_level_t level) { min_level = level; }

void act_log(act_log_level_t level, const char *event, const char *fmt, ...) {
    if (level < min_level && !sink) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "level=%s event=%s ", names[level & 3], event);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (sink) sink(level, line, sink_ctx);
    else fprintf(stderr, "%s\n", line);
}
