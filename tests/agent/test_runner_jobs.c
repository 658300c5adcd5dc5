/* test_runner_jobs.c: the runner's job blocks (worker/agent/runner/runner.c agt_job_begin /
 * agt_job_end): ended blocks are kept for the next jobs up to their bound, a block with
 * longer strings than the kept room is freed, and a reused block starts clean: the new
 * work's branch and invocation, the empty state when none came (and a delta applies to it),
 * an invocation id made on first use. The runtime reaches the job through a fake host. */
#include <stdlib.h>
#include <string.h>

#include "base/asan.h"
#include "harness.h"
#include "runner.h"

/* Sanitizer builds keep no block (runner.c): a use after a job's end is still caught. */
#ifdef BASE_ASAN
#define KEPT_MAX 0
#else
#define KEPT_MAX 64
#endif

struct abp_ctx {
    struct agt_job *jb;
};

static struct agt_job *fake_job(abp_ctx_t *ctx) { return ctx->jb; }
static int64_t fake_unix_ms(void) { return 1; }
static const abp_api_t fake_api = {.unix_ms = fake_unix_ms};
static const agt_host_t fake_host = {.api = &fake_api, .job = fake_job};

static agt_rt_t *rt;

static int setup(void **state) {
    (void)state;
    return agt_rt_new(&fake_host, &rt);
}

static int teardown(void **state) {
    (void)state;
    agt_rt_destroy(&rt); /* frees the kept blocks too */
    return agt__job_spares() == 0 ? 0 : -1;
}

static proto_msg_t work(const char *inv, const char *branch) {
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    if (inv) m.invocation = (proto_str_t){inv, strlen(inv)};
    if (branch) m.branch = (proto_str_t){branch, strlen(branch)};
    return m;
}

static void test_ended_jobs_are_kept_up_to_the_bound(void **state) {
    (void)state;
    agt__job_spares_free();
    enum { N = 70 };
    struct agt_job *jb[N];
    for (int i = 0; i < N; i++) {
        proto_msg_t m = work(NULL, NULL);
        assert_int_equal(agt_job_begin(&m, &jb[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        agt_job_end(&jb[i]);
        assert_null(jb[i]);
    }
    assert_int_equal(agt__job_spares(), KEPT_MAX);
    agt__job_spares_free();
    assert_int_equal(agt__job_spares(), 0);
}

static void test_a_job_with_long_strings_is_not_kept(void **state) {
    (void)state;
    agt__job_spares_free();
    char branch[200];
    memset(branch, 'b', sizeof branch - 1);
    branch[sizeof branch - 1] = 0;
    proto_msg_t m = work("inv-long", branch);
    struct agt_job *jb;
    assert_int_equal(agt_job_begin(&m, &jb), 0);
    assert_string_equal(jb->branch, branch);
    assert_string_equal(jb->invocation, "inv-long");
    agt_job_end(&jb);
    assert_int_equal(agt__job_spares(), 0); /* freed, not kept */
}

static void test_a_reused_block_starts_clean(void **state) {
    (void)state;
    if (KEPT_MAX == 0) skip(); /* nothing is reused in this build */
    agt__job_spares_free();
    /* The first job: an invocation, a branch and a state {"k": 1}, changed by a delta. */
    static const uint8_t st[] = {0x81, 0xa1, 'k', 0x01};
    static const uint8_t delta[] = {0x81, 0xa1, 'x', 0x02};
    proto_msg_t m = work("inv-A", "a.b");
    m.state = (proto_raw_t){st, sizeof st};
    struct agt_job *a;
    assert_int_equal(agt_job_begin(&m, &a), 0);
    abp_ctx_t ctx = {a};
    assert_int_equal(agt__state_apply(a, (proto_raw_t){delta, sizeof delta}), 0);
    assert_string_equal(agt_invocation_id(&ctx), "inv-A");
    assert_string_equal(agt_branch(&ctx), "a.b");
    struct agt_job *was = a;
    agt_job_end(&a);
    assert_int_equal(agt__job_spares(), 1);
    /* The next job gets the same block with nothing of the first. */
    proto_msg_t m2 = work(NULL, NULL);
    struct agt_job *b;
    assert_int_equal(agt_job_begin(&m2, &b), 0);
    assert_ptr_equal(b, was);
    ctx.jb = b;
    assert_int_equal(b->cur, 0);
    assert_null(b->top);
    assert_null(b->keep);
    assert_int_equal(b->depth, 0);
    proto_raw_t s = agt_state(&ctx);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.p[0], 0x80); /* the empty map */
    assert_string_equal(agt_branch(&ctx), "");
    const char *id = agt_invocation_id(&ctx); /* made now */
    assert_int_equal(strlen(id), 18);
    assert_int_equal(id[0], 'i');
    assert_string_equal(agt_invocation_id(&ctx), id); /* and kept */
    /* A delta applies to the empty state that was never packed. */
    assert_int_equal(agt__state_apply(b, (proto_raw_t){delta, sizeof delta}), 0);
    s = agt_state(&ctx);
    assert_int_equal(s.n, sizeof delta);
    assert_memory_equal(s.p, delta, sizeof delta);
    agt_job_end(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ended_jobs_are_kept_up_to_the_bound),
        cmocka_unit_test(test_a_job_with_long_strings_is_not_kept),
        cmocka_unit_test(test_a_reused_block_starts_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
