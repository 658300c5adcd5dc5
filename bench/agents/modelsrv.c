/* bench/agents/modelsrv.c: the scripted OpenAI-compatible model server of bench/agents, on
 * libuv. HTTP/1.1 with keep-alive, POST .../chat/completions: a request whose last message is
 * not a tool result gets two tool calls (get_weather, get_time); one whose last message is a
 * tool result gets the final text. "stream": true gets the same as server-sent events.
 * --latency-ms delays every reply by a fixed time; --threads runs that many loops on one port
 * (SO_REUSEPORT). GET /_stats answers the counters as JSON. Prints "PORT <n>" when listening. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <uv.h>

#define READ_CHUNK 65536
#define MAX_REQUEST (4u << 20) /* head + body; more is answered 413 and the connection closed */
#define MAX_HEAD 16384
#define MAX_THREADS 16

typedef struct opts {
    const char *host;
    int port, threads;
    uint64_t latency_ms;
} opts_t;

static opts_t o = {"127.0.0.1", 0, 1, 0};
static atomic_uint_fast64_t n_requests, n_tool_replies, n_final_replies, n_bad, n_conns;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;      /* --latency-ms: the reply waits on it */
    char *buf;             /* bytes read and not yet handled */
    size_t len, cap;
    char *pending;         /* a reply built and waiting for the timer */
    size_t pending_n;
    bool waiting, closing, close_after;
    int handles;           /* open handles (tcp, timer): freed at 0 */
    uint64_t seq;          /* replies on this connection, for unique ids */
    unsigned id;
} conn_t;

typedef struct wreq {
    uv_write_t req;
    char *data;
} wreq_t;

/* ---------------------------------------------------------------- a small JSON scanner
 * Just enough to find the top-level "stream" flag and the role of the last message: it skips
 * values without building anything. Strings are compared raw (keys carry no escapes). */

typedef struct js {
    const char *p, *end;
} js_t;

static void js_ws(js_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool js_lit(js_t *j, char c) {
    js_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* A string at p: sets s/n to its raw bytes (escapes left in). */
static bool js_str(js_t *j, const char **s, size_t *n) {
    if (!js_lit(j, '"')) return false;
    const char *b = j->p;
    while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\') ? 2 : 1;
    if (j->p >= j->end) return false;
    *s = b;
    *n = (size_t)(j->p - b);
    j->p++;
    return true;
}

static bool js_skip(js_t *j, int depth) {
    const char *s;
    size_t n;
    js_ws(j);
    if (j->p >= j->end || depth > 64) return false;
    char c = *j->p;
    if (c == '"') return js_str(j, &s, &n);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (js_lit(j, close)) return true;
        do {
            if (c == '{' && (!js_str(j, &s, &n) || !js_lit(j, ':'))) return false;
            if (!js_skip(j, depth + 1)) return false;
        } while (js_lit(j, ','));
        return js_lit(j, close);
    }
    while (j->p < j->end && !strchr(",]} \t\r\n", *j->p)) j->p++; /* number, true, null */
    return true;
}

static bool key_is(const char *s, size_t n, const char *k) {
    return n == strlen(k) && memcmp(s, k, n) == 0;
}

/* The "role" of one message object; leaves j after it. */
static bool js_role(js_t *j, const char **role, size_t *rn) {
    const char *k;
    size_t kn;
    *role = NULL;
    *rn = 0;
    if (!js_lit(j, '{')) return false;
    if (js_lit(j, '}')) return true;
    do {
        if (!js_str(j, &k, &kn) || !js_lit(j, ':')) return false;
        if (key_is(k, kn, "role")) {
            if (!js_str(j, role, rn)) return false;
        } else if (!js_skip(j, 2)) {
            return false;
        }
    } while (js_lit(j, ','));
    return js_lit(j, '}');
}

typedef struct chat_req {
    bool stream, last_is_tool;
    int n_messages;
} chat_req_t;

static bool js_messages(js_t *j, chat_req_t *r) {
    const char *role;
    size_t rn;
    if (!js_lit(j, '[')) return false;
    if (js_lit(j, ']')) return true;
    do {
        if (!js_role(j, &role, &rn)) return false;
        r->n_messages++;
        r->last_is_tool = role && key_is(role, rn, "tool");
    } while (js_lit(j, ','));
    return js_lit(j, ']');
}

static bool parse_chat(const char *body, size_t n, chat_req_t *r) {
    js_t j = {body, body + n};
    const char *k;
    size_t kn;
    *r = (chat_req_t){0};
    if (!js_lit(&j, '{')) return false;
    if (js_lit(&j, '}')) return false;
    do {
        if (!js_str(&j, &k, &kn) || !js_lit(&j, ':')) return false;
        if (key_is(k, kn, "messages")) {
            if (!js_messages(&j, r)) return false;
        } else if (key_is(k, kn, "stream")) {
            js_ws(&j);
            r->stream = j.end - j.p >= 4 && memcmp(j.p, "true", 4) == 0;
            if (!js_skip(&j, 1)) return false;
        } else if (!js_skip(&j, 1)) {
            return false;
        }
    } while (js_lit(&j, ','));
    return js_lit(&j, '}') && r->n_messages > 0;
}

/* ---------------------------------------------------------------- replies */

#define FINAL_TEXT "In Paris it is 18 C and sunny, and the local time is 14:05."
#define ARGS_WEATHER "{\\\"city\\\":\\\"Paris\\\"}"
#define ARGS_TIME "{\\\"tz\\\":\\\"Europe/Paris\\\"}"

typedef struct out {
    char *p;
    size_t n, cap;
} out_t;

static void out_add(out_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(out_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) abort();
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k) * 2;
        if (!(b->p = realloc(b->p, b->cap))) abort(); /* a benchmark tool: no memory, no run */
    }
}

