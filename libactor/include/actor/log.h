/* actor/log.h: the one small logger: levels, key=value fields, one line per event, and a
 * replaceable sink (tests capture it; a worker can forward it). Lines are key=value, or one
 * JSON object each (act_log_set_format). */
#ifndef ACTOR_LOG_H
#define ACTOR_LOG_H

#include <stdbool.h>

typedef enum act_log_level {
    ACT_LOG_DEBUG,
    ACT_LOG_INFO,
    ACT_LOG_WARN,
    ACT_LOG_ERROR,
} act_log_level_t;

/* Receives each formatted line (no trailing newline). */
typedef void (*act_log_sink_fn)(act_log_level_t level, const char *line, void *ctx);

/* Replaces the sink (NULL restores stderr) and the lowest level written. Not thread-safe:
 * set it before starting loops. */
void act_log_set_sink(act_log_sink_fn sink, void *ctx);
void act_log_set_level(act_log_level_t level);

typedef enum act_log_format {
    ACT_LOG_FORMAT_KV,   /* level=info event=x key=value ... (the default) */
    ACT_LOG_FORMAT_JSON, /* {"ts":"<UTC ISO 8601>","level":"info","event":"x","key":value} */
} act_log_format_t;

/* Sets the line format. JSON lines are the key=value line rewritten: bare integers stay
 * numbers, everything else becomes a string ("quoted" values unescaped), text that is not
 * key=value goes under "msg"; the result is always valid JSON. Not thread-safe. */
void act_log_set_format(act_log_format_t format);

/* Whether a line of this level would be written (a sink takes every level): lets a caller on
 * a hot path skip the call and its arguments. */
bool act_log_on(act_log_level_t level);

/* Writes `level=<lvl> event=<event> <fmt...>`; fmt should itself be key=value pairs. */
void act_log(act_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
