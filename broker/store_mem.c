/* broker/store_mem.c: the in-memory session store (brk_store_mem): for tests, and the
 * broker's store when no --sessions file is given (sessions then die with the process).
 * Sessions sit in a hash index by id and in an array kept sorted lazily (sorted at the next
 * list after a create or delete) for paging; state entries in hash sets per session, per
 * (app, user) and per app. An append allocates everything it needs before it changes
 * anything, so a failed one leaves the session as it was. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "hashmap.h"

/* A set of state entries: a hash index for lookups, a list to walk and free them. */
typedef struct kvset {
    brk_map_t map;           /* buckets NULL until the first entry */
    base_list_t list;
} kvset_t;

typedef struct mem_kv {
    brk_node_t node;         /* key: key[0..klen) */
    base_list_t link;
    uint8_t *val;            /* after the key in the same block */
    size_t klen, vn;
    char key[];
} mem_kv_t;

/* The state shared by an app ("app:" keys) or an (app, user) ("user:" keys). */
typedef struct mem_scope {
    brk_node_t node;         /* key: app, or app NUL user */
    base_list_t link;         /* in the store's scopes */
    kvset_t kv;
    size_t klen;
    char key[];
} mem_scope_t;

typedef struct mem_event {
    uint64_t seq;
    int64_t ts_ms;
    size_t n[4];             /* id, invocation, author, body: one after another in data */
    uint8_t data[];
} mem_event_t;

typedef struct mem_sess {
    brk_node_t node;         /* key: id */
    kvset_t kv;
    char *id, *app, *user;   /* one block, NUL-terminated */
    size_t idn, appn, usern;
    int64_t created_ms, updated_ms;
    mem_event_t **ev;
    size_t n_ev, cap_ev;
    size_t ev_bytes;         /* bodies of those events (max_log_bytes) */
    size_t order_idx;        /* position in the store's order array */
    struct mem_scope *scope[2]; /* its user and app scopes, once looked up and found */
} mem_sess_t;

typedef struct mem_store {
    brk_map_t sessions, apps, users;
    base_list_t scopes;
    mem_sess_t **order;      /* every session; sorted by id when sorted is set */
    size_t n, cap;
    bool sorted;
} mem_store_t;

#define MS(st) ((mem_store_t *)(st)->impl)

/* Session ids in SQLite's BINARY order: bytes, then the shorter first. */
static int id_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* ---- entry sets ---- */

static void kvset_init(kvset_t *s) {
    memset(&s->map, 0, sizeof s->map);
    base_list_init(&s->list);
}

static int kvset_ready(kvset_t *s) {
    return s->map.buckets || brk_map_init(&s->map) == 0 ? 0 : BRK_SESS_ENOMEM;
}

static mem_kv_t *kvset_get(kvset_t *s, proto_str_t key) {
    if (!s->map.buckets) return NULL;
    brk_node_t *n = brk_map_get(&s->map, key.p, key.n);
    return n ? base_container_of(n, mem_kv_t, node) : NULL;
}

static void kv_drop(kvset_t *s, mem_kv_t *kv) {
    brk_map_del(&s->map, &kv->node);
    base_list_unlink(&kv->link);
    free(kv);
}

static void kvset_close(kvset_t *s) {
    while (!base_list_empty(&s->list)) {
        mem_kv_t *kv = base_container_of(s->list.next, mem_kv_t, link);
        base_list_unlink(&kv->link);
        free(kv);
    }
    brk_map_close(&s->map);
}

static mem_kv_t *kv_new(const brk_sess_kv_t *e) {
    mem_kv_t *kv = malloc(sizeof *kv + e->key.n + e->value.n);
    if (!kv) return NULL;
    memcpy(kv->key, e->key.p, e->key.n);
    kv->val = (uint8_t *)kv->key + e->key.n;
    memcpy(kv->val, e->value.p, e->value.n);
    kv->klen = e->key.n;
    kv->vn = e->value.n;
    kv->node.key = kv->key;
    kv->node.klen = kv->klen;
    base_list_init(&kv->link);
    return kv;
}

