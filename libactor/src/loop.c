/* loop.c: the scheduler. One pass runs every task that is ready, then libuv polls for I/O
 * (without blocking while tasks are ready) and due timers fire. Under the virtual clock,
 * when nothing is ready and no outside work is pending, time jumps to the next deadline.
 * Also: the loop's clock, and the calls other threads use to reach it. */
#include <string.h>

#include "internal.h"

#ifdef ACT_ASAN
#define STACK_SCALE 16 /* instrumented frames are much larger */
#else
#define STACK_SCALE 1
#endif

/* The small class: a task parked in any libactor call uses under 520 bytes of it when
 * optimised (measured for event, semaphore, lock, queue and sleep waits); unoptimised
 * frames are several times larger. */
#ifdef __OPTIMIZE__
#define SMALL_STACK 896
#else
#define SMALL_STACK 4096
#endif

_Thread_local act_loop_t *act__tls_loop;

struct act__tscall {
    act__tscall *next;      /* FIFO link */
    void (*fn)(void *arg);  /* runs on the loop thread */
    void *arg;              /* its argument */
};

struct act_tsfuture {
    pthread_mutex_t mu;   /* guards the fields below */
    pthread_cond_t cv;    /* signalled when done */
    int refs;             /* caller + loop side */
    bool done;            /* the task ended */
    int code;             /* its code */
    void *result;         /* its result */
    act_task_fn fn;       /* the body to spawn */
    void *arg;            /* its argument */
};

void act__panic(const char *file, int line, const char *what) {
    fprintf(stderr, "actor: assertion failed at %s:%d: %s\n", file, line, what);
    abort();
}

