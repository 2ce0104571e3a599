/*
 * The multipart/form-data parser: a table of bodies with the parts they must yield (or the
 * error), each fed whole, one byte at a time and split in two at every offset; and a table
 * of Content-Type values with their boundary.
 */
#include "http/multipart.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the callbacks saw, as text: "[name|filename|ctype]data;" per part. */
struct log {
	char text[4096];
	size_t len;
	bool overflow;
	int fail_at_part; /* part_begin of this part (1-based) fails; 0: never */
	int parts;
};

static void put(struct log *l, const char *s, size_t n)
{
	if (l->len + n >= sizeof(l->text)) {
		l->overflow = true;
		return;
	}
	memcpy(l->text + l->len, s, n);
	l->len += n;
	l->text[l->len] = 0;
}

static enum dh_err on_begin(void *cls, const struct dh_multipart_part *part, struct dh_error *err)
{
	struct log *l = cls;
	char buf[600];
	int n;

	if (++l->parts == l->fail_at_part)
		return dh_error_set(err, DH_E_TOO_LARGE, "stop");
	n = snprintf(buf, sizeof(buf), "[%s|%s%s|%s]", part->name, part->has_filename ? "f:" : "",
		     part->filename, part->content_type);
	put(l, buf, (size_t)n);
	return DH_OK;
}

static enum dh_err on_data(void *cls, const char *data, size_t len, struct dh_error *err)
{
	(void)err;
	ck_assert_uint_gt(len, 0);
	put(cls, data, len);
	return DH_OK;
}

static enum dh_err on_end(void *cls, struct dh_error *err)
{
	(void)err;
	put(cls, ";", 1);
	return DH_OK;
}

static const struct dh_multipart_cb cb = { on_begin, on_data, on_end };

struct mp_case {
	const char *body;
	enum dh_err want; /* DH_OK, or the error of feed/finish */
	const char *parts;
};

#define CD "Content-Disposition: form-data; "

static const struct mp_case cases[] = {
	/* two fields and a file, as curl -F sends them */
	{ "--XyZ\r\n" CD "name=\"model\"\r\n\r\nCAFEBABE\r\n"
	  "--XyZ\r\n" CD "name=\"version\"\r\n\r\n1.2.0\r\n"
	  "--XyZ\r\n" CD "name=\"file\"; filename=\"app.bin\"\r\nContent-Type: "
	  "application/octet-stream\r\n\r\n\x01\x02\r\n\r--Xy\r\n--XyZ--\r\n",
	  DH_OK,
	  "[model||]CAFEBABE;[version||]1.2.0;[file|f:app.bin|application/octet-stream]"
	  "\x01\x02\r\n\r--Xy;" },
	/* preamble and epilogue are ignored; padding after the boundary is allowed */
	{ "this is a preamble\r\n--XyZ \t\r\n" CD "name=a\r\n\r\nv\r\n--XyZ--epilogue\r\n--XyZ\r\n",
	  DH_OK, "[a||]v;" },
	/* an empty part body, an empty file name, quoted escapes, unquoted token values */
	{ "--XyZ\r\n" CD "name=\"e\"\r\n\r\n\r\n--XyZ\r\n" CD
	  "name=\"f\"; filename=\"\"\r\n\r\nx\r\n--XyZ\r\n" CD
	  "name=\"q\\\"n\"; filename=\"a\\\\b.bin\"\r\n\r\n\r\n--XyZ--",
	  DH_OK, "[e||];[f|f:|]x;[q\"n|f:a\\b.bin|];" },
	/* header names are case-insensitive, parameters too; unknown headers ignored */
	{ "--XyZ\r\ncontent-disposition: FORM-DATA; NAME=\"a\"; filename*=utf-8''x\r\n"
	  "X-Other: 1\r\n\r\nbody\r\n--XyZ--\r\n",
	  DH_OK, "[a||]body;" },
	/* body text that looks like the boundary but is not a delimiter */
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\n--XyZ\n--XyZ\r--XyZ\r\n-XyZ\r\r\n--Xy\r\n--XyZ--",
	  DH_OK, "[a||]--XyZ\n--XyZ\r--XyZ\r\n-XyZ\r\r\n--Xy;" },
	/* no parts at all is a valid (if useless) body */
	{ "--XyZ--\r\n", DH_OK, "" },
	/* errors */
	{ "", DH_E_INVALID, "" },
	{ "no boundary anywhere", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nunterminated", DH_E_INVALID, "[a||]unterminated" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ", DH_E_INVALID, "[a||]v;" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ-x", DH_E_INVALID, "[a||]v;" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZx\r\n", DH_E_INVALID, "[a||]v;" },
	{ "--XyZ\r\n\r\nno headers\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--", DH_E_INVALID,
	  "" },
	{ "--XyZ\r\n" CD "filename=\"a\"\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"; name=\"b\"\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\rx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\n" CD "name=\"a\"\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n continued\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\nno colon\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\nBad Name: x\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n" CD "name=\"b\"\r\n\r\nx\r\n--XyZ--", DH_E_INVALID, "" },
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ      "
	  "                                                                  \r\n",
	  DH_E_INVALID, "[a||]v;" },
	/* the second part's part_begin callback refuses: its error comes back */
	{ "--XyZ\r\n" CD "name=\"a\"\r\n\r\nv\r\n--XyZ\r\n" CD "name=\"b\"\r\n\r\nw\r\n--XyZ--",
	  DH_E_TOO_LARGE, "[a||]v;" },
};

