/* http.c: HTTP requests from tasks (see http.h). http:// URLs go to the keep-alive client of
 * http1.c (unless a proxy applies, or ACTORBUS_HTTP_CLIENT=curl); the rest to libcurl here.
 * One curl multi handle per client; its
 * sockets are watched with uv_poll and its timer is a uv_timer on the loop's libuv, so the
 * loop thread only ever calls curl_multi_socket_action. curl's callbacks run in the
 * scheduler (not in a task): they only buffer bytes and set the transfer's act_event; the
 * task that waits on it hands the bytes to the caller, so caller code may block. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "actor/actor.h"
#include "http.h"
#include "http1.h"

#define AGT_HTTP_MAX_IDLE_CONNS 1024 /* idle connections one client keeps for reuse */
#define PAUSE_AT (256u << 10) /* buffered body bytes at which curl is paused (backpressure) */

typedef struct sock {
    uv_poll_t poll; /* on curl's socket */
    curl_socket_t fd;
    agt_http_t *h;
    struct sock *prev, *next; /* the client's open sockets */
} sock_t;

struct agt_http {
    CURLM *multi;
    act_loop_t *loop;  /* bound at the first request */
    uv_timer_t *timer; /* curl's timer; heap, freed by its close callback */
    sock_t *socks;     /* watched sockets */
    size_t inflight;   /* transfers attached */
    agt_h1_t *h1;      /* the http:// client, made on first use */
    bool curl_only;    /* ACTORBUS_HTTP_CLIENT=curl: everything through libcurl */
};

typedef struct xfer {
    CURL *easy;
    agt_http_t *h;
    const agt_http_req_t *req;
    agt_http_resp_t *resp;
    act_event_t wake; /* set by curl's callbacks: bytes came, or the end */
    char *pend;       /* body bytes not yet handed to on_body */
    size_t pend_n, pend_cap;
    char *spare; /* the other buffer (swapped with pend while delivering) */
    size_t spare_cap;
    size_t max_body;
    bool attached, done, paused, too_big, nomem, bad_coding;
    CURLcode result; /* curl's verdict once done */
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- libuv side: sockets and the timer ---- */

static void free_handle(uv_handle_t *hd) { free(hd); }

static void sock_close(agt_http_t *h, sock_t *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, free_handle); /* poll is the first member */
}

/* Hands every finished transfer to its task. */
static void check_done(agt_http_t *h) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(h->multi, easy); /* msg is invalid from here */
        x->attached = false;
        x->done = true;
        x->result = result;
        act_event_set(&x->wake);
    }
}

static void on_poll(uv_poll_t *p, int status, int events) {
    sock_t *s = p->data;
    agt_http_t *h = s->h;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(h->multi, s->fd, flags, &running); /* may close s (uv_close) */
    check_done(h);
}

/* Whatever curl does here may wake a task (bytes, the end). libuv runs timers before it
 * polls, so without uv_stop it would go on to block in the poll with that task ready, as
 * libactor's own timer callback knows too. */
static void on_timer(uv_timer_t *t) {
    agt_http_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
    uv_stop(t->loop);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one of curl's sockets. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    agt_http_t *h = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_close(h, s);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) return -1;
        if (uv_poll_init_socket(act_loop_uv(h->loop), &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = s;
        s->next = h->socks;
        if (h->socks) h->socks->prev = s;
        h->socks = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: curl wants on_timer after timeout_ms (-1: never). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    agt_http_t *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(h->timer);
    else
        uv_timer_start(h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int agt_http_new(agt_http_t **out) {
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) return ACT_EIO;
    agt_http_t *h = calloc(1, sizeof(*h));
    if (!h) return ACT_ENOMEM;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return ACT_ENOMEM;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* Keep idle connections for reuse: curl's default cache (4 per transfer added, shrinking
     * as transfers end) closed most of them between bursts, and bench/agents saw one new TCP
     * connection per six requests at 128 in flight. The bound keeps idle sockets in check. */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)AGT_HTTP_MAX_IDLE_CONNS);
    const char *which = getenv("ACTORBUS_HTTP_CLIENT");
    h->curl_only = which && strcmp(which, "curl") == 0;
    *out = h;
    return 0;
}

/* The first request binds the client to its loop (curl's timer lives on that libuv). */
static int bind_loop(agt_http_t *h) {
    act_loop_t *L = act_loop_current();
    if (!L || !act_current()) return ACT_EINVAL;
    if (h->loop) return h->loop == L ? 0 : ACT_EINVAL;
    h->timer = malloc(sizeof(*h->timer));
    if (!h->timer) return ACT_ENOMEM;
    uv_timer_init(act_loop_uv(L), h->timer);
    h->timer->data = h;
    h->loop = L;
    return 0;
}

