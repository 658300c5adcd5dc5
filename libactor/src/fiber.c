/* fiber.c: builds and switches machine contexts. x86_64 uses fiber_x86_64.S and aarch64
 * fiber_aarch64.S; every other target (or -DACT_FIBER_UCONTEXT) falls back to ucontext, which
 * is slower because swapcontext saves the signal mask with a system call. */
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) && !defined(ACT_FIBER_UCONTEXT)

void act__fiber_switch(void **save_sp, void *load_sp);
void act__fiber_trampoline(void);

void act__ctx_make(act__ctx *ctx, char *lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
    /* Seven slots popped by the switch: r15 r14 r13 r12 rbx rbp, then the return address.
     * After `ret` the stack pointer is 16-aligned, as the trampoline's call needs. */
    void **sp = (void **)(top - 16 - 7 * sizeof(void *));
    memset(sp, 0, 7 * sizeof(void *));
    sp[2] = (void *)entry; /* r13 */
    sp[3] = arg;           /* r12 */
    sp[6] = (void *)act__fiber_trampoline;
    ctx->sp = sp;
}

void act__ctx_switch(act__ctx *from, act__ctx *to) { act__fiber_switch(&from->sp, to->sp); }

#elif defined(__aarch64__) && !defined(ACT_FIBER_UCONTEXT)

void act__fiber_switch(void **save_sp, void *load_sp);
void act__fiber_trampoline(void);

/* The frame fiber_aarch64.S pops, in 8-byte slots: x19..x28 (0-9), x29 (10), x30 (11),
 * d8..d15 (12-19). */
enum { A64_X19 = 0, A64_X20 = 1, A64_FP = 10, A64_LR = 11, A64_SLOTS = 20 };

void act__ctx_make(act__ctx *ctx, char *lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
    /* The frame sits 16 bytes below the top; once popped, sp is 16-aligned as AAPCS64 wants. */
    void **sp = (void **)(top - 16 - A64_SLOTS * sizeof(void *));
    memset(sp, 0, A64_SLOTS * sizeof(void *));
    sp[A64_X19] = arg;
    sp[A64_X20] = (void *)entry;
    sp[A64_FP] = NULL; /* ends frame-pointer walks */
    sp[A64_LR] = (void *)act__fiber_trampoline;
    ctx->sp = sp;
}

void act__ctx_switch(act__ctx *from, act__ctx *to) { act__fiber_switch(&from->sp, to->sp); }

#else
#include <ucontext.h>

typedef struct uc_start {
    void (*entry)(void *);
    void *arg;
} uc_start;

static void uc_trampoline(unsigned hi, unsigned lo) {
    uc_start *st = (uc_start *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    st->entry(st->arg);
}

void act__ctx_make(act__ctx *ctx, char *lo, size_t size, void (*entry)(void *), void *arg) {
    /* The ucontext_t and the start record live at the top of the fiber's own stack. */
    uintptr_t top = ((uintptr_t)(lo + size - sizeof(ucontext_t) - sizeof(uc_start))) & ~15u;
    ucontext_t *uc = (ucontext_t *)top;
    uc_start *st = (uc_start *)(top + sizeof(ucontext_t));
    st->entry = entry;
    st->arg = arg;
    getcontext(uc);
    uc->uc_stack.ss_sp = lo;
    uc->uc_stack.ss_size = (size_t)(top - (uintptr_t)lo);
    uc->uc_link = NULL;
    uintptr_t p = (uintptr_t)st;
    makecontext(uc, (void (*)(void))uc_trampoline, 2, (unsigned)(p >> 32), (unsigned)p);
    ctx->sp = uc;
}

void act__ctx_switch(act__ctx *from, act__ctx *to) {
    ucontext_t here; /* this context, saved on its own stack while it is switched out */
    from->sp = &here;
    swapcontext(&here, to->sp);
}
#endif
