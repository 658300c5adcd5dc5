/* fiber_x86_64.S: the x86_64 System V context switch. Saves the callee-saved registers on
 * the running stack, stores its pointer, loads the other one and returns into it.
 * The floating-point control words are shared by all tasks of a thread and not saved. */
#if defined(__x86_64__) && !defined(ACT_FIBER_UCONTEXT)
    .text
    .globl act__fiber_switch
    .hidden act__fiber_switch
    .type act__fiber_switch,@function
/* void act__fiber_switch(void **save_sp, void *load_sp) */
act__fiber_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size act__fiber_switch,.-act__fiber_switch

    .globl act__fiber_trampoline
    .hidden act__fiber_trampoline
    .type act__fiber_trampoline,@function
/* First code a new fiber runs: r12 holds the argument, r13 the entry; never returns. */
act__fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size act__fiber_trampoline,.-act__fiber_trampoline
#endif
    .section .note.GNU-stack,"",@progbits
