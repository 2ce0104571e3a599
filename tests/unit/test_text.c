/* UTF-8 well-formedness, cutting, escaping (core/text.h) and the error details and fields
 * built on them (core/err.h). */
#include "core/text.h"

#include "core/err.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- dh_utf8_char / dh_utf8_valid: Unicode table 3-7, and what falls outside it ---- */

static const struct {
	const char *s;
	size_t n;
	size_t len; /* dh_utf8_char */
} chars[] = {
	{ "a", 1, 1 },
	{ "\x7f", 1, 1 },
	{ "", 1, 1 }, /* NUL is a character */
	{ "\xc3\xa9", 2, 2 },
	{ "\xc2\x80", 2, 2 },
	{ "\xdf\xbf", 2, 2 },
	{ "\xe0\xa0\x80", 3, 3 },
	{ "\xe2\x82\xac", 3, 3 },
	{ "\xed\x9f\xbf", 3, 3 },
	{ "\xee\x80\x80", 3, 3 },
	{ "\xef\xbf\xbf", 3, 3 },
	{ "\xf0\x90\x80\x80", 4, 4 },
	{ "\xf0\x9f\x98\x80", 4, 4 },
	{ "\xf4\x8f\xbf\xbf", 4, 4 },
	{ "\x80", 1, 0 }, /* a continuation byte alone */
	{ "\xbf", 1, 0 },
	{ "\xc0\xaf", 2, 0 },         /* overlong '/' */
	{ "\xc1\xbf", 2, 0 },         /* overlong */
	{ "\xe0\x9f\xbf", 3, 0 },     /* overlong below U+0800 */
	{ "\xed\xa0\x80", 3, 0 },     /* surrogate U+D800 */
	{ "\xed\xbf\xbf", 3, 0 },     /* surrogate U+DFFF */
	{ "\xf0\x8f\xbf\xbf", 4, 0 }, /* overlong below U+10000 */
	{ "\xf4\x90\x80\x80", 4, 0 }, /* above U+10FFFF */
	{ "\xf5\x80\x80\x80", 4, 0 },
	{ "\xff", 1, 0 },
	{ "\xfe", 1, 0 },
	{ "\xc3", 1, 0 },     /* incomplete */
	{ "\xc3\xa9", 1, 0 }, /* complete, but only one byte may be read */
	{ "\xe2\x82", 2, 0 },
	{ "\xf0\x9f\x98", 3, 0 },
	{ "\xc3\x41", 2, 0 }, /* a lead byte followed by ASCII */
	{ "\xe2\x28\xa1", 3, 0 },
};

START_TEST(test_utf8_char)
{
	ck_assert_msg(dh_utf8_char(chars[_i].s, chars[_i].n) == chars[_i].len, "case %d", _i);
	ck_assert(dh_utf8_valid(chars[_i].s, chars[_i].n) == (chars[_i].len == chars[_i].n));
}
END_TEST

START_TEST(test_utf8_valid_text)
{
	const char *ok = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 plain";

	ck_assert(dh_utf8_valid(ok, strlen(ok)));
	ck_assert(dh_utf8_valid("", 0));
	ck_assert(!dh_utf8_valid("abc\xff", 4));
	ck_assert(!dh_utf8_valid("caf\xc3", 4));
	ck_assert(dh_utf8_valid("a\0b", 3));
}
END_TEST

/* ---- dh_utf8_cut and dh_utf8_trim_partial ---- */

static const struct {
	const char *s;
	size_t max, want;
} cuts[] = {
	{ "abcdef", 3, 3 },
	{ "abc", 10, 3 },
	{ "", 5, 0 },
	{ "\xc3\xa9\xc3\xa9", 3, 2 }, /* never inside é */
	{ "\xc3\xa9\xc3\xa9", 4, 4 },
	{ "\xc3\xa9\xc3\xa9", 1, 0 },
	{ "a\xe2\x82\xac", 3, 1 },
	{ "a\xe2\x82\xac", 4, 4 },
	{ "\xf0\x9f\x98\x80x", 3, 0 },
	{ "\xf0\x9f\x98\x80x", 4, 4 },
	{ "\xff\xfe\xfd", 2, 2 }, /* bytes that are no character count one each */
	{ "\xc3\xc3\xa9", 2, 1 },
	{ "abc", 0, 0 },
};

START_TEST(test_utf8_cut)
{
	ck_assert_msg(dh_utf8_cut(cuts[_i].s, cuts[_i].max) == cuts[_i].want, "case %d: %zu", _i,
		      dh_utf8_cut(cuts[_i].s, cuts[_i].max));
}
END_TEST

