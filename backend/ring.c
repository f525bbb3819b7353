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
 * again what was not answered, never answer twice.
 * This file holds the thread, taking and answering requests, and start
 * and release; ring-data.c moves data, ring-indirect.c handles INDIRECT,
 * ring-recover.c the journal, all behind ring-int.h. */
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

#define RING_INTERNAL
#include "crash.h"
#include "ring-int.h"

static bool ring_op_is_sync(uint8_t op)
{
	return op == BLKIF_OP_FLUSH_DISKCACHE || op == BLKIF_OP_WRITE_BARRIER;
}

void ring_log(const struct ring *r, enum log_level level, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vprefixed(level, errnum, r->prefix, fmt, ap);
	va_end(ap);
}

bool ring_may_warn(struct ring *r)
{
	uint64_t dropped;

	if (!log_ratelimit(&r->warn_limit, &dropped))
		return false;
	if (dropped)
		ring_log(r, LOG_LEVEL_WARN, 0, "%" PRIu64 " warning%s suppressed in the last %u s",
			 dropped, dropped == 1 ? "" : "s", RING_WARN_INTERVAL_S);
	return true;
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
	uint64_t us = (clock_mono_ns() - t_start) / 1000;
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
	stat_add(&r->stats.lat_sum_us, us);
	if (us > atomic_load_explicit(&r->stats.lat_max_us, memory_order_relaxed))
		atomic_store_explicit(&r->stats.lat_max_us, us, memory_order_relaxed);
}

const struct ring_stats *ring_get_stats(const struct ring *r)
{
	return &r->stats;
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
		if (err < 0 && ring_may_warn(r))
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
	if (q->ibuf) {
		q->ibuf->next = r->ibuf_free;
		r->ibuf_free = q->ibuf;
		q->ibuf = NULL;
	}
	if (r->journal)
		journal_retire(r->journal, (unsigned int)(q - r->reqs));
	q->stage = RREQ_FREE;
	q->next = r->free;
	r->free = q;
	r->inflight--;
	stat_set32(&r->stats.inflight, r->inflight);
}

void rreq_finish(struct ring *r, struct rreq *q, int16_t status)
{
	if (!q->refused)
		ring_stat_done(r, blkif_req_data_op(&q->req), q->len, q->t_start, status);
	ring_respond(r, q->seq, q->req.id, ring_rsp_op(r, &q->req), status);
	rreq_free(r, q);
}

/* q's private copy is req, which may already be it (decoded in place). */
void rreq_set_req(struct rreq *q, const struct blkif_req *req)
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

static void ring_engine_error(struct ring *r, struct rreq *q, int err, const char *what)
{
	stat_add(&r->stats.err_storage, 1);
	if (ring_may_warn(r))
		ring_log(r, LOG_LEVEL_WARN, err, "%s at byte %" PRIu64 " (+%" PRIu32 ") failed",
			 what, q->offset, q->len);
}

static int16_t ring_status_of(int err)
{
	return err == -EOPNOTSUPP ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
}

/* Hands q's current stage to the engine; answers it on refusal. */
void rreq_submit(struct ring *r, struct rreq *q)
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
void ring_barrier_check(struct ring *r)
{
	struct rreq *q = r->barrier;
	/* Recovered requests not taken yet hold slots but come after it. */
	unsigned int later = r->nr_replay - r->replay_pos;

	if (!q || q->stage != RREQ_BARRIER_WAIT || r->inflight - later != 1)
		return;
	rreq_submit(r, q);
}

static void ring_reap(struct ring *r)
{
	int n;

	/* One reap a pass: each call reads the engine's eventfd first, so a
	 * second one was a read() that nearly always found nothing; what
	 * completes after the first leaves the eventfd readable and the
	 * poll() ahead returns at once. */
	n = io_engine_reap(r->engine, ring_complete, r);
	if (n < 0 && ring_may_warn(r))
		ring_log(r, LOG_LEVEL_WARN, n, "reaping completions failed");
	ring_copy_flush(r);
	/* Answers just freed a pool buffer for the pending indirect request. */
	if (ring_take_pending(r))
		ring_copy_flush(r);
	ring_barrier_check(r);
}

/* ---- requests ---- */

