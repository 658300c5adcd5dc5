/* base/prom.h: Prometheus text (exposition format 0.0.4) for the /metrics endpoints: family
 * headers, samples, label values escaped so a peer's bytes cannot break the text, and a
 * fixed-bucket latency histogram. */
#ifndef BASE_PROM_H
#define BASE_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Appends s[0..n) as a Prometheus label value: \\, \" and \n escaped, and each NUL or byte
 * that does not start well-formed UTF-8 written as U+FFFD, so the text stays parseable and
 * can be held in a C string. */
void base_prom_label(base_buf_t *o, const char *s, size_t n);
/* Appends "# HELP name help\n# TYPE name type\n". */
void base_prom_family(base_buf_t *o, const char *name, const char *type, const char *help);
/* Appends "name{labels} value\n"; labels is rendered text (`agent="echo"`) or "". */
void base_prom_u64(base_buf_t *o, const char *name, const char *labels, uint64_t v);
/* A family of one unlabelled sample: base_prom_family then base_prom_u64. */
void base_prom_one(base_buf_t *o, const char *name, const char *type, const char *help,
                   uint64_t v);

/* Latency buckets in microseconds: 100 us to 60 s, the upper bounds of Prometheus `le`. */
#define BASE_HIST_BUCKETS 18
extern const uint64_t base_hist_bounds_us[BASE_HIST_BUCKETS];

typedef struct base_hist {
    uint64_t counts[BASE_HIST_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t count;                         /* observations */
    uint64_t sum_us;                        /* their sum */
} base_hist_t;

/* Counts one observation of us microseconds. */
void base_hist_observe(base_hist_t *h, uint64_t us);
/* Appends the histogram's samples: name_bucket{labels,le="..."} (cumulative), name_sum (in
 * seconds) and name_count. labels as for base_prom_u64. */
void base_prom_hist(base_buf_t *o, const char *name, const char *labels, const base_hist_t *h);

#endif
