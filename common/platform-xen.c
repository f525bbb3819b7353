/* The "xen" platform provider: thin wrappers over libxengnttab (gntdev),
 * libxengntshr (gntalloc) and libxenevtchn (evtchn), turning -1/errno into
 * -errno. The kernel drivers keep Xen's semantics; this file only adapts
 * the calling convention. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include "platform.h"

struct platform {
	struct plat_handle h;
};

struct plat_gnttab {
	struct plat_handle h;
	xengnttab_handle *xgt;
};

struct plat_gntshr {
	struct plat_handle h;
	xengntshr_handle *xgs;
};

struct plat_evtchn {
	struct plat_handle h;
	xenevtchn_handle *xce;
};

/* errno after a failed library call, never 0 (a library that forgot to
 * set it must not make a failure look like success). */
static int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static int xen_open(const struct platform_config *cfg, struct platform **ret)
{
	struct platform *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->h.ops = &platform_xen_ops;
	*ret = p;
	return 0;
}

static void xen_close(struct platform *p)
{
	free(p);
}

static int xen_gnttab_open(struct platform *p, struct plat_gnttab **ret)
{
	struct plat_gnttab *gt = calloc(1, sizeof(*gt));
	int r;

	if (!gt)
		return -ENOMEM;
	gt->h.ops = &platform_xen_ops;
	gt->xgt = xengnttab_open(NULL, 0);
	if (!gt->xgt) {
		r = neg_errno();
		free(gt);
		return r;
	}
	*ret = gt;
	return 0;
}

static void xen_gnttab_close(struct plat_gnttab *gt)
{
	xengnttab_close(gt->xgt);
	free(gt);
}

static int xen_gnttab_map(struct plat_gnttab *gt, uint32_t domid, uint32_t count,
			  const uint32_t *refs, bool writable, void **ret_addr)
{
	void *addr;

	if (count == 0 || !refs)
		return -EINVAL;
	/* The library takes refs without const but only reads them. */
	addr = xengnttab_map_domain_grant_refs(gt->xgt, count, domid, (uint32_t *)refs,
					       PROT_READ | (writable ? PROT_WRITE : 0));
	if (!addr)
		return neg_errno();
	*ret_addr = addr;
	return 0;
}

static int xen_gnttab_unmap(struct plat_gnttab *gt, void *addr, uint32_t count)
{
	if (xengnttab_unmap(gt->xgt, addr, count) < 0)
		return neg_errno();
	return 0;
}

static int xen_gnttab_copy(struct plat_gnttab *gt, uint32_t count,
			   xengnttab_grant_copy_segment_t *segs)
{
	if (count == 0)
		return 0;
	if (xengnttab_grant_copy(gt->xgt, count, segs) < 0)
		return neg_errno();
	return 0;
}

static int xen_gntshr_open(struct platform *p, struct plat_gntshr **ret)
{
	struct plat_gntshr *gs = calloc(1, sizeof(*gs));
	int r;

	if (!gs)
		return -ENOMEM;
	gs->h.ops = &platform_xen_ops;
	gs->xgs = xengntshr_open(NULL, 0);
	if (!gs->xgs) {
		r = neg_errno();
		free(gs);
		return r;
	}
	*ret = gs;
	return 0;
}

static void xen_gntshr_close(struct plat_gntshr *gs)
{
	xengntshr_close(gs->xgs);
	free(gs);
}

static int xen_gntshr_share(struct plat_gntshr *gs, uint32_t domid, uint32_t count,
			    bool writable, uint32_t *ret_refs, void **ret_addr)
{
	void *addr;

	if (count == 0 || count > INT32_MAX || !ret_refs)
		return -EINVAL;
	addr = xengntshr_share_pages(gs->xgs, domid, (int)count, ret_refs, writable);
	if (!addr)
		return neg_errno();
	*ret_addr = addr;
	return 0;
}

/* gntalloc never reports -EBUSY: a page still mapped by the other side is
 * left granted by the kernel and freed once it is released. */
