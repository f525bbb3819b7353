/* One vbd: claim rule, the level-triggered xenbus state machine and the
 * lifecycle steps configure -> start -> stop -> release -> unconfigure.
 * Every watch event re-reads both ends and acts on the pair; a failed step
 * leaves the previous phase (and backend state) intact and says why in the
 * backend's "error" node. Main thread only.
 *
 * Each step gathers its input (vbd_gather), has vbd_decide (vbd-decide.c,
 * pure and unit-tested) pick one action and carries it out (vbd_act).
 *
 * State table, as Linux xen-blkback answers each frontend state. Inputs
 * read on every run: backend dir present, online (absent = 1), backend
 * state node, hotplug-status, frontend state (absent or garbage =
 * Unknown). "toolstack close" means online = 0, blkback-ctl detach, or
 * the toolstack wrote backend state 5 (Closing) while we are NEW, InitWait
 * or Connected. "frontend gone" means its state reads Unknown after we
 * had seen it (its dir or its domain vanished).
 *
 *  phase       | condition                              | action -> phase
 *  ------------+----------------------------------------+-----------------------------
 *  any         | backend dir removed                    | stop rings; when drained
 *              |                                        | release, unconfigure, forget
 *  FOREIGN     | script basename now matches            | -> NEW
 *  NEW         | backend 4 or 5 and frontend 4: an      | takeover: probe features, no
 *              | earlier blkbackd served it             | state write -> INITWAIT
 *  NEW         | backend 5, frontend not 4, online,     | -> CLOSING (an earlier blkbackd
 *              | no detach                              | answered Closing: its wait
 *              |                                        | for the frontend goes on)
 *  NEW         | backend 4 or 5, frontend not 4         | write 6 -> CLOSED (orphaned)
 *  NEW         | toolstack close                        | write 6 -> CLOSED
 *  NEW         | otherwise                              | configure: probe features,
 *              |                                        | write 2 -> INITWAIT
 *              |                                        | (error: stay NEW)
 *  INITWAIT    | any close, taking over                 | start (recovering the rings
 *              |                                        | from their journals) ->
 *              |                                        | CONNECTED, whose close drains
 *              |                                        | them; if start fails: below
 *  INITWAIT    | toolstack close (whatever the frontend | write 6 -> CLOSED at once:
 *              | says: it never connected), frontend 6  | nothing was mapped, nobody
 *              | or gone                                | waits for an answer
 *  INITWAIT    | frontend 5                             | write 5 -> CLOSING
 *  INITWAIT    | hotplug-status "connected", storage    | open storage (error: stay,
 *              | not open                               | "error" node says why)
 *  INITWAIT    | frontend 3/4, hotplug-status           | start: map rings, bind, thread,
 *              | "connected", storage open              | connect keys + 4 in one tx
 *              |                                        | -> CONNECTED (error, or a
 *              |                                        | 4K vbd to a frontend with
 *              |                                        | feature-large-sector-size:
 *              |                                        | stay, "error" says why)
 *  INITWAIT    | rings started, an engine still         | wait (its thread wakes us);
 *              | starting on its ring thread            | one failed: stop -> CLOSING;
 *              |                                        | any close: stop -> CLOSING
 *  CONNECTED   | frontend 5/6/gone, back to 1/2,        | stop rings, write 5 -> CLOSING
 *              | toolstack close, or a ring halted      |
 *  CLOSING     | rings not drained                      | wait (ring threads wake us)
 *  CLOSING     | drained, rings still mapped            | release: unbind, unmap
 *  CLOSING     | released, and frontend 6, gone, or     | write 6 -> CLOSED
 *              | back to 1/2; or toolstack close        |
 *  CLOSING     | released, frontend 3/4/5               | stay 5 (OVMF and kdump wait
 *              |                                        | for exactly 5, then write 6)
 *  CLOSED      | online, no detach, frontend 1/2/3      | configure -> INITWAIT (the
 *              |                                        | storage stays open)
 *  CLOSED      | backend state node is not 6            | rewrite 6
 *
 * Before, CLOSING wrote 6 as soon as its rings had drained, whatever the
 * frontend said, and INITWAIT answered a frontend's 5 with 6: a frontend
 * that waits for exactly Closing (OVMF's XenPvBlkDxe at ExitBootServices,
 * Linux's xenbus_reset_frontend in a kdump kernel) could read 6 and fail
 * its shutdown, or lose its 5 s timeout per disk.
 *
 * A frontend that claims Connected while we are Closed stays Closed until
 * it starts over from Initialising.
 *
 * The storage is opened only once the hotplug script has accepted the
 * target (as Linux blkback waits for the script's physical-device): libxl
 * runs the script only after InitWait, so a vbd whose target is missing
 * must still reach InitWait for xl to get the script's clear hotplug-error
 * instead of a 10 s timeout. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#include "blkbackd.h"
#include "util.h"
#include "vbd-memory.h"

/* VDISK_* info bits from blkif.h */
#ifndef VDISK_CDROM
#define VDISK_CDROM	0x1
#define VDISK_REMOVABLE	0x2
#define VDISK_READONLY	0x4
#endif

#define VBD_TX_RETRIES	16
#define VBD_MAX_STEPS	8

/* One key of a transactional update: written as sval when set, else as
 * val; removed instead when rm is set. */
struct vbd_kv {
	const char *key;
	char val[32];
	const char *sval;	/* used instead of val when set */
	bool rm;
};

void vbd_log(const struct vbd *v, enum log_level level, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vprefixed(level, errnum, v->prefix, fmt, ap);
	va_end(ap);
}

struct vbd *vbd_find(struct blkbackd *d, uint32_t fe_domid, uint32_t devid)
{
	struct vbd *v;

	for (v = d->vbds; v; v = v->next)
		if (v->fe_domid == fe_domid && v->devid == devid)
			return v;
	return NULL;
}

/* Writes kvs (and state when != 0) in one transaction, only while the
 * backend dir exists: a write into a removed dir would re-create it. */
static int vbd_publish(struct vbd *v, const struct vbd_kv *kvs, size_t n, unsigned int state)
{
	struct blkbackd *d = v->d;
	xs_transaction_t t;
	char *dir;
	size_t i;
	int r = 0, tries;

	if (v->be_dir_removed)
		return -ENOENT;
	for (tries = 0; tries < VBD_TX_RETRIES; tries++) {
		r = xenbus_tx_start(d, &t);
		if (r < 0)
			return r;
		r = xenbus_read(d, t, v->be_path, NULL, &dir);
		if (r < 0)
			goto abort;
		free(dir);
		for (i = 0; i < n && r >= 0; i++) {
			if (kvs[i].rm)
				r = xenbus_rm(d, t, v->be_path, kvs[i].key);
			else
				r = xenbus_write(d, t, v->be_path, kvs[i].key,
						 kvs[i].sval ? kvs[i].sval : kvs[i].val);
		}
		if (r >= 0 && state)
			r = xenbus_printf(d, t, v->be_path, XK_STATE, "%u", state);
		if (r < 0)
			goto abort;
		r = xenbus_tx_end(d, t, false);
		if (r != -EAGAIN)
			return r;
	}
	return r;
abort:
	xenbus_tx_end(d, t, true);
	if (r == -ENOENT)
		v->be_dir_removed = true;
	return r;
}

static int vbd_set_state(struct vbd *v, unsigned int state)
{
	int r;

	r = vbd_publish(v, NULL, 0, state);
	if (r < 0 && r != -ENOENT)
		vbd_log(v, LOG_LEVEL_ERR, r, "cannot write state %s", xenbus_state_name(state));
	else if (r == 0)
		vbd_log(v, LOG_LEVEL_INFO, 0, "backend %s", xenbus_state_name(state));
	return r;
}

/* A guest alternating two kinds of garbage would make every failure a new
 * text: past VBD_FAIL_LOG_BURST lines in VBD_FAIL_LOG_WINDOW_S seconds a
 * vbd's failures go to its error node only, and the log says how many
 * it did not show when the window ends. */