static void tool_calls_json(out_t *b, const char *cid, bool delta) {
    out_add(b, "\"tool_calls\":[");
    static const char *const names[2] = {"get_weather", "get_time"};
    static const char *const args[2] = {ARGS_WEATHER, ARGS_TIME};
    for (int i = 0; i < 2; i++)
        out_add(b, "%s{%s\"id\":\"call_%s_%d\",\"type\":\"function\","
                   "\"function\":{\"name\":\"%s\",\"arguments\":\"%s\"}}",
                i ? "," : "", delta ? (i ? "\"index\":1," : "\"index\":0,") : "", cid, i,
                names[i], args[i]);
    out_add(b, "]");
}

static void body_json(out_t *b, const chat_req_t *r, const char *cid, long now) {
    out_add(b, "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion\",\"created\":%ld,"
               "\"model\":\"bench\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
               "\"assistant\",",
            cid, now);
    if (r->last_is_tool) {
        out_add(b, "\"content\":\"" FINAL_TEXT "\"},\"finish_reason\":\"stop\"}]");
    } else {
        out_add(b, "\"content\":null,");
        tool_calls_json(b, cid, false);
        out_add(b, "},\"finish_reason\":\"tool_calls\"}]");
    }
    out_add(b, ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":12,\"total_tokens\":%d}}",
            20 * r->n_messages, 20 * r->n_messages + 12);
}

static void sse_chunk(out_t *b, const char *cid, long now, const char *delta, const char *fin) {
    out_add(b, "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\","
               "\"created\":%ld,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{%s},"
               "\"finish_reason\":%s}]}\n\n",
            cid, now, delta, fin);
}

/* The streamed form: a role chunk, the text in three pieces or the tool calls, a finish
 * chunk, [DONE]. */
static void body_sse(out_t *b, const chat_req_t *r, const char *cid, long now) {
    sse_chunk(b, cid, now, "\"role\":\"assistant\",\"content\":\"\"", "null");
    if (r->last_is_tool) {
        sse_chunk(b, cid, now, "\"content\":\"In Paris it is 18 C \"", "null");
        sse_chunk(b, cid, now, "\"content\":\"and sunny, and the local \"", "null");
        sse_chunk(b, cid, now, "\"content\":\"time is 14:05.\"", "null");
        sse_chunk(b, cid, now, "", "\"stop\"");
    } else {
        out_t d = {0};
        tool_calls_json(&d, cid, true);
        sse_chunk(b, cid, now, d.p, "null");
        free(d.p);
        sse_chunk(b, cid, now, "", "\"tool_calls\"");
    }
    out_add(b, "data: [DONE]\n\n");
}

/* A whole HTTP response with a Content-Length (streamed bodies too: keep-alive either way). */
static char *response(int status, const char *ctype, const out_t *body, bool close,
                      size_t *n) {
    out_t h = {0};
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found"
                       : status == 413 ? "Payload Too Large" : "Bad Request";
    out_add(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
            reason, ctype, body->n, close ? "Connection: close\r\n" : "");
    out_add(&h, "%.*s", (int)body->n, body->p ? body->p : "");
    *n = h.n;
    return h.p;
}

static char *chat_reply(conn_t *c, const char *body, size_t n, size_t *rn) {
    chat_req_t r;
    out_t b = {0};
    if (!parse_chat(body, n, &r)) {
        atomic_fetch_add(&n_bad, 1);
        out_add(&b, "{\"error\":{\"message\":\"bad request: need a JSON object with a "
                    "non-empty messages array\",\"type\":\"invalid_request_error\"}}");
        char *res = response(400, "application/json", &b, false, rn);
        free(b.p);
        return res;
    }
    char cid[48];
    snprintf(cid, sizeof cid, "%x-%llx", c->id, (unsigned long long)c->seq++);
    long now = (long)time(NULL);
    atomic_fetch_add(r.last_is_tool ? &n_final_replies : &n_tool_replies, 1);
    if (r.stream) body_sse(&b, &r, cid, now);
    else body_json(&b, &r, cid, now);
    char *res = response(200, r.stream ? "text/event-stream" : "application/json", &b, false, rn);
    free(b.p);
    return res;
}

