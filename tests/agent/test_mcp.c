/* test_mcp.c: the MCP stdio client (worker/agent/mcp/mcp.h) against real processes: a scripted
 * fake server (tests/lib/fake_mcp.py) that misbehaves on request, and the real npm
 * server @modelcontextprotocol/server-everything (installed into the build tree by npm ci).
 * A child process answers in real time, so these tests run on the real clock; they assert
 * codes, contents and orders, and the only deadlines that expire are on calls never answered. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mcp.h"

#define PYTHON "/usr/bin/python3"
#define LONG_WAIT 30000 /* ms; for calls that are answered, so it never expires */

/* ---- helpers ---- */

static void opts_fake(mcp_opts_t *o, const char **argv, const char *f1, const char *f2) {
    memset(o, 0, sizeof(*o));
    argv[0] = PYTHON;
    argv[1] = MCP_FAKE_SERVER;
    argv[2] = f1;
    argv[3] = f1 ? f2 : NULL;
    argv[4] = NULL;
    o->argv = argv;
    o->name = "fake";
}

static mcp_client_t *start_fake(const char *f1, const char *f2) {
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, f1, f2);
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    assert_non_null(c);
    return c;
}

/* Calls a tool that must succeed; returns the text of its result (caller frees). */
static char *call_text(mcp_client_t *c, const char *tool, const char *args, bool want_error) {
    char *json = NULL, *text = NULL;
    bool is_error = !want_error;
    int64_t deadline = act_deadline_in(LONG_WAIT);
    assert_int_equal(mcp_call_tool(c, tool, args, &json, &is_error, deadline), 0);
    assert_int_equal(is_error, want_error);
    assert_int_equal(mcp_result_text(json, &text), 0);
    free(json);
    return text;
}

static void expect_text(mcp_client_t *c, const char *tool, const char *args, const char *want) {
    char *text = call_text(c, tool, args, false);
    assert_string_equal(text, want);
    free(text);
}

