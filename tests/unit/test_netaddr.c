/* Outbound destination rules: a table of host texts (names, literals in every resolver form,
 * IPv6 forms that embed IPv4) with the kind each must get, bad inputs included. */
#include "core/netaddr.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct host_case {
	const char *host;
	enum dh_addr_kind kind;
};

static const struct host_case cases[] = {
	/* public */
	{ "example.com", DH_ADDR_PUBLIC },
	{ "93.184.216.34", DH_ADDR_PUBLIC },
	{ "8.8.8.8", DH_ADDR_PUBLIC },
	{ "[2606:4700::1111]", DH_ADDR_PUBLIC },
	{ "2606:4700::1111", DH_ADDR_PUBLIC },
	{ "192.0.2.7", DH_ADDR_PUBLIC },
	{ "172.32.0.1", DH_ADDR_PUBLIC },
	{ "100.128.0.1", DH_ADDR_PUBLIC },
	{ "localhost.example.com", DH_ADDR_PUBLIC },
	{ "notlocalhost", DH_ADDR_PUBLIC },
	{ "1.2.3.4.5", DH_ADDR_PUBLIC },   /* not a literal: a name the resolver looks up */
	{ "127.0.0.1 x", DH_ADDR_PUBLIC }, /* not a literal: white space */
	{ "0x7g.0.0.1", DH_ADDR_PUBLIC },  /* not a literal */
	{ "[127.0.0.1]", DH_ADDR_PUBLIC }, /* brackets are for IPv6 only */
	{ "", DH_ADDR_PUBLIC },
	/* loopback, in every spelling */
	{ "127.0.0.1", DH_ADDR_LOOPBACK },
	{ "127.255.255.254", DH_ADDR_LOOPBACK },
	{ "127.1", DH_ADDR_LOOPBACK },
	{ "2130706433", DH_ADDR_LOOPBACK },
	{ "0x7f000001", DH_ADDR_LOOPBACK },
	{ "0X7F.0.0.1", DH_ADDR_LOOPBACK },
	{ "0177.0.0.1", DH_ADDR_LOOPBACK },
	{ "localhost", DH_ADDR_LOOPBACK },
	{ "LocalHost.", DH_ADDR_LOOPBACK },
	{ "api.localhost", DH_ADDR_LOOPBACK },
	{ "[::1]", DH_ADDR_LOOPBACK },
	{ "::1", DH_ADDR_LOOPBACK },
	{ "[0:0:0:0:0:0:0:1]", DH_ADDR_LOOPBACK },
	{ "[::ffff:127.0.0.1]", DH_ADDR_LOOPBACK },
	{ "[::ffff:7f00:1]", DH_ADDR_LOOPBACK },
	{ "[::127.0.0.1]", DH_ADDR_LOOPBACK },
	{ "[64:ff9b::7f00:1]", DH_ADDR_LOOPBACK },
	{ "[2002:7f00:1::]", DH_ADDR_LOOPBACK },
	/* unspecified */
	{ "0.0.0.0", DH_ADDR_UNSPECIFIED },
	{ "0", DH_ADDR_UNSPECIFIED },
	{ "[::]", DH_ADDR_UNSPECIFIED },
	{ "[::ffff:0.0.0.0]", DH_ADDR_UNSPECIFIED },
	/* private */
	{ "10.1.2.3", DH_ADDR_PRIVATE },
	{ "172.16.0.1", DH_ADDR_PRIVATE },
	{ "172.31.255.255", DH_ADDR_PRIVATE },
	{ "192.168.1.1", DH_ADDR_PRIVATE },
	{ "100.64.0.1", DH_ADDR_PRIVATE },
	{ "167772161", DH_ADDR_PRIVATE }, /* 10.0.0.1 */
	{ "[fd00::1]", DH_ADDR_PRIVATE },
	{ "[fc12:3456::1]", DH_ADDR_PRIVATE },
	{ "[::ffff:10.0.0.1]", DH_ADDR_PRIVATE },
	{ "[::ffff:192.168.0.1]", DH_ADDR_PRIVATE },
	{ "[64:ff9b:1::1]", DH_ADDR_PRIVATE },
	/* link-local */
	{ "169.254.169.254", DH_ADDR_LINK_LOCAL },
	{ "[fe80::1]", DH_ADDR_LINK_LOCAL },
	{ "[fe80::1%eth0]", DH_ADDR_LINK_LOCAL },
	{ "[febf::1]", DH_ADDR_LINK_LOCAL },
	{ "[::ffff:169.254.169.254]", DH_ADDR_LINK_LOCAL },
	/* multicast and reserved */
	{ "224.0.0.1", DH_ADDR_MULTICAST },
	{ "239.255.255.250", DH_ADDR_MULTICAST },
	{ "[ff02::1]", DH_ADDR_MULTICAST },
	{ "255.255.255.255", DH_ADDR_RESERVED },
	{ "240.0.0.1", DH_ADDR_RESERVED },
	{ "192.0.0.8", DH_ADDR_RESERVED },
	{ "198.18.0.1", DH_ADDR_RESERVED },
	{ "[fec0::1]", DH_ADDR_RESERVED },
	{ "[100::1]", DH_ADDR_RESERVED },
	{ "[2001:0:4136:e378:8000:63bf:80ff:fffe]", DH_ADDR_LOOPBACK }, /* Teredo, 127.0.0.1 */
};

START_TEST(test_host_table)
{
	const struct host_case *c = &cases[_i];
	enum dh_addr_kind k = dh_host_kind(c->host);

	ck_assert_msg(k == c->kind, "'%s': %s, want %s", c->host, dh_addr_kind_name(k),
		      dh_addr_kind_name(c->kind));
}
END_TEST

START_TEST(test_literal_forms)
{
	uint8_t a[16];

	ck_assert_int_eq(dh_addr_parse_literal("2130706433", a), 4);
	ck_assert(memcmp(a, "\x7f\x00\x00\x01", 4) == 0);
	ck_assert_int_eq(dh_addr_parse_literal("[::1]", a), 6);
	ck_assert_int_eq(dh_addr_parse_literal("example.com", a), 0);
	ck_assert_int_eq(dh_addr_parse_literal("[::1", a), 0);
	ck_assert_int_eq(dh_addr_parse_literal("[]", a), 0);
	ck_assert_int_eq(dh_addr_parse_literal(NULL, a), 0);
	ck_assert_int_eq(dh_addr_parse_literal("::1::2", a), 0);
}
END_TEST

START_TEST(test_too_long)
{
	char *h = malloc(4096);

	ck_assert_ptr_nonnull(h);
	memset(h, '1', 4095);
	h[4095] = 0;
	ck_assert_int_eq(dh_host_kind(h), DH_ADDR_PUBLIC);
	free(h);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(dh_addr_kind_name(DH_ADDR_LOOPBACK), "loopback");
	ck_assert_str_eq(dh_addr_kind_name(DH_ADDR_PUBLIC), "public");
	ck_assert_str_eq(dh_addr_kind_name((enum dh_addr_kind)99), "reserved");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("netaddr");
	TCase *tc = tcase_create("netaddr");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_host_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_literal_forms);
	tcase_add_test(tc, test_too_long);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
