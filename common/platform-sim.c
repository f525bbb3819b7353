/* The "sim" platform provider: grant tables and event channels of
 * xensimd's simulated domains. xensimd is asked only for a domain's memfds
 * and for binding ports; maps, copies, grants and notifications then go
 * straight through shared memory and eventfds, checked the way Xen checks
 * them (common/simshm.c). Handles may be used from several threads. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xen/xen.h>

#include "platform.h"
#include "simctl.h"
#include "simshm.h"

#define MAP_BUCKETS 256
/* One call may not map or share more than this many pages. */
#define SIM_MAX_PAGES 65536u

struct platform {
	struct plat_handle h;
	char *dir;
	uint32_t domid;
};

/* One foreign domain's memory as this handle sees it. Referenced by the
 * cache and by each mapping; mappings outlive the domain. */
struct sim_dom {
	uint32_t domid;
	unsigned int refs;
	bool cached;
	int ram_fd;
	uint32_t ram_pages;
	uint32_t nr_grants;
	uint8_t *ram;
	struct simshm_gref *gt;
	struct simshm_active *active;
	struct sim_dom *next;
};

struct sim_map {
	uint8_t *addr;
	uint32_t count;
	bool writable;
	struct sim_dom *dom;
	struct sim_map *next;
	uint32_t *recs;		/* pin log records, one per page */
	uint32_t refs[];
};

struct plat_gnttab {
	struct plat_handle h;
	struct simctl *sc;
	uint32_t domid;
	pthread_mutex_t lock;		/* the cache, the map table, the pin log */
	struct sim_dom *doms;
	struct sim_map *maps[MAP_BUCKETS];
	struct simshm_pinrec *pinlog;	/* NULL for a guest: it cannot map */
	uint32_t pinlog_used;
	uint32_t *recs_free;
	uint32_t nr_recs_free;
};

struct sim_share {
	uint8_t *addr;
	uint32_t count;
	uint32_t domid;
	bool writable;
	struct sim_share *next;
	uint32_t *frames;
	uint32_t refs[];
};

struct plat_gntshr {
	struct plat_handle h;
	pthread_mutex_t lock;
	int ram_fd;
	uint32_t ram_pages;
	struct simshm_gref *gt;
	struct simshm_meta *meta;
	struct sim_share *shares;
};

struct sim_port {
	int fd_in;
	int fd_out;
	bool masked;
};

struct plat_evtchn {
	struct plat_handle h;
	struct simctl *sc;
	int epfd;
	pthread_mutex_t lock;
	struct sim_port **ports;
	uint32_t nr_ports;
};

static int sim_connect(struct platform *p, struct simctl **ret)
{
	return simctl_connect(p->dir, p->domid, ret);
}

static int sim_open(const struct platform_config *cfg, struct platform **ret)
{
	const char *dir = simctl_dir_resolve(cfg->sim_dir);
	struct simctl *sc;
	struct platform *p;
	int r;

	if (!dir)
		return -ENOENT;
	if (cfg->sim_domid < 0 || cfg->sim_domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->h.ops = &platform_sim_ops;
	p->domid = cfg->sim_domid;
	p->dir = strdup(dir);
	if (!p->dir) {
		r = -ENOMEM;
		goto fail;
	}
	/* Fail now, not at the first grant, if xensimd is not there. */
	r = sim_connect(p, &sc);
	if (r < 0)
		goto fail;
	simctl_close(sc);
	*ret = p;
	return 0;
fail:
	free(p->dir);
	free(p);
	return r;
}

static void sim_close(struct platform *p)
{
	if (!p)
		return;
	free(p->dir);
	free(p);
}

/* ---- grant tables: the backend side ---- */

static void dom_unmap(struct sim_dom *d)
{
	if (d->ram)
		munmap(d->ram, simshm_ram_size(d->ram_pages));
	if (d->gt)
		munmap(d->gt, simshm_gnttab_size());
	if (d->active)
		munmap(d->active, simshm_active_size());
	if (d->ram_fd >= 0)
		close(d->ram_fd);
	free(d);
}

static void dom_unref(struct sim_dom *d)
{
	if (--d->refs == 0)
		dom_unmap(d);
}

static void dom_uncache(struct plat_gnttab *gt, struct sim_dom *d)
{
	struct sim_dom **pp;

	for (pp = &gt->doms; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			d->cached = false;
			dom_unref(d);
			return;
		}
	}
}

