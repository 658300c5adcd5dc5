/* proto/src/encode.c: the growable output buffer (msgpack-c's packer writes into it through
 * a callback) and one encoder per message of proto/PROTOCOL.md. Each encoder resets the
 * buffer and writes exactly one map; the tests decode every one of them back. */
#include <stdlib.h>

#include "internal.h"

int proto__buf_grow(proto_buf_t *b, size_t extra) {
    if (b->failed) return -1;
    if (extra <= b->cap - b->n) return 0;
    if (extra > SIZE_MAX / 2 - b->n) goto fail;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) goto fail;
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = true;
    return -1;
}

static int buf_write(void *data, const char *p, size_t n) {
    proto_buf_t *b = data;
    proto__buf_put(b, p, n);
    return b->failed ? -1 : 0;
}

void proto_buf_init(proto_buf_t *b) {
    b->p = NULL;
    b->n = b->cap = 0;
    b->failed = false;
    msgpack_packer_init(&b->pk, b, buf_write);
}

void proto_buf_reset(proto_buf_t *b) {
    b->n = 0;
    b->failed = false;
}

void proto_buf_free(proto_buf_t *b) {
    free(b->p);
    proto_buf_init(b);
}

void proto_buf_raw(proto_buf_t *b, proto_raw_t raw) {
    proto__buf_put(b, raw.p, raw.n);
}

bool proto_buf_map_grow(proto_buf_t *b, unsigned k) {
    uint8_t *p = b->p;
    if (b->n == 0 || k > 0xffff) return false;
    if (p[0] >= 0x80 && p[0] <= 0x8f) { /* fixmap */
        if ((p[0] & 0x0f) + k > 15) return false;
        p[0] = (uint8_t)(p[0] + k);
        return true;
    }
    if (p[0] != 0xde || b->n < 3) return false; /* map16 */
    unsigned n = (unsigned)p[1] << 8 | p[2];
    if (n + k > 0xffff) return false;
    n += k;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)n;
    return true;
}

void proto__pack_str_slow(proto_buf_t *b, const char *s, size_t n) {
    if (n < 32) { /* fixstr (field names, most values): header and body in one write */
        if (proto__buf_reserve(b, n + 1)) return;
        b->p[b->n] = (uint8_t)(0xa0 | n);
        if (n) memcpy(b->p + b->n + 1, s, n);
        b->n += n + 1;
        return;
    }
    msgpack_pack_str(&b->pk, n);
    msgpack_pack_str_body(&b->pk, s, n);
}

void proto_pack_header(proto_buf_t *b, proto_type_t type, uint32_t n_fields) {
    size_t n;
    const char *name = proto__type_row(type, &n);
    if (n_fields + 2 <= 15) { /* every message but the largest: one write of known bytes */
        /* the name's whole row is copied (a fixed size: two moves, no memcpy call); the
         * bytes past the name are overwritten by what follows */
        if (proto__buf_reserve(b, 10 + PROTO__TYPE_ROW)) return;
        uint8_t *p = b->p + b->n;
        p[0] = (uint8_t)(0x80 | (n_fields + 2));
        memcpy(p + 1, "\xa1v\x01\xa4type", 8); /* "v": PROTO_VERSION, "type": */
        _Static_assert(PROTO_VERSION < 0x80, "the version packs as a positive fixint");
        p[9] = (uint8_t)(0xa0 | n);
        memcpy(p + 10, name, PROTO__TYPE_ROW);
        b->n += 10 + n;
        return;
    }
    msgpack_pack_map(&b->pk, n_fields + 2);
    proto_pack_cstr(b, "v");
    msgpack_pack_int(&b->pk, PROTO_VERSION);
    proto_pack_cstr(b, "type");
    proto_pack_cstr(b, name);
}

/* A raw value, or nil when absent. */
static void pack_raw_or_nil(proto_buf_t *b, proto_raw_t raw) {
    if (raw.n) proto_buf_raw(b, raw);
    else proto__pack_nil(b);
}

static void pack_key_raw(proto_buf_t *b, const char *key, proto_raw_t raw) {
    proto_pack_cstr(b, key);
    pack_raw_or_nil(b, raw);
}

int proto_enc_query(proto_buf_t *b, proto_raw_t id, proto_str_t agent, proto_raw_t input,
                    proto_str_t session, int64_t timeout_ms, bool idempotent) {
    proto_query_t q = {.id = id, .agent = agent, .input = input, .session = session,
                       .timeout_ms = timeout_ms, .idempotent = idempotent};
    return proto_enc_query_msg(b, &q);
}

