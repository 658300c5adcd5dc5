/* test_zsock.c: ZeroMQ sockets on the loop: whole multipart messages both ways, deadlines,
 * cancellation without losing a message, FIFO order among tasks waiting on one socket, a
 * sender parked on a full high-water mark, oversized messages, destroy, and TCP on loopback.
 * inproc pairs signal synchronously, so those tests run on the virtual clock. */
#include <stdlib.h>
#include <string.h>

#include "actor/zsock.h"
#include "harness.h"

/* ---- a connected pair of sockets, both on the loop ---- */

typedef struct pair {
    void *ctx;        /* zmq context */
    void *a, *b;      /* a sends, b receives (either may do both for PAIR) */
    act_zsock_t *za;  /* a on the loop */
    act_zsock_t *zb;  /* b on the loop */
} pair;

static int pair_counter;

static void set_int(void *s, int opt, int v) {
    assert_int_equal(zmq_setsockopt(s, opt, &v, sizeof v), 0);
}

/* Opens inproc sockets of the given types; hwm > 0 sets both high-water marks. */
static void pair_open(pair *p, int type_a, int type_b, int hwm) {
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://zsock-%d", pair_counter++);
    p->ctx = zmq_ctx_new();
    assert_non_null(p->ctx);
    p->a = zmq_socket(p->ctx, type_a);
    p->b = zmq_socket(p->ctx, type_b);
    set_int(p->a, ZMQ_LINGER, 0);
    set_int(p->b, ZMQ_LINGER, 0);
    if (hwm > 0) {
        set_int(p->a, ZMQ_SNDHWM, hwm);
        set_int(p->b, ZMQ_RCVHWM, hwm);
    }
    assert_int_equal(zmq_bind(p->b, ep), 0);
    assert_int_equal(zmq_connect(p->a, ep), 0);
    assert_int_equal(act_zsock_new(&p->za, p->a), 0);
    assert_int_equal(act_zsock_new(&p->zb, p->b), 0);
}

static void pair_close(pair *p) {
    act_zsock_destroy(&p->za);
    act_zsock_destroy(&p->zb);
    assert_null(p->za);
    act_zsock_destroy(&p->za); /* repeatable */
    zmq_close(p->a);
    zmq_close(p->b);
    zmq_ctx_term(p->ctx);
}

static int send_str(act_zsock_t *z, const char *s, int64_t deadline) {
    act_zframe_t f = {s, strlen(s)};
    return act_zsock_send_frames(z, &f, 1, deadline);
}

/* Receives a one-part message into buf (NUL-terminated). Returns the call's code. */
static int recv_str(act_zsock_t *z, char *buf, size_t cap, int64_t deadline) {
    zmq_msg_t m[1];
    size_t n = 0;
    int rc = act_zsock_recv(z, m, 1, &n, deadline);
    if (rc) return rc;
    assert_int_equal(n, 1);
    size_t len = zmq_msg_size(&m[0]);
    assert_true(len < cap);
    memcpy(buf, zmq_msg_data(&m[0]), len);
    buf[len] = 0;
    act_zsock_close_parts(m, n);
    return 0;
}

static void settle(void) {
    for (int i = 0; i < 4; i++) act_yield();
}

#define RUN_TEST(name, body, flags)                                                        \
    static void name(void **state) {                                                       \
        (void)state;                                                                       \
        assert_int_equal(harness_run(body, NULL, flags), 0);                               \
    }

/* ---- round trip ---- */

static int round_trip(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_zframe_t out[3] = {{"id", 2}, {"", 0}, {"body", 4}};
    assert_int_equal(act_zsock_send_frames(p.za, out, 3, -1), 0);
    zmq_msg_t in[4];
    size_t n = 0;
    assert_int_equal(act_zsock_recv(p.zb, in, 4, &n, -1), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(zmq_msg_size(&in[i]), out[i].n);
        assert_memory_equal(zmq_msg_data(&in[i]), out[i].p, out[i].n);
    }
    act_zsock_close_parts(in, n);
    /* And back the other way, with zmq_msg_t parts. */
    zmq_msg_t back[1];
    zmq_msg_init_size(&back[0], 3);
    memcpy(zmq_msg_data(&back[0]), "ack", 3);
    assert_int_equal(act_zsock_send(p.zb, back, 1, -1), 0);
    act_zsock_close_parts(back, 1);
    char buf[16];
    assert_int_equal(recv_str(p.za, buf, sizeof buf, -1), 0);
    assert_string_equal(buf, "ack");
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_round_trip_keeps_every_part, round_trip, VCLOCK)

