/* choose.c: act_choose, waiting on several queues, events and tasks at once. A first pass
 * completes the first choice ready now (array order, so the outcome is deterministic); else
 * one clause per choice (id = its index) is linked into its object's list and the task parks
 * once. Whoever fires a clause has already completed that choice (item handed over or moved
 * in); firing unlinks every other clause, so no later put or get reaches a stale one. */
#include <limits.h>

#include "queue_internal.h"

#define STACK_CLAUSES 16

static int check(const act_choice_t *ch, act_task_t *self) {
    if (!ch->obj) return ACT_EINVAL;
    switch (ch->kind) {
    case ACT_CHOICE_GET:
    case ACT_CHOICE_PUT:
    case ACT_CHOICE_EVENT:
        return 0;
    case ACT_CHOICE_TASK:
        return ch->obj == self ? ACT_EINVAL : 0; /* would wait forever */
    default:
        return ACT_EINVAL;
    }
}

/* Completes ch now if it is ready. Returns: 0, ACT_EAGAIN (not ready), or its error. */
static int try_now(act_choice_t *ch) {
    switch (ch->kind) {
    case ACT_CHOICE_GET:
        return act__queue_try_get(ch->obj, &ch->item, &ch->prio);
    case ACT_CHOICE_PUT:
        return act__queue_try_put(ch->obj, ch->item, ch->prio);
    case ACT_CHOICE_EVENT:
        return ((act_event_t *)ch->obj)->set ? 0 : ACT_EAGAIN;
    default: {
        act_task_t *t = ch->obj;
        t->flags |= ACT__T_JOINED; /* someone waited on it */
        return t->state == ACT_TASK_DONE ? 0 : ACT_EAGAIN;
    }
    }
}

static void link_clause(act_choice_t *ch, act__clause *c) {
    switch (ch->kind) {
    case ACT_CHOICE_GET:
        act__queue_link_get(ch->obj, c);
        break;
    case ACT_CHOICE_PUT:
        act__queue_link_put(ch->obj, c, ch->item, ch->prio);
        break;
    case ACT_CHOICE_EVENT:
        act__list_push(&((act_event_t *)ch->obj)->waiters, &c->link);
        break;
    default:
        act__list_push(&((act_task_t *)ch->obj)->done, &c->link);
        break;
    }
}

/* Links one clause per choice and parks. Returns: the index that fired, or a code. */
static int park(act__waiter *w, act_choice_t *choices, size_t n, int64_t deadline) {
    act__clause stack[STACK_CLAUSES];
    act__clause *cl = stack;
    if (n > STACK_CLAUSES && !(cl = malloc(n * sizeof(*cl)))) return ACT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        act__clause_init(&cl[i], w, (int)i);
        link_clause(&choices[i], &cl[i]);
    }
    int rc = act__wait(w, cl, (int)n, deadline);
    if (rc >= 0 && choices[rc].kind == ACT_CHOICE_GET) {
        int r = act__queue_woken_get(&choices[rc].item, &choices[rc].prio, &cl[rc]);
        if (r) rc = r; /* ACT_EAGAIN: taken by another task first; choose again */
    }
    if (cl != stack) free(cl);
    return rc;
}

int act_choose(act_choice_t *choices, size_t n, int64_t deadline) {
    act__waiter w;
    if (!choices || n == 0 || n > INT_MAX) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "choose", choices);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = check(&choices[i], w.task)) != 0) return rc;
    }
    do {
        for (size_t i = 0; i < n; i++) {
            rc = try_now(&choices[i]);
            if (rc != ACT_EAGAIN) return rc ? rc : (int)i;
        }
        rc = park(&w, choices, n, deadline);
    } while (rc == ACT_EAGAIN && (rc = act__wait_enter(&w, "choose", choices)) == 0);
    return rc;
}
