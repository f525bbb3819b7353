/* Unit tests for backend/kernel-blkback.c on sysfs trees built here: no
 * xen-blkback, a loaded module, a built-in one, one driving vbds. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel-blkback.h"
#include "log.h"

static char root[] = "/tmp/check-kernel-blkback.XXXXXX";

static void mkpath(const char *rel)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, rel);
	ck_assert_int_eq(system(cmd), 0);
}

static void touch(const char *rel)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(root, "/tmp/check-kernel-blkback.XXXXXX");
}

START_TEST(test_absent)
{
	struct kernel_blkback kb;

	/* a backend domain whose vbds nobody in the kernel took */
	mkpath("bus/xen-backend/devices/vbd-5-51712");
	mkpath("module/xen_evtchn");
	ck_assert_int_eq(kernel_blkback_probe(root, &kb), 0);
	ck_assert(!kb.present);
	ck_assert_uint_eq(kb.bound, 0);
	ck_assert_int_eq(kernel_blkback_check(root), 0);
}
END_TEST

START_TEST(test_no_bus)
{
	struct kernel_blkback kb;

	ck_assert_int_eq(kernel_blkback_probe(root, &kb), 0);
	ck_assert(!kb.present);
	ck_assert_uint_eq(kb.bound, 0);
}
END_TEST

START_TEST(test_loaded_idle)
{
	struct kernel_blkback kb;

	mkpath("module/xen_blkback/parameters");
	touch("module/xen_blkback/initstate");
	mkpath("bus/xen-backend/devices/vbd-5-51712");
	mkpath("bus/xen-backend/devices/vif-5-0/driver");
	ck_assert_int_eq(kernel_blkback_probe(root, &kb), 0);
	ck_assert(kb.present);
	ck_assert(!kb.builtin);
	ck_assert_uint_eq(kb.bound, 0);
	/* a warning, not a refusal */
	ck_assert_int_eq(kernel_blkback_check(root), 0);
}
END_TEST

START_TEST(test_builtin)
{
	struct kernel_blkback kb;

	mkpath("module/xen_blkback/parameters");
	ck_assert_int_eq(kernel_blkback_probe(root, &kb), 0);
	ck_assert(kb.present);
	ck_assert(kb.builtin);
	ck_assert_int_eq(kernel_blkback_check(root), 0);
}
END_TEST

START_TEST(test_bound)
{
	struct kernel_blkback kb;

	mkpath("module/xen_blkback/parameters");
	touch("module/xen_blkback/initstate");
	mkpath("bus/xen-backend/devices/vbd-5-51712/driver");
	mkpath("bus/xen-backend/devices/vbd-5-51728/driver");
	mkpath("bus/xen-backend/devices/vbd-6-51712");
	ck_assert_int_eq(kernel_blkback_probe(root, &kb), 0);
	ck_assert(kb.present);
	ck_assert_uint_eq(kb.bound, 2);
	ck_assert(strncmp(kb.first, "vbd-5-517", 9) == 0);
	ck_assert_int_eq(kernel_blkback_check(root), -EBUSY);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kernel-blkback");
	TCase *tc = tcase_create("probe");
	SRunner *sr;
	int failed;

	log_init("check-kernel-blkback", true, LOG_LEVEL_WARN);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_absent);
	tcase_add_test(tc, test_no_bus);
	tcase_add_test(tc, test_loaded_idle);
	tcase_add_test(tc, test_builtin);
	tcase_add_test(tc, test_bound);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
