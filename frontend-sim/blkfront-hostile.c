/* Hostile modes: a guest that breaks the ring protocol on purpose in the
 * ways one crafted request cannot (PROTOCOL.md §5 T1, T2, T10, T11, T12,
 * T20). Each mode states what a correct backend does and exits 0 only when
 * it did; the test around it checks the daemon, the log and the other vbds. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "blkfront.h"
#include "log.h"

/* Indices in the shared ring header, as ring.h lays them out. */
#define IDX_REQ_PROD	0
#define IDX_REQ_EVENT	1
#define IDX_RSP_PROD	2
#define IDX_RSP_EVENT	3

/* The largest ring entry of any ABI (x86_64: 112 bytes). */
#define HOSTILE_SLOT_MAX	128

static const char *const mode_names[] = {
	[BF_HOSTILE_REWRITE] = "rewrite",
	[BF_HOSTILE_PROD_OVERFLOW] = "prod-overflow",
	[BF_HOSTILE_PROD_BACKWARDS] = "prod-backwards",
	[BF_HOSTILE_EVENT_STORM] = "event-storm",
	[BF_HOSTILE_XS_FLOOD] = "xs-flood",
	[BF_HOSTILE_RSP_CHECK] = "rsp-check",
	[BF_HOSTILE_DUP_IDS] = "dup-ids",
};

