/* task.c: spawning, joining, cancelling and ending tasks, plus sleep and yield.
 * A task is one allocation (under 256 bytes); it gets a stack only when it first runs and
 * gives it back when it ends. References: one for the runtime until it ends, one per
 * handle, one for its group. */
#include <stdarg.h>
#include <string.h>

#include "internal.h"

void act__task_ready(act_task_t *t) {
    act_loop_t *L = t->loop;
    t->state = ACT_TASK_READY;
    act__list_push(&L->runq, &t->qlink);
    L->runq_len++;
}

void act__task_unref(act_task_t *t) {
    ACT_ASSERT(t->refs > 0);
    if (--t->refs) return;
    act_loop_t *L = t->loop;
    if (act__debug(L)) act__debug_task_freed(t);
    act__list_remove(&t->all);
    L->ntasks--;
    free(t->message);
    act__task_free(L, t);
}

void act__task_admit(act_task_t *t) {
    t->flags = (uint8_t)((t->flags & ~ACT__T_GATED) | ACT__T_PERMIT);
    act__task_ready(t);
}

int act_spawn(act_task_fn fn, void *arg, const act_spawn_opts_t *opts, act_task_t **out) {
    act_loop_t *L = act__tls_loop;
    if (!L || !fn) return ACT_EINVAL;
    if (opts && opts->stack_size > UINT32_MAX) return ACT_EINVAL;
    act_task_t *t = act__task_alloc(L);
    if (!t) return ACT_ENOMEM;
    t->loop = L;
    t->fn = fn;
    t->arg = arg;
    t->id = ++L->next_id;
    t->refs = out ? 2 : 1;
    t->state = ACT_TASK_NEW;
    if (!out) t->flags |= ACT__T_DETACHED;
    if (opts) {
        t->name = opts->name;
        t->stack_req = (uint32_t)opts->stack_size;
        if (opts->flags & ACT_SPAWN_SMALL_STACK) t->flags |= ACT__T_SMALL;
        if (opts->flags & ACT_SPAWN_SHIELD) t->flags |= ACT__T_SHIELD;
        t->limit = opts->limit;
    }
    act__list_init(&t->qlink);
    act__list_init(&t->done);
    act__list_init(&t->glink);
    act__list_push(&L->tasks, &t->all);
    L->ntasks++;
    L->nundone++;
    L->spawned++;
    if (!t->limit) {
        act__task_ready(t);
    } else if (act__sem_try_gate(t->limit, t)) {
        act__task_admit(t);
    } else {
        t->flags |= ACT__T_GATED; /* the semaphore queued it on its gate list */
    }
    if (out) *out = t;
    return 0;
}

void act_task_release(act_task_t **tp) {
    if (!tp || !*tp) return;
    act_task_t *t = *tp;
    *tp = NULL;
    act__task_unref(t);
}

void act__task_finish(act_task_t *t, int code, void *result) {
    act_loop_t *L = t->loop;
    ACT_ASSERT(t->state != ACT_TASK_DONE);
    t->code = code;
    t->result = result;
    t->state = ACT_TASK_DONE;
    L->nundone--;
    if (t->flags & ACT__T_PERMIT) {
        t->flags &= (uint8_t)~ACT__T_PERMIT;
        act__sem_release_permit(t->limit);
    }
    act__list_fire_all(&t->done, 0);
    if (t->group) act__group_child_done(t);
    act__task_unref(t); /* the runtime's reference */
}

int act_task_cancel(act_task_t *t) {
    if (t->state == ACT_TASK_DONE) return 0;
    t->flags |= ACT__T_CANCEL;
    if (!t->stack && t->state != ACT_TASK_RUNNING) {
        /* Never started: it ends now without running, and never takes a stack. */
        if (t->flags & ACT__T_GATED) {
            act__sem_ungate(t->limit, t);
            t->flags &= (uint8_t)~ACT__T_GATED;
        } else if (act__list_linked(&t->qlink)) {
            act__list_remove(&t->qlink);
            t->loop->runq_len--;
        }
        act__task_finish(t, ACT_ECANCELED, NULL);
        return 0;
    }
    if (t->waiter && !t->waiter->shielded) act__waiter_fire(t->waiter, ACT_ECANCELED);
    return 0;
}

