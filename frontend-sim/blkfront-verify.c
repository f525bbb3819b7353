/* Data verification: every 512-byte sector blkfront-sim writes carries a
 * stamp (magic, its own disk address, a generation, a checksum over the
 * rest), and a per-sector map remembers which generations a later read may
 * find: the acknowledged one, or also the one of a write that never got an
 * answer; zeros after a discard. Range locks keep requests in flight from
 * overlapping a write, so every other outcome is a real error. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blkfront.h"
#include "log.h"

#define SECT 512u
#define STATE_MAGIC "BFVSTAT1"

enum {
	VS_ALT = 1 << 0,	/* alt is acceptable too (write without a verdict) */
	VS_ZERO_OK = 1 << 1,	/* discarded: zeros are acceptable too */
	VS_ANY = 1 << 2,	/* undefined (write answered with an error) */
};

struct bf_vsect {
	uint32_t gen;		/* acknowledged generation; 0 = never written */
	uint32_t alt;
	uint8_t flags;
	uint8_t wlock;		/* a write or discard in flight */
	uint16_t rlock;		/* reads in flight */
};

struct bf_verify {
	uint64_t first, nr;	/* 512-byte sectors covered */
	uint64_t next_gen;
	uint64_t checked;
	struct bf_vsect *map;
};

/* On-disk form of one map entry for --state. */
struct bf_vsect_disk {
	uint32_t gen, alt;
	uint8_t flags, pad[3];
};

struct bf_vstate_hdr {
	char magic[8];
	uint64_t first, nr, next_gen;
};

static uint64_t ld64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void st64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Over every 8-byte word of the sector except the checksum's own. */
static uint64_t stamp_sum(const unsigned char *b)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	unsigned int i;

	for (i = 0; i < SECT; i += 8) {
		if (i == 24)
			continue;
		h = (h ^ ld64(b + i)) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return mix64(h);
}

void bf_stamp_fill(void *buf, uint64_t sector, uint64_t gen)
{
	unsigned char *b = buf;
	uint64_t x = mix64(sector * 0x9e3779b97f4a7c15ull ^ gen) | 1;
	unsigned int i;

	st64(b, BF_STAMP_MAGIC);
	st64(b + 8, sector);
	st64(b + 16, gen);
	for (i = 32; i < SECT; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		st64(b + i, x);
	}
	st64(b + 24, stamp_sum(b));
}

int bf_stamp_check(const void *buf, uint64_t sector, uint64_t *ret_gen)
{
	const unsigned char *b = buf;

	if (ld64(b) != BF_STAMP_MAGIC)
		return -ENOENT;
	if (ld64(b + 8) != sector || ld64(b + 24) != stamp_sum(b))
		return -EINVAL;
	*ret_gen = ld64(b + 16);
	return 0;
}

static bool sector_is_zero(const unsigned char *b)
{
	unsigned int i;

	for (i = 0; i < SECT; i += 8)
		if (ld64(b + i))
			return false;
	return true;
}

int bf_verify_new(uint64_t first_sector, uint64_t nr_sectors, struct bf_verify **ret)
{
	struct bf_verify *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->map = calloc(nr_sectors ? nr_sectors : 1, sizeof(*v->map));
	if (!v->map) {
		free(v);
		log_err("verify: no memory for a map of %" PRIu64 " sectors (limit --size)",
			nr_sectors);
		return -ENOMEM;
	}
	v->first = first_sector;
	v->nr = nr_sectors;
	v->next_gen = 1;
	*ret = v;
	return 0;
}

void bf_verify_free(struct bf_verify *v)
{
	if (!v)
		return;
	free(v->map);
	free(v);
}

static struct bf_vsect *vs_get(const struct bf_verify *v, uint64_t sector)
{
	if (sector < v->first || sector - v->first >= v->nr)
		return NULL;
	return &v->map[sector - v->first];
}

