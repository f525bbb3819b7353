/* One shared blkif ring: mapping (single or multi-page, attach form), its
 * thread, and the request pipeline of DESIGN.md §5: read the producer,
 * check it, copy each request once, validate, grant-copy data in one batch
 * per drain, submit to the storage engine, copy read data out, answer,
 * notify only when ring.h's hold-off says so, final check before sleeping.
 * INDIRECT requests fetch their segment pages once (by grant copy, or
 * through the persistent grant cache when it is on) into private memory
 * and take their data buffer from a bounded per-ring pool.
 * The ring thread alone touches the shared ring; the main thread maps it
 * before the thread starts and unmaps it after the thread has exited.
 * With a journal (journal.c) every consumed request and every response is
 * recorded first, so a restarted process can resume the ring where this
 * one died: publish again what was answered but not published, issue
 * again what was not answered, never answer twice. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

/* Offsets of the indices in the shared ring header (ring.h's sring). */
#define SRING_REQ_PROD	0
#define SRING_REQ_EVENT	1
#define SRING_RSP_PROD	2
#define SRING_RSP_EVENT	3

#define RING_SEG_BYTES	PLAT_PAGE_SIZE
#define RING_BUF_BYTES	(BLKIF_MAX_SEGMENTS_PER_REQUEST * RING_SEG_BYTES)
/* Consecutive wakeups without work before we slow down (event storms). */
#define RING_SPURIOUS_MAX	64
/* Events taken per wakeup; what is left stays pending on the fd. */
#define RING_EVENTS_PER_WAKE	4
/* Data buffers of indirect requests in flight, per ring: at most this
 * many bytes, at least one request, at most one per ring entry. */
#define RING_INDIRECT_BUDGET	(64u << 20)
#define RING_LOG_ERRORS_MAX	16

enum rreq_stage {
	RREQ_FREE,
	RREQ_COPY_IN,		/* write data waits for this drain's grant copy */
	RREQ_IO,		/* at the engine */
	RREQ_BARRIER_WAIT,	/* waits for every earlier request to finish */
	RREQ_FLUSH,		/* data written, the flush that follows is at the engine */
	RREQ_COPY_OUT,		/* read data waits for this reap's grant copy */
};

/* Data buffer and segment list of one indirect request in flight. */
struct rbig {
	struct rbig *next;		/* free list */
	void *data;			/* max_indirect_segments pages */
	struct blkif_seg *segs;		/* max_indirect_segments entries */
};

/* One in-flight request; the array index is ours, never the guest's id. */
struct rreq {
	struct rreq *next;		/* free list or a stage list */
	enum rreq_stage stage;
	struct blkif_req req;		/* the single private copy */
	uint32_t seq;			/* the ring index it was read from */
	bool refused;			/* the validator said no: no latency sample */
	bool copied;			/* moved through persistent grants */
	int16_t status;
	bool flush_after;		/* barrier or flush with data: flush next */
	uint64_t offset;		/* bytes */
	uint32_t len;
	struct iovec iov;		/* its base is where the data lives */
	void *buf;			/* RING_BUF_BYTES, page aligned */
	struct rbig *big;		/* INDIRECT only: held until answered */
	uint64_t t_start;		/* ns, CLOCK_MONOTONIC, for the latency histogram */
};

/* Lifetime: the caller of ring_start owns the ring (the main thread). The
 * ring thread uses it from ring_start until its last store, stopped, which
 * it makes only after every request it took has been answered (inflight
 * 0): requests live in reqs[] and hold no reference of their own. So the
 * owner may free the ring once ring_is_stopped() says so; ring_release
 * joins the thread and checks both rules rather than trusting them. What
 * the config points to (platform, backing, size, wake_opaque) is the
 * owner's and outlives the ring (ring.h); the ring never frees it. */
struct ring {
	unsigned int index;
	char prefix[40];

	/* set up by the main thread before the thread starts */
	struct ring_config cfg;
	struct blkif_ring_layout layout;
	struct plat_gnttab *gt;
	struct plat_evtchn *ev;
	uint32_t port;			/* our end */
	bool bound;
	void *sring;			/* mapped pages, NULL when unmapped */
	unsigned int nr_pages;
	struct io_engine *engine;
	int stop_fd;
	pthread_t thread;
	bool thread_started;

	/* ring thread only */
	RING_IDX req_cons;
	RING_IDX rsp_prod_pvt;
	RING_IDX rsp_pushed;		/* our last published rsp_prod */
	bool sync_unpushed;		/* a flush or barrier answer since (crash points) */
	struct rreq *reqs;
	void *bufs;
	size_t bufs_len;
	struct rreq *free;
	unsigned int inflight;
	struct rreq *barrier;		/* waiting for the ring to drain */
	struct rreq *copy_list;		/* stage COPY_IN or COPY_OUT, in order */
	struct rreq **copy_tail;
	xengnttab_grant_copy_segment_t *segs;
	unsigned int segs_cap;		/* entries in segs: one batch */
	struct rbig *bigs;		/* the indirect pool, bigs_nr of them */
	unsigned int bigs_nr;
	void *bigs_data;
	size_t bigs_data_len;
	struct blkif_seg *bigs_segs;
	struct rbig *big_free;
	bool stashed;			/* an indirect request waits for the pool */
	struct blkif_req stash;		/* ... here: the slot is not read again */
	struct rreq *stash_q;		/* ... holding this request slot */
	unsigned long stash_waits;	/* times the pool ran dry, for the log */
	void *ind_pages;		/* private copies of one request's indirect pages */
	bool ind_copy_only;		/* indirect pages failed to map persistently */
	xengnttab_grant_copy_segment_t ind_copy[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	bool stopping;
	bool halted;
	struct journal *journal;	/* NULL: recovery is off */
	struct pgrant_cache *pgrants;	/* NULL: grant copy only */
	uint64_t pgrant_next_expiry;	/* ns */
	struct rreq **replay;		/* recovered requests to issue again, */
	unsigned int nr_replay;		/* in ring order, from replay_pos on */
	unsigned int replay_pos;
	bool notify_once;		/* recovered: kick the frontend once */
	unsigned int spurious;
	unsigned long errors_logged;
	struct blkif_vbd_desc desc;

	/* what recovery found (main thread, at start) */
	bool recovered;
	unsigned int nr_republished;

	/* thread -> main */
	struct ring_stats stats;	/* written by the thread only */
	atomic_bool stopped;
	atomic_bool halt_pending;
	char halt_msg[128];
};

/* ---- crash points, a testing aid ----
 * BLKBACKD_CRASH_AT=POINT:N kills the process with SIGKILL the Nth time
 * any ring passes POINT, so tests can stop us exactly where recovery is
 * hardest: a request consumed but not issued, a response written but not
 * published, published but its request not yet retired. The sync-
 * points count flushes and barriers only, for tests of their ordering
 * across a crash. */
enum crash_point {
	CRASH_NONE, CRASH_CONSUMED, CRASH_RESPONDED, CRASH_PUSHED,
	CRASH_SYNC_CONSUMED, CRASH_SYNC_RESPONDED, CRASH_SYNC_PUSHED,
};

static enum crash_point crash_at = CRASH_NONE;
static _Atomic long crash_countdown;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

static void crash_init(void)
{
	static const char *const names[] = {
		"", "consumed", "responded", "pushed",
		"sync-consumed", "sync-responded", "sync-pushed",
	};
	const char *env = getenv("BLKBACKD_CRASH_AT"), *colon;
	long n;

	if (!env || !(colon = strchr(env, ':')))
		return;
	n = strtol(colon + 1, NULL, 10);
	for (unsigned int i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == (size_t)(colon - env) &&
		    strncmp(env, names[i], (size_t)(colon - env)) == 0 && n > 0) {
			crash_at = (enum crash_point)i;
			atomic_store(&crash_countdown, n);
		}
	}
}