/* The server's record of every message it received, as JSON text. */
static bool received_has(mcp_client_t *c, const char *needle) {
    char *text = call_text(c, "received", NULL, false);
    bool has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

/* The child was reaped: no process, and nothing left for waitpid. */
static void assert_reaped(int pid) {
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

#define RUN_TEST(name, body) \
    static void name(void **state) { \
        (void)state; \
        assert_int_equal(harness_run(body, NULL, 0), 0); \
    }

/* ---- handshake and listing ---- */

static int handshake(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    assert_string_equal(mcp_client_protocol(c), MCP_PROTOCOL_VERSION);
    assert_non_null(strstr(mcp_client_server_info(c), "\"fake-mcp\""));
    assert_true(mcp_client_alive(c));
    /* initialize carried our clientInfo, and the initialized notification followed it. */
    assert_true(received_has(c, "\"clientInfo\": {\"name\": \"actorbus\""));
    assert_true(received_has(c, "\"method\": \"notifications/initialized\""));
    assert_int_equal(mcp_client_stop(&c), 0);
    assert_null(c);
    assert_int_equal(mcp_client_stop(&c), 0); /* repeatable */

    c = start_fake("--protocol", "2024-11-05"); /* an older version we also speak */
    assert_string_equal(mcp_client_protocol(c), "2024-11-05");
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_handshake_agrees_on_a_version, handshake)

static int list_pages(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    mcp_tool_t *tools = NULL;
    size_t n = 0;
    assert_int_equal(mcp_list_tools(c, &tools, &n, act_deadline_in(LONG_WAIT)), 0);
    assert_int_equal(n, 20); /* 3 on the first page, 17 on the second */
    assert_string_equal(tools[0].name, "echo");
    assert_string_equal(tools[0].description, "Returns its text");
    assert_string_equal(tools[0].input_schema,
                        "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}");
    assert_string_equal(tools[2].name, "gate");
    assert_string_equal(tools[3].name, "hang"); /* first of page two */
    assert_string_equal(tools[n - 1].name, "structured");
    mcp_tools_free(&tools, n);
    assert_null(tools);
    assert_true(received_has(c, "\"params\": {\"cursor\": \"page-2\"}"));

    /* notifications/tools/list_changed is remembered until the next listing. */
    assert_false(mcp_client_tools_changed(c));
    expect_text(c, "list_changed", NULL, "changed");
    assert_true(mcp_client_tools_changed(c));
    assert_int_equal(mcp_list_tools(c, &tools, &n, -1), 0);
    assert_false(mcp_client_tools_changed(c));
    mcp_tools_free(&tools, n);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_lists_tools_across_pages, list_pages)

static int list_bad(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake("--quirky-tools", NULL);
    mcp_tool_t *tools = NULL;
    size_t n = 0;
    assert_int_equal(mcp_list_tools(c, &tools, &n, -1), 0);
    assert_int_equal(n, 20); /* no name, a number, "" and a second "echo" were skipped */
    assert_string_equal(tools[0].description, "Returns its text"); /* the first echo */
    for (size_t i = 1; i < n; i++)
        assert_string_not_equal(tools[i].name, "echo");
    mcp_tools_free(&tools, n);
    mcp_client_stop(&c);

    c = start_fake("--same-cursor", NULL); /* pages without end */
    assert_int_equal(mcp_list_tools(c, &tools, &n, -1), MCP_EBAD_RESPONSE);
    assert_null(tools);
    assert_int_equal(n, 0);
    mcp_client_stop(&c);

    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.max_tools = 10;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    assert_int_equal(mcp_list_tools(c, &tools, &n, -1), MCP_EBAD_RESPONSE);
    assert_null(tools);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_list_skips_bad_tools_and_refuses_endless_lists, list_bad)

/* ---- calls ---- */

static int call_results(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    expect_text(c, "echo", "{\"text\": \"h\\u00e9llo \\\"w\\\"\\n!\"}", "h\xc3\xa9llo \"w\"\n!");
    expect_text(c, "args", "{\"b\": [1, 2.5, null], \"a\": {\"x\": true}}",
                "{\"a\": {\"x\": true}, \"b\": [1, 2.5, null]}");
    expect_text(c, "args", NULL, "{}");
    expect_text(c, "args", "  ", "{}");
    char *json = NULL;
    bool is_error = true;
    assert_int_equal(mcp_call_tool(c, "echo", "{\"text\":\"x\"}", &json, &is_error, -1), 0);
    assert_false(is_error);
    assert_string_equal(json, "{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}");
    free(json);
    /* A large result crosses many pipe reads. */
    char *big = call_text(c, "big", "{\"bytes\": 1048576}", false);
    assert_int_equal(strlen(big), 1048576);
    assert_int_equal(big[0], 'b');
    free(big);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_call_returns_text, call_results)

static int tool_errors(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    char *text = call_text(c, "fail", "{\"text\": \"disk full\"}", true); /* isError: true */
    assert_string_equal(text, "disk full");
    free(text);

    char *json = NULL;
    assert_int_equal(mcp_call_tool(c, "rpc_error", NULL, &json, NULL, -1), MCP_ERPC);
    assert_string_equal(json, "{\"code\":-32602,\"message\":\"bad params\"}");
    free(json);
    assert_int_equal(mcp_call_tool(c, "bad_result", NULL, &json, NULL, -1), MCP_EBAD_RESPONSE);
    assert_null(json);
    assert_int_equal(mcp_call_tool(c, "both", NULL, &json, NULL, -1), MCP_EBAD_RESPONSE);
    assert_string_equal(mcp_err_code(MCP_EBAD_RESPONSE), "mcp_bad_response");

    /* Bad arguments are refused before anything is sent. */
    assert_int_equal(mcp_call_tool(c, "echo", "[1]", &json, NULL, -1), ACT_EINVAL);
    assert_int_equal(mcp_call_tool(c, "echo", "{bad", &json, NULL, -1), ACT_EINVAL);
    assert_int_equal(mcp_call_tool(c, "", NULL, &json, NULL, -1), ACT_EINVAL);
    expect_text(c, "echo", "{\"text\": \"still fine\"}", "still fine");
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_tool_error_and_rpc_error_are_told_apart, tool_errors)

typedef struct gate_arg {
    mcp_client_t *c;
    int tag;
    int *order, *norder; /* completion order, shared */
    int rc;
    char text[16];
} gate_arg;

static int gate_call(void *arg, void **result) {
    (void)result;
    gate_arg *g = arg;
    char args[64], *json = NULL, *text = NULL;
    snprintf(args, sizeof args, "{\"n\": 3, \"tag\": \"t%d\"}", g->tag);
    g->rc = mcp_call_tool(g->c, "gate", args, &json, NULL, act_deadline_in(LONG_WAIT));
    if (g->rc == 0 && mcp_result_text(json, &text) == 0)
        snprintf(g->text, sizeof g->text, "%s", text);
    free(text);
    free(json);
    g->order[(*g->norder)++] = g->tag;
    return 0;
}

static int concurrent(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    int order[3], norder = 0;
    gate_arg g[3];
    act_task_t *t[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (gate_arg){.c = c, .tag = i, .order = order, .norder = &norder};
        assert_int_equal(act_spawn(gate_call, &g[i], NULL, &t[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), 0);
        act_task_release(&t[i]);
    }
    /* The server held all three and answered the last first: each got its own result. */
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "t%d", i);
        assert_int_equal(g[i].rc, 0);
        assert_string_equal(g[i].text, want);
    }
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 0);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_concurrent_calls_answered_out_of_order_get_their_own, concurrent)

