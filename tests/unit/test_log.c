/* The logger escapes every value itself (log.h): a table of formats, values and the text
 * written, then cuts of long lines. */
#include "log.h"

#include "core/text.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *value;
	const char *want; /* of "path=%s status=%u" with 404 */
} values[] = {
	{ "/api/v1/x", "path=/api/v1/x status=404" },
	{ "", "path=\"\" status=404" },
	{ "caf\xc3\xa9", "path=caf\xc3\xa9 status=404" },
	{ "a b", "path=\"a b\" status=404" },
	{ "x user=evil", "path=\"x user=evil\" status=404" },
	{ "k=v", "path=\"k=v\" status=404" },
	{ "say \"hi\"", "path=\"say \\\"hi\\\"\" status=404" },
	{ "back\\slash", "path=back\\\\slash status=404" },
	{ "x\n2026-01-01T00:00:00Z error auth.bootstrap user=evil",
	  "path=\"x\\x0a2026-01-01T00:00:00Z error auth.bootstrap user=evil\" status=404" },
	{ "x\r\ny", "path=\"x\\x0d\\x0ay\" status=404" },
	{ "tab\there", "path=\"tab\\x09here\" status=404" },
	{ "esc\x1b[31m", "path=\"esc\\x1b[31m\" status=404" },
	{ "del\x7f", "path=\"del\\x7f\" status=404" },
	{ "bad\xff\xfe", "path=bad\\xff\\xfe status=404" },
	{ "cut\xc3", "path=cut\\xc3 status=404" },
	{ "sur\xed\xa0\x80", "path=sur\\xed\\xa0\\x80 status=404" },
	{ "nel\xc2\x85x", "path=nel\\xc2\\x85x status=404" },
	{ "ls\xe2\x80\xa8x", "path=ls\\xe2\\x80\\xa8x status=404" },
	{ "ps\xe2\x80\xa9x", "path=ps\\xe2\\x80\\xa9x status=404" },
	{ "nbsp\xc2\xa0x", "path=nbsp\xc2\xa0x status=404" },
	{ "euro\xe2\x82\xac", "path=euro\xe2\x82\xac status=404" },
};

START_TEST(test_values)
{
	char out[256];

	dh_log_format(out, sizeof(out), "path=%s status=%u", values[_i].value, 404u);
	ck_assert_str_eq(out, values[_i].want);
	ck_assert(dh_utf8_valid(out, strlen(out)));
	ck_assert(strchr(out, '\n') == NULL && strchr(out, '\r') == NULL);
}
END_TEST

START_TEST(test_conversions)
{
	char out[256];

	dh_log_format(out, sizeof(out), "a=%d b=%u c=%lld d=%llu e=%zu f=%ld g=%x h=%c i=%%", -5,
		      7u, -9000000000LL, 18000000000ULL, (size_t)42, -3L, 255u, 'q');
	ck_assert_str_eq(out, "a=-5 b=7 c=-9000000000 d=18000000000 e=42 f=-3 g=ff h=q i=%");
	dh_log_format(out, sizeof(out), "a=%04d b=%.2f c=%s d=%5s", 7, 1.5, "x", "y");
	ck_assert_str_eq(out, "a=0007 b=1.50 c=x d=y");
	dh_log_format(out, sizeof(out), "c=%c", '\n');
	ck_assert_str_eq(out, "c=\"\\x0a\"");
	dh_log_format(out, sizeof(out), "%s", "");
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_caller_quotes_and_precision)
{
	char out[256];

	/* a format that quotes its value itself gets one pair of quotes, escaping inside */
	dh_log_format(out, sizeof(out), "detail=\"%s\" n=%d", "simple", 1);
	ck_assert_str_eq(out, "detail=\"simple\" n=1");
	dh_log_format(out, sizeof(out), "detail=\"%s\" n=%d", "a \"b\"\nc", 1);
	ck_assert_str_eq(out, "detail=\"a \\\"b\\\"\\x0ac\" n=1");
	/* a precision never splits a character, nor reads past it */
	dh_log_format(out, sizeof(out), "p=%.3s", "ab\xc3\xa9");
	ck_assert_str_eq(out, "p=ab");
	dh_log_format(out, sizeof(out), "p=%.*s", 4, "ab\xc3\xa9zz");
	ck_assert_str_eq(out, "p=ab\xc3\xa9");
	{
		const char buf[3] = { 'x', 'y', 'z' }; /* no NUL */
		dh_log_format(out, sizeof(out), "p=%.*s", 3, buf);
		ck_assert_str_eq(out, "p=xyz");
	}
}
END_TEST

START_TEST(test_long_values_are_cut_whole)
{
	char out[32], big[300];

	for (size_t pre = 0; pre < 4; pre++) {
		size_t o = 0;
		for (; o < pre; o++)
			big[o] = 'a';
		while (o + 3 < sizeof(big)) {
			big[o++] = ' ';
			big[o++] = '\xc3';
			big[o++] = '\xa9';
		}
		big[o] = 0;
		for (size_t size = 4; size <= sizeof(out); size++) {
			size_t n = dh_log_format(out, size, "k=%s", big);
			ck_assert_uint_lt(n, size);
			ck_assert(dh_utf8_valid(out, n));
			/* quotes stay balanced: a cut value is still closed */
			if (n > 2) {
				ck_assert(out[2] == '"');
				ck_assert(out[n - 1] == '"');
			}
		}
		dh_log_format(out, sizeof(out), "k=%s", "\xff\xff\xff\xff\xff\xff\xff\xff\xff");
		ck_assert(dh_utf8_valid(out, strlen(out)));
		ck_assert_uint_eq(strlen(out) % 4, 2); /* "k=" and whole \xNN escapes only */
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_values, 0, sizeof(values) / sizeof(values[0]));
	tcase_add_test(tc, test_conversions);
	tcase_add_test(tc, test_caller_quotes_and_precision);
	tcase_add_test(tc, test_long_values_are_cut_whole);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