static size_t body_len(const struct mp_case *c)
{
	return strlen(c->body);
}

/* Feeds c->body in pieces of step bytes (0: whole), or split once at split. */
static enum dh_err run(const struct mp_case *c, size_t step, size_t split, struct log *l)
{
	struct dh_error err = { 0 };
	struct dh_multipart *mp = dh_multipart_new("XyZ", &cb, l);
	size_t n = body_len(c), off = 0;
	enum dh_err rc = DH_OK;

	ck_assert_ptr_nonnull(mp);
	memset(l, 0, sizeof(*l));
	l->fail_at_part = c->want == DH_E_TOO_LARGE ? 2 : 0;
	while (off < n && rc == DH_OK) {
		size_t k = step ? step : (split && off < split ? split : n - off);
		if (k > n - off)
			k = n - off;
		rc = dh_multipart_feed(mp, c->body + off, k, &err);
		off += k;
	}
	if (rc == DH_OK)
		rc = dh_multipart_finish(mp, &err);
	if (rc != DH_OK) {
		ck_assert_int_eq(err.code, rc);
		ck_assert(dh_error_detail(&err)[0] != 0);
		/* errors are sticky */
		dh_error_release(&err);
		ck_assert_int_eq(dh_multipart_feed(mp, "x", 1, &err), rc);
	}
	dh_error_release(&err);
	dh_multipart_free(mp);
	return rc;
}

START_TEST(test_multipart_table)
{
	const struct mp_case *c = &cases[_i];
	struct log l;
	size_t n = body_len(c);
	enum dh_err rc;

	rc = run(c, 0, 0, &l);
	ck_assert_msg(rc == c->want, "case %d whole: rc %d want %d", _i, rc, c->want);
	if (c->want == DH_OK || c->want == DH_E_TOO_LARGE)
		ck_assert_msg(strcmp(l.text, c->parts) == 0, "case %d whole: got '%s'", _i, l.text);
	rc = run(c, 1, 0, &l);
	ck_assert_msg(rc == c->want, "case %d bytewise: rc %d want %d", _i, rc, c->want);
	if (c->want == DH_OK || c->want == DH_E_TOO_LARGE)
		ck_assert_msg(strcmp(l.text, c->parts) == 0, "case %d bytewise: got '%s'", _i,
			      l.text);
	for (size_t split = 1; split < n; split++) {
		rc = run(c, 0, split, &l);
		ck_assert_msg(rc == c->want, "case %d split %zu: rc %d", _i, split, rc);
		if (c->want == DH_OK)
			ck_assert_msg(strcmp(l.text, c->parts) == 0, "case %d split %zu: '%s'", _i,
				      split, l.text);
	}
}
END_TEST