int bf_hostile_parse(const char *name, enum bf_hostile *ret)
{
	unsigned int i;

	for (i = 1; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (mode_names[i] && strcmp(name, mode_names[i]) == 0) {
			*ret = (enum bf_hostile)i;
			return 0;
		}
	return -EINVAL;
}

static _Atomic RING_IDX *idx_of(struct bf_dev *dev, unsigned int which)
{
	return (_Atomic RING_IDX *)dev->q[0].sring + which;
}

static RING_IDX idx_get(struct bf_dev *dev, unsigned int which)
{
	return atomic_load_explicit(idx_of(dev, which), memory_order_relaxed);
}

static void idx_set(struct bf_dev *dev, unsigned int which, RING_IDX v)
{
	atomic_store_explicit(idx_of(dev, which), v, memory_order_relaxed);
}

/* xorshift64: cheap randomness that a seed reproduces. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double run_seconds(const struct bf_opts *o)
{
	return o->seconds > 0 ? o->seconds : 2;
}

/* Waits until the backend answered everything we published on queue 0, or
 * closed the device, or the timeout passed. 0 when all are answered. */
static int wait_answers(struct bf_dev *dev)
{
	uint64_t deadline = bf_now_ns() + (uint64_t)(dev->opts->timeout * 1e9);
	struct bf_queue *q = &dev->q[0];

	for (;;) {
		RING_IDX prod = idx_get(dev, IDX_RSP_PROD);

		if ((RING_IDX)(prod - q->rsp_cons) > (RING_IDX)(q->req_prod_pvt - q->rsp_cons)) {
			bf_fail(dev, "backend response producer %u is beyond our requests "
				"(consumer %u, producer %u)", prod, q->rsp_cons, q->req_prod_pvt);
			dev->ring_broken = true;
			return -EPROTO;
		}
		if (prod == q->req_prod_pvt)
			break;
		if (dev->stop || dev->be_closing || bf_now_ns() >= deadline) {
			bf_fail(dev, "%u of %u requests unanswered%s",
				(unsigned int)(q->req_prod_pvt - prod),
				(unsigned int)(q->req_prod_pvt - q->rsp_cons),
				dev->be_closing ? " when the backend closed" : "");
			return -ETIMEDOUT;
		}
		idx_set(dev, IDX_RSP_EVENT, prod + 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (idx_get(dev, IDX_RSP_PROD) == prod)
			bf_ring_wait(dev, 20);
	}
	/* Entries after the index. */
	atomic_thread_fence(memory_order_acquire);
	return 0;
}

/* Puts req in the next slot of queue 0; the slot is filled with fill
 * first so bytes the request does not cover are known. */
static void *put_req(struct bf_dev *dev, const struct blkif_req *req, int fill)
{
	struct bf_queue *q = &dev->q[0];
	void *slot = blkif_ring_slot(&dev->layout, q->sring, q->req_prod_pvt);

	memset(slot, fill, dev->layout.slot_size);
	blkif_req_encode(dev->opts->abi, slot, req);
	q->req_prod_pvt++;
	return slot;
}

/* ---- rewrite (T1, T20) ---- */

struct flipper {
	struct bf_dev *dev;
	atomic_bool stop;
	uint64_t seed, flips;
	/* Slot bytes never flipped: the id, and those that hold a grant
	 * ref in the direct or the indirect layout of this ABI (the op byte
	 * may flip between the two). */
	bool gref_byte[HOSTILE_SLOT_MAX];
};

/* Grant refs are left alone: a ref rewritten to one of our ring pages
 * would have the backend copy disk data over our own ring, which a
 * backend rightly obeys and which would end the run for the wrong reason.
 * Everything else in a slot flips: op, counts, ids, sectors, geometry. */
static void flipper_init(struct flipper *f)
{
	bool x86_32 = f->dev->opts->abi == BLKIF_ABI_X86_32;
	unsigned int seg0 = x86_32 ? 20 : 24, ind0 = x86_32 ? 24 : 28, k, b;

	/* The id too: it is opaque to the backend (T18 has its own test),
	 * and kept it tells which request each answer is for. */
	for (b = 0; b < 8; b++)
		f->gref_byte[(x86_32 ? 4 : 8) + b] = true;
	for (k = 0; k < BLKIF_MAX_SEGMENTS_PER_REQUEST; k++)
		for (b = 0; b < 4; b++)
			f->gref_byte[seg0 + 8 * k + b] = true;
	for (k = 0; k < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k++)
		for (b = 0; b < 4; b++)
			f->gref_byte[ind0 + 4 * k + b] = true;
}

static void flip_byte(void *base, size_t len, uint64_t *seed)
{
	uint64_t r = rnd(seed);

	atomic_store_explicit((_Atomic uint8_t *)base + (r >> 8) % len, (uint8_t)r,
			      memory_order_relaxed);
}

/* Rewrites random bytes of the requests the backend has not answered yet
 * (slots, indirect pages, data pages of writes) as fast as it can. It
 * leaves answered slots alone so the answers stay readable; a slot answered
 * between its look at rsp_prod and its store can still be garbled, which
 * is counted, not failed. */
static void *flipper_main(void *arg)
{
	struct flipper *f = arg;
	struct bf_dev *dev = f->dev;
	struct bf_queue *q = &dev->q[0];

	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		RING_IDX rsp = idx_get(dev, IDX_RSP_PROD), req = idx_get(dev, IDX_REQ_PROD);
		RING_IDX n = req - rsp, i;
		struct bf_slot *s;
		size_t off;

		if (n == 0 || n > dev->layout.nr_ents)
			continue;
		i = rsp + (RING_IDX)(rnd(&f->seed) % n);
		off = (size_t)(rnd(&f->seed) % dev->layout.slot_size);
		if (!f->gref_byte[off])
			atomic_store_explicit((_Atomic uint8_t *)blkif_ring_slot(&dev->layout,
					      q->sring, i) + off, (uint8_t)rnd(&f->seed),
					      memory_order_relaxed);
		s = &dev->slots[i % dev->nr_slots];
		/* Indirect segments: first_sect, last_sect and padding. */
		off = (size_t)(rnd(&f->seed) % (11 * sizeof(struct blkif_request_segment)));
		if (s->ind && off % 8 >= 4)
			atomic_store_explicit((_Atomic uint8_t *)s->ind + off,
					      (uint8_t)rnd(&f->seed), memory_order_relaxed);
		flip_byte(s->data, (size_t)dev->pages_per_slot * PLAT_PAGE_SIZE, &f->seed);
		f->flips++;
	}
	return NULL;
}

static int hostile_rewrite(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	struct bf_queue *q = &dev->q[0];
	unsigned int n = dev->layout.nr_ents, i, ind = dev->be.max_indirect_segments >= 11;
	uint64_t deadline, seed = o->seed ? o->seed : 0x9e3779b97f4a7c15ull;
	uint64_t sent = 0, st[3] = { 0 }, garbled = 0, rounds = 0;
	struct flipper f = { .dev = dev, .seed = seed ^ 0x5555 };
	pthread_t thread;
	int ret;

	/* One slot per ring entry, so a round fills the ring. */
	ret = bf_ring_slots_alloc(dev, n, 11, ind);
	if (ret < 0)
		return BF_EXIT_SETUP;
	atomic_init(&f.stop, false);
	flipper_init(&f);
	ret = -pthread_create(&thread, NULL, flipper_main, &f);
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot start the rewriting thread");
		return BF_EXIT_SETUP;
	}
	deadline = bf_now_ns() + (uint64_t)(run_seconds(o) * 1e9);
	while (bf_now_ns() < deadline && !dev->stop && !dev->be_closing && !dev->failures) {
		RING_IDX start = q->req_prod_pvt;

		for (i = 0; i < n; i++) {
			struct bf_slot *s = &dev->slots[(start + i) % n];
			uint32_t nr = 1 + (uint32_t)(rnd(&seed) % 88);
			uint64_t sector = rnd(&seed) % (dev->be.sectors - nr);
			uint8_t op = rnd(&seed) & 1 ? BLKIF_OP_WRITE : BLKIF_OP_READ;
			struct blkif_req req;

			sector &= ~(uint64_t)(dev->be.sector_size / 512 - 1);
			nr = (nr + dev->be.sector_size / 512 - 1) &
			     ~(uint32_t)(dev->be.sector_size / 512 - 1);
			if (nr > 88)
				nr = 88;
			s->id = (rounds << 16) | i;
			if (bf_ring_req_build(dev, s, op, sector, nr, ind && (rnd(&seed) & 1),
					      &req) < 0)
				return BF_EXIT_SETUP;
			put_req(dev, &req, 0);
		}
		sent += n;
		if (bf_ring_push(dev) < 0)
			break;
		if (wait_answers(dev) < 0)
			break;
		for (; q->rsp_cons != q->req_prod_pvt; q->rsp_cons++) {
			struct blkif_rsp rsp;
			uint64_t k;

			blkif_rsp_decode(o->abi, blkif_ring_slot(&dev->layout, q->sring,
								 q->rsp_cons), &rsp);
			k = rsp.id & 0xffff;
			if ((rsp.id >> 16) != rounds || k >= n ||
			    rsp.status < BLKIF_RSP_EOPNOTSUPP || rsp.status > BLKIF_RSP_OKAY)
				garbled++;
			else
				st[-rsp.status]++;
		}
		rounds++;
	}
	atomic_store(&f.stop, true);
	pthread_join(thread, NULL);
	printf("rewrite: %" PRIu64 " requests in %" PRIu64 " rounds, %" PRIu64 " flips; "
	       "answers okay %" PRIu64 ", error %" PRIu64 ", eopnotsupp %" PRIu64
	       ", garbled by us %" PRIu64 "\n", sent, rounds, f.flips, st[0], st[1], st[2],
	       garbled);
	fflush(stdout);
	if (dev->be_closing) {
		bf_fail(dev, "the backend closed the device");
		return BF_EXIT_FAIL;
	}
	if (!rounds || st[0] + st[1] + st[2] == 0) {
		bf_fail(dev, "no answer was readable");
		return BF_EXIT_FAIL;
	}
	return dev->failures ? BF_EXIT_FAIL : BF_EXIT_OK;
}