/* ---- timeouts and cancellation ---- */

static int hang_call(void *arg, void **result) {
    mcp_client_t *c = arg;
    char *json = NULL;
    *result = NULL;
    int rc = mcp_call_tool(c, "hang", NULL, &json, NULL, -1);
    assert_null(json);
    return rc;
}

static int timeouts(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.call_timeout_ms = 300;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    char *json = NULL;
    /* The call's own deadline (request id 2; initialize was 1). */
    assert_int_equal(mcp_call_tool(c, "hang", NULL, &json, NULL, act_deadline_in(100)),
                     ACT_ETIMEDOUT);
    assert_null(json);
    assert_true(received_has(c, "{\"requestId\": 2, \"reason\": \"timeout\"}"));
    /* The client's call_timeout_ms when the caller gives none (id 4). */
    assert_int_equal(mcp_call_tool(c, "hang", NULL, &json, NULL, -1), ACT_ETIMEDOUT);
    /* The task's own timeout scope (id 5). */
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(100), 0);
    assert_int_equal(mcp_call_tool(c, "hang", NULL, &json, NULL, -1), ACT_ETIMEDOUT);
    act_scope_leave(&s);
    /* Cancelling the calling task (id 6). */
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(hang_call, c, NULL, &t), 0);
    act_yield(); /* it sends and parks */
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    assert_true(received_has(c, "{\"requestId\": 6, \"reason\": \"cancelled\"}"));
    /* The server saw a cancellation for every abandoned request, and only for those. */
    expect_text(c, "cancelled", NULL, "[2, 4, 5, 6]");
    mcp_stats_t st;
    mcp_client_stats(c, &st);
    assert_int_equal(st.cancelled, 4);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_timeout_fails_the_call_and_sends_cancelled, timeouts)

