/* llm_tools.c: the test plugin of tests/agent/test_llm.py: C tools for LLM agents
 * (get_weather, get_time, fail_tool, slow_tool, block_read on a thread of its own), model and tool
 * callbacks for agents "cached" and "guarded", and a custom agent "billing" to transfer to.
 * It reaches the worker only through the plugin table, like any plugin. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "actorbus/plugin.h"

static const abp_api_t *api;

static int get_weather(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                       void *udata) {
    (void)udata;
    abp_value_t a, city;
    if (api->value(args, n, &a) || api->map_get(&a, "city", &city) || city.type != ABP_STR)
        return api->tool_fail(tc, "city is required"), ABP_EINVAL;
    abp_pack_t *v = api->pack_new();
    api->pack_str(v, city.str, city.len);
    const uint8_t *b;
    size_t bn;
    if (api->pack_data(v, &b, &bn) == 0) api->tool_state_set(tc, "last_city", b, bn);
    api->pack_free(&v);
    api->pack_map(out, 2);
    api->pack_cstr(out, "city");
    api->pack_str(out, city.str, city.len);
    api->pack_cstr(out, "temp_c");
    return api->pack_int(out, 21);
}

static int get_time(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                    void *udata) {
    (void)tc, (void)args, (void)n, (void)udata;
    return api->pack_cstr(out, "12:00");
}

static int fail_tool(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                     void *udata) {
    (void)args, (void)n, (void)out, (void)udata;
    api->tool_fail(tc, "the disk is on fire");
    return ABP_EINVAL;
}

/* Sleeps (cooperatively) far longer than its configured timeout. */
static int slow_tool(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                     void *udata) {
    (void)args, (void)n, (void)udata;
    int rc = api->sleep(api->tool_job(tc), 60000);
    return rc ? rc : api->pack_cstr(out, "woke");
}

/* On a thread of its own: writes PATH.started, then reads one line from the FIFO at PATH (blocking
 * until the test writes it) and returns it. */
static int block_read(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                      void *udata) {
    (void)udata;
    abp_value_t a, p;
    char path[512], mark[600], line[128];
    if (api->value(args, n, &a) || api->map_get(&a, "path", &p) || p.type != ABP_STR ||
        p.len >= sizeof path)
        return api->tool_fail(tc, "path is required"), ABP_EINVAL;
    snprintf(path, sizeof path, "%.*s", (int)p.len, p.str);
    snprintf(mark, sizeof mark, "%s.started", path);
    int m = open(mark, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (m >= 0) close(m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return api->tool_fail(tc, "cannot open the fifo"), ABP_EINVAL;
    ssize_t got = read(fd, line, sizeof line - 1);
    close(fd);
    if (got <= 0) return api->tool_fail(tc, "nothing to read"), ABP_EINVAL;
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) got--;
    return api->pack_str(out, line, (size_t)got);
}

/* before_model of "cached": answers from a "cache" without asking the model. */
static int cache_cb(abp_ctx_t *ctx, const abp_cb_args_t *a, abp_pack_t *out, void *udata) {
    (void)ctx, (void)a, (void)udata;
    return api->pack_json(out, "{\"text\": \"from the cache\"}") ? ABP_ENOMEM : 1;
}

/* before_tool of "guarded": get_weather answered by the callback, the tool never runs. */
static int guard_cb(abp_ctx_t *ctx, const abp_cb_args_t *a, abp_pack_t *out, void *udata) {
    (void)ctx, (void)udata;
    if (!a->tool || strcmp(a->tool, "get_weather") != 0) return 0;
    return api->pack_json(out, "{\"city\": \"nowhere\", \"by\": \"callback\"}") ? ABP_ENOMEM
                                                                                : 1;
}

static int billing(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_pack_t *p = api->pack_new();
    api->pack_cstr(p, "billing here");
    int rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    if (version < ABP_API_VERSION) return ABP_EVERSION;
    api = a;
    static const char city_schema[] =
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
        "\"required\":[\"city\"]}";
    const abp_tool_def_t tools[] = {
        {.name = "get_weather", .description = "Weather in a city", .fn = get_weather,
         .parameters_json = city_schema},
        {.name = "get_time", .description = "The time now", .fn = get_time},
        {.name = "fail_tool", .description = "Always fails", .fn = fail_tool},
        {.name = "slow_tool", .description = "Takes a minute", .fn = slow_tool},
        {.name = "block_read", .description = "Reads a line from a FIFO", .fn = block_read,
         .flags = ABP_TOOL_BLOCKING},
    };
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof tools / sizeof tools[0]; i++)
        rc = api->register_tool(host, &tools[i]);
    if (!rc) rc = api->register_callback(host, "cached", ABP_CB_BEFORE_MODEL, cache_cb, NULL);
    if (!rc) rc = api->register_callback(host, "guarded", ABP_CB_BEFORE_TOOL, guard_cb, NULL);
    if (!rc) rc = api->register_agent(host, "billing", billing, NULL);
    return rc;
}
