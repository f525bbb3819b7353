/* The platform seam: grant tables and event channels with Xen's semantics.
 * Two providers: "xen" (libxengnttab, libxengntshr, libxenevtchn) and "sim"
 * (xensimd's simulated domains). Nothing above this header knows which runs.
 * Every int function returns >= 0 on success and -errno on failure. */
#ifndef BLKBACK_PLATFORM_H
#define BLKBACK_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xengnttab.h>	/* xengnttab_grant_copy_segment_t, GNTCOPY_* */

#define PLAT_PAGE_SIZE 4096u

struct platform;
struct plat_gnttab;	/* backend side: map and copy other domains' grants */
struct plat_gntshr;	/* frontend side: share our own pages (gntalloc) */
struct plat_evtchn;	/* event channels; one fd that polls readable */

struct platform_config {
	const char *name;	/* "xen", "sim", or NULL for the default */
	const char *sim_dir;	/* sim: xensimd's --dir (else $XENSIM_DIR) */
	int sim_domid;		/* sim: act as this domain; 0 = dom0 */
};

struct platform_ops {
	const char *name;
	int (*open)(const struct platform_config *cfg, struct platform **ret);
	void (*close)(struct platform *p);

	int (*gnttab_open)(struct platform *p, struct plat_gnttab **ret);
	void (*gnttab_close)(struct plat_gnttab *gt);
	/* Map count refs of domid contiguously; writable=false maps read-only. */
	int (*gnttab_map)(struct plat_gnttab *gt, uint32_t domid, uint32_t count,
			  const uint32_t *refs, bool writable, void **ret_addr);
	int (*gnttab_unmap)(struct plat_gnttab *gt, void *addr, uint32_t count);
	/* Returns 0 when the call was made; each segment's status field then
	 * holds GNTST_okay or a GNTST_* error, which the caller must check. */
	int (*gnttab_copy)(struct plat_gnttab *gt, uint32_t count,
			   xengnttab_grant_copy_segment_t *segs);

	int (*gntshr_open)(struct platform *p, struct plat_gntshr **ret);
	void (*gntshr_close)(struct plat_gntshr *gs);
	/* Allocate count zeroed pages, grant them to domid and map them
	 * contiguously here; ret_refs[count] receives the grant refs. */
	int (*gntshr_share)(struct plat_gntshr *gs, uint32_t domid, uint32_t count,
			    bool writable, uint32_t *ret_refs, void **ret_addr);
	/* End access and free. -EBUSY while the other side still maps a page
	 * (Xen's in-use bits); the pages then stay shared. */
	int (*gntshr_unshare)(struct plat_gntshr *gs, void *addr, uint32_t count);

	int (*evtchn_open)(struct platform *p, struct plat_evtchn **ret);
	void (*evtchn_close)(struct plat_evtchn *ev);
	int (*evtchn_fd)(struct plat_evtchn *ev);
	int (*evtchn_bind_unbound)(struct plat_evtchn *ev, uint32_t remote_domid,
				   uint32_t *ret_port);
	int (*evtchn_bind_interdomain)(struct plat_evtchn *ev, uint32_t remote_domid,
				       uint32_t remote_port, uint32_t *ret_port);
	int (*evtchn_unbind)(struct plat_evtchn *ev, uint32_t port);
	int (*evtchn_notify)(struct plat_evtchn *ev, uint32_t port);
	/* A port that fired (and is now masked until unmask), or -EAGAIN. */
	int (*evtchn_pending)(struct plat_evtchn *ev, uint32_t *ret_port);
	int (*evtchn_unmask)(struct plat_evtchn *ev, uint32_t port);
};

/* Every provider's handles start with this, so calls dispatch through it. */
struct plat_handle {
	const struct platform_ops *ops;
};

extern const struct platform_ops platform_xen_ops;
extern const struct platform_ops platform_sim_ops;

/* Picks the provider by name; NULL picks "xen" when /dev/xen/gntdev
 * exists, else "sim". -ENOENT for an unknown name. */
