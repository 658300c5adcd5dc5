/* test_http1.c: the keep-alive HTTP/1.1 client (worker/agent/model/http/http1.c) through agt_http_perform,
 * against a scripted server in this process (a thread per connection on 127.0.0.1) that
 * counts connections, requests and aborted replies. Reuse, framings, streaming, the
 * retry-once rule, limits, deadlines, cancellation and bad replies; orders and counts only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"
#include "http1.h"

/* ---- the scripted server ---- */

#define MAX_CONNS 128

static struct {
    int lfd, port;
    pthread_t acceptor;
    pthread_t thr[MAX_CONNS];
    int fds[MAX_CONNS];
    atomic_int n_thr;
    atomic_int conns, requests, aborted;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool poked;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w, n -= (size_t)w;
    }
}

static void sendf(int fd, const char *fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    send_all(fd, b, (size_t)n);
}

static void send_len_body(int fd, size_t n, const char *extra) {
    sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%sContent-Length: %zu\r\n\r\n", extra,
          n);
    char b[4096];
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (char)('a' + i % 26);
    for (size_t off = 0; off < n; off += sizeof(b))
        send_all(fd, b, n - off < sizeof(b) ? n - off : sizeof(b));
}

static void chunk(int fd, const char *s) { sendf(fd, "%zx\r\n%s\r\n", strlen(s), s); }

/* Waits (up to 5 s) for the client to poke us through /poke. */
static bool await_poke(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 5;
    pthread_mutex_lock(&S.mu);
    while (!S.poked && pthread_cond_timedwait(&S.cv, &S.mu, &t) == 0) {
    }
    bool ok = S.poked;
    S.poked = false;
    pthread_mutex_unlock(&S.mu);
    return ok;
}

