/* Block2 reading, writing and planning (server/coap/block.c), and the host of a URL for
 * coap_link (core/links.c): tables of inputs and answers, bad inputs included. */
#include "coap/block.h"
#include "core/links.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct parse_case {
	uint8_t v[4];
	size_t len;
	bool ok;
	uint32_t num;
	bool more;
	unsigned szx;
};

static const struct parse_case parse_cases[] = {
	{ { 0 }, 0, true, 0, false, 0 },
	{ { 0x06 }, 1, true, 0, false, 6 },
	{ { 0x1e }, 1, true, 1, true, 6 },
	{ { 0x07 }, 1, true, 0, false, 7 },
	{ { 0xff }, 1, true, 15, true, 7 },
	{ { 0x01, 0x02 }, 2, true, 16, false, 2 },
	{ { 0xff, 0xff, 0xf6 }, 3, true, 0xFFFFF, false, 6 },
	{ { 0x00, 0x00, 0x00, 0x10 }, 4, false, 0, false, 0 },
};

START_TEST(test_parse)
{
	const struct parse_case *tc = &parse_cases[_i];
	struct dh_block2 b = { 0 };

	ck_assert(dh_block2_parse(tc->v, tc->len, &b) == tc->ok);
	if (!tc->ok)
		return;
	ck_assert_uint_eq(b.num, tc->num);
	ck_assert(b.more == tc->more);
	ck_assert_uint_eq(b.szx, tc->szx);
}
END_TEST

START_TEST(test_format_round_trip)
{
	static const uint32_t nums[] = { 0, 1, 15, 16, 4095, 4096, 0xFFFFF };
	uint8_t buf[3];
	struct dh_block2 b;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		for (unsigned szx = 0; szx <= 6; szx++) {
			for (int more = 0; more <= 1; more++) {
				size_t n = dh_block2_format(nums[i], more, szx, buf);
				ck_assert(dh_block2_parse(buf, n, &b));
				ck_assert_uint_eq(b.num, nums[i]);
				ck_assert_uint_eq(b.szx, szx);
				ck_assert(b.more == (bool)more);
			}
		}
	}
	ck_assert_uint_eq(dh_block2_format(0, false, 0, buf), 0);
	ck_assert_uint_eq(dh_block2_format(1, false, 0, buf), 1);
	ck_assert_uint_eq(dh_block2_format(16, false, 0, buf), 2);
	ck_assert_uint_eq(dh_block2_format(4096, false, 0, buf), 3);
}
END_TEST

struct plan_case {
	uint64_t size;
	bool has;
	uint32_t num;
	unsigned szx, max_szx;
	/* expected */
	unsigned code;
	bool block;
	uint32_t anum;
	unsigned aszx;
	bool more;
	uint64_t off, len;
};

static const struct plan_case plan_cases[] = {
	/* no Block2: the first block at the largest size, Block2 only when more follows */
	{ 3000, false, 0, 0, 6, 205, true, 0, 6, true, 0, 1024 },
	{ 1000, false, 0, 0, 6, 205, false, 0, 6, false, 0, 1000 },
	{ 1024, false, 0, 0, 6, 205, false, 0, 6, false, 0, 1024 },
	{ 1025, false, 0, 0, 6, 205, true, 0, 6, true, 0, 1024 },
	{ 0, false, 0, 0, 6, 205, false, 0, 6, false, 0, 0 },
	/* the client's size and number */
	{ 3000, true, 0, 2, 6, 205, true, 0, 2, true, 0, 64 },
	{ 3000, true, 46, 2, 6, 205, true, 46, 2, false, 2944, 56 },
	{ 3000, true, 2, 6, 6, 205, true, 2, 6, false, 2048, 952 },
	{ 3008, true, 45, 2, 6, 205, true, 45, 2, true, 2880, 64 },
	{ 3008, true, 46, 2, 6, 205, true, 46, 2, false, 2944, 64 },
	{ 3072, true, 47, 2, 6, 205, true, 47, 2, false, 3008, 64 },
	/* a smaller datagram: same offset, smaller blocks */
	{ 3000, true, 1, 6, 4, 205, true, 4, 4, true, 1024, 256 },
	{ 3000, true, 2, 6, 0, 205, true, 128, 0, true, 2048, 16 },
	/* past the end, reserved SZX */
	{ 3000, true, 3, 6, 6, 402, false, 0, 0, false, 0, 0 },
	{ 3000, true, 0xFFFFF, 6, 6, 402, false, 0, 0, false, 0, 0 },
	{ 3072, true, 48, 2, 6, 402, false, 0, 0, false, 0, 0 },
	{ 0, true, 1, 0, 6, 402, false, 0, 0, false, 0, 0 },
	{ 0, true, 0, 0, 6, 205, true, 0, 0, false, 0, 0 },
	{ 3000, true, 0, 7, 6, 400, false, 0, 0, false, 0, 0 },
	/* a huge image: the last block a 20-bit number can name at 1024 bytes */
	{ 1ull << 31, true, 0xFFFFF, 6, 6, 205, true, 0xFFFFF, 6, true, 0xFFFFFull << 10, 1024 },
	/* ... but not when the datagram forces 16-byte blocks: the number would not fit */
	{ 1ull << 31, true, 0xFFFFF, 6, 0, 402, false, 0, 0, false, 0, 0 },
};

