/* test_proto_keys.c: the CURVE key files of proto/keys.h, as keygen writes them and as people
 * edit them: key pairs and public keys read, '#' inside a Z85 key kept while '#' comments go,
 * and malformed files refused with the line that was wrong. */
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proto/keys.h"

/* Two keys made by zmq_curve_keypair; the second has '#' and '=' in it, as Z85 allows. */
#define PUB1 "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
#define SEC1 "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
#define PUB2 "#8w^)XZWK($TK&C.L>Td&Rxd3!=>0123456789ab"

static char path[64];

static const char *file_with(const char *text) {
    snprintf(path, sizeof path, "/tmp/test_proto_keys.%d", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_keys_z85_check(void **state) {
    (void)state;
    assert_true(proto_key_is_z85(PUB1, 40));
    assert_true(proto_key_is_z85(PUB2, 40));
    assert_false(proto_key_is_z85(PUB1, 39));
    assert_false(proto_key_is_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"", 40));
    assert_false(proto_key_is_z85("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8] f7", 40));
}

static void test_keys_reads_a_keygen_pair_with_comments(void **state) {
    (void)state;
    proto_keypair_t kp;
    char err[200];
    file_with("# actorbus CURVE key pair\npublic = " PUB1 "  # the public half\n"
              "\n   secret=" SEC1 "\n");
    assert_int_equal(proto_keypair_load(path, &kp, err, sizeof err), 0);
    assert_string_equal(kp.public_, PUB1);
    assert_string_equal(kp.secret, SEC1);
    char pub[41];
    assert_int_equal(proto_key_public_load(path, pub, err, sizeof err), 0); /* the pair's */
    assert_string_equal(pub, PUB1);
    unlink(path);
}

static void test_keys_hash_inside_a_key_is_not_a_comment(void **state) {
    (void)state;
    char pub[41], err[200];
    file_with(PUB2 "\n");
    assert_int_equal(proto_key_public_load(path, pub, err, sizeof err), 0);
    assert_string_equal(pub, PUB2);
    char line[] = PUB2 " name #comment " PUB1;
    proto_key_strip_comment(line);
    assert_string_equal(line, PUB2 " name ");
    assert_int_equal(proto_key_public_load(PUB2, pub, err, sizeof err), 0); /* Z85 text */
    assert_string_equal(pub, PUB2);
    unlink(path);
}

static void test_keys_refuses_bad_files_naming_the_line(void **state) {
    (void)state;
    proto_keypair_t kp;
    char pub[41], err[200];
    file_with("public = " PUB1 "\n");
    assert_int_equal(proto_keypair_load(path, &kp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "no secret key"));
    file_with("public = " PUB1 "\nsecret = short\n");
    assert_int_equal(proto_keypair_load(path, &kp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, ":2:"));
    file_with("private = " SEC1 "\n");
    assert_int_equal(proto_key_public_load(path, pub, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, ":1:"));
    file_with("# nothing\n");
    assert_int_equal(proto_key_public_load(path, pub, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "no public key"));
    unlink(path);
    assert_int_equal(proto_key_public_load(path, pub, err, sizeof err), -ENOENT);
    assert_int_equal(proto_key_public_load("not-a-key-nor-a-file", pub, err, sizeof err),
                     -ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_z85_check),
        cmocka_unit_test(test_keys_reads_a_keygen_pair_with_comments),
        cmocka_unit_test(test_keys_hash_inside_a_key_is_not_a_comment),
        cmocka_unit_test(test_keys_refuses_bad_files_naming_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