/* Sets or deletes (fresh == NULL) one key of s; fresh was allocated beforehand. */
static void kvset_apply(kvset_t *s, proto_str_t key, mem_kv_t *fresh) {
    mem_kv_t *old = kvset_get(s, key);
    if (old) kv_drop(s, old);
    if (!fresh) return;
    brk_map_put(&s->map, &fresh->node);
    base_list_push(&s->list, &fresh->link);
}

static int kvset_build(const kvset_t *s, brk_sess_build_t *b) {
    for (base_list_t *l = s->list.next; l != &s->list; l = l->next) {
        const mem_kv_t *kv = base_container_of(l, mem_kv_t, link);
        int rc = brk_sess_build_kv(b, (proto_str_t){kv->key, kv->klen},
                                   (proto_raw_t){kv->val, kv->vn});
        if (rc) return rc;
    }
    return 0;
}

/* ---- scopes ---- */

static size_t scope_key(char *out, const mem_sess_t *s, brk_sess_scope_t scope) {
    memcpy(out, s->app, s->appn);
    if (scope == BRK_SCOPE_APP) return s->appn;
    out[s->appn] = '\0';
    memcpy(out + s->appn + 1, s->user, s->usern);
    return s->appn + 1 + s->usern;
}

/* Finds s's user or app scope (*out NULL when none was ever written), remembering it in s:
 * scopes live until the store closes. Returns: 0. Errors: BRK_SESS_ENOMEM. */
static int scope_find(mem_store_t *ms, mem_sess_t *s, brk_sess_scope_t scope,
                      mem_scope_t **out) {
    mem_scope_t **memo = &s->scope[scope == BRK_SCOPE_APP];
    char small[600], *key = small;
    size_t need = s->appn + 1 + s->usern;
    *out = *memo;
    if (*memo) return 0;
    if (need > sizeof small && !(key = malloc(need))) return BRK_SESS_ENOMEM;
    size_t n = scope_key(key, s, scope);
    brk_node_t *node = brk_map_get(scope == BRK_SCOPE_APP ? &ms->apps : &ms->users, key, n);
    if (key != small) free(key);
    *out = *memo = node ? base_container_of(node, mem_scope_t, node) : NULL;
    return 0;
}

static mem_scope_t *scope_get_or_new(mem_store_t *ms, mem_sess_t *s, brk_sess_scope_t scope) {
    mem_scope_t *sc;
    if (scope_find(ms, s, scope, &sc)) return NULL;
    if (sc) return sc;
    sc = malloc(sizeof *sc + s->appn + 1 + s->usern);
    if (!sc) return NULL;
    kvset_init(&sc->kv);
    if (kvset_ready(&sc->kv)) {
        free(sc);
        return NULL;
    }
    sc->klen = scope_key(sc->key, s, scope);
    sc->node.key = sc->key;
    sc->node.klen = sc->klen;
    brk_map_put(scope == BRK_SCOPE_APP ? &ms->apps : &ms->users, &sc->node);
    base_list_push(&ms->scopes, &sc->link);
    s->scope[scope == BRK_SCOPE_APP] = sc;
    return sc;
}

/* Applies a delta to s and its scopes: allocates every entry (and scope) first, so on
 * BRK_SESS_ENOMEM nothing changed (an empty scope may have been added: it holds nothing). */