void agt_http_destroy(agt_http_t **hp) {
    if (!hp || !*hp) return;
    agt_http_t *h = *hp;
    if (h->inflight) {
        fprintf(stderr, "agentrt: agt_http_destroy with %zu requests in flight\n", h->inflight);
        abort(); /* programmer misuse: a task still uses the client */
    }
    /* Stop watching while curl's sockets are still open, then let curl close them without
     * calling back into handles that are closing. */
    agt_h1_destroy(&h->h1);
    while (h->socks)
        sock_close(h, h->socks);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_cleanup(h->multi);
    if (h->timer) {
        uv_timer_stop(h->timer);
        uv_close((uv_handle_t *)h->timer, free_handle);
    }
    free(h);
    *hp = NULL;
}

/* ---- curl's easy callbacks (scheduler context: buffer and wake, nothing else) ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
    xfer_t *x = ud;
    size_t n = size * nmemb;
    if (x->pend_n >= PAUSE_AT) {
        x->paused = true; /* the task is behind: curl keeps the bytes until it catches up */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (x->resp->content_encoding[0]) {
        x->bad_coding = true;
        return 0; /* compressed bytes we cannot read: fails the transfer */
    }
    if (x->resp->body_len + n > x->max_body) {
        x->too_big = true;
        return 0; /* fails the transfer (CURLE_WRITE_ERROR) */
    }
    if (x->pend_n + n > x->pend_cap) {
        size_t cap = x->pend_cap ? x->pend_cap : 4096;
        while (cap < x->pend_n + n)
            cap *= 2;
        char *np = realloc(x->pend, cap);
        if (!np) {
            x->nomem = true;
            return 0;
        }
        x->pend = np;
        x->pend_cap = cap;
    }
    if (!x->resp->status) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp->status);
    memcpy(x->pend + x->pend_n, p, n);
    x->pend_n += n;
    x->resp->body_len += n;
    act_event_set(&x->wake);
    return n;
}

static void header_value(const char *v, size_t n, char *out, size_t cap) {
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

/* Keeps the headers we use; a new status line (after a 100 Continue, a redirect) resets. */
static size_t on_header(char *p, size_t size, size_t nitems, void *ud) {
    xfer_t *x = ud;
    size_t n = size * nitems;
    static const char ra[] = "retry-after:", ct[] = "content-type:", ce[] = "content-encoding:";
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        x->resp->retry_after_ms = -1;
        x->resp->content_type[0] = 0;
        x->resp->content_encoding[0] = 0;
    } else if (n > sizeof(ce) - 1 && strncasecmp(p, ce, sizeof(ce) - 1) == 0) {
        char v[sizeof(x->resp->content_encoding)];
        header_value(p + sizeof(ce) - 1, n - (sizeof(ce) - 1), v, sizeof(v));
        if (!agt_http_identity(v, strlen(v))) memcpy(x->resp->content_encoding, v, sizeof(v));
    } else if (n > sizeof(ra) - 1 && strncasecmp(p, ra, sizeof(ra) - 1) == 0) {
        char v[128];
        header_value(p + sizeof(ra) - 1, n - (sizeof(ra) - 1), v, sizeof(v));
        x->resp->retry_after_ms = agt_http_retry_after_ms(v, time(NULL));
    } else if (n > sizeof(ct) - 1 && strncasecmp(p, ct, sizeof(ct) - 1) == 0) {
        header_value(p + sizeof(ct) - 1, n - (sizeof(ct) - 1), x->resp->content_type,
                     sizeof(x->resp->content_type));
    }
    return n;
}

bool agt_http_identity(const char *v, size_t n) {
    return n == 0 || (n == 8 && strncasecmp(v, "identity", 8) == 0);
}

int64_t agt_http_retry_after_ms(const char *v, time_t now) {
    if (!v) return -1;
    while (*v == ' ')
        v++;
    if (*v >= '0' && *v <= '9') {
        int64_t s = 0;
        for (; *v >= '0' && *v <= '9'; v++)
            if (s < 100000000) s = s * 10 + (*v - '0'); /* saturates past ~3 years */
        while (*v == ' ')
            v++;
        return *v ? -1 : s * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == -1) return -1;
    return t <= now ? 0 : (int64_t)(t - now) * 1000;
}

