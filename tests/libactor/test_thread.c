/* test_thread.c: act_to_thread and executors: work runs on another thread, the loop keeps
 * running meanwhile, many jobs at once, withdrawal of queued jobs, and cancellation of
 * running jobs only once they have finished. Jobs block on a gate the test opens. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "harness.h"

#define POOL 2 /* UV_THREADPOOL_SIZE for this binary, set in main */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate;

static void gate_init(gate *g) {
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
}

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_pass(gate *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_close(gate *g) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

typedef struct job {
    gate *g;                /* blocks on it when set */
    int value;              /* input */
    pthread_t thread;       /* where it ran */
    atomic_int started;     /* set on entry */
    atomic_int finished;    /* set on exit */
    int finished_at_return; /* the caller's view of finished when its call returned */
    int rc;                 /* the caller's return code */
    act_executor_t *ex;     /* run through this executor instead of act_to_thread */
    int64_t deadline;       /* the call's deadline */
} job;

static int job_fn(void *arg, void **result) {
    job *j = arg;
    j->thread = pthread_self();
    atomic_store(&j->started, 1);
    if (j->g) gate_pass(j->g);
    *result = (void *)(intptr_t)(j->value * 2);
    atomic_store(&j->finished, 1);
    return 0;
}

static int call_job(job *j, void **result) {
    if (j->ex) return act_executor_run(j->ex, job_fn, j, result, j->deadline);
    return act_to_thread(job_fn, j, result, j->deadline);
}

/* A task that runs one job and notes what it saw when the call returned. */
static int job_task(void *arg, void **result) {
    job *j = arg;
    j->rc = call_job(j, result);
    j->finished_at_return = atomic_load(&j->finished);
    return j->rc;
}

static void yield_until_started(job *j) {
    while (!atomic_load(&j->started))
        act_yield();
}

/* ---- act_to_thread ---- */

static int runs_elsewhere(void *arg, void **result) {
    (void)result;
    job j = {.value = 21, .deadline = -1, .ex = arg};
    void *r = NULL;
    assert_int_equal(call_job(&j, &r), 0);
    assert_int_equal((intptr_t)r, 42);
    assert_false(pthread_equal(j.thread, pthread_self()));
    return 0;
}

static void test_to_thread_returns_result_from_another_thread(void **state) {
    (void)state;
    assert_int_equal(harness_run(runs_elsewhere, NULL, VCLOCK), 0);
}

static int order[8];
static int norder;

static int watcher(void *arg, void **result) {
    (void)result;
    job *j = arg;
    yield_until_started(j);
    order[norder++] = atomic_load(&j->finished) ? -1 : 1; /* ran while the job was running */
    gate_open(j->g);
    return 0;
}

static int loop_keeps_running(void *arg, void **result) {
    (void)result;
    gate g;
    gate_init(&g);
    job j = {.g = &g, .value = 1, .deadline = -1, .ex = arg};
    act_task_t *w;
    norder = 0;
    assert_int_equal(act_spawn(watcher, &j, NULL, &w), 0);
    void *r;
    assert_int_equal(call_job(&j, &r), 0);
    order[norder++] = 2;
    assert_int_equal(act_join(w, NULL, -1), 0);
    act_task_release(&w);
    gate_close(&g);
    return 0;
}

static void test_loop_runs_other_tasks_while_thread_works(void **state) {
    (void)state;
    assert_int_equal(harness_run(loop_keeps_running, NULL, VCLOCK), 0);
    assert_int_equal(norder, 2);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
}

#define MANY 64

static int many_jobs(void *arg, void **result) {
    (void)result;
    job jobs[MANY];
    act_task_t *t[MANY];
    void *res[MANY];
    for (int i = 0; i < MANY; i++) {
        jobs[i] = (job){.value = i, .deadline = -1, .ex = arg};
        assert_int_equal(act_spawn(job_task, &jobs[i], NULL, &t[i]), 0);
    }
    assert_int_equal(act_gather(t, MANY, res, NULL, 0, -1), 0);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal((intptr_t)res[i], 2 * i);
        assert_int_equal(jobs[i].finished_at_return, 1);
        act_task_release(&t[i]);
    }
    return 0;
}

