/* Unit tests for blkfront-sim's pure parts: libxl disk names, sector
 * stamps, the verify map's notion of what a read may find (acknowledged,
 * unanswered, discarded, failed writes), its range locks and state file,
 * and the latency histogram's percentiles. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blkfront.h"

/* blkfront-main.c's helpers, minus the program. */
uint64_t bf_now_ns(void)
{
	return 0;
}

void bf_fail(struct bf_dev *dev, const char *fmt, ...)
{
	(void)fmt;
	dev->failures++;
}

static const struct {
	const char *name;
	int ret;
	uint32_t devid;
} vdev_cases[] = {
	{ "xvda", 0, 51712 },
	{ "xvdb", 0, 51728 },
	{ "xvda1", 0, 51713 },
	{ "xvdp15", 0, 51967 },
	{ "xvdq", 0, (1u << 28) | (16u << 8) },
	{ "xvdaa", 0, (1u << 28) | (26u << 8) },
	{ "xvdba3", 0, (1u << 28) | (52u << 8) | 3 },
	{ "xvda16", 0, (1u << 28) | 16 },
	{ "hda", 0, 768 },
	{ "hdb", 0, 832 },
	{ "hdc", 0, 5632 },
	{ "hdd2", 0, 5698 },
	{ "sda", 0, 2048 },
	{ "sdb1", 0, 2065 },
	{ "d0", 0, 51712 },
	{ "d1p2", 0, 51730 },
	{ "51712", 0, 51712 },
	{ "768", 0, 768 },
	/* hostile or unknown */
	{ "", -EINVAL, 0 },
	{ "xvd", -EINVAL, 0 },
	{ "xvdA", -EINVAL, 0 },
	{ "xvda0", -EINVAL, 0 },
	{ "xvda1x", -EINVAL, 0 },
	{ "xvda256", -EINVAL, 0 },
	{ "hde", -EINVAL, 0 },
	{ "hda64", -EINVAL, 0 },
	{ "sdq", -EINVAL, 0 },
	{ "nvme0n1", -EINVAL, 0 },
	{ "99999999999999999999", -EINVAL, 0 },
	{ "12a", -EINVAL, 0 },
	{ "xvdaaaaaaaaaaaaaaaaa", -EINVAL, 0 },
	{ "dp1", -EINVAL, 0 },
};

START_TEST(test_vdev)
{
	uint32_t devid = 0xdeadbeef;
	int ret = bf_vdev_to_devid(vdev_cases[_i].name, &devid);

	ck_assert_msg(ret == vdev_cases[_i].ret, "%s: ret %d", vdev_cases[_i].name, ret);
	if (ret == 0)
		ck_assert_msg(devid == vdev_cases[_i].devid, "%s: devid %u, want %u",
			      vdev_cases[_i].name, devid, vdev_cases[_i].devid);
	else
		ck_assert_uint_eq(devid, 0xdeadbeef);
}
END_TEST

START_TEST(test_stamp)
{
	unsigned char b[512];
	uint64_t gen = 0;
	unsigned int i;

	bf_stamp_fill(b, 1234, 77);
	ck_assert_int_eq(bf_stamp_check(b, 1234, &gen), 0);
	ck_assert_uint_eq(gen, 77);
	/* Misdirected: right data at the wrong address. */
	ck_assert_int_eq(bf_stamp_check(b, 1235, &gen), -EINVAL);
	/* Every single-byte corruption past the magic is caught. */
	for (i = 8; i < sizeof(b); i++) {
		b[i] ^= 0x10;
		ck_assert_msg(bf_stamp_check(b, 1234, &gen) == -EINVAL, "byte %u", i);
		b[i] ^= 0x10;
	}
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(bf_stamp_check(b, 0, &gen), -ENOENT);
	/* Different generations differ in the body, not just the header. */
	{
		unsigned char c[512];

		bf_stamp_fill(b, 9, 1);
		bf_stamp_fill(c, 9, 2);
		ck_assert_int_ne(memcmp(b + 32, c + 32, 480), 0);
	}
}
END_TEST

static struct bf_dev fake_dev;

static uint64_t read_check(struct bf_verify *v, uint64_t s, uint64_t gen, bool zero)
{
	unsigned char b[512];

	if (zero)
		memset(b, 0, sizeof(b));
	else
		bf_stamp_fill(b, s, gen);
	return bf_verify_read(v, &fake_dev, b, s, 1);
}

