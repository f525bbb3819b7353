/* Opening and probing storage off the main thread. An open can block for
 * as long as its target likes: a FIFO, a hung NFS or FUSE mount, an NBD
 * server that is slow to shake hands or a host name that takes long to
 * resolve. Each open runs on a thread of its own (at most
 * STORAGE_OPEN_THREADS at once; later ones wait their turn) and reports
 * back through an fd the main loop polls; the vbd waits in InitWait
 * meanwhile, and one whose open takes longer than STORAGE_OPEN_SLOW_S says
 * so in its "error" node. The main thread only ever starts jobs and takes
 * the finished ones: the control socket, the other vbds and signals go on.
 *
 * The size checks of local storage (online resize) run the same way: a
 * fstat or BLKGETSIZE64 on a file of a hung mount blocks as an open does.
 *
 * Lifetime: a job holds a reference on its vbd, dropped on the main
 * thread when the job is taken; the thread owns the job until it marks it
 * done, the main thread from then on. A size probe holds its own
 * duplicate of the backing's fd, so the backing may close meanwhile. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "blkbackd.h"
#include "util.h"

/* Threads blocked in an open that never returns stay blocked: the bound
 * keeps a target that hangs every open from costing a thread per try. */
#define STORAGE_OPEN_THREADS	8
#define STORAGE_OPEN_SLOW_S	5
/* Size probes at once: one per vbd, and a hung mount keeps each thread it
 * took; the others' sizes are checked again at the next tick. */
#define STORAGE_SIZE_THREADS	4

struct storage_open {
	struct storage_open *next;	/* main thread only */
	struct storage_opener *so;
	struct vbd *v;
	char *params;
	unsigned int flags;
	time_t started;			/* monotonic seconds; 0: not yet */
	bool has_thread;		/* counted in running */
	bool reported_slow;

	/* written by the thread before done is set */
	struct io_backing *backing;
	int result;
	struct io_error err;		/* the engine's words on a failure */
	atomic_bool done;
};

/* One size check of a vbd's local storage. */
struct storage_size {
	struct storage_size *next;	/* main thread only */
	struct storage_opener *so;
	struct vbd *v;
	unsigned int gen;		/* v->size_gen at the start */
	int fd;				/* ours, closed by the thread */
	bool blockdev;

	/* written by the thread before done is set */
	uint64_t size;
	int result;
	atomic_bool done;
};

struct storage_opener {
	int ep;				/* the fd the main loop polls */
	int event_fd;			/* a job finished */
	int timer_fd;			/* once a second while jobs run */
	struct storage_open *jobs;	/* running and waiting, main thread only */
	unsigned int running;
	struct storage_size *sizes;	/* running size probes, main thread only */
	unsigned int sizes_running;
};

static void *storage_open_thread(void *opaque)
{
	struct storage_open *job = opaque;
	uint64_t one = 1;

	job->result = io_backing_open(job->params, job->flags, &job->backing, &job->err);
	atomic_store(&job->done, true);
	if (write(job->so->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the main loop wakes anyway */
	}
	return NULL;
}

static void storage_open_free(struct storage_open *job)
{
	if (!job)
		return;
	io_backing_close(job->backing);
	vbd_unref(job->v);
	free(job->params);
	free(job);
}

/* Starts waiting jobs while threads are free. */
static void storage_open_run_waiting(struct storage_opener *so)
{
	struct storage_open *job;
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	for (job = so->jobs; job && so->running < STORAGE_OPEN_THREADS; job = job->next) {
		if (job->started)
			continue;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&thread, &attr, storage_open_thread, job);
		pthread_attr_destroy(&attr);
		if (r) {
			/* Reported as the open's own failure. */
			job->result = -r;
			atomic_store(&job->done, true);
			job->started = clock_mono_sec();
			continue;
		}
		job->started = clock_mono_sec();
		job->has_thread = true;
		so->running++;
	}
}

/* Ticks once a second while there are jobs, to notice slow ones. */
static void storage_open_arm(struct storage_opener *so, bool on)
{
	struct itimerspec its = { .it_interval = { on, 0 }, .it_value = { on, 0 } };

	timerfd_settime(so->timer_fd, 0, &its, NULL);
}

int storage_open_start(struct vbd *v, const char *params, unsigned int flags,
		       struct storage_open **ret_job)
{
	struct storage_opener *so = v->d->opener;
	struct storage_open *job, **pp;
	uint64_t one = 1;

	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->params = strdup(params);
	if (!job->params) {
		free(job);
		return -ENOMEM;
	}
	job->so = so;
	job->flags = flags;
	atomic_init(&job->done, false);
	vbd_ref(v);
	job->v = v;
	/* Appended: waiting jobs start in the order they came. */
	for (pp = &so->jobs; *pp; pp = &(*pp)->next)
		;
	if (!so->jobs)
		storage_open_arm(so, true);
	*pp = job;
	storage_open_run_waiting(so);
	/* A job that failed to start is finished: take it on the next run. */
	if (atomic_load(&job->done) && write(so->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: a wake is pending already */
	}
	*ret_job = job;
	return 0;
}

static void *storage_size_thread(void *opaque)
{
	struct storage_size *job = opaque;
	uint64_t one = 1, size;
	struct stat st;

	if (job->blockdev) {
		job->result = ioctl(job->fd, BLKGETSIZE64, &size) < 0 ? -errno : 0;
	} else {
		job->result = fstat(job->fd, &st) < 0 ? -errno : 0;
		size = (uint64_t)st.st_size;
	}
	job->size = job->result < 0 ? 0 : size;
	close(job->fd);
	atomic_store(&job->done, true);
	if (write(job->so->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the main loop wakes anyway */
	}
	return NULL;
}

int storage_size_start(struct vbd *v)
{
	struct storage_opener *so = v->d->opener;
	struct storage_size *job;
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	if (v->size_probing)
		return -EBUSY;
	if (so->sizes_running >= STORAGE_SIZE_THREADS)
		return -EAGAIN;
	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	/* dup() touches no file system: safe on the main thread. */
	job->fd = fcntl(v->backing->fd, F_DUPFD_CLOEXEC, 0);
	if (job->fd < 0) {
		r = -errno;
		free(job);
		return r;
	}
	job->so = so;
	job->blockdev = v->backing->is_blockdev;
	job->gen = v->size_gen;
	atomic_init(&job->done, false);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&thread, &attr, storage_size_thread, job);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		close(job->fd);
		free(job);
		return r;
	}
	vbd_ref(v);
	job->v = v;
	job->next = so->sizes;
	so->sizes = job;
	so->sizes_running++;
	v->size_probing = true;
	return 0;
}