/* Answers one request for path; returns true when the connection is to end. */
static bool respond(int fd, const char *path, bool *drop_next) {
    if (strncmp(path, "/cl?n=", 6) == 0) {
        send_len_body(fd, (size_t)atol(path + 6), "Retry-After: 7\r\n");
    } else if (strcmp(path, "/chunked") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        chunk(fd, "hello ");
        sendf(fd, "8;name=value\r\nchunked \r\n"); /* an extension */
        chunk(fd, "world");
        sendf(fd, "0\r\nX-Trailer: yes\r\n\r\n");
    } else if (strcmp(path, "/sse") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n");
        chunk(fd, "data: 1\n\n");
        chunk(fd, await_poke() ? "data: 2\n\n" : "data: late\n\n");
        chunk(fd, "data: 3\n\n");
        sendf(fd, "0\r\n\r\n");
    } else if (strcmp(path, "/poke") == 0) {
        pthread_mutex_lock(&S.mu);
        S.poked = true;
        pthread_cond_signal(&S.cv);
        pthread_mutex_unlock(&S.mu);
        send_len_body(fd, 2, "");
    } else if (strcmp(path, "/drop-next") == 0) {
        *drop_next = true;
        send_len_body(fd, 2, "");
    } else if (strcmp(path, "/close-after") == 0) {
        send_len_body(fd, 2, "");
        return true;
    } else if (strcmp(path, "/close-with-reply") == 0) { /* the FIN leaves with the reply */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
        send_len_body(fd, 2, "");
        shutdown(fd, SHUT_WR);
        return true;
    } else if (strcmp(path, "/until-close") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
        return true;
    } else if (strcmp(path, "/drop") == 0) {
        return true;
    } else if (strcmp(path, "/slow-body") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        char b[64];
        while (recv(fd, b, sizeof(b), 0) > 0) {
        }
        atomic_fetch_add(&S.aborted, 1); /* the client closed it */
        return true;
    } else if (strcmp(path, "/badstatus") == 0) {
        sendf(fd, "HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(path, "/bighead") == 0) {
        sendf(fd, "HTTP/1.1 200 OK\r\n");
        char line[1002];
        memset(line, 'x', 1000);
        memcpy(line, "X-Pad: ", 7);
        memcpy(line + 1000, "\r\n", 2);
        for (int i = 0; i < 70; i++)
            send_all(fd, line, sizeof(line));
        sendf(fd, "Content-Length: 0\r\n\r\n");
    } else {
        sendf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return false;
}

/* Reads requests (head and Content-Length body) and answers them until the end. */
static void *conn_main(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    size_t n = 0;
    bool drop_next = false;
    for (;;) {
        char *e;
        while (!(e = memmem(buf, n, "\r\n\r\n", 4))) {
            ssize_t r = n < sizeof(buf) ? recv(fd, buf + n, sizeof(buf) - n, 0) : 0;
            if (r <= 0) goto out;
            n += (size_t)r;
        }
        size_t hl = (size_t)(e + 4 - buf), cl = 0;
        char *clh = strcasestr(buf, "\r\ncontent-length:");
        if (clh && clh < e) cl = (size_t)atol(clh + 17);
        while (n < hl + cl) {
            ssize_t r = n < sizeof(buf) ? recv(fd, buf + n, sizeof(buf) - n, 0) : 0;
            if (r <= 0) goto out;
            n += (size_t)r;
        }
        atomic_fetch_add(&S.requests, 1);
        char path[64] = "";
        sscanf(buf, "%*s %63s", path);
        memmove(buf, buf + hl + cl, n - hl - cl);
        n -= hl + cl;
        if (drop_next || respond(fd, path, &drop_next)) goto out;
    }
out:
    shutdown(fd, SHUT_RDWR); /* closed in stop_server, after the join */
    return NULL;
}

static void *accept_main(void *arg) {
    (void)arg;
    while (!atomic_load(&S.stop)) {
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0) continue;
        int i = atomic_load(&S.n_thr);
        if (atomic_load(&S.stop) || i == MAX_CONNS) {
            close(fd);
            continue;
        }
        atomic_fetch_add(&S.conns, 1);
        S.fds[i] = fd;
        pthread_create(&S.thr[i], NULL, conn_main, (void *)(intptr_t)fd);
        atomic_store(&S.n_thr, i + 1);
    }
    return NULL;
}

static int start_server(void **state) {
    (void)state;
    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(S.lfd, (struct sockaddr *)&a, sizeof(a)) || listen(S.lfd, 64) ||
        getsockname(S.lfd, (struct sockaddr *)&a, &len))
        return -1;
    S.port = ntohs(a.sin_port);
    unsetenv("http_proxy"), unsetenv("HTTP_PROXY"), unsetenv("all_proxy"), unsetenv("ALL_PROXY");
    return pthread_create(&S.acceptor, NULL, accept_main, NULL);
}

static int stop_server(void **state) {
    (void)state;
    atomic_store(&S.stop, true);
    shutdown(S.lfd, SHUT_RDWR); /* wakes accept */
    pthread_join(S.acceptor, NULL);
    close(S.lfd);
    for (int i = 0; i < atomic_load(&S.n_thr); i++) {
        shutdown(S.fds[i], SHUT_RDWR);
        pthread_join(S.thr[i], NULL);
        close(S.fds[i]);
    }
    return 0;
}

static void reset_counts(void) {
    atomic_store(&S.conns, 0);
    atomic_store(&S.requests, 0);
    atomic_store(&S.aborted, 0);
}

/* ---- the client side ---- */

typedef struct body {
    char p[1 << 17];
    size_t n;
    int calls;
} body_t;

static int collect(void *ctx, const agt_http_resp_t *r, const char *p, size_t n) {
    body_t *b = ctx;
    assert_true(r->status > 0); /* the status is known before any body byte */
    if (b->n + n >= sizeof(b->p)) return ACT_EMSGSIZE;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    b->calls++;
    return 0;
}

