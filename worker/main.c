/* main.c: actor-worker's command line and signals. Parses the flags, loads the built-in
 * plugin and every --plugin, then runs the worker on a libactor loop; SIGTERM or SIGINT start
 * a drain, a second one cuts it short. Exit: 0 after a drain, 1 on a failure, 2 on bad usage. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "worker.h"
#include "agent/runtime.h"

static const char usage[] =
    "usage: actor-worker [options]\n"
    "Hosts agents for an actorbus broker: connects to its worker endpoint, announces the\n"
    "agents of the built-in plugin (echo, sleep, fanout) and of every --plugin, and runs\n"
    "their jobs as cooperative tasks.\n"
    "\n"
    "  --broker ENDPOINT   the broker's worker endpoint (default tcp://127.0.0.1:5556);\n"
    "                      repeat it (or give A,B) for a broker pair: the worker talks to\n"
    "                      whichever is active\n"
    "  --capacity N        jobs run at once (default 16)\n"
    "  --name NAME         name announced to the broker (default worker-<host>-<pid>)\n"
    "  --plugin PATH.so    load a plugin (repeatable)\n"
    "  --agents FILE       agents, models, MCP servers and tools as JSON (see\n"
    "                      worker/agent/README.md); a bad file stops the worker\n"
    "  --heartbeat-ms MS   heartbeat interval, sent in ready: the broker goes by it (default 1000)\n"
    "  --liveness N        heartbeats of silence before reconnecting (default 3)\n"
    "  --drain-ms MS       on SIGTERM, how long running jobs may finish (default 5000)\n"
    "  --max-lent N        slots that jobs waiting on their sub-queries lend to other work\n"
    "                      (the broker sees capacity + waiting jobs, at most N more), so\n"
    "                      nested agents cannot hold every slot (default 1024; 0 off)\n"
    "  --max-held N        jobs kept running across a broker takeover and reported in ready\n"
    "                      (a pair), running or answered (default 1024; 0: none)\n"
    "  --max-held-bytes N  bytes of answers kept while no broker is connected, and of those\n"
    "                      sent within the liveness (reported again) (default 64 MiB)\n"
    "  --max-held-report N bytes of that report in ready, inputs at most half (262144;\n"
    "                      keep it under the broker's --max-msg)\n"
    "  --watchdog-ms MS    a task that holds the loop this long (never yields) is logged\n"
    "                      with its stack and the process exits 70 for its supervisor to\n"
    "                      restart it (default 60000; 0 off). With systemd's\n"
    "                      WatchdogSec (NOTIFY_SOCKET) it also sends READY=1 and WATCHDOG=1\n"
    "  --log-level LEVEL   debug, info, warn or error (default info)\n"
    "  --log-format FMT    kv (key=value lines, the default) or json (one object a line)\n"
    "  --metrics ENDPOINT  serve Prometheus text at GET /metrics, e.g.\n"
    "                      tcp://127.0.0.1:9465 (default: off)\n"
    "  --metrics-max-conns N    scrapers connected at once; past it the one waiting longest\n"
    "                           without a whole request is closed (default 16)\n"
    "  --metrics-idle-ms MS     a scraper without a whole request by then is closed\n"
    "                           (default 10000)\n"
    "  --metrics-max-request N  bytes of one HTTP request head (default 8192)\n"
    "  --metrics-max-labels N   error codes with series of their own (default 256)\n"
    "  --curve-server-key K  the broker's public key (FILE or Z85): connect with CURVE\n"
    "  --curve-key FILE    this worker's key pair file (actorctl keygen; its public key\n"
    "                      must be in the broker's --worker-keys)\n"
    "  -h, --help          this text\n";

typedef struct opts {
    wrk_config_t cfg;
    const char **plugins;
    size_t n_plugins;
    char brokers[1024];        /* --broker, repeated: joined with commas */
    size_t n_brokers;
    const char *agents;
    act_log_level_t level;
    char name[160];
    const char *curve_server, *curve_key; /* --curve-server-key, --curve-key */
} opts;

static int bad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "actor-worker: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry 'actor-worker --help'.\n");
    return 2;
}

/* Parses a whole decimal number in [lo, hi]. */
static int number(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char range[64];
        snprintf(range, sizeof range, "an integer from %lld to %lld", (long long)lo,
                 (long long)hi);
        fprintf(stderr, "actor-worker: %s wants %s, got '%s'\n", flag, range, s);
        return 2;
    }
    *out = v;
    return 0;
}

static int level_of(const char *s, act_log_level_t *out) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (act_log_level_t)i;
            return 0;
        }
    }
    return bad("--log-level wants debug, info, warn or error, got '%s'%s", s, "");
}

/* Loads the CURVE keys the flags name. A worker's key must be in the broker's allowlist, so
 * unlike actorctl it never makes an ephemeral one. Returns: 0, 1 or 2 (exit status). */