static void storage_size_collect(struct storage_opener *so)
{
	struct storage_size *job, **pp;

	for (pp = &so->sizes; (job = *pp);) {
		if (!atomic_load(&job->done)) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		so->sizes_running--;
		job->v->size_probing = false;
		if (!job->v->forgotten)
			vbd_size_probed(job->v, job->gen, job->result, job->size);
		vbd_unref(job->v);
		free(job);
	}
}

/* Tells vbds whose open takes long why they still wait. */
static void storage_open_check_slow(struct storage_opener *so)
{
	time_t now = clock_mono_sec();
	struct storage_open *job;

	for (job = so->jobs; job; job = job->next) {
		if (job->reported_slow || atomic_load(&job->done) || job->v->opening != job)
			continue;
		if (!job->started) {
			if (so->running >= STORAGE_OPEN_THREADS) {
				vbd_open_slow(job->v, job->params, 0, STORAGE_OPEN_THREADS);
				job->reported_slow = true;
			}
			continue;
		}
		if (now - job->started >= STORAGE_OPEN_SLOW_S) {
			vbd_open_slow(job->v, job->params, (unsigned int)(now - job->started), 0);
			job->reported_slow = true;
		}
	}
}

void storage_open_collect(struct blkbackd *d)
{
	struct storage_opener *so = d->opener;
	struct storage_open *job, **pp;
	struct epoll_event evs[2];
	uint64_t val;
	int n, i;

	n = epoll_wait(so->ep, evs, 2, 0);
	for (i = 0; i < n; i++) {
		if (read(evs[i].data.fd, &val, sizeof(val)) < 0) {
			/* EAGAIN: taken with an earlier wake */
		}
	}
	for (pp = &so->jobs; (job = *pp);) {
		if (!atomic_load(&job->done)) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		if (job->has_thread)
			so->running--;
		/* A vbd that moved on (removed, say) has no use for it. */
		if (job->v->opening == job) {
			job->v->opening = NULL;
			if (!job->v->forgotten)
				vbd_open_done(job->v, job->params, job->result, job->err.msg,
					      &job->backing);
		}
		storage_open_free(job);
	}
	storage_size_collect(so);
	storage_open_run_waiting(so);
	storage_open_check_slow(so);
	if (!so->jobs)
		storage_open_arm(so, false);
}

int storage_open_fd(struct blkbackd *d)
{
	return d->opener->ep;
}

int storage_open_init(struct blkbackd *d)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct storage_opener *so;
	int r;

	so = calloc(1, sizeof(*so));
	if (!so)
		return -ENOMEM;
	so->event_fd = so->timer_fd = -1;
	so->ep = epoll_create1(EPOLL_CLOEXEC);
	if (so->ep < 0)
		goto fail_errno;
	so->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (so->event_fd < 0)
		goto fail_errno;
	so->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (so->timer_fd < 0)
		goto fail_errno;
	ev.data.fd = so->event_fd;
	if (epoll_ctl(so->ep, EPOLL_CTL_ADD, so->event_fd, &ev) < 0)
		goto fail_errno;
	ev.data.fd = so->timer_fd;
	if (epoll_ctl(so->ep, EPOLL_CTL_ADD, so->timer_fd, &ev) < 0)
		goto fail_errno;
	d->opener = so;
	return 0;
fail_errno:
	r = -errno;
	d->opener = so;
	storage_open_done(d);
	return r;
}

void storage_open_done(struct blkbackd *d)
{
	struct storage_opener *so = d->opener;
	struct storage_open *job, *next;
	struct storage_size *sz, *snext;
	bool busy = false;

	if (!so)
		return;
	d->opener = NULL;
	for (job = so->jobs; job; job = next) {
		next = job->next;
		if (job->has_thread && !atomic_load(&job->done)) {
			busy = true;
			continue;
		}
		storage_open_free(job);
	}
	for (sz = so->sizes; sz; sz = snext) {
		snext = sz->next;
		if (!atomic_load(&sz->done)) {
			busy = true;
			continue;
		}
		vbd_unref(sz->v);
		free(sz);
	}
	/* A thread still blocked in an open owns its job and writes to the
	 * eventfd when (if ever) it returns: both stay until the process
	 * exits, which ends that thread. */
	if (busy)
		return;
	if (so->timer_fd >= 0)
		close(so->timer_fd);
	if (so->event_fd >= 0)
		close(so->event_fd);
	if (so->ep >= 0)
		close(so->ep);
	free(so);
}