static void test_many_concurrent_to_thread_calls_all_return(void **state) {
    (void)state;
    assert_int_equal(harness_run(many_jobs, NULL, VCLOCK), 0);
}

/* Occupies every pool thread with a job blocked on g; returns once all of them run. */
static void fill_pool(job *blockers, act_task_t **t, size_t n, gate *g, act_executor_t *ex) {
    for (size_t i = 0; i < n; i++) {
        blockers[i] = (job){.g = g, .deadline = -1, .ex = ex};
        assert_int_equal(act_spawn(job_task, &blockers[i], NULL, &t[i]), 0);
    }
    for (size_t i = 0; i < n; i++)
        yield_until_started(&blockers[i]);
}

static void drain_pool(job *blockers, act_task_t **t, size_t n, gate *g) {
    gate_open(g);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), 0);
        act_task_release(&t[i]);
        assert_int_equal(blockers[i].finished_at_return, 1);
    }
}

/* The pool is full, so the job waits in the queue; cancelling withdraws it. */
static int cancel_queued(void *arg, void **result) {
    (void)result;
    act_executor_t *ex = arg;
    size_t nthreads = ex ? 1 : POOL;
    gate g;
    gate_init(&g);
    job blockers[POOL];
    act_task_t *bt[POOL], *t;
    fill_pool(blockers, bt, nthreads, &g, ex);
    job j = {.value = 5, .deadline = -1, .ex = ex};
    assert_int_equal(act_spawn(job_task, &j, NULL, &t), 0);
    assert_int_equal(act_yield(), 0); /* it queues its job and parks */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED); /* at once: nothing ran */
    act_task_release(&t);
    assert_int_equal(atomic_load(&j.started), 0);
    drain_pool(blockers, bt, nthreads, &g);
    assert_int_equal(atomic_load(&j.started), 0); /* withdrawn, never run later either */
    gate_close(&g);
    return 0;
}

static void test_to_thread_cancel_while_queued_withdraws_job(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_queued, NULL, VCLOCK), 0);
}

/* A real clock: the virtual one never moves while thread work is in flight. */
static int timeout_queued(void *arg, void **result) {
    (void)result;
    act_executor_t *ex = arg;
    size_t nthreads = ex ? 1 : POOL;
    gate g;
    gate_init(&g);
    job blockers[POOL];
    act_task_t *bt[POOL];
    fill_pool(blockers, bt, nthreads, &g, ex);
    job j = {.value = 5, .deadline = act_deadline_in(20), .ex = ex};
    assert_int_equal(call_job(&j, NULL), ACT_ETIMEDOUT);
    j.deadline = 0; /* poll: never queued at all */
    assert_int_equal(call_job(&j, NULL), ACT_ETIMEDOUT);
    drain_pool(blockers, bt, nthreads, &g);
    assert_int_equal(atomic_load(&j.started), 0);
    gate_close(&g);
    return 0;
}

static void test_to_thread_deadline_while_queued_times_out(void **state) {
    (void)state;
    assert_int_equal(harness_run(timeout_queued, NULL, 0), 0);
}

/* A running job cannot be stopped: the call returns ACT_ECANCELED only after it finished. */
static int cancel_running(void *arg, void **result) {
    (void)result;
    gate g;
    gate_init(&g);
    job j = {.g = &g, .value = 5, .deadline = -1, .ex = arg};
    act_task_t *t;
    assert_int_equal(act_spawn(job_task, &j, NULL, &t), 0);
    yield_until_started(&j);
    act_task_cancel(t);
    for (int i = 0; i < 10; i++)
        act_yield();
    assert_false(act_task_done(t)); /* still waiting for the thread, shielded */
    act_task_cancel(t);             /* a second request changes nothing */
    gate_open(&g);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_int_equal(j.rc, ACT_ECANCELED);
    assert_int_equal(j.finished_at_return, 1);
    gate_close(&g);
    return 0;
}

