/* models.c: the named models of the agent runtime (the config's "models", or the environment
 * for "default"). Each is built on first use: an OpenAI-compatible backend, its fallback's
 * backend, a guard around both (rate limit, retries, breaker, the broker's budget) and a thin
 * wrapper that bounds every call by the model's timeout_ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelside.h"

#define DEFAULT_MODEL_TIMEOUT_MS 60000

typedef struct model_conf {
    char *name, *base_url, *model, *api_key_env, *fallback;
    long max_concurrency;
    double rps;
    int burst, max_attempts, breaker_threshold;
    int64_t timeout_ms, breaker_reset_ms, base_delay_ms;
    agt_model_t *built; /* the wrapper, once built */
} model_conf_t;

struct agt_models {
    model_conf_t *v;
    size_t n;
    agt_model_budget_t shim; /* forwards to rt->budget, which may arrive after a build */
};

/* The wrapper: one named model, its timeout, and the guard it owns. */
typedef struct named {
    agt_model_t base;
    agt_model_t *guard;
    int64_t timeout_ms;
} named_t;

/* Whose deadline a timeout was is decided here, where both are known, before the call: when
 * the model's own bound is nearer than the caller's (the call's and the task's scopes), every
 * ACT_ETIMEDOUT inside came from it (a scope that fired, or a rate wait refused because it
 * could not end before it) and becomes the model's code; otherwise ACT_ETIMEDOUT stays the
 * caller's. Reading the clock after the call cannot tell the two apart: a refusal ahead of
 * time leaves time on both. Ties go to the caller: its deadline stopped the call too. */
static int named_generate(agt_model_t *m, const agt_model_request_t *req,
                          agt_model_response_t *out, int64_t deadline) {
    named_t *n = (named_t *)m;
    int64_t own = act_deadline_in(n->timeout_ms);
    int64_t caller = agt_deadline_min(deadline, act_effective_deadline());
    bool own_first = own >= 0 && (caller < 0 || own < caller);
    int rc = n->guard->ops->generate(n->guard, req, out, own_first ? own : deadline);
    if (rc == ACT_ETIMEDOUT && own_first) {
        char why[sizeof(out->error)];
        memcpy(why, out->error, sizeof(why));
        snprintf(out->error, sizeof(out->error), "the model's timeout_ms (%lld) passed%s%.150s",
                 (long long)n->timeout_ms, why[0] ? ": " : "", why);
        rc = AGT_EMODEL_TIMEOUT;
    }
    return rc;
}

static void named_destroy(agt_model_t *m) {
    named_t *n = (named_t *)m;
    agt_model_destroy(&n->guard);
    free(n);
}

static const agt_model_ops_t named_ops = {"named", named_generate, named_destroy};

/* ---- the budget shim ---- */

static int shim_acquire(void *ctx, const char *backend, int64_t deadline) {
    agt_rt_t *rt = ctx;
    const agt_model_budget_t *b = rt->budget;
    return b && b->acquire ? b->acquire(b->ctx, backend, deadline) : 0;
}

static void shim_release(void *ctx, const char *backend, int64_t tokens) {
    agt_rt_t *rt = ctx;
    const agt_model_budget_t *b = rt->budget;
    if (b && b->release) b->release(b->ctx, backend, tokens);
}

/* ---- lifecycle ---- */

int agt_models_new(agt_models_t **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : ACT_ENOMEM;
}

static void conf_free(model_conf_t *c) {
    agt_model_destroy(&c->built);
    free(c->name), free(c->base_url), free(c->model), free(c->api_key_env), free(c->fallback);
}

void agt_models_destroy(agt_models_t **mp) {
    if (!mp || !*mp) return;
    for (size_t i = 0; i < (*mp)->n; i++) conf_free(&(*mp)->v[i]);
    free((*mp)->v);
    free(*mp);
    *mp = NULL;
}

/* ---- the config ---- */

static void conf_defaults(model_conf_t *c) {
    agt_guard_opts_t g;
    agt_guard_opts_init(&g);
    c->max_concurrency = g.max_concurrency;
    c->burst = g.burst;
    c->max_attempts = g.max_attempts;
    c->breaker_threshold = g.breaker_threshold;
    c->breaker_reset_ms = g.breaker_reset_ms;
    c->base_delay_ms = g.base_delay_ms;
    c->timeout_ms = DEFAULT_MODEL_TIMEOUT_MS;
}