static int apply_delta(mem_store_t *ms, mem_sess_t *s, const brk_sess_kv_t *kv, size_t n) {
    if (n == 0) return 0;
    mem_kv_t **fresh = calloc(n, sizeof *fresh);
    kvset_t **sets = calloc(n, sizeof *sets);
    int rc = fresh && sets ? 0 : BRK_SESS_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (kv[i].scope == BRK_SCOPE_SESSION) {
            sets[i] = &s->kv;
        } else {
            mem_scope_t *sc = scope_get_or_new(ms, s, kv[i].scope);
            sets[i] = sc ? &sc->kv : NULL;
        }
        if (!sets[i] || kvset_ready(sets[i])) rc = BRK_SESS_ENOMEM;
        else if (kv[i].value.n && !(fresh[i] = kv_new(&kv[i]))) rc = BRK_SESS_ENOMEM;
    }
    for (size_t i = 0; i < n && fresh; i++) {
        if (rc == 0) kvset_apply(sets[i], kv[i].key, fresh[i]); /* in delta order */
        else free(fresh[i]);
    }
    free(fresh);
    free(sets);
    return rc;
}

/* ---- sessions ---- */

static mem_sess_t *sess_find(mem_store_t *ms, proto_str_t id) {
    brk_node_t *n = brk_map_get(&ms->sessions, id.p, id.n);
    return n ? base_container_of(n, mem_sess_t, node) : NULL;
}

static void sess_free(mem_sess_t *s) {
    kvset_close(&s->kv);
    for (size_t i = 0; i < s->n_ev; i++) free(s->ev[i]);
    free(s->ev);
    free(s->id);
    free(s);
}

static mem_sess_t *sess_new(proto_str_t id, proto_str_t app, proto_str_t user, int64_t now) {
    mem_sess_t *s = calloc(1, sizeof *s);
    char *m = malloc(id.n + app.n + user.n + 3);
    if (!s || !m) {
        free(s);
        free(m);
        return NULL;
    }
    s->id = m;
    s->app = m + id.n + 1;
    s->user = s->app + app.n + 1;
    memcpy(s->id, id.p, id.n);
    memcpy(s->app, app.p, app.n);
    memcpy(s->user, user.p, user.n);
    s->id[id.n] = s->app[app.n] = s->user[user.n] = '\0';
    s->idn = id.n;
    s->appn = app.n;
    s->usern = user.n;
    s->created_ms = s->updated_ms = now;
    s->node.key = s->id;
    s->node.klen = s->idn;
    kvset_init(&s->kv);
    return s;
}

static int mem_open(brk_store_t *st, const char *path, brk_sess_err_t *err) {
    (void)path;
    mem_store_t *ms = calloc(1, sizeof *ms);
    if (!ms) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    if (brk_map_init(&ms->sessions) || brk_map_init(&ms->apps) || brk_map_init(&ms->users)) {
        brk_map_close(&ms->sessions);
        brk_map_close(&ms->apps);
        free(ms);
        return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    }
    base_list_init(&ms->scopes);
    ms->sorted = true;
    st->impl = ms;
    return 0;
}

static void mem_close(brk_store_t *st) {
    mem_store_t *ms = MS(st);
    for (size_t i = 0; i < ms->n; i++) sess_free(ms->order[i]);
    while (!base_list_empty(&ms->scopes)) {
        mem_scope_t *sc = base_container_of(ms->scopes.next, mem_scope_t, link);
        base_list_unlink(&sc->link);
        kvset_close(&sc->kv);
        free(sc);
    }
    brk_map_close(&ms->sessions);
    brk_map_close(&ms->apps);
    brk_map_close(&ms->users);
    free(ms->order);
    free(ms);
    st->impl = NULL;
}

static uint64_t mem_count(brk_store_t *st) { return MS(st)->sessions.n; }

static int mem_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, brk_sess_err_t *err) {
    mem_store_t *ms = MS(st);
    if (sess_find(ms, id))
        return brk_sess_fail(err, BRK_SESS_EEXIST, "session '%.*s' already exists",
                             (int)(id.n > 80 ? 80 : id.n), id.p);
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 64;
        mem_sess_t **o = realloc(ms->order, cap * sizeof *o);
        if (!o) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
        ms->order = o;
        ms->cap = cap;
    }
    mem_sess_t *s = sess_new(id, app, user, now_ms);
    if (!s || apply_delta(ms, s, kv, n_kv)) {
        if (s) sess_free(s);
        return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    }
    brk_map_put(&ms->sessions, &s->node);
    s->order_idx = ms->n;
    const mem_sess_t *prev = ms->n ? ms->order[ms->n - 1] : NULL;
    ms->order[ms->n++] = s;
    /* ids created in ascending order (the usual case) keep the array sorted */
    if (prev && id_cmp(prev->id, prev->idn, s->id, s->idn) > 0) ms->sorted = false;
    return 0;
}