#define VBD_FAIL_LOG_BURST	5
#define VBD_FAIL_LOG_WINDOW_S	60

static bool vbd_fail_may_log(struct vbd *v)
{
	time_t now = clock_mono_sec();

	if (now - v->fail_window >= VBD_FAIL_LOG_WINDOW_S) {
		if (v->fail_suppressed)
			vbd_log(v, LOG_LEVEL_WARN, 0, "%u more failures not logged (see the %s node)",
				v->fail_suppressed, XK_ERROR);
		v->fail_window = now;
		v->fail_logged = 0;
		v->fail_suppressed = 0;
	}
	if (v->fail_logged < VBD_FAIL_LOG_BURST) {
		v->fail_logged++;
		return true;
	}
	v->fail_suppressed++;
	return false;
}

/* A failed step: say why in "error" and in the log (once per text). */
static void vbd_fail(struct vbd *v, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void vbd_fail(struct vbd *v, int errnum, const char *fmt, ...)
{
	struct vbd_kv kv = { .key = XK_ERROR };
	char *msg, *full;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	if (errnum)
		r = asprintf(&full, "%s: %s", msg, strerror(abs(errnum)));
	else
		r = asprintf(&full, "%s", msg);
	free(msg);
	if (r < 0)
		return;
	if (!v->last_error || strcmp(v->last_error, full) != 0) {
		if (vbd_fail_may_log(v))
			vbd_log(v, LOG_LEVEL_ERR, 0, "%s", full);
		kv.sval = full;
		vbd_publish(v, &kv, 1, 0);
		free(v->last_error);
		v->last_error = full;
	} else {
		free(full);
	}
}

static void vbd_clear_error(struct vbd *v)
{
	struct vbd_kv kv = { .key = XK_ERROR, .rm = true };

	if (!v->last_error)
		return;
	vbd_publish(v, &kv, 1, 0);
	free(v->last_error);
	v->last_error = NULL;
}

static bool vbd_script_matches(struct vbd *v)
{
	const char *base;
	char *script;
	bool ok;

	if (xenbus_read(v->d, XBT_NULL, v->be_path, XK_SCRIPT, &script) < 0)
		return false;
	base = strrchr(script, '/');
	base = base ? base + 1 : script;
	ok = strcmp(base, v->d->script_name) == 0;
	free(script);
	return ok;
}

int vbd_new(struct blkbackd *d, uint32_t fe_domid, uint32_t devid, struct vbd **ret)
{
	struct vbd *v;
	char *dir;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->d = d;
	v->fe_domid = fe_domid;
	v->devid = devid;
	atomic_init(&v->refs, 1);
	atomic_init(&v->nr_sectors, 0);
	snprintf(v->prefix, sizeof(v->prefix), "d%" PRIu32 "/%" PRIu32, fe_domid, devid);
	if (asprintf(&v->be_path, "%s/%" PRIu32 "/%" PRIu32, d->vbd_root, fe_domid, devid) < 0) {
		v->be_path = NULL;
		r = -ENOMEM;
		goto fail;
	}
	/* A vbd removed before we looked is not worth tracking. */
	r = xenbus_read(d, XBT_NULL, v->be_path, NULL, &dir);
	if (r < 0)
		goto fail;
	free(dir);
	if (vbd_script_matches(v)) {
		v->phase = VBD_NEW;
		vbd_log(v, LOG_LEVEL_INFO, 0, "claimed");
	} else {
		v->phase = VBD_FOREIGN;
		vbd_log(v, LOG_LEVEL_DEBUG, 0, "not ours (script)");
	}
	v->next = d->vbds;
	d->vbds = v;
	*ret = v;
	return 0;
fail:
	free(v->be_path);
	free(v);
	return r;
}

void vbd_ref(struct vbd *v)
{
	atomic_fetch_add(&v->refs, 1);
}

static void vbd_free(struct vbd *v)
{
	/* A ring still points into the vbd: leaking it is the only safe
	 * thing left to do. */
	if (v->nr_rings) {
		vbd_log(v, LOG_LEVEL_ERR, 0, "not freed: %u ring%s not released", v->nr_rings,
			v->nr_rings == 1 ? "" : "s");
		return;
	}
	free(v->be_path);
	free(v->fe_path);
	free(v->fe_watch);
	free(v->last_error);
	free(v->dom_name);
	free(v->vdev_name);
	free(v->rings);
	free(v);
}

void vbd_unref(struct vbd *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		vbd_free(v);
}

static void vbd_read_input(struct vbd *v, struct vbd_input *in)
{
	struct blkbackd *d = v->d;
	unsigned long long val;
	char *s;

	memset(in, 0, sizeof(*in));
	if (xenbus_read(d, XBT_NULL, v->be_path, NULL, &s) == 0) {
		in->exists = true;
		free(s);
	}
	/* A sloppy toolstack value reads as "online". */
	if (xenbus_read_uint_default(d, XBT_NULL, v->be_path, XK_ONLINE, 1, 1, &in->online) < 0)
		in->online = 1;
	if (xenbus_read_uint(d, XBT_NULL, v->be_path, XK_STATE, XenbusStateReconfigured, &val) == 0)
		in->be_state = (unsigned int)val;
	if (xenbus_read(d, XBT_NULL, v->be_path, XK_HOTPLUG_STATUS, &s) == 0) {
		in->hotplug_ok = strcmp(s, HOTPLUG_CONNECTED) == 0;
		free(s);
	}
	in->fe_state = XenbusStateUnknown;
	if (v->fe_path &&
	    xenbus_read_uint(d, XBT_NULL, v->fe_path, XK_STATE, XenbusStateReconfigured, &val) == 0)
		in->fe_state = (unsigned int)val;
	if (in->fe_state != XenbusStateUnknown)
		v->fe_seen = true;
}

/* The frontend dir named by the backend must belong to the frontend
 * domain; anything else is a toolstack bug we refuse to follow. */
static int vbd_read_frontend_path(struct vbd *v)
{
	struct blkbackd *d = v->d;
	char prefix[48], *fe;
	size_t plen;
	int r;

	r = xenbus_read(d, XBT_NULL, v->be_path, XK_FRONTEND, &fe);
	if (r < 0) {
		vbd_fail(v, r, "cannot read %s", XK_FRONTEND);
		return r;
	}
	plen = (size_t)snprintf(prefix, sizeof(prefix), "/local/domain/%" PRIu32 "/", v->fe_domid);
	if (strncmp(fe, prefix, plen) != 0 || !fe[plen] || strlen(fe) > 1024) {
		vbd_fail(v, 0, "frontend path \"%.64s\" is not in domain %" PRIu32, fe, v->fe_domid);
		free(fe);
		return -EINVAL;
	}
	if (v->fe_path && strcmp(v->fe_path, fe) == 0) {
		free(fe);
		return 0;
	}
	if (v->fe_watch) {
		fewatch_remove(v, v->fe_watch);
		free(v->fe_watch);
		v->fe_watch = NULL;
	}
	free(v->fe_path);
	v->fe_path = fe;
	if (asprintf(&v->fe_watch, "%s/%s", fe, XK_STATE) < 0) {
		v->fe_watch = NULL;
		return -ENOMEM;
	}
	/* Only the frontend's state node: a guest rewriting its other keys
	 * in a loop costs us nothing, nor one writing below the node (those
	 * events are dropped as they come). Removing the dir fires it too. */
	r = fewatch_add(v, v->fe_watch);
	if (r < 0) {
		vbd_fail(v, r, "cannot watch %s", v->fe_watch);
		free(v->fe_watch);
		v->fe_watch = NULL;
	}
	return r;
}

/* Reads what the toolstack wrote about the storage and has it opened off
 * the main thread: -EINPROGRESS while that runs (vbd_open_done follows),
 * another -errno when the keys are bad. */
static int vbd_open_backing(struct vbd *v)
{
	struct blkbackd *d = v->d;
	unsigned long long discard, direct;
	unsigned int flags;
	char *params = NULL, *mode = NULL, *devtype = NULL;
	int r;

	if (v->opening)
		return -EINPROGRESS;
	r = xenbus_read(d, XBT_NULL, v->be_path, XK_PARAMS, &params);
	if (r < 0 || !*params) {
		vbd_fail(v, r < 0 ? r : 0, "no storage named in %s", XK_PARAMS);
		r = r < 0 ? r : -EINVAL;
		goto out;
	}
	r = xenbus_read(d, XBT_NULL, v->be_path, XK_MODE, &mode);
	if (r < 0) {
		vbd_fail(v, r, "cannot read %s", XK_MODE);
		goto out;
	}
	if (xenbus_read(d, XBT_NULL, v->be_path, XK_DEVICE_TYPE, &devtype) < 0)
		devtype = NULL;
	r = xenbus_read_uint_default(d, XBT_NULL, v->be_path, XK_DISCARD_ENABLE, 1, 1, &discard);
	if (r < 0) {
		vbd_fail(v, r, "bad %s", XK_DISCARD_ENABLE);
		goto out;
	}
	r = xenbus_read_uint_default(d, XBT_NULL, v->be_path, XK_DIRECT_IO_SAFE, 1, 0, &direct);
	if (r < 0) {
		vbd_fail(v, r, "bad %s", XK_DIRECT_IO_SAFE);
		goto out;
	}
	memset(&v->props, 0, sizeof(v->props));
	v->props.cdrom = devtype && strcmp(devtype, "cdrom") == 0;
	/* Like Linux: writable only when mode contains 'w'; a cdrom never is. */
	v->props.readonly = !strchr(mode, 'w') || v->props.cdrom;
	v->props.direct_io = direct || d->direct_io;
	v->discard_enable = discard;

	flags = 0;
	if (v->props.readonly)
		flags |= IO_BACKING_READ_ONLY;
	if (v->props.direct_io)
		flags |= IO_BACKING_DIRECT;
	if (d->sector_4k)
		flags |= IO_BACKING_SECTOR_4K;
	r = storage_open_start(v, params, flags, &v->opening);
	if (r < 0) {
		vbd_fail(v, r, "cannot open %s", params);
		goto out;
	}
	r = -EINPROGRESS;
out:
	free(params);
	free(mode);
	free(devtype);
	return r;
}

/* What the storage is, independent of the name it was reached by: the
 * device number of a block device, the inode of a file, the URI of remote
 * storage. */
static void vbd_target_identity(const struct io_backing *b, char *buf, size_t len)
{
	/* Taken at the open, on the opening thread: no stat here. */
	if (b->fd >= 0 && b->id.known) {
		if (b->id.block)
			snprintf(buf, len, "block %u:%u", major(b->id.dev), minor(b->id.dev));
		else
			snprintf(buf, len, "file %u:%u %llu", major(b->id.dev), minor(b->id.dev),
				 (unsigned long long)b->id.ino);
	} else {
		snprintf(buf, len, "uri %s", b->path);
	}
}

/* The first open of a vbd records what it opened, in the backend dir that
 * only dom0 writes; every later open (a restarted or upgraded daemon
 * taking the vbd over, a reconnect) must find the same storage. A path
 * swapped meanwhile (a symlink, a file renamed over the image) would
 * otherwise hand the guest whatever it names now, unchecked by the
 * hotplug script. 0 when it is the same or first; -EXDEV otherwise. */
static int vbd_check_identity(struct vbd *v, const struct io_backing *b, const char *params)
{
	struct vbd_kv kv = { .key = XK_SERVED_TARGET };
	char id[300], *recorded;
	int r;

	vbd_target_identity(b, id, sizeof(id));
	r = xenbus_read(v->d, XBT_NULL, v->be_path, XK_SERVED_TARGET, &recorded);
	if (r == -ENOENT) {
		kv.sval = id;
		return vbd_publish(v, &kv, 1, 0) == -ENOENT ? -ENOENT : 0;
	}
	if (r < 0) {
		vbd_fail(v, r, "cannot read %s: %s refused", XK_SERVED_TARGET, params);
		return r;
	}
	r = strcmp(recorded, id) == 0 ? 0 : -EXDEV;
	if (r < 0)
		vbd_fail(v, 0, "%s is not the storage served before (%s then, %s now): refused",
			 params, recorded, id);
	free(recorded);
	return r;
}

void vbd_open_done(struct vbd *v, const char *params, int result, const char *why,
		   struct io_backing **backing)
{
	struct io_backing *b;

	if (result < 0) {
		/* No new look: the next event for this vbd tries again. */
		if (*why)
			vbd_fail(v, result, "cannot open %s: %s", params, why);
		else
			vbd_fail(v, result, "cannot open %s", params);
		return;
	}
	b = *backing;
	if (vbd_check_identity(v, b, params) < 0) {
		/* Left to the caller to close. A takeover serves the guest
		 * nothing else: the backend closes, so that its requests fail
		 * rather than wait, and a new connection opens and checks
		 * again. */
		if (v->takeover && v->phase == VBD_INITWAIT) {
			v->takeover = false;
			if (vbd_set_state(v, XenbusStateClosed) == 0)
				v->phase = VBD_CLOSED;
		}
		return;
	}
	*backing = NULL;
	v->backing = b;
	b->reconnect_ms = v->d->nbd_reconnect_s * 1000u;
	v->props.direct_io = b->direct;		/* remote storage has no page cache of ours */
	v->props.sector_size = b->logical_sector_size;
	v->props.phys_sector_size = b->physical_sector_size;
	v->props.discard = v->discard_enable && b->can_discard && !v->props.readonly;
	v->props.discard_secure = v->props.discard && b->can_secure_discard;
	v->props.discard_granularity = b->discard_granularity;
	v->props.discard_alignment = b->discard_alignment;
	v->props.sectors = b->size >> 9;
	atomic_store(&v->nr_sectors, v->props.sectors);
	vbd_log(v, LOG_LEVEL_INFO, 0, "storage %s: %" PRIu64 " sectors, %s%s%s", params,
		v->props.sectors, v->props.readonly ? "read-only" : "read-write",
		v->props.cdrom ? ", cdrom" : "", v->props.direct_io ? ", O_DIRECT" : "");
	vbd_clear_error(v);
	/* Look again: the frontend may be ready. */
	xenbus_mark_dirty(v);
}

void vbd_open_slow(struct vbd *v, const char *params, unsigned int seconds,
		   unsigned int others)
{
	if (others)
		vbd_fail(v, 0, "opening %s waits: %u other opens have not returned", params,
			 others);
	else
		vbd_fail(v, 0, "opening %s has not returned after %u s", params, seconds);
}

/* Taking over: the frontend negotiated against what the earlier process
 * published, so the rings validate against that, whatever our options
 * say now, and nothing is written (a takeover costs reads only). */
static int vbd_read_probe_keys(struct vbd *v)
{
	unsigned long long segs, queues;
	int r;

	r = xenbus_read_uint_default(v->d, XBT_NULL, v->be_path, XK_MAX_INDIRECT_SEGS,
				     BLKIF_MAX_INDIRECT_SEGMENTS, 0, &segs);
	if (r == 0)
		r = xenbus_read_uint_default(v->d, XBT_NULL, v->be_path, XK_MQ_MAX_QUEUES,
					     BLKBACKD_MAX_QUEUES, 1, &queues);
	if (r < 0 || queues == 0)
		return r < 0 ? r : -EINVAL;
	v->max_indirect_segs = (unsigned int)segs;
	v->max_queues = (unsigned int)queues;
	return 0;
}

/* What the storage named in params would have of multi-queue: a target
 * whose rings would contend for it is offered fewer. Read from the
 * toolstack's keys (the storage opens later); 0: no limit. */
static unsigned int vbd_storage_max_queues(struct vbd *v)
{
	char *params = NULL, *mode = NULL;
	unsigned int n = 0;

	/* Writable only when mode contains 'w', as the open decides. */
	if (xenbus_read(v->d, XBT_NULL, v->be_path, XK_PARAMS, &params) == 0)
		n = io_target_max_queues(params, xenbus_read(v->d, XBT_NULL, v->be_path, XK_MODE,
							     &mode) == 0 && !strchr(mode, 'w'));
	free(params);
	free(mode);
	return n;
}

/* configure: probe features published, InitWait. With
 * takeover (the backend state says Connected or Closing and the frontend
 * Connected: an earlier blkbackd served this vbd and exited) the state is
 * left as it is, so the frontend sees no flap while the start step maps
 * its ring again. */
static int vbd_configure(struct vbd *v, bool takeover)
{
	struct vbd_kv kvs[4] = { { .key = XK_MAX_RING_PAGE_ORDER },
				 { .key = XK_MAX_INDIRECT_SEGS },
				 { .key = XK_MQ_MAX_QUEUES },
				 { .key = XK_MAX_RING_PAGES } };
	unsigned int storage_queues;
	int r;

	r = vbd_read_frontend_path(v);
	if (r < 0)
		return r;
	if (takeover) {
		unsigned long long fe_state = XenbusStateUnknown;

		xenbus_read_uint(v->d, XBT_NULL, v->fe_path, XK_STATE, XenbusStateReconfigured,
				 &fe_state);
		takeover = fe_state == XenbusStateConnected;
		if (takeover && vbd_read_probe_keys(v) == 0) {
			v->takeover = true;
			vbd_log(v, LOG_LEVEL_INFO, 0, "taking over a connected vbd");
			return 0;
		}
	}
	snprintf(kvs[0].val, sizeof(kvs[0].val), "%u", BLKBACKD_MAX_RING_ORDER);
	/* Rings validate against what the frontend was told; 0 removes a
	 * value an earlier configuration published. */
	v->max_indirect_segs = v->d->max_indirect_segs;
	snprintf(kvs[1].val, sizeof(kvs[1].val), "%u", v->max_indirect_segs);
	kvs[1].rm = !v->max_indirect_segs;
	/* Published even as 1, as Linux does: the frontend then uses the
	 * top-level ring keys. */
	v->max_queues = v->d->max_queues ? v->d->max_queues : 1;
	if (v->max_queues > BLKBACKD_MAX_QUEUES)	/* vbd_start's array */
		v->max_queues = BLKBACKD_MAX_QUEUES;
	storage_queues = vbd_storage_max_queues(v);
	if (storage_queues && storage_queues < v->max_queues)
		v->max_queues = storage_queues;
	snprintf(kvs[2].val, sizeof(kvs[2].val), "%u", v->max_queues);
	/* blkif.h asks for both spellings of the ring limit; FreeBSD and
	 * OpenBSD frontends read max-ring-pages. */
	snprintf(kvs[3].val, sizeof(kvs[3].val), "%u", 1u << BLKBACKD_MAX_RING_ORDER);
	r = vbd_publish(v, kvs, 4, takeover ? 0 : XenbusStateInitWait);
	if (r < 0) {
		if (r != -ENOENT)
			vbd_fail(v, r, "cannot publish features");
		return r;
	}
	v->takeover = takeover;
	v->served = false;
	vbd_log(v, LOG_LEVEL_INFO, 0, takeover ? "taking over a connected vbd" : "backend InitWait");
	vbd_clear_error(v);
	return 0;
}

static void vbd_unconfigure(struct vbd *v)
{
	if (v->fe_watch) {
		fewatch_remove(v, v->fe_watch);
		free(v->fe_watch);
		v->fe_watch = NULL;
	}
	/* The rings' engine queues use the backing until they are released. */
	if (v->nr_rings) {
		vbd_log(v, LOG_LEVEL_ERR, 0, "storage kept open: %u ring%s not released",
			v->nr_rings, v->nr_rings == 1 ? "" : "s");
		return;
	}
	io_backing_close(v->backing);
	v->backing = NULL;
	/* An open still running is dropped when it returns, and so is the
	 * size a probe of this backing reads. */
	v->opening = NULL;
	v->size_gen++;
}

/* Reads the frontend's keys for one ring: protocol and ring-page-order are
 * top-level for every queue (as in Linux), ring-ref* and event-channel come
 * from qdir (the frontend dir itself, or its queue-N subdir). */
/* A ring's wake hook (any thread): the main loop looks at every vbd's
 * rings once wake_fd reads. */
static void vbd_ring_wake(void *opaque)
{
	struct blkbackd *d = opaque;
	uint64_t one = 1;

	if (write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* Saturated counter: the main loop is already due to look. */
	}
}

static int vbd_read_ring_config(struct vbd *v, const char *qdir, struct ring_config *cfg)
{
	struct blkbackd *d = v->d;
	unsigned long long order, val;
	char key[24], *proto = NULL;
	unsigned int i, n;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->plat = d->plat;
	cfg->fe_domid = v->fe_domid;
	cfg->devid = v->devid;
	cfg->log_prefix = v->prefix;
	cfg->engine = d->engine;
	cfg->backing = v->backing;
	cfg->disk.sector_size = v->props.sector_size;
	cfg->disk.read_only = v->props.readonly;
	cfg->disk.feature_flush = true;
	cfg->disk.feature_barrier = true;
	cfg->disk.feature_discard = v->props.discard;
	cfg->disk.feature_discard_secure = v->props.discard_secure;
	cfg->nr_sectors = &v->nr_sectors;
	cfg->max_indirect_segments = v->max_indirect_segs;
	cfg->journal_dir = d->journal_dir;
	cfg->max_pgrants = v->persistent ? d->max_pgrants : 0;
	cfg->recover = v->takeover;
	cfg->recover_fail = v->recover_fail;
	cfg->wake = vbd_ring_wake;
	cfg->wake_opaque = d;

	r = xenbus_read(d, XBT_NULL, v->fe_path, XK_PROTOCOL, &proto);
	if (r < 0 && r != -ENOENT) {
		vbd_fail(v, r, "cannot read frontend %s", XK_PROTOCOL);
		return r;
	}
	r = blkif_abi_parse(r < 0 ? NULL : proto, &cfg->abi);
	if (r < 0) {
		vbd_fail(v, 0, "unknown frontend protocol \"%.64s\"", proto ? proto : "");
		free(proto);
		return r;
	}
	free(proto);

	r = xenbus_read_uint(d, XBT_NULL, v->fe_path, XK_RING_PAGE_ORDER, UINT32_MAX, &order);
	if (r == -ENOENT) {
		order = 0;
	} else if (r < 0 || order > BLKBACKD_MAX_RING_ORDER) {
		vbd_fail(v, r < 0 ? r : 0, "bad frontend %s (max %u)", XK_RING_PAGE_ORDER,
			 BLKBACKD_MAX_RING_ORDER);
		return r < 0 ? r : -EINVAL;
	}
	cfg->order = (unsigned int)order;
	n = 1u << cfg->order;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), XK_RING_REF_FMT, i);
		r = xenbus_read_uint(d, XBT_NULL, qdir, key, UINT32_MAX, &val);
		/* Order 0 may be spelled either way. */
		if (r == -ENOENT && n == 1) {
			snprintf(key, sizeof(key), "%s", XK_RING_REF);
			r = xenbus_read_uint(d, XBT_NULL, qdir, key, UINT32_MAX, &val);
		}
		if (r < 0) {
			vbd_fail(v, r, "bad frontend %s/%s", qdir, key);
			return r;
		}
		cfg->refs[i] = (uint32_t)val;
	}
	r = xenbus_read_uint(d, XBT_NULL, qdir, XK_EVENT_CHANNEL, UINT32_MAX, &val);
	if (r < 0) {
		vbd_fail(v, r, "bad frontend %s/%s", qdir, XK_EVENT_CHANNEL);
		return r;
	}
	cfg->remote_port = (uint32_t)val;
	return 0;
}

