/* blkfront-sim's internal header, sectioned by the file that defines each
 * symbol. blkfront-sim is a single-threaded guest frontend: it connects to
 * one vbd the way Linux xen-blkfront does (or another frontend, with
 * --personality), then runs a workload, a verification pass or one raw
 * request over the shared ring. */
#ifndef BLKFRONT_H
#define BLKFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkif.h"
#include "platform.h"
#include "xenbus.h"

struct xs_handle;

/* xenstore keys (XK_*) and state names are common/xenbus.h's. */

/* Exit statuses (documented in blkfront-sim(1)). */
#define BF_EXIT_OK		0
#define BF_EXIT_FAIL		1	/* error response, mismatch, protocol violation */
#define BF_EXIT_SETUP		2	/* usage, xenstore or connect failure */
#define BF_EXIT_CLOSED		3	/* backend closed the device mid-run, no failure */
#define BF_EXIT_TIME_LIMIT	4	/* --time-limit passed: the whole run took too long */

#define BF_MAX_RING_ORDER	4	/* 16 pages, like Linux's xen_blkif_max_ring_order */
#define BF_MAX_RING_PAGES	(1u << BF_MAX_RING_ORDER)
#define BF_MAX_RAW_SEGS		BLKIF_MAX_INDIRECT_SEGMENTS
#define BF_MAX_QUEUES		16

/* The kind of work a request does, which decides how its response and data
 * are judged. */
enum bf_kind {
	BF_KIND_READ,
	BF_KIND_WRITE,
	BF_KIND_BARRIER,	/* WRITE_BARRIER carrying data */
	BF_KIND_FLUSH,
	BF_KIND_DISCARD,
	BF_KIND_VERIFY_READ,	/* read of the final read-back pass */
	BF_KIND_RAW,
	BF_KIND_MAX,
};

enum bf_workload {
	BF_WL_RANDRW,
	BF_WL_RANDREAD,
	BF_WL_RANDWRITE,
	BF_WL_SEQREAD,
	BF_WL_SEQWRITE,
	BF_WL_READBACK,		/* no workload: only the final read-back */
};

/* Hostile modes (--hostile, blkfront-hostile.c): PROTOCOL.md §5 classes
 * that one crafted request cannot show. */
enum bf_hostile {
	BF_HOSTILE_NONE,
	BF_HOSTILE_REWRITE,		/* T1, T20: a thread rewrites slots, indirect and data pages */
	BF_HOSTILE_PROD_OVERFLOW,	/* T2: req_prod a ring and more ahead */
	BF_HOSTILE_PROD_BACKWARDS,	/* T2: req_prod goes back */
	BF_HOSTILE_EVENT_STORM,		/* T11: notify in a tight loop, empty ring */
	BF_HOSTILE_XS_FLOOD,		/* T12: rewrite own keys, make nodes, at full rate */
	BF_HOSTILE_RSP_CHECK,		/* T10: response slots carry only response fields */
	BF_HOSTILE_DUP_IDS,		/* T18: a full ring of requests with one id */
};

/* Whose xenbus rules the frontend follows (--personality,
 * blkfront-personality.c): each reproduces what that frontend's own code
 * expects of the backend, strictly. */
enum bf_personality {
	BF_PERS_LINUX,		/* xen-blkfront: the default */
	BF_PERS_OVMF,		/* OvmfPkg XenPvBlkDxe: Connected at once, exact waits */
	BF_PERS_KDUMP,		/* a kdump kernel: xenbus_reset_frontend first */
	BF_PERS_WINDOWS,	/* win-xenvbd: sector-size units, flush only */
	BF_PERS_BSD,		/* FreeBSD/OpenBSD: max-ring-pages, num-ring-pages */
	BF_PERS_MINIOS,		/* Mini-OS/Unikraft: mode and max-queues required */
	BF_PERS_MAX,
};

/* Inline: the report (blkfront-stats.c, in the unit tests too) names it. */
static inline const char *bf_personality_name(enum bf_personality p)
{
	static const char *const names[BF_PERS_MAX] = {
		[BF_PERS_LINUX] = "linux", [BF_PERS_OVMF] = "ovmf", [BF_PERS_KDUMP] = "kdump",
		[BF_PERS_WINDOWS] = "windows", [BF_PERS_BSD] = "bsd", [BF_PERS_MINIOS] = "minios",
	};

	return p < BF_PERS_MAX ? names[p] : "?";
}

/* Special grant refs of a raw-mode segment. */
enum bf_raw_gref {
	BF_GREF_GIVEN,			/* the number given */
	BF_GREF_NEW,			/* a fresh page, granted writable */
	BF_GREF_RO,			/* a fresh page, granted read-only */
	BF_GREF_REVOKED,		/* a fresh page whose grant was ended */
	BF_GREF_OTHER,			/* a fresh page granted to another domain */
	BF_GREF_DUP,			/* the previous segment's ref again */
};

