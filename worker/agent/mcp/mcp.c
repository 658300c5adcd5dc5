/* mcp.c: the MCP stdio client of mcp.h. One child process per client, three pipes on the
 * libuv loop under libactor. Requests are written as JSON lines and parked on their own event;
 * the stdout reader (a libuv callback, not a task) matches each response to its request by
 * id, hands the result over and sets the event, so any number of tasks can call at once.
 * The server is untrusted: a line that is not a message is counted, logged and skipped. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "mcp_internal.h"

#define CHUNK (64 * 1024)    /* one pipe read */
#define STDERR_MAX_LINE 1024 /* longer stderr lines are cut */
#define KILL_WAIT_MS 10000   /* SIGKILL is not refused: this only bounds a stuck kernel */
#define MAX_BAD_LOGGED 10    /* bad lines logged one by one, then every 1000th */

extern char **environ;

/* Accumulates one stream's bytes into lines of at most max bytes. */
typedef struct linebuf {
    char *p;
    size_t n, cap, max;
    bool skipping; /* dropping the rest of an over-long line */
} linebuf;

/* A request in flight; lives on its caller's stack, linked in the client while it waits. */
typedef struct mcp_req {
    struct mcp_req *prev, *next;
    int64_t id;
    act_event_t done; /* set by the reader once code and data are handed over */
    bool completed;
    int code;      /* 0, MCP_ERPC, MCP_EBAD_RESPONSE, MCP_ESERVER_EXITED, ACT_ECLOSED */
    uint8_t *data; /* msgpack of the result (or of the error object), malloc'd */
    size_t n;
} mcp_req;

struct mcp_client {
    mcp_opts_t o; /* the options with defaults; its strings point at the copies below */
    char *name, *cwd, *offer, *client_name, *client_version;
    char **argv, **env; /* NULL-terminated, owned */
    uv_process_t proc;
    uv_pipe_t in, out, err; /* the server's stdin, stdout, stderr */
    int open_handles;       /* handles whose close callback has not run */
    act_event_t closed_ev;  /* set when open_handles reaches 0 */
    act_event_t exit_ev;    /* set when the process has exited (or never started) */
    act_event_t idle_ev;    /* set when users reaches 0 while stopping */
    int pid;                /* 0 once reaped */
    bool exited, gone, stopping;
    int64_t exit_status;
    int term_signal;
    mcp_req pending; /* list head */
    size_t npending;
    int64_t next_id;
    unsigned users; /* tasks inside a call on this client */
    linebuf lout, lerr;
    int64_t err_window; /* start of the current stderr rate window (ms) */
    unsigned err_in_window, err_dropped;
    char protocol[32];
    char *server_info;
    bool tools_changed;
    mcp_stats_t st;
    char chunk[CHUNK]; /* read buffer: libuv hands out one read at a time */
};

/* ---- small helpers ---- */

/* Fails like any blocking call would (not in a task, cancelled, scope expired), else 0. */
static int checkpoint(void) {
    act_event_t e;
    act_event_init(&e);
    act_event_set(&e);
    int rc = act_event_wait(&e, -1);
    act_event_close(&e);
    return rc;
}