static int curve_setup(opts *o) {
    char err[300];
    if (!o->curve_server && !o->curve_key) return 0;
    if (!o->curve_server || !o->curve_key)
        return bad("--curve-server-key and --curve-key go together%s%s", "", "");
    if (!zmq_has("curve")) {
        fprintf(stderr, "actor-worker: this libzmq was built without CURVE (zmq_has(\"curve\") "
                        "is false); install a libzmq with libsodium\n");
        return 1;
    }
    if (base_key_public_load(o->curve_server, o->cfg.curve_server, err, sizeof err) != 0 ||
        base_keypair_load(o->curve_key, &o->cfg.curve_kp, err, sizeof err) != 0) {
        fprintf(stderr, "actor-worker: %s\n", err);
        return 1;
    }
    o->cfg.curve = true;
    return 0;
}

static int parse(int argc, char **argv, opts *o) {
    static const struct option longs[] = {
        {"broker", 1, 0, 'b'},       {"capacity", 1, 0, 'c'}, {"name", 1, 0, 'n'},
        {"plugin", 1, 0, 'p'},       {"heartbeat-ms", 1, 0, 'H'}, {"liveness", 1, 0, 'L'},
        {"drain-ms", 1, 0, 'd'},     {"log-level", 1, 0, 'l'}, {"help", 0, 0, 'h'},
        {"agents", 1, 0, 'a'},
        {"log-format", 1, 0, 'F'},   {"metrics", 1, 0, 'M'},   {"metrics-max-conns", 1, 0, 'C'},
        {"metrics-max-request", 1, 0, 'R'}, {"metrics-max-labels", 1, 0, 'B'},
        {"metrics-idle-ms", 1, 0, 'I'},
        {"curve-server-key", 1, 0, 'K'}, {"curve-key", 1, 0, 'k'},
        {"max-lent", 1, 0, 'm'},     {"watchdog-ms", 1, 0, 'W'},
        {"max-held", 1, 0, 'j'},     {"max-held-bytes", 1, 0, 'J'},
        {"max-held-report", 1, 0, 'r'},
        {0, 0, 0, 0}};
    int64_t v = 0;
    int c, rc = 0;
    o->plugins = calloc((size_t)argc, sizeof(*o->plugins));
    if (!o->plugins) return 1;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (c) {
        case 'b': /* repeatable: a broker pair's endpoints, joined with commas */
            if (o->n_brokers++ == 0) snprintf(o->brokers, sizeof o->brokers, "%s", optarg);
            else if (strlen(o->brokers) + strlen(optarg) + 2 <= sizeof o->brokers)
                strcat(strcat(o->brokers, ","), optarg);
            else return bad("--broker: the endpoints are over %s bytes%s", "1023", "");
            o->cfg.broker = o->brokers;
            break;
        case 'n': o->cfg.name = optarg; break;
        case 'p': o->plugins[o->n_plugins++] = optarg; break;
        case 'a': o->agents = optarg; break;
        case 'c':
            rc = number("--capacity", optarg, 1, 100000, &v);
            o->cfg.capacity = (uint64_t)(rc ? 0 : v);
            break;
        case 'H': rc = number("--heartbeat-ms", optarg, 10, 3600000, &o->cfg.heartbeat_ms); break;
        case 'L': rc = number("--liveness", optarg, 1, 1000, &o->cfg.liveness); break;
        case 'd': rc = number("--drain-ms", optarg, 0, 86400000, &o->cfg.drain_ms); break;
        case 'm':
            rc = number("--max-lent", optarg, 0, 1000000, &v);
            o->cfg.max_lent = (uint64_t)(rc ? 0 : v);
            break;
        case 'W': rc = number("--watchdog-ms", optarg, 0, 86400000, &o->cfg.watchdog_ms); break;
        case 'j':
            rc = number("--max-held", optarg, 0, 100000, &v);
            o->cfg.max_held = (uint64_t)(rc ? 0 : v);
            break;
        case 'J':
            rc = number("--max-held-bytes", optarg, 0, (int64_t)1 << 40, &v);
            o->cfg.max_held_bytes = (uint64_t)(rc ? 0 : v);
            break;
        case 'r':
            rc = number("--max-held-report", optarg, 0, 1 << 30, &v);
            o->cfg.max_held_report = (uint64_t)(rc ? 0 : v);
            break;
        case 'l': rc = level_of(optarg, &o->level); break;
        case 'F':
            if (strcmp(optarg, "kv") && strcmp(optarg, "json"))
                return bad("--log-format wants kv or json, got '%s'%s", optarg, "");
            act_log_set_format(strcmp(optarg, "json") ? ACT_LOG_FORMAT_KV : ACT_LOG_FORMAT_JSON);
            break;
        case 'M': o->cfg.metrics = optarg; break;
        case 'C':
            rc = number("--metrics-max-conns", optarg, 1, 4096, &v);
            o->cfg.metrics_max_conns = (uint64_t)v;
            break;
        case 'R':
            rc = number("--metrics-max-request", optarg, 64, 1 << 20, &v);
            o->cfg.metrics_max_request = (uint64_t)v;
            break;
        case 'B':
            rc = number("--metrics-max-labels", optarg, 1, 65536, &v);
            o->cfg.metrics_max_labels = (uint64_t)v;
            break;
        case 'I':
            rc = number("--metrics-idle-ms", optarg, 10, 3600000, &v);
            o->cfg.metrics_idle_ms = (uint64_t)v;
            break;
        case 'K': o->curve_server = optarg; break;
        case 'k': o->curve_key = optarg; break;
        case 'h': fputs(usage, stdout); return -1;
        case ':': return bad("%s needs a value%s", argv[optind - 1], "");
        default: return bad("unknown option '%s'%s", argv[optind - 1], "");
        }
    }
    if (rc == 0 && optind < argc) return bad("unexpected argument '%s'%s", argv[optind], "");
    if (rc == 0) rc = curve_setup(o);
    if (rc == 0 && (!*o->cfg.name || strlen(o->cfg.name) > PROTO_MAX_NAME)) {
        return bad("--name wants 1 to 128 bytes, got '%s'%s", o->cfg.name, "");
    }
    return rc;
}

