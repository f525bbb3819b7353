/* Unit tests for common/simshm: the grant entry state machine Xen runs
 * (pin checks, in-use bits, end access), the shared allocators and the
 * sealing of a domain's memfds. Works on memfds made here, no daemon.
 * Table-driven; the entries are the hostile guest's. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simshm.h"
#include "util.h"

#define RAM_PAGES 64u
#define BACKEND 0u
#define GUEST 7u

static struct simshm_fds fds;
static struct simshm_gref *gt;
static struct simshm_active *act;
static struct simshm_meta *meta;

static void setup(void)
{
	ck_assert_int_eq(simshm_domain_create(GUEST, RAM_PAGES, &fds), 0);
	ck_assert_int_eq(simshm_map(fds.gnttab, simshm_gnttab_size(), (void **)&gt), 0);
	ck_assert_int_eq(simshm_map(fds.active, simshm_active_size(), (void **)&act), 0);
	ck_assert_int_eq(simshm_map(fds.meta, simshm_meta_size(RAM_PAGES), (void **)&meta), 0);
}

static void teardown(void)
{
	munmap(gt, simshm_gnttab_size());
	munmap(act, simshm_active_size());
	munmap(meta, simshm_meta_size(RAM_PAGES));
	simshm_fds_close(&fds);
}

static void entry_raw(uint32_t ref, uint16_t flags, uint16_t domid, uint32_t frame)
{
	union simshm_combo c = { .s = { .flags = flags, .domid = domid } };

	gt[ref].frame = frame;
	gt[ref].combo = c.word;
}

static uint16_t entry_flags(uint32_t ref)
{
	union simshm_combo c = { .word = gt[ref].combo };

	return c.s.flags;
}

START_TEST(test_create_layout)
{
	ck_assert_uint_eq(SIMSHM_NR_GRANTS, 16384);
	ck_assert_uint_eq(meta->magic, SIMSHM_META_MAGIC);
	ck_assert_uint_eq(meta->ram_pages, RAM_PAGES);
	ck_assert_uint_eq(act->magic, SIMSHM_ACTIVE_MAGIC);
	ck_assert_uint_eq(act->domid, GUEST);
	ck_assert_int_eq(simshm_check_size(fds.ram, simshm_ram_size(RAM_PAGES)), 0);
	ck_assert_int_eq(simshm_check_size(fds.ram, simshm_ram_size(RAM_PAGES) + 1), -EPROTO);
}
END_TEST

/* A guest (or anyone holding the fd) must not shrink RAM under a mapping. */
START_TEST(test_sealed)
{
	ck_assert_int_eq(ftruncate(fds.ram, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ftruncate(fds.gnttab, 4096), -1);
	ck_assert_int_eq(fcntl(fds.ram, F_ADD_SEALS, F_SEAL_WRITE), -1);
}
END_TEST

START_TEST(test_create_bad_size)
{
	struct simshm_fds f;

	ck_assert_int_eq(simshm_domain_create(1, 0, &f), -EINVAL);
	ck_assert_int_eq(simshm_domain_create(1, SIMSHM_RAM_PAGES_MAX + 1, &f), -EINVAL);
}
END_TEST

struct pin_case {
	const char *what;
	uint32_t ref;
	uint16_t flags;
	uint16_t domid;
	uint32_t frame;
	bool readonly;
	int status;
};

static const struct pin_case pin_cases[] = {
	{ "rw grant, rw pin", 10, GTF_permit_access, BACKEND, 3, false, GNTST_okay },
	{ "rw grant, ro pin", 10, GTF_permit_access, BACKEND, 3, true, GNTST_okay },
	{ "ro grant, ro pin", 10, GTF_permit_access | GTF_readonly, BACKEND, 3, true, GNTST_okay },
	{ "ro grant, rw pin", 10, GTF_permit_access | GTF_readonly, BACKEND, 3, false, GNTST_general_error },
	{ "granted to another domain", 10, GTF_permit_access, 5, 3, true, GNTST_general_error },
	{ "granted to DOMID_SELF", 10, GTF_permit_access, 0x7ff0, 3, true, GNTST_general_error },
	{ "invalid entry", 10, GTF_invalid, BACKEND, 3, true, GNTST_general_error },
	{ "accept_transfer entry", 10, GTF_accept_transfer, BACKEND, 3, true, GNTST_general_error },
	{ "transitive entry", 10, GTF_transitive, BACKEND, 3, true, GNTST_general_error },
	{ "sub_page entry", 10, GTF_permit_access | GTF_sub_page, BACKEND, 3, true, GNTST_general_error },
	{ "frame past RAM", 10, GTF_permit_access, BACKEND, RAM_PAGES, true, GNTST_bad_page },
	{ "frame 0xffffffff", 10, GTF_permit_access, BACKEND, 0xffffffffu, false, GNTST_bad_page },
	{ "ref past the table", SIMSHM_NR_GRANTS, GTF_permit_access, BACKEND, 3, true, GNTST_bad_gntref },
	{ "ref 0xffffffff", 0xffffffffu, GTF_permit_access, BACKEND, 3, true, GNTST_bad_gntref },
	{ "last ref", SIMSHM_NR_GRANTS - 1, GTF_permit_access, BACKEND, RAM_PAGES - 1, false, GNTST_okay },
};

START_TEST(test_pin_table)
{
	const struct pin_case *c = &pin_cases[_i];
	uint32_t frame = 0xdead;
	uint32_t in_table = c->ref < SIMSHM_NR_GRANTS;
	struct simshm_pinrec rec = { 0 };
	int st;

	if (in_table)
		entry_raw(c->ref, c->flags, c->domid, c->frame);
	st = simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, c->ref, BACKEND,
			      c->readonly, &frame, &rec);
	ck_assert_msg(st == c->status, "%s: status %d, expected %d", c->what, st, c->status);
	if (!in_table)
		return;
	if (st == GNTST_okay) {
		ck_assert_uint_eq(frame, c->frame);
		ck_assert(entry_flags(c->ref) & GTF_reading);
		ck_assert_int_eq(!!(entry_flags(c->ref) & GTF_writing), !c->readonly);
		ck_assert_uint_eq(act->pins[c->ref].total, 1);
		/* The guest cannot end access while pinned. */
		ck_assert_int_eq(simshm_grant_end(gt, c->ref), -EBUSY);
		/* The pin is recorded for recovery after a crash. */
		ck_assert_uint_eq(rec.pinned, 1);
		ck_assert_uint_eq(rec.ref, c->ref);
		ck_assert_uint_eq(rec.domid, GUEST);
		ck_assert_uint_eq(rec.readonly, c->readonly);
		simshm_grant_unpin(gt, act, c->ref, c->readonly, &rec);
		ck_assert_uint_eq(rec.pinned, 0);
		ck_assert_uint_eq(entry_flags(c->ref), c->flags);
		ck_assert_int_eq(simshm_grant_end(gt, c->ref), 0);
		ck_assert_uint_eq(entry_flags(c->ref), 0);
	} else {
		/* A refused pin leaves no trace. */
		ck_assert_uint_eq(entry_flags(c->ref), c->flags);
		ck_assert_uint_eq(frame, 0xdead);
		ck_assert_uint_eq(rec.pinned, 0);
	}
	ck_assert_uint_eq(act->pins[c->ref].total, 0);
	ck_assert_uint_eq(act->pins[c->ref].writers, 0);
}
END_TEST

