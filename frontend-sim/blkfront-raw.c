/* Raw mode: one request with every field taken from the command line and
 * nothing validated, so anyone can hand the backend a malformed request
 * and see what it answers (or that it answers nothing). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkfront.h"
#include "log.h"

struct raw {
	uint64_t id;
	bool got;
	bool bad;
	int16_t status;
	uint64_t t_submit;	/* ns: the latency shows that an answer waited */
};

static void raw_on_rsp(struct bf_dev *dev, struct bf_slot *slot,
		       const struct blkif_rsp *rsp, void *opaque)
{
	struct raw *r = opaque;

	printf("response: id=%" PRIu64 " op=%u status=%d (%s) after %.0f us\n", rsp->id,
	       rsp->operation, rsp->status, blkif_rsp_status_name(rsp->status),
	       (double)(bf_now_ns() - r->t_submit) / 1e3);
	fflush(stdout);
	if (rsp->id != r->id || r->got) {
		bf_fail(dev, "response id %" PRIu64 " was not in flight (sent id %" PRIu64 ")",
			rsp->id, r->id);
		r->bad = true;
		return;
	}
	if (dev->inflight)
		dev->inflight--;
	r->got = true;
	r->status = rsp->status;
}

int bf_raw_run(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	struct blkif_seg segs[BF_MAX_RAW_SEGS];
	uint32_t new_refs[BF_MAX_RAW_SEGS], ind_refs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	void *data = NULL, *ind = NULL;
	/* Pages of the special grants (ro, other), one share each. */
	void *extra[BF_MAX_RAW_SEGS];
	unsigned int nextra = 0;
	unsigned int nsegs = o->raw_nr_segs, nnew = 0, i, j, nind = 0;
	struct blkif_req req;
	struct raw r = { .id = o->raw_id };
	uint64_t deadline;
	int ret, result = BF_EXIT_SETUP;

	if (o->raw_seg_auto && o->raw_nr_segments > (int)nsegs)
		nsegs = (unsigned int)o->raw_nr_segments;
	if (nsegs > BF_MAX_RAW_SEGS)
		nsegs = BF_MAX_RAW_SEGS;
	for (i = 0; i < nsegs; i++)
		if (i >= o->raw_nr_segs || o->raw_segs[i].kind == BF_GREF_NEW)
			nnew++;
	if (nnew) {
		ret = plat_gntshr_share(dev->gs, dev->be_domid, nnew, true, new_refs, &data);
		if (ret < 0) {
			log_errno(LOG_LEVEL_ERR, ret, "cannot grant %u data pages", nnew);
			data = NULL;
			goto out;
		}
	}
	for (i = 0, j = 0; i < nsegs; i++) {
		enum bf_raw_gref kind = i < o->raw_nr_segs ? o->raw_segs[i].kind : BF_GREF_NEW;

		if (kind == BF_GREF_GIVEN) {
			segs[i].gref = o->raw_segs[i].gref;
		} else if (kind == BF_GREF_DUP) {
			segs[i].gref = i ? segs[i - 1].gref : 0;
		} else if (kind != BF_GREF_NEW) {
			/* ro: the backend may only read it (a READ must fail);
			 * other: granted to ourselves, not the backend; revoked:
			 * access ended before the request goes out. */
			uint32_t to = kind == BF_GREF_OTHER ? dev->domid : dev->be_domid;
			void *page;

			ret = plat_gntshr_share(dev->gs, to, 1, kind != BF_GREF_RO,
						&segs[i].gref, &page);
			if (ret < 0) {
				log_errno(LOG_LEVEL_ERR, ret, "cannot grant a special page");
				goto out;
			}
			if (kind == BF_GREF_REVOKED) {
				ret = plat_gntshr_unshare(dev->gs, page, 1);
				if (ret < 0) {
					log_errno(LOG_LEVEL_ERR, ret, "cannot revoke a grant");
					goto out;
				}
			} else {
				extra[nextra++] = page;
			}
		} else {
			uint64_t s = o->raw_sector + (uint64_t)j * 8;
			unsigned int k;

			/* Fresh pages carry stamps so a write of them can be
			 * checked later by a --verify read. */
			for (k = 0; k < 8; k++)
				bf_stamp_fill((char *)data + (size_t)j * PLAT_PAGE_SIZE + k * 512,
					      s + k, 1);
			segs[i].gref = new_refs[j++];
		}
		segs[i].first_sect = i < o->raw_nr_segs ? o->raw_segs[i].first_sect : 0;
		segs[i].last_sect = i < o->raw_nr_segs ? o->raw_segs[i].last_sect : 7;
	}

	memset(&req, 0, sizeof(req));
	req.operation = (uint8_t)o->raw_op;
	req.id = o->raw_id;
	req.sector_number = o->raw_sector;
	req.handle = o->raw_handle >= 0 ? (uint16_t)o->raw_handle : (uint16_t)dev->devid;
	req.nr_segments = (uint16_t)(o->raw_nr_segments >= 0 ? o->raw_nr_segments : (int)nsegs);
	req.indirect_op = (uint8_t)o->raw_indirect_op;
	req.discard_flag = (uint8_t)o->raw_discard_flag;
	req.discard_nr_sectors = o->raw_discard_sectors;
	if (req.operation == BLKIF_OP_INDIRECT) {
		void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
		unsigned int fit;

		nind = o->raw_indirect_pages >= 0 ? (unsigned int)o->raw_indirect_pages :
		       (nsegs + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) / BLKIF_SEGS_PER_INDIRECT_PAGE;
		if (nind > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
			nind = BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST;
		if (nind) {
			ret = plat_gntshr_share(dev->gs, dev->be_domid, nind, false,
						ind_refs, &ind);
			if (ret < 0) {
				log_errno(LOG_LEVEL_ERR, ret, "cannot grant %u indirect pages", nind);
				ind = NULL;
				goto out;
			}
			for (i = 0; i < nind; i++)
				pages[i] = (char *)ind + (size_t)i * PLAT_PAGE_SIZE;
			fit = nind * BLKIF_SEGS_PER_INDIRECT_PAGE;
			ret = blkif_indirect_pages_encode(pages, nind, segs,
							  nsegs < fit ? nsegs : fit);
			if (ret < 0)
				goto out;
			for (i = 0; i < nind; i++)
				req.indirect_grefs[i] = ind_refs[i];
		}
		for (i = 0; i < o->raw_nr_indirect_grefs; i++)
			req.indirect_grefs[i] = o->raw_indirect_grefs[i];
	} else if (req.operation != BLKIF_OP_DISCARD) {
		if (req.nr_segments > UINT8_MAX) {
			log_err("--nr-segments %u does not fit a direct request's u8",
				req.nr_segments);
			goto out;
		}
		for (i = 0; i < nsegs && i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
			req.seg[i] = segs[i];
	}

	r.t_submit = bf_now_ns();
	ret = bf_ring_submit_raw(dev, &req);
	if (ret == 0)
		ret = bf_ring_push(dev);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot submit the request");
		goto out;
	}
	log_debug("raw request: op %u id %" PRIu64 " sector %" PRIu64 " nr_segments %u",
		  req.operation, req.id, req.sector_number, req.nr_segments);

	deadline = bf_now_ns() + (uint64_t)(o->raw_wait * 1e9);
	while (!r.got && !dev->stop && !dev->ring_broken) {
		bf_ring_consume(dev, raw_on_rsp, &r);
		if (r.got || dev->be_closing || bf_now_ns() >= deadline)
			break;
		bf_ring_wait(dev, 50);
	}
	if (!r.got)
		bf_ring_consume(dev, raw_on_rsp, &r);
	if (!r.got) {
		printf("no response within %g s%s\n", o->raw_wait,
		       dev->be_closing ? " (backend closed the device)" : "");
		result = BF_EXIT_FAIL;
	} else if (o->raw_expect_status_set && r.status != o->raw_expect_status) {
		bf_fail(dev, "status %d, expected %d", r.status, o->raw_expect_status);
		result = BF_EXIT_FAIL;
	} else {
		result = BF_EXIT_OK;
	}
	fflush(stdout);

	bf_xenbus_close(dev);
	/* An answer that arrives late, or a second one, still shows. */
	if (!dev->ring_broken)
		bf_ring_consume(dev, raw_on_rsp, &r);
	dev->rsp_prod_closed = bf_ring_rsp_prod(dev);
	dev->rsp_prod_snapped = true;
	if (r.bad)
		result = BF_EXIT_FAIL;
out:
	for (i = 0; i < nextra; i++)
		if (plat_gntshr_unshare(dev->gs, extra[i], 1) == -EBUSY)
			bf_fail(dev, "backend still maps a special grant after closing");
	if (data && plat_gntshr_unshare(dev->gs, data, nnew) == -EBUSY)
		bf_fail(dev, "backend still maps the request's data pages after closing");
	if (ind && plat_gntshr_unshare(dev->gs, ind, nind) == -EBUSY)
		bf_fail(dev, "backend still maps the indirect pages after closing");
	if (dev->failures && result == BF_EXIT_OK)
		result = BF_EXIT_FAIL;
	return result;
}
