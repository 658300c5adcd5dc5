/* tools/web/server.c: actor-web's main: options, the listening socket, the one zmq_poll loop
 * over HTTP connections, the broker's DEALER and the bus SUB, and reading requests and
 * writing responses with every size bounded. What a request means is api.c's.
 * Exit: 0 on SIGINT/SIGTERM, 1 when it cannot start, 2 bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "web.h"

static const char usage[] =
    "usage: actor-web [options]\n"
    "\n"
    "A live web console for actorbus: the workers, a query with its events, an invocation's\n"
    "timeline across workers, sessions and a worker's tasks. A client of the broker and a\n"
    "subscriber of its bus like any other.\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT      where to serve HTTP (default 127.0.0.1:8088; port 0: any)\n"
    "  --broker ENDPOINT       the broker's client endpoint (default tcp://127.0.0.1:5555)\n"
    "  --pub ENDPOINT          the broker's bus endpoint (default tcp://127.0.0.1:5557)\n"
    "  --curve-server-key K    the broker's public key (FILE or Z85): talk CURVE to it\n"
    "  --curve-key FILE        own key pair file (default: a new ephemeral pair)\n"
    "  --token-file FILE       a token every /api and /events request must carry (header\n"
    "                          X-Actor-Token or ?token=); REQUIRED off loopback. The env\n"
    "                          ACTOR_WEB_TOKEN gives it too.\n"
    "  --max-conns N           open HTTP connections (default 64)\n"
    "  --max-request BYTES     a request's head and body (default 65536)\n"
    "  --max-sse N             live streams (/events) (default 16)\n"
    "  --max-buffer BYTES      bytes queued to one connection; a reader that falls further\n"
    "                          behind is disconnected (default 4194304)\n"
    "  --ring N                bus messages kept for the pages (default 4000)\n"
    "  --ring-bytes BYTES      ... and their bytes as JSON (default 8388608)\n"
    "  --status-ms MS          how often live pages get the broker's status (default 1000)\n"
    "  --request-timeout MS    how long a request waits for the broker, and how long a\n"
    "                          connection may take to send its request or read its\n"
    "                          answer (default 10000)\n"
    "  -h, --help              this text\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

extern const char web_page_html[], web_page_html_end[];
extern const char web_page_js[], web_page_js_end[];
extern const char web_page_css[], web_page_css_end[];

/* ---- output ---- */

int web_send(web_t *w, web_conn_t *c, const char *p, size_t n) {
    web_out_t *o = &c->out;
    if (o->off && o->off == o->n) o->off = o->n = 0;
    if (o->n - o->off + n > w->o.max_buffer) {
        /* Cut the stream: the next poll reads the end of it and closes the connection. */
        o->off = o->n;
        shutdown(c->fd, SHUT_RDWR);
        return -ENOBUFS;
    }
    if (o->n + n > o->cap) {
        if (o->off) { /* compact before growing */
            memmove(o->p, o->p + o->off, o->n - o->off);
            o->n -= o->off;
            o->off = 0;
        }
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->n + n) cap *= 2;
        char *np = realloc(o->p, cap);
        if (!np) {
            shutdown(c->fd, SHUT_RDWR);
            return -ENOBUFS;
        }
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
    return 0;
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* What every response says: no caching, no sniffing, no framing, and a page that may run
 * only its own script (so a slip in escaping still cannot run what an agent wrote). */
static const char common_headers[] =
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'\r\n";

void web_respond(web_t *w, web_conn_t *c, int status, const char *type, const char *body,
                 size_t n) {
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, reason(status), type, n, common_headers);
    c->st = WEB_C_WRITE;
    c->deadline = base_mono_ms() + w->o.request_ms; /* a reader that never reads goes */
    if (web_send(w, c, head, (size_t)hn) == 0) web_send(w, c, body, n);
    c->close_when_sent = true;
}

void web_respond_error(web_t *w, web_conn_t *c, int status, const char *code,
                       const char *message) {
    char m[600], body[800];
    if (web_json_str(message, strlen(message), m, sizeof m) < 0) snprintf(m, sizeof m, "\"\"");
    int n = snprintf(body, sizeof body, "{\"type\":\"error\",\"code\":\"%s\",\"message\":%s}",
                     code, m);
    web_respond(w, c, status, "application/json", body, (size_t)n);
}

void web_stream_head(web_t *w, web_conn_t *c, const char *type) {
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sConnection: close\r\n\r\n", type,
                      common_headers);
    web_send(w, c, head, (size_t)hn);
}

