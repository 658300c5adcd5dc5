/* bench_runtime.c: the libactor side of bench/runtime. Runs the same workloads as
 * bench_asyncio.py on one real-clock loop and prints one JSON object per row on stdout;
 * bench/runtime/run.py puts them beside asyncio and uvloop. Rows and their meaning are in
 * bench/README.md. Usage: bench_runtime [--row NAME]... [--quick] [--list] */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor.h"

#define REPS 3          /* timed repetitions per throughput row; the best counts */
#define MAX_ROWS 16     /* rows a command line may name */
#define PARK_ROUNDS 64  /* yields main allows for its tasks to park (a bound, not a wait) */

static size_t g_scale = 1;    /* --quick divides every size by 10 */
static act_task_t **g_tasks;  /* handle array, allocated (and touched) before any row */
static int *g_codes;          /* per-task codes for ACT_GATHER_COLLECT */
#define MAX_TASKS 100000

typedef struct outcome {
    double value;    /* the row's number */
    char extra[192]; /* further JSON members, each starting with a comma */
    int err;         /* a libactor code when the row could not run */
} outcome;

/* ---- clocks and memory ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident bytes of this process, from /proc/self/statm (0 if unreadable). */
static long rss_bytes(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static size_t scaled(size_t n) { return n / g_scale ? n / g_scale : 1; }

/* ---- shared helpers ---- */

static int trivial(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 0;
}

/* Spawns n tasks of fn(arg) into g_tasks. On failure releases those spawned. */
static int spawn_n(size_t n, act_task_fn fn, void *arg, unsigned flags) {
    act_spawn_opts_t o = {.flags = flags};
    for (size_t i = 0; i < n; i++) {
        int rc = act_spawn(fn, arg, &o, &g_tasks[i]);
        if (rc) {
            for (size_t j = 0; j < i; j++) act_task_cancel(g_tasks[j]);
            act_gather(g_tasks, i, NULL, NULL, ACT_GATHER_COLLECT, -1);
            for (size_t j = 0; j < i; j++) act_task_release(&g_tasks[j]);
            return rc;
        }
    }
    return 0;
}

/* Waits for the first n tasks of g_tasks and drops their handles. Returns gather's code. */
static int gather_release(size_t n) {
    int rc = act_gather(g_tasks, n, NULL, NULL, 0, -1);
    for (size_t i = 0; i < n; i++) act_task_release(&g_tasks[i]);
    return rc;
}

/* One timed repetition: returns 0 and the seconds its measured part took. */
typedef int (*rep_fn)(size_t n, void *ctx, double *secs);

/* Warms up once, then keeps the fastest of REPS repetitions. */
static int best_of(rep_fn fn, size_t n, void *ctx, double *best) {
    double s;
    int rc = fn(n, ctx, &s);
    *best = 0;
    for (int r = 0; rc == 0 && r < REPS; r++) {
        rc = fn(n, ctx, &s);
        if (rc == 0 && (*best == 0 || s < *best)) *best = s;
    }
    return rc;
}

/* A rate row: ops per second over the best repetition. */
static void rate_row(outcome *o, rep_fn fn, size_t n, size_t ops, void *ctx) {
    double best = 0;
    o->err = best_of(fn, n, ctx, &best);
    if (!o->err && best > 0) o->value = (double)ops / best;
    snprintf(o->extra, sizeof(o->extra), ", \"n\": %zu, \"best_s\": %.6f", ops, best);
}

/* ---- 1. spawn_gather ---- */

static int rep_spawn_gather(size_t n, void *ctx, double *secs) {
    unsigned flags = *(unsigned *)ctx;
    double t0 = now_s();
    int rc = spawn_n(n, trivial, NULL, flags);
    if (rc) return rc;
    rc = gather_release(n);
    *secs = now_s() - t0;
    return rc;
}

static void row_spawn_gather(outcome *o) {
    unsigned flags = 0;
    rate_row(o, rep_spawn_gather, scaled(100000), scaled(100000), &flags);
}

static void row_spawn_gather_small(outcome *o) {
    unsigned flags = ACT_SPAWN_SMALL_STACK;
    rate_row(o, rep_spawn_gather, scaled(100000), scaled(100000), &flags);
}

/* ---- 2. lock_contention ---- */

typedef struct lock_ctx {
    act_lock_t lock;
    size_t iters;
} lock_ctx;

static int lock_worker(void *arg, void **result) {
    lock_ctx *c = arg;
    (void)result;
    for (size_t i = 0; i < c->iters; i++) {
        int rc = act_lock_acquire(&c->lock, -1);
        if (rc) return rc;
        rc = act_yield(); /* held across a switch: the others queue up */
        act_lock_release(&c->lock);
        if (rc) return rc;
    }
    return 0;
}

static int rep_lock(size_t n, void *ctx, double *secs) {
    lock_ctx c = {.iters = *(size_t *)ctx};
    act_lock_init(&c.lock);
    double t0 = now_s();
    int rc = spawn_n(n, lock_worker, &c, 0);
    if (rc == 0) rc = gather_release(n);
    *secs = now_s() - t0;
    act_lock_close(&c.lock);
    return rc;
}

static void row_lock_contention(outcome *o) {
    size_t iters = scaled(1000);
    rate_row(o, rep_lock, 100, 100 * iters, &iters);
}

/* ---- 3. semaphore ---- */

typedef struct sem_ctx {
    act_sem_t sem;
    size_t iters;
} sem_ctx;

static int sem_worker(void *arg, void **result) {
    sem_ctx *c = arg;
    (void)result;
    for (size_t i = 0; i < c->iters; i++) {
        int rc = act_sem_acquire(&c->sem, -1);
        if (rc) return rc;
        rc = act_yield();
        act_sem_release(&c->sem);
        if (rc) return rc;
    }
    return 0;
}

static int rep_sem(size_t n, void *ctx, double *secs) {
    sem_ctx c = {.iters = *(size_t *)ctx};
    act_sem_init(&c.sem, 100);
    double t0 = now_s();
    int rc = spawn_n(n, sem_worker, &c, 0);
    if (rc == 0) rc = gather_release(n);
    *secs = now_s() - t0;
    act_sem_close(&c.sem);
    return rc;
}

static void row_semaphore(outcome *o) {
    size_t iters = 100;
    size_t tasks = scaled(1000);
    rate_row(o, rep_sem, tasks, tasks * iters, &iters);
}

/* ---- 4. queue (only once libactor has act_queue) ---- */

#ifdef HAVE_ACT_QUEUE
typedef struct queue_ctx {
    act_queue_t *q;
    size_t items;
} queue_ctx;

static int producer(void *arg, void **result) {
    queue_ctx *c = arg;
    (void)result;
    for (size_t i = 0; i < c->items; i++) {
        int rc = act_queue_put(c->q, (void *)(uintptr_t)(i + 1), -1);
        if (rc) return rc;
    }
    return 0;
}

static int consumer(void *arg, void **result) {
    queue_ctx *c = arg;
    uintptr_t sum = 0;
    for (size_t i = 0; i < c->items; i++) {
        void *item = NULL;
        int rc = act_queue_get(c->q, &item, -1);
        if (rc) return rc;
        sum += (uintptr_t)item;
    }
    *result = (void *)sum;
    return 0;
}

static int rep_queue(size_t n, void *ctx, double *secs) {
    queue_ctx c = {.items = n};
    (void)ctx;
    int rc = act_queue_new(&c.q, ACT_QUEUE_FIFO, 1000);
    if (rc) return rc;
    double t0 = now_s();
    rc = act_spawn(producer, &c, NULL, &g_tasks[0]);
    if (rc == 0 && (rc = act_spawn(consumer, &c, NULL, &g_tasks[1])) != 0) {
        act_task_cancel(g_tasks[0]);
        gather_release(1);
    } else if (rc == 0) {
        rc = gather_release(2);
    }
    *secs = now_s() - t0;
    act_queue_destroy(&c.q);
    return rc;
}

static void row_queue(outcome *o) {
    rate_row(o, rep_queue, scaled(1000000), scaled(1000000), NULL);
}
#else
static void row_queue(outcome *o) {
    o->err = ACT_ENOENT;
    snprintf(o->extra, sizeof(o->extra), ", \"skipped\": \"act_queue not in this libactor\"");
}
#endif

/* ---- 5. event_wake ---- */

typedef struct wake_ctx {
    act_event_t ev;    /* the one event every waiter parks on */
    act_event_t all;   /* set by the last waiter to resume */
    act_event_t leave; /* lets them end, after the timed part */
    size_t n, parked, woken;
} wake_ctx;

static int wake_waiter(void *arg, void **result) {
    wake_ctx *c = arg;
    (void)result;
    c->parked++;
    int rc = act_event_wait(&c->ev, -1);
    if (rc) return rc;
    if (++c->woken == c->n) act_event_set(&c->all);
    /* Ending frees the stack (an munmap beyond the stack cache): keep that out of the
     * measured wake-ups, as bench_asyncio.py does with its task teardown. */
    return act_event_wait(&c->leave, -1);
}

static void wake_close(wake_ctx *c) {
    act_event_close(&c->ev);
    act_event_close(&c->all);
    act_event_close(&c->leave);
}

/* Lets the spawned tasks run until *count reaches n or stops moving. */
static int settle(const size_t *count, size_t n) {
    size_t last = (size_t)-1;
    for (int i = 0; i < PARK_ROUNDS && *count < n && *count != last; i++) {
        last = *count;
        int rc = act_yield();
        if (rc) return rc;
    }
    return 0;
}

static int rep_wake(size_t n, void *ctx, double *secs) {
    wake_ctx c = {.n = n};
    unsigned flags = ctx ? ACT_SPAWN_SMALL_STACK : 0;
    act_event_init(&c.ev);
    act_event_init(&c.all);
    act_event_init(&c.leave);
    int rc = spawn_n(n, wake_waiter, &c, flags);
    if (rc) {
        wake_close(&c);
        return rc;
    }
    rc = settle(&c.parked, n);
    double t0 = now_s();
    act_event_set(&c.ev);
    if (rc == 0 && c.parked == n) rc = act_event_wait(&c.all, -1);
    *secs = now_s() - t0;
    act_event_set(&c.leave);
    int grc = gather_release(n);
    wake_close(&c);
    return rc ? rc : grc;
}

static void row_event_wake(outcome *o) {
    rate_row(o, rep_wake, scaled(10000), scaled(10000), NULL);
}

/* The same with small stacks: 10k default stacks are 10k pages apart, so each wake-up misses
 * the TLB; small stacks share pages. */
static void row_event_wake_small(outcome *o) {
    rate_row(o, rep_wake, scaled(10000), scaled(10000), (void *)1);
}

/* ---- 6. wait_for_overhead ---- */

/* Times n rounds of spawn + (wait_for | join) + release. */
static int spawn_and_wait(size_t n, bool wait_for, double *secs) {
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        act_task_t *t = NULL;
        int rc = act_spawn(trivial, NULL, NULL, &t);
        if (rc) return rc;
        rc = wait_for ? act_wait_for(t, NULL, act_deadline_in(10000)) : act_join(t, NULL, -1);
        act_task_release(&t);
        if (rc) return rc;
    }
    *secs = now_s() - t0;
    return 0;
}