static void vbd_kv_uint(struct vbd_kv *kv, const char *key, unsigned long long val)
{
	memset(kv, 0, sizeof(*kv));
	kv->key = key;
	snprintf(kv->val, sizeof(kv->val), "%llu", val);
}

/* The backend's recovery-policy node (absent: the daemon's --recovery):
 * what a restarted blkbackd does with requests in flight when we died. */
static int vbd_read_recovery_policy(struct vbd *v)
{
	char *val;
	int r;

	v->recover_fail = v->d->recover_fail;
	r = xenbus_read(v->d, XBT_NULL, v->be_path, XK_RECOVERY_POLICY, &val);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		vbd_fail(v, r, "cannot read %s", XK_RECOVERY_POLICY);
		return r;
	}
	if (strcmp(val, RECOVERY_REISSUE) == 0) {
		v->recover_fail = false;
	} else if (strcmp(val, RECOVERY_FAIL) == 0) {
		v->recover_fail = true;
	} else {
		vbd_fail(v, 0, "%s is \"%.32s\", not %s or %s", XK_RECOVERY_POLICY, val,
			 RECOVERY_REISSUE, RECOVERY_FAIL);
		free(val);
		return -EINVAL;
	}
	free(val);
	return 0;
}

/* What the rings found of an earlier process's work, for the log and for
 * blkback-ctl show. */
