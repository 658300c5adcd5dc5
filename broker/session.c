/* broker/session.c: the session store's front (session.h): limits, the checks every input
 * passes before an implementation sees it (names, keys, values, events: bounded, UTF-8,
 * msgpack checked by proto_validate), state deltas parsed into scoped entries, and the
 * builders that turn an implementation's rows into a brk_session_t or a list page. */
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

void brk_sess_limits_default(brk_sess_limits_t *l) {
    l->max_name = 256;
    l->max_key = 256;
    l->max_value = 256 << 10;
    l->max_event = 1 << 20;
    l->max_delta_keys = 1024;
    l->max_events = 10000;
    l->max_get_bytes = 32 << 20;
    l->max_page = 1000;
    l->max_sessions = 100000;
    l->max_log_events = 10000;
    l->max_log_bytes = 64 << 20;
}

static const char *code_of(int rc) {
    switch (rc) {
    case BRK_SESS_EINVAL: return "bad_request";
    case BRK_SESS_ENOENT: return "not_found";
    case BRK_SESS_EEXIST: return "already_exists";
    case BRK_SESS_ETOOBIG: return "too_large";
    case BRK_SESS_EFULL: return "overloaded";
    default: return "internal";
    }
}

int brk_sess_fail(brk_sess_err_t *err, int rc, const char *fmt, ...) {
    if (!err) return rc;
    err->code = code_of(rc);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

/* How many of n bytes to show in a message: at most max, never cutting a UTF-8 sequence (the
 * message goes to clients as a msgpack str). */
static int shown(const char *p, size_t n, size_t max) {
    if (n <= max) return (int)n;
    while (max > 0 && ((unsigned char)p[max] & 0xc0) == 0x80) max--;
    return (int)max;
}

int brk_sess_not_found(brk_sess_err_t *err, proto_str_t id) {
    return brk_sess_fail(err, BRK_SESS_ENOENT, "no session '%.*s'", shown(id.p, id.n, 80), id.p);
}

int brk_sess_scope_of(proto_str_t key) {
    if (key.n >= 4 && memcmp(key.p, "app:", 4) == 0) return BRK_SCOPE_APP;
    if (key.n >= 5 && memcmp(key.p, "user:", 5) == 0) return BRK_SCOPE_USER;
    if (key.n >= 5 && memcmp(key.p, "temp:", 5) == 0) return -1;
    return BRK_SCOPE_SESSION;
}

/* ---- checks ---- */

/* A name: at most max_name bytes of UTF-8 without NUL (stored and handed out as C strings). */
static int check_name(const brk_sess_limits_t *l, proto_str_t s, const char *field,
                      bool empty_ok, brk_sess_err_t *err) {
    if (s.n == 0 && !empty_ok)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field '%s' must not be empty", field);
    if (s.n > l->max_name)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field '%s' is longer than %zu bytes", field,
                             l->max_name);
    if (s.n && memchr(s.p, 0, s.n))
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field '%s' holds a NUL byte", field);
    if (!base_utf8_valid(s.p, s.n))
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field '%s' is not valid UTF-8", field);
    return 0;
}

/* One msgpack value from outside: well formed, within max bytes and proto's depth and element
 * limits. */
static int check_msgpack(proto_raw_t v, size_t max, const char *what, brk_sess_err_t *err) {
    if (v.n > max)
        return brk_sess_fail(err, BRK_SESS_ETOOBIG, "%s is %zu bytes, over the limit of %zu",
                             what, v.n, max);
    proto_limits_t pl;
    proto_error_t pe;
    proto_limits_default(&pl);
    pl.max_size = max;
    int rc = proto_validate(v.p, v.n, &pl, &pe);
    if (rc == 0) return 0;
    return brk_sess_fail(err, rc == PROTO_ETOOBIG ? BRK_SESS_ETOOBIG : BRK_SESS_EINVAL,
                         "%s is not valid msgpack: %s", what, pe.message);
}

static int check_key(const brk_sess_limits_t *l, proto_raw_t k, const char *what, unsigned i,
                     proto_str_t *key, brk_sess_err_t *err) {
    if (!proto_raw_str(k, key))
        return brk_sess_fail(err, BRK_SESS_EINVAL, "%s key %u is not a string", what, i);
    if (key->n == 0)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "%s key %u is empty", what, i);
    if (memchr(key->p, 0, key->n) || !base_utf8_valid(key->p, key->n))
        return brk_sess_fail(err, BRK_SESS_EINVAL, "%s key %u is not UTF-8 without NUL", what,
                             i);
    if (key->n > l->max_key)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "%s key '%.*s...' is longer than %zu bytes",
                             what, shown(key->p, key->n, 40), key->p, l->max_key);
    return 0;
}

