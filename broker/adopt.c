/* broker/adopt.c: nothing lost at a takeover (--pair). The active broker stamps each work it
 * sends for a client that can resend (explicit routing id; its CURVE key too) with `origin`; the
 * worker keeps such jobs running when its broker goes and lists them in its next `ready`
 * (`held`). The new active adopts each one: a RUNNING job bound to that worker, its session's
 * lock, its id attached so that the client's resend waits for the one answer. A resend that
 * comes before the worker (its id remembered with the provisional worker_lost of a query that
 * is not idempotent) is parked for the adoption window and answered then if nobody reports
 * the query, unless the worker process its work went to (named in that provisional answer)
 * comes back on a later connection without it: the work never reached it, and the resend
 * runs. proto/PROTOCOL.md, "Broker pairs", is the contract. */
#include "broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A resend waiting for a worker to report its query. */
typedef struct parked {
    base_list_t link;
    bool req;                  /* answer in a REQ envelope */
    brk_key_t *key;            /* its CURVE key, or NULL */
    size_t ridlen, idn, n, qn, dkn; /* routing id, query id, answer, query, dedup key bytes */
    uint8_t rid[BRK_MAX_IDENTITY];
    uint8_t dkey[1 + BRK_MAX_IDENTITY + 40]; /* the answer's dedup key (resend.c) */
    uint8_t data[];            /* the id, the remembered (provisional) answer, the query */
} parked_t;

struct brk_adopt {
    int64_t until;             /* b->now: the window ends (parked resends are answered) */
    base_list_t parked;
    uint64_t n_parked;
    uint64_t adopted, refused; /* jobs, since the takeover (logged) */
    uint64_t known;            /* answers reported again that were answered already */
    uint64_t refused_now;      /* refusals in the ready being read */
};

int brk_adopt_open(brk_t *b) {
    struct brk_adopt *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    base_list_init(&a->parked);
    /* The standby waited for the lease for as long as the old active lived: the startup
     * grace, and the window in which workers come back, start now. */
    b->now = base_mono_ms();
    uint64_t hb = b->cfg.heartbeat_ms * b->cfg.liveness;
    uint64_t grace = b->cfg.startup_grace_ms != UINT64_MAX ? b->cfg.startup_grace_ms : hb;
    b->grace_until = brk_after(b->now, grace);
    uint64_t win = b->cfg.adopt_window_ms != UINT64_MAX ? b->cfg.adopt_window_ms : 2 * hb;
    a->until = brk_after(b->now, win);
    b->adopt = a;
    base_log(BASE_LOG_INFO, "adopt_window", "ms=%llu", (unsigned long long)win);
    return 0;
}

void brk_adopt_close(brk_t *b) {
    struct brk_adopt *a = b->adopt;
    if (!a) return;
    while (!base_list_empty(&a->parked)) {
        parked_t *p = base_container_of(a->parked.next, parked_t, link);
        base_list_unlink(&p->link);
        free(p); /* its key reference: brk_zap_close, before this, freed every key */
    }
    free(a);
    b->adopt = NULL;
}

/* ---- work's origin ---- */

void brk_adopt_stamp(brk_t *b, const brk_job_t *j) {
    const brk_client_t *c = j->client;
    proto_buf_t *o = &b->out;
    if (!c || c->sock != BRK_SOCK_CLIENTS || o->failed || o->n == 0 ||
        !brk_dedup_eligible(b->dedup, c->key + 1, c->keylen - 1))
        return;
    size_t at = o->n;
    proto_pack_cstr(o, "origin");
    msgpack_pack_map(&o->pk, c->curve_key ? 4 : 3);
    if (c->curve_key) { /* its answers are its key's only (resend.c): the new active checks */
        proto_pack_cstr(o, "key");
        proto_pack_str(o, c->curve_key->z85, 40);
    }
    proto_pack_cstr(o, "id");
    proto_buf_raw(o, j->id);
    proto_pack_cstr(o, "client");
    msgpack_pack_bin(&o->pk, c->keylen - 1);
    msgpack_pack_bin_body(&o->pk, c->key + 1, c->keylen - 1);
    proto_pack_cstr(o, "idempotent");
    if (j->idempotent) msgpack_pack_true(&o->pk);
    else msgpack_pack_false(&o->pk);
    if (o->failed || !proto_buf_map_grow(o, 1)) { /* not adoptable: the work goes as it was */
        o->n = at;
        o->failed = false;
    }
}

