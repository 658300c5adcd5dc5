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
#include <stdio.h>
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

/* A call a worker listed as pending under one of its adopted jobs: the job that answers it
 * (a child some worker reports) is linked to it, or the window's end answers it. */
typedef struct wcall {
    base_list_t link;
    uint64_t caller, call;     /* the caller's incarnation, the call's id */
    uint64_t job;              /* the adopted job that made it */
    uint8_t *query;            /* its query as the caller reported it, or NULL */
    size_t query_n;
} wcall_t;

/* A job reported for a worker's call that its caller has not listed yet: parked until it
 * does, or until the window ends (then cancelled on its worker). */
typedef struct pchild {
    base_list_t link;
    brk_worker_t *w;           /* its worker: compared, never read, until w_seq says it lives */
    uint64_t w_seq, job, caller, call;
    bool counted;              /* running: holds one of w's credits meanwhile */
    bool answered, ok;         /* its answer came while parked (ans) */
    uint8_t *ans;              /* result: the output; error: code, then message */
    size_t ans_n, code_n, entry_n;
    uint8_t entry[];           /* the held entry, verbatim */
} pchild_t;

struct brk_adopt {
    int64_t until;             /* b->now: the window ends (parked resends are answered) */
    base_list_t parked;
    uint64_t n_parked;
    base_list_t wcalls, children; /* calls waiting for their child, children for their call */
    uint64_t n_wcalls, n_children;
    uint64_t adopted, refused; /* jobs, since the takeover (logged) */
    uint64_t known;            /* answers reported again that were answered already */
    uint64_t refused_now;      /* refusals in the ready being read */
};

int brk_adopt_open(brk_t *b) {
    struct brk_adopt *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    base_list_init(&a->parked);
    base_list_init(&a->wcalls);
    base_list_init(&a->children);
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
    while (!base_list_empty(&a->wcalls)) {
        wcall_t *c = base_container_of(a->wcalls.next, wcall_t, link);
        base_list_unlink(&c->link);
        free(c->query);
        free(c);
    }
    while (!base_list_empty(&a->children)) {
        pchild_t *p = base_container_of(a->children.next, pchild_t, link);
        base_list_unlink(&p->link);
        free(p->ans);
        free(p);
    }
    free(a);
    b->adopt = NULL;
}

/* ---- work's origin ---- */

/* The registered worker whose calls client entry c holds, or NULL. */
static const brk_worker_t *caller_of(brk_t *b, const brk_client_t *c) {
    brk_node_t *n = brk_map_get(&b->worker_map, c->key + 1, c->keylen - 1);
    return n ? base_container_of(n, brk_worker_t, node) : NULL;
}

static size_t call_key_of(uint8_t *key, uint64_t inc) {
    key[0] = 2; /* neither socket's byte: no client's key looks like it */
    for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(inc >> (56 - 8 * i));
    return BRK_CALL_KEY_LEN;
}

size_t brk_adopt_call_key(brk_t *b, const brk_client_t *c, uint8_t *key) {
    const brk_worker_t *w = caller_of(b, c);
    return w && w->incarnation ? call_key_of(key, w->incarnation) : 0;
}

void brk_adopt_stamp(brk_t *b, const brk_job_t *j) {
    const brk_client_t *c = j->client;
    proto_buf_t *o = &b->out;
    if (!c || o->failed || o->n == 0 || !j->id.n) return;
    proto_origin_t og = {.id = j->id, .idempotent = j->idempotent};
    if (c->sock == BRK_SOCK_CLIENTS) {
        if (!brk_dedup_eligible(b->dedup, c->key + 1, c->keylen - 1)) return;
        og.client = c->key + 1;
        og.client_n = c->keylen - 1;
        /* its answers are its key's only (resend.c): the new active checks */
        og.key = c->curve_key ? c->curve_key->z85 : NULL;
    } else {
        /* A worker's call: named by the caller's process and the call's id, which the caller
         * lists under its job when it reports it to the broker that takes over. */
        const brk_worker_t *w = caller_of(b, c);
        if (!w || !w->incarnation) return;
        og.caller = w->incarnation;
        og.parent = brk_inv_parent_of(j);
    }
    size_t at = o->n;
    proto_pack_cstr(o, "origin");
    if (proto_enc_origin(o, &og) != 0 || o->failed || !proto_buf_map_grow(o, 1)) {
        o->n = at; /* not adoptable: the work goes as it was */
        o->failed = false;
    }
}

