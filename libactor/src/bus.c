/* bus.c: the in-process event bus. Subscriptions sit in one list in subscribe order, each with
 * its own act_queue of message pointers. A publish allocates one refcounted message and walks
 * the list; a publisher that blocks on a full BLOCK subscriber pins that subscription, so an
 * unsubscribe meanwhile only marks it ended and the walk can go on from it afterwards. */
#include <string.h>

#include "internal.h"

struct act_bus {
    act__list subs;    /* subscriptions in subscribe order; ended ones stay while pinned */
    size_t nsubs;      /* live subscriptions */
    size_t max;        /* the most live subscriptions allowed */
    uint64_t seq;      /* publishes started so far: a subscription sees those after its own */
    size_t publishing; /* publishes in progress (some may be parked) */
};

struct act_bus_sub {
    act__list link;          /* in the bus's list */
    act_bus_t *bus;          /* owner */
    act_queue_t *q;          /* queued act_bus_msg_t pointers, each holding a reference */
    act_bus_policy_t policy; /* what a full queue does */
    uint64_t since;          /* bus->seq when it subscribed */
    uint64_t dropped;        /* messages lost */
    unsigned pins;           /* the subscriber's (until unsubscribe) + walking publishers' */
    bool closed;             /* unsubscribed */
    size_t plen;             /* strlen(prefix) */
    char prefix[];           /* the topic prefix */
};

/* ---- messages: one block, the header then data (max-aligned) then topic ---- */

typedef struct msg_block {
    act_bus_msg_t pub;  /* what subscribers see */
    max_align_t data[]; /* payload, then the topic */
} msg_block;

#define DATA_OFFSET offsetof(msg_block, data)

static act_bus_msg_t *msg_new(const char *topic, const void *data, size_t len) {
    size_t tlen = strlen(topic);
    if (len > SIZE_MAX - DATA_OFFSET - tlen - 1) return NULL;
    act_bus_msg_t *m = malloc(DATA_OFFSET + len + tlen + 1);
    if (!m) return NULL;
    char *d = (char *)m + DATA_OFFSET;
    if (len) memcpy(d, data, len);
    memcpy(d + len, topic, tlen + 1);
    m->data = d;
    m->len = len;
    m->topic = d + len;
    m->refs = 1;
    return m;
}

act_bus_msg_t *act_bus_msg_retain(act_bus_msg_t *msg) {
    if (msg) msg->refs++;
    return msg;
}

void act_bus_msg_release(act_bus_msg_t **mp) {
    if (!mp || !*mp) return;
    act_bus_msg_t *m = *mp;
    *mp = NULL;
    ACT_ASSERT(m->refs > 0); /* released more often than held: a caller bug */
    if (--m->refs == 0) free(m);
}

/* ---- bus and subscriptions ---- */

int act_bus_new(act_bus_t **out, size_t max_subscribers) {
    if (!out) return ACT_EINVAL;
    *out = NULL;
    if (max_subscribers == 0) return ACT_EINVAL;
    act_bus_t *b = calloc(1, sizeof(*b));
    if (!b) return ACT_ENOMEM;
    act__list_init(&b->subs);
    b->max = max_subscribers;
    *out = b;
    return 0;
}

int act_bus_destroy(act_bus_t **bp) {
    if (!bp || !*bp) return 0;
    act_bus_t *b = *bp;
    /* With no live subscription and no publish in flight, nothing pins an ended one. */
    if (b->nsubs || b->publishing) return ACT_EBUSY;
    free(b);
    *bp = NULL;
    return 0;
}

int act_bus_subscribe(act_bus_t *b, const char *prefix, size_t capacity, act_bus_policy_t policy,
                      act_bus_sub_t **out) {
    if (!out) return ACT_EINVAL;
    *out = NULL;
    if (!b || !prefix || capacity == 0 ||
        (policy != ACT_BUS_DROP_NEWEST && policy != ACT_BUS_DROP_OLDEST &&
         policy != ACT_BUS_BLOCK)) {
        return ACT_EINVAL;
    }
    if (b->nsubs >= b->max) return ACT_EBUSY;
    size_t plen = strlen(prefix);
    act_bus_sub_t *s = calloc(1, sizeof(*s) + plen + 1);
    if (!s) return ACT_ENOMEM;
    int rc = act_queue_new(&s->q, ACT_QUEUE_FIFO, capacity);
    if (rc) {
        free(s);
        return rc;
    }
    memcpy(s->prefix, prefix, plen + 1);
    s->plen = plen;
    s->bus = b;
    s->policy = policy;
    s->since = b->seq;
    s->pins = 1;
    act__list_push(&b->subs, &s->link);
    b->nsubs++;
    *out = s;
    return 0;
}

