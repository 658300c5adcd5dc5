/* base/scrape.h: the one /metrics endpoint, without its socket: a bounded table of scraper
 * connections on a ZMQ_STREAM socket, each with a bounded head buffer; one request per
 * connection, answered and closed. When the table is full the connection that has waited
 * longest without a whole request goes, not the newcomer, so connections that never send
 * (slowloris) cannot keep a scraper out; a connection idle past idle_ms is closed. The
 * owner reads the socket (the broker in its poll loop, the worker in a task), hands each
 * [id][data] message here, and sends what the send callback is given; its render callback
 * writes its own metric families. */
#ifndef BASE_SCRAPE_H
#define BASE_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define BASE_SCRAPE_MAX_ID 256 /* bytes of a ZMQ_STREAM routing id kept (libzmq's are 5) */

typedef struct base_scrape base_scrape_t;

typedef struct base_scrape_opts {
    size_t max_conns;   /* connections at once (--metrics-max-conns), at least 1 */
    size_t max_request; /* bytes of a request head (--metrics-max-request), at least 64 */
    int64_t idle_ms;    /* a connection without a whole request by then is closed
                           (--metrics-idle-ms) */
    const char *path;   /* the one path served ("/metrics") */
    const char *content_type;
    /* Writes the 200 answer's body into body (empty when called). */
    void (*render)(void *ctx, base_buf_t *body);
    /* Sends [id][p[0..n)] on the ZMQ_STREAM socket; n == 0 closes the TCP connection. */
    void (*send)(void *ctx, const uint8_t *id, size_t idlen, const uint8_t *p, size_t n);
    void *ctx;
} base_scrape_opts_t;

/* Creates an endpoint with an empty table. opts is copied (its strings are not: they must
 * outlive the endpoint). Returns: 0. Errors: -EINVAL (a limit of 0, no path or callback),
 * -ENOMEM. Ownership: *out is the caller's, freed with base_scrape_destroy. */
int base_scrape_new(base_scrape_t **out, const base_scrape_opts_t *opts);
/* Frees the table without sending anything (the socket is closing); NULLs *s; safe to
 * repeat. */
void base_scrape_destroy(base_scrape_t **s);

/* One message read from the socket: data n == 0 is a connect or a disconnect notification,
 * anything else bytes of a request. Answers (render, send, close) once the head is whole or
 * bad. Messages of unknown connections (refused or answered) are ignored; ids longer than
 * BASE_SCRAPE_MAX_ID are too. now_ms is any monotonic clock, the one base_scrape_tick gets. */
void base_scrape_on_message(base_scrape_t *s, const uint8_t *id, size_t idlen,
                            const uint8_t *data, size_t n, int64_t now_ms);
/* Closes connections idle past idle_ms. Returns: when it next wants to run (now_ms +
 * idle_ms when no connection is open). */
int64_t base_scrape_tick(base_scrape_t *s, int64_t now_ms);

/* Appends the family `<prefix>_metrics_requests_total` (requests to this endpoint, by
 * status: 200, 400, 404, 405, 431 and "refused" for evicted connections). */
void base_scrape_render_requests(const base_scrape_t *s, base_buf_t *o, const char *prefix);
/* Requests answered with status (or evicted, status 0) so far. */
uint64_t base_scrape_count(const base_scrape_t *s, int status);

#endif
