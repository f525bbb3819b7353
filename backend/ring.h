/* The ring library's API: one shared blkif ring served by its own thread,
 * the recovery journal it keeps and its persistent grant cache. A leaf:
 * everything it needs comes in through struct ring_config, and it never
 * calls into its owner but through the config's wake hook. */
#ifndef BLKBACKD_RING_H
#define BLKBACKD_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkif.h"
#include "io.h"
#include "log.h"
#include "platform.h"
#include "stats.h"

struct ring;

#define BLKBACKD_MAX_RING_ORDER	4u
#define BLKBACKD_MAX_RING_PAGES	(1u << BLKBACKD_MAX_RING_ORDER)
#define BLKBACKD_PGRANT_IDLE_S		60u	/* unmapped after this long unused */
/* Data buffers of indirect requests in flight, per ring, by default: at
 * most this many bytes, at least one request, at most one per entry. */
#define BLKBACKD_RING_INDIRECT_BUDGET	(64u << 20)
/* A ring with nothing in flight for this long gives its buffers back. */
#define BLKBACKD_RING_IDLE_RELEASE_MS	1000u

/* ---- ring.c: one shared ring, its thread and its request pipeline ---- */

/* Everything a ring uses from its owner. The ring copies the struct; the
 * objects it points to (platform, backing, nr_sectors, wake_opaque) are
 * the owner's and must outlive the ring: from ring_start until
 * ring_release returns. */
struct ring_config {
	struct platform *plat;
	uint32_t fe_domid;
	uint32_t devid;				/* names the journal */
	unsigned int queue;			/* index among the vbd's rings */
	const char *log_prefix;			/* "d5/51712"; copied at start */
	unsigned int order;			/* 0..BLKBACKD_MAX_RING_ORDER */
	uint32_t refs[BLKBACKD_MAX_RING_PAGES];
	uint32_t remote_port;
	enum blkif_abi abi;
	/* the storage: the engine kind of the queue this ring creates on
	 * backing, and the disk the validator checks requests against */
	enum io_engine_kind engine;
	struct io_backing *backing;
	/* read-only, sector size and the features advertised at probe.
	 * The ring fills in disk.max_indirect_segments from the field below
	 * and disk.nr_sectors from *nr_sectors, which it reads before every
	 * batch: the owner updates it on resize. */
	struct blkif_vbd_desc disk;
	const _Atomic uint64_t *nr_sectors;
	/* as advertised at probe; 0: INDIRECT is an unknown op */
	unsigned int max_indirect_segments;
	/* bytes of indirect data buffers; 0: BLKBACKD_RING_INDIRECT_BUDGET */
	size_t indirect_budget;
	unsigned int max_pgrants;		/* 0: grant copy only */
	const char *journal_dir;		/* NULL: no journal, no recovery */
	bool recover;				/* resume from an earlier journal */
	bool recover_fail;			/* answer recovered requests with an
						 * error instead of issuing them */
	/* How the ring tells its owner to look at it (a halt to report, the
	 * thread stopped). Called on the ring thread; must not block. */
	void (*wake)(void *opaque);
	void *wake_opaque;
};

/* Maps the ring (attach form: never initialises it), binds the event
 * channel and starts the ring thread, which creates the storage engine
 * (a remote handshake may take seconds) before it consumes anything.
 * Returns without waiting for the engine; the thread calls the wake hook
 * once that start has finished, ring_start_result() says how. -EINVAL
 * when the config lacks the platform, backing, size or wake hook; other
 * -errno when mapping, binding or the journal fail. */
int ring_start(const struct ring_config *cfg, struct ring **ret);
/* How the thread's start went: -EINPROGRESS while the engine is being
 * created, 0 once the ring serves, -errno when the engine could not start
 * (why, if given, then says so; "" otherwise). A failed ring has stopped
 * (ring_is_stopped) and consumed nothing: release it; a journal it
 * recovered from stays for the next try. Any thread. */
int ring_start_result(const struct ring *r, char *why, size_t len);
/* Asks the thread to stop consuming; it answers in-flight requests and
 * exits once they are all done. Any number of times, any thread state. */
void ring_stop(struct ring *r);
/* True once the thread has exited (and ring_release may run). */
bool ring_is_stopped(const struct ring *r);
/* Takes and clears a pending "halted by a misbehaving frontend" report;
 * fills msg with the reason. */
bool ring_take_halt(struct ring *r, char *msg, size_t len);
/* Joins the thread, unbinds the event channel, unmaps the ring, frees.
 * Only after ring_is_stopped(); main thread only. keep_journal: the
 * daemon is going away and a successor takes the ring over; otherwise the
 * ring disconnected and its journal goes. */
void ring_release(struct ring *r, bool keep_journal);

struct ring_info {
	unsigned int index;
	unsigned int order;
	unsigned int nr_ents;
	enum blkif_abi abi;
	unsigned int max_indirect_segments;
	uint32_t port;				/* our end */
	uint32_t remote_port;
	bool stopped;				/* thread exited */
	bool journal;				/* recovery is on */
	bool persistent;			/* feature-persistent negotiated */
	bool recovered;				/* resumed an earlier process's ring */
	unsigned int replayed;			/* ... issuing these again */
	unsigned int republished;		/* ... publishing these again */
};