static const struct {
	const char *s;
	size_t want;
} trims[] = {
	{ "abc", 3 },        { "ab\xc3", 2 },         { "ab\xc3\xa9", 4 },     { "ab\xe2", 2 },
	{ "ab\xe2\x82", 2 }, { "ab\xe2\x82\xac", 5 }, { "ab\xf0\x9f\x98", 2 }, { "ab\xf0", 2 },
	{ "ab\xf0\x9f", 2 }, { "ab\xe0\xa0", 2 },     { "ab\xe0\x80", 4 }, /* not the start of any
									      character: left for
									      escaping */
	{ "ab\xff", 3 },     { "ab\x80", 3 },         { "\xc3", 0 },           { "", 0 },
};

START_TEST(test_utf8_trim_partial)
{
	ck_assert_msg(dh_utf8_trim_partial(trims[_i].s, strlen(trims[_i].s)) == trims[_i].want,
		      "case %d", _i);
}
END_TEST

/* ---- dh_text_clean ---- */

static const struct {
	const char *in;
	size_t len, size;
	const char *want;
} cleans[] = {
	{ "plain", 5, 64, "plain" },
	{ "caf\xc3\xa9", 5, 64, "caf\xc3\xa9" },
	{ "a\xff"
	  "b",
	  3, 64, "a\\xffb" },
	{ "a\0b", 3, 64, "a\\x00b" },
	{ "\xed\xa0\x80", 3, 64, "\\xed\\xa0\\x80" },
	{ "\xc3", 1, 64, "\\xc3" },
	{ "abcdef", 6, 4, "abc" },
	{ "ab\xc3\xa9", 4, 4, "ab" }, /* é does not fit: left out, not split */
	{ "ab\xc3\xa9", 4, 5, "ab\xc3\xa9" },
	{ "a\xff", 2, 5, "a" }, /* neither does a partial escape */
	{ "a\xff", 2, 6, "a\\xff" },
	{ "", 0, 1, "" },
};

START_TEST(test_text_clean)
{
	char out[64];
	size_t n = dh_text_clean(out, cleans[_i].size, cleans[_i].in, cleans[_i].len);

	ck_assert_str_eq(out, cleans[_i].want);
	ck_assert_uint_eq(n, strlen(cleans[_i].want));
	ck_assert(dh_utf8_valid(out, n));
}
END_TEST

/* ---- dh_text_escape: controls too ---- */

#define CTL  DH_TEXT_CONTROLS
#define KEEP (DH_TEXT_CONTROLS | DH_TEXT_KEEP_LINES)

static const struct {
	const char *in;
	size_t len, size;
	unsigned flags;
	const char *want;
} escapes[] = {
	{ "plain", 5, 64, CTL, "plain" },
	{ "a\x1b[31mred", 9, 64, CTL, "a\\x1b[31mred" },
	{ "a\x1b[31mred", 9, 64, 0, "a\x1b[31mred" }, /* without the flag: as dh_text_clean */
	{ "bel\x07 del\x7f", 9, 64, CTL, "bel\\x07 del\\x7f" },
	{ "l1\nl2\tt\r", 8, 64, CTL, "l1\\x0al2\\x09t\\x0d" },
	{ "l1\nl2\tt\r", 8, 64, KEEP, "l1\nl2\tt\\x0d" },
	{ "nel\xc2\x85 nbsp\xc2\xa0", 12, 64, CTL, "nel\\xc2\\x85 nbsp\xc2\xa0" },
	{ "ls\xe2\x80\xa8 ps\xe2\x80\xa9 \xe2\x80\xa6", 15, 64, KEEP,
	  "ls\\xe2\\x80\\xa8 ps\\xe2\\x80\\xa9 \xe2\x80\xa6" },
	{ "caf\xc3\xa9\xff\0", 7, 64, CTL, "caf\xc3\xa9\\xff\\x00" },
	{ "ab\xc2\x85", 4, 10, CTL, "ab" }, /* a C1 control is escaped whole or left out */
	{ "ab\xc2\x85", 4, 11, CTL, "ab\\xc2\\x85" },
	{ "ab\x1b", 3, 6, CTL, "ab" },
	{ "ab\x1b", 3, 7, CTL, "ab\\x1b" },
};

START_TEST(test_text_escape)
{
	char out[64];
	size_t n = dh_text_escape(out, escapes[_i].size, escapes[_i].in, escapes[_i].len,
				  escapes[_i].flags);

	ck_assert_str_eq(out, escapes[_i].want);
	ck_assert_uint_eq(n, strlen(escapes[_i].want));
	ck_assert(dh_utf8_valid(out, n));
	for (size_t i = 0; i < n && (escapes[_i].flags & DH_TEXT_CONTROLS); i++)
		ck_assert(((unsigned char)out[i] >= 0x20 && out[i] != 0x7f) ||
			  ((escapes[_i].flags & DH_TEXT_KEEP_LINES) &&
			   (out[i] == '\n' || out[i] == '\t')));
}
END_TEST