/* A receiver parks first; the message that arrives later wakes it. */
static int late_receiver(void *arg, void **result) {
    (void)result;
    pair *p = arg;
    char buf[16];
    int rc = recv_str(p->zb, buf, sizeof buf, -1);
    if (rc == 0) assert_string_equal(buf, "late");
    return rc;
}

static int recv_waits_for_message(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(late_receiver, &p, NULL, &t), 0);
    assert_int_equal(act_sleep(100), 0);
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(send_str(p.za, "late", -1), 0);
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_recv_parks_until_a_message_arrives, recv_waits_for_message, VCLOCK)

/* ---- deadlines ---- */

static int deadlines(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    char buf[16];
    int64_t t0 = act_now();
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, act_deadline_in(250)), ACT_ETIMEDOUT);
    assert_int_equal(act_now() - t0, 250);
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, 0), ACT_ETIMEDOUT); /* poll */
    /* A scope's deadline bounds the call too. */
    act_scope_t s;
    act_scope_enter(&s, act_deadline_in(40), 0);
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, -1), ACT_ETIMEDOUT);
    assert_int_equal(act_scope_leave(&s), ACT_ETIMEDOUT);
    /* A message that is there is taken even by a poll. */
    assert_int_equal(send_str(p.za, "ready", -1), 0);
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, 0), 0);
    assert_string_equal(buf, "ready");
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_deadline_gives_etimedout, deadlines, VCLOCK)

/* ---- cancellation ---- */

static int blocked_receiver(void *arg, void **result) {
    (void)result;
    pair *p = arg;
    char buf[16];
    return recv_str(p->zb, buf, sizeof buf, -1);
}

static int cancel_recv(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(blocked_receiver, &p, NULL, &t), 0);
    settle();
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_task_cancel(t), 0);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    /* The cancelled receiver took nothing: the next message reaches the next receiver. */
    assert_int_equal(send_str(p.za, "kept", -1), 0);
    char buf[16];
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, act_deadline_in(10)), 0);
    assert_string_equal(buf, "kept");
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_cancelled_receiver_loses_no_message, cancel_recv, VCLOCK)

/* ---- FIFO among waiters ---- */

typedef struct rx {
    pair *p;
    char got[16];
    int rc;
} rx;

static int fifo_receiver(void *arg, void **result) {
    (void)result;
    rx *r = arg;
    r->rc = recv_str(r->p->zb, r->got, sizeof r->got, -1);
    return r->rc;
}

static int fifo_receivers(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 0);
    rx r[4];
    act_task_t *t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (rx){.p = &p, .rc = 1};
        assert_int_equal(act_spawn(fifo_receiver, &r[i], NULL, &t[i]), 0);
        settle(); /* arrival order = spawn order */
    }
    act_task_cancel(t[1]); /* a cancelled waiter in the middle leaves no hole */
    const char *msgs[] = {"m0", "m1", "m2"};
    for (int i = 0; i < 3; i++) assert_int_equal(send_str(p.za, msgs[i], -1), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), i == 1 ? ACT_ECANCELED : 0);
        act_task_release(&t[i]);
    }
    assert_string_equal(r[0].got, "m0");
    assert_int_equal(r[1].rc, ACT_ECANCELED); /* it took no message */
    assert_string_equal(r[2].got, "m1");
    assert_string_equal(r[3].got, "m2");
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_waiting_receivers_are_served_fifo, fifo_receivers, VCLOCK)

/* ---- many messages ---- */

#define MANY 20000

static int many_sender(void *arg, void **result) {
    (void)result;
    pair *p = arg;
    for (uint32_t i = 0; i < MANY; i++) {
        act_zframe_t f = {&i, sizeof i};
        int rc = act_zsock_send_frames(p->za, &f, 1, -1);
        if (rc) return rc;
    }
    return 0;
}

static int many_messages(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 100);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(many_sender, &p, NULL, &t), 0);
    for (uint32_t i = 0; i < MANY; i++) {
        zmq_msg_t m[1];
        size_t n = 0;
        assert_int_equal(act_zsock_recv(p.zb, m, 1, &n, -1), 0);
        uint32_t v;
        assert_int_equal(zmq_msg_size(&m[0]), sizeof v);
        memcpy(&v, zmq_msg_data(&m[0]), sizeof v);
        assert_int_equal(v, i);
        act_zsock_close_parts(m, n);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_many_messages_arrive_in_order, many_messages, VCLOCK)

/* ---- a sender blocked by the high-water mark ---- */

