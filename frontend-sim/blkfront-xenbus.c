/* The guest's side of xenbus for one vbd, like Linux xen-blkfront: find
 * device/vbd/<devid>, wait for the backend's InitWait, publish the ring in
 * one transaction, go Initialised, wait for Connected, read the device's
 * properties; on close walk Closing -> Closed behind the backend.
 *
 *   frontend      backend      action
 *   stale 3/4/5   any          reset: Closing, Closed, then Initialising
 *   1             1            wait
 *   1             2 InitWait   read max order, grant ring, write keys, -> 3
 *   1             3            backend skipped InitWait: defaults, -> 3
 *   3             4 Connected  read sectors/info/features, -> 4
 *   3/4           5/6/gone     backend closes: drain, -> 5, -> 6
 *   4             (close)      -> 5, wait backend 5/6, -> 6, wait backend 6
 * Every watch event re-reads the backend state (level-triggered).
 * --personality changes single rows (OVMF goes 1 -> 4 with its ring, the
 * BSDs read max-ring-pages, ...); the dances that differ as a whole are in
 * blkfront-personality.c. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

#include "blkfront.h"
#include "log.h"

#define WATCH_TOKEN "bf-backend"

/* NULL when absent or unreadable (an embedded NUL counts as that). */
static char *xb_read(struct bf_dev *dev, const char *dir, const char *key)
{
	char *val;

	return xenstore_read(dev->xs, XBT_NULL, dir, key, &val) < 0 ? NULL : val;
}

/* -ENOENT when absent, -EINVAL when not a decimal number that fits. */
static int xb_read_u64(struct bf_dev *dev, const char *dir, const char *key,
		       uint64_t max, uint64_t *ret_val)
{
	unsigned long long v;
	int ret = xenstore_read_uint(dev->xs, XBT_NULL, dir, key, max, &v);

	if (ret == -EINVAL || ret == -ERANGE) {
		log_warn("%s/%s: bad value", dir, key);
		return -EINVAL;
	}
	if (ret < 0)
		return -ENOENT;
	*ret_val = v;
	return 0;
}

/* Optional keys: absent gives the default, garbage gives the default with
 * a warning (the backend is not ours to judge beyond that). */
static uint64_t xb_read_opt(struct bf_dev *dev, const char *dir, const char *key,
			    uint64_t max, uint64_t def)
{
	uint64_t v;

	return xb_read_u64(dev, dir, key, max, &v) < 0 ? def : v;
}