static void calls_window_over(brk_t *b);

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
    if (!a || (base_list_empty(&a->parked) && !a->n_wcalls && !a->n_children)) return -1;
    if (b->now < a->until) return a->until;
    calls_window_over(b);
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
    proto_origin_t o;        /* o.client: a client's query; o.caller: a worker's call */
    proto_val_t calls;       /* the job's pending calls (an array of ids), when has_calls */
    proto_val_t queries;     /* their queries (bin or nil, in that order), when has_queries */
    bool has_calls, has_queries;
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
    return proto_val_map_get(m, key, &v) == 1 && val_u64(&v, out);
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
    if (proto_val_map_get(e, "origin", &o) != 1) return "'origin' is missing";
    const char *why = NULL;
    if (proto_origin_read(&o, b->lim.max_id, &h->o, &why) != 0) return why;
    h->r.id = h->o.id;
    h->r.idempotent = h->o.idempotent;
    if (proto_val_map_get(e, "calls", &h->calls) == 1) {
        if (h->calls.type != PROTO_V_ARRAY) return "'calls' is not an array";
        h->has_calls = true;
    }
    if (proto_val_map_get(e, "call_queries", &h->queries) == 1) {
        if (h->queries.type != PROTO_V_ARRAY) return "'call_queries' is not an array";
        h->has_queries = true;
    }
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
    size_t kn = h->o.client_n + 1;
    if (!h->o.client_n) return false; /* a worker's call: nothing remembered */
    ckey[0] = (uint8_t)BRK_SOCK_CLIENTS;
    memcpy(ckey + 1, h->o.client, h->o.client_n);
    if (h->o.key) {
        memcpy(ckey + kn, h->o.key, 40);
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
    if (!brk_dedup_eligible(b->dedup, h->o.client, h->o.client_n))
        return "its client cannot resend (no explicit routing id, or dedup off)";
    brk_key_t *k = NULL;
    if (h->o.key && !(k = brk_zap_client_key(b, h->o.key, 40)))
        return "its CURVE key is not allowed here (no CURVE, or not in --client-keys)";
    if (answered_before(b, h)) return "the query was answered already";
    brk_client_t *c = brk_client_adopt(b, BRK_SOCK_CLIENTS, h->o.client, h->o.client_n, k);
    if (!c) return "client table full";
    *cp = c;
    if (c->curve_key != k) return "its routing id has queries of another CURVE key";
    return NULL;
}

/* ---- workers' calls: a child job and the call it answers (a fanout, a sub-invocation) ---- */

/* Whether w (compared only: it may have been freed) is still registration seq. */
static bool worker_alive(const brk_t *b, const brk_worker_t *w, uint64_t seq) {
    for (const base_list_t *l = b->worker_list.next; l != &b->worker_list; l = l->next) {
        const brk_worker_t *x = base_container_of(l, brk_worker_t, link);
        if (x == w) return !x->dead && x->seq == seq;
    }
    return false;
}

/* Ends worker w's call `call` with an error (the worker's call ids are integers). */
static void call_error(brk_t *b, brk_worker_t *w, uint64_t call, const char *why) {
    char msg[240];
    proto_buf_t id;
    proto_buf_init(&id);
    msgpack_pack_uint64(&id.pk, call);
    snprintf(msg, sizeof msg, "the call's query was not adopted after the broker takeover: %s",
             why);
    if (!id.failed && proto_enc_error(&b->out, (proto_raw_t){id.p, id.n}, "worker_lost",
                                      msg) == 0)
        brk_worker_send(b, w, b->out.p, b->out.n);
    proto_buf_free(&id);
    char q[200];
    base_log(BASE_LOG_WARN, "call_not_adopted", "worker=%s call=%llu why=\"%s\"",
             base_log_str(q, sizeof q, w->name, w->name_len), (unsigned long long)call, why);
}

static wcall_t *wcall_find(struct brk_adopt *a, uint64_t caller, uint64_t call) {
    for (base_list_t *l = a->wcalls.next; l != &a->wcalls; l = l->next) {
        wcall_t *c = base_container_of(l, wcall_t, link);
        if (c->caller == caller && c->call == call) return c;
    }
    return NULL;
}

static void wcall_free(struct brk_adopt *a, wcall_t *c) {
    base_list_unlink(&c->link);
    a->n_wcalls--;
    free(c->query);
    free(c);
}

/* The calls w listed under its adopted job j: each waits for the child that answers it,
 * within the window and --max-queue (with the parked children); the others end now. */
