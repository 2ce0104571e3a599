/* The start-up URL forms (core/url.h): link bases and --allowed-hosts lists, good and bad,
 * each bad one with the words its sentence must hold. */
#include "core/url.h"

#include "core/text.h"

#include <check.h>
#include <string.h>

static const char *const http[] = { "http", "https", NULL };
static const char *const coap[] = { "coap", "coaps", NULL };

static const struct {
	const char *text;
	bool coap;       /* coap schemes, no path; else http schemes, a path allowed */
	const char *why; /* NULL: accepted */
} bases[] = {
	{ "http://hub.example", false, NULL },
	{ "https://hub.example:8443/", false, NULL },
	{ "HTTPS://Hub.Example", false, NULL },
	{ "http://192.0.2.10:8080", false, NULL },
	{ "http://[2001:db8::1]:8080/", false, NULL },
	{ "http://[::1]", false, NULL },
	{ "https://hub.example/device-hub/v1/", false, NULL },
	{ "https://hub.example/a%20b/~x_y-z.1", false, NULL },
	{ "https://xn--bcher-kva.example", false, NULL },
	{ "https://localhost:1", false, NULL },
	{ "https://a.example:65535", false, NULL },
	{ "coap://hub.example:5683", true, NULL },
	{ "coaps://hub.example:5684/", true, NULL },
	{ "coap://[::1]", true, NULL },
	/* scheme */
	{ "hub.example", false, "does not start with http:// or https://" },
	{ "hub.example:8080", false, "does not start with http://" },
	{ "//hub.example", false, "does not start with" },
	{ "ftp://hub.example", false, "scheme 'ftp'" },
	{ "coap://hub.example", false, "scheme 'coap'" },
	{ "https://hub.example", true, "must start with coap:// or coaps://" },
	{ "a/b://c", false, "does not start with" },
	/* authority */
	{ "https://user@hub.example", false, "user information" },
	{ "https://user:pw@hub.example/", false, "user information" },
	{ "https://", false, "has no host" },
	{ "https:///path", false, "has no host" },
	{ "https://:8080", false, "has no host" },
	{ "https://hub.example:", false, "no port" },
	{ "https://hub.example:0", false, "port '0'" },
	{ "https://hub.example:65536", false, "port '65536'" },
	{ "https://hub.example:123456", false, "port '123456'" },
	{ "https://hub.example:8o", false, "port '8o'" },
	{ "https://hub.example:-1", false, "port '-1'" },
	{ "https://hub..example", false, "empty label" },
	{ "https://hub.example.", false, "empty label" },
	{ "https://-hub.example", false, "begins or ends with '-'" },
	{ "https://hub-.example", false, "begins or ends with '-'" },
	{ "https://hub_1.example", false, "holds '_'" },
	{ "https://999.1.1.1", false, "not an IPv4 address" },
	{ "https://1.2.3", false, "not an IPv4 address" },
	{ "https://::1", false, "more than one ':'" },
	{ "https://[::1", false, "without its ']'" },
	{ "https://[zz::1]", false, "not an IPv6 address" },
	{ "https://[fe80::1%25eth0]", false, "not an IPv6 address" },
	{ "https://[::1]x", false, "after the host's ']'" },
	{ "https://"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	  false, "longer than 63" },
	/* path, query, fragment */
	{ "coap://hub.example/d", true, "has a path ('/d')" },
	{ "coap://hub.example//", true, "has a path" },
	{ "https://hub.example?x=1", false, "query" },
	{ "https://hub.example/a?x=1", false, "query" },
	{ "https://hub.example#top", false, "fragment" },
	{ "https://hub.example/a//b", false, "empty segment" },
	{ "https://hub.example//", false, "empty segment" },
	{ "https://hub.example/./a", false, "'.' or '..'" },
	{ "https://hub.example/a/..", false, "'.' or '..'" },
	{ "https://hub.example/a%2", false, "two hex digits" },
	{ "https://hub.example/a%g0", false, "two hex digits" },
	{ "https://hub.example/a\"b", false, "holds '\"'" },
	{ "https://hub.example/a\\b", false, "holds '\\'" },
	/* bytes */
	{ "https://hub.example/\x1b[2J", false, "control character (byte 0x1b" },
	{ "https://hub.example\r\nX: y", false, "control character (byte 0x0d" },
	{ "https://hub.example/\x7f", false, "control character (byte 0x7f" },
	{ "https://hub\xff.example", false, "not UTF-8" },
	{ "https://h\xc3\xa9.example", false, "outside ASCII" },
	{ "https://hub.example/a b", false, "a space" },
	{ " https://hub.example", false, "a space" },
};

