/* SemVer 2.0 parsing and precedence, as tables of input and expected result. */
#include "core/semver.h"

#include <check.h>
#include <stdlib.h>

static const struct {
	const char *text;
	bool ok;
} parse_cases[] = {
	{ "1.2.3", true },
	{ "0.0.0", true },
	{ "10.20.30", true },
	{ "1.0.0-alpha", true },
	{ "1.0.0-alpha.1", true },
	{ "1.0.0-0.3.7", true },
	{ "1.0.0-x.7.z.92", true },
	{ "1.0.0-x-y-z.--", true },
	{ "1.0.0+20130313144700", true },
	{ "1.0.0-beta+exp.sha.5114f85", true },
	{ "1.0.0+21AF26D3----117B344092BD", true },
	{ "1.2.3+001", true },
	{ "1", false },
	{ "1.2", false },
	{ "1.2.3.4", false },
	{ "01.2.3", false },
	{ "1.02.3", false },
	{ "1.2.03", false },
	{ "1.2.3-", false },
	{ "1.2.3-01", false },
	{ "1.2.3-a..b", false },
	{ "1.2.3+", false },
	{ "1.2.3+a..b", false },
	{ "1.2.3-a_b", false },
	{ "v1.2.3", false },
	{ " 1.2.3", false },
	{ "1.2.3 ", false },
	{ "", false },
	{ "99999999999999999999.0.0", false },
	{ "-1.2.3", false },
};

START_TEST(test_parse)
{
	struct dh_semver v;

	ck_assert_msg(dh_semver_parse(parse_cases[_i].text, &v) == parse_cases[_i].ok, "%s",
		      parse_cases[_i].text);
}
END_TEST

/* Each list is in strictly ascending precedence (semver.org item 11). */
static const char *const ordered[] = {
	"1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
	"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0",
	"1.0.1",        "1.1.0",         "1.10.0",           "2.0.0-0",
	"2.0.0",        "10.0.0",
};

START_TEST(test_order)
{
	for (size_t i = 0; i + 1 < sizeof(ordered) / sizeof(ordered[0]); i++) {
		ck_assert_msg(dh_semver_cmp_text(ordered[i], ordered[i + 1]) < 0, "%s < %s",
			      ordered[i], ordered[i + 1]);
		ck_assert_msg(dh_semver_cmp_text(ordered[i + 1], ordered[i]) > 0, "%s > %s",
			      ordered[i + 1], ordered[i]);
	}
}
END_TEST

START_TEST(test_build_ignored)
{
	ck_assert_int_eq(dh_semver_cmp_text("1.2.3+a", "1.2.3+b"), 0);
	ck_assert_int_eq(dh_semver_cmp_text("1.2.3-rc.1+x", "1.2.3-rc.1"), 0);
	ck_assert_int_lt(dh_semver_cmp_text("bogus", "0.0.1"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("semver");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_build_ignored);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