/* Parses a delta (or an initial state) into entries in map order, temp: keys dropped. A nil or
 * absent delta has none. Ownership: *out is the caller's (free). */
static int parse_delta(const brk_sess_limits_t *l, proto_raw_t d, const char *what,
                       brk_sess_kv_t **out, size_t *n_out, brk_sess_err_t *err) {
    *out = NULL;
    *n_out = 0;
    if (d.n == 0 || proto_raw_is_nil(d)) return 0;
    int rc = check_msgpack(d, l->max_event, what, err);
    if (rc) return rc;
    size_t cur = 0, n = 0;
    proto_raw_t k, v;
    while ((rc = proto_map_next(d, &cur, &k, &v)) == 1) n++;
    if (rc < 0) return brk_sess_fail(err, BRK_SESS_EINVAL, "%s must be a map", what);
    if (n > l->max_delta_keys)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "%s has %zu keys, over the limit of %u",
                             what, n, l->max_delta_keys);
    brk_sess_kv_t *kv = n ? malloc(n * sizeof *kv) : NULL;
    if (n && !kv) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    size_t got = 0;
    cur = 0;
    for (unsigned i = 0; proto_map_next(d, &cur, &k, &v) == 1; i++) {
        proto_str_t key;
        if ((rc = check_key(l, k, what, i, &key, err))) goto fail;
        if (v.n > l->max_value) {
            rc = brk_sess_fail(err, BRK_SESS_ETOOBIG, "%s value of '%.*s' is %zu bytes, over "
                               "the limit of %zu", what, shown(key.p, key.n, 40), key.p, v.n,
                               l->max_value);
            goto fail;
        }
        int scope = brk_sess_scope_of(key);
        if (scope < 0) continue; /* temp: lives in the invocation only */
        kv[got++] = (brk_sess_kv_t){key, proto_raw_is_nil(v) ? (proto_raw_t){NULL, 0} : v,
                                    (brk_sess_scope_t)scope};
    }
    *out = kv;
    *n_out = got;
    return 0;
fail:
    free(kv);
    return rc;
}

static int check_event(const brk_sess_limits_t *l, const brk_sess_event_t *ev,
                       brk_sess_err_t *err) {
    int rc;
    if ((rc = check_name(l, ev->id, "event.id", false, err)) ||
        (rc = check_name(l, ev->invocation, "event.invocation", true, err)) ||
        (rc = check_name(l, ev->author, "event.author", true, err)))
        return rc;
    if (ev->body.n == 0) return brk_sess_fail(err, BRK_SESS_EINVAL, "the event has no body");
    return check_msgpack(ev->body, l->max_event, "the event", err);
}

/* ---- the get builder ---- */

typedef struct kv_rec {
    size_t koff, kn, voff, vn;
} kv_rec_t;

typedef struct ev_rec {
    uint64_t seq;
    int64_t ts_ms;
    size_t off[4], n[4]; /* id, invocation, author, body */
} ev_rec_t;

struct brk_sess_build {
    const brk_sess_limits_t *lim;
    proto_buf_t mem;        /* every byte the session will hold */
    kv_rec_t *kv;
    size_t n_kv, cap_kv;
    ev_rec_t *ev;
    size_t n_ev, cap_ev, ev_bytes;
    size_t name_off[3];     /* id, app, user: NUL-terminated in mem */
    int64_t created_ms, updated_ms;
    uint64_t n_events, last_seq;
    bool have_head;
};

static size_t put(brk_sess_build_t *b, const void *p, size_t n, bool nul) {
    size_t at = b->mem.n;
    proto_buf_raw(&b->mem, (proto_raw_t){p, n});
    if (nul) proto_buf_raw(&b->mem, (proto_raw_t){(const uint8_t *)"", 1});
    return at;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * size);
    if (!p) return BRK_SESS_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