typedef struct tx {
    pair *p;
    int sent; /* messages accepted so far */
    int total;
    int rc;
} tx;

static int hwm_sender(void *arg, void **result) {
    (void)result;
    tx *s = arg;
    for (; s->sent < s->total; s->sent++) {
        char b[16];
        snprintf(b, sizeof b, "%d", s->sent);
        if ((s->rc = send_str(s->p->za, b, -1)) != 0) return s->rc;
    }
    return 0;
}

static int hwm_blocks_sender(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 2);
    tx s = {.p = &p, .total = 50};
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(hwm_sender, &s, NULL, &t), 0);
    assert_int_equal(act_sleep(1000), 0); /* nothing but a full pipe holds it */
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    int stuck_at = s.sent;
    assert_true(stuck_at > 0 && stuck_at < s.total);
    /* A poll on the full socket times out at once. */
    assert_int_equal(send_str(p.za, "x", 0), ACT_ETIMEDOUT);
    for (int i = 0; i < s.total; i++) {
        char buf[16], want[16];
        assert_int_equal(recv_str(p.zb, buf, sizeof buf, -1), 0);
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(buf, want);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    assert_int_equal(s.sent, s.total);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_sender_parks_while_hwm_is_full, hwm_blocks_sender, VCLOCK)

/* act_zsock_try_send_frame: sends while the pipe takes it, says ACT_EAGAIN when it is full
 * and while a parked sender is ahead (order kept), and never loses a message. */
static int try_send_fills_then_refuses(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 2);
    int sent = 0, rc = 0;
    char b[16];
    for (; sent < 100; sent++) {
        snprintf(b, sizeof b, "%d", sent);
        if ((rc = act_zsock_try_send_frame(p.za, b, strlen(b))) != 0) break;
    }
    assert_int_equal(rc, ACT_EAGAIN);
    assert_true(sent > 0 && sent < 100);
    /* A sender parked on the full pipe goes first: try_send refuses while it waits. */
    tx s = {.p = &p, .sent = sent, .total = sent + 1};
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(hwm_sender, &s, NULL, &t), 0);
    assert_int_equal(act_sleep(10), 0);
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    assert_int_equal(act_zsock_try_send_frame(p.za, "late", 4), ACT_EAGAIN);
    for (int i = 0; i <= sent; i++) { /* every message once, in order, "late" never */
        char want[16];
        assert_int_equal(recv_str(p.zb, b, sizeof b, -1), 0);
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(b, want);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    assert_int_equal(act_zsock_try_send_frame(NULL, "x", 1), ACT_EINVAL);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_try_send_fills_then_refuses, try_send_fills_then_refuses, VCLOCK)

/* A reader parked on a PAIR while its own side sends with try_send (the worker's shape: the
 * connection task waits to read while jobs answer) still wakes for the reply. */
static int try_send_echo(void *arg, void **result) {
    (void)result;
    pair *p = arg;
    char b[16];
    for (int i = 0; i < 20; i++) {
        if (recv_str(p->zb, b, sizeof b, -1) != 0) return -1;
        if (act_zsock_try_send_frame(p->zb, b, strlen(b)) != 0) return -1;
    }
    return 0;
}

static int try_send_keeps_reader_awake(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(try_send_echo, &p, NULL, &t), 0);
    for (int i = 0; i < 20; i++) {
        char b[16], want[16];
        snprintf(want, sizeof want, "m%d", i);
        assert_int_equal(act_zsock_try_send_frame(p.za, want, strlen(want)), 0);
        assert_int_equal(recv_str(p.za, b, sizeof b, act_deadline_in(5000)), 0);
        assert_string_equal(b, want);
    }
    assert_int_equal(act_join(t, NULL, -1), 0);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_try_send_keeps_reader_awake, try_send_keeps_reader_awake, 0)

static int cancel_blocked_sender(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 1);
    tx s = {.p = &p, .total = 1000};
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(hwm_sender, &s, NULL, &t), 0);
    settle();
    assert_int_equal(act_task_state(t), ACT_TASK_WAITING);
    act_task_cancel(t);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECANCELED);
    act_task_release(&t);
    /* Exactly the messages it was told were sent arrive, then nothing. */
    for (int i = 0; i < s.sent; i++) {
        char buf[16];
        assert_int_equal(recv_str(p.zb, buf, sizeof buf, act_deadline_in(10)), 0);
        assert_int_equal(atoi(buf), i);
    }
    char buf[16];
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, act_deadline_in(10)), ACT_ETIMEDOUT);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_cancelled_sender_sends_nothing_more, cancel_blocked_sender, VCLOCK)

