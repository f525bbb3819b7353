/* The io_uring engine: one ring per engine (so per ring thread), SQ sized
 * to the engine's depth so an SQE is always there, completions signalled
 * through an eventfd registered with the ring. Block-device discards go to
 * a one-thread pool: io_uring has no opcode for BLKDISCARD/BLKSECDISCARD.
 * Also the run-time probe for io_uring that auto relies on. */
#include "config.h"

#include <errno.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "io.h"

static pthread_once_t uring_probe_once = PTHREAD_ONCE_INIT;
static bool uring_probed_ok;

/* A ring that sets up but lacks an opcode we use is as good as none. */
static void uring_probe_once_fn(void)
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
	pthread_once(&uring_probe_once, uring_probe_once_fn);
	return uring_probed_ok;
}

static int uring_probe(void)
{
	return io_uring_is_available() ? 0 : -ENOSYS;
}

struct uring_engine {
	struct io_uring ring;
	bool ring_ok;
	int evfd;
	int fd;				/* as put in SQEs: fixed index or real fd */
	unsigned int sqe_flags;		/* IOSQE_FIXED_FILE when registered */
	unsigned int queued;		/* SQEs not yet submitted */
	unsigned int submitted;		/* submitted, CQE not yet seen */
	struct io_pool *aux;		/* block-device discards */
	unsigned int aux_queued;
	struct io_op *again;		/* found no SQE; retried at reap */
};

static int uring_init(struct io_engine *e, struct io_error *err)
{
	struct uring_engine *u;
	int fd = e->backing->fd;
	int r;

	(void)err;	/* the errno says it all */
	if (fd < 0)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	e->priv = u;
	u->evfd = -1;

	/* No DEFER_TASKRUN/COOP_TASKRUN: completions must be posted (and the
	 * eventfd signalled) while the ring thread sleeps in poll(). The CQ
	 * is twice the SQ and at most depth ops exist, so it cannot
	 * overflow. */
	r = io_uring_queue_init(e->depth, &u->ring, 0);
	if (r < 0)
		return r;
	u->ring_ok = true;
	u->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->evfd < 0)
		return -errno;
	r = io_uring_register_eventfd(&u->ring, u->evfd);
	if (r < 0)
		return r;
	/* A registered file saves an fget/fput per op; optional. */
	if (io_uring_register_files(&u->ring, &fd, 1) == 0) {
		u->fd = 0;
		u->sqe_flags = IOSQE_FIXED_FILE;
	} else {
		u->fd = fd;
	}
	if (e->backing->is_blockdev && e->backing->can_discard) {
		r = io_pool_new(e->backing, 1, u->evfd, &u->aux);
		if (r < 0)
			return r;
	}
	return 0;
}

static void uring_done(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	struct io_uring_cqe *cqe;

	if (!u)
		return;
	/* Closing the ring does not wait for requests the kernel is still
	 * running; their buffers belong to the caller, who frees them after
	 * us. Unsubmitted SQEs are simply dropped with the ring. */
	while (u->ring_ok && u->submitted > 0) {
		if (io_uring_wait_cqe(&u->ring, &cqe) < 0)
			break;
		io_uring_cqe_seen(&u->ring, cqe);
		u->submitted--;
	}
	io_pool_free(u->aux);
	if (u->ring_ok)
		io_uring_queue_exit(&u->ring);
	if (u->evfd >= 0)
		close(u->evfd);
	free(u);
	e->priv = NULL;
}

static int uring_submit(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	int n = (int)u->aux_queued, r;

	if (u->aux_queued) {
		io_pool_submit(u->aux);
		u->aux_queued = 0;
	}
	if (!u->queued)
		return n;
	r = io_uring_submit(&u->ring);
	if (r < 0)
		return r;
	/* The kernel takes every SQE it was given unless it runs out of
	 * memory; what it did not take stays queued for the next call. */
	u->queued -= (unsigned int)r;
	u->submitted += (unsigned int)r;
	return n + r;
}

/* An op that found no SQE (cannot happen while SQ entries >= depth) is
 * failed with -EAGAIN through the normal completion path, which retries
 * it a bounded number of times: never lost, never reported synchronously. */
static void uring_queue_again(struct io_engine *e, struct io_op *op)
{
	struct uring_engine *u = e->priv;
	uint64_t one = 1;

	op->result = -EAGAIN;
	op->next = u->again;
	u->again = op;
	if (write(u->evfd, &one, sizeof(one)) < 0) {
		/* only at counter overflow, with a wakeup pending anyway */
	}
}

static void uring_queue(struct io_engine *e, struct io_op *op)
{
	struct uring_engine *u = e->priv;
	struct io_uring_sqe *sqe;

	if (op->type == IO_OP_DISCARD && e->backing->is_blockdev) {
		io_pool_queue(u->aux, op);
		u->aux_queued++;
		return;
	}
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		/* Cannot happen while SQ entries >= depth, but never lose an
		 * op: push what is queued and try again. */
		uring_submit(e);
		sqe = io_uring_get_sqe(&u->ring);
	}
	if (!sqe) {
		uring_queue_again(e, op);
		return;
	}

	switch (op->type) {
	case IO_OP_READ:
		if (op->iovcnt == 1)
			io_uring_prep_read(sqe, u->fd, op->iov[0].iov_base,
					   (unsigned int)op->iov[0].iov_len, op->offset);
		else
			io_uring_prep_readv(sqe, u->fd, op->iov, op->iovcnt, op->offset);
		break;
	case IO_OP_WRITE:
		if (op->iovcnt == 1)
			io_uring_prep_write(sqe, u->fd, op->iov[0].iov_base,
					    (unsigned int)op->iov[0].iov_len, op->offset);
		else
			io_uring_prep_writev(sqe, u->fd, op->iov, op->iovcnt, op->offset);
		break;
	case IO_OP_FLUSH:
		io_uring_prep_fsync(sqe, u->fd, IORING_FSYNC_DATASYNC);
		break;
	case IO_OP_DISCARD:
		io_uring_prep_fallocate(sqe, u->fd,
					FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)op->offset, (off_t)op->len);
		break;
	}
	sqe->flags |= (__u8)u->sqe_flags;
	io_uring_sqe_set_data(sqe, op);
	u->queued++;
}

static int uring_reap(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	struct io_uring_cqe *cqe;
	struct io_op *op;
	uint64_t cnt;
	int count = 0, res;

	/* Clear the eventfd first: a CQE posted after this signals again. */
	if (read(u->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		op = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		/* Seen before finishing: the callback may queue new SQEs. */
		io_uring_cqe_seen(&u->ring, cqe);
		u->submitted--;
		io_op_finish(e, op, res);
		count++;
	}
	op = u->again;
	u->again = NULL;
	count += io_op_finish_list(e, op);
	if (u->aux)
		count += io_op_finish_list(e, io_pool_take_done(u->aux));
	return count;
}

static int uring_fd(const struct io_engine *e)
{
	const struct uring_engine *u = e->priv;

	return u->evfd;
}

const struct io_provider io_provider_uring = {
	.name = "uring",
	.probe = uring_probe,
	.open = io_local_open,
	.close = io_local_close,
	.refresh_size = io_local_refresh_size,
	.is_target = io_local_is_target,
	.init = uring_init,
	.done = uring_done,
	.queue = uring_queue,
	.submit = uring_submit,
	.reap = uring_reap,
	.fd = uring_fd,
};
