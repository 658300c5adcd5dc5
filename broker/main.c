/* broker/main.c: actor-broker's entry point: flags and the config file (same names: a line
 * `key = value` for each `--key value`; flags win over the file), the signal pipe that turns
 * SIGTERM/SIGINT into a drain, and the open/run/close sequence. */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRK_VERSION "0.1.0"

typedef enum { OPT_STR, OPT_PATH, OPT_U64, OPT_LEVEL, OPT_F64, OPT_BOOL } opt_kind_t;

typedef struct opt {
    const char *name;
    opt_kind_t kind;
    size_t off;
    uint64_t min, max;
    const char *help;
} opt_t;

#define U64(field, lo, hi, help) OPT_U64, offsetof(brk_config_t, field), lo, hi, help
static const opt_t opts[] = {
    {"clients", OPT_STR, offsetof(brk_config_t, clients_ep), 0, 0, "client ROUTER endpoint"},
    {"workers", OPT_STR, offsetof(brk_config_t, workers_ep), 0, 0, "worker ROUTER endpoint"},
    {"pub", OPT_STR, offsetof(brk_config_t, pub_ep), 0, 0, "bus PUB endpoint"},
    {"sub", OPT_STR, offsetof(brk_config_t, sub_ep), 0, 0, "bus SUB endpoint (publishers)"},
    {"max-msg", U64(max_msg, 256, 1ULL << 30, "bytes in one message")},
    {"max-queue", U64(max_queue, 0, UINT32_MAX, "queued queries, all agents, with those "
                      "waiting for a busy session")},
    {"fair-share-from", U64(fair_share_from, 0, 100, "percent of max-queue past which one "
                            "client (or CURVE key) may hold only its fair share (100: off)")},
    {"max-client-inflight", U64(max_client_inflight, 1, UINT32_MAX, "queries per client")},
    {"max-clients", U64(max_clients, 1, UINT32_MAX, "clients with queries in flight")},
    {"max-workers", U64(max_workers, 1, UINT32_MAX, "connected workers")},
    {"max-agent-hosts", U64(max_agent_hosts, 1, UINT32_MAX, "agents announced, summed over "
                            "workers (a worker past it is refused)")},
    {"max-jobs", U64(max_jobs, 1, UINT32_MAX, "jobs in every state, cancelling included")},
    {"heartbeat-ms", U64(heartbeat_ms, 10, 3600000, "heartbeat interval")},
    {"liveness", U64(liveness, 1, 1000, "heartbeats missed before a worker is lost")},
    {"max-retries", U64(max_retries, 0, 1000, "retries of an idempotent query")},
    {"poison-after", U64(poison_after, 0, 1000, "workers an idempotent query may lose "
                         "before it ends poisoned instead of retried (0 never)")},
    {"cancel-gone", U64(cancel_gone, 0, 1, "1: a client's disconnect cancels its queries in "
                        "flight (clients with an explicit routing id excepted)")},
    {"drain-ms", U64(drain_ms, 0, 3600000, "SIGTERM drain limit and cancel grace")},
    {"client-queue-bytes", U64(client_queue_bytes, 4096, 1ULL << 40, "bytes queued to one "
                               "client connection that reads too slowly; past it, messages "
                               "to it are dropped")},
    {"clients-queue-bytes", U64(clients_queue_bytes, 4096, 1ULL << 40, "bytes queued to all "
                                "client connections together")},
    {"max-reply", U64(max_reply, 4096, 1ULL << 30, "bytes of one session.get or status "
                      "reply; bigger ones are paged")},
    {"loop-slice-ms", U64(loop_slice_ms, 1, 1000, "time one socket's reads may take in one "
                          "loop pass before timers and heartbeats run")},
    {"log-level", OPT_LEVEL, offsetof(brk_config_t, log_level), 0, 0,
     "debug, info, warn, error or off"},
    {"log-bad-input", U64(log_bad_input, 0, 1000000, "log lines a second about bad input "
                          "(the rest are counted in one line)")},
    {"sessions", OPT_PATH, offsetof(brk_config_t, sessions), 0, 0,
     "SQLite session file, or a postgresql:// URL (default: sessions in memory, lost at "
     "exit)"},
    {"max-sessions", U64(max_sessions, 1, UINT32_MAX, "sessions in the store")},
    {"sessions-reserve-bytes", U64(sessions_reserve, 0, 1ULL << 40, "disk space kept beside "
                                   "the session file for session.delete on a full disk")},
    {"session-max-events", U64(session_max_events, 1, UINT32_MAX, "events one session keeps "
                               "(past it its oldest are dropped)")},
    {"session-max-bytes", U64(session_max_bytes, 1 << 20, 1ULL << 40, "bytes of the events "
                              "one session keeps (past it its oldest are dropped)")},
    {"curve-secret", OPT_PATH, offsetof(brk_config_t, curve_secret), 0, 0,
     "the broker's CURVE key pair file (actorctl keygen): encrypt and authenticate"},
    {"client-keys", OPT_PATH, offsetof(brk_config_t, client_keys), 0, 0,
     "allowlist of client public keys (SIGHUP rereads it)"},
    {"worker-keys", OPT_PATH, offsetof(brk_config_t, worker_keys), 0, 0,
     "allowlist of worker public keys (SIGHUP rereads it)"},
    {"pair", OPT_BOOL, offsetof(brk_config_t, pair), 0, 0,
     "one of an active/standby pair on --sessions postgresql://... (takes no value)"},
    {"lease-poll-ms", U64(lease_poll_ms, 10, 60000, "how often a standby tries for the lease")},
    {"adopt-window-ms", U64(adopt_window_ms, 0, 3600000, "after a takeover, how long a "
                            "resend of a query a worker may still run waits for that worker "
                            "(default 2 x liveness x heartbeat-ms)")},
    {"fence-ms", U64(fence_ms, 100, 600000, "an active whose store is unreachable this long "
                     "exits")},
    {"insecure", OPT_BOOL, offsetof(brk_config_t, insecure), 0, 0,
     "allow binding a non-loopback address without CURVE (takes no value)"},
    {"max-keys", U64(max_keys, 1, UINT32_MAX, "keys in one allowlist")},
    {"io-threads", U64(io_threads, 1, 64, "libzmq I/O threads (CURVE encrypts on them)")},
    {"max-session-waiters", U64(max_session_waiters, 0, UINT32_MAX,
                                "queries waiting for one busy session")},
    {"history-events", U64(history_events, 0, 10000, "session events an invocation's work "
                           "carries")},
    {"history-bytes", U64(history_bytes, 0, 1ULL << 30, "bytes of those events, at most")},
    {"dedup-window-ms", U64(dedup_window_ms, 0, 86400000,
                            "how long a resent query id gets its answer again (0: off)")},
    {"dedup-max", U64(dedup_max, 1, UINT32_MAX, "answers remembered for resent ids")},
    {"dedup-max-bytes", U64(dedup_max_bytes, 1024, 1ULL << 40, "bytes of those answers")},
    {"startup-grace-ms", U64(startup_grace_ms, 0, 3600000, "after start, how long queries for "
                             "agents no worker announced yet wait (default liveness x "
                             "heartbeat-ms)")},
    {"max-sub-bytes", U64(max_sub_bytes, 16, 1 << 20, "bytes of one bus subscription prefix "
                          "(a subscriber sending a longer one is disconnected)")},
    {"max-subs-per-peer", U64(max_subs_per_peer, 1, UINT32_MAX, "bus subscriptions one "
                              "connection holds (a subscriber past it is disconnected)")},
    {"max-subs", U64(max_subs, 1, UINT32_MAX, "bus subscriptions all connections hold "
                     "together (a subscriber past it is disconnected)")},
    {"metrics", OPT_STR, offsetof(brk_config_t, metrics_ep), 0, 0,
     "Prometheus /metrics endpoint, e.g. tcp://127.0.0.1:9464 (default: off)"},
    {"metrics-max-conns", U64(metrics_max_conns, 1, 4096, "scrapers connected at once (past "
                              "it the one waiting longest without a request is closed)")},
    {"metrics-idle-ms", U64(metrics_idle_ms, 10, 3600000, "a scraper that has not sent its "
                            "whole request by then is closed")},
    {"metrics-max-request", U64(metrics_max_request, 64, 1 << 20, "bytes of an HTTP head")},
    {"metrics-max-labels", U64(metrics_max_labels, 1, 65536, "agents and codes with series")},
    {"max-tasks-requests", U64(max_tasks_requests, 1, 65536, "tasks requests pending")},
    {"log-format", OPT_STR, offsetof(brk_config_t, log_format), 0, 0, "kv or json"},
    {"model-concurrency", U64(model_concurrency, 0, UINT32_MAX,
                              "model calls in flight per backend, all workers (0: no limit)")},
    {"model-rps", OPT_F64, offsetof(brk_config_t, model_rps), 0, 1000000,
     "model calls started per second per backend, all workers (0: no limit)"},
    {"model-burst", U64(model_burst, 1, 1000000, "model calls that may start at once")},
    {"model-tpm", U64(model_tpm, 0, UINT64_C(1000000000000),
                      "model tokens per minute per backend, all workers (0: no limit)")},
    {"model-max-waiters", U64(model_max_waiters, 1, UINT32_MAX,
                              "model calls waiting for the budget per backend")},
    {"model-max-backends", U64(model_max_backends, 1, 1000000,
                               "model backend names the budget tracks")},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

void brk_config_default(brk_config_t *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->clients_ep, sizeof c->clients_ep, "tcp://127.0.0.1:5555");
    snprintf(c->workers_ep, sizeof c->workers_ep, "tcp://127.0.0.1:5556");
    snprintf(c->pub_ep, sizeof c->pub_ep, "tcp://127.0.0.1:5557");
    snprintf(c->sub_ep, sizeof c->sub_ep, "tcp://127.0.0.1:5558");
    c->max_msg = 1 << 20;
    c->max_queue = 10000;
    c->fair_share_from = 50;
    c->max_client_inflight = 1000;
    c->max_clients = 10000;
    c->max_workers = 1024;
    c->max_jobs = 100000;
    c->max_agent_hosts = 65536;
    c->heartbeat_ms = 1000;
    c->liveness = 3;
    c->max_retries = 2;
    c->log_bad_input = 20;
    c->poison_after = 2;
    c->sessions_reserve = 8 << 20;
    c->cancel_gone = 1;
    c->drain_ms = 5000;
    c->loop_slice_ms = 20;
    c->client_queue_bytes = 16ULL << 20;
    c->clients_queue_bytes = 1ULL << 30;
    c->max_reply = 4ULL << 20;
    c->log_level = BASE_LOG_INFO;
    c->max_sessions = 100000;
    c->session_max_events = 10000;
    c->session_max_bytes = 64ULL << 20;
    c->lease_poll_ms = 200;
    c->fence_ms = 2000;
    c->adopt_window_ms = UINT64_MAX;
    c->max_keys = 10000;
    c->io_threads = 1;
    c->max_session_waiters = BRK_INV_DEFAULT_WAITERS;
    c->history_events = BRK_INV_DEFAULT_HISTORY_EVENTS;
    c->history_bytes = BRK_INV_DEFAULT_HISTORY_BYTES;
    c->dedup_window_ms = 60000;
    c->dedup_max = 100000;
    c->dedup_max_bytes = 64ULL << 20;
    c->startup_grace_ms = UINT64_MAX;
    c->metrics_max_conns = 16;
    c->max_sub_bytes = 1024;
    c->max_subs_per_peer = 64;
    c->max_subs = 8192;
    c->metrics_idle_ms = 5000;
    c->metrics_max_request = 8192;
    c->metrics_max_labels = 256;
    c->max_tasks_requests = 64;
    snprintf(c->log_format, sizeof c->log_format, "kv");
    c->model_burst = 1;
    c->model_max_waiters = 1024;
    c->model_max_backends = 1024;
}