static void vbd_note_recovery(struct vbd *v)
{
	unsigned int i, replayed = 0, republished = 0;
	bool any = false;

	for (i = 0; i < v->nr_rings; i++) {
		struct ring_info ri;

		ring_get_info(v->rings[i], &ri);
		if (!ri.recovered)
			continue;
		any = true;
		replayed += ri.replayed;
		republished += ri.republished;
	}
	if (!any)
		return;
	v->recoveries++;
	v->last_recovery = time(NULL);
	v->reissued += replayed;
	v->republished += republished;
	vbd_log(v, LOG_LEVEL_INFO, 0, "recovered after a restart: %u request%s %s, "
		"%u response%s published again", replayed, replayed == 1 ? "" : "s",
		v->recover_fail ? "failed" : "issued again", republished,
		republished == 1 ? "" : "s");
}

/* blkif.h wants sectors * 512 to be a multiple of physical-sector-size:
 * a file whose size is not a multiple of its st_blksize publishes the
 * largest power of two that divides it, never less than sector-size. */
static uint32_t vbd_phys_sector_size(const struct vbd *v, uint64_t sectors)
{
	uint64_t bytes = sectors << 9;
	uint32_t pbs = v->props.phys_sector_size;

	if (pbs & (pbs - 1))
		pbs = 1u << (31 - __builtin_clz(pbs));
	if (pbs < v->props.sector_size)
		pbs = v->props.sector_size;
	while (pbs > v->props.sector_size && bytes % pbs)
		pbs >>= 1;
	return pbs;
}

