/* broker/broker_bus.c: the bus. What publishers send to the SUB socket goes out on PUB unchanged;
 * a client `publish` becomes [topic][{v, type:"event", topic, data}]; and every event, result
 * and error of a query is published under query.<agent>.<session or -> as the client's map
 * plus "agent", "session" and what a watcher needs to draw it (job, worker, invocation,
 * accepted_ms, ts_ms: tools/web's timeline). Bus messages are fire-and-forget: PUB drops at
 * its HWM. The PUB socket is an XPUB so the broker knows which prefixes anyone subscribes
 * to (subs.c), and does not even encode a query's bus message when nobody would receive it. */
#include "broker.h"
#include "invocations.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

bool brk_bus_reserved(const char *topic, size_t n) {
    static const char pfx[] = BRK_BUS_RESERVED;
    return n >= sizeof pfx - 1 && memcmp(topic, pfx, sizeof pfx - 1) == 0;
}

void brk_bus_send(brk_t *b, const char *topic, size_t tlen, const uint8_t *body, size_t n) {
    if (zmq_send(b->pub, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
    zmq_send(b->pub, body, n, ZMQ_DONTWAIT);
}

bool brk_bus_forward(brk_t *b) {
    zmq_msg_t f[2];
    size_t nf, total = brk_recv_frames(b->sub, f, 2, &nf);
    if (total == 0) return false;
    if (total == 2 && brk_bus_reserved(zmq_msg_data(&f[0]), zmq_msg_size(&f[0])))
        brk_mx_bus_refused(b); /* the broker's own topics: a publisher may not forge them */
    else if (total == 2 && zmq_msg_send(&f[0], b->pub, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_msg_send(&f[1], b->pub, ZMQ_DONTWAIT); /* the frames as received: no copy */
    else if (total != 2)
        base_log(BASE_LOG_WARN, "bus_dropped", "frames=%zu why=\"expected [topic][body]\"", total);
    for (size_t i = 0; i < nf; i++) zmq_msg_close(&f[i]); /* a sent frame is empty: a no-op */
    return true;
}

int brk_bus_publish(brk_t *b, proto_str_t topic, proto_raw_t data) {
    if (proto_enc_bus_publish(&b->busbuf, topic, data) != 0) return PROTO_ENOMEM;
    brk_bus_send(b, topic.p, topic.n, b->busbuf.p, b->busbuf.n);
    return 0;
}

/* The bus copy's fields for watchers: ts_ms (now), and for a job's messages its job id,
 * accepted_ms (Unix ms, from the monotonic acceptance time), worker and invocation when set. */
static uint32_t watch_fields(const brk_job_t *j, const char **inv) {
    *inv = j ? brk_inv_id_of(j) : "";
    return 1 + (j ? 2 + (j->worker != NULL) + (**inv != '\0') : 0);
}

static void pack_watch(proto_buf_t *o, const brk_job_t *j, const char *inv) {
    int64_t now = base_unix_ms();
    proto_pack_cstr(o, "ts_ms");
    msgpack_pack_int64(&o->pk, now);
    if (!j) return;
    proto_pack_cstr(o, "job");
    msgpack_pack_uint64(&o->pk, j->job_id);
    proto_pack_cstr(o, "accepted_ms");
    msgpack_pack_int64(&o->pk, now - (base_mono_us() - j->t0_us) / 1000);
    if (j->worker) {
        proto_pack_cstr(o, "worker");
        proto_pack_str(o, j->worker->name, j->worker->name_len);
    }
    if (*inv) {
        proto_pack_cstr(o, "invocation");
        proto_pack_cstr(o, inv);
    }
}

/* proto encodes the message as the client gets it; the bus copy's fields follow in the map.
 * *client_end: where the client's fields end; *extra: how many bus fields follow them. */
static int enc_query(proto_buf_t *o, const brk_qmsg_t *q, bool for_bus, size_t *client_end,
                     uint32_t *extra) {
    const char *inv = "";
    *extra = for_bus ? (q->session.n ? 2 : 1) + watch_fields(q->job, &inv) : 0;
    proto_reply_t r = {.type = q->type, .id = q->id, .seq = q->seq, .payload = q->payload,
                       .code = q->code, .message = q->message};
    if (proto_enc_reply(o, &r, *extra) != 0) return PROTO_ENOMEM;
    *client_end = o->n;
    if (for_bus) {
        proto_pack_cstr(o, "agent");
        proto_pack_str(o, q->agent.p, q->agent.n);
        if (q->session.n) {
            proto_pack_cstr(o, "session");
            proto_pack_str(o, q->session.p, q->session.n);
        }
        pack_watch(o, q->job, inv);
    }
    return o->failed ? PROTO_ENOMEM : 0;
}

int brk_enc_query_msg(proto_buf_t *o, const brk_qmsg_t *q, bool for_bus) {
    size_t end;
    uint32_t extra;
    return enc_query(o, q, for_bus, &end, &extra);
}

/* query.<agent>.<session or ->, each name cut at BRK_MAX_NAME; returns its length. */
static size_t query_topic(char *topic, const brk_qmsg_t *q) {
    size_t an = q->agent.n > BRK_MAX_NAME ? BRK_MAX_NAME : q->agent.n;
    size_t sn = q->session.n > BRK_MAX_NAME ? BRK_MAX_NAME : q->session.n;
    size_t n = 6;
    memcpy(topic, "query.", 6);
    if (an) memcpy(topic + n, q->agent.p, an);
    n += an;
    topic[n++] = '.';
    if (sn) {
        memcpy(topic + n, q->session.p, sn);
        n += sn;
    } else {
        topic[n++] = '-';
    }
    return n;
}

void brk_bus_query(brk_t *b, const brk_qmsg_t *q) {
    char topic[BRK_BUS_TOPIC_MAX];
    size_t n = query_topic(topic, q);
    if (!brk_subs_wanted(b, topic, n)) return;
    if (brk_enc_query_msg(&b->busbuf, q, true) == 0)
        brk_bus_send(b, topic, n, b->busbuf.p, b->busbuf.n);
}

/* The client's map and the bus copy differ only in the map's entry count and the bus fields
 * after the client's: one encoding serves both. Every reply map has under 16 entries, so its
 * header is one byte (a fixmap); anything else falls back to a second encoding. */
int brk_query_enc(brk_t *b, const brk_qmsg_t *q, brk_qenc_t *e) {
    size_t end;
    uint32_t extra;
    e->bus = brk_subs_any(b); /* nobody subscribed (the common case): no topic to build */
    if (e->bus) {
        e->tlen = query_topic(e->topic, q);
        e->bus = brk_subs_wanted(b, e->topic, e->tlen);
    }
    e->twice = false;
    int rc = enc_query(&b->out, q, e->bus, &end, &extra);
    if (rc != 0) return rc;
    e->n = b->out.n;
    if (!e->bus) return 0;
    uint8_t h = b->out.p[0];
    if ((h & 0xf0) != 0x80 || (h & 0x0f) < extra) { /* not a fixmap: encode the bus copy apart */
        e->twice = true;
        e->q = *q;
        rc = enc_query(&b->out, q, false, &end, &extra);
        e->n = b->out.n;
        return rc;
    }
    e->hdr_bus = h;
    b->out.p[0] = (uint8_t)(h - extra);
    e->n = end;
    return 0;
}

void brk_query_publish(brk_t *b, const brk_qenc_t *e) {
    if (!e->bus) return;
    if (e->twice) {
        if (brk_enc_query_msg(&b->busbuf, &e->q, true) == 0)
            brk_bus_send(b, e->topic, e->tlen, b->busbuf.p, b->busbuf.n);
        return;
    }
    b->out.p[0] = e->hdr_bus;
    brk_bus_send(b, e->topic, e->tlen, b->out.p, b->out.n);
}