int brk_sess_build_head(brk_sess_build_t *b, proto_str_t id, proto_str_t app, proto_str_t user,
                        int64_t created_ms, int64_t updated_ms, uint64_t n_events,
                        uint64_t last_seq) {
    b->name_off[0] = put(b, id.p, id.n, true);
    b->name_off[1] = put(b, app.p, app.n, true);
    b->name_off[2] = put(b, user.p, user.n, true);
    b->created_ms = created_ms;
    b->updated_ms = updated_ms;
    b->n_events = n_events;
    b->last_seq = last_seq;
    b->have_head = true;
    return b->mem.failed ? BRK_SESS_ENOMEM : 0;
}

int brk_sess_build_kv(brk_sess_build_t *b, proto_str_t key, proto_raw_t value) {
    if (grow((void **)&b->kv, &b->cap_kv, b->n_kv, sizeof *b->kv)) return BRK_SESS_ENOMEM;
    kv_rec_t *r = &b->kv[b->n_kv++];
    r->koff = put(b, key.p, key.n, false);
    r->kn = key.n;
    r->voff = put(b, value.p, value.n, false);
    r->vn = value.n;
    return b->mem.failed ? BRK_SESS_ENOMEM : 0;
}

int brk_sess_build_event(brk_sess_build_t *b, const brk_sess_event_t *ev) {
    size_t bytes = ev->id.n + ev->invocation.n + ev->author.n + ev->body.n;
    if (b->ev_bytes + bytes > b->lim->max_get_bytes) return 1;
    if (grow((void **)&b->ev, &b->cap_ev, b->n_ev, sizeof *b->ev)) return BRK_SESS_ENOMEM;
    ev_rec_t *r = &b->ev[b->n_ev++];
    r->seq = ev->seq;
    r->ts_ms = ev->ts_ms;
    const void *p[4] = {ev->id.p, ev->invocation.p, ev->author.p, ev->body.p};
    size_t n[4] = {ev->id.n, ev->invocation.n, ev->author.n, ev->body.n};
    for (int i = 0; i < 4; i++) {
        r->off[i] = put(b, p[i], n[i], false);
        r->n[i] = n[i];
    }
    b->ev_bytes += bytes;
    return b->mem.failed ? BRK_SESS_ENOMEM : 0;
}

static int kv_cmp(const void *a, const void *b, void *arg) {
    const kv_rec_t *x = a, *y = b;
    const uint8_t *mem = arg;
    int c = memcmp(mem + x->koff, mem + y->koff, x->kn < y->kn ? x->kn : y->kn);
    return c ? c : (x->kn > y->kn) - (x->kn < y->kn);
}

/* Moves what b built into a new brk_session_t: the state map sorted by key, the events
 * oldest first. */
static int build_finish(brk_sess_build_t *b, brk_session_t **out) {
    proto_buf_t st;
    proto_buf_init(&st);
    if (b->n_kv > 1) qsort_r(b->kv, b->n_kv, sizeof *b->kv, kv_cmp, b->mem.p);
    msgpack_pack_map(&st.pk, (uint32_t)b->n_kv);
    for (size_t i = 0; i < b->n_kv; i++) {
        proto_pack_str(&st, (const char *)b->mem.p + b->kv[i].koff, b->kv[i].kn);
        proto_buf_raw(&st, (proto_raw_t){b->mem.p + b->kv[i].voff, b->kv[i].vn});
    }
    size_t state_off = put(b, st.p, st.n, false), state_n = st.n;
    bool failed = st.failed || b->mem.failed;
    proto_buf_free(&st);
    brk_session_t *s = failed ? NULL : calloc(1, sizeof *s);
    if (s && b->n_ev && !(s->events = malloc(b->n_ev * sizeof *s->events))) {
        free(s);
        s = NULL;
    }
    if (!s) return BRK_SESS_ENOMEM;
    uint8_t *m = s->mem = b->mem.p;
    proto_buf_init(&b->mem); /* s owns the bytes now */
    s->id = (char *)m + b->name_off[0];
    s->app = (char *)m + b->name_off[1];
    s->user = (char *)m + b->name_off[2];
    s->created_ms = b->created_ms;
    s->updated_ms = b->updated_ms;
    s->n_events = b->n_events;
    s->last_seq = b->last_seq;
    s->state = (proto_raw_t){m + state_off, state_n};
    for (size_t i = 0; i < b->n_ev; i++) {
        const ev_rec_t *r = &b->ev[b->n_ev - 1 - i]; /* built newest first */
        brk_sess_event_t *e = &s->events[i];
        e->seq = r->seq;
        e->ts_ms = r->ts_ms;
        e->id = (proto_str_t){(const char *)m + r->off[0], r->n[0]};
        e->invocation = (proto_str_t){(const char *)m + r->off[1], r->n[1]};
        e->author = (proto_str_t){(const char *)m + r->off[2], r->n[2]};
        e->body = (proto_raw_t){m + r->off[3], r->n[3]};
    }
    s->n_got = b->n_ev;
    *out = s;
    return 0;
}