static inline void crash_point(enum crash_point p)
{
	if (crash_at == p && atomic_fetch_sub(&crash_countdown, 1) == 1)
		raise(SIGKILL);
}

static bool ring_op_is_sync(uint8_t op)
{
	return op == BLKIF_OP_FLUSH_DISKCACHE || op == BLKIF_OP_WRITE_BARRIER;
}

static void ring_log(const struct ring *r, enum log_level level, int errnum,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void ring_log(const struct ring *r, enum log_level level, int errnum,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vprefixed(level, errnum, r->prefix, fmt, ap);
	va_end(ap);
}

/* ---- shared index access ----
 * The indices live in memory the guest writes concurrently. Each access is
 * one atomic load or store (never torn, never repeated by the compiler);
 * the ordering ring.h gets from xen_rmb/wmb/mb comes from C11 fences at
 * the places its macros put them. */
static inline _Atomic uint32_t *sring_idx(const struct ring *r, unsigned int which)
{
	return (_Atomic uint32_t *)r->sring + which;
}

static inline RING_IDX sring_load(const struct ring *r, unsigned int which)
{
	return atomic_load_explicit(sring_idx(r, which), memory_order_relaxed);
}

static inline void sring_store(const struct ring *r, unsigned int which, RING_IDX v)
{
	atomic_store_explicit(sring_idx(r, which), v, memory_order_relaxed);
}

/* ---- counters (one writer: no read-modify-write atomics needed) ---- */

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_set32(_Atomic uint32_t *c, uint32_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static enum ring_op_class ring_op_class_of(uint8_t op)
{
	switch (op) {
	case BLKIF_OP_READ:
		return RING_OP_READ;
	case BLKIF_OP_WRITE:
		return RING_OP_WRITE;
	case BLKIF_OP_WRITE_BARRIER:
		return RING_OP_BARRIER;
	case BLKIF_OP_FLUSH_DISKCACHE:
		return RING_OP_FLUSH;
	case BLKIF_OP_DISCARD:
		return RING_OP_DISCARD;
	default:
		return RING_OP_OTHER;
	}
}

/* An answered request that had a slot: data volume and latency. */
static void ring_stat_done(struct ring *r, uint8_t op, uint32_t len, uint64_t t_start,
			   int16_t status)
{
	uint64_t us = (now_ns() - t_start) / 1000;
	unsigned int b = us ? 64 - (unsigned int)__builtin_clzll(us) : 0;

	if (status == BLKIF_RSP_OKAY && len) {
		if (op == BLKIF_OP_READ)
			stat_add(&r->stats.sectors_read, len >> 9);
		else if (op != BLKIF_OP_DISCARD)
			stat_add(&r->stats.sectors_written, len >> 9);
	}
	if (b >= RING_LAT_BUCKETS)
		b = RING_LAT_BUCKETS - 1;
	stat_add(&r->stats.lat[b], 1);
	if (us > atomic_load_explicit(&r->stats.lat_max_us, memory_order_relaxed))
		atomic_store_explicit(&r->stats.lat_max_us, us, memory_order_relaxed);
}

const struct ring_stats *ring_get_stats(const struct ring *r)
{
	return &r->stats;
}

void ring_stats_add(struct ring_stats *dst, const struct ring_stats *src)
{
	unsigned int i;

#define ADD(f) stat_add(&dst->f, atomic_load_explicit(&src->f, memory_order_relaxed))
	for (i = 0; i < RING_OP_CLASSES; i++)
		ADD(ops[i]);
	for (i = 0; i < RING_LAT_BUCKETS; i++)
		ADD(lat[i]);
	ADD(sectors_read);
	ADD(sectors_written);
	ADD(err_validation);
	ADD(err_grant);
	ADD(err_storage);
	ADD(out_of_slot);
	ADD(flushes);
	ADD(discards);
	ADD(pgrant_hits);
	ADD(pgrant_indirect);
	ADD(pgrant_maps);
#undef ADD
	if (atomic_load(&src->lat_max_us) > atomic_load(&dst->lat_max_us))
		atomic_store(&dst->lat_max_us, atomic_load(&src->lat_max_us));
}

void ring_get_info(const struct ring *r, struct ring_info *ret)
{
	ret->index = r->index;
	ret->order = r->cfg.order;
	ret->nr_ents = r->layout.nr_ents;
	ret->abi = r->cfg.abi;
	ret->max_indirect_segments = r->cfg.max_indirect_segments;
	ret->port = r->port;
	ret->remote_port = r->cfg.remote_port;
	ret->stopped = ring_is_stopped(r);
	ret->recovered = r->recovered;
	ret->replayed = r->nr_replay;
	ret->republished = r->nr_republished;
	ret->journal = r->journal != NULL;
	ret->persistent = r->pgrants != NULL;
}

static void ring_halt(struct ring *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ring_halt(struct ring *r, const char *fmt, ...)
{
	va_list ap;

	if (r->halted)
		return;
	r->halted = true;
	va_start(ap, fmt);
	vsnprintf(r->halt_msg, sizeof(r->halt_msg), fmt, ap);
	va_end(ap);
	/* The main thread logs it once, with the vbd's error node. */
	ring_log(r, LOG_LEVEL_DEBUG, 0, "halted: %s", r->halt_msg);
	atomic_store_explicit(&r->halt_pending, true, memory_order_release);
	r->cfg.wake(r->cfg.wake_opaque);
}

/* ---- responses ---- */

static void ring_push(struct ring *r);

static void ring_respond(struct ring *r, uint32_t seq, uint64_t id, uint8_t op, int16_t status)
{
	struct blkif_rsp rsp = { .id = id, .operation = op, .status = status };

	/* Never more unpublished responses than the journal's log holds (a
	 * well-behaved frontend cannot make this happen anyway). */
	if (r->rsp_prod_pvt - r->rsp_pushed >= r->layout.nr_ents)
		ring_push(r);
	if (r->journal)
		journal_respond(r->journal, r->rsp_prod_pvt, seq, id, op, status);
	/* The slot is ours to write: rsp_prod_pvt never passes req_cons. */
	blkif_rsp_encode(r->cfg.abi, blkif_ring_slot(&r->layout, r->sring, r->rsp_prod_pvt), &rsp);
	r->rsp_prod_pvt++;
	stat_add(&r->stats.ops[ring_op_class_of(op)], 1);
	crash_point(CRASH_RESPONDED);
	if (ring_op_is_sync(op)) {
		r->sync_unpushed = true;
		crash_point(CRASH_SYNC_RESPONDED);
	}
}

/* RING_PUSH_RESPONSES_AND_CHECK_NOTIFY, with the old value taken from our
 * own copy rather than from the guest-writable rsp_prod. */
static void ring_push(struct ring *r)
{
	RING_IDX old = r->rsp_pushed, new = r->rsp_prod_pvt, event;
	int err;

	if (old == new)
		return;
	/* Response contents before the index (xen_wmb). */
	atomic_thread_fence(memory_order_release);
	sring_store(r, SRING_RSP_PROD, new);
	r->rsp_pushed = new;
	stat_set32(&r->stats.rsp_prod, new);
	crash_point(CRASH_PUSHED);
	if (r->sync_unpushed) {
		r->sync_unpushed = false;
		crash_point(CRASH_SYNC_PUSHED);
	}
	/* The index before reading rsp_event (xen_mb): otherwise the frontend
	 * may set rsp_event after our read and sleep forever. */
	atomic_thread_fence(memory_order_seq_cst);
	event = sring_load(r, SRING_RSP_EVENT);
	if ((RING_IDX)(new - event) < (RING_IDX)(new - old)) {
		err = plat_evtchn_notify(r->ev, r->port);
		if (err < 0 && r->errors_logged++ < RING_LOG_ERRORS_MAX)
			ring_log(r, LOG_LEVEL_WARN, err, "notify failed");
	}
}

/* The operation a response echoes. Linux blkback answers an INDIRECT
 * request with its indirect_op, and Linux blkfront checks the echo against
 * the data op it sent; an INDIRECT we do not advertise is an unknown op
 * and echoed as it came. */
static uint8_t ring_rsp_op(const struct ring *r, const struct blkif_req *req)
{
	if (req->operation == BLKIF_OP_INDIRECT && r->desc.max_indirect_segments)
		return req->indirect_op;
	return req->operation;
}

static void rreq_free(struct ring *r, struct rreq *q)
{
	/* Consuming resumes once a barrier has been answered. */
	if (r->barrier == q)
		r->barrier = NULL;
	if (q->big) {
		q->big->next = r->big_free;
		r->big_free = q->big;
		q->big = NULL;
	}
	if (r->journal)
		journal_retire(r->journal, (unsigned int)(q - r->reqs));
	q->stage = RREQ_FREE;
	q->next = r->free;
	r->free = q;
	r->inflight--;
	stat_set32(&r->stats.inflight, r->inflight);
}

static void rreq_finish(struct ring *r, struct rreq *q, int16_t status)
{
	if (!q->refused)
		ring_stat_done(r, blkif_req_data_op(&q->req), q->len, q->t_start, status);
	ring_respond(r, q->seq, q->req.id, ring_rsp_op(r, &q->req), status);
	rreq_free(r, q);
}

/* q's private copy is req, which may already be it (decoded in place). */
static void rreq_set_req(struct rreq *q, const struct blkif_req *req)
{
	if (req != &q->req)
		q->req = *req;
}

static void rreq_copy_queue(struct ring *r, struct rreq *q, enum rreq_stage stage)
{
	q->stage = stage;
	q->next = NULL;
	*r->copy_tail = q;
	r->copy_tail = &q->next;
}

/* ---- data movement ---- */

/* Moves q's data through persistent grants (mapping what is not mapped
 * yet) with memcpy; false when a segment's grant cannot be mapped, and
 * then q goes the grant copy way, which reports the bad grant. A guest
 * that names one page in two requests in flight only races itself: each
 * request copies from and to its own private buffer. */
static bool rreq_copy_persistent(struct ring *r, struct rreq *q, bool to_guest)
{
	const struct blkif_seg *s = blkif_req_segs(&q->req);
	uint64_t now = now_ns();
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

static void ring_engine_error(struct ring *r, struct rreq *q, int err, const char *what)
{
	stat_add(&r->stats.err_storage, 1);
	if (r->errors_logged++ < RING_LOG_ERRORS_MAX)
		ring_log(r, LOG_LEVEL_WARN, err, "%s at byte %" PRIu64 " (+%" PRIu32 ") failed",
			 what, q->offset, q->len);
}

static int16_t ring_status_of(int err)
{
	return err == -EOPNOTSUPP ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
}

/* Hands q's current stage to the engine; answers it on refusal. */
static void rreq_submit(struct ring *r, struct rreq *q)
{
	uint8_t op = blkif_req_data_op(&q->req);
	int err;

	if (q->stage == RREQ_FLUSH || (op == BLKIF_OP_FLUSH_DISKCACHE && !q->len) ||
	    (op == BLKIF_OP_WRITE_BARRIER && !q->len)) {
		q->stage = RREQ_FLUSH;
		q->flush_after = false;
		stat_add(&r->stats.flushes, 1);
		err = io_engine_flush(r->engine, q);
	} else if (op == BLKIF_OP_DISCARD) {
		q->stage = RREQ_IO;
		stat_add(&r->stats.discards, 1);
		err = io_engine_discard(r->engine, q->offset,
					q->req.discard_nr_sectors << 9,
					q->req.discard_flag & BLKIF_DISCARD_SECURE, q);
	} else if (op == BLKIF_OP_READ) {
		q->stage = RREQ_IO;
		err = io_engine_readv(r->engine, q->offset, &q->iov, 1, q);
	} else {
		q->stage = RREQ_IO;
		err = io_engine_writev(r->engine, q->offset, &q->iov, 1, q);
	}
	if (err < 0) {
		ring_engine_error(r, q, err, "queueing");
		rreq_finish(r, q, ring_status_of(err));
	}
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

		q->copied = r->pgrants && rreq_copy_persistent(r, q, to_guest);
		if (!q->copied)
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
	if (err < 0 && r->errors_logged++ < RING_LOG_ERRORS_MAX)
		ring_log(r, LOG_LEVEL_WARN, err, "grant copy failed");

	n = 0;
	for (q = batch; q; q = next) {
		bool ok = err >= 0;

		next = q->next;
		if (q->copied) {
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
			if (r->errors_logged++ < RING_LOG_ERRORS_MAX)
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

static void ring_copy_flush(struct ring *r)
{
	while (ring_copy_batch(r))
		;
}

/* ---- completions ---- */

static void ring_complete(void *opaque, void *cookie, int result)
{
	struct ring *r = opaque;
	struct rreq *q = cookie;

	if (result < 0) {
		ring_engine_error(r, q, result, q->stage == RREQ_FLUSH ? "flush" : "I/O");
		rreq_finish(r, q, ring_status_of(result));
		return;
	}
	if (q->flush_after) {
		/* Barrier or flush with data: the write is done, now make it
		 * and everything completed before it durable. */
		q->stage = RREQ_FLUSH;
		rreq_submit(r, q);
		return;
	}
	if (blkif_req_data_op(&q->req) == BLKIF_OP_READ && q->stage == RREQ_IO) {
		rreq_copy_queue(r, q, RREQ_COPY_OUT);
		return;
	}
	rreq_finish(r, q, BLKIF_RSP_OKAY);
}

/* A barrier runs once nothing before it is in flight. */
static void ring_barrier_check(struct ring *r)
{
	struct rreq *q = r->barrier;
	/* Recovered requests not taken yet hold slots but come after it. */
	unsigned int later = r->nr_replay - r->replay_pos;

	if (!q || q->stage != RREQ_BARRIER_WAIT || r->inflight - later != 1)
		return;
	rreq_submit(r, q);
}

static bool ring_unstash(struct ring *r);

static void ring_reap(struct ring *r)
{
	int n;

	/* One reap a pass: each call reads the engine's eventfd first, so a
	 * second one was a read() that nearly always found nothing; what
	 * completes after the first leaves the eventfd readable and the
	 * poll() ahead returns at once. */
	n = io_engine_reap(r->engine, ring_complete, r);
	if (n < 0 && r->errors_logged++ < RING_LOG_ERRORS_MAX)
		ring_log(r, LOG_LEVEL_WARN, n, "reaping completions failed");
	ring_copy_flush(r);
	/* Answers just freed a pool buffer for the stashed request. */
	if (ring_unstash(r))
		ring_copy_flush(r);
	ring_barrier_check(r);
}

/* ---- requests ---- */

/* q, just off the free list, now holds a request in flight. */
static void rreq_hold(struct ring *r, struct rreq *q)
{
	r->inflight++;
	stat_set32(&r->stats.inflight, r->inflight);
	q->big = NULL;
	q->len = 0;
	q->refused = false;
	q->t_start = now_ns();
}

static struct rreq *rreq_get(struct ring *r)
{
	struct rreq *q = r->free;

	r->free = q->next;
	rreq_hold(r, q);
	return q;
}

/* Validated request -> stage and engine op. q is taken from the free list
 * (for INDIRECT with its pool buffer, whose segments req points at). */
static void ring_dispatch(struct ring *r, struct rreq *q, const struct blkif_req *req)
{
	uint8_t op = blkif_req_data_op(req);
	uint64_t bytes = 0;

	rreq_set_req(q, req);
	q->flush_after = false;
	q->offset = req->sector_number << 9;
	if (op != BLKIF_OP_DISCARD)
		blkif_req_length(&q->req, &bytes);	/* validated: cannot fail */
	q->len = (uint32_t)bytes;
	q->iov.iov_base = q->big ? q->big->data : q->buf;
	q->iov.iov_len = q->len;

	switch (op) {
	case BLKIF_OP_READ:
		rreq_submit(r, q);
		return;
	case BLKIF_OP_WRITE_BARRIER:
		/* Everything before it finishes first, nothing after it
		 * starts until it is answered. */
		r->barrier = q;
		q->flush_after = q->len > 0;
		if (q->len)
			rreq_copy_queue(r, q, RREQ_COPY_IN);
		else
			q->stage = RREQ_BARRIER_WAIT;
		return;
	case BLKIF_OP_FLUSH_DISKCACHE:
		if (!q->len) {
			rreq_submit(r, q);
			return;
		}
		q->flush_after = true;
		rreq_copy_queue(r, q, RREQ_COPY_IN);
		return;
	case BLKIF_OP_WRITE:
		rreq_copy_queue(r, q, RREQ_COPY_IN);
		return;
	case BLKIF_OP_DISCARD:
		rreq_submit(r, q);
		return;
	default:
		/* The validator refuses everything else. */
		rreq_finish(r, q, BLKIF_RSP_EOPNOTSUPP);
		return;
	}
}

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
	uint64_t now = now_ns();

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
	if (r->pgrants && !r->ind_copy_only) {
		if (ring_indirect_fetch_persistent(r, req, np))
			goto decode;
		r->ind_copy_only = true;
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

static void ring_refuse(struct ring *r, const struct blkif_req *req, int16_t st,
			const char *reason)
{
	if (r->errors_logged++ < RING_LOG_ERRORS_MAX)
		ring_log(r, LOG_LEVEL_WARN, 0, "refused op %u (status %d): %s",
			 req->operation, st, reason);
}

/* An INDIRECT request with a header that passed validation, its request
 * slot q and a free pool buffer. */
static void ring_take_indirect(struct ring *r, struct rreq *q, struct blkif_req *req)
{
	const char *reason = "";
	int16_t st;

	q->big = r->big_free;
	r->big_free = q->big->next;
	st = ring_indirect_fetch(r, req, q->big->segs, &reason);
	if (st != BLKIF_RSP_OKAY) {
		ring_refuse(r, req, st, reason);
		rreq_set_req(q, req);
		q->refused = true;
		rreq_finish(r, q, st);
		return;
	}
	ring_dispatch(r, q, req);
}

/* One request, privately copied (or recovered from the journal), held by
 * its request slot q: validate, then on its way. A refused request is
 * answered through its slot too, so that its answer is journaled like
 * every other. */
static void ring_take_req(struct ring *r, struct rreq *q, struct blkif_req *req)
{
	const char *reason = "";
	int16_t st;

	st = blkif_req_validate(req, &r->desc, &reason);
	if (st != BLKIF_RSP_OKAY) {
		stat_add(&r->stats.err_validation, 1);
		ring_refuse(r, req, st, reason);
		rreq_set_req(q, req);
		q->refused = true;
		rreq_finish(r, q, st);
		return;
	}
	if (req->operation == BLKIF_OP_INDIRECT) {
		if (!r->big_free) {
			/* The pool is empty: keep the copy, consume nothing
			 * more until a buffer comes back. */
			r->stash = *req;
			r->stash_q = q;
			r->stashed = true;
			r->stash_waits++;
			return;
		}
		ring_take_indirect(r, q, req);
		return;
	}
	ring_dispatch(r, q, req);
}

/* The request read at ring index seq into its slot q's private copy. */
static void ring_take(struct ring *r, struct rreq *q, uint32_t seq)
{
	q->seq = seq;
	if (r->journal)
		journal_consume(r->journal, (unsigned int)(q - r->reqs), seq, &q->req);
	crash_point(CRASH_CONSUMED);
	if (ring_op_is_sync(q->req.operation))
		crash_point(CRASH_SYNC_CONSUMED);
	ring_take_req(r, q, &q->req);
}

/* The stashed request was consumed, so it is answered like any request
 * in flight, stopping or not, as soon as a pool buffer is free. */
static bool ring_unstash(struct ring *r)
{
	if (!r->stashed || !r->big_free)
		return false;
	r->stashed = false;
	ring_take_indirect(r, r->stash_q, &r->stash);
	return true;
}

/* Recovered requests go first, in ring order, before anything new is
 * read: a barrier among them still orders what follows it. They were
 * consumed by the process that died, so they are taken even while the
 * ring stops, and failed when it halted. */
static bool ring_replay(struct ring *r)
{
	bool took = false;

	while (r->replay_pos < r->nr_replay && !r->barrier && !r->stashed) {
		struct rreq *q = r->replay[r->replay_pos++];
		struct blkif_req req = q->req;

		took = true;
		if (r->halted || r->cfg.recover_fail) {
			q->refused = true;
			rreq_finish(r, q, BLKIF_RSP_ERROR);
			continue;
		}
		ring_take_req(r, q, &req);
	}
	if (took) {
		ring_copy_flush(r);
		ring_barrier_check(r);
	}
	return took;
}

static bool ring_replay_pending(const struct ring *r)
{
	return r->replay_pos < r->nr_replay;
}

/* Consumes what the frontend produced, as far as slots allow. Returns
 * true when requests were taken. */
static bool ring_consume(struct ring *r)
{
	RING_IDX prod;
	bool took = false;

	r->desc.nr_sectors = atomic_load_explicit(r->cfg.nr_sectors, memory_order_relaxed);
	if (ring_unstash(r))
		took = true;
	if (ring_replay(r))
		took = true;
	if (ring_replay_pending(r))
		return took;
	prod = sring_load(r, SRING_REQ_PROD);
	/* Entries after the index (xen_rmb). */
	atomic_thread_fence(memory_order_acquire);
	/* RING_REQUEST_PROD_OVERFLOW: more unanswered requests than slots
	 * cannot come from a well-behaved frontend. */
	if ((RING_IDX)(prod - r->rsp_prod_pvt) > r->layout.nr_ents) {
		ring_halt(r, "producer index %u is %u ahead of responses (ring has %u)",
			  prod, prod - r->rsp_prod_pvt, r->layout.nr_ents);
		return false;
	}
	while (r->req_cons != prod && r->free && !r->barrier && !r->stashed) {
		struct rreq *q = rreq_get(r);

		/* The one and only read of this slot, straight into the
		 * request's own private copy. */
		blkif_req_decode(r->cfg.abi, blkif_ring_slot(&r->layout, r->sring, r->req_cons),
				 &q->req);
		r->req_cons++;
		took = true;
		ring_take(r, q, r->req_cons - 1);
	}
	/* Work left on the ring with no slot (or pool buffer) to take it. */
	if (r->req_cons != prod && (!r->free || r->stashed))
		stat_add(&r->stats.out_of_slot, 1);
	stat_set32(&r->stats.req_cons, r->req_cons);
	ring_copy_flush(r);
	ring_barrier_check(r);
	return took;
}

/* RING_FINAL_CHECK_FOR_REQUESTS: true when more work appeared. */
static bool ring_final_check(struct ring *r)
{
	if (sring_load(r, SRING_REQ_PROD) != r->req_cons)
		return true;
	sring_store(r, SRING_REQ_EVENT, r->req_cons + 1);
	/* req_event visible before we look at req_prod again (xen_mb). */
	atomic_thread_fence(memory_order_seq_cst);
	return sring_load(r, SRING_REQ_PROD) != r->req_cons;
}

static bool ring_can_consume(const struct ring *r)
{
	if (r->stopping || r->halted || r->barrier)
		return false;
	if (r->stashed)
		return r->big_free != NULL;
	return ring_replay_pending(r) || r->free;
}

/* Unmaps persistent grants unused for a while (a frontend that moved on
 * to other pages, or went quiet); returns the poll timeout that brings us
 * back for the next look, -1 when nothing is mapped. */
static int ring_pgrant_expire(struct ring *r)
{
	const uint64_t idle = (uint64_t)BLKBACKD_PGRANT_IDLE_S * 1000000000u;
	uint64_t now;

	if (!pgrant_count(r->pgrants))
		return -1;
	now = now_ns();
	if (now >= r->pgrant_next_expiry) {
		if (pgrant_expire(r->pgrants, now, idle))
			stat_set32(&r->stats.pgrant_mapped, pgrant_count(r->pgrants));
		r->pgrant_next_expiry = now + idle / 4;
	}
	return (int)((r->pgrant_next_expiry - now) / 1000000u) + 1;
}

static void *ring_thread(void *arg)
{
	struct ring *r = arg;
	struct pollfd pfd[3];
	uint32_t port;
	uint64_t val;
	bool kicked = false;	/* an event arrived before this pass */

	pfd[0].fd = plat_evtchn_fd(r->ev);
	pfd[1].fd = io_engine_fd(r->engine);
	pfd[2].fd = r->stop_fd;
	for (;;) {
		bool work;

		/* Work first: a frontend may have queued requests before we
		 * bound the channel, and completions arrive without events. */
		ring_reap(r);
		work = false;
		for (;;) {
			if (ring_can_consume(r) && ring_consume(r))
				work = true;
			/* Stopping or halted: recovered requests are still
			 * ours to answer. */
			else if (ring_replay_pending(r) && ring_replay(r))
				work = true;
			if (io_engine_submit(r->engine) < 0 &&
			    r->errors_logged++ < RING_LOG_ERRORS_MAX)
				ring_log(r, LOG_LEVEL_WARN, 0, "submit failed");
			ring_push(r);
			if (r->notify_once) {
				/* The frontend may have queued and kicked while
				 * nobody was bound to our end. */
				r->notify_once = false;
				plat_evtchn_notify(r->ev, r->port);
			}
			if (!ring_can_consume(r) || !ring_final_check(r))
				break;
		}
		/* Event storms with an empty ring: after a run of kicks
		 * whose pass found nothing, slow down a little. A kick is
		 * judged by the pass right after it; judging it by the pass
		 * before (a completion-only wakeup, say) counted every kick
		 * of a ping-pong frontend as spurious and slept 1 ms on each. */
		if (kicked && !work && ++r->spurious > RING_SPURIOUS_MAX) {
			struct timespec ts = { 0, 1000 * 1000 };

			nanosleep(&ts, NULL);
		} else if (kicked && work) {
			r->spurious = 0;
		}
		kicked = false;
		if (r->stopping && r->inflight == 0 && !r->stashed && !ring_replay_pending(r))
			break;

		for (int i = 0; i < 3; i++)
			pfd[i].events = POLLIN;
		if (poll(pfd, 3, ring_pgrant_expire(r)) < 0) {
			if (errno == EINTR)
				continue;
			ring_log(r, LOG_LEVEL_ERR, -errno, "poll");
			ring_halt(r, "poll failed");
			r->stopping = true;
			continue;
		}
		if (pfd[2].revents & POLLIN) {
			if (read(r->stop_fd, &val, sizeof(val)) < 0) {
				/* eventfd reads only fail when empty: spurious. */
			}
			r->stopping = true;
		}
		if (pfd[0].revents & POLLIN) {
			/* Bounded: each unmask lets the next notification in,
			 * so a guest notifying without pause kept an unbounded
			 * drain going after every throttled sleep (20% of a
			 * core on a quiet host). Events left stay pending on
			 * the fd and the next poll returns at once. */
			for (int n = 0; n < RING_EVENTS_PER_WAKE &&
			     plat_evtchn_pending(r->ev, &port) >= 0; n++) {
				kicked = true;
				plat_evtchn_unmask(r->ev, port);
				/* The handle binds our port alone, and it stayed
				 * masked until just now: asking again was a system
				 * call that found nothing. A kick after the unmask
				 * shows in the next poll(). */
				if (port == r->port)
					break;
			}
		}
	}
	ring_push(r);
	ring_log(r, LOG_LEVEL_DEBUG, 0, "thread done at req_cons %u rsp_prod %u, "
		 "%lu waits for an indirect buffer", r->req_cons, r->rsp_prod_pvt, r->stash_waits);
	/* After this store the main thread may release the ring. */
	atomic_store_explicit(&r->stopped, true, memory_order_release);
	r->cfg.wake(r->cfg.wake_opaque);
	return NULL;
}

/* ---- main thread: set up and tear down ---- */

/* The indirect pool: RING_INDIRECT_BUDGET bytes of data buffers, at least
 * one, at most one per entry; like the bounce buffers, reserved and only
 * backed by memory where requests have used them. */
static int ring_alloc_bigs(struct ring *r)
{
	unsigned int max = r->cfg.max_indirect_segments, i;
	size_t bytes = (size_t)max * PLAT_PAGE_SIZE;

	if (!max)
		return 0;
	r->bigs_nr = RING_INDIRECT_BUDGET / bytes;
	if (r->bigs_nr < 1)
		r->bigs_nr = 1;
	if (r->bigs_nr > r->layout.nr_ents)
		r->bigs_nr = r->layout.nr_ents;
	r->bigs = calloc(r->bigs_nr, sizeof(*r->bigs));
	r->bigs_segs = calloc((size_t)r->bigs_nr * max, sizeof(*r->bigs_segs));
	r->ind_pages = aligned_alloc(PLAT_PAGE_SIZE, (size_t)BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST *
				     PLAT_PAGE_SIZE);
	if (!r->bigs || !r->bigs_segs || !r->ind_pages)
		return -ENOMEM;
	r->bigs_data_len = (size_t)r->bigs_nr * bytes;
	r->bigs_data = mmap(NULL, r->bigs_data_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->bigs_data == MAP_FAILED) {
		r->bigs_data = NULL;
		return -errno;
	}
	for (i = r->bigs_nr; i-- > 0;) {
		r->bigs[i].data = (char *)r->bigs_data + (size_t)i * bytes;
		r->bigs[i].segs = r->bigs_segs + (size_t)i * max;
		r->bigs[i].next = r->big_free;
		r->big_free = &r->bigs[i];
	}
	return 0;
}

static int ring_alloc_reqs(struct ring *r)
{
	unsigned int n = r->layout.nr_ents, i;

	/* One grant copy batch: a full ring of direct requests, and never
	 * less than one indirect request. */
	r->segs_cap = n * BLKIF_MAX_SEGMENTS_PER_REQUEST;
	if (r->segs_cap < r->cfg.max_indirect_segments)
		r->segs_cap = r->cfg.max_indirect_segments;
	r->reqs = calloc(n, sizeof(*r->reqs));
	r->segs = calloc(r->segs_cap, sizeof(*r->segs));
	if (!r->reqs || !r->segs)
		return -ENOMEM;
	/* Bounce buffers: reserved, not touched; pages appear on first use. */
	r->bufs_len = (size_t)n * RING_BUF_BYTES;
	r->bufs = mmap(NULL, r->bufs_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->bufs == MAP_FAILED) {
		r->bufs = NULL;
		return -errno;
	}
	for (i = n; i-- > 0;) {
		r->reqs[i].buf = (char *)r->bufs + (size_t)i * RING_BUF_BYTES;
		r->reqs[i].next = r->free;
		r->free = &r->reqs[i];
	}
	r->copy_tail = &r->copy_list;
	return 0;
}

/* Takes request slot k off the free list and holds it. */
static struct rreq *ring_hold_slot(struct ring *r, unsigned int k)
{
	struct rreq **pp, *q = &r->reqs[k];

	for (pp = &r->free; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			rreq_hold(r, q);
			return q;
		}
	}
	return NULL;
}

/* Resumes from the journal an earlier process left: publishes again the
 * responses it wrote but did not publish (the same bytes in the same
 * slots), retires what it answered, and queues what it did not answer
 * for the thread to issue again, in ring order. The ring is mapped; the
 * thread has not started. */
static int ring_recover(struct ring *r, const struct journal_ring_id *id, RING_IDX rsp_prod,
			RING_IDX req_prod)
{
	struct journal_plan *plan;
	struct journal *j = NULL;
	unsigned int i;
	RING_IDX idx;
	int err;

	plan = malloc(sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	err = journal_open(r->cfg.journal_dir, id, r->layout.nr_ents, &j);
	if (err < 0)
		goto out;
	err = journal_plan(j, rsp_prod, req_prod, plan);
	if (err < 0) {
		ring_log(r, LOG_LEVEL_ERR, err, "the journal does not fit the ring (req_prod %u "
			 "rsp_prod %u)", req_prod, rsp_prod);
		goto out;
	}
	for (idx = plan->rsp_published; idx != plan->rsp_written; idx++) {
		struct blkif_rsp rsp;

		err = journal_rsp(j, idx, &rsp);
		if (err < 0) {
			ring_log(r, LOG_LEVEL_ERR, 0, "the journal lacks response %u", idx);
			goto out;
		}
		blkif_rsp_encode(r->cfg.abi, blkif_ring_slot(&r->layout, r->sring, idx), &rsp);
	}
	r->replay = calloc(plan->nr_replay ? plan->nr_replay : 1, sizeof(*r->replay));
	if (!r->replay) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < plan->nr_replay; i++) {
		struct rreq *q = ring_hold_slot(r, plan->replay[i]);

		if (!q) {
			err = -EUCLEAN;
			goto out;
		}
		journal_req(j, plan->replay[i], &q->seq, &q->req);
		r->replay[r->nr_replay++] = q;
	}
	for (i = 0; i < plan->nr_answered; i++)
		journal_retire(j, plan->answered[i]);
	r->req_cons = plan->req_cons;
	r->rsp_prod_pvt = plan->rsp_written;
	r->rsp_pushed = plan->rsp_published;
	r->nr_republished = plan->rsp_written - plan->rsp_published;
	r->journal = j;
	j = NULL;
	r->recovered = true;
	r->notify_once = true;
	ring_log(r, LOG_LEVEL_INFO, 0, "recovered: resuming at req_cons %u, %u response%s "
		 "published again, %u request%s to %s", r->req_cons, r->nr_republished,
		 r->nr_republished == 1 ? "" : "s", r->nr_replay, r->nr_replay == 1 ? "" : "s",
		 r->cfg.recover_fail ? "fail" : "issue again");
out:
	journal_close(j);
	free(plan);
	return err;
}

/* The journal of a new connection, or of the one an earlier process left
 * (recover): without one, a restarted process resumes at rsp_prod, which
 * is right only after a clean stop. */
static int ring_journal_open(struct ring *r, RING_IDX rsp_prod, RING_IDX req_prod)
{
	struct journal_ring_id id = {
		.fe_domid = r->cfg.fe_domid,
		.devid = r->cfg.devid,
		.queue = r->index,
		.order = r->cfg.order,
		.abi = (uint32_t)r->cfg.abi,
		.remote_port = r->cfg.remote_port,
		.start = rsp_prod,
	};
	int err;

	memcpy(id.refs, r->cfg.refs, sizeof(id.refs));
	if (r->cfg.recover) {
		err = ring_recover(r, &id, rsp_prod, req_prod);
		if (err == 0)
			return 0;
		if (err != -ENOENT && err != -ESTALE && err != -EPROTONOSUPPORT)
			return err;
		ring_log(r, LOG_LEVEL_WARN, 0, "no journal of this ring (%s): resuming at "
			 "rsp_prod %u", err == -ENOENT ? "none left" :
			 err == -ESTALE ? "another ring's" : "a format this blkbackd does not read",
			 rsp_prod);
	}
	return journal_create(r->cfg.journal_dir, &id, r->layout.nr_ents, &r->journal);
}

/* Frees everything ring_start set up; safe on a half-built ring. */
static void ring_free(struct ring *r, bool keep_journal)
{
	if (keep_journal)
		journal_close(r->journal);
	else
		journal_remove(r->journal);
	free(r->replay);

	io_engine_free(r->engine);
	pgrant_cache_free(r->pgrants);
	if (r->bound)
		plat_evtchn_unbind(r->ev, r->port);
	plat_evtchn_close(r->ev);
	/* Never touched again from here: the thread is gone. */
	if (r->sring)
		plat_gnttab_unmap(r->gt, r->sring, r->nr_pages);
	plat_gnttab_close(r->gt);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->bufs)
		munmap(r->bufs, r->bufs_len);
	if (r->bigs_data)
		munmap(r->bigs_data, r->bigs_data_len);
	free(r->ind_pages);
	free(r->bigs_segs);
	free(r->bigs);
	free(r->segs);
	free(r->reqs);
	free(r);
}

int ring_start(const struct ring_config *cfg, struct ring **ret)
{
	RING_IDX req_prod, rsp_prod;
	struct ring *r;
	struct io_error ioerr;
	int err;

	if (!cfg->plat || !cfg->backing || !cfg->nr_sectors || !cfg->wake)
		return -EINVAL;
	pthread_once(&crash_once, crash_init);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->index = cfg->queue;
	r->cfg = *cfg;
	/* The caller's string need not outlive this call. */
	r->cfg.log_prefix = NULL;
	r->stop_fd = -1;
	atomic_init(&r->stopped, false);
	atomic_init(&r->halt_pending, false);
	snprintf(r->prefix, sizeof(r->prefix), "%s/q%u", cfg->log_prefix ? cfg->log_prefix : "?",
		 cfg->queue);

	err = blkif_ring_layout_init(&r->layout, cfg->abi, cfg->order);
	if (err < 0)
		goto fail;
	r->nr_pages = 1u << cfg->order;
	r->desc = cfg->disk;
	r->desc.nr_sectors = atomic_load(cfg->nr_sectors);
	r->desc.max_indirect_segments = cfg->max_indirect_segments;

	err = ring_alloc_reqs(r);
	if (err < 0)
		goto fail;
	err = ring_alloc_bigs(r);
	if (err < 0)
		goto fail;
	err = plat_gnttab_open(cfg->plat, &r->gt);
	if (err < 0)
		goto fail;
	if (cfg->max_pgrants) {
		err = pgrant_cache_new(r->gt, cfg->fe_domid, cfg->max_pgrants, &r->pgrants);
		if (err < 0)
			goto fail;
	}
	err = plat_gnttab_map(r->gt, cfg->fe_domid, r->nr_pages, cfg->refs, true, &r->sring);
	if (err < 0) {
		r->sring = NULL;
		goto fail;
	}
	/* Attach form (ring.h BACK_RING_ATTACH): start where the frontend
	 * last saw responses; the shared ring is never initialised here.
	 * Stale indices further apart than the ring are refused. */
	rsp_prod = sring_load(r, SRING_RSP_PROD);
	req_prod = sring_load(r, SRING_REQ_PROD);
	if ((RING_IDX)(req_prod - rsp_prod) > r->layout.nr_ents) {
		ring_log(r, LOG_LEVEL_ERR, 0, "ring indices req_prod %u rsp_prod %u are inconsistent",
			 req_prod, rsp_prod);
		err = -EPROTO;
		goto fail;
	}
	r->req_cons = r->rsp_prod_pvt = r->rsp_pushed = rsp_prod;
	if (cfg->journal_dir) {
		err = ring_journal_open(r, rsp_prod, req_prod);
		if (err < 0) {
			ring_log(r, LOG_LEVEL_ERR, err, "cannot set up the journal in %s",
				 cfg->journal_dir);
			goto fail;
		}
	}
	stat_set32(&r->stats.req_cons, r->req_cons);
	stat_set32(&r->stats.rsp_prod, r->rsp_pushed);

	err = plat_evtchn_open(cfg->plat, &r->ev);
	if (err < 0)
		goto fail;
	err = plat_evtchn_bind_interdomain(r->ev, cfg->fe_domid, cfg->remote_port, &r->port);
	if (err < 0)
		goto fail;
	r->bound = true;
	err = io_engine_new(cfg->engine, cfg->backing, r->layout.nr_ents, &r->engine, &ioerr);
	if (err < 0) {
		if (*ioerr.msg)
			ring_log(r, LOG_LEVEL_WARN, 0, "storage: %s", ioerr.msg);
		goto fail;
	}
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = -pthread_create(&r->thread, NULL, ring_thread, r);
	if (err < 0)
		goto fail;
	r->thread_started = true;
	ring_log(r, LOG_LEVEL_DEBUG, 0, "started: %u entries, %s engine, port %" PRIu32
		 ", %u indirect segments, %u indirect buffers",
		 r->layout.nr_ents, io_engine_name(r->engine), r->port,
		 cfg->max_indirect_segments, r->bigs_nr);
	*ret = r;
	return 0;
fail:
	/* A journal we recovered from stays for the next try. */
	ring_free(r, r->recovered);
	return err;
}

void ring_stop(struct ring *r)
{
	uint64_t one = 1;

	if (write(r->stop_fd, &one, sizeof(one)) < 0) {
		/* Only fails when the counter is saturated: already told. */
	}
}

bool ring_is_stopped(const struct ring *r)
{
	return atomic_load_explicit(&r->stopped, memory_order_acquire);
}

bool ring_take_halt(struct ring *r, char *msg, size_t len)
{
	if (!atomic_exchange_explicit(&r->halt_pending, false, memory_order_acquire))
		return false;
	snprintf(msg, len, "%s", r->halt_msg);
	return true;
}

void ring_release(struct ring *r, bool keep_journal)
{
	if (r->thread_started) {
		/* A caller bug; stopping first keeps the ring's memory from
		 * being freed under its thread, at the cost of waiting. */
		if (!ring_is_stopped(r)) {
			ring_log(r, LOG_LEVEL_ERR, 0, "released while its thread runs");
			ring_stop(r);
		}
		pthread_join(r->thread, NULL);
	}
	/* The thread is gone: its counters are ours to read. */
	if (r->inflight)
		ring_log(r, LOG_LEVEL_ERR, 0, "released with %u requests in flight", r->inflight);
	ring_free(r, keep_journal);
}
