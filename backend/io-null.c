/* The null engine, for protocol-cost benchmarks: no storage is touched,
 * every op succeeds at once with its full length (reads leave the buffers
 * as they were), signalled through an eventfd like a real engine. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

struct null_engine {
	int evfd;
	struct io_op *batch, **batch_tail;
	struct io_op *done, **done_tail;
};

static int null_init(struct io_engine *e, struct io_error *err)
{
	struct null_engine *n = calloc(1, sizeof(*n));

	(void)err;	/* the errno says it all */
	if (!n)
		return -ENOMEM;
	e->priv = n;
	n->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->evfd < 0)
		return -errno;
	n->batch_tail = &n->batch;
	n->done_tail = &n->done;
	return 0;
}

static void null_done(struct io_engine *e)
{
	struct null_engine *n = e->priv;

	if (!n)
		return;
	if (n->evfd >= 0)
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

/* It serves a ring over any backing (the backing's own provider opens it):
 * only the engine is replaced. */
const struct io_provider io_provider_null = {
	.name = "null",
	.init = null_init,
	.done = null_done,
	.queue = null_queue,
	.submit = null_submit,
	.reap = null_reap,
	.fd = null_fd,
};
