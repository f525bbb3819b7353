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

/* Format 2: requests in the fixed-width record below. Format 1 stored the
 * daemon's struct blkif_req raw, so any change to that struct changed the
 * file; it is still read (converted at open), see journal_upgrade_v1. The
 * journal never leaves the host that wrote it: native byte order. */
#define JOURNAL_VERSION	2u

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

/* The record's own limits, fixed by the protocol (blkif.h), not by what
 * this daemon happens to decode. */
#define JOURNAL_REC_SEGS		11u
#define JOURNAL_REC_INDIRECT_PAGES	8u

struct journal_seg {
	uint32_t gref;
	uint8_t first_sect;
	uint8_t last_sect;
	uint8_t pad[2];
};

/* One per request slot of the ring thread (its rreq array index): what
 * the guest put in the slot, every field at a fixed offset, explicit
 * padding (zero). An INDIRECT request's segments are not here: they are
 * read again from its indirect pages, which the guest keeps granted until
 * it has the answer. */
struct journal_req {
	_Atomic uint32_t inflight;	/* set after the record, cleared on answer */
	uint32_t seq;			/* ring index the request was read from */
	uint8_t operation;		/* BLKIF_OP_* as in the slot */
	uint8_t indirect_op;
	uint8_t discard_flag;
	uint8_t pad;
	uint16_t nr_segments;
	uint16_t handle;
	uint64_t id;
	uint64_t sector_number;
	uint64_t discard_nr_sectors;
	struct journal_seg seg[JOURNAL_REC_SEGS];
	uint32_t indirect_grefs[JOURNAL_REC_INDIRECT_PAGES];
};

_Static_assert(sizeof(struct journal_seg) == 8, "journal_seg is 8 bytes");
_Static_assert(sizeof(struct journal_req) == 160, "journal_req is 160 bytes");
_Static_assert(BLKIF_MAX_SEGMENTS_PER_REQUEST <= JOURNAL_REC_SEGS &&
	       BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST <= JOURNAL_REC_INDIRECT_PAGES,
	       "the journal record holds every request the protocol has");

/* The response log, indexed by response ring index modulo nr_ents (the
 * same in formats 1 and 2). */
struct journal_rsp {
	uint32_t idx;			/* ring index of the response */
	uint32_t seq;			/* ring index of the request it answers */
	uint64_t id;
	uint8_t op;
	int16_t status;
};

_Static_assert(sizeof(struct journal_rsp) == 24, "journal_rsp is 24 bytes");

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

/* Creates j->path afresh (a stale file there is replaced, never reused),
 * maps it and writes an empty journal of the current format. */
static int journal_init_file(struct journal *j, const struct journal_ring_id *id,
			     unsigned int nr_ents)
{
	size_t len = journal_size(nr_ents);
	int r;

	j->fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0)
		return -errno;
	if (ftruncate(j->fd, (off_t)len) < 0)
		return -errno;
	r = journal_map(j, len);
	if (r < 0)
		return r;
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
	return 0;
}

int journal_create(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		   struct journal **ret)
{
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
	r = journal_init_file(j, id, nr_ents);
	if (r < 0)
		goto fail;
	*ret = j;
	return 0;
fail:
	if (j->fd >= 0)
		unlink(j->path);
	journal_free(j);
	return r;
}

static void journal_rec_fill(struct journal_req *e, uint32_t seq, const struct blkif_req *req);

/* The parts of the identity that name the same ring: the start index is
 * where that connection began, not part of who it is. */
