/* The io_uring engine: one ring per engine (so per ring thread), SQ sized
 * to the engine's depth so an SQE is always there, completions signalled
 * through an eventfd registered with the ring. Block-device discards go to
 * a one-thread pool: io_uring has no opcode for BLKDISCARD/BLKSECDISCARD.
 * Also the run-time probe for io_uring that auto relies on. */
#include "config.h"

#include <errno.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
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

/* A poll the wait keeps armed in the ring: its address is the CQE's
 * user_data, which no op ever has. */
struct uring_poll {
	int fd;
	bool armed;			/* queued, not fired yet */
};

/* Polls: the caller's fds, then our own eventfd (pool and retry wakeups). */
#define URING_POLL_EVFD	IO_WAIT_MAX_FDS
#define URING_NR_POLLS	(IO_WAIT_MAX_FDS + 1)

struct uring_engine {
	struct io_uring ring;
	bool ring_ok;
	bool enabled;			/* created disabled for SINGLE_ISSUER */
	int evfd;
	int fd;				/* as put in SQEs: fixed index or real fd */
	unsigned int sqe_flags;		/* IOSQE_FIXED_FILE when registered */
	unsigned int queued;		/* SQEs not yet submitted */
	unsigned int submitted;		/* submitted, CQE not yet seen */
	struct io_pool *aux;		/* block-device discards */
	unsigned int aux_queued;
	struct io_op *again;		/* found no SQE; retried at reap */
	/* io_engine_wait() in use: completions are taken by the wait's
	 * io_uring_enter, the eventfd no longer signals each of them */
	bool waited;
	struct uring_poll polls[URING_NR_POLLS];
	unsigned int ready;		/* polls that fired, for the next wait */
	struct io_op *done, **done_tail;	/* completions a wait took */
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

	/* SINGLE_ISSUER: one task submits (the ring thread), which spares
	 * the kernel its locking. The ring starts disabled so that the first
	 * submit, on the thread that uses the engine, claims it: init may run
	 * elsewhere. No DEFER_TASKRUN/COOP_TASKRUN: a user that polls the
	 * eventfd (rather than io_engine_wait) must see completions posted
	 * while it sleeps. The SQ has room for depth ops and the wait's
	 * polls; the CQ is twice that (and never drops: FEAT_NODROP). */
	u->done_tail = &u->done;
	for (unsigned int i = 0; i < URING_NR_POLLS; i++)
		u->polls[i].fd = -1;
	r = io_uring_queue_init(e->depth + URING_NR_POLLS, &u->ring,
				IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED);
	if (r == -EINVAL) {
		u->enabled = true;	/* an older kernel: plain ring */
		r = io_uring_queue_init(e->depth + URING_NR_POLLS, &u->ring, 0);
	}
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

static bool uring_is_poll(const struct uring_engine *u, const void *data)
{
	return data >= (const void *)u->polls && data < (const void *)(u->polls + URING_NR_POLLS);
}

static void uring_done(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	struct io_uring_cqe *cqe;

	if (!u)
		return;
	/* Closing the ring does not wait for requests the kernel is still
	 * running; their buffers belong to the caller, who frees them after
	 * us. Unsubmitted SQEs are simply dropped with the ring, and so are
	 * the wait's polls. */
	while (u->ring_ok && u->submitted > 0) {
		if (io_uring_wait_cqe(&u->ring, &cqe) < 0)
			break;
		if (!uring_is_poll(u, io_uring_cqe_get_data(cqe)))
			u->submitted--;
		io_uring_cqe_seen(&u->ring, cqe);
	}
	io_pool_free(u->aux);
	if (u->ring_ok)
		io_uring_queue_exit(&u->ring);
	if (u->evfd >= 0)
		close(u->evfd);
	free(u);
	e->priv = NULL;
}

/* The thread that submits first is the ring's single issuer. */
static int uring_enable(struct uring_engine *u)
{
	int r;

	if (u->enabled)
		return 0;
	/* liburing 2.3 declares io_uring_enable_rings() but does not export
	 * it: the register call it stands for. */
	r = (int)syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
			 NULL, 0);
	if (r < 0)
		return -errno;
	u->enabled = true;
	return 0;
}