/* ---- parked resends ---- */

static parked_t *park_find(struct brk_adopt *a, const uint8_t *rid, size_t ridlen,
                           proto_raw_t id, const brk_key_t *key) {
    for (base_list_t *l = a->parked.next; l != &a->parked; l = l->next) {
        parked_t *p = base_container_of(l, parked_t, link);
        if (p->key == key && p->ridlen == ridlen && p->idn == id.n &&
            memcmp(p->rid, rid, ridlen) == 0 &&
            memcmp(p->data, id.p, id.n) == 0)
            return p;
    }
    return NULL;
}

static void park_free(brk_t *b, parked_t *p) {
    base_list_unlink(&p->link);
    b->adopt->n_parked--;
    brk_key_unref(b, &p->key);
    free(p);
}

/* Whether the worker process that the marker body names came back (registered here, same
 * incarnation) with a complete report that did not list the query: its work never reached
 * it (the worker reads nothing of a connection after its ready on the next one), or its
 * answer was read (then body would not be a marker). */
static bool never_reached(brk_t *b, proto_raw_t id, const uint8_t *body, size_t n,
                          const brk_worker_t *only) {
    brk_sent_to_t to;
    if (!brk_dedup_marker_worker(id, body, n, &to)) return false;
    for (base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        const brk_worker_t *w = base_container_of(l, brk_worker_t, link);
        if ((only && w != only) || w->dead || w->incarnation != to.inc ||
            w->name_len != to.name_len || memcmp(w->name, to.name, to.name_len) != 0)
            continue;
        /* Works on one connection arrive in the order sent: the nth one came if the process
         * counted n on that connection (reported once it was closed). */
        for (size_t i = 0; i < w->n_recv; i++)
            if (w->recv_conn[i] == to.conn) return to.nth > w->recv_n[i];
    }
    return false;
}

brk_resend_t brk_adopt_resend(brk_t *b, const brk_in_t *in, proto_raw_t id,
                              const uint8_t *body, size_t n, const uint8_t *dkey, size_t dkn) {
    struct brk_adopt *a = b->adopt;
    if (!brk_dedup_is_marker(id, body, n)) return BRK_RESEND_ANSWER;
    parked_t *p = park_find(a, in->id, in->idlen, id, in->key);
    if (p) { /* resent again: its answer goes in this envelope */
        p->req = in->req;
        return BRK_RESEND_PARKED;
    }
    if (never_reached(b, id, body, n, NULL)) {
        base_log(BASE_LOG_INFO, "resend_runs", "why=\"its worker came back without it\"");
        return BRK_RESEND_RUN;
    }
    if (b->now >= a->until || dkn > sizeof p->dkey) return BRK_RESEND_ANSWER;
    if (a->n_parked >= b->cfg.max_queue || !(p = malloc(sizeof *p + id.n + n + in->n)))
        return BRK_RESEND_ANSWER;
    p->req = in->req;
    p->key = brk_key_ref(in->key); /* kept: a reload may drop the allowlist's reference */
    p->ridlen = in->idlen;
    p->idn = id.n;
    p->n = n;
    p->qn = in->n;
    p->dkn = dkn;
    memcpy(p->rid, in->id, in->idlen);
    memcpy(p->dkey, dkey, dkn);
    memcpy(p->data, id.p, id.n);
    memcpy(p->data + id.n, body, n);
    if (in->n) memcpy(p->data + id.n + n, in->body, in->n);
    base_list_push(&a->parked, &p->link);
    a->n_parked++;
    base_log(BASE_LOG_INFO, "resend_parked", "parked=%llu", (unsigned long long)a->n_parked);
    return BRK_RESEND_PARKED;
}

/* The parked resends whose work went to w's process, which just came back without them:
 * they run now, as if they had just come (their marker forgotten first). */
