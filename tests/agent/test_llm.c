/* test_llm.c: the model side of the agent runtime (worker/agent llm.c, tools.c, models.c,
 * mcp_toolsets.c) on its own: the runner side is stubbed here (events are recorded, state and
 * history are set by each test), the model is tests/lib/fake_openai.py over real HTTP,
 * and the MCP toolset is the real @modelcontextprotocol/server-everything when npm has it.
 * tests/agent/test_llm.py drives the same through real broker and worker processes. */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"
#include "modelside.h"

/* ---- the fake model server ---- */

static pid_t server_pid;
static int server_stdin = -1;
static char base_url[64];

static int start_server(void **state) {
    (void)state;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) return -1;
    server_pid = fork();
    if (server_pid < 0) return -1;
    if (server_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/usr/bin/python3", "python3", FAKE_OPENAI, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    server_stdin = in[1];
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    FILE *f = fdopen(out[0], "r");
    int port = 0;
    char line[64];
    if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "PORT %d", &port) != 1) return -1;
    fclose(f);
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/v1", port);
    return 0;
}

static int stop_server(void **state) {
    (void)state;
    close(server_stdin);
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    return 0;
}

/* The last request body model received (JSON, as the server re-encodes it). */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int collect(void *ctx, const agt_http_resp_t *r, const char *p, size_t n) {
    (void)r;
    sbuf *b = ctx;
    if (b->n + n >= b->cap) return ACT_EMSGSIZE;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static void last_request(const char *model, char *out, size_t cap) {
    agt_http_t *h = NULL;
    assert_int_equal(agt_http_new(&h), 0);
    char url[160];
    snprintf(url, sizeof(url), "%.*s/_last?model=%s", (int)(strlen(base_url) - 3), base_url,
             model);
    sbuf b = {out, 0, cap};
    out[0] = 0;
    agt_http_req_t rq = {.method = "GET", .url = url, .on_body = collect, .ctx = &b};
    agt_http_resp_t r;
    assert_int_equal(agt_http_perform(h, &rq, &r, act_deadline_in(5000)), 0);
    assert_int_equal(r.status, 200);
    agt_http_destroy(&h);
}

/* ---- the stubbed runner side ---- */

#define MAX_EVENTS 64
typedef struct rec_event {
    char text[512];
    bool partial, final;
    char error_code[32], error_message[256];
    char transfer[64];
    char role[16];
    char parts_json[1024], delta_json[256];
    int64_t usage[3];  /* usage_metadata: prompt, candidates, total; -2: none */
    bool with_sum;     /* the event carries invocation_usage */
} rec_event_t;

static rec_event_t events[MAX_EVENTS];
static size_t n_events;
static char output_json[1024];
static char fail_code[64], fail_msg[512];
static proto_buf_t state_buf, history_buf;
static atomic_int blocked;  /* the blocking tool is parked on its pipe */
static int block_pipe[2] = {-1, -1};
static int order[16], n_order; /* which tools finished, in order */

static void to_json(const uint8_t *p, size_t n, char *out, size_t cap) {
    proto_buf_t j;
    proto_buf_init(&j);
    out[0] = 0;
    if (p && n && proto_raw_to_json((proto_raw_t){p, n}, &j) == 0) snprintf(out, cap, "%s", j.p);
    proto_buf_free(&j);
}

int agt_emit(abp_ctx_t *ctx, const abp_event_t *ev) { return agt_emit_ex(ctx, ev, NULL); }

/* Tokens the host was told of (agt_host_t.tokens), summed. */
static uint64_t host_prompt, host_completion;
static void h_tokens(abp_ctx_t *ctx, const char *model, uint64_t prompt, uint64_t completion) {
    (void)model;
    (void)ctx;
    host_prompt += prompt;
    host_completion += completion;
}

int agt_emit_ex(abp_ctx_t *ctx, const abp_event_t *ev, const agt_event_extra_t *x) {
    (void)ctx;
    assert_true(n_events < MAX_EVENTS);
    rec_event_t *e = &events[n_events++];
    memset(e, 0, sizeof(*e));
    e->usage[0] = e->usage[1] = e->usage[2] = -2;
    if (x && x->usage) {
        e->usage[0] = x->usage->prompt_tokens;
        e->usage[1] = x->usage->completion_tokens;
        e->usage[2] = x->usage->total_tokens;
    }
    e->with_sum = x && x->with_sum;
    snprintf(e->text, sizeof e->text, "%s", ev->text ? ev->text : "");
    e->partial = ev->partial;
    e->final = ev->final;
    snprintf(e->error_code, sizeof e->error_code, "%s", ev->error_code ? ev->error_code : "");
    snprintf(e->error_message, sizeof e->error_message, "%s",
             ev->error_message ? ev->error_message : "");
    snprintf(e->transfer, sizeof e->transfer, "%s",
             ev->transfer_to_agent ? ev->transfer_to_agent : "");
    snprintf(e->role, sizeof e->role, "%s", ev->role ? ev->role : "");
    to_json(ev->parts, ev->parts_n, e->parts_json, sizeof e->parts_json);
    to_json(ev->state_delta, ev->state_delta_n, e->delta_json, sizeof e->delta_json);
    return 0;
}

const agt_def_t *agt_current(abp_ctx_t *ctx) {
    (void)ctx;
    return NULL;
}
proto_raw_t agt_state(abp_ctx_t *ctx) {
    (void)ctx;
    return (proto_raw_t){state_buf.p, state_buf.n};
}
proto_raw_t agt_history(abp_ctx_t *ctx) {
    (void)ctx;
    return (proto_raw_t){history_buf.p, history_buf.n};
}
const char *agt_invocation_id(abp_ctx_t *ctx) {
    (void)ctx;
    return "i-current";
}
const char *agt_branch(abp_ctx_t *ctx) {
    (void)ctx;
    return "";
}

/* Callbacks: a before_model cache for agent "cached" (a bad one for "badcache"), before_tool
 * replacing weather's result for agent "guarded", after_tool rewriting get_time's. */
static const char *cb_agent;
int agt_callbacks_run(abp_ctx_t *ctx, abp_cb_kind_t kind, const char *tool, const uint8_t *data,
                      size_t n, abp_pack_t *out) {
    (void)ctx, (void)data, (void)n;
    if (!cb_agent) return 0;
    if (kind == ABP_CB_BEFORE_MODEL && !strcmp(cb_agent, "cached"))
        return agt_pack_json(out, "{\"text\": \"from the cache\"}") ? -1 : 1;
    if (kind == ABP_CB_BEFORE_MODEL && !strcmp(cb_agent, "badcache"))
        return agt_pack_cstr(out, "not an answer") ? -1 : 1;
    if (kind == ABP_CB_BEFORE_TOOL && !strcmp(cb_agent, "guarded") && !strcmp(tool, "weather"))
        return agt_pack_json(out, "{\"temp\": -1, \"by\": \"callback\"}") ? -1 : 1;
    if (kind == ABP_CB_AFTER_TOOL && !strcmp(cb_agent, "guarded") && !strcmp(tool, "get_time"))
        return agt_pack_cstr(out, "time replaced") ? -1 : 1;
    return 0;
}

/* An agent used as a tool: answers with what it was asked. */
static char agent_out[256];
int agt_run_agent(abp_ctx_t *ctx, const char *agent, const uint8_t *input, size_t n,
                  const uint8_t **output, size_t *output_n) {
    (void)ctx;
    static proto_buf_t b;
    char in[128];
    to_json(input, n, in, sizeof in);
    snprintf(agent_out, sizeof agent_out, "%s answers %s", agent, in);
    proto_buf_free(&b);
    proto_buf_init(&b);
    proto_pack_cstr(&b, agent_out);
    *output = b.p;
    *output_n = b.n;
    return 0;
}

static int t_set_output(abp_ctx_t *ctx, const uint8_t *p, size_t n) {
    (void)ctx;
    to_json(p, n, output_json, sizeof output_json);
    return 0;
}
static int t_fail(abp_ctx_t *ctx, const char *code, const char *message) {
    (void)ctx;
    snprintf(fail_code, sizeof fail_code, "%s", code);
    snprintf(fail_msg, sizeof fail_msg, "%s", message);
    return 0;
}
static bool t_cancelled(abp_ctx_t *ctx) {
    (void)ctx;
    return false;
}
/* As the worker's (wrk_ctx_time_left): the task's scopes say, not a copy of the deadline
 * kept aside, so that an expired scope reads here as it does in the worker. */
static int64_t t_time_left(abp_ctx_t *ctx) {
    (void)ctx;
    int64_t deadline = act_effective_deadline();
    if (deadline < 0) return -1;
    int64_t left = deadline - act_now();
    return left > 0 ? left : 0;
}
static const abp_api_t api = {.set_output = t_set_output, .fail = t_fail,
                              .cancelled = t_cancelled, .time_left_ms = t_time_left};

/* The host the runtime sees (agent/host.h): one job, one registry, no worker, no broker. */
struct abp_host {
    bool open;
    agt_rt_t *rt;
};
struct abp_ctx {
    abp_host_t *host;
};
static agt_rt_t *h_rt(abp_host_t *h) { return h->rt; }
static abp_host_t *h_host_of(abp_ctx_t *ctx) { return ctx->host; }
static bool h_registering(abp_host_t *h) { return h->open; }
static const agt_host_t test_host = {.api = &api, .rt = h_rt, .host_of = h_host_of,
                                     .registering = h_registering, .tokens = h_tokens};
const agt_host_t *agt__host = &test_host;

/* ---- tools ---- */

static int tool_weather(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                        void *udata) {
    (void)args, (void)n, (void)udata;
    int rc = act_sleep(20); /* in the loop: the slow tool is still pending meanwhile */
    if (rc) return rc;
    order[n_order++] = 1;
    proto_buf_t v;
    proto_buf_init(&v);
    proto_pack_cstr(&v, "sunny");
    agt_tool_state_set(tc, "last_weather", v.p, v.n);
    proto_buf_free(&v);
    return agt_pack_json(out, "{\"temp\": 21}");
}

static int tool_slow(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                     void *udata) {
    (void)tc, (void)args, (void)n, (void)out, (void)udata;
    int rc = act_sleep(10000);
    order[n_order++] = 2;
    return rc;
}

static int tool_fails(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                      void *udata) {
    (void)args, (void)n, (void)out, (void)udata;
    order[n_order++] = 3;
    agt_tool_fail(tc, "the disk is on fire");
    return ACT_EIO;
}

static int tool_time(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                     void *udata) {
    (void)tc, (void)args, (void)n, (void)udata;
    return agt_pack_cstr(out, "12:00");
}

/* Blocking: reads one byte from the pipe the test holds, on a thread of its own. */
static int tool_block(abp_tool_ctx_t *tc, const uint8_t *args, size_t n, abp_pack_t *out,
                      void *udata) {
    (void)args, (void)n, (void)udata;
    assert_null(agt_tool_job(tc));
    atomic_fetch_add(&blocked, 1);
    char c = 0;
    ssize_t r = read(block_pipe[0], &c, 1);
    atomic_fetch_sub(&blocked, 1);
    return r == 1 ? agt_pack_str(out, &c, 1) : ACT_EIO;
}

/* ---- the fixture: a runtime with tools, models and a job ---- */

static abp_host_t host;
static agt_rt_t rt;
static struct abp_ctx job;

static void rt_config(const char *models_json) {
    proto_buf_t b;
    proto_buf_init(&b);
    char json[1024];
    snprintf(json, sizeof json, models_json, base_url, base_url); /* for a second model too */
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &b, NULL), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b.p, b.n, &v), 0);
    char err[256] = "";
    assert_int_equal(agt_models_config(&rt, &v, err, sizeof err), 0);
    proto_buf_free(&b);
}