static void usage(FILE *f) {
    fprintf(f, "usage: actor-broker [--config FILE] [--KEY VALUE ...]\n"
               "Routes 1/ABP queries from clients to workers (see proto/PROTOCOL.md).\n"
               "  --%-20s %s\n", "config FILE", "lines 'key = value' (flags win)");
    for (size_t i = 0; i < N_OPTS; i++) fprintf(f, "  --%-20s %s\n", opts[i].name, opts[i].help);
}

static const opt_t *opt_find(const char *name, size_t n) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == n && strncmp(opts[i].name, name, n) == 0) return &opts[i];
    return NULL;
}

/* Sets one option from text; where says where it came from, for the error. */
static int opt_set(brk_config_t *c, const opt_t *o, const char *v, const char *where) {
    char *p = (char *)c + o->off;
    if (o->kind == OPT_STR || o->kind == OPT_PATH) {
        size_t cap = o->kind == OPT_STR ? BRK_ENDPOINT_MAX : BRK_PATH_MAX;
        if (strlen(v) >= cap) goto bad;
        snprintf(p, cap, "%s", v);
        return 0;
    }
    if (o->kind == OPT_BOOL) {
        bool yes = !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1");
        if (!yes && strcmp(v, "false") && strcmp(v, "no") && strcmp(v, "0")) goto bad;
        *(bool *)(void *)p = yes;
        return 0;
    }
    if (o->kind == OPT_LEVEL) {
        int level = base_log_level_parse(v);
        if (level < 0) goto bad;
        *(int *)(void *)p = level;
        return 0;
    }
    char *end;
    errno = 0;
    if (o->kind == OPT_F64) { /* a rate: 0.5 is one call every two seconds */
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= (double)o->min && d <= (double)o->max)) goto bad;
        *(double *)(void *)p = d;
        return 0;
    }
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < o->min || x > o->max) goto bad;
    *(uint64_t *)(void *)p = x;
    return 0;
