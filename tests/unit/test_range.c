/* Range and If-Range parsing: a table of header values against a size, bad inputs included. */
#include "http/range.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct range_case {
	const char *value;
	uint64_t size;
	enum dh_range_kind kind;
	uint64_t start, len;
};

static const struct range_case cases[] = {
	{ NULL, 100, DH_RANGE_NONE, 0, 0 },
	{ "bytes=0-0", 100, DH_RANGE_ONE, 0, 1 },
	{ "bytes=0-99", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=10-19", 100, DH_RANGE_ONE, 10, 10 },
	{ "bytes=10-1000", 100, DH_RANGE_ONE, 10, 90 },
	{ "bytes=99-", 100, DH_RANGE_ONE, 99, 1 },
	{ "bytes=0-", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=-1", 100, DH_RANGE_ONE, 99, 1 },
	{ "bytes=-30", 100, DH_RANGE_ONE, 70, 30 },
	{ "bytes=-100", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=-5000", 100, DH_RANGE_ONE, 0, 100 },
	{ "BYTES=1-2", 100, DH_RANGE_ONE, 1, 2 },
	{ "  bytes=1-2  ", 100, DH_RANGE_ONE, 1, 2 },
	{ "bytes= 1-2 ", 100, DH_RANGE_ONE, 1, 2 },
	{ "bytes=1-2,", 100, DH_RANGE_ONE, 1, 2 },
	{ "bytes=,1-2", 100, DH_RANGE_ONE, 1, 2 },
	{ "bytes=0-18446744073709551615", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=0-99999999999999999999999999", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=-99999999999999999999999999", 100, DH_RANGE_ONE, 0, 100 },
	{ "bytes=100-", 100, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=100-200", 100, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=1000-", 100, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=99999999999999999999999999-", 100, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=-0", 100, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=0-", 0, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=-5", 0, DH_RANGE_UNSATISFIABLE, 0, 0 },
	{ "bytes=0-1,5-6", 100, DH_RANGE_MULTI, 0, 0 },
	{ "bytes=0-1, 5-", 100, DH_RANGE_MULTI, 0, 0 },
	{ "bytes=-1,-2", 100, DH_RANGE_MULTI, 0, 0 },
	{ "bytes=200-300,0-1", 100, DH_RANGE_MULTI, 0, 0 },
	{ "", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=,", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=-", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=a-b", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=5-4", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=1-2-3", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=+1-2", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=1 -2", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=--1", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes = 1-2", 100, DH_RANGE_INVALID, 0, 0 },
	{ "items=1-2", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=0x10-", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=1-2,x", 100, DH_RANGE_INVALID, 0, 0 },
	{ "bytes=1-2;3", 100, DH_RANGE_INVALID, 0, 0 },
};

START_TEST(test_range_table)
{
	const struct range_case *c = &cases[_i];
	struct dh_range r = { 777, 777 };
	enum dh_range_kind k = dh_range_parse(c->value, c->size, &r);

	ck_assert_msg(k == c->kind, "'%s' size %llu: kind %d, want %d",
		      c->value ? c->value : "(null)", (unsigned long long)c->size, k, c->kind);
	if (c->kind == DH_RANGE_ONE) {
		ck_assert_msg(r.start == c->start && r.len == c->len,
			      "'%s': %llu+%llu, want %llu+%llu", c->value,
			      (unsigned long long)r.start, (unsigned long long)r.len,
			      (unsigned long long)c->start, (unsigned long long)c->len);
	} else {
		ck_assert_msg(r.start == 777 && r.len == 777, "'%s' wrote *out", c->value);
	}
}
END_TEST

START_TEST(test_range_too_long)
{
	char *v = malloc(DH_RANGE_HEADER_MAX + 16);
	struct dh_range r;

	ck_assert_ptr_nonnull(v);
	memcpy(v, "bytes=0-1", 9);
	memset(v + 9, ' ', DH_RANGE_HEADER_MAX);
	v[DH_RANGE_HEADER_MAX + 9] = 0;
	ck_assert_int_eq(dh_range_parse(v, 100, &r), DH_RANGE_INVALID);
	free(v);
}
END_TEST

struct if_range_case {
	const char *if_range;
	bool ok;
};

#define ETAG "\"0123abcd\""
#define DATE "Sat, 18 Apr 2026 13:12:50 GMT"

static const struct if_range_case if_cases[] = {
	{ NULL, true },
	{ ETAG, true },
	{ " " ETAG " ", true },
	{ DATE, true },
	{ "\"0123abce\"", false },
	{ "W/" ETAG, false },
	{ "\"0123abcd", false },
	{ "", false },
	{ "Sat, 18 Apr 2026 13:12:51 GMT", false },
	{ "garbage", false },
};

START_TEST(test_if_range_table)
{
	const struct if_range_case *c = &if_cases[_i];

	ck_assert_msg(dh_range_if_range_ok(c->if_range, ETAG, DATE) == c->ok, "If-Range '%s'",
		      c->if_range ? c->if_range : "(null)");
}
END_TEST

START_TEST(test_if_range_no_date)
{
	ck_assert(!dh_range_if_range_ok(DATE, ETAG, NULL));
	ck_assert(dh_range_if_range_ok(ETAG, ETAG, NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("range");
	TCase *tc = tcase_create("range");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_range_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_range_too_long);
	tcase_add_loop_test(tc, test_if_range_table, 0, sizeof(if_cases) / sizeof(if_cases[0]));
	tcase_add_test(tc, test_if_range_no_date);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