static int outcome(act_task_t *t, void **result) {
    t->flags |= ACT__T_RETRIEVED | ACT__T_JOINED;
    if (result) *result = t->result;
    return t->code;
}

int act_join(act_task_t *t, void **result, int64_t deadline) {
    act__waiter w;
    act__clause c;
    if (t == act_current()) return ACT_EINVAL; /* would wait for itself forever */
    t->flags |= ACT__T_JOINED;
    int rc = act__wait_enter(&w, "join", t);
    if (rc) return rc;
    if (t->state == ACT_TASK_DONE) return outcome(t, result);
    act__clause_init(&c, &w, 0);
    act__list_push(&t->done, &c.link);
    rc = act__wait(&w, &c, 1, deadline);
    if (rc < 0) return rc;
    return outcome(t, result);
}

int act_wait_for(act_task_t *t, void **result, int64_t deadline) {
    int rc = act_join(t, result, deadline);
    if (act_task_done(t) || (rc != ACT_ETIMEDOUT && rc != ACT_ECANCELED)) return rc;
    /* Cut short: cancel the inner work and wait for its cleanup, shielded from our own
     * cancellation, then report why. */
    act_task_cancel(t);
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    int inner = act_join(t, result, -1);
    act_scope_leave(&shield);
    return inner == 0 ? 0 : rc;
}

act_task_t *act_current(void) { return act__tls_loop ? act__tls_loop->current : NULL; }

act_task_state_t act_task_state(const act_task_t *t) { return (act_task_state_t)t->state; }
bool act_task_done(const act_task_t *t) { return t->state == ACT_TASK_DONE; }
bool act_task_cancelled(const act_task_t *t) {
    return t->state == ACT_TASK_DONE && t->code == ACT_ECANCELED;
}
bool act_task_cancel_requested(const act_task_t *t) { return (t->flags & ACT__T_CANCEL) != 0; }
uint64_t act_task_id(const act_task_t *t) { return t->id; }
void *act_task_result(const act_task_t *t) { return t->result; }

void act_task_set_name(act_task_t *t, const char *name) { t->name = name; }

const char *act_task_name(const act_task_t *t) {
    static _Thread_local char names[4][32];
    static _Thread_local unsigned next;
    if (t->name) return t->name;
    char *buf = names[next++ % 4];
    snprintf(buf, sizeof(names[0]), "task-%llu", (unsigned long long)t->id);
    return buf;
}

int act_task_error(act_task_t *t, const char **message) {
    if (t->state == ACT_TASK_DONE) t->flags |= ACT__T_RETRIEVED;
    if (message) *message = t->message;
    return t->state == ACT_TASK_DONE ? t->code : 0;
}

size_t act_task_foreach(int (*fn)(act_task_t *t, void *ctx), void *ctx) {
    act_loop_t *L = act__tls_loop;
    size_t n = 0;
    if (!L) return 0;
    for (act__list *p = L->tasks.next; p != &L->tasks; p = p->next) {
        n++;
        if (fn(act__container_of(p, act_task_t, all), ctx)) break;
    }
    return n;
}

int act_fail(int code, const char *fmt, ...) {
    act_task_t *t = act_current();
    if (!t || !fmt) return code;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) >= 0) {
        free(t->message);
        t->message = msg;
    }
    va_end(ap);
    return code;
}

int act_yield(void) {
    /* The hottest blocking call: no wait record, only the checks a wait would make. */
    act_loop_t *L = act__tls_loop;
    act_task_t *t = L ? L->current : NULL;
    if (!t) return ACT_EINVAL;
    int rc = act__task_check(t);
    if (rc) return rc;
    act__task_ready(t);
    act__park(L);
    return 0;
}

int act_sleep_until(int64_t deadline) {
    act__waiter w;
    int rc = act__wait_enter(&w, "sleep", NULL);
    if (rc) return rc;
    if (deadline != ACT_NO_DEADLINE && deadline <= act_now()) {
        act__task_ready(w.task); /* like asyncio.sleep(0): let the others run */
        act__park(w.task->loop);
        return 0;
    }
    rc = act__wait(&w, NULL, 0, deadline);
    /* Our own deadline firing is success; an enclosing scope's is a timeout. */
    return (rc == ACT_ETIMEDOUT && !w.timer_scope) ? 0 : rc;
}

int act_sleep(int64_t ms) { return act_sleep_until(act_deadline_in(ms)); }
