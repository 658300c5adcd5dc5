/* agents_demo.c: the example plugin of examples/agents (plugin API version 2). Two C tools
 * for LLM agents, get_weather and get_time, and small custom agents that agents.json composes
 * without any model: plan_trip -> (weather_now | time_now in parallel, on any workers) ->
 * summarize, and polish, which a loop agent repeats until it escalates.
 *   run:    actor-worker --plugin build/examples/agents/agents_demo.so \
 *                        --agents examples/agents/agents.json
 *   query:  actorctl query trip '"Tokyo"'    (examples/agents/README.md has the rest) */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <actorbus/plugin.h>

static const abp_api_t *api; /* valid while the plugin is loaded */

/* ---------------------------------------------------------------- the data the tools know */

typedef struct city {
    const char *name, *tz, *sky;
    int temp_c, utc_offset_min;
} city_t;

/* Made-up weather, fixed so that runs and tests can compare outputs. */
static const city_t cities[] = {
    {"Paris", "Europe/Paris", "sunny", 18, 60},
    {"London", "Europe/London", "cloudy", 14, 0},
    {"New York", "America/New_York", "rainy", 21, -300},
    {"Tokyo", "Asia/Tokyo", "clear", 24, 540},
    {"Sydney", "Australia/Sydney", "windy", 16, 600},
};

static const city_t *city_by(const char *s, size_t n, bool by_tz) {
    for (size_t i = 0; i < sizeof cities / sizeof cities[0]; i++) {
        const char *k = by_tz ? cities[i].tz : cities[i].name;
        if (strlen(k) == n && strncasecmp(k, s, n) == 0) return &cities[i];
    }
    if (by_tz && n == 3 && strncasecmp(s, "UTC", 3) == 0) {
        static const city_t utc = {"UTC", "UTC", "", 0, 0};
        return &utc;
    }
    return NULL;
}

/* The string under key of the msgpack map args[0..n). Returns 0, or ABP_ENOENT/ABP_EINVAL. */
static int arg_str(const uint8_t *args, size_t n, const char *key, abp_value_t *out) {
    abp_value_t map;
    int rc = api->value(args, n, &map);
    if (rc == 0) rc = api->map_get(&map, key, out);
    if (rc == 0 && out->type != ABP_STR) rc = ABP_EINVAL;
    return rc;
}

static void pack_weather(abp_pack_t *p, const city_t *c) {
    api->pack_map(p, 3);
    api->pack_cstr(p, "city");
    api->pack_cstr(p, c->name);
    api->pack_cstr(p, "temp_c");
    api->pack_int(p, c->temp_c);
    api->pack_cstr(p, "sky");
    api->pack_cstr(p, c->sky);
}

static void pack_time(abp_pack_t *p, const city_t *c) {
    char hhmm[8];
    time_t t = (time_t)(api->unix_ms() / 1000) + (time_t)c->utc_offset_min * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(hhmm, sizeof hhmm, "%02d:%02d", tm.tm_hour, tm.tm_min);
    api->pack_map(p, 2);
    api->pack_cstr(p, "tz");
    api->pack_cstr(p, c->tz);
    api->pack_cstr(p, "time");
    api->pack_cstr(p, hhmm);
}

/* ---------------------------------------------------------------- tools */

/* get_weather {"city": str}: {"city","temp_c","sky"}; an unknown city fails the call, which
 * the model sees as a tool error (and may retry with another spelling). */
static int get_weather(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                       void *udata) {
    (void)udata;
    abp_value_t city;
    char msg[160];
    if (arg_str(args, n, "city", &city) != 0) {
        api->tool_fail(tc, "get_weather needs {\"city\": string}");
        return ABP_EINVAL;
    }
    const city_t *c = city_by(city.str, city.len, false);
    if (!c) {
        snprintf(msg, sizeof msg, "no weather for city '%.*s'",
                 (int)(city.len > 64 ? 64 : city.len), city.str);
        api->tool_fail(tc, msg);
        return ABP_ENOENT;
    }
    pack_weather(out, c);
    return 0;
}

