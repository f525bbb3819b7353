/* A simulated domain's memory: sealed memfds for RAM, the v1 grant table,
 * the guest's allocator header and dom0's active (pin) table, plus the
 * grant entry state machine that Xen runs in the hypervisor (pin, unpin,
 * grant, end access), done here with atomics on the shared entries. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simshm.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

size_t simshm_ram_size(uint32_t ram_pages)
{
	return (size_t)ram_pages * SIMSHM_PAGE_SIZE;
}

size_t simshm_gnttab_size(void)
{
	return (size_t)SIMSHM_GRANT_FRAMES * SIMSHM_PAGE_SIZE;
}

static size_t page_round(size_t n)
{
	return (n + SIMSHM_PAGE_SIZE - 1) & ~(size_t)(SIMSHM_PAGE_SIZE - 1);
}

size_t simshm_meta_size(uint32_t ram_pages)
{
	return page_round(sizeof(struct simshm_meta) + ((size_t)ram_pages + 63) / 64 * 8);
}

size_t simshm_active_size(void)
{
	return page_round(sizeof(struct simshm_active));
}

size_t simshm_pinlog_size(void)
{
	return (size_t)SIMSHM_PINLOG_RECS * sizeof(struct simshm_pinrec);
}

/* Sealed so that no holder (the guest least of all) can shrink a memfd
 * under another process's mapping, which would SIGBUS the backend. */
static int memfd_sized(const char *name, size_t size, int *ret_fd)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size) < 0 || fcntl(fd, F_ADD_SEALS, SEALS) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int simshm_pinlog_create(int *ret_fd)
{
	return memfd_sized("pinlog", simshm_pinlog_size(), ret_fd);
}

int simshm_map(int fd, size_t size, void **ret)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*ret = p;
	return 0;
}

int simshm_check_size(int fd, size_t size)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size < size)
		return -EPROTO;
	/* An unsealed memfd could shrink under our mapping. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) != (F_SEAL_SHRINK | F_SEAL_SEAL))
		return -EPROTO;
	return 0;
}

static int active_init(struct simshm_active *a, uint32_t domid)
{
	pthread_mutexattr_t attr;
	uint32_t i;
	int r;

	r = -pthread_mutexattr_init(&attr);
	if (r < 0)
		return r;
	r = -pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (r == 0)
		r = -pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	for (i = 0; r == 0 && i < SIMSHM_NR_LOCKS; i++)
		r = -pthread_mutex_init(&a->locks[i], &attr);
	pthread_mutexattr_destroy(&attr);
	if (r < 0)
		return r;
	a->domid = domid;
	a->magic = SIMSHM_ACTIVE_MAGIC;
	return 0;
}

void simshm_fds_close(struct simshm_fds *fds)
{
	int *all[] = { &fds->ram, &fds->gnttab, &fds->meta, &fds->active };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (*all[i] >= 0)
			close(*all[i]);
		*all[i] = -1;
	}
}

int simshm_domain_create(uint32_t domid, uint32_t ram_pages, struct simshm_fds *ret)
{
	struct simshm_fds f = { -1, -1, -1, -1 };
	struct simshm_meta *m = NULL;
	struct simshm_active *a = NULL;
	char name[32];
	int r;

	if (ram_pages == 0 || ram_pages > SIMSHM_RAM_PAGES_MAX)
		return -EINVAL;
	snprintf(name, sizeof(name), "d%u-ram", domid);
	r = memfd_sized(name, simshm_ram_size(ram_pages), &f.ram);
	if (r < 0)
		goto fail;
	snprintf(name, sizeof(name), "d%u-gnttab", domid);
	r = memfd_sized(name, simshm_gnttab_size(), &f.gnttab);
	if (r < 0)
		goto fail;
	snprintf(name, sizeof(name), "d%u-meta", domid);
	r = memfd_sized(name, simshm_meta_size(ram_pages), &f.meta);
	if (r < 0)
		goto fail;
	snprintf(name, sizeof(name), "d%u-active", domid);
	r = memfd_sized(name, simshm_active_size(), &f.active);
	if (r < 0)
		goto fail;

	r = simshm_map(f.meta, simshm_meta_size(ram_pages), (void **)&m);
	if (r < 0)
		goto fail;
	m->domid = domid;
	m->ram_pages = ram_pages;
	m->nr_grants = SIMSHM_NR_GRANTS;
	/* Refs 0..7 are Xen's reserved entries (console, xenstore...). */
	m->gref_bitmap[0] = (1ull << SIMSHM_NR_RESERVED) - 1;
	m->gref_hint = SIMSHM_NR_RESERVED;
	m->magic = SIMSHM_META_MAGIC;
	munmap(m, simshm_meta_size(ram_pages));

	r = simshm_map(f.active, simshm_active_size(), (void **)&a);
	if (r < 0)
		goto fail;
	r = active_init(a, domid);
	munmap(a, simshm_active_size());
	if (r < 0)
		goto fail;
	*ret = f;
	return 0;