uint64_t bf_verify_gen_next(struct bf_verify *v)
{
	/* Generations live in 32 bits in the map; wrapping would take
	 * four billion writes, and 0 means "never written". */
	if (v->next_gen > UINT32_MAX)
		v->next_gen = 1;
	return v->next_gen++;
}

bool bf_verify_range_is_free(const struct bf_verify *v, uint64_t sector,
			     uint32_t nr_sect, bool writes)
{
	uint32_t i;

	for (i = 0; i < nr_sect; i++) {
		const struct bf_vsect *e = vs_get(v, sector + i);

		if (!e)
			continue;
		if (e->wlock || (writes && e->rlock))
			return false;
	}
	return true;
}

void bf_verify_range_lock(struct bf_verify *v, uint64_t sector, uint32_t nr_sect,
			  bool writes)
{
	uint32_t i;

	for (i = 0; i < nr_sect; i++) {
		struct bf_vsect *e = vs_get(v, sector + i);

		if (!e)
			continue;
		if (writes)
			e->wlock = 1;
		else
			e->rlock++;
	}
}

void bf_verify_range_unlock(struct bf_verify *v, uint64_t sector, uint32_t nr_sect,
			    bool writes)
{
	uint32_t i;

	for (i = 0; i < nr_sect; i++) {
		struct bf_vsect *e = vs_get(v, sector + i);

		if (!e)
			continue;
		if (writes)
			e->wlock = 0;
		else if (e->rlock)
			e->rlock--;
	}
}

void bf_verify_write_submitted(struct bf_verify *v, uint64_t sector,
			       uint32_t nr_sect, uint64_t gen)
{
	uint32_t i;

	for (i = 0; i < nr_sect; i++) {
		struct bf_vsect *e = vs_get(v, sector + i);

		if (!e)
			continue;
		/* A second write without a verdict: three possible contents
		 * are more than the map holds, so accept any stamp. */
		if (e->flags & VS_ALT)
			e->flags |= VS_ANY;
		e->alt = (uint32_t)gen;
		e->flags |= VS_ALT;
	}
}

void bf_verify_write_done(struct bf_verify *v, uint64_t sector, uint32_t nr_sect,
			  uint64_t gen, bool okay)
{
	uint32_t i;

	for (i = 0; i < nr_sect; i++) {
		struct bf_vsect *e = vs_get(v, sector + i);

		if (!e)
			continue;
		if (okay) {
			e->gen = (uint32_t)gen;
			e->alt = 0;
			e->flags = 0;
		} else {
			e->flags |= VS_ANY;
		}
	}
}

void bf_verify_discard_done(struct bf_verify *v, uint64_t sector, uint32_t nr_sect,
			    bool okay)
{
	uint32_t i;

	/* After a discard the old data or zeros may be read back. */
	for (i = 0; i < nr_sect; i++) {
		struct bf_vsect *e = vs_get(v, sector + i);

		if (e && okay)
			e->flags |= VS_ZERO_OK;
	}
}

bool bf_verify_sector_is_known(const struct bf_verify *v, uint64_t sector)
{
	const struct bf_vsect *e = vs_get(v, sector);

	return e && (e->gen || (e->flags & VS_ALT));
}

uint64_t bf_verify_nr_checked(const struct bf_verify *v)
{
	return v ? v->checked : 0;
}