static void rt_open(const char *models_json) {
    memset(&host, 0, sizeof host);
    memset(&rt, 0, sizeof rt);
    memset(&job, 0, sizeof job);
    host.rt = &rt;
    job.host = &host;
    assert_int_equal(agt_tools_new(&rt.tools), 0);
    assert_int_equal(agt_models_new(&rt.models), 0);
    assert_int_equal(agt_toolsets_new(&rt.mcp), 0);
    host.open = true;
    abp_tool_def_t defs[] = {
        {.name = "weather", .description = "Weather in a city", .fn = tool_weather,
         .parameters_json =
             "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"},
        {.name = "slow", .fn = tool_slow, .timeout_ms = 200},
        {.name = "fails", .fn = tool_fails},
        {.name = "get_time", .fn = tool_time},
        {.name = "block", .fn = tool_block, .flags = ABP_TOOL_BLOCKING, .timeout_ms = 60000},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        assert_int_equal(agt_tool_register(&host, &defs[i]), 0);
    assert_int_equal(agt_tool_register(&host, &defs[0]), ABP_EEXIST);
    host.open = false;
    rt_config(models_json);
    n_events = 0;
    n_order = 0;
    output_json[0] = fail_code[0] = fail_msg[0] = 0;
    cb_agent = NULL;
    proto_buf_free(&state_buf);
    proto_buf_free(&history_buf);
}

static void rt_close(void) {
    agt_toolsets_stop(&rt);
    agt_toolsets_destroy(&rt.mcp);
    agt_models_destroy(&rt.models);
    agt_tools_destroy(&rt.tools);
}

#define MODELS "{\"default\": {\"base_url\": \"%s\", \"model\": \"agent\"}}"

static agt_def_t llm_def(const char *name, char **tools, size_t n_tools) {
    agt_def_t d = {.name = (char *)name, .kind = AGT_LLM};
    d.llm.tools = tools;
    d.llm.n_tools = n_tools;
    return d;
}

static int run_input(const agt_def_t *d, const char *input) {
    proto_buf_t b;
    proto_buf_init(&b);
    proto_pack_cstr(&b, input);
    int rc = agt_llm_run(&job, d, b.p, b.n);
    proto_buf_free(&b);
    return rc;
}

static size_t count_events(const char *error_code, bool partial) {
    size_t n = 0;
    for (size_t i = 0; i < n_events; i++)
        if ((!error_code || !strcmp(events[i].error_code, error_code)) &&
            events[i].partial == partial)
            n++;
    return n;
}


/* ---- streaming ---- */

static int streams(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.llm.output_key = "last_answer";
    assert_int_equal(run_input(&d, "hello there friend"), 0);
    /* "echo: hello there friend" streamed word by word, then one final event. */
    assert_int_equal(count_events(NULL, true), 4);
    char joined[256] = "";
    for (size_t i = 0; i < n_events; i++)
        if (events[i].partial) strcat(joined, events[i].text);
    assert_string_equal(joined, "echo: hello there friend");
    rec_event_t *last = &events[n_events - 1];
    assert_true(last->final && !last->partial);
    assert_string_equal(last->text, "echo: hello there friend");
    assert_string_equal(last->delta_json, "{\"last_answer\":\"echo: hello there friend\"}");
    assert_string_equal(output_json, "\"echo: hello there friend\"");
    /* no_stream: the same answer, no partial events. */
    n_events = 0;
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "quiet"), 0);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].text, "echo: quiet");
    rt_close();
    return 0;
}

