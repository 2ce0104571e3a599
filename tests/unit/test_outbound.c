/* Outbound requests without the network: the save-time URL check as a table of URLs with and
 * without --webhook-allow-private. */
#include "outbound/outbound.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct url_case {
	const char *url;
	bool ok;         /* without --webhook-allow-private */
	bool ok_private; /* with it */
};

static const struct url_case url_cases[] = {
	{ "https://example.com/hook", true, true },
	{ "http://example.com:8080/a?b=c", true, true },
	{ "HTTPS://Example.COM/", true, true },
	{ "https://user:pw@example.com/", true, true },
	{ "http://127.0.0.1.nip.io/", true, true }, /* a name: refused at connect time */
	{ "http://127.0.0.1:9000/hook", false, true },
	{ "http://localhost/", false, true },
	{ "http://app.localhost./", false, true },
	{ "http://2130706433/", false, true },
	{ "http://0x7f.1/", false, true },
	{ "http://[::1]:8080/", false, true },
	{ "http://[::ffff:127.0.0.1]/", false, true },
	{ "http://[fe80::1%25eth0]/", false, true },
	{ "http://169.254.169.254/latest/meta-data", false, true },
	{ "http://10.0.0.1/", false, true },
	{ "http://0.0.0.0/", false, true },
	{ "ftp://example.com/", false, false },
	{ "file:///etc/passwd", false, false },
	{ "example.com/hook", false, false },
	{ "/hook", false, false },
	{ "http://", false, false },
	{ "http:///path", false, false },
	{ "http://exa mple.com/", false, false },
	{ "", false, false },
	{ NULL, false, false },
};

START_TEST(test_url_table)
{
	const struct url_case *c = &url_cases[_i];
	char why[DH_OUTBOUND_WHY_MAX] = "";

	ck_assert_msg(dh_outbound_url_check(c->url, false, why, sizeof(why)) == c->ok,
		      "'%s' without the flag: %s", c->url ? c->url : "(null)", why);
	if (!c->ok)
		ck_assert_msg(*why, "'%s': no reason given", c->url ? c->url : "(null)");
	ck_assert_msg(dh_outbound_url_check(c->url, true, why, sizeof(why)) == c->ok_private,
		      "'%s' with the flag: %s", c->url ? c->url : "(null)", why);
}
END_TEST

START_TEST(test_url_reason_names_the_kind)
{
	char why[DH_OUTBOUND_WHY_MAX];

	ck_assert(!dh_outbound_url_check("http://127.0.0.1/", false, why, sizeof(why)));
	ck_assert_msg(strstr(why, "loopback") && strstr(why, "--webhook-allow-private"), "%s", why);
	ck_assert(!dh_outbound_url_check("http://192.168.1.1/", false, why, sizeof(why)));
	ck_assert_msg(strstr(why, "private"), "%s", why);
}
END_TEST

START_TEST(test_url_too_long)
{
	char *u = malloc(DH_OUTBOUND_URL_MAX + 64), why[DH_OUTBOUND_WHY_MAX];

	ck_assert_ptr_nonnull(u);
	memcpy(u, "https://example.com/", 20);
	memset(u + 20, 'a', DH_OUTBOUND_URL_MAX);
	u[DH_OUTBOUND_URL_MAX + 20] = 0;
	ck_assert(!dh_outbound_url_check(u, false, why, sizeof(why)));
	u[DH_OUTBOUND_URL_MAX - 1] = 0;
	ck_assert(dh_outbound_url_check(u, false, why, sizeof(why)));
	free(u);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("outbound");
	TCase *tc = tcase_create("outbound");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_url_table, 0, sizeof(url_cases) / sizeof(url_cases[0]));
	tcase_add_test(tc, test_url_reason_names_the_kind);
	tcase_add_test(tc, test_url_too_long);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