START_TEST(test_text_format_cuts_on_a_boundary)
{
	char out[8], big[DH_ERR_DETAIL_MAX];
	char path[600];

	dh_text_format(out, sizeof(out), "%s", "abcde\xc3\xa9z");
	ck_assert_str_eq(out, "abcde\xc3\xa9");
	dh_text_format(out, sizeof(out), "%s", "abcdef\xc3\xa9z");
	ck_assert_str_eq(out, "abcdef");
	dh_text_format(out, sizeof(out), "x%sy", "\xff");
	ck_assert_str_eq(out, "x\\xffy");
	/* every cut of a long text of two-byte characters stays well-formed */
	for (size_t pre = 0; pre < 8; pre++) {
		size_t o = 0;
		for (; o < pre; o++)
			path[o] = 'a';
		while (o + 2 < sizeof(path)) {
			path[o++] = '\xc3';
			path[o++] = '\xa9';
		}
		path[o] = 0;
		dh_text_format(big, sizeof(big), "No such path: %s", path);
		ck_assert(dh_utf8_valid(big, strlen(big)));
		ck_assert(strstr(big, "\\x") == NULL);
		ck_assert_uint_ge(strlen(big), sizeof(big) - 3);
	}
}
END_TEST

/* ---- struct dh_error keeps its detail and fields encodable ---- */

static bool encodes(const struct dh_error *e)
{
	json_t *body = json_pack("{s:s}", "detail", dh_error_detail(e));
	char *text = NULL;

	if (body && e->fields)
		json_object_set(body, "fields", e->fields);
	text = body ? json_dumps(body, JSON_ENSURE_ASCII) : NULL;
	json_decref(body);
	free(text);
	return text != NULL;
}

START_TEST(test_error_set_is_always_encodable)
{
	struct dh_error e = { 0 };
	char key[1200];
	size_t o = 0;

	dh_error_set(&e, DH_E_NOT_FOUND, "No such product: '%s'.", "\xff");
	ck_assert_str_eq(e.detail, "No such product: '\\xff'.");
	ck_assert(encodes(&e));
	while (o + 2 < sizeof(key)) {
		key[o++] = '\xc3';
		key[o++] = '\xa9';
	}
	key[o] = 0;
	dh_error_set(&e, DH_E_INVALID, "Invalid field '%s': unknown field", key);
	ck_assert(encodes(&e));
	ck_assert(strstr(e.detail, "\\x") == NULL);
	dh_error_release(&e);
}
END_TEST

START_TEST(test_error_field_names_any_bytes)
{
	struct dh_error e = { 0 };
	char key[1200];
	const char *k;
	json_t *v;
	size_t o = 0;

	dh_error_field(&e, "\xff", "unknown field");
	ck_assert(json_object_get(e.fields, "\\xff") != NULL);
	ck_assert_str_eq(e.detail, "Invalid field '\\xff': unknown field");
	dh_error_field(&e, "ok", "what \xc3");
	ck_assert_str_eq(json_string_value(json_object_get(e.fields, "ok")), "what \\xc3");
	dh_error_field(&e, "ok", "a second problem");
	ck_assert_str_eq(json_string_value(json_object_get(e.fields, "ok")), "what \\xc3");
	/* a long key: cut on a character boundary at DH_ERR_FIELD_MAX bytes */
	key[o++] = 'a';
	while (o + 2 < sizeof(key)) {
		key[o++] = '\xc3';
		key[o++] = '\xa9';
	}
	key[o] = 0;
	dh_error_field(&e, key, "unknown field");
	ck_assert_uint_eq(json_object_size(e.fields), 3);
	json_object_foreach(e.fields, k, v)
	{
		ck_assert_uint_le(strlen(k), DH_ERR_FIELD_MAX);
		if (k[0] == 'a' && k[1] != 0) {
			ck_assert_uint_eq(strlen(k), DH_ERR_FIELD_MAX - 1);
			ck_assert(strncmp(k, key, strlen(k)) == 0);
		}
	}
	ck_assert(encodes(&e));
	dh_error_release(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_utf8_char, 0, sizeof(chars) / sizeof(chars[0]));
	tcase_add_test(tc, test_utf8_valid_text);
	tcase_add_loop_test(tc, test_utf8_cut, 0, sizeof(cuts) / sizeof(cuts[0]));
	tcase_add_loop_test(tc, test_utf8_trim_partial, 0, sizeof(trims) / sizeof(trims[0]));
	tcase_add_loop_test(tc, test_text_clean, 0, sizeof(cleans) / sizeof(cleans[0]));
	tcase_add_loop_test(tc, test_text_escape, 0, sizeof(escapes) / sizeof(escapes[0]));
	tcase_add_test(tc, test_text_format_cuts_on_a_boundary);
	tcase_add_test(tc, test_error_set_is_always_encodable);
	tcase_add_test(tc, test_error_field_names_any_bytes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