static int pending_bound(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.max_pending = 2;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    act_task_t *t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(act_spawn(hang_call, c, NULL, &t[i]), 0);
    act_yield();
    char *json = NULL;
    assert_int_equal(mcp_call_tool(c, "echo", NULL, &json, NULL, -1), ACT_EAGAIN);
    /* Stopping fails the waiting calls with ECLOSED before the server goes. */
    assert_int_equal(mcp_client_stop(&c), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), ACT_ECLOSED);
        act_task_release(&t[i]);
    }
    return 0;
}
RUN_TEST(test_mcp_pending_calls_are_bounded_and_stop_fails_them, pending_bound)

/* ---- a misbehaving server ---- */

static int exits_seen;
static void on_exit_cb(mcp_client_t *c, int64_t status, int sig, void *ctx) {
    (void)c;
    (void)status;
    (void)sig;
    (void)ctx;
    exits_seen++;
}

static int crash(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.on_exit = on_exit_cb;
    exits_seen = 0;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    int pid = mcp_client_pid(c);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(hang_call, c, NULL, &t), 0);
    act_yield();
    char *json = NULL;
    assert_int_equal(mcp_call_tool(c, "crash", "{\"code\": 3}", &json, NULL, -1),
                     MCP_ESERVER_EXITED);
    assert_int_equal(act_join(t, NULL, -1), MCP_ESERVER_EXITED); /* the other call too */
    act_task_release(&t);
    assert_false(mcp_client_alive(c));
    assert_int_equal(exits_seen, 1);
    assert_int_equal(mcp_call_tool(c, "echo", NULL, &json, NULL, -1), MCP_ESERVER_EXITED);
    assert_string_equal(mcp_err_code(MCP_ESERVER_EXITED), "mcp_server_exited");
    assert_int_equal(mcp_client_stop(&c), 0);
    assert_int_equal(exits_seen, 1);
    assert_reaped(pid);
    return 0;
}
RUN_TEST(test_mcp_server_crash_fails_pending_calls, crash)

static int garbage(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake(NULL, NULL);
    expect_text(c, "garbage", "{\"text\": \"survived\"}", "survived");
    mcp_stats_t st;
    mcp_client_stats(c, &st);
    assert_int_equal(st.bad_lines, 4);     /* not JSON twice, a bare number, a string id */
    assert_int_equal(st.late, 1);          /* an id nobody waits for */
    assert_int_equal(st.notifications, 3); /* a log message, a ping and a roots/list */
    /* The server's own requests were answered: ping with {}, the rest "method not found". */
    assert_true(received_has(c, "{\"jsonrpc\": \"2.0\", \"id\": \"srv-1\", \"result\": {}}"));
    assert_true(received_has(c, "\"id\": \"srv-2\", \"error\": {\"code\": -32601"));
    mcp_client_stop(&c);

    /* A line over max_line is skipped whole; its call never gets an answer. */
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.max_line = 4096;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    char *json = NULL;
    assert_int_equal(
        mcp_call_tool(c, "big", "{\"bytes\": 10000}", &json, NULL, act_deadline_in(300)),
        ACT_ETIMEDOUT);
    char *text = call_text(c, "big", "{\"bytes\": 3000}", false); /* fits: the next one works */
    assert_int_equal(strlen(text), 3000);
    free(text);
    mcp_client_stats(c, &st);
    assert_int_equal(st.bad_lines, 1);
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_garbage_lines_are_skipped, garbage)

/* ---- start and stop ---- */

