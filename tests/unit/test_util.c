/* tids, uuids, times and number parsing. */
#include "core/util.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_tid)
{
	ck_assert(dh_tid_valid("dp-handle"));
	ck_assert(dh_tid_valid("CAFEBABE"));
	ck_assert(dh_tid_valid("a.b_c-d"));
	ck_assert(!dh_tid_valid(""));
	ck_assert(!dh_tid_valid("a b"));
	ck_assert(!dh_tid_valid("a/b"));
	ck_assert(!dh_tid_valid("é"));
	ck_assert(dh_tid_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	ck_assert(
		!dh_tid_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(test_uuid)
{
	char a[DH_UUID_LEN], b[DH_UUID_LEN];

	dh_uuid_new(a);
	dh_uuid_new(b);
	ck_assert(dh_uuid_valid(a));
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(a[14], '4');
	ck_assert(!dh_uuid_valid("not-a-uuid"));
	ck_assert(!dh_uuid_valid("11111111-1111-4111-8111-11111111111"));
	ck_assert(!dh_uuid_valid("11111111-1111-4111-8111-1111111111111"));
}
END_TEST

START_TEST(test_time)
{
	char buf[DH_TIME_LEN];
	int64_t t;

	dh_time_format(1776517970365610LL, buf);
	ck_assert_str_eq(buf, "2026-04-18T13:12:50.365610+00:00");
	ck_assert(dh_time_parse(buf, &t));
	ck_assert_int_eq(t, 1776517970365610LL);
	ck_assert(dh_time_parse("2026-04-18T15:12:50.365610+02:00", &t));
	ck_assert_int_eq(t, 1776517970365610LL);
	ck_assert(dh_time_parse("2026-04-18T13:12:50Z", &t));
	ck_assert_int_eq(t, 1776517970000000LL);
	ck_assert(!dh_time_parse("2026-04-18T13:12:50", &t));
	ck_assert(!dh_time_parse("2026-13-18T13:12:50Z", &t));
	ck_assert(!dh_time_parse("yesterday", &t));
}
END_TEST

START_TEST(test_u64)
{
	uint64_t v;

	ck_assert(dh_parse_u64("0", &v) && v == 0);
	ck_assert(dh_parse_u64("18446744073709551615", &v) && v == UINT64_MAX);
	ck_assert(!dh_parse_u64("18446744073709551616", &v));
	ck_assert(!dh_parse_u64("", &v));
	ck_assert(!dh_parse_u64("-1", &v));
	ck_assert(!dh_parse_u64("1 ", &v));
	ck_assert(!dh_parse_u64("0x10", &v));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_tid);
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_time);
	tcase_add_test(tc, test_u64);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