/* get_time {"tz": IANA name or "UTC"}: {"tz","time": "HH:MM"}. */
static int get_time(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                    void *udata) {
    (void)udata;
    abp_value_t tz;
    char msg[160];
    if (arg_str(args, n, "tz", &tz) != 0) {
        api->tool_fail(tc, "get_time needs {\"tz\": string}");
        return ABP_EINVAL;
    }
    const city_t *c = city_by(tz.str, tz.len, true);
    if (!c) {
        snprintf(msg, sizeof msg, "unknown time zone '%.*s'", (int)(tz.len > 64 ? 64 : tz.len),
                 tz.str);
        api->tool_fail(tc, msg);
        return ABP_ENOENT;
    }
    pack_time(out, c);
    return 0;
}

/* ---------------------------------------------------------------- custom agents */

/* The city the trip is about: the "city" in state (set by plan_trip), else Paris. */
static const city_t *state_city(abp_ctx_t *ctx) {
    const uint8_t *v;
    size_t n;
    abp_value_t s;
    if (api->state_get(ctx, "city", &v, &n) == 0 && api->value(v, n, &s) == 0 &&
        s.type == ABP_STR) {
        const city_t *c = city_by(s.str, s.len, false);
        if (c) return c;
    }
    return &cities[0];
}

/* Emits an event with text and the delta {key: what p holds}, and sets p as the output. */
static int emit_and_output(abp_ctx_t *ctx, const char *text, const char *key, abp_pack_t *p) {
    const uint8_t *val;
    size_t n;
    int rc = api->pack_data(p, &val, &n);
    abp_pack_t *d = api->pack_new();
    if (!d) return ABP_ENOMEM;
    api->pack_map(d, 1);
    api->pack_cstr(d, key);
    api->pack_raw(d, val, n);
    const uint8_t *delta;
    size_t dn;
    if (rc == 0) rc = api->pack_data(d, &delta, &dn);
    if (rc == 0) {
        abp_event_t ev = {.text = text, .state_delta = delta, .state_delta_n = dn};
        rc = api->emit_event(ctx, &ev);
    }
    if (rc == 0) rc = api->set_output(ctx, val, n);
    api->pack_free(&d);
    return rc;
}

/* plan_trip: input a city name (string, or {"city": ...}); writes state city. */
static int plan_trip(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    const uint8_t *in;
    size_t n;
    abp_value_t v, c;
    char text[160];
    api->input(ctx, &in, &n);
    if (api->value(in, n, &v) == 0 && v.type == ABP_MAP && api->map_get(&v, "city", &c) == 0)
        v = c;
    const city_t *city = v.type == ABP_STR ? city_by(v.str, v.len, false) : NULL;
    if (!city) {
        api->fail(ctx, "bad_input", "unknown city: try Paris, London, New York, Tokyo or Sydney");
        return ABP_EINVAL;
    }
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_cstr(p, city->name);
    snprintf(text, sizeof text, "planning a trip to %s", city->name);
    int rc = emit_and_output(ctx, text, "city", p);
    api->pack_free(&p);
    return rc;
}

/* weather_now / time_now (udata: "weather" or "local_time"): the tool's answer for the
 * state's city, written to state[udata], with the worker that ran it (the parallel agent
 * that runs them spreads them across workers). */
static int city_fact(abp_ctx_t *ctx, void *udata) {
    const char *key = udata;
    const city_t *c = state_city(ctx);
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_map(p, 2);
    api->pack_cstr(p, "worker");
    api->pack_cstr(p, api->worker_name(ctx));
    api->pack_cstr(p, "fact");
    if (strcmp(key, "weather") == 0) pack_weather(p, c);
    else pack_time(p, c);
    char text[160];
    snprintf(text, sizeof text, "%s for %s, from %s", key, c->name, api->worker_name(ctx));
    int rc = emit_and_output(ctx, text, key, p);
    api->pack_free(&p);
    return rc;
}

/* Reads state[key].fact.field into v (any type). Returns 0 or a negative code. */
static int fact_field(abp_ctx_t *ctx, const char *key, const char *field, abp_value_t *v) {
    const uint8_t *b;
    size_t n;
    abp_value_t top, fact;
    int rc = api->state_get(ctx, key, &b, &n);
    if (rc == 0) rc = api->value(b, n, &top);
    if (rc == 0) rc = api->map_get(&top, "fact", &fact);
    return rc ? rc : api->map_get(&fact, field, v);
}

