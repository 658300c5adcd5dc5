/* test_base_clock.c: base/clock.h: the monotonic clocks never go back and agree with each
 * other, wall time is Unix time, and the boot id reads as the kernel writes it (skipped where
 * /proc has none). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "base/clock.h"

static void test_clock_monotonic_never_goes_back(void **state) {
    (void)state;
    int64_t ms = base_mono_ms(), us = base_mono_us();
    for (int i = 0; i < 1000; i++) {
        int64_t ms2 = base_mono_ms(), us2 = base_mono_us();
        assert_true(ms2 >= ms);
        assert_true(us2 >= us);
        ms = ms2, us = us2;
    }
    assert_true(us / 1000 >= ms); /* read after ms: the same clock, finer */
}

static void test_clock_unix_ms_is_wall_time(void **state) {
    (void)state;
    int64_t before = (int64_t)time(NULL);
    int64_t ms = base_unix_ms();
    int64_t after = (int64_t)time(NULL);
    assert_true(ms / 1000 >= before && ms / 1000 <= after);
}

static void test_clock_boot_id_reads_the_kernels(void **state) {
    (void)state;
    char id[64];
    int rc = base_boot_id(id, sizeof id);
    if (rc == -ENOENT) skip();
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(id), 36); /* a UUID, without its newline */
    assert_int_equal(id[8], '-');
    char small[4];
    assert_int_equal(base_boot_id(small, sizeof small), 0);
    assert_int_equal(strlen(small), 3); /* cut, still a C string */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_monotonic_never_goes_back),
        cmocka_unit_test(test_clock_unix_ms_is_wall_time),
        cmocka_unit_test(test_clock_boot_id_reads_the_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
