/* Unit tests for the ring library (backend/ring*.c, linked alone) against an
 * in-process fake of the platform seam: "guest" pages in this process,
 * grant refs indexing them, an eventfd as the event channel. The test
 * plays the frontend: it writes requests with blkif_req_encode, pushes,
 * kicks, and checks responses, data on the backing file, notification
 * counts, producer-overflow halting, attach with non-zero indices and
 * draining on stop. Both storage engines run the same cases. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RING_INTERNAL
#include "ring-int.h"

#define GUEST_PAGES	64
#define RING_REF0	0	/* refs 0..15 are ring pages */
#define DATA_REF0	16	/* refs 16..63 are data pages */
#define BAD_REF		1000
#define DISK_BYTES	(4u << 20)
#define FE_DOMID	7

/* ---- fake platform ---- */

struct fake {
	struct plat_handle h;
	unsigned char *pages;		/* GUEST_PAGES contiguous pages */
	bool readonly[GUEST_PAGES];
	int evfd;
	atomic_int notifies;
	atomic_int maps, unmaps, binds, unbinds;
	atomic_int copy_calls;
};

static struct fake fk;

struct fake_gt { struct plat_handle h; };
struct fake_ev { struct plat_handle h; };

static const struct platform_ops fake_ops;

static int fake_gnttab_open(struct platform *p, struct plat_gnttab **ret)
{
	struct fake_gt *g = calloc(1, sizeof(*g));

	g->h.ops = &fake_ops;
	*ret = (struct plat_gnttab *)g;
	return 0;
}

static void fake_gnttab_close(struct plat_gnttab *gt)
{
	free(gt);
}

static int fake_gnttab_map(struct plat_gnttab *gt, uint32_t domid, uint32_t count,
			   const uint32_t *refs, bool writable, void **ret_addr)
{
	uint32_t i;

	if (domid != FE_DOMID)
		return -EINVAL;
	/* Only contiguous runs of refs map contiguously here. */
	for (i = 0; i < count; i++)
		if (refs[i] != refs[0] + i || refs[i] >= GUEST_PAGES)
			return -EINVAL;
	atomic_fetch_add(&fk.maps, 1);
	*ret_addr = fk.pages + (size_t)refs[0] * PLAT_PAGE_SIZE;
	return 0;
}

static int fake_gnttab_unmap(struct plat_gnttab *gt, void *addr, uint32_t count)
{
	atomic_fetch_add(&fk.unmaps, 1);
	return 0;
}

static int fake_gnttab_copy(struct plat_gnttab *gt, uint32_t count,
			    xengnttab_grant_copy_segment_t *segs)
{
	uint32_t i;

	atomic_fetch_add(&fk.copy_calls, 1);
	for (i = 0; i < count; i++) {
		xengnttab_grant_copy_segment_t *s = &segs[i];
		bool to_guest = s->flags & GNTCOPY_dest_gref;
		uint32_t ref = to_guest ? s->dest.foreign.ref : s->source.foreign.ref;
		uint16_t off = to_guest ? s->dest.foreign.offset : s->source.foreign.offset;
		unsigned char *g;

		if (ref < DATA_REF0 || ref >= GUEST_PAGES || off + s->len > PLAT_PAGE_SIZE) {
			s->status = GNTST_bad_gntref;
			continue;
		}
		if (to_guest && fk.readonly[ref]) {
			s->status = GNTST_permission_denied;
			continue;
		}
		g = fk.pages + (size_t)ref * PLAT_PAGE_SIZE + off;
		if (to_guest)
			memcpy(g, s->source.virt, s->len);
		else
			memcpy(s->dest.virt, g, s->len);
		s->status = GNTST_okay;
	}
	return 0;
}

static int fake_evtchn_open(struct platform *p, struct plat_evtchn **ret)
{
	struct fake_ev *e = calloc(1, sizeof(*e));

	e->h.ops = &fake_ops;
	*ret = (struct plat_evtchn *)e;
	return 0;
}

static void fake_evtchn_close(struct plat_evtchn *ev)
{
	free(ev);
}

static int fake_evtchn_fd(struct plat_evtchn *ev)
{
	return fk.evfd;
}

static int fake_bind(struct plat_evtchn *ev, uint32_t remote_domid, uint32_t remote_port,
		     uint32_t *ret_port)
{
	atomic_fetch_add(&fk.binds, 1);
	*ret_port = 42;
	return 0;
}

static int fake_unbind(struct plat_evtchn *ev, uint32_t port)
{
	atomic_fetch_add(&fk.unbinds, 1);
	return 0;
}

static int fake_notify(struct plat_evtchn *ev, uint32_t port)
{
	atomic_fetch_add(&fk.notifies, 1);
	return 0;
}

static int fake_pending(struct plat_evtchn *ev, uint32_t *ret_port)
{
	uint64_t v;

	if (read(fk.evfd, &v, sizeof(v)) != sizeof(v))
		return -EAGAIN;
	*ret_port = 42;
	return 0;
}

