/* test_scale.c: a million tasks spawned under a semaphore of 100 all complete, with at most
 * 100 stacks at once and bounded memory (the figure is printed); the edge the seed warns
 * about ("creating too many tasks at once"). */
#include <stdio.h>
#include <unistd.h>

#include "harness.h"

#define N 1000000
#define LIMIT 100

typedef struct scale {
    act_sem_t sem;
    act_event_t all_done;
    long done;
    long inside, max_inside;
} scale;

static int unit(void *arg, void **result) {
    (void)result;
    scale *s = arg;
    if (++s->inside > s->max_inside) s->max_inside = s->inside;
    int rc = act_yield();
    s->inside--;
    if (++s->done == N) act_event_set(&s->all_done);
    return rc;
}

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int million(void *arg, void **result) {
    (void)arg;
    (void)result;
    scale s = {0};
    act_sem_init(&s.sem, LIMIT);
    act_event_init(&s.all_done);
    long before = rss_kb();
    act_spawn_opts_t o = {.limit = &s.sem, .flags = ACT_SPAWN_SMALL_STACK};
    for (long i = 0; i < N; i++) assert_int_equal(act_spawn(unit, &s, &o, NULL), 0);
    long queued = rss_kb();
    assert_int_equal(act_event_wait(&s.all_done, -1), 0);
    act_loop_stats_t st;
    act_loop_stats(act_loop_current(), &st);
    printf("# 1M tasks under a semaphore of %d: %ld KiB while queued (%ld B/task), "
           "stacks peak %zu, most running at once %ld\n",
           LIMIT, queued - before, (queued - before) * 1024 / N, st.stacks_peak, s.max_inside);
    assert_int_equal(s.done, N);
    assert_int_equal(s.max_inside, LIMIT);
    assert_true(st.stacks_peak <= LIMIT + 1); /* main + the admitted ones */
    assert_true((queued - before) * 1024 / N < 512); /* a queued task costs well under 512 B */
    assert_int_equal(act_sem_value(&s.sem), LIMIT); /* every permit came back */
    return 0;
}

static void test_million_tasks_under_semaphore_complete_with_bounded_memory(void **state) {
    (void)state;
    assert_int_equal(harness_run(million, NULL, VCLOCK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_tasks_under_semaphore_complete_with_bounded_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