START_TEST(test_verify_map)
{
	struct bf_verify *v;
	uint64_t g1, g2, g3;
	unsigned char junk[512];

	ck_assert_int_eq(bf_verify_new(100, 64, &v), 0);
	memset(junk, 0x5a, sizeof(junk));
	/* Never written: anything self-consistent passes, nothing counted. */
	ck_assert_uint_eq(bf_verify_read(v, &fake_dev, junk, 100, 1), 0);
	ck_assert_uint_eq(read_check(v, 100, 42, false), 0);
	ck_assert_uint_eq(bf_verify_nr_checked(v), 0);
	/* ...but a stamp for another address never passes. */
	{
		unsigned char b[512];

		bf_stamp_fill(b, 7, 1);
		ck_assert_uint_eq(bf_verify_read(v, &fake_dev, b, 100, 1), 1);
	}

	g1 = bf_verify_gen_next(v);
	g2 = bf_verify_gen_next(v);
	ck_assert_uint_ne(g1, g2);
	bf_verify_write_submitted(v, 100, 8, g1);
	bf_verify_write_done(v, 100, 8, g1, true);
	ck_assert(bf_verify_sector_is_known(v, 100));
	ck_assert(!bf_verify_sector_is_known(v, 108));
	ck_assert_uint_eq(read_check(v, 103, g1, false), 0);
	ck_assert_uint_eq(read_check(v, 103, g2, false), 1);	/* not written */
	ck_assert_uint_eq(read_check(v, 103, 0, true), 1);	/* lost write */
	ck_assert_uint_eq(bf_verify_read(v, &fake_dev, junk, 103, 1), 1);

	/* Unanswered write: old or new data, nothing else. */
	bf_verify_write_submitted(v, 100, 4, g2);
	ck_assert_uint_eq(read_check(v, 101, g1, false), 0);
	ck_assert_uint_eq(read_check(v, 101, g2, false), 0);
	g3 = bf_verify_gen_next(v);
	ck_assert_uint_eq(read_check(v, 101, g3, false), 1);
	/* Its answer settles it. */
	bf_verify_write_done(v, 100, 4, g2, true);
	ck_assert_uint_eq(read_check(v, 101, g1, false), 1);
	ck_assert_uint_eq(read_check(v, 101, g2, false), 0);

	/* Discard: old data or zeros. */
	bf_verify_discard_done(v, 104, 4, true);
	ck_assert_uint_eq(read_check(v, 105, 0, true), 0);
	ck_assert_uint_eq(read_check(v, 105, g1, false), 0);
	ck_assert_uint_eq(read_check(v, 105, g2, false), 1);
	/* A write after the discard makes zeros wrong again. */
	bf_verify_write_submitted(v, 104, 1, g3);
	bf_verify_write_done(v, 104, 1, g3, true);
	ck_assert_uint_eq(read_check(v, 104, 0, true), 1);

	/* A write answered with an error leaves the sector undefined. */
	bf_verify_write_submitted(v, 110, 1, g3);
	bf_verify_write_done(v, 110, 1, g3, false);
	ck_assert_uint_eq(read_check(v, 110, g3, false), 0);

	/* Outside the map: only self-consistency. */
	ck_assert_uint_eq(read_check(v, 5000, 3, false), 0);
	ck_assert_uint_gt(bf_verify_nr_checked(v), 0);
	bf_verify_free(v);
}
END_TEST

START_TEST(test_verify_locks)
{
	struct bf_verify *v;

	ck_assert_int_eq(bf_verify_new(0, 32, &v), 0);
	ck_assert(bf_verify_range_is_free(v, 0, 8, true));
	bf_verify_range_lock(v, 0, 8, false);		/* a read */
	ck_assert(bf_verify_range_is_free(v, 4, 8, false));	/* reads share */
	ck_assert(!bf_verify_range_is_free(v, 4, 8, true));	/* writes wait */
	bf_verify_range_lock(v, 4, 8, false);
	bf_verify_range_unlock(v, 0, 8, false);
	ck_assert(!bf_verify_range_is_free(v, 0, 8, true));
	bf_verify_range_unlock(v, 4, 8, false);
	ck_assert(bf_verify_range_is_free(v, 0, 16, true));
	bf_verify_range_lock(v, 16, 8, true);		/* a write */
	ck_assert(!bf_verify_range_is_free(v, 20, 1, false));
	ck_assert(bf_verify_range_is_free(v, 8, 8, true));
	ck_assert(bf_verify_range_is_free(v, 24, 8, true));
	bf_verify_range_unlock(v, 16, 8, true);
	ck_assert(bf_verify_range_is_free(v, 0, 32, true));
	/* Ranges past the map are not the map's business. */
	ck_assert(bf_verify_range_is_free(v, 30, 100, true));
	bf_verify_free(v);
}
END_TEST