static void row_wait_for_overhead(outcome *o) {
    size_t n = scaled(100000);
    double join_best = 0, wf_best = 0, s;
    o->err = spawn_and_wait(n, true, &s); /* warm-up */
    for (int r = 0; !o->err && r < REPS; r++) {
        o->err = spawn_and_wait(n, false, &s);
        if (!o->err && (join_best == 0 || s < join_best)) join_best = s;
        if (!o->err) o->err = spawn_and_wait(n, true, &s);
        if (!o->err && (wf_best == 0 || s < wf_best)) wf_best = s;
    }
    o->value = (wf_best - join_best) / (double)n * 1e9;
    snprintf(o->extra, sizeof(o->extra),
             ", \"n\": %zu, \"plain_ns\": %.1f, \"wait_for_ns\": %.1f", n,
             join_best / (double)n * 1e9, wf_best / (double)n * 1e9);
}

/* ---- 7. task_switch ---- */

static int yielder(void *arg, void **result) {
    size_t iters = *(size_t *)arg;
    (void)result;
    for (size_t i = 0; i < iters; i++) {
        int rc = act_yield();
        if (rc) return rc;
    }
    return 0;
}

static int rep_switch(size_t n, void *ctx, double *secs) {
    (void)ctx;
    double t0 = now_s();
    int rc = spawn_n(2, yielder, &n, 0);
    if (rc == 0) rc = gather_release(2);
    *secs = now_s() - t0;
    return rc;
}

