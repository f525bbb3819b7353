/* The BLKBACKD_CRASH_AT test hooks of crash.h: which point kills the
 * process, and after how many passes. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"

enum crash_point crash_at = CRASH_NONE;
_Atomic long crash_countdown;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

static void crash_init(void)
{
	static const char *const names[] = {
		"", "consumed", "responded", "pushed",
		"sync-consumed", "sync-responded", "sync-pushed",
	};
	const char *env = getenv("BLKBACKD_CRASH_AT"), *colon;
	long n;

	if (!env || !(colon = strchr(env, ':')))
		return;
	n = strtol(colon + 1, NULL, 10);
	for (unsigned int i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == (size_t)(colon - env) &&
		    strncmp(env, names[i], (size_t)(colon - env)) == 0 && n > 0) {
			crash_at = (enum crash_point)i;
			atomic_store(&crash_countdown, n);
		}
	}
}

void crash_setup(void)
{
	pthread_once(&crash_once, crash_init);
}