static int get(agt_http_t *h, const char *path, body_t *b, agt_http_resp_t *r, int64_t dl) {
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", S.port, path);
    agt_http_req_t rq = {.url = url, .on_body = collect, .ctx = b};
    b->n = 0, b->calls = 0, b->p[0] = 0;
    return agt_http_perform(h, &rq, r, dl);
}

/* Waits (up to 5 s) for a server counter to reach want. */
static void await_count(atomic_int *c, int want) {
    for (int i = 0; i < 250 && atomic_load(c) < want; i++)
        act_sleep(20);
    assert_int_equal(atomic_load(c), want);
}

static body_t B; /* big: kept off the task stacks */

static int reuse_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(get(h, i % 2 ? "/cl?n=100" : "/chunked", &B, &r, -1), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(B.n, i % 2 ? 100 : 19);
    }
    assert_int_equal(atomic_load(&S.requests), 20);
    assert_int_equal(atomic_load(&S.conns), 1); /* every request on the first connection */
    agt_http_destroy(&h);
    setenv("ACTORBUS_HTTP_MAX_IDLE", "0", 1); /* no pool: a connection per request */
    assert_int_equal(agt_http_new(&h), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(h, "/cl?n=1", &B, &r, -1), 0);
    assert_int_equal(atomic_load(&S.conns), 4);
    unsetenv("ACTORBUS_HTTP_MAX_IDLE");
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_sequential_requests_share_one_connection(void **state) {
    (void)state;
    assert_int_equal(harness_run(reuse_body, NULL, 0), 0);
}

static int framing_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    assert_int_equal(get(h, "/cl?n=100000", &B, &r, -1), 0); /* many reads */
    assert_int_equal(r.body_len, 100000);
    assert_int_equal(B.n, 100000);
    assert_memory_equal(B.p + 4096 * 6, "abcdefghij", 10); /* each 4 KiB block restarts */
    assert_int_equal(r.retry_after_ms, 7000);
    assert_string_equal(r.content_type, "text/plain");
    assert_int_equal(get(h, "/chunked", &B, &r, -1), 0);
    assert_string_equal(B.p, "hello chunked world");
    assert_int_equal(r.retry_after_ms, -1);
    assert_string_equal(r.content_type, "");
    assert_int_equal(get(h, "/until-close", &B, &r, -1), 0);
    assert_string_equal(B.p, "until the end");
    assert_int_equal(get(h, "/cl?n=0", &B, &r, -1), 0); /* after a close: a new connection */
    assert_int_equal(B.calls, 0);
    assert_int_equal(get(h, "/nowhere", &B, &r, -1), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(atomic_load(&S.conns), 2);
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_reads_length_chunked_and_until_close_bodies(void **state) {
    (void)state;
    assert_int_equal(harness_run(framing_body, NULL, 0), 0);
}

typedef struct sse {
    agt_http_t *poker;
    body_t b;
    char order[8];
    int n;
} sse_t;

/* Notes each event's number; on the first, pokes the server, which holds the rest until
 * then: the events can only complete if they reach us as they are sent. */
static int on_event(void *ctx, const agt_http_resp_t *r, const char *p, size_t n) {
    (void)r;
    sse_t *s = ctx;
    for (size_t i = 0; i + 6 < n; i++)
        if (memcmp(p + i, "data: ", 6) == 0 && s->n < 7) s->order[s->n++] = p[i + 6];
    if (s->n == 1 && s->order[0] == '1') {
        agt_http_resp_t pr;
        body_t *pb = malloc(sizeof(*pb));
        assert_int_equal(get(s->poker, "/poke", pb, &pr, act_deadline_in(5000)), 0);
        free(pb);
        s->order[s->n++] = 'p';
    }
    return 0;
}

static int sse_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    sse_t *s = calloc(1, sizeof(*s));
    assert_int_equal(agt_http_new(&h), 0);
    assert_int_equal(agt_http_new(&s->poker), 0);
    char url[96];
    snprintf(url, sizeof(url), "http://localhost:%d/sse", S.port); /* by name, too */
    const char *hdrs[] = {"Accept: text/event-stream", "Expect:"};
    agt_http_req_t rq = {
        .url = url, .headers = hdrs, .n_headers = 2, .on_body = on_event, .ctx = s};
    rq.method = "POST", rq.body = "{}", rq.body_len = 2;
    agt_http_resp_t r;
    assert_int_equal(agt_http_perform(h, &rq, &r, act_deadline_in(10000)), 0);
    assert_string_equal(s->order, "1p23");
    assert_string_equal(r.content_type, "text/event-stream");
    agt_http_destroy(&s->poker);
    agt_http_destroy(&h);
    free(s);
    return 0;
}