/* q, just off the free list, now holds a request in flight. */
void rreq_hold(struct ring *r, struct rreq *q)
{
	r->inflight++;
	stat_set32(&r->stats.inflight, r->inflight);
	q->ibuf = NULL;
	q->len = 0;
	q->refused = false;
	q->t_start = clock_mono_ns();
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
void ring_dispatch(struct ring *r, struct rreq *q, const struct blkif_req *req)
{
	uint8_t op = blkif_req_data_op(req);
	uint64_t bytes = 0;

	rreq_set_req(q, req);
	q->flush_after = false;
	q->offset = req->sector_number << 9;
	if (op != BLKIF_OP_DISCARD)
		blkif_req_length(&q->req, &bytes);	/* validated: cannot fail */
	q->len = (uint32_t)bytes;
	q->iov.iov_base = q->ibuf ? q->ibuf->data : q->buf;
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

void ring_refuse(struct ring *r, const struct blkif_req *req, int16_t st,
			const char *reason)
{
	if (ring_may_warn(r))
		ring_log(r, LOG_LEVEL_WARN, 0, "refused op %u (status %d): %s",
			 req->operation, st, reason);
}

/* One request, privately copied (or recovered from the journal), held by
 * its request slot q: validate, then on its way. A refused request is
 * answered through its slot too, so that its answer is journaled like
 * every other. */
void ring_take_req(struct ring *r, struct rreq *q, struct blkif_req *req)
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
		if (!r->ibuf_free) {
			/* The pool is empty: keep the copy, consume nothing
			 * more until a buffer comes back. */
			r->pending_req = *req;
			r->pending_slot = q;
			r->indirect_pending = true;
			r->pending_waits++;
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

/* Consumes what the frontend produced, as far as slots allow. Returns
 * true when requests were taken. */
static bool ring_consume(struct ring *r)
{
	RING_IDX prod;
	bool took = false;

	r->desc.nr_sectors = atomic_load_explicit(r->cfg.nr_sectors, memory_order_relaxed);
	if (ring_take_pending(r))
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
	while (r->req_cons != prod && r->free && !r->barrier && !r->indirect_pending) {
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
	if (r->req_cons != prod && (!r->free || r->indirect_pending))
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
	if (r->indirect_pending)
		return r->ibuf_free != NULL;
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
	now = clock_mono_ns();
	if (now >= r->pgrant_next_expiry) {
		if (pgrant_expire(r->pgrants, now, idle))
			stat_set32(&r->stats.pgrant_mapped, pgrant_count(r->pgrants));
		r->pgrant_next_expiry = now + idle / 4;
	}
	return (int)((r->pgrant_next_expiry - now) / 1000000u) + 1;
}

/* The poll timeout: the sooner of the next persistent grant expiry and
 * the moment idle buffers go back; -1 when neither is due. */
static int ring_wait_timeout(struct ring *r, bool work)
{
	int pgrant = ring_pgrant_expire(r), idle = ring_memory_idle(r, work);

	if (pgrant < 0)
		return idle;
	if (idle < 0)
		return pgrant;
	return pgrant < idle ? pgrant : idle;
}

/* The engine is made here, on the thread that submits to it: a remote
 * provider's handshake (seconds) stalls this ring only, never the owner's
 * thread, and nothing is consumed before it is up. */
static int ring_engine_start(struct ring *r)
{
	struct io_error ioerr = { .msg = "" };
	int err;

	err = io_engine_new(r->cfg.engine, r->cfg.backing, r->layout.nr_ents, &r->engine, &ioerr);
	if (err < 0) {
		r->engine = NULL;
		snprintf(r->start_why, sizeof(r->start_why), "storage engine: %s",
			 *ioerr.msg ? ioerr.msg : strerror(-err));
		ring_log(r, LOG_LEVEL_WARN, err, "%s", r->start_why);
		return err;
	}
	ring_log(r, LOG_LEVEL_DEBUG, 0, "started: %u entries, %s engine, port %" PRIu32
		 ", %u indirect segments, %u indirect buffers",
		 r->layout.nr_ents, io_engine_name(r->engine), r->port,
		 r->cfg.max_indirect_segments, r->nr_ibufs);
	return 0;
}

static void *ring_thread(void *arg)
{
	struct ring *r = arg;
	int fds[2];
	unsigned int ready;
	uint32_t port;
	uint64_t val;
	bool kicked = false;	/* an event arrived before this pass */
	int err;

	err = ring_engine_start(r);
	atomic_store_explicit(&r->start_result, err, memory_order_release);
	if (err < 0) {
		/* Nothing was consumed; recovered requests stay in the
		 * journal for the next try. After this store the owner may
		 * release the ring. */
		atomic_store_explicit(&r->stopped, true, memory_order_release);
		r->cfg.wake(r->cfg.wake_opaque);
		return NULL;
	}
	r->cfg.wake(r->cfg.wake_opaque);

	fds[0] = plat_evtchn_fd(r->ev);
	fds[1] = r->stop_fd;
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
			/* What was queued goes to the storage in the wait
			 * below, in the same system call. */
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
		if (r->stopping && r->inflight == 0 && !r->indirect_pending && !ring_replay_pending(r))
			break;

		/* The one place this thread sleeps: the batch is submitted,
		 * then completions, the event channel and the stop signal
		 * all end the same wait. */
		err = io_engine_wait(r->engine, fds, 2, ring_wait_timeout(r, work), &ready);
		if (err == -EINTR) {
			continue;
		} else if (err == -EAGAIN || err == -ENOMEM || err == -EBUSY) {
			/* The kernel took nothing this time: the batch stays
			 * queued for the next pass. */
			if (ring_may_warn(r))
				ring_log(r, LOG_LEVEL_WARN, err, "submit failed");
			continue;
		} else if (err < 0) {
			ring_log(r, LOG_LEVEL_ERR, err, "waiting for work");
			ring_halt(r, "waiting for work failed");
			r->stopping = true;
			continue;
		}
		if (ready & 2u) {
			if (read(r->stop_fd, &val, sizeof(val)) < 0) {
				/* eventfd reads only fail when empty: spurious. */
			}
			r->stopping = true;
		}
		if (ready & 1u) {
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
		 "%lu waits for an indirect buffer", r->req_cons, r->rsp_prod_pvt, r->pending_waits);
	/* After this store the main thread may release the ring. */
	atomic_store_explicit(&r->stopped, true, memory_order_release);
	r->cfg.wake(r->cfg.wake_opaque);
	return NULL;
}

/* ---- main thread: set up and tear down ---- */

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
	if (r->ibuf_data)
		munmap(r->ibuf_data, r->ibuf_data_len);
	free(r->ind_pages);
	free(r->ibuf_segs);
	free(r->ibufs);
	free(r->segs);
	free(r->reqs);
	free(r);
}

int ring_start(const struct ring_config *cfg, struct ring **ret)
{
	RING_IDX req_prod, rsp_prod;
	struct ring *r;
	int err;

	if (!cfg->plat || !cfg->backing || !cfg->nr_sectors || !cfg->wake)
		return -EINVAL;
	crash_setup();
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->index = cfg->queue;
	r->cfg = *cfg;
	r->warn_limit = (struct log_ratelimit)LOG_RATELIMIT_INIT(RING_WARN_INTERVAL_S,
								 RING_WARN_BURST);
	/* The caller's string need not outlive this call. */
	r->cfg.log_prefix = NULL;
	r->stop_fd = -1;
	atomic_init(&r->start_result, -EINPROGRESS);
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
	err = ring_alloc_ibufs(r);
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
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = -pthread_create(&r->thread, NULL, ring_thread, r);
	if (err < 0)
		goto fail;
	r->thread_started = true;
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

int ring_start_result(const struct ring *r, char *why, size_t len)
{
	int err = atomic_load_explicit(&r->start_result, memory_order_acquire);

	if (why && len)
		snprintf(why, len, "%s", err < 0 && err != -EINPROGRESS ? r->start_why : "");
	return err;
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
	/* The thread is gone: its counters are ours to read. A ring whose
	 * engine never came up answered nothing: what it recovered stays
	 * in the journal for the next try. */
	if (atomic_load_explicit(&r->start_result, memory_order_relaxed) < 0) {
		keep_journal = keep_journal || r->recovered;
	} else if (r->inflight) {
		ring_log(r, LOG_LEVEL_ERR, 0, "released with %u requests in flight", r->inflight);
	}
	ring_free(r, keep_journal);
}
