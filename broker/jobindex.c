/* broker/jobindex.c: unanswered jobs by their query id, whichever client sent them, so that a
 * cancel from another connection (an operator's `actorctl cancel ID`) finds its job in one
 * lookup instead of a walk over every job: 400 cancels of unknown ids at 100k jobs once held
 * the loop for seconds (issue 11). One bucket per distinct id; each client has at most one
 * job per id in flight, so a bucket holds at most one job per client. */
#include "broker.h"

#include "base/asan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct brk_idb {
    brk_node_t node;  /* key: the id's msgpack bytes */
    base_list_t jobs;  /* brk_job_t.ilink */
    size_t len;
    uint8_t key[];
};

/* Nearly every id is a small integer or a short string, and nearly every bucket lives exactly
 * as long as one query: small buckets are recycled through a bounded free list (as jobs.c
 * does with its job blocks) instead of a malloc and a free per query. Sanitizer builds keep
 * none, so a use after free is still caught. */
#define IDB_SMALL 96
#ifdef BASE_ASAN
#define IDB_CACHE_MAX 0
#else
#define IDB_CACHE_MAX 1024
#endif
static const size_t idb_cache_max = IDB_CACHE_MAX; /* a variable: no always-true warning */

static struct brk_idb *idb_alloc(brk_t *b, size_t klen) {
    if (sizeof(struct brk_idb) + klen > IDB_SMALL) return malloc(sizeof(struct brk_idb) + klen);
    void *p = b->idb_cache;
    if (p) {
        memcpy(&b->idb_cache, p, sizeof p);
        b->idb_cache_n--;
        return p;
    }
    return malloc(IDB_SMALL);
}

static void idb_release(brk_t *b, struct brk_idb *ib) {
    if (sizeof *ib + ib->len > IDB_SMALL || b->idb_cache_n >= idb_cache_max) {
        free(ib);
        return;
    }
    memcpy((void *)ib, &b->idb_cache, sizeof b->idb_cache);
    b->idb_cache = ib;
    b->idb_cache_n++;
}

int brk_jobindex_add(brk_t *b, brk_job_t *j) {
    base_list_init(&j->ilink);
    /* j->idh: hashed once by the caller, for this map and the client's (cid_map) */
    brk_node_t *n = brk_map_get_h(&b->id_map, j->id.p, j->id.n, j->idh);
    struct brk_idb *ib = n ? base_container_of(n, struct brk_idb, node) : NULL;
    if (!ib) {
        ib = idb_alloc(b, j->id.n);
        if (!ib) return -ENOMEM;
        brk_copy(ib->key, j->id.p, j->id.n);
        ib->len = j->id.n;
        ib->node.key = ib->key;
        ib->node.klen = j->id.n;
        base_list_init(&ib->jobs);
        brk_map_put_h(&b->id_map, &ib->node, j->idh);
    }
    base_list_push(&ib->jobs, &j->ilink);
    j->idb = ib;
    return 0;
}

void brk_jobindex_del(brk_t *b, brk_job_t *j) {
    struct brk_idb *ib = j->idb;
    if (!ib) return;
    base_list_unlink(&j->ilink);
    j->idb = NULL;
    if (!base_list_empty(&ib->jobs)) return;
    brk_map_del(&b->id_map, &ib->node);
    idb_release(b, ib);
}

brk_job_t *brk_job_find_any(brk_t *b, proto_raw_t id, uint64_t idh, const brk_key_t *owner,
                            size_t *matches) {
    brk_job_t *found = NULL;
    *matches = 0;
    brk_node_t *n = brk_map_get_h(&b->id_map, id.p, id.n, idh);
    if (!n) return NULL;
    struct brk_idb *ib = base_container_of(n, struct brk_idb, node);
    for (base_list_t *l = ib->jobs.next; l != &ib->jobs; l = l->next) {
        brk_job_t *j = base_container_of(l, brk_job_t, ilink);
        if (owner && (!j->client || j->client->curve_key != owner)) continue;
        found = j;
        if (++*matches > 1) break; /* ambiguous already: the caller refuses it */
    }
    return found;
}

int brk_jobindex_init(brk_t *b) {
    b->idb_cache = NULL;
    b->idb_cache_n = 0;
    return brk_map_init(&b->id_map);
}

void brk_jobindex_close(brk_t *b) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->id_map, NULL))) {
        brk_map_del(&b->id_map, n);
        free(base_container_of(n, struct brk_idb, node));
    }
    while (b->idb_cache) {
        void *p = b->idb_cache;
        memcpy(&b->idb_cache, p, sizeof p);
        free(p);
    }
    b->idb_cache_n = 0;
    brk_map_close(&b->id_map);
}
