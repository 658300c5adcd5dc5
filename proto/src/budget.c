/* proto/src/budget.c: the encoders of the model budget's messages (proto/PROTOCOL.md, "Model
 * budget"): the broker's announcement and the acquire / grant / deny / release / cancel
 * dialog between a worker and the broker. Kept apart from encode.c, which holds the core. */
#include "internal.h"

int proto_enc_budget(proto_buf_t *b, uint64_t concurrency, double rps, uint64_t burst,
                     uint64_t tpm) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_BUDGET, 3 + (tpm > 0));
    pack_key_u64(b, "model_concurrency", concurrency);
    proto_pack_cstr(b, "model_rps");
    /* An integral rate goes as an integer, so that simple peers need not read floats. */
    if (rps >= 0 && rps <= 1e15 && rps == (double)(uint64_t)rps)
        msgpack_pack_uint64(&b->pk, (uint64_t)rps);
    else
        msgpack_pack_double(&b->pk, rps);
    pack_key_u64(b, "model_burst", burst);
    if (tpm) pack_key_u64(b, "model_tpm", tpm); /* absent when off: older peers see no change */
    return done(b);
}

/* A message with `req` and, when given, one more string field. */
static int req_msg(proto_buf_t *b, proto_type_t type, uint64_t req, const char *key,
                   proto_str_t val) {
    proto_buf_reset(b);
    proto_pack_header(b, type, 1 + (key != NULL));
    pack_key_u64(b, "req", req);
    if (key) {
        proto_pack_cstr(b, key);
        proto_pack_str(b, val.p, val.n);
    }
    return done(b);
}

int proto_enc_budget_acquire(proto_buf_t *b, uint64_t req, proto_str_t backend) {
    return req_msg(b, PROTO_BUDGET_ACQUIRE, req, "backend", backend);
}

int proto_enc_budget_grant(proto_buf_t *b, uint64_t req) {
    return req_msg(b, PROTO_BUDGET_GRANT, req, NULL, (proto_str_t){NULL, 0});
}

int proto_enc_budget_deny(proto_buf_t *b, uint64_t req, const char *code, const char *message) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_BUDGET_DENY, 3);
    pack_key_u64(b, "req", req);
    proto_pack_cstr(b, "code");
    proto_pack_cstr(b, code);
    proto_pack_cstr(b, "message");
    proto_pack_cstr(b, message);
    return done(b);
}

int proto_enc_budget_release(proto_buf_t *b, proto_str_t backend, uint64_t tokens) {
    proto_buf_reset(b);
    proto_pack_header(b, PROTO_BUDGET_RELEASE, 1 + (tokens > 0));
    pack_key_str(b, "backend", backend);
    if (tokens) pack_key_u64(b, "tokens", tokens);
    return done(b);
}

int proto_enc_budget_cancel(proto_buf_t *b, uint64_t req) {
    return req_msg(b, PROTO_BUDGET_CANCEL, req, NULL, (proto_str_t){NULL, 0});
}
