/* The thread-pool engine, for kernels without io_uring: a few worker
 * threads run blocking preadv/pwritev/fdatasync/fallocate/ioctl calls and
 * signal completions through an eventfd the ring thread polls. The pool is
 * also what the io_uring engine uses for the discard ioctls io_uring has
 * no opcode for. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

/* Enough to keep a disk queue busy; more only adds context switches. */
#define IO_THREAD_MAX_WORKERS 8u

struct io_pool {
	const struct io_backing *b;
	int evfd;			/* not ours: the engine's */

	/* Owner thread only: the batch being built. */
	struct io_op *batch, **batch_tail;

	pthread_mutex_t lock;		/* protects everything below */
	pthread_cond_t cond;		/* todo grew, or stop */
	struct io_op *todo, **todo_tail;
	struct io_op *done, **done_tail;
	bool stop;

	unsigned int nr_threads;
	pthread_t *threads;
};

static void *pool_worker(void *arg)
{
	struct io_pool *p = arg;
	uint64_t one = 1;
	struct io_op *op;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->todo && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		op = p->todo;
		p->todo = op->next;
		if (!p->todo)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->lock);

		op->result = io_op_run_sync(p->b, op);

		pthread_mutex_lock(&p->lock);
		op->next = NULL;
		*p->done_tail = op;
		p->done_tail = &op->next;
		pthread_mutex_unlock(&p->lock);
		/* After the unlock: the reaper reads the eventfd before it
		 * takes the list, so no completion is left unsignalled. An
		 * eventfd write only fails at counter overflow, which a
		 * pending wakeup makes harmless. */
		if (write(p->evfd, &one, sizeof(one)) < 0) {
			/* nothing to do: see above */
		}
	}
	return NULL;
}

int io_pool_new(const struct io_backing *b, unsigned int workers, int evfd,
		struct io_pool **ret_pool)
{
	sigset_t all, old;
	struct io_pool *p;
	int r = 0;

	if (workers == 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->b = b;
	p->evfd = evfd;
	p->batch_tail = &p->batch;
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->threads = calloc(workers, sizeof(*p->threads));
	if (!p->threads) {
		r = -ENOMEM;
		goto err;
	}

	/* Workers never take signals: the main thread reads them from a
	 * signalfd, which only works while every thread blocks them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; p->nr_threads < workers; p->nr_threads++) {
		r = -pthread_create(&p->threads[p->nr_threads], NULL, pool_worker, p);
		if (r < 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto err;

	*ret_pool = p;
	return 0;

err:
	io_pool_free(p);
	return r;
}

/* Ops not started yet are dropped (their callbacks never run anyway);
 * running ones are waited for, so their buffers are free afterwards. */
void io_pool_free(struct io_pool *p)
{
	unsigned int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nr_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}

void io_pool_queue(struct io_pool *p, struct io_op *op)
{
	op->next = NULL;
	*p->batch_tail = op;
	p->batch_tail = &op->next;
}

void io_pool_submit(struct io_pool *p)
{
	if (!p->batch)
		return;
	pthread_mutex_lock(&p->lock);
	*p->todo_tail = p->batch;
	p->todo_tail = p->batch_tail;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	p->batch = NULL;
	p->batch_tail = &p->batch;
}

struct io_op *io_pool_take_done(struct io_pool *p)
{
	struct io_op *list;

	pthread_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	p->done_tail = &p->done;
	pthread_mutex_unlock(&p->lock);
	return list;
}

/* ---- the engine ---- */

struct thread_engine {
	int evfd;
	struct io_pool *pool;
	unsigned int batched;
};

static int thread_init(struct io_engine *e, struct io_error *err)
{
	unsigned int workers = e->depth < IO_THREAD_MAX_WORKERS ?
		e->depth : IO_THREAD_MAX_WORKERS;
	struct thread_engine *t;

	(void)err;	/* the errno says it all */
	if (e->backing->fd < 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	e->priv = t;
	t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->evfd < 0)
		return -errno;
	return io_pool_new(e->backing, workers, t->evfd, &t->pool);
}

static void thread_done(struct io_engine *e)
{
	struct thread_engine *t = e->priv;

	if (!t)
		return;
	/* The pool first: its workers write to the eventfd. */
	io_pool_free(t->pool);
	if (t->evfd >= 0)
		close(t->evfd);
	free(t);
	e->priv = NULL;
}

static void thread_queue(struct io_engine *e, struct io_op *op)
{
	struct thread_engine *t = e->priv;

	io_pool_queue(t->pool, op);
	t->batched++;
}

static int thread_submit(struct io_engine *e)
{
	struct thread_engine *t = e->priv;
	int n = (int)t->batched;

	io_pool_submit(t->pool);
	t->batched = 0;
	return n;
}

static int thread_reap(struct io_engine *e)
{
	struct thread_engine *t = e->priv;
	uint64_t cnt;

	/* Clear the eventfd before taking the list: a completion racing
	 * with us then either is in the list or signals again. */
	if (read(t->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	return io_op_finish_list(e, io_pool_take_done(t->pool));
}

static int thread_fd(const struct io_engine *e)
{
	const struct thread_engine *t = e->priv;

	return t->evfd;
}

const struct io_provider io_provider_thread = {
	.name = "thread",
	.open = io_local_open,
	.close = io_local_close,
	.refresh_size = io_local_refresh_size,
	.is_target = io_local_is_target,
	.init = thread_init,
	.done = thread_done,
	.queue = thread_queue,
	.submit = thread_submit,
	.reap = thread_reap,
	.fd = thread_fd,
};