static int dom_fetch(struct plat_gnttab *gt, uint32_t domid, struct sim_dom **ret)
{
	struct simshm_fds fds = { -1, -1, -1, -1 };
	struct sim_dom *d;
	uint32_t nr_grants;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ram_fd = -1;
	d->domid = domid;
	r = simctl_domain_mem(gt->sc, domid, &fds, &d->ram_pages, &nr_grants);
	if (r < 0)
		goto fail;
	d->nr_grants = nr_grants;
	/* Only Xen (dom0 here) holds pin counts: a guest cannot map. */
	if (fds.active < 0) {
		r = -EPERM;
		goto fail;
	}
	if ((r = simshm_check_size(fds.ram, simshm_ram_size(d->ram_pages))) < 0 ||
	    (r = simshm_check_size(fds.gnttab, simshm_gnttab_size())) < 0 ||
	    (r = simshm_check_size(fds.active, simshm_active_size())) < 0)
		goto fail;
	if ((r = simshm_map(fds.ram, simshm_ram_size(d->ram_pages), (void **)&d->ram)) < 0 ||
	    (r = simshm_map(fds.gnttab, simshm_gnttab_size(), (void **)&d->gt)) < 0 ||
	    (r = simshm_map(fds.active, simshm_active_size(), (void **)&d->active)) < 0)
		goto fail;
	if (d->active->magic != SIMSHM_ACTIVE_MAGIC || d->active->domid != domid) {
		r = -EPROTO;
		goto fail;
	}
	d->ram_fd = fds.ram;
	fds.ram = -1;
	simshm_fds_close(&fds);
	*ret = d;
	return 0;
fail:
	simshm_fds_close(&fds);
	dom_unmap(d);
	return r;
}

/* A referenced domain; caller holds gt->lock. A cached domain that has
 * been destroyed is dropped (its mappings keep it alive), so a new grant
 * of it fails with -ESRCH, as mapping from a dying domain fails in Xen. */
static int dom_get(struct plat_gnttab *gt, uint32_t domid, struct sim_dom **ret)
{
	struct sim_dom *d;
	int r;

	for (d = gt->doms; d; d = d->next)
		if (d->domid == domid)
			break;
	if (d && __atomic_load_n(&d->active->destroyed, __ATOMIC_ACQUIRE)) {
		dom_uncache(gt, d);
		d = NULL;
	}
	if (!d) {
		r = dom_fetch(gt, domid, &d);
		if (r < 0)
			return r;
		d->refs = 1;
		d->cached = true;
		d->next = gt->doms;
		gt->doms = d;
	}
	d->refs++;
	*ret = d;
	return 0;
}

static int dom_get_locked(struct plat_gnttab *gt, uint32_t domid, struct sim_dom **ret)
{
	int r;

	pthread_mutex_lock(&gt->lock);
	r = dom_get(gt, domid, ret);
	pthread_mutex_unlock(&gt->lock);
	return r;
}

static void dom_unref_locked(struct plat_gnttab *gt, struct sim_dom *d)
{
	pthread_mutex_lock(&gt->lock);
	dom_unref(d);
	pthread_mutex_unlock(&gt->lock);
}

/* Pin log records: fresh ones from the high-water mark, freed ones from
 * a stack. Caller holds gt->lock. 0 means "no record" (no pin log). */
static int rec_alloc(struct plat_gnttab *gt, uint32_t *ret)
{
	if (!gt->pinlog) {
		*ret = 0;
		return 0;
	}
	if (gt->nr_recs_free) {
		*ret = gt->recs_free[--gt->nr_recs_free];
		return 0;
	}
	if (gt->pinlog_used >= SIMSHM_PINLOG_RECS)
		return -ENOSPC;
	*ret = gt->pinlog_used++;
	/* xensimd scans up to the mark: publish it before the record. */
	__atomic_store_n(&gt->pinlog[0].ref, gt->pinlog_used, __ATOMIC_RELEASE);
	return 0;
}

static void rec_free(struct plat_gnttab *gt, uint32_t rec)
{
	if (rec)
		gt->recs_free[gt->nr_recs_free++] = rec;
}

static int recs_alloc(struct plat_gnttab *gt, uint32_t *recs, uint32_t n)
{
	uint32_t i;
	int r = 0;

	pthread_mutex_lock(&gt->lock);
	for (i = 0; i < n; i++) {
		r = rec_alloc(gt, &recs[i]);
		if (r < 0)
			break;
	}
	if (r < 0)
		while (i-- > 0)
			rec_free(gt, recs[i]);
	pthread_mutex_unlock(&gt->lock);
	return r;
}

