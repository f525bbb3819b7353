/* Moving a request's data between guest pages and its private buffer:
 * one batch of grant copies per drain, or memcpy through the persistent
 * grant cache when it is on and the grant maps. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define RING_INTERNAL
#include "ring-int.h"

/* ---- data movement ---- */

/* Moves q's data through persistent grants (mapping what is not mapped
 * yet) with memcpy; false when a segment's grant cannot be mapped, and
 * then q goes the grant copy way, which reports the bad grant. A guest
 * that names one page in two requests in flight only races itself: each
 * request copies from and to its own private buffer. */
static bool rreq_copy_persistent(struct ring *r, struct rreq *q, bool to_guest)
{
	const struct blkif_seg *s = blkif_req_segs(&q->req);
	uint64_t now = clock_mono_ns();
	unsigned int i, off = 0;

	for (i = 0; i < q->req.nr_segments; i++) {
		unsigned int len = blkif_seg_len(&s[i]);
		char *ours = (char *)q->iov.iov_base + off;
		bool mapped;
		char *page = pgrant_get(r->pgrants, s[i].gref, now, &mapped);

		/* Whatever was copied so far is copied again by the grant
		 * copy that takes over: same bytes, same places. */
		if (!page)
			return false;
		if (mapped)
			stat_add(&r->stats.pgrant_maps, 1);
		if (to_guest)
			memcpy(page + blkif_seg_offset(&s[i]), ours, len);
		else
			memcpy(ours, page + blkif_seg_offset(&s[i]), len);
		off += len;
	}
	stat_add(&r->stats.pgrant_hits, q->req.nr_segments);
	stat_set32(&r->stats.pgrant_mapped, pgrant_count(r->pgrants));
	return true;
}

/* Builds the grant copy segments of q at segs; to_guest picks direction. */
static unsigned int rreq_copy_segs(struct ring *r, struct rreq *q, bool to_guest,
				   xengnttab_grant_copy_segment_t *segs)
{
	const struct blkif_seg *s = blkif_req_segs(&q->req);
	unsigned int i, off = 0;

	for (i = 0; i < q->req.nr_segments; i++) {
		xengnttab_grant_copy_segment_t *g = &segs[i];
		unsigned int len = blkif_seg_len(&s[i]);

		memset(g, 0, sizeof(*g));
		if (to_guest) {
			g->source.virt = (char *)q->iov.iov_base + off;
			g->dest.foreign.ref = s[i].gref;
			g->dest.foreign.offset = (uint16_t)blkif_seg_offset(&s[i]);
			g->dest.foreign.domid = (uint16_t)r->cfg.fe_domid;
			g->flags = GNTCOPY_dest_gref;
		} else {
			g->source.foreign.ref = s[i].gref;
			g->source.foreign.offset = (uint16_t)blkif_seg_offset(&s[i]);
			g->source.foreign.domid = (uint16_t)r->cfg.fe_domid;
			g->dest.virt = (char *)q->iov.iov_base + off;
			g->flags = GNTCOPY_source_gref;
		}
		g->len = (uint16_t)len;
		off += len;
	}
	return q->req.nr_segments;
}

/* One batched grant copy for requests at the head of the copy list, as
 * many as segs holds (every request fits: segs_cap is at least the most
 * segments one request may have), then each goes on: writes to the engine,
 * reads to their response. Returns false when the list was empty. */
static bool ring_copy_batch(struct ring *r)
{
	struct rreq *q, *next, *batch = r->copy_list, *last = NULL;
	unsigned int n = 0, i;
	int err = 0;

	if (!batch)
		return false;
	for (q = batch; q && n + q->req.nr_segments <= r->segs_cap; q = q->next) {
		bool to_guest = q->stage == RREQ_COPY_OUT;

		q->via_pgrant = r->pgrants && rreq_copy_persistent(r, q, to_guest);
		if (!q->via_pgrant)
			n += rreq_copy_segs(r, q, to_guest, r->segs + n);
		last = q;
	}
	/* Detach the batch: what follows stays queued for the next round. */
	r->copy_list = last->next;
	last->next = NULL;
	if (!r->copy_list)
		r->copy_tail = &r->copy_list;
	if (n)
		err = plat_gnttab_copy(r->gt, n, r->segs);
	if (err < 0 && ring_may_warn(r))
		ring_log(r, LOG_LEVEL_WARN, err, "grant copy failed");

	n = 0;
	for (q = batch; q; q = next) {
		bool ok = err >= 0;

		next = q->next;
		if (q->via_pgrant) {
			ok = true;
		} else {
			/* Every segment's own status: one bad or revoked
			 * grant fails its request only. */
			for (i = 0; i < q->req.nr_segments; i++)
				if (r->segs[n + i].status != GNTST_okay)
					ok = false;
			n += q->req.nr_segments;
		}
		if (!ok)
			stat_add(&r->stats.err_grant, 1);
		if (q->stage == RREQ_COPY_OUT) {
			rreq_finish(r, q, ok ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR);
		} else if (!ok) {
			if (ring_may_warn(r))
				ring_log(r, LOG_LEVEL_WARN, 0, "bad grant in request");
			rreq_finish(r, q, BLKIF_RSP_ERROR);
		} else if (r->barrier == q) {
			/* Its data is private now; it still waits for the drain. */
			q->stage = RREQ_BARRIER_WAIT;
		} else {
			rreq_submit(r, q);
		}
	}
	return true;
}

void ring_copy_flush(struct ring *r)
{
	while (ring_copy_batch(r))
		;
}
