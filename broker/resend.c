/* broker/resend.c: the broker's use of dedup.h. A client with an explicit routing id that
 * resends a query id gets the answer it was sent before (from memory, or from the --sessions
 * file after a restart); clients.c calls replay before admission and broker_jobs.c remembers each
 * terminal message as it goes out. Attaching a resend to a query still running is clients.c's. */
#include "broker.h"

#include <stdio.h>
#include <string.h>

int brk_dedup_start(brk_t *b) {
    brk_dedup_limits_t lim = {.window_ms = b->cfg.dedup_window_ms, .max = b->cfg.dedup_max,
                              .max_bytes = b->cfg.dedup_max_bytes};
    char why[512] = "", q[600];
    int rc = brk_dedup_open(&b->dedup, &lim, b->cfg.sessions, b->now, base_unix_ms(), why,
                            sizeof why);
    if (rc) {
        base_log(BASE_LOG_ERROR, "dedup_failed", "error=%s",
                 base_log_str(q, sizeof q, why, strlen(why)));
        return rc;
    }
    base_log(BASE_LOG_INFO, "dedup", "window_ms=%llu max=%llu max_bytes=%llu loaded=%zu",
             (unsigned long long)lim.window_ms, (unsigned long long)lim.max,
             (unsigned long long)lim.max_bytes, brk_dedup_count(b->dedup));
    return 0;
}

/* What an answer is remembered under: the socket byte and routing id (the client's key in
 * the client table), then the client's CURVE key when there is one, so that an answer is
 * replayed only to the key it was meant for. Returns the length. */
static size_t dedup_key(uint8_t *out, const uint8_t *ckey, size_t ckeylen, const brk_key_t *k) {
    memcpy(out, ckey, ckeylen);
    if (!k) return ckeylen;
    memcpy(out + ckeylen, k->z85, 40);
    return ckeylen + 40;
}

bool brk_dedup_replay(brk_t *b, const brk_in_t *in, proto_raw_t id) {
    if (in->sock != BRK_SOCK_CLIENTS || !brk_dedup_eligible(b->dedup, in->id, in->idlen))
        return false;
    uint8_t ckey[1 + BRK_MAX_IDENTITY], key[1 + BRK_MAX_IDENTITY + 40];
    ckey[0] = (uint8_t)in->sock;
    memcpy(ckey + 1, in->id, in->idlen);
    size_t n, kn = dedup_key(key, ckey, in->idlen + 1, in->key);
    const uint8_t *body = brk_dedup_find(b->dedup, key, kn, id.p, id.n, b->now, &n);
    if (!body) return false;
    /* Just after a takeover the provisional answer may be about a query a worker still runs
     * and has not reported yet: the resend waits for it (adopt.c). */
    brk_resend_t r = b->adopt ? brk_adopt_resend(b, in, id, body, n, key, kn)
                              : BRK_RESEND_ANSWER;
    if (r == BRK_RESEND_PARKED) return true;
    if (r == BRK_RESEND_RUN) { /* it never reached a worker: the caller runs it */
        brk_dedup_forget(b->dedup, key, kn, id.p, id.n);
        return false;
    }
    int rc = brk_send(b, in->sock, in->id, in->idlen, in->req, body, n);
    char peer[2 * BRK_MAX_IDENTITY + 1];
    base_log(BASE_LOG_DEBUG, "query_replayed", "peer=%s bytes=%zu errno=%d",
             base_log_hex(peer, sizeof peer, in->id, in->idlen), n, rc < 0 ? -rc : 0);
    return true;
}

/* The provisional answer of a running query that is not idempotent. Its message names the
 * worker process the work went to (adopt.c: if that process comes back without the query, it
 * never got it); the name last, so that any name reads back. */
#define MARKER_TEXT "the broker running this query was lost (restart or takeover) and it is " \
                    "not idempotent: not run again"
#define MARKER_SENT " [sent to connection "
#define MARKER_NTH " as work "
#define MARKER_INC " of incarnation "
#define MARKER_OF " of worker "
#define MARKER_MAX (sizeof MARKER_TEXT + sizeof MARKER_SENT + 20 + sizeof MARKER_NTH + 20 + \
                    sizeof MARKER_INC + 16 + sizeof MARKER_OF + BRK_MAX_NAME + 2)

static int enc_marker(proto_buf_t *o, proto_raw_t id, const brk_worker_t *w) {
    char msg[MARKER_MAX];
    if (!w || !w->incarnation || !w->conn)
        return proto_enc_error(o, id, "worker_lost", MARKER_TEXT);
    snprintf(msg, sizeof msg, "%s%s%llu%s%llu%s%016llx%s%.*s]", MARKER_TEXT, MARKER_SENT,
             (unsigned long long)w->conn, MARKER_NTH, (unsigned long long)w->works_sent + 1,
             MARKER_INC, (unsigned long long)w->incarnation, MARKER_OF, (int)w->name_len,
             w->name);
    return proto_enc_error(o, id, "worker_lost", msg);
}