static int fake_unmask(struct plat_evtchn *ev, uint32_t port)
{
	return 0;
}

static const struct platform_ops fake_ops = {
	.name = "fake",
	.gnttab_open = fake_gnttab_open,
	.gnttab_close = fake_gnttab_close,
	.gnttab_map = fake_gnttab_map,
	.gnttab_unmap = fake_gnttab_unmap,
	.gnttab_copy = fake_gnttab_copy,
	.evtchn_open = fake_evtchn_open,
	.evtchn_close = fake_evtchn_close,
	.evtchn_fd = fake_evtchn_fd,
	.evtchn_bind_interdomain = fake_bind,
	.evtchn_unbind = fake_unbind,
	.evtchn_notify = fake_notify,
	.evtchn_pending = fake_pending,
	.evtchn_unmask = fake_unmask,
};

/* ---- the owner's side: the wake hook, the disk ---- */

static atomic_int wakes;

static void fe_wake(void *opaque)
{
	(void)opaque;
	atomic_fetch_add(&wakes, 1);
}

/* ---- the test frontend ---- */

struct fe {
	struct ring_config cfg;		/* what the ring was started with */
	struct io_backing *backing;
	_Atomic uint64_t nr_sectors;
	struct ring *r;
	struct blkif_ring_layout layout;
	enum blkif_abi abi;
	void *sring;
	RING_IDX req_prod, rsp_cons;
	char path[64];
};

static enum io_engine_kind engine_kind;
/* feature-max-indirect-segments of the next fe_setup only. */
static unsigned int fe_max_indirect;
/* The storage of the next fe_setup only, instead of a fresh file. */
static const char *fe_target;

static uint32_t *sring_u32(struct fe *f, unsigned int i)
{
	return (uint32_t *)f->sring + i;
}

static void fe_setup(struct fe *f, enum blkif_abi abi, unsigned int order, RING_IDX start,
		     bool readonly)
{
	struct ring_config cfg = { 0 };
	unsigned int i;
	int fd;

	memset(f, 0, sizeof(*f));
	atomic_store(&fk.notifies, 0);
	atomic_store(&wakes, 0);
	memset(fk.pages, 0, (size_t)GUEST_PAGES * PLAT_PAGE_SIZE);
	memset(fk.readonly, 0, sizeof(fk.readonly));
	f->abi = abi;
	ck_assert_int_eq(blkif_ring_layout_init(&f->layout, abi, order), 0);
	f->sring = fk.pages + RING_REF0 * PLAT_PAGE_SIZE;
	/* SHARED_RING_INIT, done by the frontend; start != 0 models a ring
	 * that was in use before this backend attached. */
	*sring_u32(f, 0) = start;
	*sring_u32(f, 1) = start + 1;
	*sring_u32(f, 2) = start;
	*sring_u32(f, 3) = start + 1;
	f->req_prod = f->rsp_cons = start;

	snprintf(f->path, sizeof(f->path), "/tmp/check-ring.XXXXXX");
	fd = mkstemp(f->path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, DISK_BYTES), 0);
	close(fd);
	ck_assert_int_eq(io_backing_open(fe_target ? fe_target : f->path,
					 readonly ? IO_BACKING_READ_ONLY : 0, &f->backing, NULL), 0);
	fe_target = NULL;
	atomic_init(&f->nr_sectors, DISK_BYTES >> 9);

	cfg.plat = (struct platform *)&fk.h;
	cfg.fe_domid = FE_DOMID;
	cfg.devid = 51712;
	cfg.log_prefix = "d7/51712";
	cfg.order = order;
	for (i = 0; i < (1u << order); i++)
		cfg.refs[i] = RING_REF0 + i;
	cfg.remote_port = 3;
	cfg.abi = abi;
	cfg.engine = engine_kind;
	cfg.backing = f->backing;
	cfg.disk.sector_size = 512;
	cfg.disk.read_only = readonly;
	cfg.disk.feature_flush = true;
	cfg.disk.feature_barrier = true;
	cfg.disk.feature_discard = !readonly && f->backing->can_discard;
	cfg.nr_sectors = &f->nr_sectors;
	cfg.wake = fe_wake;
	cfg.max_indirect_segments = fe_max_indirect;
	fe_max_indirect = 0;
	f->cfg = cfg;
	ck_assert_int_eq(ring_start(&cfg, &f->r), 0);
}

/* Stops the ring and releases it; the disk stays. */
static void fe_release_ring(struct fe *f)
{
	int i;

	ring_stop(f->r);
	for (i = 0; i < 500 && !ring_is_stopped(f->r); i++)
		usleep(10000);
	ck_assert(ring_is_stopped(f->r));
	ring_release(f->r, false);
	f->r = NULL;
}