START_TEST(test_verify_state)
{
	char path[] = "/tmp/check-blkfront-XXXXXX";
	struct bf_verify *v, *w;
	uint64_t g1, g2, g3;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(bf_verify_new(8, 16, &v), 0);
	g1 = bf_verify_gen_next(v);
	g2 = bf_verify_gen_next(v);
	bf_verify_write_submitted(v, 8, 4, g1);
	bf_verify_write_done(v, 8, 4, g1, true);
	bf_verify_write_submitted(v, 8, 2, g2);		/* never answered */
	ck_assert_int_eq(bf_verify_save(v, path), 0);

	ck_assert_int_eq(bf_verify_new(8, 16, &w), 0);
	ck_assert_int_eq(bf_verify_load(w, path), 0);
	ck_assert_uint_eq(read_check(w, 8, g1, false), 0);
	ck_assert_uint_eq(read_check(w, 8, g2, false), 0);
	ck_assert_uint_eq(read_check(w, 10, g1, false), 0);
	ck_assert_uint_eq(read_check(w, 10, g2, false), 1);
	/* Generations continue past the saved ones. */
	g3 = bf_verify_gen_next(w);
	ck_assert_uint_gt(g3, g2);
	bf_verify_free(w);

	/* A different area is refused, not silently misread. */
	ck_assert_int_eq(bf_verify_new(0, 16, &w), 0);
	ck_assert_int_eq(bf_verify_load(w, path), -EINVAL);
	bf_verify_free(w);
	/* A missing file is an empty map; garbage is refused. */
	ck_assert_int_eq(bf_verify_new(8, 16, &w), 0);
	unlink(path);
	ck_assert_int_eq(bf_verify_load(w, path), 0);
	{
		FILE *f = fopen(path, "w");

		ck_assert_ptr_nonnull(f);
		fputs("garbage garbage garbage garbage", f);
		fclose(f);
	}
	ck_assert_int_eq(bf_verify_load(w, path), -EINVAL);
	unlink(path);
	bf_verify_free(w);
	bf_verify_free(v);
}
END_TEST

START_TEST(test_percentiles)
{
	struct bf_stats st;
	uint64_t i, p50, p99;

	bf_stats_init(&st);
	ck_assert_uint_eq(bf_stats_percentile(&st, 50), 0);
	for (i = 1; i <= 1000; i++)
		bf_stats_latency_add(&st, i * 1000);	/* 1 .. 1000 us */
	p50 = bf_stats_percentile(&st, 50);
	p99 = bf_stats_percentile(&st, 99);
	/* Buckets are 1/16 of an octave wide: within 7 %. */
	ck_assert_msg(p50 > 465000 && p50 < 535000, "p50 %lu", (unsigned long)p50);
	ck_assert_msg(p99 > 920000 && p99 <= 1000000, "p99 %lu", (unsigned long)p99);
	ck_assert_uint_eq(bf_stats_percentile(&st, 100), 1000000);
	ck_assert_uint_eq(st.lat_max, 1000000);
	/* Tiny and huge values land in range. */
	bf_stats_latency_add(&st, 0);
	bf_stats_latency_add(&st, UINT64_MAX);
	ck_assert_uint_eq(bf_stats_percentile(&st, 100), UINT64_MAX);
	ck_assert_uint_le(bf_stats_percentile(&st, 0.01), 1000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("blkfront");
	TCase *tc = tcase_create("pure");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_vdev, 0, sizeof(vdev_cases) / sizeof(vdev_cases[0]));
	tcase_add_test(tc, test_stamp);
	tcase_add_test(tc, test_verify_map);
	tcase_add_test(tc, test_verify_locks);
	tcase_add_test(tc, test_verify_state);
	tcase_add_test(tc, test_percentiles);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