/* The --agents file, after the plugins: it may compose their agents and tools. */
static int load_agents(abp_host_t *h, const char *path) {
    char err[512];
    size_t before = h->n_agents;
    h->open = true;
    int rc = agt_config_load_file(h, path, err, sizeof err);
    h->open = false;
    if (rc) {
        fprintf(stderr, "actor-worker: --agents %s: %s\n", path, err);
        act_log(ACT_LOG_ERROR, "agents_config", "file=%s error=%s reason=\"%s\"", path,
                act_err_name(rc), err);
        return rc;
    }
    for (size_t i = before; i < h->n_agents; i++) {
        act_log(ACT_LOG_INFO, "agent", "name=%s type=%s file=%s", h->agents[i].name,
                agt_kind_name(h->agents[i].def->kind), path);
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum) { wrk_signal(h->data, signum); }

typedef struct run_args {
    wrk_t *w;
    uv_signal_t *sig; /* two handles, in main's frame: they outlive the task */
} run_args;

static int main_task(void *arg, void **result) {
    (void)result;
    run_args *a = arg;
    uv_loop_t *uv = act_loop_uv(act_loop_current());
    int signums[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(uv, &a->sig[i]);
        a->sig[i].data = a->w;
        uv_signal_start(&a->sig[i], on_signal, signums[i]);
    }
    int rc = wrk_run(a->w);
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&a->sig[i], NULL);
    return rc;
}

static int run(opts *o, abp_host_t *host) {
    wrk_t w = {.cfg = o->cfg, .host = host};
    act_loop_t *loop = NULL;
    int rc = act_loop_new(&loop, NULL);
    if (rc) return rc;
    uv_signal_t sig[2];
    run_args a = {&w, sig};
    act_log(ACT_LOG_INFO, "worker_start", "name=%s broker=%s capacity=%llu agents=%zu pid=%d",
            w.cfg.name, w.cfg.broker, (unsigned long long)w.cfg.capacity, host->n_agents,
            (int)getpid());
    rc = act_run(loop, main_task, &a, NULL);
    act_loop_destroy(&loop);
    act_log(rc ? ACT_LOG_ERROR : ACT_LOG_INFO, "worker_exit", "code=%s",
            rc ? act_err_name(rc) : "0");
    return rc;
}

int main(int argc, char **argv) {
    opts o = {.cfg = {.broker = "tcp://127.0.0.1:5556", .capacity = 16, .heartbeat_ms = 1000,
                      .liveness = 3, .drain_ms = 5000, .metrics_max_conns = 16,
                      .metrics_max_request = 8192, .metrics_max_labels = 256,
                      .metrics_idle_ms = 10000,
                      .max_lent = 1024, .watchdog_ms = 60000, .max_held = 1024,
                      .max_held_bytes = 64 << 20, .max_held_report = 262144},
              .level = ACT_LOG_INFO};
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(o.name, sizeof o.name, "worker-%s-%d", host, (int)getpid());
    o.cfg.name = o.name;
    int rc = parse(argc, argv, &o);
    if (rc) {
        free(o.plugins);
        return rc < 0 ? 0 : rc;
    }
    act_log_set_level(o.level);
    signal(SIGPIPE, SIG_IGN);
    abp_host_t host_agents = {0};
    rc = agt_rt_new(&wrk_agent_host, &host_agents.rt);
    if (rc == 0) rc = wrk_plugin_register(&host_agents, wrk_builtin_init, "builtin");
    for (size_t i = 0; rc == 0 && i < o.n_plugins; i++) {
        rc = wrk_plugin_load(&host_agents, o.plugins[i]);
    }
    if (rc == 0 && o.agents) rc = load_agents(&host_agents, o.agents);
    if (rc == 0) rc = run(&o, &host_agents);
    wrk_host_close(&host_agents);
    agt_rt_destroy(&host_agents.rt);
    free(o.plugins);
    return rc ? 1 : 0;
}