/* Senders parked on a full pipe go in the order they arrived. */
typedef struct one_tx {
    pair *p;
    const char *msg;
    int rc;
} one_tx;

static int send_one(void *arg, void **result) {
    (void)result;
    one_tx *t = arg;
    return t->rc = send_str(t->p->za, t->msg, -1);
}

static int fifo_senders(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 1);
    int filled = 0;
    char b[16];
    for (;;) { /* fill the pipe with polls until it refuses */
        snprintf(b, sizeof b, "f%d", filled);
        if (send_str(p.za, b, 0) != 0) break;
        filled++;
    }
    one_tx tx[3] = {{&p, "s0", 1}, {&p, "s1", 1}, {&p, "s2", 1}};
    act_task_t *t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(act_spawn(send_one, &tx[i], NULL, &t[i]), 0);
        settle();
        assert_int_equal(act_task_state(t[i]), ACT_TASK_WAITING);
    }
    for (int i = 0; i < filled + 3; i++) {
        char got[16], want[16];
        assert_int_equal(recv_str(p.zb, got, sizeof got, act_deadline_in(100)), 0);
        if (i < filled) snprintf(want, sizeof want, "f%d", i);
        else snprintf(want, sizeof want, "s%d", i - filled);
        assert_string_equal(got, want);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(act_join(t[i], NULL, -1), 0);
        act_task_release(&t[i]);
    }
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_parked_senders_are_served_fifo, fifo_senders, VCLOCK)

/* One socket, a task parked in recv and another parked in send: each is woken for its own
 * direction. */
static int both_directions(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 1);
    int filled = 0;
    while (send_str(p.za, "fill", 0) == 0) filled++;
    one_tx tx = {&p, "last", 1};
    act_task_t *sender = NULL, *receiver = NULL;
    rx r = {.p = &p, .rc = 1};
    /* the receiver reads from za's side: swap roles for it */
    pair back = p;
    back.zb = p.za;
    r.p = &back;
    assert_int_equal(act_spawn(send_one, &tx, NULL, &sender), 0);
    assert_int_equal(act_spawn(fifo_receiver, &r, NULL, &receiver), 0);
    settle();
    assert_int_equal(act_task_state(sender), ACT_TASK_WAITING);
    assert_int_equal(act_task_state(receiver), ACT_TASK_WAITING);
    assert_int_equal(send_str(p.zb, "reply", -1), 0); /* wakes the receiver */
    assert_int_equal(act_join(receiver, NULL, act_deadline_in(100)), 0);
    assert_string_equal(r.got, "reply");
    assert_int_equal(act_task_state(sender), ACT_TASK_WAITING);
    char got[16];
    for (int i = 0; i < filled + 1; i++) { /* room: wakes the sender */
        assert_int_equal(recv_str(p.zb, got, sizeof got, act_deadline_in(100)), 0);
    }
    assert_string_equal(got, "last");
    assert_int_equal(act_join(sender, NULL, -1), 0);
    act_task_release(&sender);
    act_task_release(&receiver);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_recv_and_send_wait_on_one_socket, both_directions, VCLOCK)

/* A task that finds message after message ready never parks; the per-pass cap makes it
 * yield now and then so other tasks still run. */
static int ticker(void *arg, void **result) {
    (void)result;
    int *ticks = arg;
    for (;;) {
        if (act_yield() != 0) return 0;
        (*ticks)++;
    }
}

static int busy_socket(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PUSH, ZMQ_PULL, 10000);
    for (int i = 0; i < 1000; i++) assert_int_equal(send_str(p.za, "m", -1), 0);
    int ticks = 0;
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(ticker, &ticks, NULL, &t), 0);
    act_yield();
    int before = ticks;
    char got[8];
    for (int i = 0; i < 1000; i++) assert_int_equal(recv_str(p.zb, got, sizeof got, -1), 0);
    assert_true(ticks - before >= 1000 / 64 - 1);
    act_task_cancel(t);
    act_join(t, NULL, -1);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_busy_socket_lets_other_tasks_run, busy_socket, VCLOCK)

/* ---- oversized messages, destroy ---- */