static void test_http1_sse_events_reach_the_caller_in_order_as_they_arrive(void **state) {
    (void)state;
    assert_int_equal(harness_run(sse_body, NULL, 0), 0);
}

static int retry_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    /* The server drops the next request on this connection: sent again on a new one. */
    assert_int_equal(get(h, "/drop-next", &B, &r, -1), 0);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0);
    assert_int_equal(B.n, 5);
    assert_int_equal(atomic_load(&S.requests), 3);
    assert_int_equal(atomic_load(&S.conns), 2);
    /* The server closed the pooled connection after its reply: a new one, no error. */
    assert_int_equal(get(h, "/close-after", &B, &r, -1), 0);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0);
    assert_int_equal(atomic_load(&S.conns), 3);
    /* A fresh connection that dies without a reply is an error, not retried. */
    agt_http_destroy(&h);
    assert_int_equal(agt_http_new(&h), 0);
    assert_int_equal(get(h, "/drop", &B, &r, -1), ACT_EIO);
    assert_non_null(strstr(r.error, "without a response"));
    assert_int_equal(atomic_load(&S.requests), 6);
    assert_int_equal(atomic_load(&S.conns), 4);
    agt_http_destroy(&h);
    return 0;
}

/* A server that closes the connection with its reply, though the head promised keep-alive:
 * the peek before reuse sees it (a new connection, no error), and since it closed so soon
 * after the reply, the client keeps none of its connections for a while. */
static int eager_close_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    assert_int_equal(get(h, "/close-with-reply", &B, &r, -1), 0);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0); /* the pooled one is found closed */
    assert_int_equal(atomic_load(&S.conns), 2);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0); /* not kept: a new one again */
    assert_int_equal(atomic_load(&S.conns), 3);
    assert_int_equal(atomic_load(&S.requests), 3);
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_server_closing_with_each_reply_is_noticed_and_not_kept(void **state) {
    (void)state;
    assert_int_equal(harness_run(eager_close_body, NULL, 0), 0);
}

static void test_http1_pooled_connection_closed_by_the_server_is_retried_once(void **state) {
    (void)state;
    assert_int_equal(harness_run(retry_body, NULL, 0), 0);
}

static int max_body_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/cl?n=100000", S.port);
    agt_http_req_t rq = {.url = url, .max_body = 1000, .on_body = collect, .ctx = &B};
    agt_http_resp_t r;
    B.n = 0;
    assert_int_equal(agt_http_perform(h, &rq, &r, -1), ACT_EMSGSIZE);
    assert_non_null(strstr(r.error, "over 1000 bytes"));
    assert_true(B.n <= 1000);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0); /* the cut connection is not reused */
    assert_int_equal(atomic_load(&S.conns), 2);
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_body_over_max_body_is_emsgsize(void **state) {
    (void)state;
    assert_int_equal(harness_run(max_body_body, NULL, 0), 0);
}

static int slow_task(void *arg, void **result) {
    (void)result;
    agt_http_resp_t r;
    body_t *b = malloc(sizeof(*b));
    int rc = get(arg, "/slow-body", b, &r, -1);
    free(b);
    return rc;
}

