/* The generic storage layer: the provider table, opening a backing with
 * the provider that claims it, and the generic engine, which picks a
 * provider per ring, owns the op slots that bound the ops in flight, checks every op
 * before it is queued, and turns raw syscall results into exactly one
 * callback per op, retrying short transfers so partial success is never
 * reported. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

#include "io.h"

/* EINTR/EAGAIN from the storage are retried this many times per op. */
#define IO_MAX_RETRIES 16

/* io-qsd.c: disk image formats through qemu-storage-daemon. */
extern const struct io_provider io_provider_qsd;

/* Every engine. Remote providers (those with claims) are asked first, in
 * this order; local paths go to the local engines. */
static const struct io_provider *const providers[] = {
	&io_provider_nbd,
	&io_provider_qsd,
#ifdef HAVE_RBD
	&io_provider_rbd,
#endif
	&io_provider_uring,
	&io_provider_thread,
	&io_provider_null,
};

#define PROVIDERS_NR (sizeof(providers) / sizeof(providers[0]))

/* What an operator may ask for: local engines by name, and auto. */
static const struct {
	const char *name;
	enum io_engine_kind kind;
	const struct io_provider *provider;	/* NULL: auto */
} kind_names[] = {
	{ "auto", IO_ENGINE_AUTO, NULL },
	{ "uring", IO_ENGINE_URING, &io_provider_uring },
	{ "thread", IO_ENGINE_THREAD, &io_provider_thread },
	{ "null", IO_ENGINE_NULL, &io_provider_null },
};

#define KIND_NAMES_NR (sizeof(kind_names) / sizeof(kind_names[0]))

int io_engine_kind_parse(const char *name, enum io_engine_kind *ret_kind)
{
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < KIND_NAMES_NR; i++) {
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

	for (i = 0; i < KIND_NAMES_NR; i++)
		if (kind_names[i].kind == kind)
			return kind_names[i].name;
	return "unknown";
}

void io_error_set(struct io_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* The remote provider that claims target, or NULL for a local path. */
static const struct io_provider *provider_claiming(const char *target)
{
	size_t i;

	for (i = 0; i < PROVIDERS_NR; i++)
		if (providers[i]->claims && providers[i]->claims(target))
			return providers[i];
	return NULL;
}

bool io_target_is_local(const char *target)
{
	return !provider_claiming(target);
}

int io_backing_open(const char *target, unsigned int flags, struct io_backing **ret_backing,
		    struct io_error *err)
{
	const struct io_provider *p;
	struct io_backing *b;
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!target || !*target ||
	    (flags & ~(IO_BACKING_READ_ONLY | IO_BACKING_DIRECT | IO_BACKING_SECTOR_4K)))
		return -EINVAL;
	p = provider_claiming(target);
	if (!p)
		p = &io_provider_uring;	/* the local engines share one open */
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->provider = p;
	b->fd = -1;
	b->read_only = flags & IO_BACKING_READ_ONLY;
	b->direct = flags & IO_BACKING_DIRECT;
	b->path = strdup(target);
	if (!b->path) {
		r = -ENOMEM;
		goto err;
	}
	r = p->open(b, flags, err);
	if (r < 0)
		goto err;
	*ret_backing = b;
	return 0;

err:
	io_backing_close(b);
	return r;
}

void io_backing_close(struct io_backing *b)
{
	if (!b)
		return;
	b->provider->close(b);
	free(b->path);
	free(b);
}

int io_backing_refresh_size(struct io_backing *b)
{
	return b->provider->refresh_size ? b->provider->refresh_size(b) : 0;
}

void io_providers_sweep(void)
{
	size_t i;

	for (i = 0; i < PROVIDERS_NR; i++)
		if (providers[i]->sweep)
			providers[i]->sweep();
}

void io_target_id_of_stat(const struct stat *st, struct io_target_id *ret)
{
	*ret = (struct io_target_id){ .known = true, .block = S_ISBLK(st->st_mode) };
	if (ret->block) {
		ret->dev = st->st_rdev;
	} else {
		ret->dev = st->st_dev;
		ret->ino = st->st_ino;
	}
}

int io_target_local_path(const char *target, char *buf, size_t len)
{
	const struct io_provider *p = provider_claiming(target);

	if (p)
		return p->local_path ? p->local_path(target, buf, len) : 0;
	if ((size_t)snprintf(buf, len, "%s", target) >= len)
		return -ENAMETOOLONG;
	return 1;
}

unsigned int io_target_max_queues(const char *target, bool read_only)
{
	const struct io_provider *p = provider_claiming(target);

	return p && p->max_queues ? p->max_queues(target, read_only) : 0;
}

