/* actor/log.h: the one small logger: levels, key=value fields, one line per event, and a
 * replaceable sink (tests capture it; a worker can forward it). */
#ifndef ACTOR_LOG_H
#define ACTOR_LOG_H

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

/* Writes `level=<lvl> event=<event> <fmt...>`; fmt should itself be key=value pairs. */
void act_log(act_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
