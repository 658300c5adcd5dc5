/* harness.c: see harness.h. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int harness_run_opts(act_task_fn fn, void *arg, const act_loop_opts_t *opts) {
    act_loop_t *loop = NULL;
    assert_int_equal(act_loop_new(&loop, opts), 0);
    int rc = act_run(loop, fn, arg, NULL);
    act_loop_stats_t st;
    act_loop_stats(loop, &st);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.stacks_in_use, 0);
    assert_int_equal(st.timers, 0);
    assert_int_equal(act_loop_destroy(&loop), 0);
    assert_null(loop);
    return rc;
}

int harness_run(act_task_fn fn, void *arg, unsigned flags) {
    act_loop_opts_t o = {.flags = flags};
    return harness_run_opts(fn, arg, &o);
}

#define MAX_LINES 256
static char *lines[MAX_LINES];
static size_t nlines;

static void sink(act_log_level_t level, const char *line, void *ctx) {
    (void)level;
    (void)ctx;
    if (nlines < MAX_LINES) lines[nlines++] = strdup(line);
}

void harness_log_capture(void) { act_log_set_sink(sink, NULL); }
void harness_log_release(void) {
    act_log_set_sink(NULL, NULL);
    harness_log_clear();
}

size_t harness_log_count(const char *substring) {
    size_t n = 0;
    for (size_t i = 0; i < nlines; i++) n += strstr(lines[i], substring) != NULL;
    return n;
}

void harness_log_clear(void) {
    for (size_t i = 0; i < nlines; i++) free(lines[i]);
    nlines = 0;
}

int harness_sleeper(void *arg, void **result) {
    intptr_t ms = (intptr_t)arg;
    int rc = act_sleep(ms);
    *result = (void *)ms;
    return rc;
}

int harness_failer(void *arg, void **result) {
    (void)result;
    act_yield();
    return (int)(intptr_t)arg;
}
