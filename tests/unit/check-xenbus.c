/* Unit tests for common/xenbus.c, the vocabulary the daemon and the
 * simulator share: every state name and the one spelling out of range,
 * and the strict number parser against hostile values. Table-driven. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include <xen/io/xenbus.h>

#include "util.h"
#include "xenbus.h"

struct state_case {
	unsigned int state;
	const char *name;
};

static const struct state_case state_cases[] = {
	{ XenbusStateUnknown, "Unknown" }, { XenbusStateInitialising, "Initialising" },
	{ XenbusStateInitWait, "InitWait" }, { XenbusStateInitialised, "Initialised" },
	{ XenbusStateConnected, "Connected" }, { XenbusStateClosing, "Closing" },
	{ XenbusStateClosed, "Closed" }, { XenbusStateReconfiguring, "Reconfiguring" },
	{ XenbusStateReconfigured, "Reconfigured" },
	{ 9, "Invalid" }, { 4096, "Invalid" },
	/* A frontend's int -1, as the simulator passes it. */
	{ (unsigned int)-1, "Invalid" },
};

START_TEST(test_state_name)
{
	ck_assert_str_eq(xenbus_state_name(state_cases[_i].state), state_cases[_i].name);
}
END_TEST

struct uint_case {
	const char *s;
	unsigned long long max;
	int ret;
	unsigned long long val;
};

static const struct uint_case uint_cases[] = {
	{ "0", 10, 0, 0 }, { "10", 10, 0, 10 }, { "007", 10, 0, 7 },
	{ "11", 10, -ERANGE, 0 },
	{ "18446744073709551615", ~0ull, 0, ~0ull },
	{ "18446744073709551616", ~0ull, -ERANGE, 0 },
	{ "000000000000000000001", ~0ull, -EINVAL, 0 },	/* 21 digits */
	{ "", 10, -EINVAL, 0 }, { "-1", 10, -EINVAL, 0 }, { "+1", 10, -EINVAL, 0 },
	{ " 1", 10, -EINVAL, 0 }, { "1 ", 10, -EINVAL, 0 }, { "0x1", 10, -EINVAL, 0 },
	{ "1e3", 10000, -EINVAL, 0 },
};

START_TEST(test_parse_uint)
{
	const struct uint_case *c = &uint_cases[_i];
	unsigned long long v = 12345;
	int r = xenbus_parse_uint(c->s, c->max, &v);

	ck_assert_msg(r == c->ret, "'%s': %d, wanted %d", c->s, r, c->ret);
	/* ret_val is written only on success. */
	ck_assert_uint_eq(v, r == 0 ? c->val : 12345);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xenbus");
	TCase *tc = tcase_create("xenbus");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_state_name, 0, ARRAY_SIZE(state_cases));
	tcase_add_loop_test(tc, test_parse_uint, 0, ARRAY_SIZE(uint_cases));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
