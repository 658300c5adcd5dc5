/* broker/session_requests.c: the broker's end of the session store (session.h): opening the
 * store --sessions names, the read-only client requests session.get, session.list and
 * session.delete (proto/PROTOCOL.md, "Sessions"), and the append the runner will call. The
 * store checks every name, bound and byte; its errors go back to the client as they are. */
#include "broker.h"

#include <stdio.h>
#include <string.h>

#include "pg.h"

/* The path or URL for the log, without a URL's password (postgresql://user:secret@host). */
static void base_log_url(char *out, size_t cap, const char *path) {
    char copy[BRK_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    char *at = strchr(copy, '@'), *scheme = strstr(copy, "://");
    char *colon = scheme && at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (colon) memmove(colon, at, strlen(at) + 1);
    base_log_str(out, cap, copy, strlen(copy));
}

static bool in_memory(const char *path) {
    return path[0] == '\0' || strcmp(path, ":memory:") == 0;
}

int brk_sessions_open(brk_t *b) {
    brk_sess_limits_t lim;
    brk_sess_err_t err = {0};
    brk_sess_limits_default(&lim);
    lim.max_sessions = b->cfg.max_sessions;
    lim.max_log_events = (uint32_t)b->cfg.session_max_events;
    lim.max_log_bytes = (size_t)b->cfg.session_max_bytes;
    /* Events one session.get returns stay within --max-reply (the newest first): one small
     * request cannot make the broker build and queue tens of MiB. */
    if (lim.max_get_bytes > b->cfg.max_reply) lim.max_get_bytes = (size_t)b->cfg.max_reply;
    bool mem = in_memory(b->cfg.sessions);
    const brk_store_ops_t *ops = mem ? &brk_store_mem
                                 : brk_pg_is_url(b->cfg.sessions) ? &brk_store_pg
                                                                  : &brk_store_sqlite;
    int rc = brk_store_open(&b->store, ops, b->cfg.sessions, &lim, &err);
    char path[300];
    base_log_url(path, sizeof path, b->cfg.sessions);
    if (rc) {
        char why[300];
        base_log(BASE_LOG_ERROR, "sessions_failed", "path=%s error=%s", path,
                 base_log_str(why, sizeof why, err.message, strlen(err.message)));
        return rc;
    }
    /* A pair: a store call that hangs must not outlast the fence (lease.c) by much */
    if (b->cfg.pair) brk_store_pg_set_timeout(b->store, (int64_t)b->cfg.fence_ms);
    base_log(BASE_LOG_INFO, "sessions", "store=%s path=%s sessions=%llu max_sessions=%llu",
             brk_store_name(b->store), mem ? "-" : path,
             (unsigned long long)brk_store_count(b->store),
             (unsigned long long)lim.max_sessions);
    brk_reserve_open(b);
    return 0;
}

void brk_sessions_close(brk_t *b) {
    brk_store_close(&b->store);
    brk_reserve_close(b);
}

int brk_session_append(brk_t *b, proto_str_t session, const brk_sess_event_t *ev,
                       proto_raw_t delta, uint64_t *seq, brk_sess_err_t *err) {
    return brk_store_append(b->store, session, ev, delta, base_unix_ms(), seq, err);
}

/* ---- replies ---- */

static void send_out(brk_t *b, const brk_in_t *in, proto_raw_t id) {
    if (b->out.failed) {
        brk_reply_error(b, in, id, "internal", "out of memory");
        return;
    }
    int rc = brk_send(b, in->sock, in->id, in->idlen, in->req, b->out.p, b->out.n);
    if (rc < 0) base_log(BASE_LOG_DEBUG, "send_failed", "what=session_reply errno=%d", -rc);
}

static void key_str(proto_buf_t *o, const char *key, const char *s, size_t n) {
    proto_pack_cstr(o, key);
    proto_pack_str(o, s, n);
}

static void key_int(proto_buf_t *o, const char *key, int64_t v) {
    proto_pack_cstr(o, key);
    msgpack_pack_int64(&o->pk, v);
}

void brk_session_pack_event(proto_buf_t *o, const brk_sess_event_t *e) {
    msgpack_pack_map(&o->pk, 6);
    key_int(o, "seq", (int64_t)e->seq);
    key_str(o, "id", e->id.p, e->id.n);
    key_str(o, "invocation", e->invocation.p, e->invocation.n);
    key_str(o, "author", e->author.p, e->author.n);
    key_int(o, "ts_ms", e->ts_ms);
    proto_pack_cstr(o, "event");
    proto_buf_raw(o, e->body); /* the stored msgpack value itself, not a bin of it */
}

/* {session, app, user, created_ms, updated_ms, events_total, state, events: [...]} */
static void pack_session(proto_buf_t *o, const brk_session_t *s) {
    msgpack_pack_map(&o->pk, 8);
    key_str(o, "session", s->id, strlen(s->id));
    key_str(o, "app", s->app, strlen(s->app));
    key_str(o, "user", s->user, strlen(s->user));
    key_int(o, "created_ms", s->created_ms);
    key_int(o, "updated_ms", s->updated_ms);
    key_int(o, "events_total", (int64_t)s->n_events);
    proto_pack_cstr(o, "state");
    proto_buf_raw(o, s->state);
    proto_pack_cstr(o, "events");
    msgpack_pack_array(&o->pk, (uint32_t)s->n_got);
    for (size_t i = 0; i < s->n_got; i++) brk_session_pack_event(o, &s->events[i]);
}

/* {sessions: [{session, app, user, created_ms, updated_ms, events}], next: cursor | nil} */
static void pack_page(proto_buf_t *o, const brk_sess_page_t *p) {
    msgpack_pack_map(&o->pk, 2);
    proto_pack_cstr(o, "sessions");
    msgpack_pack_array(&o->pk, (uint32_t)p->n);
    for (size_t i = 0; i < p->n; i++) {
        const brk_sess_info_t *r = &p->items[i];
        msgpack_pack_map(&o->pk, 6);
        key_str(o, "session", r->id, strlen(r->id));
        key_str(o, "app", r->app, strlen(r->app));
        key_str(o, "user", r->user, strlen(r->user));
        key_int(o, "created_ms", r->created_ms);
        key_int(o, "updated_ms", r->updated_ms);
        key_int(o, "events", (int64_t)r->n_events);
    }
    proto_pack_cstr(o, "next");
    if (p->next) proto_pack_cstr(o, p->next);
    else msgpack_pack_nil(&o->pk);
}

static uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

static void store_error(brk_t *b, const brk_in_t *in, const proto_msg_t *m,
                        const brk_sess_err_t *err) {
    brk_reply_error(b, in, m->id, err->code ? err->code : "internal", "%s", err->message);
}

static void on_get(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    brk_sess_err_t err = {0};
    brk_session_t *s = NULL;
    uint32_t n = m->has_events ? clamp32(m->events) : BRK_SESS_DEFAULT_EVENTS;
    if (brk_store_get(b->store, m->session, m->app, m->user, n, &s, &err) != 0) {
        store_error(b, in, m, &err);
        return;
    }
    if (proto_enc_result_begin(&b->out, m->id) == 0) pack_session(&b->out, s);
    brk_session_free(&s);
    send_out(b, in, m->id);
}

static void on_list(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    brk_sess_err_t err = {0};
    brk_sess_page_t page;
    brk_sess_page_init(&page);
    brk_sess_filter_t f = {m->app, m->user, m->after, clamp32(m->limit)};
    if (brk_store_list(b->store, &f, &page, &err) != 0) {
        store_error(b, in, m, &err);
        return;
    }
    if (proto_enc_result_begin(&b->out, m->id) == 0) pack_page(&b->out, &page);
    brk_sess_page_free(&page);
    send_out(b, in, m->id);
}

static void on_delete(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    brk_sess_err_t err = {0};
    int rc = brk_store_delete(b->store, m->session, &err);
    /* A full disk ("database or disk is full"): the reserve makes room for this one. */
    if (rc == BRK_SESS_EIO && strstr(err.message, "is full") && brk_reserve_release(b))
        rc = brk_store_delete(b->store, m->session, &err);
    if (rc >= 0) brk_reserve_refill(b);
    if (rc < 0) {
        store_error(b, in, m, &err);
        return;
    }
    char name[80];
    if (rc) base_log(BASE_LOG_INFO, "session_deleted", "session=%s",
                     base_log_str(name, sizeof name, m->session.p, m->session.n));
    if (proto_enc_result_begin(&b->out, m->id) == 0) {
        msgpack_pack_map(&b->out.pk, 1);
        proto_pack_cstr(&b->out, "deleted");
        if (rc) msgpack_pack_true(&b->out.pk);
        else msgpack_pack_false(&b->out.pk);
    }
    send_out(b, in, m->id);
}

void brk_session_request(brk_t *b, const brk_in_t *in, const proto_msg_t *m) {
    switch (m->type) {
    case PROTO_SESSION_GET: on_get(b, in, m); break;
    case PROTO_SESSION_LIST: on_list(b, in, m); break;
    case PROTO_SESSION_DELETE: on_delete(b, in, m); break;
    default: break;
    }
}