/* ---- a round of good requests: the ring still works ---- */

static int good_round(struct bf_dev *dev, unsigned int count)
{
	struct bf_queue *q = &dev->q[0];
	struct blkif_req req;
	unsigned int i, ok = 0;

	memset(&req, 0, sizeof(req));
	req.operation = BLKIF_OP_FLUSH_DISKCACHE;
	req.handle = (uint16_t)dev->devid;
	for (i = 0; i < count; i++) {
		req.id = 0xf00d0000u + i;
		put_req(dev, &req, 0);
	}
	if (bf_ring_push(dev) < 0 || wait_answers(dev) < 0)
		return -EIO;
	for (; q->rsp_cons != q->req_prod_pvt; q->rsp_cons++) {
		struct blkif_rsp rsp;

		blkif_rsp_decode(dev->opts->abi,
				 blkif_ring_slot(&dev->layout, q->sring, q->rsp_cons), &rsp);
		if (rsp.status == BLKIF_RSP_OKAY && (rsp.id & ~0xffffull) == 0xf00d0000u)
			ok++;
	}
	if (ok != count) {
		bf_fail(dev, "%u of %u flushes answered okay", ok, count);
		return -EIO;
	}
	return 0;
}

/* ---- prod-overflow, prod-backwards (T2) ---- */