/* ---- the transfer, in the calling task ---- */

static int xfer_setup(xfer_t *x, struct curl_slist **hdrs) {
    const agt_http_req_t *rq = x->req;
    CURL *e = x->easy = curl_easy_init();
    if (!e) return ACT_ENOMEM;
    struct curl_slist *l = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    if (!l) return ACT_ENOMEM;
    *hdrs = l;
    for (size_t i = 0; i < rq->n_headers; i++) {
        struct curl_slist *nl = curl_slist_append(l, rq->headers[i]); /* NULL: l intact */
        if (!nl) return ACT_ENOMEM;
        *hdrs = l = nl;
    }
    int64_t cto =
        rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : AGT_HTTP_DEFAULT_CONNECT_MS;
    int bad = curl_easy_setopt(e, CURLOPT_URL, rq->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    const char *method = rq->method ? rq->method : rq->body ? "POST" : "GET";
    if (rq->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    return bad ? ACT_EINVAL : 0;
}

/* Hands buffered bytes to on_body until none are left (more may arrive while it blocks). */
static int deliver(xfer_t *x) {
    while (x->pend_n) {
        char *p = x->pend;
        size_t n = x->pend_n, cap = x->pend_cap;
        x->pend = x->spare;
        x->pend_cap = x->spare_cap;
        x->pend_n = 0;
        x->spare = p;
        x->spare_cap = cap;
        if (x->paused) { /* room again: curl may write into pend right here */
            x->paused = false;
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        }
        if (x->req->on_body) {
            int rc = x->req->on_body(x->req->ctx, x->resp, p, n);
            if (rc) return rc;
        }
    }
    return 0;
}

static int finish(xfer_t *x) {
    agt_http_resp_t *r = x->resp;
    if (x->nomem) return ACT_ENOMEM;
    if (x->bad_coding) {
        snprintf(r->error, sizeof(r->error),
                 "response has Content-Encoding %s, which this client does not decode (it "
                 "asks for identity)", r->content_encoding);
        return ACT_EIO;
    }
    if (x->too_big) {
        snprintf(r->error, sizeof(r->error), "response body over %zu bytes", x->max_body);
        return ACT_EMSGSIZE;
    }
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (x->result == CURLE_OK && r->status > 0) return 0;
    snprintf(r->error, sizeof(r->error), "%s",
             x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
    return ACT_EIO;
}

static int xfer_run(xfer_t *x, int64_t deadline) {
    for (;;) {
        int rc = act_event_wait(&x->wake, deadline);
        if (rc) return rc;
        act_event_clear(&x->wake);
        rc = deliver(x);
        if (rc) return rc;
        if (x->done) return finish(x);
    }
}

int agt_http_perform(agt_http_t *h, const agt_http_req_t *req, agt_http_resp_t *resp,
                     int64_t deadline) {
    if (!h || !req || !req->url || !resp || (req->n_headers && !req->headers)) return ACT_EINVAL;
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_ms = -1;
    int rc = bind_loop(h);
    if (rc) return rc;
    if (!h->curl_only && agt_h1_handles(req->url)) {
        if (!h->h1 && (rc = agt_h1_new(&h->h1, act_loop_uv(h->loop))) != 0) return rc;
        h->inflight++;
        rc = agt_h1_perform(h->h1, req, resp, deadline);
        h->inflight--;
        return rc;
    }
    xfer_t x = {.h = h, .req = req, .resp = resp};
    x.max_body = req->max_body ? req->max_body : AGT_HTTP_DEFAULT_MAX_BODY;
    act_event_init(&x.wake);
    struct curl_slist *hdrs = NULL;
    rc = xfer_setup(&x, &hdrs);
    if (rc) goto done_free;
    CURLMcode mc = curl_multi_add_handle(h->multi, x.easy);
    if (mc != CURLM_OK) {
        rc = mc == CURLM_OUT_OF_MEMORY ? ACT_ENOMEM : ACT_EIO;
        goto done_free;
    }
    x.attached = true;
    h->inflight++;
    rc = xfer_run(&x, deadline);
    if (x.attached) /* cut short: removing it closes the connection, the server sees EOF */
        curl_multi_remove_handle(h->multi, x.easy);
    h->inflight--;
done_free:
    curl_easy_cleanup(x.easy); /* NULL-safe */
    curl_slist_free_all(hdrs);
    free(x.pend);
    free(x.spare);
    act_event_close(&x.wake);
    return rc;
}