void web_close(web_t *w, web_conn_t *c) {
    if (c->st == WEB_C_FREE) return;
    web_forget(w, c);
    if (c->st == WEB_C_SSE) w->n_sse--;
    close(c->fd);
    free(c->in);
    free(c->out.p);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* ---- requests ---- */

static void serve_static(web_t *w, web_conn_t *c, const char *path) {
    if (!strcmp(path, "/") || !strcmp(path, "/index.html"))
        web_respond(w, c, 200, "text/html; charset=utf-8", web_page_html,
                    (size_t)(web_page_html_end - web_page_html));
    else if (!strcmp(path, "/app.js"))
        web_respond(w, c, 200, "text/javascript; charset=utf-8", web_page_js,
                    (size_t)(web_page_js_end - web_page_js));
    else if (!strcmp(path, "/app.css"))
        web_respond(w, c, 200, "text/css; charset=utf-8", web_page_css,
                    (size_t)(web_page_css_end - web_page_css));
    else
        web_respond_error(w, c, 404, "not_found", "no such page");
}

/* Whether the request may be answered: with a token, it must carry it; without, it must
 * name this server on loopback (a page of another site, with a DNS name rebound to
 * 127.0.0.1, names its own). The page itself needs neither: it holds no data. */
static bool allowed(web_t *w, web_conn_t *c, const web_req_t *r) {
    bool page = strncmp(r->path, "/api/", 5) != 0 && strcmp(r->path, "/events") != 0;
    if (w->o.token) {
        char q[WEB_MAX_FIELD];
        if (page || web_token_eq(r->token, w->o.token) ||
            (web_query_get(r->query, "token", q, sizeof q) >= 0 && web_token_eq(q, w->o.token)))
            return true;
        web_respond_error(w, c, 401, "unauthorized", "this request needs the console's token");
        return false;
    }
    if (web_host_ok(r->host, w->port)) return true;
    web_respond_error(w, c, 403, "forbidden", "Host is not this console on loopback");
    return false;
}

static void on_request(web_t *w, web_conn_t *c) {
    web_req_t r;
    int rc = web_req_parse(c->in, c->in_n, w->o.max_request, w->o.max_request, &r);
    if (rc == 0) return;
    if (rc < 0) {
        int status = rc == -E2BIG ? 431 : rc == -EFBIG ? 413 : 400;
        web_respond_error(w, c, status, "bad_request",
                          status == 400 ? "not an HTTP/1.x request we read"
                                        : "request larger than --max-request");
        return;
    }
    if (r.head_len + r.content_length > w->o.max_request) {
        web_respond_error(w, c, 413, "bad_request", "request larger than --max-request");
        return;
    }
    if (c->in_n < r.head_len + r.content_length) return; /* the body is still coming */
    if (!allowed(w, c, &r)) return;
    c->in[r.head_len + r.content_length] = '\0';
    if (strncmp(r.path, "/api/", 5) == 0 || strcmp(r.path, "/events") == 0) {
        web_route(w, c, &r, c->in + r.head_len);
    } else if (strcmp(r.method, "GET") != 0) {
        web_respond_error(w, c, 405, "bad_request", "pages are GET only");
    } else {
        serve_static(w, c, r.path);
    }
}

static void on_readable(web_t *w, web_conn_t *c) {
    if (c->st != WEB_C_READ) { /* a stream or a wait: only a close is expected */
        char scratch[512];
        ssize_t n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) web_close(w, c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_n, w->o.max_request - c->in_n, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        web_close(w, c);
        return;
    }
    if (n < 0) return;
    c->in_n += (size_t)n;
    on_request(w, c);
    if (c->st == WEB_C_READ && c->in_n >= w->o.max_request)
        web_respond_error(w, c, 413, "bad_request", "request larger than --max-request");
}

static void on_writable(web_t *w, web_conn_t *c) {
    web_out_t *o = &c->out;
    while (o->off < o->n) {
        ssize_t n = send(c->fd, o->p + o->off, o->n - o->off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            web_close(w, c);
            return;
        }
        o->off += (size_t)n;
    }
    if (c->close_when_sent) web_close(w, c);
}

static void on_accept(web_t *w) {
    int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    web_conn_t *c = NULL;
    for (size_t i = 0; i < w->o.max_conns && !c; i++)
        if (w->conns[i].st == WEB_C_FREE) c = &w->conns[i];
    char *in = c ? malloc(w->o.max_request + 1) : NULL;
    if (!in) { /* full: say so in one write and close */
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        ssize_t rc = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)rc;
        close(fd);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->in = in;
    c->st = WEB_C_READ;
    c->deadline = base_mono_ms() + w->o.request_ms; /* a request trickled in too slowly goes */
}

/* ---- setup and the loop ---- */

static int listen_on(web_t *w) {
    char host[256];
    const char *colon = strrchr(w->o.listen, ':');
    if (!colon || (size_t)(colon - w->o.listen) >= sizeof host) return -EINVAL;
    memcpy(host, w->o.listen, (size_t)(colon - w->o.listen));
    host[colon - w->o.listen] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    if (!w->o.token && !web_is_loopback(h)) return -EPERM;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai;
    if (getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &ai) != 0) return -EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rc == 0 && (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0))
        rc = -errno;
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        w->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    if (rc != 0 && fd >= 0) close(fd);
    if (rc == 0) w->lfd = fd;
    return rc;
}

