/* broker/zap.h: the broker's CURVE security: the broker's key pair, the client and worker
 * allowlists (reloaded on SIGHUP), and the ZAP handler that answers libzmq's handshake checks
 * on an inproc REP socket polled in the broker's loop. Two ZAP domains: "clients" (client
 * ROUTER, bus PUB and SUB) and "workers" (worker ROUTER). Also the loopback check of binds. */
#ifndef BRK_ZAP_H
#define BRK_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "base/buf.h"
#include "proto/proto.h"

#include "base/list.h"
#include "hashmap.h"

#define BRK_KEY_NAME_MAX 64 /* bytes of a key's name in an allowlist */

struct brk;
struct brk_config;

/* One allowed public key. The allowlist holds a reference; so does each client entry with
 * queries in flight, so that the per-key count survives a reload that keeps the key. */
typedef struct brk_key {
    brk_node_t node;        /* key: z85, in its allowlist's map (while not removed) */
    base_list_t all;         /* in the zap's list of every key object */
    char z85[41];
    char name[BRK_KEY_NAME_MAX + 1];
    uint64_t max_inflight;  /* queries in flight over all its connections; 0: no own limit */
    uint64_t max_msg;       /* bytes of one message; 0: no own limit */
    uint64_t in_flight;
    uint64_t n_pending;     /* of those, queued or waiting (fair shares) */
    bool is_operator;       /* role=operator: may cancel any key's query by id */
    unsigned refs;
    bool removed;           /* dropped by a reload: its peers are refused */
    int domain;             /* brk_sock_t of its list */
} brk_key_t;

typedef struct brk_zap brk_zap_t;

/* True when an endpoint can only be reached from this host: ipc://, inproc://, or tcp:// (ws,
 * udp...) on a literal loopback address (127.0.0.0/8, ::1, localhost). Interface names and
 * wildcards are not. */
bool brk_endpoint_is_local(const char *ep);

/* Checks the security flags before anything opens: CURVE needs both allowlists and libzmq
 * with CURVE; without CURVE every bind must be local unless insecure. Returns: 0 (warnings
 * logged). Errors: -EINVAL (the reason printed on stderr). */
int brk_security_check(const struct brk_config *cfg);

/* Loads the key pair and allowlists and binds the ZAP handler (nothing when --curve-secret is
 * not set: b->zap stays NULL). Returns: 0. Errors: -EINVAL (a bad file, logged), -ENOMEM,
 * -errno of zmq_bind. */
int brk_zap_open(struct brk *b);
void brk_zap_close(struct brk *b);
/* Makes sock a CURVE server in domain (before it binds); nothing without CURVE. Returns: 0.
 * Errors: -errno of zmq_setsockopt. */
int brk_zap_secure(struct brk *b, void *sock, const char *domain);
/* The ZAP socket to poll, or NULL without CURVE. */
void *brk_zap_socket(struct brk *b);
/* Answers up to a batch of ZAP requests; false when there were none left. */
bool brk_zap_serve(struct brk *b);
/* Rereads both allowlists (SIGHUP). A file that fails to parse leaves its list unchanged.
 * Clients of removed keys have their queries ended `unauthorized`. Returns: 0.
 * Errors: -EINVAL (a list kept, logged), -ENOMEM. */
int brk_zap_reload(struct brk *b);
/* The allowed key a message frame came from (its ZAP user id), looked up in the allowlist of
 * sock; NULL when the key is not (or no longer) allowed. Without CURVE: NULL. */
brk_key_t *brk_zap_key(struct brk *b, int sock, zmq_msg_t *frame);
bool brk_zap_on(const struct brk *b);
/* The allowed client key whose Z85 text is z85 (40 characters), or NULL (no CURVE, not in
 * --client-keys). Ownership: the broker's (brk_key_ref to keep it). */
brk_key_t *brk_zap_client_key(struct brk *b, const char *z85, size_t n);
/* Counts a message refused because its key was removed (refuse_removed_key). */
void brk_zap_count_refused(struct brk *b);
/* Appends the actorbus_broker_curve_* families to a /metrics page; nothing without CURVE. */
void brk_zap_metrics(struct brk *b, base_buf_t *o);

brk_key_t *brk_key_ref(brk_key_t *k);        /* NULL stays NULL */
void brk_key_unref(struct brk *b, brk_key_t **k); /* NULLs *k */

#endif