static void test_to_thread_cancel_while_running_waits_for_job(void **state) {
    (void)state;
    assert_int_equal(harness_run(cancel_running, NULL, VCLOCK), 0);
}

static int outside_task_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 0;
}

static void test_to_thread_outside_a_task_is_refused(void **state) {
    (void)state;
    assert_int_equal(act_to_thread(outside_task_job, NULL, NULL, -1), ACT_EINVAL);
}

/* ---- executors ---- */

static int with_executor(act_task_fn body, size_t nthreads, size_t max_queue, unsigned flags) {
    act_executor_t *ex = NULL;
    assert_int_equal(act_executor_new(&ex, nthreads, max_queue), 0);
    int rc = harness_run(body, ex, flags);
    assert_int_equal(act_executor_pending(ex), 0);
    assert_int_equal(act_executor_destroy(&ex), 0);
    assert_null(ex);
    assert_int_equal(act_executor_destroy(&ex), 0); /* safe to repeat */
    return rc;
}

static void test_executor_returns_result_from_its_thread(void **state) {
    (void)state;
    assert_int_equal(with_executor(runs_elsewhere, 2, 0, VCLOCK), 0);
    assert_int_equal(with_executor(loop_keeps_running, 1, 0, VCLOCK), 0);
    assert_int_equal(order[0], 1);
}

static void test_executor_many_concurrent_jobs_all_return(void **state) {
    (void)state;
    assert_int_equal(with_executor(many_jobs, 3, 0, VCLOCK), 0);
}

static void test_executor_cancel_while_queued_withdraws_job(void **state) {
    (void)state;
    assert_int_equal(with_executor(cancel_queued, 1, 0, VCLOCK), 0);
}

static void test_executor_deadline_while_queued_times_out(void **state) {
    (void)state;
    assert_int_equal(with_executor(timeout_queued, 1, 0, 0), 0);
}

static void test_executor_cancel_while_running_waits_for_job(void **state) {
    (void)state;
    assert_int_equal(with_executor(cancel_running, 1, 0, VCLOCK), 0);
}

/* One thread, one queue slot: a running job, a queued one, and the next is refused. */
static int queue_full(void *arg, void **result) {
    (void)result;
    act_executor_t *ex = arg;
    gate g;
    gate_init(&g);
    job run = {.g = &g, .deadline = -1, .ex = ex}, queued = run;
    job refused = {.deadline = -1, .ex = ex};
    act_task_t *t1, *t2;
    assert_int_equal(act_spawn(job_task, &run, NULL, &t1), 0);
    yield_until_started(&run);
    assert_int_equal(act_spawn(job_task, &queued, NULL, &t2), 0);
    assert_int_equal(act_yield(), 0);
    assert_int_equal(act_executor_pending(ex), 2);
    assert_int_equal(call_job(&refused, NULL), ACT_EBUSY);
    assert_int_equal(atomic_load(&refused.started), 0);
    act_executor_t *copy = ex;
    assert_int_equal(act_executor_destroy(&copy), ACT_EBUSY); /* jobs in flight */
    assert_ptr_equal(copy, ex);
    gate_open(&g);
    assert_int_equal(act_join(t1, NULL, -1), 0);
    assert_int_equal(act_join(t2, NULL, -1), 0);
    act_task_release(&t1);
    act_task_release(&t2);
    gate_close(&g);
    return 0;
}

static void test_executor_refuses_job_when_queue_full(void **state) {
    (void)state;
    assert_int_equal(with_executor(queue_full, 1, 1, VCLOCK), 0);
}

static void test_executor_new_rejects_zero_threads(void **state) {
    (void)state;
    act_executor_t *ex = NULL;
    assert_int_equal(act_executor_new(&ex, 0, 0), ACT_EINVAL);
    assert_null(ex);
}

/* Issue 12.6: act_to_thread_detached returns at once on a cancel or a deadline while the job
 * runs; the thread finishes on its own and discard frees its heap argument and result (the
 * ASan build proves no leak and no use after free). */
static gate dgate;
static atomic_int discarded;

typedef struct djob {
    atomic_int started, finished;
    int value;
} djob;

