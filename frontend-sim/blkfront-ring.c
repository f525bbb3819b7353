/* The frontend half of the shared ring: grant the ring pages and initialise
 * them (only the frontend does), bind the event channel, keep request slots
 * with pre-granted data buffers, put requests on the ring, and consume
 * responses while checking that the backend plays by ring.h's rules. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <xenstore.h>

#include "blkfront.h"
#include "log.h"

/* The shared header every ABI has at offset 0 of the first ring page. */
struct bf_sring_hdr {
	RING_IDX req_prod, req_event;
	RING_IDX rsp_prod, rsp_event;
	uint8_t pvt_pad[4];
	uint8_t pad[44];
};

_Static_assert(sizeof(struct bf_sring_hdr) == BLKIF_RING_HEADER_SIZE,
	       "ring header is 64 bytes in every ABI");

/* Indices are read and written with relaxed atomics so the compiler reads
 * shared memory exactly once per access; the fences give the ordering
 * ring.h's xen_mb/xen_rmb/xen_wmb describe. */
static RING_IDX idx_load(const RING_IDX *p)
{
	return atomic_load_explicit((const _Atomic RING_IDX *)p, memory_order_relaxed);
}

static void idx_store(RING_IDX *p, RING_IDX v)
{
	atomic_store_explicit((_Atomic RING_IDX *)p, v, memory_order_relaxed);
}

static struct bf_sring_hdr *sring_hdr(const struct bf_queue *q)
{
	return q->sring;
}

int bf_ring_setup(struct bf_dev *dev, unsigned int order, unsigned int nr_queues)
{
	struct bf_sring_hdr *h;
	unsigned int pages = 1u << order, i;
	int ret;

	if (nr_queues < 1 || nr_queues > BF_MAX_QUEUES)
		return -EINVAL;
	ret = blkif_ring_layout_init(&dev->layout, dev->opts->abi, order);
	if (ret < 0)
		return ret;
	ret = plat_gntshr_open(dev->plat, &dev->gs);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot open the grant sharing device");
		return ret;
	}
	ret = plat_evtchn_open(dev->plat, &dev->ev);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot open event channels");
		return ret;
	}
	dev->ring_order = order;
	dev->next_queue = 0;
	for (i = 0; i < nr_queues; i++) {
		struct bf_queue *q = &dev->q[i];

		ret = plat_gntshr_share(dev->gs, dev->be_domid, pages, true,
					q->ring_refs, &q->sring);
		if (ret < 0) {
			log_errno(LOG_LEVEL_ERR, ret,
				  "cannot grant %u ring pages to domain %u (queue %u)",
				  pages, dev->be_domid, i);
			q->sring = NULL;
			return ret;
		}
		/* teardown looks at every queue up to here */
		dev->nr_queues = i + 1;
		/* Fresh pages are zeroed; SHARED_RING_INIT's event values of
		 * 1 ask for a notification on the first request and the
		 * first response. */
		memset(q->sring, 0, (size_t)pages * PLAT_PAGE_SIZE);
		h = sring_hdr(q);
		idx_store(&h->req_prod, 0);
		idx_store(&h->rsp_prod, 0);
		idx_store(&h->req_event, 1);
		idx_store(&h->rsp_event, 1);
		q->req_prod_pvt = 0;
		q->rsp_cons = 0;
		if (dev->opts->ring_start_set) {
			/* A ring that starts elsewhere (or a stale one, when
			 * the two differ): the backend must attach, not reset. */
			idx_store(&h->req_prod, dev->opts->ring_start_req);
			idx_store(&h->rsp_prod, dev->opts->ring_start_rsp);
			idx_store(&h->req_event, dev->opts->ring_start_req + 1);
			idx_store(&h->rsp_event, dev->opts->ring_start_rsp + 1);
			q->req_prod_pvt = dev->opts->ring_start_req;
			q->rsp_cons = dev->opts->ring_start_rsp;
		}
		ret = plat_evtchn_bind_unbound(dev->ev, dev->be_domid, &q->port);
		if (ret < 0) {
			log_errno(LOG_LEVEL_ERR, ret,
				  "cannot allocate an event channel for domain %u (queue %u)",
				  dev->be_domid, i);
			return ret;
		}
		q->port_bound = true;
		log_debug("ring %u: order %u, %u entries, abi %s, port %u", i, order,
			  dev->layout.nr_ents, blkif_abi_name(dev->opts->abi), q->port);
	}
	return 0;
}

/* Each slot shares its own pages, so a failure names how far it got and
 * the pages of one slot are contiguous for segment building. */