static void fe_teardown(struct fe *f)
{
	fe_release_ring(f);
	io_backing_close(f->backing);
	unlink(f->path);
}

static void fe_kick(void)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fk.evfd, &one, sizeof(one)), sizeof(one));
}

/* Queue one request (not yet pushed). */
static void fe_queue(struct fe *f, const struct blkif_req *req)
{
	ck_assert_int_eq(blkif_req_encode(f->abi, blkif_ring_slot(&f->layout, f->sring,
								 f->req_prod), req), 0);
	f->req_prod++;
}

static void fe_push(struct fe *f)
{
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit((_Atomic uint32_t *)sring_u32(f, 0), f->req_prod,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	fe_kick();
}

/* Waits for n responses and returns them in order of arrival. */
static void fe_wait(struct fe *f, unsigned int n, struct blkif_rsp *rsps)
{
	unsigned int i, got = 0;

	for (i = 0; i < 1000 && got < n; i++) {
		RING_IDX prod = atomic_load_explicit((_Atomic uint32_t *)sring_u32(f, 2),
						     memory_order_acquire);

		while (f->rsp_cons != prod && got < n) {
			ck_assert_int_eq(blkif_rsp_decode(f->abi, blkif_ring_slot(&f->layout,
							f->sring, f->rsp_cons), &rsps[got]), 0);
			f->rsp_cons++;
			got++;
		}
		if (got < n)
			usleep(5000);
	}
	ck_assert_msg(got == n, "got %u of %u responses", got, n);
	/* RING_FINAL_CHECK_FOR_RESPONSES' event update */
	*sring_u32(f, 3) = f->rsp_cons + 1;
}

static struct blkif_req rw_req(uint8_t op, uint64_t id, uint64_t sector, unsigned int nseg,
			       uint32_t ref0)
{
	struct blkif_req q = { 0 };
	unsigned int i;

	q.operation = op;
	q.id = id;
	q.sector_number = sector;
	q.nr_segments = (uint16_t)nseg;
	for (i = 0; i < nseg; i++) {
		q.seg[i].gref = ref0 + i;
		q.seg[i].first_sect = 0;
		q.seg[i].last_sect = 7;
	}
	return q;
}

static unsigned char *gpage(uint32_t ref)
{
	return fk.pages + (size_t)ref * PLAT_PAGE_SIZE;
}

static void disk_read(struct fe *f, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* ---- cases ---- */

static const enum blkif_abi abis[] = { BLKIF_ABI_X86_64, BLKIF_ABI_X86_32 };

/* Write 11-segment requests, read them back into other pages, compare
 * with the guest data and with the file; every ABI, orders 0 and 4. */
START_TEST(test_write_read_roundtrip)
{
	struct blkif_rsp rsp[4];
	unsigned int order = (_i & 1) ? 4 : 0;
	struct fe f;
	unsigned char *disk = malloc(11 * 4096);
	int i;

	fe_setup(&f, abis[_i >> 1], order, 0, false);
	for (i = 0; i < 11; i++)
		memset(gpage(DATA_REF0 + i), 0x30 + i, 4096);
	{
		struct blkif_req w = rw_req(BLKIF_OP_WRITE, 0x1111222233334444ull, 88, 11, DATA_REF0);

		fe_queue(&f, &w);
	}
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_uint_eq(rsp[0].id, 0x1111222233334444ull);
	ck_assert_int_eq(rsp[0].operation, BLKIF_OP_WRITE);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	disk_read(&f, 88 * 512, disk, 11 * 4096);
	for (i = 0; i < 11; i++)
		ck_assert_int_eq(disk[i * 4096 + 100], 0x30 + i);

	{
		struct blkif_req r = rw_req(BLKIF_OP_READ, 7, 88, 11, DATA_REF0 + 20);

		fe_queue(&f, &r);
	}
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	for (i = 0; i < 11; i++)
		ck_assert_int_eq(memcmp(gpage(DATA_REF0 + 20 + i), gpage(DATA_REF0 + i), 4096), 0);
	free(disk);
	fe_teardown(&f);
}
END_TEST

/* Partial segments: sectors 2..5 of a page land at the right place. */
START_TEST(test_partial_segments)
{
	struct blkif_rsp rsp[1];
	struct blkif_req w = rw_req(BLKIF_OP_WRITE, 1, 1000, 2, DATA_REF0);
	unsigned char buf[2048 + 512];
	struct fe f;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	memset(gpage(DATA_REF0), 0xaa, 4096);
	memset(gpage(DATA_REF0) + 2 * 512, 0x11, 4 * 512);
	memset(gpage(DATA_REF0 + 1), 0x22, 4096);
	w.seg[0].first_sect = 2;
	w.seg[0].last_sect = 5;
	w.seg[1].first_sect = 7;
	w.seg[1].last_sect = 7;
	fe_queue(&f, &w);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	disk_read(&f, 1000 * 512, buf, sizeof(buf));
	ck_assert_int_eq(buf[0], 0x11);
	ck_assert_int_eq(buf[2047], 0x11);
	ck_assert_int_eq(buf[2048], 0x22);
	ck_assert_int_eq(buf[2048 + 511], 0x22);
	fe_teardown(&f);
}
END_TEST

/* Bad requests get their own error answer; the ring keeps working. */
START_TEST(test_bad_requests)
{
	struct blkif_rsp rsp[8];
	struct blkif_req q;
	struct fe f;
	int i;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	q = rw_req(BLKIF_OP_READ, 1, 0, 0, DATA_REF0);		/* no segments */
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 2, DISK_BYTES >> 9, 1, DATA_REF0);	/* past the end */
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 3, 0, 1, DATA_REF0);
	q.seg[0].first_sect = 6;
	q.seg[0].last_sect = 2;					/* first > last */
	fe_queue(&f, &q);
	q = rw_req(4, 4, 0, 1, DATA_REF0);			/* reserved op */
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_INDIRECT, 5, 0, 0, DATA_REF0);	/* not advertised */
	q.indirect_op = BLKIF_OP_READ;
	q.nr_segments = 1;
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 6, 0, 1, BAD_REF);		/* bad grant */
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 7, 0, 2, DATA_REF0);
	fk.readonly[DATA_REF0 + 1] = true;			/* read into a r/o grant */
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 8, 0, 1, DATA_REF0);		/* and a good one */
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 8, rsp);
	for (i = 0; i < 8; i++) {
		int16_t want = rsp[i].id == 8 ? BLKIF_RSP_OKAY :
			       (rsp[i].id == 4 || rsp[i].id == 5) ? BLKIF_RSP_EOPNOTSUPP :
			       BLKIF_RSP_ERROR;

		ck_assert_msg(rsp[i].status == want, "id %llu: status %d, want %d",
			      (unsigned long long)rsp[i].id, rsp[i].status, want);
	}
	fe_teardown(&f);
}
END_TEST

