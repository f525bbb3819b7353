/* Shared-memory layout of a simulated domain, as xensimd creates it and the
 * sim platform provider maps it: RAM, a grant table in Xen's v1 layout, an
 * allocator header the domain's processes share, and the private "active"
 * table (pin counts) that only dom0 ever sees. Every part is a sealed memfd. */
#ifndef BLKBACK_SIMSHM_H
#define BLKBACK_SIMSHM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/grant_table.h>

#define SIMSHM_PAGE_SIZE	4096u
#define SIMSHM_RAM_PAGES_DEFAULT 65536u		/* 256 MiB, allocated lazily */
#define SIMSHM_RAM_PAGES_MAX	(1u << 20)	/* 4 GiB */
/* Xen's default max_grant_frames: 32 frames of v1 entries. */
#define SIMSHM_GRANT_FRAMES	32u
#define SIMSHM_NR_GRANTS	(SIMSHM_GRANT_FRAMES * SIMSHM_PAGE_SIZE / sizeof(grant_entry_v1_t))
#define SIMSHM_NR_RESERVED	GNTTAB_NR_RESERVED_ENTRIES
/* Pins of one ref are changed under one of these robust, process-shared
 * locks (Xen's per-active-entry lock, striped). */
#define SIMSHM_NR_LOCKS		256u
/* More pins than this on one ref fail, like Xen's pin count overflow. */
#define SIMSHM_PIN_MAX		0xffffu

#define SIMSHM_META_MAGIC	0x6d656d73u	/* "smem" */
#define SIMSHM_ACTIVE_MAGIC	0x76746361u	/* "actv" */

/* A v1 grant entry seen as Xen sees it: flags and domid change together
 * with one 32-bit compare-and-swap. */
union simshm_combo {
	uint32_t word;
	struct {
		uint16_t flags;
		uint16_t domid;
	} s;
};

struct simshm_gref {
	uint32_t combo;		/* union simshm_combo: flags, domid */
	uint32_t frame;		/* page index in the granting domain's RAM */
};
_Static_assert(sizeof(struct simshm_gref) == sizeof(grant_entry_v1_t), "v1 layout");
_Static_assert(offsetof(grant_entry_v1_t, frame) == offsetof(struct simshm_gref, frame), "v1 layout");

/* The allocator header, shared by the domain's own processes so several of
 * them (two blkfront-sim for two disks) allocate pages and refs without the
 * daemon. The guest may scribble on it: nothing in dom0 trusts it. */
struct simshm_meta {
	uint32_t magic;
	uint32_t domid;
	uint32_t ram_pages;
	uint32_t nr_grants;
	uint32_t ram_hint;	/* where the next search starts (a hint only) */
	uint32_t gref_hint;
	uint64_t gref_bitmap[SIMSHM_NR_GRANTS / 64];
	uint64_t ram_bitmap[];	/* ram_pages bits */
};

/* Pins of one grant ref: total holds every mapping and copy in progress,
 * writers those that may write. GTF_reading is set while total > 0,
 * GTF_writing while writers > 0. */
struct simshm_pin {
	uint32_t total;
	uint32_t writers;
};

/* dom0 only: a guest that could write pin counts could revoke a mapped
 * grant or make a free one look busy. */
struct simshm_active {
	uint32_t magic;
	uint32_t domid;
	uint32_t destroyed;	/* set by xensimd: map no new grants */
	uint32_t pad;
	pthread_mutex_t locks[SIMSHM_NR_LOCKS];
	struct simshm_pin pins[SIMSHM_NR_GRANTS];
};

/* A mapper's record of the pins it holds, in a memfd xensimd gave it (one
 * per gnttab handle): when the handle's connection closes, because the
 * process exited or died, xensimd drops the pins still recorded, as
 * closing gntdev unmaps everything in Xen. A record is set and cleared
 * under the same lock as the pin it describes. Record 0 is a header: its
 * ref counts the records ever used (1 + the highest index), so xensimd
 * scans only those. */
#define SIMSHM_PINLOG_RECS	(1u << 20)

struct simshm_pinrec {
	uint16_t domid;		/* the granting domain */
	uint8_t readonly;
	uint8_t pinned;
	uint32_t ref;
};

/* The four memfds of one domain. */
struct simshm_fds {
	int ram;
	int gnttab;
	int meta;
	int active;		/* -1 when handed to the domain itself */
};

size_t simshm_ram_size(uint32_t ram_pages);
size_t simshm_gnttab_size(void);
size_t simshm_meta_size(uint32_t ram_pages);
size_t simshm_active_size(void);
size_t simshm_pinlog_size(void);

/* Creates and seals the memfds of a new domain and initialises the meta
 * header and the active table (locks). ram_pages must be in
 * 1..SIMSHM_RAM_PAGES_MAX. */
int simshm_domain_create(uint32_t domid, uint32_t ram_pages, struct simshm_fds *ret);
void simshm_fds_close(struct simshm_fds *fds);
/* A zeroed, sealed pin log. */
int simshm_pinlog_create(int *ret_fd);

/* Maps size bytes of fd shared and read-write. */
int simshm_map(int fd, size_t size, void **ret);
/* Checks that fd is a memfd of at least size bytes. */
int simshm_check_size(int fd, size_t size);

/* Guest-side allocation through the shared bitmaps (atomic, lock-free). */
int simshm_ram_alloc(struct simshm_meta *m, uint32_t ram_pages, uint32_t *ret_frame);
void simshm_ram_free(struct simshm_meta *m, uint32_t ram_pages, uint32_t frame);
int simshm_gref_alloc(struct simshm_meta *m, uint32_t *ret_ref);
void simshm_gref_free(struct simshm_meta *m, uint32_t ref);

/* Takes the lock covering ref, making the state consistent if its last
 * owner died holding it. */
void simshm_active_lock(struct simshm_active *a, uint32_t ref);
void simshm_active_unlock(struct simshm_active *a, uint32_t ref);

/* Pin ref for domid (Xen's _set_status plus the pin count): checks the
 * entry permits access to domid (and writes unless readonly), sets
 * GTF_reading / GTF_writing, bumps the pins and returns the frame. Returns
 * a GNTST_* code (GNTST_okay on success). rec, if not NULL, records the
 * pin for recovery (see struct simshm_pinrec). */
int simshm_grant_pin(struct simshm_gref *gt, struct simshm_active *a,
		     uint32_t nr_grants, uint32_t ram_pages, uint32_t ref,
		     uint32_t domid, bool readonly, uint32_t *ret_frame,
		     struct simshm_pinrec *rec);
/* Drops one pin taken with the same readonly; clears the in-use bits
 * when their count reaches zero; clears rec if not NULL. */
void simshm_grant_unpin(struct simshm_gref *gt, struct simshm_active *a,
			uint32_t ref, bool readonly, struct simshm_pinrec *rec);

/* Guest side: grant ref to domid (the flags are written last), and end
 * access: -EBUSY while the other side maps or copies it (the entry is
 * left alone). */
void simshm_grant_set(struct simshm_gref *gt, uint32_t ref, uint32_t domid,
		      uint32_t frame, bool readonly);
int simshm_grant_end(struct simshm_gref *gt, uint32_t ref);

#endif