static int64_t earlier(int64_t a, int64_t b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

int64_t mcp__call_deadline(const mcp_client_t *c, int64_t deadline) {
    /* -1 is "none" here; act_deadline_in reads a negative duration as "now". */
    if (c->o.call_timeout_ms < 0) return deadline;
    return earlier(deadline, act_deadline_in(c->o.call_timeout_ms));
}

void mcp__enter(mcp_client_t *c) { c->users++; }

void mcp__leave(mcp_client_t *c) {
    if (--c->users == 0 && c->stopping) act_event_set(&c->idle_ev);
}

/* A log-safe copy of untrusted bytes: quotes, backslashes and control bytes replaced. */
void mcp__sanitize(char *dst, size_t cap, const char *p, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        dst[j++] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    dst[j] = 0;
}

static void bad_line(mcp_client_t *c, const char *reason, size_t bytes) {
    c->st.bad_lines++;
    if (c->st.bad_lines <= MAX_BAD_LOGGED || c->st.bad_lines % 1000 == 0)
        act_log(ACT_LOG_WARN, "mcp_bad_line", "server=%s reason=%s bytes=%zu count=%llu", c->name,
                reason, bytes, (unsigned long long)c->st.bad_lines);
}

/* ---- the pending list ---- */

static void req_link(mcp_client_t *c, mcp_req *r) {
    r->next = &c->pending;
    r->prev = c->pending.prev;
    c->pending.prev->next = r;
    c->pending.prev = r;
    c->npending++;
}

static void req_unlink(mcp_client_t *c, mcp_req *r) {
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->prev = r->next = r;
    c->npending--;
}

static mcp_req *req_find(mcp_client_t *c, int64_t id) {
    for (mcp_req *r = c->pending.next; r != &c->pending; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

/* Hands the outcome to the waiting task (data copied) and wakes it. */
static void req_complete(mcp_client_t *c, mcp_req *r, int code, const mcp__val_t *v) {
    req_unlink(c, r);
    r->completed = true;
    r->code = code;
    if (v) {
        r->data = malloc(v->raw_n ? v->raw_n : 1);
        if (r->data) {
            memcpy(r->data, v->raw, v->raw_n);
            r->n = v->raw_n;
        } else {
            r->code = ACT_ENOMEM;
        }
    }
    act_event_set(&r->done);
}

static void fail_all(mcp_client_t *c, int code) {
    while (c->pending.next != &c->pending)
        req_complete(c, c->pending.next, code, NULL);
}

/* ---- writing ---- */

typedef struct wreq {
    uv_write_t req;
    char data[];
} wreq;

static void on_written(uv_write_t *req, int status) {
    (void)status; /* a dead server is reported by its exit, not by each write */
    free(req);    /* the first member of its wreq */
}

/* Writes one msgpack message as a JSON line to the server's stdin. Never waits: libuv queues
 * what the pipe cannot take now, up to a bound. */
static int write_msg(mcp_client_t *c, const proto_buf_t *mp) {
    if (mp->failed) return ACT_ENOMEM;
    if (c->gone || uv_is_closing((uv_handle_t *)&c->in)) return MCP_ESERVER_EXITED;
    proto_buf_t js;
    proto_buf_init(&js);
    int rc = proto_raw_to_json((proto_raw_t){mp->p, mp->n}, &js);
    if (rc) {
        rc = rc == PROTO_ENOMEM ? ACT_ENOMEM : ACT_EINVAL;
        goto out_free_js;
    }
    rc = ACT_EMSGSIZE;
    if (js.n + 1 > c->o.max_line) goto out_free_js;
    rc = ACT_EAGAIN;
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->in);
    if (queued > 4 * c->o.max_line) goto out_free_js;
    rc = ACT_ENOMEM;
    wreq *w = malloc(sizeof(*w) + js.n + 1);
    if (!w) goto out_free_js;
    memcpy(w->data, js.p, js.n);
    w->data[js.n] = '\n';
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(js.n + 1));
    rc = uv_write(&w->req, (uv_stream_t *)&c->in, &b, 1, on_written);
    if (rc) {
        free(w);
        rc = MCP_ESERVER_EXITED; /* EPIPE and friends: the server is gone */
    }
out_free_js:
    proto_buf_free(&js);
    return rc;
}

/* {"jsonrpc":"2.0", ["id":id,] "method":method [, "params":params]}; id < 0: none. */
static int send_message(mcp_client_t *c, int64_t id, const char *method, proto_raw_t params) {
    proto_buf_t b;
    proto_buf_init(&b);
    msgpack_pack_map(&b.pk, 2 + (id >= 0) + (params.n > 0));
    proto_pack_cstr(&b, "jsonrpc");
    proto_pack_cstr(&b, "2.0");
    if (id >= 0) {
        proto_pack_cstr(&b, "id");
        msgpack_pack_int64(&b.pk, id);
    }
    proto_pack_cstr(&b, "method");
    proto_pack_cstr(&b, method);
    if (params.n) {
        proto_pack_cstr(&b, "params");
        proto_buf_raw(&b, params);
    }
    int rc = write_msg(c, &b);
    proto_buf_free(&b);
    return rc;
}

/* Tells the server to stop working on request id (MCP: notifications/cancelled). */
static void send_cancel(mcp_client_t *c, int64_t id, int why) {
    if (c->gone || c->stopping) return;
    proto_buf_t p;
    proto_buf_init(&p);
    msgpack_pack_map(&p.pk, 2);
    proto_pack_cstr(&p, "requestId");
    msgpack_pack_int64(&p.pk, id);
    proto_pack_cstr(&p, "reason");
    proto_pack_cstr(&p, why == ACT_ETIMEDOUT ? "timeout" : "cancelled");
    if (!p.failed && send_message(c, -1, "notifications/cancelled", (proto_raw_t){p.p, p.n}) == 0)
        c->st.cancelled++;
    proto_buf_free(&p);
}

/* Answers a request the server sent us: ping gets {}, anything else "method not found"
 * (this client offers no roots, sampling or elicitation). */
static void answer_server(mcp_client_t *c, const mcp__val_t *method, const mcp__val_t *id) {
    proto_buf_t b;
    proto_buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    proto_pack_cstr(&b, "jsonrpc");
    proto_pack_cstr(&b, "2.0");
    proto_pack_cstr(&b, "id");
    proto_buf_raw(&b, (proto_raw_t){id->raw, id->raw_n});
    if (mcp__str_eq(method, "ping")) {
        proto_pack_cstr(&b, "result");
        msgpack_pack_map(&b.pk, 0);
    } else {
        proto_pack_cstr(&b, "error");
        msgpack_pack_map(&b.pk, 2);
        proto_pack_cstr(&b, "code");
        msgpack_pack_int(&b.pk, -32601);
        proto_pack_cstr(&b, "message");
        proto_pack_cstr(&b, "Method not found");
    }
    (void)write_msg(c, &b);
    proto_buf_free(&b);
}

/* ---- reading ---- */

/* A message with a method: a notification, or a request the server makes of us. */
static void on_server_message(mcp_client_t *c, const mcp__val_t *method, const mcp__val_t *id) {
    c->st.notifications++;
    if (id->type != MCP__NONE)
        answer_server(c, method, id);
    else if (mcp__str_eq(method, "notifications/tools/list_changed"))
        c->tools_changed = true;
}

static void on_message(mcp_client_t *c, const mcp__val_t *m, size_t bytes) {
    mcp__val_t method, id, result, error;
    if (m->type != MCP__MAP) {
        bad_line(c, "not_an_object", bytes);
        return;
    }
    mcp__map_get(m, "method", &method);
    mcp__map_get(m, "id", &id);
    mcp__map_get(m, "result", &result);
    mcp__map_get(m, "error", &error);
    if (method.type == MCP__STR) {
        on_server_message(c, &method, &id);
        return;
    }
    if (method.type != MCP__NONE || id.type != MCP__INT || id.big) {
        bad_line(c, error.type == MCP__MAP ? "error_without_id" : "no_valid_id", bytes);
        return;
    }
    mcp_req *r = req_find(c, id.i);
    if (!r) {
        c->st.late++; /* its caller gave up (timeout, cancel) */
        return;
    }
    c->st.responses++;
    bool has_r = result.type != MCP__NONE, has_e = error.type != MCP__NONE;
    if (has_r == has_e || (has_e && error.type != MCP__MAP))
        req_complete(c, r, MCP_EBAD_RESPONSE, NULL);
    else
        req_complete(c, r, has_e ? MCP_ERPC : 0, has_e ? &error : &result);
}

static void on_stdout_line(mcp_client_t *c, const char *p, size_t n, bool cut) {
    if (cut) {
        bad_line(c, "too_long", n);
        return;
    }
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) return; /* blank lines carry nothing */
    proto_buf_t mp;
    proto_buf_init(&mp);
    mcp__val_t v;
    if (mcp__from_json(p, n, &mp) != 0 || !mcp__read(mp.p, mp.p + mp.n, &v)) {
        bad_line(c, "not_json", n);
    } else if (v.type == MCP__ARRAY) { /* a JSON-RPC batch */
        const uint8_t *cur = NULL;
        mcp__val_t e;
        while (mcp__array_next(&v, &cur, &e))
            on_message(c, &e, n);
    } else {
        on_message(c, &v, n);
    }
    proto_buf_free(&mp);
}