/* Read-only vbd: writes and discards are refused, reads work. */
START_TEST(test_readonly)
{
	struct blkif_rsp rsp[3];
	struct blkif_req q;
	struct fe f;
	int i;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, true);
	q = rw_req(BLKIF_OP_WRITE, 1, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_WRITE_BARRIER, 2, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 3, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 3, rsp);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsp[i].status, rsp[i].id == 3 ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR);
	fe_teardown(&f);
}
END_TEST

/* Flush, barrier (with and without data) and discard answer OKAY, and
 * nothing after a barrier is answered before it. */
START_TEST(test_flush_barrier_discard)
{
	struct blkif_rsp rsp[6];
	struct blkif_req q;
	unsigned char buf[4096];
	struct fe f;
	int i, barrier_at = -1;

	fe_setup(&f, BLKIF_ABI_X86_32, 0, 0, false);
	memset(gpage(DATA_REF0), 0x5a, 4096);
	q = rw_req(BLKIF_OP_WRITE, 1, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_FLUSH_DISKCACHE, 2, 0, 0, DATA_REF0);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_WRITE_BARRIER, 3, 8, 1, DATA_REF0);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_READ, 4, 8, 1, DATA_REF0 + 1);
	fe_queue(&f, &q);
	q = rw_req(BLKIF_OP_WRITE_BARRIER, 5, 0, 0, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 5, rsp);
	for (i = 0; i < 5; i++) {
		ck_assert_msg(rsp[i].status == BLKIF_RSP_OKAY, "id %llu status %d",
			      (unsigned long long)rsp[i].id, rsp[i].status);
		if (rsp[i].id == 3)
			barrier_at = i;
		if (rsp[i].id == 4)
			ck_assert_int_gt(i, barrier_at);
	}
	ck_assert_int_ge(barrier_at, 0);
	/* The barrier's write was done before the read behind it. */
	ck_assert_int_eq(gpage(DATA_REF0 + 1)[4095], 0x5a);

	if (f.cfg.disk.feature_discard) {
		q = (struct blkif_req){ .operation = BLKIF_OP_DISCARD, .id = 6,
					.sector_number = 0, .discard_nr_sectors = 8 };
		fe_queue(&f, &q);
		fe_push(&f);
		fe_wait(&f, 1, rsp);
		ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
		disk_read(&f, 0, buf, sizeof(buf));
		ck_assert_int_eq(buf[0], 0);
		ck_assert_int_eq(buf[4095], 0);
	}
	fe_teardown(&f);
}
END_TEST

/* A producer more than a ring ahead halts the ring (no responses, a
 * report for the main thread), once. */
