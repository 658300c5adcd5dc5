/* observe.c: actorctl status, top and tasks (observe.h). Each frame of `top` is one status
 * request drawn from the top of the terminal with plain ANSI (home, clear to end): no curses.
 * Rates come from the difference of the `answered` and `errors` counters of two replies. */
#include "base/clock.h"
#include "fields.h"
#include "observe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

/* ---- one request, one reply ---- */

typedef struct reply {
    zmq_msg_t frame;
    proto_msg_t m;
    msgpack_unpacked u;   /* the whole body, for reading fields */
} reply_t;

static void reply_free(reply_t *r) {
    msgpack_unpacked_destroy(&r->u);
    zmq_msg_close(&r->frame);
}

/* Sends msg on s and waits for its reply (events skipped). Returns 0 with *r filled (free it
 * with reply_free), 1 on an error reply (printed), no answer or a bad reply. */
static int exchange(const ctl_obs_t *o, void *s, const proto_buf_t *msg, reply_t *r) {
    if (msg->failed || zmq_send(s, msg->p, msg->n, 0) < 0) {
        fprintf(stderr, "actorctl: could not send the request: %s\n", zmq_strerror(errno));
        return 1;
    }
    int64_t deadline = base_mono_ms() + (o->timeout_ms < 0 ? 30000 : o->timeout_ms);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    for (;;) {
        long wait = (long)(deadline - base_mono_ms());
        if (wait < 0 || zmq_poll(&it, 1, wait) <= 0 || *o->interrupted) {
            if (!*o->interrupted)
                fprintf(stderr, "actorctl: no reply from the broker at %s within %lld ms\n",
                        o->broker, (long long)(o->timeout_ms < 0 ? 30000 : o->timeout_ms));
            if (!*o->interrupted && o->no_answer) o->no_answer(o->open_ctx);
            return 1;
        }
        zmq_msg_init(&r->frame);
        if (zmq_msg_recv(&r->frame, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&r->frame);
            continue;
        }
        proto_error_t err;
        if (proto_decode(zmq_msg_data(&r->frame), zmq_msg_size(&r->frame), &o->lim, &r->m,
                         &err) != 0) {
            fprintf(stderr, "actorctl: the broker sent a bad reply (%s: %s)\n", err.code,
                    err.message);
            zmq_msg_close(&r->frame);
            return 1;
        }
        if (r->m.type == PROTO_EVENT) {
            zmq_msg_close(&r->frame);
            continue;
        }
        msgpack_unpacked_init(&r->u);
        msgpack_unpack_next(&r->u, (const char *)r->m.body.p, r->m.body.n, NULL);
        if (r->m.type != PROTO_ERROR) return 0;
        fprintf(stderr, "actorctl: error %.*s: %.*s\n", (int)r->m.code.n, r->m.code.p,
                (int)r->m.message.n, r->m.message.p);
        reply_free(r);
        return 1;
    }
}

static void print_body_json(proto_raw_t body) {
    proto_buf_t j;
    proto_buf_init(&j);
    if (proto_raw_to_json(body, &j) == 0 && !j.failed) printf("%.*s\n", (int)j.n, j.p);
    proto_buf_free(&j);
    fflush(stdout);
}

/* ---- status ---- */

typedef struct sample {
    long long answered, errors;
    int64_t at;
} sample_t;

static void print_agents(const msgpack_object *agents) {
    if (!agents || agents->type != MSGPACK_OBJECT_ARRAY) return;
    for (uint32_t i = 0; i < agents->via.array.size; i++) {
        const msgpack_object *a = &agents->via.array.ptr[i];
        printf("%s%.*s", i ? ", " : "", ctl_slen(a, 128), ctl_sptr(a));
    }
}