/* Rate-bounded: a chatty server cannot flood the worker's log. */
static void on_stderr_line(mcp_client_t *c, const char *p, size_t n, bool cut) {
    int64_t now = act_now();
    c->st.stderr_lines++;
    if (now - c->err_window >= 1000) {
        if (c->err_dropped)
            act_log(ACT_LOG_WARN, "mcp_stderr_dropped", "server=%s lines=%u", c->name,
                    c->err_dropped);
        c->err_window = now;
        c->err_in_window = c->err_dropped = 0;
    }
    if (c->err_in_window >= c->o.stderr_lines_per_s) {
        c->err_dropped++;
        c->st.stderr_dropped++;
        return;
    }
    c->err_in_window++;
    while (n && p[n - 1] == '\r')
        n--;
    char line[STDERR_MAX_LINE + 1];
    mcp__sanitize(line, sizeof line, p, n);
    act_log(ACT_LOG_INFO, "mcp_stderr", "server=%s line=\"%s\"%s", c->name, line,
            cut ? " truncated=1" : "");
}

typedef void line_fn(mcp_client_t *c, const char *p, size_t n, bool cut);

static bool lb_append(linebuf *lb, const char *p, size_t n) {
    if (lb->n + n > lb->cap) {
        size_t cap = lb->cap ? lb->cap : 4096;
        while (cap < lb->n + n)
            cap *= 2;
        if (cap > lb->max) cap = lb->max;
        char *np = realloc(lb->p, cap);
        if (!np) return false;
        lb->p = np;
        lb->cap = cap;
    }
    memcpy(lb->p + lb->n, p, n);
    lb->n += n;
    return true;
}