/* Why the storage asks for more than 512-byte sectors, for the log. */
static const char *vbd_sector_size_reason(const struct vbd *v)
{
	const struct io_backing *b = v->backing;

	if (v->d->sector_4k)
		return "--sector-size 4096";
	if (b->fd < 0)
		return "the remote export's minimum block size";
	if (b->is_blockdev)
		return "the block device's logical block size";
	if (b->direct)
		return "the O_DIRECT alignment of the file's file system";
	return "the storage's block size";
}

/* The 4K rule. sectors and every ring field count 512-byte units (the
 * Linux reading, which blkbackd serves). A frontend that writes
 * feature-large-sector-size=1 (the Windows PV drivers) reads them in
 * sector-size units instead: with 4096 it would see a disk eight times too
 * large and address the wrong bytes. Refused before Connected, with the
 * reason in "error"; with 512-byte sectors both readings agree. Garbage
 * in the key is refused too: we cannot tell which reading it means. */
static int vbd_check_sector_units(struct vbd *v)
{
	unsigned long long large;

	if (v->props.sector_size == 512)
		return 0;
	if (xenbus_read_uint_default(v->d, XBT_NULL, v->fe_path, XK_LARGE_SECTOR_SIZE, 1, 0,
				     &large) < 0)
		large = 1;
	if (!large)
		return 0;
	vbd_fail(v, 0, "frontend reads sectors in sector-size units (%s) and this vbd has "
		 "%u-byte sectors: it would see a disk %u times too large, so it is not "
		 "connected; give this guest a vbd with 512-byte sectors",
		 XK_LARGE_SECTOR_SIZE, v->props.sector_size, v->props.sector_size / 512);
	return -EOPNOTSUPP;
}

/* The frontend's queue count, within what configure offered. */
static int vbd_read_queue_count(struct vbd *v, unsigned int *ret_nq)
{
	unsigned long long nq;
	int r;

	r = xenbus_read_uint(v->d, XBT_NULL, v->fe_path, XK_MQ_NUM_QUEUES, UINT32_MAX, &nq);
	if (r == -ENOENT) {
		nq = 1;
	} else if (r < 0) {
		vbd_fail(v, r, "bad frontend %s (1..%u)", XK_MQ_NUM_QUEUES, v->max_queues);
		return r;
	} else if (nq == 0 || nq > v->max_queues) {
		/* Like Linux: the guest asked for what we never offered. */
		vbd_fail(v, 0, "frontend %s is %llu, not 1..%u", XK_MQ_NUM_QUEUES, nq,
			 v->max_queues);
		return -EINVAL;
	}
	*ret_nq = (unsigned int)nq;
	return 0;
}

/* Every queue's keys are read before any ring maps: garbage in a later
 * queue costs no ring start and stop. */
static int vbd_read_ring_configs(struct vbd *v, unsigned int nq, struct ring_config *cfgs)
{
	unsigned int q;
	char *qdir;
	int r;

	for (q = 0; q < nq; q++) {
		/* One queue uses the top-level keys even when the count is
		 * written, as Linux frontends and backends do. */
		if (nq == 1) {
			r = vbd_read_ring_config(v, v->fe_path, &cfgs[q]);
		} else {
			if (asprintf(&qdir, "%s/" XK_QUEUE_DIR_FMT, v->fe_path, q) < 0)
				return -ENOMEM;
			r = vbd_read_ring_config(v, qdir, &cfgs[q]);
			free(qdir);
		}
		if (r < 0)
			return r;
		cfgs[q].queue = q;
	}
	return 0;
}

/* What both ends agreed on: recovery policy, sector units, persistent
 * grants, queues and each queue's ring. Reads only; nothing is mapped. */
static int vbd_negotiate(struct vbd *v, unsigned int *ret_nq, struct ring_config *cfgs)
{
	unsigned long long fe_persistent;
	unsigned int nq;
	int r;

	r = vbd_read_recovery_policy(v);
	if (r < 0)
		return r;
	/* Taking over, the frontend already runs on what was published. */
	if (!v->takeover) {
		r = vbd_check_sector_units(v);
		if (r < 0)
			return r;
	}
	/* Persistent grants when both ends offer them (the frontend's key is
	 * top-level, for every queue); garbage reads as not offered. */
	if (xenbus_read_uint_default(v->d, XBT_NULL, v->fe_path, XK_FEATURE_PERSISTENT, 1, 0,
				     &fe_persistent) < 0)
		fe_persistent = 0;
	v->persistent = fe_persistent && v->d->max_pgrants;
	r = vbd_read_queue_count(v, &nq);
	if (r == 0)
		r = vbd_read_ring_configs(v, nq, cfgs);
	if (r == 0)
		*ret_nq = nq;
	return r;
}

