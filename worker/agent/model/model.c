/* model.c: what every model shares (see model.h): the error table, request defaults, the
 * response's lifetime, and the one entry point that checks arguments and dispatches to a
 * backend's ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

const char *agt_model_err_code(int rc) {
    switch (rc) {
    case 0:
        return "ok";
#define AGT_ERR_CODE(name, val, code, msg)                                                         \
    case val:                                                                                      \
        return code;
        AGT_MODEL_ERRORS(AGT_ERR_CODE)
#undef AGT_ERR_CODE
    case ACT_ETIMEDOUT: /* the caller's deadline; the model's own is AGT_EMODEL_TIMEOUT */
        return "timeout";
    case ACT_ECANCELED:
        return "cancelled";
    case ACT_ECIRCUIT:
        return "model_circuit_open";
    case ACT_EINVAL:
        return "bad_request";
    default:
        return "internal";
    }
}

const char *agt_model_strerror(int rc) {
    switch (rc) {
#define AGT_ERR_MSG(name, val, code, msg)                                                          \
    case val:                                                                                      \
        return msg;
        AGT_MODEL_ERRORS(AGT_ERR_MSG)
#undef AGT_ERR_MSG
    default:
        return act_strerror(rc);
    }
}

/* Case-insensitive: does [s, s+n) contain w? */
static bool has_word(const char *s, size_t n, const char *w) {
    size_t wn = strlen(w);
    for (size_t i = 0; s && i + wn <= n; i++)
        if (strncasecmp(s + i, w, wn) == 0) return true;
    return false;
}

int agt_model_error_kind(const char *type, size_t type_len, const char *code, size_t code_len,
                         int64_t code_num) {
    /* The words OpenAI, Anthropic-style proxies, vLLM and llama.cpp's server use. */
    const char *tc[2] = {type, code};
    size_t tn[2] = {type_len, code_len};
    for (int i = 0; i < 2; i++) {
        if (has_word(tc[i], tn[i], "rate_limit") || has_word(tc[i], tn[i], "quota") ||
            has_word(tc[i], tn[i], "too_many"))
            return AGT_EMODEL_RATE_LIMITED;
        if (has_word(tc[i], tn[i], "auth") || has_word(tc[i], tn[i], "permission") ||
            has_word(tc[i], tn[i], "api_key"))
            return AGT_EMODEL_UNAUTHORIZED;
        if (has_word(tc[i], tn[i], "invalid_request") || has_word(tc[i], tn[i], "not_found") ||
            has_word(tc[i], tn[i], "context_length") || has_word(tc[i], tn[i], "exceed_context"))
            return AGT_EMODEL_BAD_REQUEST;
    }
    if (code_num == 429) return AGT_EMODEL_RATE_LIMITED;
    if (code_num == 401 || code_num == 403) return AGT_EMODEL_UNAUTHORIZED;
    if (code_num >= 400 && code_num < 500 && code_num != 408) return AGT_EMODEL_BAD_REQUEST;
    return AGT_EMODEL_UNAVAILABLE; /* server_error, overloaded, timeouts, unknown */
}

int agt_model_finish_check(const agt_model_response_t *r) {
    const char *f = r ? r->finish_reason : NULL;
    if (!f) return 0;
    if (strcmp(f, "length") == 0) return AGT_EMODEL_TRUNCATED;
    if (strcmp(f, "content_filter") == 0) return AGT_EMODEL_FILTERED;
    return 0;
}

void agt_model_request_init(agt_model_request_t *r) {
    memset(r, 0, sizeof(*r));
    r->temperature = -1;
    r->top_p = -1;
}

void agt_model_response_free(agt_model_response_t *r) {
    if (!r) return;
    free(r->text);
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        agt_tool_call_t *c = &r->tool_calls[i];
        free((void *)c->id);
        free((void *)c->name);
        free((void *)c->arguments);
        free((void *)c->args);
    }
    free(r->tool_calls);
    free(r->finish_reason);
    free(r->model);
    memset(r, 0, sizeof(*r));
    r->retry_after_ms = -1;
}

/* Shape checks that need no backend: what a malformed request would otherwise send. */
static bool request_ok(const agt_model_request_t *q) {
    if (q->n_messages == 0 || !q->messages || (q->n_tools && !q->tools)) return false;
    if (q->extra_len && !q->extra) return false;
    for (size_t i = 0; i < q->n_messages; i++) {
        const agt_message_t *m = &q->messages[i];
        if (m->role < AGT_ROLE_SYSTEM || m->role > AGT_ROLE_TOOL) return false;
        if (m->n_tool_calls && !m->tool_calls) return false;
        if (m->role == AGT_ROLE_TOOL && !m->tool_call_id) return false;
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const agt_tool_call_t *c = &m->tool_calls[k];
            if (!c->id || !c->name || (!c->arguments && !c->args)) return false;
        }
    }
    for (size_t i = 0; i < q->n_tools; i++) {
        const agt_tool_t *t = &q->tools[i];
        if (!t->name || !t->name[0] || (t->parameters_len && !t->parameters)) return false;
    }
    return true;
}

/* On failure a response owns nothing; its diagnostics stay. */
static void drop_owned(agt_model_response_t *r) {
    agt_model_response_t d = *r;
    agt_model_response_free(r);
    r->backend = d.backend;
    r->http_status = d.http_status;
    r->retry_after_ms = d.retry_after_ms;
    r->attempts = d.attempts;
    r->deltas = d.deltas;
    r->usage = d.usage;
    memcpy(r->error, d.error, sizeof(r->error));
}

int agt_model_generate(agt_model_t *m, const agt_model_request_t *req, agt_model_response_t *out,
                       int64_t deadline) {
    if (!out) return ACT_EINVAL;
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (!m || !req || !act_current()) return ACT_EINVAL;
    out->backend = m->name;
    if (!request_ok(req)) {
        strcpy(out->error, "malformed model request");
        return ACT_EINVAL;
    }
    int rc = m->ops->generate(m, req, out, deadline);
    if (rc == 0 && !out->text && !(out->text = calloc(1, 1))) rc = ACT_ENOMEM;
    if (rc) {
        drop_owned(out);
        if (!out->error[0]) snprintf(out->error, sizeof(out->error), "%s", agt_model_strerror(rc));
    }
    return rc;
}

void agt_model_destroy(agt_model_t **m) {
    if (!m || !*m) return;
    (*m)->ops->destroy(*m);
    *m = NULL;
}
