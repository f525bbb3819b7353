/* The generic I/O engine: picks an implementation (io_uring, thread pool,
 * null), owns the op slots that bound the ops in flight, checks every op
 * before it is queued, and turns raw syscall results into exactly one
 * callback per op, retrying short transfers so partial success is never
 * reported. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <liburing.h>

#include "io.h"

/* EINTR/EAGAIN from the storage are retried this many times per op. */
#define IO_MAX_RETRIES 16

static const struct {
	const char *name;
	enum io_engine_kind kind;
} kind_names[] = {
	{ "auto", IO_ENGINE_AUTO },
	{ "uring", IO_ENGINE_URING },
	{ "thread", IO_ENGINE_THREAD },
	{ "null", IO_ENGINE_NULL },
	{ "nbd", IO_ENGINE_NBD },
};

int io_engine_kind_parse(const char *name, enum io_engine_kind *ret_kind)
{
	size_t i;

	if (!name || strcmp(name, "nbd") == 0)
		return -EINVAL;
	for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
		if (strcmp(name, kind_names[i].name) == 0) {
			*ret_kind = kind_names[i].kind;
			return 0;
		}
	}
	return -EINVAL;
}

const char *io_engine_kind_name(enum io_engine_kind kind)
{
	size_t i;

	for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (kind_names[i].kind == kind)
			return kind_names[i].name;
	return "unknown";
}

static pthread_once_t uring_probe_once = PTHREAD_ONCE_INIT;
static bool uring_probed_ok;

/* A ring that sets up but lacks an opcode we use is as good as none. */
static void uring_probe(void)
{
	static const int needed[] = {
		IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ, IORING_OP_WRITE,
		IORING_OP_FSYNC, IORING_OP_FALLOCATE,
	};
	struct io_uring_probe *probe;
	struct io_uring ring;
	size_t i;

	if (io_uring_queue_init(2, &ring, 0) < 0)
		return;
	probe = io_uring_get_probe_ring(&ring);
	if (probe) {
		uring_probed_ok = true;
		for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
			if (!io_uring_opcode_supported(probe, needed[i]))
				uring_probed_ok = false;
		io_uring_free_probe(probe);
	}
	io_uring_queue_exit(&ring);
}

bool io_uring_is_available(void)
{
	if (getenv(IO_ENV_NO_URING))
		return false;
	pthread_once(&uring_probe_once, uring_probe);
	return uring_probed_ok;
}

static const struct io_engine_ops *engine_ops(enum io_engine_kind kind)
{
	switch (kind) {
	case IO_ENGINE_URING:
		return &io_engine_uring_ops;
	case IO_ENGINE_THREAD:
		return &io_engine_thread_ops;
	case IO_ENGINE_NULL:
		return &io_engine_null_ops;
	case IO_ENGINE_NBD:
		return &io_engine_nbd_ops;
	default:
		return NULL;
	}
}

static int engine_start(struct io_engine *e, enum io_engine_kind kind)
{
	int r;

	if (kind == IO_ENGINE_URING && !io_uring_is_available())
		return -ENOSYS;
	e->kind = kind;
	e->ops = engine_ops(kind);
	if (!e->ops)
		return -EINVAL;
	r = e->ops->init(e);
	if (r < 0) {
		e->ops = NULL;
		e->priv = NULL;
	}
	return r;
}

int io_engine_new(enum io_engine_kind kind, struct io_backing *b, unsigned int depth,
		  struct io_engine **ret_engine)
{
	struct io_engine *e;
	unsigned int i;
	int r;

	if (!b || (b->fd < 0 && !b->is_nbd) || depth == 0 || depth > IO_ENGINE_MAX_DEPTH)
		return -EINVAL;
	/* An export is reached one way; the file engines have no fd to use. */
	if (b->is_nbd && kind != IO_ENGINE_NULL)
		kind = IO_ENGINE_NBD;
	else if (!b->is_nbd && kind == IO_ENGINE_NBD)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->backing = b;
	e->depth = depth;
	e->slots = calloc(depth, sizeof(*e->slots));
	if (!e->slots) {
		r = -ENOMEM;
		goto err;
	}
	for (i = depth; i-- > 0;) {
		e->slots[i].next = e->free;
		e->free = &e->slots[i];
	}

	if (kind == IO_ENGINE_AUTO) {
		/* The probe can pass and a ring still fail (memlock limits,
		 * io_uring_disabled for our group): fall back then too. */
		r = io_uring_is_available() ? engine_start(e, IO_ENGINE_URING) : -ENOSYS;
		if (r < 0)
			r = engine_start(e, IO_ENGINE_THREAD);
	} else {
		r = engine_start(e, kind);
	}
	if (r < 0)
		goto err;

	*ret_engine = e;
	return 0;

err:
	io_engine_free(e);
	return r;
}

