/* base/clock.h: the clocks every process reads: monotonic time for deadlines and latency,
 * wall time for what people and other hosts read, and the boot id that tells whether two
 * monotonic readings (one stored, one now) count from the same boot. */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds and microseconds (counts from boot). */
int64_t base_mono_ms(void);
int64_t base_mono_us(void);
/* CLOCK_REALTIME: milliseconds since the Unix epoch. */
int64_t base_unix_ms(void);
/* The kernel's boot id (/proc/sys/kernel/random/boot_id) into out, NUL-terminated.
 * Returns: 0. Errors: -errno when it cannot be read (out gets ""). */
int base_boot_id(char *out, size_t cap);

#endif
