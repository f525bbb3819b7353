/* blkbackd's internal header, sectioned by the file that defines each
 * symbol. The main thread owns xenstore, signals and every vbd's lifecycle;
 * each connected ring has one thread that owns its event channel and its
 * storage engine queue. */
#ifndef BLKBACKD_H
#define BLKBACKD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <xenstore.h>

#include "blkif.h"
#include "io.h"
#include "log.h"
#include "platform.h"
#include "ring.h"
#include "stats.h"
#include "vbd-decide.h"
#include "xenbus.h"

struct vbd;
struct ring;
struct control;

/* Seconds of per-vbd request totals kept for the IOPS column. */
#define CONTROL_IOPS_SAMPLES	6

/* xenstore keys (XK_*) are in common/xenbus.h. */
#define RECOVERY_REISSUE	"reissue"
#define RECOVERY_FAIL		"fail"
#define BLKBACKD_DEFAULT_INDIRECT_SEGS	256u	/* 1 MiB requests */
#define BLKBACKD_MAX_QUEUES		16u	/* default: online CPUs, capped here */
#define BLKBACKD_DEFAULT_PGRANTS	1056u	/* persistent grants per ring, as Linux */
/* A server restart takes seconds; a guest's requests may wait a minute
 * (Linux guests warn about hung tasks only after two). */
#define BLKBACKD_DEFAULT_NBD_RECONNECT_S 60u
/* Ring buffers one guest's disks may pin: a 16-queue disk with order-4
 * rings and 1 MiB indirect requests would otherwise pin 1.4 GiB. */
#define BLKBACKD_DEFAULT_DOMAIN_MEMORY_MIB 1024u

/* ---- blkbackd.c: options, the daemon context, the main loop ---- */

struct blkbackd {
	/* configuration (options) */
	const char *platform_name;	/* "xen", "sim", NULL = pick */
	const char *sim_dir;
	const char *script_name;	/* claim vbds whose script basename is this */
	const char *pidfile;
	enum io_engine_kind engine;
	bool foreground;
	bool direct_io;			/* O_DIRECT even without direct-io-safe */
	bool sector_4k;			/* files report 4096-byte logical sectors */
	int resize_interval_ms;		/* 0 = SIGHUP only */
	unsigned int max_indirect_segs;	/* advertised; 0: no INDIRECT */
	unsigned int max_queues;	/* multi-queue-max-queues, >= 1 */
	unsigned int max_pgrants;	/* per ring; 0: no feature-persistent */
	unsigned int nbd_reconnect_s;	/* requests wait this long for an NBD server */
	size_t max_domain_memory;	/* ring buffer bytes per guest; 0: no limit */
	const char *control_path;	/* control socket (control.c) */
	const char *control_group;	/* NULL: root only */
	const char *journal_dir;	/* recovery journals; NULL: none */
	bool recover_fail;		/* --recovery fail: error, not re-issue */

	/* run time, main thread only unless marked */
	struct xs_handle *xs;
	struct platform *plat;
	uint32_t domid;			/* our own domain */
	char *vbd_root;			/* /local/domain/<domid>/backend/vbd */
	int wake_fd;			/* eventfd: ring threads -> main loop (vbd.c) */
	struct vbd *vbds;		/* list of claimed and unclaimed vbds */
	/* vbds an event marked, oldest first, each holding a ref while
	 * queued; those serving a guest in a queue of their own that runs
	 * first: a burst of a thousand attaches cannot delay a close */
	struct vbd_queue {
		struct vbd *head;
		struct vbd **tail;	/* NULL: empty */
	} dirty[2];
	bool quitting;
	/* a state machine pass ran out of its time: dirty vbds wait for
	 * the next, which the main loop runs without sleeping */
	bool more_dirty;
	bool failed;			/* quit because of an error */
	bool upgrade;			/* quitting to exec exe_path (live upgrade) */
	char *exe_path;			/* our binary, as it was named at start */
	uint64_t instance;		/* random, tells an upgraded process apart */
	time_t started;
	struct control *ctl;		/* the control socket, NULL when off */
	struct fewatch *fewatch;	/* frontend state watches (fewatch.c) */
	struct storage_opener *opener;	/* storage opens (storage-open.c) */
	/* where a round of size checks waits for a free probe thread; only
	 * compared with list members, never followed */
	const struct vbd *resize_next;
};

