/* xenstore for the main thread: typed reads and writes with -errno returns,
 * transactions, and the watch dispatcher that turns a burst of events into
 * one state machine run per touched vbd (so a flood of writes coalesces).
 * Only the main thread uses the xenstore handle. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>

#include "blkbackd.h"
#include "util.h"

#define TOKEN_BACKEND	"be"

/* The daemon's handle on common/xenbus.c's calls. */
int xenbus_read(struct blkbackd *d, xs_transaction_t t, const char *dir,
		const char *key, char **ret_val)
{
	return xenstore_read(d->xs, t, dir, key, ret_val);
}

int xenbus_read_uint(struct blkbackd *d, xs_transaction_t t, const char *dir,
		     const char *key, unsigned long long max, unsigned long long *ret_val)
{
	return xenstore_read_uint(d->xs, t, dir, key, max, ret_val);
}

int xenbus_read_uint_default(struct blkbackd *d, xs_transaction_t t, const char *dir,
			     const char *key, unsigned long long max,
			     unsigned long long dflt, unsigned long long *ret_val)
{
	int r;

	r = xenbus_read_uint(d, t, dir, key, max, ret_val);
	if (r == -ENOENT) {
		*ret_val = dflt;
		r = 0;
	}
	return r;
}

int xenbus_write(struct blkbackd *d, xs_transaction_t t, const char *dir,
		 const char *key, const char *val)
{
	return xenstore_write(d->xs, t, dir, key, val);
}

int xenbus_printf(struct blkbackd *d, xs_transaction_t t, const char *dir,
		  const char *key, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = xenstore_vprintf(d->xs, t, dir, key, fmt, ap);
	va_end(ap);
	return r;
}

int xenbus_rm(struct blkbackd *d, xs_transaction_t t, const char *dir, const char *key)
{
	return xenstore_rm(d->xs, t, dir, key);
}

int xenbus_directory(struct blkbackd *d, const char *dir, char ***ret_names,
		     unsigned int *ret_count)
{
	unsigned int n;
	char **names;

	names = xs_directory(d->xs, XBT_NULL, dir, &n);
	if (!names)
		return errno ? -errno : -EIO;
	*ret_names = names;
	*ret_count = n;
	return 0;
}

int xenbus_tx_start(struct blkbackd *d, xs_transaction_t *ret_t)
{
	xs_transaction_t t;

	t = xs_transaction_start(d->xs);
	if (t == XBT_NULL)
		return errno ? -errno : -EIO;
	*ret_t = t;
	return 0;
}

int xenbus_tx_end(struct blkbackd *d, xs_transaction_t t, bool abort)
{
	if (!xs_transaction_end(d->xs, t, abort))
		return errno ? -errno : -EIO;
	return 0;
}

int xenbus_watch(struct blkbackd *d, const char *path, const char *token)
{
	if (!xs_watch(d->xs, path, token))
		return errno ? -errno : -EIO;
	return 0;
}

void xenbus_unwatch(struct blkbackd *d, const char *path, const char *token)
{
	/* Fails only when the watch is already gone; nothing to do then. */
	xs_unwatch(d->xs, path, token);
}

int xenbus_open(struct blkbackd *d)
{
	unsigned long long domid;
	int r;

	d->xs = xs_open(0);
	if (!d->xs) {
		r = errno ? -errno : -EIO;
		log_errno(LOG_LEVEL_ERR, r, "cannot connect to xenstore");
		goto fail;
	}
	/* Our own domain: the relative key "domid" resolves to
	 * /local/domain/<us>/domid. Dom0's may be missing on older setups. */
	r = xenbus_read_uint(d, XBT_NULL, "domid", NULL, UINT32_MAX - 1, &domid);
	if (r == -ENOENT) {
		domid = 0;
	} else if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot read our domid from xenstore");
		goto fail;
	}
	d->domid = (uint32_t)domid;
	if (asprintf(&d->vbd_root, "/local/domain/%" PRIu32 "/backend/vbd", d->domid) < 0) {
		d->vbd_root = NULL;
		r = -ENOMEM;
		goto fail;
	}
	/* One watch for every backend node of ours: new vbds, toolstack
	 * writes (online, state, hotplug-status) and removals. */
	r = xenbus_watch(d, d->vbd_root, TOKEN_BACKEND);
	if (r < 0) {
		log_errno(LOG_LEVEL_ERR, r, "cannot watch %s", d->vbd_root);
		goto fail;
	}
	log_info("serving %s (script %s)", d->vbd_root, d->script_name);
	return 0;
fail:
	xenbus_close(d);
	return r;
}

void xenbus_close(struct blkbackd *d)
{
	if (d->xs)
		xs_close(d->xs);
	d->xs = NULL;
	free(d->vbd_root);
	d->vbd_root = NULL;
}

int xenbus_fd(struct blkbackd *d)
{
	return xs_fileno(d->xs);
}

/* Parses "<domid>/<devid>" at the head of rel (rel may go on with
 * "/key..."). Returns how many numbers were found (0, 1 or 2). */