int proto_enc_query_msg(proto_buf_t *b, const proto_query_t *q) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_QUERY, 2 + (q->input.n > 0) + (q->session.n > 0) +
                                          (q->timeout_ms >= 0) + q->idempotent +
                                          (q->app.n > 0) + (q->user.n > 0) +
                                          (q->branch.n > 0) + q->has_parent);
    pack_key_raw(b, "id", q->id);
    pack_key_str(b, "agent", q->agent);
    if (q->input.n) pack_key_raw(b, "input", q->input);
    if (q->session.n) pack_key_str(b, "session", q->session);
    if (q->timeout_ms >= 0) pack_key_u64(b, "timeout_ms", (uint64_t)q->timeout_ms);
    if (q->idempotent) {
        proto_pack_cstr(b, "idempotent");
        msgpack_pack_true(&b->pk);
    }
    if (q->app.n) pack_key_str(b, "app", q->app);
    if (q->user.n) pack_key_str(b, "user", q->user);
    if (q->branch.n) pack_key_str(b, "branch", q->branch);
    if (q->has_parent) pack_key_u64(b, "parent", q->parent);
    return done(b);
}

int proto_enc_cancel_id(proto_buf_t *b, proto_raw_t id) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_CANCEL, 1);
    pack_key_raw(b, "id", id);
    return done(b);
}

int proto_enc_publish(proto_buf_t *b, proto_str_t topic, proto_raw_t data, proto_raw_t id) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_PUBLISH, 2 + (id.n > 0));
    pack_key_str(b, "topic", topic);
    pack_key_raw(b, "data", data);
    if (id.n) pack_key_raw(b, "id", id);
    return done(b);
}

int proto_enc_status_request(proto_buf_t *b, proto_raw_t id) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_STATUS, id.n > 0);
    if (id.n) pack_key_raw(b, "id", id);
    return done(b);
}

static void pack_code_message(proto_buf_t *b, const char *code, const char *message) {
    proto_pack_cstr(b, "code");
    proto_pack_cstr(b, code ? code : "internal");
    proto_pack_cstr(b, "message");
    proto_pack_cstr(b, message);
}

int proto_enc_reply(proto_buf_t *b, const proto_reply_t *r, uint32_t extra) {
    proto_buf_reset(b);
    proto_pack_header(b, r->type, (r->type == PROTO_RESULT ? 2 : 3) + extra);
    pack_key_raw(b, "id", r->id);
    if (r->type == PROTO_EVENT) {
        pack_key_u64(b, "seq", r->seq);
        pack_key_raw(b, "event", r->payload);
    } else if (r->type == PROTO_RESULT) {
        pack_key_raw(b, "output", r->payload);
    } else {
        proto_pack_cstr(b, "code");
        if (r->code.n) proto_pack_str(b, r->code.p, r->code.n);
        else proto_pack_cstr(b, "internal");
        proto_pack_cstr(b, "message");
        proto_pack_str(b, r->message.p, r->message.n);
    }
    return done(b);
}

int proto_enc_event(proto_buf_t *b, proto_raw_t id, uint64_t seq, proto_raw_t event) {
    proto_reply_t r = {.type = PROTO_EVENT, .id = id, .seq = seq, .payload = event};
    return proto_enc_reply(b, &r, 0);
}

int proto_enc_result(proto_buf_t *b, proto_raw_t id, proto_raw_t output) {
    proto_reply_t r = {.type = PROTO_RESULT, .id = id, .payload = output};
    return proto_enc_reply(b, &r, 0);
}

int proto_enc_error(proto_buf_t *b, proto_raw_t id, const char *code, const char *message) {
    proto_reply_t r = {.type = PROTO_ERROR, .id = id, .code = proto_str_of(code ? code : ""),
                       .message = proto_str_of(message ? message : "")};
    return proto_enc_reply(b, &r, 0);
}

int proto_enc_bus_publish(proto_buf_t *b, proto_str_t topic, proto_raw_t data) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_EVENT, 2);
    proto_pack_cstr(b, "topic");
    proto_pack_str(b, topic.p, topic.n);
    pack_key_raw(b, "data", data);
    return done(b);
}

int proto_enc_ready(proto_buf_t *b, proto_str_t name, uint64_t capacity,
                    const char *const *agents, size_t n_agents, uint64_t heartbeat_ms) {
    return proto_enc_ready_history(b, name, capacity, agents, NULL, n_agents, heartbeat_ms);
}

int proto_enc_ready_history(proto_buf_t *b, proto_str_t name, uint64_t capacity,
                            const char *const *agents, const bool *history, size_t n_agents,
                            uint64_t heartbeat_ms) {
    size_t n_hist = 0;
    for (size_t i = 0; history && i < n_agents; i++) n_hist += history[i];
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_READY, 3 + (heartbeat_ms > 0) + (n_hist > 0));
    pack_key_str(b, "name", name);
    pack_key_u64(b, "capacity", capacity);
    proto_pack_cstr(b, "agents");
    msgpack_pack_array(&b->pk, n_agents);
    for (size_t i = 0; i < n_agents; i++) proto_pack_cstr(b, agents[i]);
    if (heartbeat_ms > 0) pack_key_u64(b, "heartbeat_ms", heartbeat_ms);
    if (n_hist > 0) {
        proto_pack_cstr(b, "history_agents");
        msgpack_pack_array(&b->pk, n_hist);
        for (size_t i = 0; i < n_agents; i++)
            if (history[i]) proto_pack_cstr(b, agents[i]);
    }
    return done(b);
}

