/* supervisor.c: an Erlang/OTP supervisor (one_for_one, one_for_all, rest_for_one). Children
 * run as tasks; the supervising task waits for the first to end (act_wait,
 * ACT_FIRST_COMPLETED) and restarts it by its policy, with the siblings its strategy names. Restart intensity is a ring of the last max_restarts restart times: one more
 * restart while the oldest of them is still inside the window means giving up. */
#include <string.h>

#include "internal.h"

struct act_supervisor {
    act_child_spec_t *specs; /* copies of the specs */
    size_t n;                /* children */
    act_task_t **tasks;      /* live task per child, NULL when not running */
    act_task_t **live;       /* scratch: the live tasks, compacted, for act_wait */
    bool *again;             /* scratch: children to start again after a group restart */
    int64_t *stamps;         /* ring of the last max_restarts restart times */
    size_t nstamps, head;    /* filled, next slot */
    act_supervisor_opts_t o; /* intensity and callback */
    size_t restarts;         /* restarts during the last run */
    int last_error;          /* last failing child's code */
    const char *last_child;  /* its name */
    bool running;            /* inside act_supervisor_run */
};

int act_supervisor_new(act_supervisor_t **out, const act_child_spec_t *children, size_t n,
                       const act_supervisor_opts_t *opts) {
    if (!out || !children || !opts || n == 0) return ACT_EINVAL;
    if (opts->max_restarts < 0 || opts->period_ms <= 0) return ACT_EINVAL;
    if ((unsigned)opts->strategy > ACT_SUP_REST_FOR_ONE) return ACT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!children[i].fn || (unsigned)children[i].restart > ACT_RESTART_TEMPORARY) {
            return ACT_EINVAL;
        }
    }
    act_supervisor_t *s = calloc(1, sizeof(*s));
    if (!s) return ACT_ENOMEM;
    s->specs = malloc(n * sizeof(*s->specs));
    s->tasks = calloc(n, sizeof(*s->tasks));
    s->live = calloc(n, sizeof(*s->live));
    s->again = calloc(n, sizeof(*s->again));
    s->stamps = calloc(opts->max_restarts ? (size_t)opts->max_restarts : 1, sizeof(int64_t));
    if (!s->specs || !s->tasks || !s->live || !s->again || !s->stamps) {
        s->n = 0;
        act_supervisor_destroy(&s);
        return ACT_ENOMEM;
    }
    memcpy(s->specs, children, n * sizeof(*s->specs));
    s->n = n;
    s->o = *opts;
    *out = s;
    return 0;
}

int act_supervisor_destroy(act_supervisor_t **sp) {
    if (!sp || !*sp) return 0;
    act_supervisor_t *s = *sp;
    if (s->running) return ACT_EBUSY;
    free(s->specs);
    free(s->tasks);
    free(s->live);
    free(s->again);
    free(s->stamps);
    free(s);
    *sp = NULL;
    return 0;
}

int act_supervisor_last_error(const act_supervisor_t *s, const char **child) {
    if (child) *child = s->last_child;
    return s->last_error;
}

size_t act_supervisor_restarts(const act_supervisor_t *s) { return s->restarts; }

static void emit(act_supervisor_t *s, size_t i, act_sup_event_t ev, int code) {
    if (s->o.on_event) s->o.on_event(s, s->specs[i].name, ev, code, s->o.ctx);
}

static int start_child(act_supervisor_t *s, size_t i) {
    act_spawn_opts_t o = {.name = s->specs[i].name};
    return act_spawn(s->specs[i].fn, s->specs[i].arg, &o, &s->tasks[i]);
}

/* Collects child i, which has ended: returns its code and drops the handle. */
static int reap_child(act_supervisor_t *s, size_t i) {
    int code = act_task_error(s->tasks[i], NULL);
    act_task_release(&s->tasks[i]);
    if (code && code != ACT_ECANCELED) {
        s->last_error = code;
        s->last_child = s->specs[i].name;
    }
    emit(s, i, ACT_SUP_EXITED, code);
    return code;
}

/* Cancels every live child in [from, n) but `except` and waits for them, shielded; marks
 * in restart[] those to start again (all but temporary ones) when restart is not NULL. */
