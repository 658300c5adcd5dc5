/* agent/config.c: the --agents file (and define_agents_json): JSON with "agents", "models",
 * "mcp" and "tools" (worker/agent/README.md). Agents are checked here, key by key, and every
 * error names its path ("agents[2].max_iterations must be a positive integer"); the other
 * sections go to the model side's parsers. Nothing is registered unless the whole file is
 * good. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define AGT_MAX_CONFIG_BYTES (4u << 20) /* an --agents file */
#define AGT_MAX_AGENTS 1024             /* agents in one file */
#define AGT_MAX_TOOLS 256               /* tools of one LLM agent */

typedef struct cfg {
    abp_host_t *h;
    char *err;
    size_t errcap;
    char path[64]; /* "agents[3]" */
} cfg;

__attribute__((format(printf, 2, 3))) static int bad(cfg *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (c->errcap) vsnprintf(c->err, c->errcap, fmt, ap);
    va_end(ap);
    return ABP_EINVAL;
}

static bool key_is(const proto_val_t *k, const char *s) { return proto_val_str_eq(k, s); }

/* ---- typed values ---- */

static int get_str(cfg *c, const char *key, const proto_val_t *v, char **out) {
    if (v->type != PROTO_V_STR || memchr(v->data, 0, v->len)) {
        return bad(c, "%s.%s must be a string", c->path, key);
    }
    free(*out);
    if (!(*out = strndup((const char *)v->data, v->len))) return ABP_ENOMEM;
    return 0;
}

static int get_pos_int(cfg *c, const char *key, const proto_val_t *v, int64_t max,
                       int64_t *out) {
    if (v->type != PROTO_V_INT || v->i <= 0 || v->i > max) {
        return bad(c, "%s.%s must be a positive integer (at most %lld)", c->path, key,
                   (long long)max);
    }
    *out = v->i;
    return 0;
}

static int get_bool(cfg *c, const char *key, const proto_val_t *v, bool *out) {
    if (v->type != PROTO_V_BOOL) return bad(c, "%s.%s must be true or false", c->path, key);
    *out = v->b;
    return 0;
}

static int get_strs(cfg *c, const char *key, const proto_val_t *v, size_t max, char ***out,
                    size_t *n) {
    if (v->type != PROTO_V_ARRAY) return bad(c, "%s.%s must be an array of strings", c->path,
                                             key);
    if (v->len > max) return bad(c, "%s.%s has more than %zu entries", c->path, key, max);
    char **s = calloc(v->len ? v->len : 1, sizeof(*s));
    if (!s) return ABP_ENOMEM;
    *out = s; /* freed with the definition, even when filled halfway */
    proto_val_t e;
    size_t cur = 0;
    for (*n = 0; proto_val_next(v, &cur, &e) == 1; (*n)++) {
        if (e.type != PROTO_V_STR || !e.len || memchr(e.data, 0, e.len)) {
            return bad(c, "%s.%s[%zu] must be a non-empty string", c->path, key, *n);
        }
        if (!(s[*n] = strndup((const char *)e.data, e.len))) return ABP_ENOMEM;
    }
    return 0;
}

/* ---- one agent ---- */

static int kind_of(cfg *c, const proto_val_t *m, agt_kind_t *kind) {
    static const struct { const char *name; agt_kind_t kind; } kinds[] = {
        {"llm", AGT_LLM}, {"sequential", AGT_SEQUENTIAL}, {"parallel", AGT_PARALLEL},
        {"loop", AGT_LOOP}};
    proto_val_t t;
    if (proto_val_map_get(m, "type", &t) != 1) return bad(c, "%s.type is missing", c->path);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (proto_val_str_eq(&t, kinds[i].name)) {
            *kind = kinds[i].kind;
            return 0;
        }
    }
    return bad(c, "%s.type must be \"llm\", \"sequential\", \"parallel\" or \"loop\"", c->path);
}

