/* test_proto_json.c: the JSON string scanners of proto/src/json.c, which read plain ASCII
 * eight bytes at a time: a byte that needs an escape (or is not plain ASCII) at every offset
 * of a word, next to bytes that make a word-wide subtraction borrow, both directions; and
 * msgpack headers of every fix form read by proto__rd_next's and proto__rd_skip's short
 * paths, cut or whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proto/proto.h"

/* The JSON text of one msgpack str, byte by byte as RFC 8259 wants it (the slow reference). */
static void escape_ref(const uint8_t *s, size_t n, char *out) {
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') o += sprintf(o, "\\%c", c);
        else if (c == '\n') o += sprintf(o, "\\n");
        else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
        else if (c < 0x80) *o++ = (char)c;
        else if (c == 0xc3 && i + 1 < n && s[i + 1] == 0xa9) *o++ = (char)c, *o++ = (char)s[++i];
        else o += sprintf(o, "\\ufffd");
    }
    *o++ = '"';
    *o = 0;
}

/* Packs s as a msgpack str into b (reset first). */
static void pack(proto_buf_t *b, const uint8_t *s, size_t n) {
    proto_buf_reset(b);
    proto_pack_str(b, (const char *)s, n);
}

static void test_specials_at_every_offset(void **state) {
    (void)state;
    /* 0x01 then ' ' (0x20) and '!' make the subtraction of 0x20 from a word borrow into
     * plain bytes above the special one; 0xc3 0xa9 is é, 0xff is not UTF-8 */
    static const uint8_t specials[][2] = {{'"', 'x'},  {'\\', 'x'}, {'\n', ' '}, {0x01, ' '},
                                          {0x1f, '!'}, {0x00, ' '}, {0xc3, 0xa9}, {0xff, 'x'},
                                          {0x7f, '~'}, {' ', '"'}};
    proto_buf_t mp, js, back;
    proto_buf_init(&mp);
    proto_buf_init(&js);
    proto_buf_init(&back);
    uint8_t s[48];
    char want[8 * sizeof s];
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        for (size_t len = 1; len <= 40; len += 13) {
            for (size_t at = 0; at < len; at++) {
                memset(s, 'a', sizeof s);
                for (size_t i = 0; i < len; i++) s[i] = (uint8_t)('a' + i % 26);
                s[at] = specials[k][0];
                if (at + 1 < len) s[at + 1] = specials[k][1];
                pack(&mp, s, len);
                proto_buf_reset(&js);
                assert_int_equal(proto_raw_to_json((proto_raw_t){mp.p, mp.n}, &js), 0);
                escape_ref(s, len, want);
                assert_string_equal((const char *)js.p, want);
                /* \ufffd, written for bytes that are not UTF-8, does not read back as them */
                if (s[at] == 0xff || (s[at] == 0xc3 && at + 1 == len)) continue;
                proto_buf_reset(&back);
                assert_int_equal(proto_json_to_msgpack((const char *)js.p, js.n, &back, NULL), 0);
                assert_int_equal(back.n, mp.n);
                assert_memory_equal(back.p, mp.p, mp.n);
            }
        }
    }
    proto_buf_free(&mp);
    proto_buf_free(&js);
    proto_buf_free(&back);
}

static void test_raw_bytes_in_json_strings_are_refused_at_every_offset(void **state) {
    (void)state;
    proto_buf_t out;
    proto_buf_init(&out);
    char text[64];
    for (size_t at = 0; at < 30; at++) {
        /* a control byte inside the string, where the word scan meets it */
        int n = snprintf(text, sizeof text, "\"%.*s\x01%s\"", (int)at,
                         "abcdefghijklmnopqrstuvwxyz0123456789", "tail of it");
        proto_error_t err = {0};
        proto_buf_reset(&out);
        assert_int_equal(proto_json_to_msgpack(text, (size_t)n, &out, &err), PROTO_EBAD);
        assert_non_null(strstr(err.message, "control character"));
        /* an unterminated plain string ends in the word scan */
        proto_buf_reset(&out);
        assert_int_equal(proto_json_to_msgpack(text, at + 1, &out, &err), PROTO_EBAD);
    }
    proto_buf_free(&out);
}

static void test_fix_forms_read_and_checked(void **state) {
    (void)state;
    proto_buf_t js;
    proto_buf_init(&js);
    /* {"k": [0, 127, -1, -32, "abc"]} as fix forms only */
    const uint8_t ok[] = {0x81, 0xa1, 'k', 0x95, 0x00, 0x7f, 0xff, 0xe0, 0xa3, 'a', 'b', 'c'};
    assert_int_equal(proto_raw_to_json((proto_raw_t){ok, sizeof ok}, &js), 0);
    assert_string_equal((const char *)js.p, "{\"k\":[0,127,-1,-32,\"abc\"]}");
    /* a fixstr whose body is cut short, and a fixmap without its entries */
    for (size_t n = 1; n < sizeof ok; n++)
        assert_int_equal(proto_raw_to_json((proto_raw_t){ok, n}, &js), PROTO_EBAD);
    const uint8_t cut[] = {0xa5, 'a', 'b'};
    assert_int_equal(proto_validate(cut, sizeof cut, NULL, NULL), PROTO_EBAD);
    proto_buf_free(&js);
}

/* proto_val_map_get skips every entry before the one it wants (proto__rd_skip's short path
 * for fix forms, its long path for the rest), and refuses a map cut anywhere. */
static void test_skip_over_fix_and_long_forms(void **state) {
    (void)state;
    /* {"a": {"x": [1, -1, "s", {}]}, "b": str8 "....40....", "c": uint16 300, "d": 7} */
    uint8_t m[96];
    size_t n = 0;
    const uint8_t head[] = {0x84, 0xa1, 'a', 0x81, 0xa1, 'x', 0x94, 0x01, 0xff, 0xa1, 's',
                            0x80, 0xa1, 'b', 0xd9, 40};
    memcpy(m, head, sizeof head);
    n = sizeof head;
    memset(m + n, 'z', 40);
    n += 40;
    const uint8_t tail[] = {0xa1, 'c', 0xcd, 0x01, 0x2c, 0xa1, 'd', 0x07};
    memcpy(m + n, tail, sizeof tail);
    n += sizeof tail;
    proto_val_t map, v;
    assert_int_equal(proto_val_read(m, n, &map), 0);
    assert_int_equal(map.raw_n, n);
    assert_int_equal(proto_val_map_get(&map, "d", &v), 1);
    assert_int_equal(v.type, PROTO_V_INT);
    assert_int_equal(v.i, 7);
    assert_int_equal(proto_val_map_get(&map, "c", &v), 1);
    assert_int_equal(v.i, 300);
    assert_int_equal(proto_val_map_get(&map, "a", &v), 1);
    assert_int_equal(v.type, PROTO_V_MAP);
    assert_int_equal(v.raw_n, 9);
    for (size_t cut = 1; cut < n; cut++)
        assert_int_equal(proto_val_read(m, cut, &map), PROTO_EBAD);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials_at_every_offset),
        cmocka_unit_test(test_raw_bytes_in_json_strings_are_refused_at_every_offset),
        cmocka_unit_test(test_fix_forms_read_and_checked),
        cmocka_unit_test(test_skip_over_fix_and_long_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