START_TEST(test_base)
{
	char why[DH_URL_WHY_MAX] = "";
	bool ok = dh_url_base_check(bases[_i].text, bases[_i].coap ? coap : http, !bases[_i].coap,
				    why, sizeof(why));

	if (!bases[_i].why) {
		ck_assert_msg(ok, "case %d: %s refused: %s", _i, bases[_i].text, why);
		return;
	}
	ck_assert_msg(!ok, "case %d: %s accepted", _i, bases[_i].text);
	ck_assert_msg(strstr(why, bases[_i].why), "case %d: '%s' lacks '%s'", _i, why,
		      bases[_i].why);
	ck_assert(dh_utf8_valid(why, strlen(why)));
}
END_TEST

START_TEST(test_base_length)
{
	char text[DH_URL_BASE_MAX + 2], why[DH_URL_WHY_MAX];

	/* "https://a.example/" and a path up to the limit, then one byte more */
	memset(text, 'p', sizeof(text));
	memcpy(text, "https://a.example/", 18);
	text[DH_URL_BASE_MAX] = 0;
	ck_assert(dh_url_base_check(text, http, true, why, sizeof(why)));
	text[DH_URL_BASE_MAX] = 'p';
	text[DH_URL_BASE_MAX + 1] = 0;
	ck_assert(!dh_url_base_check(text, http, true, why, sizeof(why)));
	ck_assert_str_eq(why, "is longer than 256 bytes");
}
END_TEST

static const struct {
	const char *text;
	const char *why;
} hosts[] = {
	{ "hub.example", NULL },
	{ "hub.example:8080, Other.Example", NULL },
	{ "hub.example , [::1]:8443,10.0.0.1", NULL },
	{ "a,,b", "empty entry" },
	{ "a,", "empty entry" },
	{ " , a", "empty entry" },
	{ "x/y", "entry 'x/y': holds '/'" },
	{ "a b", "entry 'a b': holds a space" },
	{ "a:0", "entry 'a:0': port '0'" },
	{ "a@b", "user information" },
	{ "ok,bad_host", "entry 'bad_host': host 'bad_host' holds '_'" },
	{ "ok,\x01", "control character" },
	{ "ok,\xc3", "not UTF-8" },
};

START_TEST(test_hosts)
{
	char why[DH_URL_WHY_MAX] = "";
	bool ok = dh_url_hosts_check(hosts[_i].text, why, sizeof(why));

	if (!hosts[_i].why) {
		ck_assert_msg(ok, "case %d refused: %s", _i, why);
		return;
	}
	ck_assert_msg(!ok, "case %d accepted", _i);
	ck_assert_msg(strstr(why, hosts[_i].why), "case %d: '%s' lacks '%s'", _i, why,
		      hosts[_i].why);
}
END_TEST

START_TEST(test_hosts_length)
{
	static char text[DH_URL_HOSTS_MAX + 2];
	char why[DH_URL_WHY_MAX];

	memset(text, 'a', DH_URL_HOSTS_MAX + 1);
	for (size_t i = 60; i < DH_URL_HOSTS_MAX; i += 61)
		text[i] = ',';
	text[DH_URL_HOSTS_MAX] = 0;
	ck_assert_msg(dh_url_hosts_check(text, why, sizeof(why)), "%s", why);
	text[DH_URL_HOSTS_MAX] = 'a';
	ck_assert(!dh_url_hosts_check(text, why, sizeof(why)));
	ck_assert_str_eq(why, "is longer than 4096 bytes");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_base, 0, sizeof(bases) / sizeof(bases[0]));
	tcase_add_test(tc, test_base_length);
	tcase_add_loop_test(tc, test_hosts, 0, sizeof(hosts) / sizeof(hosts[0]));
	tcase_add_test(tc, test_hosts_length);
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
	return failed ? 1 : 0;
}
