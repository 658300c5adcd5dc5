/* base/src/prom.c: the Prometheus text writer of base/prom.h. */
#include "base/prom.h"

#include <stdio.h>
#include <string.h>

#include "base/utf8.h"

const uint64_t base_hist_bounds_us[BASE_HIST_BUCKETS] = {
    100,    250,    500,     1000,    2500,    5000,     10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

void base_prom_label(base_buf_t *o, const char *s, size_t n) {
    static const char fffd[] = "\xef\xbf\xbd"; /* U+FFFD, the replacement character */
    const uint8_t *u = (const uint8_t *)s;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        size_t len = u[i] ? base_utf8_len(u + i, n - i) : 0;
        const char *esc = !len ? fffd : s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\""
                        : s[i] == '\n' ? "\\n" : NULL;
        if (!esc) {
            i += len;
            continue;
        }
        base_buf_put(o, u + run, i - run);
        base_buf_put(o, esc, strlen(esc));
        run = i = i + (len ? len : 1);
    }
    base_buf_put(o, u + run, n - run);
}

void base_prom_family(base_buf_t *o, const char *name, const char *type, const char *help) {
    base_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void base_prom_u64(base_buf_t *o, const char *name, const char *labels, uint64_t v) {
    base_buf_printf(o, "%s%s%s%s %llu\n", name, *labels ? "{" : "", labels,
                      *labels ? "}" : "", (unsigned long long)v);
}

void base_hist_observe(base_hist_t *h, uint64_t us) {
    /* the first bound at or past us, by halving (five steps, not up to 18: the broker
     * observes every query's latency) */
    _Static_assert(BASE_HIST_BUCKETS < 32, "the halving below starts at 16");
    size_t i = 0;
    for (size_t step = 16; step; step /= 2)
        if (i + step <= BASE_HIST_BUCKETS && us > base_hist_bounds_us[i + step - 1]) i += step;
    h->counts[i]++;
    h->count++;
    h->sum_us += us;
}

void base_prom_hist(base_buf_t *o, const char *name, const char *labels,
                     const base_hist_t *h) {
    const char *sep = *labels ? "," : "";
    uint64_t cum = 0;
    for (size_t i = 0; i <= BASE_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        char le[32];
        if (i == BASE_HIST_BUCKETS)
            snprintf(le, sizeof le, "+Inf");
        else
            snprintf(le, sizeof le, "%g", (double)base_hist_bounds_us[i] / 1e6);
        base_buf_printf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
                          (unsigned long long)cum);
    }
    base_buf_printf(o, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels,
                      *labels ? "}" : "", (double)h->sum_us / 1e6);
    char count[160];
    snprintf(count, sizeof count, "%s_count", name);
    base_prom_u64(o, count, labels, h->count);
}

void base_prom_one(base_buf_t *o, const char *name, const char *type, const char *help,
                   uint64_t v) {
    base_prom_family(o, name, type, help);
    base_prom_u64(o, name, "", v);
}
