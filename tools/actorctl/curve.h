/* tools/actorctl/curve.h: actorctl's CURVE side: `actorctl keygen` and the client keys
 * (--curve-server-key, --curve-key) set on every socket actorctl opens to the broker. */
#ifndef CTL_CURVE_H
#define CTL_CURVE_H

#include <stdbool.h>

#include "base/keys.h"

typedef struct ctl_curve {
    const char *server_arg;  /* --curve-server-key FILE|Z85; NULL: plaintext */
    const char *key_file;    /* --curve-key FILE; NULL: an ephemeral key pair */
    char server[BASE_Z85_KEY_LEN + 1];
    base_keypair_t kp;
    bool on;
    void *mon;               /* PAIR reading the last socket's handshake failures, or NULL */
    unsigned n_mon;          /* monitors made, for unique inproc addresses */
} ctl_curve_t;

/* Loads the keys the flags name (or makes an ephemeral pair). Returns: 0, or the exit
 * status (1 a key could not be read or made, 2 bad usage) with the reason on stderr. */
int ctl_curve_setup(ctl_curve_t *cv);
/* Makes sock a CURVE client of the broker when CURVE is on (before connect). Returns: 0, or
 * -1 with the reason on stderr. */
int ctl_curve_apply(const ctl_curve_t *cv, void *sock);
/* Watches sock (before connect) for failed handshakes, replacing the last watch: a broker
 * that refuses our key or wants CURVE otherwise looks like one that does not answer. */
void ctl_curve_watch(ctl_curve_t *cv, void *zctx, void *sock);
/* After no answer: prints why on stderr when a handshake failed. Returns: true if it did. */
bool ctl_curve_explain(ctl_curve_t *cv);
void ctl_curve_close(ctl_curve_t *cv);

/* `actorctl keygen [--out PREFIX]`: a new key pair, printed or written to PREFIX.key (0600)
 * and PREFIX.pub. Returns: the exit status. */
int ctl_keygen(const char *out_prefix);

#endif
