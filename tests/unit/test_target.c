/* The precedence key of target selection: its byte order must be SemVer precedence, for
 * every pair of a table of versions that covers each rule of semver.org item 11. */
#include "core/target.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ascending precedence; a row equal to the one before it says so (same precedence). */
static const struct {
	const char *version;
	bool same_as_previous;
} ladder[] = {
	{ "0.0.0-0", false },
	{ "0.0.0-alpha", false },
	{ "0.0.0", false },
	{ "0.0.1", false },
	{ "0.1.0", false },
	{ "0.9.0", false },
	{ "0.10.0", false }, /* numeric, not textual: 10 > 9 */
	{ "1.0.0-0.3.7", false },
	{ "1.0.0-1", false },
	{ "1.0.0-9", false },
	{ "1.0.0-10", false },
	{ "1.0.0-A", false }, /* ASCII: upper case before lower case */
	{ "1.0.0-a", false },
	{ "1.0.0-a-b", false }, /* "-" is an identifier character: "a" is a prefix */
	{ "1.0.0-alpha", false },
	{ "1.0.0-alpha.1", false }, /* more identifiers, the rest equal: higher */
	{ "1.0.0-alpha.beta", false },
	{ "1.0.0-beta", false },
	{ "1.0.0-beta.2", false },
	{ "1.0.0-beta.11", false },
	{ "1.0.0-rc.1", false },
	{ "1.0.0-rc.1+build.9", true }, /* build metadata does not count */
	{ "1.0.0", false },
	{ "1.0.0+20130313144700", true },
	{ "1.0.1", false },
	{ "1.0.300", false },
	{ "1.1.0", false },
	{ "9.0.0", false },
	{ "10.0.0", false },
	{ "99999999999999999.0.0", false },
	{ "18446744073709551615.0.0-x", false },
	{ "18446744073709551615.0.0", false },
};

#define NLADDER (sizeof(ladder) / sizeof(ladder[0]))

static int sign(int v)
{
	return v < 0 ? -1 : v > 0;
}

/* Rank of row i: rows equal to their predecessor share its rank. */
static int rank(size_t i)
{
	int r = 0;

	for (size_t k = 1; k <= i; k++)
		r += !ladder[k].same_as_previous;
	return r;
}

START_TEST(test_key_order_is_precedence)
{
	char a[DH_TARGET_KEY_MAX], b[DH_TARGET_KEY_MAX];
	size_t i = (size_t)_i;

	ck_assert(dh_target_key_text(ladder[i].version, a));
	for (size_t k = 0; k < NLADDER; k++) {
		int want = sign(rank(i) - rank(k));
		ck_assert(dh_target_key_text(ladder[k].version, b));
		ck_assert_msg(sign(strcmp(a, b)) == want, "%s vs %s: keys %s, %s",
			      ladder[i].version, ladder[k].version, a, b);
		ck_assert_int_eq(sign(dh_semver_cmp_text(ladder[i].version, ladder[k].version)),
				 want);
	}
}
END_TEST

START_TEST(test_bad_and_longest_versions)
{
	char key[DH_TARGET_KEY_MAX], longest[DH_SEMVER_MAX];
	size_t n = 0;

	ck_assert(!dh_target_key_text("1.0", key) && key[0] == 0);
	ck_assert(!dh_target_key_text("", key));
	ck_assert(!dh_target_key_text(NULL, key));
	/* the worst growth: one-digit numeric identifiers, as many as fit */
	n = (size_t)snprintf(longest, sizeof(longest), "1.2.3-");
	while (n + 2 < sizeof(longest) - 1) {
		longest[n++] = '7';
		longest[n++] = '.';
	}
	longest[n++] = '7';
	longest[n] = 0;
	ck_assert(dh_target_key_text(longest, key));
	ck_assert_uint_lt(strlen(key), DH_TARGET_KEY_MAX);
	for (const char *p = key; *p; p++)
		ck_assert(*p > ' ' && *p < 0x7f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("target");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_key_order_is_precedence, 0, (int)NLADDER);
	tcase_add_test(tc, test_bad_and_longest_versions);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