/* The message of a marker for id, or false. Checks every other byte by encoding it again. */
static bool marker_message(proto_raw_t id, const uint8_t *body, size_t n, proto_str_t *msg) {
    proto_val_t m, v;
    if (proto_val_read(body, n, &m) != 0 || m.type != PROTO_V_MAP ||
        proto_val_map_get(&m, "message", &v) != 1 || v.type != PROTO_V_STR ||
        v.len < sizeof MARKER_TEXT - 1 || memcmp(v.data, MARKER_TEXT, sizeof MARKER_TEXT - 1))
        return false;
    char text[MARKER_MAX];
    if (v.len >= sizeof text) return false;
    memcpy(text, v.data, v.len);
    text[v.len] = 0;
    proto_buf_t o;
    proto_buf_init(&o);
    bool same = proto_enc_error(&o, id, "worker_lost", text) == 0 && o.n == n &&
                memcmp(o.p, body, n) == 0;
    proto_buf_free(&o);
    *msg = (proto_str_t){(const char *)v.data, v.len};
    return same;
}

bool brk_dedup_is_marker(proto_raw_t id, const uint8_t *body, size_t n) {
    proto_str_t msg;
    return marker_message(id, body, n, &msg);
}

/* Reads what follows s at *p: true with *p past it. */
static bool skip(const char **p, const char *end, const char *s) {
    size_t n = strlen(s);
    if ((size_t)(end - *p) < n || memcmp(*p, s, n) != 0) return false;
    *p += n;
    return true;
}

/* A decimal number at *p (1 to 20 digits): true with *p past it. */
static bool number(const char **p, const char *end, uint64_t *v) {
    int digits = 0;
    *v = 0;
    for (; *p < end && **p >= '0' && **p <= '9' && digits < 20; (*p)++, digits++)
        *v = *v * 10 + (uint64_t)(**p - '0');
    return digits > 0;
}

bool brk_dedup_marker_worker(proto_raw_t id, const uint8_t *body, size_t n, brk_sent_to_t *to) {
    proto_str_t msg;
    if (!marker_message(id, body, n, &msg)) return false;
    const char *p = msg.p + sizeof MARKER_TEXT - 1, *end = msg.p + msg.n;
    uint64_t v = 0;
    if (!skip(&p, end, MARKER_SENT) || !number(&p, end, &to->conn) ||
        !skip(&p, end, MARKER_NTH) || !number(&p, end, &to->nth) ||
        !skip(&p, end, MARKER_INC) || end - p < 16)
        return false;
    for (const char *h = p + 16; p < h; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    if (!skip(&p, end, MARKER_OF) || end - p < 2 || end[-1] != ']') return false;
    size_t nn = (size_t)(end - 1 - p);
    if (nn >= sizeof to->name || v == 0 || to->conn == 0 || to->nth == 0) return false;
    memcpy(to->name, p, nn);
    to->name[nn] = 0;
    to->name_len = nn;
    to->inc = v;
    return true;
}

void brk_dedup_mark_running(brk_t *b, const brk_client_t *c, proto_raw_t id,
                            const brk_worker_t *w) {
    uint8_t key[1 + BRK_MAX_IDENTITY + 40];
    size_t kn;
    if (c->sock == BRK_SOCK_WORKERS) { /* a worker's call, in a pair: by caller process */
        if (!b->adopt || !(kn = brk_adopt_call_key(b, c, key))) return;
    } else {
        if (!brk_dedup_eligible(b->dedup, c->key + 1, c->keylen - 1)) return;
        kn = dedup_key(key, c->key, c->keylen, c->curve_key);
    }
    proto_buf_t o;
    proto_buf_init(&o);
    int rc = enc_marker(&o, id, w);
    if (rc == 0)
        rc = brk_dedup_put_durable(b->dedup, key, kn, id.p, id.n, o.p, o.n, base_unix_ms());
    if (rc < 0) base_log(BASE_LOG_WARN, "dedup_put_failed", "errno=%d what=running", -rc);
    proto_buf_free(&o);
}

void brk_dedup_remember(brk_t *b, const brk_client_t *c, proto_raw_t id, const uint8_t *body,
                        size_t n) {
    if (c->sock != BRK_SOCK_CLIENTS || !brk_dedup_eligible(b->dedup, c->key + 1, c->keylen - 1))
        return;
    uint8_t key[1 + BRK_MAX_IDENTITY + 40];
    size_t kn = dedup_key(key, c->key, c->keylen, c->curve_key);
    int rc = brk_dedup_put(b->dedup, key, kn, id.p, id.n, body, n, b->now, base_unix_ms());
    static uint64_t failed; /* logged at the 1st, 2nd, 4th, 8th... failure: a full disk
                               fails every answer, and the log must not fill it further */
    if (rc < 0) failed++;
    if (rc < 0 && (failed & (failed - 1)) == 0) {
        char q[300];
        const char *e = brk_dedup_error(b->dedup);
        base_log(BASE_LOG_ERROR, "answer_not_saved", "errno=%d bytes=%zu failed=%llu error=%s "
                 "why=\"kept in memory only: after a restart a resend of its id runs again\"",
                 -rc, n, (unsigned long long)failed, base_log_str(q, sizeof q, e, strlen(e)));
    }
}