/* The backend must stop this ring and close the device, not spin. */
static int wait_backend_closes(struct bf_dev *dev, const char *what)
{
	uint64_t deadline = bf_now_ns() + (uint64_t)(dev->opts->timeout * 1e9);

	while (!dev->be_closing && !dev->stop && bf_now_ns() < deadline)
		bf_ring_wait(dev, 50);
	if (!dev->be_closing) {
		bf_fail(dev, "%s: the backend did not close the device", what);
		return BF_EXIT_FAIL;
	}
	printf("%s: the backend closed the device\n", what);
	fflush(stdout);
	return BF_EXIT_OK;
}

static int hostile_prod(struct bf_dev *dev, bool backwards)
{
	struct bf_queue *q = &dev->q[0];
	RING_IDX bad;

	if (backwards) {
		/* A few good requests first, so going back is visible. */
		if (good_round(dev, 4) < 0)
			return BF_EXIT_FAIL;
		bad = q->req_prod_pvt - 3;
	} else {
		bad = q->rsp_cons + dev->layout.nr_ents + 1;
	}
	/* The slots hold whatever; the index alone must stop the backend. */
	atomic_thread_fence(memory_order_release);
	idx_set(dev, IDX_REQ_PROD, bad);
	atomic_thread_fence(memory_order_seq_cst);
	if (plat_evtchn_notify(dev->ev, q->port) < 0)
		return BF_EXIT_SETUP;
	return wait_backend_closes(dev, backwards ? "prod-backwards" : "prod-overflow");
}

/* ---- event-storm (T11) ---- */

static int hostile_event_storm(struct bf_dev *dev)
{
	uint64_t deadline = bf_now_ns() + (uint64_t)(run_seconds(dev->opts) * 1e9), n = 0;
	int ret;

	while (!dev->stop && !dev->be_closing) {
		ret = plat_evtchn_notify(dev->ev, dev->q[0].port);
		if (ret < 0) {
			log_errno(LOG_LEVEL_ERR, ret, "notify");
			return BF_EXIT_FAIL;
		}
		/* Now and then: the clock, watches and our own events. */
		if (++n % 1024 == 0) {
			bf_ring_wait(dev, 0);
			if (bf_now_ns() >= deadline)
				break;
		}
	}
	printf("event-storm: %" PRIu64 " notifications in %.1f s\n", n, run_seconds(dev->opts));
	fflush(stdout);
	if (dev->be_closing) {
		bf_fail(dev, "the backend closed the device");
		return BF_EXIT_FAIL;
	}
	/* The storm must not have cost the ring its service. */
	return good_round(dev, 8) < 0 ? BF_EXIT_FAIL : BF_EXIT_OK;
}