int bf_ring_slots_alloc(struct bf_dev *dev, unsigned int nr_slots,
			unsigned int pages_per_slot, unsigned int ind_pages)
{
	unsigned int i;
	int ret;

	dev->slots = calloc(nr_slots, sizeof(*dev->slots));
	dev->seg_scratch = calloc(pages_per_slot ? pages_per_slot : 1,
				  sizeof(*dev->seg_scratch));
	if (!dev->slots || !dev->seg_scratch)
		return -ENOMEM;
	dev->nr_slots = nr_slots;
	dev->pages_per_slot = pages_per_slot;
	dev->ind_pages_per_slot = ind_pages;
	for (i = 0; i < nr_slots; i++) {
		struct bf_slot *s = &dev->slots[i];

		s->next_free = i + 1;
		if (pages_per_slot) {
			s->grefs = calloc(pages_per_slot, sizeof(*s->grefs));
			if (!s->grefs)
				return -ENOMEM;
			ret = plat_gntshr_share(dev->gs, dev->be_domid, pages_per_slot,
						true, s->grefs, &s->data);
			if (ret < 0) {
				s->data = NULL;
				log_errno(LOG_LEVEL_ERR, ret,
					  "cannot grant data pages (slot %u of %u, %u pages each)",
					  i, nr_slots, pages_per_slot);
				return ret;
			}
		}
		if (ind_pages) {
			/* The backend only reads indirect segment pages; with
			 * persistent grants they are writable, as Linux
			 * blkfront grants every page of its persistent pool
			 * (a backend maps persistent grants read-write, since
			 * one page may serve a read next). */
			ret = plat_gntshr_share(dev->gs, dev->be_domid, ind_pages,
						dev->opts->persistent && !dev->opts->indirect_ro,
						s->ind_grefs, &s->ind);
			if (ret < 0) {
				s->ind = NULL;
				log_errno(LOG_LEVEL_ERR, ret,
					  "cannot grant indirect pages (slot %u of %u)",
					  i, nr_slots);
				return ret;
			}
		}
	}
	dev->free_head = 0;
	return 0;
}

static bool queue_is_full(const struct bf_dev *dev, const struct bf_queue *q)
{
	return q->req_prod_pvt - q->rsp_cons >= dev->layout.nr_ents;
}

/* True when no queue has room. */
bool bf_ring_is_full(const struct bf_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nr_queues; i++)
		if (!queue_is_full(dev, &dev->q[i]))
			return false;
	return true;
}

struct bf_slot *bf_ring_slot_get(struct bf_dev *dev)
{
	struct bf_slot *s;
	unsigned int i, qi = 0;

	if (dev->free_head >= dev->nr_slots)
		return NULL;
	/* Round robin over the queues, skipping full ones. */
	for (i = 0; i < dev->nr_queues; i++) {
		qi = (dev->next_queue + i) % dev->nr_queues;
		if (!queue_is_full(dev, &dev->q[qi]))
			break;
	}
	if (i == dev->nr_queues)
		return NULL;
	dev->next_queue = (qi + 1) % dev->nr_queues;
	s = &dev->slots[dev->free_head];
	dev->free_head = s->next_free;
	s->queue = qi;
	return s;
}

void bf_ring_slot_put(struct bf_dev *dev, struct bf_slot *slot)
{
	slot->busy = false;
	slot->next_free = dev->free_head;
	dev->free_head = (unsigned int)(slot - dev->slots);
}

int bf_ring_req_build(struct bf_dev *dev, struct bf_slot *slot, uint8_t op,
		      uint64_t sector, uint32_t nr_sect, bool indirect,
		      struct blkif_req *ret_req)
{
	struct blkif_seg *segs = dev->seg_scratch;
	struct blkif_req req;
	unsigned int nsegs = (nr_sect + 7) / 8, i;
	unsigned int units = dev->sect_units ? dev->sect_units : 1;
	uint32_t left = nr_sect;
	int ret;

	if (nsegs > dev->pages_per_slot)
		return -E2BIG;
	/* In sector-size units (the Windows reading) only whole units fit. */
	if (sector % units || nr_sect % units)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.id = slot->id;
	req.handle = (uint16_t)dev->devid;
	req.sector_number = sector / units;
	for (i = 0; i < nsegs; i++) {
		uint32_t n = left > 8 ? 8 : left;

		segs[i].gref = slot->grefs[i];
		segs[i].first_sect = 0;
		segs[i].last_sect = (uint8_t)(n / units - 1);
		left -= n;
	}
	if (indirect || nsegs > BLKIF_MAX_SEGMENTS_PER_REQUEST) {
		void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST] = { NULL };
		unsigned int np = (nsegs + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) /
				  BLKIF_SEGS_PER_INDIRECT_PAGE;