/* Splits bytes into lines; a line longer than max is handed over cut (its first max bytes)
 * and the rest of it skipped. Complete lines in one read are not copied. */
static void lb_feed(mcp_client_t *c, linebuf *lb, const char *p, size_t n, line_fn *fn) {
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (lb->skipping) {
            lb->skipping = !nl;
        } else if (take > lb->max - lb->n) {
            if (lb_append(lb, p, lb->max - lb->n))
                fn(c, lb->p, lb->n, true);
            else
                fn(c, p, 0, true);
            lb->n = 0;
            lb->skipping = !nl;
        } else if (nl && lb->n == 0) {
            fn(c, p, take, false);
        } else if (!lb_append(lb, p, take)) {
            fn(c, p, 0, true); /* out of memory: the line is lost like an over-long one */
            lb->n = 0;
            lb->skipping = !nl;
        } else if (nl) {
            fn(c, lb->p, lb->n, false);
            lb->n = 0;
        }
        if (lb->n == 0 && lb->cap > (1u << 20)) { /* do not keep a huge buffer for good */
            free(lb->p);
            lb->p = NULL;
            lb->cap = 0;
        }
        if (!nl) break;
        p = nl + 1;
        n -= take + 1;
    }
}

/* The server can no longer answer: fail what waits, refuse what comes, report it once. */
static void server_gone(mcp_client_t *c, const char *why) {
    if (c->gone) return;
    c->gone = true;
    fail_all(c, MCP_ESERVER_EXITED);
    if (c->stopping) return;
    act_log(ACT_LOG_WARN, "mcp_server_exited", "server=%s why=%s status=%lld signal=%d", c->name,
            why, (long long)c->exit_status, c->term_signal);
    if (c->o.on_exit) c->o.on_exit(c, c->exit_status, c->term_signal, c->o.on_exit_ctx);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    mcp_client_t *c = h->data;
    *buf = uv_buf_init(c->chunk, sizeof c->chunk);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    mcp_client_t *c = s->data;
    bool is_out = s == (uv_stream_t *)&c->out;
    if (nread > 0) {
        if (is_out)
            lb_feed(c, &c->lout, buf->base, (size_t)nread, on_stdout_line);
        else
            lb_feed(c, &c->lerr, buf->base, (size_t)nread, on_stderr_line);
    } else if (nread < 0) {
        uv_read_stop(s);
        if (is_out) server_gone(c, "stdout_closed");
    }
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
    mcp_client_t *c = p->data;
    c->exited = true;
    c->pid = 0;
    c->exit_status = status;
    c->term_signal = sig;
    act_event_set(&c->exit_ev);
    server_gone(c, "exited");
}

