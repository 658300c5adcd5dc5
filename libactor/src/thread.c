/* thread.c: act_to_thread on libuv's thread pool and executors with their own pthreads.
 * The caller parks on a zero-clause waiter that the completion (after_work, or a threadsafe
 * call from an executor thread) fires on the loop thread. Jobs live on the heap so that a
 * withdrawn job is never left pointing into a stack that is gone. */
#include <time.h>

#include "internal.h"

/* Parks the calling task, shielded, until *done turns true; *slot receives its waiter so
 * the completion can fire it. Used once a running job can no longer be withdrawn. */
static void wait_shielded(const bool *done, act__waiter **slot, const char *what, const void *obj) {
    act_scope_t s;
    act_scope_enter(&s, -1, ACT_SCOPE_SHIELD);
    while (!*done) {
        act__waiter w;
        if (act__wait_enter(&w, what, obj)) break; /* cannot happen inside a fresh shield */
        *slot = &w;
        act__wait(&w, NULL, 0, -1);
        *slot = NULL;
    }
    act_scope_leave(&s);
}

/* ---- act_to_thread: libuv's pool ---- */

typedef struct uvjob {
    uv_work_t req;    /* libuv's request: the job's address stays fixed until after_work */
    act_loop_t *loop; /* the caller's loop */
    act_task_fn fn;   /* the work */
    void *arg;        /* its argument */
    void *result;     /* its result */
    int code;         /* its code */
    bool done;        /* after_work ran (the job ended or was withdrawn) */
    act__waiter *w;   /* the parked caller; NULL once it stopped waiting */
    act_discard_fn discard; /* detached: gets arg and the outcome once the job is over */
} uvjob;

static void uvjob_work(uv_work_t *req) {
    uvjob *j = act__container_of(req, uvjob, req);
    j->code = j->fn(j->arg, &j->result);
}

/* On the loop thread, exactly once per job, also for a withdrawn one. */
static void uvjob_after(uv_work_t *req, int status) {
    uvjob *j = act__container_of(req, uvjob, req);
    j->loop->external--;
    j->done = true;
    if (status == UV_ECANCELED) j->code = ACT_ECANCELED;
    if (j->w) {
        act__waiter_fire(j->w, 0);
        return;
    }
    /* Its caller has left: withdrawn, or (detached) cut short while it ran. */
    if (j->discard) j->discard(j->arg, status == UV_ECANCELED ? NULL : j->result, j->code);
    free(j);
}

/* The wait was cut short with `why`: withdraw the job or sit out its run. */
static int uvjob_abandon(uvjob *j, int why) {
    if (uv_cancel((uv_req_t *)&j->req) == 0) return why; /* after_work frees it */
    wait_shielded(&j->done, &j->w, "to_thread", j->fn);
    free(j);
    return why;
}

static int to_thread(act_task_fn fn, void *arg, act_discard_fn discard, void **result,
                     int64_t deadline) {
    act__waiter w;
    if (!fn) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "to_thread", fn);
    if (rc == 0 && deadline == 0) rc = ACT_ETIMEDOUT;
    if (rc) goto fail_not_queued;
    act_loop_t *L = w.task->loop;
    uvjob *j = calloc(1, sizeof(*j));
    if (!j) {
        rc = ACT_ENOMEM;
        goto fail_not_queued;
    }
    j->loop = L;
    j->fn = fn;
    j->arg = arg;
    j->w = &w;
    j->discard = discard;
    if (uv_queue_work(&L->uv, &j->req, uvjob_work, uvjob_after) != 0) {
        free(j);
        rc = ACT_EINVAL;
        goto fail_not_queued;
    }
    L->external++;
    rc = act__wait(&w, NULL, 0, deadline);
    j->w = NULL;
    if (!j->done) {
        int why = rc < 0 ? rc : ACT_ECANCELED;
        if (discard) { /* asyncio: return now; after_work hands the outcome to discard */
            uv_cancel((uv_req_t *)&j->req);
            return why;
        }
        return uvjob_abandon(j, why);
    }
    rc = j->code;
    if (discard && (rc == ACT_ECANCELED || rc == ACT_ETIMEDOUT)) {
        discard(arg, j->result, rc); /* the rule: these codes always mean discard has it */
    } else if (result) {
        *result = j->result;
    }
    free(j);
    return rc;
fail_not_queued:
    if (discard && (rc == ACT_ECANCELED || rc == ACT_ETIMEDOUT)) discard(arg, NULL, rc);
    return rc;
}

int act_to_thread(act_task_fn fn, void *arg, void **result, int64_t deadline) {
    return to_thread(fn, arg, NULL, result, deadline);
}

int act_to_thread_detached(act_task_fn fn, void *arg, act_discard_fn discard, void **result,
                           int64_t deadline) {
    if (!discard) return ACT_EINVAL;
    return to_thread(fn, arg, discard, result, deadline);
}

/* ---- executors ---- */

enum { XJ_QUEUED, XJ_RUNNING };

typedef struct xjob {
    act__list link;     /* in the executor's queue while queued */
    act_executor_t *ex; /* owner */
    act_loop_t *loop;   /* the caller's loop */
    act_task_fn fn;     /* the work */
    void *arg;          /* its argument */
    void *result;       /* its result */
    int code;           /* its code */
    int state;          /* XJ_*, under ex->mu */
    bool done;          /* delivered back (loop thread only) */
    act__waiter *w;     /* the parked caller (loop thread only) */
} xjob;