static void test_llm_streams_partial_events_then_a_final_one(void **state) {
    (void)state;
    assert_int_equal(harness_run(streams, NULL, 0), 0);
}

/* ---- concurrent tools ---- */

static int tools_concurrent(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    char *tools[] = {"weather", "slow", "fails"};
    agt_def_t d = llm_def("assistant", tools, 3);
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"slow\"}, {\"name\": \"fails\"},"
                                   " {\"name\": \"weather\", \"args\": {\"city\": \"Paris\"}}]}"),
                     0);
    /* fails ends first, weather next, slow last (cancelled by its 200 ms timeout): they ran
     * at once, or weather would have waited for slow. */
    assert_int_equal(n_order, 3);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    assert_int_equal(count_events("tool_error", false), 2);
    /* events: the calls, three responses in the model's order, the final answer */
    assert_int_equal(n_events, 5);
    assert_non_null(strstr(events[0].parts_json, "\"function_call\""));
    assert_string_equal(events[1].error_code, "tool_error");
    assert_non_null(strstr(events[1].error_message, "tool slow timed out after 200 ms"));
    assert_non_null(strstr(events[1].parts_json, "\"code\":\"timeout\""));
    assert_string_equal(events[2].error_code, "tool_error");
    assert_non_null(strstr(events[2].error_message, "the disk is on fire"));
    assert_non_null(strstr(events[2].parts_json, "\"code\":\"tool_failed\""));
    assert_string_equal(events[3].error_code, "");
    assert_string_equal(events[3].delta_json, "{\"last_weather\":\"sunny\"}");
    assert_string_equal(events[3].role, "tool");
    assert_true(events[4].final);
    /* the model saw every response, errors included */
    assert_non_null(strstr(events[4].text, "done: {\"error\":{\"code\":\"timeout\""));
    assert_non_null(strstr(events[4].text, "| {\"temp\":21}"));
    rt_close();
    return 0;
}

