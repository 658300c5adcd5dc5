/* bounded_map.c: bounded-concurrency map and batches. `limit` worker tasks in one task group pull
 * the next index from a shared counter, so the cost is O(limit) tasks and stacks however
 * large n is; results land in input order because each item writes its own slot. */
#include "internal.h"

typedef struct mapper {
    act_map_fn fn;     /* the item function */
    void *ctx;         /* its context */
    size_t next, end;  /* next index to hand out, one past the last */
    void **results;    /* per item, may be NULL */
    int *codes;        /* per item, may be NULL */
    bool collect;      /* ACT_MAP_COLLECT */
    bool stop;         /* fail-fast: an item failed, hand out no more */
    int first_err;     /* that item's code */
    act_group_t group; /* the workers */
} mapper;

static int map_worker(void *arg, void **result) {
    (void)result;
    mapper *m = arg;
    act_task_t *self = act_current();
    while (!m->stop && m->next < m->end && !act_task_cancel_requested(self)) {
        size_t i = m->next++;
        void *r = NULL;
        int rc = m->fn(m->ctx, i, &r);
        if (m->results) m->results[i] = r;
        if (m->codes) m->codes[i] = rc;
        if (rc && !m->collect) {
            if (!m->stop) m->first_err = rc;
            m->stop = true;
            act_group_cancel(&m->group); /* also when rc is ACT_ECANCELED itself */
            return rc;
        }
    }
    return 0;
}

/* Runs items [start, end) with at most limit workers. Returns 0, the first item error
 * (fail-fast), or the caller's ACT_ECANCELED / ACT_ETIMEDOUT / ACT_ENOMEM. */
static int run_range(mapper *m, size_t start, size_t end, size_t limit) {
    m->next = start;
    m->end = end;
    m->stop = false;
    m->first_err = 0;
    act_group_init(&m->group);
    size_t nworkers = end - start < limit ? end - start : limit;
    act_spawn_opts_t o = {.name = "map-worker"};
    int rc = 0;
    for (size_t i = 0; i < nworkers && rc == 0; i++) {
        rc = act_group_spawn(&m->group, map_worker, m, &o, NULL);
    }
    if (rc) { /* no worker has run yet: cancelling ends them without running */
        m->stop = true;
        act_group_cancel(&m->group);
    }
    act_group_wait(&m->group, -1);
    act_group_close(&m->group);
    if (rc) return rc;
    /* A cancelled caller (or its expired scope) is reported as such, even when an item
     * turned that cancellation into an error of its own. */
    act__waiter probe;
    int caller = act__wait_enter(&probe, "map", m);
    return caller ? caller : m->first_err;
}

static void preset(size_t n, void **results, int *codes) {
    for (size_t i = 0; i < n; i++) {
        if (results) results[i] = NULL;
        if (codes) codes[i] = ACT_ECANCELED; /* what items that never run report */
    }
}

int act_map(act_map_fn fn, void *ctx, size_t n, size_t limit, void **results, int *codes,
            unsigned flags) {
    if (!act_current() || !fn || limit == 0) return ACT_EINVAL;
    preset(n, results, codes);
    if (n == 0) return 0;
    mapper m = {.fn = fn,
                .ctx = ctx,
                .results = results,
                .codes = codes,
                .collect = (flags & ACT_MAP_COLLECT) != 0};
    return run_range(&m, 0, n, limit);
}

int act_batch(act_map_fn fn, void *ctx, size_t n, size_t batch_size, void **results, int *codes,
              unsigned flags) {
    if (!act_current() || !fn || batch_size == 0) return ACT_EINVAL;
    preset(n, results, codes);
    mapper m = {.fn = fn,
                .ctx = ctx,
                .results = results,
                .codes = codes,
                .collect = (flags & ACT_MAP_COLLECT) != 0};
    for (size_t start = 0; start < n; start += batch_size) {
        size_t end = n - start < batch_size ? n : start + batch_size;
        int rc = run_range(&m, start, end, batch_size);
        if (rc) return rc;
    }
    return 0;
}