/* The ring memory the other vbds of v's domain hold now. */
static size_t vbd_domain_memory(const struct vbd *v)
{
	const struct vbd *o;
	size_t sum = 0;

	for (o = v->d->vbds; o; o = o->next)
		if (o != v && o->fe_domid == v->fe_domid)
			sum += o->memory_reserved;
	return sum;
}

static unsigned long vbd_mib(size_t bytes)
{
	return (unsigned long)((bytes + (1u << 20) - 1) >> 20);
}

/* Fits the rings into what the domain has left of --max-domain-memory,
 * cutting their indirect pools if need be. A new connection that does not
 * fit even with one indirect request per ring is refused; a takeover
 * never is (the guest has been using this disk) and starts at the floor. */
static int vbd_fit_memory(struct vbd *v, unsigned int nq, struct ring_config *cfgs)
{
	size_t max = v->d->max_domain_memory, used = vbd_domain_memory(v);
	size_t left = used < max ? max - used : 0;
	struct vbd_memory_fit fit;

	if (!max)
		left = SIZE_MAX;
	vbd_memory_fit(cfgs, nq, left, &fit);
	if (fit.over && !v->takeover) {
		vbd_fail(v, 0, "domain %" PRIu32 " memory limit: the rings need %lu MiB, "
			 "%lu MiB of %lu are left (--max-domain-memory)", v->fe_domid,
			 vbd_mib(fit.floor), (unsigned long)(left >> 20), vbd_mib(max));
		return -ENOMEM;
	}
	if (fit.over)
		vbd_log(v, LOG_LEVEL_WARN, 0, "taken over above domain %" PRIu32 "'s memory "
			"limit: %lu MiB with %lu MiB of %lu left", v->fe_domid, vbd_mib(fit.reserved),
			vbd_mib(left), vbd_mib(max));
	else if (fit.cut)
		vbd_log(v, LOG_LEVEL_INFO, 0, "ring buffers cut from %lu to %lu MiB to fit "
			"domain %" PRIu32 "'s memory limit", vbd_mib(fit.wanted),
			vbd_mib(fit.reserved), v->fe_domid);
	v->memory_reserved = fit.reserved;
	return 0;
}

/* Maps every ring and starts its thread, which creates the ring's storage
 * engine (an NBD handshake, say) off the main thread and wakes us when
 * done (vbd_rings_started); rings already running when one fails drain
 * and are released the normal way. */
static int vbd_start_rings(struct vbd *v, unsigned int nq, const struct ring_config *cfgs)
{
	struct ring *ring;
	unsigned int q;
	int r;

	v->rings = calloc(nq, sizeof(*v->rings));
	if (!v->rings)
		return -ENOMEM;
	for (q = 0; q < nq; q++) {
		r = ring_start(&cfgs[q], &ring);
		if (r < 0) {
			vbd_fail(v, r, "cannot connect ring %u (order %u, %s)", q, cfgs[q].order,
				 blkif_abi_name(cfgs[q].abi));
			if (!v->nr_rings) {
				free(v->rings);
				v->rings = NULL;
			}
			return r;
		}
		v->rings[q] = ring;
		v->nr_rings = q + 1;
	}
	return 0;
}

/* 0 once every ring's engine is up, -EINPROGRESS while one is starting,
 * the first failure (the vbd failed with its reason) otherwise. */
static int vbd_rings_started(struct vbd *v)
{
	char why[160];
	unsigned int i;
	int r, pending = 0;

	for (i = 0; i < v->nr_rings; i++) {
		r = ring_start_result(v->rings[i], why, sizeof(why));
		if (r == -EINPROGRESS) {
			pending = r;
		} else if (r < 0) {
			vbd_fail(v, r, "cannot connect ring %u: %s", i, why);
			return r;
		}
	}
	return pending;
}

/* Taking over, the connect keys are as the frontend saw them and the
 * state too: rewriting Connected would fire its watch for nothing. A size
 * that changed meanwhile is published by the resize check, which compares
 * with this. */
static void vbd_resume_connected(struct vbd *v, const struct ring_info *cfg)
{
	unsigned long long published;

	if (xenbus_read_uint(v->d, XBT_NULL, v->be_path, XK_SECTORS, UINT64_MAX,
			     &published) == 0)
		v->props.sectors = published;
	v->takeover = false;
	v->served = true;
	vbd_log(v, LOG_LEVEL_INFO, 0, "backend Connected (%u ring%s, order %u, %s, taken over)",
		v->nr_rings, v->nr_rings > 1 ? "s" : "", cfg->order, blkif_abi_name(cfg->abi));
}

/* The keys Connected publishes, in a structure that cannot overflow: a
 * key past VBD_CONNECT_KEYS marks the set as overflowed and it is not
 * published at all, rather than half of it. */
#define VBD_CONNECT_KEYS	16

struct vbd_kvs {
	struct vbd_kv kv[VBD_CONNECT_KEYS];
	size_t n;
	bool overflow;
};

/* present false: removed, as a value an earlier connection published. */
static void vbd_kvs_uint(struct vbd_kvs *kvs, const char *key, unsigned long long val,
			 bool present)
{
	if (kvs->n >= ARRAY_SIZE(kvs->kv)) {
		kvs->overflow = true;
		return;
	}
	vbd_kv_uint(&kvs->kv[kvs->n], key, val);
	kvs->kv[kvs->n].rm = !present;
	kvs->n++;
}

static unsigned int vbd_info_bits(struct vbd *v)
{
	unsigned long long removable;
	unsigned int info = 0;

	if (v->props.cdrom)
		info |= VDISK_CDROM;
	if (v->props.readonly)
		info |= VDISK_READONLY;
	/* As libxl asks for a cdrom; garbage reads as not removable. */
	if (xenbus_read_uint_default(v->d, XBT_NULL, v->be_path, XK_REMOVABLE, 1, 0,
				     &removable) == 0 && removable)
		info |= VDISK_REMOVABLE;
	return info;
}

/* Connect keys and state 4 in one transaction. */
static int vbd_publish_connect(struct vbd *v, const struct ring_info *cfg)
{
	struct vbd_kvs kvs = { .n = 0 };
	bool discard = v->props.discard;
	int r;

	v->props.sectors = atomic_load(&v->nr_sectors);
	vbd_kvs_uint(&kvs, XK_FEATURE_FLUSH, 1, true);
	vbd_kvs_uint(&kvs, XK_FEATURE_BARRIER, 1, true);
	vbd_kvs_uint(&kvs, XK_FEATURE_PERSISTENT, v->d->max_pgrants > 0, true);
	/* Discard off: the keys are absent, as Linux leaves them. */
	vbd_kvs_uint(&kvs, XK_FEATURE_DISCARD, 1, discard);
	vbd_kvs_uint(&kvs, XK_DISCARD_GRANULARITY, v->props.discard_granularity, discard);
	vbd_kvs_uint(&kvs, XK_DISCARD_ALIGNMENT, v->props.discard_alignment, discard);
	vbd_kvs_uint(&kvs, XK_DISCARD_SECURE, v->props.discard_secure, discard);
	vbd_kvs_uint(&kvs, XK_SECTORS, v->props.sectors, true);
	vbd_kvs_uint(&kvs, XK_INFO, vbd_info_bits(v), true);
	vbd_kvs_uint(&kvs, XK_SECTOR_SIZE, v->props.sector_size, true);
	vbd_kvs_uint(&kvs, XK_PHYS_SECTOR_SIZE, vbd_phys_sector_size(v, v->props.sectors), true);
	if (kvs.overflow) {
		vbd_fail(v, -EOVERFLOW, "more connect keys than %u", VBD_CONNECT_KEYS);
		return -EOVERFLOW;
	}
	if (v->props.sector_size != 512)
		vbd_log(v, LOG_LEVEL_WARN, 0, "publishing sector-size %u (%s): frontends that "
			"read sectors in sector-size units (%s) are refused, others address "
			"it in 512-byte units aligned to %u", v->props.sector_size,
			vbd_sector_size_reason(v), XK_LARGE_SECTOR_SIZE, v->props.sector_size);
	r = vbd_publish(v, kvs.kv, kvs.n, XenbusStateConnected);
	if (r < 0) {
		/* The ring runs already: take the normal, draining way down. */
		if (r != -ENOENT)
			vbd_fail(v, r, "cannot publish connect keys");
		return r;
	}
	vbd_log(v, LOG_LEVEL_INFO, 0, "backend Connected (%u ring%s, order %u, %s, port %" PRIu32
		"%s)", v->nr_rings, v->nr_rings > 1 ? "s" : "", cfg->order, blkif_abi_name(cfg->abi),
		cfg->remote_port, v->persistent ? ", persistent grants" : "");
	v->served = true;
	vbd_clear_error(v);
	return 0;
}