static void calls_expect(brk_t *b, brk_worker_t *w, const brk_job_t *j, const held_t *h) {
    struct brk_adopt *a = b->adopt;
    size_t cur = 0, qcur = 0;
    proto_val_t v, q;
    while (h->has_calls && proto_val_next(&h->calls, &cur, &v) == 1) {
        uint64_t call;
        wcall_t *c = NULL;
        const char *why = NULL;
        /* its query, in the same place of call_queries (nil or absent: none) */
        bool has_q = h->has_queries && proto_val_next(&h->queries, &qcur, &q) == 1 &&
                     q.type == PROTO_V_BIN && q.len > 0 && q.len <= b->cfg.max_msg;
        if (!val_u64(&v, &call)) continue;
        if (!w->incarnation) why = "the calling worker's ready has no incarnation";
        else if (b->now >= a->until) why = "the adoption window was over when its caller came";
        else if (wcall_find(a, w->incarnation, call)) continue; /* listed twice: once */
        else if (a->n_wcalls + a->n_children >= b->cfg.max_queue)
            why = "too many calls and jobs wait to be linked (max-queue)";
        else if (!(c = malloc(sizeof *c))) why = "out of memory";
        if (why) {
            call_error(b, w, call, why);
            continue;
        }
        c->caller = w->incarnation;
        c->call = call;
        c->job = j->job_id;
        c->query = has_q ? malloc(q.len) : NULL; /* without it the call cannot run here */
        c->query_n = c->query ? q.len : 0;
        if (c->query) memcpy(c->query, q.data, q.len);
        base_list_push(&a->wcalls, &c->link);
        a->n_wcalls++;
    }
}

typedef enum { LINK_DONE, LINK_LATER, LINK_REFUSED } link_t;

/* Links h, a job w reported for a worker's call, to that call: adopted as a query of the
 * caller's connection now (its id the call's), and a sub-invocation under its parent's
 * invocation (the root's session lock). LINK_LATER: the caller has not listed the call yet
 * and the window is open. */
static link_t link_child(brk_t *b, brk_worker_t *w, held_t *h) {
    struct brk_adopt *a = b->adopt;
    wcall_t *wc = wcall_find(a, h->o.caller, h->o.call);
    if (!wc) {
        if (b->now < a->until) return LINK_LATER;
        if (h->done) { /* its answer was read before the takeover (or its caller is gone) */
            a->known++;
            base_log(BASE_LOG_DEBUG, "adopt_known", "job=%llu call=%llu",
                     (unsigned long long)h->r.job_id, (unsigned long long)h->o.call);
            return LINK_REFUSED;
        }
        refuse(b, w, h, "its caller did not list the call within the adoption window");
        return LINK_REFUSED;
    }
    brk_job_t *pj = brk_job_find(b, wc->job);
    const char *why = NULL;
    if (!pj || pj->answered || !pj->worker || pj->worker->dead) {
        why = "the job that made the call has ended";
        wcall_free(a, wc);
    } else if (h->o.parent && h->o.parent != pj->job_id) {
        why = "its parent is not the job that listed the call";
    } else if (!hosts(w, h->r.agent_name)) {
        why = "its agent is not one the worker announced";
    }
    brk_client_t *c = NULL;
    if (!why && !(c = brk_client_adopt(b, BRK_SOCK_WORKERS, pj->worker->id, pj->worker->idlen,
                                       pj->worker->key)))
        why = "client table full";
    else if (!why && c->curve_key != pj->worker->key)
        why = "its caller's routing id has queries of another CURVE key";
    h->r.req = false;
    h->r.resent = true; /* its caller waits: the answer goes to it, not remembered */
    brk_job_t *j = NULL;
    int rc = why ? 0 : brk_job_adopt(b, c, w, brk_agent_find(b, h->r.agent_name), &h->r, &j);
    if (rc)
        why = rc == -EEXIST ? "the job or its call is running already"
              : rc == -ENOSPC ? "job table full" : "out of memory";
    if (why) {
        if (c) brk_client_unadopt(b, c); /* freed if it has nothing in flight */
        refuse(b, w, h, why);
        return LINK_REFUSED;
    }
    wcall_free(a, wc);
    int irc = 0;
    if (h->o.parent) irc = brk_inv_adopt_child(b, j, pj);
    else if (h->r.session.n || h->invocation.n) /* a plain call with a session: a root */
        brk_inv_adopt(b, j, h->invocation, (proto_str_t){NULL, 0}, (proto_str_t){NULL, 0});
    a->adopted++;
    char q[200], cq[200], ag[80];
    base_log(BASE_LOG_INFO, "job_adopted", "worker=%s job=%llu agent=%s caller=%s call=%llu "
             "caller_job=%llu sub_invocation=%d", base_log_str(q, sizeof q, w->name, w->name_len),
             (unsigned long long)j->job_id,
             base_log_str(ag, sizeof ag, j->agent_name.p, j->agent_name.n),
             base_log_str(cq, sizeof cq, pj->worker->name, pj->worker->name_len),
             (unsigned long long)h->o.call, (unsigned long long)pj->job_id, h->o.parent != 0);
    if (irc) { /* the parent's invocation ended, or the sessions differ: it stops */
        brk_job_abort(b, j, "cancelled", irc == -EINVAL ? "a sub-invocation runs in its "
                      "parent's session" : "the invocation the parent belongs to has ended");
        return LINK_DONE;
    }
    calls_expect(b, w, j, h); /* its own calls: a fanout of fanouts */
    return LINK_DONE;
}