bad:
    fprintf(stderr, "actor-broker: %s: bad value '%s' for %s\n", where, v, o->name);
    return -1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int config_load(brk_config_t *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "actor-broker: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024], where[PATH_MAX + 32];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        snprintf(where, sizeof where, "%s:%u", path, no);
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line), *eq = strchr(s, '=');
        if (!*s) continue;
        if (!eq) {
            fprintf(stderr, "actor-broker: %s: expected 'key = value'\n", where);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const opt_t *o = opt_find(key, strlen(key));
        if (!o) {
            fprintf(stderr, "actor-broker: %s: unknown key '%s'\n", where, key);
            rc = -1;
        } else {
            rc = opt_set(c, o, val, where);
        }
    }
    fclose(f);
    return rc;
}

static int bad_arg(const char *arg) {
    fprintf(stderr, "actor-broker: bad argument '%s'\n", arg);
    usage(stderr);
    return -1;
}

/* Two passes: the config file first, wherever --config is, then the flags over it.
 * Returns: 0 to run, 1 to exit 0 (help, version), -1 on a usage error. */
static int parse_args(brk_config_t *c, int argc, char **argv) {
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i], *eq, *v;
            if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                usage(stdout);
                return 1;
            }
            if (!strcmp(a, "--version")) {
                printf("actor-broker %s\n", BRK_VERSION);
                return 1;
            }
            if (strncmp(a, "--", 2) != 0) return bad_arg(argv[i]);
            a += 2;
            eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a) : strlen(a);
            const opt_t *flag = opt_find(a, n);
            if (eq)
                v = eq + 1;
            else if (flag && flag->kind == OPT_BOOL)
                v = "true"; /* --insecure takes no value */
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return bad_arg(argv[i]);
            bool is_config = n == 6 && !strncmp(a, "config", 6);
            if (pass == 0 && is_config && config_load(c, v) != 0) return -1;
            if (pass == 0 || is_config) continue;
            const opt_t *o = opt_find(a, n);
            if (!o) return bad_arg(a - 2);
            if (opt_set(c, o, v, "command line") != 0) return -1;
        }
    }
    return 0;
}

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    char c = (char)sig;
    if (write(sig_pipe[1], &c, 1) < 0) { /* full pipe: a signal is already pending */
    }
    errno = saved;
}