/* ---- ring-memory.c: what a ring's buffers cost ---- */

/* The most memory a ring started with cfg pins for its buffers (bounce
 * buffers and the indirect pool, both backed only while used and given
 * back after BLKBACKD_RING_IDLE_RELEASE_MS idle), and the least it can be
 * started with: an indirect budget of one request. 0 for a bad order. */
size_t ring_memory_bytes(const struct ring_config *cfg);
size_t ring_memory_floor(const struct ring_config *cfg);

const struct ring_stats *ring_get_stats(const struct ring *r);
void ring_get_info(const struct ring *r, struct ring_info *ret);

/* ---- journal.c: the per-ring recovery journal ---- */

#define JOURNAL_MAX_ENTS	(32u << BLKBACKD_MAX_RING_ORDER)
#define JOURNAL_SUFFIX		".journal"

/* Which ring a journal belongs to: a restarted daemon uses a journal only
 * for the very ring it was written for. All u32: no padding, compared
 * with memcmp. */
struct journal_ring_id {
	uint32_t fe_domid;
	uint32_t devid;
	uint32_t queue;
	uint32_t order;
	uint32_t abi;
	uint32_t remote_port;
	uint32_t refs[BLKBACKD_MAX_RING_PAGES];
	uint32_t start;		/* rsp_prod when this connection began */
};

struct journal;

/* What a restarted daemon does with a journal and the shared indices. */
struct journal_plan {
	uint32_t req_cons;		/* consume the ring from here */
	uint32_t rsp_written;		/* responses were written up to here */
	uint32_t rsp_published;		/* the guest has seen up to here */
	unsigned int nr_replay;		/* slots to issue again, in ring order */
	unsigned int replay[JOURNAL_MAX_ENTS];
	unsigned int nr_answered;	/* slots answered: just retire them */
	unsigned int answered[JOURNAL_MAX_ENTS];
};

/* DIR/d<domid>-<devid>-q<queue>.journal, created empty (a stale one is
 * replaced). */
int journal_create(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		   struct journal **ret);
/* The journal an earlier process left for this ring: -ENOENT when there is
 * none, -ESTALE when it belongs to another ring or binary layout,
 * -EPROTONOSUPPORT when it is of a format this binary does not know (a
 * newer one). A format 1 journal is converted in place first. */
int journal_open(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		 struct journal **ret);
/* Unmaps; the file stays for the next process. */
void journal_close(struct journal *j);
/* Unmaps and deletes: the ring disconnected cleanly. */
void journal_remove(struct journal *j);
/* Ring thread: the request read at ring index seq now lives in slot. */
void journal_consume(struct journal *j, unsigned int slot, uint32_t seq,
		     const struct blkif_req *req);
/* Ring thread: the response about to be written at ring index idx. */
void journal_respond(struct journal *j, uint32_t idx, uint32_t seq, uint64_t id, uint8_t op,
		     int16_t status);
/* Ring thread: slot's request is answered (its response is in the log). */
void journal_retire(struct journal *j, unsigned int slot);
/* From the journal and the shared indices: where to resume, what to
 * publish again, what to issue again. -EPROTO when the indices cannot
 * belong to this journal (a guest scribbled on them), -EUCLEAN when the
 * journal contradicts itself (a request recorded past req_cons + 1). */
int journal_plan(struct journal *j, uint32_t rsp_prod, uint32_t req_prod,
		 struct journal_plan *ret);
/* The request recorded in slot, into ret_req (its indirect_segs pointer is
 * NULL: the segments are read again from the indirect pages). */
void journal_req(const struct journal *j, unsigned int slot, uint32_t *ret_seq,
		 struct blkif_req *ret_req);
/* The response logged for ring index idx; -ENOENT when the log lacks it. */
int journal_rsp(const struct journal *j, uint32_t idx, struct blkif_rsp *ret);
/* Deletes the journals in dir that keep() does not claim. */
int journal_sweep(const char *dir, bool (*keep)(void *opaque, uint32_t fe_domid,
						 uint32_t devid, uint32_t queue),
		  void *opaque, unsigned int *ret_removed);

/* ---- pgrant.c: one ring's persistent grant cache ---- */

struct pgrant_cache;

int pgrant_cache_new(struct plat_gnttab *gt, uint32_t domid, unsigned int max,
		     struct pgrant_cache **ret);
/* Unmaps every page. NULL is fine. */
void pgrant_cache_free(struct pgrant_cache *c);
/* The page gref grants, mapped writable on first use (ret_mapped then
 * says so), the least recently used one unmapped to make room; NULL when
 * the grant cannot be mapped. */
void *pgrant_get(struct pgrant_cache *c, uint32_t gref, uint64_t now, bool *ret_mapped);
/* Unmaps pages unused for idle_ns; returns how many. */
unsigned int pgrant_expire(struct pgrant_cache *c, uint64_t now, uint64_t idle_ns);
unsigned int pgrant_count(const struct pgrant_cache *c);

#endif
