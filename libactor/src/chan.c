/* chan.c: the unbuffered channel and the pull-based stream built on it. A sender parks with
 * its item in its clause until a receiver takes it (or finds a parked receiver and hands it
 * over), so nothing is ever buffered and a cut-short call never loses an item. A stream is
 * two channels: `items` from producer to consumer, and `demand`, on which the producer waits
 * after each item until the consumer asks for the next. */
#include <string.h>

#include "internal.h"

struct act_chan {
    act__list senders;   /* parked senders; clause data: their item */
    act__list receivers; /* parked receivers; clause data: filled by the sender */
    bool closed;         /* every call fails with ACT_ECLOSED */
};

int act_chan_new(act_chan_t **out) {
    if (!out) return ACT_EINVAL;
    act_chan_t *c = calloc(1, sizeof(*c));
    if (!c) return ACT_ENOMEM;
    act__list_init(&c->senders);
    act__list_init(&c->receivers);
    *out = c;
    return 0;
}

int act_chan_destroy(act_chan_t **cp) {
    if (!cp || !*cp) return 0;
    act_chan_t *c = *cp;
    if (!act__list_empty(&c->senders) || !act__list_empty(&c->receivers)) return ACT_EBUSY;
    free(c);
    *cp = NULL;
    return 0;
}

int act_chan_send(act_chan_t *c, void *item, int64_t deadline) {
    act__waiter w;
    act__clause cl;
    if (!c) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "chan send", c);
    if (rc) return rc;
    if (c->closed) return ACT_ECLOSED;
    act__list *n;
    while ((n = act__list_pop(&c->receivers)) != NULL) {
        act__clause *r = act__container_of(n, act__clause, link);
        r->data = item;
        if (act__clause_fire(r, 0)) return 0; /* the receiver has it */
    }
    act__clause_init(&cl, &w, 0);
    cl.data = item;
    act__list_push(&c->senders, &cl.link);
    rc = act__wait(&w, &cl, 1, deadline); /* c may be gone once woken: do not touch it */
    return rc < 0 ? rc : 0;
}

int act_chan_recv(act_chan_t *c, void **item, int64_t deadline) {
    act__waiter w;
    act__clause cl;
    if (!c || !item) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "chan recv", c);
    if (rc) return rc;
    act__list *n;
    while ((n = act__list_pop(&c->senders)) != NULL) {
        act__clause *s = act__container_of(n, act__clause, link);
        if (s->w->fired) continue; /* stale: its sender already gave up */
        *item = s->data;
        act__clause_fire(s, 0);
        return 0;
    }
    if (c->closed) return ACT_ECLOSED;
    act__clause_init(&cl, &w, 0);
    act__list_push(&c->receivers, &cl.link);
    rc = act__wait(&w, &cl, 1, deadline);
    if (rc < 0) return rc;
    *item = cl.data;
    return 0;
}

int act_chan_close(act_chan_t *c) {
    if (!c) return ACT_EINVAL;
    c->closed = true;
    act__list_fire_all(&c->senders, ACT_ECLOSED);
    act__list_fire_all(&c->receivers, ACT_ECLOSED);
    return 0;
}

/* ---- the stream ---- */

struct act_stream {
    act_chan_t *items;     /* producer -> consumer, one item per request */
    act_chan_t *demand;    /* consumer -> producer: "the next one, please" */
    act_stream_fn fn;      /* the producer's body */
    void *arg;             /* its argument */
    act_spawn_opts_t opts; /* how to spawn it */
    act_task_t *producer;  /* NULL until the first next */
    int code;              /* the body's code, set before it closes the channels */
    bool asked;            /* a request stands whose item has not been received yet */
    bool finished;         /* the end (EOF or the error) was returned by a next */
};

int act_stream_new(act_stream_t **out, act_stream_fn fn, void *arg,
                   const act_spawn_opts_t *opts) {
    if (!out || !fn || !act_current()) return ACT_EINVAL;
    act_stream_t *s = calloc(1, sizeof(*s));
    if (!s) return ACT_ENOMEM;
    if (act_chan_new(&s->items) || act_chan_new(&s->demand)) {
        act_chan_destroy(&s->items);
        free(s);
        return ACT_ENOMEM;
    }
    s->fn = fn;
    s->arg = arg;
    if (opts) s->opts = *opts;
    *out = s;
    return 0;
}

static int producer_body(void *arg, void **result) {
    (void)result;
    act_stream_t *s = arg;
    int rc = s->fn(s, s->arg);
    s->code = rc;
    act_chan_close(s->items); /* the consumer's next (now or later) sees the end */
    act_chan_close(s->demand);
    return rc;
}

int act_stream_next(act_stream_t *s, void **item, int64_t deadline) {
    act_task_t *self = act_current();
    if (!s || !item || !self || self == s->producer) return ACT_EINVAL;
    if (s->finished) return ACT_EEOF;
    int rc = 0;
    if (!s->asked && !s->producer) {
        rc = act_spawn(producer_body, s, &s->opts, &s->producer);
        if (rc) return rc;
    } else if (!s->asked) {
        rc = act_chan_send(s->demand, NULL, deadline);
    }
    if (rc == 0) {
        s->asked = true;
        rc = act_chan_recv(s->items, item, deadline);
        if (rc == 0) s->asked = false;
    }
    if (rc != ACT_ECLOSED) return rc;
    s->finished = true; /* the producer returned: StopAsyncIteration, or its error */
    s->asked = false;
    return s->code ? s->code : ACT_EEOF;
}

int act_stream_yield(act_stream_t *s, void *item) {
    if (!s || act_current() != s->producer) return ACT_EINVAL;
    int rc = act_chan_send(s->items, item, ACT_NO_DEADLINE);
    void *unused;
    if (rc == 0) rc = act_chan_recv(s->demand, &unused, ACT_NO_DEADLINE);
    return rc == ACT_ECLOSED ? ACT_ECANCELED : rc;
}

int act_stream_close(act_stream_t **sp) {
    if (!sp || !*sp) return 0;
    act_stream_t *s = *sp;
    act_task_t *self = act_current();
    if (!self || self == s->producer) return ACT_EINVAL;
    int rc = 0;
    if (s->producer) {
        act_task_cancel(s->producer); /* GeneratorExit at its current yield */
        act_scope_t shield;
        act_scope_enter(&shield, ACT_NO_DEADLINE, ACT_SCOPE_SHIELD);
        int code = act_join(s->producer, NULL, ACT_NO_DEADLINE);
        act_scope_leave(&shield);
        if (!s->finished && code && code != ACT_ECANCELED) rc = code;
        act_task_release(&s->producer);
    }
    act_chan_destroy(&s->items);
    act_chan_destroy(&s->demand);
    free(s);
    *sp = NULL;
    return rc;
}
