/* Unit tests for a ring's memory figures (backend/ring-memory.c) and for
 * how a vbd's rings share a domain's limit (backend/vbd-memory.c), from
 * ring geometry alone: nothing is mapped or started. */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "util.h"
#include "vbd-memory.h"

#define MIB		((size_t)1 << 20)
#define BOUNCE		((size_t)BLKIF_MAX_SEGMENTS_PER_REQUEST * PLAT_PAGE_SIZE)
#define REQUEST_256	((size_t)256 * PLAT_PAGE_SIZE)	/* one 1 MiB indirect request */

static struct ring_config ring_cfg(unsigned int order, unsigned int segs)
{
	return (struct ring_config){ .abi = BLKIF_ABI_NATIVE, .order = order,
				     .max_indirect_segments = segs };
}

/* Order 0 holds 32 entries: 32 bounce buffers and, the default budget
 * being larger than the ring, one indirect buffer per entry. */
START_TEST(test_bytes_order0)
{
	struct ring_config c = ring_cfg(0, 256);

	ck_assert_uint_eq(ring_memory_bytes(&c), 32 * BOUNCE + 32 * REQUEST_256);
	ck_assert_uint_eq(ring_memory_floor(&c), 32 * BOUNCE + REQUEST_256);
}
END_TEST

/* Order 4 (512 entries): the 86 MiB a guest could pin per ring. */
START_TEST(test_bytes_order4)
{
	struct ring_config c = ring_cfg(4, 256);

	ck_assert_uint_eq(ring_memory_bytes(&c), 512 * BOUNCE + 64 * REQUEST_256);
	ck_assert_uint_eq(ring_memory_bytes(&c) / MIB, 86);
	c.indirect_budget = 10 * REQUEST_256 + 1;
	ck_assert_uint_eq(ring_memory_bytes(&c), 512 * BOUNCE + 10 * REQUEST_256);
}
END_TEST

START_TEST(test_bytes_no_indirect)
{
	struct ring_config c = ring_cfg(2, 0);

	ck_assert_uint_eq(ring_memory_bytes(&c), ring_memory_floor(&c));
	ck_assert_uint_eq(ring_memory_bytes(&c), 128 * BOUNCE);
	c.order = BLKBACKD_MAX_RING_ORDER + 1;
	ck_assert_uint_eq(ring_memory_bytes(&c), 0);
}
END_TEST

START_TEST(test_fit_everything)
{
	struct ring_config c[2] = { ring_cfg(4, 256), ring_cfg(4, 256) };
	struct vbd_memory_fit fit;

	c[0].indirect_budget = 5;	/* a stale budget is reset */
	vbd_memory_fit(c, 2, 2 * ring_memory_bytes(&c[1]), &fit);
	ck_assert(!fit.cut);
	ck_assert(!fit.over);
	ck_assert_uint_eq(fit.reserved, fit.wanted);
	ck_assert_uint_eq(c[0].indirect_budget, 0);
	ck_assert_uint_eq(c[1].indirect_budget, 0);
}
END_TEST

/* 16 queues of order 4 (1.4 GiB wanted) into the default 1 GiB. */
START_TEST(test_fit_cut)
{
	struct ring_config c[16];
	size_t left = 1024 * MIB;
	struct vbd_memory_fit fit;
	unsigned int q;

	for (q = 0; q < 16; q++)
		c[q] = ring_cfg(4, 256);
	vbd_memory_fit(c, 16, left, &fit);
	ck_assert_uint_eq(fit.wanted, 16 * (512 * BOUNCE + 64 * REQUEST_256));
	ck_assert(fit.cut);
	ck_assert(!fit.over);
	ck_assert_uint_le(fit.reserved, left);
	/* Not cut further than needed: what is lost is less than one
	 * request per ring. */
	ck_assert_uint_gt(fit.reserved + 16 * REQUEST_256, left);
	for (q = 0; q < 16; q++) {
		ck_assert_uint_gt(ring_memory_bytes(&c[q]), ring_memory_floor(&c[q]));
		ck_assert_uint_eq(c[q].indirect_budget, c[0].indirect_budget);
	}
}
END_TEST

START_TEST(test_fit_over)
{
	struct ring_config c[4];
	struct vbd_memory_fit fit;
	unsigned int q;

	for (q = 0; q < 4; q++)
		c[q] = ring_cfg(4, 256);
	vbd_memory_fit(c, 4, 4 * ring_memory_floor(&c[0]) - 1, &fit);
	ck_assert(fit.cut);
	ck_assert(fit.over);
	ck_assert_uint_eq(fit.reserved, fit.floor);
	for (q = 0; q < 4; q++)
		ck_assert_uint_eq(ring_memory_bytes(&c[q]), ring_memory_floor(&c[q]));
}
END_TEST

/* Exactly the floor fits: every ring keeps one indirect request. */
START_TEST(test_fit_floor_exactly)
{
	struct ring_config c[3] = { ring_cfg(1, 256), ring_cfg(1, 256), ring_cfg(1, 256) };
	struct vbd_memory_fit fit;

	vbd_memory_fit(c, 3, 3 * ring_memory_floor(&c[0]), &fit);
	ck_assert(fit.cut);
	ck_assert(!fit.over);
	ck_assert_uint_eq(fit.reserved, fit.floor);
}
END_TEST

/* Without INDIRECT nothing can be cut. */
START_TEST(test_fit_no_indirect)
{
	struct ring_config c[2] = { ring_cfg(4, 0), ring_cfg(4, 0) };
	struct vbd_memory_fit fit;

	vbd_memory_fit(c, 2, 2 * ring_memory_bytes(&c[0]) - 1, &fit);
	ck_assert(fit.over);
	ck_assert_uint_eq(fit.floor, fit.wanted);
	vbd_memory_fit(c, 2, 2 * ring_memory_bytes(&c[0]), &fit);
	ck_assert(!fit.cut);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vbd-memory");
	TCase *tc = tcase_create("vbd-memory");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_bytes_order0);
	tcase_add_test(tc, test_bytes_order4);
	tcase_add_test(tc, test_bytes_no_indirect);
	tcase_add_test(tc, test_fit_everything);
	tcase_add_test(tc, test_fit_cut);
	tcase_add_test(tc, test_fit_over);
	tcase_add_test(tc, test_fit_floor_exactly);
	tcase_add_test(tc, test_fit_no_indirect);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