/* One raw-mode segment; gref_new asks for a freshly granted page. */
struct bf_raw_seg {
	uint32_t gref;
	uint8_t first_sect, last_sect;
	bool gref_new;
	enum bf_raw_gref kind;
};

struct bf_opts {
	bool platform_xen;		/* --platform xen: real grants, evtchns, xenstored */
	const char *dir;
	const char *domain;		/* id or name */
	const char *vdev;
	int ring_order;			/* -1: the backend's max, capped at 0 */
	unsigned int queues;		/* asked for; the backend's max caps it */
	enum blkif_abi abi;
	double timeout;			/* seconds for each xenbus wait and drain */
	double time_limit;		/* seconds for the whole run, 0: none */
	bool verbose;
	enum bf_personality personality;

	enum bf_workload workload;
	uint32_t bs;
	unsigned int qd;
	double seconds;
	uint64_t ops;			/* 0 with seconds 0: 10 s */
	uint64_t flush_every, discard_every, barrier_every;
	uint64_t offset, size;		/* bytes; size 0 = to the end */
	int rwmix;			/* percent reads for randrw */
	bool indirect;			/* force INDIRECT for reads and writes */
	bool persistent;		/* offer feature-persistent */
	bool indirect_ro;		/* indirect pages read-only even so */
	bool verify;
	bool readback;			/* final read-back (default with --verify) */
	const char *state_file;
	bool expect_readonly;
	bool json, progress;
	uint64_t seed;
	enum bf_hostile hostile;
	/* --ring-start: the indices the ring starts at (attach form, T3) */
	bool ring_start_set;
	uint32_t ring_start_req, ring_start_rsp;

	/* raw mode */
	bool raw;
	int raw_op;
	int raw_nr_segments;		/* -1: the number of segments given */
	uint64_t raw_sector, raw_id;
	bool raw_id_set;
	int raw_handle;			/* -1: devid */
	int raw_indirect_op;
	int raw_indirect_pages;		/* -1: as many as the segments need */
	uint32_t raw_indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int raw_nr_indirect_grefs;
	uint64_t raw_discard_sectors;
	int raw_discard_flag;
	struct bf_raw_seg *raw_segs;
	unsigned int raw_nr_segs;
	bool raw_seg_auto;
	bool raw_fill;			/* write a verify stamp into fresh pages */
	int raw_expect_status;		/* INT16_MIN + 1: any */
	bool raw_expect_status_set;
	double raw_wait;
};

/* blkfront-opts.c: the command line into o (defaults for the rest); 0,
 * or -EINVAL with one line on standard error. --help and --version
 * print and exit. */
int bf_opts_parse(struct bf_opts *o, int argc, char **argv);

/* A request slot: one tracked request and its pre-granted buffers. */
struct bf_slot {
	bool busy;
	enum bf_kind kind;
	uint64_t id;			/* the id on the ring while busy */
	uint64_t sector;		/* 512-byte units */
	uint32_t nr_sect;		/* 512-byte units; 0 for flush */
	uint64_t gen;			/* verify: generation of written data */
	uint64_t t_submit;		/* ns */
	uint64_t order;			/* submission number, for barrier order */
	unsigned int queue;		/* the ring it goes on / went on */
	void *data;			/* pages_per_slot contiguous pages */
	uint32_t *grefs;
	void *ind;			/* indirect pages (backend read-only) */
	uint32_t ind_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
	unsigned int next_free;
};

/* Features and geometry the backend published. */
struct bf_backend_info {
	unsigned int max_ring_order;
	bool feature_flush, feature_barrier, feature_discard, discard_secure;
	uint32_t discard_granularity, discard_alignment;
	uint32_t max_indirect_segments;
	unsigned int max_queues;	/* 1 when not advertised */
	uint64_t sectors;		/* 512-byte units, as Linux uses it */
	uint32_t sector_size, physical_sector_size;
	uint32_t info;			/* VDISK_* */
	bool feature_persistent;
};

struct bf_verify;
struct bf_stats;

struct bf_dev {
	const struct bf_opts *opts;
	char *dir;
	uint32_t domid;

	/* xenbus */
	struct xs_handle *xs;
	uint32_t devid;
	char *fe_path, *be_path;
	uint32_t be_domid;
	int be_state;			/* last read; 0 when the dir is gone */
	struct bf_backend_info be;
	bool watching;

	/* platform */
	struct platform *plat;
	struct plat_gntshr *gs;
	struct plat_evtchn *ev;
	int sigfd;

