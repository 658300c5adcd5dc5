/* builtin.c: the built-in plugin, compiled into actor-worker and loaded through the same
 * table as any other: `echo` (output = input), `sleep` (waits input.ms cooperatively; emits
 * {"started": true} first when input.announce is true, and {"cleanup": true} when cancelled
 * or timed out) and `fanout` (calls an agent once per input through the broker,
 * concurrently, and outputs their outputs in input order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

static const abp_api_t *api;

static int echo(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    const uint8_t *in;
    size_t n;
    api->input(ctx, &in, &n);
    return api->set_output(ctx, in, n);
}

/* Emits {"cleanup": true}: proof on the bus that a cancelled agent cleaned up. */
static void emit_cleanup(abp_ctx_t *ctx) {
    abp_pack_t *p = api->pack_new();
    if (!p) return;
    api->pack_map(p, 1);
    api->pack_cstr(p, "cleanup");
    api->pack_bool(p, true);
    api->emit_pack(ctx, p);
    api->pack_free(&p);
}

static int sleep_output(abp_ctx_t *ctx, int64_t ms, int64_t start, int64_t end) {
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_map(p, 4);
    api->pack_cstr(p, "slept_ms");
    api->pack_int(p, ms);
    api->pack_cstr(p, "worker");
    api->pack_cstr(p, api->worker_name(ctx));
    api->pack_cstr(p, "start_ms");
    api->pack_int(p, start);
    api->pack_cstr(p, "end_ms");
    api->pack_int(p, end);
    int rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

static int sleep_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    const uint8_t *in;
    size_t n;
    abp_value_t v, ms;
    api->input(ctx, &in, &n);
    if (api->value(in, n, &v) != 0 || api->map_get(&v, "ms", &ms) != 0 || ms.type != ABP_INT ||
        ms.i < 0) {
        api->fail(ctx, "bad_input", "sleep wants {\"ms\": N} with N >= 0");
        return ABP_EINVAL;
    }
    int64_t start = api->unix_ms();
    abp_value_t announce;
    if (api->map_get(&v, "announce", &announce) == 0 && announce.type == ABP_BOOL &&
        announce.b) {
        /* {"started": true}: a test that cancels waits for it, so the cancel finds the
         * agent inside its sleep (a job cancelled before it starts has nothing to clean up) */
        static const uint8_t started[] = {0x81, 0xa7, 's', 't', 'a', 'r', 't', 'e', 'd', 0xc3};
        api->emit(ctx, started, sizeof started);
    }
    int rc = api->sleep(ctx, ms.i);
    if (rc) { /* cancelled or out of time: clean up, then let the error travel on */
        emit_cleanup(ctx);
        return rc;
    }
    return sleep_output(ctx, ms.i, start, api->unix_ms());
}

/* ---- fanout ---- */

typedef struct fan {
    abp_value_t agent, inputs;
    abp_call_t **calls;
    size_t n;
} fan;

static int fan_parse(abp_ctx_t *ctx, fan *f) {
    const uint8_t *in;
    size_t n;
    abp_value_t v;
    api->input(ctx, &in, &n);
    if (api->value(in, n, &v) != 0 || api->map_get(&v, "agent", &f->agent) != 0 ||
        f->agent.type != ABP_STR || f->agent.len == 0 || f->agent.len > 128 ||
        api->map_get(&v, "inputs", &f->inputs) != 0 || f->inputs.type != ABP_ARRAY) {
        api->fail(ctx, "bad_input", "fanout wants {\"agent\": NAME, \"inputs\": [...]}");
        return ABP_EINVAL;
    }
    f->n = f->inputs.len;
    return 0;
}

static int fan_start(abp_ctx_t *ctx, fan *f) {
    char agent[129];
    memcpy(agent, f->agent.str, f->agent.len);
    agent[f->agent.len] = 0;
    for (size_t i = 0; i < f->n; i++) {
        abp_value_t item;
        int rc = api->array_get(&f->inputs, i, &item);
        if (rc == 0) rc = api->call(ctx, agent, item.raw, item.raw_n, -1, &f->calls[i]);
        if (rc) return rc;
    }
    return 0;
}

/* Waits for the children in the order they end, one event each; the first failure fails
 * the fanout (the others are cancelled when their calls are freed). */
static int fan_collect(abp_ctx_t *ctx, fan *f) {
    size_t i;
    int rc;
    char msg[200];
    while ((rc = api->next_done(f->calls, f->n, &i)) == 0) {
        abp_pack_t *p = api->pack_new();
        if (!p) return ABP_ENOMEM;
        api->pack_map(p, 1);
        api->pack_cstr(p, "done");
        api->pack_uint(p, i);
        api->emit_pack(ctx, p);
        api->pack_free(&p);
        const char *code, *message;
        if (api->call_error(f->calls[i], &code, &message) == 0) {
            snprintf(msg, sizeof msg, "input %zu: %s", i, message);
            api->fail(ctx, code, msg);
            return ABP_ECALL;
        }
    }
    return rc == ABP_EEOF ? 0 : rc;
}

static int fan_output(abp_ctx_t *ctx, fan *f) {
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    int rc = api->pack_array(p, (uint32_t)f->n);
    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        const uint8_t *out;
        size_t n;
        rc = api->call_output(f->calls[i], &out, &n);
        if (rc == 0) rc = api->pack_raw(p, out, n);
    }
    if (rc == 0) rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

static int fanout(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    fan f = {0};
    int rc = fan_parse(ctx, &f);
    if (rc) return rc;
    f.calls = calloc(f.n ? f.n : 1, sizeof(*f.calls));
    if (!f.calls) return ABP_ENOMEM;
    rc = fan_start(ctx, &f);
    if (rc == 0) rc = fan_collect(ctx, &f);
    if (rc == 0) rc = fan_output(ctx, &f);
    for (size_t i = 0; i < f.n; i++) api->call_free(&f.calls[i]);
    free(f.calls);
    return rc;
}

int wrk_builtin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    if (version < ABP_API_VERSION) return ABP_EVERSION;
    api = a;
    int rc = api->register_agent(host, "echo", echo, NULL);
    if (rc == 0) rc = api->register_agent(host, "sleep", sleep_agent, NULL);
    if (rc == 0) rc = api->register_agent(host, "fanout", fanout, NULL);
    return rc;
}
