/* wait.c: the one wait/wake mechanism under every blocking call, and the only file that
 * switches context. A blocking call links clauses (on its own stack) into the objects it
 * waits on and parks; whoever completes it fires one clause, which unlinks them all, disarms
 * the deadline and makes the task ready, exactly once. Timeout scopes and cancellation are
 * checked here, so they behave the same for sleep, locks, queues, joins and sockets. */
#include <string.h>

#include "internal.h"

#ifdef ACT_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* ---- scopes and cancellation ---- */

/* Walks the task's scopes from the innermost out to the first shield. Returns the code the
 * next blocking call must fail with (0 if none), and the effective deadline and its owner.
 * An expired scope's deadline is reported as the one in effect (a passed time, at most now),
 * never as "none": act_effective_deadline's callers read "-1" as "no limit", and a job whose
 * timeout fired would look unbounded to them. */
static int scope_state(act_task_t *t, int64_t now, int64_t *deadline, act_scope_t **owner,
                       bool *shielded) {
    *deadline = ACT_NO_DEADLINE;
    *owner = NULL;
    *shielded = false;
    for (act_scope_t *s = t->scope; s; s = s->parent) {
        if (!s->state && s->deadline != ACT_NO_DEADLINE && now >= s->deadline)
            s->state = ACT_ETIMEDOUT;
        if (s->state == ACT_ETIMEDOUT) { /* rescheduled later after it expired: passed now */
            *deadline = s->deadline != ACT_NO_DEADLINE && s->deadline <= now ? s->deadline : now;
            *owner = s;
        }
        if (s->state) return s->state;
        if (s->deadline != ACT_NO_DEADLINE) {
            if (*deadline == ACT_NO_DEADLINE || s->deadline < *deadline) {
                *deadline = s->deadline;
                *owner = s;
            }
        }
        if (s->flags & ACT_SCOPE_SHIELD) {
            *shielded = true;
            return 0;
        }
    }
    return ((t->flags & ACT__T_CANCEL) || t->interrupts) ? ACT_ECANCELED : 0;
}

int act__task_check(act_task_t *t) {
    if (!t->scope) return ((t->flags & ACT__T_CANCEL) || t->interrupts) ? ACT_ECANCELED : 0;
    int64_t d;
    act_scope_t *owner;
    bool shielded;
    return scope_state(t, act_now(), &d, &owner, &shielded);
}

int act__wait_enter(act__waiter *w, const char *what, const void *obj) {
    act_loop_t *L = act__tls_loop;
    act_task_t *t = L ? L->current : NULL;
    if (!t) return ACT_EINVAL;
    memset(w, 0, sizeof(*w));
    w->task = t;
    w->what = what;
    w->obj = obj;
    int64_t d;
    act_scope_t *owner;
    bool shielded;
    return scope_state(t, act_now(), &d, &owner, &shielded);
}

int act__wait_check(void) {
    act_loop_t *L = act__tls_loop;
    act_task_t *t = L ? L->current : NULL;
    return t ? act__task_check(t) : ACT_EINVAL;
}

void act__clause_init(act__clause *c, act__waiter *w, int id) {
    act__list_init(&c->link);
    c->w = w;
    c->notify = NULL;
    c->id = id;
    c->data = NULL;
    c->prio = 0;
    c->ctx = NULL;
}

static void on_deadline(act__timer *tm) {
    act__waiter *w = act__container_of(tm, act__waiter, timer);
    if (w->timer_scope) w->timer_scope->state = ACT_ETIMEDOUT;
    act__waiter_fire(w, ACT_ETIMEDOUT);
}

/* Sets the waiter's timer to the nearer of its own deadline and its scopes'. */
static int arm_deadline(act__waiter *w) {
    act_loop_t *L = w->task->loop;
    int64_t d;
    act_scope_t *owner;
    bool shielded;
    int rc = scope_state(w->task, act_now(), &d, &owner, &shielded);
    if (rc) return rc;
    w->shielded = shielded;
    if (w->call_deadline != ACT_NO_DEADLINE &&
        (d == ACT_NO_DEADLINE || w->call_deadline <= d)) {
        d = w->call_deadline;
        owner = NULL;
    }
    w->timer_scope = owner;
    if (d == ACT_NO_DEADLINE) {
        act__timer_disarm(L, &w->timer);
        return 0;
    }
    return act__timer_arm(L, &w->timer, d);
}

void act__waiter_rearm(act__waiter *w) {
    if (w->fired) return;
    int rc = arm_deadline(w);
    if (rc) act__waiter_fire(w, rc);
}

bool act__waiter_fire(act__waiter *w, int result) {
    if (w->fired) return false;
    w->fired = true;
    w->result = result;
    for (int i = 0; i < w->nclauses; i++) {
        if (act__list_linked(&w->clauses[i].link)) act__list_remove(&w->clauses[i].link);
    }
    act__timer_disarm(w->task->loop, &w->timer);
    act__task_ready(w->task);
    return true;
}