static int start_failures(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    mcp_opts_t o;
    mcp_client_t *c = NULL;
    const char *missing[] = {"/nonexistent/mcp-server", NULL};
    memset(&o, 0, sizeof o);
    o.argv = missing;
    assert_int_equal(mcp_client_start(&c, &o), ACT_ENOENT);
    assert_null(c);
    opts_fake(&o, argv, "--init-error", NULL);
    assert_int_equal(mcp_client_start(&c, &o), MCP_ERPC);
    opts_fake(&o, argv, "--protocol", "1999-01-01");
    assert_int_equal(mcp_client_start(&c, &o), MCP_EVERSION);
    opts_fake(&o, argv, "--exit-at-start", NULL);
    assert_int_equal(mcp_client_start(&c, &o), MCP_ESERVER_EXITED);
    /* A server that never answers initialize: the start timeout. */
    opts_fake(&o, argv, "--ignore-eof", NULL);
    argv[1] = "-c";
    argv[2] = "import time; time.sleep(60)";
    o.start_timeout_ms = 200;
    o.stop_grace_ms = 100;
    assert_int_equal(mcp_client_start(&c, &o), ACT_ETIMEDOUT);
    assert_null(c);
    o.argv = NULL;
    assert_int_equal(mcp_client_start(&c, &o), ACT_EINVAL);
    /* Every server those starts ran was reaped: this process has no child left. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    return 0;
}
RUN_TEST(test_mcp_start_failures_leave_nothing_behind, start_failures)

static int env_cwd(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    const char *env_add[] = {"MCP_TEST_VAR=from-add", "HOME=/nowhere", NULL};
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.cwd = "/tmp";
    o.env_add = env_add;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    expect_text(c, "cwd", NULL, "/tmp");
    expect_text(c, "env", "{\"name\": \"MCP_TEST_VAR\"}", "from-add");
    expect_text(c, "env", "{\"name\": \"HOME\"}", "/nowhere"); /* overrides ours */
    mcp_client_stop(&c);

    const char *env[] = {"ONLY_THIS=1", NULL}; /* a full environment replaces ours */
    opts_fake(&o, argv, NULL, NULL);
    o.env = env;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    expect_text(c, "env", "{\"name\": \"ONLY_THIS\"}", "1");
    expect_text(c, "env", "{\"name\": \"HOME\"}", "");
    mcp_client_stop(&c);
    return 0;
}
RUN_TEST(test_mcp_server_gets_its_env_and_cwd, env_cwd)

/* Stops a server started with the flags; returns how far stop had to go. */
static int stop_how(const char *f1, const char *f2) {
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, f1, f2);
    o.stop_grace_ms = 300;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    int pid = mcp_client_pid(c);
    assert_true(pid > 0);
    int how = mcp_client_stop(&c);
    assert_null(c);
    assert_reaped(pid);
    return how;
}

static int stop_escalates(void *arg, void **result) {
    (void)arg;
    (void)result;
    harness_log_capture();
    assert_int_equal(stop_how(NULL, NULL), 0);                      /* exits on EOF */
    assert_int_equal(stop_how("--ignore-eof", NULL), 1);            /* needs SIGTERM */
    assert_int_equal(stop_how("--ignore-eof", "--ignore-term"), 2); /* needs SIGKILL */
    assert_int_equal(harness_log_count("event=mcp_stop server=fake how=sigkill"), 1);
    harness_log_release();
    return 0;
}
RUN_TEST(test_mcp_stop_escalates_and_reaps_the_server, stop_escalates)

/* True once pid is no running process (gone, or a zombie waiting for init to reap it). */
static bool process_ended(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    char *end = line ? strrchr(line, ')') : NULL;
    return !end || end[1] == 0 || end[2] == 'Z';
}

static int stop_group(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, "--ignore-eof", "--grandchild");
    o.stop_grace_ms = 300;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    int pid = mcp_client_pid(c);
    char *text = call_text(c, "grandchild", NULL, false);
    int gpid = atoi(text);
    free(text);
    assert_true(gpid > 0);
    assert_false(process_ended(gpid));
    assert_int_equal(mcp_client_stop(&c), 1); /* SIGTERM, to the whole group */
    assert_reaped(pid);
    for (int i = 0; i < 500 && !process_ended(gpid); i++)
        act_sleep(10);
    assert_true(process_ended(gpid));
    return 0;
}
RUN_TEST(test_mcp_stop_ends_the_servers_own_children, stop_group)

