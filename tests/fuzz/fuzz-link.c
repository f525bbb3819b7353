/* Link shim for harnesses that link libblkbackd.a without blkbackd.c:
 * ring.c wakes the main loop through blkbackd_wake, which lives next to
 * main(). The harnesses run no rings, so nothing calls it. */
#include "config.h"

#include <stdlib.h>

#include "blkbackd.h"

void blkbackd_wake(struct blkbackd *d)
{
	abort();	/* reached only if a harness started a ring */
}