uint64_t act__rand(act_loop_t *L) {
    uint64_t x = L->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    L->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Our heap fires in the next turn. uv_stop matters: libuv runs due timers before it polls and
 * would otherwise go on to block in the poll with no timer left armed. */
static void on_uvtimer(uv_timer_t *h) { uv_stop(h->loop); }

static void run_threadsafe(act_loop_t *L) {
    pthread_mutex_lock(&L->ts_mu);
    act__tscall *c = L->ts_head;
    L->ts_head = L->ts_tail = NULL;
    pthread_mutex_unlock(&L->ts_mu);
    while (c) {
        act__tscall *next = c->next;
        uint64_t t0 = act__debug(L) ? uv_hrtime() : 0;
        c->fn(c->arg);
        if (t0) {
            L->slice_start = t0;
            act__debug_slice(L, NULL, "threadsafe callback");
        }
        free(c);
        c = next;
    }
}

static void on_async(uv_async_t *h) { run_threadsafe(h->data); }

int act_loop_new(act_loop_t **out, const act_loop_opts_t *opts) {
    act_loop_opts_t o = {0};
    if (opts) o = *opts;
    if (!o.slow_ms) o.slow_ms = 100;
    if (!o.stack_size) o.stack_size = 256 * 1024 * STACK_SCALE;
    if (!o.small_stack_size) o.small_stack_size = SMALL_STACK * STACK_SCALE;
    if (!o.stack_cache) o.stack_cache = 1024;
    const char *env = getenv("ACTOR_DEBUG");
    if (env && *env && strcmp(env, "0") != 0) o.flags |= ACT_LOOP_DEBUG;

    act_loop_t *L = calloc(1, sizeof(*L));
    if (!L) return ACT_ENOMEM;
    int rc = act__stackpool_init(&L->stacks, o.stack_size, o.small_stack_size, o.stack_cache);
    if (rc) goto fail_free_loop;
    if (uv_loop_init(&L->uv) != 0) {
        rc = ACT_ENOMEM;
        goto fail_close_pool;
    }
    uv_timer_init(&L->uv, &L->uvtimer);
    uv_async_init(&L->uv, &L->async, on_async);
    L->async.data = L;
    uv_unref((uv_handle_t *)&L->async);
    pthread_mutex_init(&L->ts_mu, NULL);
    act__list_init(&L->runq);
    act__list_init(&L->tasks);
    act__list_init(&L->groups_due);
    act__list_init(&L->tslabs);
    act__list_init(&L->tslabs_open);
    L->flags = o.flags;
    L->slow_ms = o.slow_ms;
    L->rng = o.seed ? o.seed : 0x9E3779B97F4A7C15ull;
    act__stack_guard_install();
    *out = L;
    return 0;

fail_close_pool:
    act__stackpool_close(&L->stacks);
fail_free_loop:
    free(L);
    return rc;
}

int act_loop_destroy(act_loop_t **lp) {
    if (!lp || !*lp) return 0;
    act_loop_t *L = *lp;
    if (L->ntasks || L->running) return ACT_EBUSY;
    pthread_mutex_lock(&L->ts_mu);
    L->ts_closed = true;
    pthread_mutex_unlock(&L->ts_mu);
    run_threadsafe(L); /* calls accepted before closing still run exactly once */
    uv_close((uv_handle_t *)&L->uvtimer, NULL);
    uv_close((uv_handle_t *)&L->async, NULL);
    uv_run(&L->uv, UV_RUN_DEFAULT);
    uv_loop_close(&L->uv);
    pthread_mutex_destroy(&L->ts_mu);
    act__heap_free(&L->timers);
    act__stackpool_close(&L->stacks);
    act__task_slabs_close(L);
    free(L);
    *lp = NULL;
    return 0;
}

uv_loop_t *act_loop_uv(act_loop_t *L) { return &L->uv; }
act_loop_t *act_loop_current(void) { return act__tls_loop; }

void act_loop_stats(const act_loop_t *L, act_loop_stats_t *out) {
    memset(out, 0, sizeof(*out));
    out->tasks_live = L->ntasks;
    out->tasks_started = L->nstarted;
    out->stacks_in_use = L->stacks.in_use;
    out->stacks_cached =
        L->stacks.n_free_default + L->stacks.n_cold_default + L->stacks.n_free_small;
    out->stacks_peak = L->stacks.peak;
    out->timers = L->timers.n;
    out->switches = L->switches;
    out->spawned = L->spawned;
}

int64_t act_now(void) {
    act_loop_t *L = act__tls_loop;
    if (!L) return (int64_t)(uv_hrtime() / 1000000);
    if (L->flags & ACT_LOOP_VIRTUAL_CLOCK) return L->vnow;
    return (int64_t)uv_now(&L->uv);
}

int64_t act_deadline_in(int64_t ms) {
    int64_t now = act_now();
    if (ms <= 0) return now; /* asyncio: a negative delay has already passed */
    /* Saturate: a deadline past the clock's range can never be reached. */
    return ms > INT64_MAX - now ? ACT_NO_DEADLINE : now + ms;
}

/* One turn: fire due timers, run the ready tasks, then poll libuv, blocking only when no
 * task is ready. */
/* Memory freed in a burst (stacks past the cache, empty task slabs) is given back at most
 * once a second of real time, never on the hot path: each madvise is a TLB shootdown. */
static void trim_pools(act_loop_t *L) {
    uint64_t now = uv_hrtime();
    if (now - L->trimmed_at < 1000000000ull) return;
    L->trimmed_at = now;
    act__stackpool_trim(&L->stacks);
    act__task_slabs_trim(L);
}

static void turn(act_loop_t *L) {
    bool virt = (L->flags & ACT_LOOP_VIRTUAL_CLOCK) != 0;
    trim_pools(L);
    if (!virt) uv_update_time(&L->uv);
    act__timers_run(L, act_now());
    size_t ran = act__run_ready(L);
    (void)ran;
    if (L->runq_len || !L->nundone) {
        uv_run(&L->uv, UV_RUN_NOWAIT);
        return;
    }
    int64_t next = act__timers_next(L);
    if (virt) {
        uv_run(&L->uv, UV_RUN_NOWAIT);
        if (L->runq_len) return;
        if (next >= 0 && L->external == 0) {
            if (next > L->vnow) L->vnow = next; /* nothing can happen before it: jump */
            return;
        }
        uv_run(&L->uv, UV_RUN_ONCE); /* wait for real outside work */
        return;
    }
    if (next >= 0) {
        int64_t wait = next - (int64_t)uv_now(&L->uv);
        uv_timer_start(&L->uvtimer, on_uvtimer, (uint64_t)(wait > 0 ? wait : 0), 0);
    }
    uv_run(&L->uv, UV_RUN_ONCE);
    uv_timer_stop(&L->uvtimer);
}

static void sched_stack_bounds(act_loop_t *L) {
#ifdef ACT_ASAN
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    L->sched_stack_lo = addr;
    L->sched_stack_size = size;
#else
    (void)L;
#endif
}

/* Cancels every task that has not ended; holds a reference while touching each. */
static void cancel_all(act_loop_t *L) {
    act__list *p = L->tasks.next;
    while (p != &L->tasks) {
        act_task_t *t = act__container_of(p, act_task_t, all);
        t->refs++;
        act_task_cancel(t);
        p = p->next;
        act__task_unref(t);
    }
}

int act_run(act_loop_t *L, act_task_fn fn, void *arg, void **result) {
    if (L->running || act__tls_loop) return ACT_EBUSY;
    act_task_t *main = NULL;
    L->running = true;
    act__tls_loop = L;
    sched_stack_bounds(L);
    uv_ref((uv_handle_t *)&L->async); /* other threads may still call in */
    act_spawn_opts_t o = {.name = "main"};
    int rc = act_spawn(fn, arg, &o, &main);
    if (rc == 0) {
        while (main->state != ACT_TASK_DONE) turn(L);
        rc = main->code;
        if (result) *result = main->result;
        main->flags |= ACT__T_RETRIEVED | ACT__T_JOINED;
    }
    /* asyncio.run: whatever is left is cancelled and allowed to clean up. */
    for (int round = 0; L->nundone && round < 1000000; round++) {
        if (round % 64 == 0) cancel_all(L);
        turn(L);
    }
    act_task_release(&main);
    /* Thread jobs whose callers left (act_to_thread_detached): wait for them, as asyncio.run
     * shuts the default executor down, so their discard runs and nothing is left behind. */
    while (L->external) uv_run(&L->uv, UV_RUN_ONCE);
    uv_unref((uv_handle_t *)&L->async);
    uv_run(&L->uv, UV_RUN_NOWAIT);
    L->running = false;
    act__tls_loop = NULL;
    return rc;
}

/* ---- threadsafe entry points ---- */

int act_loop_call_threadsafe(act_loop_t *L, void (*fn)(void *arg), void *arg) {
    act__tscall *c = malloc(sizeof(*c));
    if (!c) return ACT_ENOMEM;
    c->next = NULL;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&L->ts_mu);
    if (L->ts_closed) {
        pthread_mutex_unlock(&L->ts_mu);
        free(c);
        return ACT_ECLOSED;
    }
    if (L->ts_tail) L->ts_tail->next = c;
    else L->ts_head = c;
    L->ts_tail = c;
    pthread_mutex_unlock(&L->ts_mu);
    uv_async_send(&L->async);
    return 0;
}