static void row_task_switch(outcome *o) {
    size_t iters = scaled(1000000);
    double best = 0;
    o->err = best_of(rep_switch, iters, NULL, &best);
    o->value = best / (double)(2 * iters) * 1e9;
    snprintf(o->extra, sizeof(o->extra), ", \"n\": %zu, \"best_s\": %.6f", 2 * iters, best);
}

/* ---- 8. mem_new_task ---- */

static void row_mem_new_task(outcome *o) {
    size_t n = scaled(100000);
    long before = rss_bytes();
    o->err = spawn_n(n, trivial, NULL, 0); /* main does not block: none of them starts */
    long after = rss_bytes();
    if (o->err) return;
    o->err = gather_release(n);
    o->value = (double)(after - before) / (double)n;
    snprintf(o->extra, sizeof(o->extra), ", \"n\": %zu, \"rss_delta\": %ld", n, after - before);
}

/* ---- 9. mem_parked_small / mem_parked_default ---- */

typedef struct park_ctx {
    act_event_t ev;
    size_t parked;
} park_ctx;

static int park_waiter(void *arg, void **result) {
    park_ctx *c = arg;
    (void)result;
    c->parked++;
    return act_event_wait(&c->ev, -1);
}

/* Counts the tasks among the first n that ended with ACT_ENOMEM (no stack could be had). */
static size_t count_enomem(size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (g_codes[i] == ACT_ENOMEM);
    return k;
}

