/* blkbackd's storage layer (libio.a): opening a backing (file, block
 * device or NBD export) and the I/O engines behind one vtable: io_uring, a
 * thread pool with the same behaviour, NBD through libnbd, and a null
 * engine for protocol-cost benchmarks. Each engine is a provider in one
 * table (io.c); nothing outside an engine's file knows what it is.
 * Sectioned by the file that defines each symbol. */
#ifndef BLKBACKD_IO_H
#define BLKBACKD_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ---- io.c: backings and engines, through the provider table ---- */

/* io_backing_open() flags */
#define IO_BACKING_READ_ONLY	(1u << 0)	/* mode=r: O_RDONLY, writes refused */
#define IO_BACKING_DIRECT	(1u << 1)	/* O_DIRECT (page cache bypassed) */
#define IO_BACKING_SECTOR_4K	(1u << 2)	/* report 4096-byte logical sectors */

/* Why an open failed, in the storage's own words (libnbd's message, "the
 * export is read-only"); "" when the errno says it all. Filled on failure
 * only, by the thread that called: there is no hidden global. */
struct io_error {
	char msg[256];
};

struct io_provider;
struct stat;

/* Which object a path names, whatever the spelling: the device number of
 * a block device, the device and inode of a file. Taken once, where a
 * stat may block (a hung mount), and compared anywhere without a system
 * call. known false: no path (a URI), or it could not be looked at. */
struct io_target_id {
	bool known;
	bool block;			/* dev is the block device's st_rdev */
	dev_t dev;
	ino_t ino;			/* files only */
};

/* The storage behind one vbd. Opened once (on any thread: nothing here
 * touches the caller's state); ring threads only read the fields below,
 * which do not change after the open, except size, which only the owner
 * reads and refreshes. A provider that keeps more (a remote export's
 * limits, a connection) keeps it in priv. */
struct io_backing {
	const struct io_provider *provider;	/* which opened it, and closes it */
	void *priv;
	int fd;				/* local storage; -1 for remote storage */
	struct io_target_id id;		/* local storage: what fd is, from the open */
	char *path;			/* file, device or URI, as given */
	uint64_t size;			/* bytes */
	uint32_t logical_sector_size;	/* 512 or 4096 (block devices: BLKSSZGET) */
	uint32_t physical_sector_size;	/* >= logical */
	/* O_DIRECT: buffer address, file offset and every length must be
	 * multiples of this (page-aligned buffers always satisfy it). 1 when
	 * !direct. */
	uint32_t dio_align;
	uint32_t discard_granularity;	/* bytes; 0 when !can_discard */
	uint32_t discard_alignment;	/* bytes, offset of the first granule */
	bool read_only;
	bool direct;			/* remote storage: always false */
	bool is_blockdev;
	bool can_discard;		/* files: PUNCH_HOLE|KEEP_SIZE; bdev: BLKDISCARD */
	bool can_secure_discard;	/* bdev only: BLKSECDISCARD */
	/* Remote storage: how long requests wait for a lost connection to
	 * come back before they fail (0: fail at once). Set by the owner
	 * after the open, before the first engine. */
	uint32_t reconnect_ms;
};

/* Whether target names local storage (a path) rather than one that a
 * remote provider claims by its URI scheme (nbd://, rbd:...). Looks at the
 * string only. */
bool io_target_is_local(const char *target);
/* Opens target with the provider that claims it (local paths: a regular
 * file or a block device). May block for as long as the provider's bound
 * (a remote handshake: seconds), so callers that must not block run it on
 * a worker thread. -EINVAL for other file types, -errno from the open or
 * the connection otherwise (-EROFS: read-only storage opened read-write);
 * err (may be NULL) then says more. */
int io_backing_open(const char *target, unsigned int flags, struct io_backing **ret_backing,
		    struct io_error *err);
/* Closes and frees; accepts NULL. Only after every engine on this backing
 * is freed. */
void io_backing_close(struct io_backing *b);
/* Re-reads the size (online resize). 1 when it changed (b->size updated),
 * 0 when unchanged, -errno on failure (size left as it was). Storage whose
 * size is fixed per connection never changes here. */
int io_backing_refresh_size(struct io_backing *b);
/* The identity of what target names now (io_target_id), for
 * io_backing_is_target: a stat of the path for local storage and of the
 * image file of a format target, nothing for a URI. May block on a hung
 * mount: not on a thread that must not. */
void io_target_identify(const char *target, struct io_target_id *ret);
/* The path on this host that target reaches, for checks made with
 * someone else's credentials: 1 with it in buf (a local target, the
 * image file of a format target), 0 when it reaches none (a TCP or vsock
 * URI), -ENOTSUP when the provider cannot say which (a UNIX socket in a
 * URI query, which only the NBD library decodes), -ENAMETOOLONG. */