static int xb_write(struct bf_dev *dev, xs_transaction_t t, const char *dir,
		    const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int xb_write(struct bf_dev *dev, xs_transaction_t t, const char *dir,
		    const char *key, const char *fmt, ...)
{
	char val[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	return xenstore_write(dev->xs, t, dir, key, val);
}

static int xb_fe_state_write(struct bf_dev *dev, int state)
{
	int ret = xb_write(dev, XBT_NULL, dev->fe_path, XK_STATE, "%d", state);

	if (ret < 0)
		log_errno(LOG_LEVEL_ERR, ret, "%s: cannot write state %d", dev->fe_path, state);
	else
		log_debug("frontend -> %s", xenbus_state_name(state));
	return ret;
}

static int xb_fe_state_read(struct bf_dev *dev)
{
	uint64_t v;

	return xb_read_u64(dev, dev->fe_path, XK_STATE, 8, &v) < 0 ? 0 : (int)v;
}

/* The backend's state; 0 (Unknown) when the node or the dir is gone. */
static int xb_be_state_read(struct bf_dev *dev)
{
	uint64_t v;
	int st = xb_read_u64(dev, dev->be_path, XK_STATE, 8, &v) < 0 ? 0 : (int)v;

	if (st != dev->be_state)
		log_debug("backend state %s", xenbus_state_name(st));
	dev->be_state = st;
	return st;
}

void bf_xenbus_handle_watch(struct bf_dev *dev)
{
	char **ev;
	int st;

	/* Drain every queued event; the state is re-read once after. */
	while ((ev = xs_check_watch(dev->xs)))
		free(ev);
	st = xb_be_state_read(dev);
	if (!dev->connected)
		return;
	if (st != XenbusStateConnected) {
		if (!dev->be_closing)
			log_info("backend went %s: finishing in-flight requests",
				 xenbus_state_name(st));
		dev->be_closing = true;
		return;
	}
	/* Online resize: the backend rewrites sectors, then state. */
	{
		uint64_t sectors;

		if (xb_read_u64(dev, dev->be_path, XK_SECTORS, UINT64_MAX, &sectors) == 0 &&
		    sectors != dev->be.sectors) {
			log_info("backend resized: %" PRIu64 " -> %" PRIu64 " sectors",
				 dev->be.sectors, sectors);
			dev->be.sectors = sectors;
		}
	}
}

typedef bf_state_pred xb_state_pred;

/* Wait until pred(backend state) holds; level-triggered, and re-read at
 * least every 100 ms so a lost watch costs latency, not a hang. */
static int xb_wait_for(struct bf_dev *dev, xb_state_pred *pred, double timeout,
		       const char *what)
{
	uint64_t deadline = bf_now_ns() + (uint64_t)(timeout * 1e9);
	int st;

	for (;;) {
		st = xb_be_state_read(dev);
		if (pred(st))
			return st;
		if (dev->stop)
			return -EINTR;
		if (bf_now_ns() >= deadline) {
			log_err("%s: timed out after %.1f s waiting for the backend to %s "
				"(backend state %s)", dev->be_path, timeout,
				what, xenbus_state_name(st));
			return -ETIMEDOUT;
		}
		bf_ring_wait(dev, 100);
	}
}

static int xb_wait(struct bf_dev *dev, xb_state_pred *pred, const char *what)
{
	return xb_wait_for(dev, pred, dev->opts->timeout, what);
}

/* On Xen, libxenstore finds xenstored (or XENSTORED_PATH) itself; in the
 * simulator, the socket chooses which domain xensimd takes us for. */
static struct xs_handle *xs_connect(const struct bf_dev *dev, const char *sock)
{
	if (dev->opts->platform_xen)
		return xs_open(0);
	setenv("XENSTORED_PATH", sock, 1);
	return xs_open(XS_OPEN_SOCKETONLY);
}

static int domain_name_resolve(const struct bf_dev *dev, const char *name,
			       uint32_t *ret_domid)
{
	char sock[4096], path[128];
	struct xs_handle *xs;
	char **doms;
	unsigned int n, i, len;
	int ret = -ENOENT;

	snprintf(sock, sizeof(sock), "%s/socket", dev->dir ? dev->dir : "");
	xs = xs_connect(dev, sock);
	if (!xs) {
		ret = -errno;
		log_errno(LOG_LEVEL_ERR, ret, "%s: cannot connect to look up domain '%s'",
			  dev->opts->platform_xen ? "xenstore" : sock, name);
		return ret;
	}
	doms = xs_directory(xs, XBT_NULL, "/local/domain", &n);
	for (i = 0; doms && i < n; i++) {
		char *v, *end;
		unsigned long id;

		snprintf(path, sizeof(path), "/local/domain/%s/name", doms[i]);
		v = xs_read(xs, XBT_NULL, path, &len);
		id = strtoul(doms[i], &end, 10);
		if (v && strcmp(v, name) == 0 && !*end) {
			*ret_domid = (uint32_t)id;
			ret = 0;
		}
		free(v);
		if (ret == 0)
			break;
	}
	free(doms);
	xs_close(xs);
	if (ret < 0)
		log_err("no domain is named '%s'", name);
	return ret;
}

/* Fallback for names libxl's rules do not cover: the frontend dir whose
 * backend's "dev" node is the name we were given. */
static int vbd_find_by_dev(struct bf_dev *dev, const char *base, uint32_t *ret_devid)
{
	char **ents, dir[512];
	unsigned int n, i;
	int ret = -ENOENT;

	ents = xs_directory(dev->xs, XBT_NULL, base, &n);
	for (i = 0; ents && i < n && ret < 0; i++) {
		char *be, *name, *end;
		unsigned long id = strtoul(ents[i], &end, 10);

		if (*end || id > UINT32_MAX)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", base, ents[i]);
		be = xb_read(dev, dir, XK_BACKEND);
		if (!be)
			continue;
		name = xb_read(dev, be, XK_DEV);
		if (name && strcmp(name, dev->opts->vdev) == 0) {
			*ret_devid = (uint32_t)id;
			ret = 0;
		}
		free(name);
		free(be);
	}
	free(ents);
	return ret;
}

int bf_xenbus_open(struct bf_dev *dev)
{
	const struct bf_opts *o = dev->opts;
	char sock[4096], base[256], *home = NULL, *s = NULL, *end;
	unsigned long v;
	uint64_t id;
	int ret;

	if (isdigit((unsigned char)o->domain[0])) {
		errno = 0;
		v = strtoul(o->domain, &end, 10);
		/* On Xen we are the frontend in the domain we run in, dom0
		 * included; a simulated guest is never dom0. */
		if (*end || errno || (v == 0 && !o->platform_xen) || v >= 0x7ff0) {
			log_err("--domain %s: not a guest domain id (%s..32751) or a name",
				o->domain, o->platform_xen ? "0" : "1");
			return -EINVAL;
		}
		dev->domid = (uint32_t)v;
	} else {
		ret = domain_name_resolve(dev, o->domain, &dev->domid);
		if (ret < 0)
			return ret;
	}

	/* libxenstore takes the daemon's address from the environment; the
	 * per-domain socket makes xensimd treat us as that guest. */
	snprintf(sock, sizeof(sock), "%s/domain/%u/socket", dev->dir ? dev->dir : "",
		 dev->domid);
	dev->xs = xs_connect(dev, sock);
	if (!dev->xs) {
		ret = -errno;
		log_errno(LOG_LEVEL_ERR, ret, "%s: cannot connect to xenstore as domain %u",
			  o->platform_xen ? "xenstore" : sock, dev->domid);
		return ret;
	}
	home = xs_get_domain_path(dev->xs, dev->domid);
	if (!home) {
		ret = -errno;
		log_errno(LOG_LEVEL_ERR, ret, "cannot get the home path of domain %u", dev->domid);
		goto out;
	}
	snprintf(base, sizeof(base), "%s/device/vbd", home);

	ret = bf_vdev_to_devid(o->vdev, &dev->devid);
	if (ret == 0) {
		if (asprintf(&dev->fe_path, "%s/%u", base, dev->devid) < 0) {
			dev->fe_path = NULL;
			ret = -ENOMEM;
			goto out;
		}
		s = xb_read(dev, dev->fe_path, XK_BACKEND);
	}
	if (!s) {
		free(dev->fe_path);
		dev->fe_path = NULL;
		ret = vbd_find_by_dev(dev, base, &dev->devid);
		if (ret < 0) {
			log_err("no vbd '%s' in %s (is the disk attached to domain %u?)",
				o->vdev, base, dev->domid);
			goto out;
		}
		if (asprintf(&dev->fe_path, "%s/%u", base, dev->devid) < 0) {
			dev->fe_path = NULL;
			ret = -ENOMEM;
			goto out;
		}
		s = xb_read(dev, dev->fe_path, XK_BACKEND);
		if (!s) {
			ret = -ENOENT;
			log_err("%s/backend vanished", dev->fe_path);
			goto out;
		}
	}
	dev->be_path = s;
	s = NULL;
	ret = xb_read_u64(dev, dev->fe_path, XK_BACKEND_ID, 0x7fef, &id);
	if (ret < 0) {
		log_err("%s/backend-id: missing or invalid", dev->fe_path);
		goto out;
	}
	dev->be_domid = (uint32_t)id;
	if (!xs_watch(dev->xs, dev->be_path, WATCH_TOKEN)) {
		ret = -errno;
		log_errno(LOG_LEVEL_ERR, ret, "cannot watch %s", dev->be_path);
		goto out;
	}
	dev->watching = true;
	log_debug("vbd %s: devid %u, frontend %s, backend %s (domain %u)", o->vdev,
		  dev->devid, dev->fe_path, dev->be_path, dev->be_domid);
	ret = 0;
out:
	free(home);
	free(s);
	return ret;
}

static bool st_is_closing_done(int st)
{
	return st == 0 || st == XenbusStateInitialising || st == XenbusStateInitWait ||
	       st == XenbusStateClosing || st == XenbusStateClosed;
}

static bool st_is_closed(int st)
{
	return st == 0 || st == XenbusStateInitialising || st == XenbusStateInitWait ||
	       st == XenbusStateClosed;
}

/* After our Initialising a backend in Closed (an earlier connection's
 * end) is still on its way back to InitWait: keep waiting for it. */
static bool st_is_ready_for_front(int st)
{
	return st == 0 || st == XenbusStateInitWait || st == XenbusStateInitialised ||
	       st == XenbusStateConnected;
}

static bool st_is_connected_or_worse(int st)
{
	return st == 0 || st >= XenbusStateConnected;
}

/* A frontend left Initialised/Connected/Closing by an earlier run (one
 * killed, say) is closed first, as Linux's xenbus_reset_state does. */
static int xb_reset(struct bf_dev *dev)
{
	int fe = xb_fe_state_read(dev), be = xb_be_state_read(dev), ret;

	if (fe == XenbusStateInitialised || fe == XenbusStateConnected ||
	    fe == XenbusStateClosing || be == XenbusStateConnected ||
	    be == XenbusStateInitialised) {
		log_info("resetting a stale connection (frontend %s, backend %s)",
			 xenbus_state_name(fe), xenbus_state_name(be));
		ret = xb_fe_state_write(dev, XenbusStateClosing);
		if (ret < 0)
			return ret;
		ret = xb_wait(dev, st_is_closing_done, "follow Closing");
		if (ret < 0)
			return ret;
		ret = xb_fe_state_write(dev, XenbusStateClosed);
		if (ret < 0)
			return ret;
		ret = xb_wait(dev, st_is_closed, "close");
		if (ret < 0)
			return ret;
		fe = XenbusStateClosed;
	}
	if (fe != XenbusStateInitialising)
		return xb_fe_state_write(dev, XenbusStateInitialising);
	return 0;
}

/* FreeBSD's blkfront takes max-ring-pages over max-ring-page-order, and
 * older ones (and their backend, blkback) know only max-ring-pages: the
 * ring may have more than one page only when the backend says so there. */
static int xb_bsd_ring_limit(struct bf_dev *dev)
{
	uint64_t pages = 1, order;
	bool have_order;

	have_order = xb_read_u64(dev, dev->be_path, XK_MAX_RING_PAGE_ORDER, 16, &order) == 0;
	if (xb_read_u64(dev, dev->be_path, XK_MAX_RING_PAGES, 1u << 16, &pages) < 0)
		pages = 1;
	if (pages == 0 || (pages & (pages - 1))) {
		log_err("%s/%s is %" PRIu64 ", not a power of two", dev->be_path,
			XK_MAX_RING_PAGES, pages);
		return -EPROTO;
	}
	if (have_order && pages != 1 && pages != (1ull << order)) {
		log_err("%s: %s %" PRIu64 " disagrees with %s %" PRIu64, dev->be_path,
			XK_MAX_RING_PAGES, pages, XK_MAX_RING_PAGE_ORDER, order);
		return -EPROTO;
	}
	dev->be.max_ring_order = 0;
	while ((1ull << (dev->be.max_ring_order + 1)) <= pages)
		dev->be.max_ring_order++;
	log_debug("%s: %" PRIu64 " ring pages", XK_MAX_RING_PAGES, pages);
	return 0;
}

int bf_xenbus_wait_initwait(struct bf_dev *dev)
{
	int st, ret;

	ret = xb_reset(dev);
	if (ret < 0)
		return ret;
	st = xb_wait(dev, st_is_ready_for_front, "go InitWait");
	if (st < 0)
		return st;
	if (st == 0) {
		log_err("%s: backend dir or state is missing", dev->be_path);
		return -ENODEV;
	}
	if (st != XenbusStateInitWait && st != XenbusStateInitialised) {
		log_err("backend is %s, not InitWait: cannot connect",
			xenbus_state_name(st));
		return -EPROTO;
	}
	/* A backend that went straight to Initialised uses the defaults. */
	if (st == XenbusStateInitWait && dev->opts->personality == BF_PERS_BSD) {
		ret = xb_bsd_ring_limit(dev);
		if (ret < 0)
			return ret;
	} else if (st == XenbusStateInitWait) {
		dev->be.max_ring_order = (unsigned int)xb_read_opt(dev, dev->be_path,
				XK_MAX_RING_PAGE_ORDER, 16, 0);
	}
	/* Unikraft's blkfront_xb_init fails without the queue limit, and
	 * Mini-OS reads mode to decide whether the disk is writable. */
	if (dev->opts->personality == BF_PERS_MINIOS) {
		char *mode = xb_read(dev, dev->be_path, XK_MODE);
		uint64_t mq;

		if (xb_read_u64(dev, dev->be_path, XK_MQ_MAX_QUEUES, UINT32_MAX, &mq) < 0) {
			log_err("%s/%s: missing (Unikraft's blkfront cannot start without it)",
				dev->be_path, XK_MQ_MAX_QUEUES);
			free(mode);
			return -EPROTO;
		}
		if (!mode) {
			log_err("%s/%s: missing (Mini-OS reads it)", dev->be_path, XK_MODE);
			return -EPROTO;
		}
		free(mode);
	}
	dev->be.max_indirect_segments = (uint32_t)xb_read_opt(dev, dev->be_path,
				XK_MAX_INDIRECT_SEGS, UINT32_MAX, 0);
	dev->be.max_queues = (unsigned int)xb_read_opt(dev, dev->be_path,
				XK_MQ_MAX_QUEUES, UINT32_MAX, 1);
	if (!dev->be.max_queues)
		dev->be.max_queues = 1;
	return 0;
}

int bf_xenbus_publish(struct bf_dev *dev)
{
	const char *proto = blkif_abi_name(dev->opts->abi);
	unsigned int pages = 1u << dev->ring_order, i, qi;
	char key[32], path[1024], qdir[1024];
	int ret;

	for (;;) {
		xs_transaction_t t = xs_transaction_start(dev->xs);

		if (t == XBT_NULL) {
			ret = -errno;
			log_errno(LOG_LEVEL_ERR, ret, "cannot start a transaction");
			return ret;
		}
		/* Keys of an earlier connection with another ring size must
		 * not survive into this one; absent ones fail harmlessly. */
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_RING_PAGE_ORDER);
		xs_rm(dev->xs, t, path);
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_RING_REF);
		xs_rm(dev->xs, t, path);
		for (i = 0; i < BF_MAX_RING_PAGES; i++) {
			snprintf(path, sizeof(path), "%s/" XK_RING_REF_FMT,
				 dev->fe_path, i);
			xs_rm(dev->xs, t, path);
		}
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_EVENT_CHANNEL);
		xs_rm(dev->xs, t, path);
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_MQ_NUM_QUEUES);
		xs_rm(dev->xs, t, path);
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_NUM_RING_PAGES);
		xs_rm(dev->xs, t, path);
		snprintf(path, sizeof(path), "%s/%s", dev->fe_path, XK_LARGE_SECTOR_SIZE);
		xs_rm(dev->xs, t, path);
		for (qi = 0; qi < BF_MAX_QUEUES; qi++) {
			snprintf(path, sizeof(path), "%s/" XK_QUEUE_DIR_FMT, dev->fe_path, qi);
			xs_rm(dev->xs, t, path);
		}

		ret = 0;
		/* One queue: the top-level keys and no queue count, as Linux
		 * blkfront does; several: ring-ref* and event-channel under
		 * queue-N, ring-page-order stays top-level. */
		if (dev->nr_queues > 1)
			ret = xb_write(dev, t, dev->fe_path, XK_MQ_NUM_QUEUES, "%u",
				       dev->nr_queues);
		if (ret == 0 && dev->ring_order > 0)
			ret = xb_write(dev, t, dev->fe_path, XK_RING_PAGE_ORDER, "%u",
				       dev->ring_order);
		for (qi = 0; qi < dev->nr_queues && ret == 0; qi++) {
			const struct bf_queue *q = &dev->q[qi];

			if (dev->nr_queues > 1)
				snprintf(qdir, sizeof(qdir), "%s/" XK_QUEUE_DIR_FMT,
					 dev->fe_path, qi);
			else
				snprintf(qdir, sizeof(qdir), "%s", dev->fe_path);
			if (dev->ring_order == 0) {
				ret = xb_write(dev, t, qdir, XK_RING_REF, "%u",
					       q->ring_refs[0]);
			} else {
				for (i = 0; i < pages && ret == 0; i++) {
					snprintf(key, sizeof(key), XK_RING_REF_FMT, i);
					ret = xb_write(dev, t, qdir, key, "%u",
						       q->ring_refs[i]);
				}
			}
			if (ret == 0)
				ret = xb_write(dev, t, qdir, XK_EVENT_CHANNEL, "%u",
					       q->port);
		}
		/* The BSDs write the legacy page count beside the order. */
		if (ret == 0 && dev->ring_order > 0 && dev->opts->personality == BF_PERS_BSD)
			ret = xb_write(dev, t, dev->fe_path, XK_NUM_RING_PAGES, "%u", pages);
		/* The Windows PV drivers announce that they read sectors and
		 * ring fields in sector-size units. */
		if (ret == 0 && dev->opts->personality == BF_PERS_WINDOWS)
			ret = xb_write(dev, t, dev->fe_path, XK_LARGE_SECTOR_SIZE, "1");
		/* OVMF goes Connected in the ring's own transaction, without
		 * waiting for InitWait or passing through Initialised. */
		if (ret == 0 && dev->opts->personality == BF_PERS_OVMF)
			ret = xb_write(dev, t, dev->fe_path, XK_STATE, "%d",
				       XenbusStateConnected);
		if (ret == 0)
			ret = xb_write(dev, t, dev->fe_path, XK_PROTOCOL, "%s", proto);
		if (ret == 0)
			/* Our data pages are granted once per slot and reused,
			 * which is what persistent grants promise. */
			ret = xb_write(dev, t, dev->fe_path, XK_FEATURE_PERSISTENT, "%d",
				       dev->opts->persistent);
		/* Otherwise no feature-large-sector-size: like Linux, every
		 * sector quantity stays in 512-byte units (aligned to
		 * sector-size). */
		if (ret < 0) {
			xs_transaction_end(dev->xs, t, true);
			log_errno(LOG_LEVEL_ERR, ret, "%s: cannot write the ring keys",
				  dev->fe_path);
			return ret;
		}
		if (xs_transaction_end(dev->xs, t, false))
			break;
		if (errno != EAGAIN) {
			ret = -errno;
			log_errno(LOG_LEVEL_ERR, ret, "%s: transaction failed", dev->fe_path);
			return ret;
		}
	}
	if (dev->opts->personality == BF_PERS_OVMF)
		return 0;
	return xb_fe_state_write(dev, XenbusStateInitialised);
}

