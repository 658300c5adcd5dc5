/* stack.c: task stacks. Default stacks are carved 16 at a time from one mapping (a slab),
 * each with a guard page below it (MADV_GUARD_INSTALL where the kernel has it, else
 * mprotect), and pooled for reuse. The loop's periodic trim (at most once a second, never on
 * the hot path: each madvise is a TLB shootdown) gives the pages of the free ones beyond
 * cache_max back with MADV_FREE (lazily: reuse costs no fault unless the kernel took them);
 * their address range stays for reuse, so a burst of tasks costs no mmap/munmap pair each.
 * Their descriptors live in the slab's header, off the stack, so no stack page is pinned.
 * Other sizes get a mapping each. The small class is carved from slabs without guard pages
 * and checked with a canary at every switch. Overflow into a guard page is reported by a
 * SIGSEGV handler that names the task. The descriptor sits at the top of each stack. */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ACT_HAVE_VALGRIND 1
#endif
#endif
#ifndef ACT_HAVE_VALGRIND
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLAB_STACKS 64 /* small stacks carved per slab */

static size_t guard_len; /* the page size, for the fault handler */
#define DSLAB_STACKS 16 /* default stacks per mapping */

struct act__dslab {
    act__dslab *next;                /* the pool's list */
    char *map;                       /* the mapping */
    size_t len;                      /* its length */
    act__stack stacks[DSLAB_STACKS]; /* descriptors */
};

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

int act__stackpool_init(act__stackpool *p, size_t default_size, size_t small_size,
                        size_t cache_max) {
    memset(p, 0, sizeof(*p));
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    guard_len = p->page;
    p->default_size = round_up(default_size, p->page);
    p->small_size = round_up(small_size, 64);
    p->cache_max = cache_max;
    if (p->small_size < 512 || p->default_size < 4 * p->page) return ACT_EINVAL;
    return 0;
}

/* Places the descriptor at the top of [lo, lo+bytes) and registers the stack. */
static act__stack *describe(char *lo, size_t bytes, bool small) {
    act__stack *s = (act__stack *)(lo + bytes - sizeof(act__stack));
    s->next = NULL;
    s->lo = lo;
    s->size = bytes - sizeof(act__stack);
    s->small = small;
    s->slab = false;
    s->colour = 0;
    s->vg_id = VALGRIND_STACK_REGISTER(lo, lo + s->size);
    return s;
}

/* Colouring: every stack's hot top would sit at the same page offset, so thousands of parked
 * tasks would fight over the same cache sets; shift each top by up to 2 KiB (still within
 * the first page a parked task touches). */
static size_t next_colour(act__stackpool *p) { return (p->mapped++ % 16) * 128; }

static int install_guard(act__stackpool *p, char *at) {
    if (madvise(at, p->page, MADV_GUARD_INSTALL) == 0) return 0;
    return mprotect(at, p->page, PROT_NONE) == 0 ? 0 : ACT_ENOMEM;
}

static int map_stack(act__stackpool *p, size_t size, act__stack **out) {
    size_t len = size + p->page;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) return ACT_ENOMEM;
    if (install_guard(p, map) != 0) {
        munmap(map, len);
        return ACT_ENOMEM;
    }
    act__stack *s = describe(map + p->page, size, false);
    s->colour = (uint16_t)next_colour(p);
    s->size -= s->colour;
    *out = s;
    return 0;
}

/* Maps a slab of default stacks and puts them on the free list. */
static int grow_default(act__stackpool *p) {
    act__dslab *d = malloc(sizeof(*d));
    if (!d) return ACT_ENOMEM;
    size_t one = p->default_size + p->page;
    d->len = one * DSLAB_STACKS;
    d->map = mmap(NULL, d->len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (d->map == MAP_FAILED) {
        free(d);
        return ACT_ENOMEM;
    }
    for (size_t i = 0; i < DSLAB_STACKS; i++) {
        if (install_guard(p, d->map + i * one) != 0) {
            munmap(d->map, d->len);
            free(d);
            return ACT_ENOMEM;
        }
    }
    for (size_t i = DSLAB_STACKS; i-- > 0;) {
        act__stack *s = &d->stacks[i];
        s->lo = d->map + i * one + p->page;
        s->small = false;
        s->slab = true;
        s->colour = (uint16_t)next_colour(p);
        s->size = p->default_size - s->colour;
        s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
        s->next = p->free_default;
        p->free_default = s;
        p->n_free_default++;
    }
    d->next = p->dslabs;
    p->dslabs = d;
    p->n_dslabs++;
    return 0;
}

static int grow_small(act__stackpool *p) {
    if (p->nslabs == p->slabs_cap) {
        size_t cap = p->slabs_cap ? p->slabs_cap * 2 : 16;
        char **v = realloc(p->slabs, cap * sizeof(*v));
        if (!v) return ACT_ENOMEM;
        p->slabs = v;
        p->slabs_cap = cap;
    }
    size_t len = round_up(p->small_size * SLAB_STACKS, p->page);
    char *slab = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slab == MAP_FAILED) return ACT_ENOMEM;
    p->slabs[p->nslabs++] = slab;
    for (size_t i = 0; i < len / p->small_size; i++) {
        act__stack *s = describe(slab + i * p->small_size, p->small_size, true);
        s->next = p->free_small;
        p->free_small = s;
        p->n_free_small++;
    }
    return 0;
}