START_TEST(test_producer_overflow)
{
	char msg[160];
	struct fe f;
	int i;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	f.req_prod = f.layout.nr_ents + 5;
	fe_push(&f);
	for (i = 0; i < 200 && !atomic_load(&wakes); i++)
		usleep(5000);
	ck_assert(ring_take_halt(f.r, msg, sizeof(msg)));
	ck_assert_ptr_nonnull(strstr(msg, "producer"));
	ck_assert(!ring_take_halt(f.r, msg, sizeof(msg)));
	fe_kick();
	usleep(50000);
	ck_assert_uint_eq(*sring_u32(&f, 2), 0);	/* nothing answered */
	fe_teardown(&f);
}
END_TEST

/* Attach form: a ring whose indices are already far along is served
 * from there, not reset; the wrap of the u32 indices works. */
START_TEST(test_attach_nonzero_and_wrap)
{
	struct blkif_rsp rsp[40];
	struct blkif_req q;
	RING_IDX start = 0xffffffffu - 10;
	struct fe f;
	int i;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, start, false);
	ck_assert_uint_eq(*sring_u32(&f, 2), start);
	for (i = 0; i < 30; i++) {
		q = rw_req(BLKIF_OP_READ, (uint64_t)i, (uint64_t)i * 8, 1, DATA_REF0 + (i % 40));
		fe_queue(&f, &q);
	}
	fe_push(&f);
	fe_wait(&f, 30, rsp);
	for (i = 0; i < 30; i++)
		ck_assert_int_eq(rsp[i].status, BLKIF_RSP_OKAY);
	ck_assert_uint_eq(*sring_u32(&f, 2), start + 30);
	fe_teardown(&f);
}
END_TEST

/* Notification hold-off: a frontend that does not ask (rsp_event far
 * ahead) gets no event; one that asks gets one. */