int bf_xenbus_wait_connected(struct bf_dev *dev)
{
	struct bf_backend_info *be = &dev->be;
	uint64_t v;
	int st, ret;

	st = xb_wait(dev, st_is_connected_or_worse, "connect");
	if (st < 0)
		return st;
	if (st != XenbusStateConnected) {
		log_err("backend went %s instead of Connected", xenbus_state_name(st));
		return -EPROTO;
	}
	ret = xb_read_u64(dev, dev->be_path, XK_SECTORS, UINT64_MAX, &be->sectors);
	if (ret < 0) {
		log_err("%s/sectors: missing or invalid", dev->be_path);
		return -EPROTO;
	}
	be->info = (uint32_t)xb_read_opt(dev, dev->be_path, XK_INFO, UINT32_MAX, 0);
	be->sector_size = (uint32_t)xb_read_opt(dev, dev->be_path, XK_SECTOR_SIZE,
						UINT32_MAX, 512);
	if (be->sector_size < 512 || be->sector_size > PLAT_PAGE_SIZE ||
	    (be->sector_size & (be->sector_size - 1))) {
		log_err("backend sector-size %u is not a power of two in 512..4096",
			be->sector_size);
		return -EPROTO;
	}
	/* OVMF's XenPvBlockFrontInitialization fails without these. */
	if (dev->opts->personality == BF_PERS_OVMF &&
	    (xb_read_u64(dev, dev->be_path, XK_INFO, UINT32_MAX, &v) < 0 ||
	     xb_read_u64(dev, dev->be_path, XK_SECTOR_SIZE, UINT32_MAX, &v) < 0)) {
		log_err("%s: info or sector-size missing (OVMF needs both)", dev->be_path);
		return -EPROTO;
	}
	/* win-xenvbd: the disk is sectors * sector-size bytes, and the ring
	 * counts in sector-size units. */
	dev->sect_units = 1;
	if (dev->opts->personality == BF_PERS_WINDOWS) {
		dev->sect_units = be->sector_size / 512;
		if (be->sectors > UINT64_MAX / dev->sect_units) {
			log_err("%s/sectors: too large in sector-size units", dev->be_path);
			return -EPROTO;
		}
		be->sectors *= dev->sect_units;
		log_info("disk of %" PRIu64 " bytes (sectors x sector-size, as Windows reads it)",
			 be->sectors * 512);
	}
	be->physical_sector_size = (uint32_t)xb_read_opt(dev, dev->be_path,
				XK_PHYS_SECTOR_SIZE, UINT32_MAX, be->sector_size);
	be->feature_flush = xb_read_opt(dev, dev->be_path, XK_FEATURE_FLUSH, 1, 0);
	be->feature_barrier = xb_read_opt(dev, dev->be_path, XK_FEATURE_BARRIER, 1, 0);
	be->feature_discard = xb_read_opt(dev, dev->be_path, XK_FEATURE_DISCARD, 1, 0);
	be->discard_secure = xb_read_opt(dev, dev->be_path, XK_DISCARD_SECURE, 1, 0);
	be->discard_granularity = (uint32_t)xb_read_opt(dev, dev->be_path,
				XK_DISCARD_GRANULARITY, UINT32_MAX, be->sector_size);
	be->discard_alignment = (uint32_t)xb_read_opt(dev, dev->be_path,
				XK_DISCARD_ALIGNMENT, UINT32_MAX, 0);
	be->feature_persistent = xb_read_opt(dev, dev->be_path,
				XK_FEATURE_PERSISTENT, 1, 0);
	if (xb_read_u64(dev, dev->be_path, XK_MAX_INDIRECT_SEGS, UINT32_MAX, &v) == 0)
		be->max_indirect_segments = (uint32_t)v;
	/* Windows sends only FLUSH_DISKCACHE to empty its cache. */
	if (dev->opts->personality == BF_PERS_WINDOWS && !be->feature_flush) {
		log_err("%s: no feature-flush-cache: Windows could not flush its cache",
			dev->be_path);
		return -EPROTO;
	}
	/* OVMF wrote Connected with its ring already. */
	if (dev->opts->personality != BF_PERS_OVMF) {
		ret = xb_fe_state_write(dev, XenbusStateConnected);
		if (ret < 0)
			return ret;
	}
	dev->connected = true;
	return 0;
}