static void test_llm_tools_run_at_once_one_times_out_one_fails(void **state) {
    (void)state;
    assert_int_equal(harness_run(tools_concurrent, NULL, 0), 0);
}

/* ---- transfer_to_agent ---- */

static int transfer(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    char *subs[] = {"billing"};
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.sub_agents = subs;
    d.n_sub = 1;
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"transfer_to_agent\", \"args\": "
                                   "{\"agent_name\": \"billing\"}}]}"),
                     0);
    assert_int_equal(n_events, 2);
    assert_string_equal(events[1].transfer, "billing");
    assert_string_equal(output_json, ""); /* the runner runs billing for the output */
    /* A name that is not a sub-agent: the model is told, and goes on. */
    n_events = 0;
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"transfer_to_agent\", \"args\": "
                                   "{\"agent_name\": \"nobody\"}}]}"),
                     0);
    assert_int_equal(n_events, 3);
    assert_string_equal(events[1].error_code, "tool_error");
    assert_string_equal(events[1].transfer, "");
    assert_true(events[2].final);
    rt_close();
    return 0;
}

static void test_llm_transfer_to_agent_emits_the_action_and_ends_the_turn(void **state) {
    (void)state;
    assert_int_equal(harness_run(transfer, NULL, 0), 0);
}

/* ---- an agent as a tool ---- */

static int agent_tool(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    char *tools[] = {"agent:researcher"};
    agt_def_t d = llm_def("assistant", tools, 1);
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"researcher\", \"args\": "
                                   "{\"request\": \"find cats\"}}]}"),
                     0);
    assert_string_equal(output_json, "\"done: researcher answers \\\"find cats\\\"\"");
    rt_close();
    return 0;
}

static void test_llm_agent_used_as_a_tool(void **state) {
    (void)state;
    assert_int_equal(harness_run(agent_tool, NULL, 0), 0);
}

/* ---- a blocking tool on a thread of its own ---- */

static int blocked_run(void *arg, void **result) {
    (void)result;
    char *tools[] = {"block"};
    agt_def_t d = llm_def("assistant", tools, 1);
    return run_input(&d, (const char *)arg);
}

static int blocking(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    assert_int_equal(pipe(block_pipe), 0);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(blocked_run, "{\"calls\": [{\"name\": \"block\"}]}", NULL, &t), 0);
    for (int i = 0; i < 500 && atomic_load(&blocked) == 0; i++) act_sleep(10);
    assert_int_equal(atomic_load(&blocked), 1);
    /* While the tool is parked on the pipe, another run goes start to end on this loop. */
    agt_def_t d = llm_def("other", NULL, 0);
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "meanwhile"), 0);
    assert_string_equal(output_json, "\"echo: meanwhile\"");
    assert_int_equal(atomic_load(&blocked), 1);
    assert_false(act_task_done(t));
    assert_int_equal(write(block_pipe[1], "x", 1), 1);
    assert_int_equal(act_join(t, NULL, act_deadline_in(10000)), 0);
    act_task_release(&t);
    assert_string_equal(output_json, "\"done: x\"");
    close(block_pipe[0]);
    close(block_pipe[1]);
    rt_close();
    return 0;
}

static void test_llm_blocking_tool_on_its_own_thread_stalls_nothing(void **state) {
    (void)state;
    assert_int_equal(harness_run(blocking, NULL, 0), 0);
}

/* ---- resilience: 429, breaker, deadline ---- */

static int rate_limited(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"%s\", \"model\": \"rate-limited\","
            " \"base_delay_ms\": 10}}");
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "hi"), 0);
    assert_string_equal(output_json, "\"Hello, world! Streaming w\xc3\xb6rks.\"");
    rt_close();
    return 0;
}

