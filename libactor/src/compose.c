/* compose.c: gather, wait and as_completed. Each watches its tasks through observer clauses
 * linked into the tasks' done lists (one allocation per call), so waiting on 100k tasks costs
 * O(n) in all, not O(n) per completion. */
#include <string.h>

#include "internal.h"

typedef struct watch {
    act_task_t **tasks;  /* watched tasks */
    size_t n;            /* count */
    act__clause *obs;    /* one observer per task */
    act__waiter *w;      /* the parked caller, NULL when not parked */
    act_wait_mode_t mode;/* when to wake the caller */
    size_t done;         /* tasks ended */
    bool failed;         /* some task failed (cancelled included) */
    bool raised;         /* some task failed with an error other than ACT_ECANCELED */
    bool gather;         /* gather: a cancelled task counts as a failure, as in asyncio */
    int first_err;       /* the first failure's code, in completion order */
    bool own_deadline;   /* the call's own deadline (not a scope's) cut the wait short */
    size_t *order;       /* as_completed: indices in completion order (ring of n) */
    size_t head, tail;   /* as_completed: consumed, produced */
} watch;

static bool satisfied(const watch *k) {
    if (k->done == k->n) return true;
    if (k->mode == ACT_FIRST_COMPLETED) return k->done > 0;
    if (k->mode == ACT_FIRST_EXCEPTION) return k->gather ? k->failed : k->raised;
    return false;
}

static void note_end(watch *k, const act_task_t *t, size_t i) {
    if (t->code && !k->failed) k->first_err = t->code;
    if (t->code) k->failed = true;
    if (t->code && t->code != ACT_ECANCELED) k->raised = true;
    if (k->order) k->order[k->tail++] = i;
}

static void on_task_done(act__clause *c, int code) {
    (void)code;
    watch *k = c->ctx;
    act_task_t *t = k->tasks[c->id];
    k->done++;
    note_end(k, t, (size_t)c->id);
    if (k->w && (k->order || satisfied(k))) act__waiter_fire(k->w, 0);
}

static int watch_open(watch *k, act_task_t **tasks, size_t n, act_wait_mode_t mode,
                      bool ordered) {
    memset(k, 0, sizeof(*k));
    k->tasks = tasks;
    k->n = n;
    k->mode = mode;
    k->obs = calloc(n ? n : 1, sizeof(*k->obs));
    if (!k->obs) return ACT_ENOMEM;
    if (ordered && !(k->order = malloc((n ? n : 1) * sizeof(size_t)))) {
        free(k->obs);
        return ACT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        act__clause *c = &k->obs[i];
        act__clause_init(c, NULL, (int)i);
        c->notify = on_task_done;
        c->ctx = k;
        if (tasks[i]->state == ACT_TASK_DONE) {
            k->done++;
            note_end(k, tasks[i], i);
        } else {
            act__list_push(&tasks[i]->done, &c->link);
        }
    }
    return 0;
}

static void watch_close(watch *k) {
    for (size_t i = 0; i < k->n; i++) {
        if (act__list_linked(&k->obs[i].link)) act__list_remove(&k->obs[i].link);
    }
    free(k->obs);
    free(k->order);
}

/* Parks until the condition holds (or, for as_completed, one more task ended). */
static int watch_park(watch *k, int64_t deadline) {
    act__waiter w;
    int rc = act__wait_enter(&w, "tasks", k->tasks);
    if (rc) return rc;
    k->w = &w;
    rc = act__wait(&w, NULL, 0, deadline);
    k->w = NULL;
    if (rc == ACT_ETIMEDOUT && !w.timer_scope) k->own_deadline = true;
    return rc;
}

static int watch_until(watch *k, int64_t deadline) {
    int rc = act__wait_check();
    while (rc == 0 && !satisfied(k)) rc = watch_park(k, deadline);
    return rc;
}

static void cancel_pending(act_task_t **tasks, size_t n) {
    for (size_t i = 0; i < n; i++) act_task_cancel(tasks[i]);
}

/* Waits, shielded, for tasks that were just cancelled. */
static void drain(watch *k) {
    act_scope_t shield;
    act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
    k->mode = ACT_ALL_COMPLETED;
    watch_until(k, -1);
    act_scope_leave(&shield);
}

int act_gather(act_task_t **tasks, size_t n, void **results, int *codes, unsigned flags,
               int64_t deadline) {
    if (!act_current() || (n && !tasks)) return ACT_EINVAL;
    watch k;
    bool collect = (flags & ACT_GATHER_COLLECT) != 0;
    int rc = watch_open(&k, tasks, n, collect ? ACT_ALL_COMPLETED : ACT_FIRST_EXCEPTION, false);
    if (rc) return rc;
    k.gather = true;
    rc = watch_until(&k, deadline);
    int first = (rc == 0 && !collect) ? k.first_err : 0; /* fail fast */
    if (rc || (first && !(flags & ACT_GATHER_LEAVE_RUNNING))) {
        cancel_pending(tasks, n);
        drain(&k);
    }
    watch_close(&k);
    for (size_t i = 0; i < n; i++) {
        tasks[i]->flags |= ACT__T_JOINED | ACT__T_RETRIEVED;
        if (results) results[i] = tasks[i]->result;
        if (codes) codes[i] = tasks[i]->code;
    }
    return rc ? rc : first;
}

int act_wait(act_task_t **tasks, size_t n, act_wait_mode_t mode, int64_t deadline) {
    if (!act_current() || (n && !tasks)) return ACT_EINVAL;
    watch k;
    int rc = watch_open(&k, tasks, n, mode, false);
    if (rc) return rc;
    rc = watch_until(&k, deadline);
    size_t done = k.done;
    if (k.own_deadline) rc = 0; /* asyncio.wait returns what is done by its timeout */
    watch_close(&k);
    for (size_t i = 0; i < n; i++) tasks[i]->flags |= ACT__T_JOINED;
    return rc ? rc : (int)done;
}

int act_as_completed_init(act_as_completed_t *it, act_task_t **tasks, size_t n) {
    watch *k = malloc(sizeof(*k));
    if (!k) return ACT_ENOMEM;
    int rc = watch_open(k, tasks, n, ACT_FIRST_COMPLETED, true);
    if (rc) {
        free(k);
        return rc;
    }
    for (size_t i = 0; i < n; i++) tasks[i]->flags |= ACT__T_JOINED;
    it->impl = k;
    return 0;
}

int act_as_completed_next(act_as_completed_t *it, act_task_t **done, int64_t deadline) {
    watch *k = it->impl;
    if (k->head == k->n) return ACT_EEOF;
    int rc = act__wait_check();
    while (rc == 0 && k->head == k->tail) rc = watch_park(k, deadline);
    if (rc) return rc;
    *done = k->tasks[k->order[k->head++]];
    (*done)->flags |= ACT__T_RETRIEVED;
    return 0;
}

void act_as_completed_close(act_as_completed_t *it) {
    if (!it->impl) return;
    watch_close(it->impl);
    free(it->impl);
    it->impl = NULL;
}