fail:
	simshm_fds_close(&f);
	return r;
}

/* Claims a clear bit in bitmap[0..nbits) starting near *hint. */
static int bitmap_claim(uint64_t *bitmap, uint32_t nbits, uint32_t *hint, uint32_t *ret_bit)
{
	uint32_t nwords = (nbits + 63) / 64;
	uint32_t start = __atomic_load_n(hint, __ATOMIC_RELAXED) / 64;

	for (uint32_t i = 0; i < nwords; i++) {
		uint32_t w = (start + i) % nwords;
		uint64_t cur = __atomic_load_n(&bitmap[w], __ATOMIC_RELAXED);

		for (;;) {
			uint64_t free_bits = ~cur;
			uint32_t bit;

			if (w == nwords - 1 && nbits % 64)
				free_bits &= (1ull << (nbits % 64)) - 1;
			if (!free_bits)
				break;
			bit = __builtin_ctzll(free_bits);
			/* Acquire pairs with the release in bitmap_release so the
			 * previous user's last writes are behind us. */
			if (__atomic_compare_exchange_n(&bitmap[w], &cur, cur | (1ull << bit), false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				*ret_bit = w * 64 + bit;
				__atomic_store_n(hint, *ret_bit + 1 < nbits ? *ret_bit + 1 : 0,
						 __ATOMIC_RELAXED);
				return 0;
			}
		}
	}
	return -ENOSPC;
}

static void bitmap_release(uint64_t *bitmap, uint32_t bit)
{
	__atomic_fetch_and(&bitmap[bit / 64], ~(1ull << (bit % 64)), __ATOMIC_RELEASE);
}

int simshm_ram_alloc(struct simshm_meta *m, uint32_t ram_pages, uint32_t *ret_frame)
{
	return bitmap_claim(m->ram_bitmap, ram_pages, &m->ram_hint, ret_frame);
}

void simshm_ram_free(struct simshm_meta *m, uint32_t ram_pages, uint32_t frame)
{
	if (frame < ram_pages)
		bitmap_release(m->ram_bitmap, frame);
}

int simshm_gref_alloc(struct simshm_meta *m, uint32_t *ret_ref)
{
	return bitmap_claim(m->gref_bitmap, SIMSHM_NR_GRANTS, &m->gref_hint, ret_ref);
}

void simshm_gref_free(struct simshm_meta *m, uint32_t ref)
{
	if (ref >= SIMSHM_NR_RESERVED && ref < SIMSHM_NR_GRANTS)
		bitmap_release(m->gref_bitmap, ref);
}

void simshm_active_lock(struct simshm_active *a, uint32_t ref)
{
	pthread_mutex_t *l = &a->locks[ref % SIMSHM_NR_LOCKS];

	/* A process killed inside the few instructions under this lock may
	 * leave a pin without its record (or the reverse); there is no way
	 * to tell, so the state is declared consistent and used as is. */
	if (pthread_mutex_lock(l) == EOWNERDEAD)
		pthread_mutex_consistent(l);
}

void simshm_active_unlock(struct simshm_active *a, uint32_t ref)
{
	pthread_mutex_unlock(&a->locks[ref % SIMSHM_NR_LOCKS]);
}

static uint32_t combo_load(struct simshm_gref *e)
{
	return __atomic_load_n(&e->combo, __ATOMIC_ACQUIRE);
}

int simshm_grant_pin(struct simshm_gref *gt, struct simshm_active *a,
		     uint32_t nr_grants, uint32_t ram_pages, uint32_t ref,
		     uint32_t domid, bool readonly, uint32_t *ret_frame,
		     struct simshm_pinrec *rec)
{
	struct simshm_pin *pin;
	union simshm_combo cur, new;
	uint32_t frame;
	int retries = 0;
	int st = GNTST_okay;

	if (ref >= nr_grants)
		return GNTST_bad_gntref;
	pin = &a->pins[ref];
	simshm_active_lock(a, ref);
	if (pin->total >= SIMSHM_PIN_MAX) {
		st = GNTST_no_space;
		goto out;
	}
	/* Like Xen's _set_status: check the entry and set the in-use bits in
	 * one compare-and-swap of flags+domid, so the guest's end-access
	 * (a swap to 0 that fails while the bits are set) cannot slip in. */
	cur.word = combo_load(&gt[ref]);
	for (;;) {
		if ((cur.s.flags & (GTF_type_mask | GTF_sub_page)) != GTF_permit_access ||
		    cur.s.domid != domid) {
			st = GNTST_general_error;
			goto out;
		}
		if (!readonly && (cur.s.flags & GTF_readonly)) {
			st = GNTST_general_error;
			goto out;
		}
		new = cur;
		new.s.flags |= GTF_reading | (readonly ? 0 : GTF_writing);
		if (__atomic_compare_exchange_n(&gt[ref].combo, &cur.word, new.word, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
		/* The guest keeps changing the entry under us. */
		if (retries++ == 4) {
			st = GNTST_general_error;
			goto out;
		}
	}
	pin->total++;
	if (!readonly)
		pin->writers++;
	/* Read after the bits are set: from here the guest may not reuse
	 * the entry, and a frame it changes later is its own business. */
	frame = __atomic_load_n(&gt[ref].frame, __ATOMIC_ACQUIRE);
	if (frame >= ram_pages) {
		simshm_active_unlock(a, ref);
		simshm_grant_unpin(gt, a, ref, readonly, NULL);
		return GNTST_bad_page;
	}
	if (rec) {
		rec->domid = a->domid;
		rec->ref = ref;
		rec->readonly = readonly;
		__atomic_store_n(&rec->pinned, 1, __ATOMIC_RELEASE);
	}
	*ret_frame = frame;
out:
	simshm_active_unlock(a, ref);
	return st;
}

void simshm_grant_unpin(struct simshm_gref *gt, struct simshm_active *a,
			uint32_t ref, bool readonly, struct simshm_pinrec *rec)
{
	struct simshm_pin *pin = &a->pins[ref];
	union simshm_combo clear = { 0 };

	simshm_active_lock(a, ref);
	if (pin->total == 0 || (!readonly && pin->writers == 0))
		goto out;	/* not ours: never underflow */
	pin->total--;
	if (!readonly)
		pin->writers--;
	if (pin->writers == 0)
		clear.s.flags |= GTF_writing;
	if (pin->total == 0)
		clear.s.flags |= GTF_reading;
	if (clear.word)
		__atomic_fetch_and(&gt[ref].combo, ~clear.word, __ATOMIC_RELEASE);
out:
	if (rec)
		__atomic_store_n(&rec->pinned, 0, __ATOMIC_RELEASE);
	simshm_active_unlock(a, ref);
}

void simshm_grant_set(struct simshm_gref *gt, uint32_t ref, uint32_t domid,
		      uint32_t frame, bool readonly)
{
	union simshm_combo c = { 0 };

	/* Frame and domid must be visible before the permit flag: the
	 * other side reads the entry as soon as the flag says it may. */
	__atomic_store_n(&gt[ref].frame, frame, __ATOMIC_RELAXED);
	c.s.domid = domid;
	c.s.flags = GTF_permit_access | (readonly ? GTF_readonly : 0);
	__atomic_store_n(&gt[ref].combo, c.word, __ATOMIC_RELEASE);
}

int simshm_grant_end(struct simshm_gref *gt, uint32_t ref)
{
	union simshm_combo cur, new;

	cur.word = combo_load(&gt[ref]);
	do {
		if (cur.s.flags & (GTF_reading | GTF_writing))
			return -EBUSY;
		new = cur;
		new.s.flags = 0;
	} while (!__atomic_compare_exchange_n(&gt[ref].combo, &cur.word, new.word, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	return 0;
}
