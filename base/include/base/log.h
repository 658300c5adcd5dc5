/* base/log.h: the one logger of every actorbus process: levels, one key=value line per
 * event, or the same line rewritten as one JSON object, written whole to stderr or handed to
 * a replaceable sink (tests capture it). libactor's act_log and the broker's calls are this
 * logger; values that come from the network go through base_log_str or base_log_hex, so a
 * peer cannot forge fields or break lines. The settings are process-wide and not
 * thread-safe: set them before starting threads or loops. */
#ifndef BASE_LOG_H
#define BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum { BASE_LOG_DEBUG, BASE_LOG_INFO, BASE_LOG_WARN, BASE_LOG_ERROR, BASE_LOG_OFF };
enum { BASE_LOG_KV, BASE_LOG_JSON };

/* Returns: the level for "debug", "info", "warn", "error" or "off"; -1 for anything else. */
int base_log_level_parse(const char *s);
/* Returns: BASE_LOG_KV for "kv", BASE_LOG_JSON for "json"; -1 for anything else. */
int base_log_format_parse(const char *s);
/* The lowest level written (BASE_LOG_INFO by default; BASE_LOG_OFF writes nothing). */
void base_log_set_level(int level);
/* BASE_LOG_KV (the default) or BASE_LOG_JSON. */
void base_log_set_format(int format);
/* Whether key=value lines start with "ts=<UTC ISO 8601> " (off by default; JSON lines always
 * carry "ts"). */
void base_log_set_stamp(bool on);

/* Receives each formatted line, without its newline. A sink receives every level (the
 * level filter applies to stderr only), so a test can see debug lines. */
typedef void (*base_log_sink_fn)(int level, const char *line, void *ctx);
/* Replaces the sink; NULL restores stderr. */
void base_log_set_sink(base_log_sink_fn sink, void *ctx);

/* Whether a line of this level would be written: lets a caller skip costly formatting. */
bool base_log_on(int level);
/* Writes "[ts=...] level=<level> event=<event> <fields>", fields printf-formatted (they
 * should themselves be key=value pairs), or its JSON form. Lines are cut at 1 KiB (JSON:
 * 2 KiB, whole members only). */
void base_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void base_logv(int level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Rewrites a line of key=value fields (values bare or double-quoted as base_log_str writes
 * them) as JSON members `,"key":value` appended to out: bare integers stay numbers, the rest
 * become strings; text that is not key=value goes under "msg". Always valid JSON, cut at
 * cap, each member whole or not at all. Returns: the length written (out is NUL-terminated
 * when cap > 0). */
size_t base_log_kv_to_json(const char *kv, char *out, size_t cap);

/* Formats untrusted bytes as a double-quoted value (escapes quotes and backslashes, writes
 * non-printables as \xHH, cuts long values with "..."). dst gets "" when cap < 16.
 * Returns: dst. */
const char *base_log_str(char *dst, size_t cap, const void *p, size_t n);
/* Formats bytes (a routing identity) as hex, cut to fit cap. Returns: dst. */
const char *base_log_hex(char *dst, size_t cap, const void *p, size_t n);

#endif