int proto_enc_work(proto_buf_t *b, uint64_t job, proto_str_t agent, proto_raw_t input,
                   proto_str_t session, int64_t timeout_ms, uint64_t attempt) {
    proto_work_t w = {.job = job, .agent = agent, .input = input, .session = session,
                      .timeout_ms = timeout_ms, .attempt = attempt};
    return proto_enc_work_msg(b, &w);
}

int proto_enc_work_msg(proto_buf_t *b, const proto_work_t *w) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_WORK, 4 + (w->session.n > 0) + (w->timeout_ms >= 0) +
                                         (w->invocation.n > 0) + (w->branch.n > 0) +
                                         (w->state.n > 0) + (w->history.n > 0));
    pack_key_u64(b, "job", w->job);
    pack_key_str(b, "agent", w->agent);
    pack_key_raw(b, "input", w->input);
    if (w->session.n) pack_key_str(b, "session", w->session);
    if (w->timeout_ms >= 0) pack_key_u64(b, "timeout_ms", (uint64_t)w->timeout_ms);
    pack_key_u64(b, "attempt", w->attempt);
    if (w->invocation.n) pack_key_str(b, "invocation", w->invocation);
    if (w->branch.n) pack_key_str(b, "branch", w->branch);
    if (w->state.n) pack_key_raw(b, "state", w->state);
    if (w->history.n) pack_key_raw(b, "history", w->history);
    return done(b);
}

int proto_enc_job_event(proto_buf_t *b, uint64_t job, proto_raw_t event) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_EVENT, 2);
    pack_key_u64(b, "job", job);
    pack_key_raw(b, "event", event);
    return done(b);
}

int proto_enc_job_result(proto_buf_t *b, uint64_t job, proto_raw_t output) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_RESULT, 2);
    pack_key_u64(b, "job", job);
    pack_key_raw(b, "output", output);
    return done(b);
}

int proto_enc_job_error(proto_buf_t *b, uint64_t job, const char *code, const char *message) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_ERROR, 3);
    pack_key_u64(b, "job", job);
    pack_code_message(b, code, message);
    return done(b);
}

int proto_enc_cancel_job(proto_buf_t *b, uint64_t job) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_CANCEL, 1);
    pack_key_u64(b, "job", job);
    return done(b);
}

int proto_enc_credit(proto_buf_t *b, uint64_t capacity) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_CREDIT, 1);
    pack_key_u64(b, "capacity", capacity);
    return done(b);
}

int proto_enc_simple(proto_buf_t *b, proto_type_t type) {
    proto_buf_reset(b);
    proto_pack_header(b, type, 0);
    return done(b);
}

int proto_enc_session_get(proto_buf_t *b, proto_raw_t id, proto_str_t session, proto_str_t app,
                          proto_str_t user, int64_t events) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_SESSION_GET, 2 + (app.n > 0) + (user.n > 0) + (events >= 0));
    pack_key_raw(b, "id", id);
    pack_key_str(b, "session", session);
    if (app.n) pack_key_str(b, "app", app);
    if (user.n) pack_key_str(b, "user", user);
    if (events >= 0) pack_key_u64(b, "events", (uint64_t)events);
    return done(b);
}

int proto_enc_session_list(proto_buf_t *b, proto_raw_t id, proto_str_t app, proto_str_t user,
                           proto_str_t after, uint64_t limit) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_SESSION_LIST,
                      1 + (app.n > 0) + (user.n > 0) + (after.n > 0) + (limit > 0));
    pack_key_raw(b, "id", id);
    if (app.n) pack_key_str(b, "app", app);
    if (user.n) pack_key_str(b, "user", user);
    if (after.n) pack_key_str(b, "after", after);
    if (limit > 0) pack_key_u64(b, "limit", limit);
    return done(b);
}

int proto_enc_session_delete(proto_buf_t *b, proto_raw_t id, proto_str_t session) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_SESSION_DELETE, 2);
    pack_key_raw(b, "id", id);
    pack_key_str(b, "session", session);
    return done(b);
}

int proto_enc_result_begin(proto_buf_t *b, proto_raw_t id) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_RESULT, 2);
    pack_key_raw(b, "id", id);
    proto_pack_cstr(b, "output");
    return done(b);
}

int proto_enc_tasks(proto_buf_t *b, proto_raw_t id, proto_str_t worker) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_TASKS, 1 + (id.n > 0));
    if (id.n) pack_key_raw(b, "id", id);
    pack_key_str(b, "worker", worker);
    return done(b);
}

int proto_enc_tasks_job(proto_buf_t *b, uint64_t job) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_TASKS, 1);
    pack_key_u64(b, "job", job);
    return done(b);
}

int proto_enc_tasks_reply_begin(proto_buf_t *b, uint64_t job) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_TASKS_REPLY, 2);
    pack_key_u64(b, "job", job);
    proto_pack_cstr(b, "output");
    return done(b);
}