START_TEST(test_notify_holdoff)
{
	struct blkif_rsp rsp[1];
	struct blkif_req q;
	struct fe f;
	int before, after;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	*sring_u32(&f, 3) = 1000;		/* rsp_event: not interested yet */
	q = rw_req(BLKIF_OP_READ, 1, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	before = atomic_load(&fk.notifies);
	ck_assert_int_eq(before, 0);
	q = rw_req(BLKIF_OP_READ, 2, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);			/* fe_wait set rsp_event = rsp_cons + 1 */
	fe_wait(&f, 1, rsp);
	usleep(20000);
	after = atomic_load(&fk.notifies);
	ck_assert_int_eq(after, before + 1);
	/* Final check before sleeping: req_event asks for the next request. */
	ck_assert_uint_eq(*sring_u32(&f, 1), f.req_prod + 1);
	fe_teardown(&f);
}
END_TEST

/* A full ring of requests in one go: all answered (slots bounded by the
 * ring size), grant copies batched (fewer copy calls than requests). */
START_TEST(test_full_ring_batched)
{
	struct blkif_rsp *rsp;
	struct blkif_req q;
	struct fe f;
	unsigned int i, n;
	int calls;

	fe_setup(&f, BLKIF_ABI_X86_64, 2, 0, false);
	n = f.layout.nr_ents;
	rsp = calloc(n, sizeof(*rsp));
	atomic_store(&fk.copy_calls, 0);
	for (i = 0; i < n; i++) {
		q = rw_req(BLKIF_OP_WRITE, i, (uint64_t)i * 8, 1, DATA_REF0 + (i % 40));
		fe_queue(&f, &q);
	}
	fe_push(&f);
	fe_wait(&f, n, rsp);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(rsp[i].status, BLKIF_RSP_OKAY);
	calls = atomic_load(&fk.copy_calls);
	ck_assert_msg(calls < (int)n / 4, "%d grant copy calls for %u writes", calls, n);
	free(rsp);
	fe_teardown(&f);
}
END_TEST

/* Stop with requests queued but not consumed: the thread exits, the
 * ring is unmapped and unbound exactly once. */
START_TEST(test_stop_releases)
{
	int maps, unmaps, binds, unbinds;
	struct fe f;

	maps = atomic_load(&fk.maps);
	unmaps = atomic_load(&fk.unmaps);
	binds = atomic_load(&fk.binds);
	unbinds = atomic_load(&fk.unbinds);
	fe_setup(&f, BLKIF_ABI_X86_64, 1, 0, false);
	fe_teardown(&f);
	ck_assert_int_eq(atomic_load(&fk.maps) - maps, 1);
	ck_assert_int_eq(atomic_load(&fk.unmaps) - unmaps, 1);
	ck_assert_int_eq(atomic_load(&fk.binds) - binds, 1);
	ck_assert_int_eq(atomic_load(&fk.unbinds) - unbinds, 1);
}
END_TEST

/* Inconsistent indices at attach are refused before anything runs. */
START_TEST(test_attach_refuses_stale)
{
	struct fe f;
	struct ring *r;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	fe_release_ring(&f);
	*sring_u32(&f, 0) = 500;	/* req_prod 500 ahead of rsp_prod 0 */
	ck_assert_int_eq(ring_start(&f.cfg, &r), -EPROTO);
	io_backing_close(f.backing);
	unlink(f.path);
}
END_TEST

/* A config without what the ring reads from its owner is refused before
 * anything is mapped. */
START_TEST(test_start_refuses_incomplete_config)
{
	static const char *const missing[] = { "plat", "backing", "nr_sectors", "wake" };
	struct ring_config cfg;
	struct fe f;
	struct ring *r;
	unsigned int i;
	int maps;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	fe_release_ring(&f);
	maps = atomic_load(&fk.maps);
	for (i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		cfg = f.cfg;
		switch (i) {
		case 0: cfg.plat = NULL; break;
		case 1: cfg.backing = NULL; break;
		case 2: cfg.nr_sectors = NULL; break;
		case 3: cfg.wake = NULL; break;
		}
		ck_assert_msg(ring_start(&cfg, &r) == -EINVAL, "no %s: not refused", missing[i]);
	}
	ck_assert_int_eq(atomic_load(&fk.maps), maps);
	io_backing_close(f.backing);
	unlink(f.path);
}
END_TEST

#define IND_REF		(DATA_REF0 + 44)	/* the indirect page */

/* An INDIRECT request of nseg full pages from ref0, its segments written
 * into the indirect page IND_REF. */
static struct blkif_req ind_req(uint8_t op, uint64_t id, uint64_t sector, unsigned int nseg,
				uint32_t ref0)
{
	struct blkif_req q = { 0 };
	struct blkif_seg segs[64];
	void *page = gpage(IND_REF);
	unsigned int i;

	ck_assert_uint_le(nseg, 64);
	for (i = 0; i < nseg; i++) {
		segs[i].gref = ref0 + i;
		segs[i].first_sect = 0;
		segs[i].last_sect = 7;
	}
	ck_assert_int_eq(blkif_indirect_pages_encode(&page, 1, segs, nseg), 0);
	q.operation = BLKIF_OP_INDIRECT;
	q.indirect_op = op;
	q.id = id;
	q.sector_number = sector;
	q.nr_segments = (uint16_t)nseg;
	q.indirect_grefs[0] = IND_REF;
	return q;
}

/* INDIRECT with 20 segments (more than a slot holds): written data reaches
 * the file, reads come back, responses echo indirect_op; bad headers and
 * segments get ERROR and the ring keeps working. Both ABIs. */
START_TEST(test_indirect)
{
	struct blkif_rsp rsp[4];
	struct blkif_req q;
	unsigned char *disk = malloc(20 * 4096);
	struct fe f;
	int i;

	fe_max_indirect = 32;
	fe_setup(&f, abis[_i], 0, 0, false);
	for (i = 0; i < 20; i++)
		memset(gpage(DATA_REF0 + i), 0x40 + i, 4096);
	q = ind_req(BLKIF_OP_WRITE, 0xabcdef, 256, 20, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_uint_eq(rsp[0].id, 0xabcdef);
	ck_assert_int_eq(rsp[0].operation, BLKIF_OP_WRITE);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	disk_read(&f, 256 * 512, disk, 20 * 4096);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(disk[i * 4096 + 4095], 0x40 + i);

	q = ind_req(BLKIF_OP_READ, 2, 256, 20, DATA_REF0 + 20);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].operation, BLKIF_OP_READ);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(memcmp(gpage(DATA_REF0 + 20 + i), gpage(DATA_REF0 + i), 4096), 0);

	/* More segments than advertised. */
	q = ind_req(BLKIF_OP_READ, 3, 0, 33, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_ERROR);
	/* indirect_op FLUSH: ERROR, and the op echoed as it came. */
	q = ind_req(BLKIF_OP_FLUSH_DISKCACHE, 4, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	/* The indirect page is not granted. */
	q = ind_req(BLKIF_OP_READ, 5, 0, 1, DATA_REF0);
	q.indirect_grefs[0] = BAD_REF;
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 2, rsp);
	ck_assert_uint_eq(rsp[0].id, 4);
	ck_assert_int_eq(rsp[0].operation, BLKIF_OP_FLUSH_DISKCACHE);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_ERROR);
	ck_assert_uint_eq(rsp[1].id, 5);
	ck_assert_int_eq(rsp[1].operation, BLKIF_OP_READ);
	ck_assert_int_eq(rsp[1].status, BLKIF_RSP_ERROR);
	/* A bad segment in the page: first_sect > last_sect, nothing read. */
	q = ind_req(BLKIF_OP_READ, 6, 0, 3, DATA_REF0 + 20);
	gpage(IND_REF)[2 * 8 + 4] = 5;	/* segment 2: first_sect 5, last 7 */
	gpage(IND_REF)[2 * 8 + 5] = 2;	/* ... last_sect 2 */
	memset(gpage(DATA_REF0 + 20), 0x99, 4096);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_ERROR);
	ck_assert_int_eq(gpage(DATA_REF0 + 20)[0], 0x99);

	/* Still serving. */
	q = ind_req(BLKIF_OP_READ, 7, 256, 1, DATA_REF0 + 20);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_OKAY);
	ck_assert_int_eq(gpage(DATA_REF0 + 20)[0], 0x40);
	free(disk);
	fe_teardown(&f);
}
END_TEST

