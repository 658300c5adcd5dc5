/* agent/http1.h: the plain-HTTP/1.1 client that http.c uses for http:// URLs (local model
 * servers): uv_tcp on the loop's libuv, a pool of keep-alive connections per host:port, the
 * same contract as agt_http_perform (http.h). Private to http.c and its tests. */
#ifndef AGT_HTTP1_H
#define AGT_HTTP1_H

#include <stdbool.h>

#include <uv.h>

#include "http.h"

#define AGT_H1_MAX_IDLE 256         /* idle connections one client keeps (all hosts together) */
#define AGT_H1_IDLE_MS 30000        /* an idle connection older than this is closed */
#define AGT_H1_MAX_HEAD (64u << 10) /* response head bytes accepted */

typedef struct agt_h1 agt_h1_t;

/* Counters, for tests and monitoring. */
typedef struct agt_h1_stats {
    uint64_t connects; /* TCP connections opened */
    uint64_t sent;     /* requests written (a retried request counts twice) */
    uint64_t reused;   /* requests sent on a pooled connection */
    uint64_t stale;    /* idle connections found closed by the server when about to be
                          reused (closed instead: no request written into them) */
    uint64_t retried;  /* requests re-sent after a pooled connection turned out closed */
    size_t idle;       /* connections idle in the pool now */
} agt_h1_stats_t;

/* Creates a client on uv (the loop of libactor it serves). Returns: 0. Errors: ACT_ENOMEM. */
int agt_h1_new(agt_h1_t **out, uv_loop_t *uv);

/* Closes its idle connections (through the loop: destroy it before the loop), frees it and
 * sets *h to NULL. Safe on NULL. No request may be in flight. */
void agt_h1_destroy(agt_h1_t **h);

/* Whether this client takes url: an http:// URL with no proxy variable set for its host (a
 * proxy is libcurl's business). */
bool agt_h1_handles(const char *url);

/* agt_http_perform for a URL that agt_h1_handles, on the calling task's loop. */
int agt_h1_perform(agt_h1_t *h, const agt_http_req_t *req, agt_http_resp_t *resp, int64_t deadline);

void agt_h1_stats(const agt_h1_t *h, agt_h1_stats_t *out);

#endif
