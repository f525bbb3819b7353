/* The ring library's private header: struct ring and what its files
 * (ring.c, ring-data.c, ring-indirect.c, ring-recover.c) share. Nothing
 * outside the library includes it; ring.h is the API. */
#ifndef BLKBACKD_RING_INT_H
#define BLKBACKD_RING_INT_H

#ifndef RING_INTERNAL
#error "ring-int.h is private to the ring library: include ring.h"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <time.h>

#include "ring.h"
#include "util.h"

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
/* Warnings a guest or a failing disk can repeat without end: at most
 * this many per ring and interval, then one line with the count dropped. */
#define RING_WARN_BURST		16
#define RING_WARN_INTERVAL_S	60

enum rreq_stage {
	RREQ_FREE,
	RREQ_COPY_IN,		/* write data waits for this drain's grant copy */
	RREQ_IO,		/* at the engine */
	RREQ_BARRIER_WAIT,	/* waits for every earlier request to finish */
	RREQ_FLUSH,		/* data written, the flush that follows is at the engine */
	RREQ_COPY_OUT,		/* read data waits for this reap's grant copy */
};

/* Data buffer and segment list of one indirect request in flight. */
struct ring_ibuf {
	struct ring_ibuf *next;		/* free list */
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
	bool via_pgrant;		/* moved through persistent grants */
	int16_t status;
	bool flush_after;		/* barrier or flush with data: flush next */
	uint64_t offset;		/* bytes */
	uint32_t len;
	struct iovec iov;		/* its base is where the data lives */
	void *buf;			/* RING_BUF_BYTES, page aligned */
	struct ring_ibuf *ibuf;		/* INDIRECT only: held until answered */
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
	struct io_engine *engine;	/* created and used by the thread */
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
	bool buffers_backed;		/* used since they were last given back */
	uint64_t idle_since;		/* ns; 0: busy, or nothing to give back */
	struct rreq *free;
	unsigned int inflight;
	struct rreq *barrier;		/* waiting for the ring to drain */
	struct rreq *copy_list;		/* stage COPY_IN or COPY_OUT, in order */
	struct rreq **copy_tail;
	xengnttab_grant_copy_segment_t *segs;
	unsigned int segs_cap;		/* entries in segs: one batch */
	struct ring_ibuf *ibufs;	/* the indirect pool, nr_ibufs of them */
	unsigned int nr_ibufs;
	void *ibuf_data;
	size_t ibuf_data_len;
	struct blkif_seg *ibuf_segs;
	struct ring_ibuf *ibuf_free;
	bool indirect_pending;		/* an indirect request waits for the pool */
	struct blkif_req pending_req;	/* ... here: the slot is not read again */
	struct rreq *pending_slot;	/* ... holding this request slot */
	unsigned long pending_waits;	/* times the pool ran dry, for the log */
	void *ind_pages;		/* private copies of one request's indirect pages */
	bool ind_copy_fallback;		/* indirect pages failed to map persistently */
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
	struct log_ratelimit warn_limit;	/* ring thread only */
	struct blkif_vbd_desc desc;

	/* what recovery found (main thread, at start) */
	bool recovered;
	unsigned int nr_republished;

	/* thread -> main */
	struct ring_stats stats;	/* written by the thread only */
	/* -EINPROGRESS until the thread has its engine, then 0 or -errno;
	 * start_why is written before the result leaves -EINPROGRESS. */
	atomic_int start_result;
	char start_why[160];
	atomic_bool stopped;
	atomic_bool halt_pending;
	char halt_msg[128];
};

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

/* ---- ring.c: the thread, taking requests, answering them ---- */

void ring_log(const struct ring *r, enum log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Whether one more warning may be logged now (ring thread only); says
 * first how many the limit dropped since the last one it let through. */
bool ring_may_warn(struct ring *r);
void rreq_finish(struct ring *r, struct rreq *q, int16_t status);
void rreq_set_req(struct rreq *q, const struct blkif_req *req);
void rreq_submit(struct ring *r, struct rreq *q);
void ring_barrier_check(struct ring *r);
void rreq_hold(struct ring *r, struct rreq *q);
void ring_dispatch(struct ring *r, struct rreq *q, const struct blkif_req *req);
void ring_refuse(struct ring *r, const struct blkif_req *req, int16_t st,
		 const char *reason);
void ring_take_req(struct ring *r, struct rreq *q, struct blkif_req *req);

/* ---- ring-data.c: grant copy and persistent grants ---- */

void ring_copy_flush(struct ring *r);

/* ---- ring-indirect.c: indirect pages and their buffer pool ---- */

void ring_take_indirect(struct ring *r, struct rreq *q, struct blkif_req *req);
bool ring_take_pending(struct ring *r);
int ring_alloc_ibufs(struct ring *r);

/* ---- ring-memory.c: the buffers' cost, given back when idle ---- */

unsigned int ring_indirect_count(const struct ring_config *cfg, unsigned int nr_ents);
int ring_memory_idle(struct ring *r, bool work);

/* ---- ring-recover.c: the journal and recovery ---- */

bool ring_replay(struct ring *r);
bool ring_replay_pending(const struct ring *r);
int ring_journal_open(struct ring *r, RING_IDX rsp_prod, RING_IDX req_prod);

#endif
