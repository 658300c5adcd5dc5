/* harness.h: what every unit test shares: run a main task on a fresh loop (virtual clock
 * by default) and check that it ends with no live tasks or stacks; capture log lines. */
#ifndef ACTOR_TEST_HARNESS_H
#define ACTOR_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "actor/actor.h"

/* Runs fn on a new loop with the given flags (ACT_LOOP_VIRTUAL_CLOCK is the usual), asserts
 * that the loop ends clean, and returns fn's code. */
int harness_run(act_task_fn fn, void *arg, unsigned flags);
int harness_run_opts(act_task_fn fn, void *arg, const act_loop_opts_t *opts);

/* Log capture: lines are kept until harness_log_clear. */
void harness_log_capture(void);
void harness_log_release(void);
size_t harness_log_count(const char *substring);
void harness_log_clear(void);

/* A task body that sleeps arg (intptr_t ms) then returns its ms as result. */
int harness_sleeper(void *arg, void **result);
/* A task body that fails with code arg (intptr_t) after yielding once. */
int harness_failer(void *arg, void **result);

#define VCLOCK ACT_LOOP_VIRTUAL_CLOCK

#endif
