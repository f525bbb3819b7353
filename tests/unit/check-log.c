/* Unit tests for common/log.c's rate limiter: bursts, intervals, the count
 * of what was dropped and when it is reported, and a clock that does not
 * start at zero. Table-driven: each row is a call time and what the
 * limiter must answer. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define S 1000000000ull

struct rl_step {
	uint64_t now_ns;
	bool allowed;
	uint64_t suppressed;	/* reported with this call */
};

struct rl_case {
	const char *name;
	unsigned int interval_s, burst;
	struct rl_step steps[12];
	unsigned int nr_steps;
};

static const struct rl_case rl_cases[] = {
	{ "burst then silence, count told at the next interval", 5, 3, {
		{ 100 * S, true, 0 }, { 100 * S + 1, true, 0 }, { 101 * S, true, 0 },
		{ 102 * S, false, 0 }, { 103 * S, false, 0 }, { 104 * S, false, 0 },
		{ 105 * S, true, 3 }, { 105 * S + 1, true, 0 },
	}, 8 },
	{ "a quiet interval reports nothing", 1, 1, {
		{ 7 * S, true, 0 }, { 9 * S, true, 0 }, { 20 * S, true, 0 },
	}, 3 },
	{ "the interval is measured from its first message", 10, 1, {
		{ 1 * S, true, 0 }, { 10 * S, false, 0 }, { 11 * S - 1, false, 0 },
		{ 11 * S, true, 2 }, { 12 * S, false, 0 }, { 30 * S, true, 1 },
	}, 6 },
	{ "burst 0 drops everything and still counts it", 1, 0, {
		{ 5 * S, false, 0 }, { 5 * S, false, 0 }, { 6 * S, false, 2 },
	}, 3 },
	{ "a clock at zero starts an interval like any other", 2, 1, {
		{ 0, true, 0 }, { 1, false, 0 }, { 2 * S, true, 1 },
	}, 3 },
	{ "a long flood: one line per interval, each with its count", 1, 1, {
		{ 1 * S, true, 0 }, { 1 * S + 10, false, 0 }, { 1 * S + 20, false, 0 },
		{ 2 * S, true, 2 }, { 2 * S + 5, false, 0 }, { 3 * S, true, 1 },
		{ 4 * S, true, 0 },
	}, 7 },
};

START_TEST(test_ratelimit)
{
	const struct rl_case *c = &rl_cases[_i];
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(c->interval_s, c->burst);
	unsigned int i;

	for (i = 0; i < c->nr_steps; i++) {
		uint64_t sup = 12345;
		bool ok = log_ratelimit_at(&rl, c->steps[i].now_ns, &sup);

		ck_assert_msg(ok == c->steps[i].allowed, "%s: step %u allowed %d", c->name, i, ok);
		ck_assert_msg(sup == c->steps[i].suppressed, "%s: step %u suppressed %llu",
			      c->name, i, (unsigned long long)sup);
	}
}
END_TEST

/* The clock-reading variant lets the first message through. */
START_TEST(test_ratelimit_clock)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(3600, 1);
	uint64_t sup;

	ck_assert(log_ratelimit(&rl, &sup));
	ck_assert_uint_eq(sup, 0);
	ck_assert(!log_ratelimit(&rl, &sup));
	ck_assert_uint_eq(rl.suppressed, 1);
}
END_TEST

struct prefix_case {
	unsigned int domid, devid;
	int queue;
	const char *want;
};

static const struct prefix_case prefix_cases[] = {
	{ 5, 51712, -1, "d5/51712" },
	{ 5, 51712, 0, "d5/51712/q0" },
	{ 32752, 4294967295u, 15, "d32752/4294967295/q15" },
};

START_TEST(test_prefix_format)
{
	const struct prefix_case *c = &prefix_cases[_i];
	char buf[64];

	ck_assert_int_eq(log_prefix_format(buf, sizeof(buf), c->domid, c->devid, c->queue),
			 (int)strlen(c->want));
	ck_assert_str_eq(buf, c->want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_ratelimit, 0, ARRAY_SIZE(rl_cases));
	tcase_add_test(tc, test_ratelimit_clock);
	tcase_add_loop_test(tc, test_prefix_format, 0, ARRAY_SIZE(prefix_cases));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