START_TEST(test_plan)
{
	const struct plan_case *tc = &plan_cases[_i];
	struct dh_block2 b = { tc->num, false, tc->szx };
	struct dh_block2_plan p;

	dh_block2_plan(tc->size, tc->has ? &b : NULL, tc->max_szx, &p);
	ck_assert_msg(p.code == tc->code, "case %d: code %u", _i, p.code);
	if (p.code != 205)
		return;
	ck_assert_msg(p.block == tc->block, "case %d", _i);
	ck_assert_uint_eq(p.num, tc->anum);
	ck_assert_uint_eq(p.szx, tc->aszx);
	ck_assert(p.more == tc->more);
	ck_assert_uint_eq(p.off, tc->off);
	ck_assert_uint_eq(p.len, tc->len);
}
END_TEST

struct host_case {
	const char *url;
	bool ok;
	const char *host;
};

static const struct host_case host_cases[] = {
	{ "http://device-hub.example:8080", true, "device-hub.example" },
	{ "https://hub.example/base/path", true, "hub.example" },
	{ "http://127.0.0.1:8080/x?y#z", true, "127.0.0.1" },
	{ "http://[::1]:8080/", true, "[::1]" },
	{ "http://[2001:db8::5]", true, "[2001:db8::5]" },
	{ "http://user:pw@hub.example:1/", true, "hub.example" },
	{ "http://hub.example?x=@evil", true, "hub.example" },
	{ "coap://h", true, "h" },
	{ "hub.example:8080", false, "" },
	{ "://hub", false, "" },
	{ "http://", false, "" },
	{ "http://:8080", false, "" },
	{ "http://[::1", false, "" },
	{ "", false, "" },
	{ NULL, false, "" },
};

START_TEST(test_url_host)
{
	const struct host_case *tc = &host_cases[_i];
	char host[64];

	ck_assert_msg(dh_url_host(tc->url, host, sizeof(host)) == tc->ok, "case %d", _i);
	if (tc->ok)
		ck_assert_str_eq(host, tc->host);
}
END_TEST

START_TEST(test_url_host_too_long)
{
	char host[8];

	ck_assert(!dh_url_host("http://longer-than-eight.example/", host, sizeof(host)));
	ck_assert(dh_url_host("http://seven77/", host, sizeof(host)));
	ck_assert_str_eq(host, "seven77");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("coap_block");
	TCase *tc = tcase_create("coap");

	tcase_add_loop_test(tc, test_parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_test(tc, test_format_round_trip);
	tcase_add_loop_test(tc, test_plan, 0, sizeof(plan_cases) / sizeof(plan_cases[0]));
	tcase_add_loop_test(tc, test_url_host, 0, sizeof(host_cases) / sizeof(host_cases[0]));
	tcase_add_test(tc, test_url_host_too_long);
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