/* Prints a status reply; with prev, the rates since that sample, else since the start. */
static void print_status(const ctl_obs_t *o, const msgpack_object *st, const sample_t *prev,
                         sample_t *now) {
    const msgpack_object *ws = ctl_get(st, "workers");
    uint32_t nw = ws && ws->type == MSGPACK_OBJECT_ARRAY ? ws->via.array.size : 0;
    now->answered = ctl_num(st, "answered");
    now->errors = ctl_num(st, "errors");
    now->at = base_mono_ms();
    double secs = prev ? (double)(now->at - prev->at) / 1000.0 : ctl_num(st, "uptime_ms") / 1000.0;
    double ok_rate = 0, err_rate = 0;
    if (secs > 0) {
        ok_rate = (double)(now->answered - (prev ? prev->answered : 0)) / secs;
        err_rate = (double)(now->errors - (prev ? prev->errors : 0)) / secs;
    }
    const msgpack_object *dr = ctl_get(st, "draining"), *pair = ctl_get(st, "pair");
    /* A broker pair: the summary line ends with the active one's start and the takeovers
     * (on that line, so that the table stays on the third line on). */
    char active[400] = "";
    if (pair && pair->type == MSGPACK_OBJECT_BOOLEAN && pair->via.boolean) {
        time_t since = (time_t)(ctl_num(st, "active_since_ms") / 1000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&since, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        const msgpack_object *who = ctl_get(st, "active_broker");
        snprintf(active, sizeof active, "; pair: active %.*s since %s, %lld takeovers",
                 ctl_slen(who, 256), ctl_sptr(who), when, ctl_num(st, "takeovers"));
    }
    /* One summary line, then the table (scripts read it from the third line on). */
    printf("broker %s: %u workers, capacity %lld, in flight %lld, queued %lld, clients %lld; "
           "answered %lld (%lld errors), up %.1f s, rate %.1f/s (%.1f/s errors, %s); "
           "sessions %lld busy, %lld queries waiting for one%s%s\n",
           o->broker, nw, ctl_num(st, "capacity"), ctl_num(st, "in_flight"), ctl_num(st, "queued"),
           ctl_num(st, "clients"), now->answered, now->errors, ctl_num(st, "uptime_ms") / 1000.0,
           ok_rate, err_rate, prev ? "last interval" : "average", ctl_num(st, "sessions_locked"),
           ctl_num(st, "session_waiters"),
           dr && dr->type == MSGPACK_OBJECT_BOOLEAN && dr->via.boolean ? " DRAINING" : "",
           active);
    if (nw) printf("%-32s %9s %9s  %s\n", "WORKER", "CAPACITY", "IN_FLIGHT", "AGENTS");
    for (uint32_t i = 0; i < nw; i++) {
        const msgpack_object *w = &ws->via.array.ptr[i], *name = ctl_get(w, "name");
        printf("%-32.*s %9lld %9lld  ", ctl_slen(name, 128), ctl_sptr(name), ctl_num(w, "capacity"),
               ctl_num(w, "in_flight"));
        print_agents(ctl_get(w, "agents"));
        printf("\n");
    }
    fflush(stdout);
}

/* One status request on s. Returns the exit status; prints (JSON or a table) when 0. */
static int status_once(const ctl_obs_t *o, void *s, const sample_t *prev, sample_t *now) {
    proto_buf_t id, msg;
    proto_buf_init(&id);
    proto_buf_init(&msg);
    if (proto_json_to_msgpack(o->id, strlen(o->id), &id, NULL) != 0) proto_pack_cstr(&id, o->id);
    reply_t r;
    int rc = proto_enc_status_request(&msg, (proto_raw_t){id.p, id.n}) ? 1
                                                                       : exchange(o, s, &msg, &r);
    if (rc == 0) {
        /* `result` with the figures in `output`; a broker before that answered `status`
         * with them beside `id` (PROTOCOL.md "Versioning"). */
        const msgpack_object *st = r.m.type == PROTO_RESULT ? ctl_get(&r.u.data, "output")
                                   : r.m.type == PROTO_STATUS ? &r.u.data
                                                              : NULL;
        if (!st || st->type != MSGPACK_OBJECT_MAP) {
            fprintf(stderr, "actorctl: the broker answered status with '%s'\n",
                    proto_type_name(r.m.type));
            rc = 1;
        } else if (o->json) {
            print_body_json(r.m.body);
        } else {
            print_status(o, st, prev, now);
        }
        reply_free(&r);
    }
    proto_buf_free(&id);
    proto_buf_free(&msg);
    return rc;
}

int ctl_status(const ctl_obs_t *o) {
    void *s = o->open(o->open_ctx);
    if (!s) return 1;
    sample_t now;
    int rc = status_once(o, s, NULL, &now);
    zmq_close(s);
    return rc;
}

int ctl_top(const ctl_obs_t *o) {
    void *s = o->open(o->open_ctx);
    if (!s) return 1;
    sample_t prev, now;
    int rc = 0;
    for (int64_t frame = 0; (o->count < 0 || frame < o->count) && !*o->interrupted; frame++) {
        if (frame > 0) zmq_poll(NULL, 0, (long)o->interval_ms); /* a signal cuts it short */
        if (*o->interrupted) break;
        if (!o->json) printf("\x1b[H\x1b[J"); /* home, clear to the end: redraw in place */
        if ((rc = status_once(o, s, frame ? &prev : NULL, &now)) != 0) break;
        prev = now;
    }
    zmq_close(s);
    return rc;
}

/* ---- tasks ---- */

static void print_tasks(const msgpack_object *out) {
    const msgpack_object *ts = ctl_get(out, "tasks"), *w = ctl_get(out, "worker");
    uint32_t n = ts && ts->type == MSGPACK_OBJECT_ARRAY ? ts->via.array.size : 0;
    printf("worker %.*s: %u tasks, %lld running jobs\n", ctl_slen(w, 128), ctl_sptr(w), n,
           ctl_num(out, "running_jobs"));
    printf("%8s %-9s %-14s %10s %8s  %s\n", "ID", "STATE", "WAITS_ON", "WAITING_MS", "JOB",
           "NAME");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *t = &ts->via.array.ptr[i], *job = ctl_get(t, "job");
        char jobs[24] = "-";
        if (job) snprintf(jobs, sizeof jobs, "%lld", ctl_num(t, "job"));
        const msgpack_object *cr = ctl_get(t, "cancel_requested");
        bool cancelling = cr && cr->type == MSGPACK_OBJECT_BOOLEAN && cr->via.boolean;
        printf("%8lld %-9.*s %-14.*s %10lld %8s  %.*s%s\n", ctl_num(t, "id"),
               ctl_slen(ctl_get(t, "state"), 9), ctl_sptr(ctl_get(t, "state")),
               ctl_slen(ctl_get(t, "waits_on"), 14), ctl_sptr(ctl_get(t, "waits_on")),
               ctl_num(t, "waiting_ms"), jobs, ctl_slen(ctl_get(t, "name"), 48),
               ctl_sptr(ctl_get(t, "name")), cancelling ? " (cancelling)" : "");
    }
}

int ctl_tasks(const ctl_obs_t *o, const char *worker) {
    void *s = o->open(o->open_ctx);
    if (!s) return 1;
    proto_buf_t id, msg;
    proto_buf_init(&id);
    proto_buf_init(&msg);
    if (proto_json_to_msgpack(o->id, strlen(o->id), &id, NULL) != 0) proto_pack_cstr(&id, o->id);
    reply_t r;
    int rc = proto_enc_tasks(&msg, (proto_raw_t){id.p, id.n}, proto_str_of(worker))
                 ? 1
                 : exchange(o, s, &msg, &r);
    if (rc == 0) {
        if (o->json) {
            print_body_json(r.m.body);
        } else if (r.m.type == PROTO_RESULT) {
            print_tasks(ctl_get(&r.u.data, "output"));
        } else {
            fprintf(stderr, "actorctl: the broker answered tasks with '%s'\n",
                    proto_type_name(r.m.type));
            rc = 1;
        }
        reply_free(&r);
    }
    proto_buf_free(&id);
    proto_buf_free(&msg);
    zmq_close(s);
    return rc;
}
