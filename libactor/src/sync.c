/* sync.c: Lock, Semaphore (plain and bounded) and Event. Each release hands ownership to the
 * first live waiter before waking it, so FIFO order holds and nothing is lost when a waiter
 * is cancelled: it either got the permit (and returns 0) or it did not (and returns an error). */
#include "internal.h"

/* ---- lock ---- */

int act_lock_init(act_lock_t *l) {
    l->owner = NULL;
    act__list_init(&l->waiters);
    return 0;
}

int act_lock_close(act_lock_t *l) {
    return (l->owner || !act__list_empty(&l->waiters)) ? ACT_EBUSY : 0;
}

int act_lock_try(act_lock_t *l) {
    act_task_t *t = act_current();
    if (!t) return ACT_EINVAL;
    if (l->owner) return l->owner == t ? ACT_EINVAL : ACT_EAGAIN;
    l->owner = t;
    return 0;
}

int act_lock_acquire(act_lock_t *l, int64_t deadline) {
    act__waiter w;
    act__clause c;
    int rc = act__wait_enter(&w, "lock", l);
    if (rc) return rc;
    if (l->owner == w.task) return ACT_EINVAL;
    if (!l->owner) {
        l->owner = w.task;
        return 0;
    }
    act__clause_init(&c, &w, 0);
    act__list_push(&l->waiters, &c.link);
    rc = act__wait(&w, &c, 1, deadline);
    return rc < 0 ? rc : 0;
}

int act_lock_release(act_lock_t *l) {
    if (!l->owner || l->owner != act_current()) return ACT_EPERM;
    act__list *n;
    l->owner = NULL;
    while ((n = act__list_pop(&l->waiters)) != NULL) {
        act__clause *c = act__container_of(n, act__clause, link);
        act_task_t *next = c->w->task;
        if (act__clause_fire(c, 0)) {
            l->owner = next;
            break;
        }
    }
    return 0;
}

bool act_lock_locked(const act_lock_t *l) { return l->owner != NULL; }

/* ---- semaphore ---- */

int act_sem_init(act_sem_t *s, long value) {
    if (value < 0) return ACT_EINVAL;
    s->value = value;
    s->bound = -1;
    act__list_init(&s->waiters);
    act__list_init(&s->gated);
    return 0;
}

int act_sem_init_bounded(act_sem_t *s, long value) {
    int rc = act_sem_init(s, value);
    s->bound = value;
    return rc;
}

int act_sem_close(act_sem_t *s) {
    return (!act__list_empty(&s->waiters) || !act__list_empty(&s->gated)) ? ACT_EBUSY : 0;
}

int act_sem_try(act_sem_t *s) {
    if (s->value <= 0 || !act__list_empty(&s->waiters)) return ACT_EAGAIN;
    s->value--;
    return 0;
}

int act_sem_acquire(act_sem_t *s, int64_t deadline) {
    act__waiter w;
    act__clause c;
    int rc = act__wait_enter(&w, "semaphore", s);
    if (rc) return rc;
    if (act_sem_try(s) == 0) return 0;
    act__clause_init(&c, &w, 0);
    act__list_push(&s->waiters, &c.link);
    rc = act__wait(&w, &c, 1, deadline);
    return rc < 0 ? rc : 0;
}

int act_sem_release(act_sem_t *s) {
    if (act__list_fire_first(&s->waiters, 0)) return 0; /* handed to a parked acquirer */
    act__list *n = act__list_pop(&s->gated);
    if (n) {
        act__task_admit(act__container_of(n, act_task_t, qlink));
        return 0;
    }
    if (s->bound >= 0 && s->value >= s->bound) return ACT_EOVERRELEASE;
    s->value++;
    return 0;
}

long act_sem_value(const act_sem_t *s) { return s->value; }

bool act__sem_try_gate(act_sem_t *s, act_task_t *t) {
    if (s->value > 0 && act__list_empty(&s->waiters) && act__list_empty(&s->gated)) {
        s->value--;
        return true;
    }
    act__list_push(&s->gated, &t->qlink);
    return false;
}

void act__sem_ungate(act_sem_t *s, act_task_t *t) {
    (void)s;
    act__list_remove(&t->qlink);
}

void act__sem_release_permit(act_sem_t *s) { (void)act_sem_release(s); }

/* ---- event ---- */

int act_event_init(act_event_t *e) {
    e->set = false;
    act__list_init(&e->waiters);
    return 0;
}

int act_event_close(act_event_t *e) { return act__list_empty(&e->waiters) ? 0 : ACT_EBUSY; }

int act_event_set(act_event_t *e) {
    e->set = true;
    return (int)act__list_fire_all(&e->waiters, 0);
}

void act_event_clear(act_event_t *e) { e->set = false; }
bool act_event_is_set(const act_event_t *e) { return e->set; }

int act_event_wait(act_event_t *e, int64_t deadline) {
    act__waiter w;
    act__clause c;
    int rc = act__wait_enter(&w, "event", e);
    if (rc) return rc;
    if (e->set) return 0;
    act__clause_init(&c, &w, 0);
    act__list_push(&e->waiters, &c.link);
    rc = act__wait(&w, &c, 1, deadline);
    return rc < 0 ? rc : 0;
}