/* ---- xenbus.c: xenstore access for the main thread ---- */

/* Reads path (joined as dir/key when key != NULL). The value is
 * NUL-terminated and owned by the caller. -ENOENT when absent. */
int xenbus_read(struct blkbackd *d, xs_transaction_t t, const char *dir,
		const char *key, char **ret_val);
/* Strict unsigned decimal with an upper bound; -EINVAL on garbage,
 * -ERANGE above max, -ENOENT when absent. */
int xenbus_read_uint(struct blkbackd *d, xs_transaction_t t, const char *dir,
		     const char *key, unsigned long long max, unsigned long long *ret_val);
/* As xenbus_read_uint, but an absent key yields dflt. */
int xenbus_read_uint_default(struct blkbackd *d, xs_transaction_t t, const char *dir,
			     const char *key, unsigned long long max,
			     unsigned long long dflt, unsigned long long *ret_val);
int xenbus_write(struct blkbackd *d, xs_transaction_t t, const char *dir,
		 const char *key, const char *val);
int xenbus_printf(struct blkbackd *d, xs_transaction_t t, const char *dir,
		  const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int xenbus_rm(struct blkbackd *d, xs_transaction_t t, const char *dir, const char *key);
/* Child names of dir; *ret_names is one allocation (free() it). */
int xenbus_directory(struct blkbackd *d, const char *dir, char ***ret_names,
		     unsigned int *ret_count);
int xenbus_tx_start(struct blkbackd *d, xs_transaction_t *ret_t);
/* Commits (abort = false) or aborts. -EAGAIN: conflict, the caller retries. */
int xenbus_tx_end(struct blkbackd *d, xs_transaction_t t, bool abort);
int xenbus_watch(struct blkbackd *d, const char *path, const char *token);
void xenbus_unwatch(struct blkbackd *d, const char *path, const char *token);
/* Connects to xenstore, learns our domid, watches backend/vbd. */
int xenbus_open(struct blkbackd *d);
void xenbus_close(struct blkbackd *d);
int xenbus_fd(struct blkbackd *d);
/* Drains queued watch events and runs the state machine of every vbd they
 * touch, each once. */
void xenbus_dispatch(struct blkbackd *d);
/* Queues v for a state machine run (once, however often it is marked). */
void xenbus_mark_dirty(struct vbd *v);
/* Drops the queue's refs (shutdown). */
void xenbus_forget_dirty(struct blkbackd *d);
/* Runs the state machine of the vbds an event marked, each once, for at
 * most one pass's time; d->more_dirty says whether some still wait. */
void xenbus_run_dirty(struct blkbackd *d);
/* Lists backend/vbd and claims or forgets vbds to match it. */
void xenbus_scan(struct blkbackd *d);
/* The pure parser behind the scan (exposed for tests/fuzz; the number
 * parser and state names are in common/xenbus.h): "<domid>/<devid>[/...]"
 * at the head of a path relative to backend/vbd, returning how many
 * numbers it found (0, 1 or 2). */
int xenbus_parse_vbd_path(const char *rel, uint32_t *ret_domid, uint32_t *ret_devid);

/* ---- fewatch.c: frontend state watches, drained off the main thread ---- */

struct fewatch;
/* A second xenstore connection and the thread that drains its events. */
int fewatch_start(struct blkbackd *d);
/* Stops the thread and closes the connection; safe when never started. */
void fewatch_stop(struct blkbackd *d);
/* Readable when a watched node changed: then call fewatch_collect. */
int fewatch_fd(struct blkbackd *d);
/* Marks dirty every vbd whose watched node changed since the last call. */
void fewatch_collect(struct blkbackd *d);
/* Watches path (the vbd's frontend state node) and nothing below it. */
int fewatch_add(struct vbd *v, const char *path);
void fewatch_remove(struct vbd *v, const char *path);

/* ---- storage-open.c: storage opens and probes off the main thread ---- */

struct storage_open;
struct storage_opener;
int storage_open_init(struct blkbackd *d);
/* Frees what it can; threads still blocked in an open keep their job. */
void storage_open_done(struct blkbackd *d);
/* Readable when an open finished (or one is slow): storage_open_collect. */
int storage_open_fd(struct blkbackd *d);
/* Opens params with io_backing_open's flags on a thread; the result goes
 * to vbd_open_done, unless v->opening no longer names the job by then. */
int storage_open_start(struct vbd *v, const char *params, unsigned int flags,
		       struct storage_open **ret_job);
/* Reads the size of v's local storage on a thread of its own, through a
 * duplicate of the backing's fd: the thread's fd stays valid whatever the
 * vbd does meanwhile, and a stat that blocks (a hung mount) blocks only
 * that thread. The result goes to vbd_size_probed. -EBUSY when v has one
 * running, -EAGAIN when every probe thread is taken (try at the next
 * tick). */
int storage_size_start(struct vbd *v);
/* Hands finished opens and size probes to their vbds (marking opened ones
 * dirty), starts waiting opens, reports slow ones through vbd_open_slow. */
void storage_open_collect(struct blkbackd *d);

/* ---- vbd.c: one virtual block device and its state machine ---- */

struct vbd_props {
	bool readonly;
	bool cdrom;
	bool discard;		/* toolstack allows and backing supports */
	bool discard_secure;
	bool direct_io;
	uint32_t discard_granularity;	/* bytes */
	uint32_t discard_alignment;	/* bytes */
	uint64_t sectors;	/* 512-byte units */
	uint32_t sector_size;
	uint32_t phys_sector_size;
};

struct vbd {
	struct vbd *next;
	struct blkbackd *d;
	atomic_int refs;	/* the list, a running step; the last unref frees (main) */
	uint32_t fe_domid;
	uint32_t devid;
	char *be_path;		/* /local/domain/<me>/backend/vbd/<domid>/<devid> */
	char *fe_path;		/* from the backend's "frontend" node */
	char *fe_watch;		/* fe_path/state while watched */
	char prefix[32];	/* "d5/51712" for log lines */
	enum vbd_phase phase;
	bool be_dir_removed;	/* backend dir is gone: write nothing more */
	bool fe_seen;		/* the frontend dir existed at some point */
	/* The rings were refused (bad ring keys or indices) while the frontend
	 * was in this state: not tried again until the frontend writes its
	 * state node again (with the same value or another) or the state
	 * read moves; events on the backend's own nodes, such as the error
	 * node the refusal wrote, bring no second try. */
	bool start_refused;
	unsigned int start_refused_fe_state;
	unsigned int start_refused_fe_writes;
	unsigned int fe_state_writes;	/* state node events collected (fewatch.c) */
	bool dirty;		/* queued for a state machine run (xenbus_mark_dirty) */
	struct vbd *dirty_next;
	bool forgotten;		/* unlinked from the list: stop stepping */
	char *last_error;	/* last text written to "error", to log once */
	time_t fail_window;	/* monotonic start of the failure log window */
	unsigned int fail_logged;	/* failures logged in it */
	unsigned int fail_suppressed;	/* and not logged */

	struct io_backing *backing;
	struct storage_open *opening;	/* the open running for it, if any */
	bool size_probing;		/* a storage_size_start runs for it */
	unsigned int size_gen;		/* bumped when the backing goes */
	bool discard_enable;		/* the toolstack's discard-enable */
	struct vbd_props props;
	/* Size the ring threads validate against; the main thread updates it
	 * on resize. 512-byte sectors. */
	_Atomic uint64_t nr_sectors;

	/* Each ring reads backing, nr_sectors and d->plat until ring_release
	 * returns: the vbd outlives its rings, and vbd_free refuses to free
	 * one whose rings are not all released. */
	unsigned int nr_rings;
	struct ring **rings;
	/* what the rings may pin (ring_memory_bytes), counted against the
	 * domain's --max-domain-memory while they exist */
	size_t memory_reserved;
	/* feature-max-indirect-segments as published at configure */
	unsigned int max_indirect_segs;
	/* multi-queue-max-queues as published at configure */
	unsigned int max_queues;
	/* configure found both ends Connected: an earlier blkbackd served
	 * this vbd, so start resumes its rings from their journals */
	bool takeover;
	bool recover_fail;		/* recovery-policy, read at start */
	bool persistent;		/* both ends offer feature-persistent */
	/* the rings ran since the last configure: a detach waits for the
	 * frontend to let go; one never connected has nothing to let go */
	bool served;
	unsigned int recoveries;	/* times we resumed an earlier process */
	time_t last_recovery;		/* wall clock of the last one */
	uint64_t reissued;		/* requests issued again, all recoveries */
	uint64_t republished;		/* responses published again */

	/* for the control socket (control.c); main thread only */
	bool detach;			/* blkback-ctl detach: close as online=0 does */
	unsigned int seen_be_state;	/* both ends as the last step read them */
	unsigned int seen_fe_state;
	bool seen_hotplug_ok;
	char *dom_name;			/* cached for list, NULL until read */
	char *vdev_name;
	struct ring_stats released;	/* counters of rings already released */
	uint64_t iops_done[CONTROL_IOPS_SAMPLES];	/* answered, once a second */
	unsigned int iops_pos;
};

/* Looks for an existing vbd (NULL when unknown). */
struct vbd *vbd_find(struct blkbackd *d, uint32_t fe_domid, uint32_t devid);
/* Starts tracking backend/vbd/<fe_domid>/<devid>; claims it or marks it
 * foreign according to its script node. */
int vbd_new(struct blkbackd *d, uint32_t fe_domid, uint32_t devid, struct vbd **ret);
void vbd_ref(struct vbd *v);
void vbd_unref(struct vbd *v);
/* The level-triggered step: re-read both ends and act on the pair. */
void vbd_update(struct vbd *v);
/* The main loop was woken: rings may have drained or halted. */
void vbd_poll_rings(struct vbd *v);
/* SIGHUP or timer: re-read the backing size and publish a change; local
 * storage is read on a thread, its answer comes to vbd_size_probed.
 * -EAGAIN when every probe thread is taken: ask again later. */
int vbd_check_resize(struct vbd *v);
/* Daemon shutdown, in two halves so that every vbd drains at once: start
 * stops its rings; finish, once they drained, unmaps them (keeping the
 * journals), closes the storage and forgets the vbd; false while they
 * have not drained, unless give_up (then it is unlinked and left to
 * process exit). xenstore is left as it is so that a restarted daemon
 * takes the vbd over. */
void vbd_shutdown_start(struct vbd *v);
bool vbd_shutdown_finish(struct vbd *v, bool give_up);
bool vbd_is_busy(const struct vbd *v);
/* The storage open storage_open_start ran: result < 0 (why: the engine's
 * words or "") or the backing, taken from *backing. */
/* storage_size_start's result: the size in bytes, or -errno; gen is the
 * vbd's size_gen when it started. */
void vbd_size_probed(struct vbd *v, unsigned int gen, int result, uint64_t size);
void vbd_open_done(struct vbd *v, const char *params, int result, const char *why,
		   struct io_backing **backing);
/* The open has run for seconds (or waits behind others opens). */
void vbd_open_slow(struct vbd *v, const char *params, unsigned int seconds,
		   unsigned int others);
/* blkback-ctl detach is done: Closed, and the frontend has let go (or
 * never connected, or force). */
bool vbd_is_detach_done(const struct vbd *v, bool force);
/* Logs with the vbd's prefix. */
void vbd_log(const struct vbd *v, enum log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- control*.c: the control socket blkback-ctl talks to ---- */

/* Binds d->control_path (mode 0600, or 0660 with control_group); the
 * returned fd (an epoll set) is readable when control_dispatch has work. */
int control_open(struct blkbackd *d);
int control_fd(const struct blkbackd *d);
void control_dispatch(struct blkbackd *d);
void control_close(struct blkbackd *d);
/* One request line (len bytes, no newline) -> its reply object, which the
 * caller puts, or NULL when the reply comes later (control_answer); pure
 * but for the vbds it reads or detaches (tests/fuzz). call: who asks; NULL
 * for a harness, which gets every reply at once, as root would. */
struct json_object;
struct control_call;
struct json_object *control_handle(struct blkbackd *d, const char *line, size_t len,
				   const struct control_call *call);

#endif
