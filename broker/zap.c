/* broker/zap.c: CURVE for the broker (zap.h): the allowlist files and their key objects, the
 * ZAP handler (RFC 27) on inproc://zeromq.zap.01 answered from the broker's own loop, the
 * SIGHUP reload, and the checks of the security flags. A peer's ZAP user id is its Z85 public
 * key, so each received message names the key it came under (zmq_msg_gets "User-Id"). */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/prom.h"
#include "base/keys.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_BATCH 64          /* requests per call, so a handshake storm cannot starve queries */
#define ZAP_FRAMES 8          /* a CURVE request has 7 */
#define DENY_LOG_PER_SEC 10   /* denial lines per second; the rest are counted */
#define LIST_LINE_MAX 1024

static const char *const domain_names[2] = {"clients", "workers"};

struct brk_zap {
    void *sock;               /* REP on ZAP_ENDPOINT */
    base_keypair_t kp;       /* the broker's own keys */
    brk_map_t lists[2];       /* z85 -> brk_key_t, per domain (brk_sock_t) */
    base_list_t all;           /* every key object, removed ones still referenced included */
    uint64_t allowed, denied;
    uint64_t refused;         /* messages under a removed key */
    uint64_t reloads[2];      /* SIGHUP rereads: [0] both loaded, [1] a list kept */
    int64_t log_second;       /* the second the denial budget counts in */
    unsigned logged, suppressed;
};

/* ---- endpoints and flags ---- */

