/* Small helpers every program in the tree uses: the monotonic clock in the
 * units callers want, array length and a power-of-two test. One copy here
 * so that no file grows its own. */
#ifndef BLKBACK_UTIL_H
#define BLKBACK_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC: intervals and deadlines, never wall time. */
static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}

static inline time_t clock_mono_sec(void)
{
	return (time_t)(clock_mono_ns() / 1000000000u);
}

static inline bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

#endif
