/* What a ring's buffers cost, and giving them back while it is idle.
 * The bounce buffers (one request's worth per ring entry) and the
 * indirect pool are reserved at start and backed on first use; a guest
 * that ran one burst of large requests would otherwise keep them backed
 * for as long as it stays connected. The owner adds these figures up per
 * domain (ring.h) before it starts the rings. */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>

#define RING_INTERNAL
#include "ring-int.h"

/* Buffers of indirect requests in flight for a ring of nr_ents entries:
 * as many as budget bytes hold, at least one, at most one per entry. */
unsigned int ring_indirect_count(const struct ring_config *cfg, unsigned int nr_ents)
{
	size_t bytes = (size_t)cfg->max_indirect_segments * PLAT_PAGE_SIZE;
	size_t budget = cfg->indirect_budget ? cfg->indirect_budget : BLKBACKD_RING_INDIRECT_BUDGET;
	size_t n;

	if (!bytes)
		return 0;
	n = budget / bytes;
	if (n < 1)
		n = 1;
	if (n > nr_ents)
		n = nr_ents;
	return (unsigned int)n;
}

static size_t ring_memory_with(const struct ring_config *cfg, size_t budget)
{
	struct blkif_ring_layout layout;
	struct ring_config c = *cfg;

	if (cfg->order > BLKBACKD_MAX_RING_ORDER ||
	    blkif_ring_layout_init(&layout, cfg->abi, cfg->order) < 0)
		return 0;
	c.indirect_budget = budget;
	return (size_t)layout.nr_ents * RING_BUF_BYTES +
	       (size_t)ring_indirect_count(&c, layout.nr_ents) *
	       cfg->max_indirect_segments * PLAT_PAGE_SIZE;
}

size_t ring_memory_bytes(const struct ring_config *cfg)
{
	return ring_memory_with(cfg, cfg->indirect_budget);
}

size_t ring_memory_floor(const struct ring_config *cfg)
{
	/* A budget of one byte rounds up to the one request every ring
	 * that advertises INDIRECT must be able to take. */
	return ring_memory_with(cfg, 1);
}

/* Ring thread, before it sleeps; work: this pass took requests. Returns
 * the milliseconds until the buffers are due to go back, -1 when there
 * is nothing to give back. */
int ring_memory_idle(struct ring *r, bool work)
{
	const uint64_t idle = (uint64_t)BLKBACKD_RING_IDLE_RELEASE_MS * 1000000u;
	uint64_t now;

	if (work)
		r->buffers_backed = true;
	if (work || r->inflight || r->indirect_pending || ring_replay_pending(r)) {
		r->idle_since = 0;
		return -1;
	}
	if (!r->buffers_backed)
		return -1;
	now = clock_mono_ns();
	if (!r->idle_since)
		r->idle_since = now;
	if (now - r->idle_since < idle)
		return (int)((idle - (now - r->idle_since)) / 1000000u) + 1;
	/* Nothing is in flight: no buffer holds data anyone still needs.
	 * The mappings stay; their pages come back zeroed on next use. */
	if (madvise(r->bufs, r->bufs_len, MADV_DONTNEED) < 0 ||
	    (r->ibuf_data && madvise(r->ibuf_data, r->ibuf_data_len, MADV_DONTNEED) < 0)) {
		if (ring_may_warn(r))
			ring_log(r, LOG_LEVEL_WARN, errno, "cannot give idle buffers back");
	} else {
		stat_add(&r->stats.buffer_releases, 1);
	}
	r->buffers_backed = false;
	r->idle_since = 0;
	return -1;
}
