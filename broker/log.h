/* broker/log.h: the broker's logger: one key=value line per event on stderr, with a level
 * filter (--log-level), or one JSON object per line (--log-format json). Values that come
 * from the network go through brk_log_str or brk_log_hex, so a peer cannot forge fields or
 * break lines. */
#ifndef BRK_LOG_H
#define BRK_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum { BRK_LOG_DEBUG, BRK_LOG_INFO, BRK_LOG_WARN, BRK_LOG_ERROR, BRK_LOG_OFF };

/* Returns: the level for "debug", "info", "warn", "error" or "off"; -1 for anything else. */
int brk_log_level_parse(const char *s);
void brk_log_set_level(int level);
bool brk_log_on(int level);
/* Writes "ts=... level=... event=<event> <fields>" where fields is printf-formatted. */
void brk_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum { BRK_LOG_KV, BRK_LOG_JSON };
/* Returns: BRK_LOG_KV for "kv", BRK_LOG_JSON for "json"; -1 for anything else. */
int brk_log_format_parse(const char *s);
void brk_log_set_format(int format);
/* Rewrites a line of key=value fields (values bare or double-quoted as brk_log_str writes
 * them) as JSON members `,"key":value` appended to out: bare integers stay numbers, the rest
 * become strings; text that is not key=value goes under "msg". Always valid JSON, cut at
 * cap. Returns: the length written (out is NUL-terminated). */
size_t brk_log_kv_to_json(const char *kv, char *out, size_t cap);

/* Formats untrusted bytes as a double-quoted value (escapes quotes, backslashes and
 * non-printables; cuts long values with "..."). Returns: dst. */
const char *brk_log_str(char *dst, size_t cap, const void *p, size_t n);
/* Formats bytes (a routing identity) as hex. Returns: dst. */
const char *brk_log_hex(char *dst, size_t cap, const void *p, size_t n);

#endif