/* Parks h (entry e, on w) until its caller lists the call. */
static void child_park(brk_t *b, brk_worker_t *w, const proto_val_t *e, const held_t *h) {
    struct brk_adopt *a = b->adopt;
    pchild_t *p = NULL;
    if (a->n_wcalls + a->n_children >= b->cfg.max_queue ||
        !(p = calloc(1, sizeof *p + e->raw_n))) {
        refuse(b, w, h, "too many calls and jobs wait to be linked (max-queue), or out of "
               "memory");
        return;
    }
    p->w = w;
    p->w_seq = w->seq;
    p->job = h->r.job_id;
    p->caller = h->o.caller;
    p->call = h->o.call;
    p->entry_n = e->raw_n;
    memcpy(p->entry, e->raw, e->raw_n);
    p->counted = !h->done; /* it runs there: one of w's credits */
    if (p->counted) w->in_flight++;
    base_list_push(&a->children, &p->link);
    a->n_children++;
    base_log(BASE_LOG_DEBUG, "child_parked", "job=%llu call=%llu children=%llu",
             (unsigned long long)p->job, (unsigned long long)p->call,
             (unsigned long long)a->n_children);
}

bool brk_adopt_child_answer(brk_t *b, brk_worker_t *w, const proto_msg_t *m) {
    struct brk_adopt *a = b->adopt;
    if (!a || !a->n_children) return false;
    for (base_list_t *l = a->children.next; l != &a->children; l = l->next) {
        pchild_t *p = base_container_of(l, pchild_t, link);
        if (p->w != w || p->w_seq != w->seq || p->job != m->job) continue;
        if (m->type == PROTO_EVENT || p->answered) return true; /* not kept while parked */
        bool ok = m->type == PROTO_RESULT;
        size_t n = ok ? m->output.n : m->code.n + m->message.n;
        if (!(p->ans = malloc(n ? n : 1))) return true; /* its call ends at the window */
        if (ok) memcpy(p->ans, m->output.p, n);
        if (!ok && m->code.n) memcpy(p->ans, m->code.p, m->code.n);
        if (!ok && m->message.n) memcpy(p->ans + m->code.n, m->message.p, m->message.n);
        p->ans_n = n;
        p->code_n = ok ? 0 : m->code.n;
        p->ok = ok;
        p->answered = true;
        if (p->counted) { /* it ended: its credit is free again */
            p->counted = false;
            w->in_flight--;
            brk_worker_want_pump(b, w);
        }
        return true;
    }
    return false;
}

/* The answer that came while p was parked, now that its job exists. */
static void child_deliver(brk_t *b, brk_worker_t *w, const pchild_t *p) {
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = p->ok ? PROTO_RESULT : PROTO_ERROR;
    m.job = p->job;
    m.has_job = true;
    if (p->ok) {
        m.output = (proto_raw_t){p->ans, p->ans_n};
    } else {
        m.code = (proto_str_t){(const char *)p->ans, p->code_n};
        m.message = (proto_str_t){(const char *)p->ans + p->code_n, p->ans_n - p->code_n};
    }
    brk_job_from_worker(b, w, &m, p->ans_n);
}

/* Parked children whose call is listed now are linked, and once the window is over the
 * others are refused (cancelled). A link may list more calls (a fanout of fanouts): the
 * list is walked again until nothing changes. */
static void children_link(brk_t *b) {
    struct brk_adopt *a = b->adopt;
    bool again = true;
    while (again) {
        again = false;
        base_list_t *l = a->children.next;
        while (l != &a->children) {
            pchild_t *p = base_container_of(l, pchild_t, link);
            l = l->next;
            bool alive = worker_alive(b, p->w, p->w_seq);
            if (alive && !wcall_find(a, p->caller, p->call) && b->now < a->until) continue;
            base_list_unlink(&p->link); /* out first: linking may walk the list */
            a->n_children--;
            proto_val_t e;
            held_t h;
            if (alive && p->counted) p->w->in_flight--; /* linking counts it again */
            if (alive && proto_val_read(p->entry, p->entry_n, &e) == 0 &&
                held_read(b, &e, &h) == NULL && link_child(b, p->w, &h) == LINK_DONE) {
                if (p->answered) child_deliver(b, p->w, p);
                again = true;
            } else if (alive && p->counted) {
                brk_worker_want_pump(b, p->w);
            }
            free(p->ans);
            free(p);
        }
    }
}

