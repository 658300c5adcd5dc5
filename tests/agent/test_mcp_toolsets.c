/* test_mcp_toolsets.c: MCP servers as toolsets of the agent runtime (worker/agent/mcp/
 * mcp_toolsets.c) against the scripted tests/lib/fake_mcp.py: what of a tool's result
 * the model reads (each thing once), and a crashed server restarted with a bounded backoff
 * while calls in between fail at once. Real clock and real processes; the tests assert
 * results, codes and counts, never durations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcp.h"
#include "modelside.h"

static agt_rt_t rt;

/* Configures and starts the servers of a JSON "mcp" section (%s: the fake's path). */
static void toolsets_open(const char *section_fmt) {
    memset(&rt, 0, sizeof rt);
    assert_int_equal(agt_toolsets_new(&rt.mcp), 0);
    char json[2048];
    snprintf(json, sizeof json, section_fmt, MCP_FAKE_SERVER, MCP_FAKE_SERVER, MCP_FAKE_SERVER);
    proto_buf_t b;
    proto_buf_init(&b);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &b, NULL), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b.p, b.n, &v), 0);
    char err[256] = "";
    assert_int_equal(agt_toolsets_config(&rt, &v, err, sizeof err), 0);
    proto_buf_free(&b);
    assert_int_equal(agt_toolsets_start(&rt), 0);
}

static void toolsets_close(void) {
    agt_toolsets_stop(&rt);
    agt_toolsets_destroy(&rt.mcp);
}

/* Calls server's tool with args (JSON); the result as JSON text in out. */
static int call(const char *server, const char *tool, const char *args, char *out, size_t cap,
                char *err, size_t errcap) {
    proto_buf_t a, res, j;
    proto_buf_init(&a);
    proto_buf_init(&res);
    proto_buf_init(&j);
    assert_int_equal(proto_json_to_msgpack(args, strlen(args), &a, NULL), 0);
    bool is_error = false;
    err[0] = out[0] = 0;
    int rc = agt_toolset_call(&rt, server, tool, a.p, a.n, &res, &is_error, err, errcap,
                              act_deadline_in(30000));
    if (rc == 0) {
        assert_false(is_error);
        assert_int_equal(proto_raw_to_json((proto_raw_t){res.p, res.n}, &j), 0);
        snprintf(out, cap, "%.*s", (int)j.n, (const char *)j.p);
    }
    proto_buf_free(&a);
    proto_buf_free(&res);
    proto_buf_free(&j);
    return rc;
}

#define FAKE(name, extra) "\"" name "\": {\"command\": [\"python3\", \"%s\"]" extra "}"

/* ---- a result reaches the model once ---- */

static int structured_body(void *arg, void **result) {
    (void)arg, (void)result;
    toolsets_open("{" FAKE("fake", "") "}");
    char out[512], err[256];
    /* The text is the JSON of the structured content: the text, once. */
    assert_int_equal(call("fake", "structured", "{\"mode\": \"json\"}", out, sizeof out, err,
                          sizeof err), 0);
    assert_string_equal(out, "\"{\\\"city\\\": \\\"Paris\\\", \\\"temp\\\": 21}\"");
    /* The text is prose: the structured content alone. */
    assert_int_equal(call("fake", "structured", "{\"mode\": \"prose\"}", out, sizeof out, err,
                          sizeof err), 0);
    assert_string_equal(out, "{\"city\":\"Paris\",\"temp\":21}");
    /* No text at all: the structured content. */
    assert_int_equal(call("fake", "structured", "{\"mode\": \"only\"}", out, sizeof out, err,
                          sizeof err), 0);
    assert_string_equal(out, "{\"city\":\"Paris\",\"temp\":21}");
    /* Text alone stays text. */
    assert_int_equal(call("fake", "echo", "{\"text\": \"hi\"}", out, sizeof out, err,
                          sizeof err), 0);
    assert_string_equal(out, "\"hi\"");
    toolsets_close();
    return 0;
}