START_TEST(test_header_line_limit)
{
	char *body = malloc(DH_MULTIPART_LINE_MAX + 256);
	struct dh_error err = { 0 };
	struct dh_multipart *mp = dh_multipart_new("b", &cb, NULL);
	size_t n = 0;

	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(mp);
	n += (size_t)sprintf(body, "--b\r\nX-Long: ");
	memset(body + n, 'a', DH_MULTIPART_LINE_MAX);
	n += DH_MULTIPART_LINE_MAX;
	ck_assert_int_eq(dh_multipart_feed(mp, body, n, &err), DH_E_INVALID);
	ck_assert(strstr(err.detail, "too long") != NULL);
	dh_error_release(&err);
	dh_multipart_free(mp);
	free(body);
}
END_TEST

START_TEST(test_header_count_limit)
{
	struct dh_error err = { 0 };
	struct dh_multipart *mp = dh_multipart_new("b", &cb, NULL);
	enum dh_err rc;

	ck_assert_ptr_nonnull(mp);
	rc = dh_multipart_feed(mp, "--b\r\n", 5, &err);
	for (int i = 0; i <= DH_MULTIPART_HEADERS_MAX && rc == DH_OK; i++)
		rc = dh_multipart_feed(mp, "X-A: 1\r\n", 8, &err);
	ck_assert_int_eq(rc, DH_E_INVALID);
	dh_error_release(&err);
	dh_multipart_free(mp);
}
END_TEST

START_TEST(test_long_filename)
{
	char body[1024];
	char name[DH_MULTIPART_FILENAME_MAX + 2];
	struct dh_error err = { 0 };
	struct dh_multipart *mp = dh_multipart_new("b", &cb, NULL);
	int n;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	n = snprintf(body, sizeof(body), "--b\r\n" CD "name=\"f\"; filename=\"%s\"\r\n\r\n", name);
	ck_assert(n > 0 && (size_t)n < sizeof(body));
	ck_assert_int_eq(dh_multipart_feed(mp, body, (size_t)n, &err), DH_E_INVALID);
	dh_error_release(&err);
	dh_multipart_free(mp);
}
END_TEST

struct ct_case {
	const char *ct;
	enum dh_err want;
	const char *boundary;
};

static const struct ct_case ct_cases[] = {
	{ "multipart/form-data; boundary=abc", DH_OK, "abc" },
	{ "Multipart/Form-Data;boundary=abc", DH_OK, "abc" },
	{ "multipart/form-data; charset=utf-8; BOUNDARY=\"a b:c\"", DH_OK, "a b:c" },
	{ "multipart/form-data; boundary=------------------------d74496d66958873e", DH_OK,
	  "------------------------d74496d66958873e" },
	{ "multipart/form-data ; boundary=x", DH_OK, "x" },
	{ NULL, DH_E_MEDIA_TYPE, NULL },
	{ "application/json", DH_E_MEDIA_TYPE, NULL },
	{ "multipart/form-dataX; boundary=x", DH_E_MEDIA_TYPE, NULL },
	{ "multipart/mixed; boundary=x", DH_E_MEDIA_TYPE, NULL },
	{ "multipart/form-data", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=\"\"", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=\"ends in space \"", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=\"bad\x01\"", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=\"unterminated", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary=a; boundary=b", DH_E_INVALID, NULL },
	{ "multipart/form-data; boundary="
	  "12345678901234567890123456789012345678901234567890123456789012345678901",
	  DH_E_INVALID, NULL },
	{ "multipart/form-data; junk", DH_E_INVALID, NULL },
};

START_TEST(test_content_type_table)
{
	const struct ct_case *c = &ct_cases[_i];
	char b[DH_MULTIPART_BOUNDARY_MAX + 1] = "";
	struct dh_error err = { 0 };
	enum dh_err rc = dh_multipart_boundary(c->ct, b, &err);

	ck_assert_msg(rc == c->want, "'%s': rc %d want %d", c->ct ? c->ct : "(null)", rc, c->want);
	if (rc == DH_OK)
		ck_assert_str_eq(b, c->boundary);
	else
		ck_assert_int_eq(err.code, rc);
	dh_error_release(&err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multipart");
	TCase *tc = tcase_create("multipart");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_multipart_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_header_line_limit);
	tcase_add_test(tc, test_header_count_limit);
	tcase_add_test(tc, test_long_filename);
	tcase_add_loop_test(tc, test_content_type_table, 0, sizeof(ct_cases) / sizeof(ct_cases[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