/* Whether call c (its query decoded in m), which no worker reported, never ran: the old
 * active stored no provisional answer for it (it never sent its work on: it had it queued,
 * or never got the query; or it is idempotent and may run again), or the one it stored
 * names a work that the worker process it went to came back without (never reached). */
static bool call_never_ran(brk_t *b, const wcall_t *c, const proto_msg_t *m) {
    uint8_t key[BRK_CALL_KEY_LEN];
    size_t n;
    if (!b->dedup) return m->idempotent; /* nothing was marked: only what may run twice */
    call_key_of(key, c->caller);
    const uint8_t *body = brk_dedup_find(b->dedup, key, sizeof key, m->id.p, m->id.n, b->now,
                                         &n);
    return !body || never_reached(b, m->id, body, n, NULL);
}

/* A call no worker reported: run now, as if its caller (w, the connection it has now) had
 * just sent its query, when it never ran; else it ends worker_lost. */
static void call_unreported(brk_t *b, brk_worker_t *w, const wcall_t *c) {
    proto_msg_t m;
    proto_error_t err;
    uint64_t id = UINT64_MAX;
    brk_in_t in = {.sock = BRK_SOCK_WORKERS, .idlen = w->idlen, .body = c->query,
                   .n = c->query_n, .key = w->key, .fd = -1};
    memcpy(in.id, w->id, w->idlen);
    memset(&err, 0, sizeof err);
    bool query = c->query && proto_decode(in.body, in.n, &b->wlim, &m, &err) == 0 &&
                 m.type == PROTO_QUERY;
    if (query) {
        proto_val_t v;
        if (proto_val_read(m.id.p, m.id.n, &v) != 0 || !val_u64(&v, &id)) id = UINT64_MAX;
    }
    if (!query || id != c->call || !call_never_ran(b, c, &m)) {
        call_error(b, w, c->call, "no worker reported its query within the adoption window "
                   "(its worker was lost too, or its work never reached one)");
        return;
    }
    char q[200];
    base_log(BASE_LOG_INFO, "call_runs", "worker=%s call=%llu why=\"its query was never sent "
             "on to a worker\"", base_log_str(q, sizeof q, w->name, w->name_len),
             (unsigned long long)c->call);
    brk_client_request(b, &in, &m);
}

/* The window is over: parked children are cancelled; the calls no child answered run when
 * they never ran, and end worker_lost on their caller otherwise. */
static void calls_window_over(brk_t *b) {
    struct brk_adopt *a = b->adopt;
    a->refused_now = 0;
    children_link(b);
    while (!base_list_empty(&a->wcalls)) {
        wcall_t *c = base_container_of(a->wcalls.next, wcall_t, link);
        base_list_unlink(&c->link); /* out first: running it may walk the list */
        a->n_wcalls--;
        brk_job_t *pj = brk_job_find(b, c->job);
        if (pj && !pj->answered && pj->worker && !pj->worker->dead)
            call_unreported(b, pj->worker, c);
        free(c->query);
        free(c);
    }
}

static void adopt_one(brk_t *b, brk_worker_t *w, const proto_val_t *e) {
    held_t h;
    brk_client_t *c = NULL;
    const char *bad = held_read(b, e, &h);
    if (!bad && h.o.caller) { /* a worker's call: linked to it, or waits for its caller */
        if (link_child(b, w, &h) == LINK_LATER) child_park(b, w, e, &h);
        return;
    }
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
    parked_t *p = park_find(b->adopt, h.o.client, h.o.client_n, h.r.id, c->curve_key);
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
    calls_expect(b, w, j, &h); /* its pending calls wait for the jobs that answer them */
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
    children_link(b); /* a child listed before its caller's job in this ready */
    run_unreached(b, w);
    if (b->adopt->refused_now > REFUSED_LOGGED) {
        char q[200];
        base_log(BASE_LOG_WARN, "adopt_refused_more", "worker=%s refused=%llu",
                base_log_str(q, sizeof q, w->name, w->name_len),
                (unsigned long long)b->adopt->refused_now);
    }
}
