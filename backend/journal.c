/* The per-ring recovery journal: a small file on tmpfs, mapped shared, that
 * outlives the process. The ring thread records each consumed request
 * before acting on it and each response before it writes the ring slot, so
 * that a restarted blkbackd can tell, from the journal and the shared
 * rsp_prod alone, which requests were answered and published, which were
 * answered but not published, and which must be issued again. Stores by a
 * killed process stay in the page cache: program order (release stores)
 * is all the durability a process crash needs. A machine crash loses the
 * guest too, so nothing here is ever synced. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkbackd.h"

#define JOURNAL_MAGIC	0x314a4242u	/* "BBJ1" */
#define JOURNAL_VERSION	1u

struct journal_hdr {
	uint32_t magic;			/* written last by journal_create */
	uint32_t version;
	uint32_t hdr_size;		/* the three sizes catch a layout */
	uint32_t req_size;		/* change between binaries */
	uint32_t rsp_size;
	uint32_t nr_ents;
	struct journal_ring_id id;
	/* Every request at a ring index below req_cons was consumed. */
	_Atomic uint32_t req_cons;
	/* Responses at ring indices below rsp_written are in the log. */
	_Atomic uint32_t rsp_written;
};

/* One per request slot of the ring thread (its rreq array index). */
struct journal_req {
	_Atomic uint32_t inflight;	/* set after req and seq, cleared on answer */
	uint32_t seq;			/* ring index the request was read from */
	struct blkif_req req;		/* the private copy; indirect_segs is junk */
};

/* The response log, indexed by response ring index modulo nr_ents. */
struct journal_rsp {
	uint32_t idx;			/* ring index of the response */
	uint32_t seq;			/* ring index of the request it answers */
	uint64_t id;
	uint8_t op;
	int16_t status;
};

struct journal {
	int fd;
	char *path;
	void *map;
	size_t len;
	struct journal_hdr *hdr;
	struct journal_req *reqs;
	struct journal_rsp *rsps;
};

/* The entries start on a cache line after the header: they hold u64s, and
 * the header's size is no multiple of 8. */
#define JOURNAL_HDR_SPACE	((sizeof(struct journal_hdr) + 63) & ~(size_t)63)

static size_t journal_size(unsigned int nr_ents)
{
	return JOURNAL_HDR_SPACE + (size_t)nr_ents * sizeof(struct journal_req) +
	       (size_t)nr_ents * sizeof(struct journal_rsp);
}

static int journal_path(const char *dir, const struct journal_ring_id *id, char **ret)
{
	if (asprintf(ret, "%s/d%" PRIu32 "-%" PRIu32 "-q%" PRIu32 JOURNAL_SUFFIX, dir,
		     id->fe_domid, id->devid, id->queue) < 0)
		return -ENOMEM;
	return 0;
}

static void journal_layout(struct journal *j, unsigned int nr_ents)
{
	j->hdr = j->map;
	j->reqs = (struct journal_req *)((char *)j->map + JOURNAL_HDR_SPACE);
	j->rsps = (struct journal_rsp *)(j->reqs + nr_ents);
}

static int journal_map(struct journal *j, size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	j->map = m;
	j->len = len;
	return 0;
}

static void journal_free(struct journal *j)
{
	if (!j)
		return;
	if (j->map)
		munmap(j->map, j->len);
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j);
}

static int journal_alloc(const char *dir, const struct journal_ring_id *id, struct journal **ret)
{
	struct journal *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	j->fd = -1;
	r = journal_path(dir, id, &j->path);
	if (r < 0) {
		free(j);
		return r;
	}
	*ret = j;
	return 0;
}

/* dir, and its parent (/run/blkbackd outside systemd's RuntimeDirectory). */
static int journal_mkdir(const char *dir)
{
	char *parent = strdup(dir), *slash;
	int r = 0;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0755) < 0 && errno != EEXIST)
			r = -errno;
	}
	free(parent);
	if (r == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		r = -errno;
	return r;
}