/* ---- xs-flood (T12) ---- */

#define FLOOD_NODES	200

static int hostile_xs_flood(struct bf_dev *dev)
{
	static const char *const keys[] = {
		XK_RING_REF, XK_EVENT_CHANNEL, XK_RING_PAGE_ORDER,
		XK_PROTOCOL, "queue-0/ring-ref", XK_MQ_NUM_QUEUES,
	};
	uint64_t deadline = bf_now_ns() + (uint64_t)(run_seconds(dev->opts) * 1e9), n = 0;
	char path[1200], junk[1001];
	unsigned int i;

	memset(junk, 'x', sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	while (!dev->stop && !dev->be_closing && bf_now_ns() < deadline) {
		const char *val = junk + (n % 997);
		char num[24];

		/* Our keys the backend read at connect, rewritten with
		 * garbage, our state rewritten as it is, and new nodes. */
		snprintf(num, sizeof(num), "%" PRIu64, n);
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path,
			 keys[n % (sizeof(keys) / sizeof(keys[0]))]);
		if (!xs_write(dev->xs, XBT_NULL, path, n & 1 ? num : val,
			      (unsigned int)strlen(n & 1 ? num : val)))
			break;
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_STATE);
		if (!xs_write(dev->xs, XBT_NULL, path, "4", 1))
			break;
		snprintf(path, sizeof(path), "%s/flood-%u", dev->fe_path,
			 (unsigned int)(n % FLOOD_NODES));
		if (!xs_write(dev->xs, XBT_NULL, path, val, (unsigned int)strlen(val)))
			break;
		n += 3;
		/* Our own watch events must not pile up either. */
		if (n % 300 == 0)
			bf_ring_wait(dev, 0);
	}
	printf("xs-flood: %" PRIu64 " writes in %.1f s\n", n, run_seconds(dev->opts));
	fflush(stdout);
	for (i = 0; i < FLOOD_NODES; i++) {
		snprintf(path, sizeof(path), "%s/flood-%u", dev->fe_path, i);
		xs_rm(dev->xs, XBT_NULL, path);
	}
	if (dev->be_closing) {
		bf_fail(dev, "the backend left Connected under the flood");
		return BF_EXIT_FAIL;
	}
	/* Keys are read at connect only: the ring keeps working. */
	return good_round(dev, 8) < 0 ? BF_EXIT_FAIL : BF_EXIT_OK;
}

/* ---- rsp-check (T10) ---- */

/* The answer as the ABI lays it out, written here by hand rather than by
 * the encoder under test: id at 0, op at 8, status at 10, and zeros in
 * the padding at 9 and (x86_64, 16 bytes) at 12..15; x86_32 answers are
 * 12 bytes. Everything past them stays as the guest wrote it. */
static void rsp_expect(enum blkif_abi abi, unsigned char *slot, const struct blkif_rsp *rsp)
{
	unsigned int b, size = abi == BLKIF_ABI_X86_32 ? 12 : 16;

	for (b = 0; b < 8; b++)
		slot[b] = (unsigned char)(rsp->id >> (8 * b));
	slot[8] = rsp->operation;
	slot[9] = 0;
	slot[10] = (unsigned char)((uint16_t)rsp->status & 0xff);
	slot[11] = (unsigned char)((uint16_t)rsp->status >> 8);
	for (b = 12; b < size; b++)
		slot[b] = 0;
}

/* Requests of five kinds with known answers; each slot is first filled
 * with a per-slot byte pattern. After the answer the slot must hold
 * exactly what we wrote, with only the response fields (and their zero
 * padding) written over it: nothing from the backend's memory. */