static int xen_gntshr_unshare(struct plat_gntshr *gs, void *addr, uint32_t count)
{
	if (xengntshr_unshare(gs->xgs, addr, count) < 0)
		return neg_errno();
	return 0;
}

static int xen_evtchn_open(struct platform *p, struct plat_evtchn **ret)
{
	struct plat_evtchn *ev = calloc(1, sizeof(*ev));
	int fd, fl, r;

	if (!ev)
		return -ENOMEM;
	ev->h.ops = &platform_xen_ops;
	ev->xce = xenevtchn_open(NULL, 0);
	if (!ev->xce) {
		r = neg_errno();
		goto fail;
	}
	/* So pending() says -EAGAIN instead of blocking when nothing fired. */
	fd = xenevtchn_fd(ev->xce);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	*ret = ev;
	return 0;
fail:
	if (ev->xce)
		xenevtchn_close(ev->xce);
	free(ev);
	return r;
}

static void xen_evtchn_close(struct plat_evtchn *ev)
{
	xenevtchn_close(ev->xce);
	free(ev);
}

static int xen_evtchn_fd(struct plat_evtchn *ev)
{
	return xenevtchn_fd(ev->xce);
}

static int xen_evtchn_bind_unbound(struct plat_evtchn *ev, uint32_t remote_domid,
				   uint32_t *ret_port)
{
	xenevtchn_port_or_error_t port = xenevtchn_bind_unbound_port(ev->xce, remote_domid);

	if (port < 0)
		return neg_errno();
	*ret_port = port;
	return 0;
}

static int xen_evtchn_bind_interdomain(struct plat_evtchn *ev, uint32_t remote_domid,
				       uint32_t remote_port, uint32_t *ret_port)
{
	xenevtchn_port_or_error_t port =
		xenevtchn_bind_interdomain(ev->xce, remote_domid, remote_port);

	if (port < 0)
		return neg_errno();
	*ret_port = port;
	return 0;
}

static int xen_evtchn_unbind(struct plat_evtchn *ev, uint32_t port)
{
	if (xenevtchn_unbind(ev->xce, port) < 0)
		return neg_errno();
	return 0;
}

static int xen_evtchn_notify(struct plat_evtchn *ev, uint32_t port)
{
	if (xenevtchn_notify(ev->xce, port) < 0)
		return neg_errno();
	return 0;
}

static int xen_evtchn_pending(struct plat_evtchn *ev, uint32_t *ret_port)
{
	xenevtchn_port_or_error_t port = xenevtchn_pending(ev->xce);

	if (port < 0) {
		/* Some kernels say EWOULDBLOCK; it is EAGAIN on Linux anyway. */
		return errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
	}
	*ret_port = port;
	return 0;
}

static int xen_evtchn_unmask(struct plat_evtchn *ev, uint32_t port)
{
	if (xenevtchn_unmask(ev->xce, port) < 0)
		return neg_errno();
	return 0;
}

const struct platform_ops platform_xen_ops = {
	.name = "xen",
	.open = xen_open,
	.close = xen_close,
	.gnttab_open = xen_gnttab_open,
	.gnttab_close = xen_gnttab_close,
	.gnttab_map = xen_gnttab_map,
	.gnttab_unmap = xen_gnttab_unmap,
	.gnttab_copy = xen_gnttab_copy,
	.gntshr_open = xen_gntshr_open,
	.gntshr_close = xen_gntshr_close,
	.gntshr_share = xen_gntshr_share,
	.gntshr_unshare = xen_gntshr_unshare,
	.evtchn_open = xen_evtchn_open,
	.evtchn_close = xen_evtchn_close,
	.evtchn_fd = xen_evtchn_fd,
	.evtchn_bind_unbound = xen_evtchn_bind_unbound,
	.evtchn_bind_interdomain = xen_evtchn_bind_interdomain,
	.evtchn_unbind = xen_evtchn_unbind,
	.evtchn_notify = xen_evtchn_notify,
	.evtchn_pending = xen_evtchn_pending,
	.evtchn_unmask = xen_evtchn_unmask,
};
