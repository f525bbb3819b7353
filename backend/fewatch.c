/* Watches on the frontends' state nodes, on a xenstore connection of their
 * own drained by a thread of their own. A guest owns its frontend dir and
 * may write children under its state node as fast as xenstore lets it;
 * every such write fires our watch. libxenstore queues each event without
 * bound until someone reads it, so the thread reads them as they come
 * (whatever the main thread is doing), drops those for any path but the
 * watched node itself, and folds the rest into a small set of vbds with
 * an event pending: one eventfd wake and one state machine run per vbd,
 * however many events came.
 *
 * A flood can still outrun the thread, and xenstore may then drop the
 * connection (the simulator does past 256 KiB of unread output). Only
 * this connection carries guest-driven events, so the main one is never
 * at risk: the main thread connects again and registers every watch once
 * more, which fires each of them, and every vbd re-reads both ends. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blkbackd.h"

/* Distinct vbds remembered between two main loop runs; beyond that the
 * main thread is told to look at every watched vbd (as cheap as a scan). */
#define FEWATCH_PENDING_MAX	64

/* The token of a frontend watch carries its vbd and the watched path, so
 * the thread needs no shared table: "fe <domid> <devid> <path>". */
#define FEWATCH_TOKEN_PREFIX	"fe "
/* Registering a watch fires it once: that is how the thread is stopped. */
#define FEWATCH_TOKEN_STOP	"stop"
/* Reconnections are logged at most this often. */
#define FEWATCH_LOG_INTERVAL_S	10

struct fewatch_key {
	uint32_t domid;
	uint32_t devid;
};

struct fewatch {
	struct xs_handle *xs;
	int event_fd;			/* thread -> main loop */
	pthread_t thread;
	bool running;
	char *stop_path;
	unsigned int reconnects;	/* not yet logged */
	time_t logged;			/* last reconnect logged */

	/* The lock protects what follows: the thread adds, the main thread
	 * takes it all. Held for a few instructions on either side. */
	pthread_mutex_t lock;
	struct fewatch_key pending[FEWATCH_PENDING_MAX];
	unsigned int nr_pending;
	bool overflow;			/* more than FEWATCH_PENDING_MAX */
	bool lost;			/* the connection failed */
};

static void fewatch_signal(struct fewatch *fw)
{
	uint64_t one = 1;

	if (write(fw->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the main loop wakes anyway */
	}
}

/* Parses a token; false for anything that is not a frontend watch's. */
static bool fewatch_parse_token(const char *token, struct fewatch_key *ret_key,
				const char **ret_path)
{
	unsigned long long domid, devid;
	char *end;

	if (strncmp(token, FEWATCH_TOKEN_PREFIX, strlen(FEWATCH_TOKEN_PREFIX)) != 0)
		return false;
	token += strlen(FEWATCH_TOKEN_PREFIX);
	errno = 0;
	domid = strtoull(token, &end, 10);
	if (errno || end == token || *end != ' ' || domid > UINT32_MAX)
		return false;
	token = end + 1;
	devid = strtoull(token, &end, 10);
	if (errno || end == token || *end != ' ' || devid > UINT32_MAX)
		return false;
	ret_key->domid = (uint32_t)domid;
	ret_key->devid = (uint32_t)devid;
	*ret_path = end + 1;
	return true;
}

static void fewatch_note(struct fewatch *fw, const struct fewatch_key *key)
{
	bool was_empty;
	unsigned int i;

	pthread_mutex_lock(&fw->lock);
	was_empty = !fw->nr_pending && !fw->overflow;
	for (i = 0; i < fw->nr_pending; i++)
		if (fw->pending[i].domid == key->domid && fw->pending[i].devid == key->devid)
			break;
	if (i == fw->nr_pending) {
		if (fw->nr_pending < FEWATCH_PENDING_MAX)
			fw->pending[fw->nr_pending++] = *key;
		else
			fw->overflow = true;
	}
	pthread_mutex_unlock(&fw->lock);
	/* One wake per batch the main thread takes, not one per event. */
	if (was_empty)
		fewatch_signal(fw);
}

static void *fewatch_thread(void *opaque)
{
	struct fewatch *fw = opaque;

	for (;;) {
		struct fewatch_key key;
		const char *watched;
		unsigned int num;
		char **ev;

		ev = xs_read_watch(fw->xs, &num);
		if (!ev) {
			pthread_mutex_lock(&fw->lock);
			fw->lost = true;
			pthread_mutex_unlock(&fw->lock);
			fewatch_signal(fw);
			return NULL;
		}
		if (strcmp(ev[XS_WATCH_TOKEN], FEWATCH_TOKEN_STOP) == 0) {
			free(ev);
			return NULL;
		}
		/* A child of the state node (or anything else) is no input of
		 * ours: dropped here, never queued. */
		if (fewatch_parse_token(ev[XS_WATCH_TOKEN], &key, &watched) &&
		    strcmp(watched, ev[XS_WATCH_PATH]) == 0)
			fewatch_note(fw, &key);
		free(ev);
	}
}

/* Connects and starts the thread; the watches are the caller's. */
static int fewatch_connect(struct fewatch *fw)
{
	int r;

	fw->xs = xs_open(0);
	if (!fw->xs)
		return errno ? -errno : -EIO;
	r = -pthread_create(&fw->thread, NULL, fewatch_thread, fw);
	if (r < 0) {
		xs_close(fw->xs);
		fw->xs = NULL;
		return r;
	}
	fw->running = true;
	return 0;
}

static void fewatch_disconnect(struct fewatch *fw)
{
	if (fw->running) {
		/* The watch fires at once; the thread returns when it reads
		 * that event (or already has, if the connection failed).
		 * Cancelling is for a connection too broken to register it:
		 * xs_read_watch is a cancellation point and unlocks. */
		if (!fw->lost && !xs_watch(fw->xs, fw->stop_path, FEWATCH_TOKEN_STOP))
			pthread_cancel(fw->thread);
		pthread_join(fw->thread, NULL);
		fw->running = false;
	}
	if (fw->xs)
		xs_close(fw->xs);
	fw->xs = NULL;
	fw->lost = false;
}

int fewatch_start(struct blkbackd *d)
{
	struct fewatch *fw;
	int r;

	fw = calloc(1, sizeof(*fw));
	if (!fw)
		return -ENOMEM;
	fw->event_fd = -1;
	pthread_mutex_init(&fw->lock, NULL);
	d->fewatch = fw;
	fw->stop_path = strdup(d->vbd_root);
	if (!fw->stop_path) {
		r = -ENOMEM;
		goto fail;
	}
	fw->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fw->event_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = fewatch_connect(fw);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot connect to xenstore for frontend watches");
		goto fail;
	}
	return 0;
fail:
	fewatch_stop(d);
	return r;
}