/* ---- requests ---- */

int mcp__request(mcp_client_t *c, const char *method, proto_raw_t params, int64_t deadline,
                 uint8_t **data, size_t *n) {
    *data = NULL;
    *n = 0;
    int rc = checkpoint();
    if (rc) return rc;
    if (c->stopping) return ACT_ECLOSED;
    if (c->gone) return MCP_ESERVER_EXITED;
    if (c->npending >= c->o.max_pending) return ACT_EAGAIN;
    mcp_req r;
    memset(&r, 0, sizeof r);
    act_event_init(&r.done);
    r.id = ++c->next_id;
    rc = send_message(c, r.id, method, params);
    if (rc) return rc;
    req_link(c, &r);
    c->st.requests++;
    int wrc = act_event_wait(&r.done, deadline);
    if (!r.completed) {
        req_unlink(c, &r);
        rc = wrc < 0 ? wrc : ACT_EINVAL;
        send_cancel(c, r.id, rc);
        act_log(ACT_LOG_INFO, "mcp_request_abandoned", "server=%s method=%s id=%lld error=%s",
                c->name, method, (long long)r.id, mcp_err_code(rc));
    } else {
        rc = wrc < 0 ? wrc : r.code;
    }
    act_event_close(&r.done);
    if (rc == 0 || rc == MCP_ERPC) {
        *data = r.data;
        *n = r.n;
    } else {
        free(r.data);
    }
    return rc;
}

/* Logs a JSON-RPC error object the server returned. */
void mcp__log_rpc_error(mcp_client_t *c, const char *method, const uint8_t *d, size_t n) {
    mcp__val_t e, code, msg;
    char text[256] = "";
    int64_t ecode = 0;
    if (mcp__read(d, d + n, &e)) {
        mcp__map_get(&e, "code", &code);
        mcp__map_get(&e, "message", &msg);
        if (code.type == MCP__INT && !code.big) ecode = code.i;
        if (msg.type == MCP__STR) mcp__sanitize(text, sizeof text, msg.s, msg.len);
    }
    act_log(ACT_LOG_INFO, "mcp_rpc_error", "server=%s method=%s code=%lld message=\"%s\"", c->name,
            method, (long long)ecode, text);
}

/* ---- start ---- */

static char *dup_or(const char *s, const char *dflt) { return strdup(s ? s : dflt); }