	/* rings: one per queue, all of one order and ABI */
	struct blkif_ring_layout layout;
	unsigned int ring_order;
	unsigned int nr_queues;
	unsigned int next_queue;	/* round robin for new requests */
	struct bf_queue {
		void *sring;
		uint32_t ring_refs[BF_MAX_RING_PAGES];
		RING_IDX req_prod_pvt, rsp_cons;
		uint32_t port;
		bool port_bound;
	} q[BF_MAX_QUEUES];
	bool ring_broken;		/* backend violated the ring protocol */
	RING_IDX rsp_prod_closed;	/* rsp_prod once the backend closed */
	bool rsp_prod_snapped;

	/* request slots and their buffers */
	struct bf_slot *slots;
	unsigned int nr_slots, pages_per_slot, ind_pages_per_slot;
	unsigned int free_head;		/* nr_slots: none */
	struct blkif_seg *seg_scratch;	/* pages_per_slot entries */
	unsigned int inflight;
	uint64_t id_seq;

	/* flags set by the event loop */
	bool stop;			/* SIGINT/SIGTERM */
	bool be_closing;		/* backend left Connected */
	bool connected;
	/* 512-byte sectors per unit of sector_number, first_sect and
	 * last_sect on the ring: 1, but sector-size / 512 for a frontend
	 * that sets feature-large-sector-size (the Windows reading) */
	unsigned int sect_units;

	uint64_t failures;		/* every failure is logged when counted */
};