/* Without the feature INDIRECT is an unknown op, echoed as it came. */
START_TEST(test_indirect_not_advertised)
{
	struct blkif_rsp rsp[1];
	struct blkif_req q;
	struct fe f;

	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	q = ind_req(BLKIF_OP_READ, 9, 0, 1, DATA_REF0);
	fe_queue(&f, &q);
	fe_push(&f);
	fe_wait(&f, 1, rsp);
	ck_assert_int_eq(rsp[0].operation, BLKIF_OP_INDIRECT);
	ck_assert_int_eq(rsp[0].status, BLKIF_RSP_EOPNOTSUPP);
	fe_teardown(&f);
}
END_TEST

/* ---- the engine starts on the ring thread ---- */

/* Waits until the ring's start has finished; its result. */
static int start_wait(struct ring *r, char *why, size_t len)
{
	int i, err = -EINPROGRESS;

	for (i = 0; i < 2000 && err == -EINPROGRESS; i++) {
		err = ring_start_result(r, why, len);
		if (err == -EINPROGRESS)
			usleep(5000);
	}
	return err;
}

/* An engine that cannot start (io_uring asked for where it is missing):
 * ring_start has already returned; the failure comes through the wake
 * hook and ring_start_result, with its reason, and nothing the frontend
 * queued is consumed or answered. */
START_TEST(test_engine_start_fails)
{
	struct blkif_req w = rw_req(BLKIF_OP_WRITE, 1, 0, 1, DATA_REF0);
	int unmaps, unbinds, err;
	enum io_engine_kind kind = engine_kind;
	char why[160];
	struct fe f;

	setenv(IO_ENV_NO_URING, "1", 1);
	engine_kind = IO_ENGINE_URING;
	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	engine_kind = kind;
	fe_queue(&f, &w);
	fe_push(&f);
	err = start_wait(f.r, why, sizeof(why));
	unsetenv(IO_ENV_NO_URING);
	ck_assert_int_eq(err, -ENOSYS);
	ck_assert_msg(strstr(why, "storage engine") != NULL, "reason: \"%s\"", why);
	ck_assert_int_gt(atomic_load(&wakes), 0);
	ck_assert(ring_is_stopped(f.r));
	ck_assert_uint_eq(atomic_load(&ring_get_stats(f.r)->req_cons), 0);
	ck_assert_uint_eq(*sring_u32(&f, 2), 0);	/* rsp_prod: nothing answered */
	unmaps = atomic_load(&fk.unmaps);
	unbinds = atomic_load(&fk.unbinds);
	ring_release(f.r, false);
	f.r = NULL;
	ck_assert_int_eq(atomic_load(&fk.unmaps) - unmaps, 1);
	ck_assert_int_eq(atomic_load(&fk.unbinds) - unbinds, 1);
	io_backing_close(f.backing);
	unlink(f.path);
}
END_TEST

static pid_t nbdkit_pid;