int io_target_local_path(const char *target, char *buf, size_t len);
/* The most rings a vbd on target should be offered (multi-queue), from
 * the target's form alone: 0 for no limit of the storage's own. */
unsigned int io_target_max_queues(const char *target, bool read_only);
/* io_target_id from a stat of the object (an fstat of an open fd). */
void io_target_id_of_stat(const struct stat *st, struct io_target_id *ret);
/* Whether b is the storage target names: the same object for local
 * storage and image files (id, from io_target_identify, must be known),
 * the same URI for remote storage (two URIs of one export differ). No
 * system call: the main thread may ask. */
bool io_backing_is_target(const struct io_backing *b, const char *target,
			  const struct io_target_id *id);
/* Once the vbds an earlier process served have been taken over: each
 * provider cleans up what such a process left running for storage no vbd
 * uses now (qemu-storage-daemons holding their images' locks). Returns
 * at once; the work is done on the providers' own threads. */
void io_providers_sweep(void);
/* Whether a client outside this process holds b for writing (a Ceph
 * image's exclusive lock): 0 when not, or when the provider cannot tell;
 * -EBUSY with err saying who otherwise. Sharing within the process is the
 * caller's to check (io_backing_is_target). May wait for the storage. */
int io_backing_check_foreign(const struct io_backing *b, struct io_error *err);
/* The provider's name ("file", "nbd"), for logs. */
const char *io_backing_kind(const struct io_backing *b);

/* What the operator asks for; it applies to local storage. Remote storage
 * is always served by its own provider's engine, except with null. */
enum io_engine_kind {
	IO_ENGINE_AUTO = 0,	/* uring when io_uring works at run time, else thread */
	IO_ENGINE_URING,
	IO_ENGINE_THREAD,
	IO_ENGINE_NULL,		/* completes every op at once, touches nothing */
};

/* Setting this environment variable (to anything) makes the io_uring probe
 * fail, as on a kernel without io_uring: AUTO picks thread, URING fails
 * with -ENOSYS. For tests. */
#define IO_ENV_NO_URING		"BLKBACKD_NO_URING"

#define IO_ENGINE_MAX_DEPTH	4096u

/* "auto", "uring", "thread", "null" -> kind; -EINVAL otherwise. */
int io_engine_kind_parse(const char *name, enum io_engine_kind *ret_kind);
const char *io_engine_kind_name(enum io_engine_kind kind);

struct io_engine;

/* Called from io_engine_reap() on the engine's thread, once per op, with
 * the cookie given at submission. result: bytes transferred (always the
 * full length: short transfers are retried internally, and end-of-file
 * before the full length is -EIO), 0 for flush and discard, or -errno.
 * The callback may queue and submit new ops on the same engine. */
typedef void io_complete_fn(void *opaque, void *cookie, int result);

/* One engine per ring thread, never shared between threads (new and free
 * may run on another thread than the one that uses it). depth: the
 * maximum number of ops in flight, 1..IO_ENGINE_MAX_DEPTH. AUTO resolves
 * here; an explicitly requested engine that cannot start fails (no silent
 * fallback), e.g. -ENOSYS for uring without io_uring. Remote storage may
 * connect here (bounded like its open); err (may be NULL) says why on
 * failure. */
int io_engine_new(enum io_engine_kind kind, struct io_backing *b, unsigned int depth,
		  struct io_engine **ret_engine, struct io_error *err);
/* Frees; accepts NULL. Waits for ops still in flight (their callbacks are
 * not called), so buffers are safe to free afterwards. */
void io_engine_free(struct io_engine *e);
/* The provider serving it ("uring", "thread", "null", "nbd"). */
const char *io_engine_name(const struct io_engine *e);
/* Readable (POLLIN) when completions may be waiting: add it to the poll
 * set and call io_engine_reap() when it fires. Never close it. An engine
 * with several sources (a socket, a timer, a library's eventfd) gathers
 * them behind this one fd. For users that poll themselves: once
 * io_engine_wait() has been called, an engine may stop signalling here. */
int io_engine_fd(const struct io_engine *e);
/* Ops queued or in flight whose callback has not run yet (for draining). */
unsigned int io_engine_inflight(const struct io_engine *e);
unsigned int io_engine_depth(const struct io_engine *e);

