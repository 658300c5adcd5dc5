/* demo.c: libactor in one screen. A "planner" fans a query out to six tools at once, each
 * under its own deadline; a tool that overruns becomes a tool_error event instead of a crash;
 * every step is published on the in-process bus and printed by a subscriber task; a task
 * dump shows who waits on what. Built as build/examples/actor-demo. */
#include <stdio.h>
#include <string.h>

#include "actor/actor.h"

typedef struct tool {
    const char *name;  /* tool name */
    int64_t work_ms;   /* how long it takes */
    int64_t limit_ms;  /* its own timeout */
    act_bus_t *bus;    /* where it reports */
} tool;

static void publish(act_bus_t *bus, const char *topic, const char *fmt, const char *a,
                    long b) {
    char msg[160];
    int n = snprintf(msg, sizeof msg, fmt, a, b);
    act_bus_publish(bus, topic, msg, (size_t)n, -1);
}

static int run_tool(void *arg, void **result) {
    tool *t = arg;
    act_scope_t s; /* per-tool timeout: bounds every blocking call inside */
    act_scope_enter(&s, act_deadline_in(t->limit_ms), 0);
    publish(t->bus, "tool.start", "%s started (needs %ld ms)", t->name, (long)t->work_ms);
    act_sleep(t->work_ms); /* stands in for an HTTP call, a model, a database */
    int rc = act_scope_leave(&s);
    if (rc == ACT_ETIMEDOUT) {
        publish(t->bus, "tool.error", "%s timed out after %ld ms", t->name, (long)t->limit_ms);
        return act_fail(rc, "%s timed out", t->name);
    }
    publish(t->bus, "tool.done", "%s finished in %ld ms", t->name, (long)t->work_ms);
    *result = (void *)t->name;
    return rc;
}

static int print_events(void *arg, void **result) {
    (void)result;
    act_bus_sub_t *sub = arg;
    act_bus_msg_t *m;
    while (act_bus_recv(sub, &m, -1) == 0) {
        printf("  [bus] %-10s %.*s\n", m->topic, (int)m->len, (const char *)m->data);
        act_bus_msg_release(&m);
    }
    return 0;
}

static int planner(void *arg, void **result) {
    (void)arg;
    (void)result;
    act_bus_t *bus;
    act_bus_sub_t *sub;
    act_task_t *printer;
    act_bus_new(&bus, 16);
    act_bus_subscribe(bus, "tool.", 64, ACT_BUS_DROP_OLDEST, &sub);
    act_spawn_opts_t po = {.name = "bus-printer"};
    act_spawn(print_events, sub, &po, &printer);

    tool tools[] = {
        {"search", 120, 500, bus}, {"weather", 80, 500, bus}, {"calendar", 200, 500, bus},
        {"slow-crm", 900, 300, bus}, {"maps", 60, 500, bus}, {"stocks", 150, 500, bus},
    };
    enum { N = sizeof tools / sizeof tools[0] };
    act_task_t *t[N];
    int64_t t0 = act_now(), total = 0;
    printf("planner: fanning out to %d tools at once\n", N);
    for (int i = 0; i < N; i++) {
        act_spawn_opts_t o = {.name = tools[i].name};
        act_spawn(run_tool, &tools[i], &o, &t[i]);
        total += tools[i].work_ms;
    }
    act_sleep(30);
    printf("planner: task dump while the tools work:\n");
    act_debug_dump(stdout);

    act_as_completed_t it;
    act_as_completed_init(&it, t, N);
    act_task_t *d;
    while (act_as_completed_next(&it, &d, -1) == 0) {
        const char *msg;
        int rc = act_task_error(d, &msg);
        printf("planner: %-9s -> %s\n", act_task_name(d), rc ? msg : "ok");
    }
    act_as_completed_close(&it);
    printf("planner: all tools answered in %lld ms of wall time (%lld ms of work)\n",
           (long long)(act_now() - t0), (long long)total);
    for (int i = 0; i < N; i++) act_task_release(&t[i]);
    act_yield(); /* let the printer drain the bus */
    act_task_cancel(printer);
    act_join(printer, NULL, -1);
    act_task_release(&printer);
    act_bus_unsubscribe(&sub);
    act_bus_destroy(&bus);
    return 0;
}

int main(void) {
    act_loop_t *loop;
    int rc = act_loop_new(&loop, NULL);
    if (rc) {
        fprintf(stderr, "actor-demo: %s\n", act_strerror(rc));
        return 1;
    }
    rc = act_run(loop, planner, NULL, NULL);
    act_loop_destroy(&loop);
    return rc ? 1 : 0;
}