uint64_t bf_verify_read(struct bf_verify *v, struct bf_dev *dev, const void *buf,
			uint64_t sector, uint32_t nr_sect)
{
	const unsigned char *b = buf;
	uint64_t bad = 0;
	uint32_t i;

	for (i = 0; i < nr_sect; i++, b += SECT) {
		const struct bf_vsect *e = vs_get(v, sector + i);
		uint64_t s = sector + i, g = 0;
		int rc = bf_stamp_check(b, s, &g);
		const char *why = NULL;

		if (rc == -EINVAL) {
			why = "stamp with a wrong address or checksum (torn or misdirected)";
		} else if (!e || !e->gen || (e->flags & VS_ANY)) {
			/* Unknown content: only self-consistency counts. */
			continue;
		} else if ((e->flags & VS_ZERO_OK) && sector_is_zero(b)) {
			v->checked++;
			continue;
		} else if (rc == -ENOENT) {
			why = "no stamp where one was written";
		} else if (g == e->gen || ((e->flags & VS_ALT) && g == e->alt)) {
			v->checked++;
			continue;
		} else {
			why = "stale or foreign generation";
		}
		bad++;
		if (bad <= 5)
			bf_fail(dev, "verify: sector %" PRIu64 ": %s (expected generation %u%s%s, "
				"found %s %" PRIu64 ")", s, why, e ? e->gen : 0,
				e && (e->flags & VS_ALT) ? " or " : "",
				e && (e->flags & VS_ALT) ? "the unanswered write's" : "",
				rc == 0 ? "generation" : "stamp of sector",
				rc == 0 ? g : ld64(b + 8));
		else
			dev->failures++;
	}
	return bad;
}

int bf_verify_save(const struct bf_verify *v, const char *path)
{
	struct bf_vstate_hdr h;
	struct bf_vsect_disk d;
	char tmp[4096];
	FILE *f;
	uint64_t i;
	int ret = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		ret = -errno;
		log_errno(LOG_LEVEL_ERR, ret, "%s", tmp);
		return ret;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, STATE_MAGIC, sizeof(h.magic));
	h.first = v->first;
	h.nr = v->nr;
	h.next_gen = v->next_gen;
	if (fwrite(&h, sizeof(h), 1, f) != 1)
		ret = -EIO;
	for (i = 0; i < v->nr && ret == 0; i++) {
		memset(&d, 0, sizeof(d));
		d.gen = v->map[i].gen;
		d.alt = v->map[i].alt;
		d.flags = v->map[i].flags;
		/* A write still locked never got its answer: both outcomes
		 * stay possible for the next run. */
		if (fwrite(&d, sizeof(d), 1, f) != 1)
			ret = -EIO;
	}
	if (ret == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		ret = errno ? -errno : -EIO;
	if (fclose(f) != 0 && ret == 0)
		ret = -EIO;
	if (ret == 0 && rename(tmp, path) != 0)
		ret = -errno;
	if (ret < 0) {
		log_errno(LOG_LEVEL_ERR, ret, "cannot save the verify state to %s", path);
		unlink(tmp);
	}
	return ret;
}

int bf_verify_load(struct bf_verify *v, const char *path)
{
	struct bf_vstate_hdr h;
	struct bf_vsect_disk d;
	FILE *f = fopen(path, "r");
	uint64_t i;
	int ret = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	if (fread(&h, sizeof(h), 1, f) != 1 ||
	    memcmp(h.magic, STATE_MAGIC, sizeof(h.magic)) != 0) {
		log_err("%s: not a blkfront-sim verify state file", path);
		ret = -EINVAL;
		goto out;
	}
	if (h.first != v->first || h.nr != v->nr) {
		log_err("%s: state covers sectors %" PRIu64 "+%" PRIu64 ", this run %"
			PRIu64 "+%" PRIu64 ": use the same --offset and --size", path,
			h.first, h.nr, v->first, v->nr);
		ret = -EINVAL;
		goto out;
	}
	for (i = 0; i < v->nr; i++) {
		if (fread(&d, sizeof(d), 1, f) != 1) {
			log_err("%s: truncated", path);
			ret = -EINVAL;
			goto out;
		}
		v->map[i].gen = d.gen;
		v->map[i].alt = d.alt;
		v->map[i].flags = d.flags & (VS_ALT | VS_ZERO_OK | VS_ANY);
	}
	v->next_gen = h.next_gen ? h.next_gen : 1;
out:
	fclose(f);
	return ret;
}
