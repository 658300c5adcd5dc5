/* group.c: task groups. Children link into the group; a child that fails is kept (with its
 * message) in the failed list; a child that succeeds is freed at once, so a group of a
 * million short tasks holds only the ones still pending. A failure is reacted to at the end
 * of the scheduler pass (as asyncio's done callback runs after the steps already scheduled):
 * the siblings are cancelled and the owner's body is interrupted until it waits. */
#include "internal.h"

int act_group_init(act_group_t *g) {
    act__list_init(&g->children);
    act__list_init(&g->failed);
    act__list_init(&g->waiters);
    act__list_init(&g->due);
    g->live = g->nfailed = 0;
    g->cancelling = false;
    g->owner_interrupted = g->owner_waiting = false;
    g->owner = act_current();
    if (g->owner) g->owner->refs++; /* it may end before the group is closed */
    return 0;
}

/* Undoes the owner's interruption (asyncio's uncancel in TaskGroup.__aexit__). */
static void owner_resume(act_group_t *g) {
    if (!g->owner_interrupted) return;
    g->owner_interrupted = false;
    g->owner->interrupts--;
}

/* A child failed: cancel the owner's body at its next wait, unless it is already waiting
 * for the group (the wait reports the failure). */
static void owner_interrupt(act_group_t *g) {
    act_task_t *o = g->owner;
    if (!o || g->owner_interrupted || g->owner_waiting || o->state == ACT_TASK_DONE) return;
    g->owner_interrupted = true;
    o->interrupts++;
    if (o->waiter && !o->waiter->shielded) act__waiter_fire(o->waiter, ACT_ECANCELED);
}

void act__groups_react(act_loop_t *L) {
    act__list *n;
    while ((n = act__list_pop(&L->groups_due)) != NULL) {
        act_group_t *g = act__container_of(n, act_group_t, due);
        if (!g->cancelling) act_group_cancel(g);
        owner_interrupt(g);
    }
}

int act_group_spawn(act_group_t *g, act_task_fn fn, void *arg, const act_spawn_opts_t *opts,
                    act_task_t **out) {
    if (g->cancelling) return ACT_ECLOSED;
    act_task_t *t;
    int rc = act_spawn(fn, arg, opts, &t);
    if (rc) return rc;
    t->group = g;
    t->flags |= ACT__T_JOINED; /* the group joins it */
    act__list_push(&g->children, &t->glink);
    g->live++;
    if (out) { /* spawn's handle stays the group's; the caller gets one more */
        t->refs++;
        *out = t;
    }
    return 0;
}

void act_group_cancel(act_group_t *g) {
    g->cancelling = true;
    /* Move the children aside and put each back before cancelling it: a child that never
     * started ends inside act_task_cancel and unlinks itself. */
    act__list pending;
    act__list_init(&pending);
    if (!act__list_empty(&g->children)) {
        pending.next = g->children.next;
        pending.prev = g->children.prev;
        pending.next->prev = &pending;
        pending.prev->next = &pending;
        act__list_init(&g->children);
    }
    act__list *n;
    while ((n = act__list_pop(&pending)) != NULL) {
        act_task_t *t = act__container_of(n, act_task_t, glink);
        act__list_push(&g->children, &t->glink);
        if (!(t->flags & ACT__T_SHIELD)) act_task_cancel(t);
    }
}

void act__group_child_done(act_task_t *t) {
    act_group_t *g = t->group;
    act__list_remove(&t->glink);
    g->live--;
    if (t->code && t->code != ACT_ECANCELED) {
        t->flags |= ACT__T_RETRIEVED;
        act__list_push(&g->failed, &t->glink); /* the group's reference keeps it */
        g->nfailed++;
        if (!act__list_linked(&g->due)) act__list_push(&t->loop->groups_due, &g->due);
    } else {
        t->group = NULL;
        act__task_unref(t);
    }
    if (!g->live) act__list_fire_all(&g->waiters, 0);
}

static int wait_children(act_group_t *g, int64_t deadline) {
    while (g->live) {
        act__waiter w;
        act__clause c;
        int rc = act__wait_enter(&w, "group", g);
        if (rc) return rc;
        act__clause_init(&c, &w, 0);
        act__list_push(&g->waiters, &c.link);
        rc = act__wait(&w, &c, 1, deadline);
        if (rc < 0) return rc;
    }
    return 0;
}

int act_group_wait(act_group_t *g, int64_t deadline) {
    bool owner = g->owner && g->owner == act_current();
    if (owner) {
        owner_resume(g);
        g->owner_waiting = true;
    }
    int rc = wait_children(g, deadline);
    if (rc) {
        /* Cut short: cancel the children and wait for their cleanup, shielded. */
        act_group_cancel(g);
        act_scope_t shield;
        act_scope_enter(&shield, -1, ACT_SCOPE_SHIELD);
        wait_children(g, -1);
        act_scope_leave(&shield);
    }
    if (owner) g->owner_waiting = false;
    if (act__list_linked(&g->due)) act__list_remove(&g->due); /* no child left to cancel */
    return g->nfailed ? ACT_EGROUP : rc;
}

size_t act_group_error_count(const act_group_t *g) { return g->nfailed; }

int act_group_error(const act_group_t *g, size_t i, act_group_error_t *out) {
    if (i >= g->nfailed) return ACT_EINVAL;
    const act__list *p = g->failed.next;
    while (i--) p = p->next;
    act_task_t *t = act__container_of(p, act_task_t, glink);
    out->task = t->name ? t->name : "unnamed";
    out->task_id = t->id;
    out->code = t->code;
    out->message = t->message ? t->message : act_strerror(t->code);
    return 0;
}

size_t act_group_count(const act_group_t *g, int code) {
    size_t n = 0;
    for (const act__list *p = g->failed.next; p != &g->failed; p = p->next) {
        if (act__container_of(p, act_task_t, glink)->code == code) n++;
    }
    return n;
}

int act_group_close(act_group_t *g) {
    if (g->live) return ACT_EBUSY;
    act__list *n;
    while ((n = act__list_pop(&g->failed)) != NULL) {
        act_task_t *t = act__container_of(n, act_task_t, glink);
        t->group = NULL;
        act__task_unref(t);
    }
    g->nfailed = 0;
    g->cancelling = false;
    if (act__list_linked(&g->due)) act__list_remove(&g->due);
    if (g->owner) {
        owner_resume(g);
        act__task_unref(g->owner);
        g->owner = NULL;
    }
    return 0;
}