int act__stack_get(act__stackpool *p, size_t size, bool small, act__stack **out) {
    act__stack *s;
    int rc;
    if (small) {
        if (!p->free_small && (rc = grow_small(p)) != 0) return rc;
        s = p->free_small;
        p->free_small = s->next;
        p->n_free_small--;
        *(uint64_t *)s->lo = ACT__CANARY;
    } else if (size == 0 || round_up(size, p->page) == p->default_size) {
        if (!p->free_default && p->cold_default) { /* warm one up: its range is still ours */
            s = p->cold_default;
            p->cold_default = s->next;
            p->n_cold_default--;
            s->next = p->free_default;
            p->free_default = s;
            p->n_free_default++;
        }
        if (!p->free_default && (rc = grow_default(p)) != 0) return rc;
        s = p->free_default;
        p->free_default = s->next;
        p->n_free_default--;
    } else if ((rc = map_stack(p, round_up(size, p->page), &s)) != 0) {
        return rc;
    }
    if (++p->in_use > p->peak) p->peak = p->in_use;
    *out = s;
    return 0;
}

static void unmap_stack(act__stack *s) {
    VALGRIND_STACK_DEREGISTER(s->vg_id);
    /* Its own mapping: the guard page below lo, the stack, the colour, the descriptor. */
    munmap(s->lo - guard_len, guard_len + s->size + s->colour + sizeof(act__stack));
}

void act__stack_put(act__stackpool *p, act__stack *s) {
    p->in_use--;
    if (s->small) {
        s->next = p->free_small;
        p->free_small = s;
        p->n_free_small++;
    } else if (s->slab) { /* the excess past cache_max goes back in act__stackpool_trim */
        s->next = p->free_default;
        p->free_default = s;
        p->n_free_default++;
    } else {
        unmap_stack(s);
    }
}

void act__stackpool_trim(act__stackpool *p) {
    while (p->n_free_default > p->cache_max) {
        act__stack *s = p->free_default;
        p->free_default = s->next;
        p->n_free_default--;
        /* Give the memory back, keep the range. MADV_FREE is lazy (the kernel takes the
         * pages only when it needs them); kernels without it drop them at once. */
        if (madvise(s->lo, p->default_size, MADV_FREE) != 0)
            madvise(s->lo, p->default_size, MADV_DONTNEED);
        s->next = p->cold_default;
        p->cold_default = s;
        p->n_cold_default++;
    }
}

bool act__stack_canary_ok(const act__stack *s) {
    return !s->small || *(const uint64_t *)s->lo == ACT__CANARY;
}

void act__stackpool_close(act__stackpool *p) {
    /* Every stack is back (the loop has no live task): slab stacks are on the two lists. */
    for (act__stack *s = p->free_default; s; s = s->next) VALGRIND_STACK_DEREGISTER(s->vg_id);
    for (act__stack *s = p->cold_default; s; s = s->next) VALGRIND_STACK_DEREGISTER(s->vg_id);
    while (p->dslabs) {
        act__dslab *d = p->dslabs;
        p->dslabs = d->next;
        munmap(d->map, d->len);
        free(d);
    }
    size_t len = round_up(p->small_size * SLAB_STACKS, p->page);
    for (act__stack *s = p->free_small; s; s = s->next) VALGRIND_STACK_DEREGISTER(s->vg_id);
    for (size_t i = 0; i < p->nslabs; i++) munmap(p->slabs[i], len);
    free(p->slabs);
    memset(p, 0, sizeof(*p));
}

/* ---- overflow reporting ---- */

static struct sigaction prev_segv, prev_bus;
static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool altstack_set;

static void put_str(char *buf, size_t *len, size_t cap, const char *s) {
    while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
}

static void put_num(char *buf, size_t *len, size_t cap, size_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 23);
    while (n && *len + 1 < cap) buf[(*len)++] = tmp[--n];
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
    act_loop_t *L = act__tls_loop;
    act_task_t *t = L ? L->current : NULL;
    char *addr = si->si_addr;
    if (t && t->stack && !t->stack->small && addr >= t->stack->lo - guard_len &&
        addr < t->stack->lo) {
        char msg[256];
        size_t n = 0;
        put_str(msg, &n, sizeof msg, "actor: stack overflow in task '");
        put_str(msg, &n, sizeof msg, t->name ? t->name : "unnamed");
        put_str(msg, &n, sizeof msg, "' (id ");
        put_num(msg, &n, sizeof msg, (size_t)t->id);
        put_str(msg, &n, sizeof msg, ", stack ");
        put_num(msg, &n, sizeof msg, t->stack->size);
        put_str(msg, &n, sizeof msg, " bytes); raise its stack_size\n");
        ssize_t wr = write(STDERR_FILENO, msg, n);
        (void)wr;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: hand the fault to whoever was there before (ASan, the default action). */
    struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, uc);
    } else if (prev->sa_handler != SIG_IGN && prev->sa_handler != SIG_DFL) {
        prev->sa_handler(sig);
    } else {
        signal(sig, SIG_DFL); /* returning re-executes the access and takes the default */
    }
}

/* (Re)installs the handler when someone else (a test framework, say) replaced it. */
static void install_handler(void) {
    struct sigaction cur;
    pthread_mutex_lock(&guard_mu);
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_fault) {
        pthread_mutex_unlock(&guard_mu);
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    sigaction(SIGBUS, &sa, &prev_bus);
    pthread_mutex_unlock(&guard_mu);
}

void act__stack_guard_install(void) {
    install_handler();
    if (altstack_set) return;
    /* The handler must run on a stack of its own: the faulting one is exhausted. The
     * alternate stack is kept for the thread's lifetime. */
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) && ss.ss_sp) {
        altstack_set = true; /* someone (ASan) already set one */
        return;
    }
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    ss.ss_sp = mem;
    ss.ss_size = size;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) == 0) altstack_set = true;
    else munmap(mem, size);
}