static void tsfuture_unref(act_tsfuture_t *f) {
    pthread_mutex_lock(&f->mu);
    int left = --f->refs;
    pthread_mutex_unlock(&f->mu);
    if (left) return;
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

static void tsfuture_complete(act_tsfuture_t *f, int code, void *result) {
    pthread_mutex_lock(&f->mu);
    f->done = true;
    f->code = code;
    f->result = result;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    tsfuture_unref(f);
}

static int tsfuture_body(void *arg, void **result) {
    act_tsfuture_t *f = arg;
    int code = f->fn(f->arg, result);
    tsfuture_complete(f, code, *result);
    return code;
}

static void tsfuture_start(void *arg) {
    act_tsfuture_t *f = arg;
    act_spawn_opts_t o = {.name = "threadsafe"};
    int rc = act_spawn(tsfuture_body, f, &o, NULL);
    if (rc) tsfuture_complete(f, rc, NULL);
}

int act_spawn_threadsafe(act_loop_t *L, act_task_fn fn, void *arg, act_tsfuture_t **out) {
    act_tsfuture_t *f = calloc(1, sizeof(*f));
    if (!f) return ACT_ENOMEM;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->refs = 2;
    f->fn = fn;
    f->arg = arg;
    int rc = act_loop_call_threadsafe(L, tsfuture_start, f);
    if (rc) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int act_tsfuture_wait(act_tsfuture_t *f, void **result, int64_t timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (!f->done && rc == 0) {
        if (timeout_ms < 0) pthread_cond_wait(&f->cv, &f->mu);
        else if (timeout_ms == 0) rc = ACT_ETIMEDOUT;
        else if (pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0) rc = f->done ? 0 : ACT_ETIMEDOUT;
    }
    if (f->done) {
        rc = f->code;
        if (result) *result = f->result;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void act_tsfuture_destroy(act_tsfuture_t **f) {
    if (!f || !*f) return;
    tsfuture_unref(*f);
    *f = NULL;
}