static bool unix_accepts(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

/* nbdkit serving DISK_BYTES of memory on sock, every connection's
 * handshake held back by delay (the delay filter's delay-open). False
 * where nbdkit is not installed. */
static bool nbdkit_slow_start(const char *sock, const char *delay)
{
	char size[32], opt[64];
	int i;

	if (system("command -v nbdkit >/dev/null 2>&1") != 0)
		return false;
	snprintf(size, sizeof(size), "%u", DISK_BYTES);
	snprintf(opt, sizeof(opt), "delay-open=%s", delay);
	unlink(sock);
	nbdkit_pid = fork();
	ck_assert_int_ge(nbdkit_pid, 0);
	if (nbdkit_pid == 0) {
		execlp("nbdkit", "nbdkit", "-f", "--exit-with-parent", "-U", sock,
		       "--filter=delay", "memory", size, opt, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1000 && !unix_accepts(sock); i++)
		usleep(10 * 1000);
	ck_assert_msg(i < 1000, "nbdkit did not listen on %s", sock);
	return true;
}

static void nbdkit_stop(const char *sock)
{
	kill(nbdkit_pid, SIGKILL);
	waitpid(nbdkit_pid, NULL, 0);
	unlink(sock);
}

/* An engine whose start is slow (an NBD handshake held back 1 s): the
 * ring is started before it is up, a request queued meanwhile is not
 * consumed until it is, then served. */
/* A guest that repeats a warning does not silence its ring for good: past
 * the burst the ring drops them, and once the interval is over it logs
 * again, first saying how many it dropped. */
START_TEST(test_warnings_rate_limited)
{
	struct ring r;
	char out[4096];
	int fds[2], saved, i, allowed = 0;
	ssize_t n;

	memset(&r, 0, sizeof(r));
	snprintf(r.prefix, sizeof(r.prefix), "d7/51712/q0: ");
	r.warn_limit = (struct log_ratelimit)LOG_RATELIMIT_INIT(1, 3);
	ck_assert_int_eq(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
	log_set_level(LOG_LEVEL_WARN);
	for (i = 0; i < 10; i++)
		allowed += ring_may_warn(&r);
	ck_assert_int_eq(allowed, 3);
	usleep(1100 * 1000);
	ck_assert(ring_may_warn(&r));
	fflush(stderr);
	log_set_level(LOG_LEVEL_ERR);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	ck_assert_int_gt(n, 0);
	out[n] = 0;
	ck_assert_msg(strstr(out, "7 warnings suppressed"), "got: %s", out);
}
END_TEST

START_TEST(test_engine_start_slow)
{
	struct blkif_req w = rw_req(BLKIF_OP_WRITE, 5, 64, 2, DATA_REF0);
	struct blkif_req rd = rw_req(BLKIF_OP_READ, 6, 64, 2, DATA_REF0 + 10);
	char sock[64], uri[128], why[160];
	struct blkif_rsp rsp;
	uint32_t cons;
	struct fe f;
	int err;

	snprintf(sock, sizeof(sock), "/tmp/check-ring-nbd.%d.sock", (int)getpid());
	if (!nbdkit_slow_start(sock, "1")) {
		printf("SKIP: nbdkit not installed\n");
		return;
	}
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
	fe_target = uri;
	fe_setup(&f, BLKIF_ABI_X86_64, 0, 0, false);
	/* Had ring_start made the engine, its handshake would be over. */
	ck_assert_int_eq(ring_start_result(f.r, why, sizeof(why)), -EINPROGRESS);
	memset(gpage(DATA_REF0), 0x5a, 2 * 4096);
	fe_queue(&f, &w);
	fe_push(&f);
	usleep(200 * 1000);
	/* req_cons read while the start still ran: nothing consumed. */
	cons = atomic_load(&ring_get_stats(f.r)->req_cons);
	if (ring_start_result(f.r, NULL, 0) == -EINPROGRESS)
		ck_assert_uint_eq(cons, 0);
	err = start_wait(f.r, why, sizeof(why));
	ck_assert_msg(err == 0, "start: %d (%s)", err, why);
	ck_assert_int_gt(atomic_load(&wakes), 0);
	fe_wait(&f, 1, &rsp);
	ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
	fe_queue(&f, &rd);
	fe_push(&f);
	fe_wait(&f, 1, &rsp);
	ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
	ck_assert_int_eq(memcmp(gpage(DATA_REF0 + 10), gpage(DATA_REF0), 2 * 4096), 0);
	fe_release_ring(&f);
	io_backing_close(f.backing);
	unlink(f.path);
	nbdkit_stop(sock);
}
END_TEST

static Suite *ring_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("pipeline");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_write_read_roundtrip, 0, 4);
	tcase_add_test(tc, test_partial_segments);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_flush_barrier_discard);
	tcase_add_test(tc, test_producer_overflow);
	tcase_add_test(tc, test_attach_nonzero_and_wrap);
	tcase_add_test(tc, test_notify_holdoff);
	tcase_add_test(tc, test_full_ring_batched);
	tcase_add_test(tc, test_stop_releases);
	tcase_add_test(tc, test_attach_refuses_stale);
	tcase_add_test(tc, test_start_refuses_incomplete_config);
	tcase_add_loop_test(tc, test_indirect, 0, 2);
	tcase_add_test(tc, test_indirect_not_advertised);
	tcase_add_test(tc, test_engine_start_fails);
	tcase_add_test(tc, test_engine_start_slow);
	tcase_add_test(tc, test_warnings_rate_limited);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	static const enum io_engine_kind kinds[] = { IO_ENGINE_THREAD, IO_ENGINE_URING };
	int failed = 0;
	size_t k;

	log_init("check-ring", true, LOG_LEVEL_ERR);
	fk.h.ops = &fake_ops;
	fk.pages = mmap(NULL, (size_t)GUEST_PAGES * PLAT_PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fk.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fk.pages == MAP_FAILED || fk.evfd < 0)
		return 99;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		SRunner *sr;

		if (kinds[k] == IO_ENGINE_URING && !io_uring_is_available()) {
			printf("io_uring unavailable: uring engine cases skipped\n");
			continue;
		}
		engine_kind = kinds[k];
		/* No fork: the fake platform and the ring threads live in
		 * this process. */
		sr = srunner_create(ring_suite(io_engine_kind_name(kinds[k])));
		srunner_set_fork_status(sr, CK_NOFORK);
		srunner_run_all(sr, CK_NORMAL);
		failed += srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	return failed ? 1 : 0;
}
