/* adk_test.c: a plugin for tests/agent/test_adk.py: custom agents that exercise the
 * agent runtime (state deltas and deletes, transfer, escalate, reporting where they ran), a
 * before_agent callback that short-circuits and an after_agent one that replaces the output
 * when the input asks, and a small composition declared through define_agents_json. */
#include <actorbus/plugin.h>
#include <string.h>

static const abp_api_t *api;

/* The input as a map value, or a nil value when it is not one. */
static abp_value_t input_map(abp_ctx_t *ctx) {
    const uint8_t *in;
    size_t n;
    abp_value_t v;
    api->input(ctx, &in, &n);
    if (api->value(in, n, &v) != 0 || v.type != ABP_MAP) memset(&v, 0, sizeof v);
    return v;
}

static int64_t int_of(const abp_value_t *map, const char *key, int64_t dflt) {
    abp_value_t v;
    if (map->type != ABP_MAP || api->map_get(map, key, &v) != 0 || v.type != ABP_INT) {
        return dflt;
    }
    return v.i;
}

static int64_t state_int(abp_ctx_t *ctx, const char *key) {
    const uint8_t *p;
    size_t n;
    abp_value_t v;
    if (api->state_get(ctx, key, &p, &n) != 0 || api->value(p, n, &v) != 0 ||
        v.type != ABP_INT) {
        return 0;
    }
    return v.i;
}

/* Emits an event whose state_delta is {key: value}. */
static int emit_delta_int(abp_ctx_t *ctx, const char *key, int64_t value, bool escalate) {
    abp_pack_t *p = api->pack_new();
    const uint8_t *d;
    size_t n;
    api->pack_map(p, 1);
    api->pack_cstr(p, key);
    api->pack_int(p, value);
    int rc = api->pack_data(p, &d, &n);
    abp_event_t ev = {.text = escalate ? "escalating" : "counted", .state_delta = d,
                      .state_delta_n = n, .escalate = escalate};
    if (rc == 0) rc = api->emit_event(ctx, &ev);
    api->pack_free(&p);
    return rc;
}

/* adk_state: {"set": {k: v or nil}, "get": [k...]}: emits the delta, outputs {k: value}
 * for each k of get as this invocation sees it (nil when absent). */
static int state_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t in = input_map(ctx), set, get, k;
    int rc = 0;
    if (in.type == ABP_MAP && api->map_get(&in, "set", &set) == 0 && set.type == ABP_MAP) {
        abp_event_t ev = {.text = "state set", .state_delta = set.raw,
                          .state_delta_n = set.raw_n};
        if ((rc = api->emit_event(ctx, &ev)) != 0) return rc;
    }
    bool has_get = in.type == ABP_MAP && api->map_get(&in, "get", &get) == 0 &&
                   get.type == ABP_ARRAY;
    abp_pack_t *p = api->pack_new();
    api->pack_map(p, has_get ? (uint32_t)get.len : 0);
    for (size_t i = 0; has_get && i < get.len; i++) {
        const uint8_t *v;
        size_t n;
        char key[256] = "";
        if (api->array_get(&get, i, &k) == 0 && k.type == ABP_STR && k.len < sizeof key) {
            memcpy(key, k.str, k.len);
        }
        api->pack_cstr(p, key);
        if (api->state_get(ctx, key, &v, &n) == 0) api->pack_raw(p, v, n);
        else api->pack_nil(p);
    }
    rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* adk_where, adk_where2: sleeps input.ms (default 0), writes state "where.<agent>" = this
 * worker, outputs {"worker", "agent"}. */
static int where_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t in = input_map(ctx);
    int rc = api->sleep(ctx, int_of(&in, "ms", 0));
    if (rc) return rc;
    char key[200] = "where.";
    strncat(key, api->agent_name(ctx), sizeof key - strlen(key) - 1);
    abp_pack_t *p = api->pack_new();
    const uint8_t *d;
    size_t n;
    api->pack_map(p, 1);
    api->pack_cstr(p, key);
    api->pack_cstr(p, api->worker_name(ctx));
    if ((rc = api->pack_data(p, &d, &n)) == 0) {
        abp_event_t ev = {.state_delta = d, .state_delta_n = n};
        rc = api->emit_event(ctx, &ev);
    }
    api->pack_reset(p);
    api->pack_map(p, 2);
    api->pack_cstr(p, "worker");
    api->pack_cstr(p, api->worker_name(ctx));
    api->pack_cstr(p, "agent");
    api->pack_cstr(p, api->agent_name(ctx));
    if (rc == 0) rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* adk_transfer: hands the invocation to input.to. */
static int transfer_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t in = input_map(ctx), to;
    char target[130] = "";
    if (in.type != ABP_MAP || api->map_get(&in, "to", &to) != 0 || to.type != ABP_STR ||
        to.len >= sizeof target) {
        return api->fail(ctx, "bad_input", "adk_transfer wants {\"to\": agent}"), ABP_EINVAL;
    }
    memcpy(target, to.str, to.len);
    abp_event_t ev = {.text = "transferring", .transfer_to_agent = target};
    return api->emit_event(ctx, &ev);
}