/* start: rings mapped and running, connect keys + Connected in one tx.
 * -EINPROGRESS while the rings' engines start: called again once they
 * wake us (vbd_poll_rings). */
static int vbd_start(struct vbd *v)
{
	struct ring_config cfgs[BLKBACKD_MAX_QUEUES];
	struct ring_info ring0;
	unsigned int nq;
	int r;

	if (!v->nr_rings) {
		r = vbd_negotiate(v, &nq, cfgs);
		if (r == 0)
			r = vbd_fit_memory(v, nq, cfgs);
		if (r == 0)
			r = vbd_start_rings(v, nq, cfgs);
		if (r < 0) {
			if (!v->nr_rings)
				v->memory_reserved = 0;
			return r;
		}
		vbd_note_recovery(v);
	}
	r = vbd_rings_started(v);
	if (r < 0)
		return r;
	ring_get_info(v->rings[0], &ring0);
	if (v->takeover) {
		vbd_resume_connected(v, &ring0);
		return 0;
	}
	return vbd_publish_connect(v, &ring0);
}

/* stop: no new requests; in-flight ones still complete and are answered. */
static void vbd_stop(struct vbd *v)
{
	unsigned int i;

	for (i = 0; i < v->nr_rings; i++)
		ring_stop(v->rings[i]);
	v->phase = VBD_CLOSING;
	if (!v->be_dir_removed)
		vbd_set_state(v, XenbusStateClosing);
}

static bool vbd_rings_stopped(const struct vbd *v)
{
	unsigned int i;

	for (i = 0; i < v->nr_rings; i++)
		if (!ring_is_stopped(v->rings[i]))
			return false;
	return true;
}

/* release: every ring drained; only now unmap and unbind. */
static void vbd_release(struct vbd *v, bool keep_journal)
{
	unsigned int i;

	for (i = 0; i < v->nr_rings; i++) {
		/* blkback-ctl stats count what the vbd did, not just its rings. */
		ring_stats_add(&v->released, ring_get_stats(v->rings[i]));
		ring_release(v->rings[i], keep_journal);
	}
	free(v->rings);
	v->rings = NULL;
	v->nr_rings = 0;
	v->memory_reserved = 0;
}

bool vbd_is_busy(const struct vbd *v)
{
	return v->nr_rings > 0;
}