int xenbus_parse_vbd_path(const char *rel, uint32_t *ret_domid, uint32_t *ret_devid)
{
	unsigned long long v[2];
	char buf[24];
	int n;

	for (n = 0; n < 2; n++) {
		size_t len = strcspn(rel, "/");

		if (len == 0 || len >= sizeof(buf))
			break;
		memcpy(buf, rel, len);
		buf[len] = '\0';
		if (xenbus_parse_uint(buf, UINT32_MAX, &v[n]) < 0)
			break;
		rel += len;
		if (*rel == '/')
			rel++;
		else if (*rel)
			break;
	}
	if (n >= 1)
		*ret_domid = (uint32_t)v[0];
	if (n == 2)
		*ret_devid = (uint32_t)v[1];
	return n;
}

static void xenbus_mark(struct blkbackd *d, uint32_t domid, uint32_t devid)
{
	struct vbd *v = vbd_find(d, domid, devid);

	if (!v && vbd_new(d, domid, devid, &v) < 0)
		return;
	xenbus_mark_dirty(v);
}

void xenbus_scan(struct blkbackd *d)
{
	unsigned int ndom = 0, ndev, i, j;
	char **doms = NULL, **devs;
	char *path;
	struct vbd *v;

	/* Known vbds re-check themselves (one may have gone away). */
	for (v = d->vbds; v; v = v->next)
		xenbus_mark_dirty(v);
	if (xenbus_directory(d, d->vbd_root, &doms, &ndom) < 0)
		return;
	for (i = 0; i < ndom; i++) {
		unsigned long long domid, devid;

		/* Names that are not numbers are not vbds: skipped. */
		if (xenbus_parse_uint(doms[i], UINT32_MAX, &domid) < 0)
			continue;
		if (asprintf(&path, "%s/%s", d->vbd_root, doms[i]) < 0)
			break;
		if (xenbus_directory(d, path, &devs, &ndev) == 0) {
			for (j = 0; j < ndev; j++)
				if (xenbus_parse_uint(devs[j], UINT32_MAX, &devid) == 0)
					xenbus_mark(d, (uint32_t)domid, (uint32_t)devid);
			free(devs);
		}
		free(path);
	}
	free(doms);
}

static void xenbus_event(struct blkbackd *d, const char *path, const char *token)
{
	size_t rootlen = strlen(d->vbd_root);
	uint32_t domid = 0, devid = 0;
	/* Frontend watches have a connection of their own (fewatch.c). */
	if (strcmp(token, TOKEN_BACKEND) != 0)
		return;
	if (strncmp(path, d->vbd_root, rootlen) != 0 ||
	    (path[rootlen] != '/' && path[rootlen] != '\0'))
		return;
	if (path[rootlen] == '\0' ||
	    xenbus_parse_vbd_path(path + rootlen + 1, &domid, &devid) < 2) {
		/* The root or a whole domain's dir changed: rescan. */
		xenbus_scan(d);
		return;
	}
	xenbus_mark(d, domid, devid);
}

/* The main thread's time one pass may take: a toolstack burst can make
 * a thousand vbds dirty at once, each step a few xenstore round trips,
 * and the control socket, signals and ring wake-ups are served between
 * passes, not after the whole burst. */
#define XENBUS_PASS_BUDGET_MS	20

enum { DIRTY_SERVING, DIRTY_OTHER };

void xenbus_mark_dirty(struct vbd *v)
{
	struct vbd_queue *q;

	if (v->dirty)
		return;
	/* Storage open or rings mapped: it serves a guest, or is about to. */
	q = &v->d->dirty[v->backing || v->nr_rings || v->phase == VBD_CONNECTED ||
			 v->phase == VBD_CLOSING ? DIRTY_SERVING : DIRTY_OTHER];
	v->dirty = true;
	vbd_ref(v);
	v->dirty_next = NULL;
	if (!q->tail)
		q->tail = &q->head;
	*q->tail = v;
	q->tail = &v->dirty_next;
}

static struct vbd *xenbus_pop_dirty(struct blkbackd *d)
{
	struct vbd_queue *q = &d->dirty[DIRTY_SERVING];
	struct vbd *v;

	if (!q->head)
		q = &d->dirty[DIRTY_OTHER];
	v = q->head;
	if (!v)
		return NULL;
	q->head = v->dirty_next;
	if (!q->head)
		q->tail = &q->head;
	v->dirty = false;
	return v;
}

void xenbus_forget_dirty(struct blkbackd *d)
{
	struct vbd *v;

	while ((v = xenbus_pop_dirty(d)))
		vbd_unref(v);
}

void xenbus_run_dirty(struct blkbackd *d)
{
	uint64_t deadline = clock_mono_ms() + XENBUS_PASS_BUDGET_MS;
	struct vbd *v;

	d->more_dirty = false;
	while (d->dirty[DIRTY_SERVING].head || d->dirty[DIRTY_OTHER].head) {
		if (clock_mono_ms() >= deadline) {
			d->more_dirty = true;
			return;
		}
		v = xenbus_pop_dirty(d);
		/* Forgotten while queued: the queue's ref was the last but one. */
		if (!v->forgotten)
			vbd_update(v);
		vbd_unref(v);
	}
}

void xenbus_dispatch(struct blkbackd *d)
{
	char **ev;

	/* Take every queued event first: the state machine re-reads
	 * xenstore, so many events for one vbd cost one run. */
	while ((ev = xs_check_watch(d->xs)) != NULL) {
		xenbus_event(d, ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
		free(ev);
	}
	if (errno != EAGAIN) {
		log_errno(LOG_LEVEL_ERR, -errno, "lost the xenstore connection");
		d->quitting = true;
		d->failed = true;
		return;
	}
	xenbus_run_dirty(d);
}
