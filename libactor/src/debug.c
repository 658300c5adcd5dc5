/* debug.c: debug-mode reports (slow slices, never-joined tasks, unretrieved errors) and the
 * task snapshot that dumps and remote tools read. Reports go through act_log so tests and
 * workers can capture them. */
#include <string.h>

#include "internal.h"

void act_loop_set_debug(act_loop_t *L, bool on, int64_t slow_ms) {
    if (on) L->flags |= ACT_LOOP_DEBUG;
    else L->flags &= ~(unsigned)ACT_LOOP_DEBUG;
    if (slow_ms > 0) L->slow_ms = slow_ms;
}

void act__debug_slice(act_loop_t *L, act_task_t *t, const char *kind) {
    uint64_t ns = uv_hrtime() - L->slice_start;
    if ((int64_t)(ns / 1000000) < L->slow_ms) return;
    act_log(ACT_LOG_WARN, "slow_task", "kind=\"%s\" task=%s id=%llu held_ms=%llu limit_ms=%lld",
            kind, t ? act_task_name(t) : "-", t ? (unsigned long long)t->id : 0ull,
            (unsigned long long)(ns / 1000000), (long long)L->slow_ms);
}

void act__debug_task_freed(act_task_t *t) {
    if (t->state == ACT_TASK_DONE && t->code && t->code != ACT_ECANCELED &&
        !(t->flags & ACT__T_RETRIEVED)) {
        act_log(ACT_LOG_WARN, "unretrieved_error", "task=%s id=%llu code=%s message=\"%s\"",
                act_task_name(t), (unsigned long long)t->id, act_err_name(t->code),
                t->message ? t->message : act_strerror(t->code));
    } else if (!(t->flags & (ACT__T_JOINED | ACT__T_DETACHED | ACT__T_RETRIEVED))) {
        act_log(ACT_LOG_WARN, "never_joined", "task=%s id=%llu state=%s", act_task_name(t),
                (unsigned long long)t->id, act_task_state_name((act_task_state_t)t->state));
    }
}

const char *act_task_state_name(act_task_state_t s) {
    static const char *const names[] = {"new", "ready", "running", "waiting", "done"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

static void describe(act_task_t *t, act_task_info_t *i) {
    memset(i, 0, sizeof(*i));
    i->id = t->id;
    snprintf(i->name, sizeof i->name, "%s", act_task_name(t));
    i->state = (act_task_state_t)t->state;
    i->deadline = -1;
    i->cancel_requested = (t->flags & ACT__T_CANCEL) != 0;
    i->small_stack = (t->flags & ACT__T_SMALL) != 0;
    if (t->flags & ACT__T_GATED) {
        i->waits_on = "spawn.limit";
        i->object = t->limit;
    }
    if (t->waiter) {
        i->waits_on = t->waiter->what;
        i->object = t->waiter->obj;
        i->waiting_ms = act_now() - t->waiter->since;
        i->deadline = act__timer_armed(&t->waiter->timer) ? t->waiter->timer.node.key : -1;
    }
}

int act_debug_snapshot(act_task_info_t **out) {
    act_loop_t *L = act__tls_loop;
    if (!L) return ACT_EINVAL;
    act_task_info_t *v = malloc((L->ntasks ? L->ntasks : 1) * sizeof(*v));
    if (!v) return ACT_ENOMEM;
    size_t n = 0;
    for (act__list *p = L->tasks.next; p != &L->tasks && n < L->ntasks; p = p->next) {
        describe(act__container_of(p, act_task_t, all), &v[n++]);
    }
    *out = v;
    return (int)n;
}

int act_debug_dump(FILE *f) {
    act_task_info_t *v;
    int n = act_debug_snapshot(&v);
    if (n < 0) return n;
    fprintf(f, "%-8s %-24s %-8s %-14s %10s %10s\n", "id", "name", "state", "waits_on",
            "waited_ms", "due_in_ms");
    int64_t now = act_now();
    for (int i = 0; i < n; i++) {
        fprintf(f, "%-8llu %-24s %-8s %-14s %10lld %10lld%s\n", (unsigned long long)v[i].id,
                v[i].name, act_task_state_name(v[i].state), v[i].waits_on ? v[i].waits_on : "-",
                (long long)v[i].waiting_ms,
                (long long)(v[i].deadline < 0 ? -1 : v[i].deadline - now),
                v[i].cancel_requested ? " cancel-requested" : "");
    }
    free(v);
    return n;
}