static int signals_init(void) {
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ||
        sigaction(SIGHUP, &sa, NULL)) /* SIGHUP: reload the key allowlists */
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int main(int argc, char **argv) {
    brk_config_t cfg;
    brk_config_default(&cfg);
    int rc = parse_args(&cfg, argc, argv);
    if (rc != 0) return rc > 0 ? 0 : 2;
    base_log_set_stamp(true); /* the broker's key=value lines carry their time */
    base_log_set_level(cfg.log_level);
    if (base_log_format_parse(cfg.log_format) < 0) {
        fprintf(stderr, "actor-broker: bad value '%s' for log-format (kv or json)\n",
                cfg.log_format);
        return 2;
    }
    base_log_set_format(base_log_format_parse(cfg.log_format));
    if (brk_security_check(&cfg) != 0) return 2;
    brk_map_seed();
    if (signals_init() != 0) {
        base_log(BASE_LOG_ERROR, "signals_failed", "error=\"%s\"", strerror(errno));
        return 1;
    }
    brk_t b;
    rc = brk_open(&b, &cfg, sig_pipe[0]);
    if (rc == 0) {
        base_log(BASE_LOG_INFO, "started", "version=%s max_msg=%llu max_queue=%llu "
                 "heartbeat_ms=%llu liveness=%llu", BRK_VERSION,
                 (unsigned long long)cfg.max_msg, (unsigned long long)cfg.max_queue,
                 (unsigned long long)cfg.heartbeat_ms, (unsigned long long)cfg.liveness);
        rc = brk_run(&b);
    } else {
        rc = rc == -EINTR ? 0 : 1; /* -EINTR: a standby told to stop */
    }
    brk_close(&b);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return rc;
}