/* The host part of scheme://host:port (brackets dropped), into out. */
static void endpoint_host(const char *ep, char *out, size_t cap) {
    const char *p = strstr(ep, "://");
    p = p ? p + 3 : ep;
    const char *semi = strchr(p, ';'); /* tcp://src;dst: the address is after ';' */
    if (semi) p = semi + 1;
    const char *colon = strrchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
        p++;
        n -= 2;
    }
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static bool is_ipv4_loopback(const char *h) {
    unsigned a, b, c, d;
    char end;
    return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

bool brk_endpoint_is_local(const char *ep) {
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) return true;
    char host[BRK_ENDPOINT_MAX];
    endpoint_host(ep, host, sizeof host);
    return is_ipv4_loopback(host) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

int brk_security_check(const brk_config_t *cfg) {
    const char *eps[4] = {cfg->clients_ep, cfg->workers_ep, cfg->pub_ep, cfg->sub_ep};
    bool curve = cfg->curve_secret[0] != '\0';
    if (!curve && (cfg->client_keys[0] || cfg->worker_keys[0])) {
        fprintf(stderr, "actor-broker: --client-keys and --worker-keys need --curve-secret\n");
        return -EINVAL;
    }
    if (curve && (!cfg->client_keys[0] || !cfg->worker_keys[0])) {
        fprintf(stderr, "actor-broker: --curve-secret needs both --client-keys and "
                        "--worker-keys (allowlists; an empty file allows nobody)\n");
        return -EINVAL;
    }
    if (curve && !zmq_has("curve")) {
        fprintf(stderr, "actor-broker: --curve-secret: this libzmq was built without CURVE "
                        "(zmq_has(\"curve\") is false); install a libzmq with libsodium\n");
        return -EINVAL;
    }
    for (int i = 0; i < 4 && !curve; i++) {
        if (brk_endpoint_is_local(eps[i])) continue;
        if (!cfg->insecure) {
            fprintf(stderr, "actor-broker: refusing to bind %s without encryption: it is not "
                            "a loopback address. Give --curve-secret with --client-keys and "
                            "--worker-keys (see actorctl keygen), or --insecure to allow "
                            "plaintext\n", eps[i]);
            return -EINVAL;
        }
        base_log(BASE_LOG_WARN, "insecure_bind", "endpoint=%s why=\"--insecure: plaintext and "
                 "no authentication on a non-loopback address\"", eps[i]);
    }
    /* /metrics is plain HTTP whatever CURVE does for the other sockets: off loopback it
     * always needs --insecure. */
    if (cfg->metrics_ep[0] && !brk_endpoint_is_local(cfg->metrics_ep)) {
        if (!cfg->insecure) {
            fprintf(stderr, "actor-broker: refusing to bind --metrics %s: it is not a loopback "
                            "address and /metrics is plain HTTP without authentication (CURVE "
                            "does not cover it). Give --insecure to allow it\n",
                    cfg->metrics_ep);
            return -EINVAL;
        }
        base_log(BASE_LOG_WARN, "insecure_bind", "endpoint=%s why=\"--insecure: /metrics is "
                 "plain HTTP on a non-loopback address\"", cfg->metrics_ep);
    }
    return 0;
}

/* ---- key objects ---- */

brk_key_t *brk_key_ref(brk_key_t *k) {
    if (k) k->refs++;
    return k;
}

void brk_key_unref(brk_t *b, brk_key_t **kp) {
    brk_key_t *k = *kp;
    (void)b;
    *kp = NULL;
    if (!k) return;
    BRK_ASSERT(k->refs > 0);
    if (--k->refs) return;
    base_list_unlink(&k->all);
    free(k);
}

/* ---- allowlist files ---- */

typedef struct parsed {
    char z85[41], name[BRK_KEY_NAME_MAX + 1];
    uint64_t max_inflight, max_msg;
    bool is_operator;
} parsed_t;

/* `max_inflight=N`, `max_msg=N` or `role=operator` into e; -1 when w is none of them (or N
 * is not a number). */
static int limit_word(char *w, parsed_t *e) {
    char *eq = strchr(w, '='), *end;
    if (!eq) return -1;
    *eq = '\0';
    if (!strcmp(w, "role")) {
        if (strcmp(eq + 1, "operator") != 0) return -1;
        e->is_operator = true;
        return 0;
    }
    uint64_t *dst = !strcmp(w, "max_inflight") ? &e->max_inflight
                    : !strcmp(w, "max_msg")    ? &e->max_msg
                                               : NULL;
    errno = 0;
    unsigned long long v = strtoull(eq + 1, &end, 10);
    if (!dst || errno || end == eq + 1 || *end || eq[1] == '-' || v == 0 || v > UINT32_MAX)
        return -1;
    *dst = v;
    return 0;
}

/* One line: KEY [NAME] [max_inflight=N] [max_msg=N] [role=operator]. Returns 1 with *e set,
 * 0 for a blank line, or -1 with why set. */
static int parse_line(char *line, parsed_t *e, const char **why) {
    char *save = NULL;
    base_key_strip_comment(line);
    char *w = strtok_r(line, " \t\r\n", &save);
    if (!w) return 0;
    memset(e, 0, sizeof *e);
    if (!base_key_is_z85(w, strlen(w))) {
        *why = "the first word is not a public key (40 Z85 characters)";
        return -1;
    }
    memcpy(e->z85, w, 41);
    while ((w = strtok_r(NULL, " \t\r\n", &save))) {
        if (strchr(w, '=')) {
            if (limit_word(w, e) == 0) continue;
            *why = "expected max_inflight=N or max_msg=N (N from 1 to 4294967295) or "
                   "role=operator";
            return -1;
        }
        if (e->name[0] || strlen(w) > BRK_KEY_NAME_MAX) {
            *why = "one name of at most 64 bytes after the key";
            return -1;
        }
        snprintf(e->name, sizeof e->name, "%s", w);
    }
    return 1;
}

static bool parsed_has(const parsed_t *v, size_t n, const char *z85) {
    for (size_t i = 0; i < n; i++)
        if (!memcmp(v[i].z85, z85, 40)) return true;
    return false;
}

/* Reads an allowlist into *out (malloc'd, *n entries). Duplicates are refused: a second line
 * for a key would make its limits ambiguous. Returns: 0. Errors: -EINVAL, -ENOMEM, -errno. */
static int list_load(const char *path, uint64_t max_keys, parsed_t **out, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        base_log(BASE_LOG_ERROR, "keys_failed", "file=%s error=\"%s\"", path, strerror(e));
        return -e;
    }
    size_t cap = 16;
    parsed_t *v = malloc(cap * sizeof *v);
    char line[LIST_LINE_MAX];
    const char *why = NULL;
    int rc = v ? 0 : -ENOMEM;
    *n = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        parsed_t e;
        int r = -1;
        /* A longer line would be read as two, its tail taken for a line of its own (a
         * commented-out key after a long comment would be allowed): refuse it instead. */
        if (!strchr(line, '\n') && !feof(f)) why = "the line is longer than 1022 bytes";
        else r = parse_line(line, &e, &why);
        if (r == 1 && parsed_has(v, *n, e.z85)) why = "the key is listed twice", r = -1;
        if (r == 1 && *n >= max_keys) why = "more keys than --max-keys", r = -1;
        if (r < 0) {
            base_log(BASE_LOG_ERROR, "keys_failed", "file=%s line=%u error=\"%s\"", path, no, why);
            rc = -EINVAL;
        } else if (r == 1) {
            parsed_t *g = *n == cap ? realloc(v, (cap *= 2) * sizeof *v) : v;
            if (!g) rc = -ENOMEM;
            else (v = g)[(*n)++] = e;
        }
    }
    fclose(f);
    if (rc) free(v);
    else *out = v;
    return rc;
}