static int mem_get(brk_store_t *st, proto_str_t id, uint32_t last_n, brk_sess_build_t *b,
                   brk_sess_err_t *err) {
    mem_store_t *ms = MS(st);
    mem_sess_t *s = sess_find(ms, id);
    if (!s) return brk_sess_not_found(err, id);
    uint64_t last = s->n_ev ? s->ev[s->n_ev - 1]->seq : 0;
    int rc = brk_sess_build_head(b, (proto_str_t){s->id, s->idn}, (proto_str_t){s->app, s->appn},
                                 (proto_str_t){s->user, s->usern}, s->created_ms,
                                 s->updated_ms, s->n_ev, last);
    mem_scope_t *us = NULL, *as = NULL;
    if (rc == 0) rc = scope_find(ms, s, BRK_SCOPE_USER, &us);
    if (rc == 0) rc = scope_find(ms, s, BRK_SCOPE_APP, &as);
    if (rc == 0) rc = kvset_build(&s->kv, b);
    if (rc == 0 && us) rc = kvset_build(&us->kv, b);
    if (rc == 0 && as) rc = kvset_build(&as->kv, b);
    for (size_t i = 0; rc == 0 && i < last_n && i < s->n_ev; i++) {
        const mem_event_t *e = s->ev[s->n_ev - 1 - i];
        const uint8_t *p = e->data;
        brk_sess_event_t ev = {.seq = e->seq, .ts_ms = e->ts_ms};
        ev.id = (proto_str_t){(const char *)p, e->n[0]};
        ev.invocation = (proto_str_t){(const char *)p + e->n[0], e->n[1]};
        ev.author = (proto_str_t){(const char *)p + e->n[0] + e->n[1], e->n[2]};
        ev.body = (proto_raw_t){p + e->n[0] + e->n[1] + e->n[2], e->n[3]};
        rc = brk_sess_build_event(b, &ev);
    }
    if (rc < 0) return brk_sess_fail(err, rc, "out of memory");
    return 0;
}

static int order_cmp(const void *x, const void *y) {
    const mem_sess_t *a = *(mem_sess_t *const *)x, *b = *(mem_sess_t *const *)y;
    return id_cmp(a->id, a->idn, b->id, b->idn);
}

static void order_sort(mem_store_t *ms) {
    if (ms->sorted) return;
    qsort(ms->order, ms->n, sizeof *ms->order, order_cmp);
    for (size_t i = 0; i < ms->n; i++) ms->order[i]->order_idx = i;
    ms->sorted = true;
}

