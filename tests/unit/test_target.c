/* Target selection by SemVer precedence, as tables of candidates and expected choices. */
#include "core/target.h"

#include <check.h>
#include <stdlib.h>

static const struct dh_target_candidate fw[] = {
	{ "a", "1.0.0", false },         { "b", "1.2.0", false }, { "c", "1.10.0", false },
	{ "d", "1.10.0-rc.1", false },   { "e", "2.0.0", true },  { "f", "not-semver", false },
	{ "g", "1.9.9+build.7", false },
};

#define NFW (sizeof(fw) / sizeof(fw[0]))

static const struct {
	const char *current;
	bool drafts;
	long expect; /* index into fw, -1: up to date */
} cases[] = {
	{ "1.0.0", false, 2 }, /* 1.10.0 beats 1.2.0 numerically, not as text */
	{ "0.0.1", false, 2 },         { "1.10.0", false, -1 }, /* strictly above */
	{ "1.10.0-rc.0", false, 2 },   { "1.10.0-rc.2", false, 2 },
	{ "1.0.0", true, 4 }, /* the draft 2.0.0 when allowed */
	{ "2.0.0", true, -1 },         { "3.0.0", false, -1 },
	{ "1.10.0+other", false, -1 }, /* build metadata does not count */
	{ "bogus", false, -1 },        { "", false, -1 },
};

START_TEST(test_select)
{
	long got = dh_target_select(fw, NFW, cases[_i].current, cases[_i].drafts);

	ck_assert_msg(got == cases[_i].expect, "current %s drafts %d: got %ld want %ld",
		      cases[_i].current, cases[_i].drafts, got, cases[_i].expect);
}
END_TEST

START_TEST(test_edges)
{
	static const struct dh_target_candidate same[] = {
		{ "x", "1.0.0+a", false },
		{ "y", "1.0.0+b", false },
	};
	static const struct dh_target_candidate pre[] = {
		{ "p", "1.0.0-alpha", false },
		{ "q", "1.0.0-alpha.1", false },
		{ "r", "1.0.0-beta", false },
	};

	ck_assert_int_eq(dh_target_select(NULL, 0, "1.0.0", false), -1);
	ck_assert_int_eq(dh_target_select(fw, NFW, NULL, false), -1);
	ck_assert_int_eq(dh_target_select(same, 2, "0.1.0", false), 0); /* ties: first wins */
	ck_assert_int_eq(dh_target_select(pre, 3, "0.9.0", false), 2);
	ck_assert_int_eq(dh_target_select(pre, 3, "1.0.0-alpha", false), 2);
	ck_assert_int_eq(dh_target_select(pre, 3, "1.0.0", false), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("target");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_select, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_edges);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