void io_target_identify(const char *target, struct io_target_id *ret)
{
	const struct io_provider *p = provider_claiming(target);
	struct stat st;

	*ret = (struct io_target_id){ .known = false };
	if (p) {
		if (p->identify)
			p->identify(target, ret);
	} else if (stat(target, &st) == 0) {
		io_target_id_of_stat(&st, ret);
	}
}

bool io_backing_is_target(const struct io_backing *b, const char *target,
			  const struct io_target_id *id)
{
	return b->provider->is_target(b, target, id);
}

int io_backing_check_foreign(const struct io_backing *b, struct io_error *err)
{
	if (err)
		err->msg[0] = '\0';
	return b->provider->check_foreign ? b->provider->check_foreign(b, err) : 0;
}

const char *io_backing_kind(const struct io_backing *b)
{
	return b->provider->claims ? b->provider->name : "file";
}

/* The contract in io.h: a failed init is undone by done. */
static int engine_start(struct io_engine *e, const struct io_provider *p, struct io_error *err)
{
	int r;

	if (p->probe) {
		r = p->probe();
		if (r < 0)
			return r;
	}
	e->ops = p;
	r = p->init(e, err);
	if (r < 0) {
		p->done(e);
		e->ops = NULL;
		e->priv = NULL;
	}
	return r;
}

int io_engine_new(enum io_engine_kind kind, struct io_backing *b, unsigned int depth,
		  struct io_engine **ret_engine, struct io_error *err)
{
	const struct io_provider *p = NULL;
	struct io_engine *e;
	unsigned int i;
	size_t k;
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!b || depth == 0 || depth > IO_ENGINE_MAX_DEPTH)
		return -EINVAL;
	for (k = 0; k < KIND_NAMES_NR; k++)
		if (kind_names[k].kind == kind)
			break;
	if (k == KIND_NAMES_NR)
		return -EINVAL;
	/* Remote storage is reached one way; null touches no storage. */
	if (kind == IO_ENGINE_NULL)
		p = &io_provider_null;
	else if (b->provider->claims)
		p = b->provider;
	else
		p = kind_names[k].provider;
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

	if (!p) {
		/* The probe can pass and a ring still fail (memlock limits,
		 * io_uring_disabled for our group): fall back then too. */
		r = engine_start(e, &io_provider_uring, err);
		if (r < 0)
			r = engine_start(e, &io_provider_thread, err);
	} else {
		r = engine_start(e, p, err);
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

const char *io_engine_name(const struct io_engine *e)
{
	return e->ops->name;
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

/* Engines without a wait of their own: the batch goes out, then one
 * poll() over the engine's fd and the caller's. */
static int engine_poll_wait(struct io_engine *e, const int *fds, unsigned int nfds,
			    int timeout_ms, unsigned int *ret_ready)
{
	struct pollfd pfd[IO_WAIT_MAX_FDS + 1];
	unsigned int i;
	int r, n = 0;

	r = e->ops->submit(e);
	if (r < 0)
		return r;
	pfd[0].fd = e->ops->fd(e);
	pfd[0].events = POLLIN;
	for (i = 0; i < nfds; i++) {
		pfd[i + 1].fd = fds[i];
		pfd[i + 1].events = POLLIN;
	}
	if (poll(pfd, nfds + 1, timeout_ms) < 0)
		return -errno;
	for (i = 0; i < nfds; i++) {
		if (pfd[i + 1].revents) {
			*ret_ready |= 1u << i;
			n++;
		}
	}
	return n;
}

/* Valgrind runs one thread at a time and (3.19, Debian 12) does not treat
 * io_uring_enter as a call that may block: a ring thread asleep in an
 * engine's own wait holds every other thread of the daemon, the main
 * thread included (seen as a daemon that stops answering under memcheck).
 * There the engine waits the generic way, submit then poll(), which
 * valgrind lets the other threads run through. */
static bool io_under_valgrind(void)
{
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
	return RUNNING_ON_VALGRIND;
#endif
#endif
	return false;
}

int io_engine_wait(struct io_engine *e, const int *fds, unsigned int nfds, int timeout_ms,
		   unsigned int *ret_ready)
{
	*ret_ready = 0;
	if (nfds > IO_WAIT_MAX_FDS)
		return -EINVAL;
	if (e->ops->wait && !io_under_valgrind())
		return e->ops->wait(e, fds, nfds, timeout_ms, ret_ready);
	return engine_poll_wait(e, fds, nfds, timeout_ms, ret_ready);
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
