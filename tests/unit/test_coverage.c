/* The interval set of core/coverage.c: tables of adds against the expected intervals and
 * totals, the limit (shortest dropped, never over-counted), overflow-safe clipping, and the
 * text form with bad inputs. */
#include "core/coverage.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct add {
	uint64_t off, len;
};

struct add_case {
	uint64_t size;
	struct add adds[6];
	size_t nadds;
	const char *text; /* the set afterwards, in its text form */
	uint64_t covered;
	uint64_t last_new; /* what the last add returned */
};

static const struct add_case cases[] = {
	/* empty and clipped */
	{ 100, { { 0, 0 } }, 1, "", 0, 0 },
	{ 100, { { 100, 5 } }, 1, "", 0, 0 },
	{ 100, { { 90, 50 } }, 1, "90-100", 10, 10 },
	{ 100, { { 0, UINT64_MAX } }, 1, "0-100", 100, 100 },
	{ 100, { { UINT64_MAX, UINT64_MAX } }, 1, "", 0, 0 },
	{ 0, { { 0, 10 } }, 1, "", 0, 0 },
	/* disjoint, in and out of order */
	{ 100, { { 0, 10 }, { 20, 10 } }, 2, "0-10,20-30", 20, 10 },
	{ 100, { { 20, 10 }, { 0, 10 } }, 2, "0-10,20-30", 20, 10 },
	{ 100, { { 50, 1 }, { 10, 1 }, { 30, 1 } }, 3, "10-11,30-31,50-51", 3, 1 },
	/* touching intervals merge */
	{ 100, { { 0, 10 }, { 10, 10 } }, 2, "0-20", 20, 10 },
	{ 100, { { 10, 10 }, { 0, 10 } }, 2, "0-20", 20, 10 },
	/* overlaps count once */
	{ 100, { { 0, 60 }, { 40, 60 } }, 2, "0-100", 100, 40 },
	{ 100, { { 0, 10 }, { 0, 10 } }, 2, "0-10", 10, 0 },
	{ 100, { { 10, 80 }, { 20, 10 } }, 2, "10-90", 80, 0 },
	/* one add bridging several */
	{ 100,
	  { { 0, 10 }, { 20, 10 }, { 40, 10 }, { 60, 10 }, { 5, 50 } },
	  5,
	  "0-55,60-70",
	  65,
	  25 },
	{ 100, { { 10, 10 }, { 30, 10 }, { 0, 100 } }, 3, "0-100", 100, 80 },
	/* sequential blocks, the CoAP case */
	{ 64, { { 0, 16 }, { 16, 16 }, { 32, 16 }, { 48, 16 } }, 4, "0-64", 64, 16 },
};

START_TEST(test_add_table)
{
	const struct add_case *tc = &cases[_i];
	struct dh_coverage c;
	char text[256];
	uint64_t last = 0;

	dh_coverage_init(&c, tc->size);
	for (size_t i = 0; i < tc->nadds; i++)
		last = dh_coverage_add(&c, tc->adds[i].off, tc->adds[i].len);
	dh_coverage_format(&c, text, sizeof(text));
	ck_assert_msg(strcmp(text, tc->text) == 0, "case %d: '%s' != '%s'", _i, text, tc->text);
	ck_assert_uint_eq(c.covered, tc->covered);
	ck_assert_uint_eq(last, tc->last_new);
	ck_assert(!c.lossy);
	ck_assert(dh_coverage_full(&c) == (tc->size > 0 && tc->covered == tc->size));
	dh_coverage_release(&c);
}
END_TEST

START_TEST(test_limit_drops_the_shortest)
{
	struct dh_coverage c;
	uint64_t before;

	dh_coverage_init(&c, 1u << 30);
	/* DH_COVERAGE_MAX intervals of 10 bytes, 100 apart, one of them longer */
	for (uint64_t i = 0; i < DH_COVERAGE_MAX; i++)
		dh_coverage_add(&c, i * 100, i == 7 ? 50 : 10);
	ck_assert_uint_eq(c.n, DH_COVERAGE_MAX);
	ck_assert(!c.lossy);
	before = c.covered;
	/* a shorter newcomer is the one dropped */
	ck_assert_uint_eq(dh_coverage_add(&c, 1000000, 5), 0);
	ck_assert(c.lossy);
	ck_assert_uint_eq(c.covered, before);
	ck_assert_uint_eq(c.n, DH_COVERAGE_MAX);
	/* a longer one replaces a 10-byte interval: never more than was really sent */
	ck_assert_uint_eq(dh_coverage_add(&c, 2000000, 30), 30);
	ck_assert_uint_eq(c.covered, before - 10 + 30);
	ck_assert_uint_eq(c.n, DH_COVERAGE_MAX);
	/* adds that touch existing intervals still merge at the limit */
	ck_assert_uint_eq(dh_coverage_add(&c, 710, 40), 0);
	ck_assert_uint_eq(dh_coverage_add(&c, 750, 10), 10);
	ck_assert_uint_eq(c.n, DH_COVERAGE_MAX);
	for (size_t i = 1; i < c.n; i++)
		ck_assert(c.iv[i - 1].end < c.iv[i].start);
	dh_coverage_release(&c);
}
END_TEST