bool act__clause_fire(act__clause *c, int code) {
    if (act__list_linked(&c->link)) act__list_remove(&c->link);
    if (c->notify) {
        c->notify(c, code);
        return true;
    }
    return act__waiter_fire(c->w, code < 0 ? code : c->id);
}

act__clause *act__list_fire_first(act__list *h, int code) {
    act__list *n;
    while ((n = act__list_pop(h)) != NULL) {
        act__clause *c = act__container_of(n, act__clause, link);
        if (act__clause_fire(c, code)) return c;
    }
    return NULL;
}

size_t act__list_fire_all(act__list *h, int code) {
    size_t n = 0;
    act__list *x;
    while ((x = act__list_pop(h)) != NULL) {
        /* Waking many parked tasks touches each one's stack (its clause and wait record):
         * start loading the next one while this one is handled. */
        if (h->next != h) __builtin_prefetch(h->next, 1);
        if (act__clause_fire(act__container_of(x, act__clause, link), code)) n++;
    }
    return n;
}

int act__wait(act__waiter *w, act__clause *c, int n, int64_t deadline) {
    act_task_t *t = w->task;
    w->clauses = c;
    w->nclauses = n;
    w->call_deadline = deadline;
    act__timer_init(&w->timer, on_deadline);
    int rc = deadline == 0 ? ACT_ETIMEDOUT : arm_deadline(w);
    if (rc) { /* never parked: unlink the clauses it linked and fail the call */
        w->fired = true;
        for (int i = 0; i < n; i++) {
            if (act__list_linked(&c[i].link)) act__list_remove(&c[i].link);
        }
        act__timer_disarm(t->loop, &w->timer);
        return rc;
    }
    w->since = act_now();
    t->waiter = w;
    t->state = ACT_TASK_WAITING;
    act__park(t->loop);
    t->waiter = NULL;
    return w->result;
}

/* ---- scopes (public) ---- */

int act_scope_enter(act_scope_t *s, int64_t deadline, unsigned flags) {
    act_task_t *t = act_current();
    if (!t) return ACT_EINVAL;
    s->parent = t->scope;
    s->task = t;
    s->deadline = deadline;
    s->flags = flags;
    s->state = 0;
    t->scope = s;
    return 0;
}

int act_scope_leave(act_scope_t *s) {
    ACT_ASSERT(s->task && s->task->scope == s); /* scopes must nest */
    s->task->scope = s->parent;
    if (!s->state && s->deadline != ACT_NO_DEADLINE && act_now() >= s->deadline) {
        s->state = ACT_ETIMEDOUT;
    }
    return s->state;
}

/* True when s bounds the task's current wait (it lies inside the nearest shield). */
static bool scope_in_effect(act_scope_t *s) {
    for (act_scope_t *p = s->task->scope; p; p = p->parent) {
        if (p == s) return true;
        if (p->flags & ACT_SCOPE_SHIELD) return false;
    }
    return false;
}

void act_scope_reschedule(act_scope_t *s, int64_t deadline) {
    s->deadline = deadline;
    if (s->task->waiter && scope_in_effect(s)) act__waiter_rearm(s->task->waiter);
}

void act_scope_cancel(act_scope_t *s) {
    if (s->state) return;
    s->state = ACT_ECANCELED;
    if (s->task->waiter && scope_in_effect(s)) act__waiter_fire(s->task->waiter, ACT_ECANCELED);
}

int64_t act_effective_deadline(void) {
    act_task_t *t = act_current();
    if (!t) return -1;
    int64_t d;
    act_scope_t *owner;
    bool shielded;
    scope_state(t, act_now(), &d, &owner, &shielded);
    return d;
}

/* ---- switching ---- */

/* Ends a task that returned and switched away for the last time: runs its completion (wakes
 * joiners, its group, its limit) and releases its stack. Only the scheduler does this, on
 * its own stack, so a small-stack task never runs completion work on its few bytes. */
static void reap(act_loop_t *L) {
    act_task_t *z = L->zombie;
    if (!z) return;
    L->zombie = NULL;
#ifdef ACT_ASAN
    __asan_unpoison_memory_region(z->stack->lo, z->stack->size);
#endif
    act__stack_put(&L->stacks, z->stack);
    z->stack = NULL;
    L->nstarted--;
    act__task_finish(z, z->code, z->result);
}

static void task_entry(void *p);

/* Gives t a stack and a context on its first run. */
static int start(act_loop_t *L, act_task_t *t) {
    int rc = act__stack_get(&L->stacks, t->stack_req, (t->flags & ACT__T_SMALL) != 0, &t->stack);
    if (rc) return rc;
    L->nstarted++;
    act__ctx_make(&t->ctx, t->stack->lo, t->stack->size, task_entry, t);
    return 0;
}

/* Pops the next task that can run; tasks that cannot get a stack end with ACT_ENOMEM.
 * From a task (direct switch) only tasks that already run are taken: starting one allocates,
 * which is the scheduler's work on its own stack. */
