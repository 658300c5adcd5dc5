/* fiber_aarch64.S: the AArch64 (AAPCS64) context switch. Saves the callee-saved registers
 * (x19-x28, the frame pointer x29, the link register x30 and the low halves d8-d15 of
 * v8-v15) on the running stack, stores its pointer, loads the other one and returns into it.
 * FPCR/FPSR are shared by all tasks of a thread and not saved, as on x86_64. */
#if defined(__aarch64__) && !defined(ACT_FIBER_UCONTEXT)
    .text
    .p2align 4
    .globl act__fiber_switch
    .hidden act__fiber_switch
    .type act__fiber_switch,%function
/* void act__fiber_switch(void **save_sp, void *load_sp): a 160-byte frame, 16-aligned. */
act__fiber_switch:
    .cfi_startproc
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .cfi_endproc
    .size act__fiber_switch,.-act__fiber_switch

    .p2align 4
    .globl act__fiber_trampoline
    .hidden act__fiber_trampoline
    .type act__fiber_trampoline,%function
/* First code a new fiber runs (the switch "returns" here through x30): x19 holds the
 * argument, x20 the entry; never returns. */
act__fiber_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x29, #0
    mov x0, x19
    blr x20
    brk #0x1
    .cfi_endproc
    .size act__fiber_trampoline,.-act__fiber_trampoline
#endif
    .section .note.GNU-stack,"",%progbits