/* The first position whose id is after `after`. */
static size_t order_after(const mem_store_t *ms, proto_str_t after) {
    size_t lo = 0, hi = ms->n;
    if (after.n == 0) return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mem_sess_t *s = ms->order[mid];
        if (id_cmp(s->id, s->idn, after.p, after.n) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool matches(const mem_sess_t *s, const brk_sess_filter_t *f) {
    return (f->app.n == 0 || (f->app.n == s->appn && !memcmp(f->app.p, s->app, s->appn))) &&
           (f->user.n == 0 || (f->user.n == s->usern && !memcmp(f->user.p, s->user, s->usern)));
}

static int mem_list(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                    brk_sess_err_t *err) {
    mem_store_t *ms = MS(st);
    order_sort(ms);
    int rc = 0;
    const mem_sess_t *last = NULL;
    for (size_t i = order_after(ms, f->after); i < ms->n && rc == 0; i++) {
        const mem_sess_t *s = ms->order[i];
        if (!matches(s, f)) continue;
        if (page->n == f->limit) { /* one more exists: this page has a next */
            rc = brk_sess_page_set_next(page, (proto_str_t){last->id, last->idn});
            break;
        }
        rc = brk_sess_page_add(page, (proto_str_t){s->id, s->idn},
                               (proto_str_t){s->app, s->appn}, (proto_str_t){s->user, s->usern},
                               s->created_ms, s->updated_ms, s->n_ev);
        last = s;
    }
    return rc ? brk_sess_fail(err, rc, "out of memory") : 0;
}

static int mem_del(brk_store_t *st, proto_str_t id, brk_sess_err_t *err) {
    (void)err;
    mem_store_t *ms = MS(st);
    mem_sess_t *s = sess_find(ms, id);
    if (!s) return 0;
    brk_map_del(&ms->sessions, &s->node);
    size_t i = s->order_idx; /* the last one fills the hole: sorted again at the next list */
    ms->order[i] = ms->order[--ms->n];
    ms->order[i]->order_idx = i;
    if (i != ms->n) ms->sorted = false;
    sess_free(s);
    return 1;
}

static mem_event_t *event_new(const brk_sess_event_t *ev, uint64_t seq) {
    const void *p[4] = {ev->id.p, ev->invocation.p, ev->author.p, ev->body.p};
    size_t n[4] = {ev->id.n, ev->invocation.n, ev->author.n, ev->body.n};
    mem_event_t *e = malloc(sizeof *e + n[0] + n[1] + n[2] + n[3]);
    if (!e) return NULL;
    e->seq = seq;
    e->ts_ms = ev->ts_ms;
    uint8_t *at = e->data;
    for (int i = 0; i < 4; i++) {
        e->n[i] = n[i];
        if (n[i]) memcpy(at, p[i], n[i]);
        at += n[i];
    }
    return e;
}

/* A full log drops its oldest events (the newest one always stays): a session is bounded
 * in events and bytes however long it lives (issue 11: 300 inputs of 1 MiB, +307 MiB). */
static void trim_log(mem_sess_t *s, const brk_sess_limits_t *l) {
    size_t drop = 0;
    while (s->n_ev - drop > 1 &&
           (s->n_ev - drop > l->max_log_events || s->ev_bytes > l->max_log_bytes)) {
        s->ev_bytes -= s->ev[drop]->n[3];
        free(s->ev[drop++]);
    }
    if (!drop) return;
    memmove(s->ev, s->ev + drop, (s->n_ev - drop) * sizeof *s->ev);
    s->n_ev -= drop;
}

static int mem_append(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                      const brk_sess_kv_t *kv, size_t n_kv, int64_t now_ms, uint64_t *seq,
                      brk_sess_err_t *err) {
    mem_store_t *ms = MS(st);
    mem_sess_t *s = sess_find(ms, id);
    if (!s) return brk_sess_not_found(err, id);
    if (s->n_ev == s->cap_ev) {
        size_t cap = s->cap_ev ? s->cap_ev * 2 : 8;
        mem_event_t **a = realloc(s->ev, cap * sizeof *a);
        if (!a) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
        s->ev = a;
        s->cap_ev = cap;
    }
    uint64_t next = s->n_ev ? s->ev[s->n_ev - 1]->seq + 1 : 1;
    mem_event_t *e = event_new(ev, next);
    if (!e || apply_delta(ms, s, kv, n_kv)) {
        free(e);
        return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    }
    s->ev[s->n_ev++] = e;
    s->ev_bytes += ev->body.n;
    if (now_ms > s->updated_ms) s->updated_ms = now_ms; /* a wall clock set back: not before */
    *seq = next;
    trim_log(s, brk_store_limits(st));
    return 0;
}

const brk_store_ops_t brk_store_mem = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .create = mem_create,
    .get = mem_get,
    .list = mem_list,
    .del = mem_del,
    .append = mem_append,
    .count = mem_count,
};