static void build_free(brk_sess_build_t *b) {
    proto_buf_free(&b->mem);
    free(b->kv);
    free(b->ev);
}

void brk_session_free(brk_session_t **s) {
    if (!s || !*s) return;
    free((*s)->mem);
    free((*s)->events);
    free(*s);
    *s = NULL;
}

/* ---- list pages ---- */

void brk_sess_page_init(brk_sess_page_t *p) { memset(p, 0, sizeof *p); }

void brk_sess_page_free(brk_sess_page_t *p) {
    for (size_t i = 0; i < p->n; i++) free(p->items[i].id); /* one block per row */
    free(p->items);
    free(p->next);
    brk_sess_page_init(p);
}

int brk_sess_page_add(brk_sess_page_t *p, proto_str_t id, proto_str_t app, proto_str_t user,
                      int64_t created_ms, int64_t updated_ms, uint64_t n_events) {
    if (grow((void **)&p->items, &p->cap, p->n, sizeof *p->items)) return BRK_SESS_ENOMEM;
    char *m = malloc(id.n + app.n + user.n + 3);
    if (!m) return BRK_SESS_ENOMEM;
    brk_sess_info_t *r = &p->items[p->n++];
    r->id = m;
    r->app = m + id.n + 1;
    r->user = r->app + app.n + 1;
    memcpy(r->id, id.p, id.n);
    r->id[id.n] = '\0';
    memcpy(r->app, app.p, app.n);
    r->app[app.n] = '\0';
    memcpy(r->user, user.p, user.n);
    r->user[user.n] = '\0';
    r->created_ms = created_ms;
    r->updated_ms = updated_ms;
    r->n_events = n_events;
    return 0;
}

int brk_sess_page_set_next(brk_sess_page_t *p, proto_str_t next) {
    free(p->next);
    p->next = strndup(next.p, next.n);
    return p->next ? 0 : BRK_SESS_ENOMEM;
}

/* ---- the store's front ---- */

int brk_store_open(brk_store_t **out, const brk_store_ops_t *ops, const char *path,
                   const brk_sess_limits_t *lim, brk_sess_err_t *err) {
    *out = NULL;
    brk_store_t *st = calloc(1, sizeof *st);
    if (!st) return brk_sess_fail(err, BRK_SESS_ENOMEM, "out of memory");
    st->ops = ops;
    if (lim) st->lim = *lim;
    else brk_sess_limits_default(&st->lim);
    int rc = ops->open(st, path, err);
    if (rc) {
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void brk_store_close(brk_store_t **st) {
    if (!st || !*st) return;
    (*st)->ops->close(*st);
    free(*st);
    *st = NULL;
}

const char *brk_store_name(const brk_store_t *st) { return st->ops->name; }
const brk_sess_limits_t *brk_store_limits(const brk_store_t *st) { return &st->lim; }
uint64_t brk_store_count(brk_store_t *st) { return st->ops->count(st); }

static int check_owner(const brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                       bool empty_ok, brk_sess_err_t *err) {
    int rc;
    if ((rc = check_name(&st->lim, id, "session", false, err)) ||
        (rc = check_name(&st->lim, app, "app", empty_ok, err)) ||
        (rc = check_name(&st->lim, user, "user", true, err))) /* "": the runner's default */
        return rc;
    return 0;
}

int brk_store_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                     proto_raw_t state, int64_t now_ms, brk_sess_err_t *err) {
    brk_sess_kv_t *kv;
    size_t n;
    int rc = check_owner(st, id, app, user, false, err);
    if (rc || (rc = parse_delta(&st->lim, state, "state", &kv, &n, err))) return rc;
    if (st->ops->count(st) >= st->lim.max_sessions)
        rc = brk_sess_fail(err, BRK_SESS_EFULL, "the session store is full (max-sessions "
                           "%llu)", (unsigned long long)st->lim.max_sessions);
    else
        rc = st->ops->create(st, id, app, user, kv, n, now_ms, err);
    free(kv);
    return rc;
}

static bool same(const char *s, proto_str_t want) {
    return want.n == 0 || proto_str_eq(want, s);
}

int brk_store_get(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                  uint32_t last_n, brk_session_t **out, brk_sess_err_t *err) {
    *out = NULL;
    int rc = check_owner(st, id, app, user, true, err);
    if (rc) return rc;
    if (last_n > st->lim.max_events)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field 'events' is %u, over the limit of %u",
                             last_n, st->lim.max_events);
    brk_sess_build_t b;
    memset(&b, 0, sizeof b);
    b.lim = &st->lim;
    proto_buf_init(&b.mem);
    rc = st->ops->get(st, id, last_n, &b, err);
    if (rc == 0 && !b.have_head) rc = brk_sess_fail(err, BRK_SESS_EIO, "the store gave no head");
    if (rc == 0 && (rc = build_finish(&b, out)))
        brk_sess_fail(err, rc, "out of memory");
    build_free(&b);
    if (rc == 0 && (!same((*out)->app, app) || !same((*out)->user, user))) {
        brk_session_free(out);
        rc = brk_sess_fail(err, BRK_SESS_ENOENT, "no session '%.*s' for that app and user",
                           shown(id.p, id.n, 80), id.p);
    }
    return rc;
}