static void run_unreached(brk_t *b, const brk_worker_t *w) {
    struct brk_adopt *a = b->adopt;
    base_list_t *l = a->parked.next;
    while (l != &a->parked) {
        parked_t *p = base_container_of(l, parked_t, link);
        l = l->next;
        proto_raw_t id = {p->data, p->idn};
        if (!never_reached(b, id, p->data + p->idn, p->n, w)) continue;
        base_list_unlink(&p->link); /* out first: the query's own checks may park again */
        a->n_parked--;
        brk_dedup_forget(b->dedup, p->dkey, p->dkn, id.p, id.n);
        brk_in_t in = {.sock = BRK_SOCK_CLIENTS, .idlen = p->ridlen, .req = p->req,
                       .body = p->data + p->idn + p->n, .n = p->qn, .key = p->key, .fd = -1};
        memcpy(in.id, p->rid, p->ridlen);
        proto_msg_t m;
        proto_error_t err;
        memset(&err, 0, sizeof err);
        base_log(BASE_LOG_INFO, "resend_runs", "why=\"its worker came back without it\"");
        /* a key removed since: refused as recv_router refuses its messages */
        if (p->key && p->key->removed)
            brk_reply_error(b, &in, id, "unauthorized", "this connection's key is not allowed "
                            "any more");
        else if (proto_decode(in.body, in.n, &b->lim, &m, &err) == 0)
            brk_client_request(b, &in, &m);
        else
            brk_send(b, BRK_SOCK_CLIENTS, p->rid, p->ridlen, p->req, id.p + id.n, p->n);
        brk_key_unref(b, &p->key);
        free(p); /* the request parks nothing of its own (its marker is forgotten) */
    }
}

int64_t brk_adopt_tick(brk_t *b) {
    struct brk_adopt *a = b->adopt;
    if (!a || base_list_empty(&a->parked)) return -1;
    if (b->now < a->until) return a->until;
    uint64_t n = a->n_parked;
    while (!base_list_empty(&a->parked)) { /* nobody reported them: the provisional answer */
        parked_t *p = base_container_of(a->parked.next, parked_t, link);
        char peer[2 * BRK_MAX_IDENTITY + 1], id[2 * 256 + 1], q[200];
        brk_sent_to_t to = {0};
        /* where it went, and what that worker process said here: why it was no proof */
        brk_dedup_marker_worker((proto_raw_t){p->data, p->idn}, p->data + p->idn, p->n, &to);
        const brk_worker_t *w = NULL;
        for (base_list_t *l = b->worker_list.next; l != &b->worker_list && to.name_len;
             l = l->next) {
            const brk_worker_t *x = base_container_of(l, brk_worker_t, link);
            if (!x->dead && x->name_len == to.name_len &&
                memcmp(x->name, to.name, to.name_len) == 0)
                w = x;
        }
        uint64_t got = UINT64_MAX; /* what that connection received; MAX: not reported */
        for (size_t i = 0; w && w->incarnation == to.inc && i < w->n_recv; i++)
            if (w->recv_conn[i] == to.conn) got = w->recv_n[i];
        base_log(BASE_LOG_INFO, "resend_not_reported", "peer=%s id=%s worker=%s connection=%llu "
                 "work=%llu same_process=%d now_connection=%llu received=%lld",
                 base_log_hex(peer, sizeof peer, p->rid, p->ridlen),
                 base_log_hex(id, sizeof id, p->data, p->idn),
                 base_log_str(q, sizeof q, to.name, to.name_len), (unsigned long long)to.conn,
                 (unsigned long long)to.nth, w && w->incarnation == to.inc,
                 (unsigned long long)(w ? w->conn : 0),
                 got == UINT64_MAX ? -1LL : (long long)got);
        brk_send(b, BRK_SOCK_CLIENTS, p->rid, p->ridlen, p->req, p->data + p->idn, p->n);
        park_free(b, p);
    }
    base_log(BASE_LOG_INFO, "adopt_window_over", "answered_worker_lost=%llu adopted=%llu "
            "refused=%llu known=%llu", (unsigned long long)n, (unsigned long long)a->adopted,
            (unsigned long long)a->refused, (unsigned long long)a->known);
    return -1;
}

/* ---- held jobs in ready ---- */