/* A task cancelled while it stops the client still stops it completely. */
static int stopper(void *arg, void **result) {
    (void)result;
    act_task_cancel(act_current());
    return mcp_client_stop((mcp_client_t **)arg);
}

static int stop_when_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    mcp_client_t *c = start_fake("--ignore-eof", NULL);
    int pid = mcp_client_pid(c);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(stopper, &c, NULL, &t), 0);
    assert_int_equal(act_join(t, NULL, -1), 1); /* it went as far as SIGTERM */
    act_task_release(&t);
    assert_null(c);
    assert_reaped(pid);
    return 0;
}
RUN_TEST(test_mcp_stop_completes_in_a_cancelled_task, stop_when_cancelled)

/* Waits (real time, bounded) until the server's stderr lines have been read. */
static void wait_stderr(mcp_client_t *c, uint64_t lines) {
    mcp_stats_t st;
    for (int i = 0; i < 1000; i++) {
        mcp_client_stats(c, &st);
        if (st.stderr_lines >= lines) return;
        act_sleep(10);
    }
    fail_msg("stderr lines never arrived");
}

static int stderr_log(void *arg, void **result) {
    (void)arg;
    (void)result;
    harness_log_capture();
    mcp_client_t *c = start_fake(NULL, NULL);
    expect_text(c, "stderr", "{\"n\": 3}", "wrote");
    wait_stderr(c, 3);
    assert_int_equal(harness_log_count("event=mcp_stderr server=fake line=\"fake stderr "), 3);
    assert_int_equal(harness_log_count("line=\"fake stderr 2\""), 1);
    mcp_client_stop(&c);
    harness_log_clear();

    /* Over the rate, lines are counted, not logged. */
    const char *argv[5];
    mcp_opts_t o;
    opts_fake(&o, argv, NULL, NULL);
    o.stderr_lines_per_s = 5;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    expect_text(c, "stderr", "{\"n\": 40}", "wrote");
    wait_stderr(c, 40);
    mcp_stats_t st;
    mcp_client_stats(c, &st);
    size_t logged = harness_log_count("event=mcp_stderr ");
    assert_int_equal(logged + st.stderr_dropped, 40);
    assert_true(st.stderr_dropped > 0); /* 40 lines written at once: far over 5 per second */
    mcp_client_stop(&c);
    harness_log_release();
    return 0;
}
RUN_TEST(test_mcp_server_stderr_goes_to_the_log_bounded, stderr_log)

/* ---- the real server from npm ---- */

#define EVERYTHING "node_modules/@modelcontextprotocol/server-everything/dist/index.js"

static bool find_in_path(const char *prog, char *out, size_t cap) {
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, cap, "%.*s/%s", (int)n, path, prog);
        if (n && access(out, X_OK) == 0) return true;
        path = end ? end + 1 : NULL;
    }
    return false;
}

/* Installed: npm ci finished (the marker) after the lock file last changed. */
static bool npm_installed(const char *dir) {
    char marker[4096], lock[4096];
    struct stat m, l;
    snprintf(marker, sizeof marker, "%s/node_modules/.actorbus-installed", dir);
    snprintf(lock, sizeof lock, "%s/package-lock.json", dir);
    return stat(marker, &m) == 0 && stat(lock, &l) == 0 && m.st_mtime >= l.st_mtime;
}

/* npm ci into the build tree, once: a file lock keeps parallel runs (ctest -j runs this
 * binary and its valgrind twin) from installing over each other. */
static int npm_install(const char *dir) {
    char path[4096], cmd[4096 + 128];
    if (npm_installed(dir)) return 0;
    snprintf(path, sizeof path, "%s/.npm-lock", dir);
    int lock = open(path, O_CREAT | O_RDWR, 0644);
    if (lock >= 0) flock(lock, LOCK_EX);
    int rc = 0;
    if (!npm_installed(dir)) {
        printf("test_mcp: installing the MCP server with npm ci in %s\n", dir);
        fflush(stdout);
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && npm ci --no-audit --no-fund --loglevel=error && "
                 "touch node_modules/.actorbus-installed",
                 dir);
        rc = system(cmd);
    }
    if (lock >= 0) close(lock);
    return rc;
}

