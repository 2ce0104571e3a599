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

/* RFC 3339 date-times: what is accepted (with the time it names) and what is refused. */
static const struct {
	const char *text;
	bool ok;
	int64_t us;
} times[] = {
	{ "2026-04-18T13:12:50.365610+00:00", true, 1776517970365610LL },
	{ "2026-04-18t13:12:50.365610Z", true, 1776517970365610LL },
	{ "2026-04-18 13:12:50.365610z", true, 1776517970365610LL },
	{ "2026-04-18T13:12:50.3656109999+00:00", true, 1776517970365610LL },
	{ "2026-04-18T13:12:50.3+00:00", true, 1776517970300000LL },
	{ "1970-01-01T00:00:00Z", true, 0 },
	{ "1969-12-31T23:59:59Z", true, -1000000LL },
	{ "1970-01-01T00:00:00-00:00", true, 0 },
	{ "1970-01-02T00:00:00+23:59", true, 60000000LL },
	{ "1970-01-02T00:00:00-23:59", true, (86400LL + 86340LL) * 1000000LL },
	{ "2024-02-29T00:00:00Z", true, 1709164800000000LL }, /* leap year */
	{ "2000-02-29T00:00:00Z", true, 951782400000000LL },  /* divisible by 400 */
	{ "2026-01-31T00:00:00Z", true, 1769817600000000LL },
	{ "2026-04-30T23:59:59Z", true, 1777593599000000LL },
	{ "2026-12-31T23:59:59Z", true, 1798761599000000LL },
	{ "0000-01-01T00:00:00Z", true, -62167219200000000LL },
	{ "9999-12-31T23:59:59Z", true, 253402300799000000LL },
	{ "9999-12-31T23:59:59.999999Z", true, 253402300799999999LL },
	{ "0000-01-01T00:00:00+01:00", false, 0 }, /* before year 0000: printed as 7295 */
	{ "9999-12-31T23:59:59-01:00", false, 0 }, /* after 9999: printed as year 0000 */
	{ "2026-02-30T00:00:00+00:00", false, 0 },
	{ "2026-02-29T00:00:00Z", false, 0 }, /* not a leap year */
	{ "1900-02-29T00:00:00Z", false, 0 }, /* divisible by 100 */
	{ "2026-04-31T00:00:00Z", false, 0 },
	{ "2026-06-31T00:00:00Z", false, 0 },
	{ "2026-09-31T00:00:00Z", false, 0 },
	{ "2026-11-31T00:00:00Z", false, 0 },
	{ "2026-01-32T00:00:00Z", false, 0 },
	{ "2026-01-00T00:00:00Z", false, 0 },
	{ "2026-00-10T00:00:00Z", false, 0 },
	{ "2026-13-10T00:00:00Z", false, 0 },
	{ "2026-01-10T24:00:00Z", false, 0 },
	{ "2026-01-10T23:60:00Z", false, 0 },
	{ "2026-01-10T23:59:60Z", false, 0 }, /* leap second */
	{ "2026-01-10T23:59:61Z", false, 0 },
	{ "2026-01-10T00:00:00+24:00", false, 0 },
	{ "2026-01-10T00:00:00+23:60", false, 0 },
	{ "2026-01-10T00:00:00+0100", false, 0 },
	{ "2026-01-10T00:00:00+01", false, 0 },
	{ "2026-01-10T00:00:00", false, 0 },
	{ "2026-01-10T00:00:00.Z", false, 0 },
	{ "2026-01-10T00:00:00ZZ", false, 0 },
	{ "2026-01-10T00:00:00Z ", false, 0 },
	{ "2026-1-10T00:00:00Z", false, 0 },
	{ "2026-01-10X00:00:00Z", false, 0 },
	{ "+2026-01-10T00:00:00Z", false, 0 },
	{ "2026-01-10T0:00:00Z", false, 0 },
	{ "", false, 0 },
	{ "2026-01-10", false, 0 },
};

START_TEST(test_time_table)
{
	int64_t t = 12345;
	bool ok = dh_time_parse(times[_i].text, &t);

	ck_assert_msg(ok == times[_i].ok, "'%s'", times[_i].text);
	if (ok)
		ck_assert_msg(t == times[_i].us, "'%s' gave %lld", times[_i].text, (long long)t);
}
END_TEST

START_TEST(test_time_format_parse_round_trip)
{
	char buf[DH_TIME_LEN];
	int64_t t;

	/* every day of four years, leap day included, at a time with microseconds */
	for (int64_t day = 19722; day < 19722 + 4 * 366; day++) {
		int64_t us = day * 86400000000LL + 45296123456LL;
		dh_time_format(us, buf);
		ck_assert_msg(dh_time_parse(buf, &t) && t == us, "%s", buf);
	}
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
	tcase_add_loop_test(tc, test_time_table, 0, sizeof(times) / sizeof(times[0]));
	tcase_add_test(tc, test_time_format_parse_round_trip);
	tcase_add_test(tc, test_u64);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
