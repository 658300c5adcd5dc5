/* bench/agents/agentload.c: the driver of ours in bench/agents. Keeps --inflight queries to
 * one agent outstanding on a ZeroMQ DEALER to actor-broker (each on session s-<n % sessions>),
 * reads their events and terminal replies, and prints one JSON line: invocations, events,
 * errors, invocations/s. Bounded by --count and --seconds; 10 s without a reply fails the run.
 * With --sync it prints {"warm": true} after the warm-up and waits for a line on stdin. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zmq.h>

#define SILENCE_MS 10000

typedef struct opts {
    const char *endpoint, *agent, *input;
    long inflight, count, warmup, sessions, timeout_ms;
    double seconds;
    bool sync;
} opts_t;

typedef struct stats {
    long sent, done, events, errors;
    char first_error[256];
} stats_t;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "agentload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void send_query(void *sock, const opts_t *o, uint64_t id) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char session[32];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, o->sessions ? 7 : 6);
    pack_str(&pk, "v");
    msgpack_pack_uint8(&pk, 1);
    pack_str(&pk, "type");
    pack_str(&pk, "query");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, "agent");
    pack_str(&pk, o->agent);
    pack_str(&pk, "input");
    pack_str(&pk, o->input);
    pack_str(&pk, "timeout_ms");
    msgpack_pack_int64(&pk, o->timeout_ms);
    if (o->sessions) {
        snprintf(session, sizeof session, "s-%llu",
                 (unsigned long long)(id % (uint64_t)o->sessions));
        pack_str(&pk, "session");
        pack_str(&pk, session);
    }
    if (zmq_send(sock, sb.data, sb.size, 0) != (int)sb.size) die("send: %s", zmq_strerror(errno));
    msgpack_sbuffer_destroy(&sb);
}

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kn = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kn &&
            memcmp(kv->key.via.str.ptr, key, kn) == 0)
            return &kv->val;
    }
    return NULL;
}

static bool type_is(const msgpack_object *t, const char *s) {
    return t && t->type == MSGPACK_OBJECT_STR && t->via.str.size == strlen(s) &&
           memcmp(t->via.str.ptr, s, t->via.str.size) == 0;
}

/* Receives one message; returns true when it ended a query (result or error). */
static bool recv_one(void *sock, stats_t *st, msgpack_unpacked *up) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        if (zmq_poll(&it, 1, SILENCE_MS) != 1) die("no reply within %s ms", "10000");
        if (zmq_msg_recv(&m, sock, 0) < 0) die("recv: %s", zmq_strerror(errno));
    }
    if (msgpack_unpack_next(up, zmq_msg_data(&m), zmq_msg_size(&m), NULL) !=
        MSGPACK_UNPACK_SUCCESS)
        die("%s", "a reply that is not msgpack");
    const msgpack_object *type = get(&up->data, "type");
    bool end = true;
    if (type_is(type, "event")) {
        st->events++;
        end = false;
    } else if (type_is(type, "error")) {
        const msgpack_object *code = get(&up->data, "code"), *msg = get(&up->data, "message");
        if (st->errors++ == 0 && code && msg && code->type == MSGPACK_OBJECT_STR &&
            msg->type == MSGPACK_OBJECT_STR)
            snprintf(st->first_error, sizeof st->first_error, "%.*s: %.*s",
                     (int)code->via.str.size, code->via.str.ptr,
                     (int)(msg->via.str.size > 200 ? 200 : msg->via.str.size), msg->via.str.ptr);
    } else if (!type_is(type, "result")) {
        die("%s", "a reply that is neither event, result nor error");
    }
    zmq_msg_close(&m);
    return end;
}

/* Keeps o->inflight outstanding until count are done or seconds passed, then drains. */
static void run_pass(void *sock, const opts_t *o, long count, double seconds, uint64_t *next_id,
                     stats_t *st) {
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    double stop = now_s() + seconds;
    bool stopped = false; /* the clock is read every 64 replies: it costs a syscall */
    for (; st->sent < o->inflight && st->sent < count; st->sent++)
        send_query(sock, o, (*next_id)++);
    while (st->done < st->sent) {
        if (!recv_one(sock, st, &up)) continue;
        st->done++;
        if ((st->done & 63) == 0 && now_s() >= stop) stopped = true;
        if (st->sent < count && !stopped) {
            send_query(sock, o, (*next_id)++);
            st->sent++;
        }
    }
    msgpack_unpacked_destroy(&up);
}

static long num(const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) die("bad number '%s'", s);
    return v;
}

static void parse(int argc, char **argv, opts_t *o) {
    *o = (opts_t){"tcp://127.0.0.1:5555", "weather_agent",
                  "What is the weather and the time in Paris?", 64, 200000, 500, -1, 30000, 10,
                  false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--sync") == 0) {
            o->sync = true;
            continue;
        }
        if (strcmp(a, "--endpoint") == 0) o->endpoint = v;
        else if (strcmp(a, "--agent") == 0) o->agent = v;
        else if (strcmp(a, "--input") == 0) o->input = v;
        else if (strcmp(a, "--inflight") == 0) o->inflight = num(v, 1, 100000);
        else if (strcmp(a, "--count") == 0) o->count = num(v, 1, 100000000);
        else if (strcmp(a, "--warmup") == 0) o->warmup = num(v, 0, 10000000);
        else if (strcmp(a, "--sessions") == 0) o->sessions = num(v, 0, 100000);
        else if (strcmp(a, "--timeout-ms") == 0) o->timeout_ms = num(v, 1, 600000);
        else if (strcmp(a, "--seconds") == 0) o->seconds = (double)num(v, 1, 600);
        else die("usage: agentload [--endpoint EP] [--agent A] [--input S] [--inflight N] "
                 "[--count N] [--seconds S] [--warmup N] [--sessions K (0: none)] "
                 "[--timeout-ms T] [--sync]%s", "");
        i++;
    }
    if (o->sessions < 0) o->sessions = 2 * o->inflight; /* a few collisions, never many */
}

int main(int argc, char **argv) {
    opts_t o;
    parse(argc, argv, &o);
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm); /* events must never be dropped */
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_connect(sock, o.endpoint) != 0) die("connect %s", o.endpoint);

    uint64_t next_id = 1;
    stats_t warm = {0}, st = {0};
    if (o.warmup) run_pass(sock, &o, o.warmup, 60, &next_id, &warm);
    if (o.sync) {
        printf("{\"warm\": true}\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) die("%s", "no go from the driver");
    }
    double t0 = now_s();
    run_pass(sock, &o, o.count, o.seconds, &next_id, &st);
    double secs = now_s() - t0;
    printf("{\"invocations\": %ld, \"seconds\": %.4f, \"ips\": %.1f, \"events\": %ld, "
           "\"errors\": %ld, \"warmup_errors\": %ld, \"inflight\": %ld, \"first_error\": \"",
           st.done - st.errors, secs, (double)(st.done - st.errors) / secs, st.events,
           st.errors, warm.errors, o.inflight);
    for (const char *p = st.errors ? st.first_error : warm.first_error; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) putchar(*p);
    printf("\"}\n");
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return st.errors ? 1 : 0;
}