static void recs_free(struct plat_gnttab *gt, const uint32_t *recs, uint32_t n)
{
	pthread_mutex_lock(&gt->lock);
	for (uint32_t i = 0; i < n; i++)
		rec_free(gt, recs[i]);
	pthread_mutex_unlock(&gt->lock);
}

static struct simshm_pinrec *rec_ptr(struct plat_gnttab *gt, uint32_t rec)
{
	return rec ? &gt->pinlog[rec] : NULL;
}

static int sim_gnttab_open(struct platform *p, struct plat_gnttab **ret)
{
	struct plat_gnttab *gt = calloc(1, sizeof(*gt));
	int fd = -1, r;

	if (!gt)
		return -ENOMEM;
	gt->h.ops = &platform_sim_ops;
	gt->domid = p->domid;
	gt->pinlog_used = 1;	/* record 0 is the header */
	pthread_mutex_init(&gt->lock, NULL);
	r = sim_connect(p, &gt->sc);
	if (r < 0)
		goto fail;
	/* Only dom0 maps; a guest's handle opens anyway and maps nothing,
	 * as gntdev in a guest without the privilege. */
	if (p->domid == 0) {
		r = simctl_pinlog_open(gt->sc, &fd);
		if (r < 0)
			goto fail;
		r = simshm_check_size(fd, simshm_pinlog_size());
		if (r == 0)
			r = simshm_map(fd, simshm_pinlog_size(), (void **)&gt->pinlog);
		close(fd);
		if (r < 0)
			goto fail;
		gt->recs_free = malloc(SIMSHM_PINLOG_RECS * sizeof(uint32_t));
		if (!gt->recs_free) {
			r = -ENOMEM;
			goto fail;
		}
	}
	*ret = gt;
	return 0;
fail:
	if (gt->pinlog)
		munmap(gt->pinlog, simshm_pinlog_size());
	simctl_close(gt->sc);
	pthread_mutex_destroy(&gt->lock);
	free(gt);
	return r;
}

static void map_release(struct plat_gnttab *gt, struct sim_map *m)
{
	munmap(m->addr, (size_t)m->count * PLAT_PAGE_SIZE);
	for (uint32_t i = 0; i < m->count; i++)
		simshm_grant_unpin(m->dom->gt, m->dom->active, m->refs[i], !m->writable,
				   rec_ptr(gt, m->recs[i]));
}

static void sim_gnttab_close(struct plat_gnttab *gt)
{
	/* Like closing gntdev: whatever is still mapped is unmapped. */
	for (size_t b = 0; b < MAP_BUCKETS; b++) {
		while (gt->maps[b]) {
			struct sim_map *m = gt->maps[b];

			gt->maps[b] = m->next;
			map_release(gt, m);
			dom_unref(m->dom);
			free(m);
		}
	}
	while (gt->doms)
		dom_uncache(gt, gt->doms);
	/* Every pin is dropped and recorded so: nothing left to recover. */
	simctl_close(gt->sc);
	if (gt->pinlog)
		munmap(gt->pinlog, simshm_pinlog_size());
	free(gt->recs_free);
	pthread_mutex_destroy(&gt->lock);
	free(gt);
}

static size_t map_bucket(const void *addr)
{
	return ((uintptr_t)addr / PLAT_PAGE_SIZE) % MAP_BUCKETS;
}

static int gntst_to_errno(int st)
{
	switch (st) {
	case GNTST_bad_gntref:
	case GNTST_bad_page:
		return -EINVAL;
	case GNTST_no_space:
		return -ENOSPC;
	default:
		return -EPERM;
	}
}

/* Maps frames[] of d's RAM contiguously at addr, coalescing runs. */
static int frames_map(uint8_t *addr, const uint32_t *frames, uint32_t count, int fd, int prot)
{
	uint32_t i = 0;

	while (i < count) {
		uint32_t j = i + 1;

		while (j < count && frames[j] == frames[i] + (j - i))
			j++;
		if (mmap(addr + (size_t)i * PLAT_PAGE_SIZE, (size_t)(j - i) * PLAT_PAGE_SIZE,
			 prot, MAP_SHARED | MAP_FIXED, fd,
			 (off_t)frames[i] * PLAT_PAGE_SIZE) == MAP_FAILED)
			return -errno;
		i = j;
	}
	return 0;
}

