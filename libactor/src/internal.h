/* internal.h: structures and helpers shared by libactor's source files (act__ names).
 * The loop, the task, the wait record every blocking call parks on, the timer heap and the
 * stack pool are defined here; nothing in this file is part of the public API. */
#ifndef ACTOR_INTERNAL_H
#define ACTOR_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "actor/actor.h"
#include "base/heap.h"

/* ACT_ASAN: built with AddressSanitizer (base/asan.h). */
#include "base/asan.h"
#ifdef BASE_ASAN
#define ACT_ASAN 1
#endif

#define ACT_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) act__panic(__FILE__, __LINE__, #cond);                              \
    } while (0)

void act__panic(const char *file, int line, const char *what) __attribute__((noreturn));

#define act__container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Intrusive circular doubly-linked list; a node links to itself when unlinked. */
typedef act_waitq_t act__list;

static inline void act__list_init(act__list *h) { h->prev = h->next = h; }
static inline bool act__list_empty(const act__list *h) { return h->next == h; }
static inline bool act__list_linked(const act__list *n) { return n->next != n; }
static inline void act__list_push(act__list *h, act__list *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void act__list_push_front(act__list *h, act__list *n) {
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}
static inline void act__list_remove(act__list *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline act__list *act__list_pop(act__list *h) {
    act__list *n = h->next;
    if (n == h) return NULL;
    act__list_remove(n);
    return n;
}

/* ---- timers: base's intrusive min-heap (base/heap.h), by (deadline, arming order) ---- */
typedef struct act__timer act__timer;
typedef void act__timer_fn(act__timer *t);
struct act__timer {
    base_heap_node_t node; /* node.key: the deadline, absolute ms on the loop clock */
    act__timer_fn *fire;   /* called once when the deadline passes */
};

typedef base_heap_t act__heap;

void act__timer_init(act__timer *t, act__timer_fn *fire);
int act__timer_arm(act_loop_t *L, act__timer *t, int64_t deadline);
void act__timer_disarm(act_loop_t *L, act__timer *t);
static inline bool act__timer_armed(const act__timer *t) { return base_heap_in(&t->node); }
/* Fires every timer due at `now`; returns how many fired. */
size_t act__timers_run(act_loop_t *L, int64_t now);
int64_t act__timers_next(const act_loop_t *L); /* -1 when none */
void act__heap_free(act__heap *h);

/* ---- fibers: the machine context switch ---- */
typedef struct act__ctx {
    void *sp; /* saved stack pointer (or ucontext_t * in the fallback) */
} act__ctx;

/* Prepares ctx to start entry(arg) on [lo, lo+size). */
void act__ctx_make(act__ctx *ctx, char *lo, size_t size, void (*entry)(void *), void *arg);
/* Saves the running context in from and resumes to. */
void act__ctx_switch(act__ctx *from, act__ctx *to);

/* ---- stacks: mmap'd with a guard page, pooled; a small class carved from slabs ---- */
typedef struct act__stack {
    struct act__stack *next; /* free-list link */
    char *lo;                /* lowest usable byte; a guard page lies below default ones */
    size_t size;             /* usable bytes (descriptor and colour excluded) */
    unsigned vg_id;          /* valgrind stack id */
    uint16_t colour;         /* bytes left unused at the top (see stack.c) */
    bool small;              /* small class: canary-checked, no guard page */
    bool slab;               /* default size, carved from a slab; descriptor off-stack */
} act__stack;

typedef struct act__dslab act__dslab; /* a mapping carved into default stacks (stack.c) */

typedef struct act__stackpool {
    act__stack *free_default; /* pooled default-size stacks, memory kept */
    size_t n_free_default;
    act__stack *cold_default; /* pooled beyond cache_max: memory given back (MADV_FREE) */
    size_t n_cold_default;
    act__dslab *dslabs;       /* default-stack slabs, a list */
    act__stack *free_small; /* pooled small stacks */
    size_t n_free_small;
    char **slabs; /* slab mappings carved into small stacks */
    size_t nslabs, slabs_cap;
    size_t default_size, small_size, page; /* sizes in bytes */
    size_t cache_max;                      /* pooled default stacks kept */
    size_t in_use, peak;                   /* stacks owned by tasks */
    size_t mapped;                         /* default stacks mapped so far (colouring) */
    size_t n_dslabs;                       /* default-stack slabs mapped */
} act__stackpool;

#define ACT__CANARY 0x5AC7C0DE5AC7C0DEull

int act__stackpool_init(act__stackpool *p, size_t default_size, size_t small_size,
                        size_t cache_max);
void act__stackpool_close(act__stackpool *p);
int act__stack_get(act__stackpool *p, size_t size, bool small, act__stack **out);
void act__stack_put(act__stackpool *p, act__stack *s);
void act__stackpool_trim(act__stackpool *p); /* free default stacks past cache_max: MADV_FREE */
bool act__stack_canary_ok(const act__stack *s);
void act__stack_guard_install(void); /* SIGSEGV reporter on an alternate stack */

/* ---- the wait record: every blocking call parks through act__wait ---- */
typedef struct act__waiter act__waiter;
typedef struct act__clause act__clause;
typedef void act__notify_fn(act__clause *c, int code);

struct act__clause {
    act__list link;         /* in the waited-on object's list */
    act__waiter *w;         /* the waiter it fires */
    act__notify_fn *notify; /* observer callback instead of firing w (gather, groups) */
    int id;                 /* reported as the wait's result when this clause fires */
    void *data;             /* payload: an item handed over, a slot to fill */
    int64_t prio;           /* payload: a priority */
    void *ctx;              /* observer context */
};

struct act__waiter {
    act_task_t *task;      /* the parked task */
    act__clause *clauses;  /* its clauses, unlinked when it fires */
    int nclauses;          /* count */
    int result;            /* fired clause id, or a negative code */
    bool fired;            /* set once: exactly-once completion */
    bool shielded;         /* a shield scope hides the task's cancellation */
    act__timer timer;      /* the effective deadline */
    act_scope_t *timer_scope; /* scope that owns the deadline, NULL: the call's own */
    int64_t call_deadline; /* the call's own deadline */
    const char *what;      /* what it waits on, for dumps ("lock", "sleep") */
    const void *obj;       /* the object waited on */
    int64_t since;         /* when it parked */
};

/* What t's next blocking call must fail with (cancellation, an expired or cancelled scope),
 * or 0. Cheap when t has no scope. */
int act__task_check(act_task_t *t);
/* Starts a blocking call: checks cancellation and expired scopes. Returns 0 or a code. */
int act__wait_enter(act__waiter *w, const char *what, const void *obj);
/* The check act__wait_enter makes, for a call that has no waiter yet (it may never park):
 * ACT_EINVAL outside a task, else act__task_check of the current task. */
int act__wait_check(void);
void act__clause_init(act__clause *c, act__waiter *w, int id);
/* Parks the task until a clause fires, the deadline passes or it is cancelled. The clauses
 * must already be linked into their objects' lists. Returns the clause id or a code. */
int act__wait(act__waiter *w, act__clause *c, int n, int64_t deadline);
/* Fires c: its waiter wakes with c's id (code 0) or with code (< 0). Unlinks c.
 * Returns false when the waiter had already fired (the clause was stale). */
bool act__clause_fire(act__clause *c, int code);
bool act__waiter_fire(act__waiter *w, int result);
/* Fires the first live clause of list h with code; returns it or NULL when none. */
act__clause *act__list_fire_first(act__list *h, int code);
/* Fires every clause of list h with code; returns how many. */
size_t act__list_fire_all(act__list *h, int code);
/* Re-arms a parked task's timer after a scope changed. */
void act__waiter_rearm(act__waiter *w);

/* ---- tasks ---- */
#define ACT__TASK_EXITING 5 /* returned; the scheduler completes it (never seen by users) */
enum {
    ACT__T_CANCEL = 1 << 0,    /* cancellation requested */
    ACT__T_RETRIEVED = 1 << 1, /* someone looked at the outcome */
    ACT__T_DETACHED = 1 << 2,  /* nobody will join: no "never joined" report */
    ACT__T_SMALL = 1 << 3,     /* small-stack class */
    ACT__T_SHIELD = 1 << 4,    /* group cancellation does not reach it */
    ACT__T_GATED = 1 << 5,     /* queued on its limit semaphore, not yet admitted */
    ACT__T_PERMIT = 1 << 6,    /* holds a permit of its limit semaphore */
    ACT__T_JOINED = 1 << 7,    /* someone waited on it */
};

struct act_task {
    act_loop_t *loop;      /* owner loop */
    act_task_fn fn;        /* body */
    void *arg;             /* body argument */
    void *result;          /* body's result */
    int code;              /* body's code once done */
    uint8_t state;         /* act_task_state_t */
    uint8_t flags;         /* ACT__T_* */
    uint16_t refs;         /* runtime + handles + group */
    uint32_t stack_req;    /* requested stack size, 0 default */
    uint64_t id;           /* 1, 2, 3... per loop */
    const char *name;      /* NULL: "task-<id>" */
    act__stack *stack;     /* NULL until first run, and again after it ends */
    act__ctx ctx;          /* saved context while switched out */
    act__list qlink;       /* run queue, or its limit semaphore's gate list */
    act__list all;         /* the loop's list of live tasks */
    act__list done;        /* clauses waiting for it to end */
    act__waiter *waiter;   /* current wait, NULL when not parked */
    act_scope_t *scope;    /* innermost timeout scope */
    act_group_t *group;    /* owning group, if any */
    act__list glink;       /* in the group's list */
    act_sem_t *limit;      /* admission semaphore, if any */
    char *message;         /* act_fail message, heap */
    uint32_t interrupts;   /* groups it owns whose failure cancels its body (until it waits) */
};

/* Task records (taskmem.c): from the loop's slabs; NULL when out of memory. */
act_task_t *act__task_alloc(act_loop_t *L);
void act__task_free(act_loop_t *L, act_task_t *t);
void act__task_slabs_close(act_loop_t *L); /* no task may be left */
void act__task_slabs_trim(act_loop_t *L);  /* empty slabs past a few: MADV_FREE */

void act__task_ready(act_task_t *t); /* push on the run queue */
void act__task_unref(act_task_t *t);
void act__task_finish(act_task_t *t, int code, void *result); /* end, wake joiners */
void act__park(act_loop_t *L); /* switch away from the current task */
size_t act__run_ready(act_loop_t *L); /* one scheduler pass over the ready tasks */
/* Admission through a limit semaphore: sync.c calls this when a gated task gets its permit. */
void act__task_admit(act_task_t *t);
/* Semaphore hooks used by task.c for ACT spawn limits (defined in sync.c). */
bool act__sem_try_gate(act_sem_t *s, act_task_t *t); /* true: admitted now */
void act__sem_ungate(act_sem_t *s, act_task_t *t);   /* drop a gated task */
void act__sem_release_permit(act_sem_t *s);
/* A group child ended (defined in group.c). */
void act__group_child_done(act_task_t *t);
/* End of a scheduler pass: groups whose child failed during it cancel the other children
 * and interrupt their owner (asyncio reacts from a call_soon callback, after the tasks
 * already scheduled have run a step). */
void act__groups_react(act_loop_t *L);

/* ---- the loop ---- */
typedef struct act__tscall act__tscall;

struct act_loop {
    uv_loop_t uv;             /* libuv underneath */
    uv_timer_t uvtimer;       /* wakes libuv for the earliest deadline */
    uv_async_t async;         /* wakes the loop for threadsafe calls */
    act__ctx sched;           /* the scheduler's own context (the thread's stack) */
    act_task_t *current;      /* running task, NULL in the scheduler */
    act__list runq;           /* ready tasks, FIFO */
    size_t runq_len;          /* entries in runq */
    size_t budget;            /* direct task-to-task switches left in this pass */
    act__list tasks;          /* every live task */
    act__list groups_due;     /* groups with a child failure to react to (group.c) */
    act__list tslabs;         /* every task slab (taskmem.c) */
    act__list tslabs_open;    /* task slabs with a free slot */
    size_t tslab_idle;        /* empty task slabs keeping their pages */
    uint64_t trimmed_at;      /* uv_hrtime() of the last pool trim */
    size_t ntasks;            /* live tasks */
    size_t nundone;           /* live tasks that have not ended */
    size_t nstarted;          /* tasks holding a stack */
    act__heap timers;         /* deadlines of parked tasks */
    act__stackpool stacks;    /* stacks */
    pthread_mutex_t ts_mu;    /* guards the threadsafe queue */
    act__tscall *ts_head, *ts_tail; /* threadsafe calls, FIFO */
    bool ts_closed;           /* refuses new threadsafe calls */
    size_t external;          /* thread-pool jobs in flight: the virtual clock waits */
    int64_t vnow;             /* virtual clock */
    unsigned flags;           /* ACT_LOOP_* */
    int64_t slow_ms;          /* debug threshold */
    uint64_t next_id;         /* task ids */
    uint64_t switches, spawned; /* counters */
    act_task_t *zombie;       /* ended task whose stack is released after switching away */
    act_task_t *park_task;    /* act_on_park: the task whose next park calls park_fn */
    void (*park_fn)(void *arg);
    void *park_arg;
    bool running;             /* inside act_run */
    uint64_t rng;             /* xorshift state */
    uint64_t slice_start;     /* debug: hrtime when the current slice began */
    const void *sched_stack_lo; /* ASan: the scheduler stack's bounds */
    size_t sched_stack_size;
};

extern _Thread_local act_loop_t *act__tls_loop;

static inline bool act__debug(const act_loop_t *L) { return (L->flags & ACT_LOOP_DEBUG) != 0; }
void act__debug_slice(act_loop_t *L, act_task_t *t, const char *kind); /* slow-slice check */
void act__debug_task_freed(act_task_t *t);
uint64_t act__rand(act_loop_t *L);

#endif