static brk_key_t *key_find(brk_map_t *m, const char *z85) {
    brk_node_t *n = brk_map_get(m, z85, 40);
    return n ? base_container_of(n, brk_key_t, node) : NULL;
}

/* Installs entries as list d: a key kept keeps its object (and in-flight count) with the new
 * name and limits; a new key gets an object; a key gone is marked removed. */
static int list_install(brk_zap_t *z, int d, const parsed_t *v, size_t n, size_t *added,
                        size_t *removed) {
    brk_map_t fresh;
    if (brk_map_init(&fresh) != 0) return -ENOMEM;
    *added = *removed = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        brk_key_t *k = key_find(&z->lists[d], v[i].z85);
        if (k) {
            brk_map_del(&z->lists[d], &k->node);
        } else if ((k = calloc(1, sizeof *k))) {
            memcpy(k->z85, v[i].z85, 41);
            k->node.key = k->z85;
            k->node.klen = 40;
            k->refs = 1; /* the list's */
            k->domain = d;
            base_list_push(&z->all, &k->all);
            (*added)++;
        } else {
            rc = -ENOMEM; /* the keys not placed yet are treated as removed */
            break;
        }
        memcpy(k->name, v[i].name, sizeof k->name);
        k->max_inflight = v[i].max_inflight;
        k->max_msg = v[i].max_msg;
        k->is_operator = v[i].is_operator;
        brk_map_put(&fresh, &k->node);
    }
    brk_node_t *node;
    while ((node = brk_map_next(&z->lists[d], NULL))) {
        brk_key_t *k = base_container_of(node, brk_key_t, node);
        brk_map_del(&z->lists[d], node);
        k->removed = true;
        (*removed)++;
        brk_key_unref(NULL, &k);
    }
    brk_map_close(&z->lists[d]);
    z->lists[d] = fresh;
    return rc;
}

static int list_reload(brk_t *b, int d) {
    const char *path = d == BRK_SOCK_CLIENTS ? b->cfg.client_keys : b->cfg.worker_keys;
    parsed_t *v = NULL;
    size_t n = 0, added, removed;
    int rc = list_load(path, b->cfg.max_keys, &v, &n);
    if (rc == 0) rc = list_install(b->zap, d, v, n, &added, &removed);
    if (rc == 0)
        base_log(BASE_LOG_INFO, "keys_loaded", "domain=%s file=%s keys=%zu added=%zu removed=%zu",
                 domain_names[d], path, n, added, removed);
    free(v);
    return rc;
}

/* ---- open, close, sockets ---- */

bool brk_zap_on(const brk_t *b) { return b->zap != NULL; }

brk_key_t *brk_zap_client_key(brk_t *b, const char *z85, size_t n) {
    if (!b->zap || n != 40) return NULL;
    brk_key_t *k = key_find(&b->zap->lists[BRK_SOCK_CLIENTS], z85);
    return k && !k->removed ? k : NULL;
}
void *brk_zap_socket(brk_t *b) { return b->zap ? b->zap->sock : NULL; }