static int want_str(const model_conf_t *c, const proto_val_t *v, const char *key, char **out,
                    char *err, size_t cap) {
    if (v->type != PROTO_V_STR || v->len == 0) {
        snprintf(err, cap, "models.%s.%s must be a non-empty string", c->name, key);
        return ACT_EINVAL;
    }
    free(*out);
    *out = strndup((const char *)v->data, v->len);
    return *out ? 0 : ACT_ENOMEM;
}

/* Integer keys: min is the smallest value allowed (0 or 1). */
static int want_int(const model_conf_t *c, const proto_val_t *v, const char *key, int64_t min,
                    int64_t *out, char *err, size_t cap) {
    if ((v->type != PROTO_V_INT && v->type != PROTO_V_UINT) || v->i < min || v->i > INT32_MAX) {
        snprintf(err, cap, "models.%s.%s must be a %s integer", c->name, key,
                 min > 0 ? "positive" : "non-negative");
        return ACT_EINVAL;
    }
    *out = v->i;
    return 0;
}

static int conf_key(model_conf_t *c, const proto_val_t *k, const proto_val_t *v, char *err,
                    size_t cap) {
    int64_t i = 0;
    int rc;
    if (proto_val_str_eq(k, "base_url")) return want_str(c, v, "base_url", &c->base_url, err, cap);
    if (proto_val_str_eq(k, "model")) return want_str(c, v, "model", &c->model, err, cap);
    if (proto_val_str_eq(k, "api_key_env"))
        return want_str(c, v, "api_key_env", &c->api_key_env, err, cap);
    if (proto_val_str_eq(k, "fallback")) return want_str(c, v, "fallback", &c->fallback, err, cap);
    if (proto_val_str_eq(k, "rps")) {
        bool num = v->type == PROTO_V_INT || v->type == PROTO_V_UINT || v->type == PROTO_V_FLOAT;
        double d = v->type == PROTO_V_FLOAT ? v->f : (double)v->i;
        if (!num || d < 0) {
            snprintf(err, cap, "models.%s.rps must be a non-negative number", c->name);
            return ACT_EINVAL;
        }
        c->rps = d;
        return 0;
    }
    static const struct {
        const char *key;
        int64_t min;
    } ints[] = {{"max_concurrency", 0}, {"max_attempts", 1},     {"timeout_ms", 1},
                {"burst", 1},           {"breaker_threshold", 1}, {"breaker_reset_ms", 0},
                {"base_delay_ms", 0}};
    for (size_t n = 0; n < sizeof ints / sizeof ints[0]; n++) {
        if (!proto_val_str_eq(k, ints[n].key)) continue;
        if ((rc = want_int(c, v, ints[n].key, ints[n].min, &i, err, cap))) return rc;
        switch (n) {
        case 0: c->max_concurrency = (long)i; break;
        case 1: c->max_attempts = (int)i; break;
        case 2: c->timeout_ms = i; break;
        case 3: c->burst = (int)i; break;
        case 4: c->breaker_threshold = (int)i; break;
        case 5: c->breaker_reset_ms = i; break;
        default: c->base_delay_ms = i; break;
        }
        return 0;
    }
    snprintf(err, cap, "models.%s.%.*s is not a known key", c->name,
             k->type == PROTO_V_STR ? (int)k->len : 1,
             k->type == PROTO_V_STR ? (const char *)k->data : "?");
    return ACT_EINVAL;
}

static model_conf_t *conf_find(agt_models_t *m, const char *name) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0) return &m->v[i];
    return NULL;
}

static model_conf_t *conf_add(agt_models_t *m, const char *name, size_t n) {
    model_conf_t *v = realloc(m->v, (m->n + 1) * sizeof(*v));
    if (!v) return NULL;
    m->v = v;
    model_conf_t *c = &m->v[m->n];
    memset(c, 0, sizeof(*c));
    conf_defaults(c);
    if (!(c->name = strndup(name, n))) return NULL;
    m->n++;
    return c;
}