static int djob_fn(void *arg, void **result) {
    djob *d = arg;
    atomic_store(&d->started, 1);
    gate_pass(&dgate);
    int *r = malloc(sizeof(*r));
    if (r) *r = d->value * 2;
    *result = r;
    d->value = -1; /* written after the caller left: arg must still be alive */
    atomic_store(&d->finished, 1);
    return 0;
}

static void djob_discard(void *arg, void *result, int code) {
    djob *d = arg;
    assert_int_equal(code, 0);
    assert_int_equal(atomic_load(&d->finished), 1);
    assert_non_null(result);
    free(result);
    free(d);
    atomic_fetch_add(&discarded, 1);
}

static int detached_task(void *arg, void **result) {
    return act_to_thread_detached(djob_fn, arg, djob_discard, result, -1);
}

static int detached_cancel(void *arg, void **result) {
    (void)arg;
    (void)result;
    djob *d = calloc(1, sizeof(*d));
    d->value = 4;
    act_task_t *t;
    assert_int_equal(act_spawn(detached_task, d, NULL, &t), 0);
    while (!atomic_load(&d->started)) act_yield();
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED); /* at once: the job still runs */
    act_task_release(&t);
    assert_int_equal(atomic_load(&discarded), 0);
    gate_open(&dgate); /* the loop waits for the job before act_run returns */
    return 0;
}

static int detached_deadline(void *arg, void **result) {
    (void)arg;
    (void)result;
    djob *d = calloc(1, sizeof(*d));
    d->value = 4;
    assert_int_equal(act_to_thread_detached(djob_fn, d, djob_discard, NULL, act_deadline_in(20)),
                     ACT_ETIMEDOUT);
    assert_int_equal(atomic_load(&discarded), 0); /* returned while the job was blocked */
    gate_open(&dgate);
    /* A job that ends before its deadline is the caller's: no discard. */
    djob ok = {.value = 21};
    void *r = NULL;
    assert_int_equal(act_to_thread_detached(djob_fn, &ok, djob_discard, &r, -1), 0);
    assert_int_equal(*(int *)r, 42);
    free(r);
    return 0;
}

static void test_to_thread_detached_returns_at_once_and_discards_late_result(void **state) {
    (void)state;
    gate_init(&dgate);
    atomic_store(&discarded, 0);
    assert_int_equal(harness_run(detached_cancel, NULL, VCLOCK), 0);
    assert_int_equal(atomic_load(&discarded), 1);
    gate_close(&dgate);
    gate_init(&dgate);
    atomic_store(&discarded, 0);
    assert_int_equal(harness_run(detached_deadline, NULL, 0), 0);
    assert_int_equal(atomic_load(&discarded), 1);
    gate_close(&dgate);
}

int main(void) {
    setenv("UV_THREADPOOL_SIZE", "2", 1); /* POOL: read once, at the pool's first use */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_thread_returns_result_from_another_thread),
        cmocka_unit_test(test_loop_runs_other_tasks_while_thread_works),
        cmocka_unit_test(test_many_concurrent_to_thread_calls_all_return),
        cmocka_unit_test(test_to_thread_cancel_while_queued_withdraws_job),
        cmocka_unit_test(test_to_thread_deadline_while_queued_times_out),
        cmocka_unit_test(test_to_thread_cancel_while_running_waits_for_job),
        cmocka_unit_test(test_to_thread_outside_a_task_is_refused),
        cmocka_unit_test(test_to_thread_detached_returns_at_once_and_discards_late_result),
        cmocka_unit_test(test_executor_returns_result_from_its_thread),
        cmocka_unit_test(test_executor_many_concurrent_jobs_all_return),
        cmocka_unit_test(test_executor_cancel_while_queued_withdraws_job),
        cmocka_unit_test(test_executor_deadline_while_queued_times_out),
        cmocka_unit_test(test_executor_cancel_while_running_waits_for_job),
        cmocka_unit_test(test_executor_refuses_job_when_queue_full),
        cmocka_unit_test(test_executor_new_rejects_zero_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