/* The keys only an LLM agent has. */
static int llm_key(cfg *c, agt_llm_conf_t *l, const proto_val_t *k, const proto_val_t *v) {
    int64_t i = 0;
    bool b = false;
    int rc = 1; /* not an LLM key */
    if (key_is(k, "model")) rc = get_str(c, "model", v, &l->model);
    else if (key_is(k, "instruction")) rc = get_str(c, "instruction", v, &l->instruction);
    else if (key_is(k, "output_key")) rc = get_str(c, "output_key", v, &l->output_key);
    else if (key_is(k, "tools")) {
        rc = get_strs(c, "tools", v, AGT_MAX_TOOLS, &l->tools, &l->n_tools);
    } else if (key_is(k, "tool_timeout_ms")) {
        rc = get_pos_int(c, "tool_timeout_ms", v, 86400000, &i);
        l->tool_timeout_ms = i;
    } else if (key_is(k, "max_steps")) {
        rc = get_pos_int(c, "max_steps", v, 1000, &i);
        l->max_steps = (int)i;
    } else if (key_is(k, "stream")) {
        rc = get_bool(c, "stream", v, &b);
        l->no_stream = !b;
    } else if (key_is(k, "history")) {
        rc = get_bool(c, "history", v, &b);
        l->no_history = !b;
    }
    return rc;
}

static int agent_key(cfg *c, agt_def_t *d, const proto_val_t *k, const proto_val_t *v) {
    int64_t i = 0;
    if (key_is(k, "name") || key_is(k, "type")) return 0; /* read first */
    if (key_is(k, "description")) return get_str(c, "description", v, &d->description);
    if (key_is(k, "sub_agents")) {
        return get_strs(c, "sub_agents", v, AGT_MAX_SUB_AGENTS, &d->sub_agents, &d->n_sub);
    }
    if (key_is(k, "max_iterations") && d->kind == AGT_LOOP) {
        int rc = get_pos_int(c, "max_iterations", v, 100000, &i);
        d->max_iterations = (int)i;
        return rc;
    }
    int rc = d->kind == AGT_LLM ? llm_key(c, &d->llm, k, v) : 1;
    if (rc != 1) return rc;
    if (k->type != PROTO_V_STR) return bad(c, "%s has a key that is not a string", c->path);
    return bad(c, "%s.%.*s is not a key of a %s agent", c->path, (int)k->len,
               (const char *)k->data, agt_kind_name(d->kind));
}

static int agent_name(cfg *c, const proto_val_t *m, agt_def_t *d) {
    proto_val_t v;
    if (proto_val_map_get(m, "name", &v) != 1) return bad(c, "%s.name is missing", c->path);
    int rc = get_str(c, "name", &v, &d->name);
    if (rc) return rc;
    if (!*d->name || strlen(d->name) > PROTO_MAX_NAME) {
        return bad(c, "%s.name must be 1 to %d bytes", c->path, PROTO_MAX_NAME);
    }
    if (!agt_name_ok(d->name)) {
        return bad(c, "%s.name must not hold spaces or control characters", c->path);
    }
    return 0;
}

static int parse_agent(cfg *c, const proto_val_t *m, agt_def_t **out) {
    if (m->type != PROTO_V_MAP) return bad(c, "%s must be an object", c->path);
    agt_def_t *d = calloc(1, sizeof(*d));
    if (!d) return ABP_ENOMEM;
    int rc = kind_of(c, m, &d->kind);
    if (rc == 0) rc = agent_name(c, m, d);
    proto_val_t k, v;
    size_t cur = 0;
    while (rc == 0 && proto_val_next(m, &cur, &k) == 1 && proto_val_next(m, &cur, &v) == 1) {
        rc = agent_key(c, d, &k, &v);
    }
    if (rc == 0 && d->kind != AGT_LLM && d->n_sub == 0) {
        rc = bad(c, "%s.sub_agents must name at least one agent for a %s agent", c->path,
                 agt_kind_name(d->kind));
    }
    for (size_t i = 0; rc == 0 && i < d->n_sub; i++) {
        if (strcmp(d->sub_agents[i], d->name) == 0) {
            rc = bad(c, "%s.sub_agents[%zu] is the agent itself", c->path, i);
        }
    }
    if (rc) agt_def_free(&d);
    *out = d;
    return rc;
}

/* ---- the file ---- */

static void free_defs(agt_def_t **defs, size_t n) {
    for (size_t i = 0; defs && i < n; i++) agt_def_free(&defs[i]);
    free(defs);
}

