/* How a vbd's rings share what is left of their domain's ring memory.
 * Pure (no xenstore, no rings started), so tests/unit checks it alone. */
#ifndef BLKBACKD_VBD_MEMORY_H
#define BLKBACKD_VBD_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

#include "ring.h"

struct vbd_memory_fit {
	size_t wanted;		/* every ring with the default indirect budget */
	size_t floor;		/* every ring with one indirect request */
	size_t reserved;	/* what the rings are started with */
	bool cut;		/* indirect budgets were cut to fit */
	bool over;		/* not even the floor fits */
};

/* Sets each of the nq configs' indirect budget so that together the rings
 * pin at most left bytes: the default when everything fits, otherwise one
 * request per ring plus an even share of what remains. When not even the
 * floor fits, over says so and the budgets are the floor's. */
void vbd_memory_fit(struct ring_config *cfgs, unsigned int nq, size_t left,
		    struct vbd_memory_fit *ret);

#endif