static char *stats_reply(size_t *rn) {
    out_t b = {0};
    out_add(&b, "{\"requests\":%llu,\"tool_replies\":%llu,\"final_replies\":%llu,\"bad\":%llu,"
                "\"connections\":%llu}",
            (unsigned long long)n_requests, (unsigned long long)n_tool_replies,
            (unsigned long long)n_final_replies, (unsigned long long)n_bad,
            (unsigned long long)n_conns);
    char *res = response(200, "application/json", &b, false, rn);
    free(b.p);
    return res;
}

/* ---------------------------------------------------------------- connections */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void handle_buffer(conn_t *c);

static void on_handle_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    if (--c->handles > 0) return;
    free(c->buf);
    free(c->pending);
    free(c);
}

static void conn_close(conn_t *c) {
    if (c->closing) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    conn_t *c = req->handle->data;
    free(w->data);
    free(w);
    if (status < 0) conn_close(c);
}

/* Sends data (owned: freed here): uv_try_write first, the rest through uv_write. */
static void conn_send(conn_t *c, char *data, size_t n) {
    uv_buf_t b = uv_buf_init(data, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (k == (int)n) {
        free(data);
        return;
    }
    if (k < 0 && k != UV_EAGAIN) {
        free(data);
        conn_close(c);
        return;
    }
    size_t done = k > 0 ? (size_t)k : 0;
    wreq_t *w = malloc(sizeof *w);
    if (!w) abort();
    w->data = data;
    b = uv_buf_init(data + done, (unsigned)(n - done));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(data);
        free(w);
        conn_close(c);
    }
}

static void on_latency(uv_timer_t *t) {
    conn_t *c = t->data;
    c->waiting = false;
    conn_send(c, c->pending, c->pending_n);
    c->pending = NULL;
    if (c->close_after) {
        conn_close(c);
        return;
    }
    handle_buffer(c); /* requests that came in meanwhile (pipelined) */
}

/* Looks up header name in head[0..n) (case-insensitive); value span in v/vn. */
static bool header(const char *head, size_t n, const char *name, const char **v, size_t *vn) {
    size_t nl = strlen(name);
    const char *p = head, *end = head + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *s = p + nl + 1;
            while (s < eol && (*s == ' ' || *s == '\t')) s++;
            const char *e = eol;
            while (e > s && (e[-1] == '\r' || e[-1] == ' ')) e--;
            *v = s;
            *vn = (size_t)(e - s);
            return true;
        }
        p = eol + 1;
    }
    return false;
}

static void reply_now_or_later(conn_t *c, char *res, size_t n, bool close) {
    if (o.latency_ms == 0) {
        conn_send(c, res, n);
        if (close) conn_close(c);
        return;
    }
    c->pending = res;
    c->pending_n = n;
    c->waiting = true;
    c->close_after = close;
    uv_timer_start(&c->timer, on_latency, o.latency_ms, 0);
}

static void reply_error(conn_t *c, int status, const char *msg) {
    out_t b = {0};
    size_t n;
    atomic_fetch_add(&n_bad, 1);
    out_add(&b, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\"}}", msg);
    char *res = response(status, "application/json", &b, true, &n);
    free(b.p);
    conn_send(c, res, n);
    conn_close(c);
}

/* Handles one request from the head of the buffer. Returns the bytes it used, 0 when the
 * request is not all here yet, or -1 when the connection was closed. */
