/* jobtab.h: the worker's running jobs by the broker's job id (one lookup per `work` and per
 * `cancel`, O(1) instead of a walk of the job list), and a bounded stack of ended jobs'
 * blocks for the next jobs (a malloc and a free per job fewer). Both are intrusive and know
 * nothing of the job itself (worker_jobs.c embeds the node and sizes the blocks). The
 * loop's thread only. */
#ifndef WRK_JOBTAB_H
#define WRK_JOBTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRK_JOBTAB_MIN 16       /* buckets, at least */
#define WRK_JOBTAB_MAX 65536    /* buckets, at most: past that, chains grow */

typedef struct wrk_jobtab_node {
    struct wrk_jobtab_node *hnext; /* the next node in its bucket */
    uint64_t id;
} wrk_jobtab_node_t;

typedef struct wrk_jobtab {
    wrk_jobtab_node_t **b; /* buckets, a power of two of them */
    size_t mask;           /* buckets - 1 */
    size_t n;              /* nodes in the table */
} wrk_jobtab_t;

/* Sizes the table for about expect nodes at once (2x buckets, within WRK_JOBTAB_MIN..MAX);
 * more still fit (longer chains). Returns: 0. Errors: ACT_ENOMEM (t is left empty and
 * wrk_jobtab_free is safe). */
int wrk_jobtab_init(wrk_jobtab_t *t, uint64_t expect);
/* Frees the buckets, not the nodes. Safe on an initialised or zeroed table. */
void wrk_jobtab_free(wrk_jobtab_t *t);
/* Adds node (node->id set by the caller). Several nodes may share an id: find returns the
 * newest. Ownership: the caller keeps node; it must stay until wrk_jobtab_del. */
void wrk_jobtab_add(wrk_jobtab_t *t, wrk_jobtab_node_t *node);
/* Returns: the newest node with id, or NULL. */
wrk_jobtab_node_t *wrk_jobtab_find(const wrk_jobtab_t *t, uint64_t id);
/* Removes node, which must be in t. */
void wrk_jobtab_del(wrk_jobtab_t *t, wrk_jobtab_node_t *node);

/* Blocks of one size kept for reuse: at most max (<= WRK_POOL_MAX). */
#define WRK_POOL_MAX 256

typedef struct wrk_pool {
    void *v[WRK_POOL_MAX];
    size_t n, max;
} wrk_pool_t;

/* Keeps at most max blocks (clamped to WRK_POOL_MAX; 0 keeps none). */
void wrk_pool_init(wrk_pool_t *p, size_t max);
/* Returns: a kept block (its contents as left), or NULL when none is kept. */
void *wrk_pool_get(wrk_pool_t *p);
/* Keeps block for reuse. Returns: true if kept (the pool owns it), false when the pool is
 * full (the caller still owns it and frees it). */
bool wrk_pool_put(wrk_pool_t *p, void *block);
/* Frees every kept block (free(3)). */
void wrk_pool_free(wrk_pool_t *p);

#endif