/* Queueing: each call adds one op to the current batch; nothing reaches
 * the storage until io_engine_submit(). Return 0 when queued: the callback
 * will run exactly once for it. A negative return means the op was not
 * taken and its cookie will never be reported:
 *   -EBUSY      depth ops already queued or in flight: stop consuming,
 *               retry after a reap;
 *   -EROFS      write or discard on a read-only backing;
 *   -EOPNOTSUPP discard the backing cannot do (or secure without support);
 *   -EINVAL     bad arguments (iovcnt 0 or > IOV_MAX, total length 0 or
 *               > INT_MAX, offset + length overflowing).
 * Offsets and lengths are in bytes. The engine does not check them against
 * the backing size (the request validator does). The caller keeps the
 * iovec array and the buffers valid and untouched until the callback. */
int io_engine_readv(struct io_engine *e, uint64_t offset, const struct iovec *iov,
		    unsigned int iovcnt, void *cookie);
int io_engine_writev(struct io_engine *e, uint64_t offset, const struct iovec *iov,
		     unsigned int iovcnt, void *cookie);
/* Honest flush: completes only after every write whose callback ran before
 * this call is durable (fdatasync semantics, also under O_DIRECT). Writes
 * still in flight are not ordered against it: a barrier drains first. */
int io_engine_flush(struct io_engine *e, void *cookie);
/* Files: fallocate(PUNCH_HOLE|KEEP_SIZE) (reads back zeros). Block devices:
 * BLKDISCARD / BLKSECDISCARD, run on a worker thread in every engine so the
 * ring thread never blocks. */
int io_engine_discard(struct io_engine *e, uint64_t offset, uint64_t len, bool secure,
		      void *cookie);
/* Hands the batch to the storage (one io_uring_submit per call). Returns
 * the number of ops submitted or -errno (the ops stay queued; rare). */
int io_engine_submit(struct io_engine *e);
/* Calls fn for every finished op, without blocking. Returns how many
 * callbacks ran, or -errno. Call until it returns 0 if in doubt; a single
 * call after each POLLIN is enough. */
int io_engine_reap(struct io_engine *e, io_complete_fn *fn, void *opaque);

#define IO_WAIT_MAX_FDS	4u

/* The ring thread's one wait point: hands the batch to the storage and
 * sleeps until completions may be waiting (call io_engine_reap), one of
 * fds polls readable, or timeout_ms passes (-1: none). Bit i of
 * *ret_ready is set when fds[i] was found readable. Engines that can do
 * it submit and wait in one system call, the fds polled through their own
 * queue (io_uring: multishot polls); the others submit, then poll() the
 * engine fd and fds. The fds (at most IO_WAIT_MAX_FDS) are the same on
 * every call for one engine and stay open until it is freed. Returns the
 * number of readable fds, or -errno (-EINTR: call again); the batch is
 * left queued when the submit fails. */
int io_engine_wait(struct io_engine *e, const int *fds, unsigned int nfds, int timeout_ms,
		   unsigned int *ret_ready);

/* ---- io-uring.c ---- */

/* Whether an io_uring ring can be set up here (probed once, cached; the
 * environment variable above forces false). */
bool io_uring_is_available(void);

/* ---- engine implementations (io-uring.c, io-thread.c, io-nbd.c, io.c):
 * internal ---- */

enum io_op_type { IO_OP_READ, IO_OP_WRITE, IO_OP_FLUSH, IO_OP_DISCARD };

/* One slot per possible in-flight op, owned by the generic engine. */
struct io_op {
	struct io_op *next;		/* free list, or an engine's queue */
	void *cookie;
	enum io_op_type type;
	bool secure;
	uint64_t offset;		/* of the remaining part */
	uint64_t len;			/* total; discard: the range */
	const struct iovec *iov;	/* remaining part (caller's or iov_copy) */
	unsigned int iovcnt;
	struct iovec *iov_copy;		/* private after a short transfer */
	uint64_t done;			/* bytes transferred so far */
	unsigned int retries;
	int result;			/* for engines that finish asynchronously */
};

/* One storage engine: how its storage is opened (shared by the local
 * engines, which all serve paths) and how it serves one ring. The table in
 * io.c lists every provider; adding one touches its own file, that table
 * and the build, nothing else.
 *
 * Threads: claims, probe, open and close touch nothing but their
 * arguments (and their own process-wide caches), so the owner may run
 * them on a worker thread. init, done and fd may run on another thread
 * than the ring thread, but never concurrently with the engine's use;
 * queue, submit and reap run on the ring thread only.
 *
 * Cleanup contract: open fills b (b->priv for its own state) and may fail
 * at any point; the generic layer then calls close(b), which must undo a
 * half-done open (fds of -1, priv NULL or half-built). Likewise init
 * builds e->priv and may fail at any point; the generic layer then calls
 * done(e), which must undo a half-done init. Neither open nor init frees
 * anything on its own failure path, and done/close leave nothing behind
 * (no fd, no memory, no connection). */
