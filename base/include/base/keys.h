/* base/keys.h: CURVE key files as `actorctl keygen` writes them, read the same way by the
 * broker, the worker and actorctl. A key pair file holds the lines `public = <z85>` and
 * `secret = <z85>` (`#` comments); a public key file holds one Z85 key. Keys stay Z85 text
 * (40 characters), which is what ZMQ_CURVE_* socket options and ZAP's user ids take. */
#ifndef BASE_KEYS_H
#define BASE_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define BASE_Z85_KEY_LEN 40 /* a 32-byte CURVE key in Z85 */

/* A key pair: two NUL-terminated Z85 keys. */
typedef struct base_keypair {
    char public_[BASE_Z85_KEY_LEN + 1];
    char secret[BASE_Z85_KEY_LEN + 1];
} base_keypair_t;

/* True when s[0..n) is exactly one Z85-encoded 32-byte key (40 characters of Z85's alphabet). */
bool base_key_is_z85(const char *s, size_t n);

/* Cuts a comment off a line of a key file. Z85 has '#' in its alphabet, so a comment starts
 * only at a word (at the line's start or after a blank) that begins with '#' and is not
 * itself a key. */
void base_key_strip_comment(char *line);

/* Reads a key pair file. Returns: 0. Errors: -errno when it cannot be read, -EINVAL when a
 * line or key is malformed or a key is missing (err says which line and why). */
int base_keypair_load(const char *path, base_keypair_t *kp, char *err, size_t errcap);

/* Takes a public key given as Z85 text or as a file holding one (a .pub file, or a key pair
 * file, whose `public` line is used). out gets 41 bytes. Returns: 0.
 * Errors: as base_keypair_load. */
int base_key_public_load(const char *file_or_z85, char *out, char *err, size_t errcap);

#endif
