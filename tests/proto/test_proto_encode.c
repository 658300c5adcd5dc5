/* test_proto_encode.c: the encoders' in-line writers (proto.h proto_pack_str, internal.h
 * proto__pack_u64, the header's type name) against msgpack-c's own packer, byte for byte:
 * every integer form, string lengths around the fixstr limit, with and without room. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "proto/proto.h"

/* Every integer form and string length around the fixstr limit, into a buffer with room
 * and into one without: what msgpack-c's packer gives. */
static void test_inline_writers_match_msgpack_c(void **state) {
    (void)state;
    static const uint64_t ints[] = {0, 127, 128, 255, 256, 65535, 65536, 0xffffffffu,
                                    0x100000000u, UINT64_MAX};
    proto_buf_t want, got;
    proto_buf_init(&want);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        proto_buf_init(&got); /* empty: the first write grows it */
        assert_int_equal(proto_enc_cancel_job(&got, ints[i]), 0);
        proto_buf_reset(&want);
        proto_pack_header(&want, PROTO_CANCEL, 1);
        proto_pack_cstr(&want, "job");
        msgpack_pack_uint64(&want.pk, ints[i]);
        assert_int_equal(got.n, want.n);
        assert_memory_equal(got.p, want.p, want.n);
        proto_buf_free(&got);
    }
    char s[40];
    memset(s, 'x', sizeof s);
    for (size_t n = 0; n <= sizeof s; n++) {
        proto_buf_init(&got);
        proto_pack_str(&got, s, n); /* no room yet */
        proto_pack_str(&got, s, n); /* room, or not past the first growth */
        proto_buf_reset(&want);
        for (int k = 0; k < 2; k++) {
            msgpack_pack_str(&want.pk, n);
            msgpack_pack_str_body(&want.pk, s, n);
        }
        assert_int_equal(got.n, want.n);
        assert_memory_equal(got.p, want.p, want.n);
        proto_buf_free(&got);
    }
    proto_buf_free(&want);
}

/* Every type's header (its name copied as a whole 16-byte row, cut to its length) is what
 * msgpack-c writes for {"v": 1, "type": name}. */
static void test_every_type_header_matches_msgpack_c(void **state) {
    (void)state;
    proto_buf_t want, got;
    proto_buf_init(&want);
    proto_buf_init(&got);
    for (int t = PROTO_QUERY; t <= PROTO_TYPE_LAST; t++) {
        assert_int_equal(proto_enc_simple(&got, (proto_type_t)t), 0);
        const char *name = proto_type_name((proto_type_t)t);
        proto_buf_reset(&want);
        msgpack_pack_map(&want.pk, 2);
        msgpack_pack_str(&want.pk, 1);
        msgpack_pack_str_body(&want.pk, "v", 1);
        msgpack_pack_int(&want.pk, PROTO_VERSION);
        msgpack_pack_str(&want.pk, 4);
        msgpack_pack_str_body(&want.pk, "type", 4);
        msgpack_pack_str(&want.pk, strlen(name));
        msgpack_pack_str_body(&want.pk, name, strlen(name));
        assert_int_equal(got.n, want.n);
        assert_memory_equal(got.p, want.p, want.n);
    }
    proto_buf_free(&want);
    proto_buf_free(&got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_writers_match_msgpack_c),
        cmocka_unit_test(test_every_type_header_matches_msgpack_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
