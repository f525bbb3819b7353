/* The persistent grant cache of one ring (feature-persistent): a frontend
 * that offers it reuses a fixed set of granted pages, so each is mapped
 * once, on first use, and data moves by memcpy instead of a grant copy per
 * segment. Bounded: past the limit the least recently used page is
 * unmapped, and pages idle for long are unmapped too. Ring thread only.
 * Copies to and from these pages are synchronous on the ring thread, so no
 * page is in use between calls and eviction never waits for one. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "blkbackd.h"

#define PGRANT_BUCKETS	256u	/* a power of two */

struct pgrant {
	uint32_t gref;
	void *page;
	uint64_t last_used;		/* ns, CLOCK_MONOTONIC */
	struct pgrant *hnext;		/* hash chain */
	struct pgrant *older, *newer;	/* LRU list */
};

struct pgrant_cache {
	struct plat_gnttab *gt;
	uint32_t domid;
	unsigned int max, count;
	struct pgrant *buckets[PGRANT_BUCKETS];
	struct pgrant *oldest, *newest;
};

int pgrant_cache_new(struct plat_gnttab *gt, uint32_t domid, unsigned int max,
		     struct pgrant_cache **ret)
{
	struct pgrant_cache *c;

	if (!max)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->gt = gt;
	c->domid = domid;
	c->max = max;
	*ret = c;
	return 0;
}

static struct pgrant **pgrant_slot(struct pgrant_cache *c, uint32_t gref)
{
	/* Frontends hand out grant refs densely: the low bits spread well. */
	return &c->buckets[gref & (PGRANT_BUCKETS - 1)];
}

static void lru_unlink(struct pgrant_cache *c, struct pgrant *p)
{
	if (p->older)
		p->older->newer = p->newer;
	else
		c->oldest = p->newer;
	if (p->newer)
		p->newer->older = p->older;
	else
		c->newest = p->older;
	p->older = p->newer = NULL;
}

static void lru_push_newest(struct pgrant_cache *c, struct pgrant *p)
{
	p->older = c->newest;
	p->newer = NULL;
	if (c->newest)
		c->newest->newer = p;
	else
		c->oldest = p;
	c->newest = p;
}

static void pgrant_drop(struct pgrant_cache *c, struct pgrant *p)
{
	struct pgrant **pp;

	for (pp = pgrant_slot(c, p->gref); *pp; pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	}
	lru_unlink(c, p);
	plat_gnttab_unmap(c->gt, p->page, 1);
	free(p);
	c->count--;
}

void *pgrant_get(struct pgrant_cache *c, uint32_t gref, uint64_t now, bool *ret_mapped)
{
	struct pgrant *p;
	void *page;

	*ret_mapped = false;
	for (p = *pgrant_slot(c, gref); p; p = p->hnext) {
		if (p->gref == gref) {
			p->last_used = now;
			lru_unlink(c, p);
			lru_push_newest(c, p);
			return p->page;
		}
	}
	/* Writable whatever the request: the page serves reads and writes
	 * alike, so a frontend offering feature-persistent grants it so. */
	if (plat_gnttab_map(c->gt, c->domid, 1, &gref, true, &page) < 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		plat_gnttab_unmap(c->gt, page, 1);
		return NULL;
	}
	if (c->count >= c->max)
		pgrant_drop(c, c->oldest);
	p->gref = gref;
	p->page = page;
	p->last_used = now;
	p->hnext = *pgrant_slot(c, gref);
	*pgrant_slot(c, gref) = p;
	lru_push_newest(c, p);
	c->count++;
	*ret_mapped = true;
	return page;
}

unsigned int pgrant_expire(struct pgrant_cache *c, uint64_t now, uint64_t idle_ns)
{
	unsigned int n = 0;

	while (c->oldest && now - c->oldest->last_used >= idle_ns) {
		pgrant_drop(c, c->oldest);
		n++;
	}
	return n;
}

unsigned int pgrant_count(const struct pgrant_cache *c)
{
	return c ? c->count : 0;
}

void pgrant_cache_free(struct pgrant_cache *c)
{
	if (!c)
		return;
	while (c->oldest)
		pgrant_drop(c, c->oldest);
	free(c);
}
