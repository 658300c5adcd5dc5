/* tools/web/web.h: actor-web's state, shared by server.c (the loop, HTTP connections, the
 * page) and api.c (what each /api path asks the broker, the bus ring, the live stream).
 * One thread: zmq_poll watches the listening socket, every connection, a DEALER to the
 * broker's client endpoint and a SUB to its bus. */
#ifndef WEB_WEB_H
#define WEB_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "curve.h"
#include "web_http.h"
#include "proto/proto.h"

typedef struct web_opts {
    const char *listen, *broker, *pub;
    const char *token;          /* required on every /api and /events request when set */
    size_t max_conns;           /* open HTTP connections */
    size_t max_request;         /* bytes of a request, head and body */
    size_t max_sse;             /* /events streams */
    size_t max_buffer;          /* bytes waiting to be sent on one connection */
    size_t ring, ring_bytes;    /* bus messages kept for /api/bus */
    int64_t status_ms;          /* how often /events gets the broker's status */
    int64_t request_ms;         /* how long an /api request waits for the broker */
    ctl_curve_t curve;          /* --curve-server-key, --curve-key (actorctl's) */
} web_opts_t;

typedef enum {
    WEB_C_FREE,   /* unused slot */
    WEB_C_READ,   /* reading a request */
    WEB_C_WAIT,   /* waiting for the broker's reply to req */
    WEB_C_WRITE,  /* sending a response, then closing */
    WEB_C_SSE,    /* /events: bus messages and status as server-sent events */
    WEB_C_QUERY,  /* /api/query: the query's events, then its result or error, as lines */
} web_cstate_t;

typedef struct web_out {
    char *p;
    size_t n, off, cap; /* bytes held, bytes already sent, allocated */
} web_out_t;

typedef struct web_conn {
    int fd;
    web_cstate_t st;
    char *in;            /* max_request + 1 bytes */
    size_t in_n;
    web_out_t out;
    uint64_t req;        /* WAIT, QUERY: the number in our request id "web-<req>" */
    int64_t deadline;    /* WAIT: when to answer 504; READ, WRITE: when to give up (ms) */
    bool close_when_sent;
} web_conn_t;

typedef struct web_ring_entry {
    uint64_t seq;
    char *json;
    size_t n;
} web_ring_entry_t;

typedef struct web {
    web_opts_t o;
    int port;             /* the port bound */
    int lfd;
    void *zctx, *dealer, *sub, *canceller; /* canceller: a DEALER for cancels */
    web_conn_t *conns;
    size_t n_sse;
    uint64_t next_req, status_req; /* status_req: the poll in flight, 0 none */
    int64_t next_status, next_ping;
    web_ring_entry_t *ring; /* a circular buffer of o.ring entries */
    size_t ring_head, ring_n, ring_bytes;
    uint64_t bus_seq;
    int64_t epoch;          /* Unix ms at start: a page that sees it change drops its seqs */
    char *status_json;      /* the newest status as JSON, for a new /events stream */
    size_t status_n;
    proto_limits_t lim;
    proto_buf_t json, msg;  /* scratch */
} web_t;

/* ---- server.c ---- */
/* Appends n bytes to c's output. Returns: 0. Errors: -ENOBUFS (past max_buffer: the
 * connection is closed; a slow reader loses its stream rather than the server its memory). */
int web_send(web_t *w, web_conn_t *c, const char *p, size_t n);
/* Appends a whole response head (Connection: close) and body; the connection closes once
 * it is sent. */
void web_respond(web_t *w, web_conn_t *c, int status, const char *type, const char *body,
                 size_t n);
/* A JSON error body {"type":"error","code":code,"message":message}. */
void web_respond_error(web_t *w, web_conn_t *c, int status, const char *code,
                       const char *message);
/* Starts a streamed response of the given type (no length; it ends when c closes). */
void web_stream_head(web_t *w, web_conn_t *c, const char *type);
void web_close(web_t *w, web_conn_t *c);

/* ---- api.c ---- */
/* Answers a complete request (head and body read). */
void web_route(web_t *w, web_conn_t *c, const web_req_t *r, const char *body);
/* Handles one reply from the broker's client endpoint. */
void web_on_reply(web_t *w);
/* Handles one bus message: into the ring and out to every /events stream. */
void web_on_bus(web_t *w);
/* Periodic work: status polls, pings, requests past their deadline. */
void web_tick(web_t *w, int64_t now);
/* A connection in WAIT or QUERY is going away: a query in flight is cancelled. */
void web_forget(web_t *w, web_conn_t *c);
void web_ring_free(web_t *w);

#endif
