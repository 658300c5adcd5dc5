/* test_utf8.c: the broker's UTF-8 helpers (broker/utf8.h): brk_utf8_clean turns any bytes into
 * well-formed UTF-8 for an error reply, never splitting a character when it cuts. */
#include <string.h>

#include "harness.h"
#include "utf8.h"

static void test_clean_keeps_valid_text_as_it_is(void **state) {
    (void)state;
    char out[64];
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_int_equal(brk_utf8_clean(out, sizeof out, s, strlen(s)), strlen(s));
    assert_string_equal(out, s);
}

static void test_clean_replaces_each_bad_byte_with_a_question_mark(void **state) {
    (void)state;
    char out[64];
    /* a lone continuation, an invalid lead, a cut sequence, an overlong form, a surrogate */
    const char s[] = "a\x80" "b\xff" "c\xe2\x82" "d\xc0\xaf" "e\xed\xa0\x80";
    size_t n = brk_utf8_clean(out, sizeof out, s, sizeof s - 1);
    assert_string_equal(out, "a?b?c??d??e???");
    assert_int_equal(n, strlen(out));
    assert_true(brk_utf8_valid(out, n));
}

static void test_clean_cuts_between_characters_only(void **state) {
    (void)state;
    char out[6]; /* room for 5 bytes and the NUL */
    const char *s = "ab\xe2\x82\xac" "cd";  /* the euro sign would end at byte 5 of 5 */
    assert_int_equal(brk_utf8_clean(out, sizeof out, s, strlen(s)), 5);
    assert_string_equal(out, "ab\xe2\x82\xac");
    char small[5]; /* 4 bytes: the euro sign no longer fits whole, so it is left out */
    assert_int_equal(brk_utf8_clean(small, sizeof small, s, strlen(s)), 2);
    assert_string_equal(small, "ab");
    assert_int_equal(brk_utf8_clean(small, 0, s, strlen(s)), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_keeps_valid_text_as_it_is),
        cmocka_unit_test(test_clean_replaces_each_bad_byte_with_a_question_mark),
        cmocka_unit_test(test_clean_cuts_between_characters_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
