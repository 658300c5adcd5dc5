/* act_log.c: actor/log.h over base's logger (base/log.h), the one logger of the process: libactor
 * keeps its own names (act_log, act_log_set_*) for plugins and programs on the runtime. */
#include <stdarg.h>

#include "actor/log.h"
#include "base/log.h"

_Static_assert((int)ACT_LOG_DEBUG == BASE_LOG_DEBUG && (int)ACT_LOG_ERROR == BASE_LOG_ERROR,
               "act_log_level_t is base's level");
_Static_assert((int)ACT_LOG_FORMAT_KV == BASE_LOG_KV && (int)ACT_LOG_FORMAT_JSON == BASE_LOG_JSON,
               "act_log_format_t is base's format");

static act_log_sink_fn act_sink;

/* base's sink takes an int level; this passes it on as act_log_level_t. */
static void to_act_sink(int level, const char *line, void *ctx) {
    act_sink((act_log_level_t)level, line, ctx);
}

void act_log_set_sink(act_log_sink_fn fn, void *ctx) {
    act_sink = fn;
    base_log_set_sink(fn ? to_act_sink : NULL, ctx);
}

void act_log_set_level(act_log_level_t level) { base_log_set_level((int)level); }
void act_log_set_format(act_log_format_t f) { base_log_set_format((int)f); }

bool act_log_on(act_log_level_t level) { return base_log_on((int)level); }

void act_log(act_log_level_t level, const char *event, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    base_logv((int)level, event, fmt, ap);
    va_end(ap);
}
