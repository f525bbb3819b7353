/* A domain's ring memory, shared among the rings of one vbd. The bounce
 * buffers (one request per ring entry) are what blkif needs to run at
 * all; the indirect pool is what large requests run faster with, so that
 * is what gets cut. */
#include "config.h"

#include "vbd-memory.h"

void vbd_memory_fit(struct ring_config *cfgs, unsigned int nq, size_t left,
		    struct vbd_memory_fit *ret)
{
	unsigned int q, indirect = 0;
	size_t share;

	*ret = (struct vbd_memory_fit){ .wanted = 0 };
	for (q = 0; q < nq; q++) {
		cfgs[q].indirect_budget = 0;
		ret->wanted += ring_memory_bytes(&cfgs[q]);
		ret->floor += ring_memory_floor(&cfgs[q]);
		if (cfgs[q].max_indirect_segments)
			indirect++;
	}
	if (ret->wanted <= left) {
		ret->reserved = ret->wanted;
		return;
	}
	ret->cut = true;
	ret->over = ret->floor > left;
	/* Each ring keeps one request; what is left over is shared evenly
	 * among the rings that can use it. */
	share = ret->over || !indirect ? 0 : (left - ret->floor) / indirect;
	ret->reserved = 0;
	for (q = 0; q < nq; q++) {
		size_t request = (size_t)cfgs[q].max_indirect_segments * PLAT_PAGE_SIZE;

		if (request)
			cfgs[q].indirect_budget = request + share;
		ret->reserved += ring_memory_bytes(&cfgs[q]);
	}
}