static void vbd_unlink(struct vbd *v)
{
	struct vbd **pp;

	for (pp = &v->d->vbds; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
}

static void vbd_forget(struct vbd *v)
{
	vbd_unlink(v);
	if (v->phase != VBD_FOREIGN)
		vbd_log(v, LOG_LEVEL_INFO, 0, "released");
	v->forgotten = true;
	vbd_unref(v);
}

bool vbd_is_detach_done(const struct vbd *v, bool force)
{
	if (v->phase != VBD_CLOSED)
		return false;
	/* A frontend we never connected (an HVM guest on its emulated disk,
	 * one still in its bootloader) holds nothing of ours: done at once. */
	return force || !v->served ||
	       (v->seen_fe_state != XenbusStateInitialised &&
		v->seen_fe_state != XenbusStateConnected);
}

/* NEW with the backend Connected or Closing: an earlier blkbackd served
 * this vbd. Whether its frontend still is Connected decides between
 * taking over and closing, so the frontend is looked up (and watched)
 * now rather than at configure. */
static void vbd_read_served_frontend(struct vbd *v, struct vbd_input *in)
{
	unsigned long long fe_state;

	in->fe_path_ok = v->fe_path || vbd_read_frontend_path(v) == 0;
	if (!in->fe_path_ok)
		return;
	if (xenbus_read_uint(v->d, XBT_NULL, v->fe_path, XK_STATE, XenbusStateReconfigured,
			     &fe_state) < 0)
		fe_state = XenbusStateUnknown;
	in->fe_state = (unsigned int)fe_state;
}

/* What the decision needs, read afresh: both ends' states on every step,
 * the nodes only one phase asks about when in it. */
static void vbd_gather(struct vbd *v, struct vbd_input *in, struct vbd_facts *f)
{
	vbd_read_input(v, in);
	v->seen_be_state = in->be_state;
	v->seen_fe_state = in->fe_state;
	v->seen_hotplug_ok = in->hotplug_ok;
	if (!in->exists)
		v->be_dir_removed = true;
	if (!v->be_dir_removed && v->phase == VBD_FOREIGN)
		in->script_matches = vbd_script_matches(v);
	if (!v->be_dir_removed && v->phase == VBD_NEW &&
	    (in->be_state == XenbusStateConnected || in->be_state == XenbusStateClosing))
		vbd_read_served_frontend(v, in);

	memset(f, 0, sizeof(*f));
	f->phase = v->phase;
	f->be_dir_removed = v->be_dir_removed;
	f->detach = v->detach;
	f->takeover = v->takeover;
	f->fe_seen = v->fe_seen;
	f->has_backing = v->backing != NULL;
	f->has_rings = v->nr_rings > 0;
	f->rings_stopped = vbd_rings_stopped(v);
	if (v->start_refused && (in->fe_state != v->start_refused_fe_state ||
				 v->fe_state_writes != v->start_refused_fe_writes))
		v->start_refused = false;
	f->start_refused = v->start_refused;
}

static void vbd_note_orphan(struct vbd *v, const struct vbd_input *in)
{
	vbd_log(v, LOG_LEVEL_INFO, 0, "was %s before a restart and the frontend is now %s: closing",
		xenbus_state_name(in->be_state), xenbus_state_name(in->fe_state));
}

/* Nothing mapped, nothing owed: Closed at once. */
static void vbd_close_unconnected(struct vbd *v)
{
	if (vbd_set_state(v, XenbusStateClosed) == 0)
		v->phase = VBD_CLOSED;
}

static void vbd_enter_initwait(struct vbd *v, bool takeover)
{
	if (vbd_configure(v, takeover) == 0)
		v->phase = VBD_INITWAIT;
}

/* start and Connected. A size that changed while no blkbackd ran (taking
 * over) is published now, not at the next resize tick, which a frontend
 * that is about to close may never see. */
static int vbd_connect(struct vbd *v)
{
	int r = vbd_start(v);

	if (r == 0) {
		v->phase = VBD_CONNECTED;
		/* Every probe thread taken: the next answer's round takes
		 * this vbd, with or without a resize timer. */
		if (vbd_check_resize(v) == -EAGAIN && !v->d->resize_next)
			v->d->resize_next = v;
	}
	return r;
}

/* A takeover that cannot recover the rings (storage or start failed, the
 * frontend left): rings that did start drain the normal way; without any,
 * what was in flight before the restart stays unanswered and the close
 * goes on as for a vbd never connected. */
static void vbd_takeover_abandon(struct vbd *v)
{
	if (v->nr_rings) {
		vbd_stop(v);
		return;
	}
	vbd_log(v, LOG_LEVEL_WARN, 0, "closing without taking the rings over: "
		"requests in flight before the restart stay unanswered");
	v->takeover = false;
}

/* Carries one decision out; true when another look is due. */
static bool vbd_act(struct vbd *v, const struct vbd_input *in, struct vbd_decision dec)
{
	enum vbd_phase old = v->phase;
	int r;

	if (dec.release)
		vbd_release(v, false);
	switch (dec.action) {
	case VBD_DO_NOTHING:
		break;
	case VBD_DO_CLAIM:
		vbd_log(v, LOG_LEVEL_INFO, 0, "claimed");
		v->phase = VBD_NEW;
		break;
	case VBD_DO_TAKE_OVER:
		vbd_enter_initwait(v, true);
		break;
	case VBD_DO_KEEP_CLOSING:
		/* The earlier process answered the frontend's Closing: wait
		 * for its Closed as that process would have. */
		vbd_note_orphan(v, in);
		v->phase = VBD_CLOSING;
		break;
	case VBD_DO_CLOSE_ORPHAN:
		vbd_note_orphan(v, in);
		vbd_close_unconnected(v);
		break;
	case VBD_DO_CLOSE:
		vbd_close_unconnected(v);
		break;
	case VBD_DO_CONFIGURE:
		vbd_enter_initwait(v, false);
		break;
	case VBD_DO_TAKEOVER_OPEN:
		if (vbd_open_backing(v) == -EINPROGRESS)
			break;	/* vbd_open_done looks again */
		vbd_takeover_abandon(v);
		return true;
	case VBD_DO_TAKEOVER_START:
		r = vbd_connect(v);
		if (r == 0 || r == -EINPROGRESS)
			break;	/* connected, or the rings wake us */
		vbd_takeover_abandon(v);
		return true;
	case VBD_DO_TAKEOVER_ABANDON:
		vbd_takeover_abandon(v);
		return true;
	case VBD_DO_OPEN:
		vbd_open_backing(v);	/* vbd_open_done looks again */
		break;
	case VBD_DO_START:
		r = vbd_connect(v);
		if (r < 0 && r != -EINPROGRESS && v->nr_rings) {
			vbd_stop(v);	/* a ring or publishing failed */
		} else if (r < 0 && r != -EINPROGRESS) {
			v->start_refused = true;
			v->start_refused_fe_state = in->fe_state;
			v->start_refused_fe_writes = v->fe_state_writes;
		}
		break;
	case VBD_DO_DISCONNECT:
		vbd_log(v, LOG_LEVEL_INFO, 0, "closing (frontend %s, online %llu)",
			xenbus_state_name(in->fe_state), in->online);
		/* fall through */
	case VBD_DO_STOP:
		vbd_stop(v);
		break;
	case VBD_DO_FINISH_CLOSE:
		vbd_set_state(v, XenbusStateClosed);
		v->phase = VBD_CLOSED;
		break;
	case VBD_DO_REWRITE_CLOSING:
		vbd_set_state(v, XenbusStateClosing);
		break;
	case VBD_DO_REWRITE_CLOSED:
		vbd_set_state(v, XenbusStateClosed);
		break;
	case VBD_DO_FORGET:
		vbd_unconfigure(v);
		vbd_forget(v);
		return false;
	}
	return v->phase != old;
}

/* One transition; true when another look is due. */
static bool vbd_step(struct vbd *v)
{
	struct vbd_input in;
	struct vbd_facts facts;
	struct vbd_decision dec;

	vbd_gather(v, &in, &facts);
	dec = vbd_decide(&in, &facts);
	if (dec.action != VBD_DO_NOTHING || dec.release)
		vbd_log(v, LOG_LEVEL_DEBUG, 0, "backend %s, frontend %s: %s%s",
			xenbus_state_name(in.be_state), xenbus_state_name(in.fe_state),
			dec.release ? "release, " : "", vbd_action_name(dec.action));
	return vbd_act(v, &in, dec);
}

void vbd_update(struct vbd *v)
{
	int i;

	vbd_ref(v);
	for (i = 0; i < VBD_MAX_STEPS; i++)
		if (!vbd_step(v) || v->forgotten)
			break;
	vbd_unref(v);
}

void vbd_poll_rings(struct vbd *v)
{
	char msg[160];
	unsigned int i;
	bool halted = false;

	for (i = 0; i < v->nr_rings; i++) {
		if (ring_take_halt(v->rings[i], msg, sizeof(msg))) {
			vbd_fail(v, 0, "ring %u halted: %s", i, msg);
			halted = true;
		}
	}
	/* A misbehaving frontend gets a clean disconnect of this vbd only. */
	if (halted && v->phase == VBD_CONNECTED)
		vbd_stop(v);
	/* Rings starting: one may have finished, connect once all have. */
	if (v->phase == VBD_INITWAIT && v->nr_rings)
		vbd_update(v);
	/* Drained and released, a Closing vbd waits for the frontend's
	 * state watch, not for ring wake-ups. */
	if (v->phase == VBD_CLOSING && v->nr_rings)
		vbd_update(v);
}

/* A size read from the storage: published (sectors, then state rewritten
 * in one transaction, so the frontend re-reads sectors when its state
 * watch fires) when it changed. */
static void vbd_apply_size(struct vbd *v, uint64_t bytes)
{
	struct vbd_kv kv[2];
	uint64_t sectors = bytes >> 9;
	int r;

	if (sectors == v->props.sectors)
		return;
	/* The ring threads validate against this from their next request. */
	atomic_store(&v->nr_sectors, sectors);
	vbd_kv_uint(&kv[0], XK_SECTORS, sectors);
	vbd_kv_uint(&kv[1], XK_PHYS_SECTOR_SIZE, vbd_phys_sector_size(v, sectors));
	r = vbd_publish(v, kv, 2, XenbusStateConnected);
	if (r < 0) {
		vbd_log(v, LOG_LEVEL_WARN, r, "cannot publish new size");
		return;
	}
	vbd_log(v, LOG_LEVEL_INFO, 0, "resized: %" PRIu64 " -> %" PRIu64 " sectors",
		v->props.sectors, sectors);
	v->props.sectors = sectors;
}

/* Local storage is looked at on a thread (storage_size_start): a stat on
 * a hung mount would stall the main thread. Remote providers answer from
 * what they were told (an NBD export's size is fixed per connection, an
 * RBD image's comes with librbd's header notification). */
int vbd_check_resize(struct vbd *v)
{
	int r;

	if (!v->backing || v->phase != VBD_CONNECTED)
		return 0;
	if (v->backing->fd >= 0) {
		/* Other failures (one running, no memory) are the next
		 * tick's to try again. */
		r = storage_size_start(v);
		return r == -EAGAIN ? r : 0;
	}
	r = io_backing_refresh_size(v->backing);
	if (r >= 0)
		vbd_apply_size(v, v->backing->size);
	return 0;
}

/* A size that could not be read stays as it was: the next tick asks
 * again, and the ring reports whatever the storage does to requests. */
void vbd_size_probed(struct vbd *v, unsigned int gen, int result, uint64_t size)
{
	if (gen != v->size_gen || !v->backing || v->phase != VBD_CONNECTED || result < 0)
		return;
	v->backing->size = size;
	vbd_apply_size(v, size);
}

void vbd_shutdown_start(struct vbd *v)
{
	unsigned int i;

	for (i = 0; i < v->nr_rings; i++)
		ring_stop(v->rings[i]);
}

bool vbd_shutdown_finish(struct vbd *v, bool give_up)
{
	if (!vbd_rings_stopped(v)) {
		if (!give_up)
			return false;
		/* Storage that never completes: unmapping now would let the
		 * engine write into freed memory, so the vbd is left to
		 * process exit, unlinked but not freed. */
		vbd_log(v, LOG_LEVEL_WARN, 0, "in-flight I/O did not finish; leaving it");
		vbd_unlink(v);
		return true;
	}
	/* The journals stay: a successor takes these rings over. */
	vbd_release(v, true);
	vbd_unconfigure(v);
	vbd_forget(v);
	return true;
}
