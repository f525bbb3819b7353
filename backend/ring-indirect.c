/* INDIRECT requests: their segment pages are fetched once into private
 * memory (grant copy, or through the persistent grant cache), and their
 * data buffers come from a bounded per-ring pool; a request that finds
 * the pool empty waits, pending, without its slot being read again. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RING_INTERNAL
#include "ring-int.h"

/* With persistent grants, the indirect pages come through the cache as
 * the data pages do (a frontend that offers the feature grants them from
 * its persistent pool too, as Linux blkfront does): each is copied once,
 * by memcpy, into private memory at the same place a grant copy would
 * put it. False when a page's grant cannot be mapped (read-only, bad, or
 * not persistent after all): the grant copy then takes over and reports
 * it. */
static bool ring_indirect_fetch_persistent(struct ring *r, const struct blkif_req *req,
					   unsigned int np)
{
	unsigned int left = req->nr_segments, i;
	uint64_t now = clock_mono_ns();

	for (i = 0; i < np; i++) {
		unsigned int n = left < BLKIF_SEGS_PER_INDIRECT_PAGE ? left :
				 BLKIF_SEGS_PER_INDIRECT_PAGE;
		bool mapped;
		const char *page = pgrant_get(r->pgrants, req->indirect_grefs[i], now, &mapped);

		if (!page)
			return false;
		if (mapped)
			stat_add(&r->stats.pgrant_maps, 1);
		/* The single read of the guest's page; the decoder and the
		 * validator only see the private copy. */
		memcpy((char *)r->ind_pages + (size_t)i * PLAT_PAGE_SIZE, page,
		       n * sizeof(struct blkif_request_segment));
		left -= n;
	}
	stat_add(&r->stats.pgrant_indirect, np);
	stat_set32(&r->stats.pgrant_mapped, pgrant_count(r->pgrants));
	return true;
}

/* Copies the indirect pages of req (its header validated) once into
 * private memory, decodes its segments into segs and validates them.
 * Only the bytes the segments occupy are copied. */
static int16_t ring_indirect_fetch(struct ring *r, struct blkif_req *req,
				   struct blkif_seg *segs, const char **ret_reason)
{
	unsigned int np = blkif_req_nr_indirect_pages(req), left = req->nr_segments, i;
	const void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	int16_t st;
	int err;

	for (i = 0; i < np; i++)
		pages[i] = (char *)r->ind_pages + (size_t)i * PLAT_PAGE_SIZE;
	/* After one failure, grant copy for this ring's indirect pages: a
	 * frontend that grants them read-only would otherwise cost a failed
	 * map per page per request. */
	if (r->pgrants && !r->ind_copy_fallback) {
		if (ring_indirect_fetch_persistent(r, req, np))
			goto decode;
		r->ind_copy_fallback = true;
	}
	for (i = 0; i < np; i++) {
		xengnttab_grant_copy_segment_t *g = &r->ind_copy[i];
		unsigned int n = left < BLKIF_SEGS_PER_INDIRECT_PAGE ? left :
				 BLKIF_SEGS_PER_INDIRECT_PAGE;

		memset(g, 0, sizeof(*g));
		g->source.foreign.ref = req->indirect_grefs[i];
		g->source.foreign.domid = (uint16_t)r->cfg.fe_domid;
		g->dest.virt = (void *)pages[i];
		g->len = (uint16_t)(n * sizeof(struct blkif_request_segment));
		g->flags = GNTCOPY_source_gref;
		left -= n;
	}
	err = plat_gnttab_copy(r->gt, np, r->ind_copy);
	if (err < 0) {
		*ret_reason = "grant copy of indirect pages failed";
		stat_add(&r->stats.err_grant, 1);
		return BLKIF_RSP_ERROR;
	}
	for (i = 0; i < np; i++) {
		if (r->ind_copy[i].status != GNTST_okay) {
			*ret_reason = "bad indirect page grant";
			stat_add(&r->stats.err_grant, 1);
			return BLKIF_RSP_ERROR;
		}
	}
decode:
	if (blkif_req_indirect_decode(req, pages, np, segs,
				      r->cfg.max_indirect_segments) < 0) {
		*ret_reason = "indirect segments do not decode";
		stat_add(&r->stats.err_validation, 1);
		return BLKIF_RSP_ERROR;
	}
	/* Second pass: now with the segments. */
	st = blkif_req_validate(req, &r->desc, ret_reason);
	if (st != BLKIF_RSP_OKAY)
		stat_add(&r->stats.err_validation, 1);
	return st;
}

/* An INDIRECT request with a header that passed validation, its request
 * slot q and a free pool buffer. */
void ring_take_indirect(struct ring *r, struct rreq *q, struct blkif_req *req)
{
	const char *reason = "";
	int16_t st;

	q->ibuf = r->ibuf_free;
	r->ibuf_free = q->ibuf->next;
	st = ring_indirect_fetch(r, req, q->ibuf->segs, &reason);
	if (st != BLKIF_RSP_OKAY) {
		ring_refuse(r, req, st, reason);
		rreq_set_req(q, req);
		q->refused = true;
		rreq_finish(r, q, st);
		return;
	}
	ring_dispatch(r, q, req);
}

/* The pending indirect request was consumed, so it is answered like any
 * request in flight, stopping or not, as soon as a pool buffer is free. */
bool ring_take_pending(struct ring *r)
{
	if (!r->indirect_pending || !r->ibuf_free)
		return false;
	r->indirect_pending = false;
	ring_take_indirect(r, r->pending_slot, &r->pending_req);
	return true;
}

/* The indirect pool: the config's budget of data buffers, sized by
 * ring_indirect_count; like the bounce buffers, reserved and only backed
 * by memory where requests have used them, and given back when idle. */
int ring_alloc_ibufs(struct ring *r)
{
	unsigned int max = r->cfg.max_indirect_segments, i;
	size_t bytes = (size_t)max * PLAT_PAGE_SIZE;

	if (!max)
		return 0;
	r->nr_ibufs = ring_indirect_count(&r->cfg, r->layout.nr_ents);
	r->ibufs = calloc(r->nr_ibufs, sizeof(*r->ibufs));
	r->ibuf_segs = calloc((size_t)r->nr_ibufs * max, sizeof(*r->ibuf_segs));
	r->ind_pages = aligned_alloc(PLAT_PAGE_SIZE, (size_t)BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST *
				     PLAT_PAGE_SIZE);
	if (!r->ibufs || !r->ibuf_segs || !r->ind_pages)
		return -ENOMEM;
	r->ibuf_data_len = (size_t)r->nr_ibufs * bytes;
	r->ibuf_data = mmap(NULL, r->ibuf_data_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->ibuf_data == MAP_FAILED) {
		r->ibuf_data = NULL;
		return -errno;
	}
	for (i = r->nr_ibufs; i-- > 0;) {
		r->ibufs[i].data = (char *)r->ibuf_data + (size_t)i * bytes;
		r->ibufs[i].segs = r->ibuf_segs + (size_t)i * max;
		r->ibufs[i].next = r->ibuf_free;
		r->ibuf_free = &r->ibufs[i];
	}
	return 0;
}