static int sim_gnttab_map(struct plat_gnttab *gt, uint32_t domid, uint32_t count,
			  const uint32_t *refs, bool writable, void **ret_addr)
{
	struct sim_map *m = NULL;
	struct sim_dom *d = NULL;
	uint32_t *frames = NULL;
	uint32_t pinned = 0;
	void *addr = MAP_FAILED;
	size_t len = (size_t)count * PLAT_PAGE_SIZE;
	int r;

	if (count == 0 || count > SIM_MAX_PAGES || !refs)
		return -EINVAL;
	if (domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	m = calloc(1, sizeof(*m) + 2 * count * sizeof(uint32_t));
	frames = calloc(count, sizeof(uint32_t));
	if (!m || !frames) {
		r = -ENOMEM;
		goto fail_recs;
	}
	m->recs = m->refs + count;
	r = recs_alloc(gt, m->recs, count);
	if (r < 0)
		goto fail_recs;
	r = dom_get_locked(gt, domid, &d);
	if (r < 0)
		goto fail;
	for (pinned = 0; pinned < count; pinned++) {
		int st = simshm_grant_pin(d->gt, d->active, d->nr_grants, d->ram_pages,
					  refs[pinned], gt->domid, !writable, &frames[pinned],
					  rec_ptr(gt, m->recs[pinned]));

		if (st != GNTST_okay) {
			r = gntst_to_errno(st);
			goto fail;
		}
	}
	/* Reserve the whole range first so the frames land contiguously. */
	addr = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (addr == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	r = frames_map(addr, frames, count, d->ram_fd,
		       PROT_READ | (writable ? PROT_WRITE : 0));
	if (r < 0)
		goto fail;
	m->addr = addr;
	m->count = count;
	m->writable = writable;
	m->dom = d;
	memcpy(m->refs, refs, count * sizeof(uint32_t));
	pthread_mutex_lock(&gt->lock);
	m->next = gt->maps[map_bucket(addr)];
	gt->maps[map_bucket(addr)] = m;
	pthread_mutex_unlock(&gt->lock);
	free(frames);
	*ret_addr = addr;
	return 0;
fail:
	if (addr != MAP_FAILED)
		munmap(addr, len);
	while (pinned-- > 0)
		simshm_grant_unpin(d->gt, d->active, refs[pinned], !writable,
				   rec_ptr(gt, m->recs[pinned]));
	if (d)
		dom_unref_locked(gt, d);
	if (m)
		recs_free(gt, m->recs, count);
fail_recs:
	free(frames);
	free(m);
	return r;
}

static int sim_gnttab_unmap(struct plat_gnttab *gt, void *addr, uint32_t count)
{
	struct sim_map **pp, *m = NULL;

	pthread_mutex_lock(&gt->lock);
	for (pp = &gt->maps[map_bucket(addr)]; *pp; pp = &(*pp)->next) {
		if ((*pp)->addr == addr) {
			m = *pp;
			break;
		}
	}
	/* Like libxengnttab: the whole mapping or nothing. */
	if (!m || m->count != count) {
		pthread_mutex_unlock(&gt->lock);
		return -EINVAL;
	}
	*pp = m->next;
	pthread_mutex_unlock(&gt->lock);
	map_release(gt, m);
	recs_free(gt, m->recs, m->count);
	dom_unref_locked(gt, m->dom);
	free(m);
	return 0;
}

/* What one side (source, destination) of a grant copy call holds across
 * its segments, so that gt->lock is taken a few times per call instead of
 * four times per segment: a pin log record (a segment's pins are dropped
 * before the next segment's are taken, so one serves the whole call) and
 * the domain last looked up (a batch names one frontend, as a ring's
 * requests do). */
struct copy_side {
	uint32_t rec;
	struct sim_dom *dom;		/* referenced, or NULL */
};

struct copy_ctx {
	bool have_recs;
	struct copy_side side[2];	/* [write]: source, destination */
};

/* One foreign side of a copy: check, pin, and point at the bytes. */
static int copy_side_get(struct plat_gnttab *gt, struct copy_ctx *cx, uint32_t domid,
			 uint32_t ref, uint32_t offset, uint32_t len, bool write,
			 uint8_t **ret_ptr)
{
	struct copy_side *cs = &cx->side[write];
	uint32_t frame, recs[2];
	int r, st;

	if (offset + len > PLAT_PAGE_SIZE)
		return GNTST_bad_copy_arg;
	if (domid >= DOMID_FIRST_RESERVED)
		return GNTST_bad_domain;
	if (!cx->have_recs) {
		if (recs_alloc(gt, recs, 2) < 0)
			return GNTST_no_space;
		cx->side[0].rec = recs[0];
		cx->side[1].rec = recs[1];
		cx->have_recs = true;
	}
	if (!cs->dom || cs->dom->domid != domid) {
		pthread_mutex_lock(&gt->lock);
		if (cs->dom)
			dom_unref(cs->dom);
		cs->dom = NULL;
		r = dom_get(gt, domid, &cs->dom);
		pthread_mutex_unlock(&gt->lock);
		if (r < 0)
			return r == -ESRCH ? GNTST_bad_domain : GNTST_general_error;
	}
	st = simshm_grant_pin(cs->dom->gt, cs->dom->active, cs->dom->nr_grants,
			      cs->dom->ram_pages, ref, gt->domid, !write, &frame,
			      rec_ptr(gt, cs->rec));
	if (st != GNTST_okay)
		return st;
	*ret_ptr = cs->dom->ram + (size_t)frame * PLAT_PAGE_SIZE + offset;
	return GNTST_okay;
}

static void copy_side_put(struct plat_gnttab *gt, struct copy_ctx *cx, uint32_t ref, bool write)
{
	struct copy_side *cs = &cx->side[write];

	simshm_grant_unpin(cs->dom->gt, cs->dom->active, ref, !write, rec_ptr(gt, cs->rec));
}

static void copy_ctx_done(struct plat_gnttab *gt, struct copy_ctx *cx)
{
	pthread_mutex_lock(&gt->lock);
	for (unsigned int i = 0; i < 2; i++) {
		if (cx->side[i].dom)
			dom_unref(cx->side[i].dom);
		if (cx->have_recs)
			rec_free(gt, cx->side[i].rec);
	}
	pthread_mutex_unlock(&gt->lock);
}

static int sim_gnttab_copy(struct plat_gnttab *gt, uint32_t count,
			   xengnttab_grant_copy_segment_t *segs)
{
	struct copy_ctx cx = { .have_recs = false };

	if (count && !segs)
		return -EINVAL;
	/* gntdev refuses local-to-local copies outright. */
	for (uint32_t i = 0; i < count; i++)
		if (!(segs[i].flags & (GNTCOPY_source_gref | GNTCOPY_dest_gref)))
			return -EINVAL;

	for (uint32_t i = 0; i < count; i++) {
		xengnttab_grant_copy_segment_t *s = &segs[i];
		uint8_t *src = s->source.virt, *dst = s->dest.virt;
		bool src_pinned = false, dst_pinned = false;
		int st = GNTST_okay;

		/* Like Xen, the in-use bits are set for the copy's duration,
		 * so the guest cannot end access in the middle of it. */
		if (s->flags & GNTCOPY_source_gref) {
			st = copy_side_get(gt, &cx, s->source.foreign.domid, s->source.foreign.ref,
					   s->source.foreign.offset, s->len, false, &src);
			src_pinned = st == GNTST_okay;
		}
		if (st == GNTST_okay && (s->flags & GNTCOPY_dest_gref)) {
			st = copy_side_get(gt, &cx, s->dest.foreign.domid, s->dest.foreign.ref,
					   s->dest.foreign.offset, s->len, true, &dst);
			dst_pinned = st == GNTST_okay;
		}
		if (st == GNTST_okay)
			memmove(dst, src, s->len);
		if (dst_pinned)
			copy_side_put(gt, &cx, s->dest.foreign.ref, true);
		if (src_pinned)
			copy_side_put(gt, &cx, s->source.foreign.ref, false);
		s->status = st;
	}
	copy_ctx_done(gt, &cx);
	return 0;
}

/* ---- grant sharing: the frontend side (gntalloc) ---- */

static int sim_gntshr_open(struct platform *p, struct plat_gntshr **ret)
{
	struct simshm_fds fds = { -1, -1, -1, -1 };
	struct plat_gntshr *gs;
	struct simctl *sc = NULL;
	uint32_t nr_grants;
	int r;

	gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->h.ops = &platform_sim_ops;
	gs->ram_fd = -1;
	pthread_mutex_init(&gs->lock, NULL);
	r = sim_connect(p, &sc);
	if (r < 0)
		goto fail;
	r = simctl_domain_mem(sc, DOMID_SELF, &fds, &gs->ram_pages, &nr_grants);
	simctl_close(sc);
	if (r < 0)
		goto fail;
	if ((r = simshm_check_size(fds.ram, simshm_ram_size(gs->ram_pages))) < 0 ||
	    (r = simshm_check_size(fds.gnttab, simshm_gnttab_size())) < 0 ||
	    (r = simshm_check_size(fds.meta, simshm_meta_size(gs->ram_pages))) < 0)
		goto fail;
	if ((r = simshm_map(fds.gnttab, simshm_gnttab_size(), (void **)&gs->gt)) < 0 ||
	    (r = simshm_map(fds.meta, simshm_meta_size(gs->ram_pages), (void **)&gs->meta)) < 0)
		goto fail;
	if (gs->meta->magic != SIMSHM_META_MAGIC) {
		r = -EPROTO;
		goto fail;
	}
	gs->ram_fd = fds.ram;
	fds.ram = -1;
	simshm_fds_close(&fds);
	*ret = gs;
	return 0;
fail:
	simshm_fds_close(&fds);
	if (gs->gt)
		munmap(gs->gt, simshm_gnttab_size());
	if (gs->meta)
		munmap(gs->meta, simshm_meta_size(gs->ram_pages));
	pthread_mutex_destroy(&gs->lock);
	free(gs);
	return r;
}

static void share_free_pages(struct plat_gntshr *gs, struct sim_share *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		simshm_gref_free(gs->meta, s->refs[i]);
		simshm_ram_free(gs->meta, gs->ram_pages, s->frames[i]);
	}
}

static int sim_gntshr_share(struct plat_gntshr *gs, uint32_t domid, uint32_t count,
			    bool writable, uint32_t *ret_refs, void **ret_addr)
{
	struct sim_share *s;
	size_t len = (size_t)count * PLAT_PAGE_SIZE;
	void *addr = MAP_FAILED;
	uint32_t n = 0;
	int r;

	if (count == 0 || count > SIM_MAX_PAGES || !ret_refs || domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	s = calloc(1, sizeof(*s) + count * sizeof(uint32_t));
	if (!s)
		return -ENOMEM;
	s->frames = calloc(count, sizeof(uint32_t));
	if (!s->frames) {
		r = -ENOMEM;
		goto fail;
	}
	for (n = 0; n < count; n++) {
		r = simshm_ram_alloc(gs->meta, gs->ram_pages, &s->frames[n]);
		if (r < 0)
			goto fail;
		r = simshm_gref_alloc(gs->meta, &s->refs[n]);
		if (r < 0) {
			simshm_ram_free(gs->meta, gs->ram_pages, s->frames[n]);
			goto fail;
		}
	}
	addr = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (addr == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	r = frames_map(addr, s->frames, count, gs->ram_fd, PROT_READ | PROT_WRITE);
	if (r < 0)
		goto fail;
	/* A page freed by another share may hold old data. */
	memset(addr, 0, len);
	for (uint32_t i = 0; i < count; i++)
		simshm_grant_set(gs->gt, s->refs[i], domid, s->frames[i], !writable);
	s->addr = addr;
	s->count = count;
	s->domid = domid;
	s->writable = writable;
	pthread_mutex_lock(&gs->lock);
	s->next = gs->shares;
	gs->shares = s;
	pthread_mutex_unlock(&gs->lock);
	memcpy(ret_refs, s->refs, count * sizeof(uint32_t));
	*ret_addr = addr;
	return 0;
fail:
	if (addr != MAP_FAILED)
		munmap(addr, len);
	share_free_pages(gs, s, n);
	free(s->frames);
	free(s);
	return r;
}

/* End access to every page of s, or to none: -EBUSY leaves all shared. */
static int share_end(struct plat_gntshr *gs, struct sim_share *s)
{
	uint32_t i;

	for (i = 0; i < s->count; i++) {
		union simshm_combo c;

		c.word = __atomic_load_n(&gs->gt[s->refs[i]].combo, __ATOMIC_ACQUIRE);
		if (c.s.flags & (GTF_reading | GTF_writing))
			return -EBUSY;
	}
	for (i = 0; i < s->count; i++) {
		if (simshm_grant_end(gs->gt, s->refs[i]) < 0) {
			/* Mapped between the check and now: grant the ended
			 * ones again, exactly as they were. */
			while (i-- > 0)
				simshm_grant_set(gs->gt, s->refs[i], s->domid, s->frames[i],
						 !s->writable);
			return -EBUSY;
		}
	}
	return 0;
}

static int sim_gntshr_unshare(struct plat_gntshr *gs, void *addr, uint32_t count)
{
	struct sim_share **pp, *s = NULL;
	int r;

	pthread_mutex_lock(&gs->lock);
	for (pp = &gs->shares; *pp; pp = &(*pp)->next) {
		if ((*pp)->addr == addr) {
			s = *pp;
			break;
		}
	}
	if (!s || s->count != count) {
		r = -EINVAL;
		goto out;
	}
	r = share_end(gs, s);
	if (r < 0)
		goto out;
	*pp = s->next;
	munmap(s->addr, (size_t)s->count * PLAT_PAGE_SIZE);
	share_free_pages(gs, s, s->count);
	free(s->frames);
	free(s);
out:
	pthread_mutex_unlock(&gs->lock);
	return r;
}

static void sim_gntshr_close(struct plat_gntshr *gs)
{
	while (gs->shares) {
		struct sim_share *s = gs->shares;

		gs->shares = s->next;
		munmap(s->addr, (size_t)s->count * PLAT_PAGE_SIZE);
		/* Still mapped by the other side: leave those pages granted
		 * and allocated (gntalloc defers them the same way). */
		if (share_end(gs, s) == 0)
			share_free_pages(gs, s, s->count);
		free(s->frames);
		free(s);
	}
	munmap(gs->gt, simshm_gnttab_size());
	munmap(gs->meta, simshm_meta_size(gs->ram_pages));
	close(gs->ram_fd);
	pthread_mutex_destroy(&gs->lock);
	free(gs);
}

/* ---- event channels ---- */

static int sim_evtchn_open(struct platform *p, struct plat_evtchn **ret)
{
	struct plat_evtchn *ev = calloc(1, sizeof(*ev));
	int r;

	if (!ev)
		return -ENOMEM;
	ev->h.ops = &platform_sim_ops;
	pthread_mutex_init(&ev->lock, NULL);
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0) {
		r = -errno;
		goto fail;
	}
	r = sim_connect(p, &ev->sc);
	if (r < 0)
		goto fail;
	*ret = ev;
	return 0;
fail:
	if (ev->epfd >= 0)
		close(ev->epfd);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
	return r;
}

static void port_drop(struct plat_evtchn *ev, uint32_t port)
{
	struct sim_port *sp = ev->ports[port];

	epoll_ctl(ev->epfd, EPOLL_CTL_DEL, sp->fd_in, NULL);
	close(sp->fd_in);
	close(sp->fd_out);
	free(sp);
	ev->ports[port] = NULL;
}

static void sim_evtchn_close(struct plat_evtchn *ev)
{
	/* Closing the connection makes xensimd close every port. */
	simctl_close(ev->sc);
	for (uint32_t p = 0; p < ev->nr_ports; p++)
		if (ev->ports[p])
			port_drop(ev, p);
	free(ev->ports);
	close(ev->epfd);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

static int sim_evtchn_fd(struct plat_evtchn *ev)
{
	return ev->epfd;
}

static struct sim_port *port_find(struct plat_evtchn *ev, uint32_t port)
{
	return port < ev->nr_ports ? ev->ports[port] : NULL;
}

/* Takes ownership of the fds whatever happens. */
static int port_add(struct plat_evtchn *ev, uint32_t port, int fd_in, int fd_out)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = port };
	struct sim_port *sp = NULL;
	int r;

	if (port >= ev->nr_ports) {
		uint32_t n = port + 64;
		struct sim_port **np = realloc(ev->ports, n * sizeof(*np));

		if (!np) {
			r = -ENOMEM;
			goto fail;
		}
		memset(np + ev->nr_ports, 0, (n - ev->nr_ports) * sizeof(*np));
		ev->ports = np;
		ev->nr_ports = n;
	}
	if (ev->ports[port]) {
		r = -EPROTO;	/* xensimd gave us a port we hold */
		goto fail;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		r = -ENOMEM;
		goto fail;
	}
	/* One-shot is the mask: once reported, the port stays quiet until
	 * unmask re-arms it; the eventfd counts what arrives meanwhile. */
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd_in, &e) < 0) {
		r = -errno;
		goto fail;
	}
	sp->fd_in = fd_in;
	sp->fd_out = fd_out;
	ev->ports[port] = sp;
	return 0;
