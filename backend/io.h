/* blkbackd's storage layer (libio.a): opening a backing (file, block
 * device or NBD export) and the I/O engines behind one vtable: io_uring, a
 * thread pool with the same behaviour, NBD through libnbd, and a null
 * engine for protocol-cost benchmarks.
 * Sectioned by the file that defines each symbol. */
#ifndef BLKBACKD_IO_H
#define BLKBACKD_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---- backing.c: the storage behind one vbd ---- */

/* io_backing_open() flags */
#define IO_BACKING_READ_ONLY	(1u << 0)	/* mode=r: O_RDONLY, writes refused */
#define IO_BACKING_DIRECT	(1u << 1)	/* O_DIRECT (page cache bypassed) */
#define IO_BACKING_SECTOR_4K	(1u << 2)	/* files: report 4096-byte logical sectors */

/* Opened by the main thread; ring threads only use fd (immutable) and the
 * capability flags. size is read and refreshed by the main thread only.
 * An NBD export has no fd (-1): each engine opens its own connection to
 * path, the URI. */
struct io_backing {
	int fd;
	char *path;			/* file, device or NBD URI */
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
	bool direct;
	bool is_blockdev;
	bool can_discard;		/* files: PUNCH_HOLE|KEEP_SIZE; bdev: BLKDISCARD */
	bool can_secure_discard;	/* bdev only: BLKSECDISCARD */
	bool is_nbd;
	bool nbd_can_flush;		/* the server has a cache to flush */
	uint32_t nbd_payload_max;	/* bytes per NBD command, page multiple */
	/* How long requests wait for a lost NBD connection to come back
	 * before they fail (set by the opener; 0: fail at once). */
	uint32_t nbd_reconnect_ms;
};

/* Opens path: a regular file, a block device, or an NBD URI (io-nbd.c;
 * connects once to learn the export's size and flags). -EINVAL for other
 * file types, -errno from open/fstat/ioctl or the NBD connection
 * otherwise (-EROFS: a read-only export opened read-write). */
int io_backing_open(const char *path, unsigned int flags, struct io_backing **ret_backing);
/* Closes the fd and frees; accepts NULL. Only after every engine on this
 * backing is freed. */
void io_backing_close(struct io_backing *b);
/* Re-reads the size (online resize). 1 when it changed (b->size updated),
 * 0 when unchanged, -errno on failure (size left as it was). An NBD
 * export's size is fixed per connection, so it never changes here. */
int io_backing_refresh_size(struct io_backing *b);

/* ---- io.c: engine selection and the generic engine ---- */

enum io_engine_kind {
	IO_ENGINE_AUTO = 0,	/* uring when io_uring works at run time, else thread */
	IO_ENGINE_URING,
	IO_ENGINE_THREAD,
	IO_ENGINE_NULL,		/* completes every op at once, touches nothing */
	IO_ENGINE_NBD,		/* NBD backings: chosen for them whatever was asked,
				 * but null */
};

/* Setting this environment variable (to anything) makes the io_uring probe
 * fail, as on a kernel without io_uring: AUTO picks thread, URING fails
 * with -ENOSYS. For tests. */
#define IO_ENV_NO_URING		"BLKBACKD_NO_URING"

#define IO_ENGINE_MAX_DEPTH	4096u

/* "auto", "uring", "thread", "null" -> kind; -EINVAL otherwise ("nbd" is
 * not an engine one asks for: an NBD backing gets it). */
int io_engine_kind_parse(const char *name, enum io_engine_kind *ret_kind);
const char *io_engine_kind_name(enum io_engine_kind kind);
/* Whether an io_uring ring can be set up here (probed once, cached; the
 * environment variable above forces false). */
bool io_uring_is_available(void);

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
 * fallback), e.g. -ENOSYS for uring without io_uring. */
int io_engine_new(enum io_engine_kind kind, struct io_backing *b, unsigned int depth,
		  struct io_engine **ret_engine);
/* Frees; accepts NULL. Waits for ops still in flight (their callbacks are
 * not called), so buffers are safe to free afterwards. */
void io_engine_free(struct io_engine *e);
/* The concrete kind (never AUTO). */
enum io_engine_kind io_engine_kind_of(const struct io_engine *e);
/* Readable (POLLIN) when completions may be waiting: add it to the poll
 * set and call io_engine_reap() when it fires. Never close it. */
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

/* ---- io-nbd.c: NBD exports ---- */

/* The main thread waits this long for an NBD server's handshake. */
#define IO_NBD_CONNECT_TIMEOUT_MS 5000

/* Whether target is an NBD URI (nbd://, nbds://, nbd+unix://, ...). */
bool io_nbd_is_uri(const char *target);
/* libnbd's message for the last failure on this thread ("" if none). */
const char *io_nbd_last_error(void);

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

struct io_engine_ops {
	const char *name;
	int (*init)(struct io_engine *e);
	void (*done)(struct io_engine *e);	/* waits for in-flight ops */
	void (*queue)(struct io_engine *e, struct io_op *op);
	int (*submit)(struct io_engine *e);
	/* Calls io_op_finish() for each finished op; returns how many. */
	int (*reap)(struct io_engine *e);
	int (*fd)(const struct io_engine *e);
};

struct io_engine {
	const struct io_engine_ops *ops;
	enum io_engine_kind kind;
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

extern const struct io_engine_ops io_engine_uring_ops;
extern const struct io_engine_ops io_engine_thread_ops;
extern const struct io_engine_ops io_engine_null_ops;
extern const struct io_engine_ops io_engine_nbd_ops;

/* io-nbd.c: fills b (size, sectors, flush and trim) from the export at
 * b->path; b->read_only says what is asked. */
int io_nbd_probe(struct io_backing *b, unsigned int flags);

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