static int too_many_parts(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_zframe_t big[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    assert_int_equal(act_zsock_send_frames(p.za, big, 3, -1), 0);
    assert_int_equal(send_str(p.za, "next", -1), 0);
    zmq_msg_t m[2];
    size_t n = 7;
    assert_int_equal(act_zsock_recv(p.zb, m, 2, &n, -1), ACT_EMSGSIZE);
    assert_int_equal(n, 0);
    char buf[16];
    assert_int_equal(recv_str(p.zb, buf, sizeof buf, -1), 0); /* the next one starts clean */
    assert_string_equal(buf, "next");
    assert_int_equal(act_zsock_recv(p.zb, m, 0, &n, -1), ACT_EINVAL);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_more_parts_than_room_gives_emsgsize, too_many_parts, VCLOCK)

static int destroy_wakes(void *arg, void **result) {
    (void)arg;
    (void)result;
    pair p;
    pair_open(&p, ZMQ_PAIR, ZMQ_PAIR, 0);
    act_task_t *t = NULL;
    assert_int_equal(act_spawn(blocked_receiver, &p, NULL, &t), 0);
    settle();
    act_zsock_destroy(&p.zb);
    assert_int_equal(act_join(t, NULL, -1), ACT_ECLOSED);
    act_task_release(&t);
    pair_close(&p);
    return 0;
}

RUN_TEST(test_zsock_destroy_wakes_waiters_with_eclosed, destroy_wakes, VCLOCK)

static void test_zsock_new_outside_loop_is_refused(void **state) {
    (void)state;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PAIR);
    act_zsock_t *z = NULL;
    assert_int_equal(act_zsock_new(&z, s), ACT_EINVAL);
    assert_null(z);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* ---- TCP on loopback, real clock ---- */

static int tcp_router(void *arg, void **result) {
    (void)arg;
    (void)result;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    set_int(router, ZMQ_LINGER, 0);
    set_int(dealer, ZMQ_LINGER, 0);
    set_int(router, ZMQ_ROUTER_MANDATORY, 1);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    assert_int_equal(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    act_zsock_t *zr = NULL, *zd = NULL;
    assert_int_equal(act_zsock_new(&zr, router), 0);
    assert_int_equal(act_zsock_new(&zd, dealer), 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(send_str(zd, "ping", act_deadline_in(5000)), 0);
        zmq_msg_t m[2];
        size_t n = 0;
        assert_int_equal(act_zsock_recv(zr, m, 2, &n, act_deadline_in(5000)), 0);
        assert_int_equal(n, 2); /* [identity][body] */
        assert_int_equal(zmq_msg_size(&m[1]), 4);
        zmq_msg_close(&m[1]);
        zmq_msg_init_size(&m[1], 4); /* reply to the same identity */
        memcpy(zmq_msg_data(&m[1]), "pong", 4);
        assert_int_equal(act_zsock_send(zr, m, 2, act_deadline_in(5000)), 0);
        act_zsock_close_parts(m, 2);
        char buf[16];
        assert_int_equal(recv_str(zd, buf, sizeof buf, act_deadline_in(5000)), 0);
        assert_string_equal(buf, "pong");
    }
    /* ROUTER_MANDATORY: an unknown identity is reported, not dropped silently. */
    act_zframe_t lost[2] = {{"nobody", 6}, {"x", 1}};
    assert_int_equal(act_zsock_send_frames(zr, lost, 2, -1), ACT_EHOSTUNREACH);
    act_zsock_destroy(&zr);
    act_zsock_destroy(&zd);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    return 0;
}

RUN_TEST(test_zsock_tcp_router_dealer_round_trips, tcp_router, 0)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zsock_round_trip_keeps_every_part),
        cmocka_unit_test(test_zsock_recv_parks_until_a_message_arrives),
        cmocka_unit_test(test_zsock_deadline_gives_etimedout),
        cmocka_unit_test(test_zsock_cancelled_receiver_loses_no_message),
        cmocka_unit_test(test_zsock_waiting_receivers_are_served_fifo),
        cmocka_unit_test(test_zsock_many_messages_arrive_in_order),
        cmocka_unit_test(test_zsock_sender_parks_while_hwm_is_full),
        cmocka_unit_test(test_zsock_try_send_fills_then_refuses),
        cmocka_unit_test(test_zsock_try_send_keeps_reader_awake),
        cmocka_unit_test(test_zsock_cancelled_sender_sends_nothing_more),
        cmocka_unit_test(test_zsock_parked_senders_are_served_fifo),
        cmocka_unit_test(test_zsock_recv_and_send_wait_on_one_socket),
        cmocka_unit_test(test_zsock_busy_socket_lets_other_tasks_run),
        cmocka_unit_test(test_zsock_more_parts_than_room_gives_emsgsize),
        cmocka_unit_test(test_zsock_destroy_wakes_waiters_with_eclosed),
        cmocka_unit_test(test_zsock_new_outside_loop_is_refused),
        cmocka_unit_test(test_zsock_tcp_router_dealer_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
