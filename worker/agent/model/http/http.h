/* agent/http.h: HTTP requests made from tasks: http:// on the keep-alive HTTP/1.1 client of
 * http1.c, the rest on libcurl's multi interface driven by the libuv loop underneath
 * libactor (curl's sockets on uv_poll, its timer on a uv_timer). The
 * calling task parks on an act_event until body bytes or the end arrive, so the loop never
 * blocks; a deadline or a cancellation removes the transfer, which closes its connection.
 * Internal to agentrt (the model backends and their tests). */
#ifndef AGT_HTTP_H
#define AGT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct agt_http agt_http_t;

#define AGT_HTTP_DEFAULT_MAX_BODY (8u << 20) /* agt_http_req_t.max_body 0: both clients */
#define AGT_HTTP_DEFAULT_CONNECT_MS 10000    /* agt_http_req_t.connect_timeout_ms 0 */

typedef struct agt_http_resp {
    long status;            /* HTTP status of the final response; 0 before headers */
    int64_t retry_after_ms; /* its Retry-After, -1 when absent or unreadable */
    char content_type[96];  /* its Content-Type, "" when absent */
    char content_encoding[32]; /* a Content-Encoding other than identity, which made the
                                  transfer fail (ACT_EIO); "" otherwise */
    size_t body_len;        /* body bytes received */
    char error[256];        /* on a transfer error: what went wrong */
} agt_http_resp_t;

/* Receives body bytes in order, in the calling task, once resp->status is known. Returns 0,
 * or a negative code: the transfer is aborted and agt_http_perform returns that code. */
typedef int (*agt_http_body_fn)(void *ctx, const agt_http_resp_t *resp, const char *p, size_t n);

typedef struct agt_http_req {
    const char *method; /* "GET" or "POST" (NULL: POST when body, else GET) */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t n_headers;
    const char *body; /* request body (may be NULL) */
    size_t body_len;
    size_t max_body;            /* response body bytes accepted (0: 8 MiB) */
    int64_t connect_timeout_ms; /* 0: 10 s */
    agt_http_body_fn on_body;   /* NULL: the body is counted and dropped */
    void *ctx;
} agt_http_req_t;

/* Creates a client; it binds to the loop of its first request. Returns: 0.
 * Errors: ACT_ENOMEM, ACT_EIO (libcurl failed to initialise). */
int agt_http_new(agt_http_t **out);

/* Frees the client (its libuv handles close through the loop: destroy it before the loop)
 * and sets *h to NULL. Safe on NULL. No request may be in flight. */
void agt_http_destroy(agt_http_t **h);

/* Performs one request in the calling task, bounded by deadline and the task's scopes.
 * Returns: 0 once a whole response arrived, whatever its status (resp filled).
 * Errors: ACT_ETIMEDOUT, ACT_ECANCELED (the transfer is removed: its connection closes),
 * ACT_EIO (connection refused or lost, protocol error, a Content-Encoding we do not decode:
 * resp->error says which),
 * ACT_EMSGSIZE (body over max_body), on_body's code, ACT_EINVAL (outside a task, on another
 * loop than the client's, bad arguments), ACT_ENOMEM. */
int agt_http_perform(agt_http_t *h, const agt_http_req_t *req, agt_http_resp_t *resp,
                     int64_t deadline);

/* Whether a Content-Encoding value (n bytes, trimmed) is one we read as it is: empty or
 * "identity". Neither client decodes compression: any other coding fails the transfer
 * (ACT_EIO, resp->content_encoding and resp->error say which) rather than hand on bytes
 * nobody can read. Callers ask for identity with "Accept-Encoding: identity". */
bool agt_http_identity(const char *v, size_t n);

/* Reads a Retry-After value: delay-seconds ("120") or an HTTP date, relative to now (unix
 * seconds). Returns: the delay in ms (a date in the past gives 0), -1 when unreadable. */
int64_t agt_http_retry_after_ms(const char *value, time_t now);

#endif