static ssize_t handle_one(conn_t *c) {
    char *eoh = NULL;
    for (char *p = c->buf; c->len >= 4 && p <= c->buf + c->len - 4; p++)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            eoh = p;
            break;
        }
    if (!eoh) {
        if (c->len > MAX_HEAD) reply_error(c, 413, "request head too large");
        return c->len > MAX_HEAD ? -1 : 0;
    }
    size_t head_n = (size_t)(eoh - c->buf) + 4, vn, clen = 0;
    const char *v;
    if (header(c->buf, head_n, "Transfer-Encoding", &v, &vn)) {
        reply_error(c, 400, "chunked request bodies are not supported: send Content-Length");
        return -1;
    }
    if (header(c->buf, head_n, "Content-Length", &v, &vn)) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(vn < 23 ? vn : 23), v);
        clen = strtoull(tmp, NULL, 10);
    }
    if (clen > MAX_REQUEST) {
        reply_error(c, 413, "request body too large");
        return -1;
    }
    if (c->len < head_n + clen) {
        /* curl asks before sending a larger body; answer it once the head is in. */
        if (c->len == head_n && header(c->buf, head_n, "Expect", &v, &vn) &&
            vn >= 3 && memcmp(v, "100", 3) == 0) {
            char *cont = strdup("HTTP/1.1 100 Continue\r\n\r\n");
            if (!cont) abort();
            conn_send(c, cont, strlen(cont));
        }
        return 0;
    }
    bool close = header(c->buf, head_n, "Connection", &v, &vn) && vn == 5 &&
                 strncasecmp(v, "close", 5) == 0;
    atomic_fetch_add(&n_requests, 1);
    size_t n;
    char *res;
    if (strncmp(c->buf, "POST ", 5) == 0 && strstr(c->buf, "/chat/completions") &&
        strstr(c->buf, "/chat/completions") < eoh) {
        res = chat_reply(c, c->buf + head_n, clen, &n);
    } else if (strncmp(c->buf, "GET /_stats ", 12) == 0) {
        res = stats_reply(&n);
    } else {
        out_t b = {0};
        out_add(&b, "{\"error\":{\"message\":\"only POST .../chat/completions\"}}");
        res = response(404, "application/json", &b, false, &n);
        free(b.p);
    }
    reply_now_or_later(c, res, n, close);
    return c->closing ? -1 : (ssize_t)(head_n + clen);
}

/* Handles every whole request in the buffer, one at a time: with --latency-ms the next waits
 * until the previous reply went out, so replies keep their order. */
static void handle_buffer(conn_t *c) {
    size_t used = 0;
    while (!c->waiting && !c->closing && used < c->len) {
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        used = 0;
        ssize_t k = handle_one(c);
        if (k <= 0) break;
        used = (size_t)k;
    }
    if (used && !c->closing) {
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out) {
    conn_t *c = h->data;
    (void)hint;
    if (c->cap - c->len < READ_CHUNK) {
        size_t cap = c->cap ? c->cap * 2 : 2 * READ_CHUNK;
        while (cap - c->len < READ_CHUNK) cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) abort();
        c->buf = b;
        c->cap = cap;
    }
    *out = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = s->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    if (c->len > MAX_REQUEST + MAX_HEAD) {
        reply_error(c, 413, "request too large");
        return;
    }
    handle_buffer(c);
}

static void on_connection(uv_stream_t *srv, int status) {
    static atomic_uint next_id;
    if (status < 0) return;
    conn_t *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->id = atomic_fetch_add(&next_id, 1);
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    atomic_fetch_add(&n_conns, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---------------------------------------------------------------- main */

typedef struct server {
    uv_loop_t loop;
    uv_tcp_t tcp;
    uv_thread_t thread;
} server_t;

static int listen_on(server_t *s, int port) {
    struct sockaddr_in addr;
    int rc, one = 1;
    uv_os_fd_t fd;
    if ((rc = uv_loop_init(&s->loop)) || (rc = uv_ip4_addr(o.host, port, &addr)) ||
        (rc = uv_tcp_init_ex(&s->loop, &s->tcp, AF_INET)))
        return rc;
    if ((rc = uv_fileno((uv_handle_t *)&s->tcp, &fd))) return rc;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return -errno;
    if ((rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&addr, 0))) return rc;
    return uv_listen((uv_stream_t *)&s->tcp, 1024, on_connection);
}

static void run_loop(void *arg) {
    server_t *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void usage(void) {
    fprintf(stderr, "usage: modelsrv [--host 127.0.0.1] [--port P (0: free)] [--latency-ms N]"
                    " [--threads N (1..%d)]\n", MAX_THREADS);
    exit(2);
}

static long num(const char *s, long lo, long hi) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi) usage();
    return v;
}

int main(int argc, char **argv) {
    static server_t srv[MAX_THREADS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) o.host = v;
        else if (strcmp(a, "--port") == 0) o.port = (int)num(v, 0, 65535);
        else if (strcmp(a, "--latency-ms") == 0) o.latency_ms = (uint64_t)num(v, 0, 600000);
        else if (strcmp(a, "--threads") == 0) o.threads = (int)num(v, 1, MAX_THREADS);
        else usage();
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = listen_on(&srv[0], o.port);
    if (rc) {
        fprintf(stderr, "modelsrv: listen on %s:%d: %s\n", o.host, o.port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&srv[0].tcp, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    for (int i = 1; i < o.threads; i++)
        if ((rc = listen_on(&srv[i], port)) || (rc = uv_thread_create(&srv[i].thread, run_loop,
                                                                      &srv[i]))) {
            fprintf(stderr, "modelsrv: thread %d: %s\n", i, uv_strerror(rc));
            return 1;
        }
    printf("PORT %d\n", port);
    fflush(stdout);
    run_loop(&srv[0]); /* runs until killed: the bench driver owns its lifetime */
    return 0;
}
