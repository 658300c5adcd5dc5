/* hang.c: a plugin for tests/system/test_hardening.py: agents that misbehave the way a
 * careless plugin does. `spin` never yields (a busy loop: the worker's watchdog must end the
 * process) and `bad_utf8` fails with a code and message that are not UTF-8 (the broker must
 * still answer its client with valid UTF-8). */
#include <actorbus/plugin.h>

static const abp_api_t *api;

static int spin(abp_ctx_t *ctx, void *udata) {
    (void)ctx;
    (void)udata;
    for (volatile unsigned long i = 0;; i++) {
    } /* holds the loop for good */
    return 0;
}

static int bad_utf8(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    api->fail(ctx, "plugin_error", "bad \xff\xfe bytes \xe2\x82");
    return -1;
}

int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    if (version < ABP_API_VERSION) return ABP_EVERSION;
    api = a;
    int rc = api->register_agent(host, "spin", spin, NULL);
    if (rc == 0) rc = api->register_agent(host, "bad_utf8", bad_utf8, NULL);
    return rc;
}