/* Parses every agent, then registers them all (or none). */
static int load_agents(cfg *c, const proto_val_t *arr) {
    if (arr->type != PROTO_V_ARRAY) return bad(c, "agents must be an array");
    if (arr->len > AGT_MAX_AGENTS) return bad(c, "agents has more than %d entries",
                                              AGT_MAX_AGENTS);
    agt_def_t **defs = calloc(arr->len ? arr->len : 1, sizeof(*defs));
    if (!defs) return ABP_ENOMEM;
    proto_val_t m;
    size_t cur = 0, n = 0;
    int rc = 0;
    for (; rc == 0 && proto_val_next(arr, &cur, &m) == 1; n++) {
        snprintf(c->path, sizeof c->path, "agents[%zu]", n);
        rc = parse_agent(c, &m, &defs[n]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (agt__host->agent_find(c->h, proto_str_of(defs[i]->name))) {
            rc = bad(c, "agents[%zu].name: an agent '%s' exists already", i, defs[i]->name);
        }
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(defs[i]->name, defs[j]->name) == 0) {
                rc = bad(c, "agents[%zu].name: '%s' is also agents[%zu]", i, defs[i]->name, j);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = agt__host->agent_add(c->h, defs[i]);
        if (rc == 0) defs[i] = NULL;
        else bad(c, "agents[%zu] could not be added (%s)", i, act_err_name(rc));
    }
    free_defs(defs, n);
    return rc;
}

typedef int section_fn(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap);

static int load_top(cfg *c, const proto_val_t *top) {
    static const struct { const char *key; section_fn *fn; } sections[] = {
        {"models", agt_models_config}, {"mcp", agt_toolsets_config},
        {"tools", agt_tools_config}};
    proto_val_t k, v, agents;
    size_t cur = 0;
    if (top->type != PROTO_V_MAP) return bad(c, "the agents config must be a JSON object");
    while (proto_val_next(top, &cur, &k) == 1 && proto_val_next(top, &cur, &v) == 1) {
        bool known = key_is(&k, "agents");
        for (size_t i = 0; !known && i < sizeof sections / sizeof sections[0]; i++) {
            known = key_is(&k, sections[i].key);
        }
        if (!known && k.type == PROTO_V_STR) {
            return bad(c, "unknown key '%.*s' (the config has agents, models, mcp, tools)",
                       (int)k.len, (const char *)k.data);
        }
        if (!known) return bad(c, "the config has a key that is not a string");
    }
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (proto_val_map_get(top, sections[i].key, &v) != 1) continue;
        if (v.type != PROTO_V_MAP) return bad(c, "%s must be an object", sections[i].key);
        int rc = sections[i].fn(agt__host->rt(c->h), &v, c->err, c->errcap);
        if (rc) return rc;
    }
    return proto_val_map_get(top, "agents", &agents) == 1 ? load_agents(c, &agents) : 0;
}

int agt_config_load(abp_host_t *h, const char *json, size_t n, char *err, size_t errcap) {
    cfg c = {.h = h, .err = err, .errcap = errcap};
    if (errcap) err[0] = 0;
    if (!h || !agt__host->registering(h) || !agt__host->rt(h) || !json) return bad(&c, "agents can not be defined now");
    if (n > AGT_MAX_CONFIG_BYTES) return bad(&c, "the agents config is over 4 MiB");
    proto_buf_t b;
    proto_error_t perr;
    proto_val_t top;
    proto_buf_init(&b);
    int rc = proto_json_to_msgpack(json, n, &b, &perr);
    if (rc == PROTO_ENOMEM || b.failed) rc = ABP_ENOMEM;
    else if (rc) rc = bad(&c, "the agents config is not valid JSON: %s", perr.message);
    else if (proto_val_read(b.p, b.n, &top) != 0) rc = bad(&c, "the agents config is unreadable");
    else rc = load_top(&c, &top);
    proto_buf_free(&b);
    return rc;
}

int agt_define_agents_json(abp_host_t *h, const char *json) {
    char err[256];
    if (!json) return ABP_EINVAL;
    int rc = agt_config_load(h, json, strlen(json), err, sizeof err);
    if (rc) act_log(ACT_LOG_ERROR, "agents_config", "source=plugin error=%s reason=\"%s\"",
                    act_err_name(rc), err);
    return rc;
}

int agt_config_load_file(abp_host_t *h, const char *path, char *err, size_t errcap) {
    cfg c = {.h = h, .err = err, .errcap = errcap};
    FILE *f = fopen(path, "rb");
    if (!f) {
        bad(&c, "can not open %s", path);
        return ACT_ENOENT;
    }
    char *buf = malloc(AGT_MAX_CONFIG_BYTES + 1);
    size_t n = buf ? fread(buf, 1, AGT_MAX_CONFIG_BYTES + 1, f) : 0;
    int rc = !buf ? ABP_ENOMEM : ferror(f) ? ACT_EIO : 0;
    fclose(f);
    if (rc == 0 && n > AGT_MAX_CONFIG_BYTES) rc = bad(&c, "%s is over 4 MiB", path);
    if (rc == 0) rc = agt_config_load(h, buf, n, err, errcap);
    free(buf);
    return rc;
}