int brk_zap_open(brk_t *b) {
    if (!b->cfg.curve_secret[0]) return 0;
    brk_zap_t *z = calloc(1, sizeof *z);
    if (!z) return -ENOMEM;
    b->zap = z;
    base_list_init(&z->all);
    char err[300];
    int rc = base_keypair_load(b->cfg.curve_secret, &z->kp, err, sizeof err);
    if (rc) {
        base_log(BASE_LOG_ERROR, "curve_key_failed", "error=\"%s\"", err);
        return rc;
    }
    if (brk_map_init(&z->lists[0]) || brk_map_init(&z->lists[1])) return -ENOMEM;
    if ((rc = list_reload(b, BRK_SOCK_CLIENTS)) || (rc = list_reload(b, BRK_SOCK_WORKERS)))
        return rc;
    z->sock = zmq_socket(b->ctx, ZMQ_REP);
    if (!z->sock || zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        rc = -errno;
        base_log(BASE_LOG_ERROR, "zap_bind_failed", "error=\"%s\"", zmq_strerror(errno));
        return rc;
    }
    base_log(BASE_LOG_INFO, "curve_on", "public_key=%s", z->kp.public_);
    return 0;
}

void brk_zap_close(brk_t *b) {
    brk_zap_t *z = b->zap;
    if (!z) return;
    if (z->sock) {
        int zero = 0;
        zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(z->sock);
    }
    for (int d = 0; d < 2; d++) brk_map_close(&z->lists[d]);
    while (!base_list_empty(&z->all)) { /* clients are gone: free what they still held too */
        brk_key_t *k = base_container_of(z->all.next, brk_key_t, all);
        base_list_unlink(&k->all);
        free(k);
    }
    memset(&z->kp, 0, sizeof z->kp);
    free(z);
    b->zap = NULL;
}

int brk_zap_secure(brk_t *b, void *sock, const char *domain) {
    if (!b->zap) return 0;
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->zap->kp.secret, 41) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)))
        return -errno;
    return 0;
}

/* ---- the ZAP handler ---- */

static bool frame_is(zmq_msg_t *f, const char *s) {
    size_t n = strlen(s);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

static void log_denied(brk_t *b, const char *domain, zmq_msg_t *addr, const char *key,
                       const char *why) {
    brk_zap_t *z = b->zap;
    int64_t sec = b->now / 1000;
    if (sec != z->log_second) {
        if (z->suppressed)
            base_log(BASE_LOG_WARN, "zap_denied_suppressed", "count=%u", z->suppressed);
        z->log_second = sec;
        z->logged = z->suppressed = 0;
    }
    if (z->logged++ >= DENY_LOG_PER_SEC) {
        z->suppressed++;
        return;
    }
    char a[80];
    base_log(BASE_LOG_WARN, "zap_denied", "domain=%s address=%s key=%s why=\"%s\"", domain,
             base_log_str(a, sizeof a, zmq_msg_data(addr), zmq_msg_size(addr)), key, why);
}

/* Decides one request: frames [version][request id][domain][address][identity][mechanism]
 * [credentials...]. Sets user (the Z85 key) when allowed. Returns the status text, NULL ok. */
static const char *decide(brk_t *b, zmq_msg_t *f, size_t nf, size_t total, char *user,
                          int *dom) {
    if (total < 6 || nf < 6 || !frame_is(&f[0], "1.0")) return "malformed ZAP request";
    int d = *dom = frame_is(&f[2], "clients") ? 0 : frame_is(&f[2], "workers") ? 1 : -1;
    if (d < 0) return "unknown ZAP domain";
    if (!frame_is(&f[5], "CURVE")) return "only CURVE is accepted";
    if (total != 7 || nf != 7 || zmq_msg_size(&f[6]) != 32) return "malformed CURVE credentials";
    zmq_z85_encode(user, zmq_msg_data(&f[6]), 32);
    if (!key_find(&b->zap->lists[d], user))
        return d == 0 ? "key not in --client-keys" : "key not in --worker-keys";
    return NULL;
}

static void reply(void *sock, zmq_msg_t *reqid, const char *code, const char *text,
                  const char *user) {
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    if (reqid) zmq_send(sock, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    else zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, code, 3, ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0); /* metadata: none */
}

bool brk_zap_serve(brk_t *b) {
    brk_zap_t *z = b->zap;
    if (!z) return false;
    for (int k = 0; k < ZAP_BATCH; k++) {
        zmq_msg_t f[ZAP_FRAMES];
        size_t nf, total = brk_recv_frames(z->sock, f, ZAP_FRAMES, &nf);
        if (total == 0) return false;
        char user[41] = "";
        int d = -1;
        const char *why = decide(b, f, nf, total, user, &d);
        if (why) {
            z->denied++;
            log_denied(b, d >= 0 ? domain_names[d] : "?", nf > 3 ? &f[3] : &f[0],
                       user[0] ? user : "-", why);
            reply(z->sock, nf > 1 ? &f[1] : NULL, "400", why, "");
        } else {
            z->allowed++;
            reply(z->sock, &f[1], "200", "OK", user);
        }
        for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]);
    }
    return true;
}