static void test_llm_429_then_success(void **state) {
    (void)state;
    assert_int_equal(harness_run(rate_limited, NULL, 0), 0);
}

static int breaker(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"%s\", \"model\": \"always500\","
            " \"max_attempts\": 1, \"breaker_threshold\": 2, \"breaker_reset_ms\": 60000}}");
    agt_def_t d = llm_def("assistant", NULL, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_not_equal(run_input(&d, "hi"), 0);
        assert_string_equal(fail_code, "model_unavailable");
    }
    assert_int_not_equal(run_input(&d, "hi"), 0);
    assert_string_equal(fail_code, "model_circuit_open");
    assert_string_equal(events[n_events - 1].error_code, "model_circuit_open");
    rt_close();
    return 0;
}

static void test_llm_500s_open_the_breaker_then_fail_fast(void **state) {
    (void)state;
    assert_int_equal(harness_run(breaker, NULL, 0), 0);
}

/* Runs agent d on "hi" inside a scope of timeout_ms, as the worker runs a job. */
static int run_within(const agt_def_t *d, int64_t timeout_ms) {
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(timeout_ms), 0);
    int rc = run_input(d, "hi");
    act_scope_leave(&s);
    return rc;
}

/* The job's scope fires during the model call (its timer marks it expired): that is the
 * query's timeout, not the model's, however the host reads the time left afterwards. */
static int deadline(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"%s\", \"model\": \"slow\"}}");
    agt_def_t d = llm_def("assistant", NULL, 0);
    assert_int_equal(run_within(&d, 300), ABP_ETIMEDOUT);
    assert_string_equal(fail_code, ""); /* the job answers timeout itself */
    assert_int_equal(count_events("model_timeout", false), 0);
    rt_close();
    return 0;
}

static void test_llm_slow_model_hits_the_query_deadline(void **state) {
    (void)state;
    assert_int_equal(harness_run(deadline, NULL, 0), 0);
}

/* model_timeout only when the model's own timeout_ms is the nearer bound. */
static int own_timeout(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"%s\", \"model\": \"slow\","
            " \"timeout_ms\": 200}}");
    agt_def_t d = llm_def("assistant", NULL, 0);
    assert_int_equal(run_within(&d, 60000), AGT_EMODEL_TIMEOUT);
    assert_string_equal(fail_code, "model_timeout");
    assert_non_null(strstr(fail_msg, "timeout_ms (200) passed"));
    assert_int_equal(count_events("model_timeout", false), 1);
    rt_close();
    return 0;
}

static void test_llm_model_timeout_only_when_its_own_timeout_is_nearer(void **state) {
    (void)state;
    assert_int_equal(harness_run(own_timeout, NULL, 0), 0);
}

/* A rate wait that cannot end before the nearer deadline fails at once, before it is reached:
 * the query's timeout when that deadline is the query's, the model's when it is the model's.
 * One call a 100 s: the first call takes the only token, the second cannot start. */
static int rate_wait(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"%s\", \"model\": \"agent\", \"rps\": 0.01},"
            " \"short\": {\"base_url\": \"%s\", \"model\": \"agent\", \"rps\": 0.01,"
            " \"timeout_ms\": 300}}");
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.llm.no_stream = true;
    assert_int_equal(run_within(&d, 60000), 0);
    assert_int_equal(run_within(&d, 300), ABP_ETIMEDOUT);
    assert_string_equal(fail_code, "");
    agt_def_t s = d;
    s.llm.model = (char *)"short";
    assert_int_equal(run_within(&s, 60000), 0);
    assert_int_equal(run_within(&s, 60000), AGT_EMODEL_TIMEOUT);
    assert_string_equal(fail_code, "model_timeout");
    rt_close();
    return 0;
}

static void test_llm_rate_wait_past_the_nearer_deadline_names_whose_it_is(void **state) {
    (void)state;
    assert_int_equal(harness_run(rate_wait, NULL, 0), 0);
}

/* ---- callbacks ---- */

static int callbacks(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open("{\"default\": {\"base_url\": \"http://127.0.0.1:1/v1\", \"model\": \"none\","
            " \"max_attempts\": 1}, \"real\": {\"base_url\": \"%s\", \"model\": \"agent\"}}");
    cb_agent = "cached";
    agt_def_t d = llm_def("cached", NULL, 0);
    assert_int_equal(run_input(&d, "hi"), 0); /* the model (unreachable) is never called */
    assert_string_equal(output_json, "\"from the cache\"");
    cb_agent = "badcache"; /* a cached answer that is not one fails as the callback's fault */
    agt_def_t bad = llm_def("badcache", NULL, 0);
    assert_int_not_equal(run_input(&bad, "hi"), 0);
    assert_string_equal(fail_code, "callback_failed");
    assert_non_null(strstr(fail_msg, "before_model callback gave a bad answer"));
    cb_agent = "guarded";
    char *tools[] = {"weather", "get_time"};
    agt_def_t g = llm_def("guarded", tools, 2);
    g.llm.model = "real";
    assert_int_equal(run_input(&g, "{\"calls\": [{\"name\": \"weather\"},"
                                   " {\"name\": \"get_time\"}]}"),
                     0);
    assert_int_equal(n_order, 0); /* weather never ran */
    assert_string_equal(output_json,
                        "\"done: {\\\"temp\\\":-1,\\\"by\\\":\\\"callback\\\"} | time replaced\"");
    rt_close();
    return 0;
}

