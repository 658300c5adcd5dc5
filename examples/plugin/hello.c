/* hello.c: an example actor-worker plugin with one agent, `hello`. It reads its input (a
 * name as a string, or {"name": ...}), emits an event, waits a little without blocking the
 * worker, and answers {"greeting": "hello, NAME", "worker": ...}. It includes only
 * actorbus/plugin.h and reaches the worker only through the table it is given.
 *   build:  cmake builds it as build/examples/plugin/hello.so
 *   run:    actor-worker --plugin build/examples/plugin/hello.so
 *   query:  actorctl query hello '{"name": "Ada"}' */
#include <stdio.h>
#include <string.h>

#include <actorbus/plugin.h>

static const abp_api_t *api; /* valid while the plugin is loaded */

/* The name to greet: a string input, or the "name" of a map input; "world" otherwise. */
static void name_of(abp_ctx_t *ctx, char *out, size_t cap) {
    const uint8_t *in;
    size_t n;
    abp_value_t v, name;
    snprintf(out, cap, "world");
    api->input(ctx, &in, &n);
    if (api->value(in, n, &v) != 0) return;
    if (v.type == ABP_MAP && api->map_get(&v, "name", &name) == 0) v = name;
    if (v.type == ABP_STR) snprintf(out, cap, "%.*s", (int)v.len, v.str);
}

static int hello(abp_ctx_t *ctx, void *udata) {
    const char *salutation = udata;
    char name[128], greeting[160];
    name_of(ctx, name, sizeof name);
    snprintf(greeting, sizeof greeting, "%s, %s", salutation, name);

    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_map(p, 1); /* event: {"greeting": "..."} */
    api->pack_cstr(p, "greeting");
    api->pack_cstr(p, greeting);
    api->emit_pack(ctx, p);

    int rc = api->sleep(ctx, 10); /* stands in for real work; other jobs run meanwhile */
    if (rc == 0) {
        api->pack_reset(p); /* output: {"greeting": "...", "worker": "..."} */
        api->pack_map(p, 2);
        api->pack_cstr(p, "greeting");
        api->pack_cstr(p, greeting);
        api->pack_cstr(p, "worker");
        api->pack_cstr(p, api->worker_name(ctx));
        rc = api->set_output_pack(ctx, p);
    }
    api->pack_free(&p);
    api->log(ctx, ABP_LOG_DEBUG, "hello", "name=%s rc=%d", name, rc);
    return rc;
}

int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    if (version < ABP_API_VERSION) return ABP_EVERSION;
    api = a;
    api->log(NULL, ABP_LOG_INFO, "plugin_init", "plugin=hello api_version=%u", version);
    return api->register_agent(host, "hello", hello, (void *)"hello");
}
