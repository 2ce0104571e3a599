/* The direct path's request-head reader: a table of heads (plain, partial, and every kind
 * of head that must go to libmicrohttpd), then each plain head cut at every length. */
#include "http/head.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define H "Host: x\r\n"
/* a NUL byte inside a value: the text is given with its length */
#define NUL_HEAD "GET /d/abc HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"

struct head_case {
	const char *text;
	enum dh_head_kind kind;
	const char *target; /* for PLAIN */
	bool close;
};

static const struct head_case cases[] = {
	{ "GET /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_PLAIN, "/d/abc", false },
	{ "HEAD /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_PLAIN, "/d/abc", false },
	{ "GET /api/v1/firmware-update/5f0c/image/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
	  "Authorization: Token dh_0123\r\nRange: bytes=0-4095\r\nIf-Range: \"abc\"\r\n"
	  "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
	  DH_HEAD_PLAIN, "/api/v1/firmware-update/5f0c/image/", false },
	{ "GET /a HTTP/1.1\r\n" H "Connection: close\r\n\r\n", DH_HEAD_PLAIN, "/a", true },
	{ "GET /a HTTP/1.1\r\n" H "Connection: Keep-Alive\r\n\r\n", DH_HEAD_PLAIN, "/a", false },
	{ "GET /a HTTP/1.1\r\n" H "Connection: keep-alive, CLOSE\r\n\r\n", DH_HEAD_PLAIN, "/a",
	  true },
	{ "GET /a HTTP/1.1\r\n" H "X-Empty:\r\n\r\n", DH_HEAD_PLAIN, "/a", false },
	{ "GET /a HTTP/1.1\r\n" H "X-Tab:\tv\r\nX-8bit: caf\xc3\xa9\r\n\r\n", DH_HEAD_PLAIN, "/a",
	  false },
	{ "GET /a:b@c;d=e,f!$&'()*+~._- HTTP/1.1\r\n" H "\r\n", DH_HEAD_PLAIN,
	  "/a:b@c;d=e,f!$&'()*+~._-", false },
	/* the bytes after the head are the next request's, not this one's business */
	{ "GET /a HTTP/1.1\r\n" H "\r\nGARBAGE", DH_HEAD_PLAIN, "/a", false },

	{ "", DH_HEAD_PARTIAL, NULL, false },
	{ "G", DH_HEAD_PARTIAL, NULL, false },
	{ "HEA", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.1\r", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost: x", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost: x\r", DH_HEAD_PARTIAL, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost: x\r\n\r", DH_HEAD_PARTIAL, NULL, false },

	{ "POST /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "get /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET  /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET http://x/d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET * HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/a%62c HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc?x=1 HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc#f HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/a\"c HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/a\x01"
	  "c HTTP/1.1\r\n" H "\r\n",
	  DH_HEAD_OTHER, NULL, false },
	{ "GET /d/\xc3\xa9 HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.0\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/2.0\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1 \r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "\r\nGET /d/abc HTTP/1.1\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost: x\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "\rX", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHost : x\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\nHo st: x\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n: x\r\n" H "\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H " folded\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "\tfolded\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "X: a\x01"
	  "b\r\n\r\n",
	  DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "X: trailing \r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Host: y\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Range: bytes=0-1\r\nrange: bytes=2-3\r\n\r\n", DH_HEAD_OTHER,
	  NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", DH_HEAD_OTHER, NULL,
	  false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Expect: 100-continue\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Upgrade: h2c\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Connection: Upgrade\r\n\r\n", DH_HEAD_OTHER, NULL, false },
	{ "GET /d/abc HTTP/1.1\r\n" H "Connection: close, TE\r\n\r\n", DH_HEAD_OTHER, NULL, false },
};

START_TEST(test_head_table)
{
	const struct head_case *c = &cases[_i];
	size_t len = strlen(c->text);
	struct dh_head h;
	enum dh_head_kind kind;

	kind = dh_head_parse(c->text, len, &h);
	ck_assert_msg(kind == c->kind, "case %d: kind %d, expected %d", _i, kind, c->kind);
	if (kind != DH_HEAD_PLAIN)
		return;
	ck_assert_uint_eq(h.target_len, strlen(c->target));
	ck_assert(memcmp(h.target, c->target, h.target_len) == 0);
	ck_assert(h.close == c->close);
	ck_assert(h.len <= len && memcmp(c->text + h.len - 4, "\r\n\r\n", 4) == 0);
}
END_TEST

START_TEST(test_head_nul_in_value)
{
	struct dh_head h;

	ck_assert(dh_head_parse(NUL_HEAD, sizeof(NUL_HEAD) - 1, &h) == DH_HEAD_OTHER);
}
END_TEST

/* Every prefix of a plain head is PARTIAL, and the whole is PLAIN with the same fields. */
START_TEST(test_head_prefixes)
{
	static const char text[] = "GET /api/v1/firmware/x/image HTTP/1.1\r\nHost: h:1\r\n"
				   "Authorization: Token t\r\nRange: bytes=-10\r\n\r\n";
	struct dh_head h;
	size_t n, vlen;
	const char *v;

	for (n = 0; n < sizeof(text) - 1; n++)
		ck_assert_msg(dh_head_parse(text, n, &h) == DH_HEAD_PARTIAL, "prefix %zu", n);
	ck_assert(dh_head_parse(text, n, &h) == DH_HEAD_PLAIN);
	ck_assert_uint_eq(h.len, sizeof(text) - 1);
	ck_assert_uint_eq(h.nfields, 3);
	ck_assert(h.method == DH_GET);
	v = dh_head_get(&h, "range", &vlen);
	ck_assert(v && vlen == 9 && memcmp(v, "bytes=-10", 9) == 0);
	v = dh_head_get(&h, "AUTHORIZATION", &vlen);
	ck_assert(v && vlen == 7 && memcmp(v, "Token t", 7) == 0);
	ck_assert(dh_head_get(&h, "If-Range", NULL) == NULL);
}
END_TEST

/* Heads at the size limit: one that ends before it is read; one that does not is OTHER. */
START_TEST(test_head_limits)
{
	char *buf = malloc(DH_HEAD_MAX + 64);
	struct dh_head h;
	size_t n;

	ck_assert(buf);
	n = (size_t)snprintf(buf, DH_HEAD_MAX + 64, "GET /a HTTP/1.1\r\nHost: x\r\nX: ");
	memset(buf + n, 'v', DH_HEAD_MAX - n - 4);
	memcpy(buf + DH_HEAD_MAX - 4, "\r\n\r\n", 4);
	ck_assert(dh_head_parse(buf, DH_HEAD_MAX, &h) == DH_HEAD_PLAIN);
	ck_assert_uint_eq(h.len, DH_HEAD_MAX);
	memset(buf + n, 'v', DH_HEAD_MAX - n + 10);
	ck_assert(dh_head_parse(buf, DH_HEAD_MAX - 1, &h) == DH_HEAD_PARTIAL);
	ck_assert(dh_head_parse(buf, DH_HEAD_MAX, &h) == DH_HEAD_OTHER);
	ck_assert(dh_head_parse(buf, DH_HEAD_MAX + 10, &h) == DH_HEAD_OTHER);
	/* a target beyond DH_HEAD_TARGET_MAX */
	n = (size_t)snprintf(buf, DH_HEAD_MAX + 64, "GET /");
	memset(buf + n, 'a', DH_HEAD_TARGET_MAX);
	ck_assert(dh_head_parse(buf, n + DH_HEAD_TARGET_MAX, &h) == DH_HEAD_OTHER);
	ck_assert(dh_head_parse(buf, n + DH_HEAD_TARGET_MAX - 2, &h) == DH_HEAD_PARTIAL);
	free(buf);
}
END_TEST

/* More fields than DH_HEAD_FIELDS go to libmicrohttpd. */
START_TEST(test_head_many_fields)
{
	char buf[4096];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET /a HTTP/1.1\r\nHost: x\r\n");
	struct dh_head h;

	for (int i = 1; i < DH_HEAD_FIELDS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	ck_assert(dh_head_parse(buf, n + 2, &h) == DH_HEAD_PLAIN);
	ck_assert_uint_eq(h.nfields, DH_HEAD_FIELDS);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-last: v\r\n\r\n");
	ck_assert(dh_head_parse(buf, n, &h) == DH_HEAD_OTHER);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("head");
	TCase *tc = tcase_create("head");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_head_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_head_nul_in_value);
	tcase_add_test(tc, test_head_prefixes);
	tcase_add_test(tc, test_head_limits);
	tcase_add_test(tc, test_head_many_fields);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