static int connect_broker(web_t *w) {
    int linger = 0;
    w->dealer = zmq_socket(w->zctx, ZMQ_DEALER);
    w->sub = zmq_socket(w->zctx, ZMQ_SUB);
    w->canceller = zmq_socket(w->zctx, ZMQ_DEALER);
    zmq_setsockopt(w->canceller, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sub, ZMQ_SUBSCRIBE, "", 0);
    if (ctl_curve_apply(&w->o.curve, w->dealer) || ctl_curve_apply(&w->o.curve, w->sub) ||
        ctl_curve_apply(&w->o.curve, w->canceller))
        return -1;
    if (zmq_connect(w->dealer, w->o.broker) != 0 || zmq_connect(w->canceller, w->o.broker)) {
        fprintf(stderr, "actor-web: bad --broker '%s': %s\n", w->o.broker, zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(w->sub, w->o.pub) != 0) {
        fprintf(stderr, "actor-web: bad --pub '%s': %s\n", w->o.pub, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static void run(web_t *w) {
    size_t cap = 3 + w->o.max_conns;
    zmq_pollitem_t *it = calloc(cap, sizeof *it);
    web_conn_t **who = calloc(cap, sizeof *who);
    while (!stop && it && who) {
        size_t n = 0;
        it[n++] = (zmq_pollitem_t){w->dealer, 0, ZMQ_POLLIN, 0};
        it[n++] = (zmq_pollitem_t){w->sub, 0, ZMQ_POLLIN, 0};
        it[n++] = (zmq_pollitem_t){NULL, w->lfd, ZMQ_POLLIN, 0};
        for (size_t i = 0; i < w->o.max_conns; i++) {
            web_conn_t *c = &w->conns[i];
            if (c->st == WEB_C_FREE) continue;
            /* A response being sent ignores what the client sends (or its half-close). */
            short ev = (c->st == WEB_C_WRITE ? 0 : ZMQ_POLLIN) |
                       (c->out.off < c->out.n ? ZMQ_POLLOUT : 0);
            who[n] = c;
            it[n++] = (zmq_pollitem_t){NULL, c->fd, ev, 0};
        }
        if (zmq_poll(it, (int)n, 200) < 0 && errno != EINTR) break;
        for (int k = 0; k < 64 && (it[0].revents & ZMQ_POLLIN); k++) web_on_reply(w);
        for (int k = 0; k < 256 && (it[1].revents & ZMQ_POLLIN); k++) web_on_bus(w);
        if (it[2].revents & ZMQ_POLLIN) on_accept(w);
        for (size_t i = 3; i < n; i++) {
            web_conn_t *c = who[i];
            if (c->st != WEB_C_FREE && (it[i].revents & ZMQ_POLLIN)) on_readable(w, c);
            if (c->st != WEB_C_FREE && (it[i].revents & (ZMQ_POLLOUT | ZMQ_POLLERR)))
                on_writable(w, c);
        }
        web_tick(w, base_mono_ms());
    }
    free(it);
    free(who);
}

static int size_opt(const char *flag, const char *s, size_t lo, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo) {
        fprintf(stderr, "actor-web: %s wants an integer >= %zu, got '%s'\n", flag, lo, s);
        return 2;
    }
    *out = (size_t)v;
    return 0;
}

static int read_token(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (!n) fprintf(stderr, "actor-web: --token-file '%s' is missing or empty\n", path);
    return n ? 0 : 2;
}

static int parse(int argc, char **argv, web_opts_t *o, char *token, size_t tcap) {
    static const struct option longs[] = {
        {"listen", 1, 0, 'l'}, {"broker", 1, 0, 'b'}, {"pub", 1, 0, 'p'},
        {"token-file", 1, 0, 'T'}, {"max-conns", 1, 0, 'c'}, {"max-request", 1, 0, 'r'},
        {"max-sse", 1, 0, 's'}, {"max-buffer", 1, 0, 'B'}, {"ring", 1, 0, 'R'},
        {"ring-bytes", 1, 0, 'Y'}, {"status-ms", 1, 0, 'S'}, {"request-timeout", 1, 0, 't'},
        {"curve-server-key", 1, 0, 'K'}, {"curve-key", 1, 0, 'k'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch, rc = 0;
    size_t v;
    opterr = 0;
    while (rc == 0 && (ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (ch) {
        case 'l': o->listen = optarg; break;
        case 'b': o->broker = optarg; break;
        case 'p': o->pub = optarg; break;
        case 'T': rc = read_token(optarg, token, tcap); o->token = token; break;
        case 'c': rc = size_opt("--max-conns", optarg, 2, &o->max_conns); break;
        case 'r': rc = size_opt("--max-request", optarg, 1024, &o->max_request); break;
        case 's': rc = size_opt("--max-sse", optarg, 1, &o->max_sse); break;
        case 'B': rc = size_opt("--max-buffer", optarg, 65536, &o->max_buffer); break;
        case 'R': rc = size_opt("--ring", optarg, 1, &o->ring); break;
        case 'Y': rc = size_opt("--ring-bytes", optarg, 4096, &o->ring_bytes); break;
        case 'S': rc = size_opt("--status-ms", optarg, 50, &v); o->status_ms = (int64_t)v; break;
        case 't':
            rc = size_opt("--request-timeout", optarg, 10, &v);
            o->request_ms = (int64_t)v;
            break;
        case 'K': o->curve.server_arg = optarg; break;
        case 'k': o->curve.key_file = optarg; break;
        case 'h': fputs(usage, stdout); return -1;
        case ':': fprintf(stderr, "actor-web: %s needs a value\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "actor-web: unknown option '%s'\n", argv[optind - 1]); return 2;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "actor-web: unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    return rc;
}

int main(int argc, char **argv) {
    static char token[WEB_MAX_FIELD];
    web_t w = {.o = {.listen = "127.0.0.1:8088", .broker = "tcp://127.0.0.1:5555",
                     .pub = "tcp://127.0.0.1:5557", .max_conns = 64, .max_request = 65536,
                     .max_sse = 16, .max_buffer = 4u << 20, .ring = 4000,
                     .ring_bytes = 8u << 20, .status_ms = 1000, .request_ms = 10000},
               .lfd = -1, .next_req = 1};
    const char *env = getenv("ACTOR_WEB_TOKEN");
    if (env && *env) {
        snprintf(token, sizeof token, "%s", env);
        w.o.token = token;
    }
    int rc = parse(argc, argv, &w.o, token, sizeof token);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = ctl_curve_setup(&w.o.curve)) != 0) return rc;
    if ((rc = listen_on(&w)) != 0) {
        fprintf(stderr, rc == -EPERM ? "actor-web: --listen '%s' is not loopback: give a "
                                       "--token-file (or ACTOR_WEB_TOKEN)\n"
                                     : "actor-web: cannot listen on '%s': %s\n",
                w.o.listen, strerror(-rc));
        return rc == -EPERM ? 2 : 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    proto_limits_default(&w.lim);
    w.lim.max_size = (size_t)256 << 20; /* the broker already enforced its limit */
    proto_buf_init(&w.json);
    proto_buf_init(&w.msg);
    w.epoch = base_unix_ms();
    w.zctx = zmq_ctx_new();
    w.conns = calloc(w.o.max_conns, sizeof *w.conns);
    w.ring = calloc(w.o.ring, sizeof *w.ring);
    rc = w.conns && w.ring ? connect_broker(&w) : -1;
    if (rc == 0) {
        const char *shown = strrchr(w.o.listen, ':');
        printf("actor-web: serving http://%.*s:%d/ (broker %s, bus %s)\n",
               (int)(shown - w.o.listen), w.o.listen, w.port, w.o.broker, w.o.pub);
        fflush(stdout);
        run(&w);
    }
    for (size_t i = 0; w.conns && i < w.o.max_conns; i++) web_close(&w, &w.conns[i]);
    web_ring_free(&w);
    free(w.status_json);
    free(w.conns);
    proto_buf_free(&w.json);
    proto_buf_free(&w.msg);
    close(w.lfd);
    if (w.dealer) zmq_close(w.dealer);
    if (w.sub) zmq_close(w.sub);
    if (w.canceller) zmq_close(w.canceller);
    ctl_curve_close(&w.o.curve);
    zmq_ctx_term(w.zctx);
    return rc == 0 ? 0 : 1;
}