/* summarize: one line from what weather_now and time_now wrote to the state. */
static int summarize(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    abp_value_t city, temp, sky, hhmm;
    char text[256];
    if (fact_field(ctx, "weather", "city", &city) || fact_field(ctx, "weather", "temp_c", &temp)
        || fact_field(ctx, "weather", "sky", &sky) || fact_field(ctx, "local_time", "time", &hhmm)
        || city.type != ABP_STR || sky.type != ABP_STR || hhmm.type != ABP_STR) {
        api->fail(ctx, "missing_state", "summarize needs state weather and local_time "
                                        "(run it after weather_now and time_now)");
        return ABP_ENOENT;
    }
    snprintf(text, sizeof text, "%.*s: %lld C and %.*s, local time %.*s", (int)city.len,
             city.str, (long long)temp.i, (int)sky.len, sky.str, (int)hhmm.len, hhmm.str);
    abp_event_t ev = {.text = text, .final = true};
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_cstr(p, text);
    int rc = api->emit_event(ctx, &ev);
    if (rc == 0) rc = api->set_output_pack(ctx, p);
    api->pack_free(&p);
    return rc;
}

/* polish: one round of a loop agent. Counts rounds in state polish_round and escalates
 * (ends the loop) every third round, so a loop with max_iterations 5 stops after 3. */
static int polish(abp_ctx_t *ctx, void *udata) {
    (void)udata;
    const uint8_t *b;
    size_t n;
    abp_value_t v;
    int64_t round = 0;
    if (api->state_get(ctx, "polish_round", &b, &n) == 0 && api->value(b, n, &v) == 0 &&
        (v.type == ABP_INT || v.type == ABP_UINT))
        round = v.i;
    round++;
    uint8_t delta[64];
    abp_pack_t *p = api->pack_new();
    if (!p) return ABP_ENOMEM;
    api->pack_map(p, 1);
    api->pack_cstr(p, "polish_round");
    api->pack_int(p, round);
    const uint8_t *d;
    int rc = api->pack_data(p, &d, &n);
    if (rc == 0 && n <= sizeof delta) {
        memcpy(delta, d, n);
        char text[64];
        snprintf(text, sizeof text, "polished, round %lld", (long long)round);
        abp_event_t ev = {.text = text, .state_delta = delta, .state_delta_n = n,
                          .escalate = round % 3 == 0};
        rc = api->emit_event(ctx, &ev);
        api->pack_reset(p);
        api->pack_map(p, 1);
        api->pack_cstr(p, "round");
        api->pack_int(p, round);
        if (rc == 0) rc = api->set_output_pack(ctx, p);
    }
    api->pack_free(&p);
    return rc;
}

/* ---------------------------------------------------------------- registration */

static const abp_tool_def_t tools[] = {
    {.name = "get_weather", .description = "The current weather in a city.",
     .parameters_json = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\","
                        "\"description\":\"a city name, e.g. Paris\"}},\"required\":[\"city\"]}",
     .fn = get_weather},
    {.name = "get_time", .description = "The local time in a time zone.",
     .parameters_json = "{\"type\":\"object\",\"properties\":{\"tz\":{\"type\":\"string\","
                        "\"description\":\"an IANA time zone, e.g. Europe/Paris\"}},"
                        "\"required\":[\"tz\"]}",
     .fn = get_time},
};

int actorbus_plugin_init(const abp_api_t *a, abp_host_t *host, uint32_t version) {
    if (version < 2) return ABP_EVERSION; /* tools and events need API version 2 */
    api = a;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof tools / sizeof tools[0]; i++)
        rc = api->register_tool(host, &tools[i]);
    if (rc == 0) rc = api->register_agent(host, "plan_trip", plan_trip, NULL);
    if (rc == 0) rc = api->register_agent(host, "weather_now", city_fact, (void *)"weather");
    if (rc == 0) rc = api->register_agent(host, "time_now", city_fact, (void *)"local_time");
    if (rc == 0) rc = api->register_agent(host, "summarize", summarize, NULL);
    if (rc == 0) rc = api->register_agent(host, "polish", polish, NULL);
    api->log(NULL, rc ? ABP_LOG_ERROR : ABP_LOG_INFO, "plugin_init", "plugin=agents_demo rc=%d",
             rc);
    return rc;
}