static void mem_parked(outcome *o, unsigned flags) {
    size_t n = scaled(100000);
    park_ctx c = {0};
    act_event_init(&c.ev);
    long before = rss_bytes();
    o->err = spawn_n(n, park_waiter, &c, flags);
    if (o->err) {
        act_event_close(&c.ev);
        return;
    }
    o->err = settle(&c.parked, n);
    long after = rss_bytes();
    act_event_set(&c.ev);
    act_gather(g_tasks, n, NULL, g_codes, ACT_GATHER_COLLECT, -1);
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    for (size_t i = 0; i < n; i++) act_task_release(&g_tasks[i]);
    act_event_close(&c.ev);
    size_t enomem = count_enomem(n);
    if (c.parked) o->value = (double)(after - before) / (double)c.parked;
    snprintf(o->extra, sizeof(o->extra),
             ", \"n\": %zu, \"parked\": %zu, \"enomem\": %zu, \"rss_delta\": %ld, "
             "\"stacks_peak\": %zu", n, c.parked, enomem, after - before, st.stacks_peak);
}

static void row_mem_parked_small(outcome *o) { mem_parked(o, ACT_SPAWN_SMALL_STACK); }
static void row_mem_parked_default(outcome *o) { mem_parked(o, 0); }

/* ---- the table of rows and main ---- */

typedef struct row {
    const char *name, *unit, *better;
    void (*run)(outcome *o);
} row;