static bool journal_id_same(const struct journal_ring_id *a, const struct journal_ring_id *b)
{
	struct journal_ring_id x = *a, y = *b;

	x.start = y.start = 0;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

/* ---- format 1, converted at open ---- */

/* Format 1's request record: struct blkif_req as the binaries that wrote
 * it laid it out, frozen here. The header recorded its size, so a format 1
 * journal of another layout (another ABI) is refused, never misread. */
struct journal_req_v1 {
	uint32_t inflight;
	uint32_t seq;
	struct {
		uint8_t operation;
		uint8_t indirect_op;
		uint8_t discard_flag;
		uint16_t nr_segments;
		uint16_t handle;
		uint64_t id;
		uint64_t sector_number;
		uint64_t discard_nr_sectors;
		struct {
			uint32_t gref;
			uint8_t first_sect;
			uint8_t last_sect;
		} seg[11];
		uint32_t indirect_grefs[8];
		const void *indirect_segs;	/* junk */
	} req;
};

/* Where the converted journal is written before it replaces the old one:
 * a crash half-way leaves the format 1 file as it was. */
#define JOURNAL_NEW_SUFFIX	".new"

/* Rewrites the format 1 journal at path (open as fd, st) in the current
 * format, under the same name, keeping everything recovery reads: the
 * indices, each slot's request and in-flight mark, the response log.
 * -ESTALE when it is not this ring's journal or not of a layout we know. */
static int journal_upgrade_v1(const char *path, int fd, const struct stat *st,
			      const struct journal_ring_id *id, unsigned int nr_ents)
{
	size_t len = JOURNAL_HDR_SPACE + (size_t)nr_ents * sizeof(struct journal_req_v1) +
		     (size_t)nr_ents * sizeof(struct journal_rsp);
	const struct journal_req_v1 *old_reqs;
	const struct journal_hdr *old;
	struct journal *nj = NULL;
	struct blkif_req req;
	unsigned int k, i;
	char *buf;
	ssize_t n;
	int r;

	if ((size_t)st->st_size != len)
		return -ESTALE;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	n = pread(fd, buf, len, 0);
	if (n != (ssize_t)len) {
		r = n < 0 ? -errno : -ESTALE;
		goto out;
	}
	old = (const struct journal_hdr *)buf;
	old_reqs = (const struct journal_req_v1 *)(buf + JOURNAL_HDR_SPACE);
	if (old->hdr_size != sizeof(struct journal_hdr) ||
	    old->req_size != sizeof(struct journal_req_v1) ||
	    old->rsp_size != sizeof(struct journal_rsp) || old->nr_ents != nr_ents ||
	    !journal_id_same(&old->id, id)) {
		r = -ESTALE;
		goto out;
	}
	nj = calloc(1, sizeof(*nj));
	if (!nj || asprintf(&nj->path, "%s" JOURNAL_NEW_SUFFIX, path) < 0) {
		r = -ENOMEM;
		goto out;
	}
	nj->fd = -1;
	r = journal_init_file(nj, &old->id, nr_ents);
	if (r < 0)
		goto out;
	for (k = 0; k < nr_ents; k++) {
		const struct journal_req_v1 *o = &old_reqs[k];

		memset(&req, 0, sizeof(req));
		req.operation = o->req.operation;
		req.indirect_op = o->req.indirect_op;
		req.discard_flag = o->req.discard_flag;
		req.nr_segments = o->req.nr_segments;
		req.handle = o->req.handle;
		req.id = o->req.id;
		req.sector_number = o->req.sector_number;
		req.discard_nr_sectors = o->req.discard_nr_sectors;
		for (i = 0; i < JOURNAL_REC_SEGS; i++) {
			req.seg[i].gref = o->req.seg[i].gref;
			req.seg[i].first_sect = o->req.seg[i].first_sect;
			req.seg[i].last_sect = o->req.seg[i].last_sect;
		}
		for (i = 0; i < JOURNAL_REC_INDIRECT_PAGES; i++)
			req.indirect_grefs[i] = o->req.indirect_grefs[i];
		journal_rec_fill(&nj->reqs[k], o->seq, &req);
		atomic_store_explicit(&nj->reqs[k].inflight, o->inflight, memory_order_relaxed);
	}
	memcpy(nj->rsps, buf + JOURNAL_HDR_SPACE + (size_t)nr_ents * sizeof(*old_reqs),
	       (size_t)nr_ents * sizeof(struct journal_rsp));
	atomic_store_explicit(&nj->hdr->req_cons, atomic_load(&old->req_cons),
			      memory_order_relaxed);
	atomic_store_explicit(&nj->hdr->rsp_written, atomic_load(&old->rsp_written),
			      memory_order_relaxed);
	/* Everything is in the new file (page cache is all a process crash
	 * needs) before it takes the old one's name. */
	if (rename(nj->path, path) < 0) {
		r = -errno;
		goto out;
	}
	free(nj->path);
	nj->path = NULL;
	r = 0;
out:
	if (nj && nj->path && nj->fd >= 0)
		unlink(nj->path);
	journal_free(nj);
	free(buf);
	return r;
}

int journal_open(const char *dir, const struct journal_ring_id *id, unsigned int nr_ents,
		 struct journal **ret)
{
	size_t len = journal_size(nr_ents);
	struct journal_hdr hdr;
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
	if (!S_ISREG(st.st_mode)) {
		r = -ESTALE;
		goto fail;
	}
	if (pread(j->fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    hdr.magic == JOURNAL_MAGIC && hdr.version != JOURNAL_VERSION) {
		if (hdr.version != 1) {
			r = -EPROTONOSUPPORT;
			goto fail;
		}
		r = journal_upgrade_v1(j->path, j->fd, &st, id, nr_ents);
		if (r < 0)
			goto fail;
		close(j->fd);
		j->fd = open(j->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (j->fd < 0 || fstat(j->fd, &st) < 0) {
			r = -errno;
			goto fail;
		}
	}
	if ((size_t)st.st_size != len) {
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

static void journal_rec_fill(struct journal_req *e, uint32_t seq, const struct blkif_req *req)
{
	unsigned int i;

	e->seq = seq;
	e->operation = req->operation;
	e->indirect_op = req->indirect_op;
	e->discard_flag = req->discard_flag;
	e->nr_segments = req->nr_segments;
	e->handle = req->handle;
	e->id = req->id;
	e->sector_number = req->sector_number;
	e->discard_nr_sectors = req->discard_nr_sectors;
	for (i = 0; i < JOURNAL_REC_SEGS; i++) {
		e->seg[i].gref = req->seg[i].gref;
		e->seg[i].first_sect = req->seg[i].first_sect;
		e->seg[i].last_sect = req->seg[i].last_sect;
	}
	for (i = 0; i < JOURNAL_REC_INDIRECT_PAGES; i++)
		e->indirect_grefs[i] = req->indirect_grefs[i];
}

void journal_consume(struct journal *j, unsigned int slot, uint32_t seq,
		     const struct blkif_req *req)
{
	struct journal_req *e = &j->reqs[slot];

	journal_rec_fill(e, seq, req);
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

void journal_req(const struct journal *j, unsigned int slot, uint32_t *ret_seq,
		 struct blkif_req *ret_req)
{
	const struct journal_req *e = &j->reqs[slot];
	unsigned int i;

	memset(ret_req, 0, sizeof(*ret_req));
	ret_req->operation = e->operation;
	ret_req->indirect_op = e->indirect_op;
	ret_req->discard_flag = e->discard_flag;
	ret_req->nr_segments = e->nr_segments;
	ret_req->handle = e->handle;
	ret_req->id = e->id;
	ret_req->sector_number = e->sector_number;
	ret_req->discard_nr_sectors = e->discard_nr_sectors;
	for (i = 0; i < JOURNAL_REC_SEGS; i++) {
		ret_req->seg[i].gref = e->seg[i].gref;
		ret_req->seg[i].first_sect = e->seg[i].first_sect;
		ret_req->seg[i].last_sect = e->seg[i].last_sect;
	}
	for (i = 0; i < JOURNAL_REC_INDIRECT_PAGES; i++)
		ret_req->indirect_grefs[i] = e->indirect_grefs[i];
	*ret_seq = e->seq;
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

		/* A .new file is a conversion a crash interrupted. */
		if (sscanf(de->d_name, "d%" SCNu32 "-%" SCNu32 "-q%" SCNu32 "%15s", &dom, &dev, &q,
			   tail) != 4 || (strcmp(tail, JOURNAL_SUFFIX) != 0 &&
					  strcmp(tail, JOURNAL_SUFFIX JOURNAL_NEW_SUFFIX) != 0))
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
