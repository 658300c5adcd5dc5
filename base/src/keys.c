/* base/src/keys.c: reads CURVE key files (base/keys.h). Plain text, no libzmq: the keys
 * stay Z85 and are only checked against Z85's alphabet here; libzmq decodes them when they
 * are set on a socket. Files are bounded: lines of at most 1 KiB, at most 64 lines. */
#include "base/keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KEY_LINE_MAX 1024
#define KEY_FILE_LINES 64

static const char z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

bool base_key_is_z85(const char *s, size_t n) {
    if (n != BASE_Z85_KEY_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || !strchr(z85_chars, s[i])) return false;
    return true;
}

void base_key_strip_comment(char *line) {
    for (char *p = line; *p;) {
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, " \t\r\n");
        if (*p == '#' && !base_key_is_z85(p, n)) {
            *p = '\0';
            return;
        }
        p += n;
        if (*p) p++;
    }
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) s[--n] = '\0';
    return s;
}

/* Stores a `name = value` key into its slot; a bare key (a .pub line) counts as public. */
static int key_line(char *s, base_keypair_t *kp, bool *have_pub, bool *have_sec) {
    char *eq = strchr(s, '='), *name = "public", *val = s;
    /* Z85 itself has '=': a line is `name = value` only when a word precedes the '='. */
    if (eq && !base_key_is_z85(s, strlen(s))) {
        *eq = '\0';
        name = trim(s);
        val = trim(eq + 1);
    }
    if (!base_key_is_z85(val, strlen(val))) return -1;
    if (!strcmp(name, "public")) {
        memcpy(kp->public_, val, BASE_Z85_KEY_LEN + 1);
        *have_pub = true;
    } else if (!strcmp(name, "secret")) {
        memcpy(kp->secret, val, BASE_Z85_KEY_LEN + 1);
        *have_sec = true;
    } else {
        return -1;
    }
    return 0;
}

/* Reads public and (when present) secret keys from path. */
static int load(const char *path, base_keypair_t *kp, bool *have_sec, char *err, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, cap, "%s: %s", path, strerror(e));
        return -e;
    }
    char line[KEY_LINE_MAX];
    bool have_pub = false;
    int rc = 0;
    *have_sec = false;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        base_key_strip_comment(line);
        char *s = trim(line);
        if (no > KEY_FILE_LINES) {
            snprintf(err, cap, "%s: more than %d lines", path, KEY_FILE_LINES);
            rc = -EINVAL;
        } else if (*s && key_line(s, kp, &have_pub, have_sec) != 0) {
            snprintf(err, cap, "%s:%u: expected 'public = KEY', 'secret = KEY' or a key "
                     "(40 Z85 characters)", path, no);
            rc = -EINVAL;
        }
    }
    fclose(f);
    if (rc == 0 && !have_pub) {
        snprintf(err, cap, "%s: no public key", path);
        rc = -EINVAL;
    }
    return rc;
}

int base_keypair_load(const char *path, base_keypair_t *kp, char *err, size_t errcap) {
    bool have_sec;
    memset(kp, 0, sizeof *kp);
    int rc = load(path, kp, &have_sec, err, errcap);
    if (rc == 0 && !have_sec) {
        snprintf(err, errcap, "%s: no secret key (a key pair file has 'secret = KEY')", path);
        rc = -EINVAL;
    }
    return rc;
}

int base_key_public_load(const char *file_or_z85, char *out, char *err, size_t errcap) {
    if (base_key_is_z85(file_or_z85, strlen(file_or_z85))) {
        memcpy(out, file_or_z85, BASE_Z85_KEY_LEN + 1);
        return 0;
    }
    base_keypair_t kp;
    bool have_sec;
    memset(&kp, 0, sizeof kp);
    int rc = load(file_or_z85, &kp, &have_sec, err, errcap);
    if (rc == 0) memcpy(out, kp.public_, BASE_Z85_KEY_LEN + 1);
    memset(&kp, 0, sizeof kp);
    return rc;
}