struct act_executor {
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;  /* a job was queued, or stop */
    act__list queue;    /* waiting jobs, FIFO */
    size_t queued;      /* jobs in queue */
    size_t max_queue;   /* bound on queued, 0 none */
    size_t pending;     /* accepted and not yet handed back */
    bool stopping;      /* destroy: threads exit */
    size_t nthreads;    /* threads started */
    pthread_t *threads; /* their ids */
};

/* On the caller's loop thread: the job ended. */
static void xjob_deliver(void *p) {
    xjob *j = p;
    act_executor_t *ex = j->ex;
    j->loop->external--;
    pthread_mutex_lock(&ex->mu);
    ex->pending--;
    pthread_mutex_unlock(&ex->mu);
    j->done = true;
    if (j->w) act__waiter_fire(j->w, 0);
}

/* Hands the ended job to its loop. Memory pressure is waited out: a parked caller must
 * always hear back. A closed loop cannot have a caller still waiting. */
static void xjob_send(xjob *j) {
    act_executor_t *ex = j->ex;
    int rc;
    while ((rc = act_loop_call_threadsafe(j->loop, xjob_deliver, j)) == ACT_ENOMEM) {
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    if (rc == 0) return;
    pthread_mutex_lock(&ex->mu);
    ex->pending--;
    pthread_mutex_unlock(&ex->mu);
    free(j);
}

static void *executor_thread(void *p) {
    act_executor_t *ex = p;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (!ex->stopping && act__list_empty(&ex->queue))
            pthread_cond_wait(&ex->cv, &ex->mu);
        act__list *n = act__list_pop(&ex->queue);
        if (!n) break; /* stopping, and nothing is left */
        ex->queued--;
        xjob *j = act__container_of(n, xjob, link);
        j->state = XJ_RUNNING;
        pthread_mutex_unlock(&ex->mu);
        j->code = j->fn(j->arg, &j->result);
        xjob_send(j);
        pthread_mutex_lock(&ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

static void executor_stop(act_executor_t *ex) {
    pthread_mutex_lock(&ex->mu);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    for (size_t i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    pthread_cond_destroy(&ex->cv);
    pthread_mutex_destroy(&ex->mu);
    free(ex->threads);
    free(ex);
}

int act_executor_new(act_executor_t **out, size_t nthreads, size_t max_queue) {
    if (!out || nthreads == 0) return ACT_EINVAL;
    act_executor_t *ex = calloc(1, sizeof(*ex));
    if (!ex) return ACT_ENOMEM;
    ex->threads = calloc(nthreads, sizeof(*ex->threads));
    if (!ex->threads) {
        free(ex);
        return ACT_ENOMEM;
    }
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->cv, NULL);
    act__list_init(&ex->queue);
    ex->max_queue = max_queue;
    for (; ex->nthreads < nthreads; ex->nthreads++) {
        if (pthread_create(&ex->threads[ex->nthreads], NULL, executor_thread, ex) != 0) {
            executor_stop(ex);
            return ACT_EAGAIN;
        }
    }
    *out = ex;
    return 0;
}

int act_executor_destroy(act_executor_t **exp) {
    if (!exp || !*exp) return 0;
    act_executor_t *ex = *exp;
    pthread_mutex_lock(&ex->mu);
    bool busy = ex->pending > 0;
    pthread_mutex_unlock(&ex->mu);
    if (busy) return ACT_EBUSY;
    executor_stop(ex);
    *exp = NULL;
    return 0;
}

size_t act_executor_pending(act_executor_t *ex) {
    pthread_mutex_lock(&ex->mu);
    size_t n = ex->pending;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

/* Queues j unless the queue is full. Returns: 0 or ACT_EBUSY. */
static int xjob_submit(act_executor_t *ex, xjob *j) {
    pthread_mutex_lock(&ex->mu);
    if (ex->max_queue && ex->queued >= ex->max_queue) {
        pthread_mutex_unlock(&ex->mu);
        return ACT_EBUSY;
    }
    act__list_push(&ex->queue, &j->link);
    ex->queued++;
    ex->pending++;
    pthread_cond_signal(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    j->loop->external++;
    return 0;
}

/* The wait was cut short with `why`: withdraw a queued job, or sit out a running one. */
static int xjob_abandon(xjob *j, int why) {
    act_executor_t *ex = j->ex;
    pthread_mutex_lock(&ex->mu);
    bool queued = j->state == XJ_QUEUED;
    if (queued) {
        act__list_remove(&j->link);
        ex->queued--;
        ex->pending--;
    }
    pthread_mutex_unlock(&ex->mu);
    if (queued) {
        j->loop->external--;
    } else {
        wait_shielded(&j->done, &j->w, "executor", ex);
    }
    free(j);
    return why;
}

int act_executor_run(act_executor_t *ex, act_task_fn fn, void *arg, void **result,
                     int64_t deadline) {
    act__waiter w;
    if (!ex || !fn) return ACT_EINVAL;
    int rc = act__wait_enter(&w, "executor", ex);
    if (rc) return rc;
    if (deadline == 0) return ACT_ETIMEDOUT;
    xjob *j = calloc(1, sizeof(*j));
    if (!j) return ACT_ENOMEM;
    act__list_init(&j->link);
    j->ex = ex;
    j->loop = w.task->loop;
    j->fn = fn;
    j->arg = arg;
    j->state = XJ_QUEUED;
    j->w = &w;
    rc = xjob_submit(ex, j);
    if (rc) {
        free(j);
        return rc;
    }
    rc = act__wait(&w, NULL, 0, deadline);
    j->w = NULL;
    if (!j->done) return xjob_abandon(j, rc < 0 ? rc : ACT_ECANCELED);
    rc = j->code;
    if (result) *result = j->result;
    free(j);
    return rc;
}