void fewatch_stop(struct blkbackd *d)
{
	struct fewatch *fw = d->fewatch;

	if (!fw)
		return;
	fewatch_disconnect(fw);
	if (fw->event_fd >= 0)
		close(fw->event_fd);
	pthread_mutex_destroy(&fw->lock);
	free(fw->stop_path);
	free(fw);
	d->fewatch = NULL;
}

int fewatch_fd(struct blkbackd *d)
{
	return d->fewatch->event_fd;
}

static char *fewatch_token(const struct vbd *v, const char *path)
{
	char *token;

	if (asprintf(&token, FEWATCH_TOKEN_PREFIX "%" PRIu32 " %" PRIu32 " %s", v->fe_domid,
		     v->devid, path) < 0)
		return NULL;
	return token;
}

int fewatch_add(struct vbd *v, const char *path)
{
	char *token;
	int r = 0;

	if (!v->d->fewatch || !v->d->fewatch->xs)
		return -ENOTCONN;
	token = fewatch_token(v, path);
	if (!token)
		return -ENOMEM;
	if (!xs_watch(v->d->fewatch->xs, path, token))
		r = errno ? -errno : -EIO;
	free(token);
	return r;
}

void fewatch_remove(struct vbd *v, const char *path)
{
	char *token;

	if (!v->d->fewatch || !v->d->fewatch->xs)
		return;
	token = fewatch_token(v, path);
	/* Fails only when the watch is already gone; nothing to do then.
	 * Events still queued for it mark the vbd for one more look, which
	 * re-reads both ends as any look does. */
	if (token)
		xs_unwatch(v->d->fewatch->xs, path, token);
	free(token);
}

/* The thread saw the connection fail: a new one, every watch registered
 * again and every vbd looked at (whatever changed meanwhile). */
static void fewatch_reconnect(struct blkbackd *d)
{
	struct fewatch *fw = d->fewatch;
	time_t now = time(NULL);
	struct vbd *v;
	int r;

	fewatch_disconnect(fw);
	fw->reconnects++;
	if (now - fw->logged >= FEWATCH_LOG_INTERVAL_S) {
		log_warn("frontend watches: xenstore dropped the connection (%u time%s since the "
			 "last report; a guest flooding its state node?): connecting again",
			 fw->reconnects, fw->reconnects == 1 ? "" : "s");
		fw->reconnects = 0;
		fw->logged = now;
	}
	r = fewatch_connect(fw);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot connect to xenstore for frontend watches");
		d->quitting = true;
		d->failed = true;
		return;
	}
	for (v = d->vbds; v; v = v->next) {
		if (!v->fe_watch)
			continue;
		r = fewatch_add(v, v->fe_watch);
		if (r < 0)
			vbd_log(v, LOG_LEVEL_ERR, r, "cannot watch %s again", v->fe_watch);
		xenbus_mark_dirty(v);
	}
}

void fewatch_collect(struct blkbackd *d)
{
	struct fewatch *fw = d->fewatch;
	struct fewatch_key keys[FEWATCH_PENDING_MAX];
	unsigned int n, i;
	bool overflow, lost;
	uint64_t val;
	struct vbd *v;

	if (read(fw->event_fd, &val, sizeof(val)) < 0) {
		/* EAGAIN: taken with an earlier wake */
	}
	pthread_mutex_lock(&fw->lock);
	n = fw->nr_pending;
	memcpy(keys, fw->pending, n * sizeof(keys[0]));
	overflow = fw->overflow;
	lost = fw->lost;
	fw->nr_pending = 0;
	fw->overflow = false;
	pthread_mutex_unlock(&fw->lock);

	if (lost) {
		fewatch_reconnect(d);
		return;
	}
	for (v = d->vbds; v; v = v->next) {
		if (!v->fe_watch)
			continue;
		for (i = 0; i < n && !overflow; i++)
			if (keys[i].domid == v->fe_domid && keys[i].devid == v->devid)
				break;
		if (overflow || i < n) {
			v->fe_state_writes++;
			xenbus_mark_dirty(v);
		}
	}
}