/* Reading is held by any pin, writing only by writable ones. */
START_TEST(test_pin_counts)
{
	uint32_t f;

	entry_raw(20, GTF_permit_access, BACKEND, 1);
	ck_assert_int_eq(simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, 20, BACKEND, false, &f, NULL), 0);
	ck_assert_int_eq(simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, 20, BACKEND, true, &f, NULL), 0);
	ck_assert_int_eq(simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, 20, BACKEND, true, &f, NULL), 0);
	ck_assert_uint_eq(act->pins[20].total, 3);
	ck_assert_uint_eq(act->pins[20].writers, 1);
	simshm_grant_unpin(gt, act, 20, false, NULL);
	ck_assert_uint_eq(entry_flags(20), GTF_permit_access | GTF_reading);
	ck_assert_int_eq(simshm_grant_end(gt, 20), -EBUSY);
	simshm_grant_unpin(gt, act, 20, true, NULL);
	ck_assert_int_eq(simshm_grant_end(gt, 20), -EBUSY);
	simshm_grant_unpin(gt, act, 20, true, NULL);
	ck_assert_uint_eq(entry_flags(20), GTF_permit_access);
	/* Unbalanced unpins (a confused caller) never underflow. */
	simshm_grant_unpin(gt, act, 20, true, NULL);
	simshm_grant_unpin(gt, act, 20, false, NULL);
	ck_assert_uint_eq(act->pins[20].total, 0);
	ck_assert_uint_eq(act->pins[20].writers, 0);
	ck_assert_int_eq(simshm_grant_end(gt, 20), 0);
}
END_TEST

