/* tools/actorctl/curve.c: `actorctl keygen` and the CURVE client options (curve.h). The
 * secret key file is created 0600 and never overwritten: a key pair that is in use would be
 * lost, so an existing PREFIX.key is an error. */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static int need_curve(void) {
    if (zmq_has("curve")) return 0;
    fprintf(stderr, "actorctl: this libzmq was built without CURVE (zmq_has(\"curve\") is "
                    "false); install a libzmq with libsodium\n");
    return 1;
}

int ctl_curve_setup(ctl_curve_t *cv) {
    char err[300];
    if (!cv->server_arg) {
        if (!cv->key_file) return 0;
        fprintf(stderr, "actorctl: --curve-key needs --curve-server-key (the broker's public "
                        "key)\nTry 'actorctl --help'.\n");
        return 2;
    }
    if (need_curve()) return 1;
    if (base_key_public_load(cv->server_arg, cv->server, err, sizeof err) != 0) {
        fprintf(stderr, "actorctl: --curve-server-key: %s\n", err);
        return 1;
    }
    if (cv->key_file) {
        if (base_keypair_load(cv->key_file, &cv->kp, err, sizeof err) != 0) {
            fprintf(stderr, "actorctl: --curve-key: %s\n", err);
            return 1;
        }
    } else if (zmq_curve_keypair(cv->kp.public_, cv->kp.secret) != 0) {
        fprintf(stderr, "actorctl: cannot make a key pair: %s\n", zmq_strerror(errno));
        return 1;
    }
    cv->on = true;
    return 0;
}

int ctl_curve_apply(const ctl_curve_t *cv, void *sock) {
    if (!cv->on) return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, cv->server, BASE_Z85_KEY_LEN + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, cv->kp.public_, BASE_Z85_KEY_LEN + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, cv->kp.secret, BASE_Z85_KEY_LEN + 1)) {
        fprintf(stderr, "actorctl: cannot set the CURVE keys: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void ctl_curve_close(ctl_curve_t *cv) {
    if (cv->mon) zmq_close(cv->mon);
    cv->mon = NULL;
}

void ctl_curve_watch(ctl_curve_t *cv, void *zctx, void *sock) {
    char addr[64];
    ctl_curve_close(cv);
    snprintf(addr, sizeof addr, "inproc://actorctl-monitor-%u", cv->n_mon++);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(sock, addr, events) != 0) return; /* only the explanation is lost */
    int zero = 0;
    cv->mon = zmq_socket(zctx, ZMQ_PAIR);
    if (!cv->mon) return;
    zmq_setsockopt(cv->mon, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(cv->mon, addr) != 0) ctl_curve_close(cv);
}

bool ctl_curve_explain(ctl_curve_t *cv) {
    uint16_t event = 0;
    for (int i = 0; cv->mon && i < 64; i++) { /* the latest failure wins */
        uint8_t head[6];
        int n = zmq_recv(cv->mon, head, sizeof head, ZMQ_DONTWAIT);
        if (n < 0) break;
        if (n == (int)sizeof head) memcpy(&event, head, sizeof event);
        char ep[256];
        zmq_recv(cv->mon, ep, sizeof ep, ZMQ_DONTWAIT); /* the endpoint frame */
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        fprintf(stderr, "actorctl: the broker refused this client's CURVE key (not in its "
                        "--client-keys); give --curve-key with an allowed key pair\n");
    else if (event && !cv->on)
        fprintf(stderr, "actorctl: the handshake with the broker failed: it may want CURVE "
                        "(give --curve-server-key)\n");
    else if (event)
        fprintf(stderr, "actorctl: the CURVE handshake with the broker failed: check "
                        "--curve-server-key (the broker's public key)\n");
    return event != 0;
}

/* Writes text to path, created with mode (O_EXCL when exclusive). Returns 0 or -errno. */
static int write_file(const char *path, const char *text, mode_t mode, bool exclusive) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
    if (fd < 0) return -errno;
    size_t n = strlen(text), off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fchmod(fd, mode) != 0) rc = -errno; /* mode regardless of the umask */
    if (close(fd) != 0 && rc == 0) rc = -errno;
    return rc;
}

int ctl_keygen(const char *prefix) {
    if (need_curve()) return 1;
    char pub[BASE_Z85_KEY_LEN + 1], sec[BASE_Z85_KEY_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "actorctl: cannot make a key pair: %s\n", zmq_strerror(errno));
        return 1;
    }
    if (!prefix) {
        printf("public = %s\nsecret = %s\n", pub, sec);
        memset(sec, 0, sizeof sec);
        return 0;
    }
    char keyp[4096], pubp[4096], text[256];
    if (snprintf(keyp, sizeof keyp, "%s.key", prefix) >= (int)sizeof keyp ||
        snprintf(pubp, sizeof pubp, "%s.pub", prefix) >= (int)sizeof pubp) {
        fprintf(stderr, "actorctl: --out is too long\n");
        return 2;
    }
    snprintf(text, sizeof text, "# actorbus CURVE key pair (actorctl keygen): keep it secret\n"
             "public = %s\nsecret = %s\n", pub, sec);
    int rc = write_file(keyp, text, 0600, true);
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    if (rc != 0) {
        fprintf(stderr, "actorctl: %s: %s%s\n", keyp, strerror(-rc),
                rc == -EEXIST ? " (keygen never overwrites a key pair)" : "");
        return 1;
    }
    snprintf(text, sizeof text, "%s\n", pub);
    if ((rc = write_file(pubp, text, 0644, false)) != 0) {
        fprintf(stderr, "actorctl: %s: %s\n", pubp, strerror(-rc));
        return 1;
    }
    printf("wrote %s (secret, mode 0600) and %s (public key %s)\n", keyp, pubp, pub);
    return 0;
}