static int hostile_rsp_check(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	struct bf_queue *q = &dev->q[0];
	unsigned int n = dev->layout.nr_ents, i, rounds = 0, checked = 0;
	size_t ss = dev->layout.slot_size;
	unsigned char (*snap)[HOSTILE_SLOT_MAX];
	int16_t *want;
	uint8_t *wop, *seen;
	uint64_t deadline = bf_now_ns() + (uint64_t)(run_seconds(o) * 1e9);
	int result = BF_EXIT_FAIL;

	if (ss > HOSTILE_SLOT_MAX)
		return BF_EXIT_SETUP;
	snap = calloc(n, sizeof(*snap));
	want = calloc(n, sizeof(*want));
	wop = calloc(n, sizeof(*wop));
	seen = calloc(n, 1);
	if (!snap || !want || !wop || !seen || bf_ring_slots_alloc(dev, n, 1, 0) < 0)
		goto out;
	/* At least three trips round the ring, whatever the time. */
	while ((rounds < 3 || bf_now_ns() < deadline) && !dev->stop && !dev->failures) {
		RING_IDX start = q->req_prod_pvt;

		for (i = 0; i < n; i++) {
			struct bf_slot *s = &dev->slots[i];
			struct blkif_req req;
			void *slot;

			memset(&req, 0, sizeof(req));
			req.handle = (uint16_t)dev->devid;
			req.id = ((uint64_t)rounds << 32) | i;
			req.sector_number = (uint64_t)i * 8;
			req.nr_segments = 1;
			req.seg[0].gref = s->grefs[0];
			req.seg[0].last_sect = 7;
			switch ((i + rounds) % 5) {
			case 0:
				req.operation = BLKIF_OP_READ;
				want[i] = BLKIF_RSP_OKAY;
				break;
			case 1:
				req.operation = BLKIF_OP_WRITE;
				want[i] = BLKIF_RSP_OKAY;
				break;
			case 2:
				req.operation = BLKIF_OP_FLUSH_DISKCACHE;
				req.nr_segments = 0;
				want[i] = BLKIF_RSP_OKAY;
				break;
			case 3:
				req.operation = 200;
				want[i] = BLKIF_RSP_EOPNOTSUPP;
				break;
			default:
				req.operation = BLKIF_OP_READ;
				req.seg[0].first_sect = 5;
				req.seg[0].last_sect = 2;
				want[i] = BLKIF_RSP_ERROR;
				break;
			}
			wop[i] = req.operation;
			slot = put_req(dev, &req, 0xa5 ^ (int)(i & 0x3f));
			memcpy(snap[i], slot, ss);
		}
		if (bf_ring_push(dev) < 0 || wait_answers(dev) < 0)
			goto out;
		memset(seen, 0, n);
		for (i = 0; i < n; i++, q->rsp_cons++) {
			/* Answers come in completion order: the one in slot i
			 * may be for any request of the round. */
			const unsigned char *slot = blkif_ring_slot(&dev->layout, q->sring, start + i);
			unsigned char expect[HOSTILE_SLOT_MAX];
			struct blkif_rsp got, rsp;
			unsigned int k;
			size_t b;

			blkif_rsp_decode(o->abi, slot, &got);
			k = (unsigned int)(got.id & 0xffffffffu);
			if ((got.id >> 32) != rounds || k >= n || seen[k]) {
				bf_fail(dev, "round %u slot %u: answer id %#" PRIx64
					" is no request of this round, or answered twice",
					rounds, i, got.id);
				continue;
			}
			seen[k] = 1;
			rsp.id = got.id;
			rsp.operation = wop[k];
			rsp.status = want[k];
			memcpy(expect, snap[i], ss);
			rsp_expect(o->abi, expect, &rsp);
			if (memcmp(slot, expect, ss) == 0) {
				checked++;
				continue;
			}
			for (b = 0; b < ss && slot[b] == expect[b]; b++)
				;
			bf_fail(dev, "round %u slot %u (request %u, op %u): byte %zu is %#x, "
				"expected %#x (%s)", rounds, i, k, wop[k], b, slot[b], expect[b],
				b < 16 ? "response fields or their padding" :
					 "beyond the response: not the backend's to write");
		}
		rounds++;
	}
	printf("rsp-check: %u answers in %u rounds carry only the response fields\n",
	       checked, rounds);
	fflush(stdout);
	if (!dev->failures && checked)
		result = BF_EXIT_OK;
out:
	free(snap);
	free(want);
	free(wop);
	free(seen);
	return result;
}