fail:
	free(sp);
	close(fd_in);
	close(fd_out);
	return r;
}

/* A port xensimd bound for us but we could not track is closed again. */
static int port_bind_finish(struct plat_evtchn *ev, uint32_t port, int fd_in, int fd_out)
{
	int r = port_add(ev, port, fd_in, fd_out);

	if (r < 0 && r != -EPROTO)
		simctl_evtchn_unbind(ev->sc, port);
	return r;
}

static int sim_evtchn_bind_unbound(struct plat_evtchn *ev, uint32_t remote_domid,
				   uint32_t *ret_port)
{
	uint32_t port;
	int fd_in, fd_out, r;

	pthread_mutex_lock(&ev->lock);
	r = simctl_evtchn_alloc_unbound(ev->sc, remote_domid, &port, &fd_in, &fd_out);
	if (r == 0)
		r = port_bind_finish(ev, port, fd_in, fd_out);
	pthread_mutex_unlock(&ev->lock);
	if (r == 0)
		*ret_port = port;
	return r;
}

static int sim_evtchn_bind_interdomain(struct plat_evtchn *ev, uint32_t remote_domid,
				       uint32_t remote_port, uint32_t *ret_port)
{
	uint32_t port;
	int fd_in, fd_out, r;

	pthread_mutex_lock(&ev->lock);
	r = simctl_evtchn_bind_interdomain(ev->sc, remote_domid, remote_port, &port,
					   &fd_in, &fd_out);
	if (r == 0)
		r = port_bind_finish(ev, port, fd_in, fd_out);
	pthread_mutex_unlock(&ev->lock);
	if (r == 0)
		*ret_port = port;
	return r;
}

