/* Short links in core/links.c: tokens (length, alphabet, one per key, session and run), the
 * hash text form with bad inputs, hiding tokens in text, and the link table (put, replace,
 * find, drop, count). */
#include "core/links.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char S1[] = "5f0c1a2b-0000-4000-8000-000000000001";
static const char S2[] = "5f0c1a2b-0000-4000-8000-000000000002";

static void set_key(uint8_t fill)
{
	uint8_t key[DH_LINK_KEY_LEN];

	memset(key, fill, sizeof(key));
	dh_link_key_set(key);
}

START_TEST(test_tokens)
{
	char a[DH_LINK_TOKEN_LEN], b[DH_LINK_TOKEN_LEN], c[DH_LINK_TOKEN_LEN];

	ck_assert(!dh_link_token(S1, 1, a)); /* no key yet */
	set_key(7);
	ck_assert(dh_link_token(S1, 1, a));
	ck_assert_uint_eq(strlen(a), DH_LINK_TOKEN_LEN - 1);
	ck_assert_uint_eq(
		strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
		DH_LINK_TOKEN_LEN - 1);
	/* the same run, the same token: a session's link can be shown again */
	ck_assert(dh_link_token(S1, 1, b));
	ck_assert_str_eq(a, b);
	/* another run, another session, another key: another token */
	ck_assert(dh_link_token(S1, 2, b));
	ck_assert_str_ne(a, b);
	ck_assert(dh_link_token(S2, 1, c));
	ck_assert_str_ne(a, c);
	set_key(8);
	ck_assert(dh_link_token(S1, 1, c));
	ck_assert_str_ne(a, c);
	/* the last character carries only 2 of the 128 bits: one of A, Q, g, w */
	ck_assert(strchr("AQgw", a[DH_LINK_TOKEN_LEN - 2]) != NULL);
}
END_TEST

struct hex_case {
	const char *text;
	bool ok;
};

static const struct hex_case hex_cases[] = {
	{ "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", true },
	{ "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff", false },
	{ "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef", false },
	{ "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0", false },
	{ "0011223344556677889 aabbccddeeff00112233445566778899aabbccddeeff", false },
	{ "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", false },
	{ "", false },
	{ NULL, false },
};

START_TEST(test_hash_text)
{
	const struct hex_case *tc = &hex_cases[_i];
	uint8_t h[DH_LINK_HASH_LEN];
	char back[DH_SHA256_HEX];

	ck_assert_msg(dh_link_hash_parse(tc->text, h) == tc->ok, "case %d", _i);
	if (tc->ok) {
		dh_link_hash_hex(h, back);
		ck_assert_str_eq(back, tc->text);
	}
}
END_TEST

struct mask_case {
	const char *text, *token, *want;
	size_t hits;
};

static const struct mask_case mask_cases[] = {
	{ "", "AbCdEfGh", "", 0 },
	{ "nothing here", "AbCdEfGh", "nothing here", 0 },
	{ "http://h/d/AbCdEfGh", "AbCdEfGh", "http://h/d/********", 1 },
	{ "AbCdEfGh,AbCdEfGhAbCdEfGh", "AbCdEfGh", "********,****************", 3 },
	{ "{\"v\":\"http://h/d/AbCdEfGh\"}", "AbCdEfGh", "{\"v\":\"http://h/d/********\"}", 1 },
	/* cut short: an end of 4 or more is hidden, a shorter one is not */
	{ "x/d/AbCdEfG", "AbCdEfGh", "x/d/*******", 1 },
	{ "x/d/AbCd", "AbCdEfGh", "x/d/****", 1 },
	{ "x/d/AbC", "AbCdEfGh", "x/d/AbC", 0 },
	{ "AbCdEfGh x AbCdE", "AbCdEfGh", "******** x *****", 2 },
	/* case matters: base64url */
	{ "abcdefgh", "AbCdEfGh", "abcdefgh", 0 },
	{ "AbCdEfGh", "", "AbCdEfGh", 0 },
	{ "Ab", "AbCdEfGh", "Ab", 0 },
};

START_TEST(test_mask)
{
	const struct mask_case *tc = &mask_cases[_i];
	char buf[128];

	snprintf(buf, sizeof(buf), "%s", tc->text);
	ck_assert_uint_eq(dh_link_token_mask(buf, strlen(buf), tc->token), tc->hits);
	ck_assert_str_eq(buf, tc->want);
}
END_TEST

static struct dh_link make(const char *token, const char *session, const char *sha)
{
	struct dh_link l;

	memset(&l, 0, sizeof(l));
	dh_link_hash(token, strlen(token), l.hash);
	snprintf(l.session, sizeof(l.session), "%s", session);
	snprintf(l.sha256, sizeof(l.sha256), "%s", sha);
	l.size = 300;
	return l;
}

static const char SHA_A[] = "a1a2a3a4a5a6a7a8000000000000000000000000000000000000000000000000";
static const char SHA_B[] = "b1b2b3b4b5b6b7b8000000000000000000000000000000000000000000000000";