void io_engine_free(struct io_engine *e)
{
	unsigned int i;

	if (!e)
		return;
	if (e->ops)
		e->ops->done(e);
	if (e->slots)
		for (i = 0; i < e->depth; i++)
			free(e->slots[i].iov_copy);
	free(e->slots);
	free(e);
}

enum io_engine_kind io_engine_kind_of(const struct io_engine *e)
{
	return e->kind;
}

int io_engine_fd(const struct io_engine *e)
{
	return e->ops->fd(e);
}

unsigned int io_engine_inflight(const struct io_engine *e)
{
	return e->inflight;
}

unsigned int io_engine_depth(const struct io_engine *e)
{
	return e->depth;
}

static struct io_op *op_get(struct io_engine *e)
{
	struct io_op *op = e->free;

	e->free = op->next;
	e->inflight++;
	memset(op, 0, sizeof(*op));
	return op;
}

static void op_put(struct io_engine *e, struct io_op *op)
{
	free(op->iov_copy);
	op->iov_copy = NULL;
	op->next = e->free;
	e->free = op;
	e->inflight--;
}

static int engine_rw(struct io_engine *e, enum io_op_type type, uint64_t offset,
		     const struct iovec *iov, unsigned int iovcnt, void *cookie)
{
	uint64_t len = 0;
	struct io_op *op;
	unsigned int i;

	if (!iov || iovcnt == 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	for (i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
		if (len > INT_MAX)
			return -EINVAL;
	}
	if (len == 0 || offset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	if (type == IO_OP_WRITE && e->backing->read_only)
		return -EROFS;
	if (!e->free)
		return -EBUSY;

	op = op_get(e);
	op->type = type;
	op->cookie = cookie;
	op->offset = offset;
	op->len = len;
	op->iov = iov;
	op->iovcnt = iovcnt;
	e->ops->queue(e, op);
	return 0;
}

int io_engine_readv(struct io_engine *e, uint64_t offset, const struct iovec *iov,
		    unsigned int iovcnt, void *cookie)
{
	return engine_rw(e, IO_OP_READ, offset, iov, iovcnt, cookie);
}

int io_engine_writev(struct io_engine *e, uint64_t offset, const struct iovec *iov,
		     unsigned int iovcnt, void *cookie)
{
	return engine_rw(e, IO_OP_WRITE, offset, iov, iovcnt, cookie);
}

int io_engine_flush(struct io_engine *e, void *cookie)
{
	struct io_op *op;

	if (!e->free)
		return -EBUSY;
	op = op_get(e);
	op->type = IO_OP_FLUSH;
	op->cookie = cookie;
	e->ops->queue(e, op);
	return 0;
}

int io_engine_discard(struct io_engine *e, uint64_t offset, uint64_t len, bool secure,
		      void *cookie)
{
	const struct io_backing *b = e->backing;
	struct io_op *op;

	if (len == 0 || offset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	if (b->read_only)
		return -EROFS;
	if (!b->can_discard || (secure && !b->can_secure_discard))
		return -EOPNOTSUPP;
	if (!e->free)
		return -EBUSY;
	op = op_get(e);
	op->type = IO_OP_DISCARD;
	op->secure = secure;
	op->cookie = cookie;
	op->offset = offset;
	op->len = len;
	e->ops->queue(e, op);
	return 0;
}

int io_engine_submit(struct io_engine *e)
{
	return e->ops->submit(e);
}

int io_engine_reap(struct io_engine *e, io_complete_fn *fn, void *opaque)
{
	int r;

	if (!fn)
		return -EINVAL;
	e->reap_fn = fn;
	e->reap_opaque = opaque;
	e->reaped = 0;
	r = e->ops->reap(e);
	/* Remainders of short transfers were queued while reaping; they
	 * must not wait for the caller's next submit. */
	if (e->resubmit) {
		e->resubmit = false;
		e->ops->submit(e);
	}
	e->reap_fn = NULL;
	return r < 0 ? r : (int)e->reaped;
}

/* Drops the first n bytes of op's remaining iovec, into a private copy
 * (the caller's array is never written). */
static int op_advance(struct io_op *op, uint64_t n)
{
	const struct iovec *src = op->iov;
	unsigned int cnt = op->iovcnt;

	while (cnt && n >= src->iov_len) {
		n -= src->iov_len;
		src++;
		cnt--;
	}
	if (!cnt)
		return -EIO;
	if (!op->iov_copy) {
		op->iov_copy = malloc(cnt * sizeof(*op->iov_copy));
		if (!op->iov_copy)
			return -ENOMEM;
	}
	memmove(op->iov_copy, src, cnt * sizeof(*src));
	op->iov_copy[0].iov_base = (char *)op->iov_copy[0].iov_base + n;
	op->iov_copy[0].iov_len -= n;
	op->iov = op->iov_copy;
	op->iovcnt = cnt;
	return 0;
}

int io_op_finish_list(struct io_engine *e, struct io_op *list)
{
	struct io_op *next;
	int count = 0;

	/* next is read first: the callback may reuse the op's slot. */
	for (; list; list = next) {
		next = list->next;
		io_op_finish(e, list, list->result);
		count++;
	}
	return count;
}

void io_op_finish(struct io_engine *e, struct io_op *op, int res)
{
	void *cookie = op->cookie;
	int result;

	if ((res == -EINTR || res == -EAGAIN) && op->retries < IO_MAX_RETRIES) {
		op->retries++;
		goto requeue;
	}
	if (res < 0) {
		result = res;
		goto complete;
	}
	switch (op->type) {
	case IO_OP_READ:
	case IO_OP_WRITE:
		/* No progress: end of file (the file shrank under us) or a
		 * device refusing more. Never report a partial transfer. */
		if (res == 0 || (uint64_t)res > op->len - op->done) {
			result = -EIO;
			goto complete;
		}
		op->done += (uint64_t)res;
		if (op->done == op->len) {
			result = (int)op->len;
			goto complete;
		}
		result = op_advance(op, (uint64_t)res);
		if (result < 0)
			goto complete;
		op->offset += (uint64_t)res;
		goto requeue;
	default:
		result = 0;
		goto complete;
	}

requeue:
	e->resubmit = true;
	e->ops->queue(e, op);
	return;

complete:
	/* The slot is free before the callback so it can queue a new op. */
	op_put(e, op);
	e->reaped++;
	e->reap_fn(e->reap_opaque, cookie, result);
}

int io_op_run_sync(const struct io_backing *b, const struct io_op *op)
{
	uint64_t range[2];
	ssize_t n;

	switch (op->type) {
	case IO_OP_READ:
		n = preadv(b->fd, op->iov, (int)op->iovcnt, (off_t)op->offset);
		return n < 0 ? -errno : (int)n;
	case IO_OP_WRITE:
		n = pwritev(b->fd, op->iov, (int)op->iovcnt, (off_t)op->offset);
		return n < 0 ? -errno : (int)n;
	case IO_OP_FLUSH:
		return fdatasync(b->fd) < 0 ? -errno : 0;
	case IO_OP_DISCARD:
		if (!b->is_blockdev)
			return fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 (off_t)op->offset, (off_t)op->len) < 0 ? -errno : 0;
		range[0] = op->offset;
		range[1] = op->len;
		return ioctl(b->fd, op->secure ? BLKSECDISCARD : BLKDISCARD, range) < 0 ?
			-errno : 0;
	}
	return -EINVAL;
}

/* ---- the null engine: no storage, every op succeeds at once ---- */

struct null_engine {
	int evfd;
	struct io_op *batch, **batch_tail;
	struct io_op *done, **done_tail;
};

static int null_init(struct io_engine *e)
{
	struct null_engine *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->evfd < 0) {
		int r = -errno;

		free(n);
		return r;
	}
	n->batch_tail = &n->batch;
	n->done_tail = &n->done;
	e->priv = n;
	return 0;
}

static void null_done(struct io_engine *e)
{
	struct null_engine *n = e->priv;

	if (!n)
		return;
	close(n->evfd);
	free(n);
	e->priv = NULL;
}

static void null_queue(struct io_engine *e, struct io_op *op)
{
	struct null_engine *n = e->priv;

	op->result = op->type == IO_OP_READ || op->type == IO_OP_WRITE ?
		(int)(op->len - op->done) : 0;
	op->next = NULL;
	*n->batch_tail = op;
	n->batch_tail = &op->next;
}

static int null_submit(struct io_engine *e)
{
	struct null_engine *n = e->priv;
	uint64_t one = 1;
	struct io_op *op;
	int count = 0;

	if (!n->batch)
		return 0;
	for (op = n->batch; op; op = op->next)
		count++;
	*n->done_tail = n->batch;
	n->done_tail = n->batch_tail;
	n->batch = NULL;
	n->batch_tail = &n->batch;
	if (write(n->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return count;
}

static int null_reap(struct io_engine *e)
{
	struct null_engine *n = e->priv;
	struct io_op *op;
	uint64_t cnt;

	if (read(n->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	op = n->done;
	n->done = NULL;
	n->done_tail = &n->done;
	return io_op_finish_list(e, op);
}

static int null_fd(const struct io_engine *e)
{
	const struct null_engine *n = e->priv;

	return n->evfd;
}

const struct io_engine_ops io_engine_null_ops = {
	.name = "null",
	.init = null_init,
	.done = null_done,
	.queue = null_queue,
	.submit = null_submit,
	.reap = null_reap,
	.fd = null_fd,
};