static size_t count(const char *const *v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* Does env_add override entry e (same key before '=')? */
static bool overridden(const char *e, const char *const *add) {
    const char *eq = strchr(e, '=');
    size_t k = eq ? (size_t)(eq - e) : strlen(e);
    for (size_t i = 0; add && add[i]; i++)
        if (strncmp(add[i], e, k) == 0 && (add[i][k] == '=' || add[i][k] == 0)) return true;
    return false;
}

/* The child's environment: base (opts->env or ours) without what env_add overrides, then
 * env_add. NULL in *out means "inherit" (nothing to add). */
static int build_env(mcp_client_t *c, const mcp_opts_t *o) {
    if (!o->env && !o->env_add) return 0;
    const char *const *base = o->env ? o->env : (const char *const *)environ;
    size_t nb = count(base), na = count(o->env_add), k = 0;
    c->env = calloc(nb + na + 1, sizeof(char *));
    if (!c->env) return ACT_ENOMEM;
    for (size_t i = 0; i < nb; i++) {
        if (overridden(base[i], o->env_add)) continue;
        if (!(c->env[k++] = strdup(base[i]))) return ACT_ENOMEM;
    }
    for (size_t i = 0; i < na; i++)
        if (!(c->env[k++] = strdup(o->env_add[i]))) return ACT_ENOMEM;
    return 0;
}

static int copy_opts(mcp_client_t *c, const mcp_opts_t *o) {
    size_t na = count(o->argv);
    c->o = *o;
    c->argv = calloc(na + 1, sizeof(char *));
    if (!c->argv) return ACT_ENOMEM;
    for (size_t i = 0; i < na; i++)
        if (!(c->argv[i] = strdup(o->argv[i]))) return ACT_ENOMEM;
    c->name = dup_or(o->name, o->argv[0]);
    c->cwd = o->cwd ? strdup(o->cwd) : NULL;
    c->offer = dup_or(o->protocol_version, MCP_PROTOCOL_VERSION);
    c->client_name = dup_or(o->client_name, "actorbus");
    c->client_version = dup_or(o->client_version, "0.1");
    if (!c->name || (o->cwd && !c->cwd) || !c->offer || !c->client_name || !c->client_version)
        return ACT_ENOMEM;
    if (!c->o.start_timeout_ms) c->o.start_timeout_ms = 30000;
    if (!c->o.call_timeout_ms) c->o.call_timeout_ms = 30000;
    if (c->o.stop_grace_ms <= 0) c->o.stop_grace_ms = 2000;
    if (!c->o.max_line) c->o.max_line = 4u << 20;
    if (!c->o.max_pending) c->o.max_pending = 256;
    if (!c->o.max_tools) c->o.max_tools = 1024;
    if (!c->o.stderr_lines_per_s) c->o.stderr_lines_per_s = 50;
    c->lout.max = c->o.max_line;
    c->lerr.max = STDERR_MAX_LINE;
    int rc = build_env(c, o);
    /* Nothing may point at the caller's memory after start returns. */
    c->o.name = c->name;
    c->o.argv = (const char *const *)c->argv;
    c->o.env = (const char *const *)c->env;
    c->o.env_add = NULL;
    c->o.cwd = c->cwd;
    c->o.protocol_version = c->offer;
    c->o.client_name = c->client_name;
    c->o.client_version = c->client_version;
    return rc;
}

static void on_handle_closed(uv_handle_t *h) {
    mcp_client_t *c = h->data;
    if (--c->open_handles == 0) act_event_set(&c->closed_ev);
}

static void close_handle(mcp_client_t *c, uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
    (void)c;
}

/* Initialises the four handles (so stop can always close them) and spawns the server. */
static int spawn(mcp_client_t *c) {
    uv_loop_t *uv = act_loop_uv(act_loop_current());
    uv_pipe_t *pipes[3] = {&c->in, &c->out, &c->err};
    for (int i = 0; i < 3; i++) {
        uv_pipe_init(uv, pipes[i], 0);
        pipes[i]->data = c;
        c->open_handles++;
    }
    uv_stdio_container_t io[3];
    for (int i = 0; i < 3; i++) {
        io[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
        io[i].data.stream = (uv_stream_t *)pipes[i];
    }
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = on_proc_exit;
    po.file = c->argv[0];
    po.args = c->argv;
    po.env = c->env;
    po.cwd = c->cwd;
    po.stdio_count = 3;
    po.stdio = io;
    po.flags = UV_PROCESS_DETACHED; /* its own process group, which stop can signal whole */
    c->proc.data = c;
    int rc = uv_spawn(uv, &c->proc, &po);
    c->open_handles++; /* initialised by uv_spawn even when it fails */
    if (rc) {
        c->exited = c->gone = true;
        act_event_set(&c->exit_ev);
        act_log(ACT_LOG_ERROR, "mcp_spawn_failed", "server=%s program=%s error=\"%s\"", c->name,
                c->argv[0], uv_strerror(rc));
        return rc == UV_EACCES ? ACT_EPERM : rc;
    }
    c->pid = c->proc.pid;
    uv_read_start((uv_stream_t *)&c->out, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&c->err, on_alloc, on_read);
    return 0;
}

/* Checks the initialize result: a protocol version we speak, and keeps serverInfo. */
static int take_init_result(mcp_client_t *c, const uint8_t *d, size_t n) {
    static const char *const known[] = MCP_PROTOCOL_VERSIONS;
    mcp__val_t r, ver, info;
    if (!mcp__read(d, d + n, &r) || r.type != MCP__MAP) return MCP_EBAD_RESPONSE;
    mcp__map_get(&r, "protocolVersion", &ver);
    if (ver.type != MCP__STR) return MCP_EBAD_RESPONSE;
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok |= mcp__str_eq(&ver, known[i]);
    char got[sizeof c->protocol];
    mcp__sanitize(got, sizeof got, ver.s, ver.len);
    if (!ok) {
        act_log(ACT_LOG_ERROR, "mcp_unsupported_version", "server=%s offered=%s got=%s", c->name,
                c->offer, got);
        return MCP_EVERSION;
    }
    memcpy(c->protocol, got, sizeof got);
    mcp__map_get(&r, "serverInfo", &info);
    c->server_info = info.type == MCP__MAP ? mcp__to_json(&info) : strdup("{}");
    return c->server_info ? 0 : ACT_ENOMEM;
}

static int handshake(mcp_client_t *c, int64_t deadline) {
    proto_buf_t p;
    proto_buf_init(&p);
    msgpack_pack_map(&p.pk, 3);
    proto_pack_cstr(&p, "protocolVersion");
    proto_pack_cstr(&p, c->offer);
    proto_pack_cstr(&p, "capabilities");
    msgpack_pack_map(&p.pk, 0);
    proto_pack_cstr(&p, "clientInfo");
    msgpack_pack_map(&p.pk, 2);
    proto_pack_cstr(&p, "name");
    proto_pack_cstr(&p, c->client_name);
    proto_pack_cstr(&p, "version");
    proto_pack_cstr(&p, c->client_version);
    uint8_t *d = NULL;
    size_t n = 0;
    int rc = p.failed ? ACT_ENOMEM
                      : mcp__request(c, "initialize", (proto_raw_t){p.p, p.n}, deadline, &d, &n);
    proto_buf_free(&p);
    if (rc == MCP_ERPC) mcp__log_rpc_error(c, "initialize", d, n);
    if (rc == 0) rc = take_init_result(c, d, n);
    free(d);
    if (rc == 0) rc = send_message(c, -1, "notifications/initialized", (proto_raw_t){NULL, 0});
    return rc;
}

static void free_client(mcp_client_t *c) {
    for (size_t i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    for (size_t i = 0; c->env && c->env[i]; i++)
        free(c->env[i]);
    free(c->argv);
    free(c->env);
    free(c->name);
    free(c->cwd);
    free(c->offer);
    free(c->client_name);
    free(c->client_version);
    free(c->server_info);
    free(c->lout.p);
    free(c->lerr.p);
    free(c);
}

/* A server that dies must not kill the worker with SIGPIPE on the next write. */
static void ignore_sigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
}

int mcp_client_start(mcp_client_t **out, const mcp_opts_t *opts) {
    *out = NULL;
    if (!opts || !opts->argv || !opts->argv[0] || !opts->argv[0][0]) return ACT_EINVAL;
    int rc = checkpoint();
    if (rc) return rc;
    mcp_client_t *c = calloc(1, sizeof(*c));
    if (!c) return ACT_ENOMEM;
    c->pending.prev = c->pending.next = &c->pending;
    c->exit_status = -1;
    act_event_init(&c->closed_ev);
    act_event_init(&c->exit_ev);
    act_event_init(&c->idle_ev);
    rc = copy_opts(c, opts);
    if (rc) {
        free_client(c);
        return rc;
    }
    ignore_sigpipe();
    int64_t deadline = act_deadline_in(c->o.start_timeout_ms);
    rc = spawn(c);
    if (rc == 0) rc = handshake(c, deadline);
    if (rc) {
        (void)mcp_client_stop(&c);
        return rc;
    }
    act_log(ACT_LOG_INFO, "mcp_start", "server=%s pid=%d protocol=%s", c->name, c->pid,
            c->protocol);
    *out = c;
    return 0;
}

/* ---- stop ---- */

/* Closes stdin, then escalates: SIGTERM, SIGKILL, each to the server's process group while its
 * leader is not reaped (so the group id cannot have been reused). Returns how far it had to
 * go (0, 1, 2). */
static int end_process(mcp_client_t *c) {
    static const int sigs[] = {0, SIGTERM, SIGKILL};
    int how = 0;
    close_handle(c, (uv_handle_t *)&c->in); /* EOF: the stdio transport's "please exit" */
    for (int step = 0; step < 3 && !c->exited; step++) {
        if (step) { /* the whole group: a wrapper's children (npx -> node) go too */
            if (kill(-c->pid, sigs[step]) != 0) uv_process_kill(&c->proc, sigs[step]);
            how = step;
        }
        (void)act_event_wait(&c->exit_ev,
                             act_deadline_in(step < 2 ? c->o.stop_grace_ms : KILL_WAIT_MS));
    }
    if (!c->exited) act_log(ACT_LOG_ERROR, "mcp_stop_stuck", "server=%s pid=%d", c->name, c->pid);
    return how;
}

int mcp_client_stop(mcp_client_t **cp) {
    mcp_client_t *c = cp ? *cp : NULL;
    if (!c) return 0;
    if (!act_current()) return ACT_EINVAL;
    *cp = NULL;
    act_scope_t s;
    act_scope_enter(&s, -1, ACT_SCOPE_SHIELD); /* cleanup runs even in a cancelled task */
    bool was_alive = !c->gone;
    c->stopping = true;
    fail_all(c, ACT_ECLOSED);
    while (c->users) {
        act_event_clear(&c->idle_ev);
        (void)act_event_wait(&c->idle_ev, -1);
    }
    int how = end_process(c);
    close_handle(c, (uv_handle_t *)&c->out);
    close_handle(c, (uv_handle_t *)&c->err);
    close_handle(c, (uv_handle_t *)&c->proc);
    while (c->open_handles)
        (void)act_event_wait(&c->closed_ev, -1);
    act_scope_leave(&s);
    static const char *const hows[] = {"exit", "sigterm", "sigkill"};
    act_log(ACT_LOG_INFO, "mcp_stop", "server=%s how=%s was_alive=%d status=%lld signal=%d",
            c->name, hows[how], was_alive, (long long)c->exit_status, c->term_signal);
    free_client(c);
    return how;
}

/* ---- accessors and codes ---- */

int mcp_client_pid(const mcp_client_t *c) { return c->pid; }
bool mcp_client_alive(const mcp_client_t *c) { return !c->gone; }
const char *mcp_client_protocol(const mcp_client_t *c) { return c->protocol; }
const char *mcp_client_server_info(const mcp_client_t *c) {
    return c->server_info ? c->server_info : "{}";
}
bool mcp_client_tools_changed(const mcp_client_t *c) { return c->tools_changed; }
void mcp_client_stats(const mcp_client_t *c, mcp_stats_t *out) { *out = c->st; }

const char *mcp__name(const mcp_client_t *c) { return c->name; }
size_t mcp__max_tools(const mcp_client_t *c) { return c->o.max_tools; }
void mcp__tools_listed(mcp_client_t *c) { c->tools_changed = false; }

/* MCP's own readings of libactor's codes; the rest (the table's codes, ok, timeout, cancelled,
 * bad_request, too_large, overloaded, internal) are proto_err_code's. */
const char *mcp_err_code(int code) {
    switch (code) {
    case ACT_ECLOSED:
        return "mcp_closed";
    case ACT_ENOENT:
    case ACT_EPERM:
        return "mcp_spawn_failed";
    default:
        return proto_err_code(code);
    }
}

const char *mcp_strerror(int code) {
    const char *text = proto_err_text(code);
    return text ? text : act_strerror(code);
}