/* adk_escalate: state count += 1; escalates once count reaches input.limit. Outputs count. */
static int escalate_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t in = input_map(ctx);
    int64_t count = state_int(ctx, "count") + 1;
    int rc = emit_delta_int(ctx, "count", count, count >= int_of(&in, "limit", 1));
    abp_pack_t *p = api->pack_new();
    api->pack_int(p, count);
    if (rc == 0) rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* adk_tick: state ticks += 1; outputs ticks. */
static int tick_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    int64_t ticks = state_int(ctx, "ticks") + 1;
    int rc = emit_delta_int(ctx, "ticks", ticks, false);
    abp_pack_t *p = api->pack_new();
    api->pack_int(p, ticks);
    if (rc == 0) rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* adk_write: state greeting = "hello from <worker>"; adk_read: outputs state greeting. */
static int write_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    char text[200] = "hello from ";
    strncat(text, api->worker_name(ctx), sizeof text - strlen(text) - 1);
    abp_pack_t *p = api->pack_new();
    const uint8_t *d;
    size_t n;
    api->pack_map(p, 1);
    api->pack_cstr(p, "greeting");
    api->pack_cstr(p, text);
    int rc = api->pack_data(p, &d, &n);
    abp_event_t ev = {.state_delta = d, .state_delta_n = n};
    if (rc == 0) rc = api->emit_event(ctx, &ev);
    api->pack_free(&p);
    return rc;
}

static int read_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    const uint8_t *v;
    size_t n;
    if (api->state_get(ctx, "greeting", &v, &n) != 0) {
        return api->fail(ctx, "no_greeting", "state greeting is not set"), ABP_ENOENT;
    }
    return api->set_output(ctx, v, n);
}

/* adk_fail: always fails. adk_guarded: outputs "ran" (its callbacks below). */
static int fail_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    api->fail(ctx, "adk_failed", "adk_fail always fails");
    return ABP_EINVAL;
}

static int guarded_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_pack_t *p = api->pack_new();
    api->pack_cstr(p, "ran");
    int rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* adk_run: runs input.agent with input.input through run_agent; outputs {"ok", "output"}. */
static int run_agent_agent(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t in = input_map(ctx), agent, sub;
    char name[130] = "";
    if (in.type != ABP_MAP || api->map_get(&in, "agent", &agent) != 0 ||
        agent.type != ABP_STR || agent.len >= sizeof name) {
        return api->fail(ctx, "bad_input", "adk_run wants {\"agent\": name}"), ABP_EINVAL;
    }
    memcpy(name, agent.str, agent.len);
    bool has_sub = api->map_get(&in, "input", &sub) == 0;
    const uint8_t *out;
    size_t n;
    int rc = api->run_agent(ctx, name, has_sub ? sub.raw : NULL, has_sub ? sub.raw_n : 0, &out,
                            &n);
    if (rc != 0 && rc != ABP_ECALL) return rc;
    abp_pack_t *p = api->pack_new();
    api->pack_map(p, 2);
    api->pack_cstr(p, "ok");
    api->pack_bool(p, rc == 0);
    api->pack_cstr(p, "output");
    api->pack_raw(p, out, n);
    rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* before_agent of adk_guarded: input {"short_circuit": true} skips it. */
static int guard_before(abp_ctx_t *ctx, const abp_cb_args_t *a, abp_pack_t *out, void *ud) {
    (void)ctx, (void)ud;
    abp_value_t in, sc;
    if (api->value(a->data, a->n, &in) != 0 || in.type != ABP_MAP ||
        api->map_get(&in, "short_circuit", &sc) != 0 || sc.type != ABP_BOOL || !sc.b) {
        return 0;
    }
    api->pack_cstr(out, "short-circuited");
    return 1;
}

/* after_agent of adk_guarded: input {"replace_output": X} makes X the output. */
static int guard_after(abp_ctx_t *ctx, const abp_cb_args_t *a, abp_pack_t *out, void *ud) {
    (void)a, (void)ud;
    abp_value_t in = input_map(ctx), r;
    if (in.type != ABP_MAP || api->map_get(&in, "replace_output", &r) != 0) return 0;
    api->pack_raw(out, r.raw, r.raw_n);
    return 1;
}

static const char composition[] =
    "{\"agents\": [{\"name\": \"adk_plugin_seq\", \"type\": \"sequential\","
    " \"description\": \"declared by the plugin\", \"sub_agents\": [\"adk_write\", \"adk_read\"]}]}";

int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    static const struct { const char *name; abp_agent_fn fn; } agents[] = {
        {"adk_state", state_agent},       {"adk_where", where_agent},
        {"adk_where2", where_agent},      {"adk_transfer", transfer_agent},
        {"adk_escalate", escalate_agent}, {"adk_tick", tick_agent},
        {"adk_write", write_agent},       {"adk_read", read_agent},
        {"adk_fail", fail_agent},         {"adk_guarded", guarded_agent},
        {"adk_run", run_agent_agent},
    };
    if (version < ABP_API_VERSION) return ABP_EVERSION;
    api = a;
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++) {
        int rc = api->register_agent(host, agents[i].name, agents[i].fn, NULL);
        if (rc) return rc;
    }
    int rc = api->register_callback(host, "adk_guarded", ABP_CB_BEFORE_AGENT, guard_before,
                                    NULL);
    if (rc == 0) {
        rc = api->register_callback(host, "adk_guarded", ABP_CB_AFTER_AGENT, guard_after, NULL);
    }
    return rc ? rc : api->define_agents_json(host, composition);
}