int platform_open(const struct platform_config *cfg, struct platform **ret);
void platform_close(struct platform *p);
const char *platform_name(const struct platform *p);

static inline const struct platform_ops *plat_ops_of(const void *handle)
{
	return ((const struct plat_handle *)handle)->ops;
}

static inline int plat_gnttab_open(struct platform *p, struct plat_gnttab **ret)
{
	return plat_ops_of(p)->gnttab_open(p, ret);
}
static inline void plat_gnttab_close(struct plat_gnttab *gt)
{
	if (gt)
		plat_ops_of(gt)->gnttab_close(gt);
}
static inline int plat_gnttab_map(struct plat_gnttab *gt, uint32_t domid, uint32_t count,
				  const uint32_t *refs, bool writable, void **ret_addr)
{
	return plat_ops_of(gt)->gnttab_map(gt, domid, count, refs, writable, ret_addr);
}
static inline int plat_gnttab_unmap(struct plat_gnttab *gt, void *addr, uint32_t count)
{
	return plat_ops_of(gt)->gnttab_unmap(gt, addr, count);
}
static inline int plat_gnttab_copy(struct plat_gnttab *gt, uint32_t count,
				   xengnttab_grant_copy_segment_t *segs)
{
	return plat_ops_of(gt)->gnttab_copy(gt, count, segs);
}

static inline int plat_gntshr_open(struct platform *p, struct plat_gntshr **ret)
{
	return plat_ops_of(p)->gntshr_open(p, ret);
}
static inline void plat_gntshr_close(struct plat_gntshr *gs)
{
	if (gs)
		plat_ops_of(gs)->gntshr_close(gs);
}
static inline int plat_gntshr_share(struct plat_gntshr *gs, uint32_t domid, uint32_t count,
				    bool writable, uint32_t *ret_refs, void **ret_addr)
{
	return plat_ops_of(gs)->gntshr_share(gs, domid, count, writable, ret_refs, ret_addr);
}
static inline int plat_gntshr_unshare(struct plat_gntshr *gs, void *addr, uint32_t count)
{
	return plat_ops_of(gs)->gntshr_unshare(gs, addr, count);
}

static inline int plat_evtchn_open(struct platform *p, struct plat_evtchn **ret)
{
	return plat_ops_of(p)->evtchn_open(p, ret);
}
static inline void plat_evtchn_close(struct plat_evtchn *ev)
{
	if (ev)
		plat_ops_of(ev)->evtchn_close(ev);
}
static inline int plat_evtchn_fd(struct plat_evtchn *ev)
{
	return plat_ops_of(ev)->evtchn_fd(ev);
}
static inline int plat_evtchn_bind_unbound(struct plat_evtchn *ev, uint32_t remote_domid,
					   uint32_t *ret_port)
{
	return plat_ops_of(ev)->evtchn_bind_unbound(ev, remote_domid, ret_port);
}
static inline int plat_evtchn_bind_interdomain(struct plat_evtchn *ev, uint32_t remote_domid,
					       uint32_t remote_port, uint32_t *ret_port)
{
	return plat_ops_of(ev)->evtchn_bind_interdomain(ev, remote_domid, remote_port, ret_port);
}
static inline int plat_evtchn_unbind(struct plat_evtchn *ev, uint32_t port)
{
	return plat_ops_of(ev)->evtchn_unbind(ev, port);
}
static inline int plat_evtchn_notify(struct plat_evtchn *ev, uint32_t port)
{
	return plat_ops_of(ev)->evtchn_notify(ev, port);
}
static inline int plat_evtchn_pending(struct plat_evtchn *ev, uint32_t *ret_port)
{
	return plat_ops_of(ev)->evtchn_pending(ev, ret_port);
}
static inline int plat_evtchn_unmask(struct plat_evtchn *ev, uint32_t port)
{
	return plat_ops_of(ev)->evtchn_unmask(ev, port);
}

#endif