int journal_create(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		   struct journal **ret)
{
	size_t len = journal_size(nr_ents);
	struct journal *j;
	int r;

	if (!nr_ents || nr_ents > JOURNAL_MAX_ENTS)
		return -EINVAL;
	r = journal_alloc(dir, id, &j);
	if (r < 0)
		return r;
	r = journal_mkdir(dir);
	if (r < 0)
		goto fail;
	/* A stale journal of an earlier connection is replaced, never reused. */
	j->fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (ftruncate(j->fd, (off_t)len) < 0) {
		r = -errno;
		goto fail;
	}
	r = journal_map(j, len);
	if (r < 0)
		goto fail;
	journal_layout(j, nr_ents);
	j->hdr->version = JOURNAL_VERSION;
	j->hdr->hdr_size = sizeof(struct journal_hdr);
	j->hdr->req_size = sizeof(struct journal_req);
	j->hdr->rsp_size = sizeof(struct journal_rsp);
	j->hdr->nr_ents = nr_ents;
	j->hdr->id = *id;
	atomic_store_explicit(&j->hdr->req_cons, id->start, memory_order_relaxed);
	atomic_store_explicit(&j->hdr->rsp_written, id->start, memory_order_relaxed);
	/* A half-written header never looks valid. */
	atomic_thread_fence(memory_order_release);
	j->hdr->magic = JOURNAL_MAGIC;
	*ret = j;
	return 0;
fail:
	if (j->fd >= 0)
		unlink(j->path);
	journal_free(j);
	return r;
}

/* The parts of the identity that name the same ring: the start index is
 * where that connection began, not part of who it is. */