START_TEST(test_merge_and_fraction)
{
	struct dh_coverage a, b;

	dh_coverage_init(&a, 1000);
	dh_coverage_init(&b, 5000); /* another size: clipped to a's */
	dh_coverage_add(&a, 0, 300);
	dh_coverage_add(&b, 200, 200);
	dh_coverage_add(&b, 900, 4000);
	ck_assert_uint_eq(dh_coverage_merge(&a, &b), 100 + 100);
	ck_assert_uint_eq(a.covered, 500);
	ck_assert(dh_coverage_fraction(a.covered, a.size) == 0.5);
	ck_assert(dh_coverage_fraction(0, 0) == 0.0);
	ck_assert(dh_coverage_fraction(7, 3) == 1.0);
	ck_assert(dh_coverage_fraction(999999, 1000000) < 1.0);
	dh_coverage_release(&a);
	dh_coverage_release(&b);
}
END_TEST

struct parse_case {
	const char *text;
	bool ok;
	const char *after; /* the set parsed into an empty set of size 100 */
};

static const struct parse_case parse_cases[] = {
	{ NULL, true, "" },
	{ "", true, "" },
	{ "0-10", true, "0-10" },
	{ "0-10,20-30", true, "0-10,20-30" },
	{ "20-30,0-10", true, "0-10,20-30" },
	{ "0-10,5-20", true, "0-20" },
	{ "90-500", true, "90-100" },
	{ "200-300", true, "" },
	{ "0-18446744073709551615", true, "0-100" },
	{ "0-18446744073709551616", false, "" },
	{ "99999999999999999999-1", false, "" },
	{ "10-10", false, "" },
	{ "10-5", false, "" },
	{ "-5", false, "" },
	{ "5-", false, "" },
	{ "5", false, "" },
	{ "0-10,", false, "" },
	{ ",0-10", false, "" },
	{ "0-10,,20-30", false, "" },
	{ "0-10;20-30", false, "" },
	{ " 0-10", false, "" },
	{ "0-10 ", false, "" },
	{ "+1-2", false, "" },
	{ "0x1-0x2", false, "" },
	{ "a-b", false, "" },
};

START_TEST(test_parse_table)
{
	const struct parse_case *tc = &parse_cases[_i];
	struct dh_coverage c;
	char text[256];

	dh_coverage_init(&c, 100);
	ck_assert_msg(dh_coverage_parse(&c, tc->text) == tc->ok, "case %d", _i);
	dh_coverage_format(&c, text, sizeof(text));
	ck_assert_msg(strcmp(text, tc->after) == 0, "case %d: '%s'", _i, text);
	dh_coverage_release(&c);
}
END_TEST

START_TEST(test_bad_text_leaves_the_set_alone)
{
	struct dh_coverage c;
	char text[64];

	dh_coverage_init(&c, 100);
	dh_coverage_add(&c, 40, 10);
	ck_assert(!dh_coverage_parse(&c, "0-10,20-30,oops"));
	dh_coverage_format(&c, text, sizeof(text));
	ck_assert_str_eq(text, "40-50");
	ck_assert_uint_eq(c.covered, 10);
	dh_coverage_release(&c);
}
END_TEST

START_TEST(test_text_round_trip_at_the_limit)
{
	struct dh_coverage c, d;
	char *text = malloc(DH_COVERAGE_TEXT_MAX);
	char small[8];

	ck_assert_ptr_nonnull(text);
	dh_coverage_init(&c, UINT64_MAX);
	dh_coverage_init(&d, UINT64_MAX);
	/* the longest numbers there are, so DH_COVERAGE_TEXT_MAX must hold them */
	for (uint64_t i = 0; i < DH_COVERAGE_MAX; i++)
		dh_coverage_add(&c, UINT64_MAX - 4 * (DH_COVERAGE_MAX - i), 2);
	ck_assert_uint_gt(dh_coverage_format(&c, text, DH_COVERAGE_TEXT_MAX), 0);
	ck_assert(dh_coverage_parse(&d, text));
	ck_assert_uint_eq(d.n, c.n);
	ck_assert_uint_eq(d.covered, c.covered);
	/* too small a buffer: nothing, never a cut interval */
	ck_assert_uint_eq(dh_coverage_format(&c, small, sizeof(small)), 0);
	ck_assert_str_eq(small, "");
	free(text);
	dh_coverage_release(&c);
	dh_coverage_release(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("coverage");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_add_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_limit_drops_the_shortest);
	tcase_add_test(tc, test_merge_and_fraction);
	tcase_add_loop_test(tc, test_parse_table, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_test(tc, test_bad_text_leaves_the_set_alone);
	tcase_add_test(tc, test_text_round_trip_at_the_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
