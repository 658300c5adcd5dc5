/* broker/invocations.c: invocations and sub-invocations of the agent runtime (invocations.h):
 * one lock per session with its line of waiting queries, the record each such job carries
 * (root, sub-invocations, ids), the state and history a work message takes, and the events
 * that go into sessions. Every record belongs to one job and goes with it (job_free). */
#include "broker.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* One session's lock: the invocation running on it and those waiting, oldest first. */
typedef struct brk_slock {
    brk_node_t node;          /* key: name */
    brk_inv_t *holder;        /* NULL only while nobody waits */
    base_list_t waiters;       /* brk_inv_t.wait_link */
    uint64_t n_waiters;
    size_t len;
    char name[];
} brk_slock_t;

struct brk_inv {
    brk_job_t *job;           /* set by bind */
    brk_inv_t *root;          /* the top query's record: itself for a root; NULL once gone */
    base_list_t kids;          /* a root's sub-invocations, every depth */
    base_list_t kid_link;      /* a sub-invocation's place in root->kids */
    brk_slock_t *lock;        /* a root with a session, until it is answered */
    base_list_t wait_link;     /* in lock->waiters while waiting */
    bool started;             /* the user's event is in the session */
    bool adopted;             /* reported by a worker after a takeover (brk_inv_adopt) */
    uint64_t parent_job;      /* a sub-invocation's parent job (0: none), to pass its events
                                 up to every ancestor's worker */
    char id[BRK_INV_ID_LEN + 1]; /* "" when the root has no session */
    proto_str_t app, user, branch; /* point into buf */
    char buf[];
};

struct brk_invs {
    brk_map_t locks;
    uint64_t n_locks;
    uint64_t id_seed, id_next;
    proto_buf_t hist, ev;     /* scratch: a work's history, events the broker writes */
};

static const char default_app[] = "default";

int brk_invs_init(brk_t *b) {
    brk_invs_t *v = calloc(1, sizeof *v);
    if (!v || brk_map_init(&v->locks) != 0) {
        free(v);
        return -ENOMEM;
    }
    if (getrandom(&v->id_seed, sizeof v->id_seed, GRND_NONBLOCK) != (ssize_t)sizeof v->id_seed)
        v->id_seed = (uint64_t)base_unix_ms() * 0x9e3779b97f4a7c15ULL;
    proto_buf_init(&v->hist);
    proto_buf_init(&v->ev);
    b->invs = v;
    return 0;
}

void brk_invs_close(brk_t *b) {
    brk_invs_t *v = b->invs;
    if (!v) return;
    brk_node_t *n;
    while ((n = brk_map_next(&v->locks, NULL))) {
        brk_map_del(&v->locks, n);
        free(base_container_of(n, brk_slock_t, node));
    }
    brk_map_close(&v->locks);
    proto_buf_free(&v->hist);
    proto_buf_free(&v->ev);
    free(v);
    b->invs = NULL;
}

uint64_t brk_invs_locked(const brk_t *b) { return b->invs ? b->invs->n_locks : 0; }

uint64_t brk_invs_waiting(const brk_t *b) {
    uint64_t n = 0;
    const brk_node_t *nd = b->invs ? brk_map_next(&b->invs->locks, NULL) : NULL;
    for (; nd; nd = brk_map_next(&b->invs->locks, nd))
        n += base_container_of(nd, brk_slock_t, node)->n_waiters;
    return n;
}

/* A fresh id: splitmix64 of a counter from a random start, so ids never repeat within a
 * broker's life and differ across restarts. */
static void new_id(brk_t *b, char *out, char prefix) {
    uint64_t z = b->invs->id_seed + 0x9e3779b97f4a7c15ULL * ++b->invs->id_next;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    brk_inv_id_format(out, prefix, z ^ (z >> 31));
}