static void test_llm_callbacks_answer_from_cache_and_replace_tool_results(void **state) {
    (void)state;
    assert_int_equal(harness_run(callbacks, NULL, 0), 0);
}

/* ---- instruction and history ---- */

static void pack_stored(proto_buf_t *b, const char *inv, const char *author, const char *text) {
    msgpack_pack_map(&b->pk, 3);
    proto_pack_cstr(b, "invocation");
    proto_pack_cstr(b, inv);
    proto_pack_cstr(b, "author");
    proto_pack_cstr(b, author);
    proto_pack_cstr(b, "event");
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "author");
    proto_pack_cstr(b, author);
    proto_pack_cstr(b, "content");
    msgpack_pack_map(&b->pk, 1);
    proto_pack_cstr(b, "parts");
    msgpack_pack_array(&b->pk, 1);
    msgpack_pack_map(&b->pk, 1);
    proto_pack_cstr(b, "text");
    proto_pack_cstr(b, text);
}

static int instruction(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    proto_buf_init(&state_buf);
    const char *st = "{\"user:name\": \"Ada\", \"n\": 3}";
    assert_int_equal(proto_json_to_msgpack(st, strlen(st), &state_buf, NULL), 0);
    proto_buf_init(&history_buf);
    msgpack_pack_array(&history_buf.pk, 4);
    pack_stored(&history_buf, "i-old", "user", "first question");
    pack_stored(&history_buf, "i-old", "assistant", "first answer");
    pack_stored(&history_buf, "i-old", "helper", "a note");
    pack_stored(&history_buf, "i-current", "user", "this question");
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.llm.instruction = "Help {user:name} ({n}) {missing?}{not a key}.";
    assert_int_equal(run_input(&d, "{\"text\": \"ok\"}"), 0);
    assert_string_equal(output_json, "\"ok\"");
    /* What the model got: the instruction filled in, the earlier turn, then this input (the
     * current invocation's stored user event is not repeated). */
    char body[4096];
    last_request("agent", body, sizeof body);
    const char *want[] = {"\"content\": \"Help Ada (3) {not a key}.\"",
                          "\"role\": \"user\", \"content\": \"first question\"",
                          "\"role\": \"assistant\", \"content\": \"first answer\"",
                          "\"content\": \"For context: [helper] said: a note\"",
                          "\"role\": \"user\", \"content\": \"{\\\"text\\\": \\\"ok\\\"}\""};
    const char *at = body;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *p = strstr(at, want[i]);
        if (!p) fail_msg("%s not after %.200s in %s", want[i], at, body);
        at = p;
    }
    assert_null(strstr(body, "this question"));
    /* A required key that is not set fails the run, naming the key. */
    d.llm.instruction = "Help {nobody}.";
    assert_int_not_equal(run_input(&d, "hi"), 0);
    assert_string_equal(fail_code, "bad_instruction");
    assert_non_null(strstr(fail_msg, "nobody"));
    rt_close();
    return 0;
}

static void test_llm_instruction_takes_state_and_history_comes_first(void **state) {
    (void)state;
    assert_int_equal(harness_run(instruction, NULL, 0), 0);
}

/* A stored event of author in inv whose one part is {kind: {"id", "name", key: json}}. */
static void pack_stored_part(proto_buf_t *b, const char *inv, const char *author,
                             const char *kind, const char *id, const char *name,
                             const char *key, const char *json) {
    msgpack_pack_map(&b->pk, 3);
    proto_pack_cstr(b, "invocation");
    proto_pack_cstr(b, inv);
    proto_pack_cstr(b, "author");
    proto_pack_cstr(b, author);
    proto_pack_cstr(b, "event");
    msgpack_pack_map(&b->pk, 2);
    proto_pack_cstr(b, "author");
    proto_pack_cstr(b, author);
    proto_pack_cstr(b, "content");
    msgpack_pack_map(&b->pk, 1);
    proto_pack_cstr(b, "parts");
    msgpack_pack_array(&b->pk, 1);
    msgpack_pack_map(&b->pk, 1);
    proto_pack_cstr(b, kind);
    msgpack_pack_map(&b->pk, 3);
    proto_pack_cstr(b, "id");
    proto_pack_cstr(b, id);
    proto_pack_cstr(b, "name");
    proto_pack_cstr(b, name);
    proto_pack_cstr(b, key);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), b, NULL), 0);
}

/* Past function calls reach the model as pairs: the assistant's tool_calls message, then
 * the tool message; a window that cut a pair (a response whose call is older, a call whose
 * response never came) drops the half that is left. */