/* One entry of `held`, read in place (pointers into the ready message). */
typedef struct held {
    brk_adopted_t r;
    proto_str_t invocation;
    const uint8_t *rid;
    size_t ridlen;
    const char *z85;         /* the client's CURVE key (40 characters), or NULL */
    bool has_job;
    bool done;               /* answered on the worker: its answer follows the ready */
} held_t;

static bool get(const proto_val_t *m, const char *key, int type, proto_val_t *out) {
    return proto_val_map_get(m, key, out) == 1 && out->type == type;
}

/* v as a non-negative integer. */
static bool val_u64(const proto_val_t *v, uint64_t *out) {
    if (v->type == PROTO_V_UINT) *out = v->u;
    else if (v->type == PROTO_V_INT && v->i >= 0) *out = (uint64_t)v->i;
    else return false;
    return true;
}

/* A non-negative integer (msgpack may write it in any integer format). */
static bool get_u64(const proto_val_t *m, const char *key, uint64_t *out) {
    proto_val_t v;
    if (proto_val_map_get(m, key, &v) != 1) return false;
    if (v.type == PROTO_V_UINT || (v.type == PROTO_V_INT && v.i >= 0)) {
        *out = v.type == PROTO_V_UINT ? v.u : (uint64_t)v.i;
        return true;
    }
    return false;
}

/* Reads one entry. Returns: NULL, or what is wrong with it. */
static const char *held_read(const brk_t *b, const proto_val_t *e, held_t *h) {
    proto_val_t v, o;
    memset(h, 0, sizeof *h);
    h->r.timeout_ms = -1;
    if (e->type != PROTO_V_MAP) return "an entry is not a map";
    uint64_t u;
    if (!get_u64(e, "job", &u)) return "'job' is not a non-negative integer";
    h->r.job_id = u;
    h->has_job = true;
    if (!get(e, "agent", PROTO_V_STR, &v) || v.len == 0 || v.len > BRK_MAX_NAME)
        return "'agent' is not a name";
    h->r.agent_name = (proto_str_t){(const char *)v.data, v.len};
    if (get(e, "session", PROTO_V_STR, &v)) {
        if (v.len == 0 || v.len > BRK_MAX_NAME || !base_utf8_valid((const char *)v.data, v.len))
            return "'session' is not a name";
        h->r.session = (proto_str_t){(const char *)v.data, v.len};
    }
    if (get(e, "invocation", PROTO_V_STR, &v)) {
        /* ours ("i-" and hex, BRK_INV_ID_LEN): it becomes a C string and a stored field */
        bool ok = v.len > 0 && v.len <= BRK_INV_ID_LEN;
        for (size_t i = 0; ok && i < v.len; i++) ok = v.data[i] > 0x20 && v.data[i] < 0x7f;
        if (!ok) return "'invocation' is not an invocation id";
        h->invocation = (proto_str_t){(const char *)v.data, v.len};
    }
    if (get_u64(e, "timeout_ms", &u))
        h->r.timeout_ms = u > (uint64_t)PROTO_TIMEOUT_MAX_MS ? PROTO_TIMEOUT_MAX_MS : (int64_t)u;
    if (proto_val_map_get(e, "input", &v) == 1) h->r.input = (proto_raw_t){v.raw, v.raw_n};
    if (!get(e, "origin", PROTO_V_MAP, &o)) return "'origin' is missing";
    if (proto_val_map_get(&o, "id", &v) != 1 ||
        (v.type != PROTO_V_STR && v.type != PROTO_V_UINT && v.type != PROTO_V_INT) ||
        v.raw_n > b->lim.max_id)
        return "origin 'id' is not a query id";
    h->r.id = (proto_raw_t){v.raw, v.raw_n};
    if (!get(&o, "client", PROTO_V_BIN, &v) || v.len == 0 || v.len > BRK_MAX_IDENTITY)
        return "origin 'client' is not a routing id";
    h->rid = v.data;
    h->ridlen = v.len;
    if (proto_val_map_get(&o, "key", &v) == 1) {
        if (v.type != PROTO_V_STR || v.len != 40) return "origin 'key' is not a CURVE key";
        h->z85 = (const char *)v.data;
    }
    h->r.idempotent = get(&o, "idempotent", PROTO_V_BOOL, &v) && v.b;
    h->done = get(e, "done", PROTO_V_BOOL, &v) && v.b;
    return NULL;
}

