/* Deferred control replies: a command whose answer takes long (probing a
 * remote target: an NBD handshake, an RBD open; a path on a hung mount)
 * runs its slow part on a thread of its own and answers when it is done,
 * while the main thread goes on serving everything else. At most
 * CONTROL_WORKER_THREADS run at once, later jobs wait their turn, and no
 * more than CONTROL_WORKER_JOBS exist at all (a job whose thread never
 * returns is never freed, so the bound keeps such a target from costing
 * a thread per request).
 *
 * Lifetime: the thread owns a job until it marks it done, the main thread
 * from then on. The reply goes to the client by its id: a client that
 * left meanwhile is not found, and the reply is dropped. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "control-int.h"

#define CONTROL_WORKER_THREADS	4
#define CONTROL_WORKER_JOBS	64

struct control_job {
	struct control_job *next;	/* main thread only */
	struct control_worker *w;
	uint64_t client_id;
	const struct control_work *work;
	void *arg;
	bool started;
	atomic_bool done;
};

struct control_worker {
	int event_fd;			/* a job finished */
	struct control_job *jobs;	/* main thread only */
	unsigned int nr_jobs;
	unsigned int running;
};

struct control_worker *control_worker_new(void)
{
	struct control_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->event_fd < 0) {
		free(w);
		return NULL;
	}
	return w;
}

int control_worker_fd(const struct control_worker *w)
{
	return w->event_fd;
}

static void *control_job_thread(void *opaque)
{
	struct control_job *job = opaque;
	uint64_t one = 1;

	job->work->run(job->arg);
	atomic_store(&job->done, true);
	if (write(job->w->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the main loop wakes anyway */
	}
	return NULL;
}

static void control_worker_start_waiting(struct control_worker *w)
{
	struct control_job *job;
	pthread_attr_t attr;
	pthread_t thread;

	for (job = w->jobs; job && w->running < CONTROL_WORKER_THREADS; job = job->next) {
		if (job->started)
			continue;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&thread, &attr, control_job_thread, job) == 0) {
			job->started = true;
			w->running++;
		}
		/* else: tried again when a job finishes */
		pthread_attr_destroy(&attr);
	}
}

struct json_object *control_defer(struct blkbackd *d, const struct control_call *call,
				  const struct control_work *work, void *arg)
{
	struct control_worker *w = call && call->c ? control_worker(call->c) : NULL;
	struct control_job *job, **pp;
	struct json_object *rep;

	if (!w) {
		/* No socket (a test harness): the work runs here. */
		work->run(arg);
		rep = work->finish(d, arg);
		work->release(arg);
		return rep;
	}
	if (w->nr_jobs >= CONTROL_WORKER_JOBS) {
		work->release(arg);
		return reply_error("busy: %u requests are being worked on", w->nr_jobs);
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		work->release(arg);
		return reply_error("out of memory");
	}
	job->w = w;
	job->client_id = call->client_id;
	job->work = work;
	job->arg = arg;
	atomic_init(&job->done, false);
	/* Appended: waiting jobs start in the order they came. */
	for (pp = &w->jobs; *pp; pp = &(*pp)->next)
		;
	*pp = job;
	w->nr_jobs++;
	control_worker_start_waiting(w);
	if (!job->started && !w->running) {
		/* No thread to wait for, none could be made: say so now. */
		*pp = NULL;
		w->nr_jobs--;
		work->release(arg);
		free(job);
		return reply_error("cannot start a worker thread");
	}
	return NULL;
}

/* Jobs that wait with no thread running would wait for ever: answered. */
static void control_worker_refuse_stuck(struct blkbackd *d, struct control_worker *w)
{
	struct control_job *job;

	while (!w->running && (job = w->jobs)) {
		w->jobs = job->next;
		w->nr_jobs--;
		control_answer(d, job->client_id, reply_error("cannot start a worker thread"));
		job->work->release(job->arg);
		free(job);
	}
}

void control_worker_collect(struct blkbackd *d, struct control_worker *w)
{
	struct control_job *job, **pp;
	uint64_t val;

	if (read(w->event_fd, &val, sizeof(val)) < 0) {
		/* EAGAIN: woken for a job already collected */
	}
	for (pp = &w->jobs; (job = *pp);) {
		if (!job->started || !atomic_load(&job->done)) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		w->nr_jobs--;
		w->running--;
		control_answer(d, job->client_id, job->work->finish(d, job->arg));
		job->work->release(job->arg);
		free(job);
	}
	control_worker_start_waiting(w);
	control_worker_refuse_stuck(d, w);
}

void control_worker_free(struct control_worker *w)
{
	struct control_job *job, **pp;
	bool busy = false;

	if (!w)
		return;
	for (pp = &w->jobs; (job = *pp);) {
		if (job->started && !atomic_load(&job->done)) {
			busy = true;
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		job->work->release(job->arg);
		free(job);
	}
	/* A thread still running owns its job and writes to the eventfd
	 * when it returns: both stay until the process exits (or execs, for
	 * an upgrade), which ends that thread. */
	if (busy)
		return;
	close(w->event_fd);
	free(w);
}
