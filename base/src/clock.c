/* base/src/clock.c: base/clock.h. */
#include "base/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t read_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t base_mono_ms(void) { return read_ns(CLOCK_MONOTONIC) / 1000000; }
int64_t base_mono_us(void) { return read_ns(CLOCK_MONOTONIC) / 1000; }
int64_t base_unix_ms(void) { return read_ns(CLOCK_REALTIME) / 1000000; }

int base_boot_id(char *out, size_t cap) {
    if (cap) out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f) return -errno;
    if (!cap || !fgets(out, (int)cap, f)) {
        if (cap) out[0] = '\0';
        fclose(f);
        return -EIO;
    }
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return 0;
}