		if (np > dev->ind_pages_per_slot)
			return -E2BIG;
		for (i = 0; i < np; i++)
			pages[i] = (char *)slot->ind + (size_t)i * PLAT_PAGE_SIZE;
		ret = blkif_indirect_pages_encode(pages, np, segs, nsegs);
		if (ret < 0)
			return ret;
		req.operation = BLKIF_OP_INDIRECT;
		req.indirect_op = op;
		req.nr_segments = (uint16_t)nsegs;
		for (i = 0; i < np; i++)
			req.indirect_grefs[i] = slot->ind_grefs[i];
	} else {
		req.operation = op;
		req.nr_segments = (uint16_t)nsegs;
		memcpy(req.seg, segs, nsegs * sizeof(segs[0]));
	}
	*ret_req = req;
	return 0;
}

static int ring_put(struct bf_dev *dev, struct bf_queue *q, const struct blkif_req *req)
{
	void *slot;

	if (queue_is_full(dev, q))
		return -ENOSPC;
	slot = blkif_ring_slot(&dev->layout, q->sring, q->req_prod_pvt);
	/* Zero the whole entry first: a response left there by the backend
	 * must not show through the request's padding. */
	memset(slot, 0, dev->layout.slot_size);
	return blkif_req_encode(dev->opts->abi, slot, req) < 0 ? -EINVAL :
	       (q->req_prod_pvt++, 0);
}

int bf_ring_submit(struct bf_dev *dev, struct bf_slot *slot, struct blkif_req *req)
{
	int ret;

	/* The id carries the slot in its low 16 bits and a sequence number
	 * above, so a stale or duplicated answer never matches a new request. */
	slot->id = (++dev->id_seq << 16) | (uint64_t)(slot - dev->slots);
	req->id = slot->id;
	ret = ring_put(dev, &dev->q[slot->queue], req);
	if (ret < 0)
		return ret;
	slot->busy = true;
	slot->t_submit = bf_now_ns();
	dev->inflight++;
	return 0;
}

int bf_ring_submit_raw(struct bf_dev *dev, const struct blkif_req *req)
{
	/* Raw requests always go on the first queue. */
	int ret = ring_put(dev, &dev->q[0], req);

	if (ret == 0)
		dev->inflight++;
	return ret;
}

static int queue_push(struct bf_dev *dev, struct bf_queue *q)
{
	struct bf_sring_hdr *h = sring_hdr(q);
	RING_IDX old = idx_load(&h->req_prod), new = q->req_prod_pvt;
	bool notify;

	if (old == new)
		return 0;
	/* The backend must see the requests before the new producer index,
	 * and we must read req_event only after publishing it, or both
	 * sides could go to sleep (ring.h's PUSH_REQUESTS_AND_CHECK_NOTIFY). */
	atomic_thread_fence(memory_order_release);
	idx_store(&h->req_prod, new);
	atomic_thread_fence(memory_order_seq_cst);
	notify = (RING_IDX)(new - idx_load(&h->req_event)) < (RING_IDX)(new - old);
	if (!notify)
		return 0;
	return plat_evtchn_notify(dev->ev, q->port);
}