static bool journal_id_same(const struct journal_ring_id *a, const struct journal_ring_id *b)
{
	struct journal_ring_id x = *a, y = *b;

	x.start = y.start = 0;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

int journal_open(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		 struct journal **ret)
{
	size_t len = journal_size(nr_ents);
	struct journal *j;
	struct stat st;
	int r;

	r = journal_alloc(dir, id, &j);
	if (r < 0)
		return r;
	j->fd = open(j->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (j->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(j->fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size != len) {
		r = -ESTALE;
		goto fail;
	}
	r = journal_map(j, len);
	if (r < 0)
		goto fail;
	journal_layout(j, nr_ents);
	if (j->hdr->magic != JOURNAL_MAGIC || j->hdr->version != JOURNAL_VERSION ||
	    j->hdr->hdr_size != sizeof(struct journal_hdr) ||
	    j->hdr->req_size != sizeof(struct journal_req) ||
	    j->hdr->rsp_size != sizeof(struct journal_rsp) || j->hdr->nr_ents != nr_ents ||
	    !journal_id_same(&j->hdr->id, id)) {
		r = -ESTALE;
		goto fail;
	}
	*ret = j;
	return 0;
fail:
	journal_free(j);
	return r;
}

void journal_close(struct journal *j)
{
	journal_free(j);
}

void journal_remove(struct journal *j)
{
	if (j && j->path)
		unlink(j->path);
	journal_free(j);
}

/* ---- the data path (ring thread only) ---- */

void journal_consume(struct journal *j, unsigned int slot, uint32_t seq,
		     const struct blkif_req *req)
{
	struct journal_req *e = &j->reqs[slot];

	e->seq = seq;
	e->req = *req;
	e->req.indirect_segs = NULL;
	/* The copy before the mark, the mark before the index moves: a crash
	 * in between leaves an entry recovery finds (journal_plan takes the
	 * later of req_cons and the newest entry). */
	atomic_store_explicit(&e->inflight, 1, memory_order_release);
	atomic_store_explicit(&j->hdr->req_cons, seq + 1, memory_order_release);
}

void journal_respond(struct journal *j, uint32_t idx, uint32_t seq, uint64_t id, uint8_t op,
		     int16_t status)
{
	struct journal_rsp *l = &j->rsps[idx % j->hdr->nr_ents];

	l->seq = seq;
	l->id = id;
	l->op = op;
	l->status = status;
	l->idx = idx;
	/* The log entry before the count, the count before the ring slot. */
	atomic_store_explicit(&j->hdr->rsp_written, idx + 1, memory_order_release);
}

void journal_retire(struct journal *j, unsigned int slot)
{
	atomic_store_explicit(&j->reqs[slot].inflight, 0, memory_order_release);
}

/* ---- recovery (main thread, before the ring thread starts) ---- */

/* Oldest first. A request may stay in flight for any number of others
 * (a slow flush while hundreds of reads come and go), so order is by age
 * behind req_cons, not by any fixed window. */
static int cmp_seq(const void *a, const void *b, void *arg)
{
	const struct journal *j = arg;
	uint32_t cons = atomic_load(&j->hdr->req_cons);
	uint32_t age_a = cons - j->reqs[*(const unsigned int *)a].seq;
	uint32_t age_b = cons - j->reqs[*(const unsigned int *)b].seq;

	return age_a > age_b ? -1 : age_a < age_b;
}

/* Was the request consumed at seq answered (its response in the log)?
 * Only the newest nr_ents - 1 log entries are trusted: the slot of the
 * oldest may have been half overwritten by the response being written
 * when we died, and every response older than the newest one had its
 * entry retired before the next was written anyway. */
static bool journal_answered(const struct journal *j, uint32_t seq, uint32_t written)
{
	uint32_t n = j->hdr->nr_ents, have = written - j->hdr->id.start, k;

	/* Log slots never written hold zeros, not responses. */
	for (k = 1; k < n && k <= have; k++) {
		const struct journal_rsp *l = &j->rsps[(written - k) % n];

		if (l->idx == written - k && l->seq == seq)
			return true;
	}
	return false;
}

int journal_plan(struct journal *j, uint32_t rsp_prod, uint32_t req_prod,
		 struct journal_plan *ret)
{
	uint32_t n = j->hdr->nr_ents, written, cons, newest;
	unsigned int k;
	bool any = false;

	memset(ret, 0, sizeof(*ret));
	written = atomic_load(&j->hdr->rsp_written);
	cons = atomic_load(&j->hdr->req_cons);
	/* A request marked in flight whose index did not move yet. */
	newest = cons;
	for (k = 0; k < n; k++) {
		const struct journal_req *e = &j->reqs[k];

		if (!atomic_load(&e->inflight))
			continue;
		if (!any || (int32_t)(e->seq + 1 - newest) > 0)
			newest = e->seq + 1;
		any = true;
	}
	if ((int32_t)(newest - cons) > 0) {
		/* Only the request being recorded when we died can be ahead. */
		if (newest - cons > 1)
			return -EUCLEAN;
		cons = newest;
	}
	/* The guest writes rsp_prod too: only what we could have published
	 * and a ring's worth of requests are believable. */
	if ((uint32_t)(written - rsp_prod) > n || (uint32_t)(cons - written) > n ||
	    (uint32_t)(req_prod - cons) > n)
		return -EPROTO;
	for (k = 0; k < n; k++) {
		const struct journal_req *e = &j->reqs[k];

		if (!atomic_load(&e->inflight))
			continue;
		if (journal_answered(j, e->seq, written)) {
			ret->answered[ret->nr_answered++] = k;
			continue;
		}
		ret->replay[ret->nr_replay++] = k;
	}
	/* Issue again in the order the guest queued them (barriers!). */
	qsort_r(ret->replay, ret->nr_replay, sizeof(ret->replay[0]), cmp_seq, j);
	ret->req_cons = cons;
	ret->rsp_written = written;
	ret->rsp_published = rsp_prod;
	return 0;
}

const struct blkif_req *journal_req(const struct journal *j, unsigned int slot, uint32_t *ret_seq)
{
	*ret_seq = j->reqs[slot].seq;
	return &j->reqs[slot].req;
}

int journal_rsp(const struct journal *j, uint32_t idx, struct blkif_rsp *ret)
{
	const struct journal_rsp *l = &j->rsps[idx % j->hdr->nr_ents];

	if (l->idx != idx)
		return -ENOENT;
	ret->id = l->id;
	ret->operation = l->op;
	ret->status = l->status;
	return 0;
}

/* ---- housekeeping (main thread) ---- */

int journal_sweep(const char *dir, bool (*keep)(void *opaque, uint32_t fe_domid,
						 uint32_t devid, uint32_t queue),
		  void *opaque, unsigned int *ret_removed)
{
	unsigned int removed = 0;
	struct dirent *de;
	DIR *dp;

	dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dp))) {
		uint32_t dom, dev, q;
		char tail[16];

		if (sscanf(de->d_name, "d%" SCNu32 "-%" SCNu32 "-q%" SCNu32 "%15s", &dom, &dev, &q,
			   tail) != 4 || strcmp(tail, JOURNAL_SUFFIX) != 0)
			continue;
		if (keep(opaque, dom, dev, q))
			continue;
		if (unlinkat(dirfd(dp), de->d_name, 0) == 0)
			removed++;
	}
	closedir(dp);
	if (ret_removed)
		*ret_removed = removed;
	return 0;
}