void bf_xenbus_close(struct bf_dev *dev)
{
	int fe, st;

	if (!dev->xs || !dev->fe_path || !dev->be_path)
		return;
	if (bf_personality_close(dev))
		return;
	fe = xb_fe_state_read(dev);
	dev->connected = false;
	if (fe != XenbusStateInitialised && fe != XenbusStateConnected &&
	    fe != XenbusStateClosing)
		return;
	/* A signal must not cut the close short. */
	dev->stop = false;
	if (xb_fe_state_write(dev, XenbusStateClosing) < 0)
		return;
	st = xb_wait(dev, st_is_closing_done, "follow Closing");
	if (st == -ETIMEDOUT)
		bf_fail(dev, "backend did not follow Closing within %.1f s",
			dev->opts->timeout);
	if (xb_fe_state_write(dev, XenbusStateClosed) < 0)
		return;
	st = xb_wait(dev, st_is_closed, "close");
	if (st == -ETIMEDOUT)
		bf_fail(dev, "backend did not reach Closed within %.1f s",
			dev->opts->timeout);
	else if (st >= 0)
		log_debug("closed (backend %s)", xenbus_state_name(st));
}

void bf_xenbus_free(struct bf_dev *dev)
{
	if (dev->xs) {
		if (dev->watching)
			xs_unwatch(dev->xs, dev->be_path, WATCH_TOKEN);
		xs_close(dev->xs);
		dev->xs = NULL;
	}
	free(dev->fe_path);
	free(dev->be_path);
	dev->fe_path = dev->be_path = NULL;
}

int bf_xenbus_fe_state_set(struct bf_dev *dev, int state)
{
	return xb_fe_state_write(dev, state);
}

int bf_xenbus_fe_state_get(struct bf_dev *dev)
{
	return xb_fe_state_read(dev);
}

int bf_xenbus_be_state_get(struct bf_dev *dev)
{
	return xb_be_state_read(dev);
}

int bf_xenbus_wait_state(struct bf_dev *dev, bf_state_pred *pred, double timeout,
			 const char *what)
{
	return xb_wait_for(dev, pred, timeout, what);
}

void bf_xenbus_fe_key_rm(struct bf_dev *dev, const char *key)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dev->fe_path, key);
	xs_rm(dev->xs, XBT_NULL, path);
}
