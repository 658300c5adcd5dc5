/* broker/broker_agents.c: the agent registry: for each agent name, the workers that host it and the
 * queue of its queries waiting for credit. An agent exists while some worker hosts it; when
 * its last host goes, its queued queries are answered and it is freed. Routing picks the
 * least-loaded host with free credit (in_flight / capacity). */
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int brk_agents_init(brk_t *b) { return brk_map_init(&b->agent_map); }

/* Takes a off brk.held (startup grace), if it is there. */
static void unhold(brk_t *b, brk_agent_t *a) {
    if (!base_list_linked(&a->held_link)) return;
    base_list_unlink(&a->held_link);
    b->n_held--;
}

static void agent_free(brk_t *b, brk_agent_t *a) {
    unhold(b, a);
    brk_map_del(&b->agent_map, &a->node);
    if (b->agent_last == a) b->agent_last = NULL;
    free(a->hosts);
    free(a);
}

void brk_agents_close(brk_t *b) {
    brk_node_t *n;
    while ((n = brk_map_next(&b->agent_map, NULL)))
        agent_free(b, base_container_of(n, brk_agent_t, node));
    brk_map_close(&b->agent_map);
}

brk_agent_t *brk_agent_find(brk_t *b, proto_str_t name) {
    brk_agent_t *a = b->agent_last;
    if (a && a->len == name.n && brk_eq(a->name, name.p, name.n)) return a;
    brk_node_t *n = brk_map_get(&b->agent_map, name.p, name.n);
    if (!n) return NULL;
    return b->agent_last = base_container_of(n, brk_agent_t, node);
}

static brk_agent_t *agent_new(brk_t *b, proto_str_t name) {
    brk_agent_t *a = calloc(1, sizeof *a + name.n + 1);
    if (!a) return NULL;
    memcpy(a->name, name.p, name.n);
    a->len = name.n;
    a->node.key = a->name;
    a->node.klen = a->len;
    base_list_init(&a->queue);
    base_list_init(&a->held_link);
    brk_map_put(&b->agent_map, &a->node);
    return a;
}

/* Nobody left to run what waits in a's queue: answer it rather than keep it forever, and
 * free a (its last host went, or the startup grace ended with no host). */
static void agent_end(brk_t *b, brk_agent_t *a) {
    while (!base_list_empty(&a->queue))
        brk_job_unhosted(b, base_container_of(a->queue.next, brk_job_t, link));
    agent_free(b, a);
}

brk_agent_t *brk_agent_hold(brk_t *b, proto_str_t name) {
    if (b->now >= b->grace_until || b->n_held >= BRK_MAX_AGENTS) return NULL;
    brk_agent_t *a = brk_agent_find(b, name);
    if (a) return a;
    if (!(a = agent_new(b, name))) return NULL;
    base_list_push(&b->held, &a->held_link);
    b->n_held++;
    return a;
}

int64_t brk_agents_tick(brk_t *b) {
    if (b->n_held == 0) return -1;
    if (b->now < b->grace_until) return b->grace_until;
    while (!base_list_empty(&b->held))
        agent_end(b, base_container_of(b->held.next, brk_agent_t, held_link));
    return -1;
}

int brk_agent_add_host(brk_t *b, proto_str_t name, brk_worker_t *w, bool history,
                       brk_agent_t **out) {
    brk_agent_t *a = brk_agent_find(b, name);
    bool created = false;
    if (!a) {
        if (!(a = agent_new(b, name))) return -ENOMEM;
        created = true;
    }
    for (uint32_t i = 0; i < a->n_hosts; i++)
        if (a->hosts[i] == w) {
            *out = NULL; /* listed twice in one ready: host once */
            return 0;
        }
    if (a->n_hosts == a->cap_hosts) {
        uint32_t cap = a->cap_hosts ? a->cap_hosts * 2 : 4;
        brk_worker_t **h = realloc(a->hosts, cap * sizeof *h);
        if (!h) {
            if (created) agent_free(b, a);
            return -ENOMEM;
        }
        a->hosts = h;
        a->cap_hosts = cap;
    }
    a->hosts[a->n_hosts++] = w;
    unhold(b, a); /* a held agent: its first worker came in time */
    a->n_history += history;
    *out = a;
    return 0;
}

void brk_agent_remove_host(brk_t *b, brk_agent_t *a, brk_worker_t *w, bool history) {
    for (uint32_t i = 0; i < a->n_hosts; i++) {
        if (a->hosts[i] != w) continue;
        a->hosts[i] = a->hosts[--a->n_hosts];
        a->n_history -= history;
        break;
    }
    if (a->n_hosts) return;
    agent_end(b, a);
}

/* x is less loaded than y: x.in_flight / x.capacity < y.in_flight / y.capacity. */
static bool less_loaded(const brk_worker_t *x, const brk_worker_t *y) {
    unsigned __int128 l = (unsigned __int128)x->in_flight * y->capacity;
    unsigned __int128 r = (unsigned __int128)y->in_flight * x->capacity;
    return l < r || (l == r && x->capacity > y->capacity);
}

brk_worker_t *brk_agent_pick(brk_agent_t *a) {
    brk_worker_t *best = NULL;
    for (uint32_t i = 0; i < a->n_hosts; i++) {
        brk_worker_t *w = a->hosts[i];
        if (!brk_worker_has_credit(w)) continue;
        if (!best || less_loaded(w, best)) best = w;
    }
    return best;
}
