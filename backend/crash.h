/* BLKBACKD_CRASH_AT test hooks: points in the ring pipeline where a test
 * can have the process killed, to check recovery where it is hardest.
 * Private to the ring library; a no-op unless the variable is set. */
#ifndef BLKBACKD_CRASH_H
#define BLKBACKD_CRASH_H

#include <signal.h>
#include <stdatomic.h>

/* BLKBACKD_CRASH_AT=POINT:N kills the process with SIGKILL the Nth time
 * any ring passes POINT, so tests can stop us exactly where recovery is
 * hardest: a request consumed but not issued, a response written but not
 * published, published but its request not yet retired. The sync-
 * points count flushes and barriers only, for tests of their ordering
 * across a crash. */
enum crash_point {
	CRASH_NONE, CRASH_CONSUMED, CRASH_RESPONDED, CRASH_PUSHED,
	CRASH_SYNC_CONSUMED, CRASH_SYNC_RESPONDED, CRASH_SYNC_PUSHED,
};

/* Set once, by crash_setup, before any ring thread runs. */
extern enum crash_point crash_at;
extern _Atomic long crash_countdown;

/* Reads BLKBACKD_CRASH_AT the first time; any number of times after. */
void crash_setup(void);

static inline void crash_point(enum crash_point p)
{
	if (crash_at == p && atomic_fetch_sub(&crash_countdown, 1) == 1)
		raise(SIGKILL);
}

#endif