typedef struct real_arg {
    char node[4096];
    char script[4096];
} real_arg;

static int real_server(void *arg, void **result) {
    (void)result;
    real_arg *r = arg;
    const char *argv[] = {r->node, r->script, "stdio", NULL};
    mcp_opts_t o;
    memset(&o, 0, sizeof o);
    o.argv = argv;
    o.name = "everything";
    o.start_timeout_ms = 60000;
    mcp_client_t *c = NULL;
    assert_int_equal(mcp_client_start(&c, &o), 0);
    int pid = mcp_client_pid(c);
    assert_non_null(strstr(mcp_client_server_info(c), "everything"));
    mcp_tool_t *tools = NULL;
    size_t n = 0;
    assert_int_equal(mcp_list_tools(c, &tools, &n, act_deadline_in(60000)), 0);
    size_t echo = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(tools[i].name, "echo") == 0) echo = i;
    assert_true(echo < n);
    assert_non_null(strstr(tools[echo].input_schema, "\"message\""));
    mcp_tools_free(&tools, n);
    char *json = NULL, *text = NULL;
    bool is_error = true;
    assert_int_equal(mcp_call_tool(c, "echo", "{\"message\": \"hello from actorbus\"}", &json,
                                   &is_error, act_deadline_in(60000)),
                     0);
    assert_false(is_error);
    assert_int_equal(mcp_result_text(json, &text), 0);
    assert_string_equal(text, "Echo: hello from actorbus");
    free(text);
    free(json);
    int how = mcp_client_stop(&c);
    assert_true(how >= 0 && how <= 2);
    assert_reaped(pid);
    return 0;
}

static void test_mcp_real_server_everything_echoes(void **state) {
    (void)state;
    static real_arg r;
    char npm[4096];
    if (!find_in_path("node", r.node, sizeof r.node) || !find_in_path("npm", npm, sizeof npm)) {
        printf("SKIP test_mcp_real_server_everything_echoes: node or npm not found in PATH\n");
        skip();
    }
    assert_int_equal(npm_install(MCP_NPM_DIR), 0);
    snprintf(r.script, sizeof r.script, "%s/" EVERYTHING, MCP_NPM_DIR);
    assert_int_equal(harness_run(real_server, &r, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mcp_handshake_agrees_on_a_version),
        cmocka_unit_test(test_mcp_lists_tools_across_pages),
        cmocka_unit_test(test_mcp_list_skips_bad_tools_and_refuses_endless_lists),
        cmocka_unit_test(test_mcp_call_returns_text),
        cmocka_unit_test(test_mcp_tool_error_and_rpc_error_are_told_apart),
        cmocka_unit_test(test_mcp_concurrent_calls_answered_out_of_order_get_their_own),
        cmocka_unit_test(test_mcp_timeout_fails_the_call_and_sends_cancelled),
        cmocka_unit_test(test_mcp_pending_calls_are_bounded_and_stop_fails_them),
        cmocka_unit_test(test_mcp_server_crash_fails_pending_calls),
        cmocka_unit_test(test_mcp_garbage_lines_are_skipped),
        cmocka_unit_test(test_mcp_start_failures_leave_nothing_behind),
        cmocka_unit_test(test_mcp_server_gets_its_env_and_cwd),
        cmocka_unit_test(test_mcp_stop_escalates_and_reaps_the_server),
        cmocka_unit_test(test_mcp_stop_ends_the_servers_own_children),
        cmocka_unit_test(test_mcp_stop_completes_in_a_cancelled_task),
        cmocka_unit_test(test_mcp_server_stderr_goes_to_the_log_bounded),
        cmocka_unit_test(test_mcp_real_server_everything_echoes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