static act_task_t *next_ready(act_loop_t *L, bool from_task) {
    act__list *n;
    if (from_task) {
        n = L->runq.next;
        if (n == &L->runq || !act__container_of(n, act_task_t, qlink)->stack) return NULL;
    }
    while ((n = act__list_pop(&L->runq)) != NULL) {
        L->runq_len--;
        act_task_t *t = act__container_of(n, act_task_t, qlink);
        if (t->stack || start(L, t) == 0) return t;
        act__task_finish(t, ACT_ENOMEM, NULL);
    }
    return NULL;
}

static void check_out(act_loop_t *L, act_task_t *t) {
    if (t->stack->small && !act__stack_canary_ok(t->stack)) {
        fprintf(stderr, "actor: stack overflow in task '%s' (id %llu, small stack %zu bytes)\n",
                act_task_name(t), (unsigned long long)t->id, t->stack->size);
        abort();
    }
    if (act__debug(L)) act__debug_slice(L, t, "task");
}

/* Switches from `from` (NULL: the scheduler) to `to` (NULL: the scheduler). */
static void switch_to(act_loop_t *L, act_task_t *from, act_task_t *to) {
    act__ctx *fc = from ? &from->ctx : &L->sched;
    act__ctx *tc = to ? &to->ctx : &L->sched;
    L->current = to;
    if (to) to->state = ACT_TASK_RUNNING;
    L->switches++;
    /* Warm the stack tops of the two tasks after this one: with thousands of ready tasks
     * each resume is a cache (and TLB) miss, and this overlaps it with the slices before. */
    if (L->runq_len > 16) { /* a few tasks stay in cache: do not pay for the walk */
        act__list *n = L->runq.next;
        for (int ahead = 0; ahead < 2; ahead++, n = n->next) {
            act_task_t *after = act__container_of(n, act_task_t, qlink);
            if (after->stack) __builtin_prefetch(after->ctx.sp);
        }
    }
    if (act__debug(L)) L->slice_start = uv_hrtime();
#ifdef ACT_ASAN
    void *fake = NULL;
    bool dying = from && from->state == ACT__TASK_EXITING;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, to ? to->stack->lo : L->sched_stack_lo,
                                   to ? to->stack->size : L->sched_stack_size);
    act__ctx_switch(fc, tc);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    act__ctx_switch(fc, tc);
#endif
    reap(L);
}

int act_on_park(void (*fn)(void *arg), void *arg) {
    act_loop_t *L = act__tls_loop;
    act_task_t *t = L ? L->current : NULL;
    if (!t) return ACT_EINVAL;
    L->park_task = fn ? t : NULL;
    L->park_fn = fn;
    L->park_arg = arg;
    return 0;
}

/* The hook of act_on_park, forgotten before it runs (fn may set another). A task that ends
 * forgets its own unfired. */
static void park_hook(act_loop_t *L, act_task_t *cur) {
    void (*fn)(void *) = L->park_fn;
    L->park_task = NULL;
    L->park_fn = NULL;
    if (cur->state != ACT__TASK_EXITING) fn(L->park_arg);
}

void act__park(act_loop_t *L) {
    act_task_t *cur = L->current;
    if (L->park_task == cur) park_hook(L, cur);
    check_out(L, cur);
    act_task_t *next = NULL;
    if (L->budget > 0 && cur->state != ACT__TASK_EXITING && (next = next_ready(L, true))) {
        L->budget--;
    }
    if (next == cur) { /* it yielded and nothing else was ready */
        cur->state = ACT_TASK_RUNNING;
        return;
    }
    switch_to(L, cur, next);
}

static void task_entry(void *p) {
    act_task_t *t = p;
    act_loop_t *L = t->loop;
#ifdef ACT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    reap(L);
    t->result = NULL;
    t->code = t->fn(t->arg, &t->result);
    t->state = ACT__TASK_EXITING; /* completion runs in reap, on the scheduler's stack */
    L->zombie = t;
    act__park(L);
    act__panic(__FILE__, __LINE__, "a finished task was resumed");
}

#define ACT__PASS_BUDGET 128

/* Runs one pass: the tasks ready now, and those they wake, up to the budget. */
size_t act__run_ready(act_loop_t *L) {
    size_t ran = 0;
    /* Tasks may switch straight to each other up to this many times before the scheduler
     * polls I/O and timers again (Tokio polls every 61 ticks): one epoll per switch would
     * cost more than the switches. */
    L->budget = L->runq_len > ACT__PASS_BUDGET ? L->runq_len : ACT__PASS_BUDGET;
    while (L->budget > 0) {
        L->budget--;
        act_task_t *t = next_ready(L, false);
        if (!t) break;
        switch_to(L, NULL, t);
        ran++;
    }
    L->budget = 0;
    if (!act__list_empty(&L->groups_due)) act__groups_react(L);
    return ran;
}