static int history_pairs(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    proto_buf_init(&history_buf);
    msgpack_pack_array(&history_buf.pk, 8);
    pack_stored_part(&history_buf, "i-0", "assistant", "function_response", "call_x",
                     "get_time", "response", "\"orphan\"");
    pack_stored(&history_buf, "i-1", "user", "weather in Paris?");
    pack_stored_part(&history_buf, "i-1", "assistant", "function_call", "call_0", "weather",
                     "args", "{\"city\": \"Paris\"}");
    pack_stored_part(&history_buf, "i-1", "assistant", "function_response", "call_0",
                     "weather", "response", "{\"temp\": 21}");
    pack_stored(&history_buf, "i-1", "assistant", "It is 21.");
    pack_stored(&history_buf, "i-2", "user", "and the time?");
    pack_stored_part(&history_buf, "i-2", "assistant", "function_call", "call_0", "get_time",
                     "args", "{}");
    pack_stored(&history_buf, "i-current", "user", "this question");
    agt_def_t d = llm_def("assistant", NULL, 0);
    d.llm.no_stream = true;
    assert_int_equal(run_input(&d, "thanks"), 0);
    assert_string_equal(output_json, "\"echo: thanks\"");
    char body[8192];
    last_request("agent", body, sizeof body);
    const char *want[] = {
        "\"role\": \"user\", \"content\": \"weather in Paris?\"",
        "\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_0\", "
        "\"type\": \"function\", \"function\": {\"name\": \"weather\", \"arguments\": "
        "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]",
        "\"role\": \"tool\", \"content\": \"{\\\"temp\\\":21}\", \"tool_call_id\": \"call_0\"",
        "\"role\": \"assistant\", \"content\": \"It is 21.\"",
        "\"role\": \"user\", \"content\": \"and the time?\"",
        "\"role\": \"user\", \"content\": \"thanks\""};
    const char *at = body;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *p = strstr(at, want[i]);
        if (!p) fail_msg("%s not after %.300s in %s", want[i], at, body);
        at = p;
    }
    assert_null(strstr(body, "orphan"));   /* a response without its call */
    assert_null(strstr(body, "get_time")); /* a call without its response */
    rt_close();
    return 0;
}

static void test_llm_history_keeps_function_calls_and_responses_as_pairs(void **state) {
    (void)state;
    assert_int_equal(harness_run(history_pairs, NULL, 0), 0);
}

/* ---- answers cut by the token limit or a filter, and usage ---- */

#define CUT_MODELS(m) "{\"default\": {\"base_url\": \"%s\", \"model\": \"" m "\"}}"

/* The run ends with the cut's code after an error event that keeps the partial text; no
 * output, and a cut tool call is never run. */
static void expect_cut(const char *models, bool stream, const char *code, const char *text) {
    rt_open(models);
    char *tools[] = {"weather"};
    agt_def_t d = llm_def("assistant", tools, 1);
    d.llm.no_stream = !stream;
    assert_int_not_equal(run_input(&d, "go"), 0);
    assert_string_equal(fail_code, code);
    assert_string_equal(output_json, "");
    assert_int_equal(n_order, 0); /* no tool ran */
    rec_event_t *last = &events[n_events - 1];
    assert_string_equal(last->error_code, code);
    assert_true(strncmp(last->text, text, strlen(text)) == 0);
    assert_false(last->final);
    for (size_t i = 0; i < n_events; i++)
        assert_null(strstr(events[i].parts_json, "function_call"));
    assert_int_equal(last->usage[2], 18); /* the cut call's tokens are kept */
    rt_close();
}

static int cut_run(void *arg, void **result) {
    (void)arg, (void)result;
    expect_cut(CUT_MODELS("cut"), true, "model_truncated", "The answer is");
    assert_int_equal(count_events(NULL, true), 3); /* the pieces were streamed */
    expect_cut(CUT_MODELS("cut"), false, "model_truncated", "The answer is");
    expect_cut(CUT_MODELS("cut-filtered"), true, "model_filtered", "The answer is");
    expect_cut(CUT_MODELS("cut-tool"), true, "model_truncated", "");
    assert_non_null(strstr(fail_msg, "tool calls were not run"));
    expect_cut(CUT_MODELS("cut-tool"), false, "model_truncated", "<tool_call>");
    return 0;
}

static void test_llm_cut_answer_fails_with_its_code_and_runs_no_cut_call(void **state) {
    (void)state;
    assert_int_equal(harness_run(cut_run, NULL, 0), 0);
}

/* Every model call's usage is on its event and told to the host; the final event also
 * carries the invocation's sum. */
static int usage_run(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    host_prompt = host_completion = 0;
    char *tools[] = {"get_time"};
    agt_def_t d = llm_def("assistant", tools, 1);
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"get_time\"}]}"), 0);
    size_t with_usage = 0;
    for (size_t i = 0; i < n_events; i++) {
        if (events[i].usage[0] == -2) continue;
        with_usage++;
        assert_int_equal(events[i].usage[0], 11);
        assert_int_equal(events[i].usage[1], 7);
        assert_int_equal(events[i].usage[2], 18);
        assert_false(events[i].partial);
    }
    assert_int_equal(with_usage, 2); /* the function_call event and the final one */
    rec_event_t *last = &events[n_events - 1];
    assert_true(last->final && last->with_sum && last->usage[2] == 18);
    assert_int_equal(host_prompt, 22);
    assert_int_equal(host_completion, 14);
    rt_close();
    return 0;
}

static void test_llm_usage_of_every_call_is_on_its_event_and_told_to_the_host(void **state) {
    (void)state;
    assert_int_equal(harness_run(usage_run, NULL, 0), 0);
}