START_TEST(test_table)
{
	struct dh_link a = make("tokA", S1, SHA_A), b = make("tokB", S2, SHA_B), out;
	uint8_t h[DH_LINK_HASH_LEN];
	static const uint8_t etag_a[DH_LINK_ETAG_LEN] = { 0xa1, 0xa2, 0xa3, 0xa4,
							  0xa5, 0xa6, 0xa7, 0xa8 };

	dh_links_clear();
	ck_assert_int_eq(dh_links_put(&a), DH_OK);
	ck_assert_int_eq(dh_links_put(&b), DH_OK);
	ck_assert_uint_eq(dh_links_count(), 2);
	dh_link_hash("tokA", 4, h);
	ck_assert(dh_links_find(h, &out));
	ck_assert_str_eq(out.session, S1);
	ck_assert_mem_eq(out.etag, etag_a, DH_LINK_ETAG_LEN);
	/* a presented token is hashed as given: nothing near it matches */
	dh_link_hash("tokA ", 5, h);
	ck_assert(!dh_links_find(h, &out));
	dh_link_hash("tok", 3, h);
	ck_assert(!dh_links_find(h, &out));
	/* the same hash again replaces */
	a.size = 999;
	ck_assert_int_eq(dh_links_put(&a), DH_OK);
	ck_assert_uint_eq(dh_links_count(), 2);
	dh_link_hash("tokA", 4, h);
	ck_assert(dh_links_find(h, &out));
	ck_assert_uint_eq(out.size, 999);
	dh_links_drop(h);
	ck_assert(!dh_links_find(h, &out));
	dh_links_drop(h); /* twice: nothing */
	ck_assert_uint_eq(dh_links_count(), 1);
	dh_link_hash("tokB", 4, h);
	ck_assert(dh_links_find(h, &out));
	/* a link without a valid image hash is refused */
	snprintf(a.sha256, sizeof(a.sha256), "nope");
	ck_assert_int_eq(dh_links_put(&a), DH_E_INVALID);
	dh_links_clear();
	ck_assert_uint_eq(dh_links_count(), 0);
	ck_assert(!dh_links_find(h, &out));
}
END_TEST

START_TEST(test_one_link_per_session)
{
	struct dh_link run1 = make("run1", S1, SHA_A), run2 = make("run2", S1, SHA_A);
	struct dh_link other = make("other", S2, SHA_B), out;
	uint8_t h[DH_LINK_HASH_LEN];

	dh_links_clear();
	ck_assert_int_eq(dh_links_put(&run1), DH_OK);
	ck_assert_int_eq(dh_links_put(&other), DH_OK);
	/* the session's next run: its first link is no longer valid, the other session's is */
	ck_assert_int_eq(dh_links_put(&run2), DH_OK);
	ck_assert_uint_eq(dh_links_count(), 2);
	dh_link_hash("run1", 4, h);
	ck_assert(!dh_links_find(h, &out));
	dh_link_hash("run2", 4, h);
	ck_assert(dh_links_find(h, &out));
	ck_assert_str_eq(out.session, S1);
	dh_link_hash("other", 5, h);
	ck_assert(dh_links_find(h, &out));
	/* dropping the current run's link leaves the session with none */
	dh_link_hash("run2", 4, h);
	dh_links_drop(h);
	ck_assert_uint_eq(dh_links_count(), 1);
	ck_assert_int_eq(dh_links_put(&run1), DH_OK);
	ck_assert_uint_eq(dh_links_count(), 2);
	/* a session that left the valid states loses its link, whatever its hash */
	dh_links_drop_session(S1);
	ck_assert_uint_eq(dh_links_count(), 1);
	dh_link_hash("run1", 4, h);
	ck_assert(!dh_links_find(h, &out));
	dh_links_drop_session(S1); /* twice: nothing */
	dh_link_hash("other", 5, h);
	ck_assert(dh_links_find(h, &out));
	dh_links_clear();
}
END_TEST

START_TEST(test_many_links)
{
	char tok[32], session[DH_UUID_LEN];
	struct dh_link l, out;
	uint8_t h[DH_LINK_HASH_LEN];

	dh_links_clear();
	for (int i = 0; i < 20000; i++) {
		snprintf(tok, sizeof(tok), "t%d", i);
		snprintf(session, sizeof(session), "session-%d", i);
		l = make(tok, session, SHA_A);
		l.size = (uint64_t)i;
		ck_assert_int_eq(dh_links_put(&l), DH_OK);
	}
	ck_assert_uint_eq(dh_links_count(), 20000);
	for (int i = 0; i < 20000; i += 7) {
		snprintf(tok, sizeof(tok), "t%d", i);
		dh_link_hash(tok, strlen(tok), h);
		ck_assert(dh_links_find(h, &out));
		ck_assert_uint_eq(out.size, (uint64_t)i);
	}
	dh_links_clear();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("links");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_tokens);
	tcase_add_loop_test(tc, test_hash_text, 0, sizeof(hex_cases) / sizeof(hex_cases[0]));
	tcase_add_loop_test(tc, test_mask, 0, sizeof(mask_cases) / sizeof(mask_cases[0]));
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_one_link_per_session);
	tcase_add_test(tc, test_many_links);
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