struct io_provider {
	const char *name;
	/* Remote storage: whether target is one of ours, by its form alone
	 * (URI scheme). NULL for the local engines, which serve every target
	 * no remote provider claims. */
	bool (*claims)(const char *target);
	/* Whether the engine can run here: 0 or -errno (-ENOSYS). NULL:
	 * always. Cheap after the first call. */
	int (*probe)(void);
	/* Opens b->path (set) with b->read_only and b->direct (set); fills
	 * the rest. A remote handshake is bounded by the provider. */
	int (*open)(struct io_backing *b, unsigned int flags, struct io_error *err);
	void (*close)(struct io_backing *b);
	int (*refresh_size)(struct io_backing *b);
	bool (*is_target)(const struct io_backing *b, const char *target,
			  const struct io_target_id *id);
	/* io_target_identify() for a target it claims; NULL: a URI, which
	 * is its own identity. */
	void (*identify)(const char *target, struct io_target_id *ret);
	/* io_target_local_path() for a target it claims; NULL: none. */
	int (*local_path)(const char *target, char *buf, size_t len);
	/* io_target_max_queues() for a target it claims; NULL: no limit. */
	unsigned int (*max_queues)(const char *target, bool read_only);
	/* io_backing_check_foreign(); NULL: storage nobody else can hold. */
	int (*check_foreign)(const struct io_backing *b, struct io_error *err);
	/* io_providers_sweep(); NULL: the provider leaves nothing behind. */
	void (*sweep)(void);
	/* Per ring (per engine): */
	int (*init)(struct io_engine *e, struct io_error *err);
	void (*done)(struct io_engine *e);	/* waits for in-flight ops */
	void (*queue)(struct io_engine *e, struct io_op *op);
	int (*submit)(struct io_engine *e);
	/* Calls io_op_finish() for each finished op; returns how many. */
	int (*reap)(struct io_engine *e);
	int (*fd)(const struct io_engine *e);
	/* io_engine_wait(), submit included; NULL: submit, then poll() on
	 * fd and the caller's fds. */
	int (*wait)(struct io_engine *e, const int *fds, unsigned int nfds, int timeout_ms,
		    unsigned int *ret_ready);
};

struct io_engine {
	const struct io_provider *ops;
	struct io_backing *backing;
	unsigned int depth;
	unsigned int inflight;
	struct io_op *slots;
	struct io_op *free;
	bool resubmit;			/* a short transfer was requeued */
	io_complete_fn *reap_fn;	/* valid during io_engine_reap() */
	void *reap_opaque;
	unsigned int reaped;
	void *priv;			/* the implementation's state */
};

/* Engines report each finished attempt here: res is the syscall result
 * (bytes or -errno). Retries short transfers, else runs the callback. */
void io_op_finish(struct io_engine *e, struct io_op *op, int res);
/* io_op_finish() with each op's own result for a list linked by ->next
 * (a pool's or engine's done list); returns how many. */
int io_op_finish_list(struct io_engine *e, struct io_op *list);
/* Runs op synchronously with blocking syscalls (pool workers); returns
 * bytes or -errno like the syscalls. */
int io_op_run_sync(const struct io_backing *b, const struct io_op *op);

extern const struct io_provider io_provider_uring;
extern const struct io_provider io_provider_thread;
extern const struct io_provider io_provider_null;
extern const struct io_provider io_provider_nbd;
#ifdef HAVE_RBD
extern const struct io_provider io_provider_rbd;
#endif

/* backing.c: local storage (regular files and block devices), the open,
 * close, refresh and identity every local engine shares. */
int io_local_open(struct io_backing *b, unsigned int flags, struct io_error *err);
void io_local_close(struct io_backing *b);
int io_local_refresh_size(struct io_backing *b);
bool io_local_is_target(const struct io_backing *b, const char *target,
			const struct io_target_id *id);

/* io.c: for providers. */
void io_error_set(struct io_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* io-thread.c: a worker pool that io-uring.c also uses for block-device
 * discards. Finished ops are collected under a lock and signalled by
 * writing to evfd (which the pool does not own). */
struct io_pool;
int io_pool_new(const struct io_backing *b, unsigned int workers, int evfd,
		struct io_pool **ret_pool);
void io_pool_free(struct io_pool *p);	/* waits for queued and running ops */
void io_pool_queue(struct io_pool *p, struct io_op *op);	/* batch, no lock */
void io_pool_submit(struct io_pool *p);	/* hands the batch to the workers */
/* Takes every finished op (op->result set), oldest first. */
struct io_op *io_pool_take_done(struct io_pool *p);

#endif