int bf_ring_push(struct bf_dev *dev)
{
	unsigned int i;
	int ret;

	for (i = 0; i < dev->nr_queues; i++) {
		ret = queue_push(dev, &dev->q[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

RING_IDX bf_ring_rsp_prod(const struct bf_dev *dev)
{
	RING_IDX sum = 0;
	unsigned int i;

	for (i = 0; i < dev->nr_queues; i++)
		if (dev->q[i].sring)
			sum += idx_load(&sring_hdr(&dev->q[i])->rsp_prod);
	return sum;
}

static int queue_consume(struct bf_dev *dev, unsigned int qi, bf_rsp_fn *fn, void *opaque)
{
	struct bf_queue *q = &dev->q[qi];
	struct bf_sring_hdr *h = sring_hdr(q);
	int n = 0;

	for (;;) {
		RING_IDX prod = idx_load(&h->rsp_prod);
		RING_IDX req_prod = idx_load(&h->req_prod);

		/* A backend cannot answer more than we published. */
		if ((RING_IDX)(prod - q->rsp_cons) >
		    (RING_IDX)(req_prod - q->rsp_cons)) {
			bf_fail(dev, "backend response producer %u is beyond our "
				"requests on queue %u (consumer %u, producer %u)", prod, qi,
				q->rsp_cons, req_prod);
			dev->ring_broken = true;
			return -EPROTO;
		}
		/* Read the entries only after the producer index. */
		atomic_thread_fence(memory_order_acquire);
		while (q->rsp_cons != prod) {
			struct blkif_rsp rsp;
			struct bf_slot *s = NULL;
			uint64_t i;

			blkif_rsp_decode(dev->opts->abi,
					 blkif_ring_slot(&dev->layout, q->sring,
							 q->rsp_cons), &rsp);
			q->rsp_cons++;
			i = rsp.id & 0xffff;
			if (dev->slots && i < dev->nr_slots && dev->slots[i].busy &&
			    dev->slots[i].id == rsp.id && dev->slots[i].queue == qi)
				s = &dev->slots[i];
			if (s) {
				s->busy = false;
				dev->inflight--;
			}
			fn(dev, s, &rsp, opaque);
			n++;
		}
		/* Ask for an event at the next response, then look again so
		 * one published meanwhile is not slept through. */
		idx_store(&h->rsp_event, q->rsp_cons + 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (idx_load(&h->rsp_prod) == q->rsp_cons)
			break;
	}
	return n;
}

int bf_ring_consume(struct bf_dev *dev, bf_rsp_fn *fn, void *opaque)
{
	unsigned int i;
	int n = 0, ret;

	if (dev->ring_broken)
		return -EPROTO;
	for (i = 0; i < dev->nr_queues; i++) {
		ret = queue_consume(dev, i, fn, opaque);
		if (ret < 0)
			return ret;
		n += ret;
	}
	return n;
}

int bf_ring_wait(struct bf_dev *dev, int timeout_ms)
{
	struct pollfd pfd[3];
	int n = 0, ret, i;

	if (dev->ev) {
		pfd[n].fd = plat_evtchn_fd(dev->ev);
		pfd[n++].events = POLLIN;
	}
	if (dev->xs) {
		pfd[n].fd = xs_fileno(dev->xs);
		pfd[n++].events = POLLIN;
	}
	pfd[n].fd = dev->sigfd;
	pfd[n++].events = POLLIN;
	ret = poll(pfd, n, timeout_ms);
	if (ret < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		if (dev->ev && pfd[i].fd == plat_evtchn_fd(dev->ev)) {
			uint32_t port;

			/* Unmask each fired port: we look at the ring after
			 * this anyway, so no event can be lost. */
			while (plat_evtchn_pending(dev->ev, &port) >= 0)
				plat_evtchn_unmask(dev->ev, port);
		} else if (dev->xs && pfd[i].fd == xs_fileno(dev->xs)) {
			bf_xenbus_handle_watch(dev);
		} else if (pfd[i].fd == dev->sigfd) {
			struct signalfd_siginfo si;

			if (read(dev->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (!dev->stop)
					log_info("signal %u: stopping", si.ssi_signo);
				dev->stop = true;
			}
		}
	}
	return ret;
}

void bf_ring_teardown(struct bf_dev *dev)
{
	unsigned int i, busy = 0;
	int ret;

	for (i = 0; i < dev->nr_queues; i++) {
		if (dev->ev && dev->q[i].port_bound) {
			plat_evtchn_unbind(dev->ev, dev->q[i].port);
			dev->q[i].port_bound = false;
		}
	}
	plat_evtchn_close(dev->ev);
	dev->ev = NULL;
	/* End foreign access. -EBUSY means the backend still maps a page:
	 * Xen keeps it shared, and so do we, but it is reported. */
	for (i = 0; dev->slots && i < dev->nr_slots; i++) {
		struct bf_slot *s = &dev->slots[i];

		if (s->data) {
			ret = plat_gntshr_unshare(dev->gs, s->data, dev->pages_per_slot);
			if (ret == -EBUSY)
				busy++;
			else if (ret < 0)
				log_errno(LOG_LEVEL_WARN, ret, "ending access to data pages");
		}
		if (s->ind) {
			ret = plat_gntshr_unshare(dev->gs, s->ind, dev->ind_pages_per_slot);
			if (ret == -EBUSY)
				busy++;
			else if (ret < 0)
				log_errno(LOG_LEVEL_WARN, ret, "ending access to indirect pages");
		}
		free(s->grefs);
	}
	if (busy)
		bf_fail(dev, "backend still maps %u data buffers after closing", busy);
	free(dev->slots);
	dev->slots = NULL;
	free(dev->seg_scratch);
	dev->seg_scratch = NULL;
	dev->nr_slots = 0;
	for (i = 0; i < dev->nr_queues; i++) {
		struct bf_queue *q = &dev->q[i];

		if (!q->sring)
			continue;
		ret = plat_gntshr_unshare(dev->gs, q->sring, 1u << dev->ring_order);
		if (ret == -EBUSY)
			bf_fail(dev, "backend still maps ring %u after closing", i);
		else if (ret < 0)
			log_errno(LOG_LEVEL_WARN, ret, "ending access to ring %u", i);
		q->sring = NULL;
	}
	plat_gntshr_close(dev->gs);
	dev->gs = NULL;
}