static int sim_evtchn_unbind(struct plat_evtchn *ev, uint32_t port)
{
	int r;

	pthread_mutex_lock(&ev->lock);
	if (!port_find(ev, port)) {
		r = -ENOTCONN;	/* as the evtchn driver says for ports not ours */
		goto out;
	}
	r = simctl_evtchn_unbind(ev->sc, port);
	port_drop(ev, port);
out:
	pthread_mutex_unlock(&ev->lock);
	return r;
}

static int sim_evtchn_notify(struct plat_evtchn *ev, uint32_t port)
{
	static const uint64_t one = 1;
	struct sim_port *sp;
	int r = 0;

	pthread_mutex_lock(&ev->lock);
	sp = port_find(ev, port);
	if (!sp)
		r = -ENOTCONN;
	/* EAGAIN means the counter is saturated: the event is pending anyway. */
	else if (write(sp->fd_out, &one, sizeof(one)) < 0 && errno != EAGAIN)
		r = -errno;
	pthread_mutex_unlock(&ev->lock);
	return r;
}

static int sim_evtchn_pending(struct plat_evtchn *ev, uint32_t *ret_port)
{
	struct epoll_event e;
	struct sim_port *sp;
	uint64_t v;
	int n, r;

	pthread_mutex_lock(&ev->lock);
	n = epoll_wait(ev->epfd, &e, 1, 0);
	if (n < 0) {
		r = errno == EINTR ? -EAGAIN : -errno;
		goto out;
	}
	if (n == 0) {
		r = -EAGAIN;
		goto out;
	}
	sp = port_find(ev, e.data.u32);
	if (!sp) {
		r = -EAGAIN;
		goto out;
	}
	/* Consume what fired; later notifications count up again and show
	 * after unmask. */
	if (read(sp->fd_in, &v, sizeof(v)) < 0 && errno != EAGAIN) {
		r = -errno;
		goto out;
	}
	sp->masked = true;
	*ret_port = e.data.u32;
	r = 0;
out:
	pthread_mutex_unlock(&ev->lock);
	return r;
}