START_TEST(test_pin_overflow)
{
	uint32_t f;

	entry_raw(30, GTF_permit_access, BACKEND, 1);
	act->pins[30].total = SIMSHM_PIN_MAX;
	ck_assert_int_eq(simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, 30, BACKEND, true, &f, NULL),
			 GNTST_no_space);
}
END_TEST

START_TEST(test_grant_set)
{
	simshm_grant_set(gt, 40, 3, 9, true);
	ck_assert_uint_eq(entry_flags(40), GTF_permit_access | GTF_readonly);
	ck_assert_uint_eq(gt[40].frame, 9);
	{
		union simshm_combo c = { .word = gt[40].combo };

		ck_assert_uint_eq(c.s.domid, 3);
	}
	/* The layout is Xen's: read it back through grant_entry_v1_t. */
	ck_assert_uint_eq(((grant_entry_v1_t *)gt)[40].domid, 3);
	ck_assert_uint_eq(((grant_entry_v1_t *)gt)[40].frame, 9);
	ck_assert_uint_eq(((grant_entry_v1_t *)gt)[40].flags, GTF_permit_access | GTF_readonly);
}
END_TEST

START_TEST(test_gref_alloc)
{
	uint32_t ref, n = 0;
	uint64_t seen_low = 0;

	while (simshm_gref_alloc(meta, &ref) == 0) {
		ck_assert_uint_ge(ref, SIMSHM_NR_RESERVED);
		ck_assert_uint_lt(ref, SIMSHM_NR_GRANTS);
		if (ref < 64)
			seen_low |= 1ull << ref;
		n++;
	}
	ck_assert_uint_eq(n, SIMSHM_NR_GRANTS - SIMSHM_NR_RESERVED);
	ck_assert_uint_eq(seen_low & 0xff, 0);
	ck_assert_int_eq(simshm_gref_alloc(meta, &ref), -ENOSPC);
	simshm_gref_free(meta, 100);
	simshm_gref_free(meta, 3);		/* reserved: ignored */
	simshm_gref_free(meta, 0xffffffffu);	/* hostile: ignored */
	ck_assert_int_eq(simshm_gref_alloc(meta, &ref), 0);
	ck_assert_uint_eq(ref, 100);
	ck_assert_int_eq(simshm_gref_alloc(meta, &ref), -ENOSPC);
}
END_TEST

START_TEST(test_ram_alloc)
{
	uint32_t f, n = 0;

	while (simshm_ram_alloc(meta, RAM_PAGES, &f) == 0) {
		ck_assert_uint_lt(f, RAM_PAGES);
		n++;
	}
	ck_assert_uint_eq(n, RAM_PAGES);
	simshm_ram_free(meta, RAM_PAGES, RAM_PAGES + 5);	/* ignored */
	ck_assert_int_eq(simshm_ram_alloc(meta, RAM_PAGES, &f), -ENOSPC);
	simshm_ram_free(meta, RAM_PAGES, 17);
	ck_assert_int_eq(simshm_ram_alloc(meta, RAM_PAGES, &f), 0);
	ck_assert_uint_eq(f, 17);
}
END_TEST

/* A lock whose owner died is recovered, not deadlocked on. */
START_TEST(test_lock_owner_died)
{
	pid_t pid = fork();
	uint32_t f;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		simshm_active_lock(act, 50);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	entry_raw(50, GTF_permit_access, BACKEND, 1);
	ck_assert_int_eq(simshm_grant_pin(gt, act, SIMSHM_NR_GRANTS, RAM_PAGES, 50, BACKEND, true, &f, NULL), 0);
	simshm_grant_unpin(gt, act, 50, true, NULL);
}
END_TEST

static Suite *simshm_suite(void)
{
	Suite *s = suite_create("simshm");
	TCase *tc = tcase_create("grant");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_layout);
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_create_bad_size);
	tcase_add_loop_test(tc, test_pin_table, 0, ARRAY_SIZE(pin_cases));
	tcase_add_test(tc, test_pin_counts);
	tcase_add_test(tc, test_pin_overflow);
	tcase_add_test(tc, test_grant_set);
	tcase_add_test(tc, test_gref_alloc);
	tcase_add_test(tc, test_ram_alloc);
	tcase_add_test(tc, test_lock_owner_died);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(simshm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