static int conf_one(agt_models_t *m, const proto_val_t *k, const proto_val_t *v, char *err,
                    size_t cap) {
    if (k->type != PROTO_V_STR || k->len == 0 || k->len >= 64) {
        snprintf(err, cap, "models: a key is not a model name (1 to 63 bytes)");
        return ACT_EINVAL;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strlen(m->v[i].name) == k->len && !memcmp(m->v[i].name, k->data, k->len)) {
            snprintf(err, cap, "models.%.*s is defined twice", (int)k->len, (char *)k->data);
            return ACT_EINVAL;
        }
    }
    model_conf_t *c = conf_add(m, (const char *)k->data, k->len);
    if (!c) return ACT_ENOMEM;
    if (v->type != PROTO_V_MAP) {
        snprintf(err, cap, "models.%s must be an object", c->name);
        return ACT_EINVAL;
    }
    size_t cur = 0;
    proto_val_t fk, fv;
    while (proto_val_next(v, &cur, &fk) == 1 && proto_val_next(v, &cur, &fv) == 1) {
        int rc = conf_key(c, &fk, &fv, err, cap);
        if (rc) return rc;
    }
    return 0;
}

int agt_models_config(agt_rt_t *rt, const proto_val_t *section, char *err, size_t errcap) {
    agt_models_t *m = rt->models;
    if (section->type != PROTO_V_MAP) {
        snprintf(err, errcap, "models must be an object");
        return ACT_EINVAL;
    }
    size_t cur = 0, first = m->n;
    proto_val_t k, v;
    while (proto_val_next(section, &cur, &k) == 1 && proto_val_next(section, &cur, &v) == 1) {
        int rc = conf_one(m, &k, &v, err, errcap);
        if (rc) return rc;
    }
    for (size_t i = first; i < m->n; i++) { /* names checked once all are known */
        model_conf_t *c = &m->v[i];
        if (c->fallback && (!conf_find(m, c->fallback) || !strcmp(c->fallback, c->name))) {
            snprintf(err, errcap, "models.%s.fallback names no other model of \"models\"",
                     c->name);
            return ACT_EINVAL;
        }
    }
    return 0;
}

/* ---- building ---- */

/* A backend for conf c; the environment fills what the config leaves out (for "default"). */
static int backend_new(const model_conf_t *c, agt_model_t **out) {
    const char *key = c->api_key_env ? getenv(c->api_key_env) : NULL;
    if (c->api_key_env && !key)
        act_log(ACT_LOG_WARN, "model_no_api_key", "model=%s env=%s", c->name, c->api_key_env);
    agt_openai_config_t oc = {.name = c->name, .base_url = c->base_url, .model = c->model,
                              .api_key = key};
    return agt_openai_new(out, &oc);
}

static int build(agt_rt_t *rt, model_conf_t *c) {
    agt_model_t *primary = NULL, *fallback = NULL, *guard = NULL;
    int rc = backend_new(c, &primary);
    model_conf_t *fc = c->fallback ? conf_find(rt->models, c->fallback) : NULL;
    if (!rc && fc) rc = backend_new(fc, &fallback);
    if (rc) {
        agt_model_destroy(&primary);
        return rc;
    }
    agt_guard_opts_t g;
    agt_guard_opts_init(&g);
    g.name = c->name;
    g.max_concurrency = c->max_concurrency;
    g.rps = c->rps;
    g.burst = c->burst;
    g.max_attempts = c->max_attempts;
    g.base_delay_ms = c->base_delay_ms;
    g.breaker_threshold = c->breaker_threshold;
    g.breaker_reset_ms = c->breaker_reset_ms;
    rt->models->shim = (agt_model_budget_t){shim_acquire, shim_release, rt};
    g.budget = &rt->models->shim;
    if ((rc = agt_guard_new(&guard, primary, fallback, &g))) return rc;
    named_t *n = calloc(1, sizeof(*n));
    if (!n) {
        agt_model_destroy(&guard);
        return ACT_ENOMEM;
    }
    n->base.ops = &named_ops;
    snprintf(n->base.name, sizeof(n->base.name), "%s", c->name);
    n->guard = guard;
    n->timeout_ms = c->timeout_ms;
    c->built = &n->base;
    return 0;
}

int agt_model_get(agt_rt_t *rt, const char *name, agt_model_t **out) {
    if (!rt || !rt->models || !out) return ACT_EINVAL;
    if (!name) name = "default";
    model_conf_t *c = conf_find(rt->models, name);
    if (!c && strcmp(name, "default") == 0 && agt_openai_env_configured())
        c = conf_add(rt->models, name, strlen(name)); /* from the environment */
    if (!c) return ACT_ENOENT;
    if (!c->built) {
        int rc = build(rt, c);
        if (rc) return rc;
    }
    *out = c->built;
    return 0;
}