static void sub_unpin(act_bus_sub_t *s) {
    if (--s->pins) return;
    act__list_remove(&s->link);
    act_queue_destroy(&s->q); /* shut down and drained: nothing waits on it */
    free(s);
}

int act_bus_unsubscribe(act_bus_sub_t **sp) {
    if (!sp || !*sp) return 0;
    act_bus_sub_t *s = *sp;
    *sp = NULL;
    s->closed = true;
    s->bus->nsubs--;
    /* Wakes the parked receiver and any blocked publisher with ACT_ECLOSED first, so the
     * drain below cannot move a blocked publisher's message in. */
    act_queue_shutdown(s->q, false);
    void *m;
    while (act_queue_get_nowait(s->q, &m) == 0)
        act_bus_msg_release((act_bus_msg_t **)&m);
    sub_unpin(s);
    return 0;
}

/* ---- publish and receive ---- */

/* Evicts the oldest queued message to make room for m. */
static void drop_oldest(act_bus_sub_t *s, act_bus_msg_t *m) {
    void *old;
    if (act_queue_get_nowait(s->q, &old) == 0) act_bus_msg_release((act_bus_msg_t **)&old);
    s->dropped++;
    int rc = act_queue_put_nowait(s->q, m);
    ACT_ASSERT(rc == 0); /* a slot just came free and no putter waits on a DROP queue */
}

/* Queues m for s (pinned by the caller). *fail holds the first failed wait of this publish:
 * once set, later BLOCK subscribers no longer wait. Returns: 1 if queued, else 0. */
static int deliver(act_bus_sub_t *s, act_bus_msg_t *m, int64_t deadline, int *fail) {
    m->refs++; /* the queue's reference, taken back below if it does not keep it */
    int rc = act_queue_put_nowait(s->q, m);
    if (rc == ACT_EAGAIN && s->policy == ACT_BUS_DROP_OLDEST) {
        drop_oldest(s, m);
        rc = 0;
    } else if (rc == ACT_EAGAIN && s->policy == ACT_BUS_BLOCK && !*fail) {
        rc = act_queue_put(s->q, m, deadline);
        if (rc == ACT_ECLOSED) { /* unsubscribed while we waited: nobody to count it for */
            m->refs--;
            return 0;
        }
        if (rc) *fail = rc;
    }
    if (rc == 0) return 1;
    m->refs--;
    s->dropped++;
    return 0;
}

int act_bus_publish(act_bus_t *b, const char *topic, const void *data, size_t len,
                    int64_t deadline) {
    if (!b || !topic || (!data && len)) return ACT_EINVAL;
    act_bus_msg_t *m = msg_new(topic, data, len);
    if (!m) return ACT_ENOMEM;
    uint64_t seq = ++b->seq;
    int queued = 0, fail = 0;
    b->publishing++;
    act__list *p = b->subs.next;
    while (p != &b->subs) {
        act_bus_sub_t *s = act__container_of(p, act_bus_sub_t, link);
        if (s->closed || s->since >= seq || strncmp(topic, s->prefix, s->plen) != 0) {
            p = p->next;
            continue;
        }
        s->pins++; /* keeps s, and so our place in the list, while deliver may park */
        queued += deliver(s, m, deadline, &fail);
        p = p->next;
        sub_unpin(s);
    }
    b->publishing--;
    act_bus_msg_release(&m);
    return fail ? fail : queued;
}

int act_bus_recv(act_bus_sub_t *s, act_bus_msg_t **msg, int64_t deadline) {
    if (!s || !msg) return ACT_EINVAL;
    void *m;
    /* s may be unsubscribed (and freed) while we are parked, even after the hand-off: touch
     * nothing of it once the get returns. The bus never joins its queues, so it skips
     * act_queue_task_done. */
    int rc = act_queue_get(s->q, &m, deadline);
    if (rc) return rc;
    *msg = m;
    return 0;
}

uint64_t act_bus_sub_dropped(const act_bus_sub_t *s) { return s ? s->dropped : 0; }
size_t act_bus_sub_pending(const act_bus_sub_t *s) { return s ? act_queue_size(s->q) : 0; }