int brk_store_get_or_create(brk_store_t *st, proto_str_t id, proto_str_t app, proto_str_t user,
                            uint32_t last_n, int64_t now_ms, brk_session_t **out,
                            bool *created, brk_sess_err_t *err) {
    *created = false;
    int rc = check_owner(st, id, app, user, false, err);
    if (rc) return rc;
    rc = brk_store_get(st, id, app, user, last_n, out, err);
    if (rc != BRK_SESS_ENOENT) return rc;
    rc = brk_store_create(st, id, app, user, (proto_raw_t){NULL, 0}, now_ms, err);
    if (rc == BRK_SESS_EEXIST) /* under another app or user: not this caller's */
        return brk_sess_fail(err, BRK_SESS_ENOENT, "session '%.*s' belongs to another app or "
                             "user", shown(id.p, id.n, 80), id.p);
    if (rc) return rc;
    *created = true;
    return brk_store_get(st, id, app, user, last_n, out, err);
}

int brk_store_list(brk_store_t *st, const brk_sess_filter_t *f, brk_sess_page_t *page,
                   brk_sess_err_t *err) {
    brk_sess_page_free(page);
    int rc;
    if ((rc = check_name(&st->lim, f->app, "app", true, err)) ||
        (rc = check_name(&st->lim, f->user, "user", true, err)) ||
        (rc = check_name(&st->lim, f->after, "after", true, err)))
        return rc;
    if (f->limit > st->lim.max_page)
        return brk_sess_fail(err, BRK_SESS_EINVAL, "field 'limit' is %u, over the limit of %u",
                             f->limit, st->lim.max_page);
    brk_sess_filter_t q = *f;
    if (q.limit == 0)
        q.limit = st->lim.max_page < BRK_SESS_DEFAULT_PAGE ? st->lim.max_page
                                                           : BRK_SESS_DEFAULT_PAGE;
    rc = st->ops->list(st, &q, page, err);
    if (rc) brk_sess_page_free(page);
    return rc;
}

int brk_store_delete(brk_store_t *st, proto_str_t id, brk_sess_err_t *err) {
    int rc = check_name(&st->lim, id, "session", false, err);
    return rc ? rc : st->ops->del(st, id, err);
}

int brk_store_append(brk_store_t *st, proto_str_t id, const brk_sess_event_t *ev,
                     proto_raw_t delta, int64_t now_ms, uint64_t *seq, brk_sess_err_t *err) {
    uint64_t dummy;
    brk_sess_kv_t *kv;
    size_t n;
    int rc = check_name(&st->lim, id, "session", false, err);
    if (rc || (rc = check_event(&st->lim, ev, err)) ||
        (rc = parse_delta(&st->lim, delta, "state_delta", &kv, &n, err)))
        return rc;
    rc = st->ops->append(st, id, ev, kv, n, now_ms, seq ? seq : &dummy, err);
    free(kv);
    return rc;
}
