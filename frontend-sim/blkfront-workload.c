/* The workload generator: keeps up to qd requests on the ring (random or
 * sequential reads and writes, flushes, barriers and discards mixed in by
 * count), judges every answer, and with --verify stamps what it writes,
 * checks what it reads and ends with a read-back of everything written. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkfront.h"
#include "log.h"

#define SECT 512u
#define DRAIN_IDLE_NS 1000000000ull	/* give up on answers after 1 s of silence */

struct wl {
	struct bf_dev *dev;
	struct bf_stats *st;
	struct bf_verify *v;
	uint64_t area_first, area_nr;	/* 512-byte sectors */
	uint32_t ss_sect, bs_sect, align_sect;
	uint32_t disc_gran, disc_off, disc_len;
	uint64_t seq_next, rb_next;
	uint64_t submitted, target_ops, deadline;
	uint64_t order_next;		/* submission numbers for slot->order */
	unsigned int barriers_inflight;
	uint64_t rng;
	bool use_indirect;
	bool flush, discard, barrier;
	bool readback;			/* in the read-back phase */
};

static uint64_t wl_rand(struct wl *w)
{
	/* xorshift64*: fast, and reproducible from --seed. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

static bool kind_writes(enum bf_kind k)
{
	return k == BF_KIND_WRITE || k == BF_KIND_BARRIER || k == BF_KIND_DISCARD;
}

static uint8_t kind_op(enum bf_kind k)
{
	switch (k) {
	case BF_KIND_WRITE:
		return BLKIF_OP_WRITE;
	case BF_KIND_BARRIER:
		return BLKIF_OP_WRITE_BARRIER;
	case BF_KIND_FLUSH:
		return BLKIF_OP_FLUSH_DISKCACHE;
	case BF_KIND_DISCARD:
		return BLKIF_OP_DISCARD;
	default:
		return BLKIF_OP_READ;
	}
}

static enum bf_kind wl_pick(struct wl *w, uint64_t n)
{
	const struct bf_opts *o = w->dev->opts;

	if (w->flush && n % o->flush_every == 0)
		return BF_KIND_FLUSH;
	if (w->discard && n % o->discard_every == 0)
		return BF_KIND_DISCARD;
	if (w->barrier && n % o->barrier_every == 0)
		return BF_KIND_BARRIER;
	switch (o->workload) {
	case BF_WL_RANDREAD:
	case BF_WL_SEQREAD:
		return BF_KIND_READ;
	case BF_WL_RANDWRITE:
	case BF_WL_SEQWRITE:
		return BF_KIND_WRITE;
	default:
		return (int)(wl_rand(w) % 100) < o->rwmix ? BF_KIND_READ : BF_KIND_WRITE;
	}
}

/* Start sector for a request of nr sectors, or -EAGAIN when verify's
 * range locks keep it from going now. */
static int wl_place(struct wl *w, enum bf_kind k, uint32_t nr, uint64_t *ret_sector)
{
	const struct bf_opts *o = w->dev->opts;
	bool seq = o->workload == BF_WL_SEQREAD || o->workload == BF_WL_SEQWRITE;
	uint64_t s = 0;
	int tries;

	for (tries = 0; tries < 8; tries++) {
		if (k == BF_KIND_DISCARD) {
			uint64_t n = (w->area_nr - w->disc_off - nr) / w->disc_gran + 1;

			s = w->area_first + w->disc_off + (wl_rand(w) % n) * w->disc_gran;
		} else if (seq) {
			if (w->seq_next + nr > w->area_first + w->area_nr)
				w->seq_next = w->area_first;
			s = w->seq_next;
		} else {
			uint64_t n = (w->area_nr - nr) / w->align_sect + 1;

			s = w->area_first + (wl_rand(w) % n) * w->align_sect;
		}
		if (!w->v || bf_verify_range_is_free(w->v, s, nr, kind_writes(k)))
			break;
		if (seq)
			return -EAGAIN;
	}
	if (tries == 8)
		return -EAGAIN;
	if (seq && k != BF_KIND_DISCARD)
		w->seq_next = s + nr;
	*ret_sector = s;
	return 0;
}

static int wl_submit(struct wl *w, struct bf_slot *slot, enum bf_kind k,
		     uint64_t sector, uint32_t nr)
{
	struct bf_dev *dev = w->dev;
	const struct bf_opts *o = dev->opts;
	struct blkif_req req;
	uint32_t i;
	int ret;

	slot->kind = k;
	slot->sector = sector;
	slot->nr_sect = nr;
	slot->gen = 0;
	slot->order = ++w->order_next;
	if (k == BF_KIND_FLUSH) {
		memset(&req, 0, sizeof(req));
		req.operation = BLKIF_OP_FLUSH_DISKCACHE;
		req.handle = (uint16_t)dev->devid;
		req.sector_number = 0;
		slot->nr_sect = 0;
	} else if (k == BF_KIND_DISCARD) {
		memset(&req, 0, sizeof(req));
		req.operation = BLKIF_OP_DISCARD;
		req.handle = (uint16_t)dev->devid;
		/* sect_units: 1 but for the Windows reading (sector-size). */
		req.sector_number = sector / (dev->sect_units ? dev->sect_units : 1);
		req.discard_nr_sectors = nr / (dev->sect_units ? dev->sect_units : 1);
	} else {
		bool wr = k == BF_KIND_WRITE || k == BF_KIND_BARRIER;

		ret = bf_ring_req_build(dev, slot, kind_op(k), sector, nr,
					w->use_indirect && !w->readback, &req);
		if (ret < 0)
			return ret;
		if (wr && w->v && !o->expect_readonly) {
			slot->gen = bf_verify_gen_next(w->v);
			for (i = 0; i < nr; i++)
				bf_stamp_fill((char *)slot->data + (size_t)i * SECT,
					      sector + i, slot->gen);
		} else if (!wr && w->v) {
			/* A backend that answers OKAY without copying
			 * must not pass for one that read stale data. */
			memset(slot->data, 0xa5, (size_t)nr * SECT);
		}
	}
	if (w->v && slot->nr_sect) {
		bf_verify_range_lock(w->v, sector, slot->nr_sect, kind_writes(k));
		if (slot->gen)
			bf_verify_write_submitted(w->v, sector, nr, slot->gen);
	}
	ret = bf_ring_submit(dev, slot, &req);
	if (ret < 0 && w->v && slot->nr_sect)
		bf_verify_range_unlock(w->v, sector, slot->nr_sect, kind_writes(k));
	if (ret == 0 && k == BF_KIND_BARRIER)
		w->barriers_inflight++;
	return ret;
}

/* blkif.h: writes issued before a WRITE_BARRIER complete before it runs,
 * writes issued after it do not run before it completes. A backend
 * answers a request when it completed, so on one ring no earlier write
 * may still be unanswered when the barrier's answer comes, and no later
 * write may be answered while the barrier is not. Reads are not ordered
 * by it. Counts the violations seen in this answer. */
static unsigned int wl_barrier_check(struct wl *w, const struct bf_slot *slot)
{
	struct bf_dev *dev = w->dev;
	unsigned int i, bad = 0;

	if (!w->barriers_inflight || !kind_writes(slot->kind))
		return 0;
	for (i = 0; i < dev->nr_slots; i++) {
		const struct bf_slot *o = &dev->slots[i];

		if (!o->busy || o == slot || o->queue != slot->queue || !kind_writes(o->kind))
			continue;
		if (slot->kind == BF_KIND_BARRIER && o->order < slot->order) {
			bf_fail(dev, "barrier at sector %" PRIu64 " answered while a write "
				"issued before it (sector %" PRIu64 ") is not", slot->sector,
				o->sector);
			bad++;
		} else if (o->kind == BF_KIND_BARRIER && o->order < slot->order) {
			bf_fail(dev, "write at sector %" PRIu64 " answered before the barrier "
				"issued before it (sector %" PRIu64 ")", slot->sector, o->sector);
			bad++;
		}
	}
	return bad;
}

/* One more request, or -EAGAIN when none can go now, -ENODATA when the
 * phase has nothing left to send. */
static int wl_next(struct wl *w)
{
	struct bf_dev *dev = w->dev;
	struct bf_slot *slot;
	enum bf_kind k;
	uint64_t sector = 0;
	uint32_t nr;
	int ret;

	if (w->readback) {
		uint64_t end = w->area_first + w->area_nr;
		uint32_t chunk = dev->pages_per_slot * 8, i;

		chunk -= chunk % w->ss_sect;
		/* Skip chunks that hold nothing we wrote. */
		for (; w->rb_next < end; w->rb_next += chunk) {
			nr = end - w->rb_next < chunk ? (uint32_t)(end - w->rb_next) : chunk;
			for (i = 0; i < nr; i++)
				if (bf_verify_sector_is_known(w->v, w->rb_next + i))
					break;
			if (i < nr)
				break;
		}
		if (w->rb_next >= end)
			return -ENODATA;
		nr = end - w->rb_next < chunk ? (uint32_t)(end - w->rb_next) : chunk;
		slot = bf_ring_slot_get(dev);
		if (!slot)
			return -EAGAIN;
		ret = wl_submit(w, slot, BF_KIND_VERIFY_READ, w->rb_next, nr);
		if (ret < 0) {
			bf_ring_slot_put(dev, slot);
			return ret;
		}
		w->rb_next += nr;
		return 0;
	}

	if (w->target_ops && w->submitted >= w->target_ops)
		return -ENODATA;
	if (w->deadline && bf_now_ns() >= w->deadline)
		return -ENODATA;
	k = wl_pick(w, w->submitted + 1);
	nr = k == BF_KIND_DISCARD ? w->disc_len : w->bs_sect;
	if (k != BF_KIND_FLUSH) {
		ret = wl_place(w, k, nr, &sector);
		if (ret < 0)
			return ret;
	}
	slot = bf_ring_slot_get(dev);
	if (!slot)
		return -EAGAIN;
	ret = wl_submit(w, slot, k, sector, nr);
	if (ret < 0) {
		bf_ring_slot_put(dev, slot);
		return ret;
	}
	w->submitted++;
	return 0;
}

static void wl_on_rsp(struct bf_dev *dev, struct bf_slot *slot,
		      const struct blkif_rsp *rsp, void *opaque)
{
	struct wl *w = opaque;
	const struct bf_opts *o = dev->opts;
	struct bf_stats *st = w->st;
	uint8_t want_op;
	bool expect_error, okay = rsp->status == BLKIF_RSP_OKAY;

	if (!slot) {
		bf_fail(dev, "response for id %#" PRIx64 " which is not in flight "
			"(unknown or duplicate; op %u status %d)", rsp->id,
			rsp->operation, rsp->status);
		st->errors++;
		return;
	}
	bf_stats_latency_add(st, bf_now_ns() - slot->t_submit);
	st->errors += wl_barrier_check(w, slot);
	if (slot->kind == BF_KIND_BARRIER)
		w->barriers_inflight--;
	st->ops[slot->kind]++;
	st->bytes[slot->kind] += (uint64_t)slot->nr_sect * SECT;

	/* Linux blkfront wants the data op echoed for INDIRECT requests. */
	want_op = kind_op(slot->kind);
	if (rsp->operation != want_op) {
		bf_fail(dev, "response to id %#" PRIx64 " has operation %u, request "
			"was %u", rsp->id, rsp->operation, want_op);
		st->errors++;
	}
	expect_error = o->expect_readonly && kind_writes(slot->kind);
	if (expect_error) {
		if (rsp->status == BLKIF_RSP_ERROR ||
		    (slot->kind == BF_KIND_DISCARD && rsp->status == BLKIF_RSP_EOPNOTSUPP)) {
			st->expected_errors++;
		} else {
			bf_fail(dev, "%s of sectors %" PRIu64 "+%u on a read-only disk "
				"answered %s, expected ERROR",
				slot->kind == BF_KIND_DISCARD ? "discard" : "write",
				slot->sector, slot->nr_sect, blkif_rsp_status_name(rsp->status));
			st->errors++;
		}
	} else if (!okay) {
		bf_fail(dev, "op %u of sectors %" PRIu64 "+%u answered %s (%d)",
			kind_op(slot->kind), slot->sector, slot->nr_sect,
			blkif_rsp_status_name(rsp->status), rsp->status);
		st->errors++;
	}

	if (w->v && slot->nr_sect) {
		if (slot->gen)
			bf_verify_write_done(w->v, slot->sector, slot->nr_sect,
					     slot->gen, okay);
		else if (slot->kind == BF_KIND_DISCARD && !expect_error)
			bf_verify_discard_done(w->v, slot->sector, slot->nr_sect, okay);
		else if ((slot->kind == BF_KIND_READ || slot->kind == BF_KIND_VERIFY_READ) &&
			 okay)
			st->mismatches += bf_verify_read(w->v, dev, slot->data,
							 slot->sector, slot->nr_sect);
		bf_verify_range_unlock(w->v, slot->sector, slot->nr_sect,
				       kind_writes(slot->kind));
	}
	bf_ring_slot_put(dev, slot);
}

static int wl_setup(struct wl *w)
{
	struct bf_dev *dev = w->dev;
	const struct bf_opts *o = dev->opts;
	const struct bf_backend_info *be = &dev->be;
	/* sectors counts 512-byte units whatever sector-size is, as Linux
	 * blkback writes it and Linux blkfront reads it. */
	uint64_t dev_nr = be->sectors;

	w->ss_sect = be->sector_size / SECT;
	if (o->bs % be->sector_size) {
		log_err("--bs %u is not a multiple of the %u-byte logical sector",
			o->bs, be->sector_size);
		return -EINVAL;
	}
	if (o->offset % be->sector_size || o->size % be->sector_size) {
		log_err("--offset and --size must be multiples of %u bytes", be->sector_size);
		return -EINVAL;
	}
	w->bs_sect = o->bs / SECT;
	w->area_first = o->offset / SECT;
	if (w->area_first >= dev_nr) {
		log_err("--offset %" PRIu64 " is beyond the disk (%" PRIu64 " bytes)",
			o->offset, dev_nr * SECT);
		return -EINVAL;
	}
	w->area_nr = o->size ? o->size / SECT : dev_nr - w->area_first;
	if (w->area_nr > dev_nr - w->area_first) {
		log_err("--offset + --size passes the end of the disk (%" PRIu64 " bytes)",
			dev_nr * SECT);
		return -EINVAL;
	}
	if (w->area_nr < w->bs_sect) {
		log_err("the area (%" PRIu64 " bytes) is smaller than --bs", w->area_nr * SECT);
		return -EINVAL;
	}
	/* Random offsets aligned to bs when it is a power of two, like fio. */
	w->align_sect = (w->bs_sect & (w->bs_sect - 1)) ? w->ss_sect : w->bs_sect;

	w->flush = o->flush_every > 0;
	if (w->flush && !be->feature_flush) {
		log_warn("backend has no feature-flush-cache: --flush-every ignored");
		w->flush = false;
	}
	w->barrier = o->barrier_every > 0;
	if (w->barrier && !be->feature_barrier) {
		log_warn("backend has no feature-barrier: --barrier-every ignored");
		w->barrier = false;
	}
	w->discard = o->discard_every > 0;
	if (w->discard && !be->feature_discard && !o->expect_readonly) {
		log_warn("backend has no feature-discard: --discard-every ignored");
		w->discard = false;
	}
	if (w->discard) {
		uint32_t g = be->discard_granularity / SECT;

		w->disc_gran = g > w->ss_sect ? g : w->ss_sect;
		w->disc_off = (be->discard_alignment / SECT) % w->disc_gran;
		w->disc_len = (w->bs_sect + w->disc_gran - 1) / w->disc_gran * w->disc_gran;
		if (w->disc_off + w->disc_len > w->area_nr) {
			log_warn("area too small for a discard of %u sectors: discards off",
				 w->disc_len);
			w->discard = false;
		}
	}
	if ((be->info & VDISK_READONLY) && !o->expect_readonly &&
	    o->workload != BF_WL_RANDREAD && o->workload != BF_WL_SEQREAD &&
	    o->workload != BF_WL_READBACK) {
		log_err("the disk is read-only: use a read workload, or --expect-readonly "
			"to check that writes are refused");
		return -EROFS;
	}
	if (o->expect_readonly && !(be->info & VDISK_READONLY))
		log_warn("--expect-readonly, but the backend's info has no read-only bit");

	w->use_indirect = o->indirect || w->bs_sect > 8 * BLKIF_MAX_SEGMENTS_PER_REQUEST;
	if (w->use_indirect && be->max_indirect_segments < (w->bs_sect + 7) / 8) {
		log_err("--bs %u needs %u segments: backend allows %u indirect segments%s",
			o->bs, (w->bs_sect + 7) / 8, be->max_indirect_segments,
			be->max_indirect_segments ? "" : " (no indirect requests)");
		return -EINVAL;
	}
	/* Several queues: the depth is spread over all their rings. */
	if (o->qd > dev->layout.nr_ents * dev->nr_queues) {
		log_err("--qd %u is more than the ring%s %u entries (raise --ring-order)",
			o->qd, dev->nr_queues > 1 ? "s'" : "'s",
			dev->layout.nr_ents * dev->nr_queues);
		return -EINVAL;
	}
	w->seq_next = w->area_first;
	w->rb_next = w->area_first;
	w->rng = o->seed ? o->seed : 0x853c49e6748fea9bull;
	if (o->ops)
		w->target_ops = o->ops;
	if (o->seconds > 0)
		w->deadline = bf_now_ns() + (uint64_t)(o->seconds * 1e9);
	if (!o->ops && o->seconds <= 0 && o->workload != BF_WL_READBACK)
		w->deadline = bf_now_ns() + 10000000000ull;
	return 0;
}

/* Wait for in-flight answers: all of them, or until the backend is gone,
 * or 1 s without one when the backend is closing (it stops consuming, so
 * requests it never took will never be answered). */
static void wl_drain(struct wl *w)
{
	struct bf_dev *dev = w->dev;
	uint64_t deadline = bf_now_ns() + (uint64_t)(dev->opts->timeout * 1e9);
	uint64_t last = bf_now_ns();

	while (dev->inflight && !dev->ring_broken) {
		uint64_t now = bf_now_ns();
		int n;

		if (now >= deadline) {
			bf_fail(dev, "%u requests unanswered after %.1f s", dev->inflight,
				dev->opts->timeout);
			break;
		}
		if (dev->be_closing && now - last >= DRAIN_IDLE_NS)
			break;
		bf_ring_wait(dev, 50);
		n = bf_ring_consume(dev, wl_on_rsp, w);
		if (n > 0)
			last = bf_now_ns();
	}
}

static void wl_loop(struct wl *w)
{
	struct bf_dev *dev = w->dev;
	const struct bf_opts *o = dev->opts;
	uint64_t next_progress = bf_now_ns() + 1000000000ull;

	for (;;) {
		bool more = true;
		int ret = 0;

		while (!dev->stop && !dev->be_closing && !dev->ring_broken &&
		       dev->inflight < o->qd) {
			ret = wl_next(w);
			if (ret < 0)
				break;
		}
		if (ret == -ENODATA || dev->stop || dev->be_closing || dev->ring_broken)
			more = false;
		else if (ret < 0 && ret != -EAGAIN) {
			bf_fail(dev, "cannot submit: %s", strerror(-ret));
			more = false;
		}
		if (bf_ring_push(dev) < 0)
			bf_fail(dev, "cannot notify the backend");
		if (!more)
			break;
		if (o->progress && bf_now_ns() >= next_progress) {
			bf_stats_progress(w->st, dev);
			next_progress += 1000000000ull;
		}
		if (bf_ring_consume(dev, wl_on_rsp, w) == 0 && dev->inflight)
			bf_ring_wait(dev, o->progress ? 200 : 1000);
		else if (!dev->inflight && ret == -EAGAIN)
			bf_ring_wait(dev, 0);
	}
	if (bf_ring_push(dev) < 0)
		bf_fail(dev, "cannot notify the backend");
	wl_drain(w);
}

static void wl_unanswered(struct wl *w)
{
	struct bf_dev *dev = w->dev;
	unsigned int i;

	/* Their writes stay "old or new" in the map; a later run with the
	 * same --state tells which. */
	for (i = 0; i < dev->nr_slots; i++) {
		struct bf_slot *s = &dev->slots[i];

		if (!s->busy)
			continue;
		w->st->unanswered++;
		if (w->v && s->nr_sect)
			bf_verify_range_unlock(w->v, s->sector, s->nr_sect,
					       kind_writes(s->kind));
		s->busy = false;
	}
	dev->inflight = 0;
}

int bf_workload_run(struct bf_dev *dev, struct bf_stats *st)
{
	const struct bf_opts *o = dev->opts;
	struct wl w;
	unsigned int pages, ind_pages = 0;
	bool closed;
	int ret, result;

	memset(&w, 0, sizeof(w));
	w.dev = dev;
	w.st = st;
	ret = wl_setup(&w);
	if (ret < 0)
		return BF_EXIT_SETUP;
	if (o->verify) {
		ret = bf_verify_new(w.area_first, w.area_nr, &w.v);
		if (ret < 0)
			return BF_EXIT_SETUP;
		if (o->state_file && bf_verify_load(w.v, o->state_file) < 0) {
			bf_verify_free(w.v);
			return BF_EXIT_SETUP;
		}
	}

	/* Read-back requests use whole slots; 8 pages keeps them direct. */
	pages = (w.bs_sect + 7) / 8;
	if (o->verify && o->readback && pages < 8)
		pages = 8;
	if (w.use_indirect)
		ind_pages = (pages + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) /
			    BLKIF_SEGS_PER_INDIRECT_PAGE;
	ret = bf_ring_slots_alloc(dev, o->qd, pages, ind_pages);
	if (ret < 0) {
		bf_verify_free(w.v);
		return BF_EXIT_SETUP;
	}

	st->t_start = st->last_t = bf_now_ns();
	if (o->workload != BF_WL_READBACK)
		wl_loop(&w);
	st->t_end = bf_now_ns();
	if (w.v && o->readback && !dev->stop && !dev->be_closing && !dev->ring_broken) {
		w.readback = true;
		log_debug("read-back of %" PRIu64 " sectors", w.area_nr);
		wl_loop(&w);
		if (o->workload == BF_WL_READBACK)
			st->t_end = bf_now_ns();
	}
	if (o->progress)
		bf_stats_progress(st, dev);
	closed = dev->be_closing;

	/* Close, then take the answers the backend gave before it reached
	 * Closed; what is left was never consumed. */
	bf_xenbus_close(dev);
	if (!dev->ring_broken)
		bf_ring_consume(dev, wl_on_rsp, &w);
	dev->rsp_prod_closed = bf_ring_rsp_prod(dev);
	dev->rsp_prod_snapped = true;
	wl_unanswered(&w);
	if (st->unanswered)
		log_info("%" PRIu64 " requests were never answered (backend closed)",
			 st->unanswered);
	if (w.v && o->state_file && bf_verify_save(w.v, o->state_file) < 0)
		dev->failures++;

	result = dev->failures ? BF_EXIT_FAIL : closed ? BF_EXIT_CLOSED : BF_EXIT_OK;
	bf_stats_report(st, dev, w.v, result);
	bf_verify_free(w.v);
	return result;
}