#define REFUSED_LOGGED 10 /* adopt_refused lines at warn per ready; the rest at debug */

static void refuse(brk_t *b, brk_worker_t *w, const held_t *h, const char *why) {
    char q[200];
    /* A worker's list can be long (or hostile): the first few say why, a summary counts. */
    base_log(++b->adopt->refused_now <= REFUSED_LOGGED ? BASE_LOG_WARN : BASE_LOG_DEBUG,
            "adopt_refused", "worker=%s job=%llu why=\"%s\"",
            base_log_str(q, sizeof q, w->name, w->name_len), (unsigned long long)h->r.job_id,
            why);
    b->adopt->refused++;
    if (h->has_job && proto_enc_cancel_job(&b->out, h->r.job_id) == 0)
        brk_worker_send(b, w, b->out.p, b->out.n); /* it stops; its answer is stale */
}

/* The remembered answer of the query: none or the provisional one (forgotten here, in
 * memory only: the row stays for a broker after this one) lets it be adopted. */
static bool answered_before(brk_t *b, const held_t *h) {
    /* the dedup key (resend.c): socket byte, routing id, then the CURVE key's text */
    uint8_t ckey[1 + BRK_MAX_IDENTITY + 40];
    size_t kn = h->ridlen + 1;
    ckey[0] = (uint8_t)BRK_SOCK_CLIENTS;
    memcpy(ckey + 1, h->rid, h->ridlen);
    if (h->z85) {
        memcpy(ckey + kn, h->z85, 40);
        kn += 40;
    }
    size_t n;
    const uint8_t *body = brk_dedup_find(b->dedup, ckey, kn, h->r.id.p, h->r.id.n, b->now, &n);
    if (!body) return false;
    if (!brk_dedup_is_marker(h->r.id, body, n)) return true;
    brk_dedup_forget(b->dedup, ckey, kn, h->r.id.p, h->r.id.n);
    return false;
}

static bool hosts(const brk_worker_t *w, proto_str_t agent) {
    for (uint32_t i = 0; i < w->n_agents; i++)
        if (w->agents[i]->len == agent.n && memcmp(w->agents[i]->name, agent.p, agent.n) == 0)
            return true;
    return false;
}

/* Why the job h cannot be adopted, or NULL with *cp (its client) set. */
static const char *adoptable(brk_t *b, brk_worker_t *w, const held_t *h, brk_client_t **cp) {
    if (!hosts(w, h->r.agent_name)) return "its agent is not one the worker announced";
    if (!brk_dedup_eligible(b->dedup, h->rid, h->ridlen))
        return "its client cannot resend (no explicit routing id, or dedup off)";
    brk_key_t *k = NULL;
    if (h->z85 && !(k = brk_zap_client_key(b, h->z85, 40)))
        return "its CURVE key is not allowed here (no CURVE, or not in --client-keys)";
    if (answered_before(b, h)) return "the query was answered already";
    brk_client_t *c = brk_client_adopt(b, h->rid, h->ridlen, k);
    if (!c) return "client table full";
    *cp = c;
    if (c->curve_key != k) return "its routing id has queries of another CURVE key";
    return NULL;
}