/* blkfront-main.c */
uint64_t bf_now_ns(void);
void bf_fail(struct bf_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* blkfront-xenbus.c: find the vbd, walk the xenbus states, close. */
int bf_xenbus_open(struct bf_dev *dev);
int bf_xenbus_wait_initwait(struct bf_dev *dev);
int bf_xenbus_publish(struct bf_dev *dev);
int bf_xenbus_wait_connected(struct bf_dev *dev);
void bf_xenbus_close(struct bf_dev *dev);
void bf_xenbus_free(struct bf_dev *dev);
/* For the personalities: the frontend state, the backend's, a key, and a
 * wait until pred(backend state) holds or timeout seconds pass. */
typedef bool bf_state_pred(int state);
int bf_xenbus_fe_state_set(struct bf_dev *dev, int state);
int bf_xenbus_fe_state_get(struct bf_dev *dev);
int bf_xenbus_be_state_get(struct bf_dev *dev);
int bf_xenbus_wait_state(struct bf_dev *dev, bf_state_pred *pred, double timeout,
			 const char *what);
void bf_xenbus_fe_key_rm(struct bf_dev *dev, const char *key);
/* Re-read the backend state after a watch fired; sets be_closing. */
void bf_xenbus_handle_watch(struct bf_dev *dev);

/* blkfront-vdev.c: libxl's disk names -> devid; -EINVAL for others. */
int bf_vdev_to_devid(const char *vdev, uint32_t *ret_devid);

/* blkfront-ring.c: the shared rings (one per queue), their event channels,
 * request slots. A slot is put on the next queue with room, round robin. */
int bf_ring_setup(struct bf_dev *dev, unsigned int order, unsigned int nr_queues);
int bf_ring_slots_alloc(struct bf_dev *dev, unsigned int nr_slots,
			unsigned int pages_per_slot, unsigned int ind_pages);
struct bf_slot *bf_ring_slot_get(struct bf_dev *dev);
void bf_ring_slot_put(struct bf_dev *dev, struct bf_slot *slot);
bool bf_ring_is_full(const struct bf_dev *dev);
/* Put a request on the ring (private index only) and track its id. */
int bf_ring_submit(struct bf_dev *dev, struct bf_slot *slot, struct blkif_req *req);
/* Raw mode: the id is the caller's; no tracking by slot. */
int bf_ring_submit_raw(struct bf_dev *dev, const struct blkif_req *req);
/* Publish private requests and notify if the backend asked for it. */
int bf_ring_push(struct bf_dev *dev);
typedef void bf_rsp_fn(struct bf_dev *dev, struct bf_slot *slot,
		       const struct blkif_rsp *rsp, void *opaque);
/* Consume every response; slot is NULL for an id not in flight (the
 * callback decides: raw mode prints it, a workload counts a failure). */
int bf_ring_consume(struct bf_dev *dev, bf_rsp_fn *fn, void *opaque);
/* Sleep until an event, a signal, a watch, or timeout_ms (-1: none). */
int bf_ring_wait(struct bf_dev *dev, int timeout_ms);
/* Build segments over a slot's data pages for nr_sect sectors. */
int bf_ring_req_build(struct bf_dev *dev, struct bf_slot *slot, uint8_t op,
		      uint64_t sector, uint32_t nr_sect, bool indirect,
		      struct blkif_req *ret_req);
/* Answers left unconsumed after the backend closed: must stay zero. The
 * sum of every queue's response producer, to compare with a snapshot. */
RING_IDX bf_ring_rsp_prod(const struct bf_dev *dev);
void bf_ring_teardown(struct bf_dev *dev);

/* blkfront-verify.c: sector stamps and the generation map. */
#define BF_STAMP_MAGIC 0x42465356424c4b31ull	/* "1KLBVSFB" */
void bf_stamp_fill(void *buf, uint64_t sector, uint64_t gen);
/* 0 for a valid stamp of that sector, -EINVAL for a stamp that is present
 * but wrong (address or checksum), -ENOENT for no stamp. */
int bf_stamp_check(const void *buf, uint64_t sector, uint64_t *ret_gen);
int bf_verify_new(uint64_t first_sector, uint64_t nr_sectors,
		  struct bf_verify **ret);
void bf_verify_free(struct bf_verify *v);
int bf_verify_load(struct bf_verify *v, const char *path);
int bf_verify_save(const struct bf_verify *v, const char *path);
uint64_t bf_verify_gen_next(struct bf_verify *v);
/* Range locks: a request may not overlap an in-flight write or discard,
 * and a write or discard may not overlap anything in flight. */
bool bf_verify_range_is_free(const struct bf_verify *v, uint64_t sector,
			     uint32_t nr_sect, bool writes);
void bf_verify_range_lock(struct bf_verify *v, uint64_t sector,
			  uint32_t nr_sect, bool writes);
void bf_verify_range_unlock(struct bf_verify *v, uint64_t sector,
			    uint32_t nr_sect, bool writes);
/* A write was submitted: until its answer, old or new data may be read. */
void bf_verify_write_submitted(struct bf_verify *v, uint64_t sector,
			       uint32_t nr_sect, uint64_t gen);
/* The write's answer: okay makes gen the only acceptable content; an
 * error leaves the range undefined. */
void bf_verify_write_done(struct bf_verify *v, uint64_t sector,
			  uint32_t nr_sect, uint64_t gen, bool okay);
void bf_verify_discard_done(struct bf_verify *v, uint64_t sector,
			    uint32_t nr_sect, bool okay);
/* Check read data (nr_sect * 512 bytes at buf); returns the number of
 * bad sectors and describes the first few through bf_fail. */
uint64_t bf_verify_read(struct bf_verify *v, struct bf_dev *dev,
			const void *buf, uint64_t sector, uint32_t nr_sect);
bool bf_verify_sector_is_known(const struct bf_verify *v, uint64_t sector);
uint64_t bf_verify_nr_checked(const struct bf_verify *v);

/* blkfront-stats.c: counters, latency histogram, reports. */
struct bf_stats {
	uint64_t ops[BF_KIND_MAX];
	uint64_t bytes[BF_KIND_MAX];
	uint64_t errors;		/* unexpected non-OKAY responses */
	uint64_t expected_errors;	/* --expect-readonly rejections */
	uint64_t mismatches;
	uint64_t unanswered;		/* in flight when the backend closed */
	uint64_t t_start, t_end;	/* ns */
	uint64_t hist[64 * 16];
	uint64_t lat_count, lat_max, lat_sum;
	/* progress */
	uint64_t last_t, last_ops, last_bytes;
};
void bf_stats_init(struct bf_stats *st);
void bf_stats_latency_add(struct bf_stats *st, uint64_t ns);
uint64_t bf_stats_percentile(const struct bf_stats *st, double pct);
uint64_t bf_stats_total_ops(const struct bf_stats *st);
uint64_t bf_stats_total_bytes(const struct bf_stats *st);
void bf_stats_progress(struct bf_stats *st, const struct bf_dev *dev);
void bf_stats_report(const struct bf_stats *st, const struct bf_dev *dev,
		     const struct bf_verify *v, int result);

/* blkfront-workload.c: runs the workload and the read-back, closes the
 * device, reports; returns the exit status. */
int bf_workload_run(struct bf_dev *dev, struct bf_stats *st);

/* blkfront-personality.c: the frontends other than Linux's. */
int bf_personality_parse(const char *name, enum bf_personality *ret);
/* kdump: the crashed kernel's connection is reset the way Linux's
 * xenbus_reset_frontend does, with its exact waits of 5 s each. */
int bf_personality_kdump_reset(struct bf_dev *dev);
/* OVMF and Mini-OS close with their own dance; true when it was done. */
bool bf_personality_close(struct bf_dev *dev);

/* blkfront-raw.c: one crafted request; returns the exit status. */
int bf_raw_run(struct bf_dev *dev);

/* blkfront-hostile.c: runs dev->opts->hostile; returns the exit status. */
int bf_hostile_run(struct bf_dev *dev);
int bf_hostile_parse(const char *name, enum bf_hostile *ret);

#endif