static int uring_submit(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	int n = (int)u->aux_queued, r;

	r = uring_enable(u);
	if (r < 0)
		return r;
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

/* A poll's CQE: note what fired (an error too: the caller looks and
 * finds out); the next wait arms it again. */
static void uring_poll_fired(struct uring_engine *u, struct io_uring_cqe *cqe)
{
	struct uring_poll *p = io_uring_cqe_get_data(cqe);

	u->ready |= 1u << (unsigned int)(p - u->polls);
	p->armed = false;
}

/* Every CQE there is: ops onto the done list (in order), polls noted. */
static void uring_take_cqes(struct uring_engine *u)
{
	struct io_uring_cqe *cqe;
	struct io_op *op;

	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		op = io_uring_cqe_get_data(cqe);
		if (uring_is_poll(u, op)) {
			uring_poll_fired(u, cqe);
		} else {
			op->result = cqe->res;
			op->next = NULL;
			*u->done_tail = op;
			u->done_tail = &op->next;
			u->submitted--;
		}
		io_uring_cqe_seen(&u->ring, cqe);
	}
}

static void uring_arm(struct io_engine *e, unsigned int i, int fd)
{
	struct uring_engine *u = e->priv;
	struct io_uring_sqe *sqe;

	if (u->polls[i].armed && u->polls[i].fd == fd)
		return;
	/* The SQ holds depth ops and every poll: there is always room. */
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return;		/* armed by a later wait */
	/* One-shot, armed again by the wait after it fired, like poll():
	 * a multishot poll posts a CQE, run as task work on our thread,
	 * for every wakeup of the fd, so a guest storming its event
	 * channel cost us a completion per notify even while we slept
	 * off the storm (36% of the guest's CPU instead of under 10%). */
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data(sqe, &u->polls[i]);
	u->polls[i].fd = fd;
	u->polls[i].armed = true;
}

/* Submit and sleep in one io_uring_enter; the caller's fds, and our
 * eventfd, polled through the ring itself (the re-arm of a poll that
 * fired rides in the same enter). */
static int uring_wait(struct io_engine *e, const int *fds, unsigned int nfds, int timeout_ms,
		      unsigned int *ret_ready)
{
	struct uring_engine *u = e->priv;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	unsigned int i, left, nready, mask = (1u << nfds) - 1;
	int r;

	r = uring_enable(u);
	if (r < 0)
		return r;
	if (!u->waited) {
		/* From now on a completion costs no eventfd write and read. */
		io_uring_unregister_eventfd(&u->ring);
		u->waited = true;
	}
	if (u->aux_queued) {
		io_pool_submit(u->aux);
		u->aux_queued = 0;
	}
	for (i = 0; i < nfds; i++)
		uring_arm(e, i, fds[i]);
	uring_arm(e, URING_POLL_EVFD, u->evfd);
	/* Something already waits for the caller: submit, do not sleep. */
	r = io_uring_submit_and_wait_timeout(&u->ring, &cqe,
					     (u->ready & (mask | 1u << URING_POLL_EVFD)) || u->done ||
					     u->again ? 0 : 1,
					     timeout_ms >= 0 ? &ts : NULL, NULL);
	/* Whatever the kernel did not take stays queued: the polls came
	 * last, so ops are taken first. */
	left = io_uring_sq_ready(&u->ring);
	if (left < u->queued) {
		u->submitted += u->queued - left;
		u->queued = left;
	}
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
		return r;
	uring_take_cqes(u);
	*ret_ready = u->ready & mask;
	u->ready &= ~mask;
	nready = (unsigned int)__builtin_popcount(*ret_ready);
	if (r == -EINTR && !nready && !u->done)
		return -EINTR;
	return (int)nready;
}

static int uring_reap(struct io_engine *e)
{
	struct uring_engine *u = e->priv;
	struct io_uring_cqe *cqe;
	struct io_op *op;
	uint64_t cnt;
	int count = 0, res;

	if (u->waited) {
		/* Only the pool and the retry path write the eventfd now. */
		if ((u->ready & 1u << URING_POLL_EVFD) &&
		    read(u->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			return -errno;
		u->ready &= ~(1u << URING_POLL_EVFD);
		uring_take_cqes(u);
		op = u->done;
		u->done = NULL;
		u->done_tail = &u->done;
		count += io_op_finish_list(e, op);
	} else {
		/* Clear the eventfd first: a CQE posted after this signals
		 * again. */
		if (read(u->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			return -errno;
	}
	while (!u->waited && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
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
	.wait = uring_wait,
};