/* ---- dup-ids (T18) ---- */

/* A full ring of reads, writes and flushes that all carry one id: each
 * must be served and answered with that id (the id is opaque). */
static int hostile_dup_ids(struct bf_dev *dev)
{
	struct bf_queue *q = &dev->q[0];
	unsigned int n = dev->layout.nr_ents, i, ok = 0, rounds;

	if (bf_ring_slots_alloc(dev, n, 1, 0) < 0)
		return BF_EXIT_SETUP;
	for (rounds = 0; rounds < 4; rounds++) {
		for (i = 0; i < n; i++) {
			struct blkif_req req;

			memset(&req, 0, sizeof(req));
			req.operation = i % 3 == 2 ? BLKIF_OP_FLUSH_DISKCACHE :
					i % 3 ? BLKIF_OP_WRITE : BLKIF_OP_READ;
			req.id = 7;
			req.handle = (uint16_t)dev->devid;
			req.sector_number = (uint64_t)i * 8;
			if (req.operation != BLKIF_OP_FLUSH_DISKCACHE) {
				req.nr_segments = 1;
				req.seg[0].gref = dev->slots[i].grefs[0];
				req.seg[0].last_sect = 7;
			}
			put_req(dev, &req, 0);
		}
		if (bf_ring_push(dev) < 0 || wait_answers(dev) < 0)
			return BF_EXIT_FAIL;
		for (; q->rsp_cons != q->req_prod_pvt; q->rsp_cons++) {
			struct blkif_rsp rsp;

			blkif_rsp_decode(dev->opts->abi,
					 blkif_ring_slot(&dev->layout, q->sring, q->rsp_cons), &rsp);
			if (rsp.id == 7 && rsp.status == BLKIF_RSP_OKAY)
				ok++;
			else
				bf_fail(dev, "answer id %" PRIu64 " status %d", rsp.id, rsp.status);
		}
	}
	printf("dup-ids: %u of %u requests with id 7 answered okay\n", ok, 4 * n);
	fflush(stdout);
	return ok == 4 * n && !dev->failures ? BF_EXIT_OK : BF_EXIT_FAIL;
}

int bf_hostile_run(struct bf_dev *dev)
{
	int result;

	log_info("hostile mode %s on %s", mode_names[dev->opts->hostile], dev->fe_path);
	switch (dev->opts->hostile) {
	case BF_HOSTILE_REWRITE:
		result = hostile_rewrite(dev);
		break;
	case BF_HOSTILE_PROD_OVERFLOW:
		result = hostile_prod(dev, false);
		break;
	case BF_HOSTILE_PROD_BACKWARDS:
		result = hostile_prod(dev, true);
		break;
	case BF_HOSTILE_EVENT_STORM:
		result = hostile_event_storm(dev);
		break;
	case BF_HOSTILE_XS_FLOOD:
		result = hostile_xs_flood(dev);
		break;
	case BF_HOSTILE_RSP_CHECK:
		result = hostile_rsp_check(dev);
		break;
	case BF_HOSTILE_DUP_IDS:
		result = hostile_dup_ids(dev);
		break;
	default:
		return BF_EXIT_SETUP;
	}
	bf_xenbus_close(dev);
	/* Nothing may appear on the ring once the backend closed it. */
	dev->rsp_prod_closed = bf_ring_rsp_prod(dev);
	dev->rsp_prod_snapped = true;
	if (dev->failures && result == BF_EXIT_OK)
		result = BF_EXIT_FAIL;
	return result;
}
