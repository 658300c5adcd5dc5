/* jobtab.c: the job table (chained hash of job ids) and the block pool of jobtab.h. */
#include <stdlib.h>

#include "actor/errors.h"
#include "jobtab.h"

/* Job ids are the broker's counter, often consecutive: a multiplicative mix spreads them
 * and any other pattern over the high bits, which the shift keeps. */
static size_t slot(const wrk_jobtab_t *t, uint64_t id) {
    uint64_t h = id * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 32) & t->mask;
}

int wrk_jobtab_init(wrk_jobtab_t *t, uint64_t expect) {
    size_t n = WRK_JOBTAB_MIN;
    while (n < WRK_JOBTAB_MAX && n / 2 < expect) n *= 2; /* 2x buckets, no overflow */
    t->n = 0;
    t->mask = 0;
    if (!(t->b = calloc(n, sizeof(*t->b)))) return ACT_ENOMEM;
    t->mask = n - 1;
    return 0;
}

void wrk_jobtab_free(wrk_jobtab_t *t) {
    free(t->b);
    t->b = NULL;
    t->mask = t->n = 0;
}

void wrk_jobtab_add(wrk_jobtab_t *t, wrk_jobtab_node_t *node) {
    wrk_jobtab_node_t **b = &t->b[slot(t, node->id)];
    node->hnext = *b;
    *b = node;
    t->n++;
}

wrk_jobtab_node_t *wrk_jobtab_find(const wrk_jobtab_t *t, uint64_t id) {
    if (!t->b) return NULL;
    for (wrk_jobtab_node_t *x = t->b[slot(t, id)]; x; x = x->hnext) {
        if (x->id == id) return x;
    }
    return NULL;
}

void wrk_jobtab_del(wrk_jobtab_t *t, wrk_jobtab_node_t *node) {
    for (wrk_jobtab_node_t **x = &t->b[slot(t, node->id)]; *x; x = &(*x)->hnext) {
        if (*x == node) {
            *x = node->hnext;
            node->hnext = NULL;
            t->n--;
            return;
        }
    }
}

void wrk_pool_init(wrk_pool_t *p, size_t max) {
    p->n = 0;
    p->max = max < WRK_POOL_MAX ? max : WRK_POOL_MAX;
}

void *wrk_pool_get(wrk_pool_t *p) { return p->n ? p->v[--p->n] : NULL; }

bool wrk_pool_put(wrk_pool_t *p, void *block) {
    if (p->n >= p->max) return false;
    p->v[p->n++] = block;
    return true;
}

void wrk_pool_free(wrk_pool_t *p) {
    while (p->n) free(p->v[--p->n]);
}