/* ---- config errors name the path ---- */

static void expect_config_error(int (*fn)(agt_rt_t *, const proto_val_t *, char *, size_t),
                                const char *json, const char *want) {
    proto_buf_t b;
    proto_buf_init(&b);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &b, NULL), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b.p, b.n, &v), 0);
    char err[256] = "";
    assert_int_equal(fn(&rt, &v, err, sizeof err), ACT_EINVAL);
    assert_string_equal(err, want);
    proto_buf_free(&b);
}

static void test_llm_config_errors_name_the_path(void **state) {
    (void)state;
    memset(&rt, 0, sizeof rt);
    assert_int_equal(agt_tools_new(&rt.tools), 0);
    assert_int_equal(agt_models_new(&rt.models), 0);
    assert_int_equal(agt_toolsets_new(&rt.mcp), 0);
    expect_config_error(agt_models_config, "{\"m\": {\"rps\": -1}}",
                        "models.m.rps must be a non-negative number");
    expect_config_error(agt_models_config, "{\"m2\": {\"colour\": 1}}",
                        "models.m2.colour is not a known key");
    expect_config_error(agt_models_config, "{\"m3\": {\"fallback\": \"nope\"}}",
                        "models.m3.fallback names no other model of \"models\"");
    expect_config_error(agt_tools_config, "{\"t\": {\"timeout_ms\": 0}}",
                        "tools.t.timeout_ms must be a positive integer");
    expect_config_error(agt_tools_config,
                        "{\"t2\": {\"timeout_ms\": 5}, \"t2\": {\"timeout_ms\": 6}}",
                        "tools.t2 is given twice");
    expect_config_error(agt_toolsets_config, "{\"s\": {\"command\": []}}",
                        "mcp.s.command must be a non-empty array of strings");
    expect_config_error(agt_toolsets_config, "{\"s2\": {\"timeout_ms\": 5}}",
                        "mcp.s2.command is required");
    agt_toolsets_destroy(&rt.mcp);
    agt_models_destroy(&rt.models);
    agt_tools_destroy(&rt.tools);
}

/* ---- an MCP toolset: the real server-everything ---- */

#define EVERYTHING \
    MCP_NPM_DIR "/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

static int mcp_run(void *arg, void **result) {
    (void)arg, (void)result;
    rt_open(MODELS);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"everything\": {\"command\": [\"node\", \"%s\", \"stdio\"],"
             " \"timeout_ms\": 20000}}",
             EVERYTHING);
    proto_buf_t b;
    proto_buf_init(&b);
    assert_int_equal(proto_json_to_msgpack(json, strlen(json), &b, NULL), 0);
    proto_val_t v;
    assert_int_equal(proto_val_read(b.p, b.n, &v), 0);
    char err[256] = "";
    assert_int_equal(agt_toolsets_config(&rt, &v, err, sizeof err), 0);
    proto_buf_free(&b);
    assert_int_equal(agt_toolsets_start(&rt), 0);
    char *tools[] = {"mcp:everything"};
    agt_def_t d = llm_def("assistant", tools, 1);
    assert_int_equal(run_input(&d, "{\"calls\": [{\"name\": \"echo\", \"args\": "
                                   "{\"message\": \"hi from an agent\"}}]}"),
                     0);
    assert_string_equal(output_json, "\"done: Echo: hi from an agent\"");
    rt_close();
    return 0;
}

static void test_llm_mcp_toolset_of_server_everything(void **state) {
    (void)state;
    if (access(EVERYTHING, R_OK) != 0 || system("command -v node >/dev/null") != 0) {
        printf("SKIP: %s not installed (test_mcp installs it with npm ci)\n", EVERYTHING);
        skip();
    }
    assert_int_equal(harness_run(mcp_run, NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_streams_partial_events_then_a_final_one),
        cmocka_unit_test(test_llm_tools_run_at_once_one_times_out_one_fails),
        cmocka_unit_test(test_llm_transfer_to_agent_emits_the_action_and_ends_the_turn),
        cmocka_unit_test(test_llm_agent_used_as_a_tool),
        cmocka_unit_test(test_llm_blocking_tool_on_its_own_thread_stalls_nothing),
        cmocka_unit_test(test_llm_429_then_success),
        cmocka_unit_test(test_llm_500s_open_the_breaker_then_fail_fast),
        cmocka_unit_test(test_llm_slow_model_hits_the_query_deadline),
        cmocka_unit_test(test_llm_model_timeout_only_when_its_own_timeout_is_nearer),
        cmocka_unit_test(test_llm_rate_wait_past_the_nearer_deadline_names_whose_it_is),
        cmocka_unit_test(test_llm_callbacks_answer_from_cache_and_replace_tool_results),
        cmocka_unit_test(test_llm_instruction_takes_state_and_history_comes_first),
        cmocka_unit_test(test_llm_history_keeps_function_calls_and_responses_as_pairs),
        cmocka_unit_test(test_llm_cut_answer_fails_with_its_code_and_runs_no_cut_call),
        cmocka_unit_test(test_llm_usage_of_every_call_is_on_its_event_and_told_to_the_host),
        cmocka_unit_test(test_llm_config_errors_name_the_path),
        cmocka_unit_test(test_llm_mcp_toolset_of_server_everything),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