static const row ROWS[] = {
    {"spawn_gather", "tasks/s", "higher", row_spawn_gather},
    {"spawn_gather_small", "tasks/s", "higher", row_spawn_gather_small},
    {"lock_contention", "acquisitions/s", "higher", row_lock_contention},
    {"semaphore", "ops/s", "higher", row_semaphore},
    {"queue", "items/s", "higher", row_queue},
    {"event_wake", "wakes/s", "higher", row_event_wake},
    {"event_wake_small", "wakes/s", "higher", row_event_wake_small},
    {"wait_for_overhead", "ns", "lower", row_wait_for_overhead},
    {"task_switch", "ns", "lower", row_task_switch},
    {"mem_new_task", "bytes", "lower", row_mem_new_task},
    {"mem_parked_small", "bytes", "lower", row_mem_parked_small},
    {"mem_parked_default", "bytes", "lower", row_mem_parked_default},
};
#define NROWS (sizeof(ROWS) / sizeof(ROWS[0]))

static void emit(const row *r, const outcome *o) {
    if (o->err) {
        printf("{\"row\": \"%s\", \"value\": null, \"unit\": \"%s\", \"better\": \"%s\", "
               "\"error\": \"%s\"%s}\n", r->name, r->unit, r->better, act_err_name(o->err),
               o->extra);
    } else {
        printf("{\"row\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"better\": \"%s\"%s}\n",
               r->name, o->value, r->unit, r->better, o->extra);
    }
    fflush(stdout);
}

typedef struct plan {
    const row *rows[MAX_ROWS];
    size_t n;
} plan;

static int run_plan(void *arg, void **result) {
    plan *p = arg;
    (void)result;
    for (size_t i = 0; i < p->n; i++) {
        outcome o = {0};
        p->rows[i]->run(&o);
        emit(p->rows[i], &o);
    }
    return 0;
}

static const row *find_row(const char *name) {
    for (size_t i = 0; i < NROWS; i++) {
        if (strcmp(ROWS[i].name, name) == 0) return &ROWS[i];
    }
    return NULL;
}

/* Parses the command line into p. Returns 0, 1 after --list, or 2 on a bad argument. */
static int parse_args(int argc, char **argv, plan *p) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_scale = 10;
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t k = 0; k < NROWS; k++) printf("%s\n", ROWS[k].name);
            return 1;
        } else if (strcmp(argv[i], "--row") == 0 && i + 1 < argc && p->n < MAX_ROWS) {
            if (!(p->rows[p->n++] = find_row(argv[++i]))) {
                fprintf(stderr, "bench_runtime: no row '%s' (see --list)\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--row NAME]... [--quick] [--list]\n", argv[0]);
            return 2;
        }
    }
    for (size_t k = 0; p->n == 0 && k < NROWS; k++) p->rows[k] = &ROWS[k];
    if (p->n == 0) p->n = NROWS;
    return 0;
}

int main(int argc, char **argv) {
    plan p = {.n = 0};
    int rc = parse_args(argc, argv, &p);
    if (rc) return rc == 1 ? 0 : rc;
    /* Touched now so that no row's RSS delta includes them. */
    g_tasks = calloc(MAX_TASKS, sizeof(*g_tasks));
    g_codes = calloc(MAX_TASKS, sizeof(*g_codes));
    if (!g_tasks || !g_codes) return 1;
    memset(g_tasks, 0, MAX_TASKS * sizeof(*g_tasks));
    memset(g_codes, 0xff, MAX_TASKS * sizeof(*g_codes));
    act_loop_t *loop = NULL;
    if ((rc = act_loop_new(&loop, NULL)) != 0) {
        fprintf(stderr, "bench_runtime: act_loop_new: %s\n", act_strerror(rc));
        return 1;
    }
    rc = act_run(loop, run_plan, &p, NULL);
    act_loop_destroy(&loop);
    free(g_tasks);
    free(g_codes);
    if (rc) fprintf(stderr, "bench_runtime: %s\n", act_strerror(rc));
    return rc ? 1 : 0;
}