static void test_toolset_structured_result_reaches_the_model_once(void **state) {
    (void)state;
    assert_int_equal(harness_run(structured_body, NULL, 0), 0);
}

/* ---- a crashed server is restarted, with a bounded backoff ---- */

static int restart_body(void *arg, void **result) {
    (void)arg, (void)result;
    toolsets_open("{" FAKE("quick", ", \"restart_backoff_ms\": 0, \"restart_max\": 1") ","
                  FAKE("patient", ", \"restart_backoff_ms\": 60000") ","
                  FAKE("never", ", \"restart_max\": 0") "}");
    char out[512], err[256];
    /* The call that crashed it fails with the server's exit; the next one restarts it. */
    assert_int_equal(call("quick", "crash", "{}", out, sizeof out, err, sizeof err),
                     MCP_ESERVER_EXITED);
    assert_int_equal(call("quick", "echo", "{\"text\": \"back\"}", out, sizeof out, err,
                          sizeof err), 0);
    assert_string_equal(out, "\"back\"");
    assert_int_equal(agt_toolset_restarts(&rt, "quick"), 1);
    /* A second crash in a row is past restart_max 1: given up, calls fail at once. */
    assert_int_equal(call("quick", "crash", "{}", out, sizeof out, err, sizeof err),
                     MCP_ESERVER_EXITED);
    assert_int_equal(call("quick", "echo", "{}", out, sizeof out, err, sizeof err), ACT_ECLOSED);
    assert_non_null(strstr(err, "given up after 2"));
    assert_int_equal(agt_toolset_restarts(&rt, "quick"), 1);
    /* Within its backoff a server is not restarted: the call fails at once, saying so. */
    assert_int_equal(call("patient", "crash", "{}", out, sizeof out, err, sizeof err),
                     MCP_ESERVER_EXITED);
    assert_int_equal(call("patient", "echo", "{}", out, sizeof out, err, sizeof err),
                     ACT_ECLOSED);
    assert_non_null(strstr(err, "after its backoff"));
    assert_int_equal(agt_toolset_restarts(&rt, "patient"), 0);
    /* restart_max 0: never restarted. */
    assert_int_equal(call("never", "crash", "{}", out, sizeof out, err, sizeof err),
                     MCP_ESERVER_EXITED);
    assert_int_equal(call("never", "echo", "{}", out, sizeof out, err, sizeof err), ACT_ECLOSED);
    assert_non_null(strstr(err, "given up"));
    /* The tools stay offered while a server is down (they come back with it). */
    const agt_mcp_tool_t *tools;
    size_t n;
    int64_t to;
    assert_int_equal(agt_toolset_tools(&rt, "patient", &tools, &n, &to), 0);
    assert_true(n > 0);
    toolsets_close();
    return 0;
}

static void test_toolset_crashed_server_is_restarted_with_bounded_backoff(void **state) {
    (void)state;
    assert_int_equal(harness_run(restart_body, NULL, 0), 0);
}

static void test_toolset_restart_keys_are_checked(void **state) {
    (void)state;
    memset(&rt, 0, sizeof rt);
    assert_int_equal(agt_toolsets_new(&rt.mcp), 0);
    const char *json = "{\"s\": {\"command\": [\"x\"], \"restart_max\": -1}}";
    proto_buf_t b;
    proto_buf_init(&b);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &b, NULL), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b.p, b.n, &v), 0);
    char err[256] = "";
    assert_int_equal(agt_toolsets_config(&rt, &v, err, sizeof err), ACT_EINVAL);
    assert_string_equal(err, "mcp.s.restart_max must be an integer from 0 to 1000");
    proto_buf_free(&b);
    agt_toolsets_destroy(&rt.mcp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toolset_structured_result_reaches_the_model_once),
        cmocka_unit_test(test_toolset_crashed_server_is_restarted_with_bounded_backoff),
        cmocka_unit_test(test_toolset_restart_keys_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