static int abort_body(void *arg, void **result) {
    (void)arg, (void)result;
    reset_counts();
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0);
    assert_int_equal(get(h, "/slow-body", &B, &r, act_deadline_in(200)), ACT_ETIMEDOUT);
    assert_string_equal(B.p, "0123456789"); /* the part that came */
    await_count(&S.aborted, 1);             /* the connection was dropped... */
    act_task_t *t;
    assert_int_equal(act_spawn(slow_task, h, NULL, &t), 0);
    await_count(&S.requests, 3);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    await_count(&S.aborted, 2);
    assert_int_equal(get(h, "/cl?n=5", &B, &r, -1), 0);
    assert_int_equal(atomic_load(&S.conns), 3); /* ...and not reused */
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_deadline_and_cancel_mid_body_drop_the_connection(void **state) {
    (void)state;
    assert_int_equal(harness_run(abort_body, NULL, 0), 0);
}

static int bad_reply_body(void *arg, void **result) {
    (void)arg, (void)result;
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    agt_http_resp_t r;
    assert_int_equal(get(h, "/badstatus", &B, &r, -1), ACT_EIO);
    assert_non_null(strstr(r.error, "bad status line"));
    assert_non_null(strstr(r.error, "2x0 Nope"));
    assert_int_equal(get(h, "/bighead", &B, &r, -1), ACT_EIO);
    assert_non_null(strstr(r.error, "over 65536 bytes"));
    /* Nobody listening. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    agt_http_req_t rq = {.url = url};
    assert_int_equal(agt_http_perform(h, &rq, &r, -1), ACT_EIO);
    assert_non_null(strstr(r.error, "refused"));
    /* Bad requests never leave. */
    const char *inj[] = {"X-A: 1\r\nX-B: 2"};
    rq.headers = inj, rq.n_headers = 1;
    assert_int_equal(agt_http_perform(h, &rq, &r, -1), ACT_EINVAL);
    agt_http_destroy(&h);
    return 0;
}

static void test_http1_bad_replies_and_refused_connections_are_eio(void **state) {
    (void)state;
    assert_int_equal(harness_run(bad_reply_body, NULL, 0), 0);
}

static void test_http1_takes_http_urls_unless_a_proxy_applies(void **state) {
    (void)state;
    assert_true(agt_h1_handles("http://127.0.0.1:8080/v1"));
    assert_true(agt_h1_handles("http://[::1]:8080/v1"));
    assert_false(agt_h1_handles("https://api.example.com/v1"));
    assert_false(agt_h1_handles("http://user@host/"));
    setenv("http_proxy", "http://proxy:3128", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    assert_false(agt_h1_handles("http://model.lan:8080/v1"));
    setenv("NO_PROXY", "localhost,.lan", 1);
    assert_true(agt_h1_handles("http://model.lan:8080/v1"));
    assert_true(agt_h1_handles("http://localhost/v1"));
    assert_false(agt_h1_handles("http://other.com/v1"));
    setenv("NO_PROXY", "*", 1);
    assert_true(agt_h1_handles("http://other.com/v1"));
    unsetenv("http_proxy");
    unsetenv("NO_PROXY");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_sequential_requests_share_one_connection),
        cmocka_unit_test(test_http1_reads_length_chunked_and_until_close_bodies),
        cmocka_unit_test(test_http1_sse_events_reach_the_caller_in_order_as_they_arrive),
        cmocka_unit_test(test_http1_pooled_connection_closed_by_the_server_is_retried_once),
        cmocka_unit_test(test_http1_server_closing_with_each_reply_is_noticed_and_not_kept),
        cmocka_unit_test(test_http1_body_over_max_body_is_emsgsize),
        cmocka_unit_test(test_http1_deadline_and_cancel_mid_body_drop_the_connection),
        cmocka_unit_test(test_http1_bad_replies_and_refused_connections_are_eio),
        cmocka_unit_test(test_http1_takes_http_urls_unless_a_proxy_applies),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