static int sim_evtchn_unmask(struct plat_evtchn *ev, uint32_t port)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = port };
	struct sim_port *sp;
	int r = 0;

	pthread_mutex_lock(&ev->lock);
	sp = port_find(ev, port);
	if (!sp)
		r = -ENOTCONN;
	else if (sp->masked) {
		if (epoll_ctl(ev->epfd, EPOLL_CTL_MOD, sp->fd_in, &e) < 0)
			r = -errno;
		else
			sp->masked = false;
	}
	pthread_mutex_unlock(&ev->lock);
	return r;
}

const struct platform_ops platform_sim_ops = {
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.gnttab_open = sim_gnttab_open,
	.gnttab_close = sim_gnttab_close,
	.gnttab_map = sim_gnttab_map,
	.gnttab_unmap = sim_gnttab_unmap,
	.gnttab_copy = sim_gnttab_copy,
	.gntshr_open = sim_gntshr_open,
	.gntshr_close = sim_gntshr_close,
	.gntshr_share = sim_gntshr_share,
	.gntshr_unshare = sim_gntshr_unshare,
	.evtchn_open = sim_evtchn_open,
	.evtchn_close = sim_evtchn_close,
	.evtchn_fd = sim_evtchn_fd,
	.evtchn_bind_unbound = sim_evtchn_bind_unbound,
	.evtchn_bind_interdomain = sim_evtchn_bind_interdomain,
	.evtchn_unbind = sim_evtchn_unbind,
	.evtchn_notify = sim_evtchn_notify,
	.evtchn_pending = sim_evtchn_pending,
	.evtchn_unmask = sim_evtchn_unmask,
};