/* ---- lookups and reload ---- */

brk_key_t *brk_zap_key(brk_t *b, int sock, zmq_msg_t *frame) {
    if (!b->zap) return NULL;
    const char *uid = zmq_msg_gets(frame, "User-Id");
    if (!uid || strlen(uid) != 40) return NULL;
    return key_find(&b->zap->lists[sock], uid);
}

/* Ends the queries of every client whose key a reload removed. */
static void drop_removed_clients(brk_t *b) {
    size_t n = 0, cap = b->n_clients;
    brk_client_t **v = cap ? malloc(cap * sizeof *v) : NULL;
    if (!v) return;
    for (brk_node_t *node = brk_map_next(&b->client_map, NULL); node && n < cap;
         node = brk_map_next(&b->client_map, node)) {
        brk_client_t *c = base_container_of(node, brk_client_t, node);
        if (c->curve_key && c->curve_key->removed) v[n++] = c;
    }
    for (size_t i = 0; i < n; i++)
        brk_client_drop(b, v[i], "unauthorized", "the client's key was removed from the "
                        "allowlist");
    if (n) base_log(BASE_LOG_INFO, "keys_clients_dropped", "clients=%zu", n);
    free(v);
}

int brk_zap_reload(brk_t *b) {
    if (!b->zap) {
        base_log(BASE_LOG_INFO, "reload", "what=nothing why=\"no --curve-secret\"");
        return 0;
    }
    int rc1 = list_reload(b, BRK_SOCK_CLIENTS), rc2 = list_reload(b, BRK_SOCK_WORKERS);
    if (rc1) base_log(BASE_LOG_ERROR, "keys_kept", "domain=clients why=\"the file did not load\"");
    if (rc2) base_log(BASE_LOG_ERROR, "keys_kept", "domain=workers why=\"the file did not load\"");
    drop_removed_clients(b);
    b->zap->reloads[rc1 || rc2 ? 1 : 0]++;
    return rc1 ? rc1 : rc2;
}

void brk_zap_count_refused(brk_t *b) {
    if (b->zap) b->zap->refused++;
}

void brk_zap_metrics(brk_t *b, base_buf_t *o) {
    brk_zap_t *z = b->zap;
    if (!z) return;
    const char *hs = "actorbus_broker_curve_handshakes_total";
    const char *keys = "actorbus_broker_curve_keys";
    const char *rl = "actorbus_broker_curve_reloads_total";
    base_prom_family(o, hs, "counter", "CURVE handshakes the ZAP handler answered, by result.");
    base_prom_u64(o, hs, "result=\"allowed\"", z->allowed);
    base_prom_u64(o, hs, "result=\"denied\"", z->denied);
    base_prom_family(o, keys, "gauge", "Keys in each allowlist (ZAP domain).");
    base_prom_u64(o, keys, "domain=\"clients\"", z->lists[BRK_SOCK_CLIENTS].n);
    base_prom_u64(o, keys, "domain=\"workers\"", z->lists[BRK_SOCK_WORKERS].n);
    base_prom_family(o, rl, "counter", "SIGHUP rereads of the allowlists, by result.");
    base_prom_u64(o, rl, "result=\"loaded\"", z->reloads[0]);
    base_prom_u64(o, rl, "result=\"kept\"", z->reloads[1]);
    base_prom_family(o, "actorbus_broker_curve_refused_messages_total", "counter",
                      "Messages refused because their key left the allowlist after connecting.");
    base_prom_u64(o, "actorbus_broker_curve_refused_messages_total", "", z->refused);
}