static int fail(brk_inv_err_t *err, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(brk_inv_err_t *err, int rc, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    return rc;
}

/* ---- locks ---- */

static brk_slock_t *lock_find(brk_t *b, proto_str_t session) {
    brk_node_t *n = brk_map_get(&b->invs->locks, session.p, session.n);
    return n ? base_container_of(n, brk_slock_t, node) : NULL;
}

static brk_slock_t *lock_new(brk_t *b, proto_str_t session) {
    brk_slock_t *l = calloc(1, sizeof *l + session.n + 1);
    if (!l) return NULL;
    memcpy(l->name, session.p, session.n);
    l->len = session.n;
    l->node.key = l->name;
    l->node.klen = l->len;
    base_list_init(&l->waiters);
    brk_map_put(&b->invs->locks, &l->node);
    b->invs->n_locks++;
    return l;
}

static void lock_free_if_idle(brk_t *b, brk_slock_t *l) {
    if (l->holder || l->n_waiters) return;
    brk_map_del(&b->invs->locks, &l->node);
    b->invs->n_locks--;
    free(l);
}

/* Hands a free lock to its oldest waiter whose agent is still hosted; a waiter whose agent
 * is gone is answered unknown_agent here (it no longer counts as a waiter, so its answer
 * does not come back into this loop). */
static void lock_grant(brk_t *b, brk_slock_t *l) {
    while (!l->holder && !base_list_empty(&l->waiters)) {
        brk_inv_t *w = base_container_of(l->waiters.next, brk_inv_t, wait_link);
        base_list_unlink(&w->wait_link);
        l->n_waiters--;
        l->holder = w;
        if (brk_job_enqueue(b, w->job) == 0) break;
        l->holder = NULL;
        w->lock = NULL;
        brk_job_abort(b, w->job, "unknown_agent", "no worker hosts the agent any more");
    }
    lock_free_if_idle(b, l);
}

/* ---- records ---- */

static brk_inv_t *inv_new(proto_str_t app, proto_str_t user, proto_str_t branch) {
    brk_inv_t *v = calloc(1, sizeof *v + app.n + user.n + branch.n + 1);
    if (!v) return NULL;
    char *p = v->buf;
    proto_str_t *dst[3] = {&v->app, &v->user, &v->branch};
    proto_str_t src[3] = {app, user, branch};
    for (int i = 0; i < 3; i++) {
        if (src[i].n) memcpy(p, src[i].p, src[i].n);
        *dst[i] = (proto_str_t){p, src[i].n};
        p += src[i].n;
    }
    v->root = v;
    base_list_init(&v->kids);
    base_list_init(&v->kid_link);
    base_list_init(&v->wait_link);
    return v;
}

/* A name the session store will take: short, UTF-8, no NUL. */
static bool name_ok(proto_str_t s, size_t max) {
    return s.n <= max && (s.n == 0 || !memchr(s.p, 0, s.n)) && base_utf8_valid(s.p, s.n);
}

static int prepare_root(brk_t *b, const proto_msg_t *m, brk_inv_t **out, brk_inv_err_t *err) {
    char name[80];
    if (!name_ok(m->app, BRK_MAX_NAME) || !name_ok(m->user, BRK_MAX_NAME))
        return fail(err, -EINVAL, "bad_request", "field '%s' must be at most %d bytes of "
                    "UTF-8 without NUL", name_ok(m->app, BRK_MAX_NAME) ? "user" : "app",
                    BRK_MAX_NAME);
    brk_slock_t *l = lock_find(b, m->session);
    if (l && l->holder && l->n_waiters >= b->cfg.max_session_waiters)
        return fail(err, -EBUSY, "overloaded", "session %s has %llu queries waiting "
                    "(max-session-waiters)", base_log_str(name, sizeof name, m->session.p,
                    m->session.n), (unsigned long long)l->n_waiters);
    proto_str_t none = {NULL, 0};
    brk_inv_t *v = inv_new(m->app, m->user, none);
    if (!v || (!l && !(l = lock_new(b, m->session)))) {
        free(v);
        return fail(err, -ENOMEM, "internal", "out of memory");
    }
    v->lock = l;
    new_id(b, v->id, 'i');
    *out = v;
    return 0;
}

/* The record of a running job that is about to get a sub-invocation: a job without one (a
 * query without a session) becomes the root of a tree that only forwards events. */
static brk_inv_t *parent_record(brk_job_t *pj) {
    if (pj->inv) return pj->inv;
    proto_str_t none = {NULL, 0};
    brk_inv_t *v = inv_new(none, none, none);
    if (!v) return NULL;
    v->job = pj;
    pj->inv = v;
    return v;
}

static int prepare_child(brk_t *b, const brk_in_t *in, proto_msg_t *m, brk_inv_t **out,
                         brk_inv_err_t *err) {
    if (in->sock != BRK_SOCK_WORKERS)
        return fail(err, -EINVAL, "bad_request", "field 'parent' is only for workers' queries");
    if (!name_ok(m->branch, BRK_INV_MAX_BRANCH))
        return fail(err, -EINVAL, "bad_request", "field 'branch' must be at most %d bytes of "
                    "UTF-8 without NUL", BRK_INV_MAX_BRANCH);
    brk_job_t *pj = brk_job_find(b, m->parent);
    brk_node_t *wn = brk_map_get(&b->worker_map, in->id, in->idlen);
    if (!pj || !wn || pj->worker != base_container_of(wn, brk_worker_t, node))
        return fail(err, -EINVAL, "bad_request", "field 'parent' (%llu) names no running job "
                    "of this worker", (unsigned long long)m->parent);
    if (pj->answered)
        return fail(err, -ECANCELED, "cancelled", "the parent job has already been answered");
    brk_inv_t *pv = parent_record(pj);
    if (!pv) return fail(err, -ENOMEM, "internal", "out of memory");
    brk_inv_t *r = pv->root;
    if (!r || !r->job || r->job->answered)
        return fail(err, -ECANCELED, "cancelled", "the invocation the parent belongs to has "
                    "ended");
    proto_str_t rs = r->job->session;
    if (m->session.n && (m->session.n != rs.n || memcmp(m->session.p, rs.p, rs.n) != 0))
        return fail(err, -EINVAL, "bad_request", "field 'session' differs from the parent's "
                    "session (a sub-invocation runs in its parent's)");
    m->session = rs;
    proto_str_t none = {NULL, 0};
    brk_inv_t *v = inv_new(none, none, m->branch);
    if (!v) return fail(err, -ENOMEM, "internal", "out of memory");
    v->root = r;
    v->parent_job = pj->job_id;
    memcpy(v->id, r->id, sizeof v->id);
    base_list_push(&r->kids, &v->kid_link);
    *out = v;
    return 0;
}

int brk_inv_prepare(brk_t *b, const brk_in_t *in, proto_msg_t *m, brk_inv_t **out,
                    brk_inv_err_t *err) {
    *out = NULL;
    if (m->has_parent) return prepare_child(b, in, m, out, err);
    if (m->session.n == 0) return 0;
    return prepare_root(b, m, out, err);
}

void brk_inv_discard(brk_t *b, brk_inv_t **inv) {
    brk_inv_t *v = *inv;
    if (!v) return;
    *inv = NULL;
    base_list_unlink(&v->kid_link);
    if (v->lock) lock_free_if_idle(b, v->lock);
    free(v);
}

bool brk_inv_will_wait(const brk_inv_t *v) { return v->lock && v->lock->holder; }

bool brk_inv_bind(brk_t *b, brk_inv_t *v, brk_job_t *j) {
    (void)b;
    v->job = j;
    j->inv = v;
    brk_slock_t *l = v->lock;
    if (!l) return false;
    if (!l->holder) {
        l->holder = v;
        return false;
    }
    base_list_push(&l->waiters, &v->wait_link);
    l->n_waiters++;
    if (base_log_on(BASE_LOG_DEBUG)) {
        char name[80];
        base_log(BASE_LOG_DEBUG, "session_wait", "job=%llu session=%s waiters=%llu",
                 (unsigned long long)j->job_id, base_log_str(name, sizeof name, l->name, l->len),
                 (unsigned long long)l->n_waiters);
    }
    return true;
}

void brk_inv_on_answer(brk_t *b, brk_job_t *j) {
    brk_inv_t *v = j->inv;
    if (!v || !v->lock) return;
    brk_slock_t *l = v->lock;
    v->lock = NULL;
    if (l->holder == v) {
        l->holder = NULL;
        lock_grant(b, l);
        return;
    }
    base_list_unlink(&v->wait_link);
    l->n_waiters--;
    lock_free_if_idle(b, l);
}

void brk_inv_on_free(brk_t *b, brk_job_t *j) {
    brk_inv_t *v = j->inv;
    if (!v) return;
    j->inv = NULL;
    if (v->lock) { /* the broker is closing: no answer came first, and nobody is granted */
        if (v->lock->holder == v) v->lock->holder = NULL;
        if (base_list_linked(&v->wait_link)) v->lock->n_waiters--;
        base_list_unlink(&v->wait_link);
        lock_free_if_idle(b, v->lock);
    }
    while (!base_list_empty(&v->kids)) {
        brk_inv_t *k = base_container_of(v->kids.next, brk_inv_t, kid_link);
        base_list_unlink(&k->kid_link);
        k->root = NULL;
    }
    base_list_unlink(&v->kid_link);
    free(v);
}

/* ---- adoption: a job a worker kept running across a takeover ---- */

/* Two adopted invocations claim one session (two workers each say they run one): the older
 * job (the lower id: ids grow) keeps the lock, whichever reported first, so every broker
 * that adopts them decides alike. */
static bool adopt_wins(const brk_inv_t *v, const brk_inv_t *holder) {
    return holder->adopted && v->job->job_id < holder->job->job_id;
}

int brk_inv_adopt(brk_t *b, brk_job_t *j, proto_str_t invocation, proto_str_t app,
                  proto_str_t user) {
    proto_str_t none = {NULL, 0};
    brk_inv_t *v = inv_new(app, user, none);
    if (!v) return -ENOMEM;
    size_t n = invocation.n < BRK_INV_ID_LEN ? invocation.n : BRK_INV_ID_LEN;
    memcpy(v->id, invocation.p, n);
    v->started = true; /* the user's event was stored by the broker that sent the work */
    v->adopted = true;
    v->job = j;
    j->inv = v;
    if (!j->session.n) return 0;
    brk_slock_t *l = lock_find(b, j->session);
    if (!l && !(l = lock_new(b, j->session))) return 0; /* runs without its lock */
    char name[80];
    brk_inv_t *h = l->holder;
    if (h && !adopt_wins(v, h)) {
        base_log(BASE_LOG_WARN, "adopt_lock_conflict", "session=%s job=%llu holder=%llu "
                "kept=holder why=\"%s\"", base_log_str(name, sizeof name, l->name, l->len),
                (unsigned long long)j->job_id, (unsigned long long)h->job->job_id,
                h->adopted ? "the older job keeps the lock" : "a query since the takeover "
                "holds it");
        lock_free_if_idle(b, l);
        return 0; /* runs on, answered as usual, but writes nothing to the session */
    }
    if (h) {
        base_log(BASE_LOG_WARN, "adopt_lock_conflict", "session=%s job=%llu holder=%llu "
                "kept=job why=\"the older job keeps the lock\"",
                base_log_str(name, sizeof name, l->name, l->len), (unsigned long long)j->job_id,
                (unsigned long long)h->job->job_id);
        h->lock = NULL;
    }
    l->holder = v;
    v->lock = l;
    return 0;
}

int brk_inv_adopt_child(brk_t *b, brk_job_t *j, brk_job_t *pj) {
    (void)b;
    brk_inv_t *pv = parent_record(pj);
    if (!pv) return -ENOMEM;
    brk_inv_t *r = pv->root;
    if (!r || !r->job || r->job->answered) return -ECANCELED;
    proto_str_t rs = r->job->session;
    if (j->session.n != rs.n || (rs.n && memcmp(j->session.p, rs.p, rs.n) != 0))
        return -EINVAL;
    proto_str_t none = {NULL, 0};
    brk_inv_t *v = inv_new(none, none, none); /* its branch went with its work already */
    if (!v) return -ENOMEM;
    v->root = r;
    v->parent_job = pj->job_id;
    memcpy(v->id, r->id, sizeof v->id);
    v->started = true;
    v->adopted = true;
    base_list_push(&r->kids, &v->kid_link);
    v->job = j;
    j->inv = v;
    return 0;
}

uint64_t brk_inv_parent_of(const brk_job_t *j) {
    return j->inv && j->inv->root != j->inv ? j->inv->parent_job : 0;
}

/* ---- work ---- */

/* The store's view of app and user: what the query named, or any. */
static int load_session(brk_t *b, brk_inv_t *v, proto_str_t session, uint32_t n_events,
                        brk_session_t **s, brk_inv_err_t *err) {
    brk_sess_err_t se = {0};
    int rc = brk_store_get(b->store, session, v->app, v->user, n_events, s, &se);
    if (rc == BRK_SESS_ENOENT && v->root == v && !v->started) {
        proto_str_t app = v->app.n ? v->app : proto_str_of(default_app);
        proto_raw_t none = {NULL, 0};
        rc = brk_store_create(b->store, session, app, v->user, none, base_unix_ms(), &se);
        if (rc == BRK_SESS_EEXIST)
            return fail(err, rc, "not_found", "session belongs to another app or user");
        if (rc == 0) rc = brk_store_get(b->store, session, v->app, v->user, n_events, s, &se);
    }
    if (rc) return fail(err, rc, se.code ? se.code : "internal", "%s", se.message);
    return 0;
}

/* An estimate of an event's bytes as history packs it, for --history-bytes. */
static size_t event_bytes(const brk_sess_event_t *e) {
    return e->body.n + e->id.n + e->invocation.n + e->author.n + 64;
}

static bool own_event(const brk_sess_event_t *e, const char *inv_id, size_t idn) {
    return e->invocation.n == idn && memcmp(e->invocation.p, inv_id, idn) == 0;
}

/* The newest events of s, within --history-bytes, oldest first, without this invocation's
 * own (a retry's): the input is the work's `input`, not history. */
static proto_raw_t pack_history(brk_t *b, const brk_session_t *s, const char *inv_id) {
    proto_buf_t *o = &b->invs->hist;
    size_t first = s->n_got, bytes = 0, n = 0, idn = strlen(inv_id);
    while (first > 0) {
        const brk_sess_event_t *e = &s->events[first - 1];
        bool own = own_event(e, inv_id, idn);
        if (!own && bytes + event_bytes(e) > b->cfg.history_bytes) break;
        if (!own) {
            bytes += event_bytes(e);
            n++;
        }
        first--;
    }
    proto_buf_reset(o);
    msgpack_pack_array(&o->pk, (uint32_t)n);
    for (size_t i = first; i < s->n_got; i++) {
        const brk_sess_event_t *e = &s->events[i];
        if (!own_event(e, inv_id, idn)) brk_session_pack_event(o, e);
    }
    return (proto_raw_t){o->p, o->n};
}

/* Appends the user's input as the invocation's first event (once, not again on a retry). */
static int append_user_event(brk_t *b, brk_job_t *j, brk_inv_t *v, brk_inv_err_t *err) {
    char eid[BRK_INV_ID_LEN + 1];
    int64_t now = base_unix_ms();
    new_id(b, eid, 'e');
    if (brk_inv_enc_user_event(&b->invs->ev, eid, v->id, now, j->input) != 0)
        return fail(err, -ENOMEM, "internal", "out of memory");
    brk_sess_event_t ev = {.id = proto_str_of(eid), .invocation = proto_str_of(v->id),
                           .author = proto_str_of("user"), .ts_ms = now,
                           .body = {b->invs->ev.p, b->invs->ev.n}};
    brk_sess_err_t se = {0};
    proto_raw_t none = {NULL, 0};
    int rc = brk_session_append(b, j->session, &ev, none, NULL, &se);
    if (rc) return fail(err, rc, se.code ? se.code : "internal", "%s", se.message);
    v->started = true;
    return 0;
}

int brk_inv_enc_work(brk_t *b, brk_job_t *j, bool history, int64_t left, brk_inv_err_t *err) {
    brk_inv_t *v = j->inv;
    proto_work_t w = {.job = j->job_id, .attempt = j->attempt + 1, .agent = j->agent_name,
                      .session = j->session, .input = j->input, .timeout_ms = left,
                      .invocation = proto_str_of(v->id), .branch = v->branch};
    brk_session_t *s = NULL;
    bool root = v->root == v;
    if (j->session.n) {
        history = history && root && b->cfg.history_events > 0;
        uint32_t n = history ? (uint32_t)b->cfg.history_events : 0;
        int rc = load_session(b, v, j->session, n, &s, err);
        if (rc) return rc;
        w.state = s->state;
        if (history) w.history = pack_history(b, s, v->id);
        if (root && !v->started && (rc = append_user_event(b, j, v, err)) != 0) {
            brk_session_free(&s);
            return rc;
        }
    }
    int rc = proto_enc_work_msg(&b->out, &w);
    brk_session_free(&s);
    if (rc || b->invs->hist.failed) return fail(err, -ENOMEM, "internal", "out of memory");
    return 0;
}

/* ---- events ---- */

/* The store refused an event (its delta, most often): the root's client hears why. */
static void rejected(brk_t *b, brk_inv_t *r, const brk_sess_err_t *se) {
    char eid[BRK_INV_ID_LEN + 1], name[80], why[240];
    base_log(BASE_LOG_WARN, "state_rejected", "job=%llu session=%s error=%s",
             (unsigned long long)r->job->job_id,
             base_log_str(name, sizeof name, r->job->session.p, r->job->session.n),
             base_log_str(why, sizeof why, se->message, strlen(se->message)));
    new_id(b, eid, 'e');
    if (brk_inv_enc_broker_event(&b->invs->ev, eid, r->id, base_unix_ms(), "state_rejected",
                                 se->message) != 0)
        return;
    proto_raw_t ev = {b->invs->ev.p, b->invs->ev.n};
    brk_job_send_event(b, r->job, ev, true);
}

static void store_event(brk_t *b, brk_inv_t *r, proto_raw_t event) {
    brk_inv_event_t e;
    brk_inv_event_parse(event, &e);
    if (!e.store) return;
    char eid[BRK_INV_ID_LEN + 1];
    if (e.id.n == 0) {
        new_id(b, eid, 'e');
        e.id = proto_str_of(eid);
    }
    brk_sess_event_t ev = {.id = e.id, .invocation = proto_str_of(r->id), .author = e.author,
                           .ts_ms = e.ts_ms >= 0 ? e.ts_ms : base_unix_ms(), .body = event};
    brk_sess_err_t se = {0};
    if (brk_session_append(b, r->job->session, &ev, e.delta, NULL, &se) != 0)
        rejected(b, r, &se);
}

/* A sub-invocation's event also goes to the worker of every ancestor between it and the
 * root, as an event of that ancestor's own call: the parent's worker has it already (it is
 * the job's client), the root's client below; the workers in between keep state views that
 * must see a grandchild's writes (a parallel agent's child that runs a parallel agent). */
static void pass_up(brk_t *b, brk_inv_t *v, brk_inv_t *r, proto_raw_t event) {
    brk_job_t *pj = v->parent_job ? brk_job_find(b, v->parent_job) : NULL;
    for (int depth = 0; pj && pj->inv && pj->inv != r && depth < BRK_INV_MAX_DEPTH; depth++) {
        if (!pj->answered) brk_job_send_event(b, pj, event, false);
        pj = pj->inv->parent_job ? brk_job_find(b, pj->inv->parent_job) : NULL;
    }
}

void brk_inv_on_event(brk_t *b, brk_job_t *j, proto_raw_t event) {
    brk_inv_t *v = j->inv;
    if (!v || !v->root || !v->root->job) return;
    brk_inv_t *r = v->root;
    if (r != v) pass_up(b, v, r, event);
    if (r != v && !r->job->answered) brk_job_send_event(b, r->job, event, false);
    /* Only a running invocation writes its session: once its query is answered the lock
     * has moved on, and late events are forwarded and published but not stored. */
    if (r->lock && r->lock->holder == r && !r->job->answered) store_event(b, r, event);
}

const char *brk_inv_id_of(const brk_job_t *j) { return j->inv ? j->inv->id : ""; }