static void stop_range(act_supervisor_t *s, size_t from, size_t except, bool *restart) {
    size_t k = 0;
    for (size_t i = from; i < s->n; i++) {
        if (s->tasks[i] && i != except) {
            act_task_cancel(s->tasks[i]);
            s->live[k++] = s->tasks[i];
        }
    }
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    act_wait(s->live, k, ACT_ALL_COMPLETED, -1);
    act_scope_leave(&shield);
    for (size_t i = from; i < s->n; i++) {
        if (!s->tasks[i] || i == except) continue;
        int code = reap_child(s, i);
        if (restart) restart[i] = s->specs[i].restart != ACT_RESTART_TEMPORARY;
        (void)code;
    }
}

/* Cancels every live child and waits for all of them, shielded. */
static void stop_all(act_supervisor_t *s) { stop_range(s, 0, SIZE_MAX, NULL); }

static bool wants_restart(act_restart_t policy, int code) {
    switch (policy) {
    case ACT_RESTART_PERMANENT:
        return true;
    case ACT_RESTART_TRANSIENT:
        return code != 0 && code != ACT_ECANCELED;
    case ACT_RESTART_TEMPORARY:
        return false;
    }
    return false;
}

/* Records a restart at now unless it exceeds the intensity. Returns: false to give up. */
static bool admit_restart(act_supervisor_t *s, int64_t now) {
    size_t cap = (size_t)s->o.max_restarts;
    if (cap == 0) return false;
    if (s->nstamps == cap && now - s->stamps[s->head] < s->o.period_ms) return false;
    s->stamps[s->head] = now;
    s->head = (s->head + 1) % cap;
    if (s->nstamps < cap) s->nstamps++;
    return true;
}

static int restart_child(act_supervisor_t *s, size_t i, int code) {
    int rc = start_child(s, i);
    if (rc) return rc;
    s->restarts++;
    emit(s, i, ACT_SUP_RESTARTED, code);
    return 0;
}

/* Handles child i, which has ended. Returns: 0, ACT_EGAVEUP or a spawn error. */
static int on_child_end(act_supervisor_t *s, size_t i) {
    int code = reap_child(s, i);
    if (!wants_restart(s->specs[i].restart, code)) return 0;
    if (!admit_restart(s, act_now())) { /* one restart operation, however many children */
        emit(s, i, ACT_SUP_GAVE_UP, code);
        return ACT_EGAVEUP;
    }
    if (s->o.strategy == ACT_SUP_ONE_FOR_ONE) return restart_child(s, i, code);
    /* one_for_all: every sibling; rest_for_one: those started after i. Stopped, then all
     * started again in start order. */
    size_t from = s->o.strategy == ACT_SUP_ONE_FOR_ALL ? 0 : i + 1;
    memset(s->again, 0, s->n * sizeof(*s->again));
    stop_range(s, from, i, s->again);
    s->again[i] = true;
    for (size_t k = from < i ? from : i; k < s->n; k++) {
        if (!s->again[k]) continue;
        int rc = restart_child(s, k, k == i ? code : ACT_ECANCELED);
        if (rc) return rc;
    }
    return 0;
}

/* Waits for some child to end. Returns: how many live children there were (0: all done for
 * good), or ACT_ETIMEDOUT / ACT_ECANCELED. */
static int wait_any(act_supervisor_t *s, int64_t deadline) {
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->tasks[i]) s->live[k++] = s->tasks[i];
    }
    if (k == 0) return 0;
    int rc = act_wait(s->live, k, ACT_FIRST_COMPLETED, deadline);
    if (rc < 0) return rc;
    return rc == 0 ? ACT_ETIMEDOUT : (int)k; /* none ended: act_wait's own deadline passed */
}

static int supervise(act_supervisor_t *s, int64_t deadline) {
    for (size_t i = 0; i < s->n; i++) {
        int rc = start_child(s, i);
        if (rc) return rc;
        emit(s, i, ACT_SUP_STARTED, 0);
    }
    for (;;) {
        int rc = wait_any(s, deadline);
        if (rc <= 0) return rc;
        for (size_t i = 0; i < s->n; i++) {
            if (!s->tasks[i] || !act_task_done(s->tasks[i])) continue;
            rc = on_child_end(s, i);
            if (rc) return rc;
        }
    }
}

int act_supervisor_run(act_supervisor_t *s, int64_t deadline) {
    if (!act_current()) return ACT_EINVAL;
    if (s->running) return ACT_EBUSY;
    s->running = true;
    s->restarts = 0;
    s->nstamps = s->head = 0;
    s->last_error = 0;
    s->last_child = NULL;
    int rc = supervise(s, deadline);
    stop_all(s); /* whatever is still running when we stop supervising */
    s->running = false;
    return rc;
}