static void adopt_one(brk_t *b, brk_worker_t *w, const proto_val_t *e) {
    held_t h;
    brk_client_t *c = NULL;
    const char *bad = held_read(b, e, &h);
    if (!bad && h.done && answered_before(b, &h)) {
        /* A worker reports the answers it sent lately again (the broker that died may never
         * have read them): this one was read and answered. */
        b->adopt->known++;
        base_log(BASE_LOG_DEBUG, "adopt_known", "job=%llu", (unsigned long long)h.r.job_id);
        return;
    }
    if (!bad) bad = adoptable(b, w, &h, &c);
    if (bad) {
        if (c) brk_client_unadopt(b, c);
        refuse(b, w, &h, bad);
        return;
    }
    parked_t *p = park_find(b->adopt, h.rid, h.ridlen, h.r.id, c->curve_key);
    h.r.req = p && p->req;
    h.r.resent = p != NULL;
    brk_job_t *j;
    int rc = brk_job_adopt(b, c, w, brk_agent_find(b, h.r.agent_name), &h.r, &j);
    if (rc) {
        brk_client_unadopt(b, c);
        refuse(b, w, &h, rc == -EEXIST ? "the job or its query is running already"
                         : rc == -ENOSPC ? "job table full" : "out of memory");
        return;
    }
    if (p) park_free(b, p);
    if (!j->inv && (h.r.session.n || h.invocation.n))
        brk_inv_adopt(b, j, h.invocation, (proto_str_t){NULL, 0}, (proto_str_t){NULL, 0});
    b->adopt->adopted++;
    char q[200], s[80], ag[80];
    base_log(BASE_LOG_INFO, "job_adopted", "worker=%s job=%llu agent=%s session=%s "
            "idempotent=%d resend_waiting=%d",
            base_log_str(q, sizeof q, w->name, w->name_len), (unsigned long long)j->job_id,
            base_log_str(ag, sizeof ag, j->agent_name.p, j->agent_name.n),
            base_log_str(s, sizeof s, j->session.p, j->session.n), j->idempotent, p != NULL);
}

/* The ready's `incarnation`, `connection` and `received`, kept in w. */
static void read_incarnation(brk_worker_t *w, const brk_in_t *in) {
    proto_val_t m, arr, e, x;
    uint64_t inc = 0, conn = 0;
    w->incarnation = w->conn = 0;
    w->n_recv = 0;
    if (!in->body || proto_val_read(in->body, in->n, &m) != 0 || m.type != PROTO_V_MAP ||
        !get_u64(&m, "incarnation", &inc) || !get_u64(&m, "connection", &conn))
        return;
    w->incarnation = inc;
    w->conn = conn;
    size_t cur = 0;
    if (get(&m, "received", PROTO_V_ARRAY, &arr)) {
        while (w->n_recv < BRK_RECV_KEPT && proto_val_next(&arr, &cur, &e) == 1) {
            size_t ec = 0;
            uint64_t c, k;
            if (e.type != PROTO_V_ARRAY || proto_val_next(&e, &ec, &x) != 1 ||
                !val_u64(&x, &c) || c >= conn || proto_val_next(&e, &ec, &x) != 1 ||
                !val_u64(&x, &k))
                continue; /* only closed connections count (c < conn) */
            w->recv_conn[w->n_recv] = c;
            w->recv_n[w->n_recv++] = k;
        }
    }
    char q[200];
    base_log(BASE_LOG_DEBUG, "worker_process", "name=%s incarnation=%016llx connection=%llu "
             "received=%zu", base_log_str(q, sizeof q, w->name, w->name_len),
             (unsigned long long)inc, (unsigned long long)conn, w->n_recv);
}

void brk_adopt_held(brk_t *b, brk_worker_t *w, const brk_in_t *in, proto_raw_t held) {
    proto_val_t arr, e;
    read_incarnation(w, in);
    if (!held.n || proto_val_read(held.p, held.n, &arr) != 0 || arr.type != PROTO_V_ARRAY) {
        if (b->adopt && !held.n) run_unreached(b, w);
        return;
    }
    if (!b->adopt) { /* not a pair: nothing was stamped, nothing is adopted */
        size_t cur = 0;
        while (proto_val_next(&arr, &cur, &e) == 1) {
            held_t h;
            held_read(b, &e, &h);
            if (h.has_job && proto_enc_cancel_job(&b->out, h.r.job_id) == 0)
                brk_worker_send(b, w, b->out.p, b->out.n);
        }
        return;
    }
    size_t cur = 0;
    b->adopt->refused_now = 0;
    while (proto_val_next(&arr, &cur, &e) == 1) adopt_one(b, w, &e);
    run_unreached(b, w);
    if (b->adopt->refused_now > REFUSED_LOGGED) {
        char q[200];
        base_log(BASE_LOG_WARN, "adopt_refused_more", "worker=%s refused=%llu",
                base_log_str(q, sizeof q, w->name, w->name_len),
                (unsigned long long)b->adopt->refused_now);
    }
}
